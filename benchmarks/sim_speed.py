"""Simulation speed: seconds per frame and active voxels per frame of each scenario, per resolution and device.

    PYTHONPATH=. python benchmarks/sim_speed.py                              # res 64, 24 frames, cpu (+ cuda if there)
    PYTHONPATH=. python benchmarks/sim_speed.py --res 64 128 --frames 12 --threads 1
    PYTHONPATH=. python benchmarks/sim_speed.py --scenarios plume --res 256 --devices cuda

A frame is 1/24 s of simulated time: CFL-limited substeps, then the export to SparseGrids (no file writing), as
``neuralvox.sim.generate`` does it. Active voxels are those of the main grid (density, or the liquid's surface band),
averaged over the frames. Prints a markdown table headed by the machine, the date and the command.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import torch

from neuralvox.sim import SCENARIOS, make_scenario


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _machine(devices: list[str]) -> str:
    parts = [platform.platform(), f"{_cpu_name()} ({os.cpu_count()} cores)", f"torch {torch.__version__}"]
    parts.append(f"{torch.get_num_threads()} torch threads")
    if "cuda" in devices:
        parts.append(torch.cuda.get_device_name())
    return ", ".join(parts)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(scenario: str, res: int, frames: int, device: str) -> dict[str, float]:
    """Mean seconds per frame, substeps per frame, pressure iterations and active voxels per frame."""
    sim = make_scenario(scenario, res, seed=0, device=device)
    main_grid = "surface" if scenario == "liquid" else "density"
    seconds, voxels, iterations = 0.0, 0, 0
    for _ in range(frames):
        _sync(device)
        start = time.perf_counter()
        sim.advance(sim.frame_time)
        grids = sim.grids()
        _sync(device)
        seconds += time.perf_counter() - start
        voxels += next(g.voxel_count for g in grids if g.name == main_grid)
        iterations += sim.last_projection.iterations
    return {
        "seconds": seconds / frames,
        "substeps": sim.steps / frames,
        "iterations": iterations / frames,
        "voxels": voxels / frames,
        "total": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--res", nargs="+", type=int, default=[64])
    parser.add_argument("--frames", type=int, default=24)
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--devices", nargs="+", default=default_devices, choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"Machine: {_machine(args.devices)}  ")
    print(f"Date: {datetime.date.today().isoformat()}  ")
    print(f"Command: `{' '.join(['python', *sys.argv])}`\n")
    print("| scenario | res | cells | device | s/frame | total s | substeps/frame | CG iters | active voxels/frame |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario in args.scenarios:
        for res in args.res:
            for device in args.devices:
                shape = "x".join(str(n) for n in make_scenario(scenario, res).domain.shape)
                row = measure(scenario, res, args.frames, device)
                print(
                    f"| {scenario} | {res} | {shape} | {device} | {row['seconds']:.2f} | {row['total']:.1f} | "
                    f"{row['substeps']:.1f} | {row['iterations']:.1f} | {row['voxels']:,.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
