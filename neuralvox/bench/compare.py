"""Rates at matched quality: a baseline curve's bits per voxel interpolated at one neuralvox point's PSNR."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

Point = tuple[float, float]  # (bits per active voxel, PSNR dB)


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other beats on both counts (fewer bits and higher PSNR), by rising bpv and so rising PSNR."""
    front: list[Point] = []
    for bpv, psnr in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or psnr > front[-1][1]:
            front.append((bpv, psnr))
    return front


def bpv_at_psnr(points: Sequence[Point], psnr: float) -> float | None:
    """The bpv a curve needs for ``psnr``: log(bpv) interpolated linearly in PSNR along its Pareto front.

    Lossless points (infinite PSNR) take no part; None when ``psnr`` lies outside the front's PSNR range.
    """
    front = pareto_front([p for p in points if math.isfinite(p[1]) and p[0] > 0])
    if not front or not front[0][1] <= psnr <= front[-1][1]:
        return None
    if len(front) == 1:
        return front[0][0]
    rates = np.log([p[0] for p in front])
    return float(np.exp(np.interp(psnr, [p[1] for p in front], rates)))


@dataclasses.dataclass
class Comparison:
    """One neuralvox point against one baseline method at neuralvox's PSNR."""

    baseline_bpv: float | None  # the baseline's bpv at that PSNR, when its curve reaches it
    factor: float | None  # baseline bpv / neuralvox bpv: above 1 neuralvox is smaller, below 1 it loses
    verdict: str


def compare_at_psnr(target: Point, curve: Sequence[Point]) -> Comparison:
    """Compare a neuralvox point with a baseline's points; say plainly who needs fewer bits for the same PSNR."""
    if not curve:
        return Comparison(None, None, "no match: baseline has no points")
    bpv, psnr = target
    matched = bpv_at_psnr(curve, psnr)
    if matched is not None:
        factor = matched / bpv
        if factor >= 1:
            return Comparison(matched, factor, f"neuralvox {factor:.2f}x smaller")
        return Comparison(matched, factor, f"baseline {1 / factor:.2f}x smaller: neuralvox loses")
    better = [p for p in curve if p[1] >= psnr and p[0] <= bpv]
    if better:
        best = min(better, key=lambda p: p[0])
        return Comparison(None, None, f"neuralvox loses: baseline has {_db(best[1])} at {best[0]:.3g} bpv")
    worse = [p for p in curve if p[1] <= psnr and p[0] >= bpv]
    if worse:
        worst = max(worse, key=lambda p: p[1])
        return Comparison(None, None, f"neuralvox wins: baseline has {_db(worst[1])} at {worst[0]:.3g} bpv")
    if len(curve) == 1:
        return Comparison(None, None, f"no match: baseline's one point is {_db(curve[0][1])} at {curve[0][0]:.3g} bpv")
    low, high = min(curve, key=lambda p: p[1]), max(curve, key=lambda p: p[1])
    return Comparison(None, None, f"no match: baseline spans {_db(low[1])} at {low[0]:.3g} bpv to {_db(high[1])} "
                                  f"at {high[0]:.3g} bpv")


def _db(psnr: float) -> str:
    return "lossless" if math.isinf(psnr) else f"{psnr:.1f} dB"
