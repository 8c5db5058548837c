"""OpenVDB read and write throughput of the binding (Mvox/s) for dense, shell and scattered grids.

Run: .venv/bin/python benchmarks/io_throughput.py [--sizes 1000000 10000000] [--repeat 3]
         [--shapes dense shell scattered]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import platform
import tempfile
from pathlib import Path

import numpy as np

from neuralvox.bench.timing import best_of
from neuralvox.grid import SparseGrid
from neuralvox.vdb import read_vdb, write_vdb


def dense_block(n: int) -> np.ndarray:
    side = round(n ** (1 / 3))
    axis = np.arange(side, dtype=np.int32)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


def shell(n: int) -> np.ndarray:
    """A spherical shell 4 voxels thick holding about n voxels, like a level set's narrow band (built slab by slab)."""
    radius = int(np.sqrt(n / (4 * np.pi * 4)))
    r = radius + 3
    axis = np.arange(-r, r + 1, dtype=np.int32)
    j, k = np.meshgrid(axis, axis, indexing="ij")
    slabs = []
    for i in axis:
        dist = np.sqrt(float(i) ** 2 + j.astype(np.float64) ** 2 + k.astype(np.float64) ** 2)
        inside = np.abs(dist - radius) < 2.0
        slabs.append(np.stack([np.full(int(inside.sum()), i, np.int32), j[inside], k[inside]], axis=1))
    return np.concatenate(slabs)


def scattered(n: int, seed: int = 0) -> np.ndarray:
    """About n distinct random voxels filling 10% of a cube."""
    side = int(round((n * 10) ** (1 / 3)))
    rng = np.random.default_rng(seed)
    flat = np.unique(rng.integers(0, side**3, size=int(n * 1.06)))[:n]
    return np.stack(np.unravel_index(flat, (side, side, side)), axis=-1).astype(np.int32)


SHAPES = {"dense": dense_block, "shell": shell, "scattered": scattered}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    args = parser.parse_args()

    print(f"machine: {platform.node()} ({platform.processor() or platform.machine()}), date: {datetime.date.today()}")
    print("| shape | voxels | compression | write Mvox/s | read Mvox/s | file MB |")
    print("|---|---:|---|---:|---:|---:|")
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for shape in args.shapes:
                ijk = SHAPES[shape](size)
                grid = SparseGrid(name="density", ijk=ijk, values=rng.random(len(ijk), dtype=np.float32),
                                  grid_class="fog volume")
                for compression in ("blosc", "zip", "none"):
                    path = Path(tmp) / f"{shape}_{compression}.vdb"
                    write_s = best_of(args.repeat, functools.partial(write_vdb, path, [grid],
                                                                     compression=compression, force=True))
                    read_s = best_of(args.repeat, functools.partial(read_vdb, path))
                    n = grid.voxel_count
                    print(f"| {shape} | {n:,} | {compression} | {n / write_s / 1e6:.1f} | {n / read_s / 1e6:.1f} "
                          f"| {path.stat().st_size / 1e6:.1f} |", flush=True)


if __name__ == "__main__":
    main()
