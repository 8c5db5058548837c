"""Engines: the same tasks give the same results in order on this process, a local pool and a Ray cluster."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from neuralvox.parallel import EngineError, PoolEngine, RayEngine, SerialEngine, imap, make_engine


def square_after(value: int, marker: str) -> tuple[int, int]:
    """A task that kills its own worker the first time it runs with a marker path (the file records that it did)."""
    if marker and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return value, value * value


def test_make_engine_picks_the_engine() -> None:
    assert isinstance(make_engine(1), SerialEngine)
    pool = make_engine(2)
    try:
        assert isinstance(pool, PoolEngine) and pool.workers == 2
    finally:
        pool.close()
    with pytest.raises(ValueError, match="at least 1"):
        make_engine(0)


def test_imap_keeps_the_order_and_the_window() -> None:
    submitted: list[int] = []

    class Recording(SerialEngine):
        def submit(self, function, *args):
            submitted.append(args[0])
            return function(*args)

    tasks = ((n, "") for n in range(10))
    results = []
    for result in imap(Recording(), square_after, tasks, window=3):
        results.append(result)
        assert len(submitted) - len(results) <= 2  # never more than the window ahead
    assert results == [(n, n * n) for n in range(10)]


def test_pool_gives_the_serial_results_in_order() -> None:
    engine = PoolEngine(2)
    try:
        assert list(imap(engine, square_after, [(n, "") for n in range(20)], window=4)) == \
            [square_after(n, "") for n in range(20)]
    finally:
        engine.close()


def test_asking_for_ray_without_it_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EngineError, match=r"pip install 'neuralvox\[ray\]'"):
        make_engine(2, ray=True)


def test_ray_reruns_a_task_whose_worker_died(tmp_path: Path) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import a test module
    engine = RayEngine(None, 2)
    try:
        marker = tmp_path / "killed"
        tasks = [(n, str(marker) if n == 3 else "") for n in range(8)]
        assert list(imap(engine, square_after, tasks, window=4)) == [(n, n * n) for n in range(8)]
        assert marker.exists()  # the task did kill its first worker
    finally:
        engine.close()
