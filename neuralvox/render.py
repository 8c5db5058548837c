"""Preview images of sparse grids: absorption projections and original | decoded | error panels as PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuralvox.atomic import atomic_output
from neuralvox.grid import SparseGrid
from neuralvox.runtime import require

AXES = {"x": 0, "y": 1, "z": 2}


def _image_plane(view_axis: int) -> tuple[int, int]:
    """(column axis, row axis) of the image for a view along ``view_axis``; y stays up when it is in the image."""
    rest = [a for a in range(3) if a != view_axis]
    return (rest[0], rest[1]) if 1 in rest and rest[1] == 1 else (rest[1], rest[0])


def project(grid: SparseGrid, *, axis: str = "z", bbox: tuple[np.ndarray, np.ndarray] | None = None,
            values: np.ndarray | None = None, reduce: str = "sum") -> np.ndarray:
    """Sum (or max) of |values| along an index axis over ``bbox`` (defaults to the grid's): a 2-D float image."""
    view = AXES[axis]
    col, row = _image_plane(view)
    lo, hi = bbox if bbox is not None else (grid.ijk.min(axis=0), grid.ijk.max(axis=0))
    image = np.zeros((hi[row] - lo[row] + 1, hi[col] - lo[col] + 1), dtype=np.float64)
    data = grid.values if values is None else values
    magnitude = np.abs(data) if data.ndim == 1 else np.linalg.norm(data, axis=1)
    rows = hi[row] - grid.ijk[:, row]  # row 0 at the top
    cols = grid.ijk[:, col] - lo[col]
    (np.add if reduce == "sum" else np.maximum).at(image, (rows, cols), magnitude)
    return image


def absorption(image: np.ndarray, depth_scale: float) -> np.ndarray:
    """1 - transmittance of a column-summed density image (what a viewer sees in front of a light background)."""
    return 1.0 - np.exp(-depth_scale * image)


def depth_scale(image: np.ndarray, typical_depth: float = 2.5) -> float:
    """Scale that gives the densest columns (99th percentile) an optical depth of ``typical_depth``."""
    filled = image[image > 0]
    return typical_depth / float(np.percentile(filled, 99)) if filled.size else 1.0


def _union_bbox(grids: Sequence[SparseGrid]) -> tuple[np.ndarray, np.ndarray]:
    lows = [g.ijk.min(axis=0) for g in grids if g.voxel_count]
    highs = [g.ijk.max(axis=0) for g in grids if g.voxel_count]
    if not lows:
        raise ValueError("nothing to render: the grids have no active voxels")
    return np.min(lows, axis=0), np.max(highs, axis=0)


def render_grid_png(path: str | os.PathLike, grid: SparseGrid, *, axis: str = "z", title: str | None = None,
                    force: bool = False) -> Path:
    """One grid as a PNG: absorption projection for fog volumes, |value| max projection otherwise."""
    plt = _pyplot()

    bbox = _union_bbox([grid])
    fig, ax = plt.subplots(figsize=(4, 4), dpi=120)
    shown = (grid.values < 0).astype(np.float32) if grid.grid_class == "level set" else None
    _draw(ax, grid, bbox, axis, depth_scale(project(grid, axis=axis, bbox=bbox, values=shown)))
    ax.set_title(title or grid.name)
    return _save(fig, Path(path), force)


def render_comparison_png(path: str | os.PathLike, original: SparseGrid, decoded: SparseGrid, *, axis: str = "z",
                          title: str = "", force: bool = False) -> Path:
    """original | decoded | per-voxel max |error| heat map, side by side, as a PNG."""
    plt = _pyplot()

    original, decoded = original.sorted(), decoded.sorted()
    if not np.array_equal(original.ijk, decoded.ijk):
        raise ValueError(f"grid '{original.name}': original and decoded voxels differ; cannot compare")
    bbox = _union_bbox([original])
    fig, axes = plt.subplots(1, 3, figsize=(11, 4), dpi=120)
    scale = depth_scale(project(original, axis=axis, bbox=bbox))
    _draw(axes[0], original, bbox, axis, scale)
    axes[0].set_title("original")
    _draw(axes[1], decoded, bbox, axis, scale)
    axes[1].set_title("decoded")
    error = decoded.values.astype(np.float64) - original.values
    error_image = project(original, axis=axis, bbox=bbox, values=error, reduce="max")
    shown = axes[2].imshow(error_image, cmap="inferno")
    axes[2].set_title("max |error| along the view")
    fig.colorbar(shown, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or original.name)
    return _save(fig, Path(path), force)


def _draw(ax, grid: SparseGrid, bbox, axis: str, scale: float) -> None:
    if grid.grid_class == "level set":  # thickness of the inside (phi < 0) along the view, as a silhouette
        inside = (grid.values < 0).astype(np.float32)
        image = absorption(project(grid, axis=axis, bbox=bbox, values=inside), scale)
        ax.imshow(image, cmap="Blues", vmin=0, vmax=1)
    elif grid.grid_class == "fog volume" and not grid.is_vector:
        image = absorption(project(grid, axis=axis, bbox=bbox), scale)
        ax.imshow(image, cmap="Greys", vmin=0, vmax=1)
    else:
        ax.imshow(project(grid, axis=axis, bbox=bbox, reduce="max"), cmap="viridis")
    ax.set_xticks([])
    ax.set_yticks([])


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (the ``sim`` extra provides matplotlib)."""
    require("matplotlib", "sim", "rendering a PNG").use("Agg")
    return require("matplotlib.pyplot", "sim", "rendering a PNG")


def _save(fig, path: Path, force: bool) -> Path:
    plt = _pyplot()

    with atomic_output(path, force=force) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return path
