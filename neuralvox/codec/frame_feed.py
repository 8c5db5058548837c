"""Frames read ahead of the sequence loop, their bounded values already being coded by the engine's workers.

The loop gets frames in order; while it stores one, the next few are read and their chunks coded in parallel. How
far ahead is bounded by voxels and frames, so memory does not grow with the sequence: a frame of tens of millions
of voxels is read only once the frames before it are stored.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from neuralvox.codec.chunks import CHUNK_VOXELS
from neuralvox.codec.value_jobs import PendingValues, ValueJobs
from neuralvox.grid import SparseGrid
from neuralvox.sequence import Frame
from neuralvox.vdb import VdbFile

AHEAD_VOXELS_PER_WORKER = 2 * CHUNK_VOXELS


@dataclasses.dataclass
class FedFrame:
    """One input frame: the file read (None when left out), its coded grids prepared, and their pending values."""

    frame: Frame
    vdb: VdbFile | None
    grids: dict[str, SparseGrid]
    pending: dict[str, PendingValues]

    @property
    def voxels(self) -> int:
        return sum(g.voxel_count for g in self.grids.values())


def feed_frames(frames: Iterable[Frame], read: Callable[[Frame], VdbFile | None],
                prepare: Callable[[Frame, VdbFile], dict[str, SparseGrid]], jobs: ValueJobs | None,
                submit: Callable[[Frame, SparseGrid], PendingValues]) -> Iterator[FedFrame]:
    """Frames in order, each read by ``read`` and its coded grids made by ``prepare``; with ``jobs`` (bounded values)
    each grid's coding is submitted by ``submit`` as soon as the frame is read, up to a few frames ahead of the one
    yielded."""
    workers = jobs.engine.workers if jobs is not None else 1
    max_frames = 1 if workers == 1 else 2 * workers
    max_voxels = AHEAD_VOXELS_PER_WORKER * workers
    ahead: deque[FedFrame] = deque()
    for frame in frames:
        vdb = read(frame)
        grids = prepare(frame, vdb) if vdb is not None else {}
        pending = {}
        if jobs is not None:
            pending = {name: submit(frame, grid) for name, grid in grids.items()}
        ahead.append(FedFrame(frame, vdb, grids, pending))
        while ahead and (len(ahead) >= max_frames or sum(f.voxels for f in ahead) >= max_voxels):
            yield ahead.popleft()
    while ahead:
        yield ahead.popleft()
