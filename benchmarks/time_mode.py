"""What the bounded codec's time mode gains: each reference sequence compressed with ``time_mode`` off and auto.

    .venv/bin/python benchmarks/time_mode.py [--psnr 40] [--only default smoke128 liquid64 blender velocity]

Both codings use the same bound (found for the PSNR on the same sample frames) and context model choice; bits are
the whole .nvox file over the active voxels of all frames. Every frame is decoded from the archive (in order) and
checked against the bound. Prints one Markdown row per sequence: bits per voxel off and auto, the change, how many
frames the time mode coded, encode and decode seconds (wall and this process's CPU time).
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

from neuralvox.codec.bounded import BoundedHeader  # noqa: E402
from neuralvox.codec.decoder import open_archive  # noqa: E402
from neuralvox.codec.encoder import compress  # noqa: E402
from neuralvox.vdb import read_vdb  # noqa: E402


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def run(folder: Path, grid: str, psnr: float, mode: str, series: list, out: Path) -> dict:
    """One coding of a sequence: bits per voxel, frames in the time mode, seconds, whether the bound held."""
    wall, cpu = clocks()
    report = compress([str(folder)], out, grids=[grid], psnr=psnr, device="cpu", progress=False, time_mode=mode,
                      workers=1)
    encode = (time.perf_counter() - wall, time.process_time() - cpu)
    bound = report.grids[0].bound
    wall, cpu = clocks()
    within, timed = True, 0
    with open_archive(out, device="cpu") as archive:
        for number, original in zip(archive.frames, series, strict=True):
            decoded = archive.decode_grid(number, grid)
            within = within and bool(np.all(np.abs(decoded.values.astype(np.float64) - original.values) <= bound))
            header = archive.entry(number).grids[grid].values
            timed += isinstance(header, BoundedHeader) and header.time_frame is not None
    decode = (time.perf_counter() - wall, time.process_time() - cpu)
    voxels = sum(g.voxel_count for g in series)
    return {"bpv": 8 * out.stat().st_size / voxels, "timed": timed, "encode": encode, "decode": decode,
            "within": within}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--psnr", type=float, default=40.0)
    parser.add_argument("--only", nargs="+", choices=list(SEQUENCES), default=list(SEQUENCES))
    args = parser.parse_args()
    print(f"{datetime.date.today()}, {platform.node()} ({platform.machine()}), PSNR {args.psnr:g} dB, one worker")
    print("| sequence | grid | bpv off | bpv auto | change | frames in the time mode | encode s off / auto "
          "(wall, CPU) | decode s off / auto (wall, CPU) | bound held |")
    print("|---|---|---:|---:|---:|---:|---|---|---|")
    for name in args.only:
        source, grid = SEQUENCES[name]
        folder = frames_of(source)
        series = [read_vdb(f, grids=[grid], warn_skipped=False).grids[grid].sorted()
                  for f in sorted(folder.glob("*.vdb"))]
        with tempfile.TemporaryDirectory(prefix="time-mode-") as tmp:
            off, auto = (run(folder, grid, args.psnr, mode, series, Path(tmp) / f"{mode}.nvox")
                         for mode in ("off", "auto"))
        seconds = {key: f"{off[key][0]:.1f}, {off[key][1]:.1f} / {auto[key][0]:.1f}, {auto[key][1]:.1f}"
                   for key in ("encode", "decode")}
        print(f"| {name} | {grid} | {off['bpv']:.3f} | {auto['bpv']:.3f} | {auto['bpv'] / off['bpv'] - 1:+.1%} | "
              f"{auto['timed']} of {len(series)} | {seconds['encode']} | {seconds['decode']} | "
              f"{off['within'] and auto['within']} |", flush=True)


if __name__ == "__main__":
    main()
