"""Rate and distortion of the neural value codec per quality preset, on real Blender grids and a synthetic blob.

Bits per active voxel (bpv) are split into latents, decoder weights and the JSON header; topology is not counted.
PSNR uses each frame's own value range as peak. With --shared-decoder, later frames of a grid reuse the decoder
of its first listed frame (weights sent once), as a group of frames would.

Run: PYTHONPATH=. python benchmarks/value_codec.py [--frames 1 5 10] [--grids density temperature velocity]
         [--qualities low medium high] [--blob-voxels 200000] [--shared-decoder] [--device auto]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from neuralvox.codec.values import encode_values
from neuralvox.device import resolve_device

BLENDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "blender_smoke_c42"


def smooth_blob(voxels: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A sum of five Gaussians thresholded at 1e-3 on a cube sized to hold about ``voxels`` active voxels."""
    rng = np.random.default_rng(seed)
    side = max(8, round((voxels / 0.76) ** (1 / 3)))  # the blob's support fills about 76% of its cube
    axis = np.arange(side, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    values = np.zeros((side,) * 3, dtype=np.float32)
    for _ in range(5):
        centre = rng.uniform(0.35 * side, 0.65 * side, 3)
        sigma = rng.uniform(0.08 * side, 0.15 * side)
        values += rng.uniform(0.3, 1.0) * np.exp(-((grid - centre) ** 2).sum(-1) / (2 * sigma**2))
    ijk = np.argwhere(values > 1e-3).astype(np.int32)
    return ijk, values[tuple(ijk.T)].astype(np.float32)


def blender_grid(frame: int, name: str) -> tuple[np.ndarray, np.ndarray, str]:
    from neuralvox.vdb import read_vdb

    grid = read_vdb(BLENDER / f"fluid_data_{frame:04d}.vdb", grids=[name]).grids[name].sorted()
    return grid.ijk, grid.values, grid.grid_class


def row(label: str, ijk: np.ndarray, values: np.ndarray, grid_class: str, quality: str, device: str,
        shared=None) -> tuple[list[str], object]:
    torch.manual_seed(0)
    encoded = encode_values(ijk, values, grid_class=grid_class, quality=quality, device=device, shared_decoder=shared)
    voxels = len(values)
    latent_bytes = len(encoded.streams.get("latents", b""))
    weight_bytes = len(encoded.streams.get("weights", b""))
    header_bytes = len(json.dumps(encoded.header.to_json(), separators=(",", ":")))
    total = latent_bytes + weight_bytes + header_bytes
    stats = encoded.stats
    cells = [label, f"{voxels}", quality + (" (shared)" if shared is not None else ""), f"{stats.psnr:.2f}",
             f"{stats.max_abs_error:.4g}", f"{8 * latent_bytes / voxels:.3f}", f"{8 * weight_bytes / voxels:.3f}",
             f"{8 * header_bytes / voxels:.3f}", f"{8 * total / voxels:.3f}", f"{total}", f"{stats.fit_seconds:.1f}"]
    return cells, encoded.decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="*", default=[1, 5, 10])
    parser.add_argument("--grids", nargs="*", default=["density", "temperature", "velocity"])
    parser.add_argument("--qualities", nargs="+", default=["low", "medium", "high"])
    parser.add_argument("--blob-voxels", type=int, default=200_000, help="0 skips the synthetic blob")
    parser.add_argument("--shared-decoder", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)

    print(f"machine: {platform.node()} {platform.platform()}, {torch.get_num_threads()} torch threads, "
          f"device {device}{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"command: {' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}\n")
    print("| data | voxels | quality | PSNR dB | max err | bpv latents | bpv weights | bpv header | bpv total "
          "| bytes | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    grids = {(name, frame): blender_grid(frame, name) for name in args.grids for frame in args.frames}
    for name in args.grids:
        for quality in args.qualities:
            shared = None
            for frame in args.frames:
                ijk, values, grid_class = grids[name, frame]
                cells, decoder = row(f"blender {name} f{frame}", ijk, values, grid_class, quality, str(device),
                                     shared)
                if args.shared_decoder and shared is None:
                    shared = decoder
                print("| " + " | ".join(cells) + " |", flush=True)
    if args.blob_voxels:
        ijk, values = smooth_blob(args.blob_voxels)
        for quality in args.qualities:
            cells, _ = row("synthetic blob", ijk, values, "fog volume", quality, str(device))
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
