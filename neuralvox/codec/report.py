"""What compress reports: running per-grid statistics over the frames, the progress bar, and the final report."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from neuralvox.codec.header import GridReport
from neuralvox.grid import SparseGrid
from neuralvox.metrics import ErrorStats, bits_per_voxel, error_stats, flicker_ratio, merge, value_range


@dataclasses.dataclass
class CompressReport:
    """Per-grid results and the archive's totals, and each grid's errors frame by frame (in coding order)."""

    archive: Path
    archive_bytes: int
    source_file_bytes: int
    grids: list[GridReport]
    skipped: list[str]
    seconds: float
    frame_errors: dict[str, list[ErrorStats]] = dataclasses.field(default_factory=dict)

    @property
    def coded_source_bytes(self) -> int:
        return sum(g.source_bytes for g in self.grids)


class GridTracker:
    """Running statistics of one grid across frames (sequence PSNR, flicker, bytes per stream)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames = 0
        self.voxels = 0
        self.source_bytes = 0
        self.stream_bytes: dict[str, int] = {}
        self.frame_stats: list[ErrorStats] = []
        self.low, self.high = math.inf, -math.inf
        self.fit_seconds = 0.0
        self.change_sq, self.change_count, self.flicker_sq, self.flicker_count = 0.0, 0, 0.0, 0
        self.previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, grid: SparseGrid, decoded: np.ndarray, streams: dict[str, int], source: int, fit_s: float) -> None:
        self.frames += 1
        self.voxels += grid.voxel_count
        self.source_bytes += source
        self.fit_seconds += fit_s
        for name, size in streams.items():
            self.stream_bytes[name] = self.stream_bytes.get(name, 0) + size
        if grid.voxel_count:
            self.low = min(self.low, float(grid.values.min()))
            self.high = max(self.high, float(grid.values.max()))
        stats = error_stats(grid.values, decoded, peak=value_range(grid.values))
        self.frame_stats.append(stats)
        if self.previous is not None:
            rms, count = flicker_ratio(*self.previous, grid.ijk, grid.values, decoded)
            if count:
                self.change_sq += rms**2 * count
                self.change_count += count
                self.flicker_sq += stats.rmse**2 * count
                self.flicker_count += count
        self.previous = (grid.ijk, grid.values, decoded)

    def report(self, bound: float | None = None) -> GridReport:
        peak = self.high - self.low if self.high >= self.low else 0.0
        total = merge(self.frame_stats, peak)
        flicker = None
        if self.change_count and self.flicker_sq > 0:
            flicker = math.sqrt(self.change_sq / self.change_count) / math.sqrt(self.flicker_sq / self.flicker_count)
        return GridReport(self.name, self.frames, self.voxels, self.source_bytes, dict(self.stream_bytes), total.psnr,
                          total.rmse, total.max_abs_error, peak, flicker, self.fit_seconds, bound)


class ProgressBar:
    """tqdm bar over frames whose postfix shows the running PSNR and bits per voxel."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, unit="frame", desc="compress", disable=not enabled, dynamic_ncols=True)

    def frame_done(self, trackers: dict[str, GridTracker]) -> None:
        voxels = sum(t.voxels for t in trackers.values())
        coded = sum(sum(t.stream_bytes.values()) for t in trackers.values())
        psnrs = [s.psnr for t in trackers.values() for s in t.frame_stats[-1:] if math.isfinite(s.psnr)]
        self.bar.set_postfix(psnr=f"{min(psnrs):.1f}dB" if psnrs else "-", bpv=f"{bits_per_voxel(coded, voxels):.3f}")
        self.bar.update(1)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
