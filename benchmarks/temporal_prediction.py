"""What predicting leaves from the previous decoded frame, moved by a per-leaf motion, would save the bounded codec.

    .venv/bin/python benchmarks/temporal_prediction.py [--psnr 40] [--only default smoke128 liquid64 blender]

For each frame after the first, at the bound the codec picks for the PSNR: the spatial codes the bounded codec gives
every voxel (its coarse-to-fine interpolation), and for each 8^3 leaf the best of 125 integer motions (-2..2 voxels
per axis) applied to the previous frame's decoded values, quantized in steps of twice the bound. A leaf is coded
temporally where that is cheaper under the frame's zero-order code statistics; temporal leaves pay a mode flag and
log2(125) bits of motion. Both sides are charged zero-order entropies of their codes (the context model would lower
both), and a temporal leaf's effect on its neighbours' spatial predictions is left out. Prints one Markdown row per
sequence: the bits the mixed coding would take over the spatial coding alone.
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bounded_rd import SEQUENCES, frames_of  # noqa: E402

from neuralvox.codec.bound_search import bound_for_psnr, sample_frames  # noqa: E402
from neuralvox.codec.bounded import SHRINK, TrainingPass, encode_grid, pass_bound  # noqa: E402
from neuralvox.codec.interpolation import plan_levels  # noqa: E402
from neuralvox.metrics import value_range  # noqa: E402
from neuralvox.vdb import read_vdb  # noqa: E402

LEAF = 3  # 8^3 leaves
REACH = 2
MOTIONS = [(i, j, k) for i in range(-REACH, REACH + 1) for j in range(-REACH, REACH + 1)
           for k in range(-REACH, REACH + 1)]
_OFFSET = 1 << 20


def keys_of(ijk: np.ndarray) -> np.ndarray:
    shifted = ijk.astype(np.int64) + _OFFSET
    return (shifted[:, 0] << 42) | (shifted[:, 1] << 21) | shifted[:, 2]


def entropy_bits(codes: np.ndarray) -> np.ndarray:
    """Each code's cost under the zero-order statistics of ``codes``."""
    _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    return -np.log2(counts[inverse] / len(codes))


def spatial_codes(grid, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Each voxel's spatial code and the decoded values (rows of ``grid``)."""
    record: list[TrainingPass] = []
    code = encode_grid(grid, bound, record=record)
    codes = np.empty(grid.voxel_count, np.int64)
    for visit, recorded in zip(plan_levels(grid.ijk).passes, record, strict=True):
        codes[visit.rows] = recorded.codes
    return codes, code.decoded


def frame_saving(previous_ijk: np.ndarray, previous_decoded: np.ndarray, grid, bound: float) -> tuple[float, float,
                                                                                                       float]:
    """(spatial bits, mixed bits, fraction of leaves coded temporally) of one frame."""
    codes, _ = spatial_codes(grid, bound)
    spatial_cost = entropy_bits(codes)
    step = 2.0 * pass_bound(bound, 0, SHRINK)
    previous_keys = keys_of(previous_ijk)
    order = np.argsort(previous_keys)
    previous_keys, previous_values = previous_keys[order], previous_decoded[order].astype(np.float64)
    leaves, leaf_of = np.unique(grid.ijk >> LEAF, axis=0, return_inverse=True)
    leaf_of = leaf_of.reshape(-1)
    best_cost = np.full(len(leaves), np.inf)
    best_codes = np.zeros_like(codes)
    original = grid.values.astype(np.float64)
    # temporal codes per motion, charged with the spatial statistics for the choice (a per-leaf estimate)
    table_codes, table_counts = np.unique(codes, return_counts=True)
    for motion in MOTIONS:
        source = keys_of(grid.ijk - np.array(motion))
        where = np.clip(np.searchsorted(previous_keys, source), 0, len(previous_keys) - 1)
        found = previous_keys[where] == source
        temporal = np.where(found, np.rint((original - previous_values[where]) / step), 0).astype(np.int64)
        position = np.clip(np.searchsorted(table_codes, temporal), 0, len(table_codes) - 1)
        known = table_codes[position] == temporal
        estimate = np.where(known, -np.log2(np.maximum(table_counts[position], 1) / len(codes)),
                            math.log2(len(codes)) + 2 * np.log2(1 + np.abs(temporal)))
        cost = np.where(found, estimate, spatial_cost)
        leaf_cost = np.bincount(leaf_of, cost, minlength=len(leaves))
        better = leaf_cost < best_cost
        best_cost = np.where(better, leaf_cost, best_cost)
        take = better[leaf_of]
        best_codes = np.where(take, np.where(found, temporal, codes), best_codes)
    leaf_spatial = np.bincount(leaf_of, spatial_cost, minlength=len(leaves))
    temporal_leaf = best_cost + math.log2(len(MOTIONS)) < leaf_spatial
    mixed_codes = np.where(temporal_leaf[leaf_of], best_codes, codes)
    flags = entropy_bits(temporal_leaf.astype(np.int64)).sum()
    mixed = entropy_bits(mixed_codes).sum() + flags + temporal_leaf.sum() * math.log2(len(MOTIONS))
    return float(spatial_cost.sum()), float(mixed), float(temporal_leaf.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--psnr", type=float, default=40.0)
    parser.add_argument("--only", nargs="+", choices=[n for n in SEQUENCES if n != "velocity"],
                        default=[n for n in SEQUENCES if n != "velocity"])
    args = parser.parse_args()
    print(f"{datetime.date.today()}, {platform.node()} ({platform.machine()}), PSNR {args.psnr:g} dB")
    print("| sequence | grid | spatial bits | spatial + temporal leaves | change | leaves temporal |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.only:
        source, grid_name = SEQUENCES[name]
        files = sorted(frames_of(source).glob("*.vdb"))
        grids = [read_vdb(f, grids=[grid_name], warn_skipped=False).grids[grid_name].sorted() for f in files]
        peak = max(float(g.values.max()) for g in grids) - min(float(g.values.min()) for g in grids)
        samples = [grids[i] for i in sorted(sample_frames(len(grids)))]
        bound = bound_for_psnr(samples, peak or value_range(grids[0].values), args.psnr)
        spatial = mixed = 0.0
        fractions = []
        previous = grids[0].ijk, encode_grid(grids[0], bound).decoded
        for grid in grids[1:]:
            s, m, fraction = frame_saving(*previous, grid, bound)
            spatial, mixed = spatial + s, mixed + m
            fractions.append(fraction)
            previous = grid.ijk, encode_grid(grid, bound).decoded
        print(f"| {name} | {grid_name} | {spatial:,.0f} | {mixed:,.0f} | {mixed / spatial - 1:+.1%} | "
              f"{np.mean(fractions):.1%} |")


if __name__ == "__main__":
    main()
