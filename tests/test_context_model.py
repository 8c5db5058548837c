"""Neural context model: decode equals encode exactly, the bound holds, tables are exact, the weights are validated."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralvox.codec import arm, arm_fit
from neuralvox.codec.arm import ArmWeights, LatticePoint
from neuralvox.codec.bounded import BoundedHeader, decode_bounded, encode_bounded
from neuralvox.codec.chunked import sample_piece
from neuralvox.codec.context_coder import ContextStreamError
from neuralvox.codec.decoder import open_archive
from neuralvox.codec.encoder import compress
from neuralvox.codec.header import without_timing
from neuralvox.container import ArchiveReader
from neuralvox.grid import SparseGrid
from neuralvox.vdb import write_vdb


def smooth_grid(seed: int, box: int, channels: int = 1, level_set: bool = False) -> SparseGrid:
    """A sphere-ish shell of active voxels with a smooth field plus a little noise."""
    rng = np.random.default_rng(seed)
    axis = np.arange(box)
    i, j, k = np.meshgrid(axis, axis, axis, indexing="ij")
    radius = np.sqrt((i - box / 2) ** 2 + (j - box / 2) ** 2 + (k - box / 2) ** 2)
    active = (radius < box / 2) & (radius > (box / 2 - 3 if level_set else 0))
    ijk = np.stack([i[active], j[active], k[active]], axis=1).astype(np.int32)
    base = np.sin(0.2 * ijk[:, :1] + np.arange(channels)) * np.cos(0.15 * ijk[:, 1:2]) + 0.01 * rng.normal(
        size=(len(ijk), channels))
    if level_set:
        values = (radius[active] - (box / 2 - 1.5))[:, None] * 0.1 + 0.002 * rng.normal(size=(len(ijk), 1))
        return SparseGrid(name="surface", ijk=ijk, values=values[:, 0].astype(np.float32), grid_class="level set",
                          background=0.3)
    values = base.astype(np.float32)
    return SparseGrid(name="density", ijk=ijk, values=values[:, 0] if channels == 1 else values,
                      grid_class="fog volume", value_type="float" if channels == 1 else "vec3s")


def fitted(grid: SparseGrid, bound: float, iterations: int = 30) -> ArmWeights:
    features, codes, _ = arm_fit.training_codes([sample_piece(grid)], bound)
    return arm_fit.train_context(features, codes, hidden=8, iterations=iterations)


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), relative=st.sampled_from([1e-1, 1e-2, 1e-4]), channels=st.sampled_from([1, 3]),
       level_set=st.booleans())
def test_decode_with_the_context_model_equals_encode_and_holds_the_bound(seed: int, relative: float, channels: int,
                                                                         level_set: bool) -> None:
    grid = smooth_grid(seed % 1000, 24, 1 if level_set else channels, level_set)
    bound = relative * float(np.ptp(grid.values))
    weights = fitted(grid, bound)
    background = grid.background
    code = encode_bounded(grid.ijk, grid.values, bound, background=background,
                          inactive_known=not level_set, context=weights)
    assert np.all(np.abs(code.decoded.astype(np.float64) - grid.values) <= bound)
    header = BoundedHeader.from_dict(dataclasses.replace(code.header, context_frame=0).to_dict())
    decoded = decode_bounded(grid.ijk, header, code.stream, ArmWeights.from_bytes(weights.to_bytes()))
    assert np.array_equal(decoded.view(np.uint32), code.decoded.view(np.uint32))


def test_the_context_model_saves_bits_over_counting_contexts_on_a_smooth_field() -> None:
    grid = smooth_grid(3, 32)
    bound = 1e-3 * float(np.ptp(grid.values))
    counting = encode_bounded(grid.ijk, grid.values, bound)
    neural = encode_bounded(grid.ijk, grid.values, bound, context=fitted(grid, bound, iterations=300))
    assert len(neural.stream) < 0.97 * len(counting.stream)


def test_training_is_deterministic() -> None:
    grid = smooth_grid(5, 20)
    bound = 1e-2 * float(np.ptp(grid.values))
    assert fitted(grid, bound).to_bytes() == fitted(grid, bound).to_bytes()


def test_lattice_tables_match_the_laplace_law_computed_with_libm() -> None:
    for index in (0, 17, 1234, arm.LATTICE // 2, arm.LATTICE - 1):
        point = LatticePoint.of(index)
        table = point.table()
        assert np.all(table > 0) and len(table) == 2 * point.support + 2
        mu, scale, zero = point.mu_quarters / 4, point.scale, 1 - 0.5**point.zero_level

        def cdf(x: float, mu: float = mu, scale: float = scale) -> float:
            return 0.5 * math.exp((x - mu) / scale) if x < mu else 1 - 0.5 * math.exp(-(x - mu) / scale)

        for q in (-3, -1, 0, 1, 2, point.support):
            expected = (1 - zero) * (cdf(q + 0.5) - cdf(q - 0.5)) + (zero if q == 0 else 0.0)
            assert table[q + point.support] == pytest.approx(expected + arm._FLOOR, rel=1e-9, abs=1e-15)
    for x in (0.01, 1.0, 3.7, 64.0):
        assert arm._exp_neg(x) == pytest.approx(math.exp(-x), rel=1e-11)


def test_damaged_weights_raise_a_clear_error() -> None:
    grid = smooth_grid(2, 16)
    data = fitted(grid, 1e-2).to_bytes()
    bad = [data[:1], data[:-1], data + b"\0", b"\x02" + data[1:], data[:2] + b"\x07\x00" + data[4:]]
    for damaged in bad:
        with pytest.raises(ContextStreamError):
            ArmWeights.from_bytes(damaged)


def test_a_sequence_coded_with_the_context_model_decodes_within_the_bound_and_repeats_its_payloads(
        tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    grids = [smooth_grid(seed, 30) for seed in range(4)]
    for number, grid in enumerate(grids, 1):
        write_vdb(folder / f"fog.{number:04d}.vdb", [grid])
    first, second = tmp_path / "a.nvox", tmp_path / "b.nvox"
    for out in (first, second):
        report = compress([str(folder)], out, max_error="0.1%", device="cpu", progress=False)
    with ArchiveReader(first) as one, ArchiveReader(second) as other:
        assert one.keys() == other.keys() and all(one.get(key) == other.get(key) for key in one)
        assert without_timing(one.header) == without_timing(other.header)
    bound = report.grids[0].bound
    with open_archive(first, device="cpu") as archive:
        for number, grid in zip(archive.frames, grids, strict=True):
            decoded = archive.decode_grid(number, "density")
            assert np.max(np.abs(decoded.values.astype(np.float64) - grid.sorted().values)) <= bound
    assert "context" in report.grids[0].stream_bytes
