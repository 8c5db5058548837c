"""Whether the encoder still tries the bounded codec's time mode on a grid (``neuralvox.codec.temporal``)."""

from __future__ import annotations

TIME_MODES = ("auto", "off")


class TimeChoice:
    """Each frame with a reference is coded with and without the time mode and the shorter is kept; a grid whose
    first ``TRIAL_FRAMES`` such frames saved less than ``MIN_SAVING`` of their bytes is coded without it from then
    on (its frames are then coded ahead on the engine again, not one after the other in this process)."""

    TRIAL_FRAMES = 2
    MIN_SAVING = 0.005

    def __init__(self, mode: str) -> None:
        if mode not in TIME_MODES:
            raise ValueError(f"--time-mode must be one of {', '.join(TIME_MODES)}, got {mode!r}")
        self.enabled = mode == "auto"
        self.trials: dict[str, list[tuple[int, int]]] = {}  # grid -> (bytes saved, bytes without) per tried frame
        self.off: set[str] = set()

    def wanted(self, grid: str) -> bool:
        """Whether the grid's next frames are coded in this process, predicted from the previous frame."""
        return self.enabled and grid not in self.off

    def record(self, grid: str, saved: int, coded: int) -> None:
        """A frame of ``grid`` was coded with a reference: ``saved`` bytes fewer than without it, ``coded`` bytes."""
        trials = self.trials.setdefault(grid, [])
        trials.append((saved, coded + saved))
        if len(trials) == self.TRIAL_FRAMES and sum(s for s, _ in trials) < self.MIN_SAVING * sum(t for _, t in trials):
            self.off.add(grid)
