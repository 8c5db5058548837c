"""Learned start and converging fit against the fixed-count fit from the untrained start, on held-out data.

    # keyframe fits: iterations to reach the old fit's loss (run in the old tree first, then here)
    (cd ../wtbase && .venv/bin/python ../wt16b/benchmarks/learned_start.py keyframes --label today) > today.jsonl
    .venv/bin/python benchmarks/learned_start.py keyframes --label learned --reference today.jsonl > learned.jsonl
    # whole archives (--base-only): bits, PSNR, fit seconds per keyframe and per predicted frame
    .venv/bin/python benchmarks/learned_start.py archives --label learned --quality low medium high
    .venv/bin/python benchmarks/learned_start.py table today.jsonl learned.jsonl
    # a keyframe at low as compress also fits it: medium's lattices at low's rate weight (in the old tree: give the
    # rate weight, --rate-lambda 1.6e-3, since its low preset weighed rate otherwise)
    .venv/bin/python benchmarks/learned_start.py keyframes --quality low --lattices medium --reference old.jsonl
    # the same code from another starts file (for example an earlier commit's)
    .venv/bin/python benchmarks/learned_start.py archives --label earlier --starts earlier_starts.bin

The held-out grids are not in train/'s corpus (seeds 1-2 at 32 and 40 cells): the plume, plumes and liquid at 48 cells
with seed 7, and frame 5 of the Blender smoke cache. A keyframe's loss is the coded result's rate-distortion cost:
mean squared error of range-normalized values plus the preset's lambda times the value streams' bits per voxel.
With ``--reference`` (the old tree's lines) the learned start is also fitted with every cap scaled by 1/8, 3/16, 1/4,
5/16, 3/8 and 1/2 (in turn, until one reaches it), and the fewest iterations run by a fit whose loss is at most the
old fit's give the iterations to reach the same loss.
Run in a tree without learned starts (the commit before them), the script fits as that tree does.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import inspect
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path.cwd()))  # the tree the script is run from: the old one or this one

from neuralvox.codec.presets import quality_preset  # noqa: E402
from neuralvox.codec.values import encode_values  # noqa: E402

BLENDER = ROOT.parent / "shared" / "data" / "blender_smoke_c42"
SIMS = (("plume", ("density", "temperature", "vel")), ("plumes", ("flame",)), ("liquid", ("surface",)))
SIM_RES, SIM_SEED, SIM_FRAME = 48, 7, 10
BLENDER_GRIDS = ("density", "temperature", "velocity")
SCALES = (0.125, 0.1875, 0.25, 0.3125, 0.375, 0.5)


@dataclasses.dataclass
class Grid:
    source: str
    name: str
    grid_class: str
    ijk: np.ndarray
    values: np.ndarray


def held_out_grids() -> list[Grid]:
    from neuralvox.sim import generate
    from neuralvox.vdb import read_vdb

    grids = []
    for scenario, names in SIMS:
        for frame, frame_grids in generate(scenario, SIM_RES, SIM_FRAME, seed=SIM_SEED):
            if frame == SIM_FRAME:
                grids += [Grid(f"{scenario}{SIM_RES}s{SIM_SEED}", g.name, g.grid_class, *_sorted(g.ijk, g.values))
                          for g in frame_grids if g.name in names]
    if BLENDER.is_dir():
        frame = read_vdb(BLENDER / "fluid_data_0005.vdb", grids=list(BLENDER_GRIDS))
        grids += [Grid("blender_f5", g.name, g.grid_class, *_sorted(g.ijk, g.values)) for g in frame.grids.values()]
    return grids


def _sorted(ijk: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((ijk[:, 2], ijk[:, 1], ijk[:, 0]))
    return ijk[order], values[order]


def fit(grid: Grid, quality: str, scale: float = 1.0, lattices: str | None = None,
        rate_lambda: float | None = None) -> dict:
    preset = quality_preset(lattices or quality)
    rate = quality_preset(quality).rate_lambda if rate_lambda is None else rate_lambda
    scaled = dataclasses.replace(preset, iterations=max(1, round(scale * preset.iterations)),
                                 finetune_iterations=max(1, round(scale * preset.finetune_iterations)),
                                 rate_lambda=rate)
    extra = {"grid_name": grid.name} if "grid_name" in inspect.signature(encode_values).parameters else {}
    began = time.perf_counter()
    encoded = encode_values(grid.ijk, grid.values, grid_class=grid.grid_class, quality=scaled, device="cpu", **extra)
    seconds = time.perf_counter() - began
    columns = grid.values.reshape(len(grid.values), -1)
    peak = float(columns.max() - columns.min())
    mse = float(np.mean(((encoded.decoded.reshape(columns.shape) - columns) / peak) ** 2))
    bits = 8 * sum(len(data) for data in encoded.streams.values())
    return {"grid": f"{grid.source}/{grid.name}", "voxels": len(columns), "quality": quality,
            "lattices": lattices or quality, "rate_lambda": rate, "scale": scale,
            "iterations": encoded.stats.iterations, "loss": mse + rate * bits / len(columns),
            "psnr": encoded.stats.psnr, "bits": bits, "seconds": seconds}


def keyframes(args: argparse.Namespace) -> None:
    reference = {}
    if args.reference:
        for line in args.reference.read_text().splitlines():
            row = json.loads(line)
            reference[(row["grid"], row["quality"], row.get("lattices", row["quality"]))] = row
    for grid in held_out_grids():
        for quality in args.quality:
            row = fit(grid, quality, lattices=args.lattices, rate_lambda=args.rate_lambda)
            emit(args, "keyframe", row)
            old = reference.get((row["grid"], quality, row["lattices"]))
            if old is None:
                continue
            for scale in SCALES:
                scaled = fit(grid, quality, scale, args.lattices, args.rate_lambda)
                emit(args, "keyframe", scaled)
                if scaled["loss"] <= old["loss"]:
                    break


def archives(args: argparse.Namespace) -> None:
    from neuralvox.codec import encoder
    from neuralvox.codec.encoder import compress
    from neuralvox.sim import simulate

    fits: list[tuple[bool, float]] = []  # (keyframe, fit seconds) of each non-constant grid the encoder codes
    encode = encoder.encode_values

    def timed_encode(*positional, **named):
        encoded = encode(*positional, **named)
        if encoded.stats.iterations:
            fits.append((named.get("reference") is None, encoded.stats.fit_seconds))
        return encoded

    encoder.encode_values = timed_encode
    with tempfile.TemporaryDirectory() as folder:
        sequences = {}
        if "plume" in args.only:
            out = Path(folder) / "plume"
            simulate("plume", out, SIM_RES, args.frames, seed=SIM_SEED, progress=False)
            sequences[f"plume{SIM_RES}s{SIM_SEED}"] = ([str(out)], None)
        if "blender" in args.only and BLENDER.is_dir():
            sequences["blender"] = ([str(p) for p in sorted(BLENDER.glob("fluid_data_*.vdb"))[:args.frames]],
                                    list(BLENDER_GRIDS))
        for name, (paths, grids) in sequences.items():
            for quality in args.quality:
                fits.clear()
                report = compress(paths, Path(folder) / f"{name}_{quality}.nvox", grids=grids, quality=quality,
                                  base_only=True, device="cpu", gop=args.frames, progress=False, workers=1)
                key = [seconds for keyframe, seconds in fits if keyframe]
                predicted = [seconds for keyframe, seconds in fits if not keyframe]
                emit(args, "archive", {
                    "sequence": name, "quality": quality, "frames": args.frames, "archive_bytes": report.archive_bytes,
                    "grids": {g.name: {"psnr": g.psnr, "bytes": g.coded_bytes, "voxels": g.voxels}
                              for g in report.grids},
                    "keyframe_fit_s_per_grid": float(np.mean(key)),
                    "predicted_fit_s_per_grid": float(np.mean(predicted)) if predicted else None,
                    "encode_seconds": report.seconds})


def table(args: argparse.Namespace) -> None:
    """Markdown rows from the keyframes lines of the old tree (first file) and this one (second), for the grids and
    presets the second file fitted."""
    old, new = ([json.loads(line) for line in path.read_text().splitlines()] for path in args.files)
    print("| grid | voxels | quality | old: iterations, loss, PSNR, bits, s | learned + converging: iterations, loss, "
          "PSNR, bits, s | iterations to the old loss | fewer |")
    print("|---|---:|---|---|---|---:|---:|")
    for before in old:
        runs = [r for r in new if (r["grid"], r["quality"], r.get("lattices", r["quality"])) ==
                (before["grid"], before["quality"], before.get("lattices", before["quality"]))]
        if not runs:  # a preset or grid the second file did not fit
            continue
        default = next(r for r in runs if r["scale"] == 1.0)
        reached = [r["iterations"] for r in runs if r["loss"] <= before["loss"]]
        to_loss = min(reached) if reached else None
        fewer = f"{before['iterations'] / to_loss:.1f}x" if to_loss else "-"
        print(f"| {before['grid']} | {before['voxels']:,} | {before['quality']} | {_cell(before)} | {_cell(default)} "
              f"| {to_loss or 'not reached'} | {fewer} |")


def _cell(row: dict) -> str:
    return f"{row['iterations']}, {row['loss']:.5f}, {row['psnr']:.2f}, {row['bits']:,}, {row['seconds']:.1f}"


def emit(args: argparse.Namespace, kind: str, row: dict) -> None:
    row = {"kind": kind, "label": args.label, **row, "machine": f"{platform.machine()} {platform.node()}",
           "date": datetime.date.today().isoformat()}
    print(json.dumps(row), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("keyframes", "archives", "table"))
    parser.add_argument("files", nargs="*", type=Path, help="table: the old and the new keyframes lines")
    parser.add_argument("--label", default="")
    parser.add_argument("--quality", nargs="+", default=["low", "medium"])
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--lattices", help="keyframes: fit with this preset's lattices and decoder instead")
    parser.add_argument("--rate-lambda", type=float, help="keyframes: this rate weight instead of the preset's")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--only", nargs="+", default=["plume", "blender"], choices=["plume", "blender"],
                        help="archives: the sequences to code")
    parser.add_argument("--starts", type=Path, help="fit from this learned-starts file instead of the package's")
    args = parser.parse_args()
    if args.starts:
        import neuralvox.codec.starts as starts

        starts.STARTS_FILE = args.starts
    {"keyframes": keyframes, "archives": archives, "table": table}[args.mode](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
