"""Read and write OpenVDB (.vdb) files and export NanoVDB (.nvdb) through the compiled binding."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuralvox.atomic import atomic_output
from neuralvox.grid import VALUE_TYPES, SparseGrid

COMPRESSIONS = ("blosc", "zip", "none")
MIN_VOXEL_LIMIT = 2**24
VOXELS_PER_FILE_BYTE = 64
_STAT_KEYS = {"file_bbox_min", "file_bbox_max", "file_mem_bytes", "file_voxel_count", "file_compression"}


class VdbError(Exception):
    """A .vdb file cannot be read or written; the message names the file and the problem."""


def binding():
    """The compiled OpenVDB binding (neuralvox._vdb); VdbError when it is not built."""
    try:
        from neuralvox import _vdb
    except ImportError as exc:  # the codec and kernels run without it, e.g. on a GPU box with no libopenvdb
        raise VdbError(
            f"the OpenVDB binding neuralvox._vdb is not built ({exc}); install with `make setup` (see README)"
        ) from None
    return _vdb


def binding_available() -> bool:
    """True when the compiled OpenVDB binding imports."""
    try:
        binding()
    except VdbError:
        return False
    return True


@dataclasses.dataclass
class GridInfo:
    """What a .vdb file says of one grid without reading its voxels."""

    name: str
    value_type: str
    grid_class: str
    supported: bool


@dataclasses.dataclass
class VdbFile:
    """The readable grids of one .vdb file, its file-level metadata and the grids it skipped (name, reason)."""

    path: Path
    grids: dict[str, SparseGrid]
    metadata: dict[str, Any]
    metadata_types: dict[str, str]
    skipped: list[tuple[str, str]]


def _checked_input(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise VdbError(f"{path}: no such file")
    if not path.is_file():
        raise VdbError(f"{path}: not a regular file")
    return path


def default_max_voxels(path: str | os.PathLike) -> int:
    """Most active voxels read_vdb takes from one grid of this file: max(2^24, 64 per byte of the file).

    Real files stay far below it (Blender smoke: under 1 voxel per byte, tiles included); a flipped bit in a tile or
    node mask can claim billions of voxels from a few kilobytes.
    """
    return max(MIN_VOXEL_LIMIT, VOXELS_PER_FILE_BYTE * Path(path).stat().st_size)


def list_grids(path: str | os.PathLike) -> list[GridInfo]:
    """Names, value types and classes of every grid in a file, from its header alone."""
    path = _checked_input(path)
    try:
        rows = binding().list_grids(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise VdbError(f"{path}: {exc}") from None
    return [GridInfo(name, vtype, gclass, vtype in VALUE_TYPES) for name, vtype, gclass in rows]


def read_vdb(
    path: str | os.PathLike,
    grids: Iterable[str] | None = None,
    *,
    voxelize_tiles: bool = True,
    warn_skipped: bool = True,
    max_voxels: int | None = None,
) -> VdbFile:
    """Read float, double, vec3s and vec3d grids of a .vdb file as SparseGrids.

    Active tiles become voxels when ``voxelize_tiles`` (the default; each grid's ``tile_count`` says how many tiles the
    file held); otherwise tiles are left out and only leaf voxels are returned. Grids of other types (int, bool,
    points) and grids OpenVDB cannot decode are skipped with a warning naming them, never failing the whole file.
    Asking by name for a grid the file lacks raises VdbError, and so do a grid whose data is damaged and one with more
    active voxels (tiles included when voxelized) than ``max_voxels`` (default: ``default_max_voxels(path)``).
    """
    path = _checked_input(path)
    wanted = None if grids is None else list(grids)
    limit = default_max_voxels(path) if max_voxels is None else max_voxels
    try:
        raw_grids, file_meta, file_meta_types, skipped = binding().read(str(path), wanted, voxelize_tiles, limit)
    except (RuntimeError, ValueError, OSError, KeyError) as exc:
        raise VdbError(f"{path}: {exc}") from None
    if wanted is not None:
        missing = sorted(set(wanted) - {g["name"] for g in raw_grids} - {name for name, _ in skipped})
        if missing:
            raise VdbError(f"{path}: no grid named {', '.join(missing)}")
    if skipped and warn_skipped:
        listed = "; ".join(f"{name} ({reason})" for name, reason in skipped)
        warnings.warn(f"{path}: skipped grids: {listed}", stacklevel=2)
    out = {g["name"]: _grid_from_raw(g) for g in raw_grids}
    return VdbFile(path, out, dict(file_meta), dict(file_meta_types), [tuple(s) for s in skipped])


def _grid_from_raw(raw: dict[str, Any]) -> SparseGrid:
    meta = {k: v for k, v in raw["metadata"].items() if k not in _STAT_KEYS}
    types = {k: v for k, v in raw["metadata_types"].items() if k in meta}
    background = raw["background"]
    return SparseGrid(
        name=raw["name"],
        ijk=raw["ijk"],
        values=raw["values"],
        grid_class=raw["grid_class"],
        value_type=raw["value_type"],
        transform=raw["transform"],
        background=tuple(background) if isinstance(background, (list, tuple)) else float(background),
        save_half=bool(raw["save_half"]),
        vector_type=raw["vector_type"],
        metadata=meta,
        metadata_types=types,
        tile_count=int(raw["tile_count"]),
    )


def write_vdb(
    path: str | os.PathLike,
    grids: Sequence[SparseGrid],
    *,
    metadata: dict[str, Any] | None = None,
    metadata_types: dict[str, str] | None = None,
    compression: str = "blosc",
    force: bool = False,
) -> Path:
    """Write grids to a .vdb file atomically (temporary file, then rename); refuse an existing file unless ``force``."""
    path = Path(path)
    if compression not in COMPRESSIONS:
        raise VdbError(f"{path}: compression {compression!r} is not one of {COMPRESSIONS}")
    names = [g.name for g in grids]
    if len(set(names)) != len(names):
        raise VdbError(f"{path}: grid names repeat: {names}")
    for grid in grids:
        grid.validate()
    raw = [grid_to_raw(g) for g in grids]
    with atomic_output(path, force=force) as tmp:
        try:
            binding().write(str(tmp), raw, dict(metadata or {}), dict(metadata_types or {}), compression)
        except (RuntimeError, ValueError, OSError, TypeError) as exc:
            raise VdbError(f"{path}: {exc}") from None
    return path


def grid_to_raw(grid: SparseGrid) -> dict[str, Any]:
    """A grid in the form the binding takes: contiguous arrays, the background as float or 3 floats."""
    background = grid.background
    if grid.is_vector:
        background = tuple(float(v) for v in np.broadcast_to(np.asarray(background, dtype=np.float64), (3,)))
    else:
        background = float(np.asarray(background).reshape(-1)[0])
    return {
        "name": grid.name,
        "ijk": np.ascontiguousarray(grid.ijk, dtype=np.int32),
        "values": np.ascontiguousarray(grid.values, dtype=np.float32),
        "grid_class": grid.grid_class,
        "value_type": grid.value_type,
        "transform": np.ascontiguousarray(grid.transform, dtype=np.float64),
        "background": background,
        "save_half": bool(grid.save_half),
        "vector_type": grid.vector_type,
        "metadata": dict(grid.metadata),
        "metadata_types": dict(grid.metadata_types),
    }


def write_nvdb(path: str | os.PathLike, grid: SparseGrid, *, force: bool = False) -> Path:
    """Export one float grid to a NanoVDB (.nvdb) file atomically."""
    path = Path(path)
    if grid.is_vector:
        raise VdbError(f"{path}: NanoVDB export takes float grids; '{grid.name}' is {grid.value_type}")
    with atomic_output(path, force=force) as tmp:
        try:
            binding().write_nvdb(str(tmp), grid_to_raw(grid))
        except (RuntimeError, ValueError, OSError) as exc:
            raise VdbError(f"{path}: {exc}") from None
    return path



def grid_stats(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every grid of a file, any value type: active voxels (tiles counted as their voxels), active tiles, leaves, bbox,
    class, type, voxel size, half-float flag and bytes on disk; a grid OpenVDB cannot decode carries an "error"."""
    path = _checked_input(path)
    try:
        return [dict(row) for row in binding().grid_stats(str(path))]
    except (RuntimeError, ValueError, OSError) as exc:
        raise VdbError(f"{path}: {exc}") from None


def grid_bytes(path: str | os.PathLike) -> dict[str, int]:
    """Bytes each grid occupies in the file as stored (its share of the user's disk), read from the header alone."""
    path = _checked_input(path)
    try:
        return dict(binding().grid_bytes(str(path)))
    except (RuntimeError, ValueError, OSError) as exc:
        raise VdbError(f"{path}: {exc}") from None
