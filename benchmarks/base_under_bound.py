"""Whether the neural base pays under the error bound: each reference sequence compressed with ``--base`` off, on, auto.

    .venv/bin/python benchmarks/base_under_bound.py [--psnr 20 30 40] [--frames 4] [--only default liquid64 blender]

For each target PSNR the bound is the one ``--base off`` finds for it; on and auto are then coded at that same
absolute bound. Counting contexts everywhere (the neural context model's fit would add the same seconds to each
mode), one worker, the first ``--frames`` frames. Bits are the whole .nvox file over the active voxels of all frames;
every frame is decoded from the archive and checked against the bound. Prints one Markdown row per sequence and PSNR,
with the bytes of the base's streams and of the residual (``on``) against the values' bytes (``off``): the residual
alone over the values is what a base costing nothing would give.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bounded_rd import SEQUENCES, frames_of  # noqa: E402

from neuralvox.codec.decoder import open_archive  # noqa: E402
from neuralvox.codec.encoder import compress  # noqa: E402
from neuralvox.metrics import error_stats, merge  # noqa: E402
from neuralvox.vdb import read_vdb  # noqa: E402


def run(paths: list[Path], grid: str, series: list, out: Path, mode: str, **target: float | str) -> dict:
    """One coding: bits per voxel, PSNR, the bound, frames coded over the base, encode seconds, bound held."""
    start = time.perf_counter()
    report = compress([str(p) for p in paths], out, grids=[grid], device="cpu", progress=False, workers=1,
                      context_model="counting", base=mode, **target)
    seconds = time.perf_counter() - start
    bound = report.grids[0].bound
    peak = max(float(g.values.max()) for g in series) - min(float(g.values.min()) for g in series)
    within, stats = True, []
    with open_archive(out, device="cpu") as archive:
        for number, original in zip(archive.frames, series, strict=True):
            decoded = archive.decode_grid(number, grid)
            stats.append(error_stats(original.values, decoded.values, peak))
            within = within and bool(np.all(np.abs(decoded.values.astype(np.float64) - original.values) <= bound))
        based = archive.info().over_base[grid][0]
    voxels = sum(g.voxel_count for g in series)
    streams = report.grids[0].stream_bytes
    return {"bpv": 8 * out.stat().st_size / voxels, "psnr": merge(stats, peak).psnr, "bound": bound,
            "peak": peak, "based": based, "seconds": seconds, "within": within, "values": streams.get("values", 0),
            "base": streams.get("latents", 0) + streams.get("weights", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--psnr", type=float, nargs="+", default=[20.0, 30.0, 40.0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--only", nargs="+", choices=list(SEQUENCES), default=["default", "liquid64", "blender"])
    args = parser.parse_args()
    print(f"{datetime.date.today()}, {platform.node()} ({platform.machine()}), first {args.frames} frames, "
          "counting contexts, one worker")
    print("| sequence | grid | target dB | bound / range | bpv off | bpv on | on / off | base B / residual B / "
          "values B (off) | PSNR dB off / on | auto: frames over the base, bpv | encode s off / on / auto | "
          "bound held |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|---|---|---|")
    for name in args.only:
        source, grid = SEQUENCES[name]
        paths = sorted(frames_of(source).glob("*.vdb"))[:args.frames]
        series = [read_vdb(p, grids=[grid], warn_skipped=False).grids[grid].sorted() for p in paths]
        for psnr in args.psnr:
            with tempfile.TemporaryDirectory(prefix="base-") as tmp:
                off = run(paths, grid, series, Path(tmp) / "off.nvox", "off", psnr=psnr)
                bound = repr(off["bound"])
                on = run(paths, grid, series, Path(tmp) / "on.nvox", "on", max_error=bound)
                auto = run(paths, grid, series, Path(tmp) / "auto.nvox", "auto", max_error=bound)
            print(f"| {name} | {grid} | {psnr:g} | {off['bound'] / off['peak']:.3g} | {off['bpv']:.3f} | "
                  f"{on['bpv']:.3f} | {on['bpv'] / off['bpv']:.2f}x | "
                  f"{on['base']} / {on['values']} / {off['values']} | "
                  f"{off['psnr']:.2f} / {on['psnr']:.2f} | "
                  f"{auto['based']} of {len(paths)}, {auto['bpv']:.3f} | "
                  f"{off['seconds']:.1f} / {on['seconds']:.1f} / {auto['seconds']:.1f} | "
                  f"{off['within'] and on['within'] and auto['within']} |", flush=True)


if __name__ == "__main__":
    main()
