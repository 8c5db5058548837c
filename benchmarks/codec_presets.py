"""Compress and decompress one .vdb sequence at each quality preset: ratio, bpv split, PSNR, errors, seconds per frame.

Run: .venv/bin/python benchmarks/codec_presets.py INPUTS... [--grids density,temperature,velocity]
         [--qualities low medium high] [--device auto] [--gop 8]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

from neuralvox.codec.decoder import decompress
from neuralvox.codec.encoder import compress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--grids")
    parser.add_argument("--qualities", nargs="+", default=["low", "medium", "high"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--gop", type=int, default=8)
    args = parser.parse_args()
    grids = args.grids.split(",") if args.grids else None

    print(f"`{shlex.join(['.venv/bin/python', *sys.argv])}` on {platform.node()} ({platform.machine()}, "
          f"{os.cpu_count()} cores), {datetime.date.today()}, device {args.device}\n")
    print("| quality | grid | frames | voxels/frame | ratio vs source | bpv | topology | latents | weights | PSNR dB "
          "| max err | flicker | encode s/frame | decode s/frame |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for quality in args.qualities:
            archive = Path(tmp) / f"{quality}.nvox"
            start = time.perf_counter()
            report = compress(args.inputs, archive, grids=grids, quality=quality, device=args.device, gop=args.gop,
                              progress=False)
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            written = decompress(archive, Path(tmp) / quality, device=args.device, progress=False)
            decode_s = time.perf_counter() - start
            frames = len(written)
            for g in report.grids:
                split = {k: 8 * v / max(g.voxels, 1) for k, v in g.stream_bytes.items()}
                flicker = "-" if g.flicker is None else f"{g.flicker:.2f}"
                print(f"| {quality} | {g.name} | {g.frames} | {g.voxels // max(g.frames, 1):,} | {g.ratio:.1f}x "
                      f"| {g.bpv:.3f} | {split.get('topology', 0):.3f} | {split.get('latents', 0):.3f} "
                      f"| {split.get('weights', 0):.3f} | {g.psnr:.1f} | {g.max_abs_error:.3g} | {flicker} "
                      f"| {encode_s / frames:.1f} | {decode_s / frames:.2f} |", flush=True)
            total = report.coded_source_bytes / report.archive_bytes
            print(f"| {quality} | (archive) | {frames} | | {total:.1f}x | | | | | | | | | |", flush=True)
    print("\nEncode and decode seconds cover all grids of a frame (decode includes writing the .vdb).")


if __name__ == "__main__":
    main()
