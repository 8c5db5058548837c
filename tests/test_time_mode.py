"""The bounded codec's time mode: leaves predicted from the previous decoded frame, moved; the bound holds on every
voxel, decode equals encode bit for bit, the encoder picks the mode where it pays, archives decode in any order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralvox.cli import main
from neuralvox.codec.bounded import BoundedHeader, decode_bounded, encode_bounded
from neuralvox.codec.decoder import decompress, open_archive
from neuralvox.codec.encoder import compress
from neuralvox.codec.schema import check_header
from neuralvox.codec.temporal import REACH, TimeReference
from neuralvox.container import ArchiveFormatError, ArchiveReader
from neuralvox.grid import SparseGrid
from neuralvox.vdb import read_vdb, write_vdb


def rough_pair(seed: int, box: int, fill: float, scale: float, channels: int, motion: tuple[int, int, int],
               change: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A frame of rough values (white noise: the interpolation predicts it badly) and the next frame: the same
    voxels moved by ``motion``, their values changed by ``change`` times the scale, plus a few new voxels."""
    rng = np.random.default_rng(seed)
    axis = np.arange(box)
    cells = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    corner = rng.integers(-40, 40, 3).astype(np.int32)
    first = cells[rng.random(len(cells)) < fill].astype(np.int32) + corner
    values = (rng.normal(size=(len(first), channels)) * scale).astype(np.float32)
    extra = cells[rng.random(len(cells)) < 0.05].astype(np.int32) + corner + 3
    moved = first + np.array(motion, np.int32)
    second = np.unique(np.concatenate([moved, extra]), axis=0)
    rows = {tuple(v): i for i, v in enumerate(moved)}
    next_values = (rng.normal(size=(len(second), channels)) * scale).astype(np.float32)
    for i, voxel in enumerate(second):
        if tuple(voxel) in rows:
            next_values[i] = values[rows[tuple(voxel)]] + change * scale * rng.normal(size=channels)
    squeeze = (lambda v: v[:, 0]) if channels == 1 else (lambda v: v)
    return first, squeeze(values), second, squeeze(next_values.astype(np.float32))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), box=st.integers(2, 14), fill=st.floats(0.1, 1.0),
       scale=st.sampled_from([1e-6, 1.0, 3e4]), relative=st.sampled_from([1e-1, 1e-3, 1e-5]),
       channels=st.sampled_from([1, 3]), level_set=st.booleans(),
       motion=st.tuples(*[st.integers(-REACH, REACH)] * 3), change=st.sampled_from([0.0, 1e-3, 1.0]))
def test_every_voxel_within_the_bound_with_the_time_mode(seed: int, box: int, fill: float, scale: float,
                                                         relative: float, channels: int, level_set: bool,
                                                         motion: tuple[int, int, int], change: float) -> None:
    first, values, second, next_values = rough_pair(seed, box, fill, scale, channels, motion, change)
    bound = relative * scale
    background = 3.0 * scale if level_set else 0.0
    options = {"background": background, "inactive_known": not level_set}
    previous = encode_bounded(first, values, bound, **options)
    reference = TimeReference(7, first, previous.decoded)
    code = encode_bounded(second, next_values, bound, reference=reference, **options)
    assert np.all(np.abs(code.decoded.astype(np.float64) - next_values) <= bound)
    header = BoundedHeader.from_dict(code.header.to_dict())
    given_reference = reference if header.time_frame is not None else None
    decoded = decode_bounded(second, header, code.stream, reference=given_reference)
    assert np.array_equal(decoded.view(np.uint32), code.decoded.view(np.uint32))
    assert code.spatial_size is not None and len(code.stream) <= code.spatial_size
    if len(first) >= 200 and change == 0.0 and relative < 1e-1:  # a moved copy of noise: the time mode must win
        assert header.time_frame == 7 and len(code.stream) < 0.5 * code.spatial_size


def test_the_mode_is_chosen_where_it_pays_and_not_where_it_does_not() -> None:
    first, values, second, next_values = rough_pair(3, 16, 0.5, 1.0, 1, (1, 0, -2), 1e-4)
    previous = encode_bounded(first, values, 1e-3)
    moved = encode_bounded(second, next_values, 1e-3, reference=TimeReference(0, first, previous.decoded))
    alone = encode_bounded(second, next_values, 1e-3)
    assert moved.header.time_frame == 0 and len(moved.stream) < 0.5 * len(alone.stream)
    decoded = decode_bounded(second, moved.header, moved.stream, reference=TimeReference(0, first, previous.decoded))
    assert np.array_equal(decoded.view(np.uint32), moved.decoded.view(np.uint32))
    with pytest.raises(ValueError, match="predicted from frame 0"):
        decode_bounded(second, moved.header, moved.stream)
    with pytest.raises(ValueError, match="predicted from frame 0"):
        decode_bounded(second, moved.header, moved.stream, reference=TimeReference(1, first, previous.decoded))
    unrelated = np.random.default_rng(9).normal(size=len(values)).astype(np.float32)
    smooth_next = np.sin(0.2 * second[:, 0]).astype(np.float32)
    kept = encode_bounded(second, smooth_next, 1e-3, reference=TimeReference(0, first, unrelated))
    assert kept.header.time_frame is None
    assert kept.stream == encode_bounded(second, smooth_next, 1e-3).stream


def moving_sequence(folder: Path, frames: int = 5) -> list[Path]:
    """Frames of a rough density blob drifting one voxel a frame along x (noise the interpolation cannot predict)."""
    rng = np.random.default_rng(5)
    axis = np.arange(20)
    cells = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    ijk = cells[np.linalg.norm(cells - 9.5, axis=1) < 9].astype(np.int32)
    values = rng.random(len(ijk)).astype(np.float32)
    paths = []
    for n in range(frames):
        values = (values + 0.002 * rng.normal(size=len(values))).astype(np.float32)
        grid = SparseGrid(name="density", ijk=ijk + np.array([n, 0, 0], np.int32), values=values)
        paths.append(write_vdb(folder / f"blob.{n + 1:04d}.vdb", [grid]))
    return paths


def test_an_archive_in_the_time_mode_decodes_any_frame_alone_within_the_bound(tmp_path: Path) -> None:
    paths = moving_sequence(tmp_path)
    timed, off = tmp_path / "timed.nvox", tmp_path / "off.nvox"
    compress([str(p) for p in paths], timed, max_error="0.001", progress=False, context_model="counting")
    compress([str(p) for p in paths], off, max_error="0.001", progress=False, context_model="counting",
             time_mode="off")
    assert timed.stat().st_size < 0.6 * off.stat().st_size
    with open_archive(timed, device="cpu") as archive:
        sources = [archive.entry(n).grids["density"].values.time_frame for n in archive.frames]
        assert sources == [None, 1, 2, 3, 4]
        backwards = {n: archive.frame(n)["density"] for n in reversed(archive.frames)}
    for number, path in zip([1, 2, 3, 4, 5], paths, strict=True):
        original = read_vdb(path).grids["density"].sorted()
        decoded = backwards[number]
        assert np.array_equal(decoded.ijk, original.ijk)
        assert np.abs(decoded.values.astype(np.float64) - original.values).max() <= 0.001
    out = tmp_path / "out"
    written = decompress(timed, out, frames="4", progress=False, region=((0, 0, 0), (10, 30, 30)))
    region = read_vdb(written[0]).grids["density"]
    inside = backwards[4].ijk[:, 0] <= 10
    assert np.array_equal(region.sorted().values, backwards[4].values[inside])


def test_a_time_reference_to_a_frame_that_is_not_earlier_is_refused(tmp_path: Path) -> None:
    paths = moving_sequence(tmp_path, frames=3)
    timed = tmp_path / "timed.nvox"
    compress([str(p) for p in paths], timed, max_error="0.001", progress=False, context_model="counting")
    with ArchiveReader(timed) as reader:
        header, sizes = json.loads(json.dumps(reader.header)), {key: reader.nbytes(key) for key in reader}
    header["frames"][1]["grids"]["density"]["values"]["time_frame"] = 3
    with pytest.raises(ArchiveFormatError, match="time_frame"):
        check_header(timed, header, sizes)
    header["frames"][1]["grids"]["density"]["values"]["time_frame"] = "1"
    with pytest.raises(ArchiveFormatError, match="time_frame"):
        check_header(timed, header, sizes)


def test_the_command_line_turns_the_time_mode_off_and_refuses_an_unknown_mode(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    paths = moving_sequence(tmp_path, frames=3)
    out = tmp_path / "off.nvox"
    assert main(["compress", *map(str, paths), "-o", str(out), "--max-error", "0.001", "--context-model",
                 "counting", "--time-mode", "off", "--quiet"]) == 0
    with open_archive(out, device="cpu") as archive:
        assert all(archive.entry(n).grids["density"].values.time_frame is None for n in archive.frames)
    assert main(["compress", *map(str, paths), "-o", str(tmp_path / "x.nvox"), "--time-mode", "sometimes"]) == 2
    assert not (tmp_path / "x.nvox").exists()
    assert "--time-mode" in capsys.readouterr().err
