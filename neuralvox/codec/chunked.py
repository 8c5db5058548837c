"""Bounded values of a large grid coded in spatial chunks (``neuralvox.codec.chunks``), each on its own.

A grid that is one chunk is coded exactly as ``bounded.encode_grid`` codes it (its header and one ``values`` stream).
A larger one has a ``neuralvox-chunked/2`` header listing each chunk's bounded header, and one stream a chunk,
``values.<k>``; the decoder splits the decoded topology the same way and checks every chunk against the header.
Each chunk is made of whole blocks (``chunks.BLOCK_SHIFT``), so a fog volume's chunk knows its inactive voxels inside
its own blocks (they hold the background) and only those outside them are unknown (a neighbouring chunk may hold
them); ``neuralvox-chunked/1`` (still read) left every inactive voxel of a chunk unknown, 2-7% more bits.
Every chunk of a grid is coded under the grid's one context model (fitted in the main process before any chunk is
sent), so each chunk header names the same ``context_frame``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from neuralvox.codec import bounded
from neuralvox.codec.arm import ArmWeights
from neuralvox.codec.chunks import DEFAULT_LIMITS, ChunkLimits, Chunks, split_voxels
from neuralvox.codec.temporal import TimeReference
from neuralvox.grid import SparseGrid

FORMAT = "neuralvox-chunked/2"
FORMATS = ("neuralvox-chunked/1", FORMAT)
STREAM = "values"
MAX_CHUNKS = 1 << 20
MAX_BLOCK_SHIFT = 10


def chunk_stream(index: int) -> str:
    return f"{STREAM}.{index}"


@dataclasses.dataclass(frozen=True)
class ChunkCode:
    """One chunk's bounded coding: its index, header, stream, the values as decoded and the seconds it took."""

    index: int
    header: bounded.BoundedHeader
    stream: bytes
    decoded: np.ndarray
    seconds: float = 0.0
    time_saving: int | None = None  # coded with a time reference: the bytes the time mode saved (0: it was off)


@dataclasses.dataclass(frozen=True)
class ChunkedHeader:
    """What decoding a chunked grid needs besides the topology and the chunks' streams."""

    FORMAT: ClassVar[str] = FORMAT

    voxels: int
    limits: ChunkLimits
    chunks: tuple[bounded.BoundedHeader, ...]
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "voxels": self.voxels, "max_voxels": self.limits.max_voxels,
                "max_box": self.limits.max_box, "block_shift": self.limits.block_shift,
                "chunks": [c.to_dict() for c in self.chunks]}

    @property
    def context_frame(self) -> int | None:
        """The frame whose ``context`` stream holds the context model of every chunk."""
        return self.chunks[0].context_frame

    @property
    def channels(self) -> int:
        return self.chunks[0].channels

    @classmethod
    def from_dict(cls, header: dict[str, Any]) -> ChunkedHeader:
        if header.get("format") not in FORMATS:
            raise ValueError(f"value header format {header.get('format')!r} is not one of {', '.join(FORMATS)}")
        chunks = header["chunks"]
        if not isinstance(chunks, list) or not 2 <= len(chunks) <= MAX_CHUNKS:
            raise ValueError(f"chunked value header lists {len(chunks) if isinstance(chunks, list) else 'no'} chunks, "
                             f"not 2..{MAX_CHUNKS}")
        limits = ChunkLimits(_positive(header, "max_voxels"), _positive(header, "max_box"),
                             _positive(header, "block_shift"))
        if limits.block_shift > MAX_BLOCK_SHIFT:
            raise ValueError(f"chunked value header: block_shift {limits.block_shift} is above {MAX_BLOCK_SHIFT}")
        parsed = tuple(bounded.BoundedHeader.from_dict(c) for c in chunks)
        if any(c.time_frame is not None for c in parsed):
            raise ValueError("chunked value header: a chunk is never predicted from another frame")
        if len({c.context_frame for c in parsed}) != 1:
            raise ValueError("chunked value header: the chunks name different context frames")
        return cls(_positive(header, "voxels"), limits, parsed, header["format"])


def _positive(header: dict[str, Any], field: str) -> int:
    value = header.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"chunked value header field {field!r} is {value!r}, not a positive integer")
    return value


@dataclasses.dataclass(frozen=True)
class ChunkContext:
    """The context model every chunk of a grid is coded under (None: the counting model) and the frame sending it."""

    weights: ArmWeights | None = None
    frame: int | None = None


COUNTING = ChunkContext()


def encode_chunk(grid: SparseGrid, chunks: Chunks, index: int, bound: float | tuple[float, ...],
                 context: ChunkContext = COUNTING) -> ChunkCode:
    """The bounded coding of chunk ``index`` of ``grid`` (voxels in canonical order)."""
    if len(chunks) == 1:
        return encode_part(grid, index, bound, context, block_shift=None)
    rows = chunks.rows[index]
    return encode_part(dataclasses.replace(grid, ijk=grid.ijk[rows], values=grid.values[rows]), index, bound,
                       context, block_shift=chunks.block_shift)


def encode_part(part: SparseGrid, index: int, bound: float | tuple[float, ...], context: ChunkContext, *,
                block_shift: int | None, reference: TimeReference | None = None) -> ChunkCode:
    """The bounded coding of the voxels ``part`` holds: a whole grid (``block_shift`` None) as
    ``bounded.encode_grid`` codes it, or one chunk of several, made of blocks of ``2**block_shift`` voxels a side:
    inactive voxels inside its blocks are known as in the whole grid, those outside unknown (they may be active in a
    neighbouring chunk: taking them for the background cost 16% more bits on a 10M-voxel smoke frame).
    ``reference`` (a whole grid only): the frame its leaves may be predicted from in the time mode."""
    start = time.perf_counter()
    if block_shift is None:
        code = bounded.encode_grid(part, bound, context.weights, reference=reference)
    else:
        code = bounded.encode_bounded(part.ijk, part.values, bound, background=part.background,
                                      inactive_known=part.grid_class != "level set", context=context.weights,
                                      known_blocks=block_shift)
    header = dataclasses.replace(code.header, context_frame=context.frame)
    saving = None if code.spatial_size is None else code.spatial_size - len(code.stream)
    return ChunkCode(index, header, code.stream, code.decoded, time.perf_counter() - start, saving)


@dataclasses.dataclass(frozen=True)
class SamplePiece:
    """What a context model's fit or a bound search codes of a sample grid: the grid, or of one coded in chunks its
    middle chunk (a fit looks at a few tens of thousands of codes: a whole 50M-voxel frame would only cost memory),
    with the share of the grid's voxels it holds."""

    grid: SparseGrid
    share: float = 1.0
    block_shift: int | None = None  # None: the whole grid

    def encode(self, bound: float, context: ArmWeights | None = None,
               record: list[bounded.TrainingPass] | None = None) -> bounded.BoundedCode:
        """The piece coded as the archive codes it: whole, or as one chunk of several."""
        if self.block_shift is None:
            return bounded.encode_grid(self.grid, bound, context, record)
        grid = self.grid
        return bounded.encode_bounded(grid.ijk, grid.values, bound, background=grid.background,
                                      inactive_known=grid.grid_class != "level set", context=context, record=record,
                                      known_blocks=self.block_shift)


def sample_piece(grid: SparseGrid, limits: ChunkLimits = DEFAULT_LIMITS) -> SamplePiece:
    """The grid (voxels in canonical order), or, split into chunks, its middle chunk."""
    chunks = split_voxels(grid.ijk, limits)
    if len(chunks) == 1:
        return SamplePiece(grid)
    rows = chunks.rows[len(chunks) // 2]
    return SamplePiece(dataclasses.replace(grid, ijk=grid.ijk[rows], values=grid.values[rows]),
                       len(rows) / grid.voxel_count, chunks.block_shift)


ChunkedValues = bounded.BoundedHeader | ChunkedHeader


def assemble(grid: SparseGrid, chunks: Chunks, codes: Iterable[ChunkCode],
             limits: ChunkLimits) -> tuple[ChunkedValues, dict[str, bytes], np.ndarray]:
    """The value header, streams and decoded values of a grid from its chunks' codings (in any order)."""
    by_index = {code.index: code for code in codes}
    if sorted(by_index) != list(range(len(chunks))):
        raise ValueError(f"chunk codings {sorted(by_index)} do not cover the {len(chunks)} chunks")
    if len(chunks) == 1:
        only = by_index[0]
        return only.header, {STREAM: only.stream}, only.decoded
    decoded = np.empty_like(grid.values)
    for index, rows in enumerate(chunks.rows):
        decoded[rows] = by_index[index].decoded
    header = ChunkedHeader(grid.voxel_count, limits, tuple(by_index[i].header for i in range(len(chunks))))
    streams = {chunk_stream(i): by_index[i].stream for i in range(len(chunks))}
    return header, streams, decoded


def chunks_of(ijk: np.ndarray, header: ChunkedValues) -> Chunks:
    """The chunks a decoder splits the decoded voxels ``ijk`` into, checked against the value header."""
    if not isinstance(header, ChunkedHeader):
        return split_voxels(ijk, ChunkLimits(max(1, len(ijk)), 1))
    if header.voxels != len(ijk):
        raise ValueError(f"value header is for {header.voxels} voxels, topology gives {len(ijk)}")
    chunks = split_voxels(ijk, header.limits)
    if len(chunks) != len(header.chunks):
        raise ValueError(f"value header lists {len(header.chunks)} chunks, the topology splits into {len(chunks)}")
    return chunks


def chunk_headers(header: ChunkedValues) -> tuple[bounded.BoundedHeader, ...]:
    """The bounded header of each chunk."""
    return header.chunks if isinstance(header, ChunkedHeader) else (header,)


def stream_names(header: ChunkedValues) -> list[str]:
    """The streams a grid's bounded values are coded in."""
    if not isinstance(header, ChunkedHeader):
        return [STREAM]
    return [chunk_stream(i) for i in range(len(header.chunks))]


def known_blocks(header: ChunkedValues) -> int | None:
    """The blocks (``2**shift`` voxels a side) inside which a chunk's inactive voxels are known, as its coding took
    them: None for a grid coded whole (known everywhere, or nowhere, as its bounded header says) and for
    ``neuralvox-chunked/1``, whose chunks' headers say nowhere."""
    if not isinstance(header, ChunkedHeader) or header.format != FORMAT:
        return None
    return header.limits.block_shift


def decode_chunk(ijk: np.ndarray, header: ChunkedValues, chunks: Chunks, index: int, stream: bytes,
                 context: ArmWeights | None = None) -> np.ndarray:
    """The decoded values of chunk ``index`` (``context``: the grid's context model, if its header names one)."""
    if not isinstance(header, ChunkedHeader):
        return bounded.decode_bounded(ijk, header, stream, context)
    return bounded.decode_bounded(ijk[chunks.rows[index]], header.chunks[index], stream, context,
                                  known_blocks=known_blocks(header))
