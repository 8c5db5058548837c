"""MAC-grid fluid state and its update steps: advection, body forces, vorticity confinement, obstacles, time steps."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from neuralvox.sim.advection import advect
from neuralvox.sim.pressure import FLUID, SOLID, face_coefficients

Faces = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""Velocity on a MAC grid in m/s: u on x-faces (X+1, Y, Z), v on y-faces (X, Y+1, Z), w on z-faces (X, Y, Z+1)."""


@dataclasses.dataclass(frozen=True)
class Domain:
    """A box of cells: ``shape`` (X, Y, Z), cube ``voxel_size`` in metres, world position of cell (0, 0, 0)'s centre
    (``origin``), and per side (x-, x+, y-, y+, z-, z+) whether the box is open there or walled. y points up."""

    shape: tuple[int, int, int]
    voxel_size: float
    origin: tuple[float, float, float]
    open_sides: tuple[bool, bool, bool, bool, bool, bool]
    device: torch.device

    @property
    def transform(self) -> np.ndarray:
        """4x4 index-to-world matrix in OpenVDB's row-vector convention."""
        matrix = np.diag([self.voxel_size] * 3 + [1.0])
        matrix[3, :3] = self.origin
        return matrix

    def cell_centers(self) -> torch.Tensor:
        """World positions (3, X, Y, Z) of the cell centres."""
        axes = [
            torch.arange(n, dtype=torch.float32, device=self.device) * self.voxel_size + o
            for n, o in zip(self.shape, self.origin, strict=True)
        ]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"))

    def zeros(self) -> torch.Tensor:
        return torch.zeros(self.shape, device=self.device)

    def zero_faces(self) -> Faces:
        X, Y, Z = self.shape
        return (
            torch.zeros(X + 1, Y, Z, device=self.device),
            torch.zeros(X, Y + 1, Z, device=self.device),
            torch.zeros(X, Y, Z + 1, device=self.device),
        )

    def open_faces(self, solid: torch.Tensor) -> Faces:
        """1.0 on faces flow may cross, 0.0 on faces touching an obstacle cell or a wall."""
        types = torch.where(solid, SOLID, FLUID).to(torch.int8)
        return face_coefficients(types, self.open_sides)


def cell_velocity(faces: Faces) -> torch.Tensor:
    """Cell-centred velocity (3, X, Y, Z): the mean of each cell's two opposite faces."""
    u, v, w = faces
    return torch.stack([0.5 * (u[1:] + u[:-1]), 0.5 * (v[:, 1:] + v[:, :-1]), 0.5 * (w[:, :, 1:] + w[:, :, :-1])])


def max_speed(faces: Faces) -> float:
    """Largest face speed (m/s)."""
    return max(float(component.abs().max()) for component in faces)


def substep(remaining: float, speed: float, voxel_size: float, cfl: float) -> float:
    """Time step for the rest of a frame: equal steps, each moving at most ``cfl`` voxels at ``speed``."""
    steps = max(1, math.ceil(remaining * speed / (cfl * voxel_size) - 1e-9))
    return remaining / steps


def to_faces(cells: torch.Tensor, axis: int) -> torch.Tensor:
    """Mean of the two cells beside each face normal to ``axis`` (edge cells repeated): (C, ...), one longer on it."""
    dim = axis + 1
    n = cells.shape[dim]
    padded = torch.cat([cells.narrow(dim, 0, 1), cells, cells.narrow(dim, n - 1, 1)], dim)
    return 0.5 * (padded.narrow(dim, 0, n + 1) + padded.narrow(dim, 1, n + 1))


def face_velocity(faces: Faces, axis: int) -> torch.Tensor:
    """Full velocity vector (3, ...) on the faces normal to ``axis``: its own component, the others interpolated."""
    velocity = to_faces(cell_velocity(faces), axis)
    velocity[axis] = faces[axis]
    return velocity


def advect_faces(faces: Faces, dt: float, voxel_size: float) -> Faces:
    """Face velocities carried along by themselves for ``dt`` seconds."""
    return tuple(
        advect(component[None], face_velocity(faces, axis) / voxel_size, dt)[0] for axis, component in enumerate(faces)
    )


def add_cell_acceleration(faces: Faces, acceleration: torch.Tensor, dt: float) -> Faces:
    """Faces plus ``dt`` times a cell-centred acceleration (3, X, Y, Z) averaged onto them."""
    return tuple(component + dt * to_faces(acceleration[axis][None], axis)[0] for axis, component in enumerate(faces))


def _length(vectors: torch.Tensor) -> torch.Tensor:
    """Euclidean length over the leading axis of (3, ...) (much faster than linalg.vector_norm over dim 0 on CPU)."""
    return (vectors * vectors).sum(0).sqrt()


def vorticity_confinement(velocity: torch.Tensor, voxel_size: float, strength: float) -> torch.Tensor:
    """Acceleration (3, X, Y, Z) that spins up existing vortices (Fedkiw et al. 2001): strength * h * (N x omega)."""
    d_dx, d_dy, d_dz = torch.gradient(velocity, spacing=voxel_size, dim=(1, 2, 3))
    omega = torch.stack([d_dy[2] - d_dz[1], d_dz[0] - d_dx[2], d_dx[1] - d_dy[0]])
    normal = torch.stack(torch.gradient(_length(omega), spacing=voxel_size))
    nx, ny, nz = normal / (_length(normal) + 1e-6 / voxel_size)
    ox, oy, oz = omega
    scale = strength * voxel_size
    return torch.stack([scale * (ny * oz - nz * oy), scale * (nz * ox - nx * oz), scale * (nx * oy - ny * ox)])


def buoyancy(density: torch.Tensor, temperature: torch.Tensor, lift: float, weight: float) -> torch.Tensor:
    """Acceleration (3, X, Y, Z): hot gas rises (``lift`` per unit temperature), smoke sinks (``weight`` per unit)."""
    up = lift * temperature - weight * density
    zero = torch.zeros_like(up)
    return torch.stack([zero, up, zero])
