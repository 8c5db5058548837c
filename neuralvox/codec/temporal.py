"""The bounded codec's time mode: 8^3 leaves predicted from the previous decoded frame, moved by a per-leaf motion.

Each leaf (``ijk >> LEAF_SHIFT``) of a frame is either spatial (coded by the interpolation passes) or temporal: its
voxels whose source ``ijk - motion`` was active in the reference (the same grid of the previous decoded frame) are
predicted by the reference's decoded value there and quantized in steps of twice the bound, closed loop, with the
spatial passes' escape rule (a code past ``MAX_CODE`` or a float32 result missing the bound is stored exactly), so
the bound holds on every voxel. Temporal voxels are coded before the spatial passes, which then predict from them;
a temporal leaf's voxels without a source stay spatial. The motion of a temporal leaf is one of the 125 integer
displacements -2..2 per axis.

The layer's stream: a range-coded stream (``context_coder``, counting contexts) of the leaf flags, the temporal
leaves' motions (one context per axis) and each channel's temporal codes (contexts: the channel and the
reference's local spread around the source, in steps, as the spatial passes' spread buckets), then the exact values
of the escaped temporal voxels. All arithmetic is IEEE float64 elementwise, as in the spatial passes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from neuralvox.codec.context_coder import MAX_CODE, CodeDecoder, ContextStreamError, encode_codes
from neuralvox.codec.kernels import compiled

LEAF_SHIFT = 3
REACH = 2  # motion components -REACH..REACH
SIDE = 2 * REACH + 1
MOTIONS = SIDE**3
_MARGIN = REACH + 1  # the farthest box voxel read: a source REACH away and its neighbour
_FLAG_CONTEXT = 0
_MOTION_CONTEXT = 1  # + axis
_CODE_CONTEXT = 4  # + channel * buckets + bucket
_SPREAD_BUCKETS = 16
_SQRT2 = 1.4142135623730951
_THRESHOLDS = np.cumprod(np.full(_SPREAD_BUCKETS - 1, _SQRT2)) - 1.0  # the spatial passes' bucket edges, in steps
# the leaf choice's code costs: by magnitude bin, one per magnitude below 32, then one per octave up to 2**40
_EXACT_OCTAVE = 5
_EXACT_BINS = 1 << _EXACT_OCTAVE
_TOP_OCTAVE = 40
_TOP = float(1 << _TOP_OCTAVE)
_BINS = _EXACT_BINS + _TOP_OCTAVE - _EXACT_OCTAVE + 1
_CHOICE_ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class TimeReference:
    """What a frame's grid is predicted from: the same grid of an earlier frame, its voxels and decoded values."""

    frame: int
    ijk: np.ndarray  # (M, 3) int32
    values: np.ndarray  # (M,) or (M, C) float32, as decoded

    @property
    def channels(self) -> int:
        return 1 if self.values.ndim == 1 else self.values.shape[1]


def motion_vectors() -> np.ndarray:
    """(MOTIONS, 3) int64: motion index -> displacement, the zero motion first."""
    grid = np.stack(np.meshgrid(*[np.arange(-REACH, REACH + 1)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    zero = MOTIONS // 2
    return np.concatenate([grid[zero:zero + 1], grid[:zero], grid[zero + 1:]]).astype(np.int64)


_VECTORS = motion_vectors()


@dataclasses.dataclass(frozen=True)
class ReferenceBox:
    """The reference's decoded values in a dense box around the current frame's voxels (those beyond it are never a
    source), and each current voxel's place in it."""

    values: np.ndarray  # (C, box) float32
    known: np.ndarray  # (box,) bool: active in the reference
    strides: tuple[int, int, int]
    flat: np.ndarray  # (N,) int64: the current voxels in the box

    @classmethod
    def build(cls, ijk: np.ndarray, reference: TimeReference) -> ReferenceBox:
        ijk = np.asarray(ijk, np.int64).reshape(-1, 3)
        low = ijk.min(axis=0) - _MARGIN
        shape = ijk.max(axis=0) + _MARGIN - low + 1
        strides = (int(shape[1] * shape[2]), int(shape[2]), 1)
        size = int(np.prod(shape))
        source = np.asarray(reference.ijk, np.int64).reshape(-1, 3) - low
        inside = np.all((source >= 0) & (source < shape), axis=1)
        where = source[inside] @ np.array(strides, np.int64)
        channels = reference.values.reshape(len(reference.ijk), reference.channels)
        values = np.zeros((channels.shape[1], size), np.float32)
        values[:, where] = channels[inside].T
        known = np.zeros(size, bool)
        known[where] = True
        return cls(values, known, strides, (ijk - low) @ np.array(strides, np.int64))

    def offset(self, motion: int) -> int:
        return int(_VECTORS[motion] @ np.array(self.strides, np.int64))

    def source(self, rows: np.ndarray, motions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's source in the box under its motion, and whether the reference holds it."""
        shift = _VECTORS[motions] @ np.array(self.strides, np.int64)
        where = self.flat[rows] - shift
        return where, self.known[where]

    def spread(self, channel: int, where: np.ndarray) -> np.ndarray:
        """The reference's spread around each source: the sum over axes of the absolute central differences,
        a neighbour the reference lacks counting as the source's own value."""
        centre = self.values[channel, where].astype(np.float64)
        total = np.zeros(len(where))
        for stride in self.strides:
            sides = []
            for neighbour in (where - stride, where + stride):
                sides.append(np.where(self.known[neighbour], self.values[channel, neighbour].astype(np.float64),
                                      centre))
            total += np.abs(sides[1] - sides[0])
        return total


@dataclasses.dataclass(frozen=True)
class Leaves:
    """The 8^3 leaves of a frame's voxels, in ascending order, and each voxel's leaf."""

    count: int
    of: np.ndarray  # (N,) int64

    @classmethod
    def of_voxels(cls, ijk: np.ndarray) -> Leaves:
        keys = np.asarray(ijk, np.int64).reshape(-1, 3) >> LEAF_SHIFT
        if len(keys) == 0:
            return cls(0, np.zeros(0, np.int64))
        keys -= keys.min(axis=0)
        span = keys.max(axis=0) + 1
        packed = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
        distinct, inverse = np.unique(packed, return_inverse=True)
        return cls(len(distinct), inverse.reshape(-1).astype(np.int64))


@dataclasses.dataclass(frozen=True)
class TemporalPart:
    """The temporal voxels of a frame: their rows, sources in the reference box, and each leaf's motion (-1:
    spatial)."""

    rows: np.ndarray
    where: np.ndarray
    leaf_motion: np.ndarray


def magnitude_bins(codes: np.ndarray) -> np.ndarray:
    """Each code's magnitude bin: the magnitude itself below ``_EXACT_BINS``, else ``_EXACT_BINS`` plus how many
    octaves above it (codes are clamped to ±2**_TOP_OCTAVE first)."""
    magnitude = np.abs(np.clip(codes, -_TOP, _TOP)).astype(np.int64)
    octave = np.frexp(np.maximum(magnitude, 1).astype(np.float64))[1] - 1  # floor(log2), exact on integers
    return np.where(magnitude < _EXACT_BINS, magnitude, _EXACT_BINS + octave - _EXACT_OCTAVE)


def _bin_costs(codes: np.ndarray) -> np.ndarray:
    """Bits of a code in each magnitude bin under the frequencies of ``codes``: the bin's frequency (a formula where
    none fell in it), the sign, and the uniform bits of a place in an octave."""
    total = max(len(codes), 1)
    counts = np.bincount(magnitude_bins(codes), minlength=_BINS)
    bins = np.arange(_BINS)
    octave = np.where(bins < _EXACT_BINS, 0, bins - _EXACT_BINS + _EXACT_OCTAVE)
    low = np.where(bins < _EXACT_BINS, bins, np.left_shift(1, octave))
    unseen = math.log2(total) + 2.0 * np.log2(1.0 + low)
    costs = np.where(counts > 0, -np.log2(np.maximum(counts, 1) / total), unseen)
    return costs + (bins > 0) + octave


def choose_leaves(box: ReferenceBox, leaves: Leaves, columns: np.ndarray, steps: list[float],
                  spatial_codes: np.ndarray) -> np.ndarray:
    """Each leaf's motion (-1: spatial) where predicting it from the moved reference is estimated cheaper than the
    spatial codes ``spatial_codes`` (N, C) the interpolation gave: every code, spatial or temporal, is charged its
    magnitude bin's frequency among the spatial codes of its channel (measured on the sims: better than charging
    temporal codes their own frequencies, from the unmoved reference or refined from a first choice), a temporal
    leaf its flag and its motion's frequency among the temporal leaves."""
    channels = columns.shape[1]
    original = columns.astype(np.float64)
    tables = [_bin_costs(spatial_codes[:, c]) for c in range(channels)]
    spatial_cost = sum(tables[c][magnitude_bins(spatial_codes[:, c])] for c in range(channels))
    spatial_leaf = np.bincount(leaves.of, spatial_cost, minlength=leaves.count)
    return _pick(_motion_costs(box, leaves, original, steps, np.stack(tables), spatial_cost), spatial_leaf)


def _motion_costs(box: ReferenceBox, leaves: Leaves, original: np.ndarray, steps: list[float], tables: np.ndarray,
                  spatial_cost: np.ndarray) -> np.ndarray:
    """(MOTIONS, leaves) bits of each leaf under each motion: voxels with a source charged their temporal codes'
    costs (``tables``: per channel and magnitude bin), the others their spatial cost."""
    offsets = [box.offset(motion) for motion in range(MOTIONS)]
    if compiled is not None:
        costs = compiled.leaf_motion_costs(box.values.reshape(-1), box.known, box.flat, np.array(offsets, np.int64),
                                           np.ascontiguousarray(original.T).reshape(-1), [float(s) for s in steps],
                                           tables.reshape(-1), spatial_cost, leaves.of, leaves.count, _EXACT_BINS,
                                           _EXACT_OCTAVE, _TOP)
    else:
        costs = np.empty((MOTIONS, leaves.count))
        for motion, offset in enumerate(offsets):
            where = box.flat - offset
            cost = np.zeros(len(original))
            for channel, step in enumerate(steps):
                codes = np.rint((original[:, channel] - box.values[channel, where].astype(np.float64)) / step)
                cost += tables[channel][magnitude_bins(codes)]
            costs[motion] = np.bincount(leaves.of, np.where(box.known[where], cost, spatial_cost),
                                        minlength=leaves.count)
    return costs


def _pick(costs: np.ndarray, spatial_leaf: np.ndarray) -> np.ndarray:
    """Each leaf's cheapest motion where it beats the spatial cost, flags and motions charged their frequencies
    (found by a few rounds from a uniform start)."""
    count = len(spatial_leaf)
    motion_bits = np.full(MOTIONS, math.log2(MOTIONS))
    chosen = np.full(count, -1)
    for _ in range(_CHOICE_ROUNDS):
        flag_share = max(np.mean(chosen >= 0), 1.0 / max(count, 2))
        charged = costs + motion_bits[:, None]
        best = np.argmin(charged, axis=0)
        temporal_cost = charged[best, np.arange(count)] - math.log2(flag_share)
        chosen = np.where(temporal_cost < spatial_leaf - math.log2(max(1.0 - flag_share, 1e-9)), best, -1)
        picked = np.bincount(chosen[chosen >= 0], minlength=MOTIONS) + 0.5
        motion_bits = -np.log2(picked / picked.sum())
    return chosen


def temporal_part(box: ReferenceBox, leaves: Leaves, leaf_motion: np.ndarray) -> TemporalPart:
    """The voxels of temporal leaves whose moved source the reference holds."""
    motion = leaf_motion[leaves.of]
    candidates = np.flatnonzero(motion >= 0)
    where, found = box.source(candidates, motion[candidates])
    return TemporalPart(candidates[found], where[found], leaf_motion)


def _contexts(box: ReferenceBox, part: TemporalPart, channel: int, step: float) -> np.ndarray:
    bucket = np.searchsorted(_THRESHOLDS * step, box.spread(channel, part.where), side="right")
    return _CODE_CONTEXT + channel * _SPREAD_BUCKETS + bucket


def _side_passes(part: TemporalPart) -> list[tuple[np.ndarray, np.ndarray]]:
    flags = (part.leaf_motion >= 0).astype(np.int64)
    moved = _VECTORS[part.leaf_motion[part.leaf_motion >= 0]]
    motion_contexts = np.broadcast_to(_MOTION_CONTEXT + np.arange(3), moved.shape).reshape(-1)
    return [(flags, np.full(len(flags), _FLAG_CONTEXT)), (moved.reshape(-1), motion_contexts)]


def encode_layer(box: ReferenceBox, part: TemporalPart, columns: np.ndarray, steps: list[float]
                 ) -> tuple[bytes, bytes, np.ndarray, int]:
    """The layer's range-coded stream and exact values, the temporal voxels' decoded values (T, C) and how many
    were stored exactly."""
    passes = _side_passes(part)
    decoded = np.empty((len(part.rows), columns.shape[1]), np.float32)
    exact = []
    for channel, step in enumerate(steps):
        original = columns[part.rows, channel].astype(np.float64)
        prediction = box.values[channel, part.where].astype(np.float64)
        codes = np.rint((original - prediction) / step)
        result = (prediction + codes * step).astype(np.float32)
        escaped = (np.abs(codes) > MAX_CODE) | (np.abs(result.astype(np.float64) - original) > step / 2)
        result[escaped] = columns[part.rows, channel][escaped]
        exact.append(columns[part.rows, channel][escaped])
        decoded[:, channel] = result
        passes.append((np.where(escaped, CodeDecoder.ESCAPE, codes).astype(np.int64),
                       _contexts(box, part, channel, step)))
    exact_values = np.concatenate(exact) if exact else np.zeros(0, np.float32)
    return encode_codes(passes), exact_values.astype("<f4").tobytes(), decoded, len(exact_values)


def decode_layer(box: ReferenceBox, leaves: Leaves, code_data: bytes, exact: np.ndarray, steps: list[float]
                 ) -> tuple[TemporalPart, np.ndarray]:
    """The temporal voxels and their decoded values (T, C) from the layer's stream."""
    decoder = CodeDecoder(code_data)
    flags = decoder.decode(np.full(leaves.count, _FLAG_CONTEXT))
    if np.any((flags != 0) & (flags != 1)):
        raise ContextStreamError("time layer: a leaf flag is neither 0 nor 1")
    temporal = int(flags.sum())
    components = decoder.decode(np.tile(_MOTION_CONTEXT + np.arange(3), temporal)).reshape(temporal, 3)
    if np.any(np.abs(components) > REACH):
        raise ContextStreamError(f"time layer: a motion component beyond ±{REACH}")
    leaf_motion = np.full(leaves.count, -1)
    indices = (components + REACH) @ np.array([SIDE * SIDE, SIDE, 1])
    leaf_motion[flags == 1] = _INDEX_OF_GRID[indices]
    part = temporal_part(box, leaves, leaf_motion)
    decoded = np.empty((len(part.rows), len(steps)), np.float32)
    used = 0
    for channel, step in enumerate(steps):
        codes = decoder.decode(_contexts(box, part, channel, step))
        escaped = codes == CodeDecoder.ESCAPE
        prediction = box.values[channel, part.where].astype(np.float64)
        result = (prediction + np.where(escaped, 0, codes) * step).astype(np.float32)
        count = int(escaped.sum())
        if used + count > len(exact):
            raise ContextStreamError(f"time layer holds {len(exact)} exact values, the codes escape more")
        result[escaped] = exact[used:used + count]
        used += count
        decoded[:, channel] = result
    if used != len(exact):
        raise ContextStreamError(f"time layer holds {len(exact)} exact values, the codes escape {used}")
    return part, decoded


def _index_of_grid() -> np.ndarray:
    """Motion index of each displacement in lexicographic order (components + REACH in base SIDE)."""
    lexicographic = (_VECTORS + REACH) @ np.array([SIDE * SIDE, SIDE, 1])
    table = np.empty(MOTIONS, np.int64)
    table[lexicographic] = np.arange(MOTIONS)
    return table


_INDEX_OF_GRID = _index_of_grid()
