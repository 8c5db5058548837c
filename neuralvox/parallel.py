"""Where tasks run: in this process, on a local process pool, or on a Ray cluster; results come back in order.

Every engine runs the same picklable top-level functions on the same task objects, so what they compute does not
depend on the engine or the number of workers. ``imap`` keeps at most ``window`` tasks in flight, so memory stays
bounded however many tasks there are.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

RAY_RETRIES = 3  # times Ray reruns a task whose worker died


class EngineError(RuntimeError):
    """An engine cannot start (Ray missing or unreachable)."""


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Engine(Protocol):
    workers: int

    def submit(self, function: Callable[..., Any], *args: Any) -> Any: ...

    def result(self, handle: Any) -> Any: ...

    def close(self) -> None: ...


class SerialEngine:
    """Runs each task at once, in this process."""

    workers = 1

    def submit(self, function: Callable[..., Any], *args: Any) -> Any:
        return function(*args)

    def result(self, handle: Any) -> Any:
        return handle

    def close(self) -> None:
        pass


class PoolEngine:
    """A local pool of ``workers`` processes (started fresh, not forked: torch and OpenMP do not survive a fork)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        return self.pool.submit(function, *args)

    def result(self, handle: Future) -> Any:
        return handle.result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class RayEngine:
    """Tasks on a Ray cluster: ``ray.init(address)``, or a local cluster of ``workers`` CPUs without an address. A
    task whose worker dies is rerun up to ``RAY_RETRIES`` times."""

    def __init__(self, address: str | None, workers: int) -> None:
        try:
            import ray
        except ImportError:
            raise EngineError("--ray needs Ray: pip install 'neuralvox[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
                else:
                    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise EngineError(f"--ray {address or ''}: cannot start or reach a Ray cluster: {exc}") from None
        self.workers = max(1, int(ray.cluster_resources().get("CPU", workers)))
        self._remote: dict[Callable[..., Any], Any] = {}

    def submit(self, function: Callable[..., Any], *args: Any) -> Any:
        if function not in self._remote:
            self._remote[function] = self.ray.remote(max_retries=RAY_RETRIES)(function)
        return self._remote[function].remote(*args)

    def result(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_engine(workers: int | None = None, ray: str | bool | None = None) -> Engine:
    """The engine for ``workers`` processes (default: every core; 1: this process), or Ray when ``ray`` is an
    address or True (a local cluster)."""
    count = default_workers() if workers is None else workers
    if count < 1:
        raise ValueError(f"--workers must be at least 1, got {count}")
    if ray is not None and ray is not False:
        return RayEngine(ray if isinstance(ray, str) else None, count)
    return SerialEngine() if count == 1 else PoolEngine(count)


def imap(engine: Engine, function: Callable[..., Any], tasks: Iterable[tuple], window: int) -> Iterator[Any]:
    """``function(*task)`` for each task, in order, with at most ``window`` tasks submitted and not yet returned."""
    pending: deque = deque()
    for task in tasks:
        pending.append(engine.submit(function, *task))
        if len(pending) >= window:
            yield engine.result(pending.popleft())
    while pending:
        yield engine.result(pending.popleft())
