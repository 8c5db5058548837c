"""Production scale: peak memory and throughput of the CLI on 10M-100M-voxel frames, archives identical across
workers and engines (Ray included, a worker killed mid-run), and memory flat over a long decompress.

Frames are synthetic turbulent smoke (``neuralvox.sim.turbulence``) written as real .vdb files through the OpenVDB
binding, so the measured path is the CLI's: read .vdb, code, write .nvox; read .nvox, decode, write .vdb. Memory is
the peak, over samples every 0.2 s, of the summed proportional set size of the command and all its worker processes
(``neuralvox.bench.memory``). Identity: every payload equal byte for byte and the header equal once the fields that
record wall time or the date (``created``, ``fit_seconds``) are masked.

Run (one at a time on a small machine):
    .venv/bin/python benchmarks/scale.py frames --voxels 10000000 50000000 --out /tmp/scale
    .venv/bin/python benchmarks/scale.py codec --out /tmp/scale --workers 1 2
    .venv/bin/python benchmarks/scale.py bits --out /tmp/scale
    .venv/bin/python benchmarks/scale.py ray --frames 48 --out /tmp/scale_ray
    .venv/bin/python benchmarks/scale.py stream --frames 200 --out /tmp/scale_stream
Each prints a table and appends JSON to benchmarks/results/scale.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from neuralvox.bench.memory import PeakMemory
from neuralvox.codec.chunked import ChunkContext, chunk_headers
from neuralvox.codec.chunks import Chunks
from neuralvox.codec.decoder import open_archive
from neuralvox.codec.header import without_timing
from neuralvox.container import ArchiveReader
from neuralvox.grid import SparseGrid

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "scale.jsonl"
CLI = [sys.executable, "-m", "neuralvox.cli"]
BOUND = "0.002"  # absolute: the frames' density peaks near 2, so about 0.1% of the range
GIB = 1 << 30
BITS_MAX_VOXELS = 20_000_000  # "bits" codes a frame whole in this process: only where that fits in memory


def record(kind: str, **fields: object) -> None:
    row = {"kind": kind, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "machine": platform.node(), "command": " ".join(sys.argv), **fields}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


@dataclasses.dataclass(frozen=True)
class Run:
    """One measured command: wall seconds, CPU seconds (user + system of the command and its workers: the larger of
    what ``wait4`` reports and the sum over the processes sampled in its tree), peak PSS of its process tree, and
    the peak per phase."""

    seconds: float
    cpu_seconds: float
    peak: int
    phases: dict[str, int]


def measured(command: list[str], phases: Path | None = None, frames: int = 0) -> Run:
    """Run ``command``; with ``phases`` (an output folder) also the peak per group of 50 frames written there."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    with PeakMemory(process.pid) as peak:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if phases is not None:
                done = len(list(phases.glob("*.vdb"))) if phases.exists() else 0
                peak.mark(f"frames {done // 50 * 50}-{min(frames, done // 50 * 50 + 49)}")
            time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)}: exit {process.returncode}")
    cpu = max(usage.ru_utime + usage.ru_stime, peak.cpu_seconds)
    return Run(time.perf_counter() - start, cpu, peak.bytes, peak.by_phase)


def identical(first: Path, second: Path) -> bool:
    with ArchiveReader(first) as a, ArchiveReader(second) as b:
        return (a.keys() == b.keys() and all(a.get(k) == b.get(k) for k in a)
                and without_timing(a.header) == without_timing(b.header))


def value_bytes(archive: Path) -> int:
    with ArchiveReader(archive) as reader:
        return sum(size for stream, size in reader.stream_sizes().items() if stream.split(".")[0] == "values")


def cmd_frames(args: argparse.Namespace) -> None:
    from neuralvox.sim.turbulence import turbulent_frame
    from neuralvox.vdb import write_vdb

    args.out.mkdir(parents=True, exist_ok=True)
    for voxels in args.voxels:
        path = args.out / f"turb{voxels // 1_000_000}m.vdb"
        start = time.perf_counter()
        grid = turbulent_frame(voxels, seed=1)
        write_vdb(path, [grid], force=True)
        print(f"{path}: {grid.voxel_count:,} active voxels, {path.stat().st_size / GIB:.2f} GiB, "
              f"{time.perf_counter() - start:.0f} s", flush=True)


def cmd_codec(args: argparse.Namespace) -> None:
    for source in sorted(args.out.glob("turb*m.vdb"), key=lambda p: int(p.stem[4:-1])):
        from neuralvox.vdb import grid_stats

        voxels = int(grid_stats(source)[0]["active_voxels"])
        archives = []
        for workers in args.workers:
            archive = args.out / f"{source.stem}.w{workers}.nvox"
            coded = measured([*CLI, "compress", str(source), "-o", str(archive), "--max-error", BOUND,
                              "--workers", str(workers), "--quiet", "--force"])
            decoded = args.out / f"decoded.w{workers}"
            back = measured([*CLI, "decompress", str(archive), "-o", str(decoded), "--workers", str(workers),
                             "--quiet", "--force"])
            with open_archive(archive) as opened:
                chunks = len(chunk_headers(opened.entry(opened.frames[0]).grids["density"].values))
            record("codec", source=source.name, voxels=voxels, workers=workers, chunks=chunks,
                   archive_bytes=archive.stat().st_size, value_bytes=value_bytes(archive),
                   compress_s=round(coded.seconds, 1), compress_cpu_s=round(coded.cpu_seconds, 1),
                   compress_mvox_s=round(voxels / coded.seconds / 1e6, 2),
                   compress_peak_gib=round(coded.peak / GIB, 2), decompress_s=round(back.seconds, 1),
                   decompress_cpu_s=round(back.cpu_seconds, 1), decompress_mvox_s=round(voxels / back.seconds / 1e6, 2),
                   decompress_peak_gib=round(back.peak / GIB, 2))
            archives.append(archive)
        record("codec-identity", source=source.name, workers=args.workers,
               identical=all(identical(archives[0], a) for a in archives[1:]))


def cmd_bits(args: argparse.Namespace) -> None:
    """Value bytes of each frame (of at most ``BITS_MAX_VOXELS``) coded in chunks (the coarse layer included) and as
    one piece, in this process: under the counting contexts (the same model both ways), and under a neural context
    model fitted as ``compress`` fits it for each (on the whole grid for the one piece, on the middle chunk for the
    chunks; the model's bytes counted), as the archives would hold them. The first and second passes compared both
    under the chunked archive's model; that row is recorded too (``neural, chunked archive's model``)."""
    from neuralvox.codec.arm_fit import fit_context
    from neuralvox.codec.bounded import encode_grid
    from neuralvox.codec.chunked import SamplePiece, sample_piece
    from neuralvox.codec.chunks import split_voxels
    from neuralvox.vdb import read_vdb

    bound = float(BOUND)
    for source in sorted(args.out.glob("turb*m.vdb"), key=lambda p: int(p.stem[4:-1])):
        grid = read_vdb(source).grids["density"].sorted()
        if grid.voxel_count > BITS_MAX_VOXELS:
            continue
        chunks = split_voxels(grid.ijk)
        start = time.perf_counter()
        pieces, coarse = _chunked_bytes(grid, chunks, bound, ChunkContext())
        _bits_row(source, grid.voxel_count, len(chunks), "counting", len(encode_grid(grid, bound).stream), pieces,
                  coarse, start)
        start = time.perf_counter()
        for_chunks = fit_context([sample_piece(grid)], bound, 1).weights
        for_whole = fit_context([SamplePiece(grid)], bound, 1).weights
        pieces, coarse = _chunked_bytes(grid, chunks, bound, ChunkContext(for_chunks, 0))
        _bits_row(source, grid.voxel_count, len(chunks), "neural, each fitted as compress fits it",
                  len(encode_grid(grid, bound, for_whole).stream) + len(for_whole.to_bytes()),
                  pieces + len(for_chunks.to_bytes()), coarse, start)
        _bits_row(source, grid.voxel_count, len(chunks), "neural, chunked archive's model",
                  len(encode_grid(grid, bound, for_chunks).stream), pieces, coarse, start)
        del grid


def _chunked_bytes(grid: SparseGrid, chunks: Chunks, bound: float, context: ChunkContext) -> tuple[int, int]:
    """The value bytes of a grid coded in ``chunks`` under ``context``, and those of its coarse layer (its own
    context model's included)."""
    from neuralvox.codec.chunked import encode_chunk, encode_coarse

    coarse = encode_coarse(grid, bound, context)
    return coarse.size + sum(len(encode_chunk(grid, chunks, i, bound, context, coarse.layer).stream)
                             for i in range(len(chunks))), coarse.size


def _bits_row(source: Path, voxels: int, chunks: int, model: str, whole: int, pieces: int, coarse: int,
              start: float) -> None:
    record("bits", source=source.name, voxels=voxels, chunks=chunks, context_model=model, unchunked_value_bytes=whole,
           chunked_value_bytes=pieces, coarse_layer_bytes=coarse, chunked_over_unchunked=round(pieces / whole, 4),
           seconds=round(time.perf_counter() - start, 1), peak_rss_gib_this_process=round(_max_rss() / GIB, 2))


def _max_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _sequence(out: Path, frames: int, voxels: int) -> list[Path]:
    from neuralvox.sim.turbulence import turbulent_frame
    from neuralvox.vdb import write_vdb

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in range(frames):
        path = out / f"smoke.{t + 1:04d}.vdb"
        if not path.exists():
            write_vdb(path, [turbulent_frame(voxels, frame=t, frames=frames, seed=2)])
        paths.append(path)
    return paths


def _ray_workers(root: int) -> list[int]:
    """Processes under ``root`` that run one of our Ray tasks."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::code_chunks_from_file") and _descends(int(entry.name), root):
            found.append(int(entry.name))
    return found


def _descends(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def cmd_ray(args: argparse.Namespace) -> None:
    paths = _sequence(args.out / "frames", args.frames, args.voxels)
    common = [*map(str, paths), "--max-error", BOUND, "--quiet", "--force"]
    serial = args.out / "serial.nvox"
    serial_run = measured([*CLI, "compress", *common, "-o", str(serial), "--workers", "1"])
    on_ray = args.out / "ray.nvox"
    ray_run = measured([*CLI, "compress", *common, "-o", str(on_ray), "--ray", "--workers", "2"])
    record("ray", frames=args.frames, voxels_per_frame=args.voxels, serial_s=round(serial_run.seconds, 1),
           ray_s=round(ray_run.seconds, 1), identical=identical(serial, on_ray))
    killed_archive = args.out / "ray_killed.nvox"
    start = time.perf_counter()
    process = subprocess.Popen([*CLI, "compress", *common, "-o", str(killed_archive), "--ray", "--workers", "2"],
                               stdout=subprocess.DEVNULL)
    killed = None
    while process.poll() is None and killed is None:
        workers = _ray_workers(process.pid)
        if workers and time.perf_counter() - start > args.kill_after:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    process.wait()
    record("ray-killed", frames=args.frames, killed_pid=killed, exit=process.returncode,
           seconds=round(time.perf_counter() - start, 1),
           identical=process.returncode == 0 and identical(serial, killed_archive))


def cmd_stream(args: argparse.Namespace) -> None:
    paths = _sequence(args.out / "frames", args.frames, args.voxels)
    archive = args.out / "stream.nvox"
    if not archive.exists():
        measured([*CLI, "compress", *map(str, paths), "-o", str(archive), "--max-error", BOUND, "--quiet"])
    decoded = args.out / "decoded"
    for old in decoded.glob("*.vdb") if decoded.exists() else []:
        old.unlink()
    run = measured([*CLI, "decompress", str(archive), "-o", str(decoded), "--quiet", "--force"], phases=decoded,
                   frames=args.frames)
    phases = run.phases
    first, last = "frames 0-49", f"frames {args.frames - 50}-{args.frames - 1}"
    record("stream", frames=args.frames, voxels_per_frame=args.voxels, seconds=round(run.seconds, 1),
           cpu_s=round(run.cpu_seconds, 1), peak_gib=round(run.peak / GIB, 3),
           phases_gib={k: round(v / GIB, 3) for k, v in phases.items()},
           last_over_first=round(phases.get(last, 0) / max(1, phases.get(first, 1)), 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(required=True)
    frames = commands.add_parser("frames")
    frames.add_argument("--voxels", type=int, nargs="+", default=[10_000_000, 50_000_000])
    frames.add_argument("--out", type=Path, required=True)
    frames.set_defaults(run=cmd_frames)
    codec = commands.add_parser("codec")
    codec.add_argument("--out", type=Path, required=True)
    codec.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    codec.set_defaults(run=cmd_codec)
    bits = commands.add_parser("bits")
    bits.add_argument("--out", type=Path, required=True)
    bits.set_defaults(run=cmd_bits)
    ray = commands.add_parser("ray")
    ray.add_argument("--frames", type=int, default=48)
    ray.add_argument("--voxels", type=int, default=300_000)
    ray.add_argument("--kill-after", type=float, default=8.0, help="seconds into the run before killing a worker")
    ray.add_argument("--out", type=Path, required=True)
    ray.set_defaults(run=cmd_ray)
    stream = commands.add_parser("stream")
    stream.add_argument("--frames", type=int, default=200)
    stream.add_argument("--voxels", type=int, default=200_000)
    stream.add_argument("--out", type=Path, required=True)
    stream.set_defaults(run=cmd_stream)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
