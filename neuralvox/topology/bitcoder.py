"""Binary coding of bits with adaptive context counts: format 1 (``BitCoder``, vectorized, probabilities change only
between chunks, constriction's range coder) and format 2 (``SequentialBitCoder``, counts after every bit, integer
arithmetic coder).

Format 1's probabilities are rational functions of integer counts computed with IEEE operations only (no exp/log);
format 2's are integers throughout. Either way every machine derives the same ones and a stream decodes identically.
"""

from __future__ import annotations

import constriction
import numpy as np

from neuralvox.topology.mixing import BIAS, STRETCH, Mixer, count_logit, weight_sets

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


PROBABILITY_BITS = 16
_ONE = 1 << PROBABILITY_BITS
_LOWEST = 32  # probabilities are kept in [_LOWEST, _ONE - _LOWEST] / _ONE: no bit costs more than 11 bits
_TOP = 0xFF000000
_MASK = 0xFFFFFFFF


def chain_probability(counts: list[tuple[int, int]], weights: tuple[int, ...]) -> int:
    """The probability of a one (in 1/2**16) of a chain of (ones, total) counts, coarse to fine: integers only."""
    p = _ONE // 2
    for (ones, total), weight in zip(counts, weights, strict=True):
        p = (ones * _ONE + weight * p) // (total + weight)
    return min(max(p, _LOWEST), _ONE - _LOWEST)


class SequentialBitCoder:
    """Format 2: counts updated after every bit; the chain of BitCoder, each of its finer contexts alone and the
    pattern contexts (whole neighbourhoods) are mixed (``mixing.Mixer``), and a carry-less binary arithmetic coder on
    32-bit integers codes the bit (the one of neuralvox/_vdb/topology_kernels.cpp). Encoding when ``data`` is None.

    One bit at a time in Python: the numpy walk's oracle of the compiled loops, for small sets. The compiled walk
    codes on its own and hands its result over (``adopt``).
    """

    def __init__(self, data: bytes | None = None) -> None:
        self.payload = data
        self._finished: bytes | None = None
        self._chain: list[dict[int, list[int]]] = []
        self._patterns: list[dict[int, list[int]]] = []
        self._mixer: Mixer | None = None
        self._low, self._high = 0, _MASK
        self._out = bytearray()
        self._data = data
        self._pos = 4
        self._value = 0 if data is None else int.from_bytes(bytes(data[:4]).ljust(4, b"\0"), "big")

    def code(self, contexts: list[np.ndarray], weights: tuple[int, ...], bits: np.ndarray | None,
             patterns: list[np.ndarray], group: int) -> np.ndarray:
        """Encode ``bits``, or decode as many bits as there are contexts; returns the bits (uint8). ``contexts``: the
        chain's ids, coarse to fine; ``patterns``: ids of whole-neighbourhood contexts; ``group``: the level's."""
        self._chain += [{} for _ in range(len(contexts) - len(self._chain))]
        self._patterns += [{} for _ in range(len(patterns) - len(self._patterns))]
        if self._mixer is None:
            self._mixer = Mixer(len(contexts) + len(patterns) + 1)
        columns = [ids.tolist() for ids in contexts]
        pattern_columns = [ids.tolist() for ids in patterns]
        out = np.zeros(len(columns[0]), np.uint8) if bits is None else bits.astype(np.uint8)
        wanted = None if bits is None else out.tolist()
        weights = tuple(int(weight) for weight in weights)
        for k in range(len(out)):
            counts = [table.setdefault(ids[k], [0, 0]) for table, ids in zip(self._chain, columns, strict=False)]
            seen = [table.setdefault(ids[k], [0, 0]) for table, ids in zip(self._patterns, pattern_columns,
                                                                           strict=False)]
            chained = chain_probability([(c[0], c[1]) for c in counts], weights)
            logits = [STRETCH[min(max(chained >> 4, 1), 4095)]]
            logits += [count_logit(c[0], c[1]) for c in counts[1:] + seen]
            logits.append(BIAS)
            sets = weight_sets(group, counts[-1][1], seen[0][1])
            mixed, own = self._mixer.predict(logits, sets)
            probability = min(max(mixed << 4, _LOWEST), _ONE - _LOWEST)
            bit = self._decode(probability) if wanted is None else self._encode(wanted[k], probability)
            out[k] = bit
            self._mixer.update(logits, sets, own, bit)
            for count in counts + seen:
                count[0] += bit
                count[1] += 1
        return out

    def _split(self, probability: int) -> int:
        return self._low + ((self._high - self._low) * probability >> PROBABILITY_BITS)

    def _encode(self, bit: int, probability: int) -> int:
        middle = self._split(probability)
        if bit:
            self._high = middle
        else:
            self._low = middle + 1
        while not (self._low ^ self._high) & _TOP:
            self._out.append(self._high >> 24)
            self._low = (self._low << 8) & _MASK
            self._high = ((self._high << 8) & _MASK) | 0xFF
        return bit

    def _decode(self, probability: int) -> int:
        middle = self._split(probability)
        bit = int(self._value <= middle)
        if bit:
            self._high = middle
        else:
            self._low = middle + 1
        while not (self._low ^ self._high) & _TOP:
            self._low = (self._low << 8) & _MASK
            self._high = ((self._high << 8) & _MASK) | 0xFF
            byte = self._data[self._pos] if self._pos < len(self._data) else 0
            self._value = ((self._value << 8) & _MASK) | byte
            self._pos += 1
        return bit

    def adopt(self, coded: bytes | int) -> None:
        """Take over what the compiled walk coded: its bytes (encoding) or how many bytes it read (decoding)."""
        if isinstance(coded, bytes):
            self._finished = coded
        else:
            self._pos = coded

    def compressed(self) -> bytes:
        """The coded bytes, ended by the one byte that puts any continuation (zeros) inside the final interval."""
        if self._finished is not None:
            return self._finished
        return bytes(self._out) + bytes([(self._low + 0xFFFFFF) >> 24])

    def exhausted(self) -> bool:
        """Whether decoding read exactly the coded bytes (3 of the zeros past their end belong to the final value)."""
        return self._pos == len(self._data) + 3
