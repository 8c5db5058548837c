"""Latent motion: a coarse field of 3-vectors warping the previous frame's decoded latents onto this frame's lattice."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from neuralvox.model.geometry import (
    CORNER_OFFSETS,
    find_rows,
    linear_keys,
    trilinear_weights,
    unique_keys,
    unlinear_keys,
)
from neuralvox.model.lattice import SparseInterpolation
from neuralvox.model.rate import LaplacePrior

MotionGuess = Callable[[np.ndarray], np.ndarray]
"""A first guess of motion (K, 3), in voxels per frame, at voxel positions (K, 3): what a predicted fit starts from."""

_DILATION = torch.tensor([[a, b, c] for a in (-1, 0, 1, 2) for b in (-1, 0, 1, 2) for c in (-1, 0, 1, 2)],
                         dtype=torch.int64)


def motion_lattice(reference_voxels: torch.Tensor, stride: int) -> torch.Tensor:
    """Coordinates (K, 3) int64, canonical order, of the motion points of ``stride`` around voxel positions (P, 3).

    The cells holding the positions, grown by one cell on every side, and their upper corners: every point within one
    motion cell of the reference interpolates its motion from allocated points only. Built from the previous frame
    alone, so a decoder knows the motion lattice before it decodes this frame's topology.
    """
    if reference_voxels.shape[0] == 0:
        return torch.zeros((0, 3), dtype=torch.int64, device=reference_voxels.device)
    cells = torch.div(reference_voxels.to(torch.int64), stride, rounding_mode="floor")
    lo = cells.amin(dim=0) - 1
    extent = (cells.amax(dim=0) - lo + 3).tolist()
    shifted = cells - lo
    cell_keys = unique_keys(linear_keys(*shifted.T, extent), extent[0] * extent[1] * extent[2])
    base = unlinear_keys(cell_keys, extent) + lo
    grown = (base.unsqueeze(1) + _DILATION.to(base.device).unsqueeze(0)).reshape(-1, 3)
    return torch.unique(grown, dim=0, sorted=True)


def sample_lattice(coords: torch.Tensor, values: torch.Tensor, positions: torch.Tensor,
                   rows: torch.Tensor | None = None) -> torch.Tensor:
    """Trilinear samples (P, C) of lattice ``values`` (M, C) at ``coords`` (M, 3) (canonical order) at fractional
    lattice positions (P, 3), differentiable in both.

    Corners that are not allocated are left out and the others' weights renormalized (the field is extended from
    where it is known); a position with no allocated corner samples zero. ``rows`` (P, 8) are the corner rows if the
    caller already looked them up (see ``corner_rows``).
    """
    if rows is None:
        rows = corner_rows(coords, torch.floor(positions).to(torch.int64))
    weight = corner_weights(positions, rows)
    if values.shape[0] == 0:
        return torch.zeros((positions.shape[0], values.shape[1]), dtype=values.dtype, device=values.device)
    gathered = values[rows.clamp(min=0)]
    return (gathered * weight.unsqueeze(-1)).sum(dim=1)


def corner_weights(positions: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Trilinear weights (P, 8) of the corners ``rows`` of the cells holding ``positions`` (P, 3), renormalized over
    the allocated corners (zero where none is)."""
    weight = trilinear_weights(positions - torch.floor(positions)) * (rows >= 0)
    total = weight.sum(dim=1, keepdim=True)
    return weight / torch.where(total > 0, total, torch.ones_like(total))


def motion_interpolation(motion_coords: torch.Tensor, positions: torch.Tensor) -> SparseInterpolation:
    """``sample_lattice`` of a motion lattice at fixed positions (P, 3) as a sparse matrix: (K, 3) -> (P, 3)."""
    rows = LatticeIndex(motion_coords).corner_rows(torch.floor(positions).to(torch.int64))
    return SparseInterpolation(rows.clamp(min=0), corner_weights(positions, rows), motion_coords.shape[0])


def corner_rows(coords: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Rows in ``coords`` of the 8 corners of lattice cells (P, 3) (their lower corners), -1 where not allocated."""
    return find_rows(coords, cells, CORNER_OFFSETS.to(cells.device))


class LatticeIndex:
    """Rows of lattice coordinates in ``coords`` (M, 3) (canonical order): a dense table over their bounding box when
    it is small, else a sorted-key search (the same answers; the table is several times faster, which matters when
    the motion changes at every fitting step)."""

    _MAX_TABLE = 1 << 24

    def __init__(self, coords: torch.Tensor):
        self.coords = coords
        self.table = None
        if coords.shape[0]:
            self.lo = coords.amin(dim=0)
            self.extent = coords.amax(dim=0) - self.lo + 1
            if int(self.extent.prod()) <= self._MAX_TABLE:
                self.table = torch.full((int(self.extent.prod()),), -1, dtype=torch.int64, device=coords.device)
                self.table[self._keys(coords - self.lo)] = torch.arange(coords.shape[0], device=coords.device)

    def _keys(self, local: torch.Tensor) -> torch.Tensor:
        return linear_keys(local[..., 0], local[..., 1], local[..., 2], self.extent)

    def corner_rows(self, cells: torch.Tensor) -> torch.Tensor:
        """Rows of the 8 corners of lattice cells (P, 3) (their lower corners), -1 where not allocated: (P, 8)."""
        if self.table is None:
            return corner_rows(self.coords, cells)
        local = cells.unsqueeze(1) + CORNER_OFFSETS.to(cells.device).unsqueeze(0) - self.lo
        inside = ((local >= 0) & (local < self.extent)).all(dim=-1)
        rows = self.table[self._keys(torch.minimum(local.clamp(min=0), self.extent - 1))]
        return torch.where(inside, rows, -1)


def warp_latents(previous_coords: torch.Tensor, previous_latents: torch.Tensor, stride: int, coords: torch.Tensor,
                 motion_coords: torch.Tensor, motion: torch.Tensor, motion_stride: int,
                 previous_index: LatticeIndex | None = None,
                 motion_operator: SparseInterpolation | None = None) -> torch.Tensor:
    """The previous frame's latents (M', C) on its lattice ``previous_coords`` carried to this frame's points
    ``coords`` (M, 3) of the same ``stride``: point x takes the previous latents at x - d(x), where d is ``motion``
    (K, 3, voxels per frame) on ``motion_coords`` of ``motion_stride``, interpolated at x. ``previous_index`` and
    ``motion_operator`` (the motion interpolation at the points, see ``motion_interpolation``) save lookups."""
    voxels = (coords * stride).to(motion.dtype)
    if motion_operator is None:
        displacement = sample_lattice(motion_coords, motion, voxels / motion_stride)
    else:
        displacement = motion_operator(motion)
    positions = (voxels - displacement) / stride
    rows = None if previous_index is None else previous_index.corner_rows(torch.floor(positions).to(torch.int64))
    return sample_lattice(previous_coords, previous_latents, positions, rows)


class LatentPredictor(nn.Module):
    """The prediction of a frame's latents (one (M_l, C_l) tensor per level) from the previous frame's decoded
    latents, warped by a motion field whose values are coded as integers times ``motion_step`` voxels.

    ``motion`` is a parameter (refined by gradient with straight-through rounding); ``prior`` (an entropy model's
    training face, ``prior(channels, initial_scale=...)``) models its integers.
    """

    def __init__(self, previous_coords: list[torch.Tensor], previous_latents: list[torch.Tensor],
                 coords: list[torch.Tensor], strides: list[int], motion_coords: torch.Tensor,
                 initial_motion: torch.Tensor, motion_stride: int, motion_step: float,
                 prior: Callable[..., nn.Module] = LaplacePrior):
        super().__init__()
        self.previous_coords = previous_coords
        self.previous_latents = previous_latents
        self.coords = coords
        self.strides = strides
        self.motion_coords = motion_coords
        self.motion_stride = motion_stride
        self.motion_step = motion_step
        self.motion = nn.Parameter(initial_motion.to(torch.float32).clone())
        self.previous_indices = [LatticeIndex(c) for c in previous_coords]
        self.motion_operators = [motion_interpolation(motion_coords, (c * stride).to(torch.float32) / motion_stride)
                                 for c, stride in zip(coords, strides, strict=True)]
        self.prior = prior(3, initial_scale=4.0)

    def quantized_motion(self) -> torch.Tensor:
        """Motion rounded to its step, with a straight-through gradient."""
        scaled = self.motion / self.motion_step
        return (scaled + (torch.round(scaled) - scaled).detach()) * self.motion_step

    def forward(self) -> list[torch.Tensor]:
        motion = self.quantized_motion()
        return [warp_latents(previous_coords, previous, stride, coords, self.motion_coords, motion, self.motion_stride,
                             index, operator)
                for previous_coords, previous, stride, coords, index, operator in zip(
                    self.previous_coords, self.previous_latents, self.strides, self.coords, self.previous_indices,
                    self.motion_operators, strict=True)]

    def bits(self) -> torch.Tensor:
        """Estimated bits of the motion integers (uniform-noise proxy)."""
        scaled = self.motion / self.motion_step
        return self.prior.bits(scaled + torch.empty_like(scaled).uniform_(-0.5, 0.5)).sum()

    def integers(self) -> torch.Tensor:
        """The motion as coded: (K, 3) int32."""
        return torch.round(self.motion.detach() / self.motion_step).to(torch.int32)

    def set_integers(self, integers: torch.Tensor) -> None:
        with torch.no_grad():
            self.motion.copy_(integers.to(self.motion) * self.motion_step)


def compensate_voxels(ijk: np.ndarray, motion_coords: np.ndarray, motion: np.ndarray, motion_stride: int) -> np.ndarray:
    """Voxels (N, 3) moved by the motion (K, 3, voxels) interpolated at each, rounded to whole voxels: distinct rows,
    canonical order, int32. A context for coding the next frame's topology, so it is computed on the CPU in float64
    (exact IEEE operations only), giving the same voxels on every machine."""
    if len(ijk) == 0 or len(motion_coords) == 0:
        return np.ascontiguousarray(ijk, dtype=np.int32)
    positions = torch.from_numpy(np.asarray(ijk, dtype=np.float64)) / motion_stride
    displacement = sample_lattice(torch.from_numpy(np.asarray(motion_coords, dtype=np.int64)),
                                  torch.from_numpy(np.asarray(motion, dtype=np.float64)), positions)
    moved = np.asarray(ijk, dtype=np.int64) + torch.round(displacement).to(torch.int64).numpy()
    return np.unique(moved, axis=0).astype(np.int32)
