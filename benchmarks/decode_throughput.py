"""Value decode throughput (active voxels/s): torch reference vs fused Warp kernel per device, next to OpenVDB reading
the same frame from a .vdb file in the same run.

The decoder is a quality preset's model fitted on a small grid; each big frame gets latents of the right count on its
own lattices (random integers: throughput does not depend on fit quality). Timed: ``decode_values`` from streams and
topology to a numpy array (entropy decode of the latents, lattice setup, evaluation), best of ``--repeat``; for Warp
also the kernel alone on voxels already on the device.

Run: .venv/bin/python benchmarks/decode_throughput.py [--sizes 1000000 10000000] [--quality medium] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import warp as wp

from neuralvox.bench.timing import best_of
from neuralvox.codec.header import NeuralValueHeader
from neuralvox.codec.latent_codecs import compress_latents, stream_models
from neuralvox.codec.presets import quality_preset
from neuralvox.codec.values import decode_values, encode_values, fused_decoder
from neuralvox.grid import SparseGrid
from neuralvox.model.geometry import lattice_points
from neuralvox.vdb import binding_available, read_vdb, write_vdb


def smoke_like(voxels: int, seed: int = 0) -> np.ndarray:
    """About ``voxels`` active voxels (canonical order) where smooth random noise exceeds a threshold, filling ~30%
    of a cube: irregular sparse topology with partly filled leaves, like a smoke frame."""
    side = int(round((voxels / 0.3) ** (1 / 3)))
    generator = torch.Generator().manual_seed(seed)
    cells = side // 8 + 2
    coarse = torch.rand((1, 1, cells, cells, cells), generator=generator)
    noise = torch.nn.functional.interpolate(coarse, size=(side, side, side), mode="trilinear")[0, 0]
    threshold = torch.quantile(noise.flatten()[:: max(1, noise.numel() // 1_000_000)], 1 - voxels / noise.numel())
    return torch.nonzero(noise > threshold).to(torch.int32).numpy()


def small_blob() -> tuple[np.ndarray, np.ndarray]:
    axis = np.arange(24)
    i, j, k = np.meshgrid(axis, axis, axis, indexing="ij")
    density = np.exp(-((i - 11) ** 2 + (j - 12) ** 2 + (k - 11) ** 2) / 40.0) * (1 + 0.3 * np.sin(0.6 * i))
    active = density > 0.05
    return np.stack([i[active], j[active], k[active]], axis=1).astype(np.int32), density[active].astype(np.float32)


def big_frame_streams(ijk: np.ndarray, header: NeuralValueHeader, streams: dict[str, bytes],
                      steps: list[np.ndarray], seed: int = 0) -> tuple[NeuralValueHeader, dict[str, bytes]]:
    """The small fit's header and weights with random latents for the lattices of ``ijk``."""
    rng = np.random.default_rng(seed)
    voxels = torch.from_numpy(ijk)
    latents = [rng.laplace(0.0, 3.0, size=(len(lattice_points(voxels, stride)), channels)).round().astype(np.int32)
               for stride, channels in header.model.levels]
    return dataclasses.replace(header, voxels=len(ijk)), {**streams, "latents": compress_latents(latents, steps,
                                                                                          stream_models(header).latents)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--quality", default="medium")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fit-iterations", type=int, default=200)
    args = parser.parse_args()
    wp.config.log_level = wp.LOG_WARNING

    preset = dataclasses.replace(quality_preset(args.quality), iterations=args.fit_iterations, finetune_iterations=20)
    small = encode_values(*small_blob(), grid_class="fog volume", quality=preset, device="cpu")
    header = small.header
    print(f"machine: {platform.node()} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"torch threads), date: {datetime.date.today()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    model = header.model
    print(f"model: quality {args.quality}: levels {[list(level) for level in model.levels]}, hidden "
          f"{list(model.hidden)}, frequencies {model.frequencies}, {model.activation}")
    print("| device | active voxels | decoder | seconds | Mvox/s |")
    print("|---|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            ijk = smoke_like(size)
            n = len(ijk)
            big_header, streams = big_frame_streams(ijk, header, small.streams, small.state.steps)
            for device in args.devices:
                for backend in ("torch", "warp"):
                    decode = functools.partial(decode_values, ijk, big_header, streams, device=device, backend=backend)
                    values = decode()  # warm-up: kernel compile, allocator
                    seconds = best_of(args.repeat, decode)
                    print(f"| {device} | {n:,} | {backend} decode_values | {seconds:.3f} | {n / seconds / 1e6:.2f} |",
                          flush=True)
                decoder = fused_decoder(ijk, big_header, streams, torch.device(device))
                voxels = wp.array(ijk, dtype=wp.vec3i, device=decoder.device)
                decoder.decode_warp(voxels)

                def kernel_only(decoder=decoder, voxels=voxels) -> None:
                    decoder.decode_warp(voxels)
                    wp.synchronize_device(decoder.device)

                seconds = best_of(args.repeat, kernel_only)
                print(f"| {device} | {n:,} | warp kernel only | {seconds:.3f} | {n / seconds / 1e6:.2f} |", flush=True)
            if not binding_available():
                print(f"| cpu | {n:,} | OpenVDB read_vdb: binding not built here | | |")
                continue
            path = Path(tmp) / "frame.vdb"
            write_vdb(path, [SparseGrid(name="density", ijk=ijk, values=values.reshape(-1),
                                        grid_class="fog volume")], force=True)
            seconds = best_of(args.repeat, lambda p=path: read_vdb(p))
            print(f"| cpu | {n:,} | OpenVDB read_vdb (float32, blosc, {path.stat().st_size / 1e6:.1f} MB) | "
                  f"{seconds:.3f} | {n / seconds / 1e6:.2f} |", flush=True)


if __name__ == "__main__":
    main()
