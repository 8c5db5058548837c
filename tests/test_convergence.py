"""The fit's convergence stop: the schedule's plateau logic on made-up losses, and real fits that stop early on an
easy target and run on for a hard one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralvox.codec.convergence import ConvergenceMonitor, Schedule
from neuralvox.codec.presets import quality_preset
from neuralvox.codec.values import encode_values
from neuralvox.sim.turbulence import turbulent_frame


def run(monitor: ConvergenceMonitor, loss_at) -> tuple[int, int]:
    """Feed ``loss_at(iteration)`` until the monitor stops; return (iterations, iteration the noise ended at)."""
    iteration, noise_ended = 0, None
    while not monitor.stopped(iteration):
        iteration += 1
        monitor.record(torch.tensor(loss_at(iteration)), iteration)
        if noise_ended is None and not monitor.noisy:
            noise_ended = iteration
    return iteration, noise_ended


def test_flat_loss_stops_after_the_noise_ends_and_the_rate_drops_twice() -> None:
    schedule = Schedule(cap=3000)
    monitor = ConvergenceMonitor(schedule, noisy=True)
    iterations, noise_ended = run(monitor, lambda _: 1.0)
    # one plateau per two windows: noise off, two rate drops, stop
    assert (noise_ended, iterations) == (2 * schedule.window, 8 * schedule.window)
    assert monitor.rate_scale(iterations) < schedule.decay**2 + 1e-9


def test_steadily_improving_loss_runs_to_the_cap_with_the_noise_ending_at_its_share() -> None:
    schedule = Schedule(cap=600)
    iterations, noise_ended = run(ConvergenceMonitor(schedule, noisy=True), lambda it: 0.99**it)
    assert iterations == schedule.cap
    assert noise_ended == int(schedule.noise_share * schedule.cap)


def test_absolute_resolution_counts_small_gains_as_converged() -> None:
    schedule = Schedule(cap=3000, resolution=1e-3)
    iterations, _ = run(ConvergenceMonitor(schedule, noisy=False), lambda it: 1e-4 * 0.999**it)
    assert iterations == 6 * schedule.window
    assert run(ConvergenceMonitor(Schedule(cap=3000), noisy=False), lambda it: 1e-4 * 0.999**it)[0] == 3000


def test_rate_follows_the_cosine_to_its_floor_without_plateaus() -> None:
    schedule = Schedule(cap=100)
    monitor = ConvergenceMonitor(schedule, noisy=False)
    assert monitor.rate_scale(0) == pytest.approx(1.0)
    assert monitor.rate_scale(100) == pytest.approx(schedule.floor)


@pytest.mark.slow
def test_fit_stops_early_on_an_easy_target_and_runs_on_for_a_hard_one() -> None:
    axis = np.arange(16)
    ramp = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.int32)
    easy = encode_values(ramp, (0.5 + 0.01 * ramp[:, 0]).astype(np.float32), grid_class="fog volume",
                         quality="low", device="cpu", start=None)
    turbulent = turbulent_frame(6000, seed=3).sorted()
    hard = encode_values(turbulent.ijk, turbulent.values, grid_class="fog volume", quality="low", device="cpu",
                         start=None)
    cap = quality_preset("low").iterations + quality_preset("low").finetune_iterations
    assert easy.stats.iterations < 0.6 * cap
    assert hard.stats.iterations > 1.3 * easy.stats.iterations
