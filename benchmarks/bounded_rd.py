"""Rate-distortion of the error-bounded codec against SZ3 and ZFP on the reference sequences (issue 14's table).

    .venv/bin/python benchmarks/bounded_rd.py [--only default smoke128 liquid64 blender velocity]
    .venv/bin/python benchmarks/bounded_rd.py --redo-bounds benchmarks/results/bounded_rd_all.json

For each sequence and grid: neuralvox at a sweep of target PSNRs (bits = the whole .nvox file of that grid alone,
headers included, over the active voxels of all frames; every decoded voxel is checked against the bound), and SZ3
(absolute bound), ZFP (fixed accuracy, 8^3 bricks and dense box) at a sweep of bounds, each charged its payload plus
the exact intra topology code. Bits are interpolated (log bits, linear in PSNR) at 30, 40 and 50 dB; then the same at
equal max error: bounds of 1e-2, 1e-3 and 1e-4 of the value range, neuralvox vs SZ3. Writes
benchmarks/results/bounded_rd_NAME.{json,md,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import platform
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

from neuralvox.atomic import atomic_output
from neuralvox.bench.baselines import baselines, code_topology
from neuralvox.codec.decoder import open_archive
from neuralvox.codec.encoder import compress
from neuralvox.metrics import error_stats, merge
from neuralvox.sequence import discover
from neuralvox.sim import simulate
from neuralvox.vdb import read_vdb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SEQUENCES = {
    "default": (("plume", 40, 12), "density"),
    "smoke128": (("plume", 128, 12), "density"),
    "liquid64": (("liquid", 64, 12), "surface"),
    "blender": (ROOT.parent / "shared" / "data" / "blender_smoke_c42", "density"),
    "velocity": (("plume", 128, 12), "vel"),
}
TARGETS_DB = (30.0, 40.0, 50.0)
SWEEP_DB = (24.0, 28.0, 32.0, 36.0, 40.0, 44.0, 48.0, 52.0, 56.0)
BASELINE_FRACTIONS = tuple(float(f) for f in np.logspace(0.5, -4.5, 21))
EQUAL_BOUNDS = (1e-2, 1e-3, 1e-4)
BASELINES = ("sz3", "zfp", "zfp-dense")


@dataclasses.dataclass
class Point:
    """One coding of a whole sequence: bits per active voxel, PSNR, max error and the bound it was held to."""

    method: str
    setting: str
    bpv: float
    psnr: float
    max_error: float
    bound: float | None
    within: bool


def frames_of(source: tuple[str, int, int] | Path) -> Path:
    if isinstance(source, Path):
        return source
    scenario, res, frames = source
    folder = ROOT / "data" / "generated" / f"{scenario}_{res}x{frames}"
    if len(list(folder.glob("*.vdb"))) < frames:
        simulate(scenario, folder, res, frames, seed=0, device="cpu", force=True)
    return folder


def neuralvox_point(folder: Path, grid: str, series: list, peak: float, **target: float | str) -> Point:
    """Compress one grid alone under ``target`` (psnr= or max_error=), decode every frame and measure."""
    with tempfile.TemporaryDirectory(prefix="bounded-rd-") as tmp:
        path = Path(tmp) / "rd.nvox"
        report = compress([str(folder)], path, grids=[grid], device="cpu", progress=False, **target)
        bound = report.grids[0].bound
        stats, within = [], True
        with open_archive(path, device="cpu") as archive:
            for number, original in zip(archive.frames, series, strict=True):
                decoded = archive.decode_grid(number, grid)
                if not np.array_equal(decoded.ijk, original.ijk):
                    raise RuntimeError(f"{folder}: frame {number}: decoded topology differs")
                stats.append(error_stats(original.values, decoded.values, peak))
                within = within and bool(np.all(np.abs(decoded.values.astype(np.float64) - original.values) <= bound))
        total = merge(stats, peak)
        voxels = sum(g.voxel_count for g in series)
        setting = ",".join(f"{k}={v}" for k, v in target.items())
        return Point("neuralvox", setting, 8 * path.stat().st_size / voxels, total.psnr, total.max_abs_error, bound,
                     within)


def baseline_points(series: list, peak: float, fractions: tuple[float, ...]) -> list[Point]:
    topologies = [code_topology(g) for g in series]
    voxels = sum(g.voxel_count for g in series)
    points = []
    for baseline in baselines(list(BASELINES), tolerances=fractions):
        coded = [baseline.run(g, t, peak) for g, t in zip(series, topologies, strict=True)]
        stats = merge([error_stats(g.values, c.values, peak) for g, c in zip(series, coded, strict=True)], peak)
        bound = max(float(np.max(c.error_bound)) for c in coded)
        points.append(Point(baseline.method, baseline.setting, 8 * sum(c.nbytes for c in coded) / voxels,
                            stats.psnr, stats.max_abs_error, bound, stats.max_abs_error <= bound))
    return points


def bits_at(points: list[Point], db: float) -> float | None:
    """Bits per voxel at ``db`` on a method's curve (log bits linear in PSNR between the points around it)."""
    curve = sorted((p.psnr, p.bpv) for p in points if math.isfinite(p.psnr))
    for (p0, b0), (p1, b1) in zip(curve, curve[1:], strict=False):
        if p0 <= db <= p1 and p1 > p0:
            t = (db - p0) / (p1 - p0)
            return math.exp((1 - t) * math.log(b0) + t * math.log(b1))
    return None


def run(name: str) -> dict:
    source, grid = SEQUENCES[name]
    folder = frames_of(source)
    series = [read_vdb(f.path, [grid]).grids[grid].sorted() for f in discover([str(folder)]).frames]
    peak = max(float(g.values.max()) for g in series) - min(float(g.values.min()) for g in series)
    print(f"{name}: {folder} grid {grid}, {len(series)} frames, {sum(g.voxel_count for g in series):,} voxels",
          flush=True)
    ours = [neuralvox_point(folder, grid, series, peak, psnr=db) for db in SWEEP_DB]
    theirs = baseline_points(series, peak, BASELINE_FRACTIONS)
    rows = []
    for db in TARGETS_DB:
        mine = bits_at(ours, db)
        others = {m: bits_at([p for p in theirs if p.method == m], db) for m in BASELINES}
        reached = [b for b in others.values() if b is not None]
        best = min(reached) if reached else None
        rows.append({"psnr": db, "neuralvox": mine, **others,
                     "best_over_ours": None if mine is None or best is None else best / mine})
    equal = at_bounds(folder, grid, series, peak)
    return {"name": name, "folder": str(folder), "grid": grid, "frames": len(series),
            "voxels": sum(g.voxel_count for g in series), "peak": peak, "at_psnr": rows, "at_bound": equal,
            "points": [dataclasses.asdict(p) for p in ours + theirs]}


def at_bounds(folder: Path, grid: str, series: list, peak: float) -> list[dict]:
    """neuralvox and SZ3 at max errors of EQUAL_BOUNDS times the value range."""
    equal = []
    for fraction in EQUAL_BOUNDS:
        mine = neuralvox_point(folder, grid, series, peak, max_error=fraction * peak)
        sz3 = next(p for p in baseline_points(series, peak, (fraction,)) if p.method == "sz3")
        equal.append({"fraction": fraction, "neuralvox": dataclasses.asdict(mine), "sz3": dataclasses.asdict(sz3),
                      "sz3_over_ours": sz3.bpv / mine.bpv})
    return equal


def redo_bounds(result: dict) -> dict:
    """An earlier run's result with its equal-max-error rows measured again."""
    folder = Path(result["folder"])
    grid = result["grid"]
    series = [read_vdb(f.path, [grid]).grids[grid].sorted() for f in discover([str(folder)]).frames]
    print(f"{result['name']}: equal max error again", flush=True)
    return {**result, "at_bound": at_bounds(folder, grid, series, result["peak"])}


def _fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


def markdown(results: list[dict], stamp: str) -> str:
    lines = [stamp, "", "| sequence | grid | PSNR dB | neuralvox bpv | SZ3 | ZFP bricks | ZFP dense | best baseline / "
             "neuralvox |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for row in r["at_psnr"]:
            lines.append(f"| {r['name']} | {r['grid']} | {row['psnr']:.0f} | {_fmt(row['neuralvox'])} | "
                         f"{_fmt(row['sz3'])} | {_fmt(row['zfp'])} | {_fmt(row['zfp-dense'])} | "
                         f"{_fmt(row['best_over_ours'], '{:.2f}x')} |")
    lines += ["", "| sequence | grid | bound / range | neuralvox bpv | PSNR | max err / bound | SZ3 bpv | PSNR | "
              "SZ3 / neuralvox |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for row in r["at_bound"]:
            mine, sz3 = row["neuralvox"], row["sz3"]
            lines.append(f"| {r['name']} | {r['grid']} | {row['fraction']:.0e} | {mine['bpv']:.3f} | "
                         f"{mine['psnr']:.2f} | {mine['max_error'] / mine['bound']:.4f} | {sz3['bpv']:.3f} | "
                         f"{sz3['psnr']:.2f} | {row['sz3_over_ours']:.2f}x |")
    within = all(p["within"] for r in results for p in r["points"] if p["method"] == "neuralvox")
    within = within and all(row["neuralvox"]["within"] for r in results for row in r["at_bound"])
    lines += ["", f"Every neuralvox point: max error within its bound on 100% of voxels: {within}."]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    """Bits per active voxel against PSNR, one panel per sequence: neuralvox and each baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.6), squeeze=False)
    for axis, result in zip(axes[0], results, strict=True):
        for method in ("neuralvox", *BASELINES):
            curve = sorted((p["psnr"], p["bpv"]) for p in result["points"]
                           if p["method"] == method and math.isfinite(p["psnr"]) and 20 <= p["psnr"] <= 60)
            if curve:
                axis.plot(*zip(*curve, strict=True), marker="o", markersize=3, label=method,
                          linewidth=2.5 if method == "neuralvox" else 1.2)
        axis.set_title(f"{result['name']} ({result['grid']})")
        axis.set_xlabel("PSNR dB")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("bits per active voxel (whole file)")
    axes[0][0].legend()
    figure.tight_layout()
    with atomic_output(path, force=True) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SEQUENCES), default=list(SEQUENCES))
    parser.add_argument("--replot", type=Path, help="only draw the plot of an earlier run's JSON")
    parser.add_argument("--redo-bounds", type=Path, help="measure an earlier run's equal-max-error rows again")
    args = parser.parse_args()
    if args.replot is not None:
        plot(json.loads(args.replot.read_text())["results"], args.replot.with_suffix(".png"))
        return
    stamp = (f"{datetime.date.today()}, {platform.node()} ({platform.machine()}, {platform.processor() or 'cpu'}), "
             f"command: `{shlex.join([sys.executable.split('/')[-1], *sys.argv])}`")
    if args.redo_bounds is not None:
        earlier = json.loads(args.redo_bounds.read_text())
        results = [redo_bounds(r) for r in earlier["results"]]
        stamp = f"{earlier['stamp']}; equal-max-error rows: {stamp}"
        tag = args.redo_bounds.stem.removeprefix("bounded_rd_")
    else:
        results = [run(name) for name in args.only]
        tag = "_".join(args.only) if args.only != list(SEQUENCES) else "all"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(results, RESULTS / f"bounded_rd_{tag}.png")
    with atomic_output(RESULTS / f"bounded_rd_{tag}.json", force=True) as tmp:
        tmp.write_text(json.dumps({"stamp": stamp, "results": results}, indent=1) + "\n")
    text = markdown(results, stamp)
    with atomic_output(RESULTS / f"bounded_rd_{tag}.md", force=True) as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
