"""Pressure projection on a MAC grid: the Poisson system solved by multigrid-preconditioned conjugate gradients."""

from __future__ import annotations

import dataclasses
import warnings

import torch

FLUID, AIR, SOLID = 0, 1, 2
"""Cell types: FLUID cells carry a pressure unknown, AIR cells hold p = 0 (free surface, open sides), SOLID cells are
obstacles and walls (no flow through their faces)."""

DEFAULT_TOLERANCE = 1e-4
"""Relative tolerance of the projection: max |divergence| after <= tolerance * max |divergence| before."""

_JACOBI_WEIGHT = 2.0 / 3.0
_SMOOTHING_SWEEPS = 2
_COARSEST_CELLS = 512  # the coarsest level is solved densely


def divergence(faces: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Net outflow of each cell (X, Y, Z) from face velocities u (X+1, Y, Z), v (X, Y+1, Z), w (X, Y, Z+1)."""
    u, v, w = faces
    return (u[1:] - u[:-1]) + (v[:, 1:] - v[:, :-1]) + (w[:, :, 1:] - w[:, :, :-1])


def _padded_types(types: torch.Tensor, open_sides: tuple[bool, ...]) -> torch.Tensor:
    """Cell types with one ghost layer: AIR beyond open sides of the box, SOLID beyond walls."""
    padded = torch.nn.functional.pad(types[None, None].float(), (1, 1, 1, 1, 1, 1), value=SOLID)[0, 0]
    for side, is_open in enumerate(open_sides):
        index = [slice(None)] * 3
        index[side // 2] = 0 if side % 2 == 0 else -1
        padded[tuple(index)] = AIR if is_open else SOLID
    return padded.to(types.dtype)


def face_coefficients(
    types: torch.Tensor, open_sides: tuple[bool, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1.0 on the faces (per axis, X+1 x Y x Z etc.) that join a FLUID cell to a non-SOLID cell, else 0.0."""
    padded = _padded_types(types, open_sides)
    inner = (slice(1, -1),) * 3
    coefficients = []
    for axis in range(3):
        low = list(inner)
        high = list(inner)
        low[axis] = slice(0, -1)
        high[axis] = slice(1, None)
        a, b = padded[tuple(low)], padded[tuple(high)]
        joined = (a != SOLID) & (b != SOLID) & ((a == FLUID) | (b == FLUID))
        coefficients.append(joined.float())
    return tuple(coefficients)


class _Level:
    """One grid level of the operator A s = diag * s - sum of (fluid-fluid face coefficient * neighbour s)."""

    def __init__(
        self,
        types: torch.Tensor,
        open_sides: tuple[bool, ...],
        face_weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.types = types
        self.open_sides = open_sides
        coefficients = face_coefficients(types, open_sides)
        if face_weights is not None:
            coefficients = tuple(c * w for c, w in zip(coefficients, face_weights, strict=True))
        self.coefficients = coefficients
        fluid = types == FLUID
        self.fluid = fluid.float()
        cx, cy, cz = coefficients
        diag = (cx[1:] + cx[:-1]) + (cy[:, 1:] + cy[:, :-1]) + (cz[:, :, 1:] + cz[:, :, :-1])
        self.diag = diag * self.fluid
        self.inv_diag = torch.where(self.diag > 0, 1.0 / self.diag.clamp(min=1e-30), torch.zeros_like(diag))
        self.off = (
            cx[1:-1] * (fluid[1:] & fluid[:-1]),
            cy[:, 1:-1] * (fluid[:, 1:] & fluid[:, :-1]),
            cz[:, :, 1:-1] * (fluid[:, :, 1:] & fluid[:, :, :-1]),
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.types.shape)

    def apply(self, s: torch.Tensor) -> torch.Tensor:
        """A s for s of shape (..., X, Y, Z) that is zero outside FLUID cells."""
        ox, oy, oz = self.off
        out = self.diag * s
        out[..., :-1, :, :] -= ox * s[..., 1:, :, :]
        out[..., 1:, :, :] -= ox * s[..., :-1, :, :]
        out[..., :, :-1, :] -= oy * s[..., :, 1:, :]
        out[..., :, 1:, :] -= oy * s[..., :, :-1, :]
        out[..., :, :, :-1] -= oz * s[..., :, :, 1:]
        out[..., :, :, 1:] -= oz * s[..., :, :, :-1]
        return out

    def smooth(self, s: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """One damped Jacobi sweep."""
        return s + _JACOBI_WEIGHT * self.inv_diag * (rhs - self.apply(s))

    def coarsened(self) -> _Level:
        """The next level: 2x2x2 cells merge; AIR wins over FLUID, FLUID over SOLID (McAdams et al. 2010)."""
        t = self.types
        pad = [0, t.shape[2] % 2, 0, t.shape[1] % 2, 0, t.shape[0] % 2]
        t = torch.nn.functional.pad(t[None, None].float(), pad, value=SOLID)[0, 0]
        X, Y, Z = (n // 2 for n in t.shape)
        children = t.reshape(X, 2, Y, 2, Z, 2)
        any_air = (children == AIR).any(5).any(3).any(1)
        any_fluid = (children == FLUID).any(5).any(3).any(1)
        coarse = torch.full((X, Y, Z), SOLID, dtype=self.types.dtype, device=t.device)
        coarse[any_fluid] = FLUID
        coarse[any_air] = AIR
        return _Level(coarse, self.open_sides)


def _prolong_axis(coarse: torch.Tensor, dim: int, fine_length: int) -> torch.Tensor:
    """Cell-centred linear interpolation along one axis (edge values repeated beyond the ends)."""
    n = coarse.shape[dim]
    padded = torch.cat([coarse.narrow(dim, 0, 1), coarse, coarse.narrow(dim, n - 1, 1)], dim)
    center = 0.75 * coarse
    even = center + 0.25 * padded.narrow(dim, 0, n)
    odd = center + 0.25 * padded.narrow(dim, 2, n)
    return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1).narrow(dim, 0, fine_length)


def _restrict_axis(fine: torch.Tensor, dim: int, coarse_length: int) -> torch.Tensor:
    """Exact transpose of _prolong_axis."""
    n = coarse_length
    missing = 2 * n - fine.shape[dim]
    if missing:
        shape = list(fine.shape)
        shape[dim] = missing
        fine = torch.cat([fine, fine.new_zeros(shape)], dim)
    pairs = fine.unflatten(dim, (n, 2))
    even, odd = pairs.select(dim + 1, 0), pairs.select(dim + 1, 1)
    coarse = 0.75 * (even + odd)
    coarse.narrow(dim, 1, n - 1).add_(0.25 * odd.narrow(dim, 0, n - 1))
    coarse.narrow(dim, 0, n - 1).add_(0.25 * even.narrow(dim, 1, n - 1))
    coarse.narrow(dim, 0, 1).add_(0.25 * even.narrow(dim, 0, 1))
    coarse.narrow(dim, n - 1, 1).add_(0.25 * odd.narrow(dim, n - 1, 1))
    return coarse


def prolong(coarse: torch.Tensor, fine_shape: tuple[int, int, int]) -> torch.Tensor:
    """Trilinear cell-centred interpolation of a coarse field (X, Y, Z) to the next finer level."""
    out = coarse
    for dim, length in enumerate(fine_shape):
        out = _prolong_axis(out, dim, length)
    return out


def restrict(fine: torch.Tensor, coarse_shape: tuple[int, int, int]) -> torch.Tensor:
    """Transpose of prolong, so the multigrid V-cycle is a symmetric preconditioner."""
    out = fine
    for dim, length in enumerate(coarse_shape):
        out = _restrict_axis(out, dim, length)
    return out


class _CoarsestSolve:
    """Dense pseudo-inverse of the coarsest operator (a few hundred unknowns at most)."""

    def __init__(self, level: _Level) -> None:
        self.index = level.fluid.flatten().nonzero().squeeze(1)
        n = int(self.index.numel())
        self.inverse = None
        if n:
            basis = torch.zeros(n, level.fluid.numel(), device=level.fluid.device)
            basis[torch.arange(n, device=basis.device), self.index] = 1.0
            columns = level.apply(basis.reshape(n, *level.shape)).reshape(n, -1)[:, self.index]
            self.inverse = torch.linalg.pinv(columns.double(), hermitian=True).float()

    def __call__(self, rhs: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(rhs)
        if self.inverse is not None:
            out.view(-1)[self.index] = self.inverse @ rhs.reshape(-1)[self.index]
        return out


@dataclasses.dataclass
class ProjectionStats:
    """How one pressure solve went: CG iterations and max |divergence| before and after."""

    iterations: int
    divergence_before: float
    divergence_after: float
    converged: bool


class PressureProjection:
    """Makes MAC face velocities divergence-free in the FLUID cells of a fixed cell-type layout.

    ``types`` (X, Y, Z) holds FLUID, AIR or SOLID per cell; ``open_sides`` says for each side of the box (x-, x+, y-,
    y+, z-, z+) whether it is open (p = 0 beyond it) or a wall. ``face_weights`` (per axis, shaped like the face arrays)
    scale face coefficients, e.g. 1/theta of the ghost-fluid method at a free surface. Build once per layout and call
    it on face velocities; it solves A s = -div(u) to ``tolerance`` (relative, max norm) with multigrid-preconditioned
    conjugate gradients and subtracts the gradient of s.
    """

    def __init__(
        self,
        types: torch.Tensor,
        open_sides: tuple[bool, ...],
        face_weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        max_iterations: int = 300,
    ) -> None:
        if len(open_sides) != 6:
            raise ValueError(f"open_sides needs 6 entries (x-, x+, y-, y+, z-, z+), got {len(open_sides)}")
        self.tolerance = tolerance
        self.max_iterations = max_iterations
        self.levels = [_Level(types, tuple(open_sides), face_weights)]
        while self.levels[-1].fluid.numel() > _COARSEST_CELLS:
            self.levels.append(self.levels[-1].coarsened())
        self.coarsest = _CoarsestSolve(self.levels[-1])
        fine = self.levels[0]
        # Without any AIR contact (closed box) A is singular: solutions are defined up to a constant.
        self.singular = bool((fine.apply(fine.fluid) <= 1e-6).all())
        self.fluid_count = max(float(fine.fluid.sum()), 1.0)

    @property
    def face_coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-axis face coefficients of the finest level: > 0 exactly on the faces the projection updates."""
        return self.levels[0].coefficients

    def _remove_mean(self, x: torch.Tensor) -> torch.Tensor:
        fluid = self.levels[0].fluid
        return (x - (x * fluid).sum() / self.fluid_count) * fluid

    def _vcycle(self, depth: int, rhs: torch.Tensor) -> torch.Tensor:
        if depth == len(self.levels) - 1:
            return self.coarsest(rhs)
        level, coarse = self.levels[depth], self.levels[depth + 1]
        s = _JACOBI_WEIGHT * level.inv_diag * rhs
        for _ in range(_SMOOTHING_SWEEPS - 1):
            s = level.smooth(s, rhs)
        residual = (rhs - level.apply(s)) * level.fluid
        coarse_rhs = 0.5 * restrict(residual, coarse.shape) * coarse.fluid
        s = s + prolong(self._vcycle(depth + 1, coarse_rhs), level.shape) * level.fluid
        for _ in range(_SMOOTHING_SWEEPS):
            s = level.smooth(s, rhs)
        return s

    def _precondition(self, r: torch.Tensor) -> torch.Tensor:
        z = self._vcycle(0, r)
        return self._remove_mean(z) if self.singular else z

    def solve(self, rhs: torch.Tensor) -> tuple[torch.Tensor, int, float, bool]:
        """s with max |rhs - A s| <= tolerance * max |rhs| (rhs is zero outside FLUID); also the iterations, the final
        max residual and whether it converged."""
        level = self.levels[0]
        r = rhs * level.fluid
        if self.singular:
            r = self._remove_mean(r)
        s = torch.zeros_like(r)
        target = self.tolerance * float(r.abs().max())
        residual = float(r.abs().max())
        if residual <= target or residual == 0.0:
            return s, 0, residual, True
        z = self._precondition(r)
        p = z.clone()
        rz = torch.dot(r.flatten(), z.flatten())
        for iteration in range(1, self.max_iterations + 1):
            ap = level.apply(p)
            alpha = rz / torch.dot(p.flatten(), ap.flatten())
            s.add_(alpha * p)
            r.sub_(alpha * ap)
            residual = float(r.abs().max())
            if residual <= target:
                return s, iteration, residual, True
            z = self._precondition(r)
            rz_next = torch.dot(r.flatten(), z.flatten())
            p = z + (rz_next / rz) * p
            rz = rz_next
        return s, self.max_iterations, residual, False

    def __call__(
        self, faces: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ProjectionStats]:
        """Divergence-free face velocities (faces carrying no flow are left as they are) and the solve's stats."""
        level = self.levels[0]
        before = -divergence(faces) * level.fluid
        s, iterations, residual, converged = self.solve(before)
        if not converged:
            warnings.warn(
                f"pressure solve stopped after {iterations} iterations at residual {residual:.3g} "
                f"(target {self.tolerance:g} x {float(before.abs().max()):.3g})",
                RuntimeWarning,
                stacklevel=2,
            )
        padded = torch.nn.functional.pad(s[None, None], (1, 1, 1, 1, 1, 1))[0, 0]
        cx, cy, cz = level.coefficients
        u, v, w = faces
        u = u - cx * (padded[1:, 1:-1, 1:-1] - padded[:-1, 1:-1, 1:-1])
        v = v - cy * (padded[1:-1, 1:, 1:-1] - padded[1:-1, :-1, 1:-1])
        w = w - cz * (padded[1:-1, 1:-1, 1:] - padded[1:-1, 1:-1, :-1])
        after = float((divergence((u, v, w)) * level.fluid).abs().max())
        stats = ProjectionStats(iterations, float(before.abs().max()), after, converged)
        return (u, v, w), stats
