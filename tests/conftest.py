"""Shared test helpers: data paths, the blob generators the test files share, markers, Warp volume lookups."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import warp as wp

from neuralvox.container import ArchiveReader, ArchiveWriter

ROOT = Path(__file__).resolve().parents[1]
BLENDER = ROOT.parent / "shared" / "data" / "blender_smoke_c42"  # 10 real Blender smoke frames, when beside us
BLENDER_FRAMES = sorted(BLENDER.glob("fluid_data_*.vdb"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"
needs_blender = pytest.mark.skipif(not BLENDER_FRAMES, reason="shared Blender cache not beside this checkout")


# ------------------------------------------------------------------------------------------- generators
def soft_blob(axis: np.ndarray, centre: tuple[float, float, float], spread: float,
              ripple: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian blob with a ripple on the block ``axis``^3, thresholded at 0.05: voxels (N, 3) int32 in canonical
    order and float32 values ``exp(-r^2 / spread) * (1 + a sin(fi i + phase) cos(fj j))``, ripple = (a, fi, phase,
    fj)."""
    i, j, k = np.meshgrid(axis, axis, axis, indexing="ij")
    r2 = (i - centre[0]) ** 2 + (j - centre[1]) ** 2 + (k - centre[2]) ** 2
    amplitude, fi, phase, fj = ripple
    density = np.exp(-r2 / spread) * (1 + amplitude * np.sin(fi * i + phase) * np.cos(fj * j))
    active = density > 0.05
    return np.stack([i[active], j[active], k[active]], axis=1).astype(np.int32), density[active].astype(np.float32)


def radial_blob(shift: float, size: int = 32, radius: float = 7.0) -> tuple[np.ndarray, np.ndarray]:
    """A soft blob with inner structure that moves with it, centred ``shift`` voxels along i from (12, 16, 16)."""
    grid = np.mgrid[0:size, 0:size, 0:size].reshape(3, -1).T
    local = grid - np.array([12.0 + shift, 16.0, 16.0])
    value = np.exp(-(np.linalg.norm(local, axis=1) / radius) ** 2) * (1 + 0.3 * np.sin(local[:, 0] / 1.7))
    keep = value > 0.05
    return grid[keep].astype(np.int32), value[keep].astype(np.float32)


def gaussian_pair(size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A thresholded sum of two random Gaussians on a ``size``^3 block, shifted off the origin: (ijk, values)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), axis=-1).astype(np.float32)
    values = np.zeros((size,) * 3, dtype=np.float32)
    for _ in range(2):
        centre = rng.uniform(0.3 * size, 0.7 * size, 3)
        values += np.exp(-((grid - centre) ** 2).sum(-1) / (2 * (0.2 * size) ** 2))
    ijk = np.argwhere(values > 0.05).astype(np.int32)
    return ijk + np.array([-7, 100, 3], dtype=np.int32), values[tuple(ijk.T)].astype(np.float32)


def ball_cells(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """All cells of a cube around the origin and their distances to it (voxel sets are carved from these)."""
    axis = np.arange(-radius, radius + 1)
    cells = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return cells, np.linalg.norm(cells, axis=1)


# ------------------------------------------------------------------------------------- crafted archives
def archive_table(path: Path) -> tuple[dict[str, Any], bytes]:
    """An archive's table of contents in version 1's JSON form ``{"header", "payloads": [[key, size, crc32]]}`` and
    its payload bytes end to end, whichever version wrote it."""
    with ArchiveReader(path) as reader:
        payloads = {key: reader.get(key) for key in reader}
        rows = [[key, len(data), zlib.crc32(data)] for key, data in payloads.items()]
        return {"header": reader.header, "payloads": rows}, b"".join(payloads.values())


def write_v1_archive(path: Path, toc: bytes, payloads: bytes) -> None:
    """A container version 1 archive (still read) of zlib'd JSON table ``toc`` and ``payloads``, with the checksum of
    ``toc`` recomputed: how the tests craft archives whose header or payload table lies."""
    with h5py.File(path, "w") as file:
        file.attrs["format"] = np.bytes_("neuralvox")
        file.attrs["format_version"] = np.int64(1)
        file.create_dataset("toc", data=np.frombuffer(toc, np.uint8)).attrs["crc32"] = np.uint32(zlib.crc32(toc))
        file.create_dataset("payloads", data=np.frombuffer(payloads, np.uint8), shape=(len(payloads),))


def write_current_archive(path: Path, table: dict[str, Any], payloads: bytes) -> None:
    """An archive of today's container version holding ``table``'s header and its payloads (cut from ``payloads``
    by the table's sizes, which must hold)."""
    with ArchiveWriter(path, force=True) as archive:
        archive.set_header(table["header"])
        offset = 0
        for key, size, _ in table["payloads"]:
            archive.put(key, payloads[offset : offset + size])
            offset += size


def crafted(source: Path, dest: Path, mutate: Callable[[dict[str, Any]], None], version: int = 1) -> Path:
    """A copy of ``source`` whose table of contents ``mutate`` changed (checksum recomputed): container version 1
    (JSON: any change, payload rows included), or today's (its packed header: header changes only)."""
    table, payloads = archive_table(source)
    mutate(table)
    if version == 1:
        write_v1_archive(dest, zlib.compress(json.dumps(table).encode()), payloads)
    else:
        write_current_archive(dest, table, payloads)
    return dest


# ---------------------------------------------------------------------------------------------- markers
def without_compiled(monkeypatch: pytest.MonkeyPatch, modules: tuple, run: Callable[[], Any]) -> Any:
    """``run()`` with each of ``modules``' compiled loops switched off: the numpy reference throughout."""
    with monkeypatch.context() as patch:
        for module in modules:
            patch.setattr(module, "compiled", None)
        return run()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` skip cleanly where torch sees no CUDA GPU."""
    cuda_items = [item for item in items if "cuda" in item.keywords]
    if not cuda_items:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
        for item in cuda_items:
            item.add_marker(skip)


# ------------------------------------------------------------------------------------------ Warp lookups
def lookup_volume(volume: wp.Volume, ijk: np.ndarray, dtype: type) -> np.ndarray:
    """The values a Warp kernel reads from ``volume`` at voxels ``ijk``."""
    @wp.kernel(enable_backward=False, module="unique")
    def lookup(volume: wp.uint64, ijk: wp.array(dtype=wp.vec3i), out: wp.array(dtype=dtype)):
        tid = wp.tid()
        out[tid] = wp.volume_lookup(volume, ijk[tid][0], ijk[tid][1], ijk[tid][2], dtype=dtype)

    out = wp.zeros(len(ijk), dtype=dtype, device=volume.device)
    wp.launch(lookup, dim=len(ijk), inputs=[volume.id, wp.array(ijk, dtype=wp.vec3i, device=volume.device), out],
              device=volume.device)
    return out.numpy()


@pytest.fixture
def warp_lookup() -> Callable[[wp.Volume, np.ndarray, type], np.ndarray]:
    """``lookup_volume``, for tests that read a Warp volume back."""
    return lookup_volume
