"""The bounded value coding of a sequence's grids as engine tasks (``neuralvox.parallel``), one per chunk or batch.

On this machine (a serial or local pool engine) a task carries its chunk's voxels; on Ray a task carries the frame's
path, and the worker reads the grid from the file system it shares with the client and codes its batch of chunks.
Either way each chunk is coded by ``chunked.encode_chunk``, so the bytes do not depend on the engine.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from neuralvox.codec.chunked import ChunkCode, assemble, encode_chunk, encode_part
from neuralvox.codec.chunks import DEFAULT_LIMITS, ChunkLimits, Chunks, split_voxels
from neuralvox.grid import SparseGrid
from neuralvox.parallel import Engine, RayEngine
from neuralvox.vdb import read_vdb


def code_chunk(part: SparseGrid, index: int, bound: float | tuple[float, ...], alone: bool) -> list[ChunkCode]:
    """Task: the coding of one chunk whose voxels ``part`` holds (``alone``: the whole grid)."""
    return [encode_part(part, index, bound, alone=alone)]


def code_chunks_from_file(path: str, name: str, bound: float | tuple[float, ...], indices: list[int],
                          limits: ChunkLimits) -> list[ChunkCode]:
    """Task: read grid ``name`` of the frame at ``path`` and code its chunks ``indices``."""
    grid = read_vdb(path, [name], warn_skipped=False).grids[name].sorted()
    chunks = split_voxels(grid.ijk, limits)
    return [encode_chunk(grid, chunks, index, bound) for index in indices]


@dataclasses.dataclass
class PendingValues:
    """A grid whose chunks are being coded: the grid, its chunks and the engine's handles of their tasks."""

    grid: SparseGrid
    chunks: Chunks
    handles: list[Any]


class ValueJobs:
    """Submits the chunks of each grid to an engine and assembles the codings in the order they were submitted."""

    def __init__(self, engine: Engine, limits: ChunkLimits = DEFAULT_LIMITS) -> None:
        self.engine = engine
        self.limits = limits
        self.on_ray = isinstance(engine, RayEngine)

    def submit(self, path: Path, grid: SparseGrid, bound: float | tuple[float, ...]) -> PendingValues:
        """Start coding ``grid`` (voxels in canonical order), read from the frame at ``path`` on Ray."""
        chunks = split_voxels(grid.ijk, self.limits)
        if self.on_ray:
            batches = np.array_split(np.arange(len(chunks)), min(len(chunks), self.engine.workers))
            handles = [self.engine.submit(code_chunks_from_file, str(path), grid.name, bound, b.tolist(), self.limits)
                       for b in batches]
        else:
            handles = [self.engine.submit(code_chunk, _part(grid, chunks, i), i, bound, len(chunks) == 1)
                       for i in range(len(chunks))]
        return PendingValues(grid, chunks, handles)

    def collect(self, pending: PendingValues) -> tuple[dict[str, Any], dict[str, bytes], np.ndarray]:
        """The value header, streams and decoded values of a submitted grid (waits for its tasks)."""
        codes = [code for handle in pending.handles for code in self.engine.result(handle)]
        return assemble(pending.grid, pending.chunks, codes, self.limits)


def _part(grid: SparseGrid, chunks: Chunks, index: int) -> SparseGrid:
    if len(chunks) == 1:
        return grid
    rows = chunks.rows[index]
    return dataclasses.replace(grid, ijk=grid.ijk[rows], values=grid.values[rows])
