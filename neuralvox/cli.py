"""Command-line front end: argparse subcommands, progress bars and summary tables."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from neuralvox.atomic import OutputExistsError, atomic_output
from neuralvox.codec.chunks import CHUNK_VOXELS
from neuralvox.codec.decoder import ArchiveInfo, decompress, open_archive
from neuralvox.codec.encoder import CONTEXT_MODELS, compress
from neuralvox.codec.groups import DEFAULT_GOP
from neuralvox.codec.header import GridReport
from neuralvox.codec.report import CompressReport
from neuralvox.codec.time_choice import TIME_MODES
from neuralvox.container import ArchiveError
from neuralvox.grid import GridError
from neuralvox.parallel import EngineError
from neuralvox.render import AXES, render_comparison_png, render_grid_png
from neuralvox.runtime import MissingExtraError, require
from neuralvox.sequence import SequenceError, discover
from neuralvox.vdb import VdbError, grid_stats, read_vdb

USER_ERRORS: tuple[type[Exception], ...] = (VdbError, SequenceError, GridError, ArchiveError, ValueError, OSError,
                                            KeyError, MissingExtraError, EngineError)


class UsageError(Exception):
    """The command line asks for something that cannot be done; the message says what."""


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------------------------------------- info
def vdb_sequence_info(paths: Sequence[str]) -> dict[str, Any]:
    """Per-grid summary over the frames of a .vdb sequence."""
    sequence = discover(paths)
    grids: dict[str, dict[str, Any]] = {}
    for frame in sequence.frames:
        for row in grid_stats(frame.path):
            entry = grids.setdefault(row["name"], {"frames": 0, "voxels": [], "bytes": 0, "bbox": None, "errors": []})
            entry["frames"] += 1
            if "error" in row:
                entry["errors"].append(f"{frame.path.name}: {row['error']}")
                continue
            entry.update(value_type=row["value_type"], grid_class=row["grid_class"], voxel_size=row["voxel_size"])
            entry["voxels"].append(row["active_voxels"])
            entry["bytes"] += row["bytes"] or 0
            if row["bbox"] is not None:
                lo, hi = row["bbox"]
                if entry["bbox"] is None:
                    entry["bbox"] = [list(lo), list(hi)]
                else:
                    entry["bbox"] = [[min(a, b) for a, b in zip(entry["bbox"][0], lo, strict=True)],
                                     [max(a, b) for a, b in zip(entry["bbox"][1], hi, strict=True)]]
    for entry in grids.values():
        voxels = entry.pop("voxels")
        entry["active_voxels_min"] = min(voxels) if voxels else None
        entry["active_voxels_max"] = max(voxels) if voxels else None
    return {
        "pattern": str(sequence.pattern),
        "frames": sequence.numbers,
        "gaps": sequence.gaps(),
        "file_bytes": sum(f.path.stat().st_size for f in sequence.frames),
        "grids": grids,
    }


def print_vdb_info(info: dict[str, Any]) -> None:
    numbers = [n for n in info["frames"] if n is not None]
    span = f"{numbers[0]}-{numbers[-1]}" if numbers else "-"
    print(f"{info['pattern']}: {len(info['frames'])} frames ({span}), {human_bytes(info['file_bytes'])}")
    if info["gaps"]:
        print(f"missing frames: {', '.join(map(str, info['gaps']))}")
    rows = []
    for name, g in info["grids"].items():
        voxels = "-" if g["active_voxels_min"] is None else f"{g['active_voxels_min']:,}-{g['active_voxels_max']:,}"
        bbox = "-" if g["bbox"] is None else f"{tuple(g['bbox'][0])}->{tuple(g['bbox'][1])}"
        rows.append([name, g["frames"], g.get("value_type", "?"), g.get("grid_class", "?"), voxels, bbox,
                     human_bytes(g["bytes"])])
    print(format_table(["grid", "frames", "type", "class", "active voxels", "bbox", "on disk"], rows))
    for name, g in info["grids"].items():
        for error in g["errors"]:
            print(f"warning: grid {name}: {error}", file=sys.stderr)


def archive_info(path: str) -> ArchiveInfo:
    """Frames, grids, bytes per stream, ratio and recorded errors of a .nvox archive (from its header)."""
    with open_archive(path, device="cpu") as archive:
        return archive.info()


def archive_info_json(info: ArchiveInfo) -> dict[str, Any]:
    summary = info.summary
    return {"archive": str(info.path), "bytes": info.bytes, "frames": info.frames, "codec": summary.codec.to_json(),
            "stream_bytes": info.stream_bytes, "grids": [g.to_dict() for g in summary.report],
            "over_base": {name: {"frames": based, "of": total} for name, (based, total) in info.over_base.items()},
            "skipped": dict(summary.skipped)}


def print_archive_info(info: ArchiveInfo) -> None:
    numbers = [n for n in info.frames if n is not None]
    span = f"{numbers[0]}-{numbers[-1]}" if numbers else "-"
    codec, report = info.summary.codec, info.summary.report
    quality = codec.target or f"neural base alone, quality {codec.quality}, gop {codec.gop}"
    quality += f"; --base {codec.base}" if codec.base is not None else ""
    print(f"{info.path}: {len(info.frames)} frames ({span}), {human_bytes(info.bytes)} "
          f"({archive_bpv(info.bytes, report):.3f} bits per active voxel, headers included); "
          f"{quality}; encoded on {codec.device}")
    print("bytes per stream: " + ", ".join(f"{k} {human_bytes(v)}" for k, v in info.stream_bytes.items()))
    print(format_table(*report_table(report)))
    if codec.base is not None or any(based for based, _ in info.over_base.values()):
        print("coded over the neural base: " + ", ".join(f"{name} {based} of {total} frames"
                                                         for name, (based, total) in info.over_base.items()))
    for name, reason in info.summary.skipped.items():
        print(f"not stored: {name} ({reason})")


STREAM_COLUMNS = {"topology": "topo", "values": "values", "latents": "key latents", "weights": "weights",
                  "motion": "motion", "residual": "residual"}


def report_table(grids: Sequence[GridReport]) -> tuple[list[str], list[list[Any]]]:
    """The per-grid closing table: ratio vs source, bits per voxel and its split over the streams the grids have
    (topology, bounded values, or the neural base's keyframe latents, decoder weights, motion and predicted frames'
    residuals), the error bound, errors, flicker ratio, coding time."""
    streams = [s for s in STREAM_COLUMNS if any(g.stream_bytes.get(s) for g in grids)]
    header = ["grid", "frames", "voxels", "source", "coded", "ratio", "bpv", *(STREAM_COLUMNS[s] for s in streams),
              "bound", "PSNR dB", "RMSE", "max err", "flicker", "code s"]
    rows = []
    for g in grids:
        voxels = max(g.voxels, 1)
        split = {k: 8 * v / voxels for k, v in g.stream_bytes.items()}
        flicker = "-" if g.flicker is None else f"{g.flicker:.2f}"
        bound = "-" if g.bound is None else f"{g.bound:.2e}"
        rows.append([g.name, g.frames, f"{g.voxels:,}", human_bytes(g.source_bytes), human_bytes(g.coded_bytes),
                     f"{g.ratio:.1f}x", f"{g.bpv:.3f}", *(f"{split.get(stream, 0):.3f}" for stream in streams), bound,
                     f"{g.psnr:.1f}", f"{g.rmse:.2e}", f"{g.max_abs_error:.2e}", flicker, f"{g.fit_seconds:.1f}"])
    return header, rows


def archive_bpv(archive_bytes: int, grids: Sequence[GridReport]) -> float:
    """Bits per coded active voxel of the whole archive file, headers included."""
    return 8 * archive_bytes / max(sum(g.voxels for g in grids), 1)


def cmd_info(args: argparse.Namespace) -> None:
    if len(args.paths) == 1 and args.paths[0].endswith(".nvox"):
        archive = archive_info(args.paths[0])
        print(json.dumps(archive_info_json(archive), indent=2)) if args.json else print_archive_info(archive)
        return
    info = vdb_sequence_info(args.paths)
    print(json.dumps(info, indent=2)) if args.json else print_vdb_info(info)


# ------------------------------------------------------------------------------------------ compress / decompress
def split_names(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def voxel_box(text: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """argparse type: "i0,j0,k0,i1,j1,k1", an inclusive box of voxel coordinates."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6 or any(a > b for a, b in zip(values[:3], values[3:], strict=True)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected six integers i0,j0,k0,i1,j1,k1 with each min <= max")
    return (values[0], values[1], values[2]), (values[3], values[4], values[5])


def print_compress_report(report: CompressReport) -> None:
    print(format_table(*report_table(report.grids)))
    total_ratio = report.coded_source_bytes / report.archive_bytes if report.archive_bytes else 0.0
    print(f"{report.archive}: {human_bytes(report.archive_bytes)} "
          f"({archive_bpv(report.archive_bytes, report.grids):.3f} bits per active voxel, "
          f"headers included); coded grids in the source "
          f"{human_bytes(report.coded_source_bytes)} ({total_ratio:.1f}x); whole source files "
          f"{human_bytes(report.source_file_bytes)}; {report.seconds:.1f} s")
    if report.skipped:
        print(f"not stored (see the warning for why): {', '.join(report.skipped)}")


def cmd_compress(args: argparse.Namespace) -> None:
    new_folder = not args.output.parent.exists()
    report = compress(args.paths, args.output, grids=split_names(args.grids), quality=args.quality,
                      max_error=args.max_error, psnr=args.psnr, base_only=args.base_only, device=args.device,
                      gop=args.gop, coherence=args.coherence, force=args.force, progress=not args.quiet,
                      skip_bad_frames=args.skip_bad_frames, context_model=args.context_model,
                      workers=args.workers, ray=args.ray, chunk_voxels=args.chunk_voxels, time_mode=args.time_mode,
                      base=args.base)
    print_compress_report(report)
    if new_folder:
        print(f"created the folder {args.output.parent}")


def cmd_decompress(args: argparse.Namespace) -> None:
    new_folder = not args.output.exists()
    paths = decompress(args.archive, args.output, frames=args.frames, grids=split_names(args.grids), half=args.half,
                       force=args.force, device=args.device, progress=not args.quiet, format=args.format,
                       resume=args.resume, workers=args.workers, region=args.bbox)
    print(f"wrote {len(paths)} frames to {args.output}{' (a folder it created)' if new_folder else ''}")


# ---------------------------------------------------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> None:
    for module in ("zfpy", "zstandard", "matplotlib"):
        require(module, "bench", "neuralvox bench")
    from neuralvox.bench import METHODS, plot, run_bench

    methods = split_names(args.methods)
    unknown = sorted(set(methods or []) - set(METHODS))
    if unknown:
        raise UsageError(f"unknown method {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    for target in (args.plot, args.json):
        if target is not None and target.exists() and not args.force:
            raise OutputExistsError(f"{target}: exists (use --force to overwrite)")
    result = run_bench(args.paths, grids=split_names(args.grids), methods=methods,
                       qualities=split_names(args.qualities), device=args.device, progress=not args.quiet)
    print(result.table())
    if args.plot is not None:
        print(f"wrote {plot(result, args.plot, force=args.force)}")
    if args.json is not None:
        with atomic_output(args.json, force=args.force) as tmp:
            tmp.write_text(json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n")
        print(f"wrote {args.json}")


# --------------------------------------------------------------------------------------------------------- render
def source_frame_path(compare: Sequence[str], number: int) -> Path:
    """The .vdb of frame ``number`` among the given source files, folders or globs."""
    sequence = discover(compare)
    for frame in sequence.frames:
        if frame.number == number or (len(sequence.frames) == 1 and frame.number is None):
            return frame.path
    raise UsageError(f"--compare: no source frame {number} in {sequence.pattern}")


def render_frame(archive_path: str, number: int, grid: str, output: Path, *, compare: Sequence[str] | None = None,
                 axis: str = "z", force: bool = False) -> Path:
    """PNG of one decoded grid, or original | decoded | error when the source frame is given."""
    with open_archive(archive_path) as archive:
        decoded = archive.frame(number)[grid]
    if not compare:
        return render_grid_png(output, decoded, axis=axis, title=f"{grid}, frame {number} (decoded)", force=force)
    source = source_frame_path(compare, number)
    original = read_vdb(source, [grid]).grids[grid]
    return render_comparison_png(output, original, decoded, axis=axis, force=force,
                                 title=f"{grid}, frame {number}: {source.name} vs {Path(archive_path).name}")


def cmd_render(args: argparse.Namespace) -> None:
    path = render_frame(args.archive, args.frame, args.grid, args.output, compare=args.compare, axis=args.axis,
                        force=args.force)
    print(f"wrote {path}")


# ------------------------------------------------------------------------------------------------------------ sim
def cmd_sim(args: argparse.Namespace) -> None:
    from neuralvox import sim

    if args.scenario not in sim.SCENARIOS:
        raise UsageError(f"unknown scenario {args.scenario!r}; choose from {', '.join(sim.SCENARIOS)}")
    paths = sim.simulate(args.scenario, args.output, res=args.res, frames=args.frames, seed=args.seed,
                         device=args.device, force=args.force, fps=args.fps)
    print(f"wrote {len(paths)} frames to {args.output}")


# ----------------------------------------------------------------------------------------------------------- demo
DEMO_DIR = Path("demo")


def cmd_demo(args: argparse.Namespace) -> None:
    """Simulate the embedded default, compress it, decompress it, print the table and render a comparison."""
    from neuralvox import sim

    frames_dir, archive, decoded_dir = args.output / "sim", args.output / "plume.nvox", args.output / "decoded"
    print(f"1/4 simulating the embedded default: plume, res {args.res}, {args.frames} frames -> {frames_dir}")
    sim.simulate("plume", frames_dir, res=args.res, frames=args.frames, seed=0, device=args.device, force=True)
    print(f"2/4 compressing -> {archive}")
    report = compress([str(frames_dir)], archive, grids=split_names(args.grids), quality=args.quality,
                      device=args.device, force=True)
    print_compress_report(report)
    print(f"3/4 decompressing -> {decoded_dir}")
    written = decompress(archive, decoded_dir, device=args.device, force=True)
    print(f"wrote {len(written)} frames")
    with open_archive(archive) as opened:
        middle = opened.frames[len(opened.frames) // 2]
    image = render_frame(str(archive), middle, "density", args.output / "render.png", compare=[str(frames_dir)],
                         axis="z", force=True)
    print(f"4/4 rendered original | decoded | error of frame {middle} -> {image}")


# ----------------------------------------------------------------------------------------------------------- main
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), like every other neuralvox error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neuralvox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_info, _add_compress, _add_decompress, _add_bench, _add_render, _add_sim, _add_demo):
        add(commands)
    return parser


def _add_info(commands: Any) -> None:
    info = commands.add_parser("info", help="describe .vdb frames or a .nvox archive")
    info.add_argument("paths", nargs="+", help="one .nvox archive, or .vdb files, folders or globs of one sequence")
    info.add_argument("--json", action="store_true", help="print JSON for scripts")
    info.set_defaults(run=cmd_info)


def _add_compress(commands: Any) -> None:
    comp = commands.add_parser("compress", help="compress a .vdb sequence into one .nvox archive")
    comp.add_argument("paths", nargs="+", help=".vdb files, folders or glob patterns of one sequence")
    comp.add_argument("-o", "--output", type=Path, required=True, help="the .nvox archive to write")
    comp.add_argument("--grids", help="comma-separated grid names (default: every float/double/vec3 grid)")
    comp.add_argument("--quality", choices=["low", "medium", "high"], default="medium",
                      help="the preset: 30, 40 or 50 dB PSNR under an error bound (default medium); with --base-only "
                           "the neural base's size")
    comp.add_argument("--max-error", metavar="BOUND",
                      help="largest error of any voxel: 0.001 (grid units), 0.1%% (of the value range), 0.05vox (level "
                           "sets), or per grid: density=0.001,vel=1%%")
    comp.add_argument("--psnr", type=float, help="target PSNR in dB: the bound is searched to land within 0.5 dB")
    comp.add_argument("--base-only", action="store_true",
                      help="code values with the neural base alone (no error bound, no guarantee)")
    comp.add_argument("--base", metavar="MODE",
                      help="values under a bound: off (default), auto (each grid and group of frames coded as the "
                           "neural base plus the residual under the bound where that is shorter) or on (always)")
    comp.add_argument("--context-model", choices=CONTEXT_MODELS, default="auto",
                      help="entropy model of the bounded codes: auto (a neural context model fitted to the sequence "
                           "where it saves bits, else counting contexts) or counting (faster encode)")
    comp.add_argument("--time-mode", choices=TIME_MODES, default="auto",
                      help="bounded values: auto (8^3 leaves predicted from the previous decoded frame, moved, where "
                           "that is shorter; frames of a grid then code one after another) or off")
    comp.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    comp.add_argument("--gop", default=DEFAULT_GOP,
                      help="with --base-only: frames per group (keyframe + predicted frames): a number, or auto "
                           "(default: a group ends when prediction gets costly)")
    comp.add_argument("--coherence", type=float, default=0.0,
                      help="with --base-only: 0 to below 1, the fraction of each frame's error the next frame's fit "
                           "carries on (less flicker for some PSNR; default 0)")
    comp.add_argument("--force", action="store_true", help="overwrite an existing archive")
    comp.add_argument("--skip-bad-frames", action="store_true",
                      help="leave out, with a warning, a frame where a grid named in --grids is missing or unreadable "
                           "(default: refuse the sequence)")
    comp.add_argument("--workers", type=positive_int, metavar="N",
                      help="processes coding chunks and frames (default: every core for a large sequence)")
    comp.add_argument("--ray", nargs="?", const=True, metavar="ADDRESS",
                      help="code on a Ray cluster (its address, or none: a local one); workers read the input paths")
    comp.add_argument("--chunk-voxels", type=positive_int, metavar="N",
                      help=f"largest spatial chunk in active voxels (default {CHUNK_VOXELS}); smaller grids are one")
    comp.add_argument("--quiet", action="store_true", help="no progress bar")
    comp.set_defaults(run=cmd_compress)


def _add_decompress(commands: Any) -> None:
    decomp = commands.add_parser("decompress", help="write the frames of a .nvox archive as .vdb files")
    decomp.add_argument("archive", help="the .nvox archive")
    decomp.add_argument("-o", "--output", type=Path, required=True, help="folder for the frames")
    decomp.add_argument("--frames", help="frame numbers: 12, 10-20 or 1,5,9 (default: all)")
    decomp.add_argument("--grids", help="comma-separated grid names (default: all)")
    decomp.add_argument("--half", action="store_true", help="save float grids as half floats")
    decomp.add_argument("--format", choices=["vdb", "nvdb"], default="vdb",
                        help="vdb: one .vdb per frame; nvdb: one NanoVDB file per frame and float grid")
    decomp.add_argument("--device", default="auto")
    decomp.add_argument("--force", action="store_true", help="overwrite existing frames")
    decomp.add_argument("--resume", action="store_true",
                        help="keep the frames an interrupted run already wrote and write the others")
    decomp.add_argument("--workers", type=positive_int, metavar="N",
                        help="processes decoding chunks and frames (default: every core for large frames)")
    decomp.add_argument("--bbox", type=voxel_box, metavar="I0,J0,K0,I1,J1,K1",
                        help="write only the voxels in this box of voxel coordinates (inclusive), decoding only the "
                             "chunks it meets")
    decomp.add_argument("--quiet", action="store_true", help="no progress bar")
    decomp.set_defaults(run=cmd_decompress)


def _add_bench(commands: Any) -> None:
    bench = commands.add_parser("bench", help="rate-distortion of neuralvox against classic baselines")
    bench.add_argument("paths", nargs="+", help=".vdb files, folders or glob patterns of one sequence")
    bench.add_argument("--grids", help="comma-separated grid names (default: every float/vector grid)")
    bench.add_argument("--methods", help="comma-separated methods (default: all; see neuralvox.bench.METHODS)")
    bench.add_argument("--qualities", default="low,medium,high", help="neuralvox quality points")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--plot", type=Path, help="write the rate-distortion plot (PNG)")
    bench.add_argument("--json", type=Path, help="write the results as JSON")
    bench.add_argument("--force", action="store_true", help="overwrite an existing plot or JSON")
    bench.add_argument("--quiet", action="store_true", help="no progress bars")
    bench.set_defaults(run=cmd_bench)


def _add_render(commands: Any) -> None:
    render = commands.add_parser("render", help="PNG of a decoded grid, or original | decoded | error")
    render.add_argument("archive", help="the .nvox archive")
    render.add_argument("--frame", type=int, required=True, help="frame number")
    render.add_argument("--grid", default="density")
    render.add_argument("--compare", nargs="+", help="the source .vdb frames (files, folder or glob)")
    render.add_argument("--axis", choices=sorted(AXES), default="z", help="view axis")
    render.add_argument("-o", "--output", type=Path, default=Path("render.png"))
    render.add_argument("--force", action="store_true", help="overwrite an existing image")
    render.set_defaults(run=cmd_render)


def _add_sim(commands: Any) -> None:
    simulate = commands.add_parser("sim", help="simulate a fluid scenario and write .vdb frames")
    simulate.add_argument("scenario", help="plume, plumes or liquid")
    simulate.add_argument("-o", "--output", type=Path, required=True, help="folder for the frames")
    simulate.add_argument("--res", type=int, default=64, help="cells across the domain width")
    simulate.add_argument("--frames", type=int, default=24)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--fps", type=float, help="frames written per simulated second (default 24)")
    simulate.add_argument("--device", default="auto", help="auto, cpu or cuda")
    simulate.add_argument("--force", action="store_true", help="overwrite existing frames")
    simulate.set_defaults(run=cmd_sim)


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser("demo", help="the main job on the embedded default sim")
    demo.add_argument("-o", "--output", type=Path, default=DEMO_DIR, help="working folder (default: demo/)")
    demo.add_argument("--res", type=int, default=40, help="cells across the domain width")
    demo.add_argument("--frames", type=int, default=12)
    demo.add_argument("--grids", default="density,vel")
    demo.add_argument("--quality", choices=["low", "medium", "high"], default="medium")
    demo.add_argument("--device", default="auto")
    demo.set_defaults(run=cmd_demo)

def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `neuralvox` command; returns the exit code (2 for bad input)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    run: Callable[[argparse.Namespace], None] = args.run
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.formatwarning = lambda message, *a, **k: f"warning: {message}\n"
            run(args)
    except (UsageError, *USER_ERRORS) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # str(KeyError) adds quotes
        print(f"neuralvox: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuralvox: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
