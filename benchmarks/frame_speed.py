"""Whole-frame speed, neural base off: topology + values, encode and decode, next to OpenVDB reading the same .vdb.

    .venv/bin/python benchmarks/frame_speed.py [--size 128] [--bound 1e-2] [--repeat 5]

The frame is ``bounded_speed.turbulent_frame`` (about 1.7M active voxels at size 128), written as a .vdb with OpenVDB.
Times, best of ``--repeat`` in wall and in process CPU seconds (each minimum taken on its own): reading the .vdb; the
topology coder (``encode_topology`` / ``decode_topology``, compiled loops; its numpy reference codes a bit at a time
since topology format 2 and serves as the tests' oracle only); the bounded values (counting context model, ``--bound``
times the value range); both together, as a frame is coded and decoded; and constriction's raw decode floor: as many
value codes as the frame has voxels decoded in one call under one static Categorical (the frame's code histogram).
Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import constriction
import numpy as np
from bounded_speed import turbulent_frame

from neuralvox.codec.bounded import TrainingPass, decode_bounded, encode_grid
from neuralvox.topology import decode_topology, encode_topology
from neuralvox.vdb import read_vdb, write_vdb


@dataclasses.dataclass
class Timing:
    wall: float
    cpu: float


def best_of(repeat: int, run: Callable[[], object]) -> tuple[Timing, object]:
    """The smallest wall and the smallest process CPU time over ``repeat`` runs, and the last run's result."""
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        result = run()
        wall = min(wall, time.perf_counter() - start_wall)
        cpu = min(cpu, time.process_time() - start_cpu)
    return Timing(wall, cpu), result


def categorical_floor(codes: np.ndarray, repeat: int) -> Timing:
    """Constriction decoding ``codes`` in one call under one static Categorical (their histogram)."""
    low = int(codes.min())
    symbols = (codes - low).astype(np.int32)
    model = constriction.stream.model.Categorical(np.bincount(symbols) / len(symbols), perfect=False)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, model)
    words = encoder.get_compressed()
    timing, decoded = best_of(repeat, lambda: constriction.stream.queue.RangeDecoder(words).decode(model,
                                                                                                   len(symbols)))
    assert np.array_equal(decoded, symbols)
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--bound", type=float, default=1e-2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "turbulent.vdb"
        write_vdb(path, [turbulent_frame(args.size)])
        read_time, read = best_of(args.repeat, lambda: read_vdb(path))
        vdb_bytes = path.stat().st_size
    grid = read.grids["density"].sorted()
    voxels = grid.voxel_count
    bound = args.bound * float(grid.values.max() - grid.values.min())

    topology_encode, topology = best_of(args.repeat, lambda: encode_topology(grid.ijk))
    topology_decode, ijk = best_of(args.repeat, lambda: decode_topology(topology))
    assert np.array_equal(ijk, grid.ijk)
    values_encode, code = best_of(args.repeat, lambda: encode_grid(grid, bound))
    header = dataclasses.replace(code.header, context_frame=None)
    values_decode, values = best_of(args.repeat, lambda: decode_bounded(grid.ijk, header, code.stream))
    assert np.array_equal(values, code.decoded)
    frame_encode, _ = best_of(args.repeat, lambda: (encode_topology(grid.ijk), encode_grid(grid, bound)))

    def decode_frame() -> np.ndarray:
        return decode_bounded(decode_topology(topology), header, code.stream)

    frame_decode, _ = best_of(args.repeat, decode_frame)
    record: list[TrainingPass] = []
    encode_grid(grid, bound, record=record)
    codes_floor = categorical_floor(np.concatenate([visit.codes for visit in record]), args.repeat)

    load = os.getloadavg()[0]
    print(f"{datetime.date.today()}, {platform.node()} ({platform.machine()}), size {args.size}: {voxels:,} voxels, "
          f"bound {args.bound:g} of range, best of {args.repeat}, load average {load:.1f} at the end")
    print("| stage | bytes | wall s | CPU s | Mvox/s (wall) | Mvox/s (CPU) | x OpenVDB read (wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def row(name: str, timing: Timing, size: int | str = "") -> None:
        size_text = f"{size:,}" if isinstance(size, int) else size
        print(f"| {name} | {size_text} | {timing.wall:.3f} | {timing.cpu:.3f} | {voxels / timing.wall / 1e6:.2f} | "
              f"{voxels / timing.cpu / 1e6:.2f} | {read_time.wall / timing.wall:.2f}x |")

    row("OpenVDB read of the .vdb", read_time, vdb_bytes)
    row("topology encode (compiled)", topology_encode, len(topology))
    row("topology decode (compiled)", topology_decode, len(topology))
    row("values encode (counting)", values_encode, len(code.stream))
    row("values decode (counting)", values_decode, len(code.stream))
    row("frame encode (topology + values)", frame_encode, len(topology) + len(code.stream))
    row("frame decode (topology + values)", frame_decode, len(topology) + len(code.stream))
    row(f"constriction floor: {voxels:,} codes, one static Categorical", codes_floor)


if __name__ == "__main__":
    main()
