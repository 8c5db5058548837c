"""Train the fit's learned starts over a corpus of simulated sequences and write them into the package.

    .venv/bin/python train/train_starts.py            # writes neuralvox/codec/learned_starts.bin (see README.md)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neuralvox.codec.presets import QUALITY_PRESETS  # noqa: E402
from neuralvox.codec.starts import GRID_KINDS, STARTS_FILE, save_starts  # noqa: E402
from neuralvox.train.corpus import DEFAULT_CORPUS, corpus_grids  # noqa: E402
from neuralvox.train.reptile import Recipe, train_start  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=STARTS_FILE, help="starts file to write (default: the package's)")
    parser.add_argument("--quality", nargs="+", default=sorted(QUALITY_PRESETS), choices=sorted(QUALITY_PRESETS))
    parser.add_argument("--rounds", type=int, default=Recipe.rounds)
    parser.add_argument("--batch", type=int, default=Recipe.batch)
    args = parser.parse_args()
    recipe = Recipe(rounds=args.rounds, batch=args.batch)
    began = time.perf_counter()
    grids = corpus_grids(DEFAULT_CORPUS)
    print(f"corpus: {', '.join(f'{kind} {len(grids.get(kind, []))} grids' for kind in GRID_KINDS)} "
          f"({time.perf_counter() - began:.0f} s)", flush=True)
    starts = [train_start(kind, QUALITY_PRESETS[quality], grids[kind], recipe,
                          log=lambda line: print(line, flush=True))
              for quality in args.quality for kind in GRID_KINDS if grids.get(kind)]
    seconds = time.perf_counter() - began
    provenance = {"corpus": [spec.to_json() for spec in DEFAULT_CORPUS], "recipe": recipe.to_json(),
                  "qualities": args.quality, "seconds": round(seconds), "date": date.today().isoformat(),
                  "machine": platform.platform()}
    save_starts(args.out, starts, provenance, force=True)
    print(json.dumps({"out": str(args.out), "bytes": args.out.stat().st_size, "starts": len(starts),
                      "seconds": round(seconds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
