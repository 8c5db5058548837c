"""Sequence encoder: .vdb frames to one .nvox archive (exact topology; values under an error bound, or the neural base).

``compress`` is a thin loop over the frames: ``GroupPolicy`` (codec/groups.py) says where a group of the neural base
starts, ``_SequenceCoder`` codes each grid's values and chooses its topology reference (codec/topology_refs.py), and
``GridTracker`` (codec/report.py) keeps the statistics the report shows. ``codec/decoder.py`` mirrors it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from neuralvox import __version__
from neuralvox.codec.arm import ArmWeights
from neuralvox.codec.arm_fit import fit_context
from neuralvox.codec.base_choice import BaseChoice, check_base
from neuralvox.codec.based import BasedCoding
from neuralvox.codec.bound_search import GridSurvey, needs_survey, resolve_bound, sample_frames
from neuralvox.codec.chunked import COUNTING, ChunkContext, sample_piece
from neuralvox.codec.chunks import ChunkLimits
from neuralvox.codec.frame_feed import FedFrame, feed_frames
from neuralvox.codec.groups import DEFAULT_GOP, GroupPolicy
from neuralvox.codec.header import (
    CONTEXT,
    TOPOLOGY,
    WEIGHTS,
    ArchiveHeader,
    ArchiveSummary,
    BasedHeader,
    CodecSettings,
    FrameEntry,
    FrameStats,
    GridEntry,
    TopologyRef,
    payload_key,
)
from neuralvox.codec.motion_guess import VELOCITY_NAMES, block_matching_guess, find_velocity, velocity_guess
from neuralvox.codec.quality import QualityTarget, quality_target
from neuralvox.codec.report import CompressReport, GridTracker, ProgressBar
from neuralvox.codec.temporal import TimeReference
from neuralvox.codec.time_choice import TIME_MODES, TimeChoice
from neuralvox.codec.topology_refs import best_topology, topology_candidates
from neuralvox.codec.value_jobs import PendingValues, ValueJobs
from neuralvox.codec.values import (
    MOTION_STRIDE,
    EncodedValues,
    LatentState,
    ValueStats,
    encode_values,
    motion_compensated_voxels,
)
from neuralvox.container import ArchiveWriter
from neuralvox.device import resolve_device
from neuralvox.grid import VECTOR_TYPES, SparseGrid
from neuralvox.metrics import common_voxels, error_stats, value_range
from neuralvox.model.motion import MotionGuess
from neuralvox.parallel import Engine, auto_workers, make_engine, release_free_memory
from neuralvox.sequence import Frame, FrameSequence, discover
from neuralvox.vdb import VdbError, VdbFile, grid_bytes, grid_stats, list_grids, read_vdb


def _check_finite(grid: SparseGrid, path: Path) -> None:
    bad = int(np.count_nonzero(~np.isfinite(grid.values)))
    if bad:
        raise ValueError(f"{path}: grid '{grid.name}' has {bad} NaN/Inf values; neuralvox codes finite values only")


def _grid_entry(grid: SparseGrid, **coding: Any) -> GridEntry:
    """A grid's header entry: its attributes as the source holds them, and ``coding`` (references, value header,
    streams, statistics)."""
    return GridEntry(grid.value_type, grid.grid_class, tuple(tuple(row) for row in grid.transform.tolist()),
                     grid.background, grid.save_half, grid.vector_type, _jsonable(grid.metadata),
                     dict(grid.metadata_types), grid.voxel_count, **coding)


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in meta.items()}


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


CONTEXT_MODELS = ("auto", "counting")


def collect_bounded_values(jobs: ValueJobs, pending: PendingValues, context: GridContext | None,
                           fit_seconds: float = 0.0, reference: TimeReference | None = None,
                           time_choice: TimeChoice | None = None) -> EncodedValues:
    """The error-bounded coding of one grid, in the shape the sequence loop stores (one ``values`` stream, or one a
    chunk, and the neural context model's ``context`` stream in the frame that sends it), once the engine has coded
    its chunks (a grid deferred for the time mode is coded now, predicted from ``reference`` where that pays, and
    ``time_choice`` learns what that saved). Its seconds are the chunks' coding time plus ``fit_seconds`` (the context
    model's fit, if any)."""
    collected = jobs.collect(pending, reference)
    release_free_memory()  # before the topology: what the chunks' results passed through is not kept
    grid = pending.grid
    error = error_stats(grid.values, collected.decoded, peak=value_range(grid.values))
    stats = ValueStats(error.psnr, error.rmse, error.max_abs_error, collected.seconds + fit_seconds, 0)
    streams = collected.streams
    if time_choice is not None and collected.time_saving is not None:
        time_choice.record(grid.name, collected.time_saving, sum(len(data) for data in streams.values()))
    if context is not None and context.send:
        streams[CONTEXT] = context.weights.to_bytes()
    return EncodedValues(collected.header, streams, stats, [], None, collected.decoded)


def _coded_grids(vdb: VdbFile, grids: Sequence[str] | None, path: Path, in_place: bool) -> dict[str, SparseGrid]:
    """The grids of a frame that are coded, checked finite, voxels in canonical order; ``in_place``: the frame holds
    the sorted grids instead of the ones read (one copy of a large frame in memory, not two)."""
    coded = {}
    for name in [n for n in vdb.grids if grids is None or n in grids]:
        _check_finite(vdb.grids[name], path)
        coded[name] = vdb.grids[name].sorted()
        if in_place:
            vdb.grids[name] = coded[name]
            release_free_memory()  # the grid as read
    return coded


def _value_engine(sequence: FrameSequence, grids: Sequence[str] | None, workers: int | None,
                  ray: str | bool | None) -> Engine:
    """The engine that codes bounded values: ``workers`` processes (default: every core when the sequence is large
    enough to pay for a pool, estimated from its first frame) or Ray."""
    if workers is None and not ray:
        first = [row for row in grid_stats(sequence.frames[0].path) if grids is None or row["name"] in grids]
        workers = auto_workers(len(sequence.frames) * sum(int(row.get("active_voxels", 0)) for row in first))
    return make_engine(workers, ray)


def _over_base(grid: SparseGrid, based: BasedCoding, alone: EncodedValues, seconds: float) -> EncodedValues:
    """A grid coded over the neural base in the shape the sequence loop stores (keeping the context model's stream
    where this frame sends it); its seconds are the bounded coding's and the base's."""
    streams = dict(based.streams)
    if CONTEXT in alone.streams:
        streams[CONTEXT] = alone.streams[CONTEXT]
    error = error_stats(grid.values, based.decoded, peak=value_range(grid.values))
    stats = ValueStats(error.psnr, error.rmse, error.max_abs_error, alone.stats.fit_seconds + seconds, 0)
    return EncodedValues(based.header, streams, stats, [], None, based.decoded)


@dataclasses.dataclass(frozen=True)
class GridContext:
    """A grid's neural context model, the frame whose ``context`` stream holds it, and whether this frame sends it."""

    weights: ArmWeights
    frame: int
    send: bool


class _GridBounds:
    """The absolute error bound of each grid for a QualityTarget, and its neural context model where one pays; a
    survey of the sequence comes first when the bound depends on it (a PSNR, or a bound in % of the value range)."""

    def __init__(self, target: QualityTarget, sequence: FrameSequence, grids: Sequence[str] | None,
                 skip_bad_frames: bool, progress: bool, context_model: str = "auto", time_mode: str = "auto") -> None:
        self.target = target
        self.time = TimeChoice(time_mode)
        self.frames = len(sequence.frames)
        self.context_model = context_model
        self.surveys: dict[str, GridSurvey] = {}
        self.bounds: dict[str, float] = {}
        self.contexts: dict[str, tuple[int, ArmWeights] | None] = {}
        self.fit_seconds: dict[str, float] = {}  # a context model's fit, until the report takes it
        keep = sample_frames(self.frames) if target.psnr is not None or context_model == "auto" else set()
        if needs_survey(target):
            self._survey(sequence.frames, grids, skip_bad_frames, progress, keep)
        elif keep:  # an absolute bound: only the context model's sample frames are read ahead
            self._survey([sequence.frames[i] for i in sorted(keep)], grids, skip_bad_frames, progress, None)

    def _survey(self, frames: Sequence[Any], grids: Sequence[str] | None, skip_bad_frames: bool, progress: bool,
                keep: set[int] | None) -> None:
        """Read ``frames``: each grid's value range, and the frames at indices ``keep`` (None: all) as samples."""
        for index, frame in enumerate(tqdm(frames, desc="survey", unit="frame", disable=not progress)):
            with warnings.catch_warnings():  # the frame loop warns of a frame left out
                warnings.simplefilter("ignore")
                vdb = read_frame(frame.path, grids, skip_bad_frames, with_velocity=False)
            for name, grid in vdb.grids.items() if vdb is not None else ():
                if grids is None or name in grids:
                    _check_finite(grid, frame.path)
                    self.surveys.setdefault(name, GridSurvey(name)).add(grid.sorted(), keep is None or index in keep)

    def of(self, grid: SparseGrid) -> float:
        if grid.name not in self.bounds:
            survey = self.surveys.get(grid.name) if needs_survey(self.target) else None
            if survey is None:
                survey = GridSurvey(grid.name)
                survey.add(grid, keep=False)
            self.bounds[grid.name] = resolve_bound(self.target, survey)
        return self.bounds[grid.name]

    def context(self, grid: SparseGrid, number: int) -> GridContext | None:
        """The grid's context model: fitted on the survey's sample frames (or this first frame) when the grid is
        first met, and kept where its saving over the sequence exceeds its own size."""
        if self.context_model == "counting":
            return None
        if grid.name not in self.contexts:
            survey = self.surveys.get(grid.name)
            samples = survey.pieces if survey is not None and survey.pieces else [sample_piece(grid)]
            start = time.perf_counter()
            fit = fit_context(samples, self.of(grid), self.frames)
            self.fit_seconds[grid.name] = time.perf_counter() - start
            release_free_memory()  # the fit's features and passes, before the chunks are split and sent
            self.contexts[grid.name] = None if fit is None else (number, fit.weights)
        chosen = self.contexts[grid.name]
        return None if chosen is None else GridContext(chosen[1], chosen[0], chosen[0] == number)

    def submit(self, jobs: ValueJobs, frame: Frame, grid: SparseGrid) -> PendingValues:
        """Start coding a grid of ``frame`` on the engine, under its bound and context model (fitted here first, so
        every chunk and every engine codes with the same one)."""
        number = frame.number if frame.number is not None else 0
        context = self.context(grid, number)
        chunk_context = COUNTING if context is None else ChunkContext(context.weights, context.frame)
        return jobs.submit(frame.path, grid, self.of(grid), chunk_context, defer=self.time.wanted(grid.name))


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


@dataclasses.dataclass(frozen=True)
class _Options:
    """What every frame is coded with."""

    grids: Sequence[str] | None
    quality: str
    device: str
    coherence: float
    bounds: _GridBounds | None  # None: the neural base alone
    jobs: ValueJobs | None  # the engine's bounded coding (with ``bounds``)
    base: BaseChoice | None = None  # with ``bounds``: whether a grid is coded over the neural base


@dataclasses.dataclass
class _Reference:
    """What a grid of the previous frame passes on to the same grid of the next: its frame number and voxels, and
    for the neural base its decoded latents and values."""

    number: int
    ijk: np.ndarray
    state: LatentState | None
    decoded: np.ndarray
    time_reference: bool = True  # bounded values a later frame's time mode may predict from (not over a base)


class _SequenceCoder:
    """Codes frame after frame into ``archive``, keeping what later frames of the group refer to."""

    def __init__(self, archive: ArchiveWriter, options: _Options, trackers: dict[str, GridTracker]) -> None:
        self.archive = archive
        self.options = options
        self.trackers = trackers
        self.weights: dict[str, tuple[int, EncodedValues]] = {}  # grid -> (frame that sent the weights, its coding)
        self.previous: dict[str, _Reference] = {}
        self.pending: dict[str, PendingValues] = {}  # the bounded grids of the frame being coded, on the engine

    def start_group(self) -> None:
        self.weights.clear()
        self.previous.clear()
        if self.options.base is not None:
            self.options.base.start_group()

    def code_frame(self, fed: FedFrame, vdb: VdbFile, key: bool) -> FrameEntry:
        """Code the grids ``fed`` prepared (checked finite, voxels in canonical order) of one frame."""
        frame = fed.frame
        number = frame.number if frame.number is not None else 0
        self.pending = fed.pending
        sizes = grid_bytes(frame.path)
        coded: dict[str, GridEntry] = {}
        this_frame: list[tuple[TopologyRef, np.ndarray]] = []
        current: dict[str, _Reference] = {}
        for name, grid in fed.grids.items():
            coded[name], current[name] = self.code_grid(number, grid, vdb.grids, this_frame, sizes.get(name, 0))
            this_frame.append((TopologyRef(number, name), grid.ijk))
        # a later frame refers to the frame its reference really comes from: grids absent here are forgotten
        self.previous = current
        return FrameEntry(frame.number, frame.path.name, key, _jsonable(vdb.metadata), vdb.metadata_types, coded)

    def code_grid(self, number: int, grid: SparseGrid, frame_grids: dict[str, SparseGrid],
                  this_frame: list[tuple[TopologyRef, np.ndarray]], source_bytes: int) -> tuple[GridEntry, _Reference]:
        """Code one grid's values and topology; its header entry and what the next frame refers to."""
        name = grid.name
        start = time.perf_counter()
        owner = self.weights.get(name)
        previous = self.previous.get(name)
        reference = previous.state if previous is not None and owner is not None else None
        encoded = self._values(number, grid, frame_grids, owner, previous if reference is not None else None)
        # bounded values were coded ahead (maybe on other workers): their stats say how long that took
        fit_seconds = encoded.stats.fit_seconds if self.options.bounds is not None else time.perf_counter() - start
        topology, topology_ref = best_topology(grid.ijk, self._candidates(grid, encoded, this_frame, previous,
                                                                          reference))
        self.archive.put(payload_key(number, name, TOPOLOGY), topology)
        if owner is None and WEIGHTS in encoded.streams and self.options.bounds is None:
            self.weights[name] = (number, encoded)
        for stream, data in encoded.streams.items():
            self.archive.put(payload_key(number, name, stream), data)
        stream_sizes = {TOPOLOGY: len(topology), **{s: len(d) for s, d in encoded.streams.items()}}
        tracker = self.trackers.setdefault(name, GridTracker(name))
        tracker.add(grid, encoded.decoded, stream_sizes, source_bytes, fit_seconds)
        stats = None
        if self.options.bounds is None:  # what --gop auto decides on; the bounded codec's totals are in the report
            stats = FrameStats(tracker.frame_stats[-1], stream_sizes, fit_seconds)
        entry = _grid_entry(grid, topology_ref=topology_ref, values=encoded.header,
                            weights_from=self.weights[name][0] if name in self.weights else None,
                            streams=tuple(sorted(encoded.streams)),
                            latents_from=previous.number if reference is not None else None, stats=stats)
        return entry, _Reference(number, grid.ijk, encoded.state, encoded.decoded,
                                 not isinstance(encoded.header, BasedHeader))

    def _values(self, number: int, grid: SparseGrid, frame_grids: dict[str, SparseGrid],
                owner: tuple[int, EncodedValues] | None, previous: _Reference | None) -> EncodedValues:
        """The grid's values coded under its bound, or by the neural base (predicted from ``previous`` when given)."""
        options = self.options
        if options.bounds is not None:
            bounds = options.bounds
            last = self.previous.get(grid.name)
            reference = None
            if last is not None and last.time_reference:
                reference = TimeReference(last.number, last.ijk, last.decoded)
            context = bounds.context(grid, number)
            alone = collect_bounded_values(options.jobs, self.pending.pop(grid.name), context,
                                           bounds.fit_seconds.pop(grid.name, 0.0), reference, bounds.time)
            if options.base is None:
                return alone
            chunk_context = COUNTING if context is None else ChunkContext(context.weights, context.frame)
            based, seconds = options.base.code(grid, alone, bounds.of(grid), chunk_context)
            if based is None:
                alone.stats.fit_seconds += seconds  # a trial of the base counts in the grid's coding time
                return alone
            return _over_base(grid, based, alone, seconds)
        guess = None
        if previous is not None:
            guess = guess_motion(frame_grids, grid, (previous.state.ijk, previous.decoded))
        tracker = self.trackers.get(grid.name)
        aim = None
        if options.coherence and tracker is not None and tracker.previous is not None:
            aim = coherent_aim(grid, tracker.previous, options.coherence)
        return encode_values(grid.ijk, grid.values, grid_class=grid.grid_class, quality=options.quality,
                             device=options.device, shared_decoder=owner[1].decoder if owner else None,
                             reference=None if previous is None else previous.state, motion_guess=guess, aim=aim,
                             grid_name=grid.name)

    @staticmethod
    def _candidates(grid: SparseGrid, encoded: EncodedValues, this_frame: list[tuple[TopologyRef, np.ndarray]],
                    previous: _Reference | None,
                    reference: LatentState | None) -> list[tuple[TopologyRef, np.ndarray]]:
        same = None if previous is None else (TopologyRef(previous.number, grid.name), previous.ijk)
        moved = None
        if reference is not None:
            moved = (TopologyRef(previous.number, grid.name, moved=True),
                     motion_compensated_voxels(encoded.header, encoded.streams, reference.ijk))
        return topology_candidates(grid.ijk, this_frame, same, moved)


def _check_request(sequence: FrameSequence, output: Path, grids: Sequence[str] | None, base_only: bool,
                   max_error: str | float | None, psnr: float | None, gop: int | str, coherence: float) -> None:
    """Refuse what cannot be done before anything is written."""
    if base_only and (max_error is not None or psnr is not None):
        raise ValueError("--base-only codes with the neural base alone, without a bound: drop --max-error/--psnr")
    if not base_only and (coherence or gop != DEFAULT_GOP):
        raise ValueError("--gop and --coherence shape the neural base's groups of frames: use them with --base-only")
    if output.resolve() in {f.path.resolve() for f in sequence.frames}:
        raise ValueError(f"{output}: is one of the input frames; refusing to overwrite an input")
    if grids is not None:
        first = sequence.frames[0].path
        listed = {g.name: g for g in list_grids(first)}
        unknown = sorted(set(grids) - set(listed))
        if unknown:
            raise VdbError(f"{first}: no grid named {', '.join(unknown)}; it has {', '.join(listed) or 'none'}")


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
    context_model: str = "auto",
    workers: int | None = None,
    ray: str | bool | None = None,
    chunk_voxels: int | None = None,
    time_mode: str = "auto",
    base: str | None = None,
) -> CompressReport:
    """Compress a .vdb sequence into one .nvox archive, written atomically; returns the per-grid report.

    Topology is exact. Values are coded under an error bound (``neuralvox.codec.bounded``): ``max_error`` ("0.001",
    "0.1%" of the value range, "0.05vox" for level sets, or per grid "density=0.001,vel=1%"), or the bound found for
    ``psnr`` dB, or for the ``quality`` preset's PSNR (``PRESET_PSNR``). Every decoded voxel is within the bound.

    With ``base_only`` the values are coded by the neural base alone, with no bound, at the ``quality`` preset.
    Frames form groups: the keyframe fits each grid's decoder weights and latents; every later
    frame of the group is predicted: a motion field (first guessed from the frame's velocity grid, or by block
    matching) warps the previous frame's decoded latents and a residual is coded, with the keyframe's decoder.
    ``gop`` "auto" ends a group when prediction stops paying (see ``AutoGroup``) or after ``MAX_AUTO_GOP`` frames;
    a number fixes the group length (1: every frame a keyframe). ``coherence`` (0 to below 1) makes each frame's fit
    carry that fraction of the previous frame's error (see ``coherent_aim``): less flicker for some PSNR. Each
    frame's topology is coded against the previous frame's (also moved by the frame's motion) or another grid of the
    same frame, whichever is shortest. Every group decodes without the others.

    The codes are range coded under a per-sequence neural context model (``codec/arm.py``) where, fitted on sample
    frames, it saves more than its own size; else (or with ``context_model="counting"``) under counting contexts.
    With ``time_mode`` "auto", each frame's leaves may be predicted from the previous decoded frame of the group,
    moved by a per-leaf motion (``codec/temporal.py``), where that is shorter (see ``TimeChoice``); "off" never.
    ``base`` ("off" by default, "auto", "on") codes a grid's values as the neural base plus the residual under the
    bound (``codec/based.py``) where that is shorter, or always (see ``BaseChoice``); not with ``base_only``.

    A frame where a grid named in ``grids`` is missing or unreadable is refused, or with ``skip_bad_frames`` left
    out with a warning (later frames then refer to the last frame stored).

    Bounded values are coded in spatial chunks of at most ``chunk_voxels`` active voxels (default
    ``chunks.CHUNK_VOXELS``; a smaller grid is one chunk) by ``workers`` local processes (default: every core, for a
    sequence large enough to pay for them), or with ``ray`` (True, or a cluster address) on a Ray cluster whose
    workers read the frames from the paths given. Every chunk of a grid uses the grid's one context model, fitted in
    this process, so the archive depends on neither. The neural base (``base_only``) codes in this process.
    """
    start = time.perf_counter()
    sequence = paths if isinstance(paths, FrameSequence) else discover([str(p) for p in paths])
    policy = GroupPolicy(gop, grouped=base_only)
    coherence = _check_coherence(coherence)
    output = Path(output)
    _check_request(sequence, output, grids, base_only, max_error, psnr, policy.gop, coherence)
    target = None if base_only else quality_target(quality, max_error, psnr)
    base = check_base(base, base_only)
    if context_model not in CONTEXT_MODELS:
        raise ValueError(f"--context-model must be one of {', '.join(CONTEXT_MODELS)}, got {context_model!r}")
    if time_mode not in TIME_MODES:
        raise ValueError(f"--time-mode must be one of {', '.join(TIME_MODES)}, got {time_mode!r}")
    _check_bound_names(target, grids, sequence.frames[0].path)
    limits = ChunkLimits() if chunk_voxels is None else ChunkLimits(max_voxels=_check_chunk_voxels(chunk_voxels))
    torch_device = str(resolve_device(device))
    trackers: dict[str, GridTracker] = {}
    frames: list[FrameEntry] = []
    skipped: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        archive = stack.enter_context(ArchiveWriter(output, force=force))  # refuses an existing output first
        bounds = None if target is None else _GridBounds(target, sequence, grids, skip_bad_frames, progress,
                                                         context_model, time_mode)
        jobs = None
        if bounds is not None:
            jobs = ValueJobs(stack.enter_context(contextlib.closing(_value_engine(sequence, grids, workers, ray))),
                             limits)
        bar = stack.enter_context(ProgressBar(len(sequence.frames), progress))
        base_choice = None if bounds is None or base == "off" else BaseChoice(base, torch_device)
        coder = _SequenceCoder(archive, _Options(grids, quality, torch_device, coherence, bounds, jobs, base_choice),
                               trackers)
        feed = feed_frames(sequence.frames,
                           lambda f: read_frame(f.path, grids, skip_bad_frames, with_velocity=bounds is None),
                           lambda f, vdb: _coded_grids(vdb, grids, f.path, in_place=jobs is not None), jobs,
                           lambda f, grid: bounds.submit(jobs, f, grid))
        for fed in feed:
            vdb = fed.vdb
            if vdb is not None:
                if policy.starts_group:
                    coder.start_group()
                entry = coder.code_frame(fed, vdb, key=policy.starts_group)
                policy.frame_coded(entry)
                frames.append(entry)
                for name, reason in vdb.skipped:
                    skipped.setdefault(name, reason)
            bar.frame_done(trackers)
        reports = _finish(sequence, frames, skipped, trackers, bounds)
        settings = CodecSettings(quality, policy.gop, coherence, torch_device,
                                 None if target is None else target.describe(),
                                 None if bounds is None else bounds.bounds, None if base == "off" else base)
        created = datetime.datetime.now().isoformat(timespec="seconds")
        summary = ArchiveSummary(__version__, created, settings, skipped, tuple(reports))
        header = ArchiveHeader(sequence.pattern, tuple(sequence.gaps()), tuple(f.without_stats() for f in frames),
                               summary)
        archive.set_header(header.to_json())
    source_file_bytes = sum(f.path.stat().st_size for f in sequence.frames)
    return CompressReport(output, output.stat().st_size, source_file_bytes, reports, sorted(skipped),
                          time.perf_counter() - start, {name: t.frame_stats for name, t in trackers.items()})


def _finish(sequence: FrameSequence, frames: list[FrameEntry], skipped: dict[str, str],
            trackers: dict[str, GridTracker], bounds: _GridBounds | None) -> list:
    """The per-grid reports, once every frame is coded; refuses an archive without frames, warns of skipped grids."""
    if not frames:
        raise VdbError(f"{sequence.pattern}: no frame left to store (each lacks a grid asked for)")
    if skipped:
        listed = "; ".join(f"{n} ({r})" for n, r in skipped.items())
        warnings.warn(f"not stored in the archive: {listed}", stacklevel=3)
    return [t.report(None if bounds is None else bounds.bounds.get(t.name)) for t in trackers.values()]
