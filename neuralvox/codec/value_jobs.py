"""The bounded value coding of a sequence's grids as engine tasks (``neuralvox.parallel``), one per chunk or batch.

On this machine (a serial or local pool engine) a task carries its chunk's voxels; on Ray a task carries the frame's
path, and the worker reads the grid from the file system it shares with the client and codes its batch of chunks.
Either way each chunk is coded by ``chunked.encode_chunk`` under the grid's context model, fitted in the main process
and sent with the task, from the grid's coarse layer, coded in the main process first (its share of the layer goes
with the task), so the bytes do not depend on the engine.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from neuralvox.codec import bounded
from neuralvox.codec.arm import ArmWeights
from neuralvox.codec.chunked import (
    ChunkCode,
    ChunkContext,
    ChunkedValues,
    CoarseCode,
    CoarseLayer,
    assemble,
    encode_chunk,
    encode_coarse,
    encode_part,
)
from neuralvox.codec.chunks import DEFAULT_LIMITS, ChunkLimits, Chunks, split_voxels
from neuralvox.codec.temporal import TimeReference
from neuralvox.grid import SparseGrid
from neuralvox.parallel import Engine, RayEngine, release_free_memory
from neuralvox.vdb import read_vdb


class ChunkVoxels:
    """The voxels of one chunk, cut from the grid only when its task runs or is sent to a worker (a pool then holds
    copies of the few chunks being sent, not of the whole frame), and its share of the grid's coarse layer."""

    def __init__(self, grid: SparseGrid, rows: np.ndarray | None, seed: bounded.Seed | None = None) -> None:
        self.whole, self.rows, self.seed = grid, rows, seed

    def grid(self) -> SparseGrid:
        if self.rows is None:
            return self.whole
        return dataclasses.replace(self.whole, ijk=self.whole.ijk[self.rows], values=self.whole.values[self.rows])

    def __reduce__(self) -> tuple[Any, ...]:
        return ChunkVoxels, (self.grid(), None, self.seed)


def code_chunk(part: ChunkVoxels, index: int, bound: float | tuple[float, ...], context: ChunkContext,
               block_shift: int | None) -> list[ChunkCode]:
    """Task: the coding of one chunk (``block_shift`` None: the whole grid)."""
    return [encode_part(part.grid(), index, bound, context, block_shift=block_shift, seed=part.seed)]


def code_chunks_from_file(path: str, name: str, bound: float | tuple[float, ...], context: ChunkContext,
                          indices: list[int], limits: ChunkLimits, coarse: CoarseLayer) -> list[ChunkCode]:
    """Task: read grid ``name`` of the frame at ``path`` and code its chunks ``indices`` from its ``coarse`` layer."""
    grid = read_vdb(path, [name], warn_skipped=False).grids[name].sorted()
    chunks = split_voxels(grid.ijk, limits)
    return [encode_chunk(grid, chunks, index, bound, context, coarse) for index in indices]


@dataclasses.dataclass(frozen=True)
class Deferred:
    """A grid left to be coded in this process once the previous frame is coded: its bound and context model."""

    bound: float | tuple[float, ...]
    context: ChunkContext


@dataclasses.dataclass
class PendingValues:
    """A grid whose chunks are being coded: the grid, its chunks and the engine's handles of their tasks; or, for the
    time mode, what coding it later needs (``deferred``)."""

    grid: SparseGrid
    chunks: Chunks
    handles: list[Any]
    deferred: Deferred | None = None
    coarse: CoarseCode | None = None  # of several chunks


@dataclasses.dataclass(frozen=True)
class CollectedValues:
    """A grid's bounded coding: value header, streams, decoded values, the seconds its chunks took to code (summed
    over workers), and the bytes the time mode saved (None: it was not tried)."""

    header: ChunkedValues
    streams: dict[str, bytes]
    decoded: np.ndarray
    seconds: float
    time_saving: int | None


class ValueJobs:
    """Submits the chunks of each grid to an engine and assembles the codings in the order they were submitted."""

    def __init__(self, engine: Engine, limits: ChunkLimits = DEFAULT_LIMITS) -> None:
        self.engine = engine
        self.limits = limits
        self.on_ray = isinstance(engine, RayEngine)

    def submit(self, path: Path, grid: SparseGrid, bound: float | tuple[float, ...],
               context: ChunkContext, defer: bool = False) -> PendingValues:
        """Start coding ``grid`` (voxels in canonical order) under ``context``, read from the frame at ``path`` on
        Ray; ``defer``: a grid of one chunk is instead coded by ``collect``, in this process, where it may be
        predicted from the previous frame (the time mode)."""
        chunks = split_voxels(grid.ijk, self.limits)
        release_free_memory()  # the split's temporaries, before the chunks are coded
        if defer and len(chunks) == 1:
            return PendingValues(grid, chunks, [], Deferred(bound, context))
        if len(chunks) == 1:
            return PendingValues(grid, chunks, [self.engine.submit(code_chunk, ChunkVoxels(grid, None), 0, bound,
                                                                   context, None)])
        coarse = encode_coarse(grid, bound, context)
        release_free_memory()  # the coarse layer's passes and its model's fit, before the chunks are sent
        if self.on_ray:
            batches = np.array_split(np.arange(len(chunks)), min(len(chunks), self.engine.workers))
            where = str(Path(path).resolve())
            handles = [self.engine.submit(code_chunks_from_file, where, grid.name, bound, context, b.tolist(),
                                          self.limits, coarse.layer)
                       for b in batches]
        else:
            handles = [self.engine.submit(code_chunk, ChunkVoxels(grid, rows, coarse.layer.seed(chunks.boxes[i])), i,
                                          bound, context, chunks.block_shift)
                       for i, rows in enumerate(chunks.rows)]
        return PendingValues(grid, chunks, handles, coarse=coarse)

    def collect(self, pending: PendingValues, reference: TimeReference | None = None) -> CollectedValues:
        """The coding of a submitted grid (waits for its tasks); a deferred one is coded here, predicted from
        ``reference`` where that pays."""
        if pending.deferred is not None:
            codes = [encode_part(pending.grid, 0, pending.deferred.bound, pending.deferred.context, block_shift=None,
                                 reference=reference)]
        else:
            codes = [code for handle in pending.handles for code in self.engine.result(handle)]
        header, streams, decoded = assemble(pending.grid, pending.chunks, codes, self.limits, pending.coarse)
        seconds = sum(code.seconds for code in codes) + (0.0 if pending.coarse is None else pending.coarse.seconds)
        return CollectedValues(header, streams, decoded, seconds, codes[0].time_saving)


class ChunkTopology:
    """The voxels of one chunk, cut from the decoded topology only when its decoding task runs or is sent."""

    def __init__(self, ijk: np.ndarray, rows: np.ndarray | None) -> None:
        self.whole, self.rows = ijk, rows

    def ijk(self) -> np.ndarray:
        return self.whole if self.rows is None else self.whole[self.rows]

    def __reduce__(self) -> tuple[Any, ...]:
        return ChunkTopology, (self.ijk(), None)


def decode_chunk(part: ChunkTopology, header: bounded.BoundedHeader, stream: bytes,
                 context: ArmWeights | None, known_blocks: int | None, seed: bounded.Seed | None = None,
                 reference: TimeReference | None = None) -> np.ndarray:
    """Task: the values of one chunk from its bounded header, stream and the grid's context model
    (``chunked.known_blocks``; ``chunked.chunk_seed``; and the decoded frame it is predicted from, in the time
    mode)."""
    return bounded.decode_bounded(part.ijk(), header, stream, context, reference=reference, known_blocks=known_blocks,
                                  seed=seed)
