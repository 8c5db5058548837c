"""Archives of two checkouts agree: same payload bytes and header for the same input, same decode of each other's.

Run once per checkout (the older one through PYTHONPATH), then compare:

    PYTHONPATH=/tmp/old python benchmarks/format_identity.py write /tmp/ident/old
    python benchmarks/format_identity.py write /tmp/ident/new
    python benchmarks/format_identity.py decode /tmp/ident/old /tmp/ident/new   # the new code decodes old archives
    python benchmarks/format_identity.py compare /tmp/ident/old /tmp/ident/new

``write`` compresses each case and stores every decoded grid (voxels and values) beside the archive; ``compare``
checks payload by payload with ``==`` on the bytes, the header JSON with the fields that record wall time or the
date masked (``created``, ``fit_seconds``: they differ between any two runs), and the decoded arrays bit for bit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import neuralvox
from neuralvox.codec.encoder import compress
from neuralvox.codec.header import without_timing
from neuralvox.container import ArchiveReader

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "data" / "generated"
BLENDER = ROOT.parent / "shared" / "data" / "blender_smoke_c42"
CASES: dict[str, tuple[list[Path], dict]] = {
    "plume40_bounded": (sorted((GENERATED / "plume_40x12").glob("plume.*.vdb")), {}),
    "plume40_psnr_density": (sorted((GENERATED / "plume_40x12").glob("plume.*.vdb")),
                             {"grids": ["density"], "psnr": 45.0}),
    "liquid64_bounded": (sorted((GENERATED / "liquid_64x12").glob("liquid.*.vdb"))[:6], {"max_error": "0.05vox"}),
    "blender_bounded": (sorted(BLENDER.glob("fluid_data_*.vdb")), {}),
    "plume40_base_only": (sorted((GENERATED / "plume_40x12").glob("plume.*.vdb"))[:5],
                          {"base_only": True, "quality": "low", "device": "cpu"}),
    "blender_base_only": (sorted(BLENDER.glob("fluid_data_*.vdb"))[:3],
                          {"base_only": True, "quality": "low", "device": "cpu", "grids": ["density"], "gop": 2}),
}


def write(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        paths, options = CASES[name]
        compress([str(p) for p in paths], folder / f"{name}.nvox", progress=False, force=True, **options)
        decode(folder / f"{name}.nvox", folder / f"{name}.decoded.npz")
        print(f"wrote {folder / name}.nvox", flush=True)


def decode(archive_path: Path, out: Path) -> None:
    arrays = {}
    with neuralvox.open(archive_path, device="cpu") as archive:
        for number in archive.frames:
            frame = archive.frame(number)
            for grid in frame:
                arrays[f"{number}/{grid}/ijk"] = frame[grid].ijk
                arrays[f"{number}/{grid}/values"] = frame[grid].values
    np.savez(out, **arrays)


def compare(old: Path, new: Path, names: list[str]) -> bool:
    good = True
    for name in names:
        with ArchiveReader(old / f"{name}.nvox") as a, ArchiveReader(new / f"{name}.nvox") as b:
            payloads = a.keys() == b.keys() and all(a.get(k) == b.get(k) for k in a)
            # key order counts too
            header = json.dumps(without_timing(a.header)) == json.dumps(without_timing(b.header))
        decodes = {}
        for label, left, right in (("own", old / f"{name}.decoded.npz", new / f"{name}.decoded.npz"),
                                   ("old archive", old / f"{name}.decoded.npz", new / f"{name}.from_old.npz")):
            if right.exists():
                x, y = np.load(left), np.load(right)
                decodes[label] = sorted(x.files) == sorted(y.files) and all(
                    x[k].dtype == y[k].dtype and x[k].tobytes() == y[k].tobytes() for k in x.files)
        ok = payloads and header and all(decodes.values())
        good &= ok
        print(f"{name:22s} payloads {'identical' if payloads else 'DIFFER'} ({len(a.keys())}), header "
              f"{'identical' if header else 'DIFFERS'} (timing masked), decodes "
              + ", ".join(f"{k} {'identical' if v else 'DIFFER'}" for k, v in decodes.items()))
    return good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["write", "decode", "compare"])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    names = args.cases.split(",")
    if args.mode == "write":
        write(args.folders[0], names)
    elif args.mode == "decode":
        for name in names:
            decode(args.folders[0] / f"{name}.nvox", args.folders[1] / f"{name}.from_old.npz")
    else:
        return 0 if compare(args.folders[0], args.folders[1], names) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
