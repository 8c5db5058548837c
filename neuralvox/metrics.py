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


def error_stats(original: np.ndarray, decoded: np.ndarray, peak: float) -> ErrorStats:
    """RMSE, max abs error and PSNR; vectors count each component, the peak is the grid's value range."""
    original = np.asarray(original, dtype=np.float64)
    decoded = np.asarray(decoded, dtype=np.float64)
    if original.shape != decoded.shape:
        raise ValueError(f"shapes differ: original {original.shape}, decoded {decoded.shape}")
    if original.size == 0:
        return ErrorStats(0.0, 0.0, math.inf, peak, 0)
    diff = decoded - original
    rmse = float(np.sqrt(np.mean(diff**2)))
    return ErrorStats(rmse, float(np.max(np.abs(diff))), psnr(rmse, peak), peak, int(original.shape[0]))


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
