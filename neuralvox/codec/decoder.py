"""Sequence decoder: open a .nvox archive, decode any frame on its own, write frames back as .vdb files."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import warp as wp
from tqdm import tqdm

from neuralvox.codec import chunked
from neuralvox.codec.arm import ArmWeights
from neuralvox.codec.based import BASE_STREAMS, decode_based
from neuralvox.codec.bounded import BoundedHeader
from neuralvox.codec.chunks import Chunks
from neuralvox.codec.frame_feed import AHEAD_VOXELS_PER_WORKER
from neuralvox.codec.header import (
    CONTEXT,
    MOTION,
    VALUES,
    WEIGHTS,
    ArchiveHeader,
    ArchiveSummary,
    BasedHeader,
    FrameEntry,
    GridEntry,
    NeuralValueHeader,
    payload_key,
)
from neuralvox.codec.schema import check_header, check_summary, is_plain_name
from neuralvox.codec.temporal import TimeReference
from neuralvox.codec.value_jobs import ChunkTopology, decode_chunk
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
from neuralvox.parallel import Engine, SerialEngine, auto_workers, make_engine
from neuralvox.sequence import NamePattern
from neuralvox.topology import decode_topology
from neuralvox.vdb import VdbError, list_grids, write_nvdb, write_vdb

OUTPUT_FORMATS = ("vdb", "nvdb")
Region = tuple[tuple[int, int, int], tuple[int, int, int]]  # inclusive (min, max) voxel coordinates
_Plan = list[tuple[Path, list[str]]]  # the files of one output frame and the grids each holds
REFERENCES_KEPT = 4  # decoded bounded grids kept for the frames predicted from them (the time mode)
COARSE_LAYERS_KEPT = 4  # decoded coarse layers of chunked grids kept (point queries may alternate between grids)


@dataclasses.dataclass(frozen=True)
class ArchiveInfo:
    """An archive at a glance: file size, frame numbers, the recorded summary, bytes per stream name, and per grid
    coded under a bound the frames coded over the neural base (``neuralvox-based/1``) and those not."""

    path: Path
    bytes: int
    frames: list[int | None]
    summary: ArchiveSummary
    stream_bytes: dict[str, int]
    over_base: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)


class Frame(Mapping[str, SparseGrid]):
    """One decoded frame: a mapping grid name -> SparseGrid, each grid decoded on first access; with a ``region``,
    only its voxels inside that box of voxel coordinates (of a grid coded in chunks, only the chunks it meets are
    decoded)."""

    def __init__(self, archive: NvoxArchive, number: int, region: Region | None = None) -> None:
        self.archive = archive
        self.number = number
        self.region = region
        self.entry = archive.entry(number)
        self._grids: dict[str, SparseGrid] = {}
        self._pending: dict[str, _PendingGrid] = {}
        self._voxel_decoders: dict[str, Callable[[np.ndarray], np.ndarray]] = {}

    def __getitem__(self, name: str) -> SparseGrid:
        self._grid_info(name)
        if name not in self._grids:
            try:
                pending = self._pending.pop(name, None)
                self._grids[name] = (self.archive.decode_grid(self.number, name, self.region) if pending is None
                                     else pending.collect(self.archive.engine))
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

    def start_decoding(self, names: Sequence[str]) -> None:
        """Submit the value decoding of the bounded grids among ``names`` to the archive's engine (``frame[name]``
        then collects it)."""
        for name in names:
            if name not in self._grids and name not in self._pending:
                try:
                    pending = self.archive.submit_bounded(self.number, name, self.region)
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    raise ArchiveError(f"{self.archive.path}: frame {self.number}, grid {name!r}: {exc}") from exc
                if pending is not None:
                    self._pending[name] = pending

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
            elif isinstance(header, chunked.ChunkedHeader) and grid not in self._grids:
                self._voxel_decoders[grid] = _ChunkLookup(self.archive, self.number, grid)
            elif info.is_bounded or info.is_based:
                self._voxel_decoders[grid] = _lookup(self[grid])
            else:
                archive = self.archive
                self._voxel_decoders[grid] = fused_decoder(
                    archive.topology(self.number, grid), info.neural, archive.weight_streams(self.number, grid),
                    torch.device(archive.device), archive.shared_decoder(self.number, grid),
                    archive.latent_state(self.number, grid)).decode
        return self._voxel_decoders[grid]


@dataclasses.dataclass(frozen=True)
class _Decoded:
    """A chunk's values decoded already (in this process), in place of an engine's handle."""

    values: np.ndarray


class _PendingGrid:
    """A bounded grid whose chunks are being decoded: how to make the SparseGrid once the engine returns them, and
    ``keep``: what to do with the whole grid's values when every chunk was decoded (a later frame refers to them)."""

    def __init__(self, make: Callable[[np.ndarray, np.ndarray], SparseGrid], ijk: np.ndarray, chunks: Chunks,
                 wanted: list[int], handles: list[Any], region: Region | None,
                 keep: Callable[[np.ndarray], None] | None = None) -> None:
        self.make, self.ijk, self.chunks, self.wanted, self.handles, self.region = (make, ijk, chunks, wanted, handles,
                                                                                    region)
        self.keep = keep

    def collect(self, engine: Engine) -> SparseGrid:
        parts = [h.values if isinstance(h, _Decoded) else engine.result(h) for h in self.handles]
        if len(self.wanted) == len(self.chunks) and (self.region is None or self.keep is not None):
            values = _whole(self.chunks, self.wanted, parts, len(self.ijk))
            if self.keep is not None:
                self.keep(values)
            if self.region is None:
                return self.make(self.ijk, values)
            inside = _inside(self.ijk, self.region)
            return self.make(self.ijk[inside], values[inside])
        rows = [self.chunks.rows[i] for i in self.wanted]
        ijk = np.concatenate([self.ijk[r] for r in rows]) if rows else self.ijk[:0]
        values = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
        order = np.argsort(np.concatenate(rows), kind="stable") if rows else np.zeros(0, np.int64)
        ijk, values = ijk[order], values[order]
        if self.region is not None:
            inside = _inside(ijk, self.region)
            ijk, values = ijk[inside], values[inside]
        return self.make(ijk, values)


def _whole(chunks: Chunks, order: list[int], parts: list[np.ndarray], voxels: int) -> np.ndarray:
    """The values of a grid from those of all its chunks (``parts``, of chunks ``order``)."""
    if len(parts) == 1:
        return parts[0]
    values = np.empty((voxels, *parts[0].shape[1:]), np.float32)
    for index, part in zip(order, parts, strict=True):
        values[chunks.rows[index]] = part
    return values


def _inside(ijk: np.ndarray, region: Region) -> np.ndarray:
    low, high = np.asarray(region[0]), np.asarray(region[1])
    return np.all((ijk >= low) & (ijk <= high), axis=1)


class _ChunkLookup:
    """Values (K, channels) of active voxels (K, 3) of a grid coded in chunks, decoding only the chunks they lie in
    (each once)."""

    def __init__(self, archive: NvoxArchive, number: int, grid: str) -> None:
        self.archive, self.number, self.grid = archive, number, grid
        self.ijk = archive.topology(number, grid)
        self.chunks = archive.chunks(number, grid, self.ijk)
        self.chunk_of = np.empty(len(self.ijk), np.int64)
        self.position = np.empty(len(self.ijk), np.int64)
        for index, rows in enumerate(self.chunks.rows):
            self.chunk_of[rows] = index
            self.position[rows] = np.arange(len(rows))
        self.decoded: dict[int, np.ndarray] = {}

    def __call__(self, voxels: np.ndarray) -> np.ndarray:
        rows = find_rows(torch.from_numpy(self.ijk), torch.from_numpy(np.asarray(voxels, np.int32))).numpy()
        needed = sorted(set(np.unique(self.chunk_of[rows]).tolist()) - set(self.decoded))
        pending = self.archive.submit_chunks(self.number, self.grid, self.ijk, self.chunks, needed)
        for index, handle in zip(needed, pending, strict=True):
            values = self.archive.engine.result(handle)
            self.decoded[index] = values.reshape(len(values), -1)
        out = np.empty((len(rows), next(iter(self.decoded.values())).shape[1] if self.decoded else 1), np.float32)
        for index in np.unique(self.chunk_of[rows]).tolist():
            mine = self.chunk_of[rows] == index
            out[mine] = self.decoded[index][self.position[rows[mine]]]
        return out


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

    def __init__(self, path: str | os.PathLike, device: str = "auto", engine: Engine | None = None) -> None:
        self.path = Path(path)
        self.engine: Engine = engine if engine is not None else SerialEngine()
        self.reader = ArchiveReader(self.path)
        self._payload_sizes = {key: self.reader.nbytes(key) for key in self.reader}
        try:
            self.header: ArchiveHeader = check_header(self.path, self.reader.header, self._payload_sizes)
        except ArchiveError:
            self.reader.close()
            raise
        self.device = str(resolve_device(device))
        self._frames = {frame.index: frame for frame in self.header.frames}
        self._topology_cache: dict[tuple[int, str], np.ndarray] = {}
        self._state_cache: dict[tuple[int, str], LatentState | None] = {}
        self._weights_cache: dict[tuple[int, str], QuantizedDecoder] = {}
        self._context_cache: dict[tuple[int, str], ArmWeights] = {}
        self._coarse_cache: collections.OrderedDict[tuple[int, str], chunked.CoarseLayer] = collections.OrderedDict()
        # the decoded values of the bounded grids later frames are predicted from (the time mode), the latest few
        self._referenced = {(info.values.time_frame, name) for frame in self.header.frames
                            for name, info in frame.grids.items()
                            if isinstance(info.values, BoundedHeader) and info.values.time_frame is not None}
        self._reference_cache: collections.OrderedDict[tuple[int, str], np.ndarray] = collections.OrderedDict()

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
        summary = check_summary(self.path, self.reader.header, self._payload_sizes)
        over_base: dict[str, tuple[int, int]] = {}
        for frame in self.header.frames:
            for name, info in frame.grids.items():
                if info.is_based or info.is_bounded:
                    based, total = over_base.get(name, (0, 0))
                    over_base[name] = (based + info.is_based, total + 1)
        return ArchiveInfo(self.path, self.reader.file_size, [f.number for f in self.header.frames], summary,
                           self.reader.stream_sizes(), over_base)

    def entry(self, number: int) -> FrameEntry:
        """The header entry of frame ``number``."""
        if number not in self._frames:
            raise KeyError(f"{self.path}: no frame {number}; frames are {_span(self.frames)}")
        return self._frames[number]

    def frame(self, number: int, region: Region | None = None) -> Frame:
        return Frame(self, number, region)

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
            if info.is_bounded or info.is_based:
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

    def decode_grid(self, number: int, grid: str, region: Region | None = None) -> SparseGrid:
        """Decode one grid of one frame (only its voxels inside ``region``, when given)."""
        pending = self.submit_bounded(number, grid, region)
        if pending is not None:
            return pending.collect(self.engine)
        info = self.entry(number).grids[grid]
        ijk = self.topology(number, grid)
        if isinstance(info.values, BasedHeader):
            values = decode_based(ijk, info.values, self._streams(number, grid, (*BASE_STREAMS, VALUES)),
                                  self._context_model(info.values.context_frame, grid), device=self.device)
        else:
            values = decode_values(ijk, info.neural, self.weight_streams(number, grid), device=self.device,
                                   shared_decoder=self.shared_decoder(number, grid),
                                   state=self.latent_state(number, grid))
        if region is not None:
            inside = _inside(ijk, region)
            ijk, values = ijk[inside], values[inside]
        return self._make_grid(number, grid, ijk, values)

    def _make_grid(self, number: int, grid: str, ijk: np.ndarray, values: np.ndarray) -> SparseGrid:
        info = self.entry(number).grids[grid]
        return SparseGrid(
            name=grid, ijk=ijk, values=values, grid_class=info.grid_class, value_type=info.value_type,
            transform=np.asarray(info.transform), save_half=info.save_half, vector_type=info.vector_type,
            background=info.background,
            metadata={k: tuple(v) if isinstance(v, list) else v for k, v in info.metadata.items()},
            metadata_types=dict(info.metadata_types),
        )

    def submit_bounded(self, number: int, grid: str, region: Region | None) -> _PendingGrid | None:
        """Start decoding a bounded grid's chunks (those meeting ``region``) on the engine; None for other grids. A
        grid predicted from an earlier frame (the time mode, one chunk) is decoded here and now, after that frame."""
        info = self.entry(number).grids[grid]
        if not info.is_bounded:
            return None
        ijk = self.topology(number, grid)
        chunks = self.chunks(number, grid, ijk)
        make = functools.partial(self._make_grid, number, grid)
        if isinstance(info.values, BoundedHeader) and info.values.time_frame is not None:
            return _PendingGrid(make, ijk, chunks, [0], [_Decoded(self.bounded_values(number, grid))], region)
        keep = functools.partial(self._keep, number, grid) if (number, grid) in self._referenced else None
        wanted = list(range(len(chunks))) if region is None or keep is not None else chunks.touching(*region)
        handles = self.submit_chunks(number, grid, ijk, chunks, wanted)
        return _PendingGrid(make, ijk, chunks, wanted, handles, region, keep)

    def bounded_values(self, number: int, grid: str) -> np.ndarray:
        """All decoded values of a bounded grid, decoding the frames it is predicted from first, oldest first (kept
        for the next frames: the latest ``REFERENCES_KEPT``)."""
        chain = [number]
        while (chain[-1], grid) not in self._reference_cache and self._time_frame(chain[-1], grid) is not None:
            chain.append(self._time_frame(chain[-1], grid))
        values = np.zeros(0, np.float32)
        for link in reversed(chain):
            if (link, grid) in self._reference_cache:
                self._reference_cache.move_to_end((link, grid))
                values = self._reference_cache[(link, grid)]
                continue
            source = self._time_frame(link, grid)
            reference = None if source is None else TimeReference(source, self.topology(source, grid), values)
            values = self._whole_grid(link, grid, reference)
            self._keep(link, grid, values)
        return values

    def _time_frame(self, number: int, grid: str) -> int | None:
        header = self.entry(number).grids[grid].values
        return header.time_frame if isinstance(header, BoundedHeader) else None

    def _whole_grid(self, number: int, grid: str, reference: TimeReference | None) -> np.ndarray:
        """The values of every chunk of a bounded grid, predicted from ``reference`` in the time mode."""
        ijk = self.topology(number, grid)
        header = self.entry(number).grids[grid].values
        if reference is not None:
            try:
                return decode_chunk(ChunkTopology(ijk, None), header,
                                    self.reader.get(payload_key(number, grid, chunked.STREAM)),
                                    self._context_model(header.context_frame, grid), None, reference=reference)
            except (ValueError, KeyError, TypeError) as exc:
                raise ArchiveError(f"{self.path}: frame {number}, grid '{grid}', stream 'values': {exc}") from None
        chunks = self.chunks(number, grid, ijk)
        everything = list(range(len(chunks)))
        parts = [self.engine.result(h) for h in self.submit_chunks(number, grid, ijk, chunks, everything)]
        return _whole(chunks, everything, parts, len(ijk))

    def _keep(self, number: int, grid: str, values: np.ndarray) -> None:
        self._reference_cache[(number, grid)] = values
        while len(self._reference_cache) > REFERENCES_KEPT:
            self._reference_cache.popitem(last=False)

    def chunks(self, number: int, grid: str, ijk: np.ndarray) -> Chunks:
        """The chunks of a bounded grid's decoded voxels, checked against its value header."""
        try:
            return chunked.chunks_of(ijk, self.entry(number).grids[grid].values)
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{self.path}: frame {number}, grid '{grid}', values: {exc}") from None

    def submit_chunks(self, number: int, grid: str, ijk: np.ndarray, chunks: Chunks, wanted: list[int]) -> list[Any]:
        """The engine's handles of the decoding of chunks ``wanted``, each under the grid's context model."""
        header = self.entry(number).grids[grid].values
        streams = chunked.stream_names(header)
        parts = chunked.chunk_headers(header)
        try:
            context = self._context_model(parts[0].context_frame, grid)
            known = chunked.known_blocks(header)
            coarse = self._coarse_layer(number, grid, ijk, header, context)
            return [self.engine.submit(decode_chunk, ChunkTopology(ijk, None if len(chunks) == 1 else chunks.rows[i]),
                                       parts[i], self.reader.get(payload_key(number, grid, streams[i])), context,
                                       known, chunked.chunk_seed(header, chunks, i, coarse))
                    for i in wanted]
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{self.path}: frame {number}, grid '{grid}', stream 'values': {exc}") from None

    def _coarse_layer(self, number: int, grid: str, ijk: np.ndarray, header: chunked.ChunkedValues,
                      context: ArmWeights | None) -> chunked.CoarseLayer | None:
        """The decoded coarse layer of a grid coded in chunks from one (decoded in this process, once a frame)."""
        if not isinstance(header, chunked.ChunkedHeader) or header.coarse is None:
            return None
        if (number, grid) not in self._coarse_cache:
            stream = self.reader.get(payload_key(number, grid, chunked.COARSE_STREAM))
            own_model = (self.reader.get(payload_key(number, grid, chunked.COARSE_MODEL_STREAM))
                         if header.coarse_own_model else None)
            self._coarse_cache[(number, grid)] = chunked.decode_coarse(ijk, header, stream, context, own_model)
            while len(self._coarse_cache) > COARSE_LAYERS_KEPT:
                self._coarse_cache.popitem(last=False)
        return self._coarse_cache[(number, grid)]

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
        for cache in (self._topology_cache, self._state_cache, self._reference_cache, self._coarse_cache):
            for key in [k for k in cache if k[0] < number]:
                del cache[key]


def open_archive(path: str | os.PathLike, device: str = "auto", engine: Engine | None = None) -> NvoxArchive:
    """Open a .nvox archive for decoding (``neuralvox.open``); bounded values are decoded by ``engine`` (default:
    in this process)."""
    return NvoxArchive(path, device=device, engine=engine)


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
               progress: bool = True, format: str = "vdb", resume: bool = False, workers: int | None = None,
               region: Region | None = None) -> list[Path]:
    """Write frames of an archive under their original names; returns the paths written.

    Each file is written atomically and created exclusively (unless ``force``); ``resume`` skips the files an
    interrupted run already finished (a .vdb holding the grids it should), so that a rerun writes the rest.

    ``format`` "vdb" writes one .vdb per frame; "nvdb" one NanoVDB file per frame and float grid, as
    ``output_dir/<grid>/<frame name>.nvdb`` (vector grids are skipped with a warning). A frame is decoded while the
    previous one is being written.

    With ``region`` (inclusive voxel coordinates (min, max)) only the voxels inside it are written, and of a grid
    coded in chunks only the chunks that meet it are decoded. Bounded values are decoded by ``workers`` local
    processes (default: every core, when the frames are large enough to pay for them), a few frames ahead of the one
    being written; memory does not grow with the number of frames.
    """
    if format not in OUTPUT_FORMATS:
        raise ValueError(f"output format {format!r} is not one of {OUTPUT_FORMATS}")
    if format == "nvdb" and half:
        raise ValueError("half-float output applies to .vdb files; NanoVDB output is float32")
    output_dir = Path(output_dir)
    region = _check_region(region)
    with contextlib.ExitStack() as stack:
        archive = stack.enter_context(open_archive(archive_path, device=device))
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
        count = workers if workers is not None else auto_workers(
            sum(info.voxels for n in numbers for info in archive.entry(n).grids.values()))
        archive.engine = stack.enter_context(contextlib.closing(make_engine(count)))
        written: list[Path] = []
        writer = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvox-writer"))
        pending: Future[list[Path]] | None = None
        bar = stack.enter_context(tqdm(total=len(numbers), desc="decompress", unit="frame", disable=not progress))
        for frame, plan in _decoding_ahead(archive, numbers, plans, region):
            decoded = {name: frame[name] for _, names in plan for name in names}  # on this thread, not the writer
            if pending is not None:
                written.extend(pending.result())
            pending = writer.submit(_write_frame, frame, decoded, plan, format, half, force)
            archive.forget_before(frame.number)
            bar.update(1)
        if pending is not None:
            written.extend(pending.result())
        return written


def _decoding_ahead(archive: NvoxArchive, numbers: list[int], plans: list[_Plan],
                    region: Region | None) -> Iterator[tuple[Frame, _Plan]]:
    """The frames in order, each one's bounded grids submitted to the archive's engine a few frames ahead (at most
    ``2 * workers`` frames, and about ``AHEAD_VOXELS_PER_WORKER`` voxels a worker)."""
    workers = archive.engine.workers
    ahead: collections.deque[tuple[Frame, _Plan, int]] = collections.deque()
    for number, plan in zip(numbers, plans, strict=True):
        frame = archive.frame(number, region)
        names = [name for _, listed in plan for name in listed]
        frame.start_decoding(names)
        ahead.append((frame, plan, sum(frame.entry.grids[name].voxels for name in names)))
        while ahead and (len(ahead) >= 2 * workers or sum(v for *_, v in ahead) >= AHEAD_VOXELS_PER_WORKER * workers):
            yield ahead.popleft()[:2]
    while ahead:
        yield ahead.popleft()[:2]


def _check_region(region: Region | None) -> Region | None:
    """A region as two integer corners, min <= max on every axis."""
    if region is None:
        return None
    try:
        low, high = (tuple(int(v) for v in corner) for corner in region)
    except (TypeError, ValueError):
        raise ValueError(f"region {region!r}: expected ((i0, j0, k0), (i1, j1, k1))") from None
    if len(low) != 3 or len(high) != 3 or any(a > b for a, b in zip(low, high, strict=True)):
        raise ValueError(f"region {region!r}: expected ((i0, j0, k0), (i1, j1, k1)) with each min <= max")
    return low, high


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
