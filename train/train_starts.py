"""Train the fit's learned starts over a corpus of simulated sequences and write them into the package.

    .venv/bin/python train/train_starts.py            # writes neuralvox/codec/learned_starts.bin (see README.md)
    .venv/bin/python train/train_starts.py --drop low:density   # leaves that start out of the file (no training)
    .venv/bin/python train/train_starts.py --quality medium --kinds density   # retrains those only, keeps the rest
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neuralvox.codec.neural_model import architecture_of  # noqa: E402
from neuralvox.codec.presets import QUALITY_PRESETS  # noqa: E402
from neuralvox.codec.starts import GRID_KINDS, STARTS_FILE, load_starts, save_starts, starts_provenance  # noqa: E402
from neuralvox.train.corpus import DEFAULT_CORPUS, corpus_grids, held_back  # noqa: E402
from neuralvox.train.reptile import recipe_for, train_start  # noqa: E402

# What the trainer's code does beyond the recipe's numbers, for the provenance record (earlier records lack it: their
# trainer held back each kind's last grids, trained on the rest in corpus order and ranked by the short fit's loss
# relative to the untrained start's short fit).
VALIDATION_RULE = ("held-back grids spread over resolutions and scenarios, training grids in a shuffled order (seed "
                   "0); candidates ranked by how many held-back grids their short fit brings to the untrained start's "
                   "full-fit loss, then by the mean ratio of the two")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=STARTS_FILE, help="starts file to write (default: the package's)")
    parser.add_argument("--quality", nargs="+", default=sorted(QUALITY_PRESETS), choices=sorted(QUALITY_PRESETS))
    parser.add_argument("--kinds", nargs="+", default=list(GRID_KINDS), choices=GRID_KINDS,
                        help="grid kinds to train (the others' starts are kept from the file it replaces)")
    parser.add_argument("--rounds", type=int, help="outer rounds (default: the preset's recipe's)")
    parser.add_argument("--batch", type=int, help="corpus fits per round (default: the preset's recipe's)")
    parser.add_argument("--drop", nargs="+", metavar="QUALITY:KIND", type=_quality_kind,
                        help="remove these starts from the file (their fits begin untrained) and train nothing")
    args = parser.parse_args()
    if args.drop:
        return _drop(args.out, set(args.drop))
    recipes = {quality: dataclasses.replace(recipe_for(quality), **{
        name: value for name, value in (("rounds", args.rounds), ("batch", args.batch)) if value is not None})
        for quality in args.quality}
    began = time.perf_counter()
    grids = corpus_grids(DEFAULT_CORPUS)
    print(f"corpus: {', '.join(f'{kind} {len(grids.get(kind, []))} grids' for kind in GRID_KINDS)} "
          f"({time.perf_counter() - began:.0f} s)", flush=True)
    trained = {(quality, kind): train_start(kind, QUALITY_PRESETS[quality], grids[kind], recipes[quality],
                                            log=lambda line: print(line, flush=True))
               for quality in args.quality for kind in args.kinds}
    seconds = time.perf_counter() - began
    record = {"corpus": [spec.to_json() for spec in DEFAULT_CORPUS], "validation_rule": VALIDATION_RULE,
              "seconds": round(seconds), "date": date.today().isoformat(), "machine": platform.platform()}
    kept, provenance = _others(args.out, {(architecture_of(QUALITY_PRESETS[q], 3 if kind == "velocity" else 1), kind)
                                          for q in args.quality for kind in args.kinds})
    for quality in args.quality:
        earlier = provenance.get(quality, {})
        untrained = [kind for (q, kind), start in trained.items() if q == quality and start is None]
        untrained += [kind for kind in earlier.get("untrained", []) if kind not in args.kinds]
        held = {kind: [grid.source for grid in held_back(grids[kind], recipes[quality].validation)[1]]
                for kind in args.kinds}
        provenance[quality] = {**record, "recipe": recipes[quality].to_json(), "held_back": held,
                               "kinds": args.kinds, "untrained": untrained}
        if set(args.kinds) != set(GRID_KINDS) and earlier:
            provenance[quality]["other_kinds"] = earlier  # the record of the run the kept starts come from
    starts = kept + [start for start in trained.values() if start is not None]
    save_starts(args.out, starts, provenance, force=True)
    print(json.dumps({"out": str(args.out), "bytes": args.out.stat().st_size, "starts": len(starts),
                      "seconds": round(seconds)}))
    return 0


def _quality_kind(text: str) -> tuple[str, str]:
    quality, _, kind = text.partition(":")
    if quality not in QUALITY_PRESETS or kind not in GRID_KINDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not QUALITY:KIND ({sorted(QUALITY_PRESETS)} : {GRID_KINDS})")
    return quality, kind


def _drop(path: Path, dropped: set[tuple[str, str]]) -> int:
    """Rewrite the starts file without the ``dropped`` (quality, kind) starts, recording them as untrained."""
    kept, provenance = _others(path, set())
    architectures = {architecture_of(QUALITY_PRESETS[quality], channels): quality
                     for quality in QUALITY_PRESETS for channels in (1, 3)}
    starts = [start for start in kept if (architectures.get(start.architecture), start.kind) not in dropped]
    for quality, kind in sorted(dropped):
        record = provenance.setdefault(quality, {})
        record["untrained"] = sorted({*record.get("untrained", []), kind})
        record["dropped"] = sorted({*record.get("dropped", []), kind})
    save_starts(path, starts, provenance, force=True)
    print(json.dumps({"out": str(path), "bytes": path.stat().st_size, "starts": len(starts)}))
    return 0


def _others(path: Path, retrained: set) -> tuple[list, dict]:
    """The starts not retrained now (``retrained`` holds (architecture, kind) pairs), and the training records, from
    the file being replaced."""
    if not path.exists():
        return [], {}
    kept = [start for (kind, architecture), start in load_starts(path).items()
            if (architecture, kind) not in retrained]
    provenance = starts_provenance(path)
    if "qualities" in provenance:  # one record for all presets, as the first file had
        provenance = {quality: provenance for quality in provenance["qualities"]}
    return kept, {key: value for key, value in provenance.items() if key in QUALITY_PRESETS}


if __name__ == "__main__":
    sys.exit(main())
