"""Spatial chunks: a deterministic split of a grid's active voxels into regions coded independently.

A grid of at most ``max_voxels`` active voxels is one chunk. A larger one is cut along 64^3-voxel blocks (8^3 OpenVDB
leaves): the occupied blocks are visited in Morton (Z-curve) order and packed greedily into chunks of at most
``max_voxels`` voxels whose blocks span a box of at most ``max_box`` cells, so each chunk is spatially compact and the
bounded codec's dense box for it stays small. The split depends only on the voxel set, so the decoder derives it from
the decoded topology.
"""

from __future__ import annotations

import dataclasses

import numpy as np

BLOCK_SHIFT = 6  # blocks of 64^3 voxels: 8^3 leaves of 8^3
CHUNK_VOXELS = 1 << 22  # about 4M voxels a chunk
CHUNK_BOX = 1 << 26  # cells spanned by a chunk's blocks (the dense box adds a margin)
_MORTON_BITS = 21  # per axis: block coordinates span at most 2**21 blocks
_ROWS = 1 << 20  # voxels keyed at a time


@dataclasses.dataclass(frozen=True)
class ChunkLimits:
    """How large one chunk may be: active voxels, and cells of the box its blocks span; chunks are made of blocks of
    ``2**block_shift`` voxels a side."""

    max_voxels: int = CHUNK_VOXELS
    max_box: int = CHUNK_BOX
    block_shift: int = BLOCK_SHIFT


@dataclasses.dataclass(frozen=True)
class Chunks:
    """The chunks of a voxel set: for each, its rows into the voxel arrays (ascending) and its voxel bounding box;
    every block of ``2**block_shift`` voxels a side belongs to one chunk."""

    rows: list[np.ndarray]
    boxes: list[tuple[tuple[int, int, int], tuple[int, int, int]]]  # inclusive (min, max) voxel coordinates
    block_shift: int = BLOCK_SHIFT

    def __len__(self) -> int:
        return len(self.rows)

    def touching(self, low: tuple[int, int, int], high: tuple[int, int, int]) -> list[int]:
        """The chunks whose voxel box meets the inclusive box ``low``..``high``."""
        return [index for index, (lo, hi) in enumerate(self.boxes)
                if all(a <= d and c <= b for a, b, c, d in zip(lo, hi, low, high, strict=True))]


DEFAULT_LIMITS = ChunkLimits()


def split_voxels(ijk: np.ndarray, limits: ChunkLimits = DEFAULT_LIMITS) -> Chunks:
    """The chunks of the voxels ``ijk`` (N, 3): one when N is at most ``limits.max_voxels``."""
    ijk = np.asarray(ijk).reshape(-1, 3)
    if len(ijk) <= limits.max_voxels:
        return Chunks([np.arange(len(ijk), dtype=np.int64)], [_box(ijk)], limits.block_shift)
    low = (ijk.min(axis=0) >> limits.block_shift).astype(np.int64)
    span = (ijk.max(axis=0) >> limits.block_shift).astype(np.int64) - low + 1
    if int(span.max()) > 1 << _MORTON_BITS:
        raise ValueError(f"active voxels span more than {1 << (_MORTON_BITS + limits.block_shift):,} voxels along an "
                         f"axis")

    def block_keys(start: int) -> np.ndarray:
        """One int64 key a voxel (its block) for rows ``start`` onwards, a slice at a time: memory stays near 12
        bytes a voxel, not several (N, 3) or (N,) int64 temporaries."""
        blocks = ijk[start:start + _ROWS] >> limits.block_shift
        return ((blocks[:, 0] - low[0]) * span[1] + (blocks[:, 1] - low[1])) * span[2] + (blocks[:, 2] - low[2])

    found = [np.unique(block_keys(start), return_counts=True) for start in range(0, len(ijk), _ROWS)]
    keys = np.unique(np.concatenate([k for k, _ in found]))
    counts = np.zeros(len(keys), np.int64)
    for block_key, block_count in found:
        np.add.at(counts, np.searchsorted(keys, block_key), block_count)
    del found
    coords = np.stack([keys // (span[1] * span[2]), keys // span[2] % span[1], keys % span[2]], axis=1)
    order = np.argsort(_morton(coords), kind="stable")
    chunk_of_block = np.empty(len(keys), np.int32)
    chunk_of_block[order] = _pack(coords[order], counts[order], limits)
    voxel_chunk = np.empty(len(ijk), np.int32)
    for start in range(0, len(ijk), _ROWS):
        voxel_chunk[start:start + _ROWS] = chunk_of_block[np.searchsorted(keys, block_keys(start))]
    # rows ascending within each chunk, as int32 where they fit: the frame's rows are held while its chunks are coded
    by_chunk = np.argsort(voxel_chunk, kind="stable").astype(np.int32 if len(ijk) < 1 << 31 else np.int64)
    ends = np.cumsum(np.bincount(voxel_chunk, minlength=int(chunk_of_block.max()) + 1))
    del voxel_chunk
    rows = np.split(by_chunk, ends[:-1])
    return Chunks(rows, [_box(ijk[r]) for r in rows], limits.block_shift)


def _pack(blocks: np.ndarray, counts: np.ndarray, limits: ChunkLimits) -> np.ndarray:
    """Chunk index of each block (in Morton order): greedy, a new chunk when adding the block would pass a limit."""
    side = 1 << limits.block_shift
    chunk_of = np.empty(len(blocks), np.int64)
    chunk, voxels = 0, 0
    low = high = blocks[0]
    for index, (block, count) in enumerate(zip(blocks, counts.tolist(), strict=True)):
        new_low, new_high = np.minimum(low, block), np.maximum(high, block)
        cells = int(np.prod((new_high - new_low + 1) * side, dtype=np.int64))
        if index and (voxels + count > limits.max_voxels or cells > limits.max_box):
            chunk, voxels = chunk + 1, 0
            new_low = new_high = block
        chunk_of[index] = chunk
        voxels += count
        low, high = new_low, new_high
    return chunk_of


def _box(ijk: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    if len(ijk) == 0:
        return (0, 0, 0), (-1, -1, -1)
    low, high = ijk.min(axis=0), ijk.max(axis=0)
    return (int(low[0]), int(low[1]), int(low[2])), (int(high[0]), int(high[1]), int(high[2]))


def _spread(value: np.ndarray) -> np.ndarray:
    """The bits of ``value`` (< 2**21) moved to every third position."""
    value = value.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):
        value = (value | (value << np.uint64(shift))) & np.uint64(mask)
    return value


def _morton(blocks: np.ndarray) -> np.ndarray:
    return (_spread(blocks[:, 0]) << np.uint64(2)) | (_spread(blocks[:, 1]) << np.uint64(1)) | _spread(blocks[:, 2])
