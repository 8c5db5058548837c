"""Rate-distortion plots of a benchmark: PSNR and max abs error against bits per active voxel, per grid."""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from neuralvox.atomic import atomic_output  # noqa: E402
from neuralvox.bench.result import NEURALVOX, BenchResult  # noqa: E402


def plot(result: BenchResult, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write a PNG: per grid one row of two panels, PSNR vs bpv and max abs error vs bpv (log bpv), one line per
    method. Exact (lossless) points cannot sit on these axes: they are listed in a corner of the error panel.
    Written atomically; an existing file is refused unless ``force``."""
    path = Path(path)
    if not result.grids:
        raise ValueError(f"{path}: the benchmark measured no grid; nothing to plot")
    methods = list(dict.fromkeys(p.method for g in result.grids for p in g.points))
    colours = {m: plt.get_cmap("tab20")(i % 20) for i, m in enumerate(m for m in methods if m != NEURALVOX)}
    colours[NEURALVOX] = "black"
    figure, axes = plt.subplots(len(result.grids), 2, figsize=(13, 4.8 * len(result.grids)), squeeze=False)
    for row, grid in zip(axes, result.grids, strict=True):
        psnr_axis, error_axis = row
        exact = []
        for method, points in grid.curves().items():
            points = sorted(points, key=lambda p: p.bpv)
            style = {"color": colours[method], "marker": "o" if method == NEURALVOX else ".",
                     "linewidth": 2.2 if method == NEURALVOX else 1.0, "label": method}
            lossy = [p for p in points if math.isfinite(p.psnr)]
            exact += [f"{p.label}: {p.bpv:.2f} bpv" for p in points if not math.isfinite(p.psnr)]
            if lossy:
                psnr_axis.plot([p.bpv for p in lossy], [p.psnr for p in lossy], **style)
                error_axis.plot([p.bpv for p in lossy], [p.max_abs_error for p in lossy], **style)
        psnr_axis.set(xscale="log", xlabel="bits per active voxel", ylabel="PSNR (dB, sequence value range)",
                      title=f"{grid.name}: PSNR vs rate ({grid.frames} frames, {grid.voxels:,} voxels)")
        error_axis.set(xscale="log", yscale="log", xlabel="bits per active voxel", ylabel="max abs error",
                       title=f"{grid.name}: max abs error vs rate")
        if exact:
            error_axis.text(0.01, 0.02, "exact (no error):\n" + "\n".join(exact), transform=error_axis.transAxes,
                            va="bottom", fontsize=7, family="monospace")
        for axis in row:
            axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.xaxis.set_minor_formatter(NullFormatter())
            axis.grid(True, which="both", alpha=0.3)
        psnr_axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    with atomic_output(path, force=force) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
    return path
