"""Train the fit's learned starts over a corpus of simulated sequences and write them into the package.

    .venv/bin/python train/train_starts.py            # writes neuralvox/codec/learned_starts.bin (see README.md)
    .venv/bin/python train/train_starts.py --drop low:density   # leaves that start out of the file (no training)
    .venv/bin/python train/train_starts.py --quality medium --kinds density   # retrains those only, keeps the rest
    .venv/bin/python train/train_starts.py --quality low --lattices medium   # low's finer keyframe candidate only
    .venv/bin/python train/train_starts.py --take other.bin low:density   # that start (and its record) from other.bin

A preset's starts are trained for each of its keyframe candidates (``keyframe_candidates``): its own lattices, and
the alternative lattices it also fits a keyframe with, at its rate weight (named QUALITY/LATTICES, e.g. low/medium).
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
from neuralvox.codec.presets import ALTERNATIVE_LATTICES, QUALITY_PRESETS, Quality, keyframe_candidates  # noqa: E402
from neuralvox.codec.starts import (  # noqa: E402
    GRID_KINDS,
    STARTS_FILE,
    LearnedStart,
    LearnedStartError,
    StartKey,
    load_starts,
    save_starts,
    starts_provenance,
)
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
    parser.add_argument("--lattices", nargs="+", choices=sorted(QUALITY_PRESETS),
                        help="train only the keyframe candidates with these presets' lattices (default: all)")
    parser.add_argument("--kinds", nargs="+", default=list(GRID_KINDS), choices=GRID_KINDS,
                        help="grid kinds to train (the others' starts are kept from the file it replaces)")
    parser.add_argument("--rounds", type=int, help="outer rounds (default: the preset's recipe's)")
    parser.add_argument("--batch", type=int, help="corpus fits per round (default: the preset's recipe's)")
    parser.add_argument("--drop", nargs="+", metavar="CANDIDATE:KIND", type=_candidate_kind,
                        help="remove these starts from the file (their fits begin untrained) and train nothing; "
                             f"CANDIDATE is one of {sorted(CANDIDATES)}")
    parser.add_argument("--take", nargs="+", metavar=("FILE", "CANDIDATE:KIND"),
                        help="replace these starts (or records that none was kept) and their candidates' training "
                             "records by those of another starts file FILE, and train nothing")
    args = parser.parse_args()
    if args.take:
        if len(args.take) < 2:
            parser.error("--take needs a starts file and at least one CANDIDATE:KIND")
        try:
            taken = {_candidate_kind(text) for text in args.take[1:]}
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    try:
        if args.drop:
            return _drop(args.out, set(args.drop))
        if args.take:
            return _take(args.out, Path(args.take[0]), taken)
    except LearnedStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = [name for name in CANDIDATES if _quality(name) in args.quality
             and (args.lattices is None or _lattices(name) in args.lattices)]
    if not names:
        parser.error(f"no keyframe candidate of {args.quality} has the lattices of {args.lattices}")
    recipes = {name: dataclasses.replace(recipe_for(_quality(name)), **{
        knob: value for knob, value in (("rounds", args.rounds), ("batch", args.batch)) if value is not None})
        for name in names}
    began = time.perf_counter()
    grids = corpus_grids(DEFAULT_CORPUS)
    print(f"corpus: {', '.join(f'{kind} {len(grids.get(kind, []))} grids' for kind in GRID_KINDS)} "
          f"({time.perf_counter() - began:.0f} s)", flush=True)
    trained = {(name, kind): train_start(kind, CANDIDATES[name], grids[kind], recipes[name],
                                         log=lambda line: print(line, flush=True))
               for name in names for kind in args.kinds}
    seconds = time.perf_counter() - began
    record = {"corpus": [spec.to_json() for spec in DEFAULT_CORPUS], "validation_rule": VALIDATION_RULE,
              "seconds": round(seconds), "date": date.today().isoformat(), "machine": platform.platform()}
    starts, untrained_keys, provenance = _others(args.out, {key for pair in trained for key in _keys(*pair)})
    for name in names:
        earlier = provenance.get(name, {})
        untrained = [kind for (n, kind), start in trained.items() if n == name and start is None]
        untrained += [kind for kind in earlier.get("untrained", []) if kind not in args.kinds]
        held = {kind: [grid.source for grid in held_back(grids[kind], recipes[name].validation)[1]]
                for kind in args.kinds}
        provenance[name] = {**record, "recipe": recipes[name].to_json(), "held_back": held, "kinds": args.kinds,
                            "untrained": untrained, "rate_lambda": CANDIDATES[name].rate_lambda}
        if set(args.kinds) != set(GRID_KINDS) and earlier:
            provenance[name]["other_kinds"] = earlier  # the record of the run the kept starts come from
    starts += [start for start in trained.values() if start is not None]
    untrained_keys += [_keys(*pair)[0] for pair, start in trained.items() if start is None]
    save_starts(args.out, starts, provenance, force=True, untrained=tuple(untrained_keys))
    print(json.dumps({"out": str(args.out), "bytes": args.out.stat().st_size, "starts": len(starts),
                      "seconds": round(seconds)}))
    return 0


def _keyframe_candidates() -> dict[str, Quality]:
    """Every preset's keyframe candidates by name: the preset's own, and QUALITY/LATTICES for its alternatives."""
    named = {}
    for quality in QUALITY_PRESETS:
        own, *alternatives = keyframe_candidates(quality)
        named[quality] = own
        for lattices, preset in zip(ALTERNATIVE_LATTICES.get(quality, ()), alternatives, strict=True):
            named[f"{quality}/{lattices}"] = preset
    return named


CANDIDATES = _keyframe_candidates()


def _quality(name: str) -> str:
    return name.partition("/")[0]


def _lattices(name: str) -> str:
    return name.rpartition("/")[2]


def _keys(name: str, kind: str) -> list[StartKey]:
    """Where the starts file files the start of candidate ``name`` for ``kind``: at its rate weight, and for a
    preset's own lattices also the start of its architecture without a recorded rate weight, which it replaces."""
    preset = CANDIDATES[name]
    architecture = architecture_of(preset, 3 if kind == "velocity" else 1)
    own = [(kind, architecture, None)] if name in QUALITY_PRESETS else []
    return [(kind, architecture, preset.rate_lambda), *own]


def _candidate_kind(text: str) -> tuple[str, str]:
    name, _, kind = text.partition(":")
    if name not in CANDIDATES or kind not in GRID_KINDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not CANDIDATE:KIND ({sorted(CANDIDATES)} : {GRID_KINDS})")
    return name, kind


def _drop(path: Path, dropped: set[tuple[str, str]]) -> int:
    """Rewrite the starts file without the ``dropped`` (candidate, kind) starts, recording them as untrained."""
    starts, untrained_keys, provenance = _others(path, {key for pair in dropped for key in _keys(*pair)})
    untrained_keys += [_keys(*pair)[0] for pair in sorted(dropped)]
    for name, kind in sorted(dropped):
        record = provenance.setdefault(name, {})
        record["untrained"] = sorted({*record.get("untrained", []), kind})
        record["dropped"] = sorted({*record.get("dropped", []), kind})
    save_starts(path, starts, provenance, force=True, untrained=tuple(untrained_keys))
    print(json.dumps({"out": str(path), "bytes": path.stat().st_size, "starts": len(starts)}))
    return 0


def _take(path: Path, source: Path, taken: set[tuple[str, str]]) -> int:
    """Rewrite the starts file with ``source``'s starts (or untrained records) for the ``taken`` (candidate, kind)
    in place of its own, and ``source``'s training records of those candidates."""
    replaced = {key for pair in taken for key in _keys(*pair)}
    starts, untrained_keys, provenance = _others(path, replaced)
    theirs, their_untrained, their_provenance = _others(source, set(), missing_ok=False)
    starts += [start for start in theirs if start.key in replaced]
    untrained_keys += [key for key in their_untrained if key in replaced]
    for name in sorted({name for name, _ in taken}):
        provenance[name] = {**their_provenance.get(name, {}),
                            "taken": sorted(kind for n, kind in taken if n == name)}
    save_starts(path, starts, provenance, force=True, untrained=tuple(untrained_keys))
    print(json.dumps({"out": str(path), "bytes": path.stat().st_size, "starts": len(starts)}))
    return 0


def _others(path: Path, replaced: set[StartKey],
            missing_ok: bool = True) -> tuple[list[LearnedStart], list[StartKey], dict]:
    """From the file being replaced: the starts not ``replaced``, the keys of the recorded untrained starts not
    replaced, and the training records (none when there is no file and ``missing_ok``)."""
    if missing_ok and not path.exists():
        return [], [], {}
    found = load_starts(path)
    kept = [start for key, start in found.items() if key not in replaced and start is not None]
    untrained = [key for key, start in found.items() if key not in replaced and start is None]
    provenance = starts_provenance(path)
    if "qualities" in provenance:  # one record for all presets, as the first file had
        provenance = {quality: provenance for quality in provenance["qualities"]}
    return kept, untrained, {key: value for key, value in provenance.items() if key in CANDIDATES}


if __name__ == "__main__":
    sys.exit(main())
