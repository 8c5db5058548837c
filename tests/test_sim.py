"""Tests for the fluid-simulation generators: projection, advection, level set, determinism, exported grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuralvox.atomic import OutputExistsError
from neuralvox.sim import SCENARIOS, generate, make_scenario, simulate
from neuralvox.sim.advection import advect
from neuralvox.sim.export import ACTIVE_THRESHOLD, LEVEL_SET_HALF_WIDTH
from neuralvox.sim.levelset import ghost_fluid_weights, redistance, upwind_gradient_norm
from neuralvox.sim.pressure import AIR, FLUID, SOLID, PressureProjection, divergence
from neuralvox.sim.solver import Domain, cell_velocity

MASS_TOLERANCE = 0.01
"""A passive scalar in a closed box keeps its mass within 1% over 20 MacCormack steps at CFL 1 (measured ~0.3%)."""

DISTANCE_TOLERANCE = 0.1
"""Level-set band voxels count as distance-field voxels where the upwind |grad phi| is within 0.1 of 1 (an exact
distance field gives 1 everywhere, kinks included)."""


def _smooth_faces(shape: tuple[int, int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random smooth face velocities: 4^3 lattice noise interpolated onto each face grid."""
    generator = torch.Generator().manual_seed(seed)
    X, Y, Z = shape
    faces = []
    for face_shape in ((X + 1, Y, Z), (X, Y + 1, Z), (X, Y, Z + 1)):
        coarse = torch.randn(1, 1, 4, 4, 4, generator=generator)
        faces.append(F.interpolate(coarse, size=face_shape, mode="trilinear", align_corners=True)[0, 0])
    return tuple(faces)


def _domain(shape: tuple[int, int, int], open_sides: tuple[bool, ...]) -> Domain:
    return Domain(shape, 1.0 / shape[0], (0.0, 0.0, 0.0), open_sides, torch.device("cpu"))


def _layout(case: str, shape: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[bool, ...], torch.Tensor | None]:
    """Cell types, open sides and the level set (free surface only) of a test configuration."""
    X, Y, Z = shape
    i, j, k = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in shape), indexing="ij")
    types = torch.full(shape, FLUID, dtype=torch.int8)
    if case == "closed box":
        return types, (False,) * 6, None
    if case == "open box with sphere":
        types[(i - X / 2) ** 2 + (j - Y / 2) ** 2 + (k - Z / 2) ** 2 < (0.25 * X) ** 2] = SOLID
        return types, (True, True, False, True, True, True), None
    phi = (j - 0.4 * Y + 1.5 * torch.sin(i / 3.0)) / X
    types[phi >= 0] = AIR
    return types, (False, False, False, True, False, False), phi


@pytest.mark.parametrize("case", ["closed box", "open box with sphere", "free surface"])
def test_projection_reaches_its_tolerance(case: str) -> None:
    shape = (16, 20, 12)
    types, open_sides, phi = _layout(case, shape)
    weights = None if phi is None else ghost_fluid_weights(phi)
    projection = PressureProjection(types, open_sides, weights)
    open_faces = _domain(shape, open_sides).open_faces(types == SOLID)
    faces = tuple(f * m for f, m in zip(_smooth_faces(shape, seed=3), open_faces, strict=True))
    fluid = types == FLUID
    before = float(divergence(faces)[fluid].abs().max())
    projected, stats = projection(faces)
    after = float(divergence(projected)[fluid].abs().max())
    assert stats.converged and 0 < stats.iterations < 60
    assert after <= projection.tolerance * before * 1.01
    for component, mask in zip(projected, open_faces, strict=True):
        assert torch.all(component[mask == 0] == 0)  # no flow into obstacles or walls


def test_passive_scalar_mass_is_conserved_in_a_closed_box() -> None:
    shape = (24, 24, 24)
    types, open_sides, _ = _layout("closed box", shape)
    open_faces = _domain(shape, open_sides).open_faces(types == SOLID)
    faces = tuple(f * m for f, m in zip(_smooth_faces(shape, 5), open_faces, strict=True))
    faces, _ = PressureProjection(types, open_sides)(faces)
    velocity = cell_velocity(faces)  # voxels per second: the box is 24 voxels of unit size here
    dt = 1.0 / float(velocity.abs().max())
    i, j, k = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in shape), indexing="ij")
    scalar = (((i - 11.5) ** 2 + (j - 11.5) ** 2 + (k - 11.5) ** 2) < 36).float()[None]
    mass = float(scalar.sum())
    for _ in range(20):
        scalar = advect(scalar, velocity, dt)
    assert abs(float(scalar.sum()) / mass - 1.0) < MASS_TOLERANCE
    assert float(scalar.min()) >= 0.0 and float(scalar.max()) <= 1.0  # clamping adds no new extrema
    assert float((scalar[0] - (((i - 11.5) ** 2 + (j - 11.5) ** 2 + (k - 11.5) ** 2) < 36).float()).abs().sum()) > 10


def test_redistance_restores_unit_gradient_and_keeps_the_surface() -> None:
    h = 1.0 / 32
    i, j, k = torch.meshgrid(*(torch.arange(32, dtype=torch.float32) for _ in range(3)), indexing="ij")
    radius = torch.sqrt((i - 15.3) ** 2 + (j - 16.1) ** 2 + (k - 15.7) ** 2) * h
    distorted = (radius - 0.3) * (2.5 + torch.sin(i / 4.0))  # |grad| between 1.5 and 3.5
    phi = redistance(distorted, h, iterations=2 * LEVEL_SET_HALF_WIDTH + 4)
    band = phi.abs() < LEVEL_SET_HALF_WIDTH * h
    assert torch.equal(phi < 0, distorted < 0)
    gradient = torch.stack(torch.gradient(phi, spacing=h)).square().sum(0).sqrt()
    assert float((gradient[band] - 1).abs().median()) < 0.05
    assert float(((radius - 0.3) - phi)[band].abs().max()) < 0.5 * h


def test_liquid_level_set_stays_a_distance_field() -> None:
    sim = make_scenario("liquid", 24, seed=0)
    volume = float((sim.phi < 0).sum())
    for _ in range(6):
        sim.advance(sim.frame_time)
    h = sim.domain.voxel_size
    inner = (slice(1, -1),) * 3  # the walls' one-sided differences do not count
    band = (sim.phi.abs() < LEVEL_SET_HALF_WIDTH * h)[inner]
    deviation = (upwind_gradient_norm(sim.phi, h) - 1.0).abs()[inner][band]
    assert float(deviation.median()) < 0.02
    assert float((deviation < DISTANCE_TOLERANCE).float().mean()) > 0.85
    assert abs(float((sim.phi < 0).sum()) / volume - 1.0) < 0.1


def _arrays(frames: list[tuple[int, list]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [(g.name, g.ijk, g.values) for _, grids in frames for g in grids]


def test_same_seed_gives_identical_frames_and_another_seed_does_not() -> None:
    first = _arrays(list(generate("plumes", 16, 3, seed=7)))
    again = _arrays(list(generate("plumes", 16, 3, seed=7)))
    other = _arrays(list(generate("plumes", 16, 3, seed=8)))
    assert [name for name, _, _ in first] == [name for name, _, _ in again]
    assert all(np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2]) for a, b in zip(first, again, strict=True))
    assert not all(a[1].shape == b[1].shape and np.array_equal(a[2], b[2]) for a, b in zip(first, other, strict=True))


EXPECTED = {
    "plume": {"density": "fog volume", "temperature": "fog volume", "vel": "unknown"},
    "plumes": {"density": "fog volume", "temperature": "fog volume", "flame": "fog volume", "vel": "unknown"},
    "liquid": {"surface": "level set", "vel": "unknown"},
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_generate_yields_sparse_grids_like_real_caches(scenario: str) -> None:
    res = 16
    frames = list(generate(scenario, res, 3, seed=1))
    assert [number for number, _ in frames] == [1, 2, 3]
    sim_shape = make_scenario(scenario, res).domain.shape
    h = 2.0 / res
    for _, grids in frames:
        by_name = {g.name: g for g in grids}
        assert {name: g.grid_class for name, g in by_name.items()} == EXPECTED[scenario]
        for grid in grids:
            grid.validate()
            assert np.allclose(grid.voxel_size, h)
            first_center = [-1.0 + h / 2, h / 2, -0.5 * sim_shape[2] * h + h / 2]  # x, z centred, floor at y = 0
            assert np.allclose(grid.index_to_world(np.zeros((1, 3)))[0], first_center)
            assert grid.ijk.min() >= 0 and np.all(grid.ijk.max(axis=0) < sim_shape)
            assert len(np.unique(grid.ijk, axis=0)) == grid.voxel_count
        main = by_name["surface" if scenario == "liquid" else "density"]
        assert 0 < main.voxel_count < (0.9 if scenario == "liquid" else 0.5) * np.prod(sim_shape)
        vel = by_name["vel"]
        assert vel.value_type == "vec3s" and vel.vector_type == "invariant" and np.any(vel.values != 0)
        if scenario == "liquid":
            band = LEVEL_SET_HALF_WIDTH * h
            assert main.background == pytest.approx(band) and not main.save_half
            assert np.all(np.abs(main.values) < band) and np.any(main.values < 0) and np.any(main.values > 0)
        else:
            assert main.save_half and main.background == 0.0
            assert np.all(main.values > ACTIVE_THRESHOLD)
            assert np.array_equal(vel.ijk, main.ijk)  # velocity lives where the smoke is


def test_frames_carry_motion() -> None:
    frames = [{g.name: g for g in grids} for _, grids in generate("plume", 24, 8)]
    tops = [int(f["density"].ijk[:, 1].max()) for f in frames]
    assert all(b >= a for a, b in zip(tops, tops[1:], strict=False)) and tops[-1] - tops[0] >= 4  # the plume rises


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="smoke"):
        generate("smoke", 16, 1)
    with pytest.raises(ValueError, match="resolution"):
        generate("plume", 4, 1)
    with pytest.raises(ValueError, match="frames"):
        generate("plume", 16, 0)
    with pytest.raises(ValueError, match="device"):
        generate("plume", 16, 1, device="no-such-device")
    with pytest.raises(ValueError, match="frames per second"):
        generate("plume", 16, 1, fps=0)


def test_more_frames_per_second_change_less_between_frames() -> None:
    def mean_change(fps: float) -> float:
        (_, first), (_, second) = generate("plume", 24, 2, fps=fps)
        a, b = (next(g for g in grids if g.name == "density") for grids in (first, second))
        dense = np.zeros((2, *np.maximum(a.ijk.max(0), b.ijk.max(0)) + 1), np.float32)
        dense[(0, *a.ijk.T)], dense[(1, *b.ijk.T)] = a.values, b.values
        return float(np.abs(dense[1] - dense[0]).mean())

    assert mean_change(96) < 0.5 * mean_change(24)


def test_simulate_refuses_existing_output_before_simulating(tmp_path) -> None:
    (tmp_path / "plume.0002.vdb").write_bytes(b"")
    with pytest.raises(OutputExistsError, match=r"plume\.0002\.vdb"):
        simulate("plume", tmp_path, 16, 3, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plume.0002.vdb"]


def test_simulate_writes_vdb_files_that_read_back_equal(tmp_path) -> None:
    from neuralvox.vdb import read_vdb

    paths = simulate("plumes", tmp_path, 16, 2, seed=3, name="fire", progress=False)
    assert [p.name for p in paths] == ["fire.0001.vdb", "fire.0002.vdb"]
    for path, (_, grids) in zip(paths, generate("plumes", 16, 2, seed=3), strict=True):
        read = read_vdb(path).grids
        assert sorted(read) == sorted(g.name for g in grids)
        for grid in grids:
            back = read[grid.name].sorted()
            want = grid.sorted()
            assert back.grid_class == want.grid_class and back.value_type == want.value_type
            assert back.save_half == want.save_half and np.allclose(back.transform, want.transform)
            assert np.array_equal(back.ijk, want.ijk)
            expected = want.values.astype(np.float16).astype(np.float32) if want.save_half else want.values
            assert np.array_equal(back.values, expected)


def test_same_seed_writes_byte_identical_files(tmp_path) -> None:
    first = simulate("liquid", tmp_path / "a", 16, 2, seed=5, progress=False)
    again = simulate("liquid", tmp_path / "b", 16, 2, seed=5, progress=False)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
