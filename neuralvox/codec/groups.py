"""Group policy of the neural base: where a group of frames (one keyframe, then predicted frames) ends."""

from __future__ import annotations

import math

from neuralvox.codec.header import FrameEntry

DEFAULT_GOP = "auto"
MAX_AUTO_GOP = 32  # an automatic group ends after this many frames (random access decodes up to this many latents)


def check_gop(gop: int | str) -> int | str:
    if gop == "auto":
        return gop
    try:
        value = int(gop)
    except (TypeError, ValueError):
        raise ValueError(f"--gop must be 'auto' or a number of frames, got {gop!r}") from None
    if value < 1:
        raise ValueError(f"--gop must be at least 1, got {value}")
    return value


class AutoGroup:
    """When ``--gop auto`` ends a group, after a predicted frame: when it costs as many value bits per active voxel as
    its keyframe, when a grid's PSNR falls more than ``MAX_PSNR_DROP`` below the keyframe's, or when the frame has
    grown past ``MAX_GROWTH`` times the keyframe's active voxels (the keyframe's decoder no longer fits it)."""

    MAX_PSNR_DROP = 1.0
    MAX_GROWTH = 1.5

    def __init__(self) -> None:
        self.key: tuple[float, int, dict[str, float]] = (0.0, 0, {})

    def ends_after(self, entry: FrameEntry) -> bool:
        grids = entry.grids.values()
        voxels = max(1, sum(info.voxels for info in grids))
        coded = sum(info.stats.value_bytes for info in grids if info.stats is not None)
        psnr = {name: info.stats.error.psnr for name, info in entry.grids.items() if info.stats is not None}
        if entry.key:
            self.key = (coded / voxels, voxels, psnr)
            return False
        key_cost, key_voxels, key_psnr = self.key
        dropped = any(math.isfinite(key_psnr.get(name, math.inf)) and value < key_psnr[name] - self.MAX_PSNR_DROP
                      for name, value in psnr.items())
        return coded / voxels >= key_cost or voxels > self.MAX_GROWTH * key_voxels or dropped


class GroupPolicy:
    """Counts the frames of the current group and says when the next frame starts a new one: ``gop`` frames per
    group, or with "auto" when ``AutoGroup`` says prediction stopped paying, at most ``MAX_AUTO_GOP``. Bounded values
    (``grouped`` False) need no groups: the group only limits how far back topology references reach."""

    def __init__(self, gop: int | str, grouped: bool) -> None:
        self.gop = check_gop(gop)
        self.grouped = grouped
        self.length = 0
        self.auto = AutoGroup()

    @property
    def starts_group(self) -> bool:
        """Whether the next frame is a keyframe."""
        return self.length == 0

    def frame_coded(self, entry: FrameEntry) -> None:
        self.length += 1
        ends = self.auto.ends_after(entry) if self.gop == "auto" and self.grouped else False
        if ends or self.length == (MAX_AUTO_GOP if self.gop == "auto" else self.gop):
            self.length = 0
