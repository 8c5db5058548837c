"""SparseGrid: one grid of one frame as flat arrays of active voxel coordinates and values."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

GRID_CLASSES = ("unknown", "level set", "fog volume", "staggered")
VECTOR_TYPES = ("vec3s", "vec3d")
VALUE_TYPES = ("float", "double", *VECTOR_TYPES)


class GridError(ValueError):
    """A grid's arrays or attributes are inconsistent."""


@dataclasses.dataclass
class SparseGrid:
    """Active voxels of one grid: ``ijk`` (N, 3) int32 index coordinates and ``values`` (N,) or (N, 3) float32.

    ``transform`` is the 4x4 index-to-world matrix (row-vector convention of OpenVDB: ``world = [i j k 1] @ T``).
    ``metadata`` holds the grid's user metadata (name, class, half-float flag and file statistics live in fields or
    are recomputed on write); ``metadata_types`` keeps the OpenVDB type name of each entry so a write reproduces it.
    """

    name: str
    ijk: np.ndarray
    values: np.ndarray
    grid_class: str = "unknown"
    value_type: str = "float"
    transform: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(4))
    background: float | tuple[float, float, float] = 0.0
    save_half: bool = False
    vector_type: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    metadata_types: dict[str, str] = dataclasses.field(default_factory=dict)
    tile_count: int = 0

    def __post_init__(self) -> None:
        self.ijk = np.ascontiguousarray(self.ijk)
        self.values = np.ascontiguousarray(self.values)
        self.transform = np.asarray(self.transform, dtype=np.float64)
        self.validate()

    @property
    def is_vector(self) -> bool:
        return self.value_type in VECTOR_TYPES

    @property
    def channels(self) -> int:
        return 3 if self.is_vector else 1

    @property
    def voxel_count(self) -> int:
        return int(self.ijk.shape[0])

    @property
    def voxel_size(self) -> np.ndarray:
        """Length of each index axis in world units."""
        return np.linalg.norm(self.transform[:3, :3], axis=1)

    def bbox(self) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """Inclusive index bounding box of the active voxels, or None for an empty grid."""
        if self.voxel_count == 0:
            return None
        lo = self.ijk.min(axis=0)
        hi = self.ijk.max(axis=0)
        return (tuple(int(v) for v in lo), tuple(int(v) for v in hi))

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """World positions of index coordinates (N, 3)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.transform[:3, :3] + self.transform[3, :3]

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Fractional index coordinates of world positions (N, 3)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        return (xyz - self.transform[3, :3]) @ np.linalg.inv(self.transform[:3, :3])

    def with_values(self, values: np.ndarray) -> SparseGrid:
        """A copy of this grid with the same topology and attributes and new values."""
        return dataclasses.replace(self, values=np.asarray(values, dtype=np.float32).reshape(self.values.shape))

    def sorted(self) -> SparseGrid:
        """A copy with voxels in canonical (i, j, k) lexicographic order."""
        order = np.lexsort((self.ijk[:, 2], self.ijk[:, 1], self.ijk[:, 0]))
        return dataclasses.replace(self, ijk=self.ijk[order], values=self.values[order])

    def validate(self) -> None:
        """Raise GridError naming the grid when shapes, dtypes or attributes do not fit together."""
        where = f"grid '{self.name}'"
        if self.value_type not in VALUE_TYPES:
            raise GridError(f"{where}: value type {self.value_type!r} is not one of {VALUE_TYPES}")
        if self.grid_class not in GRID_CLASSES:
            raise GridError(f"{where}: class {self.grid_class!r} is not one of {GRID_CLASSES}")
        if self.ijk.dtype != np.int32 or self.ijk.ndim != 2 or self.ijk.shape[1] != 3:
            raise GridError(f"{where}: ijk must be int32 of shape (N, 3), got {self.ijk.dtype} {self.ijk.shape}")
        want = (self.voxel_count, 3) if self.is_vector else (self.voxel_count,)
        if self.values.dtype != np.float32 or self.values.shape != want:
            got = f"{self.values.dtype} {self.values.shape}"
            raise GridError(f"{where}: values must be float32 of shape {want}, got {got}")
        if self.transform.shape != (4, 4):
            raise GridError(f"{where}: transform must be 4x4, got {self.transform.shape}")
