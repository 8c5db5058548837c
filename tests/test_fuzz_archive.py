"""Fuzzing the archive reader: random mutations of a valid archive's table of contents and payloads never give a
traceback, a hang, a file outside -o, or a memory peak past a fixed budget.

CI runs a few examples; ``NEURALVOX_FUZZ_EXAMPLES=2000`` runs more, and ``NEURALVOX_FUZZ_REPORT=path.json`` writes
the examples tried, peak memory and outcomes by kind there (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import re
import resource
import signal
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import archive_table, write_current_archive, write_v1_archive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralvox.cli import main
from neuralvox.codec.encoder import compress
from neuralvox.grid import SparseGrid
from neuralvox.vdb import write_vdb

EXAMPLES = int(os.environ.get("NEURALVOX_FUZZ_EXAMPLES", "60"))
SECONDS_PER_EXAMPLE = 60  # a hang is an example that runs longer
MEMORY_BUDGET = 3 << 30  # peak resident bytes of the whole test process
OUTCOMES: collections.Counter[str] = collections.Counter()


class Hang(BaseException):
    """An example ran past SECONDS_PER_EXAMPLE (BaseException: no handler in neuralvox may swallow it)."""


@pytest.fixture(scope="module", params=["bounded", "base-only"])
def valid(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], bytes]:
    """A valid two-frame archive (error-bounded values, or the neural base's), its table of contents in container
    version 1's JSON form (what the mutations reach into; the mutants are version 1 archives, or today's where only
    the header changed) and its payload bytes."""
    folder = tmp_path_factory.mktemp("fuzz")
    for t in range(2):
        ijk = np.stack(np.meshgrid(*[np.arange(6)] * 3, indexing="ij"), -1).reshape(-1, 3) + [t, 0, 0]
        ijk, values = ijk.astype(np.int32), (1 + np.sin(0.5 * ijk[:, 0])).astype(np.float32)
        write_vdb(folder / f"f_{t + 1:03d}.vdb", [SparseGrid(name="density", ijk=ijk, values=values)])
    path = folder / "f.nvox"
    if request.param == "bounded":
        compress([str(folder)], path, max_error="0.01", device="cpu", progress=False)
    else:
        compress([str(folder)], path, quality="low", base_only=True, device="cpu", gop=2, progress=False)
    table, payloads = archive_table(path)
    yield path, table, payloads
    if os.environ.get("NEURALVOX_FUZZ_REPORT"):
        report = {"examples": sum(OUTCOMES.values()), "peak_rss_bytes": peak_rss(),
                  "outcomes": dict(OUTCOMES.most_common())}
        target = Path(os.environ["NEURALVOX_FUZZ_REPORT"])
        target.with_stem(f"{target.stem}-{request.param}").write_text(json.dumps(report, indent=1) + "\n")
    OUTCOMES.clear()


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -------------------------------------------------------------------------------------------- mutations
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.sampled_from([0, -1, 1, 2**31, 10**15, 45000]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["../../escape.vdb", "/tmp/neuralvox-fuzz-escape.vdb", "a/b", "..", "x\0y", "density", "motion",
                     "neuralvox-values/1", "frames/1/density/latents"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)


def paths_of(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON tree, as the keys and indices that lead there."""
    places = [prefix]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        places += paths_of(child, (*prefix, key))
    return places


@st.composite
def mutations(draw: st.DrawFn, table: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """A table of contents with 1-3 places replaced, deleted or copied, and payload bytes to flip (their checksums
    recomputed, so that the decoder sees crafted payloads, not checksum errors)."""
    table = json.loads(json.dumps(table))
    for _ in range(draw(st.integers(1, 3))):
        places = [p for p in paths_of(table) if p]
        if not places:  # everything deleted
            break
        place = draw(st.sampled_from(places))
        parent = table
        for key in place[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "copy"]))
        if action == "replace":
            parent[place[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[place[-1]]
        else:
            parent[place[-1]] = json.loads(json.dumps(draw(st.sampled_from([*table.values(), parent[place[-1]]]))))
    flips = draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=3))
    return table, flips


def write_mutant(path: Path, payloads: bytes, table: dict[str, Any], flips: list[tuple[int, int]],
                 current: bool) -> None:
    """The mutant as a container version 1 archive, or, where ``current`` and only its header changed, as one of
    today's version (the header packed)."""
    data = bytearray(payloads)
    rows = table.get("payloads") if isinstance(table.get("payloads"), list) else []
    for position, mask in flips if data else []:
        index = position % len(data)
        data[index] ^= mask
        _fix_checksum(rows, data, index)
    if current:
        write_current_archive(path, table, bytes(data))
    else:
        write_v1_archive(path, zlib.compress(json.dumps(table).encode()), bytes(data))


def _fix_checksum(rows: list[Any], payloads: bytearray, index: int) -> None:
    offset = 0
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[1], int) and row[1] >= 0):
            return
        if offset <= index < offset + row[1]:
            row[2] = zlib.crc32(payloads[offset:offset + row[1]])
            return
        offset += row[1]


# ------------------------------------------------------------------------------------------------ checks
def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()

    def hang(*_: object) -> None:
        raise Hang(f"{argv[0]} ran past {SECONDS_PER_EXAMPLE} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(SECONDS_PER_EXAMPLE)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, err.getvalue()


def outcome(code: int, err: str) -> str:
    """The kind of an outcome, for the report: ok, or the error with names and numbers taken out."""
    if code == 0:
        return "ok"
    line = err.strip().splitlines()[-1].partition(".nvox: ")[2]
    line = re.sub(r"frame [^,:]+", "frame N", re.sub(r"grid '[^']*'", "grid G", line))
    return re.sub(r"\(.*", "(...)", re.sub(r": .*", "", line, count=1) if "field" not in line else
                  line.split(": ")[1])


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize="NEURALVOX_FUZZ_EXAMPLES" not in os.environ)  # CI: the same examples every run
@given(data=st.data())
def test_mutated_archives_fail_cleanly(valid: tuple[Path, dict[str, Any], bytes], data: st.DataObject) -> None:
    _, table, payloads = valid
    mutant, flips = data.draw(mutations(table))
    header_only = isinstance(mutant.get("header"), dict) and set(mutant) == {"header", "payloads"}
    current = header_only and mutant["payloads"] == table["payloads"] and data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        archive, out = root / "m.nvox", root / "out"
        write_mutant(archive, payloads, mutant, flips, current)
        before = files_under(root)
        for argv in (["info", str(archive)], ["decompress", str(archive), "-o", str(out), "--quiet", "--device",
                                               "cpu"]):
            code, err = run_cli(argv)
            assert code in (0, 2), err
            if code == 2:
                errors = [line for line in err.splitlines() if line.startswith("neuralvox: error: ")]
                assert len(errors) == 1 and str(archive) in errors[0], err
            if argv[0] == "decompress":
                OUTCOMES[outcome(code, err)] += 1
        outside = {p for p in files_under(root) - before if p != out and out not in p.parents}
        assert not outside, outside
    assert not Path("/tmp/neuralvox-fuzz-escape.vdb").exists()
    assert peak_rss() < MEMORY_BUDGET, f"peak memory {peak_rss() >> 20} MiB"
