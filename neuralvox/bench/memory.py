"""Peak memory of a process tree (a command and the workers it starts), sampled from Linux's /proc.

Each sample sums the proportional set size (PSS: shared pages split among the processes sharing them, so the shared
libraries of N workers count once) of the process and all its descendants; the peak is the largest sample. A
sampler thread can also record the peak per phase (``mark``), e.g. per range of frames written.
"""

from __future__ import annotations

import os
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


def _cpu_ticks(pid: int) -> int:
    """User + system clock ticks ``pid`` has run so far (0 once it is gone)."""
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants now."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current not in found:
            found.append(current)
            todo += _children(current)
    return found


class PeakMemory:
    """``with PeakMemory(pid) as peak:`` samples the tree of ``pid`` every ``interval`` seconds; ``peak.bytes`` is the
    largest sample, ``peak.by_phase`` the largest per phase named by ``mark``, ``peak.cpu_seconds`` the CPU time of
    every process seen in the tree (to its last sample: a worker's CPU, which ``wait4`` of the command leaves out when
    the worker is not its child)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.bytes = 0
        self.phase = ""
        self.by_phase: dict[str, int] = {}
        self._ticks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def mark(self, phase: str) -> None:
        self.phase = phase

    def _run(self) -> None:
        while not self._stop.is_set():
            members = _tree(self.pid)
            sample = sum(_pss_bytes(member) for member in members)
            for member in members:
                self._ticks[member] = max(self._ticks.get(member, 0), _cpu_ticks(member))
            self.bytes = max(self.bytes, sample)
            self.by_phase[self.phase] = max(self.by_phase.get(self.phase, 0), sample)
            time.sleep(self.interval)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._ticks.values()) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
