"""Throughput of the error-bounded codec on one large frame, next to OpenVDB reading the same frame's .vdb.

    .venv/bin/python benchmarks/bounded_speed.py [--size 128] [--bound 1e-2] [--repeat 3]

Makes a synthetic turbulent density frame (a power-law random field thresholded to about 1M active voxels at size
128, written as a .vdb with OpenVDB), then times, best of ``--repeat``: reading the .vdb (OpenVDB through the
binding), the bounded encode and the bounded decode of its values (topology excluded from both), at a bound of
``--bound`` times the value range, with the counting context model and with a neural context model (fitted once
on the frame itself; the fit's time is its own column). Prints one Markdown row per entropy model.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from neuralvox.codec import arm_fit
from neuralvox.codec.bounded import decode_bounded, encode_grid
from neuralvox.codec.chunked import sample_piece
from neuralvox.grid import SparseGrid
from neuralvox.vdb import read_vdb, write_vdb


def turbulent_frame(size: int, seed: int = 0) -> SparseGrid:
    """A density grid: a k^-11/6 random field in a cube, voxels above a threshold active (about 40%)."""
    rng = np.random.default_rng(seed)
    k2 = (np.fft.fftfreq(size)[:, None, None] ** 2 + np.fft.fftfreq(size)[None, :, None] ** 2
          + np.fft.rfftfreq(size)[None, None, :] ** 2)
    spectrum = (rng.normal(size=k2.shape) + 1j * rng.normal(size=k2.shape)) / (1e-4 + k2) ** (11 / 12)
    field = np.fft.irfftn(spectrum, s=(size, size, size), axes=(0, 1, 2))
    field = ((field - field.min()) / (field.max() - field.min())).astype(np.float32)
    active = field > 0.45
    return SparseGrid(name="density", ijk=np.argwhere(active).astype(np.int32), values=field[active],
                      grid_class="fog volume", transform=np.diag([0.01, 0.01, 0.01, 1.0]))


def best_of(repeat: int, run) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--bound", type=float, default=1e-2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    grid = turbulent_frame(args.size)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "turbulent.vdb"
        write_vdb(path, [grid])
        read_seconds, read = best_of(args.repeat, lambda: read_vdb(path))
    grid = read.grids["density"].sorted()
    bound = args.bound * float(grid.values.max() - grid.values.min())
    start = time.perf_counter()
    features, codes, _ = arm_fit.training_codes([sample_piece(grid)], bound)
    context = arm_fit.train_context(features, codes, hidden=16)
    fit_seconds = time.perf_counter() - start
    voxels = grid.voxel_count
    print(f"{datetime.date.today()}, {platform.node()} ({platform.machine()}), size {args.size}, bound "
          f"{args.bound:g} of range, best of {args.repeat}")
    print("| entropy model | voxels | bpv (values) | OpenVDB read Mvox/s | fit s | encode Mvox/s | decode Mvox/s | "
          "decode / OpenVDB read |")
    print("|---|---|---|---|---|---|---|---|")
    for name, weights, fit in (("counting", None, 0.0), ("neural (16 wide)", context, fit_seconds)):
        encode_seconds, code = best_of(args.repeat, lambda weights=weights: encode_grid(grid, bound, weights))
        header = dataclasses.replace(code.header, context_frame=None if weights is None else 0)
        decode_seconds, decoded = best_of(args.repeat, lambda header=header, code=code, weights=weights:
                                          decode_bounded(grid.ijk, header, code.stream, weights))
        assert np.array_equal(decoded, code.decoded)
        print(f"| {name} | {voxels:,} | {8 * len(code.stream) / voxels:.3f} | {voxels / read_seconds / 1e6:.2f} | "
              f"{fit:.1f} | {voxels / encode_seconds / 1e6:.2f} | {voxels / decode_seconds / 1e6:.2f} | "
              f"{read_seconds / decode_seconds:.2f}x |")


if __name__ == "__main__":
    main()
