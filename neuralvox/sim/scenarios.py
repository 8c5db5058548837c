"""The simulated scenarios: a plume hitting a sphere, two colliding fire plumes, a splashing level-set liquid."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from neuralvox.grid import SparseGrid
from neuralvox.sim import export
from neuralvox.sim.advection import advect
from neuralvox.sim.levelset import correct_volume, extrapolate, ghost_fluid_weights, liquid_volume, redistance
from neuralvox.sim.pressure import AIR, FLUID, SOLID, PressureProjection, ProjectionStats
from neuralvox.sim.solver import (
    Domain,
    Faces,
    add_cell_acceleration,
    advect_faces,
    buoyancy,
    cell_velocity,
    max_speed,
    substep,
    to_faces,
    vorticity_confinement,
)

DOMAIN_WIDTH = 2.0
"""Every scenario's box is 2 m along x; ``res`` cells span it."""


def _domain(res: int, size: tuple[float, float], open_sides: tuple[bool, ...], device: torch.device) -> Domain:
    """A box ``DOMAIN_WIDTH`` x height x depth (metres), centred on x = z = 0 and standing on y = 0."""
    h = DOMAIN_WIDTH / res
    height, depth = size
    shape = (res, max(4, round(height / h)), max(4, round(depth / h)))
    origin = (-0.5 * res * h + 0.5 * h, 0.5 * h, -0.5 * shape[2] * h + 0.5 * h)
    return Domain(shape, h, origin, open_sides, device)


def _sphere_distance(points: torch.Tensor, center: tuple[float, float, float], radius: float) -> torch.Tensor:
    offset = points - points.new_tensor(center).view(3, 1, 1, 1)
    return (offset * offset).sum(0).sqrt() - radius


def _box_distance(
    points: torch.Tensor, low: tuple[float, float, float], high: tuple[float, float, float]
) -> torch.Tensor:
    low_t, high_t = points.new_tensor(low).view(3, 1, 1, 1), points.new_tensor(high).view(3, 1, 1, 1)
    q = (points - 0.5 * (low_t + high_t)).abs() - 0.5 * (high_t - low_t)
    outside = q.clamp(min=0)
    return (outside * outside).sum(0).sqrt() + q.amax(dim=0).clamp(max=0)


def _coverage(distance: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """Fraction of a cell inside a shape, from its signed distance (a one-voxel soft edge)."""
    return (0.5 - distance / voxel_size).clamp(0.0, 1.0)


class _Turbulence:
    """Seeded noise in [0, 1] (C channels) with features of ``scale`` metres, changing smoothly every ``period`` s."""

    def __init__(self, domain: Domain, channels: int, scale: float, period: float, generator: torch.Generator) -> None:
        self.domain = domain
        self.lattice = (channels, *(max(2, math.ceil(n * domain.voxel_size / scale) + 1) for n in domain.shape))
        self.period = period
        self.generator = generator
        self.keys: list[torch.Tensor | None] = []

    def _key(self, index: int) -> torch.Tensor:
        """The noise field of key ``index``; keys are drawn in order, so the sequence depends on the seed alone."""
        while len(self.keys) <= index:
            coarse = torch.rand(self.lattice, generator=self.generator).to(self.domain.device)
            fine = F.interpolate(coarse[None], size=self.domain.shape, mode="trilinear", align_corners=True)[0]
            self.keys.append(fine)
        for old in range(index - 1):
            self.keys[old] = None
        return self.keys[index]

    def __call__(self, time: float) -> torch.Tensor:
        position = time / self.period
        index = math.floor(position)
        blend = position - index
        blend = blend * blend * (3.0 - 2.0 * blend)
        return torch.lerp(self._key(index), self._key(index + 1), blend)


class Scenario:
    """A simulation that advances frame by frame and exports its state as SparseGrids."""

    name = ""
    cfl = 2.0
    frame_time = 1.0 / 24.0
    faces: Faces

    def __init__(self, res: int, seed: int, device: torch.device) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.domain = self._make_domain(res, device)
        self.time = 0.0
        self.steps = 0
        self.last_projection: ProjectionStats | None = None

    def _make_domain(self, res: int, device: torch.device) -> Domain:
        raise NotImplementedError

    def _uniform(self, low: float, high: float) -> float:
        """A seeded random number in [low, high)."""
        return low + (high - low) * float(torch.rand((), generator=self.generator))

    def _speed_floor(self) -> float:
        """Speed that bounds the time step even before the flow has picked it up (inflows, gravity)."""
        return 1.0

    def advance(self, duration: float) -> None:
        """Simulate ``duration`` seconds in CFL-limited substeps."""
        remaining = duration
        while remaining > 1e-6 * duration:
            speed = max(max_speed(self.faces), self._speed_floor())
            dt = substep(remaining, speed, self.domain.voxel_size, self.cfl)
            self.step(dt)
            self.time += dt
            self.steps += 1
            remaining -= dt

    def step(self, dt: float) -> None:
        raise NotImplementedError

    def grids(self) -> list[SparseGrid]:
        raise NotImplementedError


class _Smoke(Scenario):
    """Smoke driven by emitters: density, temperature (and flame) carried by a buoyant, vortical velocity field."""

    lift = 12.0  # m/s^2 per unit temperature
    weight = 0.5  # m/s^2 per unit density
    vorticity = 10.0
    cooling = 0.8  # 1/s
    flame_decay = 9.0  # 1/s
    fields = ("density", "temperature")

    def __init__(self, res: int, seed: int, device: torch.device) -> None:
        super().__init__(res, seed, device)
        self.centers = self.domain.cell_centers()
        self.solid = self._place_objects()
        self.open_faces = self.domain.open_faces(self.solid)
        types = torch.where(self.solid, SOLID, FLUID).to(torch.int8)
        self.projection = PressureProjection(types, self.domain.open_sides)
        self.faces = self.domain.zero_faces()
        self.scalars = torch.zeros(len(self.fields), *self.domain.shape, device=device)
        self.noise = _Turbulence(self.domain, 4, scale=0.12, period=0.1, generator=self.generator)

    def _place_objects(self) -> torch.Tensor:
        """Place the (seeded) sources; return the obstacle cells (X, Y, Z) bool."""
        raise NotImplementedError

    def _emit(self, noise: torch.Tensor) -> None:
        """Sources write into ``self.scalars`` and ``self.faces``; ``noise`` is (4, X, Y, Z) in [0, 1]."""
        raise NotImplementedError

    def _inflow(self, coverage: torch.Tensor, velocity: tuple[float, float, float], noise: torch.Tensor) -> None:
        """Blend face velocities towards ``velocity`` (m/s, jittered by noise) where ``coverage`` (X, Y, Z) is high."""
        speed = math.sqrt(sum(c * c for c in velocity))
        faces = []
        for axis, component in enumerate(self.faces):
            target = velocity[axis] + 0.6 * speed * (noise[axis + 1] - 0.5)
            weight = to_faces(coverage[None], axis)[0]
            faces.append(torch.lerp(component, to_faces(target[None], axis)[0], weight))
        self.faces = tuple(faces)

    def step(self, dt: float) -> None:
        h = self.domain.voxel_size
        self.scalars = advect(self.scalars, cell_velocity(self.faces) / h, dt)
        self.faces = advect_faces(self.faces, dt, h)
        self._decay(dt)
        self._emit(self.noise(self.time + dt))
        density, temperature = self.scalars[0], self.scalars[1]
        acceleration = buoyancy(density, temperature, self.lift, self.weight)
        acceleration += vorticity_confinement(cell_velocity(self.faces), h, self.vorticity)
        self.faces = add_cell_acceleration(self.faces, acceleration, dt)
        self.faces = tuple(component * mask for component, mask in zip(self.faces, self.open_faces, strict=True))
        self.scalars = self.scalars * ~self.solid
        self.faces, self.last_projection = self.projection(self.faces)

    def _decay(self, dt: float) -> None:
        self.scalars[1] *= math.exp(-self.cooling * dt)

    def grids(self) -> list[SparseGrid]:
        fields = dict(zip(self.fields, self.scalars, strict=True))
        return export.smoke_grids(fields, cell_velocity(self.faces), self.domain.transform)


class Plume(_Smoke):
    """A hot smoke plume rising from a round source on the floor into a sphere, which splits and rolls it."""

    name = "plume"
    inflow_speed = 2.0

    def _make_domain(self, res: int, device: torch.device) -> Domain:
        return _domain(res, (2.5, 2.0), (True, True, False, True, True, True), device)

    def _place_objects(self) -> torch.Tensor:
        source = (self._uniform(-0.06, 0.06), 0.22, self._uniform(-0.06, 0.06))
        self.source = _coverage(_sphere_distance(self.centers, source, 0.2), self.domain.voxel_size)
        sphere = (self._uniform(0.08, 0.16), 1.25, self._uniform(-0.04, 0.04))
        return _sphere_distance(self.centers, sphere, 0.32) < 0

    def _speed_floor(self) -> float:
        return self.inflow_speed * 1.3

    def _emit(self, noise: torch.Tensor) -> None:
        amount = self.source * (0.6 + 0.8 * noise[0])
        self.scalars = torch.maximum(self.scalars, amount.clamp(max=1.0))
        self._inflow(self.source, (0.0, self.inflow_speed, 0.0), noise)


class CollidingPlumes(_Smoke):
    """Two burning jets from opposite walls meet in the middle; their hot smoke and flames rise together."""

    name = "plumes"
    fields = ("density", "temperature", "flame")
    jet_speed = 2.6
    vorticity = 6.0  # fast jets: stronger confinement turns into grid-scale noise

    def _make_domain(self, res: int, device: torch.device) -> Domain:
        return _domain(res, (2.0, 1.5), (True, True, False, True, True, True), device)

    def _place_objects(self) -> torch.Tensor:
        self.jets = []
        for side in (-1.0, 1.0):
            center = (side * 0.72, self._uniform(0.3, 0.4), self._uniform(-0.08, 0.08))
            direction = (-side * self.jet_speed, self.jet_speed * self._uniform(0.15, 0.3), 0.0)
            coverage = _coverage(_sphere_distance(self.centers, center, 0.11), self.domain.voxel_size)
            self.jets.append((coverage, direction))
        return torch.zeros(self.domain.shape, dtype=torch.bool, device=self.domain.device)

    def _speed_floor(self) -> float:
        return self.jet_speed * 1.3

    def _decay(self, dt: float) -> None:
        super()._decay(dt)
        self.scalars[2] *= math.exp(-self.flame_decay * dt)

    def _emit(self, noise: torch.Tensor) -> None:
        for coverage, direction in self.jets:
            flame = coverage * (0.5 + noise[0])
            source = torch.stack([0.7 * flame, flame, flame]).clamp(max=1.0)
            self.scalars = torch.maximum(self.scalars, source)
            self._inflow(coverage, direction, noise)


class Liquid(Scenario):
    """A dam of water collapses into a shallow pool while a drop falls in: a narrow-band level set with a free surface.

    Pressure is solved in the liquid cells with p = 0 at the surface (ghost fluid); velocities are extrapolated into the
    air so the level set can be advected, and it is redistanced every substep.
    """

    name = "liquid"
    gravity = 9.81
    cfl = 1.5
    redistance_iterations = 8
    extrapolation_layers = 8

    def __init__(self, res: int, seed: int, device: torch.device) -> None:
        super().__init__(res, seed, device)
        centers = self.domain.cell_centers()
        dam_top = self._uniform(0.75, 0.95)
        dam_edge = self._uniform(-0.45, -0.35)
        drop = (self._uniform(0.25, 0.5), self._uniform(0.8, 0.95), self._uniform(-0.1, 0.1))
        self.phi = torch.minimum(
            torch.minimum(
                _box_distance(centers, (-3.0, -3.0, -3.0), (dam_edge, dam_top, 3.0)),
                _box_distance(centers, (-3.0, -3.0, -3.0), (3.0, 0.18, 3.0)),
            ),
            _sphere_distance(centers, drop, 0.16),
        )
        self.volume = liquid_volume(self.phi, self.domain.voxel_size)
        self.open_faces = self.domain.open_faces(torch.zeros(self.domain.shape, dtype=torch.bool, device=device))
        self.faces = self.domain.zero_faces()

    def _make_domain(self, res: int, device: torch.device) -> Domain:
        return _domain(res, (1.25, 1.0), (False, False, False, True, False, False), device)

    def _speed_floor(self) -> float:
        return math.sqrt(self.gravity * self.domain.voxel_size * self.domain.shape[1])

    def step(self, dt: float) -> None:
        h = self.domain.voxel_size
        self.phi = advect(self.phi[None], cell_velocity(self.faces) / h, dt)[0]
        u, v, w = advect_faces(self.faces, dt, h)
        faces = (u, v - self.gravity * dt, w)
        self.phi = correct_volume(redistance(self.phi, h, self.redistance_iterations), self.volume, h)
        types = torch.where(self.phi < 0, FLUID, AIR).to(torch.int8)
        projection = PressureProjection(types, self.domain.open_sides, ghost_fluid_weights(self.phi))
        faces = tuple(component * mask for component, mask in zip(faces, self.open_faces, strict=True))
        faces, self.last_projection = projection(faces)
        known = tuple(coefficient > 0 for coefficient in projection.face_coefficients)
        faces = extrapolate(faces, known, self.extrapolation_layers)
        self.faces = tuple(component * mask for component, mask in zip(faces, self.open_faces, strict=True))

    def grids(self) -> list[SparseGrid]:
        h = self.domain.voxel_size
        return export.liquid_grids(self.phi, cell_velocity(self.faces), h, self.domain.transform)


SCENARIO_CLASSES: dict[str, type[Scenario]] = {cls.name: cls for cls in (Plume, CollidingPlumes, Liquid)}
