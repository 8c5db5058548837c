"""GPU throughput and peak GPU memory: the neural base's fit (encode) and decode at 1M/10M/50M active voxels.

Encode: ``encode_values`` of a synthetic turbulent frame (``neuralvox.sim.turbulence``) on the device at the
``low`` preset with ``--iterations`` fit steps (throughput = voxels x steps / s is what a longer fit scales by).
Decode: ``decode_values`` of that fit, torch and fused Warp backends, best of 3. Peak memory is
``torch.cuda.max_memory_allocated`` (torch's allocator: Warp's own allocations are not in it) per step.

Run: python benchmarks/gpu_throughput.py [--sizes 1000000 10000000 50000000] [--iterations 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import time

import torch

from neuralvox.codec.presets import quality_preset
from neuralvox.codec.values import decode_values, encode_values
from neuralvox.sim.turbulence import turbulent_frame


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_gib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000, 50_000_000])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor()
    print(f"# {name}, {datetime.date.today()}, torch {torch.__version__}", flush=True)
    quality = dataclasses.replace(quality_preset("low"), iterations=args.iterations, finetune_iterations=0)
    for size in args.sizes:
        grid = turbulent_frame(size, seed=1).sorted()
        row: dict[str, object] = {"voxels": grid.voxel_count, "device": args.device, "iterations": args.iterations}
        try:
            _reset_peak(args.device)
            start = time.perf_counter()
            fitted = encode_values(grid.ijk, grid.values, grid_class="fog volume", quality=quality,
                                   device=args.device)
            _sync(args.device)
            seconds = time.perf_counter() - start
            row.update(encode_s=round(seconds, 2), encode_mvox_s=round(grid.voxel_count / seconds / 1e6, 3),
                       encode_psnr=round(fitted.stats.psnr, 2),
                       encode_peak_gib=_peak_gib(args.device))
            for backend in ("torch", "warp"):
                _reset_peak(args.device)
                decode_values(grid.ijk, fitted.header, fitted.streams, device=args.device, backend=backend)
                best = float("inf")
                for _ in range(3):
                    _sync(args.device)
                    start = time.perf_counter()
                    decode_values(grid.ijk, fitted.header, fitted.streams, device=args.device, backend=backend)
                    _sync(args.device)
                    best = min(best, time.perf_counter() - start)
                row[f"decode_{backend}_mvox_s"] = round(grid.voxel_count / best / 1e6, 2)
                row[f"decode_{backend}_peak_gib"] = _peak_gib(args.device)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # report what ran, then the failure
            row["error"] = str(exc).splitlines()[0][:200]
        print(json.dumps(row), flush=True)
        del grid


if __name__ == "__main__":
    main()
