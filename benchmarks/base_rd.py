"""Whole-archive bits and PSNR of `compress --base-only` on the four reference sequences, one JSON line a run.

    .venv/bin/python benchmarks/base_rd.py [--only default smoke128 liquid64 blender] [--qualities low medium]
        [--lambda-scale 1.0] [--weight-steps F ...] [--predicted-rate-scale F] [--frames N] [--out FILE.jsonl]

Runs whatever `neuralvox` the interpreter imports (run it from another checkout's root with that checkout's venv to
measure that commit). ``--lambda-scale`` multiplies each preset's rate weight (more points on one curve without a
PSNR target); ``--weight-steps`` sets every preset's candidate decoder weight steps (fractions such as 1/31; needs a
checkout that searches them); ``--predicted-rate-scale`` sets every preset's rate factor of predicted frames;
``--frames`` keeps the first N frames while iterating. bpv = 8 x the whole .nvox file /
active voxels.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import neuralvox
from neuralvox.codec import presets
from neuralvox.codec.encoder import compress

ROOT = Path(__file__).resolve().parent.parent
SEQUENCES: dict[str, tuple[str, str]] = {
    "default": ("data/generated/plume_40x12", "density"),
    "smoke128": ("data/generated/plume_128x12", "density"),
    "liquid64": ("data/generated/liquid_64x12", "surface"),
    "blender": ("../shared/data/blender_smoke_c42", "density"),
}


def code_commit() -> str:
    """The commit of the imported neuralvox checkout (with '+dirty' when its tree differs)."""
    folder = Path(neuralvox.__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SEQUENCES), default=list(SEQUENCES))
    parser.add_argument("--qualities", nargs="+", default=["low", "medium", "high"])
    parser.add_argument("--lambda-scale", type=float, default=1.0)
    parser.add_argument("--weight-steps", nargs="+", type=lambda text: 1 / float(text.split("/")[1])
                        if "/" in text else float(text))
    parser.add_argument("--predicted-rate-scale", type=float)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for name, preset in list(presets.QUALITY_PRESETS.items()):
        changes = {"rate_lambda": preset.rate_lambda * args.lambda_scale}
        if args.weight_steps:
            changes["weight_steps"] = tuple(args.weight_steps)
        if args.predicted_rate_scale is not None:
            changes["predicted_rate_scale"] = args.predicted_rate_scale
        presets.QUALITY_PRESETS[name] = dataclasses.replace(preset, **changes)
    commit = code_commit()
    for name in args.only:
        folder, grid = SEQUENCES[name]
        paths = sorted(str(p) for p in (ROOT / folder).resolve().glob("*.vdb"))[:args.frames]
        for quality in args.qualities:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                report = compress(paths, Path(tmp) / "a.nvox", grids=[grid], quality=quality, base_only=True,
                                  device="cpu", progress=False, workers=1)
                seconds = time.perf_counter() - start
            (row,) = report.grids
            line = {"sequence": name, "grid": grid, "quality": quality, "lambda_scale": args.lambda_scale,
                    "weight_steps": list(getattr(presets.QUALITY_PRESETS[quality], "weight_steps", ())),
                    "predicted_rate_scale": getattr(presets.QUALITY_PRESETS[quality], "predicted_rate_scale", 1.0),
                    "frames": row.frames, "voxels": row.voxels, "archive_bytes": report.archive_bytes,
                    "bpv": 8 * report.archive_bytes / row.voxels, "psnr": row.psnr,
                    "streams": row.stream_bytes, "seconds": round(seconds, 1), "commit": commit,
                    "machine": f"{platform.node()} {platform.machine()}", "date": datetime.date.today().isoformat(),
                    "command": " ".join(sys.argv)}
            print(json.dumps(line), flush=True)
            if args.out:
                with args.out.open("a") as out:
                    out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
