"""Run the baselines and neuralvox on the same frames and grids, measured by the same metric code."""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from neuralvox.bench.baselines import (
    BASELINE_METHODS,
    Baseline,
    BaselineSkipped,
    Coded,
    TopologyCode,
    baselines,
    code_topology,
)
from neuralvox.bench.result import NEURALVOX, BenchPoint, BenchResult, GridBench
from neuralvox.codec.decoder import open_archive
from neuralvox.codec.encoder import compress
from neuralvox.codec.presets import quality_preset
from neuralvox.device import resolve_device
from neuralvox.grid import SparseGrid
from neuralvox.metrics import ErrorStats, error_stats, merge
from neuralvox.sequence import FrameSequence, discover
from neuralvox.vdb import VdbError, grid_bytes, list_grids, read_vdb

METHODS = (*BASELINE_METHODS, NEURALVOX)
_NOTES = (
    "bpv: bits per active voxel over all frames (a vec3 voxel counts once). Ratio vs source: the grid's bytes in the "
    "input files (OpenVDB, the source's own settings) over the method's bytes.",
    "Every method's bytes hold what it needs to rebuild each frame: payload coders (zfp, sz3, zstd) add the exact "
    "topology code; OpenVDB points are whole one-grid .vdb files (file header included, shown as a part).",
    "Each decode is checked: active voxels equal the original's, values within the method's stated error "
    "(tolerances are fractions of the grid's value range over the sequence).",
    "Times are wall-clock ms per frame; payload coders include topology coding and decoding. NanoVDB builds and "
    "reads back in one call, timed as encode (it decodes in place on access).",
)


class BenchError(RuntimeError):
    """A method's decode does not rebuild the frame it coded."""


def run_bench(
    paths: Sequence[str | os.PathLike] | FrameSequence,
    *,
    grids: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    qualities: Sequence[str] = ("low", "medium", "high"),
    device: str = "auto",
    progress: bool = True,
) -> BenchResult:
    """Measure rate, error and speed of every method on the given frames and grids.

    ``methods`` picks among METHODS (default: all, sz3 only when pysz is installed); neuralvox runs one compress per
    quality on all the chosen grids at once. ``grids`` defaults to every float/vector grid present in all frames.
    """
    sequence = paths if isinstance(paths, FrameSequence) else discover([str(p) for p in paths])
    chosen = list(METHODS) if methods is None else list(methods)
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if NEURALVOX in chosen:
        for quality in qualities:
            quality_preset(quality)
    points = baselines(None if methods is None else [m for m in chosen if m != NEURALVOX])
    notes = list(_NOTES)
    if methods is None and not any(p.method == "sz3" for p in points):
        notes.append("sz3 not run: pysz (SZ3's Python binding) is not installed.")
    names, skipped_grids = _grid_names(sequence, grids)
    benches: dict[str, GridBench] = {}
    with tqdm(total=len(names) * len(points), desc="bench", unit="point", disable=not progress) as bar:
        for name in names:
            series = _read_series(sequence, name)
            if not any(g.voxel_count for g in series):
                skipped_grids[name] = "no active voxels in any frame"
                bar.update(len(points))
                continue
            bench = _grid_bench(sequence, name, series)
            _run_baselines(bench, sequence, series, points, bar)
            benches[name] = bench
    if NEURALVOX in chosen and benches:
        for quality in qualities:
            _run_neuralvox(benches, sequence, quality, device, progress)
        notes.append(_neuralvox_note(device))
    machine = f"{platform.platform()}, {os.cpu_count()} CPU cores"
    created = datetime.datetime.now().isoformat(timespec="seconds")
    return BenchResult([str(f.path) for f in sequence.frames], len(sequence.frames), list(benches.values()),
                       skipped_grids, notes, machine, created)


def _grid_names(sequence: FrameSequence, grids: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """The grids to measure and the ones left out with the reason."""
    infos = [(f.path, {info.name: info for info in list_grids(f.path)}) for f in sequence.frames]
    if grids is not None:
        for path, info in infos:
            missing = [n for n in grids if n not in info]
            if missing:
                raise VdbError(f"{path}: no grid named {', '.join(missing)}")
            unsupported = [f"'{n}' is {info[n].value_type}" for n in grids if not info[n].supported]
            if unsupported:
                raise VdbError(f"{path}: grid {', '.join(unsupported)}; only float and vector grids are measured")
        return list(grids), {}
    names, skipped = [], {}
    for name, info in infos[0][1].items():
        if not info.supported:
            skipped[name] = f"{info.value_type} grids are not coded"
        elif any(name not in other for _, other in infos[1:]):
            skipped[name] = "missing from some frames"
        else:
            names.append(name)
    return names, skipped


def _read_series(sequence: FrameSequence, name: str) -> list[SparseGrid]:
    return [read_vdb(f.path, [name], warn_skipped=False).grids[name].sorted() for f in sequence.frames]


def _grid_bench(sequence: FrameSequence, name: str, series: list[SparseGrid]) -> GridBench:
    nonempty = [g.values for g in series if g.voxel_count]
    peak = float(max(v.max() for v in nonempty) - min(v.min() for v in nonempty))
    source = sum(grid_bytes(f.path)[name] for f in sequence.frames)
    first = series[0]
    return GridBench(name, first.value_type, first.grid_class, len(series), sum(g.voxel_count for g in series),
                     source, peak)


def _run_baselines(bench: GridBench, sequence: FrameSequence, series: list[SparseGrid], points: list[Baseline],
                   bar: tqdm) -> None:
    vector = series[0].is_vector
    topologies: list[TopologyCode | None] = [None] * len(series)
    if any(p.needs_topology and (p.vectors or not vector) for p in points):
        topologies = [code_topology(g) for g in series]
    for point in points:
        bar.update(1)
        if vector and not point.vectors:
            if (point.method, _NO_VECTORS) not in bench.skipped:
                bench.skipped.append((point.method, _NO_VECTORS))
            continue
        coded = []
        try:
            for frame, grid, topology in zip(sequence.frames, series, topologies, strict=True):
                result = point.run(grid, topology, bench.peak)
                _check_voxels(result.ijk, grid, f"{point.label}: {frame.path}")
                coded.append(result)
        except BaselineSkipped as exc:
            bench.skipped.append((point.label, str(exc)))
            continue
        bench.points.append(_baseline_point(bench, point, series, coded))


_NO_VECTORS = "takes float grids only"


def _check_voxels(ijk: np.ndarray, grid: SparseGrid, where: str) -> None:
    if not np.array_equal(ijk, grid.ijk):
        raise BenchError(f"{where}, grid '{grid.name}': decoded active voxels ({len(ijk)}) differ from the "
                         f"original's ({grid.voxel_count})")


def _baseline_point(bench: GridBench, point: Baseline, series: list[SparseGrid], coded: list[Coded]) -> BenchPoint:
    stats: list[ErrorStats] = []
    parts: dict[str, int] = {}
    bound, within = 0.0, True
    for grid, result in zip(series, coded, strict=True):
        stats.append(error_stats(grid.values, result.values, bench.peak))
        for part, size in result.parts.items():
            parts[part] = parts.get(part, 0) + size
        if grid.voxel_count:
            limit = np.broadcast_to(np.asarray(result.error_bound, np.float64), grid.values.shape)
            error = np.abs(result.values.astype(np.float64) - grid.values)
            within = within and bool(np.all(error <= limit))
            bound = max(bound, float(limit.max()))
    total = merge(stats, bench.peak)
    frames = len(series)
    decode = None if any(r.decode_seconds is None for r in coded) else sum(r.decode_seconds for r in coded)
    return BenchPoint(point.method, point.setting, sum(parts.values()), parts, bench.voxels, bench.source_bytes,
                      total.psnr, total.rmse, total.max_abs_error, bound, within,
                      1000 * sum(r.encode_seconds for r in coded) / frames,
                      None if decode is None else 1000 * decode / frames)


def _run_neuralvox(benches: dict[str, GridBench], sequence: FrameSequence, quality: str, device: str,
                   progress: bool) -> None:
    """One compress per grid at this quality; a grid's bytes are its whole archive file, headers included."""
    with tempfile.TemporaryDirectory(prefix="neuralvox-bench-") as folder:
        for name, bench in benches.items():
            path = Path(folder) / f"bench-{quality}-{name}.nvox"
            start = time.perf_counter()
            report = compress(sequence, path, grids=[name], quality=quality, device=device, progress=progress)
            encode_seconds = time.perf_counter() - start
            stats, decode_seconds = [], 0.0
            with open_archive(path, device=device) as archive:
                for frame, original in zip(sequence.frames, _read_series(sequence, name), strict=True):
                    number = frame.number if frame.number is not None else 0
                    begin = time.perf_counter()
                    decoded = archive.decode_grid(number, name)
                    decode_seconds += time.perf_counter() - begin
                    _check_voxels(decoded.ijk, original, f"{NEURALVOX} {quality}: {frame.path}")
                    stats.append(error_stats(original.values, decoded.values, bench.peak))
            total = merge(stats, bench.peak)
            frames = len(stats)
            grid_report = report.grids[0]
            parts = {**grid_report.stream_bytes, "header": report.archive_bytes - grid_report.coded_bytes}
            bound = grid_report.bound
            within = None if bound is None else total.max_abs_error <= bound
            bench.points.append(BenchPoint(
                NEURALVOX, quality, report.archive_bytes, parts, bench.voxels, bench.source_bytes, total.psnr,
                total.rmse, total.max_abs_error, bound, within, 1000 * encode_seconds / frames,
                1000 * decode_seconds / frames))


def _neuralvox_note(device: str) -> str:
    return (f"neuralvox on device {resolve_device(device)}: bytes are the whole .nvox file of the grid compressed "
            "alone (topology, values, headers); quality low/medium/high is a 30/40/50 dB target under an error bound; "
            "encode = the whole compress call; decode = decode_grid from an open archive, frames in order.")
