"""Logistic mixing of bit predictions in integers (lpaq-style): stretch/squash tables and a gated linear mixer.

Everything is integer arithmetic with Python's floor shifts (the C++ twin in neuralvox/_vdb/topology_kernels.cpp uses
arithmetic shifts of int64), so every machine derives the same probabilities. Probabilities are in 1/4096, logits
("stretched") in 1/256.
"""

from __future__ import annotations

# squash at logits -16..16 (x 128/256 steps): 4096 / (1 + e^-x), rounded; interpolated in between.
_SQUASH_KNOTS = (1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348, 3607,
                 3785, 3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094)
LOGIT_LIMIT = 2047
COUNT_BUCKETS = (1, 3, 8, 20, 60)  # a mixer weight set per level group and per how often the context was seen
WEIGHT_SETS = 2 * 4 * (len(COUNT_BUCKETS) + 1)
INITIAL_WEIGHT = 13107  # 0.2 in 1/65536
LEARNING_RATE = 20  # weight step: input x error x LEARNING_RATE / 2**14 (about 0.02 in real units)
BIAS = 256


def squash(logit: int) -> int:
    """The probability (1/4096) of a logit (1/256), clamped to 0..4095."""
    if logit > LOGIT_LIMIT:
        return 4095
    if logit < -LOGIT_LIMIT:
        return 0
    step, knot = logit & 127, (logit >> 7) + 16
    return (_SQUASH_KNOTS[knot] * (128 - step) + _SQUASH_KNOTS[knot + 1] * step + 64) >> 7


def _stretch_table() -> tuple[int, ...]:
    table = [LOGIT_LIMIT] * 4096
    low = 0
    for logit in range(-LOGIT_LIMIT, LOGIT_LIMIT + 1):
        high = squash(logit)
        for p in range(low, high + 1):
            table[p] = logit
        low = max(low, high + 1)
    return tuple(table)


STRETCH = _stretch_table()  # the inverse of squash: the smallest logit that squashes to each probability


def count_logit(ones: int, total: int) -> int:
    """The stretched Krichevsky-Trofimov estimate (ones + 1/2) / (total + 1) of a context's counts."""
    return STRETCH[min(max((2 * ones + 1) * 4096 // (2 * total + 2), 1), 4095)]


def weight_sets(group: int, chain_total: int, pattern_total: int) -> tuple[int, int]:
    """The mixer's two weight sets for a bit: by level group and how often the chain's finest context was seen, and
    by level group and how often the first pattern context was."""
    per_group = len(COUNT_BUCKETS) + 1
    chain_seen = sum(chain_total >= edge for edge in COUNT_BUCKETS)
    pattern_seen = sum(pattern_total >= edge for edge in COUNT_BUCKETS)
    return group * per_group + chain_seen, (4 + group) * per_group + pattern_seen


class Mixer:
    """Two weight sets, chosen per bit, each giving a logit as the dot product of their weights with the inputs; the
    prediction squashes their mean. After the bit, each set moves along its own error (online logistic regression)."""

    def __init__(self, inputs: int) -> None:
        self.inputs = inputs
        self.weights = [[INITIAL_WEIGHT] * inputs for _ in range(WEIGHT_SETS)]

    def predict(self, logits: list[int], sets: tuple[int, int]) -> tuple[int, tuple[int, int]]:
        """The probability (1/4096) of a one and each set's own logit (for ``update``)."""
        own = tuple(self._dot(self.weights[s], logits) for s in sets)
        return squash((own[0] + own[1]) >> 1), own

    def update(self, logits: list[int], sets: tuple[int, int], own: tuple[int, int], bit: int) -> None:
        for s, logit in zip(sets, own, strict=True):
            error = (bit << 12) - squash(logit)
            weights = self.weights[s]
            for i, x in enumerate(logits):
                weights[i] += (x * error * LEARNING_RATE) >> 14

    @staticmethod
    def _dot(weights: list[int], logits: list[int]) -> int:
        total = sum(w * x for w, x in zip(weights, logits, strict=True)) >> 16
        return min(max(total, -LOGIT_LIMIT), LOGIT_LIMIT)
