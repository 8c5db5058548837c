"""A low density start in four variants, each added to the shipped starts: held-out keyframes and whole groups.

    git show ab238a9:neuralvox/codec/learned_starts.bin > third.bin     # the third pass's file, low density start in
    .venv/bin/python benchmarks/low_density_start.py third.bin > lines.jsonl

Variants of that file's low density start (learned without decoder weights, 16x/8x rates): as trained (steps, prior
scales, latent map, rates), without its steps, its rates only, its latent map and rates. For each, and for the
shipped starts ("main", no low density start): the held-out density keyframes at low's coarse lattices, fitted with
every cap scaled as `learned_start.py keyframes` does until the 40ade56 fit's loss is reached (its lines:
benchmarks/results/learned_start_keyframes_low16_today.jsonl), then density-only archives at low of 6 frames in
one group (plume seed 7 at 48 cells, Blender c42 frames 1-6), `--base-only`, with the PSNR of each frame and the
lattices the keyframe kept (`codec/lattice_choice.py`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import learned_start  # noqa: E402

import neuralvox  # noqa: E402
import neuralvox.codec.starts as starts  # noqa: E402
from neuralvox.codec.encoder import compress  # noqa: E402
from neuralvox.codec.presets import quality_preset  # noqa: E402
from neuralvox.sim import simulate  # noqa: E402

OLD = learned_start.ROOT / "benchmarks" / "results" / "learned_start_keyframes_low16_today.jsonl"
FRAMES = 6


def variants(source: Path) -> dict[str, starts.LearnedStart | None]:
    trained = next(start for (kind, architecture), start in starts.load_starts(source).items()
                   if kind == "density" and architecture.levels == quality_preset("low").levels)

    def keeping(*prefixes: str) -> starts.LearnedStart:
        return dataclasses.replace(trained, parameters={name: values for name, values in trained.parameters.items()
                                                        if name.startswith(prefixes)})

    return {"main": None, "as trained": trained, "without steps": keeping("latent_map.", "priors."),
            "rates only": keeping(), "latent map and rates": keeping("latent_map.")}


def keyframes(variant: str, old: dict[str, dict]) -> None:
    for grid in learned_start.held_out_grids():
        if grid.name != "density":
            continue
        reference = old[f"{grid.source}/{grid.name}"]
        for scale in (1.0, *learned_start.SCALES):
            row = learned_start.fit(grid, "low", scale)
            print(json.dumps({"kind": "keyframe", "variant": variant, **row, "old_loss": reference["loss"]}),
                  flush=True)
            if scale < 1 and row["loss"] <= reference["loss"]:
                break


def groups(variant: str, folder: Path) -> None:
    plume = folder / "plume"
    if not plume.exists():
        simulate("plume", plume, learned_start.SIM_RES, FRAMES, seed=learned_start.SIM_SEED, progress=False)
    sequences = {"plume48s7": [str(plume)],
                 "blender": [str(p) for p in sorted(learned_start.BLENDER.glob("fluid_data_*.vdb"))[:FRAMES]]}
    for name, paths in sequences.items():
        began = time.perf_counter()
        report = compress(paths, folder / f"{name}.nvox", grids=["density"], quality="low", base_only=True,
                          device="cpu", gop=FRAMES, progress=False, workers=1, force=True)
        grid = report.grids[0]
        with neuralvox.open(folder / f"{name}.nvox", device="cpu") as archive:
            lattices = archive.header.frames[0].grids["density"].values.architecture.levels
        print(json.dumps({"kind": "group", "variant": variant, "sequence": name, "archive_bytes": report.archive_bytes,
                          "psnr": grid.psnr, "frame_psnr": [round(e.psnr, 2) for e in report.frame_errors["density"]],
                          "keyframe_lattices": lattices, "seconds": time.perf_counter() - began}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a starts file holding a low density start")
    args = parser.parse_args()
    old = {row["grid"]: row for row in map(json.loads, OLD.read_text().splitlines())}
    shipped = starts.load_starts(starts.STARTS_FILE)
    with tempfile.TemporaryDirectory() as folder:
        for variant, start in variants(args.source).items():
            path = Path(folder) / f"{variant}.bin"
            starts.save_starts(path, [*shipped.values(), *([start] if start else [])], {})
            starts.STARTS_FILE = path
            keyframes(variant, old)
            groups(variant, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
