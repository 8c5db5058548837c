"""Each grid's absolute error bound for a QualityTarget: value ranges over the sequence, and a search for a PSNR."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from neuralvox.codec.bounded import encode_grid
from neuralvox.codec.chunked import SamplePiece, sample_piece
from neuralvox.codec.quality import QualityTarget
from neuralvox.grid import SparseGrid
from neuralvox.metrics import psnr

SEARCH_SAMPLES = 4  # frames a PSNR search codes, spread over the sequence
SEARCH_TOLERANCE_DB = 0.15
SEARCH_STEPS = 8
_SMALLEST_RANGE = 1e-30


@dataclasses.dataclass
class GridSurvey:
    """What one pass over the frames learns of a grid: its value range, voxel size, class and sample frames (of a
    grid coded in chunks, one chunk: ``chunked.sample_piece``)."""

    name: str
    low: float = math.inf
    high: float = -math.inf
    voxel_size: float = 1.0
    grid_class: str = "unknown"
    pieces: list[SamplePiece] = dataclasses.field(default_factory=list)

    @property
    def samples(self) -> list[SparseGrid]:
        return [piece.grid for piece in self.pieces]

    @property
    def value_range(self) -> float:
        return self.high - self.low if self.high >= self.low else 0.0

    def add(self, grid: SparseGrid, keep: bool) -> None:
        if grid.voxel_count:
            self.low = min(self.low, float(grid.values.min()))
            self.high = max(self.high, float(grid.values.max()))
        self.voxel_size = float(grid.voxel_size.mean())
        self.grid_class = grid.grid_class
        if keep:
            self.pieces.append(sample_piece(grid))


def sample_frames(count: int, samples: int = SEARCH_SAMPLES) -> set[int]:
    """Indices of up to ``samples`` frames spread evenly over ``count``."""
    return {int(round(i)) for i in np.linspace(0, count - 1, min(samples, count))} if count else set()


def needs_survey(target: QualityTarget) -> bool:
    """Whether the bounds depend on the sequence (a PSNR, or a bound in % of the value range)."""
    return target.psnr is not None or any(bound.unit == "%" for bound in target.bounds.values())


def resolve_bound(target: QualityTarget, survey: GridSurvey) -> float:
    """The absolute bound of one grid: from its stated bound, or searched for the target PSNR."""
    if target.psnr is not None:
        return bound_for_psnr(survey.samples, survey.value_range, target.psnr)
    bound = target.bound_for(survey.name)
    if bound is None:
        raise ValueError(f"no error bound given for grid '{survey.name}'")
    value = bound.absolute(survey.value_range, survey.voxel_size)
    if not value > 0:
        raise ValueError(f"grid '{survey.name}': --max-error {bound} of a value range of 0 is no bound; give an "
                         "absolute bound")
    return value


def bound_for_psnr(samples: Sequence[SparseGrid], peak: float, target_db: float) -> float:
    """The bound whose coding of ``samples`` lands within ``SEARCH_TOLERANCE_DB`` of ``target_db`` (PSNR against
    ``peak``), found by secant steps on log(bound), where PSNR falls by about 20 dB a decade."""
    peak = max(peak, _SMALLEST_RANGE)
    log_bound = math.log10(peak) - target_db / 20.0 + math.log10(math.sqrt(3.0))  # uniform errors in [-E, E]
    best = (math.inf, 10.0**log_bound)
    previous: tuple[float, float] | None = None
    for _ in range(SEARCH_STEPS):
        bound = 10.0**log_bound
        reached = sample_psnr(samples, bound, peak)
        miss = reached - target_db
        if abs(miss) < abs(best[0]):
            best = (miss, bound)
        if abs(miss) <= SEARCH_TOLERANCE_DB or not math.isfinite(reached):
            break
        slope = -20.0
        if previous is not None and previous[0] != log_bound and math.isfinite(previous[1]):
            measured_slope = (reached - previous[1]) / (log_bound - previous[0])
            if -60.0 < measured_slope < -5.0:
                slope = measured_slope
        previous = (log_bound, reached)
        log_bound -= miss / slope
    return best[1]


def sample_psnr(samples: Sequence[SparseGrid], bound: float, peak: float) -> float:
    """PSNR against ``peak`` of the sample grids coded under ``bound``."""
    squared, count = 0.0, 0
    for grid in samples:
        code = encode_grid(grid, bound)
        squared += float(((code.decoded.astype(np.float64) - grid.values) ** 2).sum())
        count += grid.values.size
    return psnr(math.sqrt(squared / count), peak) if count else math.inf
