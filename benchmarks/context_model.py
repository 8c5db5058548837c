"""The neural context model against the counting contexts: whole-archive bits, encode and decode time, same bound.

    .venv/bin/python benchmarks/context_model.py [--psnr 40] [--only default smoke128 liquid64 blender velocity]

For each reference sequence: `compress --psnr P` with `--context-model counting` and with `auto` (the neural model
where it pays; the bound search does not depend on the entropy model, so both code at the same bound), and a decode
of every frame. Prints one Markdown row per sequence: whole-archive bits per active voxel, the context
stream's bytes, encode seconds (the neural side includes its fit) and decode seconds.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bounded_rd import SEQUENCES, frames_of  # noqa: E402

from neuralvox.codec.decoder import open_archive  # noqa: E402
from neuralvox.codec.encoder import compress  # noqa: E402


def run(folder: Path, grid: str, model: str, **target: float | str) -> tuple[int, int, float, float, float, int]:
    """(archive bytes, context bytes, encode s, decode s, bound, voxels) of one compression and full decode."""
    with tempfile.TemporaryDirectory(prefix="context-model-") as tmp:
        path = Path(tmp) / "c.nvox"
        start = time.perf_counter()
        report = compress([str(folder)], path, grids=[grid], device="cpu", progress=False, context_model=model,
                          **target)
        encode = time.perf_counter() - start
        start = time.perf_counter()
        with open_archive(path, device="cpu") as archive:
            for number in archive.frames:
                archive.decode_grid(number, grid)
        decode = time.perf_counter() - start
        coded = report.grids[0]
        return (path.stat().st_size, coded.stream_bytes.get("context", 0), encode, decode, coded.bound,
                coded.voxels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--psnr", type=float, default=40.0)
    parser.add_argument("--only", nargs="+", choices=list(SEQUENCES), default=list(SEQUENCES))
    args = parser.parse_args()
    print(f"{datetime.date.today()}, {platform.node()} ({platform.machine()}), PSNR {args.psnr:g} dB")
    print("| sequence | grid | counting bpv | neural bpv | change | context B | encode s counting / neural | "
          "decode s counting / neural |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.only:
        source, grid = SEQUENCES[name]
        folder = frames_of(source)
        counting = run(folder, grid, "counting", psnr=args.psnr)
        neural = run(folder, grid, "auto", psnr=args.psnr)
        assert neural[4] == counting[4], "the bound search does not depend on the entropy model"
        voxels = counting[5]
        bpv_counting, bpv_neural = 8 * counting[0] / voxels, 8 * neural[0] / voxels
        print(f"| {name} | {grid} | {bpv_counting:.3f} | {bpv_neural:.3f} | {bpv_neural / bpv_counting - 1:+.1%} | "
              f"{neural[1]} | {counting[2]:.1f} / {neural[2]:.1f} | {counting[3]:.1f} / {neural[3]:.1f} |")


if __name__ == "__main__":
    main()
