"""The training corpus of the learned starts: frames of the project's own simulations, grouped by grid kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from neuralvox.codec.starts import grid_kind
from neuralvox.grid import SparseGrid
from neuralvox.sim import generate


@dataclasses.dataclass(frozen=True)
class SimSpec:
    """One simulated sequence of the corpus: ``scenario`` at ``res`` cells across with ``seed``, sampled at
    ``frames``."""

    scenario: str
    res: int
    seed: int
    frames: tuple[int, ...]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CorpusGrid:
    """One grid of one corpus frame and where it came from."""

    kind: str
    source: str
    spec: SimSpec
    ijk: np.ndarray
    values: np.ndarray
    grid_class: str


DEFAULT_CORPUS = tuple(SimSpec(scenario, res, seed, (6, 12))
                       for scenario in ("plume", "plumes", "liquid")
                       for res, seeds in ((32, (1, 2)), (40, (1, 2)), (48, (3, 4)), (56, (3, 4))) for seed in seeds)
"""Three scenarios at four resolutions, two seeds each (seeds 1-2 at 32 and 40 cells, 3-4 at 48 and 56), two frames
each: none of the sequences the benchmarks measure (those are seed 0, or seed 7 at 48 cells, and the Blender
frames)."""


def corpus_grids(specs: Iterable[SimSpec]) -> dict[str, list[CorpusGrid]]:
    """Simulate ``specs`` and return their non-constant grids by kind (``neuralvox.codec.starts.GRID_KINDS``)."""
    by_kind: dict[str, list[CorpusGrid]] = {}
    for spec in specs:
        wanted = set(spec.frames)
        for frame, grids in generate(spec.scenario, spec.res, max(spec.frames), seed=spec.seed):
            if frame in wanted:
                for grid in grids:
                    _add(by_kind, spec, frame, grid)
    return by_kind


def _add(by_kind: dict[str, list[CorpusGrid]], spec: SimSpec, frame: int, grid: SparseGrid) -> None:
    grid = grid.sorted()
    values = grid.values
    if len(values) == 0 or float(values.max()) == float(values.min()):
        return
    channels = 1 if values.ndim == 1 else 3
    kind = grid_kind(grid.name, grid.grid_class, channels)
    source = f"{spec.scenario}/res{spec.res}/seed{spec.seed}/frame{frame}/{grid.name}"
    by_kind.setdefault(kind, []).append(CorpusGrid(kind, source, spec, grid.ijk, values, grid.grid_class))


def held_back(grids: Sequence[CorpusGrid], count: int) -> tuple[list[CorpusGrid], list[CorpusGrid]]:
    """``grids`` split into those to train on and ``count`` held back for validation, spread over the corpus: the
    i-th held-back grid is the last one of the i-th scenario (cycling) among the grids at the i-th resolution
    (cycling)."""
    resolutions = sorted({grid.spec.res for grid in grids})
    remaining, chosen = list(grids), []
    for index in range(min(count, len(grids) - 1)):
        pool = [grid for grid in remaining if grid.spec.res == resolutions[index % len(resolutions)]] or remaining
        scenarios = list(dict.fromkeys(grid.spec.scenario for grid in pool))
        wanted = scenarios[index % len(scenarios)]
        pick = [grid for grid in pool if grid.spec.scenario == wanted][-1]
        chosen.append(pick)
        remaining = [grid for grid in remaining if grid is not pick]
    return remaining, chosen
