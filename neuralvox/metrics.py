"""Error and rate metrics shared by compress, bench and tests (docs/design.md, "Measurement words")."""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class ErrorStats:
    """Error of decoded values against the original over the original's active voxels."""

    rmse: float
    max_abs_error: float
    psnr: float  # dB against ``peak``; inf when exact
    peak: float
    voxels: int

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


_STATS_ROWS = 1 << 22  # rows whose error one step of error_stats holds (at most one slice below this)


def error_stats(original: np.ndarray, decoded: np.ndarray, peak: float) -> ErrorStats:
    """RMSE, max abs error and PSNR; vectors count each component, the peak is the grid's value range."""
    original, decoded = np.asarray(original), np.asarray(decoded)
    if original.shape != decoded.shape:
        raise ValueError(f"shapes differ: original {original.shape}, decoded {decoded.shape}")
    if original.size == 0:
        return ErrorStats(0.0, 0.0, math.inf, peak, 0)
    # a slice of rows at a time: float64 copies of a whole 50M-voxel grid held 1.5 GB of temporaries
    squares, largest = 0.0, 0.0
    for start in range(0, len(original), _STATS_ROWS):
        diff = (np.asarray(decoded[start:start + _STATS_ROWS], dtype=np.float64)
                - np.asarray(original[start:start + _STATS_ROWS], dtype=np.float64))
        squares += float(np.add.reduce(diff**2, axis=None))
        largest = max(largest, float(np.max(np.abs(diff))))
    rmse = math.sqrt(squares / original.size)
    return ErrorStats(rmse, largest, psnr(rmse, peak), peak, int(original.shape[0]))


def psnr(rmse: float, peak: float) -> float:
    if rmse == 0:
        return math.inf
    return 20 * math.log10(max(peak, 1e-30) / rmse)


def value_range(values: np.ndarray) -> float:
    """Peak for PSNR: max - min over all components (at least a tiny positive number)."""
    if values.size == 0:
        return 0.0
    return float(np.max(values) - np.min(values))


def merge(stats: list[ErrorStats], peak: float) -> ErrorStats:
    """Sequence-level statistics from per-frame ones, with one peak for the sequence."""
    voxels = sum(s.voxels for s in stats)
    if voxels == 0:
        return ErrorStats(0.0, 0.0, math.inf, peak, 0)
    mse = sum(s.rmse**2 * s.voxels for s in stats) / voxels
    rmse = math.sqrt(mse)
    return ErrorStats(rmse, max(s.max_abs_error for s in stats), psnr(rmse, peak), peak, voxels)


def bits_per_voxel(nbytes: int, voxels: int) -> float:
    return 8.0 * nbytes / voxels if voxels else 0.0


def flicker_ratio(
    ijk_prev: np.ndarray, orig_prev: np.ndarray, dec_prev: np.ndarray,
    ijk: np.ndarray, orig: np.ndarray, dec: np.ndarray,
) -> tuple[float, int]:
    """RMS of the temporal error change over voxels active in both frames, and how many there were.

    The caller divides the pooled RMS by the per-frame RMSE: ~1.41 means frame errors are independent (flicker),
    below 1 means they are coherent in time.
    """
    common_prev, common = common_voxels(ijk_prev, ijk)
    if len(common) == 0:
        return 0.0, 0
    change = (dec[common] - dec_prev[common_prev]) - (orig[common] - orig_prev[common_prev])
    return float(np.sqrt(np.mean(np.asarray(change, dtype=np.float64) ** 2))), len(common)


def common_voxels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a and b of the coordinates both hold."""
    view = np.dtype((np.void, 12))
    ka = np.ascontiguousarray(a, dtype=np.int32).view(view).ravel()
    kb = np.ascontiguousarray(b, dtype=np.int32).view(view).ravel()
    _, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
    return ia, ib
