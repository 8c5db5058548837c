"""Coarse-to-fine interpolation over the active voxels of a sparse grid: the visiting order and the predictions.

The voxels are visited level by level, coarse to fine, as in SZ3's interpolation predictor: first the anchors (every
coordinate a multiple of ``2**max_level``), then for each half-step ``h = 2**m`` (m from ``max_level - 1`` down to 0)
three passes, one per axis. In the pass of axis ``d`` a voxel's coordinate on ``d`` is an odd multiple of ``h``, its
coordinates on the axes before ``d`` multiples of ``h`` and on the axes after ``d`` multiples of ``2h``; its neighbours
at ``±h`` and ``±3h`` along ``d`` were all visited earlier, so a whole pass is predicted in one vectorized step from
decoded values alone. Inactive voxels are either known (they hold the grid's background, as in a fog volume) or
unknown (a level set's inactive voxels are ``±background`` by a sign the topology does not give); unknown neighbours
are left out of the interpolation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

MAX_LEVEL = 4  # anchors every 16 voxels
LINEAR, CUBIC = 0, 1
# How many of the neighbours an interpolation had: what the context model conditions on besides the neighbours' spread.
SUPPORT_NONE, SUPPORT_ONE_SIDE, SUPPORT_LINEAR, SUPPORT_CUBIC = range(4)


@dataclasses.dataclass(frozen=True)
class Pass:
    """One vectorized step of the visiting order: the rows (into the grid's voxel arrays) predicted together, their
    half-step exponent ``level`` (``max_level`` for the anchors) and the ``axis`` interpolated along (-1: anchors)."""

    rows: np.ndarray
    level: int
    axis: int


@dataclasses.dataclass(frozen=True)
class LevelPlan:
    """The visiting order of a grid's active voxels and the dense box that holds their decoded values."""

    origin: np.ndarray  # (3,) int64, a multiple of 2**max_level
    shape: tuple[int, int, int]
    flat: np.ndarray  # (N,) int64 index of each voxel in the box, C order
    passes: list[Pass]
    max_level: int

    @property
    def box_size(self) -> int:
        return int(np.prod(self.shape))


def plan_levels(ijk: np.ndarray, max_level: int = MAX_LEVEL) -> LevelPlan:
    """The coarse-to-fine visiting order of the voxels ``ijk`` (N, 3)."""
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    step = 1 << max_level
    if len(ijk) == 0:
        return LevelPlan(np.zeros(3, np.int64), (1, 1, 1), np.zeros(0, np.int64), [], max_level)
    origin = (ijk.min(axis=0) // step) * step
    local = ijk - origin
    shape = tuple(int(s) for s in local.max(axis=0) + 1)
    flat = np.ravel_multi_index(tuple(local.T), shape)
    exponents = _trailing_zeros(local, max_level)  # (N, 3)
    level = exponents.min(axis=1)
    # the pass axis is the last axis whose exponent equals the voxel's level; anchors get -1
    is_level = exponents == level[:, None]
    axis = np.where(level == max_level, -1, 2 - np.argmax(is_level[:, ::-1], axis=1))
    # a small-integer key sorts by radix: anchors first, then coarse to fine, axis by axis
    order = np.argsort(((max_level - level) * 4 + axis + 1).astype(np.int16), kind="stable")
    level, axis = level[order], axis[order]
    cuts = np.flatnonzero((np.diff(level) != 0) | (np.diff(axis) != 0)) + 1
    passes = [Pass(rows, int(level[start]), int(axis[start]))
              for rows, start in zip(np.split(order, cuts), [0, *cuts], strict=True)]
    return LevelPlan(origin, shape, flat, passes, max_level)


def _trailing_zeros(local: np.ndarray, cap: int) -> np.ndarray:
    """Exponent of the largest power of two dividing each coordinate, at most ``cap`` (0 counts as ``cap``)."""
    lowest = local & -local
    exponents = np.frexp(np.maximum(lowest, 1).astype(np.float64))[1] - 1
    return np.where(local == 0, cap, np.minimum(exponents, cap))


@dataclasses.dataclass
class Canvas:
    """The dense box of decoded values while a grid is being coded or decoded, and which of its voxels are known."""

    values: np.ndarray  # float32, flat over the box
    known: np.ndarray  # bool, flat over the box
    shape: tuple[int, int, int]
    fill: float  # what a neighbour outside the box holds, when inactive voxels are known
    outside_known: bool

    @classmethod
    def start(cls, plan: LevelPlan, background: float, inactive_known: bool) -> Canvas:
        values = np.full(plan.box_size, background, np.float32)
        known = np.full(plan.box_size, inactive_known, bool)
        known[plan.flat] = False
        return cls(values, known, plan.shape, float(background), inactive_known)

    def neighbours(self, flat: np.ndarray, coordinate: np.ndarray, axis: int, offset: int
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Values (float64) and known flags of the voxels ``offset`` away along ``axis`` from box voxels ``flat``
        whose coordinate on that axis is ``coordinate``."""
        target = coordinate + offset
        inside = (target >= 0) & (target < self.shape[axis])
        stride = int(np.prod(self.shape[axis + 1:]))
        where = np.where(inside, flat + offset * stride, 0)
        values = np.where(inside, self.values[where], self.fill).astype(np.float64)
        known = np.where(inside, self.known[where], self.outside_known)
        return values, known

    def store(self, flat: np.ndarray, values: np.ndarray) -> None:
        self.values[flat] = values
        self.known[flat] = True


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Predicted values (float64) of one pass's voxels, with what the context model reads: how many neighbours each
    interpolation had (``support``) and their spread (``spread``, in the grid's units)."""

    linear: np.ndarray
    cubic: np.ndarray
    support: np.ndarray
    spread: np.ndarray

    def values(self, mode: int) -> np.ndarray:
        return self.cubic if mode == CUBIC else self.linear


def predict(canvas: Canvas, plan: LevelPlan, step: Pass, fallback: float) -> Prediction:
    """Linear and cubic predictions of one pass from the canvas (anchors and voxels without a known neighbour get
    ``fallback``)."""
    flat = plan.flat[step.rows]
    count = len(flat)
    if step.axis < 0:
        none = np.zeros(count, np.int8)
        constant = np.full(count, fallback, np.float64)
        return Prediction(constant, constant, none, np.zeros(count))
    coordinate = np.asarray(np.unravel_index(flat, plan.shape)[step.axis], dtype=np.int64)
    h = 1 << step.level
    v0, k0 = canvas.neighbours(flat, coordinate, step.axis, -3 * h)
    v1, k1 = canvas.neighbours(flat, coordinate, step.axis, -h)
    v2, k2 = canvas.neighbours(flat, coordinate, step.axis, h)
    v3, k3 = canvas.neighbours(flat, coordinate, step.axis, 3 * h)
    both = k1 & k2
    one = k1 ^ k2
    linear = np.where(both, (v1 + v2) * 0.5, np.where(k1, v1, np.where(k2, v2, fallback)))
    cubic_ok = both & k0 & k3
    cubic = np.where(cubic_ok, (9.0 * (v1 + v2) - (v0 + v3)) * 0.0625, linear)
    support = np.where(cubic_ok, SUPPORT_CUBIC, np.where(both, SUPPORT_LINEAR, np.where(one, SUPPORT_ONE_SIDE,
                                                                                          SUPPORT_NONE)))
    spread = np.where(both, np.abs(v2 - v1), 0.0)
    spread = spread + np.where(cubic_ok, 0.5 * (np.abs(v1 - v0) + np.abs(v3 - v2)), 0.0)
    return Prediction(linear, cubic, support.astype(np.int8), spread)
