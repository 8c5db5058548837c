"""Error-bounded value codec: the bound holds on every voxel, decode equals encode bit for bit, bad input is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import BLENDER, needs_blender
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralvox.cli import main
from neuralvox.codec.bound_search import bound_for_psnr, sample_psnr
from neuralvox.codec.bounded import BoundedHeader, decode_bounded, encode_bounded
from neuralvox.codec.context_coder import MAX_CODE, CodeDecoder, ContextStreamError, encode_codes
from neuralvox.codec.decoder import open_archive
from neuralvox.codec.encoder import compress
from neuralvox.codec.interpolation import plan_levels
from neuralvox.codec.quality import Bound, parse_max_error, quality_target
from neuralvox.grid import SparseGrid
from neuralvox.vdb import read_vdb, write_vdb


def random_grid(seed: int, box: int, fill: float, scale: float, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Active voxels of a random sparse set in a box, with a smooth field plus noise times ``scale``."""
    rng = np.random.default_rng(seed)
    axis = np.arange(box)
    i, j, k = np.meshgrid(axis, axis, axis, indexing="ij")
    active = rng.random(i.shape) < fill
    ijk = (np.stack([i[active], j[active], k[active]], axis=1) + rng.integers(-50, 50, 3)).astype(np.int32)
    smooth = np.sin(0.3 * ijk[:, :1] + np.arange(channels)) * np.cos(0.2 * ijk[:, 1:2])
    values = ((smooth + 0.3 * rng.normal(size=(len(ijk), channels))) * scale).astype(np.float32)
    return ijk, values[:, 0] if channels == 1 else values


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), box=st.integers(1, 20), fill=st.floats(0.05, 1.0),
       scale=st.sampled_from([1e-6, 1.0, 3e4]), relative=st.sampled_from([1e-1, 1e-3, 1e-5]),
       channels=st.sampled_from([1, 3]), inactive_known=st.booleans())
def test_every_voxel_within_the_bound_and_decode_equals_encode(seed: int, box: int, fill: float, scale: float,
                                                                relative: float, channels: int,
                                                                inactive_known: bool) -> None:
    ijk, values = random_grid(seed, box, fill, scale, channels)
    bound = relative * scale
    code = encode_bounded(ijk, values, bound, background=0.0, inactive_known=inactive_known)
    assert np.all(np.abs(code.decoded.astype(np.float64) - values) <= bound)
    header = BoundedHeader.from_dict(code.header.to_dict())
    decoded = decode_bounded(ijk, header, code.stream)
    assert decoded.dtype == np.float32 and decoded.shape == values.shape
    assert np.array_equal(decoded.view(np.uint32), code.decoded.view(np.uint32))


def test_values_beyond_the_code_range_and_float_rounding_are_stored_exactly() -> None:
    ijk, values = random_grid(1, 12, 0.6, 1.0, 1)
    values[::7] = 1e30  # codes far beyond MAX_CODE
    values[3] = np.float32(1e-30)
    bound = 1e-3
    code = encode_bounded(ijk, values, bound)
    assert code.exact_count >= len(values[::7])
    decoded = decode_bounded(ijk, code.header, code.stream)
    assert np.all(np.abs(decoded.astype(np.float64) - values) <= bound)
    assert np.array_equal(decoded[::7], values[::7])


def test_per_channel_bounds_hold_per_component() -> None:
    ijk, values = random_grid(2, 10, 0.8, 1.0, 3)
    bounds = (1e-1, 1e-2, 1e-4)
    code = encode_bounded(ijk, values, bounds, background=(0.0, 0.0, 0.0))
    error = np.abs(decode_bounded(ijk, code.header, code.stream).astype(np.float64) - values)
    assert np.all(error <= np.asarray(bounds)[None])
    assert error[:, 0].max() > 10 * error[:, 2].max()  # each component really was coded to its own bound


def test_a_smooth_blob_costs_a_fraction_of_noise_and_under_half_a_bit_per_voxel() -> None:
    axis = np.arange(32)
    i, j, k = np.meshgrid(axis, axis, axis, indexing="ij")
    ball = (i - 16) ** 2 + (j - 16) ** 2 + (k - 16) ** 2 < 15**2
    ijk = np.stack([i[ball], j[ball], k[ball]], axis=1).astype(np.int32)
    smooth = np.cos(0.1 * ijk[:, 0]) * np.cos(0.07 * ijk[:, 1]) * np.exp(-((ijk - 16) ** 2).sum(1) / 40.0)
    noise = np.random.default_rng(0).uniform(-1, 1, len(ijk))
    smooth_bits = 8 * len(encode_bounded(ijk, smooth.astype(np.float32), 1e-2).stream) / len(ijk)
    noise_bits = 8 * len(encode_bounded(ijk, noise.astype(np.float32), 1e-2).stream) / len(ijk)
    assert smooth_bits < 0.5 and smooth_bits < noise_bits / 8, (smooth_bits, noise_bits)


def test_the_visiting_order_covers_every_voxel_once_coarse_to_fine() -> None:
    ijk, _ = random_grid(3, 17, 0.5, 1.0, 1)
    plan = plan_levels(ijk)
    rows = np.concatenate([p.rows for p in plan.passes])
    assert np.array_equal(np.sort(rows), np.arange(len(ijk)))
    levels = [p.level for p in plan.passes]
    assert levels == sorted(levels, reverse=True)
    assert [i for i, p in enumerate(plan.passes) if p.is_anchor] in ([], [0])
    local = ijk.astype(np.int64)  # the levels are aligned to multiples of 2**max_level
    for visit in plan.passes[1:]:
        steps = local[visit.rows] >> visit.level
        assert np.all(local[visit.rows] % (1 << visit.level) == 0)
        odd = [axis in visit.axes for axis in range(3)]
        assert np.all((steps % 2 == 1) == np.array(odd)[None]), visit


def test_context_coder_round_trips_codes_and_escapes() -> None:
    rng = np.random.default_rng(4)
    passes = []
    for size in (5, 300, 2000):
        codes = np.rint(rng.laplace(0, 3, size)).astype(np.int64)
        codes[::97] = CodeDecoder.ESCAPE
        codes[5::211] = MAX_CODE
        passes.append((codes, rng.integers(0, 40, size)))
    decoder = CodeDecoder(encode_codes(passes))
    for codes, contexts in passes:
        assert np.array_equal(decoder.decode(contexts), codes)


def test_damaged_value_streams_raise_a_clear_error() -> None:
    ijk, values = random_grid(5, 10, 0.7, 1.0, 1)
    code = encode_bounded(ijk, values, 1e-3)
    with pytest.raises(ContextStreamError):
        decode_bounded(ijk, code.header, code.stream[:-9])
    with pytest.raises(ValueError, match="voxels"):
        decode_bounded(ijk[:-1], code.header, code.stream)
    broken = code.header.to_dict() | {"choices": [[99] * 3]}
    with pytest.raises(ValueError, match="prediction outside"):
        BoundedHeader.from_dict(broken)


def test_bounds_parse_units_and_grids() -> None:
    assert parse_max_error("0.001") == {None: Bound(0.001)}
    assert parse_max_error("density=0.1%, vel=0.01") == {"density": Bound(0.1, "%"), "vel": Bound(0.01)}
    assert parse_max_error("0.05vox")[None].absolute(2.0, 0.1) == pytest.approx(0.005)
    assert Bound(0.1, "%").absolute(4.0, 1.0) == pytest.approx(0.004)
    for bad in ("0", "-1", "nan", "inf", "x", "density=", "=1", "1,2"):
        with pytest.raises(ValueError):
            parse_max_error(bad)
    with pytest.raises(ValueError, match="not both"):
        quality_target(max_error="1", psnr=40)
    assert quality_target("high").psnr == 50.0


def test_psnr_search_lands_near_its_target() -> None:
    ijk, values = random_grid(6, 16, 0.7, 1.0, 1)
    grid = SparseGrid(name="density", ijk=ijk, values=values, grid_class="fog volume")
    peak = float(values.max() - values.min())
    for target in (30.0, 45.0):
        bound = bound_for_psnr([grid], peak, target)
        assert abs(sample_psnr([grid], bound, peak) - target) < 0.5


def level_set_frames(folder: Path, count: int) -> None:
    """A sphere's narrow-band level set (3 voxels each side) growing frame by frame."""
    axis = np.arange(-16, 17)
    i, j, k = np.meshgrid(axis, axis, axis, indexing="ij")
    voxel = 0.1
    for t in range(count):
        distance = (np.sqrt(i**2 + j**2 + k**2) - 9 - t) * voxel
        band = np.abs(distance) < 3 * voxel
        ijk = np.stack([i[band], j[band], k[band]], axis=1).astype(np.int32)
        grid = SparseGrid(name="surface", ijk=ijk, values=distance[band].astype(np.float32), grid_class="level set",
                          background=3 * voxel, transform=np.diag([voxel, voxel, voxel, 1.0]))
        write_vdb(folder / f"ls.{t + 1:04d}.vdb", [grid])


def test_level_set_bound_in_voxels_holds_after_decode_and_in_warp(tmp_path: Path, warp_lookup) -> None:
    level_set_frames(tmp_path, 3)
    out = tmp_path / "ls.nvox"
    report = compress([str(tmp_path)], out, max_error="0.05vox", device="cpu", progress=False)
    assert report.grids[0].bound == pytest.approx(0.005)
    with open_archive(out, device="cpu") as archive:
        for number, path in zip(archive.frames, sorted(tmp_path.glob("ls.*.vdb")), strict=True):
            original = read_vdb(path).grids["surface"].sorted()
            decoded = archive.frame(number)["surface"]
            assert np.array_equal(decoded.ijk, original.ijk)
            assert np.max(np.abs(decoded.values.astype(np.float64) - original.values)) <= 0.005
            points = decoded.index_to_world(decoded.ijk[:50].astype(np.float64))
            sampled = archive.frame(number).sample(points, "surface", mode="nearest")
            assert np.array_equal(sampled, decoded.values[:50])
            volume = archive.frame(number).to_warp_volume("surface", device="cpu")
            assert np.array_equal(warp_lookup(volume, decoded.ijk, float), decoded.values)


@needs_blender
@pytest.mark.parametrize("fraction", [1e-2, 1e-3, 1e-4])
def test_real_blender_frames_within_three_bounds(tmp_path: Path, fraction: float) -> None:
    frames = sorted(BLENDER.glob("*.vdb"))[4:7]
    out = tmp_path / "c42.nvox"
    report = compress([str(f) for f in frames], out, grids=["density"], max_error=f"{100 * fraction}%",
                      device="cpu", progress=False)
    bound = report.grids[0].bound
    with open_archive(out, device="cpu") as archive:
        for number, path in zip(archive.frames, frames, strict=True):
            original = read_vdb(path, ["density"]).grids["density"].sorted()
            decoded = archive.decode_grid(number, "density")
            assert np.max(np.abs(decoded.values.astype(np.float64) - original.values)) <= bound


@needs_blender
def test_psnr_40_on_the_blender_cache_lands_within_half_a_db(tmp_path: Path) -> None:
    report = compress([str(BLENDER)], tmp_path / "c42.nvox", grids=["density"], psnr=40, device="cpu",
                      progress=False)
    assert abs(report.grids[0].psnr - 40) < 0.5


@pytest.fixture(scope="module")
def plume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plume")
    level_set_frames(folder, 1)
    rng = np.random.default_rng(7)
    ijk, values = random_grid(8, 10, 0.5, 1.0, 1)
    grid = SparseGrid(name="density", ijk=ijk, values=np.abs(values) + rng.random(len(values)).astype(np.float32),
                      grid_class="fog volume")
    write_vdb(folder / "fog.0001.vdb", [grid])
    (folder / "ls.0001.vdb").unlink()
    return folder


@pytest.mark.parametrize("extra", [
    ["--max-error", "0"], ["--max-error", "-0.1"], ["--max-error", "nan"], ["--max-error", "1", "--psnr", "40"],
    ["--max-error", "temperature=0.1"], ["--psnr", "-3"], ["--base-only", "--max-error", "0.1"], ["--gop", "4"],
])
def test_bad_quality_options_exit_2_with_one_line_and_write_nothing(plume: Path, tmp_path: Path, extra: list[str],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.nvox"
    assert main(["compress", str(plume), "-o", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neuralvox: error:"), err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_info_reports_the_bound_and_whole_archive_bits(plume: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.nvox"
    assert main(["compress", str(plume), "-o", str(out), "--quiet", "--max-error", "density=0.01"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    bits = 8 * out.stat().st_size / read_vdb(next(plume.glob("*.vdb"))).grids["density"].voxel_count
    assert f"{bits:.3f} bits per active voxel, headers included" in text
    assert "density=0.01" in text and "1.00e-02" in text
