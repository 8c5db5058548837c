"""Error-bounded value codec: every decoded voxel within a stated bound of the original, in few bits.

Each channel of a grid is visited coarse to fine (``interpolation.plan_levels``); each voxel is predicted from the
values already decoded around it, the prediction error is quantized in steps of twice the bound (closed loop: the
encoder predicts from what the decoder will have), and the codes are range coded under a context model
(``context_coder``) whose context is the pass's level, how many neighbours the interpolation had, and the
neighbours' spread in units of the step. A voxel whose code would be too large, or whose float32 result would miss
the bound by rounding, is stored exactly. The arithmetic is IEEE float64 elementwise (no transcendental functions),
so the decode is bit-identical on every machine and the bound holds with no margin.

Float rules of the decoder's path (the numpy reference and the compiled loops of ``neuralvox._bounded`` alike): every
value the predictor reads is a float32 widened to float64; each float64 operation is one IEEE-754 round-to-nearest
operation, in the order the numpy reference writes it (the C++ is built with ``-ffp-contract=off`` and without
``-ffast-math``: no fused multiply-add, no reassociation); comparisons against threshold tables are exact; the neural
context model's MLP sums integers below 2**53 (exact in float64 in any order, so its AVX2 clone gives the same
integers); ``rint`` rounds half to even. tests/test_bounded_kernels.py checks both paths write and read the same bits.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from neuralvox.codec import arm
from neuralvox.codec.arm import ArmWeights
from neuralvox.codec.context_coder import MAX_CODE, CodeDecoder, ContextStreamError, encode_codes
from neuralvox.codec.interpolation import (
    MAX_LEVEL,
    MAX_OPTIONS,
    Canvas,
    LevelPlan,
    Pass,
    Prediction,
    block_region,
    plan_levels,
    predict,
)
from neuralvox.codec.kernels import compiled
from neuralvox.codec.temporal import (
    Leaves,
    ReferenceBox,
    TimeReference,
    choose_leaves,
    decode_layer,
    encode_layer,
    temporal_part,
)
from neuralvox.grid import SparseGrid

FORMAT = "neuralvox-bounded/3"
# /1: no context model field (the counting model always); /2: no time mode (``time_frame`` null)
FORMATS = ("neuralvox-bounded/1", "neuralvox-bounded/2", FORMAT)
_SPREAD_BUCKETS = 16
_LEVEL_CLASSES = 2
# spread bucket thresholds, in steps: 2**(i/2) - 1 for i = 1 .. 15, by repeated multiplication of one literal
_SQRT2 = 1.4142135623730951
_THRESHOLDS = np.cumprod(np.full(_SPREAD_BUCKETS - 1, _SQRT2)) - 1.0
_LENGTH = struct.Struct("<I")
_CHOICE_SAMPLE = 1 << 15  # voxels of a pass that the choice of prediction looks at
SHRINK = (1.5, 4.0)


@dataclasses.dataclass(frozen=True)
class BoundedHeader:
    """What decoding a grid's bounded values needs besides the topology and the stream."""

    voxels: int
    bounds: tuple[float, ...]  # per channel, in the grid's units
    background: tuple[float, ...]
    inactive_known: bool
    choices: tuple[tuple[int, ...], ...]  # per channel, per pass: which of ``predict``'s options
    shrink: tuple[float, float] = (1.0, 1.0)  # (alpha, beta) of ``pass_bound``
    max_level: int = MAX_LEVEL
    context_frame: int | None = None  # the frame whose ``context`` stream holds the neural context model, if any
    time_frame: int | None = None  # the frame whose decoded grid the time mode predicts leaves from, if any

    @property
    def channels(self) -> int:
        return len(self.bounds)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "voxels": self.voxels, "channels": self.channels, "bounds": list(self.bounds),
                "background": list(self.background), "inactive_known": self.inactive_known,
                "choices": [list(c) for c in self.choices], "shrink": list(self.shrink), "max_level": self.max_level,
                "context_frame": self.context_frame, "time_frame": self.time_frame}

    @classmethod
    def from_dict(cls, header: dict) -> BoundedHeader:
        if header.get("format") not in FORMATS:
            raise ValueError(f"value header format {header.get('format')!r} is not one of {FORMATS}")
        choices = tuple(tuple(int(c) for c in channel) for channel in header["choices"])
        if any(not 0 <= c < MAX_OPTIONS for channel in choices for c in channel):
            raise ValueError(f"value header names a prediction outside 0..{MAX_OPTIONS - 1}")
        return cls(int(header["voxels"]), tuple(float(b) for b in header["bounds"]),
                   tuple(float(b) for b in header["background"]), bool(header["inactive_known"]), choices,
                   (float(header["shrink"][0]), float(header["shrink"][1])), int(header["max_level"]),
                   header.get("context_frame"), header.get("time_frame"))


@dataclasses.dataclass(frozen=True)
class Seed:
    """Decoded values known before the passes (a chunk's share of a grid's coarse layer): voxels ``ijk`` (M, 3) and
    their values (M,) or (M, C). Those inside the coded voxels' box are stored first; the coded voxels whose every
    coordinate is a multiple of ``2**level`` must be among them and are not coded again."""

    ijk: np.ndarray
    values: np.ndarray
    level: int


@dataclasses.dataclass(frozen=True)
class _Known:
    """What a coding starts from: box cells with their decoded (K, C) values, and which of the coded rows they hold
    (with their (T, C) values)."""

    cells: np.ndarray
    cell_values: np.ndarray
    rows: np.ndarray
    row_values: np.ndarray


def _seeded(plan: LevelPlan, ijk: np.ndarray, seed: Seed, channels: int) -> _Known:
    """The seed's voxels inside the plan's box, and the rows of ``ijk`` it holds (all of those on its lattice)."""
    seed_ijk = np.asarray(seed.ijk, np.int64).reshape(-1, 3)
    values = np.asarray(seed.values, np.float32).reshape(len(seed_ijk), channels)
    local = seed_ijk - np.array(plan.corner, np.int64)
    inside = np.all((local >= 0) & (local < np.array(plan.shape, np.int64)), axis=1)
    local, values = local[inside], values[inside]
    cells = (local[:, 0] * plan.shape[1] + local[:, 1]) * plan.shape[2] + local[:, 2]
    order = np.argsort(cells, kind="stable")
    cells, values = cells[order], values[order]
    if len(cells) > 1 and np.any(cells[1:] == cells[:-1]):
        raise ValueError("the seed holds a voxel twice")
    mask = (1 << seed.level) - 1
    rows = np.flatnonzero(np.all((np.asarray(ijk).reshape(-1, 3) & mask) == 0, axis=1))
    found = np.searchsorted(cells, plan.flat[rows])
    if len(rows) and (found.max() >= len(cells) or np.any(cells[np.minimum(found, len(cells) - 1)] != plan.flat[rows])):
        raise ValueError("the seed lacks voxels of its lattice that the coded voxels hold")
    return _Known(cells, values, rows, values[found])


@dataclasses.dataclass(frozen=True)
class BoundedCode:
    """A grid's values coded under a bound: the header, the one stream, and the values exactly as decoded."""

    header: BoundedHeader
    stream: bytes
    decoded: np.ndarray
    exact_count: int
    spatial_size: int | None = None  # with a time reference: the stream's length had the time mode been off


def encode_bounded(ijk: np.ndarray, values: np.ndarray, bounds: float | tuple[float, ...], *,
                   background: float | tuple[float, ...] = 0.0, inactive_known: bool = True,
                   shrink: tuple[float, float] = SHRINK, context: ArmWeights | None = None,
                   record: list[TrainingPass] | None = None, reference: TimeReference | None = None,
                   known_blocks: int | None = None, seed: Seed | None = None, max_level: int = MAX_LEVEL
                   ) -> BoundedCode:
    """Code ``values`` (N,) or (N, C) float32 at voxels ``ijk`` (N, 3) so that every decoded value is within
    ``bounds`` (one per channel, or one for all) of the original. ``inactive_known``: inactive voxels hold
    ``background`` (a fog volume); otherwise they are unknown to the predictor (a level set). ``context``: the neural
    context model (else the counting one); ``record`` collects each pass's context features and codes (to train one).
    ``reference``: the same grid of an earlier decoded frame; leaves are predicted from it, moved (the time mode,
    ``neuralvox.codec.temporal``), where that is estimated cheaper, and the coding is kept if it is shorter.
    ``known_blocks``: inactive voxels are known only inside the blocks of ``2**known_blocks`` voxels a side that hold
    one of ``ijk`` (a chunk of a larger grid, whose other blocks belong to other chunks). ``seed``: values decoded
    before (a chunk's share of its grid's coarse layer), its voxels not coded here. ``max_level``: the anchors'
    spacing is ``2**max_level``.
    """
    values = np.asarray(values, dtype=np.float32)
    columns = values.reshape(len(values), 1 if values.ndim == 1 else values.shape[1])
    channels = columns.shape[1]
    setup = _Setup(_per_channel(bounds, channels, "bound"), _per_channel(background, channels, "background"),
                   inactive_known, shrink, context)
    for bound in setup.bounds:
        if not (bound > 0 and np.isfinite(bound)):
            raise ValueError(f"error bound must be a positive finite number, got {bound}")
    if seed is not None and reference is not None:
        raise ValueError("a seeded coding is never predicted from another frame")
    plan = plan_levels(ijk, max_level)
    region = block_region(plan, ijk, known_blocks) if known_blocks is not None and inactive_known else None
    known = None if seed is None else _seeded(plan, ijk, seed, channels)
    spatial = _code_channels(plan if known is None else _without(plan, known.rows), columns, setup, record=record,
                             known=known, known_region=region)
    header = BoundedHeader(len(columns), tuple(setup.bounds), tuple(setup.backgrounds), inactive_known,
                           spatial.choices, shrink, max_level)
    code = BoundedCode(header, spatial.stream, spatial.decoded.reshape(values.shape), spatial.exact_count)
    if reference is None or record is not None:
        return code
    mixed = _encode_temporal(plan, ijk, columns, setup, reference, spatial.codes) if len(columns) else None
    if mixed is None or len(mixed.stream) >= len(spatial.stream):
        return dataclasses.replace(code, spatial_size=len(spatial.stream))
    header = dataclasses.replace(header, choices=mixed.choices, time_frame=reference.frame)
    return BoundedCode(header, mixed.stream, mixed.decoded.reshape(values.shape), mixed.exact_count,
                       len(spatial.stream))


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What every channel of a grid is coded with."""

    bounds: list[float]
    backgrounds: list[float]
    inactive_known: bool
    shrink: tuple[float, float]
    context: ArmWeights | None

    @property
    def steps(self) -> list[float]:
        """The quantization step of each channel's temporal voxels (its level-0 step)."""
        return [2.0 * pass_bound(bound, 0, self.shrink) for bound in self.bounds]


@dataclasses.dataclass(frozen=True)
class _Coded:
    """The channels of a grid coded by the spatial passes (after any temporal voxels)."""

    stream: bytes
    choices: tuple[tuple[int, ...], ...]
    decoded: np.ndarray  # (N, C)
    exact_count: int
    codes: np.ndarray  # (N, C) each voxel's code (ESCAPE: stored exactly; temporal voxels: 0)


def _code_channels(plan: LevelPlan, columns: np.ndarray, setup: _Setup, *, record: list[TrainingPass] | None = None,
                   known: _Known | None = None, prefix: bytes = b"", known_region: np.ndarray | None = None) -> _Coded:
    """The spatial passes of every channel; ``known``: the decoded values stored before them; ``known_region``
    (bool over the plan's box, None: all of it): where inactive voxels are known (the last channel's canvas takes
    it over)."""
    decoded = np.empty_like(columns)
    codes = np.zeros(columns.shape, np.int64)
    parts, choices, exact_count = [prefix], [], 0
    for channel in range(columns.shape[1]):
        coder = _ChannelCoder(plan, setup.bounds[channel], setup.backgrounds[channel], setup.inactive_known,
                              setup.shrink, setup.context, record is not None,
                              _region_for(known_region, channel, columns.shape[1]))
        if known is not None:
            coder.canvas.store(known.cells, known.cell_values[:, channel])
        data, chosen, exact = coder.encode(columns[:, channel], decoded[:, channel], codes[:, channel], record)
        parts.append(data)
        choices.append(chosen)
        exact_count += exact
    if known is not None:
        decoded[known.rows] = known.row_values
    return _Coded(b"".join(parts), tuple(choices), decoded, exact_count, codes)


def _encode_temporal(plan: LevelPlan, ijk: np.ndarray, columns: np.ndarray, setup: _Setup, reference: TimeReference,
                     spatial_codes: np.ndarray) -> _Coded | None:
    """The coding with the time mode: the leaves ``choose_leaves`` picks coded from the moved reference first, then
    the spatial passes over the rest; None when no leaf is picked."""
    if reference.channels != columns.shape[1]:
        raise ValueError("the time reference has another number of channels than the grid")
    box = ReferenceBox.build(ijk, reference)
    leaves = Leaves.of_voxels(ijk)
    leaf_motion = choose_leaves(box, leaves, columns, setup.steps, spatial_codes)
    part = temporal_part(box, leaves, leaf_motion)
    if len(part.rows) == 0:
        return None
    layer, exact, decoded, exact_count = encode_layer(box, part, columns, setup.steps)
    coded = _code_channels(_without(plan, part.rows), columns, setup,
                           known=_Known(plan.flat[part.rows], decoded, part.rows, decoded),
                           prefix=_framed(layer) + _framed(exact))
    return dataclasses.replace(coded, exact_count=coded.exact_count + exact_count)


def _without(plan: LevelPlan, rows: np.ndarray) -> LevelPlan:
    """The visiting order of the voxels that temporal voxels ``rows`` leave to the spatial passes (empty passes
    dropped)."""
    temporal = np.zeros(len(plan.flat), bool)
    temporal[rows] = True
    passes = [Pass(visit.rows[~temporal[visit.rows]], visit.level, visit.axes) for visit in plan.passes]
    return dataclasses.replace(plan, passes=[visit for visit in passes if len(visit.rows)])


def decode_bounded(ijk: np.ndarray, header: BoundedHeader, stream: bytes, context: ArmWeights | None = None,
                   *, reference: TimeReference | None = None, known_blocks: int | None = None,
                   seed: Seed | None = None) -> np.ndarray:
    """The values (N,) or (N, C) float32 that ``encode_bounded`` coded at the same voxels in the same order
    (``context``: the neural context model it used, if any; ``reference``: the decoded frame its header's
    ``time_frame`` names, if any; ``known_blocks`` and ``seed`` as they were given)."""
    if len(ijk) != header.voxels:
        raise ValueError(f"value header is for {header.voxels} voxels, topology gives {len(ijk)}")
    if (context is None) != (header.context_frame is None):
        raise ValueError("value header and the given context model disagree on whether one was used")
    plan = plan_levels(ijk, header.max_level)
    region = None if known_blocks is None or not header.inactive_known else block_region(plan, ijk, known_blocks)
    columns = np.empty((len(ijk), header.channels), np.float32)
    offset, known = 0, None
    if header.time_frame is not None:
        if seed is not None:
            raise ValueError("a seeded coding is never predicted from another frame")
        offset, (rows, decoded) = _decode_temporal(ijk, header, stream, reference)
        known = _Known(plan.flat[rows], decoded, rows, decoded)
    elif reference is not None:
        raise ValueError("a time reference is given for values coded without the time mode")
    elif seed is not None:
        known = _seeded(plan, ijk, seed, header.channels)
    if known is not None:
        plan = _without(plan, known.rows)
    for channel in range(header.channels):
        codes, offset = _frame(stream, offset, "codes")
        exact, offset = _frame(stream, offset, "exact values")
        coder = _ChannelCoder(plan, header.bounds[channel], header.background[channel], header.inactive_known,
                              header.shrink, context, known_region=_region_for(region, channel, header.channels))
        if known is not None:
            coder.canvas.store(known.cells, known.cell_values[:, channel])
        columns[:, channel] = coder.decode(codes, np.frombuffer(exact, "<f4"), header.choices[channel])
    if known is not None:
        columns[known.rows] = known.row_values
    if offset != len(stream):
        raise ContextStreamError(f"value stream has {len(stream) - offset} bytes past its last channel")
    return columns[:, 0] if header.channels == 1 else columns


def _decode_temporal(ijk: np.ndarray, header: BoundedHeader, stream: bytes, reference: TimeReference | None
                     ) -> tuple[int, tuple[np.ndarray, np.ndarray]]:
    """The time layer at the stream's start: where the channels' streams begin, the temporal rows and their values."""
    if reference is None or reference.frame != header.time_frame:
        raise ValueError(f"values are predicted from frame {header.time_frame}, which was not given decoded")
    if len(ijk) == 0 or reference.channels != header.channels:
        raise ValueError("the time reference does not fit the value header (no voxels, or other channels)")
    layer, offset = _frame(stream, 0, "time layer")
    exact, offset = _frame(stream, offset, "time layer's exact values")
    steps = _Setup(list(header.bounds), list(header.background), header.inactive_known, header.shrink, None).steps
    part, decoded = decode_layer(ReferenceBox.build(ijk, reference), Leaves.of_voxels(ijk), layer,
                                 np.frombuffer(exact, "<f4"), steps)
    return offset, (part.rows, decoded)


@dataclasses.dataclass(frozen=True)
class TrainingPass:
    """What a pass gives a context model to learn from: each voxel's features and its code (``ESCAPE``: escaped)."""

    features: np.ndarray
    codes: np.ndarray


def _region_for(region: np.ndarray | None, channel: int, channels: int) -> np.ndarray | None:
    """What channel ``channel``'s canvas takes over of the known region: a copy, or the region itself for the last
    channel (a chunk's coder then holds one box-sized array of flags fewer)."""
    return region if region is None or channel == channels - 1 else region.copy()


def _contexts(visit: Pass, support: np.ndarray, spread: np.ndarray, step: float) -> np.ndarray:
    """The counting model's context of each voxel of a pass: its level, how many neighbours its interpolation had,
    and their spread in units of the quantization step."""
    level = _LEVEL_CLASSES if visit.is_anchor else min(visit.level, _LEVEL_CLASSES - 1)
    if compiled is not None:
        return compiled.counting_contexts(support, spread, _THRESHOLDS * step, level, _SPREAD_BUCKETS)
    bucket = np.searchsorted(_THRESHOLDS * step, spread, side="right")
    return (level * 4 + support.astype(np.int64)) * _SPREAD_BUCKETS + bucket


class _ChannelCoder:
    """The pass loop of one channel, shared by encoder and decoder: the canvas of decoded values (and, for the
    neural context model, of codes), each pass's predictions, contexts, largest codes and quantization step."""

    def __init__(self, plan: LevelPlan, bound: float, background: float, inactive_known: bool,
                 shrink: tuple[float, float], context: ArmWeights | None = None, recording: bool = False,
                 known_region: np.ndarray | None = None) -> None:
        self.plan, self.bound, self.shrink, self.context = plan, bound, shrink, context
        self.canvas = Canvas.start(plan, background, inactive_known, known_region)
        self.fallback = background if inactive_known else 0.0
        self.band = 0.0 if inactive_known else abs(background)
        self.background = background
        self.codes = np.zeros(plan.box_size, np.int8) if context is not None or recording else None

    def predict(self, visit: Pass) -> tuple[Prediction, float]:
        """The candidate predictions of a pass and its quantization step."""
        step = 2.0 * pass_bound(self.bound, visit.level, self.shrink)
        return predict(self.canvas, self.plan, visit, self.fallback, step, self.band), step

    def features(self, visit: Pass, prediction: Prediction, chosen: np.ndarray, step: float) -> np.ndarray:
        return arm.features(self.plan, visit, prediction, chosen, step, self.codes, self.canvas, self.background)

    def contexts(self, visit: Pass, prediction: Prediction, chosen: np.ndarray, step: float
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Each voxel's context (a counting context, or the neural model's lattice point) and largest code."""
        if self.context is None:
            contexts = _contexts(visit, prediction.support, prediction.spread, step)
            return contexts, np.full(len(contexts), MAX_CODE)
        lattice = arm.pass_lattice(self.context, self.plan, visit, prediction, chosen, step, self.codes, self.canvas,
                                   self.background)
        return lattice, arm.supports(lattice)

    def store(self, visit: Pass, result: np.ndarray, codes: np.ndarray, escaped: np.ndarray) -> None:
        flat = self.plan.flat[visit.rows]
        self.canvas.store(flat, result)
        if self.codes is not None:
            arm.store_codes(self.codes, flat, codes, escaped)

    def encode(self, values: np.ndarray, decoded: np.ndarray, row_codes: np.ndarray,
               record: list[TrainingPass] | None = None) -> tuple[bytes, tuple[int, ...], int]:
        """The channel's streams, choices and count of exact values; each row's decoded value and code go to
        ``decoded`` and ``row_codes`` (its coded rows only). The dense box is dropped before the entropy coding."""
        coded, exact, chosen = [], [], []
        for visit in self.plan.passes:
            prediction, step = self.predict(visit)
            original = values[visit.rows].astype(np.float64)
            choice = _cheapest(prediction.options, original, step)
            chosen.append(choice)
            contexts, largest = self.contexts(visit, prediction, prediction.options[choice], step)
            if record is not None:
                record_features = self.features(visit, prediction, prediction.options[choice], step)
            codes = np.rint((original - prediction.options[choice]) / step)
            result = (prediction.options[choice] + codes * step).astype(np.float32)
            escaped = (np.abs(codes) > largest) | (np.abs(result.astype(np.float64) - original) > step / 2)
            codes = np.where(escaped, CodeDecoder.ESCAPE, codes).astype(np.int64)
            result[escaped] = values[visit.rows][escaped]
            exact.append(values[visit.rows][escaped])
            coded.append((codes.astype(np.int32), contexts.astype(np.int32)))  # kept to the end: 8 B a voxel, not 16
            if record is not None:
                record.append(TrainingPass(record_features, codes))
            self.store(visit, result, codes, escaped)
            decoded[visit.rows] = result
            row_codes[visit.rows] = codes
        self.canvas = self.codes = None  # the box: most of a large chunk's memory, no longer read
        exact_values = np.concatenate(exact) if exact else np.zeros(0, np.float32)
        code_stream = encode_codes(coded) if self.context is None else arm.encode_codes(coded)
        data = _framed(code_stream) + _framed(exact_values.astype("<f4").tobytes())
        return data, tuple(chosen), len(exact_values)

    def decode(self, codes_data: bytes, exact: np.ndarray, choices: tuple[int, ...]) -> np.ndarray:
        if len(choices) != len(self.plan.passes):
            raise ValueError(f"value header lists {len(choices)} predictor choices for {len(self.plan.passes)} passes")
        decoder = CodeDecoder(codes_data) if self.context is None else arm.CodeDecoder(codes_data)
        decoded = np.empty(len(self.plan.flat), np.float32)
        used = 0
        for visit, choice in zip(self.plan.passes, choices, strict=True):
            prediction, step = self.predict(visit)
            if choice >= len(prediction.options):
                raise ValueError(f"value header names prediction {choice} of a pass that has "
                                 f"{len(prediction.options)}")
            contexts, _ = self.contexts(visit, prediction, prediction.options[choice], step)
            codes = decoder.decode(contexts)
            escaped = codes == CodeDecoder.ESCAPE
            result = (prediction.options[choice] + np.where(escaped, 0, codes) * step).astype(np.float32)
            count = int(escaped.sum())
            if used + count > len(exact):
                raise ContextStreamError(f"value stream holds {len(exact)} exact values, the codes escape more")
            result[escaped] = exact[used:used + count]
            used += count
            self.store(visit, result, codes, escaped)
            decoded[visit.rows] = result
        if used != len(exact):
            raise ContextStreamError(f"value stream holds {len(exact)} exact values, the codes escape {used}")
        return decoded


def pass_bound(bound: float, level: int, shrink: tuple[float, float]) -> float:
    """The bound of a pass at ``level``: coarser levels are coded tighter (by ``alpha**level``, at most ``beta``
    times), as in QoZ, since every finer voxel is predicted from them."""
    alpha, beta = shrink
    factor = 1.0
    for _ in range(level):
        factor *= alpha
    return bound / min(factor, beta)


def _cheapest(options: list[np.ndarray], original: np.ndarray, step: float) -> int:
    """The prediction whose errors would take the fewest bits (a log-magnitude estimate); the first on a tie. (Also
    offering the previous frame's value, or its interpolation error at the voxel, was measured on the plume, liquid
    and Blender sequences and saved nothing: see benchmarks/RESULTS.md.)"""
    if len(options) == 1 or len(original) == 0:
        return 0
    sample = slice(None, None, max(1, len(original) // _CHOICE_SAMPLE))
    costs = [np.log2(1.0 + np.abs(original[sample] - option[sample]) / step).sum() for option in options]
    return int(np.argmin(costs))


def _per_channel(value: float | tuple[float, ...], channels: int, what: str) -> list[float]:
    listed = [float(v) for v in np.atleast_1d(np.asarray(value, dtype=np.float64))]
    if len(listed) == 1:
        return listed * channels
    if len(listed) != channels:
        raise ValueError(f"{len(listed)} {what}s given for {channels} channels")
    return listed


def _framed(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def _frame(stream: bytes, offset: int, what: str) -> tuple[bytes, int]:
    if offset + _LENGTH.size > len(stream):
        raise ContextStreamError(f"value stream ends before the length of its {what}")
    (length,) = _LENGTH.unpack_from(stream, offset)
    start = offset + _LENGTH.size
    if start + length > len(stream):
        raise ContextStreamError(f"value stream ends inside its {what} ({length} bytes announced)")
    return stream[start:start + length], start + length


def encode_grid(grid: SparseGrid, bound: float | tuple[float, ...], context: ArmWeights | None = None,
                record: list[TrainingPass] | None = None, reference: TimeReference | None = None) -> BoundedCode:
    """``encode_bounded`` of a grid's values: inactive voxels are known to hold the background except in a level set."""
    return encode_bounded(grid.ijk, grid.values, bound, background=grid.background,
                          inactive_known=grid.grid_class != "level set", context=context, record=record,
                          reference=reference)
