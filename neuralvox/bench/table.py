"""Markdown tables of a benchmark: every method point per grid, then neuralvox against each baseline."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neuralvox.bench.result import BenchPoint, BenchResult, GridBench

_POINT_HEADER = ("| method | setting | bpv | ratio vs source | PSNR dB | max abs err | stated bound | enc ms/frame "
                 "| dec ms/frame | bytes by part |")
_MATCH_HEADER = ("| neuralvox | PSNR dB | bpv | ratio vs source | baseline | baseline bpv at that PSNR "
                 "| baseline ratio vs source | verdict |")


def format_table(result: BenchResult) -> str:
    inputs = result.inputs if len(result.inputs) <= 3 else [result.inputs[0], "...", result.inputs[-1]]
    lines = [f"Inputs: {', '.join(inputs)} ({result.frames} frames). Machine: {result.machine}. "
             f"Date: {result.created}."]
    lines += [f"- {note}" for note in result.notes]
    if result.skipped_grids:
        lines.append("- Grids left out: " + "; ".join(f"{n} ({r})" for n, r in result.skipped_grids.items()) + ".")
    for grid in result.grids:
        lines += ["", *_grid_section(grid)]
    return "\n".join(lines) + "\n"


def _grid_section(grid: GridBench) -> list[str]:
    lines = [
        f"## {grid.name}",
        "",
        f"{grid.frames} frames, {grid.voxels:,} active voxels ({grid.value_type}, {grid.grid_class}); source "
        f"{grid.source_bytes:,} bytes in the input files ({8 * grid.source_bytes / max(grid.voxels, 1):.2f} bpv); "
        f"PSNR peak {grid.peak:.6g} (value range over the sequence).",
        "",
        _POINT_HEADER,
        "|" + "---|" * 2 + "---:|" * 7 + "---|",
    ]
    lines += [_point_row(p) for p in grid.points]
    if grid.skipped:
        lines += ["", "Not run on this grid: " + "; ".join(f"{m} ({r})" for m, r in grid.skipped) + "."]
    matches = grid.matches()
    if matches:
        lines += ["", f"### {grid.name}: neuralvox against each baseline at neuralvox's PSNR", "",
                  "Baseline bpv is interpolated in log(bpv) along the baseline's Pareto front, never extrapolated.",
                  "", _MATCH_HEADER, "|---|" + "---:|" * 3 + "---|" + "---:|" * 2 + "---|"]
        for match in matches:
            point, comparison = match.neuralvox, match.comparison
            lines.append(
                f"| {point.setting} | {_psnr(point.psnr)} | {point.bpv:.3f} | {point.ratio:.2f}x | {match.baseline} "
                f"| {_maybe(comparison.baseline_bpv, '{:.3f}')} | {_maybe(match.baseline_ratio, '{:.2f}x')} "
                f"| {comparison.verdict} |")
    return lines


def _point_row(point: BenchPoint) -> str:
    if point.error_bound is None:
        bound = "none"
    else:
        bound = f"{point.error_bound:.3g} {'ok' if point.within_bound else 'EXCEEDED'}"
    parts = ", ".join(f"{name} {100 * size / point.nbytes:.1f}%" for name, size in point.parts.items()
                      if point.nbytes and len(point.parts) > 1)
    if point.note:
        parts = f"{parts}; {point.note}" if parts else point.note
    return (f"| {point.method} | {point.setting} | {point.bpv:.3f} | {point.ratio:.2f}x | {_psnr(point.psnr)} "
            f"| {point.max_abs_error:.3g} | {bound} | {_maybe(point.encode_ms, '{:.1f}')} "
            f"| {_maybe(point.decode_ms, '{:.1f}')} | {parts} |")


def _psnr(value: float) -> str:
    return "exact" if math.isinf(value) else f"{value:.2f}"


def _maybe(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
