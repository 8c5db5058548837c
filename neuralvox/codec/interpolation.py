"""Coarse-to-fine interpolation over the active voxels of a sparse grid: the visiting order and the predictions.

The voxels are visited level by level, coarse to fine, as in SZ3's interpolation predictor: first the anchors (every
coordinate a multiple of ``2**max_level``), then for each half-step ``h = 2**m`` (m from ``max_level - 1`` down to 0)
seven passes, one per pattern of the coordinates that are odd multiples of ``h``: the three edge patterns (one odd
axis), then the three face patterns (two), then the cube centres (three), as in QoZ/HPEZ's multi-dimensional
interpolation. Along each odd axis a voxel's neighbours at ``±h`` and ``±3h`` were visited earlier (they have one odd
coordinate fewer), so a voxel is predicted by interpolating (linearly or cubically) along its odd axes, one alone or
all averaged, and a whole pass is predicted in one vectorized step from decoded values alone. Inactive voxels are
either known (they hold the grid's background, as in a fog volume) or unknown (a level set's inactive voxels are
``±background`` by a sign the topology does not give); unknown neighbours are left out of the interpolation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from neuralvox.codec.kernels import compiled

MAX_LEVEL = 4  # anchors every 16 voxels
MAX_BOX = 1 << 30  # voxels of the dense box of decoded values (5 bytes each a channel)
MAX_OPTIONS = 8
EDGE_QUANTA = 0.25  # steps added to a direction's spread before it weighs the mean (measured: 0.25 < 1 < 4)
# How many of the neighbours an interpolation had: what the context model conditions on besides the neighbours' spread.
SUPPORT_NONE, SUPPORT_ONE_SIDE, SUPPORT_LINEAR, SUPPORT_CUBIC = range(4)


# the odd-axis patterns of one level in visiting order (bit d set: the coordinate on axis d is an odd multiple of h)
PATTERNS = (0b001, 0b010, 0b100, 0b011, 0b101, 0b110, 0b111)


@dataclasses.dataclass(frozen=True)
class Pass:
    """One vectorized step of the visiting order: the rows (into the grid's voxel arrays) predicted together, their
    half-step exponent ``level`` (``max_level`` for the anchors) and the ``axes`` interpolated along (none: anchors)."""

    rows: np.ndarray
    level: int
    axes: tuple[int, ...]

    @property
    def is_anchor(self) -> bool:
        return not self.axes


@dataclasses.dataclass(frozen=True)
class LevelPlan:
    """The visiting order of a grid's active voxels and the dense box that holds their decoded values: the voxels'
    bounding box with a margin as wide as the farthest neighbour an interpolation reads, so no read leaves it."""

    shape: tuple[int, int, int]
    flat: np.ndarray  # (N,) int64 index of each voxel in the box, C order
    passes: list[Pass]
    max_level: int
    corner: tuple[int, int, int] = (0, 0, 0)  # voxel coordinates of the box's first cell

    @property
    def box_size(self) -> int:
        return int(np.prod(self.shape))

    def stride(self, axis: int) -> int:
        """Distance in ``flat`` between neighbours along ``axis``."""
        return int(np.prod(self.shape[axis + 1:]))


def plan_levels(ijk: np.ndarray, max_level: int = MAX_LEVEL) -> LevelPlan:
    """The coarse-to-fine visiting order of the voxels ``ijk`` (N, 3)."""
    ijk = np.asarray(ijk).reshape(-1, 3)
    step = 1 << max_level
    if len(ijk) == 0:
        return LevelPlan((1, 1, 1), np.zeros(0, np.int64), [], max_level)
    if compiled is not None:
        ijk = np.ascontiguousarray(ijk, np.int32)
        low, high = compiled.coordinate_range(ijk)
    else:
        low, high = ijk.min(axis=0), ijk.max(axis=0)
    origin = np.array(low, np.int64) // step * step
    margin = 3 * step // 2  # the farthest neighbour read: 3h at the coarsest half-step h
    corner = tuple(int(c) - margin for c in origin)
    shape = tuple(int(top - bottom) + 1 + 2 * margin for bottom, top in zip(origin, high, strict=True))
    if np.prod(shape, dtype=np.float64) > MAX_BOX:
        raise ValueError(f"the active voxels span a box of {shape[0]} x {shape[1]} x {shape[2]} voxels, more than the "
                         f"{MAX_BOX:,} the bounded codec holds in memory at once")
    rank = np.zeros(8, np.int16)
    rank[list(PATTERNS)] = np.arange(1, len(PATTERNS) + 1)
    if compiled is not None:
        flat, key = compiled.plan_keys(ijk, origin.tolist(),
                                       list(shape), margin, max_level, rank.tolist())
        order, keys, starts = compiled.group_by_key(key)
        patterns = (0, *PATTERNS)
        passes = [Pass(rows, max_level - int(k) // 8, tuple(d for d in range(3) if patterns[int(k) % 8] >> d & 1))
                  for k, rows in zip(keys, np.split(order, starts[1:]), strict=True)]
        return LevelPlan(shape, flat, passes, max_level, corner)
    local = np.ascontiguousarray(ijk.T, dtype=np.int64) - origin[:, None]  # (3, N): fast per axis
    flat = ((local[0] + margin) * shape[1] + local[1] + margin) * shape[2] + local[2] + margin
    exponents = [_trailing_zeros(local[axis], max_level) for axis in range(3)]
    level = np.minimum(np.minimum(exponents[0], exponents[1]), exponents[2])
    pattern = sum((exponents[axis] == level).astype(np.int8) << axis for axis in range(3))
    pattern[level == max_level] = 0
    # a small-integer key sorts by radix: anchors first, then coarse to fine, pattern by pattern
    key = (max_level - level).astype(np.int16) * 8 + rank[pattern]
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order]) != 0) + 1
    passes = [Pass(rows, int(level[rows[0]]), tuple(d for d in range(3) if pattern[rows[0]] >> d & 1))
              for rows in np.split(order, cuts)]
    return LevelPlan(shape, flat, passes, max_level, corner)


def block_region(plan: LevelPlan, ijk: np.ndarray, block_shift: int) -> np.ndarray:
    """Which cells of the plan's box (bool, flat) lie in a block of ``2**block_shift`` voxels a side (aligned on
    multiples of it) that holds one of the voxels ``ijk``."""
    region = np.zeros(plan.shape, bool)
    if len(ijk) == 0:
        return region.reshape(-1)
    blocks = np.asarray(ijk).reshape(-1, 3) >> block_shift
    low = blocks.min(axis=0).astype(np.int64)
    span = blocks.max(axis=0).astype(np.int64) - low + 1
    keys = np.unique(((blocks[:, 0] - low[0]) * span[1] + (blocks[:, 1] - low[1])) * span[2] + (blocks[:, 2] - low[2]))
    corner, side = np.array(plan.corner), 1 << block_shift
    for block in np.stack([keys // (span[1] * span[2]), keys // span[2] % span[1], keys % span[2]], axis=1) + low:
        start = np.maximum(block * side - corner, 0)
        stop = np.minimum((block + 1) * side - corner, plan.shape)
        region[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]] = True
    return region.reshape(-1)


def _trailing_zeros(coordinates: np.ndarray, cap: int) -> np.ndarray:
    """Exponent (int8) of the largest power of two dividing each coordinate, at most ``cap`` (0 counts as ``cap``)."""
    table = np.full(1 << cap, cap, np.int8)
    residues = np.arange(1, 1 << cap)
    table[1:] = np.frexp((residues & -residues).astype(np.float64))[1] - 1
    return table[coordinates & ((1 << cap) - 1)]


@dataclasses.dataclass
class Canvas:
    """The dense box of decoded values while a grid is being coded or decoded, and which of its voxels are known."""

    values: np.ndarray  # float32, flat over the box
    known: np.ndarray  # bool, flat over the box

    @classmethod
    def start(cls, plan: LevelPlan, background: float, inactive_known: bool,
              known_region: np.ndarray | None = None) -> Canvas:
        """The canvas before the first pass: inactive voxels known (``inactive_known``) everywhere, or only inside
        ``known_region`` (bool over the box; the canvas takes it over and changes it)."""
        values = np.full(plan.box_size, background, np.float32)
        if known_region is None:
            known = np.full(plan.box_size, inactive_known, bool)
        else:
            known = np.logical_and(known_region, inactive_known, out=known_region)
        known[plan.flat] = False
        return cls(values, known)

    def neighbours(self, flat: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Values (float64) and known flags of the voxels ``offset`` away in the box from box voxels ``flat``."""
        where = flat + offset
        return self.values[where].astype(np.float64), self.known[where]

    def store(self, flat: np.ndarray, values: np.ndarray) -> None:
        self.values[flat] = values
        self.known[flat] = True


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Candidate predictions (float64) of one pass's voxels: linear and cubic, averaged over the odd axes and, where
    there are several, along each alone; with what the context model reads: how many neighbours the interpolations
    had (``support``) and their spread (``spread``, in the grid's units)."""

    options: list[np.ndarray]  # [mean linear, mean cubic, then linear and cubic along each axis of several]
    support: np.ndarray
    spread: np.ndarray


def predict(canvas: Canvas, plan: LevelPlan, step: Pass, fallback: float, quantum: float, band: float = 0.0
            ) -> Prediction:
    """The candidate predictions of one pass from the canvas. Along one axis: the interpolation where both nearest
    neighbours are known, else from the one known neighbour (with a level set's ``band``, the half-width of its
    narrow band: the mean of that value and the band's edge on the same side, where the unknown neighbour past the
    voxel most likely lies; else the value itself), else ``fallback`` (as for the anchors). The mean over
    the axes weighs each two-sided interpolation by the inverse square of its neighbours' spread (plus a quarter of
    ``quantum``, the pass's quantization step): the smoother direction counts more, as in edge-directed
    interpolation."""
    flat = plan.flat[step.rows]
    count = len(flat)
    if step.is_anchor:
        constant = np.full(count, fallback, np.float64)
        return Prediction([constant, constant], np.zeros(count, np.int8), np.zeros(count))
    if compiled is None:
        return predict_reference(canvas, plan, step, fallback, quantum, band)
    reaches = [(1 << step.level) * plan.stride(axis) for axis in step.axes]
    options, support, spread = compiled.predict(canvas.values, canvas.known, flat, reaches, float(fallback),
                                                EDGE_QUANTA * quantum, float(band))
    return Prediction(list(options), support, spread)


def predict_reference(canvas: Canvas, plan: LevelPlan, step: Pass, fallback: float, quantum: float,
                      band: float = 0.0) -> Prediction:
    """``predict`` of a pass with odd axes in numpy, one array operation at a time: what the compiled loop computes."""
    flat = plan.flat[step.rows]
    count = len(flat)
    h = 1 << step.level
    linear_sum, cubic_sum, spread_sum, two_sided = np.zeros(count), np.zeros(count), np.zeros(count), np.zeros(count)
    one_sided = np.full(count, np.nan)
    weight_sum = np.zeros(count)
    support = np.zeros(count, np.int8)
    per_axis = []
    for axis in step.axes:
        reach = h * plan.stride(axis)
        v0, k0 = canvas.neighbours(flat, -3 * reach)
        v1, k1 = canvas.neighbours(flat, -reach)
        v2, k2 = canvas.neighbours(flat, reach)
        v3, k3 = canvas.neighbours(flat, 3 * reach)
        both = k1 & k2
        cubic_ok = both & k0 & k3
        side = np.where(k1, v1, np.where(k2, v2, fallback))
        if band:
            side = np.where(k1 ^ k2, 0.5 * (side + np.sign(side) * band), side)
        linear = np.where(both, (v1 + v2) * 0.5, side)
        cubic = np.where(cubic_ok, (9.0 * (v1 + v2) - (v0 + v3)) * 0.0625, linear)
        per_axis += [linear, cubic]
        spread = np.where(both, np.abs(v2 - v1) + np.where(cubic_ok, 0.5 * (np.abs(v1 - v0) + np.abs(v3 - v2)), 0.0),
                          0.0)
        softened = spread + EDGE_QUANTA * quantum
        weight = np.where(both, 1.0 / (softened * softened), 0.0)
        linear_sum += weight * linear
        cubic_sum += weight * cubic
        weight_sum += weight
        spread_sum += spread
        two_sided += both
        one_sided = np.where(np.isnan(one_sided) & (k1 | k2), side, one_sided)
        axis_support = np.where(cubic_ok, SUPPORT_CUBIC, np.where(both, SUPPORT_LINEAR,
                                                                  np.where(k1 | k2, SUPPORT_ONE_SIDE, SUPPORT_NONE)))
        support = np.maximum(support, axis_support.astype(np.int8))
    if len(step.axes) == 1:
        return Prediction(per_axis, support, spread_sum)
    lacking = np.where(np.isnan(one_sided), fallback, one_sided)
    weights = np.where(two_sided > 0, weight_sum, 1.0)
    mean = [np.where(two_sided > 0, total / weights, lacking) for total in (linear_sum, cubic_sum)]
    return Prediction(mean + per_axis, support, spread_sum / np.maximum(two_sided, 1.0))
