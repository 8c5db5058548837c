"""Level-set tools for the liquid: redistancing, ghost-fluid face weights, velocity extrapolation into the air."""

from __future__ import annotations

import torch

from neuralvox.sim.solver import Faces


def _neighbours(field: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Values of the previous and next cell along ``dim`` (edge cells repeated beyond the box)."""
    n = field.shape[dim]
    padded = torch.cat([field.narrow(dim, 0, 1), field, field.narrow(dim, n - 1, 1)], dim)
    return padded.narrow(dim, 0, n), padded.narrow(dim, 2, n)


def upwind_gradient_norm(phi: torch.Tensor, voxel_size: float, outward: torch.Tensor | None = None) -> torch.Tensor:
    """|grad phi| with Godunov upwinding towards the surface (1 everywhere for an exact distance field, kinks included).

    ``outward`` is +1 where information flows outward from the surface (phi > 0) and -1 inside; by default sign(phi).
    """
    if outward is None:
        outward = torch.where(phi < 0, -1.0, 1.0)
    inside = outward < 0
    squared = torch.zeros_like(phi)
    for dim in range(3):
        before, after = _neighbours(phi, dim)
        backward = (phi - before) / voxel_size
        forward = (after - phi) / voxel_size
        outside_term = torch.maximum(backward.clamp(min=0) ** 2, forward.clamp(max=0) ** 2)
        inside_term = torch.maximum(backward.clamp(max=0) ** 2, forward.clamp(min=0) ** 2)
        squared += torch.where(inside, inside_term, outside_term)
    return squared.sqrt()


def redistance(phi: torch.Tensor, voxel_size: float, iterations: int) -> torch.Tensor:
    """Move ``phi`` (X, Y, Z) towards a signed distance field with the same zero crossing.

    Sussman's reinitialisation equation (Godunov upwinding, pseudo-time step of half a voxel), with the subcell fix of
    Russo & Smereka (2000) in cells next to the interface, so the surface itself does not drift; cells away from it use
    the exact sign (a sign smoothed by phi itself stalls where a distorted phi is nearly zero). Each iteration
    corrects half a voxel further out, so ``iterations`` >= 2 x the band's half width (in voxels) renews the band.
    """
    h = voxel_size
    step = 0.5 * h
    near_surface = torch.zeros_like(phi, dtype=torch.bool)
    spread = torch.zeros_like(phi)
    for dim in range(3):
        before, after = _neighbours(phi, dim)
        near_surface |= (phi * before < 0) | (phi * after < 0)
        change = torch.maximum(torch.maximum((after - before).abs() * 0.5, (after - phi).abs()), (phi - before).abs())
        spread += change * change
    surface_distance = h * phi / spread.sqrt().clamp(min=1e-6 * h)
    outward = torch.where(phi < 0, -1.0, 1.0)
    for _ in range(iterations):
        far = phi - step * outward * (upwind_gradient_norm(phi, h, outward) - 1.0)
        near = phi - (step / h) * (outward * phi.abs() - surface_distance)
        phi = torch.where(near_surface, near, far)
    return phi


def ghost_fluid_weights(phi: torch.Tensor, min_fraction: float = 0.1) -> Faces:
    """Per-face weight 1/theta where a face joins a liquid cell (phi < 0) to an air cell, else 1 (Gibou et al. 2002).

    theta is the fraction of the way from the liquid cell's centre to the surface, clamped below at ``min_fraction``.
    """
    weights = []
    for dim in range(3):
        n = phi.shape[dim]
        a, b = phi.narrow(dim, 0, n - 1), phi.narrow(dim, 1, n - 1)
        crossing = (a < 0) != (b < 0)
        liquid, air = torch.where(a < 0, a, b).abs(), torch.where(a < 0, b, a).abs()
        theta = liquid / torch.where(crossing, liquid + air, torch.ones_like(liquid))
        interior = torch.where(crossing, 1.0 / theta.clamp(min=min_fraction), torch.ones_like(theta))
        ones = torch.ones_like(interior.narrow(dim, 0, 1))
        weights.append(torch.cat([ones, interior, ones], dim))
    return tuple(weights)


def _neighbour_sum(field: torch.Tensor) -> torch.Tensor:
    """Sum of the six face neighbours of every sample (zero beyond the box)."""
    padded = torch.nn.functional.pad(field[None, None], (1, 1, 1, 1, 1, 1))[0, 0]
    return (
        padded[:-2, 1:-1, 1:-1]
        + padded[2:, 1:-1, 1:-1]
        + padded[1:-1, :-2, 1:-1]
        + padded[1:-1, 2:, 1:-1]
        + padded[1:-1, 1:-1, :-2]
        + padded[1:-1, 1:-1, 2:]
    )


def extrapolate(faces: Faces, known: tuple[torch.Tensor, torch.Tensor, torch.Tensor], layers: int) -> Faces:
    """Face velocities where ``known`` (bool per face) is False replaced, layer by layer, by the mean of known
    neighbours; faces still unreached after ``layers`` layers become 0."""
    out = []
    for component, mask in zip(faces, known, strict=True):
        values = torch.where(mask, component, torch.zeros_like(component))
        reached = mask.float()
        for _ in range(layers):
            count = _neighbour_sum(reached)
            fresh = (count > 0) & (reached == 0)
            values = torch.where(fresh, _neighbour_sum(values) / count.clamp(min=1), values)
            reached = torch.where(fresh, torch.ones_like(reached), reached)
        out.append(values)
    return tuple(out)


def _smeared(phi: torch.Tensor, width: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Smoothed Heaviside of -phi (liquid fraction) and the matching delta function, over +-``width``."""
    x = (-phi / width).clamp(-1.0, 1.0)
    fraction = 0.5 * (1.0 + x + torch.sin(torch.pi * x) / torch.pi)
    delta = torch.where(phi.abs() < width, 0.5 / width * (1.0 + torch.cos(torch.pi * phi / width)), 0.0)
    return fraction, delta


def liquid_volume(phi: torch.Tensor, voxel_size: float) -> float:
    """Volume (m^3) where phi < 0, with the surface smeared over 1.5 voxels so it changes smoothly."""
    fraction, _ = _smeared(phi, 1.5 * voxel_size)
    return float(fraction.sum()) * voxel_size**3


def correct_volume(phi: torch.Tensor, target: float, voxel_size: float, max_shift: float = 0.25) -> torch.Tensor:
    """``phi`` shifted by one constant so the liquid volume moves back to ``target`` (m^3): level-set advection loses
    volume in thin sheets; the shift is limited to ``max_shift`` voxels per call so the surface never jumps."""
    fraction, delta = _smeared(phi, 1.5 * voxel_size)
    cell = voxel_size**3
    area = float(delta.sum()) * cell
    if area <= 0.0:
        return phi
    shift = (float(fraction.sum()) * cell - target) / area
    limit = max_shift * voxel_size
    return phi + min(max(shift, -limit), limit)
