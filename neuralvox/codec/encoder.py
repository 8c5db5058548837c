"""Sequence encoder: .vdb frames to one .nvox archive (exact topology, neural values, per-group shared decoders)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from neuralvox import __version__
from neuralvox.codec.bound_search import GridSurvey, needs_survey, resolve_bound, sample_frames
from neuralvox.codec.chunks import ChunkLimits
from neuralvox.codec.frame_feed import feed_frames
from neuralvox.codec.motion_guess import VELOCITY_NAMES, block_matching_guess, find_velocity, velocity_guess
from neuralvox.codec.quality import QualityTarget, quality_target
from neuralvox.codec.value_jobs import PendingValues, ValueJobs
from neuralvox.codec.values import (
    MOTION_STRIDE,
    EncodedValues,
    LatentState,
    ValueStats,
    encode_values,
    motion_compensated_voxels,
    resolve_device,
)
from neuralvox.container import ArchiveWriter
from neuralvox.grid import VECTOR_TYPES, SparseGrid
from neuralvox.metrics import bits_per_voxel, common_voxels, error_stats, flicker_ratio, merge, value_range
from neuralvox.model.motion import MotionGuess
from neuralvox.parallel import Engine, auto_workers, make_engine
from neuralvox.sequence import FrameSequence, discover
from neuralvox.topology import encode_topology
from neuralvox.vdb import VdbError, VdbFile, grid_bytes, grid_stats, list_grids, read_vdb

ARCHIVE_FORMAT = "neuralvox/1"
DEFAULT_GOP = "auto"
MAX_AUTO_GOP = 32  # an automatic group ends after this many frames (random access decodes up to this many latents)


def payload_key(frame: int, grid: str, stream: str) -> str:
    return f"frames/{frame}/{grid}/{stream}"


@dataclasses.dataclass
class GridReport:
    """What compress achieved on one grid over the sequence."""

    name: str
    frames: int
    voxels: int
    source_bytes: int
    stream_bytes: dict[str, int]
    psnr: float
    rmse: float
    max_abs_error: float
    peak: float
    flicker: float | None
    fit_seconds: float
    bound: float | None = None

    @property
    def coded_bytes(self) -> int:
        return sum(self.stream_bytes.values())

    @property
    def ratio(self) -> float:
        return self.source_bytes / self.coded_bytes if self.coded_bytes else math.inf

    @property
    def bpv(self) -> float:
        return bits_per_voxel(self.coded_bytes, self.voxels)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(ratio=self.ratio, bpv=self.bpv, coded_bytes=self.coded_bytes)
        return out


@dataclasses.dataclass
class CompressReport:
    """Per-grid results and the archive's totals."""

    archive: Path
    archive_bytes: int
    source_file_bytes: int
    grids: list[GridReport]
    skipped: list[str]
    seconds: float

    @property
    def coded_source_bytes(self) -> int:
        return sum(g.source_bytes for g in self.grids)


class _GridTracker:
    """Running statistics of one grid across frames (sequence PSNR, flicker, bytes per stream)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames = 0
        self.voxels = 0
        self.source_bytes = 0
        self.stream_bytes: dict[str, int] = {}
        self.frame_stats = []
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


def _check_finite(grid: SparseGrid, path: Path) -> None:
    bad = int(np.count_nonzero(~np.isfinite(grid.values)))
    if bad:
        raise ValueError(f"{path}: grid '{grid.name}' has {bad} NaN/Inf values; neuralvox codes finite values only")


def _grid_attributes(grid: SparseGrid) -> dict[str, Any]:
    background = list(grid.background) if isinstance(grid.background, tuple) else grid.background
    return {
        "value_type": grid.value_type, "grid_class": grid.grid_class, "transform": grid.transform.tolist(),
        "background": background, "save_half": grid.save_half, "vector_type": grid.vector_type,
        "metadata": _jsonable(grid.metadata), "metadata_types": dict(grid.metadata_types), "voxels": grid.voxel_count,
    }


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in meta.items()}


def _check_gop(gop: int | str) -> int | str:
    if gop == "auto":
        return gop
    try:
        value = int(gop)
    except (TypeError, ValueError):
        raise ValueError(f"--gop must be 'auto' or a number of frames, got {gop!r}") from None
    if value < 1:
        raise ValueError(f"--gop must be at least 1, got {value}")
    return value


def _check_chunk_voxels(chunk_voxels: int) -> int:
    if isinstance(chunk_voxels, bool) or not isinstance(chunk_voxels, int) or chunk_voxels < 1:
        raise ValueError(f"--chunk-voxels must be a positive number of voxels, got {chunk_voxels!r}")
    return chunk_voxels


def _check_coherence(coherence: float) -> float:
    if not 0.0 <= coherence < 1.0:
        raise ValueError(f"--coherence must be at least 0 and below 1, got {coherence}")
    return float(coherence)


def coherent_aim(grid: SparseGrid, previous: tuple[np.ndarray, np.ndarray, np.ndarray],
                 coherence: float) -> np.ndarray | None:
    """What a frame's fit aims at for temporal coherence: its values plus ``coherence`` times the previous frame's
    decoding error at the voxels both frames hold (``previous`` is its voxels, values and decoded values). An error
    that persists from frame to frame does not flicker; None when the frames share no voxel."""
    previous_ijk, previous_values, previous_decoded = previous
    previous_rows, rows = common_voxels(previous_ijk, grid.ijk)
    if len(rows) == 0:
        return None
    aim = np.array(grid.values, dtype=np.float32)
    aim[rows] += coherence * (previous_decoded[previous_rows] - previous_values[previous_rows])
    return aim


def guess_motion(grids: dict[str, SparseGrid], grid: SparseGrid,
                  previous: tuple[np.ndarray, np.ndarray]) -> MotionGuess:
    """Where a predicted fit's motion starts: the frame's velocity grid when it has one, else block matching."""
    current = (grid.ijk, grid.values)
    velocity = find_velocity(grids)
    if velocity is not None:
        return velocity_guess(velocity, grid.transform, previous, current, MOTION_STRIDE)
    return block_matching_guess(previous, current, MOTION_STRIDE)


def read_frame(path: Path, grids: Sequence[str] | None, skip: bool, with_velocity: bool = True) -> VdbFile | None:
    """The grids of one frame to code (those named, when ``grids``, plus, ``with_velocity``, the velocity grid that
    guides the neural base's motion). A named grid the frame lacks or cannot read raises VdbError, or with ``skip``
    warns and gives None."""
    if grids is None:
        return read_vdb(path, None, warn_skipped=False)
    listed = {g.name: g for g in list_grids(path)}
    velocity = [n for n in VELOCITY_NAMES if with_velocity and n in listed and listed[n].value_type in VECTOR_TYPES][:1]
    missing = [n for n in grids if n not in listed]
    vdb = None if missing else read_vdb(path, list(dict.fromkeys([*grids, *velocity])), warn_skipped=False)
    problems = [f"no grid named {n} (it has {', '.join(listed) or 'none'})" for n in missing]
    problems += [f"grid {n} cannot be read: {reason}" for n, reason in (vdb.skipped if vdb else []) if n in grids]
    if not problems:
        return vdb
    if not skip:
        raise VdbError(f"{path}: {'; '.join(problems)} (--skip-bad-frames leaves such frames out)")
    warnings.warn(f"{path}: frame left out: {'; '.join(problems)}", stacklevel=3)
    return None


def _forget_absent(coded: dict[str, Any], *per_grid: dict[str, Any]) -> None:
    """Drop what the next frame would predict from for grids this frame does not hold: a later frame must refer to
    the frame its reference really comes from, not to this one."""
    for state in per_grid:
        for name in [n for n in state if n not in coded]:
            del state[name]


def _best_topology(ijk: np.ndarray, candidates: list[tuple[tuple, np.ndarray]]) -> tuple[bytes, Any]:
    """The shortest topology code: intra, or against one of the already-decodable candidate voxel sets, named by
    (frame, grid) or, for the previous frame moved by this frame's motion, (frame, grid, "motion")."""
    best, best_ref = encode_topology(ijk), None
    for ref_key, ref_ijk in candidates:
        code = encode_topology(ijk, ref_ijk)
        if len(code) < len(best):
            best, best_ref = code, list(ref_key)
    return best, best_ref


class _AutoGroup:
    """When ``--gop auto`` ends a group, after a predicted frame: when it costs as many value bits per active voxel as
    its keyframe, when a grid's PSNR falls more than ``MAX_PSNR_DROP`` below the keyframe's, or when the frame has
    grown past ``MAX_GROWTH`` times the keyframe's active voxels (the keyframe's decoder no longer fits it)."""

    MAX_PSNR_DROP = 1.0
    MAX_GROWTH = 1.5

    def __init__(self) -> None:
        self.key: tuple[float, int, dict[str, float]] = (0.0, 0, {})

    def ends_after(self, entry: dict[str, Any]) -> bool:
        grids = entry["grids"].values()
        voxels = max(1, sum(info["voxels"] for info in grids))
        coded = sum(size for info in grids for stream, size in info["stats"]["bytes"].items() if stream != "topology")
        psnr = {name: info["stats"]["psnr"] for name, info in entry["grids"].items()}
        if entry["key"]:
            self.key = (coded / voxels, voxels, psnr)
            return False
        key_cost, key_voxels, key_psnr = self.key
        dropped = any(math.isfinite(key_psnr.get(name, math.inf)) and value < key_psnr[name] - self.MAX_PSNR_DROP
                      for name, value in psnr.items())
        return coded / voxels >= key_cost or voxels > self.MAX_GROWTH * key_voxels or dropped




def collect_bounded_values(jobs: ValueJobs, pending: PendingValues) -> EncodedValues:
    """The error-bounded coding of one grid, in the shape the sequence loop stores (one ``values`` stream, or one a
    chunk), once the engine has coded its chunks."""
    start = time.perf_counter()
    header, streams, decoded = jobs.collect(pending)
    grid = pending.grid
    error = error_stats(grid.values, decoded, peak=value_range(grid.values))
    stats = ValueStats(error.psnr, error.rmse, error.max_abs_error, time.perf_counter() - start, 0)
    return EncodedValues(header, streams, stats, [], None, decoded)


def _coded_grids(vdb: VdbFile, grids: Sequence[str] | None, path: Path, in_place: bool) -> dict[str, SparseGrid]:
    """The grids of a frame that are coded, checked finite, voxels in canonical order; ``in_place``: the frame holds
    the sorted grids instead of the ones read (one copy of a large frame in memory, not two)."""
    coded = {}
    for name, grid in vdb.grids.items():
        if grids is None or name in grids:
            _check_finite(grid, path)
            coded[name] = grid.sorted()
            if in_place:
                vdb.grids[name] = coded[name]
    return coded


def _value_engine(sequence: FrameSequence, grids: Sequence[str] | None, workers: int | None,
                  ray: str | bool | None) -> Engine:
    """The engine that codes bounded values: ``workers`` processes (default: every core when the sequence is large
    enough to pay for a pool, estimated from its first frame) or Ray."""
    if workers is None and not ray:
        first = [row for row in grid_stats(sequence.frames[0].path) if grids is None or row["name"] in grids]
        workers = auto_workers(len(sequence.frames) * sum(int(row.get("active_voxels", 0)) for row in first))
    return make_engine(workers, ray)


class _GridBounds:
    """The absolute error bound of each grid for a QualityTarget; a survey of the sequence comes first when the bound
    depends on it (a PSNR, or a bound in % of the value range)."""

    def __init__(self, target: QualityTarget, sequence: FrameSequence, grids: Sequence[str] | None,
                 skip_bad_frames: bool, progress: bool) -> None:
        self.target = target
        self.surveys: dict[str, GridSurvey] = {}
        self.bounds: dict[str, float] = {}
        if not needs_survey(target):
            return
        keep = sample_frames(len(sequence.frames)) if target.psnr is not None else set()
        for index, frame in enumerate(tqdm(sequence.frames, desc="survey", unit="frame", disable=not progress)):
            with warnings.catch_warnings():  # the frame loop warns of a frame left out
                warnings.simplefilter("ignore")
                vdb = read_frame(frame.path, grids, skip_bad_frames, with_velocity=False)
            for name, grid in vdb.grids.items() if vdb is not None else ():
                if grids is None or name in grids:
                    _check_finite(grid, frame.path)
                    self.surveys.setdefault(name, GridSurvey(name)).add(grid.sorted(), index in keep)

    def of(self, grid: SparseGrid) -> float:
        if grid.name not in self.bounds:
            survey = self.surveys.get(grid.name)
            if survey is None:
                survey = GridSurvey(grid.name)
                survey.add(grid, keep=False)
            self.bounds[grid.name] = resolve_bound(self.target, survey)
        return self.bounds[grid.name]


def _check_bound_names(target: QualityTarget | None, grids: Sequence[str] | None, first: Path) -> None:
    """A bound may only name grids that are coded."""
    named = target.named_grids() if target is not None else []
    if not named:
        return
    coded = set(grids) if grids is not None else {g.name for g in list_grids(first)}
    unknown = sorted(set(named) - coded)
    if unknown:
        raise ValueError(f"--max-error names {', '.join(unknown)}, not among the coded grids "
                         f"({', '.join(sorted(coded))})")


class _Progress:
    """tqdm bar over frames whose postfix shows the running PSNR and bits per voxel."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, unit="frame", desc="compress", disable=not enabled, dynamic_ncols=True)

    def frame_done(self, trackers: dict[str, _GridTracker]) -> None:
        voxels = sum(t.voxels for t in trackers.values())
        coded = sum(sum(t.stream_bytes.values()) for t in trackers.values())
        psnrs = [s.psnr for t in trackers.values() for s in t.frame_stats[-1:] if math.isfinite(s.psnr)]
        self.bar.set_postfix(psnr=f"{min(psnrs):.1f}dB" if psnrs else "-", bpv=f"{bits_per_voxel(coded, voxels):.3f}")
        self.bar.update(1)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def compress(
    paths: Sequence[str | os.PathLike] | FrameSequence,
    output: str | os.PathLike,
    *,
    grids: Sequence[str] | None = None,
    quality: str = "medium",
    max_error: str | float | None = None,
    psnr: float | None = None,
    base_only: bool = False,
    device: str = "auto",
    gop: int | str = DEFAULT_GOP,
    coherence: float = 0.0,
    force: bool = False,
    progress: bool = True,
    skip_bad_frames: bool = False,
    workers: int | None = None,
    ray: str | bool | None = None,
    chunk_voxels: int | None = None,
) -> CompressReport:
    """Compress a .vdb sequence into one .nvox archive, written atomically; returns the per-grid report.

    Topology is exact. Values are coded under an error bound (``neuralvox.codec.bounded``): ``max_error`` ("0.001",
    "0.1%" of the value range, "0.05vox" for level sets, or per grid "density=0.001,vel=1%"), or the bound found for
    ``psnr`` dB, or for the ``quality`` preset's PSNR (``PRESET_PSNR``). Every decoded voxel is within the bound.

    With ``base_only`` the values are coded by the neural base alone, with no bound, at the ``quality`` preset.
    Frames form groups: the keyframe fits each grid's decoder weights and latents; every later
    frame of the group is predicted: a motion field (first guessed from the frame's velocity grid, or by block
    matching) warps the previous frame's decoded latents and a residual is coded, with the keyframe's decoder.
    ``gop`` "auto" ends a group when prediction stops paying (see ``_AutoGroup``) or after ``MAX_AUTO_GOP`` frames;
    a number fixes the group length (1: every frame a keyframe). ``coherence`` (0 to below 1) makes each frame's fit
    carry that fraction of the previous frame's error (see ``coherent_aim``): less flicker for some PSNR. Each
    frame's topology is coded against the previous frame's (also moved by the frame's motion) or another grid of the
    same frame, whichever is shortest. Every group decodes without the others.

    A frame where a grid named in ``grids`` is missing or unreadable is refused, or with ``skip_bad_frames`` left
    out with a warning (later frames then refer to the last frame stored).

    Bounded values are coded in spatial chunks of at most ``chunk_voxels`` active voxels (default
    ``chunks.CHUNK_VOXELS``; a smaller grid is one chunk) by ``workers`` local processes (default: every core, for a
    sequence large enough to pay for them), or with ``ray`` (True, or a cluster address) on a Ray cluster whose
    workers read the frames from the paths given. The archive does not depend on either. The neural base
    (``base_only``) codes in this process, frame after frame.
    """
    start = time.perf_counter()
    sequence = paths if isinstance(paths, FrameSequence) else discover([str(p) for p in paths])
    gop = _check_gop(gop)
    coherence = _check_coherence(coherence)
    if base_only and (max_error is not None or psnr is not None):
        raise ValueError("--base-only codes with the neural base alone, without a bound: drop --max-error/--psnr")
    if not base_only and (coherence or gop != DEFAULT_GOP):
        raise ValueError("--gop and --coherence shape the neural base's groups of frames: use them with --base-only")
    target = None if base_only else quality_target(quality, max_error, psnr)
    output = Path(output)
    inputs = {f.path.resolve() for f in sequence.frames}
    if output.resolve() in inputs:
        raise ValueError(f"{output}: is one of the input frames; refusing to overwrite an input")
    torch_device = str(resolve_device(device))
    trackers: dict[str, _GridTracker] = {}
    frames_header: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    if grids is not None:
        first = sequence.frames[0].path
        listed = {g.name: g for g in list_grids(first)}
        unknown = sorted(set(grids) - set(listed))
        if unknown:
            raise VdbError(f"{first}: no grid named {', '.join(unknown)}; it has {', '.join(listed) or 'none'}")
    _check_bound_names(target, grids, sequence.frames[0].path)
    limits = ChunkLimits() if chunk_voxels is None else ChunkLimits(max_voxels=_check_chunk_voxels(chunk_voxels))
    with contextlib.ExitStack() as stack:
        archive = stack.enter_context(ArchiveWriter(output, force=force))  # refuses an existing output first
        bounds = None if target is None else _GridBounds(target, sequence, grids, skip_bad_frames, progress)
        jobs = None
        if bounds is not None:
            engine = _value_engine(sequence, grids, workers, ray)
            stack.callback(engine.close)
            jobs = ValueJobs(engine, limits)
        bar = stack.enter_context(_Progress(len(sequence.frames), progress))
        shared: dict[str, tuple[int, EncodedValues]] = {}  # grid -> (frame that sent the weights, its coding)
        previous_ijk: dict[str, np.ndarray] = {}
        previous: dict[str, tuple[LatentState, np.ndarray]] = {}  # grid -> decoded latents and values, last frame
        previous_number = 0
        group_length = 0
        auto_group = _AutoGroup()
        feed = feed_frames(sequence.frames,
                           lambda f: read_frame(f.path, grids, skip_bad_frames, with_velocity=bounds is None),
                           lambda f, vdb: _coded_grids(vdb, grids, f.path, in_place=jobs is not None), jobs,
                           bounds.of if bounds is not None else None)
        for fed in feed:
            frame, vdb = fed.frame, fed.vdb
            if vdb is None:
                bar.frame_done(trackers)
                continue
            number = frame.number if frame.number is not None else 0
            key_frame = group_length == 0
            if key_frame:
                shared.clear()
                previous_ijk.clear()
                previous.clear()
            group_length += 1
            for name, reason in vdb.skipped:
                skipped.setdefault(name, reason)
            sizes = grid_bytes(frame.path)
            entry: dict[str, Any] = {"number": frame.number, "file": frame.path.name, "key": key_frame,
                                     "metadata": _jsonable(vdb.metadata), "metadata_types": vdb.metadata_types,
                                     "grids": {}}
            coded_this_frame: list[tuple[tuple, np.ndarray]] = []
            for name, grid in fed.grids.items():
                fit_start = time.perf_counter()
                owner = shared.get(name)
                shared_decoder = owner[1].decoder if owner else None
                reference, guess = None, None
                if shared_decoder is not None and name in previous:
                    reference, previous_values = previous[name]
                    guess = guess_motion(vdb.grids, grid, (reference.ijk, previous_values))
                tracker = trackers.setdefault(name, _GridTracker(name))
                aim = None
                if coherence and tracker.previous is not None:
                    aim = coherent_aim(grid, tracker.previous, coherence)
                if jobs is not None:
                    encoded = collect_bounded_values(jobs, fed.pending[name])
                else:
                    encoded = encode_values(grid.ijk, grid.values, grid_class=grid.grid_class, quality=quality,
                                            device=torch_device, shared_decoder=shared_decoder, reference=reference,
                                            motion_guess=guess, aim=aim)
                fit_seconds = time.perf_counter() - fit_start
                if encoded.state is not None:
                    previous[name] = (encoded.state, encoded.decoded)
                else:
                    previous.pop(name, None)

                candidates = sorted(coded_this_frame, key=lambda c: abs(len(c[1]) - grid.voxel_count))[:1]
                if name in previous_ijk:
                    candidates.append(((previous_number, name), previous_ijk[name]))
                if reference is not None:
                    moved = motion_compensated_voxels(encoded.header, encoded.streams, reference.ijk)
                    candidates.append(((previous_number, name, "motion"), moved))
                topology, topology_ref = _best_topology(grid.ijk, candidates)
                archive.put(payload_key(number, name, "topology"), topology)
                if owner is None and "weights" in encoded.streams:
                    shared[name] = (number, encoded)
                weights_from = shared[name][0] if name in shared else None
                for stream, data in encoded.streams.items():
                    archive.put(payload_key(number, name, stream), data)
                stream_sizes = {"topology": len(topology), **{s: len(d) for s, d in encoded.streams.items()}}
                tracker.add(grid, encoded.decoded, stream_sizes, sizes.get(name, 0), fit_seconds)
                entry["grids"][name] = {
                    **_grid_attributes(grid), "topology_ref": topology_ref, "values": encoded.header,
                    "weights_from": weights_from, "streams": sorted(encoded.streams),
                    "latents_from": previous_number if reference is not None else None,
                }
                if bounds is None:  # what --gop auto decides on; the bounded codec's totals are in the report
                    entry["grids"][name]["stats"] = {**tracker.frame_stats[-1].to_dict(), "bytes": stream_sizes,
                                                     "fit_seconds": fit_seconds}
                coded_this_frame.append(((number, name), grid.ijk))
                previous_ijk[name] = grid.ijk
            previous_number = number
            _forget_absent(entry["grids"], previous, previous_ijk)
            # bounded values need no groups: the topology references the previous frame up to MAX_AUTO_GOP frames
            ends = auto_group.ends_after(entry) if gop == "auto" and bounds is None else False
            if ends or group_length == (MAX_AUTO_GOP if gop == "auto" else gop):
                group_length = 0
            frames_header.append(entry)
            bar.frame_done(trackers)
        if not frames_header:
            raise VdbError(f"{sequence.pattern}: no frame left to store (each lacks a grid asked for)")
        if skipped:
            listed = "; ".join(f"{n} ({r})" for n, r in skipped.items())
            warnings.warn(f"not stored in the archive: {listed}", stacklevel=2)
        reports = [t.report(None if bounds is None else bounds.bounds.get(t.name)) for t in trackers.values()]
        archive.set_header({
            "format": ARCHIVE_FORMAT, "neuralvox": __version__, "created": datetime.datetime.now().isoformat(),
            "pattern": sequence.pattern.to_dict(), "gaps": sequence.gaps(),
            "codec": {"quality": quality, "gop": gop, "coherence": coherence, "device": torch_device,
                      "target": None if target is None else target.describe(),
                      "bounds": None if bounds is None else bounds.bounds},
            "frames": frames_header, "skipped": skipped, "report": [r.to_dict() for r in reports],
        })
    source_file_bytes = sum(f.path.stat().st_size for f in sequence.frames)
    return CompressReport(output, output.stat().st_size, source_file_bytes, reports, sorted(skipped),
                          time.perf_counter() - start)
