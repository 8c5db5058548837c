"""Rate-distortion curves of neuralvox and the classic baselines on given .vdb frames: markdown table, JSON, PNG.

Writes PREFIX.md (the table, headed by the command that made it), PREFIX.json and PREFIX.png, and prints the table.

Run: PYTHONPATH=. python benchmarks/rd_curves.py ../shared/data/blender_smoke_c42 --grids density
         [--methods zfp sz3 ... neuralvox] [--qualities low medium high] [--device auto]
         [--out benchmarks/results/rd_density]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from neuralvox.atomic import atomic_output
from neuralvox.bench import METHODS, plot, run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help=".vdb files, a folder or a glob of one sequence")
    parser.add_argument("--grids", nargs="+", help="grids to measure (default: every float/vector grid)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="methods to run (default: all)")
    parser.add_argument("--qualities", nargs="+", default=["low", "medium", "high"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rd_curves"), help="output prefix")
    args = parser.parse_args()

    result = run_bench(args.inputs, grids=args.grids, methods=args.methods, qualities=args.qualities,
                       device=args.device)
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    table = f"Command: `PYTHONPATH=. {command}`\n\n{result.table()}"
    for suffix, text in ((".md", table), (".json", json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n")):
        with atomic_output(_with_suffix(args.out, suffix), force=True) as tmp:
            tmp.write_text(text)
    plot(result, _with_suffix(args.out, ".png"), force=True)
    print(table)
    print(f"wrote {args.out}.md, .json and .png")


def _with_suffix(prefix: Path, suffix: str) -> Path:
    return prefix.parent / (prefix.name + suffix)


if __name__ == "__main__":
    main()
