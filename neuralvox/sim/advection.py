"""Semi-Lagrangian advection with MacCormack correction and clamping, for cell-centred and MAC face fields."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F


def _grid_coordinates(positions: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """grid_sample coordinates (x = k, y = j, z = i, each in [-1, 1]) of index positions (..., 3) in a field."""
    scale = positions.new_tensor([2.0 / max(n - 1, 1) for n in reversed(shape)])
    return positions.flip(-1) * scale - 1.0


def sample(field: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Trilinear samples (C, X', Y', Z') of ``field`` (C, X, Y, Z) at index positions (X', Y', Z', 3), clamped."""
    grid = _grid_coordinates(positions, field.shape[1:])
    return F.grid_sample(field[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True)[0]


def _pairwise(field: torch.Tensor, reduce: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``reduce`` (torch.minimum or torch.maximum) over each 2x2x2 block of (C, X, Y, Z): (C, X-1, Y-1, Z-1)."""
    for dim in (1, 2, 3):
        n = field.shape[dim]
        field = reduce(field.narrow(dim, 0, n - 1), field.narrow(dim, 1, n - 1))
    return field


def sample_bounds(field: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Min and max of the 8 values that trilinear interpolation at ``positions`` blends."""
    channels = field.shape[0]
    blocks = torch.cat([_pairwise(field, torch.minimum), _pairwise(field, torch.maximum)])
    last_block = positions.new_tensor([n - 2 for n in field.shape[1:]])
    corners = torch.minimum(positions.clamp(min=0).floor(), last_block)
    grid = _grid_coordinates(corners, blocks.shape[1:])
    both = F.grid_sample(blocks[None], grid[None], mode="nearest", align_corners=True)[0]
    return both[:channels], both[channels:]


@functools.lru_cache(maxsize=32)
def _nodes(shape: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """Index coordinates (X, Y, Z, 3) of every sample of a field of ``shape``."""
    axes = [torch.arange(n, dtype=torch.float32, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def advect(field: torch.Tensor, velocity: torch.Tensor, dt: float) -> torch.Tensor:
    """``field`` (C, X, Y, Z) carried for ``dt`` seconds by ``velocity`` (3, X, Y, Z): the velocity at each of the
    field's samples, in samples (voxels) per second.

    MacCormack (Selle et al. 2008): a forward and a backward semi-Lagrangian step estimate the error, half of it is
    corrected, and the result is clamped to the values the forward step interpolated between. Departure points come
    from one Euler step with each sample's own velocity, as in Mantaflow (Blender's solver).
    """
    nodes = _nodes(tuple(field.shape[1:]), field.device)
    displacement = dt * velocity.movedim(0, -1)
    back = nodes - displacement
    forward = sample(field, back)
    reverse = sample(forward, nodes + displacement)
    corrected = forward + 0.5 * (field - reverse)
    low, high = sample_bounds(field, back)
    return torch.minimum(torch.maximum(corrected, low), high)
