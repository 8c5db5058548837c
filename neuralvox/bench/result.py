"""Benchmark results: per grid and method point, rate, error and timing, with markdown and JSON views."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from neuralvox.bench.compare import Comparison, compare_at_psnr
from neuralvox.bench.table import format_table
from neuralvox.metrics import bits_per_voxel

NEURALVOX = "neuralvox"


@dataclasses.dataclass
class BenchPoint:
    """One method at one setting on one grid over the whole sequence; times are per frame."""

    method: str
    setting: str
    nbytes: int
    parts: dict[str, int]  # bytes by part (topology, payload, file header, latents, ...)
    voxels: int  # active voxels over all frames
    source_bytes: int  # the grid's bytes in the input files
    psnr: float  # dB, peak = the grid's value range over the sequence; inf when exact
    rmse: float
    max_abs_error: float
    error_bound: float | None  # the method's stated max abs error (largest over voxels); None: it states none
    within_bound: bool | None  # every decoded value within its stated error
    encode_ms: float | None
    decode_ms: float | None  # None where decoding cannot be timed apart from encoding
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.method} {self.setting}".strip()

    @property
    def bpv(self) -> float:
        return bits_per_voxel(self.nbytes, self.voxels)

    @property
    def ratio(self) -> float:
        """Source bytes over this method's bytes."""
        return self.source_bytes / self.nbytes if self.nbytes else math.inf

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(label=self.label, bpv=self.bpv, ratio=self.ratio)
        return {k: _finite_or_none(v) for k, v in out.items()}


@dataclasses.dataclass
class Match:
    """One neuralvox point against one baseline method at neuralvox's PSNR."""

    neuralvox: BenchPoint
    baseline: str
    comparison: Comparison

    @property
    def baseline_ratio(self) -> float | None:
        """The baseline's ratio vs source at neuralvox's PSNR (interpolated), when its curve reaches that PSNR."""
        bpv = self.comparison.baseline_bpv
        return self.neuralvox.source_bytes / (bpv * self.neuralvox.voxels / 8) if bpv else None

    def to_dict(self) -> dict[str, Any]:
        return {"neuralvox": self.neuralvox.label, "psnr": _finite_or_none(self.neuralvox.psnr),
                "neuralvox_bpv": self.neuralvox.bpv, "neuralvox_ratio": self.neuralvox.ratio,
                "baseline": self.baseline, "baseline_bpv": self.comparison.baseline_bpv,
                "baseline_ratio": self.baseline_ratio, "factor": self.comparison.factor,
                "verdict": self.comparison.verdict}


@dataclasses.dataclass
class GridBench:
    """Every method point measured on one grid, and the methods that could not run on it (method, reason)."""

    name: str
    value_type: str
    grid_class: str
    frames: int
    voxels: int
    source_bytes: int
    peak: float
    points: list[BenchPoint] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def curves(self) -> dict[str, list[BenchPoint]]:
        """Points grouped by method, in the order they were measured."""
        out: dict[str, list[BenchPoint]] = {}
        for point in self.points:
            out.setdefault(point.method, []).append(point)
        return out

    def matches(self) -> list[Match]:
        """Each neuralvox point against each baseline method, at the neuralvox point's PSNR."""
        curves = self.curves()
        baselines = {m: [(p.bpv, p.psnr) for p in pts] for m, pts in curves.items() if m != NEURALVOX}
        return [Match(point, method, compare_at_psnr((point.bpv, point.psnr), curve))
                for point in curves.get(NEURALVOX, []) for method, curve in baselines.items()]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value_type": self.value_type, "grid_class": self.grid_class,
                "frames": self.frames, "voxels": self.voxels, "source_bytes": self.source_bytes, "peak": self.peak,
                "points": [p.to_dict() for p in self.points], "skipped": [list(s) for s in self.skipped],
                "matches": [m.to_dict() for m in self.matches()]}


@dataclasses.dataclass
class BenchResult:
    """What ``run_bench`` measured: the inputs, each grid's points, and the grids it left out (name -> reason)."""

    inputs: list[str]
    frames: int
    grids: list[GridBench]
    skipped_grids: dict[str, str]
    notes: list[str]
    machine: str
    created: str

    def table(self) -> str:
        """Markdown: per grid a table of every method point, then neuralvox against each baseline at matched PSNR."""
        return format_table(self)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; an infinite PSNR (exact decode) is written as null."""
        return {"inputs": self.inputs, "frames": self.frames, "machine": self.machine, "created": self.created,
                "notes": self.notes, "skipped_grids": self.skipped_grids, "grids": [g.to_dict() for g in self.grids]}


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
