"""Neural context model of the bounded codec's codes: a small integer MLP over decoded context, as Cool-chic's ARM.

For each voxel of a pass, integer features of what is already decoded around it (the interpolation's support and
spread, the level, the quantization codes of its interpolation neighbours, the prediction's distance from the
background) go through a per-sequence MLP with int16 weights and integer arithmetic; its three outputs pick the
voxel's distribution from a fixed lattice: a Laplace law of mean ``mu`` and scale ``s`` with an extra mass ``p0`` at
zero. Everything the decoder computes is integer or elementwise IEEE float64 (``exp`` by series and squaring), so
encoder and decoder pick the same table on any machine, and a whole pass is evaluated at once.
"""

from __future__ import annotations

import dataclasses
import functools
import struct

import constriction
import numpy as np

from neuralvox.codec.context_coder import MAX_CODE, ContextStreamError, group_by_context
from neuralvox.codec.interpolation import SUPPORT_CUBIC, Canvas, LevelPlan, Pass, Prediction
from neuralvox.codec.kernels import compiled

FEATURES = 15
FRACTION_BITS = 8  # fixed-point fraction of the hidden activations
MU_STEPS = 8  # the mean's lattice: -2 .. 2 in quarters
SCALES = 40  # the scale's lattice: 2**(j/2 - 4), j = 0 .. 39
ZERO_LEVELS = 8  # the extra mass at zero: 1 - 2**-a, a = 0 .. 7
LATTICE = (2 * MU_STEPS + 1) * SCALES * ZERO_LEVELS
MAX_WIDTH = 64
MAX_LAYERS = 4
_CODE_CLIP = 127  # the code canvas holds codes clipped to int8
_NEIGHBOUR_SIGN_CLIP = 8
_ESCAPE_WEIGHT = 2.0**-24
_FLOOR = 2.0**-20  # every code of a table keeps this much probability: an outlier costs about 20 bits, not more
_TAIL_SCALES = 20  # a table spans the mean +- this many scales (and at least _MIN_SUPPORT); beyond, a code escapes
_MIN_SUPPORT = 32
_SQRT2 = 1.4142135623730951
# bucket thresholds, half-octaves: 2**(i/2) - 1 for i = 1 .. 15 (spreads, in steps) and 1 .. 31 (code magnitudes)
_HALF_OCTAVES = np.cumprod(np.full(31, _SQRT2)) - 1.0
_SPREAD_THRESHOLDS = _HALF_OCTAVES[:15]
_MAGNITUDE_THRESHOLDS = _HALF_OCTAVES
_HEADER = struct.Struct("<BB")
_LAYER = struct.Struct("<HHb")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One integer layer: ``y = x @ weight + bias`` where the weights are ``w * 2**exponent`` rounded to int16
    (int8 measured too coarse: the raw integer features multiply its rounding error into whole lattice steps)."""

    weight: np.ndarray  # (inputs, outputs) int16
    bias: np.ndarray  # (outputs,) int32, at the scale of the layer's accumulator
    exponent: int


@dataclasses.dataclass(frozen=True)
class ArmWeights:
    """The per-sequence context model: integer layers, ReLU between them, three outputs in lattice units."""

    layers: tuple[Layer, ...]

    def to_bytes(self) -> bytes:
        parts = [_HEADER.pack(1, len(self.layers))]
        for layer in self.layers:
            inputs, outputs = layer.weight.shape
            parts += [_LAYER.pack(inputs, outputs, layer.exponent), layer.weight.astype("<i2").tobytes(),
                      layer.bias.astype("<i4").tobytes()]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> ArmWeights:
        if len(data) < _HEADER.size:
            raise ContextStreamError("context model stream is shorter than its header")
        version, count = _HEADER.unpack_from(data)
        if version != 1 or not 1 <= count <= MAX_LAYERS:
            raise ContextStreamError(f"context model stream: version {version}, {count} layers is not supported")
        offset, layers, width = _HEADER.size, [], FEATURES
        for index in range(count):
            if offset + _LAYER.size > len(data):
                raise ContextStreamError("context model stream ends inside a layer header")
            inputs, outputs, exponent = _LAYER.unpack_from(data, offset)
            last = index == count - 1
            if inputs != width or not 1 <= outputs <= MAX_WIDTH or (last and outputs != 3) or not -16 <= exponent <= 30:
                raise ContextStreamError(f"context model layer {index} is {inputs} x {outputs} (exponent "
                                         f"{exponent}); expected {width} inputs" + (" and 3 outputs" if last else ""))
            offset += _LAYER.size
            end = offset + 2 * inputs * outputs + 4 * outputs
            if end > len(data):
                raise ContextStreamError(f"context model stream ends inside layer {index}")
            weight = np.frombuffer(data, "<i2", inputs * outputs, offset).reshape(inputs, outputs)
            bias = np.frombuffer(data, "<i4", outputs, offset + 2 * inputs * outputs)
            layers.append(Layer(weight.astype(np.int16), bias.astype(np.int32), exponent))
            offset, width = end, outputs
        if offset != len(data):
            raise ContextStreamError(f"context model stream has {len(data) - offset} bytes past its last layer")
        return cls(tuple(layers))

    def compiled_arguments(self) -> tuple:
        """The layers as the compiled lattice loops take them."""
        return ([np.ascontiguousarray(layer.weight, np.int16) for layer in self.layers],
                [np.ascontiguousarray(layer.bias, np.int32) for layer in self.layers],
                [layer.exponent for layer in self.layers], FRACTION_BITS, MU_STEPS, SCALES, ZERO_LEVELS)

    def lattice(self, features: np.ndarray) -> np.ndarray:
        """Each row's distribution, as its index in the lattice (integer arithmetic throughout)."""
        if compiled is not None:
            return compiled.arm_lattice(np.ascontiguousarray(features, np.int64), *self.compiled_arguments())
        x = features.astype(np.int64)
        scale = 0  # x holds values times 2**scale
        for index, layer in enumerate(self.layers):
            # integers below 2**53 multiply and add exactly in float64 (in any order), and BLAS is fast
            product = x.astype(np.float64) @ layer.weight.astype(np.float64)
            acc = product.astype(np.int64) + layer.bias.astype(np.int64)
            scale += layer.exponent
            if index < len(self.layers) - 1:
                x = _shift(np.maximum(acc, 0), scale - FRACTION_BITS)
                scale = FRACTION_BITS
        out = _shift(acc + (1 << (scale - 1) if scale > 0 else 0), scale)
        mu = np.clip(out[:, 0], -MU_STEPS, MU_STEPS) + MU_STEPS
        spread = np.clip(out[:, 1], 0, SCALES - 1)
        zero = np.clip(out[:, 2], 0, ZERO_LEVELS - 1)
        return (mu * SCALES + spread) * ZERO_LEVELS + zero


def _shift(values: np.ndarray, bits: int) -> np.ndarray:
    """``values * 2**-bits``, rounded down (an arithmetic shift either way)."""
    return values >> bits if bits >= 0 else values << -bits


def features(plan: LevelPlan, visit: Pass, prediction: Prediction, choice_value: np.ndarray, step: float,
             codes: np.ndarray, canvas: Canvas, reference: float) -> np.ndarray:
    """The integer features (N, FEATURES) of a pass's voxels, from decoded data only: spread bucket, support and
    level (one-hot), how many axes, the magnitude (mean, max) and sign of the neighbours' codes, and the
    prediction's signed half-octave distance from ``reference`` in steps."""
    level_column = 5 + (4 if visit.is_anchor else min(visit.level, 3))
    if compiled is not None:
        return compiled.arm_features(*_feature_arguments(plan, visit, prediction, choice_value, step, codes, reference))
    count = len(visit.rows)
    out = np.zeros((count, FEATURES), np.int64)
    out[:, 0] = np.searchsorted(_SPREAD_THRESHOLDS * step, prediction.spread, side="right")
    out[np.arange(count), 1 + np.minimum(prediction.support, SUPPORT_CUBIC)] = 1
    out[:, level_column] = 1
    out[:, 10] = len(visit.axes)
    if visit.axes:
        flat = plan.flat[visit.rows]
        h = 1 << visit.level
        offsets = [side * h * plan.stride(axis) for axis in visit.axes for side in (-1, 1)]
        neighbour_codes = np.stack([codes[flat + offset] for offset in offsets]).astype(np.int64)
        magnitude = np.searchsorted(_MAGNITUDE_THRESHOLDS, np.abs(neighbour_codes), side="right")
        out[:, 11] = magnitude.sum(axis=0) * 4 // len(offsets)
        out[:, 12] = magnitude.max(axis=0)
        signs = np.clip(neighbour_codes, -_NEIGHBOUR_SIGN_CLIP, _NEIGHBOUR_SIGN_CLIP)
        out[:, 13] = signs.sum(axis=0) * 4 // len(offsets)
    distance = choice_value - reference
    out[:, 14] = np.sign(distance).astype(np.int64) * np.searchsorted(
        _SPREAD_THRESHOLDS * step, np.abs(distance), side="right")
    return out


def _feature_arguments(plan: LevelPlan, visit: Pass, prediction: Prediction, choice_value: np.ndarray, step: float,
                       codes: np.ndarray, reference: float) -> tuple:
    """What the compiled ``features`` loop takes."""
    flat = plan.flat[visit.rows] if visit.axes else np.zeros(0, np.int64)
    reaches = [(1 << visit.level) * plan.stride(axis) for axis in visit.axes]
    level_column = 5 + (4 if visit.is_anchor else min(visit.level, 3))
    return (prediction.support, prediction.spread, np.ascontiguousarray(choice_value), codes, flat, reaches,
            _SPREAD_THRESHOLDS * step, _MAGNITUDE_THRESHOLDS, level_column, float(reference), _NEIGHBOUR_SIGN_CLIP)


def pass_lattice(weights: ArmWeights, plan: LevelPlan, visit: Pass, prediction: Prediction, choice_value: np.ndarray,
                 step: float, codes: np.ndarray, canvas: Canvas, reference: float) -> np.ndarray:
    """``weights.lattice(features(...))``: each voxel's lattice point, without the features array where compiled."""
    if compiled is None:
        return weights.lattice(features(plan, visit, prediction, choice_value, step, codes, canvas, reference))
    return compiled.arm_pass_lattice(*_feature_arguments(plan, visit, prediction, choice_value, step, codes, reference),
                                     *weights.compiled_arguments())


def store_codes(codes_canvas: np.ndarray, flat: np.ndarray, codes: np.ndarray, escaped: np.ndarray) -> None:
    """Remember a pass's codes (escapes as 0, the rest clipped to int8) for the next passes' features."""
    codes_canvas[flat] = np.clip(np.where(escaped, 0, codes), -_CODE_CLIP, _CODE_CLIP)


def _exp_neg(x: float) -> float:
    """``exp(-x)`` for x >= 0 with IEEE additions and multiplications only: the same bits on every machine."""
    y = x / 1024.0
    term, total = 1.0, 1.0
    for k in range(1, 12):
        term = term * -y / k
        total += term
    for _ in range(10):
        total *= total
    return total


@dataclasses.dataclass(frozen=True)
class LatticePoint:
    """One distribution of the lattice: mean (quarters), scale index, zero-mass level."""

    mu_quarters: int
    scale_index: int
    zero_level: int

    @classmethod
    def of(cls, index: int) -> LatticePoint:
        rest, zero = divmod(index, ZERO_LEVELS)
        mu, scale = divmod(rest, SCALES)
        return cls(mu - MU_STEPS, scale, zero)

    @property
    def scale(self) -> float:
        value = 1.0 / 16.0
        for _ in range(self.scale_index):
            value *= _SQRT2
        return value

    @property
    def support(self) -> int:
        """Codes ``-support .. support`` have a symbol; the rest escape."""
        return min(MAX_CODE, max(_MIN_SUPPORT, abs(self.mu_quarters) // 4 + 2 + int(_TAIL_SCALES * self.scale)))

    def table(self) -> np.ndarray:
        """Probabilities of codes ``-support .. support`` and the escape symbol (last)."""
        support = self.support
        # bin edges k - 1/2 for k = -support .. support + 1, minus the mean, in quarters
        quarters = 4 * np.arange(-support, support + 2, dtype=np.int64) - 2 - self.mu_quarters
        ratio = _exp_neg(0.25 / self.scale)
        powers = np.cumprod(np.concatenate([[1.0], np.full(int(np.abs(quarters).max()), ratio)]))
        tail = 0.5 * powers[np.abs(quarters)]
        cdf = np.where(quarters < 0, tail, 1.0 - tail)
        zero_mass = 1.0
        for _ in range(self.zero_level):
            zero_mass *= 0.5
        probabilities = np.diff(cdf) * zero_mass
        probabilities[support] += 1.0 - zero_mass
        return np.concatenate([probabilities + _FLOOR, [_ESCAPE_WEIGHT]])


class _Tables:
    """Categorical models of the lattice points met so far, built once each."""

    def __init__(self) -> None:
        self.models: dict[int, tuple[int, constriction.stream.model.Categorical]] = {}

    def get(self, index: int) -> tuple[int, constriction.stream.model.Categorical]:
        if index not in self.models:
            point = LatticePoint.of(index)
            self.models[index] = point.support, constriction.stream.model.Categorical(point.table(), perfect=False)
        return self.models[index]



_TABLES = _Tables()


@functools.cache
def _support_table() -> np.ndarray:
    """The support of every lattice point, by index."""
    return np.array([LatticePoint.of(index).support for index in range(LATTICE)], np.int64)


def supports(indices: np.ndarray) -> np.ndarray:
    """Each voxel's largest codable magnitude under its lattice point (larger codes escape)."""
    return _support_table()[indices]


def encode_codes(passes: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Range-code each pass's codes under each voxel's lattice point: ``passes`` holds (codes, lattice) arrays; a
    code beyond its point's support is written as the escape symbol."""
    coder = constriction.stream.queue.RangeEncoder()
    for codes, lattice in passes:
        for index, rows in group_by_context(lattice):
            support, model = _TABLES.get(index)
            values = codes[rows].astype(np.int64)
            symbols = np.where(np.abs(values) <= support, values + support, 2 * support + 1)
            coder.encode(symbols.astype(np.int32), model)
    return coder.get_compressed().astype("<u4").tobytes()


class CodeDecoder:
    """Decode ``encode_codes`` pass by pass: ``decode(lattice)`` gives the pass's codes, ``ESCAPE`` where escaped."""

    ESCAPE = MAX_CODE + 1

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise ContextStreamError(f"code stream of {len(data)} bytes is not whole 32-bit words")
        self._coder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))

    def decode(self, lattice: np.ndarray) -> np.ndarray:
        codes = np.empty(len(lattice), np.int64)
        try:
            for index, rows in group_by_context(lattice):
                support, model = _TABLES.get(index)
                symbols = self._coder.decode(model, len(rows)).astype(np.int64)
                codes[rows] = np.where(symbols == 2 * support + 1, self.ESCAPE, symbols - support)
        except Exception as error:  # constriction raises a bare exception type on exhausted data
            raise ContextStreamError(f"corrupt or truncated code stream ({error})") from error
        return codes

