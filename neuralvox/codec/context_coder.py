"""Context-modelled range coding of quantization codes: one entropy model per context, fitted per stream.

Each context holds a zero-inflated two-sided geometric distribution over the codes ``-K .. K`` plus one escape
symbol (the voxel's value is stored exactly elsewhere): ``P(0) = p0``, ``P(±j) = (1 - p0) / 2 * (1 - t) * t**(j-1)``.
A context's parameters are three integers (``p0 = 1 - 2**(-a/16)``, ``t = 1 - 2**(-b/16)`` in 8 bits each, and ``K``
in about ``4 + log2 K`` bits), written into the range-coded stream just before the context's first symbol, so a
context costs nothing until it is used and the decoder learns it exactly when it needs it. Probability tables are
built from the integers with IEEE float64 multiplications alone, so encoder and decoder build bit-identical tables
on any machine.
"""

from __future__ import annotations

import constriction
import numpy as np

from neuralvox.codec.kernels import compiled

MAX_CODE = 1 << 15  # |code| beyond this escapes (the value is stored exactly)
_PARAM_LEVELS = 256
_ESCAPE_WEIGHT = 2.0**-30
# 2**(-k/16) for k = 0..255 by repeated multiplication of one literal: bit-identical everywhere (no exp/log)
_SIXTEENTH_ROOT_HALF = 0.9576032806985737
_POWERS = np.cumprod(np.concatenate([[1.0], np.full(_PARAM_LEVELS - 1, _SIXTEENTH_ROOT_HALF)]))
_NEAR_ONE = 1.0 - _POWERS  # the value of a parameter code


class ContextStreamError(ValueError):
    """A coded code stream is truncated or inconsistent with the contexts the decoder computes."""


def _table(zero_code: int, decay_code: int, support: int) -> np.ndarray:
    """Probabilities of codes ``-support .. support`` and the escape symbol (last)."""
    p0 = _NEAR_ONE[zero_code]
    decay = _NEAR_ONE[decay_code]
    tail = np.cumprod(np.concatenate([[(1.0 - p0) * 0.5 * (1.0 - decay)], np.full(max(support - 1, 0), decay)]))
    tail = tail[:support]
    return np.concatenate([tail[::-1], [p0], tail, [_ESCAPE_WEIGHT]])


def _fit(codes: np.ndarray) -> tuple[int, int, int]:
    """The parameter codes (zero, decay, support) minimizing the ideal code length of ``codes`` (escapes left out)."""
    magnitude = np.abs(codes[codes <= MAX_CODE].astype(np.int64))
    zeros = int(np.count_nonzero(magnitude == 0))
    nonzero = magnitude[magnitude > 0]
    candidates = np.arange(1, _PARAM_LEVELS)
    p = _NEAR_ONE[candidates]
    zero_cost = -zeros * np.log2(p) - nonzero.size * np.log2(1.0 - p)
    zero_code = int(candidates[np.argmin(zero_cost)]) if nonzero.size else _PARAM_LEVELS - 1
    if zeros == 0:
        zero_code = 0
    decay_code, support = 0, int(nonzero.max()) if nonzero.size else 0
    if nonzero.size:
        excess = float((nonzero - 1).sum())
        decay_cost = -nonzero.size * np.log2(1.0 - p) - excess * np.log2(p)
        decay_code = int(candidates[np.argmin(decay_cost)]) if excess else 0
    return zero_code, decay_code, support


class _Models:
    """The per-context tables and their parameters, built once per context."""

    def __init__(self) -> None:
        self.params: dict[int, tuple[int, int, int]] = {}
        self.models: dict[int, constriction.stream.model.Categorical] = {}

    def add(self, context: int, params: tuple[int, int, int]) -> None:
        self.params[context] = params
        self.models[context] = constriction.stream.model.Categorical(_table(*params), perfect=False)


_PARAM_MODEL = constriction.stream.model.Uniform(_PARAM_LEVELS)
_LENGTH_MODEL = constriction.stream.model.Uniform(MAX_CODE.bit_length() + 1)


def _encode_params(coder: constriction.stream.queue.RangeEncoder, params: tuple[int, int, int]) -> None:
    """The two parameter codes in 8 bits each; the support as its bit length, then the bits below the leading one."""
    zero_code, decay_code, support = params
    coder.encode(np.array([zero_code, decay_code], np.int32), _PARAM_MODEL)
    length = support.bit_length()
    coder.encode(np.array([length], np.int32), _LENGTH_MODEL)
    if length > 1:
        coder.encode(np.array([support - (1 << (length - 1))], np.int32),
                     constriction.stream.model.Uniform(1 << (length - 1)))


def _decode_params(coder: constriction.stream.queue.RangeDecoder) -> tuple[int, int, int]:
    zero_code, decay_code = (int(v) for v in coder.decode(_PARAM_MODEL, 2))
    length = int(coder.decode(_LENGTH_MODEL, 1)[0])
    support = length and 1 << (length - 1)
    if length > 1:
        support += int(coder.decode(constriction.stream.model.Uniform(1 << (length - 1)), 1)[0])
    return zero_code, decay_code, support


def encode_codes(passes: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Range-code the codes of every pass, in order: ``passes`` holds (codes, contexts) int arrays; a code above
    ``MAX_CODE`` in magnitude is written as the escape symbol."""
    all_codes = np.concatenate([codes for codes, _ in passes]) if passes else np.zeros(0, np.int64)
    all_contexts = np.concatenate([contexts for _, contexts in passes]) if passes else np.zeros(0, np.int64)
    fitted = {context: _fit(all_codes[rows]) for context, rows in group_by_context(all_contexts)}
    coder = constriction.stream.queue.RangeEncoder()
    models = _Models()
    for codes, contexts in passes:
        for context, rows in group_by_context(contexts):
            if context not in models.params:
                _encode_params(coder, fitted[context])
                models.add(context, fitted[context])
            support = models.params[context][2]
            values = codes[rows].astype(np.int64)
            symbols = np.where(np.abs(values) <= support, values + support, 2 * support + 1)
            coder.encode(symbols.astype(np.int32), models.models[context])
    return coder.get_compressed().astype("<u4").tobytes()


class CodeDecoder:
    """Decode the codes of ``encode_codes`` pass by pass: ``decode(contexts)`` returns the next pass's codes, with
    ``ESCAPE`` where the encoder escaped."""

    ESCAPE = MAX_CODE + 1

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise ContextStreamError(f"code stream of {len(data)} bytes is not whole 32-bit words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        self._coder = constriction.stream.queue.RangeDecoder(words)
        self._models = _Models()

    def decode(self, contexts: np.ndarray) -> np.ndarray:
        if len(contexts) == 0:
            return np.zeros(0, np.int64)
        order, distinct, bounds = _groups(contexts)
        symbols = np.empty(len(contexts), np.int64)  # grouped by context, as decoded
        supports = np.empty(len(contexts), np.int64)
        try:
            for context, start, stop in zip(distinct.tolist(), bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
                if context not in self._models.params:
                    self._models.add(context, _decode_params(self._coder))
                symbols[start:stop] = self._coder.decode(self._models.models[context], stop - start)
                supports[start:stop] = self._models.params[context][2]
        except Exception as error:  # constriction raises a bare exception type on exhausted data
            raise ContextStreamError(f"corrupt or truncated code stream ({error})") from error
        codes = np.empty(len(contexts), np.int64)
        codes[order] = np.where(symbols == 2 * supports + 1, self.ESCAPE, symbols - supports)
        return codes


def _groups(contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stable order that groups equal ``contexts`` (non-empty), the distinct contexts ascending, and the bounds of
    their groups in that order (one more than the groups)."""
    if compiled is not None:
        order, distinct, starts = compiled.group_by_key(np.ascontiguousarray(contexts, np.int64))
    else:
        order = np.argsort(contexts.astype(np.int16), kind="stable")  # radix sort
        ordered = contexts[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        distinct = ordered[starts]
    return order, distinct, np.append(starts, len(order))


def group_by_context(contexts: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(context, rows) for each distinct context, contexts ascending, rows in their original order."""
    if len(contexts) == 0:
        return []
    order, distinct, bounds = _groups(contexts)
    return [(key, order[start:stop])
            for key, start, stop in zip(distinct.tolist(), bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
