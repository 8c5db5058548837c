"""First guesses of frame-to-frame motion, for predicted fits: from the sim's velocity grid, or by block matching."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from neuralvox.grid import SparseGrid
from neuralvox.model.geometry import find_rows
from neuralvox.model.motion import MotionGuess

VELOCITY_NAMES = ("vel", "velocity", "v")
_MAX_CELLS = 1 << 22  # dense working volumes are downsampled until they hold at most this many cells
_SEARCH_RADIUS = 2  # block matching tries shifts of up to this many (downsampled) cells per axis
_VELOCITY_SCALES = (0.0, *(2.0**e for e in np.arange(-6.0, 3.01, 0.25)))  # candidate voxels-per-frame per unit


def find_velocity(grids: dict[str, SparseGrid]) -> SparseGrid | None:
    """The frame's velocity grid (a vector grid named vel, velocity or v), if it has one."""
    for name in VELOCITY_NAMES:
        grid = grids.get(name)
        if grid is not None and grid.values.ndim == 2 and grid.voxel_count:
            return grid
    return None


@dataclasses.dataclass
class _Volume:
    """A dense, downsampled view of one or two sparse frames: cell (a, b, c) covers voxels
    ``origin + factor * (a, b, c) ...`` + factor - 1."""

    origin: np.ndarray
    factor: int
    shape: tuple[int, int, int]

    @classmethod
    def around(cls, *ijk: np.ndarray, min_factor: int = 1) -> _Volume:
        points = np.concatenate([p for p in ijk if len(p)])
        lo, hi = points.min(axis=0), points.max(axis=0)
        factor = min_factor
        while np.prod((hi - lo) // factor + 1, dtype=np.float64) > _MAX_CELLS:
            factor *= 2
        return cls(lo.astype(np.int64), factor, tuple(int(n) for n in (hi - lo) // factor + 1))

    def cells(self, ijk: np.ndarray) -> np.ndarray:
        return (np.asarray(ijk, dtype=np.int64) - self.origin) // self.factor

    def mean(self, ijk: np.ndarray, values: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell mean of ``values`` (N,) or (N, C) over the voxels in each cell, (C, *shape), and the voxel count."""
        columns = values.reshape(len(values), -1).astype(np.float32)
        cells = self.cells(ijk)
        flat = torch.from_numpy(np.ravel_multi_index(cells.T, self.shape))
        size = int(np.prod(self.shape))
        count = torch.zeros(size).index_add_(0, flat, torch.ones(len(flat)))
        sums = torch.zeros((size, columns.shape[1])).index_add_(0, flat, torch.from_numpy(columns))
        mean = sums / count.clamp(min=1).unsqueeze(1)
        return mean.T.reshape(columns.shape[1], *self.shape), count.reshape(self.shape)

    def positions(self, voxels: np.ndarray) -> torch.Tensor:
        """Voxel positions (K, 3) as grid_sample coordinates (1, 1, 1, K, 3) on this volume (cell centres)."""
        cells = (np.asarray(voxels, dtype=np.float64) - self.origin - (self.factor - 1) / 2) / self.factor
        normalized = 2 * (cells + 0.5) / np.asarray(self.shape) - 1
        # grid_sample reads (x, y, z) = (last, middle, first) axis
        return torch.from_numpy(normalized[:, ::-1].copy()).float().reshape(1, 1, 1, -1, 3)


def _magnitude(values: np.ndarray) -> np.ndarray:
    return np.linalg.norm(values, axis=1) if values.ndim == 2 else values


def _sample(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Trilinear samples (C, K) of a (C, *shape) volume at grid_sample coordinates, zero outside."""
    return F.grid_sample(volume.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False).reshape(volume.shape[0], -1)


def velocity_guess(velocity: SparseGrid, transform: np.ndarray, previous: tuple[np.ndarray, np.ndarray],
                   current: tuple[np.ndarray, np.ndarray], reach: int) -> MotionGuess:
    """Motion at voxel positions from a velocity grid, in voxels (of the grid with ``transform``) per frame.

    The velocity's units and the time between frames are not in the files, so the vectors (taken as world-space
    and moved to the grid's index space) are scaled by the factor, among a geometric sweep, that best predicts the
    ``current`` (ijk, values) frame from the ``previous`` one. A staggered (MAC) velocity grid is first averaged to
    voxel centres. A position takes the mean motion of the voxels within ``reach`` voxels of it.
    """
    ijk, vectors = centred_velocity(velocity)
    inverse = np.linalg.inv(np.asarray(transform, dtype=np.float64))
    positions = _apply(inverse, _apply(velocity.transform, ijk.astype(np.float64)))
    index_vectors = vectors.astype(np.float64) @ inverse[:3, :3]

    volume = _Volume.around(previous[0], current[0])
    cells = np.floor(positions).astype(np.int64)
    inside = np.all((volume.cells(cells) >= 0) & (volume.cells(cells) < np.asarray(volume.shape)), axis=1)
    velocity_mean, velocity_count = volume.mean(cells[inside], index_vectors[inside])
    weighted = torch.cat([velocity_mean * velocity_count, velocity_count.unsqueeze(0)])
    previous_mean, _ = volume.mean(previous[0], _magnitude(previous[1]))
    current_values = torch.from_numpy(_magnitude(current[1]).astype(np.float32))
    current_points = volume.positions(current[0])
    here = _sample(weighted, current_points)
    unit = (here[:3] / here[3:].clamp(min=1e-6)).T.numpy()

    def error(scale: float) -> float:
        source = volume.positions(current[0] - scale * unit)
        return float(((_sample(previous_mean, source)[0] - current_values) ** 2).mean())

    best = min(_VELOCITY_SCALES, key=error)
    return _spread(volume, best * weighted[:3], weighted[3], reach)


def centred_velocity(velocity: SparseGrid) -> tuple[np.ndarray, np.ndarray]:
    """Velocity at voxel centres: a staggered grid's component a sits on the face at -1/2 along axis a, so the
    centre value averages the faces at i and i + 1 (the lower face alone where the upper one is inactive)."""
    ijk, vectors = velocity.ijk, velocity.values.astype(np.float32)
    if velocity.vector_type != "staggered":
        return ijk, vectors
    coords = torch.from_numpy(ijk.astype(np.int64))
    order = torch.from_numpy(np.lexsort(ijk.T[::-1]))
    sorted_coords = coords[order]
    centred = vectors.copy()
    for axis in range(3):
        offset = torch.zeros((1, 3), dtype=torch.int64)
        offset[0, axis] = 1
        rows = find_rows(sorted_coords, coords + offset)
        upper = rows >= 0
        neighbour = order[rows[upper]].numpy()
        centred[upper.numpy(), axis] = 0.5 * (vectors[upper.numpy(), axis] + vectors[neighbour, axis])
    return ijk, centred


def block_matching_guess(previous: tuple[np.ndarray, np.ndarray], current: tuple[np.ndarray, np.ndarray],
                         block: int) -> MotionGuess:
    """Motion at voxel positions by block matching: each ``block``-voxel cube of the current frame takes the shift
    (in steps of two downsampled cells, up to ``_SEARCH_RADIUS``) that best matches the previous frame."""
    volume = _Volume.around(previous[0], current[0], min_factor=2)
    previous_mean, _ = volume.mean(previous[0], _magnitude(previous[1]))
    current_mean, current_count = volume.mean(current[0], _magnitude(current[1]))
    n0, n1, n2 = volume.shape
    # a block never spans more cells than an axis holds: thin grids (a slab a few voxels deep) match per slice
    cells = tuple(min(max(1, block // volume.factor), n) for n in volume.shape)
    radius = _SEARCH_RADIUS
    padded = F.pad(previous_mean.unsqueeze(0), [radius] * 6).squeeze(0)
    occupied = (current_count > 0).float()
    shifts = [(a, b, c) for a in range(-radius, radius + 1) for b in range(-radius, radius + 1)
              for c in range(-radius, radius + 1)]
    errors = []
    for a, b, c in shifts:
        moved = padded[0, radius - a:radius - a + n0, radius - b:radius - b + n1, radius - c:radius - c + n2]
        squared = (current_mean[0] - moved) ** 2 * occupied
        errors.append(F.avg_pool3d(squared[None, None], cells, ceil_mode=True)[0, 0]
                      + 1e-9 * (a * a + b * b + c * c))
    best = torch.stack(errors).argmin(dim=0)
    block_motion = torch.tensor(shifts, dtype=torch.float32)[best] * volume.factor  # (*blocks, 3) voxels
    cell_motion = block_motion.repeat_interleave(cells[0], 0).repeat_interleave(cells[1], 1)
    cell_motion = cell_motion.repeat_interleave(cells[2], 2)[:n0, :n1, :n2].permute(3, 0, 1, 2)
    return _spread(volume, cell_motion * occupied, occupied, block)


def _spread(volume: _Volume, weighted_motion: torch.Tensor, weight: torch.Tensor, reach: int) -> MotionGuess:
    """The guess at a position: the weighted mean of per-cell motion (3, *shape) (already multiplied by ``weight``
    (*shape)) over the cells within ``reach`` voxels; zero where no cell with weight is that close."""
    radius = max(1, reach // volume.factor)
    stacked = torch.cat([weighted_motion, weight.unsqueeze(0)]).unsqueeze(0)
    smoothed = F.pad(stacked, [radius] * 6)
    for kernel in ((2 * radius + 1, 1, 1), (1, 2 * radius + 1, 1), (1, 1, 2 * radius + 1)):  # separable box filter
        smoothed = F.avg_pool3d(smoothed, kernel, stride=1)
    smoothed = smoothed[0]

    def guess(voxels: np.ndarray) -> np.ndarray:
        sampled = _sample(smoothed, volume.positions(voxels))
        total = sampled[3:]
        return torch.where(total > 1e-6, sampled[:3] / total.clamp(min=1e-6), 0.0).T.numpy()

    return guess


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) through an OpenVDB 4x4 row-vector affine matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:3, :3] + matrix[3, :3]
