"""Warp kernels: fused decode against the torch reference, lattice points, random access, Warp and NanoVDB volumes."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import warp as wp
from conftest import soft_blob

import neuralvox
from neuralvox.codec.decoder import decompress
from neuralvox.codec.encoder import compress
from neuralvox.codec.presets import quality_preset
from neuralvox.codec.values import decode_values, encode_values, fused_decoder
from neuralvox.grid import SparseGrid
from neuralvox.kernels import grid_to_volume, sample_grid
from neuralvox.model.geometry import lattice_points
from neuralvox.model.lattice import build_lattice
from neuralvox.vdb import read_vdb, write_vdb

FAST = dict(iterations=60, finetune_iterations=10)


def blob(side: int = 14, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A bumpy blob: about half of a side^3 block active, values in (0.05, 1.3), canonical order."""
    return soft_blob(np.arange(side) - side // 3, (shift, 1, 0), side * 2.5, (0.3, 0.7, 0.0, 0.5))


# -- fused decode against the torch reference


@pytest.mark.parametrize("case", ["low scalar", "low vector", "silu three layers with frequencies"])
def test_fused_kernel_equals_the_torch_reference(case: str) -> None:
    ijk, values = blob()
    quality = dataclasses.replace(quality_preset("low"), **FAST)
    if case == "low vector":
        values = np.stack([values, np.sin(ijk[:, 0] * 0.3), 0.1 * ijk[:, 2]], axis=1).astype(np.float32)
    if case.startswith("silu"):
        quality = dataclasses.replace(quality, levels=((4, 3), (1, 2)), hidden=(8, 12, 6), frequencies=2,
                                      activation="silu")
    encoded = encode_values(ijk, values, grid_class="fog volume", quality=quality, device="cpu")
    reference = decode_values(ijk, encoded.header, encoded.streams, device="cpu", backend="torch")
    fused = decode_values(ijk, encoded.header, encoded.streams, device="cpu", backend="warp")
    assert fused.shape == reference.shape == values.shape
    assert np.abs(fused - reference).max() <= 1e-5 * np.abs(reference).max()
    assert encoded.stats.psnr > 15  # a real fit, not a constant: the comparison means something
    # any subset, in any order, decodes to the same values as the whole
    subset = np.random.default_rng(0).permutation(len(ijk))[: len(ijk) // 3]
    decoder = fused_decoder(ijk, encoded.header, encoded.streams, torch.device("cpu"))
    assert np.array_equal(decoder.decode(ijk[subset]), fused.reshape(len(ijk), -1)[subset])


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["torch", "warp"])
def test_a_cpu_fit_decodes_on_cuda_as_on_the_cpu(backend: str) -> None:
    """Archives move between machines: values coded on the CPU decode on a GPU within float32 rounding."""
    ijk, values = blob()
    encoded = encode_values(ijk, values, grid_class="fog volume",
                            quality=dataclasses.replace(quality_preset("low"), **FAST), device="cpu")
    cpu = decode_values(ijk, encoded.header, encoded.streams, device="cpu", backend=backend)
    gpu = decode_values(ijk, encoded.header, encoded.streams, device="cuda", backend=backend)
    assert encoded.stats.psnr > 15
    assert np.abs(gpu - cpu).max() <= 1e-5 * np.abs(cpu).max()


def test_decode_backend_is_checked() -> None:
    ijk, values = blob(8)
    encoded = encode_values(ijk, values, grid_class="fog volume", quality=dataclasses.replace(
        quality_preset("low"), iterations=5, finetune_iterations=1), device="cpu")
    with pytest.raises(ValueError, match="backend 'cuda' is not one of"):
        decode_values(ijk, encoded.header, encoded.streams, device="cpu", backend="cuda")


@pytest.mark.parametrize("stride", [1, 2, 4, 8])
def test_lattice_points_equal_build_lattice(stride: int) -> None:
    rng = np.random.default_rng(stride)
    dense, _ = blob(20)
    scattered = np.unique(rng.integers(-5000, 5000, size=(3000, 3)), axis=0)  # wide box: sorted, not masked
    for ijk in (dense, scattered):
        voxels = torch.from_numpy(ijk.astype(np.int32))
        assert torch.equal(lattice_points(voxels, stride), build_lattice(voxels, stride).coords)


# -- Warp volumes


def test_to_warp_volume_lookups_equal_the_values(warp_lookup) -> None:
    ijk, values = blob(12)
    transform = np.array([[0.1, 0.0, 0.02, 0], [0, 0.1, 0, 0], [0, 0, 0.12, 0], [1.5, -2.0, 0.25, 1]])
    grid = SparseGrid(name="density", ijk=ijk, values=values, transform=transform, background=-0.5)
    volume = grid_to_volume(grid, "cpu")
    outside = np.array([[100, 100, 100], [-40, 0, 3]], dtype=np.int32)
    looked_up = warp_lookup(volume, np.concatenate([ijk, outside]), float)
    assert np.array_equal(looked_up[: len(ijk)], values)
    assert np.array_equal(looked_up[len(ijk):], [-0.5, -0.5])
    info = volume.get_grid_info()
    assert np.allclose(np.array(info.translation), transform[3, :3])
    assert np.allclose(np.array(info.transform_matrix).reshape(3, 3), transform[:3, :3].T)

    vectors = np.stack([values, -values, 2 * values], axis=1)
    vector_grid = SparseGrid(name="vel", ijk=ijk, values=vectors, value_type="vec3s", background=(0.0, 0.0, 0.0))
    assert np.array_equal(warp_lookup(grid_to_volume(vector_grid), ijk, wp.vec3), vectors)


# -- archives: random access, NanoVDB output, streaming decompress


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("frames")
    for t in range(2):
        ijk, density = blob(12, shift=0.5 * t)
        velocity = np.stack([np.sin(0.3 * ijk[:, 1]), np.cos(0.2 * ijk[:, 0]), 0.05 * ijk[:, 2]], axis=1)
        transform = np.diag([0.05, 0.05, 0.05, 1.0])
        transform[3, :3] = [0.3, -0.1, 0.2]
        write_vdb(folder / f"blob.{t + 1:04d}.vdb", [
            SparseGrid(name="density", ijk=ijk, values=density, grid_class="fog volume", transform=transform,
                       background=0.0),
            SparseGrid(name="vel", ijk=ijk, values=velocity.astype(np.float32), value_type="vec3s",
                       background=(0.0, 0.0, 0.0), transform=transform),
        ])
    out = tmp_path_factory.mktemp("nvox") / "blob.nvox"
    compress([str(folder)], out, quality="low", base_only=True, device="cpu", gop=2, progress=False)
    return out


@pytest.mark.parametrize("name", ["density", "vel"])
def test_sample_at_voxel_centres_equals_the_full_decode(archive: Path, name: str) -> None:
    with neuralvox.open(archive, device="cpu") as nvox:
        sampler = nvox.frame(2)
        decoded = nvox.frame(2)[name]
        centres = decoded.index_to_world(decoded.ijk)
        for mode in ("nearest", "trilinear"):
            np.testing.assert_allclose(sampler.sample(centres, grid=name, mode=mode), decoded.values, rtol=1e-5,
                                       atol=1e-6 * np.abs(decoded.values).max())


def test_sample_between_voxels_interpolates_with_background(archive: Path) -> None:
    with neuralvox.open(archive, device="cpu") as nvox:
        decoded = nvox.frame(1)["density"]
        index = np.array([[0.25, 0.5, 0.75], [-3.5, 1.2, 0.1], [40.0, 40.0, 40.0], [6.6, -2.2, 3.49]])
        points = decoded.index_to_world(index)
        trilinear = nvox.frame(1).sample(points, mode="trilinear")
        nearest = nvox.frame(1).sample(points, mode="nearest")
    values = dict(zip(map(tuple, decoded.ijk.tolist()), decoded.values.tolist(), strict=True))
    for point, got_trilinear, got_nearest in zip(index, trilinear, nearest, strict=True):
        base = np.floor(point)
        expected = 0.0
        for corner in np.ndindex(2, 2, 2):
            weight = np.prod(np.where(np.array(corner) == 1, point - base, 1 - point + base))
            expected += weight * values.get(tuple((base + corner).astype(int)), 0.0)
        assert got_trilinear == pytest.approx(expected, rel=1e-5, abs=1e-7)
        assert got_nearest == values.get(tuple(np.floor(point + 0.5).astype(int)), 0.0)


def test_sample_grid_checks_its_inputs() -> None:
    ijk, values = blob(6)
    decode = lambda voxels: values[:len(voxels), None]  # noqa: E731
    with pytest.raises(ValueError, match="sample mode 'cubic'"):
        sample_grid(ijk, np.eye(4), 0.0, decode, np.zeros((1, 3)), mode="cubic")
    with pytest.raises(ValueError, match="world points must have shape"):
        sample_grid(ijk, np.eye(4), 0.0, decode, np.zeros((3,)))


def test_decompress_nvdb_loads_in_warp_with_the_same_values(archive: Path, tmp_path: Path, warp_lookup) -> None:
    with pytest.warns(UserWarning, match="skipping vector grid 'vel'"):
        written = decompress(archive, tmp_path, format="nvdb", device="cpu", progress=False)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == ["density/blob.0001.nvdb",
                                                                           "density/blob.0002.nvdb"]
    with neuralvox.open(archive, device="cpu") as nvox:
        for number, path in zip((1, 2), sorted(written), strict=True):
            expected = nvox.frame(number)["density"]
            volume = wp.Volume.load_from_nvdb(path.read_bytes(), device="cpu")
            outside = np.array([[90, 90, 90]], dtype=np.int32)
            looked_up = warp_lookup(volume, np.concatenate([expected.ijk, outside]), float)
            assert np.array_equal(looked_up[:-1], expected.values)
            assert looked_up[-1] == 0.0
            info = volume.get_grid_info()
            assert (info.name, info.type_str) == ("density", "float")
            assert np.allclose(np.array(info.transform_matrix).reshape(3, 3), expected.transform[:3, :3].T)


def test_decompress_vdb_streams_frames_through_the_writer(archive: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = decompress(archive, tmp_path, device="cpu", progress=False)
    assert [p.name for p in written] == ["blob.0001.vdb", "blob.0002.vdb"]
    with neuralvox.open(archive, device="cpu") as nvox:
        for number, path in zip((1, 2), written, strict=True):
            grids = read_vdb(path).grids
            for name in ("density", "vel"):
                assert np.array_equal(grids[name].sorted().values, nvox.frame(number)[name].values)
    with pytest.raises(ValueError, match="format 'exr' is not one of"):
        decompress(archive, tmp_path, format="exr", progress=False)
