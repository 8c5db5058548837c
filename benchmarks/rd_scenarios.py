"""Rate-distortion of neuralvox and the baselines on the four reference sequences; the README's results table.

    .venv/bin/python benchmarks/rd_scenarios.py [--only default smoke128 liquid64 blender] [--device auto]

Simulates what is missing into data/generated/ (seed 0; the embedded default is the `neuralvox demo` sim), runs
`neuralvox bench` on each (benchmarks/results/rd_NAME.{md,json,png}), then prints one row per neuralvox quality:
its bits per voxel, ratio and PSNR, and how many times fewer (or more) bits each baseline needs at that PSNR.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
from pathlib import Path

from neuralvox.atomic import atomic_output
from neuralvox.bench import NEURALVOX, BenchResult, Comparison, plot, run_bench
from neuralvox.sim import simulate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# name -> (frames source: (scenario, res, frames) or a folder, grid)
SEQUENCES: dict[str, tuple[tuple[str, int, int] | Path, str]] = {
    "default": (("plume", 40, 12), "density"),
    "smoke128": (("plume", 128, 12), "density"),
    "liquid64": (("liquid", 64, 12), "surface"),
    "blender": (ROOT.parent / "shared" / "data" / "blender_smoke_c42", "density"),
}
BASELINES = ("sz3", "zfp", "nanovdb-fpn")


def frames_of(source: tuple[str, int, int] | Path, device: str) -> Path:
    if isinstance(source, Path):
        return source
    scenario, res, frames = source
    folder = ROOT / "data" / "generated" / f"{scenario}_{res}x{frames}"
    if len(list(folder.glob("*.vdb"))) < frames:
        simulate(scenario, folder, res, frames, seed=0, device=device, force=True)
    return folder


def matched_rows(name: str, result: BenchResult) -> list[str]:
    """One row per neuralvox point: each baseline's bits at its PSNR over neuralvox's, or the plain verdict."""
    rows = []
    for grid in result.grids:
        matches = {(m.neuralvox.label, m.baseline): m.comparison for m in grid.matches()}
        for point in grid.curves().get(NEURALVOX, []):
            cells = [_cell(matches.get((point.label, method))) for method in BASELINES]
            rows.append(f"| {name} | {grid.name} | {point.setting} | {point.bpv:.3f} | {point.ratio:.1f}x | "
                        f"{point.psnr:.2f} | " + " | ".join(cells) + " |")
    return rows


def _cell(comparison: Comparison | None) -> str:
    """The factor; without one (the baseline's curve does not reach the PSNR) "loses" or "wins" when one of its
    points is better or worse on both counts, else "-"."""
    if comparison is None:
        return "-"
    if comparison.factor is not None:
        return f"{comparison.factor:.2f}x"
    for word in ("loses", "wins"):
        if comparison.verdict.startswith(f"neuralvox {word}"):
            return word
    return "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SEQUENCES), default=list(SEQUENCES))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    rows = []
    for name in args.only:
        source, grid = SEQUENCES[name]
        result = run_bench([str(frames_of(source, args.device))], grids=[grid], device=args.device, progress=False)
        RESULTS.mkdir(parents=True, exist_ok=True)
        json_text = json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n"
        for suffix, text in ((".md", f"Command: `{command}`\n\n{result.table()}"), (".json", json_text)):
            with atomic_output(RESULTS / f"rd_{name}{suffix}", force=True) as tmp:
                tmp.write_text(text)
        plot(result, RESULTS / f"rd_{name}.png", force=True)
        rows += matched_rows(name, result)
        print(f"{name}: done", flush=True)
    print(f"machine: {platform.node()} ({platform.machine()}), date: {datetime.date.today()}, command: {command}")
    print("Baseline columns: the baseline's bits per voxel at neuralvox's PSNR (interpolated on its Pareto front) over "
          "neuralvox's; above 1x neuralvox is smaller, below 1x it loses; 'loses'/'wins': the baseline's curve does "
          "not reach that PSNR but has a point better/worse on both counts; '-': no comparison.")
    print(f"| sequence | grid | quality | bpv | ratio vs source | PSNR dB | {' | '.join(BASELINES)} |")
    print("|---|---|---|---:|---:|---:|" + "---:|" * len(BASELINES))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
