"""The training corpus of the learned starts: frames of the project's own simulations, grouped by grid kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

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
    ijk: np.ndarray
    values: np.ndarray
    grid_class: str


DEFAULT_CORPUS = tuple(SimSpec(scenario, res, seed, (6, 12))
                       for scenario in ("plume", "plumes", "liquid") for res in (32, 40) for seed in (1, 2))
"""Three scenarios, two resolutions and two seeds, two frames each: none of the sequences the benchmarks measure
(those are seed 0, or seed 7 at other resolutions, and the Blender frames)."""


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
    by_kind.setdefault(kind, []).append(CorpusGrid(kind, source, grid.ijk, values, grid.grid_class))
