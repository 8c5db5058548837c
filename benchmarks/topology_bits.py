"""Bits per active voxel and speed of the lossless topology coder on a frame sequence, against zstd of leaf masks.

    PYTHONPATH=. python benchmarks/topology_bits.py                      # Blender smoke frames 1-10 (needs the binding)
    PYTHONPATH=. python benchmarks/topology_bits.py --per-frame --repeat 3
    PYTHONPATH=. python benchmarks/topology_bits.py --synthetic          # a moving fuzzy blob, no OpenVDB needed
    PYTHONPATH=. python benchmarks/topology_bits.py --data data/generated/liquid_64x12 \
        --pattern liquid.{frame:04d}.vdb --frames 1-12 --grids surface --cross ''

intra: every frame coded alone; inter: each frame coded against the previous frame's set (frame 1 has none, so it is
coded alone, as a key frame would be); cross: a grid coded against another grid of the same frame (--cross).
Baseline: leaf origins (int32) + 64-byte leaf masks, zstd level 19. Times are the best of --repeat runs, per frame.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zstandard

from neuralvox.topology import decode_topology, encode_topology

DEFAULT_DATA = Path("/work/shared/data/blender_smoke_c42")
DEFAULT_GRIDS = ("density", "temperature", "velocity", "phi_out")


def zstd_leaf_masks(ijk: np.ndarray) -> bytes:
    """The naive baseline: sorted leaf origins and each leaf's 512-bit mask, zstd level 19."""
    leaves, leaf_of = np.unique(ijk >> 3, axis=0, return_inverse=True)
    local = ijk & 7
    masks = np.zeros((len(leaves), 512), np.uint8)
    masks[leaf_of.ravel(), local[:, 0] * 64 + local[:, 1] * 8 + local[:, 2]] = 1
    payload = (leaves << 3).astype(np.int32).tobytes() + np.packbits(masks, axis=1).tobytes()
    return zstandard.ZstdCompressor(level=19).compress(payload)


def best_ms(run: Callable[[], object], repeat: int) -> tuple[object, float]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return result, 1e3 * best


def canonical(ijk: np.ndarray) -> np.ndarray:
    return ijk[np.lexsort((ijk[:, 2], ijk[:, 1], ijk[:, 0]))]


def read_frames(data: Path, pattern: str, frames: list[int], grids: list[str]) -> dict[str, list[np.ndarray]]:
    from neuralvox.vdb import read_vdb

    sets: dict[str, list[np.ndarray]] = {grid: [] for grid in grids}
    for frame in frames:
        vdb = read_vdb(data / pattern.format(frame=frame), grids=grids)
        for grid in grids:
            sets[grid].append(canonical(vdb.grids[grid].ijk))
    return sets


def synthetic_frames(frames: list[int]) -> dict[str, list[np.ndarray]]:
    """A fuzzy blob that rises and grows, thresholded through smooth noise, like a small smoke plume."""
    rng = np.random.default_rng(0)
    axis = np.arange(-40, 41)
    cells = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    phases = rng.uniform(0, 2 * np.pi, 6)
    sets = []
    for frame in frames:
        centre = np.array([0.0, -20.0 + 2.0 * frame, 0.0])
        radius = 10.0 + 1.5 * frame
        x, y, z = ((cells - centre) / radius).T
        wobble = 0.15 * np.sin(4 * x + phases[0] + 0.3 * frame) * np.cos(3 * y + phases[1]) + 0.1 * np.sin(5 * z)
        fuzz = rng.normal(0.0, 0.04, len(cells))
        sets.append(canonical(cells[np.sqrt(x**2 + y**2 + z**2) + fuzz < 1.0 + wobble].astype(np.int32)))
    return {"synthetic_blob": sets}


def measure(current: np.ndarray, reference: np.ndarray | None, repeat: int) -> tuple[int, float, float]:
    """Stream bytes, encode ms and decode ms; fails loudly if the round trip is not exact."""
    data, encode_ms = best_ms(lambda: encode_topology(current, reference), repeat)
    decoded, decode_ms = best_ms(lambda: decode_topology(data, reference), repeat)
    if not np.array_equal(decoded, current):
        raise AssertionError("topology round trip is not exact")
    return len(data), encode_ms, decode_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of fluid_data_####.vdb frames")
    parser.add_argument("--pattern", default="fluid_data_{frame:04d}.vdb", help="file name of a frame in --data")
    parser.add_argument("--frames", default="1-10", help="first-last frame numbers")
    parser.add_argument("--grids", default=",".join(DEFAULT_GRIDS))
    parser.add_argument(
        "--cross",
        default="temperature:density,velocity:density",
        help="grid:reference pairs coded against another grid of the same frame ('' for none)",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--per-frame", action="store_true", help="also print one row per frame")
    parser.add_argument("--synthetic", action="store_true", help="use a synthetic moving blob instead of .vdb files")
    args = parser.parse_args()
    first, last = (int(v) for v in args.frames.split("-"))
    frames = list(range(first, last + 1))
    grids = [g for g in args.grids.split(",") if g]
    sets = synthetic_frames(frames) if args.synthetic else read_frames(args.data, args.pattern, frames, grids)
    pairs = [] if args.synthetic else [tuple(p.split(":")) for p in args.cross.split(",") if p]

    print(f"# Topology coder, {'synthetic blob' if args.synthetic else args.data.name} frames {args.frames}\n")
    print(
        f"{platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}; times: best of {args.repeat}, mean per frame\n"
    )
    header = (
        "| grid | mode | voxels/frame | zstd-19 leaf masks bpv | ours bpv | ratio to zstd | encode ms | decode ms |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|"
    )
    frame_rows = []
    summary = []
    jobs = [(grid, "intra", None) for grid in sets] + [(grid, "inter", None) for grid in sets]
    jobs += [(grid, "cross", ref) for grid, ref in pairs if grid in sets and ref in sets]
    for grid, mode, cross_ref in jobs:
        bits = zstd_bits = voxels = 0
        encode_total = decode_total = 0.0
        for index, frame in enumerate(frames):
            current = sets[grid][index]
            if mode == "intra":
                reference = None
            elif mode == "inter":
                reference = sets[grid][index - 1] if index > 0 else None
            else:
                reference = sets[cross_ref][index]
            size, encode_ms, decode_ms = measure(current, reference, args.repeat)
            baseline = len(zstd_leaf_masks(current))
            bits += 8 * size
            zstd_bits += 8 * baseline
            voxels += len(current)
            encode_total += encode_ms
            decode_total += decode_ms
            frame_rows.append(
                f"| {grid} | {mode} | {frame} | {len(current)} | {8 * baseline / len(current):.4f} | "
                f"{8 * size / len(current):.4f} | {size} | {encode_ms:.1f} | {decode_ms:.1f} |"
            )
        label = f"cross ({cross_ref})" if mode == "cross" else mode
        summary.append(
            f"| {grid} | {label} | {voxels // len(frames)} | {zstd_bits / voxels:.4f} | "
            f"{bits / voxels:.4f} | {zstd_bits / bits:.1f}x | {encode_total / len(frames):.1f} | "
            f"{decode_total / len(frames):.1f} |"
        )
    print(header)
    print("\n".join(summary))
    if args.per_frame:
        print("\n| grid | mode | frame | voxels | zstd bpv | ours bpv | bytes | encode ms | decode ms |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        print("\n".join(frame_rows))


if __name__ == "__main__":
    main()
