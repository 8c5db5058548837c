"""Lattice geometry, in one place: row-major keys of coordinates, row lookup by coordinate, the 8 corners of a cell
and their trilinear weights, and the lattice points a voxel set needs. Used by the latent lattices
(``model/lattice.py``), the motion lattice (``model/motion.py``), random-access sampling (``kernels/sample.py``) and
the fused Warp kernel's host side (``kernels/fused.py``)."""

from __future__ import annotations

import torch

CORNER_OFFSETS = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=torch.int64)
"""The 8 corners of a lattice cell, corner ``4a + 2b + c`` at offset (a, b, c): the order every weight table uses."""

_DENSE_KEYS = 1 << 24  # keys below this bound (or 4x their count) are deduplicated with a mask instead of a sort


def lattice_points(ijk: torch.Tensor, stride: int) -> torch.Tensor:
    """Coordinates (M, 3) int64, in canonical (i, j, k) order, of the lattice points of ``stride`` (a power of two)
    that voxels ``ijk`` (N, 3) interpolate from with non-zero weight.

    The same rows as ``build_lattice(ijk, stride).coords``, found without per-voxel corner tables: voxels are first
    reduced to distinct (cell, axes with a non-zero in-cell offset) pairs, which share their corners.
    """
    if stride < 1 or stride & (stride - 1):
        raise ValueError(f"lattice stride must be a power of two, got {stride}")
    if ijk.shape[0] == 0:
        return torch.zeros((0, 3), dtype=torch.int64, device=ijk.device)
    shift = stride.bit_length() - 1
    i, j, k = ijk.T.contiguous().to(torch.int32)
    cells = [(axis >> shift) for axis in (i, j, k)]
    lo = [int(axis.min()) for axis in cells]
    extent = [int(axis.max()) - low + 2 for axis, low in zip(cells, lo, strict=True)]
    cell_count = checked_count(extent)
    cell_keys = linear_keys(*(axis - low for axis, low in zip(cells, lo, strict=True)), extent)
    inside = [((axis & (stride - 1)) != 0).to(torch.int64) for axis in (i, j, k)]
    corner_bits = inside[0] * 4 + inside[1] * 2 + inside[2]
    pairs = unique_keys(cell_keys * 8 + corner_bits, 8 * cell_count)
    cell_keys, corner_bits = pairs >> 3, pairs & 7
    # corner 4a + 2b + c has non-zero weight where the voxel's offset is non-zero on every axis the corner moves along
    corner_keys = [cell_keys[(corner_bits & corner) == corner] + linear_keys(*offset, extent)
                   for corner, offset in enumerate(CORNER_OFFSETS.tolist())]
    return unlinear_keys(unique_keys(torch.cat(corner_keys), cell_count), extent) + torch.tensor(lo, device=ijk.device)


def unique_keys(keys: torch.Tensor, bound: int) -> torch.Tensor:
    """Distinct values of non-negative integer ``keys`` below ``bound``, sorted."""
    if bound <= max(_DENSE_KEYS, 4 * keys.shape[0]):
        mask = torch.zeros(bound, dtype=torch.bool, device=keys.device)
        mask[keys] = True
        return mask.nonzero().squeeze(1)
    return torch.unique(keys, sorted=True)


def find_rows(sorted_coords: torch.Tensor, queries: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Row in ``sorted_coords`` (M, 3) (distinct, (i, j, k) order) of each query coordinate (K, 3), or -1: (K,).

    With ``offsets`` (O, 3), the rows of every query plus every offset: (K, O).
    """
    single = offsets is None
    queries = queries.to(torch.int64)
    sorted_coords = sorted_coords.to(torch.int64)
    offsets = torch.zeros((1, 3), dtype=torch.int64) if single else offsets.to(torch.int64)
    offsets = offsets.to(queries.device)
    shape = (queries.shape[0], offsets.shape[0])
    if sorted_coords.shape[0] == 0 or queries.shape[0] == 0:
        rows = torch.full(shape, -1, dtype=torch.int64, device=queries.device)
    else:
        lo = torch.minimum(sorted_coords.amin(dim=0), queries.amin(dim=0) + offsets.amin(dim=0)).tolist()
        hi = torch.maximum(sorted_coords.amax(dim=0), queries.amax(dim=0) + offsets.amax(dim=0)).tolist()
        extent = [b - a + 1 for a, b in zip(lo, hi, strict=True)]
        checked_count(extent)
        own_keys = linear_keys(*(sorted_coords - torch.tensor(lo, device=queries.device)).T, extent)
        keys = (linear_keys(*(queries - torch.tensor(lo, device=queries.device)).T, extent).unsqueeze(1)
                + linear_keys(*offsets.T, extent).unsqueeze(0)).flatten()
        position = torch.searchsorted(own_keys, keys).clamp(max=sorted_coords.shape[0] - 1)
        rows = torch.where(own_keys[position] == keys, position, -1).reshape(shape)
    return rows.squeeze(1) if single else rows


def trilinear_weights(frac: torch.Tensor) -> torch.Tensor:
    """Weights (N, 8) of the corners (``CORNER_OFFSETS`` order) of the cells holding points at in-cell offsets
    ``frac`` (N, 3) in [0, 1): the product over axes of ``frac`` (corner at 1) or ``1 - frac`` (corner at 0)."""
    offsets = CORNER_OFFSETS.to(frac.device)
    return torch.where(offsets.unsqueeze(0) == 1, frac.unsqueeze(1), 1.0 - frac.unsqueeze(1)).prod(dim=-1)


def checked_count(extent: list[int]) -> int:
    """The number of cells of a box of ``extent``; ValueError when its keys could overflow int64."""
    count = extent[0] * extent[1] * extent[2]
    if count >= 2**59:
        raise ValueError(f"coordinates span {extent}: too wide to index")
    return count


def linear_keys(i: torch.Tensor, j: torch.Tensor, k: torch.Tensor, extent: list[int] | torch.Tensor) -> torch.Tensor:
    """Row-major int64 keys of coordinates inside a box of ``extent``: sorting keys sorts coordinates (i, j, k)."""
    return (torch.as_tensor(i, dtype=torch.int64) * extent[1] + j) * extent[2] + k


def unlinear_keys(keys: torch.Tensor, extent: list[int] | torch.Tensor) -> torch.Tensor:
    """Coordinates (N, 3) of row-major ``keys`` (the inverse of ``linear_keys``)."""
    k = keys % extent[2]
    j = torch.div(keys, extent[2], rounding_mode="floor") % extent[1]
    i = torch.div(keys, extent[1] * extent[2], rounding_mode="floor")
    return torch.stack([i, j, k], dim=1)
