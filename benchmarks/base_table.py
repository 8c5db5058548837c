"""Equal-PSNR comparison of two `base_rd.py` result files: each new point's whole-archive bits against the old
codec's bits at the same PSNR, interpolated linearly in log-bpv between the old codec's measured points of that
sequence (never extrapolated: a PSNR outside the old points' range is reported as such).

    .venv/bin/python benchmarks/base_table.py OLD.jsonl NEW.jsonl [--qualities low medium] [--breakdown]

``--breakdown`` prints instead, for each new point with an old point of the same sequence, quality and rate factor,
the bytes of each stream and of the container (the whole file less the streams: HDF5 and the table of contents),
old -> new, with the PSNR of both (equal when the fits are the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Point:
    """One measured archive: its sequence, quality (and the factor on its rate weight), whole-archive bits per voxel
    and PSNR."""

    sequence: str
    quality: str
    lambda_scale: float
    bpv: float
    psnr: float


def read_points(path: Path) -> list[Point]:
    """The points of a result file; a later line for the same sequence, quality and rate factor replaces an earlier
    one."""
    points: dict[tuple[str, str, float], Point] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            point = Point(row["sequence"], row["quality"], row.get("lambda_scale", 1.0), row["bpv"], row["psnr"])
            points[(point.sequence, point.quality, point.lambda_scale)] = point
    return list(points.values())


def read_rows(path: Path) -> dict[tuple[str, str, float], dict]:
    """The raw rows of a result file by (sequence, quality, rate factor), later lines replacing earlier ones."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[(row["sequence"], row["quality"], row.get("lambda_scale", 1.0))] = row
    return rows


def print_breakdown(old: Path, new: Path, qualities: list[str]) -> None:
    """Bytes per stream and container, old -> new, for the points both files measured."""
    before = read_rows(old)
    print("| sequence | quality | PSNR dB old -> new | archive | container | topology | latents | residual | weights "
          "| motion |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, row in read_rows(new).items():
        if key not in before or key[1] not in qualities:
            continue
        was = before[key]
        cells = [f"{was['archive_bytes']:,} -> {row['archive_bytes']:,} "
                 f"({row['archive_bytes'] / was['archive_bytes'] - 1:+.1%})"]
        container = [r["archive_bytes"] - sum(r["streams"].values()) for r in (was, row)]
        cells.append(f"{container[0]:,} -> {container[1]:,}")
        for stream in ("topology", "latents", "residual", "weights", "motion"):
            a, b = was["streams"].get(stream, 0), row["streams"].get(stream, 0)
            cells.append(f"{a:,} -> {b:,}" + (f" ({b / a - 1:+.0%})" if a else ""))
        print(f"| {key[0]} | {key[1]} | {was['psnr']:.3f} -> {row['psnr']:.3f} | " + " | ".join(cells) + " |")


def bpv_at(curve: list[Point], psnr: float) -> float | None:
    """The curve's bits per voxel at ``psnr`` (log-linear between the two measured points around it), None outside."""
    ordered = sorted(curve, key=lambda point: point.psnr)
    for low, high in zip(ordered, ordered[1:], strict=False):
        if low.psnr <= psnr <= high.psnr:
            if high.psnr == low.psnr:
                return min(low.bpv, high.bpv)
            t = (psnr - low.psnr) / (high.psnr - low.psnr)
            return math.exp((1 - t) * math.log(low.bpv) + t * math.log(high.bpv))
    exact = [point.bpv for point in ordered if point.psnr == psnr]
    return exact[0] if exact else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--qualities", nargs="+", default=["low", "medium"])
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args()
    if args.breakdown:
        print_breakdown(args.old, args.new, args.qualities)
        return
    old = read_points(args.old)
    print("| sequence | quality | PSNR dB | bpv new | bpv old at that PSNR | bits vs old |")
    print("|---|---|---:|---:|---:|---|")
    for point in read_points(args.new):
        if point.quality not in args.qualities or point.lambda_scale != 1.0:
            continue
        reference = bpv_at([p for p in old if p.sequence == point.sequence], point.psnr)
        change = "outside the old points' PSNR range" if reference is None else f"{point.bpv / reference - 1:+.1%}"
        shown = "-" if reference is None else f"{reference:.3f}"
        print(f"| {point.sequence} | {point.quality} | {point.psnr:.2f} | {point.bpv:.3f} | {shown} | {change} |")


if __name__ == "__main__":
    main()
