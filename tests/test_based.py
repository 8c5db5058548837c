"""Values coded as the neural base plus a bounded residual (``--base``): every voxel within the bound through the torch
and the Warp decode of the base, the margin far above their difference, decode equal to encode on CPU, the choice
recorded and shown, old archives still read, bad requests refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, gaussian_pair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralvox.cli import main
from neuralvox.codec import base_choice
from neuralvox.codec.base_choice import BaseChoice
from neuralvox.codec.based import (
    BASE_STREAMS,
    MARGIN,
    BasedCoding,
    code_over_base,
    decode_based,
    encode_based,
    margins,
)
from neuralvox.codec.bounded import BoundedHeader
from neuralvox.codec.chunked import COUNTING, ChunkedHeader
from neuralvox.codec.decoder import open_archive
from neuralvox.codec.encoder import compress
from neuralvox.codec.header import BasedHeader, value_header_from_json
from neuralvox.codec.schema import check_header
from neuralvox.codec.values import EncodedValues, ValueStats, decode_values
from neuralvox.container import ArchiveFormatError, ArchiveReader
from neuralvox.grid import SparseGrid
from neuralvox.vdb import read_vdb, write_vdb


def kind_grid(kind: str) -> SparseGrid:
    """A small grid of each kind the base codes: a fog volume (values up to 1, or scaled to 3e4 over an offset of
    1e4), a vec3 grid, a level set (a ball's distances)."""
    ijk, values = gaussian_pair(size=12, seed=4)
    if kind == "fog":
        return SparseGrid(name="density", ijk=ijk, values=values)
    if kind == "scaled":
        return SparseGrid(name="temperature", ijk=ijk, values=(1e4 + 3e4 * values).astype(np.float32))
    if kind == "vec3":
        vectors = np.stack([values, -2.0 * values, np.sin(ijk[:, 0] / 3.0) * values], axis=1).astype(np.float32)
        return SparseGrid(name="vel", ijk=ijk, values=vectors, value_type="vec3s", vector_type="contravariant relative")
    distance = (np.linalg.norm(ijk - ijk.mean(axis=0), axis=1) - 3.0).astype(np.float32) * 0.1
    band = np.abs(distance) < 0.3
    return SparseGrid(name="surface", ijk=ijk[band], values=distance[band], grid_class="level set", background=0.3)


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[SparseGrid, BasedCoding]]:
    """Each kind coded over a base fitted once (the fit is the slow part; the properties below vary the rest)."""
    out = {}
    for kind in ("fog", "scaled", "vec3", "level set"):
        grid = kind_grid(kind)
        bound = 0.05 * float(grid.values.max() - grid.values.min())
        coded = encode_based(grid, bound, COUNTING, device="cpu")
        assert coded is not None
        out[kind] = (grid, coded)
    return out


def test_the_margin_is_far_above_the_torch_and_warp_difference_of_the_base(fitted: dict) -> None:
    for grid, coded in fitted.values():
        base = coded.header.base
        streams = {name: coded.streams[name] for name in BASE_STREAMS}
        by_torch = decode_values(grid.ijk, base, streams, device="cpu", backend="torch")
        by_warp = decode_values(grid.ijk, base, streams, device="cpu", backend="warp")
        difference = np.abs(by_torch.astype(np.float64) - by_warp).reshape(len(grid.ijk), -1).max(axis=0)
        assert np.all(difference <= np.asarray(coded.header.margin) / 100)
        assert coded.header.margin == margins(base.low, base.high)
        assert max(coded.header.margin) == pytest.approx(MARGIN * max(abs(v) for v in (*base.low, *base.high)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["fog", "scaled", "vec3", "level set"]), relative=st.sampled_from([0.3, 0.05, 3e-3]),
       noise=st.sampled_from([0.0, 0.1, 1.0]), seed=st.integers(0, 2**31))
def test_every_voxel_within_the_bound_through_each_base_decode(fitted: dict, kind: str, relative: float,
                                                               noise: float, seed: int) -> None:
    grid, coded = fitted[kind]
    base = coded.header.base
    low, high = np.asarray(base.low, np.float32), np.asarray(base.high, np.float32)
    rng = np.random.default_rng(seed)
    # values the base was not fitted to (within its value range: the margin is taken of that range)
    values = np.clip(grid.values + noise * (high - low) * rng.normal(size=grid.values.shape), low, high)
    changed = dataclasses.replace(grid, values=values.astype(np.float32))
    bound = relative * float((high - low).max())
    over = code_over_base(changed, bound, COUNTING, base, {name: coded.streams[name] for name in BASE_STREAMS})
    if over is None:  # refused only where the margin would take over a quarter of the bound
        assert max(coded.header.margin) > 0.25 * bound
        return
    header = value_header_from_json(json.loads(json.dumps(over.header.to_dict())))
    assert header == over.header
    for backend in ("torch", "warp"):
        decoded = decode_based(grid.ijk, header, over.streams, None, device="cpu", backend=backend)
        assert np.abs(decoded.astype(np.float64) - changed.values).max() <= bound
        if backend == "warp":  # the encoder's own values, bit for bit
            assert np.array_equal(decoded.view(np.uint32), over.decoded.view(np.uint32))


def test_a_bound_the_margin_would_eat_is_not_coded_over_a_base(fitted: dict) -> None:
    grid, coded = fitted["fog"]
    tight = 2 * max(coded.header.margin)
    assert code_over_base(grid, tight, COUNTING, coded.header.base,
                          {name: coded.streams[name] for name in BASE_STREAMS}) is None


def blob_sequence(folder: Path, frames: int = 2) -> list[Path]:
    paths = []
    for n in range(frames):
        ijk, values = gaussian_pair(size=14, seed=n)
        paths.append(write_vdb(folder / f"blob.{n + 1:04d}.vdb", [SparseGrid(name="density", ijk=ijk,
                                                                                  values=values)]))
    return paths


@pytest.fixture(scope="module")
def forced(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path, object]:
    folder = tmp_path_factory.mktemp("forced")
    paths = blob_sequence(folder)
    archive = folder / "on.nvox"
    report = compress([str(p) for p in paths], archive, max_error="2%", base="on", progress=False, device="cpu")
    return paths, archive, report


def test_forced_base_is_taken_every_voxel_within_the_bound_and_info_shows_it(forced: tuple, capsys) -> None:
    paths, archive, report = forced
    (grid_report,) = report.grids
    with open_archive(archive, device="cpu") as opened:
        headers = [opened.entry(n).grids["density"].values for n in opened.frames]
        assert all(isinstance(h, BasedHeader) for h in headers)
        assert opened.info().over_base == {"density": (2, 2)}
        worst = 0.0
        for number, path in zip(opened.frames, paths, strict=True):
            source = read_vdb(path).grids["density"].sorted()
            decoded = opened.frame(number)["density"]
            assert np.array_equal(decoded.ijk, source.ijk)
            worst = max(worst, float(np.abs(decoded.values.astype(np.float64) - source.values).max()))
    assert worst <= grid_report.bound
    assert worst == pytest.approx(grid_report.max_abs_error, rel=0, abs=0)  # the encoder's decode, on CPU
    assert main(["info", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "--base on" in out and "coded over the neural base: density 2 of 2 frames" in out


def test_a_time_reference_to_a_frame_coded_over_a_base_is_refused(forced: tuple) -> None:
    _, archive, _ = forced
    with ArchiveReader(archive) as reader:
        header, sizes = json.loads(json.dumps(reader.header)), {key: reader.nbytes(key) for key in reader}
    check_header(archive, header, sizes)
    bad = json.loads(json.dumps(header))
    bad["frames"][1]["grids"]["density"]["values"] = bad["frames"][1]["grids"]["density"]["values"]["residual"]
    bad["frames"][1]["grids"]["density"]["values"]["time_frame"] = 1
    with pytest.raises(ArchiveFormatError, match="time_frame"):
        check_header(archive, bad, sizes)
    bad = json.loads(json.dumps(header))
    bad["frames"][0]["grids"]["density"]["values"]["residual"]["bounds"] = [1.0]
    with pytest.raises(ArchiveFormatError, match="residual.bounds"):
        check_header(archive, bad, sizes)
    bad = json.loads(json.dumps(header))
    bad["frames"][0]["grids"]["density"]["values"]["base"]["shared_decoder"] = True
    with pytest.raises(ArchiveFormatError, match="base"):
        check_header(archive, bad, sizes)


def test_old_archives_still_decode_with_their_bounded_headers() -> None:
    with open_archive(FIXTURES / "blob_bounded.nvox", device="cpu") as archive:
        for number in archive.frames:
            assert isinstance(archive.entry(number).grids["density"].values, BoundedHeader)
            assert archive.frame(number)["density"].voxel_count > 0
        assert archive.info().over_base["density"][0] == 0


def fake_coding(value_bytes: int) -> BasedCoding:
    return BasedCoding(None, {}, np.zeros(1, np.float32), value_bytes, 0, 0.5)  # type: ignore[arg-type]


def alone_coding(value_bytes: int) -> EncodedValues:
    return EncodedValues(None, {"values": bytes(value_bytes), "context": bytes(99)},  # type: ignore[arg-type]
                         ValueStats(0.0, 0.0, 0.0, 0.0, 0), [], None, np.zeros(1, np.float32))


@pytest.mark.parametrize("base_bytes, taken", [(900, True), (1100, False)])
def test_auto_keeps_the_group_choice_of_its_first_frame(monkeypatch: pytest.MonkeyPatch, base_bytes: int,
                                                        taken: bool) -> None:
    calls = []
    monkeypatch.setattr(base_choice, "encode_based", lambda *args: calls.append(args) or fake_coding(base_bytes))
    grid = SparseGrid(name="density", ijk=np.zeros((1000, 3), np.int32), values=np.zeros(1000, np.float32))
    choice = BaseChoice("auto", "cpu")
    first, seconds = choice.code(grid, alone_coding(1000), 0.1, COUNTING)
    assert (first is not None) == taken and seconds == 0.5 and len(calls) == 1
    second, _ = choice.code(grid, alone_coding(1000), 0.1, COUNTING)
    assert (second is not None) == taken and len(calls) == 1 + taken  # a group where it lost tries no more
    choice.start_group()
    choice.code(grid, alone_coding(1000), 0.1, COUNTING)
    assert len(calls) == 2 + taken
    cheap = alone_coding(10)  # 0.08 bits a voxel: below what any base costs, so not even tried
    choice.start_group()
    assert choice.code(grid, cheap, 0.1, COUNTING) == (None, 0.0) and len(calls) == 2 + taken
    forced, _ = BaseChoice("on", "cpu").code(grid, alone_coding(10), 0.1, COUNTING)
    assert forced is not None


@pytest.mark.parametrize("extra", [["--base", "on", "--base-only"], ["--base", "sometimes"]])
def test_a_bad_base_request_is_one_line_exit_2_and_nothing_written(tmp_path: Path, capsys, extra: list[str]) -> None:
    paths = blob_sequence(tmp_path, frames=1)
    out = tmp_path / "bad.nvox"
    assert main(["compress", *map(str, paths), "-o", str(out), "--quiet", *extra]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--base" in error[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["blob.0001.vdb"]


def test_a_grid_coded_in_chunks_is_never_coded_over_the_base(tmp_path: Path) -> None:
    ijk, values = gaussian_pair(size=14, seed=2)
    apart = np.concatenate([ijk, ijk + 200]).astype(np.int32)
    path = write_vdb(tmp_path / "two.0001.vdb", [SparseGrid(name="density", ijk=apart,
                                                              values=np.concatenate([values, values]))])
    out = tmp_path / "chunked.nvox"
    with pytest.warns(UserWarning, match="chunks"):
        compress([str(path)], out, max_error="2%", base="on", progress=False, chunk_voxels=len(ijk) + 1,
                 context_model="counting")
    with open_archive(out, device="cpu") as archive:
        assert isinstance(archive.entry(1).grids["density"].values, ChunkedHeader)
        assert archive.info().over_base == {"density": (0, 1)}
