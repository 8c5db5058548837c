"""Bounded values of a large grid coded in spatial chunks (``neuralvox.codec.chunks``), each on its own.

A grid that is one chunk is coded exactly as ``bounded.encode_grid`` codes it (its header and one ``values`` stream).
A larger one has a ``neuralvox-chunked/4`` header listing the bounded header of its coarse layer and of each chunk,
a ``values.coarse`` stream and one stream a chunk, ``values.<k>``; the decoder splits the decoded topology the same way
and checks every chunk against the header. The coarse layer (the voxels whose every coordinate is a multiple of
``2**COARSE_LEVEL``, 1/64 of a dense grid) is coded once for the whole grid, on a grid of those voxels alone, as the
whole grid's passes of those levels would code them; each chunk starts from the decoded coarse voxels in its box, its
neighbours' across its faces included, and codes only its finer voxels: a chunk's voxels near a face then have
neighbours on both sides, which took 2.1% more bits with ``neuralvox-chunked/2`` (still read: no coarse layer, each
chunk coded from scratch) on a 10M-voxel frame in three chunks, and 0.5% with the layer.
Each chunk is made of whole blocks (``chunks.BLOCK_SHIFT``), so a fog volume's chunk knows its inactive voxels inside
its own blocks (they hold the background) and only those outside them are unknown (a neighbouring chunk may hold
them); ``neuralvox-chunked/1`` (still read) left every inactive voxel of a chunk unknown, 2-7% more bits.
Every chunk of a grid is coded under the grid's one context model (fitted in the main process before any chunk is
sent), so each chunk header names the same ``context_frame``. The coarse layer takes the shortest of the counting
model, the grid's model and, with ``neuralvox-chunked/4`` (``/3`` is still read), a neural model of its own fitted to
its passes and sent in ``values.coarse.context`` (the grid's model is fitted to a chunk's finer voxels: on a 10M-voxel
frame it took 181 kB for the layer, the counting model 99.1 kB, the layer's own model 94.6 kB and 1.2 kB of
weights).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from neuralvox.codec import bounded
from neuralvox.codec.arm import ArmWeights
from neuralvox.codec.arm_fit import layer_model
from neuralvox.codec.chunks import DEFAULT_LIMITS, ChunkLimits, Chunks, split_voxels
from neuralvox.codec.interpolation import MAX_LEVEL
from neuralvox.codec.temporal import TimeReference
from neuralvox.grid import SparseGrid

FORMAT = "neuralvox-chunked/4"
FORMATS = ("neuralvox-chunked/1", "neuralvox-chunked/2", "neuralvox-chunked/3", FORMAT)
COARSE_FORMATS = FORMATS[2:]  # those with a coarse layer
STREAM = "values"
COARSE_STREAM = "values.coarse"
COARSE_MODEL_STREAM = "values.coarse.context"  # the coarse layer's own context model (``neuralvox-chunked/4``)
COARSE_LEVEL = 2  # every 4th voxel along each axis (every 8th or every 2nd measured more bits: benchmarks/RESULTS.md)
_SEED_MARGIN = 5 << (MAX_LEVEL - 1)  # a chunk's dense box reaches this far past its voxels (anchor alignment + margin)
_ROWS = 1 << 20  # voxels tested at a time
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
    coarse: bounded.BoundedHeader | None  # the coarse layer's (None before ``neuralvox-chunked/3``)
    format: str = FORMAT
    coarse_own_model: bool = False  # the coarse layer is coded under its own model (``COARSE_MODEL_STREAM``)

    def to_dict(self) -> dict[str, Any]:
        coarse = {} if self.coarse is None else {"coarse": self.coarse.to_dict()}
        if self.format == FORMAT:
            coarse["coarse_own_model"] = self.coarse_own_model
        return {"format": self.format, "voxels": self.voxels, "max_voxels": self.limits.max_voxels,
                "max_box": self.limits.max_box, "block_shift": self.limits.block_shift,
                "chunks": [c.to_dict() for c in self.chunks], **coarse}

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
        coarse, own_model = None, False
        if header["format"] in COARSE_FORMATS:
            if not isinstance(header.get("coarse"), dict):
                raise ValueError("chunked value header: no coarse layer")
            coarse = bounded.BoundedHeader.from_dict(header["coarse"])
            if coarse.time_frame is not None or coarse.context_frame not in (None, parsed[0].context_frame):
                raise ValueError("chunked value header: the coarse layer names another context frame, or a time frame")
            if coarse.channels != parsed[0].channels:
                raise ValueError("chunked value header: the coarse layer has other channels than the chunks")
        if header["format"] == FORMAT:
            own_model = header.get("coarse_own_model")
            if not isinstance(own_model, bool):
                raise ValueError(f"chunked value header field 'coarse_own_model' is {own_model!r}, not true or false")
            if own_model and coarse is not None and coarse.context_frame is None:
                raise ValueError("chunked value header: the coarse layer has its own model but names no context frame")
        return cls(_positive(header, "voxels"), limits, parsed, coarse, header["format"], own_model)


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


@dataclasses.dataclass(frozen=True)
class CoarseLayer:
    """A grid's coarse layer as decoded: its voxels (the grid's coordinates) and values; every chunk starts from it."""

    ijk: np.ndarray
    values: np.ndarray

    def seed(self, box: tuple[tuple[int, int, int], tuple[int, int, int]]) -> bounded.Seed:
        """The coarse voxels that a chunk whose voxels span ``box`` (inclusive) may read."""
        low, high = np.array(box[0]) - _SEED_MARGIN, np.array(box[1]) + _SEED_MARGIN
        inside = np.all((self.ijk >= low) & (self.ijk <= high), axis=1)
        return bounded.Seed(self.ijk[inside], self.values[inside], COARSE_LEVEL)


@dataclasses.dataclass(frozen=True)
class CoarseCode:
    """The coding of a grid's coarse layer: its bounded header and stream, its own context model (None: it is coded
    under the counting model or the grid's), the layer as decoded, the seconds taken (its model's fit included)."""

    header: bounded.BoundedHeader
    stream: bytes
    layer: CoarseLayer
    seconds: float = 0.0
    model: ArmWeights | None = None

    @property
    def size(self) -> int:
        """The bytes the layer takes in the archive: its stream and its own model's."""
        return len(self.stream) + (0 if self.model is None else len(self.model.to_bytes()))


def coarse_rows(ijk: np.ndarray) -> np.ndarray:
    """The rows of the voxels ``ijk`` in the coarse layer: every coordinate a multiple of ``2**COARSE_LEVEL``."""
    mask = (1 << COARSE_LEVEL) - 1
    found = [start + np.flatnonzero(np.all((ijk[start:start + _ROWS] & mask) == 0, axis=1))
             for start in range(0, len(ijk), _ROWS)]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _coarse_coding(bound: float | tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, float]]:
    """The bounds and shrink that code the coarse layer's grid (its coordinates divided by ``2**COARSE_LEVEL``) with
    the pass bounds the whole grid's passes of those levels have (``bounded.pass_bound``)."""
    alpha, beta = bounded.SHRINK
    factor = alpha**COARSE_LEVEL
    return tuple(float(b) / factor for b in np.atleast_1d(np.asarray(bound, np.float64))), (alpha, beta / factor)


def encode_coarse(grid: SparseGrid, bound: float | tuple[float, ...], context: ChunkContext = COUNTING, *,
                  own_model: bool = True) -> CoarseCode:
    """The coarse layer of ``grid`` (voxels in canonical order) coded under the counting model, the grid's neural
    context model or (``own_model``, where the grid has a neural one and the layer is large enough) a model fitted
    to the layer's own passes, whichever takes the fewest bytes, an own model's counted (ties: the first of these)."""
    start = time.perf_counter()
    rows = coarse_rows(grid.ijk)
    ijk, values = grid.ijk[rows], grid.values[rows]
    bounds, shrink = _coarse_coding(bound)

    def code(weights: ArmWeights | None, record: list[bounded.TrainingPass] | None = None) -> bounded.BoundedCode:
        return bounded.encode_bounded(ijk >> COARSE_LEVEL, values, bounds, background=grid.background,
                                      inactive_known=grid.grid_class != "level set", shrink=shrink, context=weights,
                                      record=record, max_level=MAX_LEVEL - COARSE_LEVEL)

    record: list[bounded.TrainingPass] | None = [] if own_model and context.weights is not None else None
    counting = code(None, record)
    options = [(counting, None, None)]  # (coding, context frame, own model)
    if context.weights is not None:
        options.append((code(context.weights), context.frame, None))
        model = None if record is None else layer_model(record)
        del record
        if model is not None:
            options.append((code(model), context.frame, model))
    chosen, frame, model = min(options, key=lambda o: len(o[0].stream) + (0 if o[2] is None else len(o[2].to_bytes())))
    header = dataclasses.replace(chosen.header, context_frame=frame)
    return CoarseCode(header, chosen.stream, CoarseLayer(ijk, chosen.decoded), time.perf_counter() - start, model)


def decode_coarse(ijk: np.ndarray, header: ChunkedValues, stream: bytes, context: ArmWeights | None,
                  own_model: bytes | None = None) -> CoarseLayer:
    """The decoded coarse layer of a grid coded in chunks whose decoded voxels are ``ijk`` (``context``: the grid's
    neural context model, used where the layer's header names it; ``own_model``: the ``COARSE_MODEL_STREAM``, where
    the header says the layer has its own)."""
    if not isinstance(header, ChunkedHeader) or header.coarse is None:
        raise ValueError("the value header has no coarse layer")
    if header.coarse_own_model != (own_model is not None):
        raise ValueError("the value header and the streams given disagree on whether the coarse layer has its own "
                         "context model")
    rows = coarse_rows(ijk)
    coarse = ijk[rows]
    weights = None if header.coarse.context_frame is None else context
    if own_model is not None:
        weights = ArmWeights.from_bytes(own_model)
    return CoarseLayer(coarse, bounded.decode_bounded(coarse >> COARSE_LEVEL, header.coarse, stream, weights))


def encode_chunk(grid: SparseGrid, chunks: Chunks, index: int, bound: float | tuple[float, ...],
                 context: ChunkContext = COUNTING, coarse: CoarseLayer | None = None) -> ChunkCode:
    """The bounded coding of chunk ``index`` of ``grid`` (voxels in canonical order), one of several starting from
    the grid's decoded ``coarse`` layer."""
    if len(chunks) == 1:
        return encode_part(grid, index, bound, context, block_shift=None)
    if coarse is None:
        raise ValueError("a chunk of several is coded from its grid's coarse layer")
    rows = chunks.rows[index]
    return encode_part(dataclasses.replace(grid, ijk=grid.ijk[rows], values=grid.values[rows]), index, bound,
                       context, block_shift=chunks.block_shift, seed=coarse.seed(chunks.boxes[index]))


def encode_part(part: SparseGrid, index: int, bound: float | tuple[float, ...], context: ChunkContext, *,
                block_shift: int | None, reference: TimeReference | None = None,
                seed: bounded.Seed | None = None) -> ChunkCode:
    """The bounded coding of the voxels ``part`` holds: a whole grid (``block_shift`` None) as
    ``bounded.encode_grid`` codes it, or one chunk of several, made of blocks of ``2**block_shift`` voxels a side,
    starting from ``seed`` (its share of the grid's coarse layer): inactive voxels inside its blocks are known as in
    the whole grid, those outside unknown (they may be active in a neighbouring chunk: taking them for the background
    cost 16% more bits on a 10M-voxel smoke frame). ``reference`` (a whole grid only): the frame its leaves may be
    predicted from in the time mode."""
    start = time.perf_counter()
    if block_shift is None:
        code = bounded.encode_grid(part, bound, context.weights, reference=reference)
    else:
        code = bounded.encode_bounded(part.ijk, part.values, bound, background=part.background,
                                      inactive_known=part.grid_class != "level set", context=context.weights,
                                      known_blocks=block_shift, seed=seed)
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
    coarse: SparseGrid | None = None  # of a chunk: its grid's coarse layer (the voxels and their values)

    def encode(self, bound: float, context: ArmWeights | None = None,
               record: list[bounded.TrainingPass] | None = None) -> bounded.BoundedCode:
        """The piece coded as the archive codes it: whole, or as one chunk of several, from the coarse layer coded
        under the same bound and context model."""
        if self.block_shift is None or self.coarse is None:
            return bounded.encode_grid(self.grid, bound, context, record)
        grid = self.grid
        layer = encode_coarse(self.coarse, bound, ChunkContext(context), own_model=False).layer  # for its values
        seed = layer.seed((tuple(grid.ijk.min(axis=0).tolist()), tuple(grid.ijk.max(axis=0).tolist())))
        return bounded.encode_bounded(grid.ijk, grid.values, bound, background=grid.background,
                                      inactive_known=grid.grid_class != "level set", context=context, record=record,
                                      known_blocks=self.block_shift, seed=seed)


def sample_piece(grid: SparseGrid, limits: ChunkLimits = DEFAULT_LIMITS) -> SamplePiece:
    """The grid (voxels in canonical order), or, split into chunks, its middle chunk with the grid's coarse layer."""
    chunks = split_voxels(grid.ijk, limits)
    if len(chunks) == 1:
        return SamplePiece(grid)
    rows, coarse = chunks.rows[len(chunks) // 2], coarse_rows(grid.ijk)
    return SamplePiece(dataclasses.replace(grid, ijk=grid.ijk[rows], values=grid.values[rows]),
                       len(rows) / grid.voxel_count, chunks.block_shift,
                       dataclasses.replace(grid, ijk=grid.ijk[coarse], values=grid.values[coarse]))


ChunkedValues = bounded.BoundedHeader | ChunkedHeader


def assemble(grid: SparseGrid, chunks: Chunks, codes: Iterable[ChunkCode], limits: ChunkLimits,
             coarse: CoarseCode | None = None) -> tuple[ChunkedValues, dict[str, bytes], np.ndarray]:
    """The value header, streams and decoded values of a grid from its chunks' codings (in any order) and, of
    several chunks, its coarse layer's."""
    by_index = {code.index: code for code in codes}
    if sorted(by_index) != list(range(len(chunks))):
        raise ValueError(f"chunk codings {sorted(by_index)} do not cover the {len(chunks)} chunks")
    if len(chunks) == 1:
        only = by_index[0]
        return only.header, {STREAM: only.stream}, only.decoded
    if coarse is None:
        raise ValueError("the chunks of a grid are assembled with its coarse layer")
    decoded = np.empty_like(grid.values)
    for index, rows in enumerate(chunks.rows):
        decoded[rows] = by_index[index].decoded
    header = ChunkedHeader(grid.voxel_count, limits, tuple(by_index[i].header for i in range(len(chunks))),
                           coarse.header, coarse_own_model=coarse.model is not None)
    streams = {chunk_stream(i): by_index[i].stream for i in range(len(chunks))}
    streams[COARSE_STREAM] = coarse.stream
    if coarse.model is not None:
        streams[COARSE_MODEL_STREAM] = coarse.model.to_bytes()
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
    coarse = [] if header.coarse is None else [COARSE_STREAM]
    own_model = [COARSE_MODEL_STREAM] if header.coarse_own_model else []
    return [chunk_stream(i) for i in range(len(header.chunks))] + coarse + own_model


def known_blocks(header: ChunkedValues) -> int | None:
    """The blocks (``2**shift`` voxels a side) inside which a chunk's inactive voxels are known, as its coding took
    them: None for a grid coded whole (known everywhere, or nowhere, as its bounded header says) and for
    ``neuralvox-chunked/1``, whose chunks' headers say nowhere."""
    if not isinstance(header, ChunkedHeader) or header.format == FORMATS[0]:
        return None
    return header.limits.block_shift


def chunk_seed(header: ChunkedValues, chunks: Chunks, index: int, coarse: CoarseLayer | None) -> bounded.Seed | None:
    """What chunk ``index`` starts from: its share of the decoded ``coarse`` layer (None without one)."""
    if not isinstance(header, ChunkedHeader) or header.coarse is None:
        return None
    if coarse is None:
        raise ValueError("the chunks of this grid are decoded from its coarse layer, which was not given")
    return coarse.seed(chunks.boxes[index])


def decode_chunk(ijk: np.ndarray, header: ChunkedValues, chunks: Chunks, index: int, stream: bytes,
                 context: ArmWeights | None = None, coarse: CoarseLayer | None = None) -> np.ndarray:
    """The decoded values of chunk ``index`` (``context``: the grid's context model, if its header names one;
    ``coarse``: the grid's decoded coarse layer, if its header has one)."""
    if not isinstance(header, ChunkedHeader):
        return bounded.decode_bounded(ijk, header, stream, context)
    return bounded.decode_bounded(ijk[chunks.rows[index]], header.chunks[index], stream, context,
                                  known_blocks=known_blocks(header), seed=chunk_seed(header, chunks, index, coarse))
