"""Random access: a sparse grid's values at world points, decoding only the active voxels the points need."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from neuralvox.model.geometry import CORNER_OFFSETS, find_rows, trilinear_weights

SAMPLE_MODES = ("nearest", "trilinear")


def sample_grid(ijk: np.ndarray, transform: np.ndarray, background: float | tuple[float, float, float],
                decode: Callable[[np.ndarray], np.ndarray], world_points: np.ndarray,
                mode: str = "trilinear") -> np.ndarray:
    """Values at ``world_points`` (P, 3) of a grid with active voxels ``ijk`` (N, 3) in canonical order, its 4x4
    index-to-world ``transform`` (row vectors) and ``background``; ``decode(voxels)`` gives the values (K, C) of
    active voxels (K, 3). Returns (P,) for one channel, (P, C) otherwise.

    Voxel ``v`` sits at index position ``v``. "nearest": the value of the voxel containing the point, background
    where it is inactive. "trilinear": trilinear interpolation between the 8 voxels around the point, inactive ones
    counting as background (as OpenVDB's BoxSampler does).
    """
    if mode not in SAMPLE_MODES:
        raise ValueError(f"sample mode {mode!r} is not one of {SAMPLE_MODES}")
    world_points = np.asarray(world_points, dtype=np.float64)
    if world_points.ndim != 2 or world_points.shape[1] != 3:
        raise ValueError(f"world points must have shape (P, 3), got {world_points.shape}")
    if not np.isfinite(world_points).all():
        raise ValueError("world points hold NaN or infinite coordinates")
    index = (world_points - transform[3, :3]) @ np.linalg.inv(transform[:3, :3])
    if mode == "nearest":
        corners = np.floor(index + 0.5).astype(np.int64)[:, None]
        weights = np.ones((len(index), 1))
    else:
        base = np.floor(index)
        frac = index - base
        offsets = CORNER_OFFSETS.numpy()
        corners = base.astype(np.int64)[:, None] + offsets[None]
        weights = trilinear_weights(torch.from_numpy(frac)).numpy()
    rows = find_rows(torch.from_numpy(np.ascontiguousarray(ijk)), torch.from_numpy(corners.reshape(-1, 3))).numpy()
    needed, inverse = np.unique(rows[rows >= 0], return_inverse=True)
    decoded = np.asarray(decode(np.ascontiguousarray(ijk[needed], dtype=np.int32)), dtype=np.float64)
    channels = decoded.shape[1] if decoded.ndim == 2 else 1
    corner_values = np.empty((rows.size, channels))
    corner_values[:] = np.broadcast_to(np.asarray(background, dtype=np.float64), (channels,))
    corner_values[rows >= 0] = decoded.reshape(len(needed), channels)[inverse]
    values = np.einsum("pc,pcv->pv", weights, corner_values.reshape(len(index), weights.shape[1], channels))
    return values.astype(np.float32).reshape(-1) if channels == 1 else values.astype(np.float32)
