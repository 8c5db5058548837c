"""The octree walk of the topology coder: nodes coarse to fine, child bits in 8 passes, and their contexts.

Level by level, coarse to fine, the child masks of the occupied nodes are coded in 8 passes (one per octant) so that
each pass is one vectorized call. A child bit's context is what the decoder already has: the coarser levels, the
octants of earlier passes in the whole 3x3x3 neighbourhood, and the reference set's occupancy at the same level. The
three finest levels are the 512-bit masks of the 8^3 leaves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neuralvox.topology.bitcoder import BitCoder, SequentialBitCoder
from neuralvox.topology.kernels import compiled

# The 27 cells of a 3x3x3 neighbourhood, index (dx+1)*9 + (dy+1)*3 + (dz+1); 13 is the cell itself.
_OFFSETS = np.array([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)])
_SELF = 13
_FACES = (4, 10, 12, 14, 16, 22)
# Child octant o = 4*x + 2*y + z; the children of all nodes of a level are coded octant by octant.
OCTANTS = np.array([((o >> 2) & 1, (o >> 1) & 1, o & 1) for o in range(8)])
POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.int32)
_HIGHEST_BIT = np.array([v.bit_length() - 1 for v in range(256)], dtype=np.int64)
# Weight of the coarser estimate at each step of the context chains of _contexts (see BitCoder).
_INTRA_WEIGHTS = (2.0, 2.0, 4.0, 8.0)
_REFERENCE_WEIGHTS = (2.0, 2.0, 2.0, 4.0, 8.0)
# Format 2's pattern contexts: the level group and the 26 neighbours' states (3^26), and that with the reference's
# 27 cells, hashed (SplitMix64's multipliers, 64-bit wrap-around, the top 62 bits).
_PATTERN_GROUP = 3**26
_HASH_MULTIPLIERS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9))


def _neighbour_tables() -> tuple[np.ndarray, np.ndarray]:
    """For a child in octant o and a neighbour offset d: which parent-level neighbour holds it, and in which octant."""
    shifted = OCTANTS[:, None, :] + _OFFSETS[None, :, :]
    return ((shifted >> 1) + 1) @ np.array([9, 3, 1]), (shifted & 1) @ np.array([4, 2, 1])


_PARENT_OF, _OCTANT_OF = _neighbour_tables()


def _pass_masks() -> list[list[tuple[int, int, int]]]:
    """Per octant, the parent-level neighbours holding its 26 neighbours: (neighbour, decoded octants, all octants)."""
    passes = []
    for octant in range(8):
        known: dict[int, int] = {}
        every: dict[int, int] = {}
        for offset in range(27):
            if offset == _SELF:
                continue
            parent, child = int(_PARENT_OF[octant, offset]), int(_OCTANT_OF[octant, offset])
            every[parent] = every.get(parent, 0) | (1 << child)
            if child < octant:
                known[parent] = known.get(parent, 0) | (1 << child)
        passes.append([(parent, known.get(parent, 0), mask) for parent, mask in sorted(every.items())])
    return passes


_PASS_MASKS = _pass_masks()


def _spread_bits(values: np.ndarray) -> np.ndarray:
    """Put two zero bits after each of the low 21 bits of ``values`` (uint64)."""
    v = values & np.uint64(0x1FFFFF)
    v = (v | (v << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    v = (v | (v << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    return (v | (v << np.uint64(2))) & np.uint64(0x1249249249249249)


def _morton_key(coords: np.ndarray) -> np.ndarray:
    c = coords.astype(np.uint64)
    return (_spread_bits(c[:, 0]) << np.uint64(2)) | (_spread_bits(c[:, 1]) << np.uint64(1)) | _spread_bits(c[:, 2])


KEY_BITS = 21  # per axis: one uint64 Morton key holds coordinates below 2**21
_KEY_ROWS = 1 << 18  # rows turned into keys at a time (bounds the int64 temporaries)


def morton_sorted(coords: np.ndarray) -> np.ndarray:
    """Non-negative coordinates (< 2^42) in octree (Morton) order, x the most significant axis."""
    low = _morton_key(coords & 0x1FFFFF)
    if coords.size and coords.max() > 0x1FFFFF:
        return coords[np.lexsort((low, _morton_key(coords >> 21)))]
    return coords[np.argsort(low, kind="stable")]


def morton_keys(coords: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """The unsorted Morton keys (uint64) of ``coords - origin`` (each below 2**KEY_BITS), a block of rows at a time
    so that no (N, 3) int64 copy is made."""
    keys = np.empty(len(coords), np.uint64)
    for start in range(0, len(coords), _KEY_ROWS):
        keys[start:start + _KEY_ROWS] = _morton_key(coords[start:start + _KEY_ROWS].astype(np.int64) - origin)
    return keys


class Octree:
    """Child masks of the nodes of every level (Morton order) and where each node's children start one level down.

    ``voxels``: distinct non-negative coordinates in Morton order (``morton_sorted``), inside a cube of side 2^depth.
    ``from_keys`` builds the same tree from sorted Morton keys with a few bytes a voxel (cubes up to 2**KEY_BITS).
    """

    def __init__(self, voxels: np.ndarray | None, depth: int) -> None:
        self.masks: list[np.ndarray] = [np.zeros(0, np.uint8)] * (depth + 1)
        self.first_child: list[np.ndarray] = [np.zeros(0, np.int64)] * (depth + 1)
        if voxels is None:
            return
        nodes = voxels
        for level in range(1, depth + 1):
            parents = nodes >> 1
            first = np.ones(len(nodes), dtype=bool)
            first[1:] = (parents[1:] != parents[:-1]).any(axis=1)
            starts = np.flatnonzero(first)
            octant_bits = np.left_shift(1, (nodes & 1) @ np.array([4, 2, 1])).astype(np.uint8)
            self.masks[level] = np.bitwise_or.reduceat(octant_bits, starts)
            self.first_child[level] = starts
            nodes = parents[starts]

    @classmethod
    def from_levels(cls, masks: list[np.ndarray], first_child: list[np.ndarray]) -> Octree:
        """The octree of per-level child masks and first-child indices (level 0 first), as the compiled loops give."""
        tree = cls(None, len(masks) - 1)
        tree.masks, tree.first_child = list(masks), list(first_child)
        return tree

    @classmethod
    def from_keys(cls, keys: np.ndarray, depth: int, children: bool = True) -> Octree:
        """The octree of sorted distinct Morton keys (``keys`` is consumed: shifted in place). ``children``: also
        where each node's children start (only a reference octree needs them)."""
        tree = cls(None, depth)
        for level in range(1, depth + 1):
            octant_bits = np.left_shift(np.uint8(1), keys.astype(np.uint8) & np.uint8(7))
            keys >>= np.uint64(3)
            first = np.empty(len(keys), dtype=bool)
            first[0] = True
            np.not_equal(keys[1:], keys[:-1], out=first[1:])
            starts = np.flatnonzero(first)
            del first
            tree.masks[level] = np.bitwise_or.reduceat(octant_bits, starts)
            del octant_bits
            if children and level > 1:  # the walk never looks up the children of level 1 (they are voxels)
                tree.first_child[level] = starts.astype(np.int32 if len(keys) < 2**31 else np.int64)
            keys = keys[starts]
        return tree


def _contexts(level: int, with_reference: bool, k1, k0, face, f1, f0, ref_self, ref_count, parent_count):
    """Context ids of the child bits of one pass, coarse to fine, and the chain's weights.

    k1/k0: decoded-occupied/known-empty cells among the 26 neighbours; face: the 6 face neighbours, each
    empty/occupied/unknown (base 3), f1/f0 how many of them are occupied/empty; parent_count: occupied parent-level
    cells around the parent (itself included); ref_*: reference occupancy of the cell and of its 26 neighbours.
    The score (7..41), a vote of all these leaning on faces, carries small sets; finer contexts take over on large.
    """
    group = min(level, 3)
    score = (3 * (f1 - f0) + (k1 - f1) - (k0 - f0) + parent_count + 60) // 3
    neighbours = k1 * 27 + k0
    if with_reference:
        group = group * 8 + ref_self * 4 + np.digitize(ref_count, (3, 13, 23))
        coarse, weights = [np.full(len(k1), min(level, 3)), group], _REFERENCE_WEIGHTS
    else:
        group = np.full(len(k1), group)
        coarse, weights = [group], _INTRA_WEIGHTS
    scored = group * 42 + score
    return coarse + [scored, scored * 729 + face, (group * 729 + face) * 729 + neighbours], weights


def _patterns(level: int, octant: int, around, masks, occupied, refmask, with_reference) -> list[np.ndarray]:
    """Format 2's pattern context ids of every node in one pass: the level group with the states of the 26
    neighbours (empty, occupied, not yet known), and with a reference that and the reference's 27 cells, hashed."""
    full = np.zeros(len(masks[_SELF]), np.int64)
    seen = np.zeros(len(masks[_SELF]), np.uint64)
    for offset in range(27):
        parent, child = _PARENT_OF[octant, offset], _OCTANT_OF[octant, offset]
        if offset != _SELF:
            state = ((masks[parent] >> child) & 1).astype(np.int64)
            if child >= octant:
                state = np.where(occupied[parent], 2, state)
            full = full * 3 + state
        if with_reference:
            seen = (seen << np.uint64(1)) | ((refmask[around[parent]] >> child) & 1).astype(np.uint64)
    full += min(level, 3) * _PATTERN_GROUP
    if not with_reference:
        return [full]
    mixed = (full.astype(np.uint64) * _HASH_MULTIPLIERS[0] ^ seen) * _HASH_MULTIPLIERS[1]
    return [full, (mixed >> np.uint64(2)).astype(np.int64)]


def _code_level(bitcoder, level, nodes, neighbour, cur, curmask, refmask, inside, truth, with_reference) -> None:
    """Code the child masks of ``nodes`` (occupied parents) octant by octant into ``curmask``; ``neighbour(offset)``
    gives each node's neighbour at that offset (see ``_neighbour_rows``)."""
    parent_count = np.zeros(len(nodes), np.int32)
    for offset in range(27):
        parent_count += cur[neighbour(offset)]
    last = _HIGHEST_BIT[inside]
    any_child = np.zeros(len(nodes), dtype=bool)
    for octant in range(8):
        in_box = ((inside >> octant) & 1).astype(bool)
        # A node is occupied, so its last child in the box is certain when no earlier one was occupied.
        pick = np.flatnonzero(in_box & ((last != octant) | any_child))
        around = {parent: neighbour(parent) for parent, _, _ in _PASS_MASKS[octant]}
        masks = {parent: curmask[row] for parent, row in around.items()}
        occupied = {parent: cur[row] for parent, row in around.items()}
        k1 = np.zeros(len(nodes), np.int32)
        k0 = np.zeros(len(nodes), np.int32)
        ref_count = np.zeros(len(nodes), np.int32)
        for parent, known, every in _PASS_MASKS[octant]:
            k1 += POPCOUNT[masks[parent] & known]
            k0 += np.where(occupied[parent], POPCOUNT[~masks[parent] & known], POPCOUNT[every])
            if with_reference:
                ref_count += POPCOUNT[refmask[around[parent]] & every]
        face = np.zeros(len(nodes), np.int32)
        f1 = np.zeros(len(nodes), np.int32)
        f0 = np.zeros(len(nodes), np.int32)
        for offset in _FACES:
            parent, child = _PARENT_OF[octant, offset], _OCTANT_OF[octant, offset]
            state = (masks[parent] >> child) & 1
            if child >= octant:
                state = np.where(occupied[parent], 2, state)
            face = face * 3 + state
            f1 += state == 1
            f0 += state == 0
        patterns = None
        if isinstance(bitcoder, SequentialBitCoder):
            patterns = [ids[pick] for ids in _patterns(level, octant, around, masks, occupied, refmask, with_reference)]
        del around, masks, occupied
        ref_self = (refmask[nodes] >> octant) & 1 if with_reference else ref_count
        features = (k1, k0, face, f1, f0, ref_self, ref_count, parent_count)
        contexts, weights = _contexts(level, with_reference, *(feature[pick] for feature in features))
        del k1, k0, face, f1, f0, ref_self, ref_count, features
        wanted = None if truth is None else (truth[pick] >> octant) & 1
        bits = in_box.astype(np.uint8)
        if patterns is None:
            bits[pick] = bitcoder.code(contexts, weights, wanted)
        else:
            bits[pick] = bitcoder.code(contexts, weights, wanted, patterns, min(level, 3))
        del contexts, patterns
        curmask[nodes] |= bits << np.uint8(octant)
        any_child |= bits.astype(bool)


def _neighbour_rows(table: np.ndarray, nodes: np.ndarray) -> Callable[[int], np.ndarray]:
    """``neighbour(offset)`` of ``nodes`` from a level's table (27, M + 1): column i holds node i's 26 neighbours
    and itself, M where there is none."""
    if len(nodes) == table.shape[1] - 1:
        return lambda offset: table[offset, :-1]  # every node: views, no copy
    return lambda offset: table[offset, nodes]


def _child_rows(table: np.ndarray, parent: np.ndarray, octant: np.ndarray, child_index: np.ndarray,
                nodes: np.ndarray) -> Callable[[int], np.ndarray]:
    """``neighbour(offset)`` of ``nodes`` of the level below ``table``'s, each a child (``parent``, ``octant``) of
    one of its nodes; ``child_index``: a parent's child per octant. Computed a row at a time: the finest level,
    the largest, never holds its table."""
    if len(nodes) != len(parent):
        parent, octant = parent[nodes], octant[nodes]
    return lambda offset: child_index[table[_PARENT_OF[octant, offset], parent], _OCTANT_OF[octant, offset]]


def _compiled_walk(bitcoder, depth, limits, reference, truth, count) -> tuple[np.ndarray, np.ndarray]:
    """``walk`` in the compiled loops: format 1 calls back ``bitcoder``'s range coder, format 2 codes there."""
    first_child = None if reference is None else [np.asarray(f, np.int64) for f in reference.first_child]
    arguments = (depth, np.asarray(limits, np.int64), None if truth is None else truth.masks,
                 None if reference is None else reference.masks, first_child, count)
    if isinstance(bitcoder, BitCoder):
        return compiled.walk(*arguments, bitcoder.range_code)
    coords, masks, coded = compiled.walk(*arguments, None, sequential=True, payload=bitcoder.payload)
    bitcoder.adopt(coded)
    return coords, masks


def walk(
    bitcoder: BitCoder | SequentialBitCoder, depth: int, limits: np.ndarray, reference: Octree | None,
    truth: Octree | None, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Code the octree of ``truth`` (encoding) or decode one (``truth`` None) of at most ``count`` voxels, top-down.

    ``limits`` is the box's extent - 1: children outside it are known empty. Returns the coordinates of the nodes one
    level above the voxels (relative to the box origin, in Morton order) and their child masks: the voxels are the
    children, left unexpanded so that a large set is not held twice.

    Nodes of a level are the union of the coded set's and the reference's, so that reference occupancy around a
    node is at hand; a level's table holds each node's 26 neighbours and itself (a missing one points at a
    sentinel), except the finest level's, computed a row at a time from the level above.
    """
    if compiled is not None:
        return _compiled_walk(bitcoder, depth, limits, reference, truth, count)
    coords = np.zeros((1, 3), np.int64)
    nbr = np.full((27, 2), 1, np.int32)
    nbr[_SELF, 0] = 0
    cur = np.array([True, False])
    ref_index = np.array([0 if reference is not None else -1])
    children = None  # the finest level: (parent, octant, child_index) of its nodes, for _child_rows
    for level in range(depth - 1, -1, -1):
        m = len(coords)
        refmask = np.zeros(m + 1, np.uint8)
        if reference is not None:
            has = ref_index >= 0
            refmask[:m][has] = reference.masks[level + 1][ref_index[has]]
        nodes = np.flatnonzero(cur[:m])
        inside_bits = ((2 * coords[nodes][:, None, :] + OCTANTS[None]) <= (limits >> level)).all(axis=2)
        inside = np.packbits(inside_bits, axis=1, bitorder="little")[:, 0]
        del inside_bits
        curmask = np.zeros(m + 1, np.uint8)
        node_truth = None if truth is None else truth.masks[level + 1]
        neighbour = _neighbour_rows(nbr, nodes) if children is None else _child_rows(nbr, *children, nodes)
        _code_level(bitcoder, level, nodes, neighbour, cur, curmask, refmask, inside, node_truth,
                    reference is not None)
        if level == 0:
            return coords, curmask[:m]
        occupied = curmask[:m] | refmask[:m]
        parent, octant = np.nonzero(np.unpackbits(occupied[:, None], axis=1, bitorder="little"))
        parent, octant = parent.astype(np.int32), octant.astype(np.uint8)
        n = len(parent)
        child_index = np.full((m + 1, 8), n, np.int32)
        child_index[parent, octant] = np.arange(n, dtype=np.int32)
        if level == 1:
            children = (parent, octant, child_index)
        else:
            next_nbr = np.empty((27, n + 1), np.int32)
            next_nbr[:, n] = n
            for offset in range(27):
                next_nbr[offset, :n] = child_index[nbr[_PARENT_OF[octant, offset], parent], _OCTANT_OF[octant, offset]]
            nbr = next_nbr
        cur = np.zeros(n + 1, dtype=bool)
        cur[:n] = (curmask[parent] >> octant) & 1
        if np.count_nonzero(cur) > count:
            raise ValueError(f"topology stream is corrupted: more than {count} occupied nodes at level {level}")
        if reference is not None:
            in_ref = ((refmask[parent] >> octant) & 1).astype(bool)
            from_parent = parent[in_ref]
            below = refmask[from_parent] & ((np.uint8(1) << octant[in_ref]) - np.uint8(1))
            child_ref = np.full(n, -1, np.int64)
            child_ref[in_ref] = reference.first_child[level + 1][ref_index[from_parent]] + POPCOUNT[below]
            ref_index = child_ref
        coords = 2 * coords[parent] + OCTANTS[octant]
    raise AssertionError("unreachable: the loop returns at level 0")
