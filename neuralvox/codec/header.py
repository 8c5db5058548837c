"""The archive header, typed: frozen dataclasses for the header, its frames, grids, value headers and payload keys.

``to_json`` gives exactly the JSON the archive stores (key order included: the bytes of an archive depend on it);
``from_json`` reads it back, refusing a format it does not know. Untrusted JSON goes through
``neuralvox.codec.schema`` first, which checks every field and then builds these objects. The layout is described in
docs/design.md ("Archive layout").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from neuralvox.codec.bounded import FORMATS as BOUNDED_FORMATS
from neuralvox.codec.bounded import BoundedHeader
from neuralvox.codec.chunked import FORMATS as CHUNKED_FORMATS
from neuralvox.codec.chunked import ChunkedHeader
from neuralvox.metrics import ErrorStats, bits_per_voxel, psnr
from neuralvox.sequence import NamePattern

ARCHIVE_FORMAT = "neuralvox/2"
# /2 stores no figure of the report that the frames and payload sizes give (see GridReport), and no frame's file name
# where the name pattern gives it; /1 stored both, and still reads
ARCHIVE_FORMATS = ("neuralvox/1", ARCHIVE_FORMAT)
NEURAL_FORMAT = "neuralvox-values/3"
# /2: latents coded under the shortest of three laws; /3: the weights and motion streams too
NEURAL_FORMATS = ("neuralvox-values/1", "neuralvox-values/2", NEURAL_FORMAT)
BASED_FORMAT = "neuralvox-based/1"

# Stream names: the last part of a payload key.
TOPOLOGY = "topology"
VALUES = "values"  # the bounded codec's one stream
LATENTS = "latents"  # the neural base: a keyframe's latents
RESIDUAL = "residual"  # a predicted frame's latents, over the prediction
MOTION = "motion"  # a predicted frame's motion field
WEIGHTS = "weights"  # decoder weights, sent by the first frame of a group
CONTEXT = "context"  # the bounded codec's neural context model, sent by the first frame that uses it


TIMING_FIELDS = ("created", "fit_seconds")  # header fields that record the date or wall time


def without_timing(value: Any) -> Any:
    """Header JSON with the ``TIMING_FIELDS`` replaced: what two codings of the same input must agree on."""
    if isinstance(value, dict):
        return {k: "<time>" if k in TIMING_FIELDS else without_timing(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


class UnknownFormatError(ValueError):
    """A header or value header names a format this neuralvox does not read."""


@dataclasses.dataclass(frozen=True)
class PayloadKey:
    """Where one stream of one grid of one frame is stored: ``frames/<frame>/<grid>/<stream>``."""

    frame: int
    grid: str
    stream: str

    def __str__(self) -> str:
        return f"frames/{self.frame}/{self.grid}/{self.stream}"


def payload_key(frame: int, grid: str, stream: str) -> str:
    return str(PayloadKey(frame, grid, stream))


# ------------------------------------------------------------------------------------------------ value headers
@dataclasses.dataclass(frozen=True)
class MotionSpec:
    """A predicted frame's motion lattice: ``stride`` voxels between motion points, ``step`` voxels per integer."""

    stride: int
    step: float

    def to_json(self) -> dict[str, Any]:
        return {"motion_stride": self.stride, "motion_step": self.step}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MotionSpec:
        return cls(int(data["motion_stride"]), data["motion_step"])


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What shapes the neural base's model: channels, latent levels (stride, channels), the MLP's hidden widths,
    positional frequencies and activation. A shared decoder must have been made for the same."""

    channels: int
    levels: tuple[tuple[int, int], ...]
    hidden: tuple[int, ...]
    frequencies: int
    activation: str

    @property
    def strides(self) -> list[int]:
        return [stride for stride, _ in self.levels]

    @property
    def level_channels(self) -> list[int]:
        return [channels for _, channels in self.levels]

    def to_json(self) -> dict[str, Any]:
        return {"channels": self.channels, "levels": [list(level) for level in self.levels],
                "hidden": list(self.hidden), "frequencies": self.frequencies, "activation": self.activation}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Architecture:
        return cls(int(data["channels"]), tuple((int(s), int(c)) for s, c in data["levels"]),
                   tuple(int(w) for w in data["hidden"]), int(data["frequencies"]), str(data["activation"]))


@dataclasses.dataclass(frozen=True)
class NeuralValueHeader:
    """``neuralvox-values/3`` (or ``/2`` and ``/1``, read as before: the same fields, streams coded otherwise): the
    neural base's values of one grid: a ``constant``, or an ``architecture``, the value range ``low``..``high`` per
    channel, whether the decoder is shared with the group's first frame, and for a predicted frame its ``predicted``
    motion lattice; ``format`` says how its streams are entropy coded (``latent_codecs``)."""

    FORMAT: ClassVar[str] = NEURAL_FORMAT

    voxels: int
    channels: int
    constant: tuple[float, ...] | None = None
    architecture: Architecture | None = None
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    shared_decoder: bool = False
    predicted: MotionSpec | None = None
    format: str = NEURAL_FORMAT

    @property
    def model(self) -> Architecture:
        """The architecture of a non-constant grid."""
        if self.architecture is None:
            raise ValueError("a constant grid has no model")
        return self.architecture

    @property
    def latent_stream(self) -> str:
        """The stream holding the frame's coded latents: the residual over the prediction for a predicted frame."""
        return RESIDUAL if self.predicted is not None else LATENTS

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "voxels": self.voxels, "channels": self.channels}
        if self.constant is not None:
            out["constant"] = list(self.constant)
            return out
        out.update(self.model.to_json())
        out.update(low=list(self.low), high=list(self.high), shared_decoder=self.shared_decoder)
        if self.predicted is not None:
            out["predicted"] = self.predicted.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NeuralValueHeader:
        if data.get("format") not in NEURAL_FORMATS:
            _expect_format(data, NEURAL_FORMAT, "value header")
        voxels, channels, format_name = int(data["voxels"]), int(data["channels"]), str(data["format"])
        if "constant" in data:
            return cls(voxels, channels, constant=tuple(data["constant"]), format=format_name)
        predicted = data.get("predicted")
        return cls(voxels, channels, None, Architecture.from_json(data), tuple(data["low"]), tuple(data["high"]),
                   bool(data["shared_decoder"]), None if predicted is None else MotionSpec.from_json(predicted),
                   format_name)


@dataclasses.dataclass(frozen=True)
class BasedHeader:
    """``neuralvox-based/1``: a grid's values as the neural base plus a bounded residual. ``base`` (a keyframe of the
    neural base with its own decoder) decodes from the grid's ``latents`` and ``weights`` streams; ``residual``
    (``neuralvox-bounded/3``, never in the time mode) from its ``values`` stream, coded to ``bounds - margin`` per
    channel; the decoded values are the float32 sum of the two. ``margin`` covers the float32 roundings of the
    residual and the sum and the base's differences between devices (``codec/based.py``)."""

    FORMAT: ClassVar[str] = BASED_FORMAT

    bounds: tuple[float, ...]  # per channel: every decoded value is within it of the original
    margin: tuple[float, ...]
    base: NeuralValueHeader
    residual: BoundedHeader

    @property
    def voxels(self) -> int:
        return self.residual.voxels

    @property
    def channels(self) -> int:
        return self.residual.channels

    @property
    def context_frame(self) -> int | None:
        return self.residual.context_frame

    def to_dict(self) -> dict[str, Any]:
        return {"format": BASED_FORMAT, "bounds": list(self.bounds), "margin": list(self.margin),
                "base": self.base.to_json(), "residual": self.residual.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BasedHeader:
        _expect_format(data, BASED_FORMAT, "value header")
        base = NeuralValueHeader.from_json(data["base"])
        residual = BoundedHeader.from_dict(data["residual"])
        if base.constant is not None or base.predicted is not None or base.shared_decoder:
            raise ValueError("the neural base under a bound is a keyframe with its own decoder")
        if residual.time_frame is not None:
            raise ValueError("the residual under a neural base is never in the time mode")
        return cls(tuple(float(b) for b in data["bounds"]), tuple(float(m) for m in data["margin"]), base,
                   residual)


ValueHeader = NeuralValueHeader | BoundedHeader | ChunkedHeader | BasedHeader
_VALUE_READERS = {**dict.fromkeys(NEURAL_FORMATS, NeuralValueHeader.from_json), BASED_FORMAT: BasedHeader.from_dict,
                  **dict.fromkeys(BOUNDED_FORMATS, BoundedHeader.from_dict),
                  **dict.fromkeys(CHUNKED_FORMATS, ChunkedHeader.from_dict)}
VALUE_FORMATS = tuple(_VALUE_READERS)


def value_header_to_json(header: ValueHeader) -> dict[str, Any]:
    return header.to_json() if isinstance(header, NeuralValueHeader) else header.to_dict()


def value_header_from_json(data: Mapping[str, Any]) -> ValueHeader:
    """The value header of whichever format ``data`` names."""
    reader = _VALUE_READERS.get(data.get("format"))
    if reader is None:
        raise UnknownFormatError(f"unknown value format {data.get('format')!r} (known: {', '.join(VALUE_FORMATS)}; "
                                 f"from a newer neuralvox?)")
    return reader(data)


# --------------------------------------------------------------------------------------------- grids and frames
@dataclasses.dataclass(frozen=True)
class TopologyRef:
    """The voxels a grid's topology was coded against: grid ``grid`` of frame ``frame``, ``moved`` by this grid's
    coded motion (the previous frame warped by the neural base's motion field)."""

    frame: int
    grid: str
    moved: bool = False

    def to_json(self) -> list[Any]:
        return [self.frame, self.grid, *([MOTION] if self.moved else [])]

    @classmethod
    def from_json(cls, data: list[Any]) -> TopologyRef:
        return cls(int(data[0]), str(data[1]), data[2:] == [MOTION])


@dataclasses.dataclass(frozen=True)
class FrameStats:
    """What one grid of one frame achieved (neural base only: ``--gop auto`` decides on it): errors, bytes per
    stream, fitting time. Held while compressing, not stored: archives before 2026-11-30 hold it in each grid entry
    (about an eighth of a small --base-only archive), and still read."""

    error: ErrorStats
    bytes: Mapping[str, int]
    fit_seconds: float

    @property
    def value_bytes(self) -> int:
        return sum(size for stream, size in self.bytes.items() if stream != TOPOLOGY)

    def to_json(self) -> dict[str, Any]:
        return {**self.error.to_dict(), "bytes": dict(self.bytes), "fit_seconds": self.fit_seconds}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FrameStats:
        # a field an older archive did not record reads as NaN
        error = ErrorStats(**{field.name: data.get(field.name, math.nan) for field in dataclasses.fields(ErrorStats)})
        return cls(error, dict(data["bytes"]), data.get("fit_seconds", math.nan))


@dataclasses.dataclass(frozen=True)
class GridEntry:
    """One grid of one frame: the attributes the .vdb is written back with, how its topology and values are coded,
    which streams it stored, and which earlier frames its latents and decoder weights come from."""

    value_type: str
    grid_class: str
    transform: tuple[tuple[float, ...], ...]  # 4x4 index-to-world matrix
    background: float | tuple[float, ...]
    save_half: bool
    vector_type: str | None
    metadata: Mapping[str, Any]  # JSON values: a 3-vector is a list
    metadata_types: Mapping[str, str]
    voxels: int
    topology_ref: TopologyRef | None
    values: ValueHeader
    weights_from: int | None
    streams: tuple[str, ...]
    latents_from: int | None
    stats: FrameStats | None = None

    @property
    def is_bounded(self) -> bool:
        return isinstance(self.values, (BoundedHeader, ChunkedHeader))

    @property
    def is_based(self) -> bool:
        """Coded as the neural base plus a bounded residual."""
        return isinstance(self.values, BasedHeader)

    @property
    def neural(self) -> NeuralValueHeader:
        """The neural base's value header (an error for a bounded grid)."""
        if not isinstance(self.values, NeuralValueHeader):
            raise ValueError("this grid's values are coded under a bound, not by the neural base")
        return self.values

    def to_json(self) -> dict[str, Any]:
        out = {
            "value_type": self.value_type, "grid_class": self.grid_class,
            "transform": [list(row) for row in self.transform],
            "background": list(self.background) if isinstance(self.background, tuple) else self.background,
            "save_half": self.save_half, "vector_type": self.vector_type, "metadata": dict(self.metadata),
            "metadata_types": dict(self.metadata_types), "voxels": self.voxels,
            "topology_ref": None if self.topology_ref is None else self.topology_ref.to_json(),
            "values": value_header_to_json(self.values), "weights_from": self.weights_from,
            "streams": list(self.streams), "latents_from": self.latents_from,
        }
        if self.stats is not None:
            out["stats"] = self.stats.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GridEntry:
        background = data["background"]
        ref, stats = data["topology_ref"], data.get("stats")
        return cls(
            data["value_type"], data["grid_class"], tuple(tuple(row) for row in data["transform"]),
            tuple(background) if isinstance(background, list) else background, data["save_half"],
            data["vector_type"], dict(data["metadata"]), dict(data["metadata_types"]), data["voxels"],
            None if ref is None else TopologyRef.from_json(ref), value_header_from_json(data["values"]),
            data["weights_from"], tuple(data["streams"]), data["latents_from"],
            None if stats is None else FrameStats.from_json(stats))


@dataclasses.dataclass(frozen=True)
class FrameEntry:
    """One frame: its number (None for a single unnumbered file), source file name, whether it starts a group of
    the neural base, its file metadata and its grids in coding order."""

    number: int | None
    file: str
    key: bool
    metadata: Mapping[str, Any]
    metadata_types: Mapping[str, str]
    grids: Mapping[str, GridEntry]

    @property
    def index(self) -> int:
        """The number payload keys use (0 for an unnumbered frame)."""
        return self.number if self.number is not None else 0

    def without_stats(self) -> FrameEntry:
        """The entry as the archive stores it: no grid's FrameStats."""
        grids = {name: dataclasses.replace(grid, stats=None) for name, grid in self.grids.items()}
        return dataclasses.replace(self, grids=grids)

    def to_json(self, pattern: NamePattern | None = None) -> dict[str, Any]:
        """The entry's JSON; without its file name where it is ``pattern``'s name for the frame (neuralvox/2)."""
        named = {} if pattern is not None and self.file == pattern.format(self.number) else {"file": self.file}
        return {"number": self.number, **named, "key": self.key, "metadata": dict(self.metadata),
                "metadata_types": dict(self.metadata_types),
                "grids": {name: grid.to_json() for name, grid in self.grids.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], pattern: NamePattern | None = None) -> FrameEntry:
        """The entry; a missing file name is ``pattern``'s name for the frame (neuralvox/2)."""
        file = data["file"] if "file" in data or pattern is None else pattern.format(data["number"])
        return cls(data["number"], file, data["key"], dict(data["metadata"]), dict(data["metadata_types"]),
                   {name: GridEntry.from_json(grid) for name, grid in data["grids"].items()})


# ------------------------------------------------------------------------------------------------- the archive
@dataclasses.dataclass(frozen=True)
class CodecSettings:
    """How the archive was coded: the preset, the neural base's group length and coherence, the device, the error
    target with each grid's absolute bound (None with ``--base-only``), and ``--base`` where not off (None: off, or
    an archive from before it; not written then, so archives coded without it keep their bytes)."""

    quality: str
    gop: int | str
    coherence: float
    device: str
    target: str | None
    bounds: Mapping[str, float] | None
    base: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"quality": self.quality, "gop": self.gop, "coherence": self.coherence, "device": self.device,
               "target": self.target, "bounds": None if self.bounds is None else dict(self.bounds)}
        if self.base is not None:
            out["base"] = self.base
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CodecSettings:
        return cls(data["quality"], data["gop"], data.get("coherence", 0.0), data["device"], data.get("target"),
                   data.get("bounds"), data.get("base"))


@dataclasses.dataclass(frozen=True)
class ReportFigures:
    """What a neuralvox/2 archive gives of one grid's report without storing it: the frames holding the grid, their
    voxels, and the bytes of the grid's payloads per stream (in payload order, as compress counted them)."""

    frames: int
    voxels: int
    stream_bytes: Mapping[str, int]


def report_figures(frames: Sequence[FrameEntry], payload_sizes: Mapping[str, int]) -> dict[str, ReportFigures]:
    """Each grid's ``ReportFigures`` from the frames and the payload sizes (key -> bytes, in payload order)."""
    counts: dict[str, list[int]] = {}
    for frame in frames:
        for name, grid in frame.grids.items():
            count = counts.setdefault(name, [0, 0])
            count[0] += 1
            count[1] += grid.voxels
    streams: dict[str, dict[str, int]] = {name: {} for name in counts}
    for key, size in payload_sizes.items():
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == "frames" and parts[2] in streams:
            sizes = streams[parts[2]]
            sizes[parts[3]] = sizes.get(parts[3], 0) + size
    return {name: ReportFigures(held, voxels, streams[name]) for name, (held, voxels) in counts.items()}


@dataclasses.dataclass(frozen=True)
class GridReport:
    """What compress achieved on one grid over the sequence. neuralvox/2 stores only ``STORED``; the frames, voxels,
    stream bytes (``ReportFigures``) and the PSNR (from the RMSE and peak) are derived on reading, as are the coded
    bytes, ratio and bpv in both formats."""

    STORED: ClassVar[tuple[str, ...]] = ("name", "source_bytes", "rmse", "max_abs_error", "peak", "flicker",
                                         "fit_seconds", "bound")

    name: str
    frames: int
    voxels: int
    source_bytes: int
    stream_bytes: Mapping[str, int]
    psnr: float
    rmse: float
    max_abs_error: float
    peak: float | None  # None where an older archive did not record it
    flicker: float | None
    fit_seconds: float
    bound: float | None = None

    @property
    def coded_bytes(self) -> int:
        return sum(self.stream_bytes.values())

    @property
    def ratio(self) -> float:
        return self.source_bytes / self.coded_bytes if self.coded_bytes else math.inf

    @property
    def bpv(self) -> float:
        return bits_per_voxel(self.coded_bytes, self.voxels)

    def to_dict(self) -> dict[str, Any]:
        """Every figure, derived ones included: what neuralvox/1 stored and ``neuralvox info --json`` prints."""
        out = dataclasses.asdict(self)
        out.update(stream_bytes=dict(self.stream_bytes), ratio=self.ratio, bpv=self.bpv, coded_bytes=self.coded_bytes)
        return out

    def to_stored(self) -> dict[str, Any]:
        """What neuralvox/2 stores: ``STORED``, the coding time to the millisecond."""
        return {name: round(self.fit_seconds, 3) if name == "fit_seconds" else getattr(self, name)
                for name in self.STORED}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], figures: ReportFigures | None = None) -> GridReport:
        """A neuralvox/1 entry, or with the archive's ``figures`` of the grid a neuralvox/2 one."""
        if figures is None:
            return cls(**{field.name: data.get(field.name) for field in dataclasses.fields(cls)})
        stored = {name: data.get(name) for name in cls.STORED}
        return cls(**stored, frames=figures.frames, voxels=figures.voxels, stream_bytes=dict(figures.stream_bytes),
                   psnr=psnr(stored["rmse"], stored["peak"]))


@dataclasses.dataclass(frozen=True)
class ArchiveSummary:
    """What ``neuralvox info`` shows besides the frames; the decoder never reads it."""

    neuralvox: str  # the version that wrote the archive
    created: str
    codec: CodecSettings
    skipped: Mapping[str, str]  # grid name -> why it was not stored
    report: tuple[GridReport, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any], figures: Mapping[str, ReportFigures] | None = None) -> ArchiveSummary:
        """The summary of a neuralvox/1 header, or with each grid's ``figures`` of a neuralvox/2 one."""
        if figures is None and data.get("format") != "neuralvox/1":
            raise ValueError(f"a {data.get('format')} summary is read with the figures its frames and payloads give")
        return cls(str(data.get("neuralvox", "?")), str(data.get("created", "?")),
                   CodecSettings.from_json(data["codec"]), dict(data["skipped"]),
                   tuple(GridReport.from_json(g, None if figures is None else figures[g["name"]])
                         for g in data["report"]))


@dataclasses.dataclass(frozen=True)
class ArchiveHeader:
    """The whole header: the source's name pattern and missing frame numbers, every frame, and the summary (None
    when read for decoding, which does not need it)."""

    pattern: NamePattern
    gaps: tuple[int, ...]
    frames: tuple[FrameEntry, ...]
    summary: ArchiveSummary | None = None
    format: str = ARCHIVE_FORMAT

    def to_json(self) -> dict[str, Any]:
        if self.summary is None:
            raise ValueError("an archive header is written with its summary")
        summary, first = self.summary, self.format == "neuralvox/1"
        pattern = None if first else self.pattern
        return {"format": self.format, "neuralvox": summary.neuralvox, "created": summary.created,
                "pattern": self.pattern.to_dict(), "gaps": list(self.gaps), "codec": summary.codec.to_json(),
                "frames": [frame.to_json(pattern) for frame in self.frames], "skipped": dict(summary.skipped),
                "report": [report.to_dict() if first else report.to_stored() for report in summary.report]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], with_summary: bool = False,
                  payload_sizes: Mapping[str, int] | None = None) -> ArchiveHeader:
        """The header; with its summary, which for neuralvox/2 needs the archive's ``payload_sizes`` (key -> bytes,
        in payload order)."""
        if data.get("format") not in ARCHIVE_FORMATS:
            _expect_format(data, ARCHIVE_FORMAT, "archive header")
        pattern = NamePattern.from_dict(data["pattern"])
        frames = tuple(FrameEntry.from_json(frame, None if data["format"] == "neuralvox/1" else pattern)
                       for frame in data["frames"])
        summary = None
        if with_summary and data["format"] == "neuralvox/1":
            summary = ArchiveSummary.from_json(data)
        elif with_summary:
            if payload_sizes is None:
                raise ValueError(f"a {data['format']} summary is read with the archive's payload sizes")
            summary = ArchiveSummary.from_json(data, report_figures(frames, payload_sizes))
        return cls(pattern, tuple(data.get("gaps", ())), frames, summary, data["format"])


def _expect_format(data: Mapping[str, Any], expected: str, what: str) -> None:
    if data.get("format") != expected:
        raise UnknownFormatError(f"{what} format {data.get('format')!r} is not {expected!r} (from a newer or older "
                                 f"neuralvox?)")
