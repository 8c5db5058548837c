"""Benchmark: baselines round-trip within their stated error, bytes include topology, matched-PSNR rates, run_bench."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import soft_blob

from neuralvox.bench import BASELINE_METHODS, NEURALVOX, baselines, bpv_at_psnr, compare_at_psnr, plot, run_bench
from neuralvox.bench.baselines import code_topology
from neuralvox.grid import SparseGrid
from neuralvox.metrics import value_range
from neuralvox.topology import encode_topology
from neuralvox.vdb import VdbError, read_vdb, write_vdb

TOLERANCES = (1e-2, 1e-3)


def blob_frame(t: int) -> list[SparseGrid]:
    """A moving soft blob (float density, values not representable in half) and a vec3s velocity on its voxels."""
    ijk, values = soft_blob(np.arange(18), (8 + t, 9, 8), 20.0, (0.3, 0.9, t, 0.7))
    ijk = ijk - 4  # negative coordinates too
    velocity = np.stack([np.sin(0.3 * ijk[:, 1]), np.cos(0.2 * ijk[:, 0]), 0.05 * ijk[:, 2]], axis=1)
    return [SparseGrid(name="density", ijk=ijk, values=values, grid_class="fog volume"),
            SparseGrid(name="velocity", ijk=ijk, values=velocity.astype(np.float32), value_type="vec3s",
                       background=(0.0, 0.0, 0.0))]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("bench")
    paths = [folder / f"blob.{t + 1:04d}.vdb" for t in range(2)]
    for t, path in enumerate(paths):
        write_vdb(path, blob_frame(t))
    return paths


def _series(frames: list[Path], name: str) -> list[SparseGrid]:
    return [read_vdb(p, [name]).grids[name].sorted() for p in frames]


@pytest.mark.parametrize("name", ["density", "velocity"])
def test_every_baseline_rebuilds_each_frame_within_its_stated_error(frames: list[Path], name: str) -> None:
    series = _series(frames, name)
    peak = value_range(np.concatenate([g.values.ravel() for g in series]))
    for point in baselines(tolerances=TOLERANCES):
        if series[0].is_vector and not point.vectors:
            continue
        for grid in series:
            coded = point.run(grid, code_topology(grid) if point.needs_topology else None, peak)
            assert np.array_equal(coded.ijk, grid.ijk), point.label
            bound = np.broadcast_to(np.asarray(coded.error_bound, np.float64), grid.values.shape)
            error = np.abs(coded.values.astype(np.float64) - grid.values)
            assert np.all(error <= bound), f"{point.label}: max error {error.max()} above its bound"
            assert coded.nbytes > 0 and all(size >= 0 for size in coded.parts.values())


def test_lossy_baselines_do_lose_and_tolerances_order_their_errors(frames: list[Path]) -> None:
    grid = _series(frames, "density")[0]
    topology = code_topology(grid)
    peak = value_range(grid.values)
    for method in ("zfp", "sz3", "nanovdb-fpn"):
        coarse, fine = (p.run(grid, topology, peak) for p in baselines([method], tolerances=(1e-1, 1e-3)))
        coarse_error = np.abs(coarse.values - grid.values).max()
        fine_error = np.abs(fine.values - grid.values).max()
        assert 0 < fine_error < coarse_error <= 0.1 * peak * 1.0001, method
        assert coarse.nbytes < fine.nbytes, method
    half = baselines(["openvdb-half-blosc"])[0].run(grid, None, peak)
    assert 0 < np.abs(half.values - grid.values).max() <= np.abs(grid.values).max() * 2**-11


def test_payload_baselines_count_the_exact_topology_code(frames: list[Path]) -> None:
    grid = _series(frames, "density")[0]
    topology = code_topology(grid)
    expected = len(encode_topology(grid.ijk))
    for point in baselines(["zfp", "sz3", "zstd-float32", "zstd-float16"], tolerances=TOLERANCES):
        coded = point.run(grid, topology, 1.0)
        assert coded.parts["topology"] == expected > 0
        assert coded.nbytes == expected + coded.parts["payload"]
    whole_file = baselines(["openvdb-float32-blosc"])[0].run(grid, None, 1.0)
    assert whole_file.parts["file header"] > 0 and whole_file.parts["grid"] > 0


def test_zstd_float32_decode_is_exact(frames: list[Path]) -> None:
    for name in ("density", "velocity"):
        grid = _series(frames, name)[1]
        coded = baselines(["zstd-float32"])[0].run(grid, code_topology(grid), 1.0)
        assert coded.values.dtype == np.float32 and np.array_equal(coded.values, grid.values)


def test_bpv_at_psnr_interpolates_log_bpv_along_the_pareto_front() -> None:
    curve = [(16.0, 50.0), (1.0, 30.0), (10.0, 35.0), (4.0, 40.0), (64.0, math.inf)]  # (10, 35) is dominated
    assert bpv_at_psnr(curve, 35.0) == pytest.approx(2.0)
    assert bpv_at_psnr(curve, 45.0) == pytest.approx(8.0)
    assert bpv_at_psnr(curve, 40.0) == pytest.approx(4.0)
    assert bpv_at_psnr(curve, 29.0) is None and bpv_at_psnr(curve, 51.0) is None
    wins = compare_at_psnr((1.0, 35.0), curve)
    assert wins.factor == pytest.approx(2.0) and "neuralvox 2.00x smaller" in wins.verdict
    loses = compare_at_psnr((8.0, 35.0), curve)
    assert loses.factor == pytest.approx(0.25) and "neuralvox loses" in loses.verdict
    assert "neuralvox loses" in compare_at_psnr((70.0, 55.0), curve).verdict  # lossless at 64 bpv beats it
    assert "no match" in compare_at_psnr((0.5, 20.0), [(1.0, 30.0), (2.0, 32.0)]).verdict


@pytest.mark.slow
def test_run_bench_tables_every_method_and_plots(frames: list[Path], tmp_path: Path) -> None:
    result = run_bench(frames, methods=[*BASELINE_METHODS, NEURALVOX], qualities=("low",), device="cpu",
                       progress=False)
    table = result.table()
    assert [g.name for g in result.grids] == ["density", "velocity"]
    for method in (*BASELINE_METHODS, NEURALVOX):
        assert f"| {method} |" in table
    density, velocity = result.grids
    assert {p.method for p in velocity.points} == {*BASELINE_METHODS, NEURALVOX} - {
        "nanovdb-fp8", "nanovdb-fp16", "nanovdb-fpn"}
    assert {m for m, _ in velocity.skipped} == {"nanovdb-fp8", "nanovdb-fp16", "nanovdb-fpn"}
    assert all(p.within_bound for p in density.points if p.method != NEURALVOX)
    neural = [p for p in density.points if p.method == NEURALVOX]
    assert len(neural) == 1 and neural[0].parts["topology"] > 0 and math.isfinite(neural[0].psnr)
    assert density.source_bytes > 0 and all(p.ratio == density.source_bytes / p.nbytes for p in density.points)
    assert len(density.matches()) == len(BASELINE_METHODS) and "at neuralvox's PSNR" in table
    json.dumps(result.to_json(), allow_nan=False)
    png = plot(result, tmp_path / "rd.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_bench_names_bad_methods_and_grids(frames: list[Path]) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        run_bench(frames, methods=["gzip"], progress=False)
    with pytest.raises(ValueError, match="quality 'ultra'"):
        run_bench(frames, methods=["zstd-float32", NEURALVOX], qualities=["ultra"], progress=False)
    with pytest.raises(VdbError, match="no grid named temperature"):
        run_bench(frames, grids=["temperature"], methods=["zstd-float32"], progress=False)


def test_run_bench_codes_a_double_grid_that_is_empty_in_one_frame(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ijk = np.unique(rng.integers(-6, 6, (200, 3)), axis=0).astype(np.int32)
    for t, count in enumerate((len(ijk), 0)):
        grid = SparseGrid("d", ijk[:count], rng.random(count).astype(np.float32), value_type="double")
        write_vdb(tmp_path / f"d.{t + 1:04d}.vdb", [grid])
    result = run_bench(sorted(tmp_path.glob("*.vdb")), methods=list(BASELINE_METHODS), progress=False)
    (grid,) = result.grids
    assert grid.voxels == len(ijk) and not grid.skipped
    assert len({p.method for p in grid.points}) == len(BASELINE_METHODS)
    assert all(p.within_bound and p.nbytes > 0 for p in grid.points)
