"""What quality the user asks for: an error bound per grid (absolute, % of the range, or voxels) or a target PSNR."""

from __future__ import annotations

import dataclasses
import math
import re

# The quality presets of the error-bounded codec, as target PSNR in dB over the sequence's value range.
PRESET_PSNR = {"low": 30.0, "medium": 40.0, "high": 50.0}
UNITS = ("abs", "%", "vox")
_NUMBER = re.compile(r"^\s*([-+0-9.eEinfINFaAnN]+)\s*(%|vox)?\s*$")


@dataclasses.dataclass(frozen=True)
class Bound:
    """One error bound: ``value`` in the grid's units ("abs"), in % of its value range over the sequence ("%"), or
    in voxels of its voxel size ("vox", for level sets, whose values are world-space distances)."""

    value: float
    unit: str = "abs"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"bound unit {self.unit!r} is not one of {UNITS}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"--max-error must be a positive finite number, got {self.value}")

    def absolute(self, value_range: float, voxel_size: float) -> float:
        """The bound in the grid's units."""
        if self.unit == "%":
            return self.value / 100.0 * value_range
        if self.unit == "vox":
            return self.value * voxel_size
        return self.value

    def __str__(self) -> str:
        return f"{self.value:g}{'' if self.unit == 'abs' else self.unit}"

    @classmethod
    def parse(cls, text: str) -> Bound:
        match = _NUMBER.match(text)
        if not match:
            raise ValueError(f"--max-error {text!r}: expected a number, a percentage (0.1%) or voxels (0.05vox)")
        try:
            value = float(match.group(1))
        except ValueError:
            raise ValueError(f"--max-error {text!r}: {match.group(1)!r} is not a number") from None
        return cls(value, match.group(2) or "abs")


@dataclasses.dataclass(frozen=True)
class QualityTarget:
    """Per-grid bounds (the key None holds the bound of every grid not named), or one PSNR for every grid."""

    bounds: dict[str | None, Bound] = dataclasses.field(default_factory=dict)
    psnr: float | None = None

    def __post_init__(self) -> None:
        if (self.psnr is None) == (not self.bounds):
            raise ValueError("give either error bounds or a target PSNR")
        if self.psnr is not None and not (math.isfinite(self.psnr) and self.psnr > 0):
            raise ValueError(f"--psnr must be a positive number of dB, got {self.psnr}")

    def bound_for(self, grid: str) -> Bound | None:
        return self.bounds.get(grid, self.bounds.get(None))

    def named_grids(self) -> list[str]:
        return [name for name in self.bounds if name is not None]

    def describe(self) -> str:
        if self.psnr is not None:
            return f"psnr {self.psnr:g} dB"
        return ",".join(str(bound) if name is None else f"{name}={bound}" for name, bound in self.bounds.items())


def parse_max_error(text: str) -> dict[str | None, Bound]:
    """``0.001``, ``0.1%``, ``0.05vox`` (every grid) or ``density=0.001,vel=1%`` (per grid)."""
    bounds: dict[str | None, Bound] = {}
    for part in text.split(","):
        name, sep, value = part.rpartition("=")
        key = name.strip() if sep else None
        if sep and not key:
            raise ValueError(f"--max-error {text!r}: a grid name is missing before '='")
        if key in bounds:
            raise ValueError(f"--max-error {text!r}: {'every grid' if key is None else key} given twice")
        bounds[key] = Bound.parse(value)
    return bounds


def quality_target(quality: str = "medium", max_error: str | dict[str | None, Bound] | float | None = None,
                   psnr: float | None = None) -> QualityTarget:
    """The target of a compress call: ``max_error`` or ``psnr`` when given (not both), else the preset's PSNR."""
    if max_error is not None and psnr is not None:
        raise ValueError("give --max-error or --psnr, not both")
    if max_error is not None:
        if isinstance(max_error, str):
            return QualityTarget(parse_max_error(max_error))
        if isinstance(max_error, dict):
            return QualityTarget(dict(max_error))
        return QualityTarget({None: Bound(float(max_error))})
    if psnr is not None:
        return QualityTarget(psnr=float(psnr))
    if quality not in PRESET_PSNR:
        raise ValueError(f"quality {quality!r} is not one of {sorted(PRESET_PSNR)}")
    return QualityTarget(psnr=PRESET_PSNR[quality])
