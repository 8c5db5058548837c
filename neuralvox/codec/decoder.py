"""Sequence decoder: open a .nvox archive, decode any frame on its own, write frames back as .vdb files."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import warp as wp
from tqdm import tqdm

from neuralvox.codec import bounded
from neuralvox.codec.arm import ArmWeights
from neuralvox.codec.header import (
    CONTEXT,
    MOTION,
    VALUES,
    WEIGHTS,
    ArchiveHeader,
    ArchiveSummary,
    FrameEntry,
    GridEntry,
    NeuralValueHeader,
    payload_key,
)
from neuralvox.codec.schema import check_header, check_summary, is_plain_name
from neuralvox.codec.values import (
    STATE_STREAMS,
    LatentState,
    decode_state,
    decode_values,
    decode_weights,
    fused_decoder,
    motion_compensated_voxels,
)
from neuralvox.codec.weights import QuantizedDecoder
from neuralvox.container import ArchiveError, ArchiveReader
from neuralvox.device import resolve_device
from neuralvox.grid import VECTOR_TYPES, SparseGrid
from neuralvox.kernels.sample import sample_grid
from neuralvox.kernels.volume import grid_to_volume
from neuralvox.model.geometry import find_rows
from neuralvox.sequence import NamePattern
from neuralvox.topology import decode_topology
from neuralvox.vdb import VdbError, list_grids, write_nvdb, write_vdb

OUTPUT_FORMATS = ("vdb", "nvdb")
_Plan = list[tuple[Path, list[str]]]  # the files of one output frame and the grids each holds


@dataclasses.dataclass(frozen=True)
class ArchiveInfo:
    """An archive at a glance: file size, frame numbers, the recorded summary, bytes per stream name."""

    path: Path
    bytes: int
    frames: list[int | None]
    summary: ArchiveSummary
    stream_bytes: dict[str, int]


class Frame(Mapping[str, SparseGrid]):
    """One decoded frame: a mapping grid name -> SparseGrid, each grid decoded on first access."""

    def __init__(self, archive: NvoxArchive, number: int) -> None:
        self.archive = archive
        self.number = number
        self.entry = archive.entry(number)
        self._grids: dict[str, SparseGrid] = {}
        self._voxel_decoders: dict[str, Callable[[np.ndarray], np.ndarray]] = {}

    def __getitem__(self, name: str) -> SparseGrid:
        self._grid_info(name)
        if name not in self._grids:
            try:
                self._grids[name] = self.archive.decode_grid(self.number, name)
            except (ValueError, KeyError, IndexError, TypeError) as exc:  # never "absent": say where decoding failed
                message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
                raise ArchiveError(f"{self.archive.path}: frame {self.number}, grid {name!r}: {message}") from exc
        return self._grids[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entry.grids  # from the header: Mapping's default would decode the grid

    def __iter__(self) -> Iterator[str]:
        return iter(self.entry.grids)

    def __len__(self) -> int:
        return len(self.entry.grids)

    @property
    def file_name(self) -> str:
        return self.entry.file

    def write_vdb(self, path: str | os.PathLike, *, grids: Sequence[str] | None = None, half: bool = False,
                  force: bool = False) -> Path:
        """Write this frame's grids (all, or those named) to a .vdb file with the source's attributes."""
        names = list(self) if grids is None else list(grids)
        out = [self[name] for name in names]
        if half:
            out = [_with_half(g) for g in out]
        return write_vdb(path, out, metadata=dict(self.entry.metadata), metadata_types=dict(self.entry.metadata_types),
                         force=force)

    # -- random access and Warp volumes (neuralvox.kernels)

    def sample(self, world_points: np.ndarray, grid: str = "density", mode: str = "trilinear") -> np.ndarray:
        """Values of ``grid`` at world positions (P, 3): (P,) or (P, 3) float32. Decodes the grid's topology and
        latents, then runs the decoder only at the active voxels the points touch. ``mode`` "nearest" reads the voxel
        containing each point, "trilinear" interpolates the 8 voxels around it; inactive voxels read as the
        background."""
        info = self._grid_info(grid)
        return sample_grid(self.archive.topology(self.number, grid), np.asarray(info.transform), info.background,
                           self._voxel_decoder(grid), world_points, mode)

    def to_warp_volume(self, grid: str = "density", device: str = "cpu") -> wp.Volume:
        """The decoded grid as a Warp (NanoVDB) volume on ``device``: see ``neuralvox.kernels.grid_to_volume``."""
        return grid_to_volume(self[grid], device)

    def _grid_info(self, grid: str) -> GridEntry:
        if grid not in self.entry.grids:
            raise KeyError(f"frame {self.number} has no grid {grid!r}; it has {', '.join(self.entry.grids)}")
        return self.entry.grids[grid]

    def _voxel_decoder(self, grid: str) -> Callable[[np.ndarray], np.ndarray]:
        """Values (K, channels) of any active voxels (K, 3) of ``grid``, through the fused kernel."""
        if grid not in self._voxel_decoders:
            info = self._grid_info(grid)
            header = info.values
            if isinstance(header, NeuralValueHeader) and header.constant is not None:
                constant = np.asarray(header.constant, dtype=np.float32)
                self._voxel_decoders[grid] = lambda voxels: np.broadcast_to(constant, (len(voxels), len(constant)))
            elif info.is_bounded:
                self._voxel_decoders[grid] = _lookup(self[grid])
            else:
                archive = self.archive
                self._voxel_decoders[grid] = fused_decoder(
                    archive.topology(self.number, grid), info.neural, archive.weight_streams(self.number, grid),
                    torch.device(archive.device), archive.shared_decoder(self.number, grid),
                    archive.latent_state(self.number, grid)).decode
        return self._voxel_decoders[grid]


def _lookup(grid: SparseGrid) -> Callable[[np.ndarray], np.ndarray]:
    """Values (K, channels) of active voxels (K, 3) of a decoded grid."""
    columns = grid.values.reshape(grid.voxel_count, grid.channels)
    ijk = torch.from_numpy(grid.ijk)
    return lambda voxels: columns[find_rows(ijk, torch.from_numpy(np.asarray(voxels, np.int32))).numpy()]


def _with_half(grid: SparseGrid) -> SparseGrid:
    return dataclasses.replace(grid, save_half=True)


class NvoxArchive:
    """A .nvox archive opened for decoding; ``frame(n)`` decodes frame number n without decoding other frames' voxels.

    Decoding a frame reads its own payloads, the topology payloads its topology was coded against (within its group),
    its group's decoder weights, and for a predicted frame the topology, motion and residual payloads of the frames
    back to its keyframe, whose latents (not voxels) it decodes: nothing else.
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        self.path = Path(path)
        self.reader = ArchiveReader(self.path)
        try:
            self.header: ArchiveHeader = check_header(self.path, self.reader.header,
                                                      {key: self.reader.nbytes(key) for key in self.reader})
        except ArchiveError:
            self.reader.close()
            raise
        self.device = str(resolve_device(device))
        self._frames = {frame.index: frame for frame in self.header.frames}
        self._topology_cache: dict[tuple[int, str], np.ndarray] = {}
        self._state_cache: dict[tuple[int, str], LatentState | None] = {}
        self._weights_cache: dict[tuple[int, str], QuantizedDecoder] = {}
        self._context_cache: dict[tuple[int, str], ArmWeights] = {}

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
            names.update(dict.fromkeys(entry.grids))
        return list(names)

    @property
    def pattern(self) -> NamePattern:
        return self.header.pattern

    def info(self) -> ArchiveInfo:
        """What ``neuralvox info`` shows: frames, the summary the encoder recorded (checked), bytes per stream."""
        summary = check_summary(self.path, self.reader.header)
        return ArchiveInfo(self.path, self.reader.file_size, [f.number for f in self.header.frames], summary,
                           self.reader.stream_sizes())

    def entry(self, number: int) -> FrameEntry:
        """The header entry of frame ``number``."""
        if number not in self._frames:
            raise KeyError(f"{self.path}: no frame {number}; frames are {_span(self.frames)}")
        return self._frames[number]

    def frame(self, number: int) -> Frame:
        return Frame(self, number)

    def topology(self, number: int, grid: str) -> np.ndarray:
        """Active voxels (N, 3) of a grid in canonical order, decoding the reference chain it needs."""
        key = (number, grid)
        if key not in self._topology_cache:
            info = self.entry(number).grids[grid]
            source = info.topology_ref
            reference = None if source is None else self.topology(source.frame, source.grid)
            data = self.reader.get(payload_key(number, grid, "topology"))
            try:
                if source is not None and source.moved:
                    reference = motion_compensated_voxels(info.neural, self._streams(number, grid, (MOTION,)),
                                                          reference)
                self._topology_cache[key] = decode_topology(data, reference, expected=info.voxels)
            except ValueError as exc:
                raise ArchiveError(f"{self.path}: frame {number}, grid '{grid}', stream 'topology': {exc}") from None
        return self._topology_cache[key]

    def latent_state(self, number: int, grid: str) -> LatentState | None:
        """Decoded latents of a grid (None if constant or coded without the neural base), through the chain of
        predicted frames from its keyframe."""
        key = (number, grid)
        if key not in self._state_cache:
            info = self.entry(number).grids[grid]
            if info.is_bounded:
                return None
            source = info.latents_from
            reference = None if source is None else self.latent_state(source, grid)
            try:
                self._state_cache[key] = decode_state(self.topology(number, grid), info.neural,
                                                      self._streams(number, grid, STATE_STREAMS), reference,
                                                      device=self.device)
            except ValueError as exc:
                raise ArchiveError(f"{self.path}: frame {number}, grid '{grid}': {exc}") from None
        return self._state_cache[key]

    def _streams(self, number: int, grid: str, names: Sequence[str] | None = None) -> dict[str, bytes]:
        """The grid's coded streams (only ``names`` of them, where it has them): read and checked on every call."""
        stored = self.entry(number).grids[grid].streams
        return {name: self.reader.get(payload_key(number, grid, name)) for name in stored
                if names is None or name in names}

    def weight_streams(self, number: int, grid: str) -> dict[str, bytes]:
        """What decoding voxels reads besides the latent state: the frame's own decoder weights, if it sent them."""
        return self._streams(number, grid, (WEIGHTS,))

    def shared_decoder(self, number: int, grid: str) -> QuantizedDecoder | None:
        """The decoder weights a grid shares with the earlier frame of its group that sent them (None when it sent
        its own)."""
        owner = self.entry(number).grids[grid].weights_from
        if owner is None or owner == number:
            return None
        if (owner, grid) not in self._weights_cache:
            values_header = self.entry(owner).grids[grid].neural
            data = self.reader.get(payload_key(owner, grid, WEIGHTS))
            self._weights_cache[(owner, grid)] = decode_weights(values_header, data)
        return self._weights_cache[(owner, grid)]

    def decode_grid(self, number: int, grid: str) -> SparseGrid:
        """Decode one grid of one frame."""
        info = self.entry(number).grids[grid]
        ijk = self.topology(number, grid)
        if isinstance(info.values, bounded.BoundedHeader):
            values = self._bounded_values(number, grid, ijk, info.values)
        else:
            values = decode_values(ijk, info.values, self.weight_streams(number, grid), device=self.device,
                                   shared_decoder=self.shared_decoder(number, grid),
                                   state=self.latent_state(number, grid))
        return SparseGrid(
            name=grid, ijk=ijk, values=values, grid_class=info.grid_class, value_type=info.value_type,
            transform=np.asarray(info.transform), save_half=info.save_half, vector_type=info.vector_type,
            background=info.background,
            metadata={k: tuple(v) if isinstance(v, list) else v for k, v in info.metadata.items()},
            metadata_types=dict(info.metadata_types),
        )

    def _bounded_values(self, number: int, grid: str, ijk: np.ndarray, header: bounded.BoundedHeader) -> np.ndarray:
        try:
            stream = self.reader.get(payload_key(number, grid, VALUES))
            return bounded.decode_bounded(ijk, header, stream, self._context_model(header.context_frame, grid))
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{self.path}: frame {number}, grid '{grid}', stream 'values': {exc}") from None

    def _context_model(self, owner: int | None, grid: str) -> ArmWeights | None:
        """The neural context model a bounded grid's codes use (sent once, by frame ``owner``)."""
        if owner is None:
            return None
        if (owner, grid) not in self._context_cache:
            self._context_cache[(owner, grid)] = ArmWeights.from_bytes(self.reader.get(payload_key(owner, grid,
                                                                                                   CONTEXT)))
        return self._context_cache[(owner, grid)]

    def forget_before(self, number: int) -> None:
        """Drop cached topologies and latents of frames before ``number`` (streaming decode keeps memory flat)."""
        for cache in (self._topology_cache, self._state_cache):
            for key in [k for k in cache if k[0] < number]:
                del cache[key]


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
               progress: bool = True, format: str = "vdb", resume: bool = False) -> list[Path]:
    """Write frames of an archive under their original names; returns the paths written.

    Each file is written atomically and created exclusively (unless ``force``); ``resume`` skips the files an
    interrupted run already finished (a .vdb holding the grids it should), so that a rerun writes the rest.

    ``format`` "vdb" writes one .vdb per frame; "nvdb" one NanoVDB file per frame and float grid, as
    ``output_dir/<grid>/<frame name>.nvdb`` (vector grids are skipped with a warning). A frame is decoded while the
    previous one is being written, so memory holds at most two frames.
    """
    if format not in OUTPUT_FORMATS:
        raise ValueError(f"output format {format!r} is not one of {OUTPUT_FORMATS}")
    if format == "nvdb" and half:
        raise ValueError("half-float output applies to .vdb files; NanoVDB output is float32")
    output_dir = Path(output_dir)
    with open_archive(archive_path, device=device) as archive:
        numbers = parse_frames(frames, archive.frames)
        if grids is not None:
            unknown = sorted(set(grids) - set(archive.grids))
            if unknown:
                raise ValueError(f"{archive_path}: no grid named {', '.join(unknown)}; it has "
                                 f"{', '.join(archive.grids)}")
        plans = [_output_plan(archive.frame(n), grids, format, output_dir) for n in numbers]
        if format == "nvdb":
            _warn_skipped_vector_grids(archive, numbers, grids)
            if not any(plans):
                raise ValueError(f"{archive_path}: no float grid to write as NanoVDB (vector grids are skipped)")
        if resume and not force:
            numbers, plans = _unfinished(numbers, plans, format)
        existing = [path for plan in plans for path, _ in plan if path.exists()]
        if existing and not force:
            raise FileExistsError(f"{existing[0]}: exists (use --force to overwrite, or --resume to keep the frames "
                                  f"already written)")
        written: list[Path] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvox-writer") as writer:
            pending: Future[list[Path]] | None = None
            for number, plan in tqdm(list(zip(numbers, plans, strict=True)), desc="decompress", unit="frame",
                                     disable=not progress):
                frame = archive.frame(number)
                decoded = {name: frame[name] for _, names in plan for name in names}  # on this thread, not the writer
                if pending is not None:
                    written.extend(pending.result())
                pending = writer.submit(_write_frame, frame, decoded, plan, format, half, force)
                archive.forget_before(number)
            if pending is not None:
                written.extend(pending.result())
        return written


def _output_plan(frame: Frame, grids: Sequence[str] | None, format: str, output_dir: Path) -> _Plan:
    """The files of one frame and the grids each holds: all grids in one .vdb, or each float grid in a .nvdb."""
    names = [g for g in (grids or frame) if g in frame]
    if not is_plain_name(frame.file_name):  # the schema refused such archives: a last guard before writing
        raise ArchiveError(f"{frame.archive.path}: frame {frame.number}: unsafe file name {frame.file_name!r}")
    if format == "vdb":
        return [(output_dir / frame.file_name, names)]
    plan = []
    for name in names:
        if frame.entry.grids[name].value_type in VECTOR_TYPES:
            continue
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"grid name {name!r} cannot name a folder for NanoVDB output")
        plan.append((output_dir / name / Path(frame.file_name).with_suffix(".nvdb").name, [name]))
    return plan


def _unfinished(numbers: list[int], plans: list[_Plan], format: str) -> tuple[list[int], list[_Plan]]:
    """The frames, and files of each, that a resumed run still has to write: every file not already complete."""
    todo = [(n, [(path, names) for path, names in plan if not _complete(path, names, format)])
            for n, plan in zip(numbers, plans, strict=True)]
    return [n for n, plan in todo if plan], [plan for _, plan in todo if plan]


def _complete(path: Path, names: list[str], format: str) -> bool:
    """An output file a finished write left: files appear only when whole; a .vdb must list the planned grids."""
    if not path.is_file():
        return False
    if format != "vdb":
        return path.stat().st_size > 0
    try:
        return sorted(g.name for g in list_grids(path)) == sorted(names)
    except VdbError:
        return False


def _write_frame(frame: Frame, decoded: dict[str, SparseGrid], plan: _Plan, format: str, half: bool,
                 force: bool) -> list[Path]:
    if format == "vdb":
        return [frame.write_vdb(path, grids=names, half=half, force=force) for path, names in plan]
    return [write_nvdb(path, decoded[name], force=force) for path, (name,) in plan]


def _warn_skipped_vector_grids(archive: NvoxArchive, numbers: list[int], grids: Sequence[str] | None) -> None:
    skipped: dict[str, str] = {}
    for number in numbers:
        for name, info in archive.entry(number).grids.items():
            if (grids is None or name in grids) and info.value_type in VECTOR_TYPES:
                skipped[name] = info.value_type
    if skipped:
        listed = ", ".join(f"'{name}' ({value_type})" for name, value_type in skipped.items())
        warnings.warn(f"NanoVDB output takes float grids: skipping vector grid {listed}; use the vdb format for them",
                      stacklevel=3)
