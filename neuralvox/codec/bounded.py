"""Error-bounded value codec: every decoded voxel within a stated bound of the original, in few bits.

Each channel of a grid is visited coarse to fine (``interpolation.plan_levels``); each voxel is predicted from the
values already decoded around it, the prediction error is quantized in steps of twice the bound (closed loop: the
encoder predicts from what the decoder will have), and the codes are range coded under a context model
(``context_coder``) whose context is the pass's level, how many neighbours the interpolation had, and the
neighbours' spread in units of the step. A voxel whose code would be too
large, or whose float32 result would miss the bound by rounding, is stored exactly. The arithmetic is IEEE float64
elementwise (no transcendental functions), so the decode is bit-identical on every machine and the bound holds with
no margin.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
from collections.abc import Sequence

import numpy as np

from neuralvox.codec.context_coder import MAX_CODE, CodeDecoder, ContextStreamError, encode_codes
from neuralvox.codec.interpolation import CUBIC, LINEAR, MAX_LEVEL, Canvas, LevelPlan, Pass, plan_levels, predict
from neuralvox.grid import SparseGrid

FORMAT = "neuralvox-bounded/1"
_SPREAD_BUCKETS = 16
_LEVEL_CLASSES = 4
# spread bucket thresholds, in steps: 2**(i/2) - 1 for i = 1 .. 15, by repeated multiplication of one literal
_SQRT2 = 1.4142135623730951
_THRESHOLDS = np.cumprod(np.full(_SPREAD_BUCKETS - 1, _SQRT2)) - 1.0
_LENGTH = struct.Struct("<I")
SHRINK = (1.5, 2.0)
AXIS_ORDERS = tuple(itertools.permutations(range(3)))


@dataclasses.dataclass(frozen=True)
class BoundedHeader:
    """What decoding a grid's bounded values needs besides the topology and the stream."""

    voxels: int
    bounds: tuple[float, ...]  # per channel, in the grid's units
    background: tuple[float, ...]
    inactive_known: bool
    modes: tuple[int, ...]  # per channel: bit i set when pass i interpolates cubically
    shrink: tuple[float, float] = (1.0, 1.0)  # (alpha, beta) of ``pass_bound``
    axes: tuple[int, int, int] = (0, 1, 2)  # the index axes in the visiting order's x, y, z (the last gets half)
    max_level: int = MAX_LEVEL

    @property
    def channels(self) -> int:
        return len(self.bounds)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "voxels": self.voxels, "channels": self.channels, "bounds": list(self.bounds),
                "background": list(self.background), "inactive_known": self.inactive_known,
                "modes": list(self.modes), "shrink": list(self.shrink), "axes": list(self.axes),
                "max_level": self.max_level}

    @classmethod
    def from_dict(cls, header: dict) -> BoundedHeader:
        if header.get("format") != FORMAT:
            raise ValueError(f"value header format {header.get('format')!r} is not {FORMAT!r}")
        return cls(int(header["voxels"]), tuple(float(b) for b in header["bounds"]),
                   tuple(float(b) for b in header["background"]), bool(header["inactive_known"]),
                   tuple(int(m) for m in header["modes"]), (float(header["shrink"][0]), float(header["shrink"][1])),
                   _axes(header["axes"]), int(header["max_level"]))


@dataclasses.dataclass(frozen=True)
class BoundedCode:
    """A grid's values coded under a bound: the header, the one stream, and the values exactly as decoded."""

    header: BoundedHeader
    stream: bytes
    decoded: np.ndarray
    exact_count: int


def encode_bounded(ijk: np.ndarray, values: np.ndarray, bounds: float | tuple[float, ...], *,
                   background: float | tuple[float, ...] = 0.0, inactive_known: bool = True,
                   shrink: tuple[float, float] = SHRINK, axes: tuple[int, int, int] = (0, 1, 2)) -> BoundedCode:
    """Code ``values`` (N,) or (N, C) float32 at voxels ``ijk`` (N, 3) so that every decoded value is within
    ``bounds`` (one per channel, or one for all) of the original. ``inactive_known``: inactive voxels hold
    ``background`` (a fog volume); otherwise they are unknown to the predictor (a level set)."""
    values = np.asarray(values, dtype=np.float32)
    columns = values.reshape(len(values), -1)
    channels = columns.shape[1]
    bound_list = _per_channel(bounds, channels, "bound")
    backgrounds = _per_channel(background, channels, "background")
    for bound in bound_list:
        if not (bound > 0 and np.isfinite(bound)):
            raise ValueError(f"error bound must be a positive finite number, got {bound}")
    plan = plan_levels(np.asarray(ijk)[:, _axes(axes)])
    decoded = np.empty_like(columns)
    parts, modes, exact_count = [], [], 0
    for channel in range(channels):
        data, mode_bits, decoded[:, channel], exact = _encode_channel(
            plan, columns[:, channel], bound_list[channel], backgrounds[channel], inactive_known, shrink)
        parts.append(data)
        modes.append(mode_bits)
        exact_count += exact
    header = BoundedHeader(len(columns), tuple(bound_list), tuple(backgrounds), inactive_known, tuple(modes), shrink,
                           _axes(axes))
    return BoundedCode(header, b"".join(parts), decoded.reshape(values.shape), exact_count)


def decode_bounded(ijk: np.ndarray, header: BoundedHeader, stream: bytes) -> np.ndarray:
    """The values (N,) or (N, C) float32 that ``encode_bounded`` coded at the same voxels in the same order."""
    if len(ijk) != header.voxels:
        raise ValueError(f"value header is for {header.voxels} voxels, topology gives {len(ijk)}")
    plan = plan_levels(np.asarray(ijk)[:, header.axes], header.max_level)
    columns = np.empty((len(ijk), header.channels), np.float32)
    offset = 0
    for channel in range(header.channels):
        codes, offset = _frame(stream, offset, "codes")
        exact, offset = _frame(stream, offset, "exact values")
        columns[:, channel] = _decode_channel(plan, codes, np.frombuffer(exact, "<f4"), header, channel)
    if offset != len(stream):
        raise ContextStreamError(f"value stream has {len(stream) - offset} bytes past its last channel")
    return columns[:, 0] if header.channels == 1 else columns


def _contexts(visit: Pass, support: np.ndarray, spread: np.ndarray, step: float) -> np.ndarray:
    """The context of each voxel of a pass: its level, how many neighbours its interpolation had, and their spread
    in units of the quantization step."""
    level = min(visit.level, _LEVEL_CLASSES - 1) if visit.axis >= 0 else _LEVEL_CLASSES
    bucket = np.searchsorted(_THRESHOLDS * step, spread, side="right")
    return (level * 4 + support.astype(np.int64)) * _SPREAD_BUCKETS + bucket


def _encode_channel(plan: LevelPlan, values: np.ndarray, bound: float, background: float, inactive_known: bool,
                    shrink: tuple[float, float]) -> tuple[bytes, int, np.ndarray, int]:
    canvas = Canvas.start(plan, background, inactive_known)
    fallback = background if inactive_known else 0.0
    decoded = np.empty(len(values), np.float32)
    coded, exact, mode_bits = [], [], 0
    for index, visit in enumerate(plan.passes):
        level_bound = pass_bound(bound, visit.level, shrink)
        step = 2.0 * level_bound
        prediction = predict(canvas, plan, visit, fallback)
        original = values[visit.rows].astype(np.float64)
        mode = _cheaper_mode(prediction.linear, prediction.cubic, original, step)
        mode_bits |= mode << index
        predicted = prediction.values(mode)
        codes = np.rint((original - predicted) / step)
        result = (predicted + codes * step).astype(np.float32)
        escaped = (np.abs(codes) > MAX_CODE) | (np.abs(result.astype(np.float64) - original) > level_bound)
        codes = np.where(escaped, CodeDecoder.ESCAPE, codes).astype(np.int64)
        result[escaped] = values[visit.rows][escaped]
        exact.append(values[visit.rows][escaped])
        coded.append((codes, _contexts(visit, prediction.support, prediction.spread, step)))
        canvas.store(plan.flat[visit.rows], result)
        decoded[visit.rows] = result
    exact_values = np.concatenate(exact) if exact else np.zeros(0, np.float32)
    data = _framed(encode_codes(coded)) + _framed(exact_values.astype("<f4").tobytes())
    return data, mode_bits, decoded, len(exact_values)


def _decode_channel(plan: LevelPlan, codes_data: bytes, exact: np.ndarray, header: BoundedHeader,
                    channel: int) -> np.ndarray:
    background = header.background[channel]
    canvas = Canvas.start(plan, background, header.inactive_known)
    fallback = background if header.inactive_known else 0.0
    decoder = CodeDecoder(codes_data)
    decoded = np.empty(header.voxels, np.float32)
    used = 0
    for index, visit in enumerate(plan.passes):
        step = 2.0 * pass_bound(header.bounds[channel], visit.level, header.shrink)
        prediction = predict(canvas, plan, visit, fallback)
        codes = decoder.decode(_contexts(visit, prediction.support, prediction.spread, step))
        escaped = codes == CodeDecoder.ESCAPE
        mode = (header.modes[channel] >> index) & 1
        result = (prediction.values(mode) + np.where(escaped, 0, codes) * step).astype(np.float32)
        count = int(escaped.sum())
        if used + count > len(exact):
            raise ContextStreamError(f"value stream holds {len(exact)} exact values, the codes escape more")
        result[escaped] = exact[used:used + count]
        used += count
        canvas.store(plan.flat[visit.rows], result)
        decoded[visit.rows] = result
    return decoded


def pass_bound(bound: float, level: int, shrink: tuple[float, float]) -> float:
    """The bound of a pass at ``level``: coarser levels are coded tighter (by ``alpha**level``, at most ``beta``
    times), as in QoZ, since every finer voxel is predicted from them."""
    alpha, beta = shrink
    factor = 1.0
    for _ in range(level):
        factor *= alpha
    return bound / min(factor, beta)


def _cheaper_mode(linear: np.ndarray, cubic: np.ndarray, original: np.ndarray, step: float) -> int:
    """CUBIC when cubic interpolation's errors would take fewer bits (a log-magnitude estimate), else LINEAR."""
    if np.array_equal(linear, cubic):
        return LINEAR
    cost_linear = np.log2(1.0 + np.abs(original - linear) / step).sum()
    cost_cubic = np.log2(1.0 + np.abs(original - cubic) / step).sum()
    return CUBIC if cost_cubic < cost_linear else LINEAR


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


def encode_grid(grid: SparseGrid, bound: float | tuple[float, ...], axes: tuple[int, int, int] = (0, 1, 2)
                ) -> BoundedCode:
    """``encode_bounded`` of a grid's values: inactive voxels are known to hold the background except in a level set."""
    return encode_bounded(grid.ijk, grid.values, bound, background=grid.background,
                          inactive_known=grid.grid_class != "level set", axes=axes)


def best_axes(grid: SparseGrid, bound: float | tuple[float, ...]) -> tuple[int, int, int]:
    """The visiting order's axis order that codes ``grid`` in the fewest bytes: the finest pass, half the voxels,
    interpolates along the last axis, so the smoothest direction should come last."""
    return min(AXIS_ORDERS, key=lambda axes: len(encode_grid(grid, bound, axes).stream))


def _axes(axes: Sequence[int]) -> tuple[int, int, int]:
    ordered = tuple(int(a) for a in axes)
    if ordered not in AXIS_ORDERS:
        raise ValueError(f"axis order {list(ordered)} is not a permutation of 0, 1, 2")
    return ordered[0], ordered[1], ordered[2]
