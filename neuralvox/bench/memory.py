"""Peak memory of a process tree (a command and the workers it starts), sampled from Linux's /proc.

Each sample sums the proportional set size (PSS: shared pages split among the processes sharing them, so the shared
libraries of N workers count once) of the process and all its descendants; the peak is the largest sample. A
sampler thread can also record the peak per phase (``mark``), e.g. per range of frames written.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

_PROC = Path("/proc")


def _children(pid: int) -> list[int]:
    found = []
    for task in (_PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _pss_bytes(pid: int) -> int:
    try:
        for line in (_PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pss(pid: int) -> int:
    """PSS bytes of ``pid`` and all its descendants now."""
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _pss_bytes(current)
        todo += _children(current)
    return total


class PeakMemory:
    """``with PeakMemory(pid) as peak:`` samples the tree of ``pid`` every ``interval`` seconds; ``peak.bytes`` is the
    largest sample, ``peak.by_phase`` the largest per phase named by ``mark``."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.bytes = 0
        self.phase = ""
        self.by_phase: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def mark(self, phase: str) -> None:
        self.phase = phase

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = tree_pss(self.pid)
            self.bytes = max(self.bytes, sample)
            self.by_phase[self.phase] = max(self.by_phase.get(self.phase, 0), sample)
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
