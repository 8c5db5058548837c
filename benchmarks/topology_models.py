"""Ideal code lengths (-log2 p, no coder) of a sequence's topology bits under candidate models, per stream.

    PYTHONPATH=. python benchmarks/topology_models.py --data ../shared/data/blender_smoke_c42 --grid density
    PYTHONPATH=. python benchmarks/topology_models.py --data data/generated/liquid_64x12 \\
        --pattern liquid.{frame:04d}.vdb --frames 1-12 --grid surface

Each frame's bits (and their contexts) are recorded from the numpy walk, intra and against the previous frame; a
frame counts the shorter of the two (frame 1: intra), as the encoder does. Models, all with the walk's contexts:
format 1's chain with counts between chunks (16 symbols, then doubling); that chain with counts after every bit; that
chain mixed (float logistic mixing, two weight sets) with each of its finer contexts alone; and that with format 2's
pattern contexts too (26 neighbours' states; with the reference's 27 cells), which format 2 codes in integers.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from neuralvox.topology import octree, stream
from neuralvox.topology.bitcoder import SequentialBitCoder

BUCKETS = (1, 3, 8, 20, 60)


class Recorder(SequentialBitCoder):
    """Takes the walk's bits and contexts (a format 2 coder, so that the walk hands it the pattern contexts too)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[list[np.ndarray], tuple, np.ndarray, list[np.ndarray], int]] = []

    def code(self, contexts, weights, bits, patterns, group):
        self.calls.append((contexts, weights, bits.astype(np.int64), patterns, group))
        return bits


def record(ijk: np.ndarray, reference: np.ndarray | None) -> list[tuple]:
    coords = stream._checked_coords(ijk, "ijk")
    origin, high = coords.min(axis=0).astype(np.int64), coords.max(axis=0).astype(np.int64)
    depth = max(int(e).bit_length() for e in high - origin)
    truth, _ = stream._octree(coords, origin, depth, reference=False)
    reference_tree = None if reference is None else stream._reference_octree(reference, origin, depth)[0]
    recorder = Recorder()
    saved = octree.compiled
    octree.compiled = None
    try:
        octree.walk(recorder, depth, high - origin, reference_tree, truth, len(coords))
    finally:
        octree.compiled = saved
    return recorder.calls


def prior_counts(ids: np.ndarray, bits: np.ndarray, chunk: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Ones and total of each symbol's context before it (before its chunk when ``chunk`` is given)."""
    n = len(ids)
    order = np.lexsort((np.arange(n), ids))
    sorted_ids, sorted_bits = ids[order], bits[order]
    first = np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]
    if chunk is not None:
        first_of_chunk = first | np.r_[True, chunk[order][1:] != chunk[order][:-1]]
    else:
        first_of_chunk = np.ones(n, bool)
    ones_before = np.cumsum(sorted_bits) - sorted_bits
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    at = np.maximum.accumulate(np.where(first_of_chunk, np.arange(n), 0))
    ones, total = np.empty(n, np.int64), np.empty(n, np.int64)
    ones[order] = ones_before[at] - ones_before[group_start[at]]
    total[order] = at - group_start[at]
    return ones, total


def chunks(calls: list[tuple]) -> np.ndarray:
    """Format 1's chunk number of every symbol: 16, then doubling, within each call."""
    numbers, chunk = [], 0
    for _, _, bits, _, _ in calls:
        start = 0
        while start < len(bits):
            stop = min(len(bits), start + max(16, start))
            numbers.append(np.full(stop - start, chunk))
            chunk, start = chunk + 1, stop
    return np.concatenate(numbers) if numbers else np.zeros(0, np.int64)


def chain(contexts: list[np.ndarray], weights: tuple, bits: np.ndarray, chunk: np.ndarray | None) -> np.ndarray:
    p = np.full(len(bits), 0.5)
    for ids, weight in zip(contexts, weights, strict=True):
        ones, total = prior_counts(ids, bits, chunk)
        p = (ones + weight * p) / (total + weight)
    return np.clip(p, 1 / 2048, 1 - 1 / 2048)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1 / 4096, 1 - 1 / 4096)
    return np.log(p / (1 - p))


def mixed_bits(inputs: np.ndarray, sets: np.ndarray, bits: np.ndarray, rate: float = 0.02) -> float:
    """Bits of online logistic mixing: the mean logit of two weight sets (chosen per bit), each trained on its own."""
    weights = np.full((int(sets.max()) + 1, inputs.shape[1]), 0.2).tolist()
    total = 0.0
    for x, (first, second), bit in zip(inputs.tolist(), sets.tolist(), bits.tolist(), strict=True):
        own = [max(-8.0, min(8.0, sum(w * v for w, v in zip(weights[s], x, strict=True)))) for s in (first, second)]
        p = min(max(1 / (1 + math.exp(-(own[0] + own[1]) / 2)), 1 / 4096), 1 - 1 / 4096)
        total -= math.log2(p if bit else 1 - p)
        for s, o in zip((first, second), own, strict=True):
            step = rate * (bit - 1 / (1 + math.exp(-o)))
            weights[s] = [w + step * v for w, v in zip(weights[s], x, strict=True)]
    return total


def model_bits(calls: list[tuple]) -> dict[str, float]:
    """Ideal bits of one stream under each model."""
    contexts = [np.concatenate([c[0][i] for c in calls]) for i in range(len(calls[0][0]))]
    patterns = [np.concatenate([c[3][i] for c in calls]) for i in range(len(calls[0][3]))]
    bits = np.concatenate([c[2] for c in calls])
    group = np.concatenate([np.full(len(c[2]), c[4]) for c in calls])
    weights = calls[0][1]
    per_bit = chain(contexts, weights, bits, None)

    def ideal(p: np.ndarray) -> float:
        return float(-np.log2(np.where(bits == 1, p, 1 - p)).sum())

    def kt(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ones, total = prior_counts(ids, bits, None)
        return logit((ones + 0.5) / (total + 1)), total

    alone = [kt(ids) for ids in contexts[1:]]
    seen = [kt(ids) for ids in patterns]
    per_set = len(BUCKETS) + 1
    chain_sets = group * per_set + np.digitize(alone[-1][1], BUCKETS)
    pattern_sets = (4 + group) * per_set + np.digitize(seen[0][1], BUCKETS)
    bias = np.ones(len(bits))
    chain_inputs = np.stack([logit(per_bit)] + [x for x, _ in alone] + [bias], axis=1)
    all_inputs = np.stack([logit(per_bit)] + [x for x, _ in alone + seen] + [bias], axis=1)
    return {
        "format 1 chain, counts between chunks": ideal(chain(contexts, weights, bits, chunks(calls))),
        "chain, counts after every bit": ideal(per_bit),
        "+ mixed with its contexts alone": mixed_bits(chain_inputs, np.stack([chain_sets, chain_sets], 1), bits),
        "+ pattern contexts (format 2's model)": mixed_bits(all_inputs, np.stack([chain_sets, pattern_sets], 1), bits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/blender_smoke_c42"))
    parser.add_argument("--pattern", default="fluid_data_{frame:04d}.vdb")
    parser.add_argument("--frames", default="1-10")
    parser.add_argument("--grid", default="density")
    args = parser.parse_args()
    from neuralvox.vdb import read_vdb

    first, last = (int(v) for v in args.frames.split("-"))
    frames = [read_vdb(args.data / args.pattern.format(frame=f), grids=[args.grid]).grids[args.grid].ijk
              for f in range(first, last + 1)]
    totals: dict[str, float] = {}
    for index, ijk in enumerate(frames):
        intra = model_bits(record(ijk, None))
        inter = model_bits(record(ijk, frames[index - 1])) if index else intra
        for name in intra:
            totals[name] = totals.get(name, 0.0) + min(intra[name], inter[name])
    voxels = sum(len(f) for f in frames)
    print(f"# {args.data.name} {args.grid}, frames {args.frames}, {voxels:,} voxels: ideal bytes (each frame: the "
          "shorter of intra and against the previous frame)\n")
    print("| model | bytes | bpv | vs format 1 |\n|---|---:|---:|---:|")
    base = totals["format 1 chain, counts between chunks"]
    for name, bits in totals.items():
        print(f"| {name} | {bits / 8:,.0f} | {bits / voxels:.4f} | {100 * (bits / base - 1):+.1f}% |")


if __name__ == "__main__":
    main()
