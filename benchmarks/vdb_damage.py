"""Bit flips in a .vdb file: time, peak memory and outcome of read_vdb and grid_stats on each damaged copy.

Each read runs in a forked child under an address-space limit and an alarm, so a bad case cannot take the box down.
Run: .venv/bin/python benchmarks/vdb_damage.py FILE [--flips 300] [--seed 0] [--limit-gb 4] [--timeout 20]
         [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from neuralvox.vdb import VdbError, grid_stats, read_vdb

READERS = {"read_vdb": read_vdb, "grid_stats": grid_stats}
OUTCOME_CODES = {0: "ok", 2: "refused", 3: "other exception"}


def child(reader: str, path: Path, limit_gb: float, timeout: int) -> None:
    """Run one read and exit with its outcome code (never returns)."""
    resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2**30),) * 2)
    signal.alarm(timeout)
    warnings.simplefilter("ignore")
    try:
        READERS[reader](path)
        code = 0
    except VdbError:
        code = 2
    except BaseException:  # noqa: BLE001 - MemoryError and anything else the binding lets through
        code = 3
    os._exit(code)


def run_one(reader: str, path: Path, limit_gb: float, timeout: int) -> dict[str, object]:
    """Outcome ("ok", "refused", "other exception", "timeout", "killed by signal N"), seconds and peak RSS (MB)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        child(reader, path, limit_gb, timeout)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        outcome = "timeout" if sig == signal.SIGALRM else f"killed by signal {sig}"
    else:
        outcome = OUTCOME_CODES.get(os.WEXITSTATUS(status), f"exit {os.WEXITSTATUS(status)}")
    return {"outcome": outcome, "seconds": round(seconds, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--flips", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-gb", type=float, default=4.0)
    parser.add_argument("--timeout", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    original = args.file.read_bytes()
    rng = np.random.default_rng(args.seed)
    positions = rng.integers(0, len(original), args.flips)
    bits = rng.integers(0, 8, args.flips)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mutant = Path(tmp) / args.file.name
        for position, bit in zip(positions.tolist(), bits.tolist(), strict=True):
            data = bytearray(original)
            data[position] ^= 1 << bit
            mutant.write_bytes(bytes(data))
            for reader in READERS:
                rows.append({"position": position, "bit": bit, "reader": reader,
                             **run_one(reader, mutant, args.limit_gb, args.timeout)})
    for reader in READERS:
        mine = [r for r in rows if r["reader"] == reader]
        worst = max(mine, key=lambda r: r["seconds"])
        biggest = max(mine, key=lambda r: r["peak_rss_mb"])
        outcomes: dict[str, int] = {}
        for r in mine:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        print(f"{reader}: {len(mine)} flips, outcomes {outcomes}; slowest {worst['seconds']} s "
              f"(byte {worst['position']} bit {worst['bit']}, {worst['outcome']}); largest peak RSS "
              f"{biggest['peak_rss_mb']} MB (byte {biggest['position']} bit {biggest['bit']}, {biggest['outcome']})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
