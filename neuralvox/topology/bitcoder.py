"""Binary range coding with adaptive context counts, vectorized: probabilities change only between chunks.

Probabilities are rational functions of integer counts computed with IEEE operations only (no exp/log), so every
machine derives the same ones and a stream decodes identically everywhere.
"""

from __future__ import annotations

import constriction
import numpy as np

_FIRST_CHUNK = 16
_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)


class _Counts:
    """Counts of ones and of all symbols per context id, kept sparse (sorted ids)."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.ones = np.zeros(0, np.int64)
        self.total = np.zeros(0, np.int64)

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counts of sorted unique ``ids`` (zero for ids never seen)."""
        if len(self.ids) == 0:
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), np.int64)
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        hit = self.ids[at] == ids
        return np.where(hit, self.ones[at], 0), np.where(hit, self.total[at], 0)

    def store(self, ids: np.ndarray, ones: np.ndarray, total: np.ndarray) -> None:
        """Replace the counts of sorted unique ``ids``."""
        merged = np.union1d(self.ids, ids)
        merged_ones = np.zeros(len(merged), np.int64)
        merged_total = np.zeros(len(merged), np.int64)
        old = np.searchsorted(merged, self.ids)
        merged_ones[old] = self.ones
        merged_total[old] = self.total
        new = np.searchsorted(merged, ids)
        merged_ones[new] = ones
        merged_total[new] = total
        self.ids, self.ones, self.total = merged, merged_ones, merged_total


class BitCoder:
    """Range-codes bits, each with a chain of context ids (coarse to fine) whose adaptive counts give its probability.

    Along the chain, p = (ones + w * p_coarser) / (total + w), starting from 1/2: a fine context with few symbols
    leans on the coarser ones. Counts change only between chunks (16 symbols, then doubling) so that each chunk is
    one vectorized coder call. Encoding when ``words`` is None, else decoding them.
    """

    def __init__(self, words: np.ndarray | None = None) -> None:
        self._chain: list[_Counts] = []
        self._decoder = None if words is None else constriction.stream.queue.RangeDecoder(words)
        self._encoder = constriction.stream.queue.RangeEncoder() if words is None else None

    def code(self, contexts: list[np.ndarray], weights: tuple[float, ...], bits: np.ndarray | None) -> np.ndarray:
        """Encode ``bits``, or decode as many bits as there are contexts; returns the bits (uint8)."""
        count = len(contexts[0])
        out = np.empty(count, np.int32) if bits is None else bits.astype(np.int32)
        self._chain += [_Counts() for _ in range(len(contexts) - len(self._chain))]
        # Every context of the call is known up front: count in small dense arrays, write back at the end.
        tables = []
        for counts, ids in zip(self._chain, contexts, strict=False):
            keys, slot = np.unique(ids, return_inverse=True)
            tables.append((keys, slot, *counts.lookup(keys)))
        start = 0
        while start < count:
            stop = min(count, start + max(_FIRST_CHUNK, start))
            probability = np.full(stop - start, 0.5)
            for (_, slot, ones, total), weight in zip(tables, weights, strict=True):
                here = slot[start:stop]
                probability = (ones[here] + weight * probability) / (total[here] + weight)
            if self._encoder is not None:
                self.range_code(probability, out[start:stop])
            else:
                out[start:stop] = self.range_code(probability)
            chunk_ones = out[start:stop] == 1
            for _, slot, ones, total in tables:
                here = slot[start:stop]
                ones += np.bincount(here[chunk_ones], minlength=len(ones))
                total += np.bincount(here, minlength=len(total))
            start = stop
        for counts, (keys, _, ones, total) in zip(self._chain, tables, strict=False):
            counts.store(keys, ones, total)
        return out.astype(np.uint8)

    def range_code(self, probabilities: np.ndarray, bits: np.ndarray | None = None) -> np.ndarray | None:
        """Range-code ``bits`` (int32) with their probabilities of a one, or decode as many bits (int32)."""
        if self._encoder is not None:
            self._encoder.encode(bits, _BERNOULLI, probabilities)
            return None
        try:
            return self._decoder.decode(_BERNOULLI, probabilities)
        except (AssertionError, RuntimeError, ValueError) as exc:  # how constriction reports invalid data
            raise ValueError(f"topology stream is corrupted: the range decoder failed ({exc})") from None

    def compressed(self) -> bytes:
        """The encoded words, little-endian."""
        return self._encoder.get_compressed().astype("<u4").tobytes()

    def exhausted(self) -> bool:
        """Whether decoding used up the words (a stream with words left over is corrupted)."""
        return self._decoder.maybe_exhausted()
