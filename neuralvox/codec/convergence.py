"""When a training phase of the fit ends: a relative-improvement test over windows of iterations, with a cap."""

from __future__ import annotations

import dataclasses
import math

import torch

_MIN_WINDOW = 10


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One training phase: at most ``cap`` iterations, and a stop once the loss has converged.

    Every ``window`` iterations the window's mean loss is compared with the best window mean since the last plateau;
    an improvement below ``tolerance`` (relative) or below ``resolution`` (absolute: for a rate-distortion loss,
    lambda times the bits per voxel not worth more iterations) is a plateau. The first plateau ends the noise (a
    noisy phase's noise also ends at ``noise_share`` of the cap), each later one multiplies the learning rate by
    ``decay``, and the plateau after ``decays`` of them stops the phase. The learning rate also follows a cosine
    from 1 to ``floor`` over the cap, so that a fit that never converges runs as the fixed-count fit did.
    """

    cap: int
    resolution: float = 0.0
    tolerance: float = 2e-3
    decay: float = 0.3
    decays: int = 2
    noise_share: float = 0.6
    floor: float = 0.02

    @property
    def window(self) -> int:
        return max(_MIN_WINDOW, self.cap // 30)


class ConvergenceMonitor:
    """Follows one phase's loss (kept on the device: one host read per window) and says what the schedule asks."""

    def __init__(self, schedule: Schedule, noisy: bool):
        self.schedule = schedule
        self.noisy = noisy
        self._noisy_until = int(schedule.noise_share * schedule.cap)
        self._decays = 0
        self._best: float | None = None
        self._window_sum: torch.Tensor | None = None
        self._converged = False

    def stopped(self, iteration: int) -> bool:
        return self._converged or iteration >= self.schedule.cap

    def rate_scale(self, iteration: int) -> float:
        """The learning rate at ``iteration`` as a fraction of the initial one."""
        schedule = self.schedule
        cosine = 0.5 * (1 + math.cos(math.pi * iteration / schedule.cap))
        return (schedule.floor + (1 - schedule.floor) * cosine) * schedule.decay**self._decays

    def record(self, loss: torch.Tensor, iteration: int) -> None:
        """Add the loss of the iteration that just ran (``iteration`` counts from 1)."""
        self._window_sum = loss if self._window_sum is None else self._window_sum + loss
        if self.noisy and iteration >= self._noisy_until:
            self.noisy = False
            self._best = None
        window = self.schedule.window
        if iteration % window:
            return
        mean = float(self._window_sum) / window  # the phase's one host round trip per window
        self._window_sum = None
        schedule = self.schedule
        if self._best is not None and self._best - mean < max(schedule.tolerance * abs(self._best),
                                                               schedule.resolution):
            self._plateau()
        else:
            self._best = mean if self._best is None else min(self._best, mean)

    def _plateau(self) -> None:
        self._best = None
        if self.noisy:
            self.noisy = False
        elif self._decays < self.schedule.decays:
            self._decays += 1
        else:
            self._converged = True
