"""Whether a grid's values are coded over the neural base (``codec/based.py``), per grid and group of frames."""

from __future__ import annotations

import warnings

from neuralvox.codec.based import BasedCoding, encode_based
from neuralvox.codec.chunked import ChunkContext, ChunkedHeader
from neuralvox.codec.header import CONTEXT
from neuralvox.codec.values import EncodedValues
from neuralvox.grid import SparseGrid

BASE_MODES = ("auto", "off", "on")
DEFAULT_BASE = "off"
# A low base has cost 0.53-2.3 bits per voxel on every grid measured (benchmarks/RESULTS.md, issue 14): a frame whose
# bounded coding alone takes fewer cannot be coded in fewer over a base.
MIN_BASE_BPV = 0.5


def check_base(base: str | None, base_only: bool) -> str:
    """The base mode asked for (None: the default), refused with ``--base-only`` or when not one of ``BASE_MODES``."""
    if base is None:
        return DEFAULT_BASE
    if base_only:
        raise ValueError("--base chooses a neural base under the error bound; --base-only codes with the base alone: "
                         "drop one of them")
    if base not in BASE_MODES:
        raise ValueError(f"--base must be one of {', '.join(BASE_MODES)}, got {base!r}")
    return base


class BaseChoice:
    """``on``: every grid that can be (one chunk, not constant) is coded over the base. ``auto``: the first frame of
    a grid in each group of frames is coded both ways (a trial, skipped where the bounded coding alone costs under
    ``MIN_BASE_BPV``); where the base paid, each later frame of the group is also coded both ways and the shorter
    kept, else the group is coded without it. ``off``: never (the archive is byte for byte what it was before)."""

    def __init__(self, mode: str, device: str) -> None:
        self.mode, self.device = mode, device
        self.group: dict[str, bool] = {}  # grid -> whether the base paid on the group's first frame
        self.warned: set[str] = set()

    def start_group(self) -> None:
        self.group.clear()

    def code(self, grid: SparseGrid, alone: EncodedValues, bound: float, context: ChunkContext
             ) -> tuple[BasedCoding | None, float]:
        """The coding over the base to keep instead of ``alone`` (the grid's bounded coding) or None, and the
        seconds spent on the base whether kept or not."""
        if self.mode == "off":
            return None, 0.0
        if isinstance(alone.header, ChunkedHeader):
            if self.mode == "on" and grid.name not in self.warned:
                self.warned.add(grid.name)
                warnings.warn(f"grid {grid.name}: coded in chunks ({grid.voxel_count} voxels), which are never coded "
                              "over the neural base", stacklevel=4)
            return None, 0.0
        alone_bytes = sum(len(data) for stream, data in alone.streams.items() if stream != CONTEXT)
        if self.mode == "auto":
            decided = self.group.get(grid.name)
            if decided is None and 8 * alone_bytes < MIN_BASE_BPV * grid.voxel_count:
                decided = self.group[grid.name] = False
            if decided is False:
                return None, 0.0
        coded = encode_based(grid, bound, context, self.device)
        seconds = 0.0 if coded is None else coded.seconds
        if self.mode == "on":
            return coded, seconds
        pays = coded is not None and coded.value_bytes < alone_bytes
        self.group.setdefault(grid.name, pays)
        return (coded if pays else None), seconds
