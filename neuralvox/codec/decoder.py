"""Sequence decoder: open a .nvox archive, decode any frame on its own, write frames back as .vdb files."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from neuralvox.codec.encoder import ARCHIVE_FORMAT, payload_key
from neuralvox.codec.values import decode_values, decode_weights, resolve_device
from neuralvox.codec.weights import QuantizedDecoder
from neuralvox.container import ArchiveError, ArchiveReader
from neuralvox.grid import SparseGrid
from neuralvox.sequence import NamePattern
from neuralvox.topology import decode_topology
from neuralvox.vdb import write_vdb


class Frame(Mapping[str, SparseGrid]):
    """One decoded frame: a mapping grid name -> SparseGrid, each grid decoded on first access."""

    def __init__(self, archive: NvoxArchive, number: int) -> None:
        self.archive = archive
        self.number = number
        self._entry = archive._entry(number)
        self._grids: dict[str, SparseGrid] = {}

    def __getitem__(self, name: str) -> SparseGrid:
        if name not in self._entry["grids"]:
            raise KeyError(f"frame {self.number} has no grid {name!r}; it has {', '.join(self._entry['grids'])}")
        if name not in self._grids:
            self._grids[name] = self.archive.decode_grid(self.number, name)
        return self._grids[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entry["grids"])

    def __len__(self) -> int:
        return len(self._entry["grids"])

    @property
    def file_name(self) -> str:
        return self._entry["file"]

    def write_vdb(self, path: str | os.PathLike, *, grids: Sequence[str] | None = None, half: bool = False,
                  force: bool = False) -> Path:
        """Write this frame's grids (all, or those named) to a .vdb file with the source's attributes."""
        names = list(self) if grids is None else list(grids)
        out = [self[name] for name in names]
        if half:
            out = [_with_half(g) for g in out]
        return write_vdb(path, out, metadata=self._entry["metadata"], metadata_types=self._entry["metadata_types"],
                         force=force)


def _with_half(grid: SparseGrid) -> SparseGrid:
    return SparseGrid(**{**grid.__dict__, "save_half": True})


class NvoxArchive:
    """A .nvox archive opened for decoding; ``frame(n)`` decodes frame number n without decoding other frames' voxels.

    Decoding a frame reads its own payloads, the topology payloads its topology was coded against (within its group)
    and its group's decoder weights: nothing else.
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        self.path = Path(path)
        self.reader = ArchiveReader(self.path)
        self.header: dict[str, Any] = self.reader.header
        if self.header.get("format") != ARCHIVE_FORMAT:
            self.reader.close()
            raise ArchiveError(f"{self.path}: archive format {self.header.get('format')!r} is not {ARCHIVE_FORMAT!r}")
        self.device = str(resolve_device(device))
        self._frames = {(f["number"] if f["number"] is not None else 0): f for f in self.header["frames"]}
        self._topology_cache: dict[tuple[int, str], np.ndarray] = {}
        self._weights_cache: dict[tuple[int, str], QuantizedDecoder] = {}

    def __enter__(self) -> NvoxArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()

    @property
    def frames(self) -> list[int]:
        return list(self._frames)

    @property
    def grids(self) -> list[str]:
        names: dict[str, None] = {}
        for entry in self._frames.values():
            names.update(dict.fromkeys(entry["grids"]))
        return list(names)

    @property
    def pattern(self) -> NamePattern:
        return NamePattern.from_dict(self.header["pattern"])

    def _entry(self, number: int) -> dict[str, Any]:
        if number not in self._frames:
            raise KeyError(f"{self.path}: no frame {number}; frames are {_span(self.frames)}")
        return self._frames[number]

    def frame(self, number: int) -> Frame:
        return Frame(self, number)

    def topology(self, number: int, grid: str) -> np.ndarray:
        """Active voxels (N, 3) of a grid in canonical order, decoding the reference chain it needs."""
        key = (number, grid)
        if key not in self._topology_cache:
            info = self._entry(number)["grids"][grid]
            reference = None if info["topology_ref"] is None else self.topology(*info["topology_ref"])
            data = self.reader.get(payload_key(number, grid, "topology"))
            try:
                self._topology_cache[key] = decode_topology(data, reference)
            except ValueError as exc:
                raise ArchiveError(f"{self.path}: frame {number}, grid '{grid}', stream 'topology': {exc}") from None
        return self._topology_cache[key]

    def _shared_decoder(self, number: int, grid: str, info: dict[str, Any]) -> QuantizedDecoder | None:
        owner = info["weights_from"]
        if owner is None or owner == number:
            return None
        if (owner, grid) not in self._weights_cache:
            values_header = self._entry(owner)["grids"][grid]["values"]
            data = self.reader.get(payload_key(owner, grid, "weights"))
            self._weights_cache[(owner, grid)] = decode_weights(values_header, data)
        return self._weights_cache[(owner, grid)]

    def decode_grid(self, number: int, grid: str) -> SparseGrid:
        """Decode one grid of one frame."""
        info = self._entry(number)["grids"][grid]
        ijk = self.topology(number, grid)
        streams = {name: self.reader.get(payload_key(number, grid, name)) for name in info["streams"]}
        shared = self._shared_decoder(number, grid, info)
        values = decode_values(ijk, info["values"], streams, device=self.device, shared_decoder=shared)
        background = info["background"]
        return SparseGrid(
            name=grid, ijk=ijk, values=values, grid_class=info["grid_class"], value_type=info["value_type"],
            transform=np.asarray(info["transform"]), save_half=info["save_half"], vector_type=info["vector_type"],
            background=tuple(background) if isinstance(background, list) else background,
            metadata={k: tuple(v) if isinstance(v, list) else v for k, v in info["metadata"].items()},
            metadata_types=info["metadata_types"],
        )

    def forget_before(self, number: int) -> None:
        """Drop cached topologies of frames before ``number`` (streaming decode keeps memory flat)."""
        for key in [k for k in self._topology_cache if k[0] < number]:
            del self._topology_cache[key]


def open_archive(path: str | os.PathLike, device: str = "auto") -> NvoxArchive:
    """Open a .nvox archive for decoding (``neuralvox.open``)."""
    return NvoxArchive(path, device=device)


def _span(numbers: list[int]) -> str:
    return f"{numbers[0]}-{numbers[-1]}" if numbers else "none"


def parse_frames(spec: str | None, available: list[int]) -> list[int]:
    """Frame numbers from "A-B", "A,B,C" or a mix; None means all. Unknown numbers are an error."""
    if spec is None:
        return list(available)
    wanted: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                first, last = part.split("-", 1) if not part.startswith("-") else ("-" + part[1:].split("-", 1)[0],
                                                                                     part[1:].split("-", 1)[1])
                wanted.extend(n for n in available if int(first) <= n <= int(last))
            else:
                wanted.append(int(part))
        except ValueError:
            raise ValueError(f"--frames {spec!r}: expected numbers like 12, 10-20 or 1,5,9") from None
    missing = sorted(set(wanted) - set(available))
    if missing or not wanted:
        raise ValueError(f"--frames {spec!r}: the archive has frames {_span(available)}")
    return sorted(set(wanted))


def decompress(archive_path: str | os.PathLike, output_dir: str | os.PathLike, *, frames: str | None = None,
               grids: Sequence[str] | None = None, half: bool = False, force: bool = False, device: str = "auto",
               progress: bool = True) -> list[Path]:
    """Write frames of an archive as .vdb files under their original names; returns the paths written."""
    output_dir = Path(output_dir)
    with open_archive(archive_path, device=device) as archive:
        numbers = parse_frames(frames, archive.frames)
        if grids is not None:
            unknown = sorted(set(grids) - set(archive.grids))
            if unknown:
                raise ValueError(f"{archive_path}: no grid named {', '.join(unknown)}; it has "
                                 f"{', '.join(archive.grids)}")
        targets = [output_dir / archive.frame(n).file_name for n in numbers]
        existing = [p for p in targets if p.exists()]
        if existing and not force:
            raise FileExistsError(f"{existing[0]}: exists (use --force to overwrite)")
        written = []
        for number, target in tqdm(list(zip(numbers, targets, strict=True)), desc="decompress", unit="frame",
                                   disable=not progress):
            frame = archive.frame(number)
            names = [g for g in (grids or frame) if g in frame]
            written.append(frame.write_vdb(target, grids=names, half=half, force=force))
            archive.forget_before(number)
        return written
