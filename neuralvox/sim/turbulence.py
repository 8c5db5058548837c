"""Synthetic turbulent smoke frames of any size: a thresholded multi-octave noise field, for scale benchmarks.

The density is fractal noise (random coarse lattices upsampled trilinearly, octave amplitudes falling as
``2**(-5/6 * octave)`` like a Kolmogorov spectrum's velocity increments) inside a soft ball; voxels where it exceeds a
threshold are active. Frame ``t`` reads the noise shifted by ``t`` voxels along x, so a sequence drifts smoothly.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from neuralvox.grid import SparseGrid

OCCUPANCY = 0.37  # about this fraction of the cube is active
_OCTAVES = 5
_THRESHOLD = 1e-3  # as in Blender and Houdini caches: the density fades to zero at the edge


def turbulent_frame(voxels: int, *, frame: int = 0, frames: int = 1, seed: int = 0,
                    name: str = "density") -> SparseGrid:
    """A fog-volume grid of about ``voxels`` active voxels, frame ``frame`` of a drifting sequence of ``frames``."""
    side = max(8, round((voxels / OCCUPANCY) ** (1 / 3)))
    generator = torch.Generator().manual_seed(seed)
    noise = torch.zeros((side, side, side))
    for octave in range(_OCTAVES):
        cells = 4 << octave
        coarse = torch.randn((1, 1, cells + 2 + math.ceil(cells * frames / side), cells + 2, cells + 2),
                             generator=generator)
        scale = side / cells
        length = round(coarse.shape[2] * scale)
        fine = torch.nn.functional.interpolate(coarse, size=(length, side + 2 * round(scale), side + 2 * round(scale)),
                                               mode="trilinear", align_corners=False)[0, 0]
        noise += 2.0 ** (-5 / 6 * octave) * fine[frame:frame + side, :side, :side]
        del coarse, fine
    axis = (torch.arange(side, dtype=torch.float32) + 0.5) / side - 0.5
    radius = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    density = torch.clamp(0.35 * noise + 0.9 - 2.0 * radius, min=0.0) ** 2
    del noise, radius
    mask = density > _THRESHOLD
    ijk = torch.nonzero(mask).to(torch.int32).numpy()
    values = density[mask].numpy().astype(np.float32)
    transform = np.diag([0.01, 0.01, 0.01, 1.0])
    return SparseGrid(name=name, ijk=ijk, values=values, grid_class="fog volume", value_type="float",
                      transform=transform, background=0.0, save_half=False)
