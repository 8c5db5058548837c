"""Where tasks run: in this process, on a local process pool, or on a Ray cluster; results come back in order.

Every engine runs the same picklable top-level functions on the same task objects, so what they compute does not
depend on the engine or the number of workers. ``imap`` keeps at most ``window`` tasks in flight, so memory stays
bounded however many tasks there are.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.machinery
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

RAY_RETRIES = 3  # times Ray reruns a task whose worker died
_PRELOAD = ("neuralvox.codec.value_jobs",)  # the modules of the tasks, imported once by the fork server
POOL_MIN_VOXELS = 1 << 22  # less work than this (about 2 s on one core) does not pay for starting a pool


class EngineError(RuntimeError):
    """An engine cannot start (Ray missing or unreachable)."""


def release_free_memory() -> None:
    """Hand the allocator's free heap back to the system (glibc's ``malloc_trim``; nothing elsewhere): a pool worker
    otherwise keeps its largest task's high-water mark while idle (about 0.6 GB after a 4M-voxel chunk)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _task_then_release(function: Callable[..., Any], *args: Any) -> Any:
    """A pool task: ``function(*args)``, then the memory it freed handed back."""
    try:
        return function(*args)
    finally:
        release_free_memory()


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def auto_workers(work_voxels: int) -> int:
    """The default number of workers for coding ``work_voxels`` voxels: every core, or 1 for small work."""
    return default_workers() if work_voxels >= POOL_MIN_VOXELS else 1


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
    """A local pool of ``workers`` processes, forked from a fork server that has imported neuralvox and nothing
    else: workers start in milliseconds, do not inherit the caller's threads or memory, and never rerun the
    caller's script (a script need not guard its ``compress`` call with ``if __name__ == "__main__"``)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(_PRELOAD))
        self.pool = ProcessPoolExecutor(workers, mp_context=context)

    def submit(self, function: Callable[..., Any], *args: Any) -> Future:
        with _main_script_left_alone():  # the pool starts its processes in submit
            return self.pool.submit(_task_then_release, function, *args)

    def result(self, handle: Future) -> Any:
        return handle.result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


@contextlib.contextmanager
def _main_script_left_alone() -> Iterator[None]:
    """While processes start, the caller's script poses as a module named ``__main__``, which multiprocessing does not
    import in a new process: by default it reruns a script there, and a script without an ``if __name__ ==
    "__main__"`` guard would compress again in each worker. The tasks live in neuralvox modules, not in the script."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or not getattr(main, "__file__", None):
        yield
        return
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


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
