"""How predictable a sequence is from its previous frame: the PSNR of frame t+1 against frame t, as is and moved by
the best motion field found at each motion resolution.

    .venv/bin/python benchmarks/predictability.py SEQUENCE [--grid density] [--pairs 3] [--json out.json]

For ``--pairs`` consecutive frame pairs spread over the sequence, frame t (original values, dense over both frames'
bounding box) is warped onto frame t+1 by a displacement field with one 3-vector per ``stride``^3 voxels (trilinear
between them), fitted by gradient descent on the squared error, coarse to fine (strides 16, 8, 4, 2, 1; each starts
from the coarser one). PSNR over frame t+1's active voxels with its value range as the peak (DESIGN §6). It bounds
what motion compensation can predict: the codec's motion (stride 16, on latents) cannot beat the stride-16 column,
and a frame coded above the finest column's PSNR must carry the rest in its residual.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neuralvox.sequence import discover
from neuralvox.vdb import read_vdb

STRIDES = (16, 8, 4, 2, 1)
ITERATIONS = 150
LEARNING_RATE = 0.3  # voxels per Adam step


def dense(ijk: np.ndarray, values: np.ndarray, low: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    out = np.zeros(shape, np.float32)
    out[tuple((ijk - low).T)] = values
    return torch.from_numpy(out)


def warp(volume: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """``volume`` (X, Y, Z) sampled trilinearly at x - displacement(x), displacement (3, X, Y, Z) in voxels."""
    axes = [torch.arange(n, dtype=torch.float32) for n in volume.shape]
    source = torch.stack(torch.meshgrid(*axes, indexing="ij")) - displacement
    normalized = torch.stack([2 * source[a] / max(n - 1, 1) - 1 for a, n in enumerate(volume.shape)])
    grid = normalized.permute(1, 2, 3, 0).flip(-1)[None]  # grid_sample wants (z, y, x) order for (D, H, W) = (X, Y, Z)
    return F.grid_sample(volume[None, None], grid, mode="bilinear", align_corners=True)[0, 0]


def pair_predictability(first, second) -> dict[str, float]:
    low = np.minimum(first.ijk.min(0), second.ijk.min(0))
    shape = tuple(int(n) for n in np.maximum(first.ijk.max(0), second.ijk.max(0)) - low + 1)
    before, after = dense(first.ijk, first.values, low, shape), dense(second.ijk, second.values, low, shape)
    active = torch.zeros(shape, dtype=torch.bool)
    active[tuple((second.ijk - low).T)] = True
    peak = float(np.ptp(second.values))

    def psnr(prediction: torch.Tensor) -> float:
        rmse = float((prediction - after)[active].pow(2).mean().sqrt())
        return 20 * math.log10(peak / rmse) if rmse > 0 else math.inf

    result = {"voxels": int(active.sum()), "identity": psnr(before)}
    coarse = torch.zeros(3, *(math.ceil(n / STRIDES[0]) + 1 for n in shape))
    for stride in STRIDES:
        size = tuple(math.ceil(n / stride) + 1 for n in shape)
        coarse = F.interpolate(coarse[None], size=size, mode="trilinear", align_corners=True)[0].requires_grad_()
        optimizer = torch.optim.Adam([coarse], lr=LEARNING_RATE)
        for _ in range(ITERATIONS):
            displacement = F.interpolate(coarse[None], size=shape, mode="trilinear", align_corners=True)[0]
            loss = (warp(before, displacement) - after)[active].pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        coarse = coarse.detach()
        with torch.no_grad():
            displacement = F.interpolate(coarse[None], size=shape, mode="trilinear", align_corners=True)[0]
            result[f"stride {stride}"] = psnr(warp(before, displacement))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--grid", default="density")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"machine: {platform.node()} ({platform.machine()}), date: {datetime.date.today()}, device: cpu")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    frames = discover(args.paths).frames
    picks = dict.fromkeys(np.linspace(0, len(frames) - 2, args.pairs).round().astype(int).tolist())
    columns = ["identity", *(f"stride {s}" for s in STRIDES)]
    print(f"| frames | voxels | {' | '.join(columns)} |")
    print("|---|---:|" + "---:|" * len(columns))
    rows = []
    for index in picks:
        first, second = (read_vdb(frames[i].path, [args.grid]).grids[args.grid].sorted() for i in (index, index + 1))
        row = {"frames": f"{frames[index].number}->{frames[index + 1].number}", **pair_predictability(first, second)}
        rows.append(row)
        cells = " | ".join(f"{row[c]:.2f}" for c in columns)
        print(f"| {row['frames']} | {row['voxels']:,} | {cells} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
