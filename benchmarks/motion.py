"""Predicted frames against every frame a keyframe: bits, PSNR, flicker and bit split; and warm vs cold fit times.

    .venv/bin/python benchmarks/motion.py SEQUENCE [--grid density] [--qualities low medium] [--device auto]
        [--warm-pairs 3] [--coherence 0] [--json out.json]

Compresses the grid with the CLI's encoder in both modes (``--gop 1``: every frame a keyframe; ``--gop auto``:
keyframes plus predicted frames) at each quality and prints one table row per run; then, for each motion run, the
keyframe mode's bits at the same PSNR (interpolated on its runs, log bits linear in PSNR); then times warm-started
predicted fits against cold fits of the same frames (same shared decoder) on ``--warm-pairs`` consecutive frame
pairs spread over the sequence, at the last quality.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neuralvox.bench.compare import bpv_at_psnr
from neuralvox.codec.encoder import compress, guess_motion
from neuralvox.codec.presets import quality_preset
from neuralvox.codec.values import encode_values
from neuralvox.sequence import discover
from neuralvox.vdb import read_vdb

SPLIT = ("topology", "latents", "weights", "motion", "residual")


def compress_modes(paths: list[str], grid: str, quality: str, device: str, folder: Path,
                   coherence: float) -> list[dict]:
    rows = []
    for mode, gop in (("every frame a keyframe", 1), ("motion (gop auto)", "auto")):
        start = time.perf_counter()
        report = compress(paths, folder / f"{gop}-{quality}.nvox", grids=[grid], quality=quality, device=device,
                          gop=gop, coherence=coherence, progress=False, force=True)
        seconds = time.perf_counter() - start
        result = next(g for g in report.grids if g.name == grid)
        split = {s: 8 * result.stream_bytes.get(s, 0) / result.voxels for s in SPLIT}
        rows.append({"mode": mode, "quality": quality, "gop": gop, "coherence": coherence, "frames": result.frames,
                     "voxels": result.voxels, "bpv": result.bpv, "ratio": result.ratio, "psnr": result.psnr,
                     "max_abs_error": result.max_abs_error, "flicker": result.flicker, "split_bpv": split,
                     "fit_seconds": result.fit_seconds, "seconds": seconds})
    return rows


def warm_versus_cold(paths: list[str], grid: str, quality: str, device: str, pairs: int) -> list[dict]:
    """Per frame pair (a, b): keyframe a, then b coded cold (shared decoder, full keyframe schedule) and warm
    (predicted from a, the preset's shorter schedule)."""
    frames = discover(paths).frames
    preset = quality_preset(quality)
    picks = np.linspace(0, len(frames) - 2, pairs).round().astype(int)
    rows = []
    for index in dict.fromkeys(picks.tolist()):
        first, second = read_vdb(frames[index].path), read_vdb(frames[index + 1].path)
        a, b = first.grids[grid].sorted(), second.grids[grid].sorted()
        key = encode_values(a.ijk, a.values, grid_class=a.grid_class, quality=preset, device=device)
        start = time.perf_counter()
        cold = encode_values(b.ijk, b.values, grid_class=b.grid_class, quality=preset, device=device,
                             shared_decoder=key.decoder)
        cold_seconds = time.perf_counter() - start
        start = time.perf_counter()
        guess = guess_motion(second.grids, b, (a.ijk, key.decoded))
        warm = encode_values(b.ijk, b.values, grid_class=b.grid_class, quality=preset, device=device,
                             shared_decoder=key.decoder, reference=key.state, motion_guess=guess)
        warm_seconds = time.perf_counter() - start
        rows.append({"frame": frames[index + 1].number, "voxels": b.voxel_count,
                     "cold": {"iterations": cold.stats.iterations, "seconds": cold_seconds, "psnr": cold.stats.psnr,
                              "bytes": sum(map(len, cold.streams.values()))},
                     "warm": {"iterations": warm.stats.iterations, "seconds": warm_seconds, "psnr": warm.stats.psnr,
                              "bytes": sum(map(len, warm.streams.values()))}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--grid", default="density")
    parser.add_argument("--qualities", nargs="+", default=["low", "medium"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warm-pairs", type=int, default=3)
    parser.add_argument("--coherence", type=float, default=0.0, help="compress's --coherence, both modes")
    parser.add_argument("--json")
    args = parser.parse_args()
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"machine: {platform.node()} ({platform.machine()}), date: {datetime.date.today()}, device: {device}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; coherence {args.coherence}")
    with tempfile.TemporaryDirectory() as tmp:
        modes = [row for quality in args.qualities
                 for row in compress_modes(args.paths, args.grid, quality, device, Path(tmp), args.coherence)]
    print(f"| mode | quality | frames | voxels | bpv | {' | '.join(SPLIT)} | ratio vs source | PSNR dB | max err | "
          "flicker | fit s |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(SPLIT) + "---:|---:|---:|---:|---:|")
    for row in modes:
        split = " | ".join(f"{row['split_bpv'][s]:.3f}" for s in SPLIT)
        flicker = "-" if row["flicker"] is None else f"{row['flicker']:.2f}"
        print(f"| {row['mode']} | {row['quality']} | {row['frames']} | {row['voxels']:,} | {row['bpv']:.3f} | "
              f"{split} | {row['ratio']:.1f}x | {row['psnr']:.2f} | {row['max_abs_error']:.3g} | {flicker} | "
              f"{row['fit_seconds']:.0f} |", flush=True)
    keyframe_curve = [(row["bpv"], row["psnr"]) for row in modes if row["gop"] == 1]
    for row in (r for r in modes if r["gop"] == "auto"):
        matched = bpv_at_psnr(keyframe_curve, row["psnr"])
        verdict = ("outside the keyframe runs' PSNR range" if matched is None
                   else f"keyframes need {matched:.3f} bpv: motion needs {row['bpv'] / matched:.3f}x the bits")
        print(f"motion at {row['quality']}: {row['psnr']:.2f} dB at {row['bpv']:.3f} bpv; {verdict}")
    warm = warm_versus_cold(args.paths, args.grid, args.qualities[-1], device, args.warm_pairs)
    print("| frame | voxels | cold: iterations, s, PSNR dB, bytes | warm: iterations, s, PSNR dB, bytes | speed-up |")
    print("|---:|---:|---|---|---:|")
    for row in warm:
        cold, hot = row["cold"], row["warm"]
        print(f"| {row['frame']} | {row['voxels']:,} | {cold['iterations']}, {cold['seconds']:.1f}, "
              f"{cold['psnr']:.2f}, {cold['bytes']} | {hot['iterations']}, {hot['seconds']:.1f}, {hot['psnr']:.2f}, "
              f"{hot['bytes']} | {cold['seconds'] / hot['seconds']:.2f}x |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"modes": modes, "warm_versus_cold": warm}, indent=2))


if __name__ == "__main__":
    main()
