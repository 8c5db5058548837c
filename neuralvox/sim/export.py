"""Dense simulation fields to SparseGrids shaped like Houdini/Blender caches: thresholded topology, real transforms."""

from __future__ import annotations

import numpy as np
import torch

from neuralvox.grid import SparseGrid

ACTIVE_THRESHOLD = 1e-3
"""Smoke voxels are active where the field exceeds this (as in Blender/Houdini caches); the rest is background 0."""

LEVEL_SET_HALF_WIDTH = 3
"""Narrow band of the liquid surface: voxels with |phi| < 3 voxel sizes are active, background = 3 * voxel size."""


def _coordinates(mask: torch.Tensor) -> np.ndarray:
    return torch.nonzero(mask).to(torch.int32).cpu().numpy()


def scalar_grid(
    name: str,
    field: torch.Tensor,
    mask: torch.Tensor,
    transform: np.ndarray,
    *,
    grid_class: str = "fog volume",
    background: float = 0.0,
    save_half: bool = True,
) -> SparseGrid:
    """A float grid holding ``field`` (X, Y, Z) where ``mask`` is True."""
    return SparseGrid(
        name=name,
        ijk=_coordinates(mask),
        values=field[mask].float().cpu().numpy(),
        grid_class=grid_class,
        value_type="float",
        transform=transform,
        background=background,
        save_half=save_half,
    )


def vector_grid(
    name: str, field: torch.Tensor, mask: torch.Tensor, transform: np.ndarray, *, save_half: bool = True
) -> SparseGrid:
    """A vec3s grid (class "unknown", vector type "invariant") holding ``field`` (3, X, Y, Z) where ``mask`` is True."""
    return SparseGrid(
        name=name,
        ijk=_coordinates(mask),
        values=field[:, mask].T.float().contiguous().cpu().numpy(),
        grid_class="unknown",
        value_type="vec3s",
        transform=transform,
        background=(0.0, 0.0, 0.0),
        save_half=save_half,
        vector_type="invariant",
    )


def smoke_grids(
    fields: dict[str, torch.Tensor], velocity: torch.Tensor, transform: np.ndarray, threshold: float = ACTIVE_THRESHOLD
) -> list[SparseGrid]:
    """Fog volumes for each scalar field (active above ``threshold``) and ``vel`` (m/s) active where density is."""
    grids = [scalar_grid(name, field, field > threshold, transform) for name, field in fields.items()]
    grids.append(vector_grid("vel", velocity, fields["density"] > threshold, transform))
    return grids


def liquid_grids(
    phi: torch.Tensor, velocity: torch.Tensor, voxel_size: float, transform: np.ndarray
) -> list[SparseGrid]:
    """``surface`` narrow-band level set (world units) and ``vel`` (m/s) active in the liquid and its outer band."""
    band = LEVEL_SET_HALF_WIDTH * voxel_size
    surface = scalar_grid(
        "surface", phi, phi.abs() < band, transform, grid_class="level set", background=band, save_half=False
    )
    return [surface, vector_grid("vel", velocity, phi < band, transform, save_half=False)]
