"""Fluid-simulation generators: smoke and liquid scenarios on torch, exported as sparse grids or .vdb sequences."""

from __future__ import annotations

from neuralvox.runtime import prepare_torch

prepare_torch()

import os
from collections.abc import Iterator
from pathlib import Path

import torch

from neuralvox.atomic import OutputExistsError
from neuralvox.device import resolve_device
from neuralvox.grid import SparseGrid
from neuralvox.sim.scenarios import SCENARIO_CLASSES, Scenario

SCENARIOS: tuple[str, ...] = tuple(SCENARIO_CLASSES)
"""Scenario names: ``plume`` (plume into a sphere), ``plumes`` (two colliding fire jets), ``liquid`` (level set)."""

MIN_RESOLUTION = 8

__all__ = ["SCENARIOS", "generate", "simulate", "make_scenario", "frame_path"]


def make_scenario(scenario: str, res: int, seed: int = 0, device: str | torch.device = "cpu") -> Scenario:
    """A scenario at frame 0, ``res`` cells across its 2 m width (x), on ``device`` ("auto": cuda when available).

    Raises ValueError naming the bad argument."""
    if scenario not in SCENARIO_CLASSES:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if int(res) != res or res < MIN_RESOLUTION:
        raise ValueError(f"scenario {scenario!r}: resolution must be an integer >= {MIN_RESOLUTION}, got {res}")
    try:
        device = resolve_device(device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"scenario {scenario!r}: device {str(device)!r} is not usable: {exc}") from None
    return SCENARIO_CLASSES[scenario](int(res), int(seed), device)


def generate(
    scenario: str, res: int, frames: int, seed: int = 0, device: str | torch.device = "cpu", fps: float | None = None
) -> Iterator[tuple[int, list[SparseGrid]]]:
    """Simulate ``frames`` frames, ``fps`` per second (default the scenario's 24), and yield ``(frame_number, grids)``
    from frame 1; needs no OpenVDB. ``fps`` only sets when frames are taken: the time steps stay CFL-limited.

    Arguments are checked at once (ValueError), before the first frame is asked for."""
    if int(frames) != frames or frames < 1:
        raise ValueError(f"scenario {scenario!r}: frames must be a positive integer, got {frames}")
    if fps is not None and not fps > 0:
        raise ValueError(f"scenario {scenario!r}: frames per second must be positive, got {fps}")
    sim = make_scenario(scenario, res, seed, device)
    return _frames(sim, int(frames), sim.frame_time if fps is None else 1.0 / fps)


def _frames(sim: Scenario, frames: int, frame_time: float) -> Iterator[tuple[int, list[SparseGrid]]]:
    for frame in range(1, frames + 1):
        sim.advance(frame_time)
        yield frame, sim.grids()


def frame_path(out_dir: str | os.PathLike, name: str, frame: int) -> Path:
    """``out_dir/NAME.0001.vdb`` for frame 1."""
    return Path(out_dir) / f"{name}.{frame:04d}.vdb"


def simulate(
    scenario: str,
    out_dir: str | os.PathLike,
    res: int,
    frames: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    name: str | None = None,
    force: bool = False,
    progress: bool = True,
    fps: float | None = None,
) -> list[Path]:
    """Simulate and write ``out_dir/NAME.0001.vdb`` ... (NAME defaults to the scenario); returns the paths written.

    Bad arguments (ValueError) and existing files (OutputExistsError, unless ``force``) are refused before simulating.
    """
    from tqdm import tqdm

    from neuralvox.vdb import write_vdb

    steps = generate(scenario, res, frames, seed, device, fps)
    name = name or scenario
    paths = [frame_path(out_dir, name, frame) for frame in range(1, int(frames) + 1)]
    if not force:
        for path in paths:
            if path.exists():
                raise OutputExistsError(f"{path}: exists (use --force to overwrite)")
    metadata = {"creator": "neuralvox.sim", "scenario": scenario, "seed": int(seed), "resolution": int(res)}
    if fps is not None:
        metadata["fps"] = float(fps)
    written = []
    for frame, grids in tqdm(steps, total=len(paths), desc=f"sim {scenario}", unit="frame", disable=not progress):
        path = paths[frame - 1]
        write_vdb(path, grids, metadata={**metadata, "frame": frame}, force=force)
        written.append(path)
    return written
