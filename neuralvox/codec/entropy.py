"""Entropy coding of integer arrays with constriction under a two-sided geometric (discrete Laplacian) model.

Each array is coded with its own model ``P(0) = 1 - r``, ``P(k) = r ** (2|k| - 1) * (1 - r ** 2) / 2`` over the
support ``[-K, K]``, where ``r = R / 65536``. Only the integers ``R`` and ``K`` are stored (2 bytes each); the
probability table is computed from them with IEEE float64 multiplications and subtractions alone (no exp/log), so
encoder and decoder build bit-identical tables on any machine, and constriction quantizes identical inputs
identically.
"""

from __future__ import annotations

import struct

import constriction
import numpy as np

DECAY_ONE = 65536
_PARAMS = struct.Struct("<HH")


class EntropyStreamError(ValueError):
    """A coded integer stream is truncated or inconsistent with what the decoder expects."""


def geometric_probabilities(decay_code: int, support: int) -> np.ndarray:
    """Probabilities of symbols ``-support .. support`` for decay ``r = decay_code / 65536`` (unnormalized tails)."""
    r = decay_code / DECAY_ONE
    tail = np.empty(support, dtype=np.float64)
    power = r
    for k in range(support):
        tail[k] = power
        power = power * r * r
    tail *= (1.0 - r * r) / 2.0
    return np.concatenate([tail[::-1], [1.0 - r], tail])


def best_decay_code(symbols: np.ndarray) -> int:
    """The decay code that minimizes the ideal code length of ``symbols`` under the two-sided geometric model."""
    magnitude = np.abs(symbols.astype(np.int64))
    nonzero = magnitude[magnitude > 0]
    if nonzero.size == 0:
        return 0
    zeros = magnitude.size - nonzero.size
    exponent_sum = float((2 * nonzero - 1).sum())
    r = np.arange(1, DECAY_ONE, dtype=np.float64) / DECAY_ONE
    bits = -(zeros * np.log1p(-r) + exponent_sum * np.log(r) + nonzero.size * (np.log1p(-r * r) - np.log(2.0)))
    return int(np.argmin(bits)) + 1


def encode_integer_arrays(arrays: list[np.ndarray]) -> bytes:
    """Code 1-D integer arrays into one stream: (R, K) per array, then the ANS words (little-endian uint32)."""
    params = []
    coder = constriction.stream.stack.AnsCoder()
    for array in arrays:
        symbols = np.asarray(array, dtype=np.int64)
        support = int(np.abs(symbols).max()) if symbols.size else 0
        if support >= 2**16:
            raise ValueError(f"integer array holds {support}, beyond the coder's limit of {2**16 - 1}")
        params.append((best_decay_code(symbols) if support else 0, support))
    for array, (decay_code, support) in reversed(list(zip(arrays, params, strict=True))):
        if support:
            model = constriction.stream.model.Categorical(geometric_probabilities(decay_code, support), perfect=False)
            coder.encode_reverse((np.asarray(array, dtype=np.int64) + support).astype(np.int32), model)
    header = b"".join(_PARAMS.pack(*p) for p in params)
    return header + coder.get_compressed().astype("<u4").tobytes()


def decode_integer_arrays(data: bytes, lengths: list[int], name: str = "stream") -> list[np.ndarray]:
    """Inverse of ``encode_integer_arrays`` given each array's length; ``name`` labels errors."""
    params_size = _PARAMS.size * len(lengths)
    if len(data) < params_size or (len(data) - params_size) % 4:
        raise EntropyStreamError(f"{name}: {len(data)} bytes cannot hold {len(lengths)} coded arrays")
    params = [_PARAMS.unpack_from(data, _PARAMS.size * i) for i in range(len(lengths))]
    words = np.frombuffer(data, dtype="<u4", offset=params_size).astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words) if words.size else constriction.stream.stack.AnsCoder()
    arrays = []
    for length, (decay_code, support) in zip(lengths, params, strict=True):
        if support == 0:
            arrays.append(np.zeros(length, dtype=np.int32))
            continue
        model = constriction.stream.model.Categorical(geometric_probabilities(decay_code, support), perfect=False)
        try:
            arrays.append(coder.decode(model, length).astype(np.int32) - support)
        except Exception as error:  # constriction raises a bare exception type on exhausted data
            raise EntropyStreamError(f"{name}: corrupt or truncated entropy-coded data ({error})") from error
    return arrays
