"""Sparse latent lattice: coarse lattice points needed by a set of voxels, and trilinear interpolation from them."""

from __future__ import annotations

import dataclasses
import warnings

import torch

from neuralvox.model.geometry import CORNER_OFFSETS, find_rows, linear_keys, trilinear_weights, unlinear_keys


@dataclasses.dataclass
class LatticeLevel:
    """One lattice level: points every ``stride`` voxels, allocated only where an active voxel needs them.

    ``coords`` (M, 3) int64 are the lattice coordinates of the allocated points in canonical (i, j, k) order; point
    ``m`` sits at voxel ``coords[m] * stride``. Voxel ``n`` interpolates its value from points ``corner_index[n]``
    (N, 8) with trilinear weights ``corner_weight[n]`` (N, 8). Corners of zero weight are not allocated; their index
    is 0 and their weight 0. The weights are dyadic rationals for power-of-two strides, so they are exact on every
    device.
    """

    stride: int
    coords: torch.Tensor
    corner_index: torch.Tensor
    corner_weight: torch.Tensor

    @property
    def point_count(self) -> int:
        return int(self.coords.shape[0])

    def interpolate(self, latents: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        """Trilinear interpolation of per-point latents (M, C) at voxels ``rows``: (n, C).

        A gather and a fixed-order sum: deterministic, for decoding. Use ``interpolation_operator`` for training.
        """
        gathered = latents[self.corner_index[rows]]
        return (gathered * self.corner_weight[rows].unsqueeze(-1)).sum(dim=1)

    def interpolation_operator(self, rows: torch.Tensor) -> SparseInterpolation:
        """The interpolation at voxels ``rows`` as a sparse matrix, differentiable and fast to train with."""
        return SparseInterpolation(self.corner_index[rows], self.corner_weight[rows], self.point_count)

    def lookup(self, coords: torch.Tensor) -> torch.Tensor:
        """Index of each lattice coordinate (K, 3) in ``coords``, or -1 where the point is not allocated."""
        return find_rows(self.coords, coords)


class SparseInterpolation:
    """Interpolation as a CSR matrix (N, M) with its transpose for the backward pass (a gather's backward, a
    scatter-add, is an order of magnitude slower on CPU)."""

    def __init__(self, corner_index: torch.Tensor, corner_weight: torch.Tensor, point_count: int):
        voxel_count = corner_index.shape[0]
        rows = torch.arange(voxel_count, device=corner_index.device).repeat_interleave(8)
        columns = corner_index.reshape(-1)
        weights = corner_weight.reshape(-1)
        self.matrix = _csr(rows, columns, weights, (voxel_count, point_count))
        self.transpose = _csr(columns, rows, weights, (point_count, voxel_count))

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        return _SparseMatmul.apply(latents, self.matrix, self.transpose)


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, latents: torch.Tensor, matrix: torch.Tensor, transpose: torch.Tensor) -> torch.Tensor:
        ctx.transpose = transpose
        return matrix @ latents

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return ctx.transpose @ grad, None, None


def _csr(rows: torch.Tensor, columns: torch.Tensor, weights: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    keep = weights > 0
    indices = torch.stack([rows[keep], columns[keep]])
    matrix = torch.sparse_coo_tensor(indices, weights[keep], shape, check_invariants=False).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return matrix.to_sparse_csr()


def build_lattice(ijk: torch.Tensor, stride: int) -> LatticeLevel:
    """The lattice level of ``stride`` (a power of two) needed to interpolate at voxels ``ijk`` (N, 3)."""
    if stride < 1 or stride & (stride - 1):
        raise ValueError(f"lattice stride must be a power of two, got {stride}")
    device = ijk.device
    ijk = ijk.to(torch.int64)
    if ijk.shape[0] == 0:
        empty = torch.zeros((0, 8), dtype=torch.int64, device=device)
        return LatticeLevel(stride, torch.zeros((0, 3), dtype=torch.int64, device=device), empty,
                            empty.to(torch.float32))
    base = torch.div(ijk, stride, rounding_mode="floor")
    frac = (ijk - base * stride).to(torch.float32) / stride
    weight = trilinear_weights(frac)
    corners = base.unsqueeze(1) + CORNER_OFFSETS.to(device).unsqueeze(0)
    used = weight > 0
    lo = base.min(dim=0).values
    extent = base.max(dim=0).values - lo + 2
    if float(extent.to(torch.float64).prod()) >= 2.0**62:
        raise ValueError(f"voxel coordinates span {(extent * stride).tolist()}: too wide for a latent lattice")
    keys = linear_keys(*(corners[used] - lo).T, extent)
    unique_keys, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    coords = unlinear_keys(unique_keys, extent) + lo
    corner_index = torch.zeros(used.shape, dtype=torch.int64, device=device)
    corner_index[used] = inverse
    return LatticeLevel(stride, coords, corner_index, torch.where(used, weight, torch.zeros_like(weight)))
