"""Sequence codec end to end: compress .vdb frames to .nvox, decode frames, checksums, random access, CLI errors."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import soft_blob

import neuralvox
from neuralvox.cli import main
from neuralvox.codec.encoder import compress
from neuralvox.codec.header import GridReport, payload_key
from neuralvox.container import ArchiveError, ArchiveReader, describe_key
from neuralvox.grid import SparseGrid
from neuralvox.metrics import error_stats
from neuralvox.vdb import read_vdb, write_vdb

pytestmark = pytest.mark.slow  # fits the neural base over sequences of frames

FRAMES = 4


def blob_frame(t: int) -> list[SparseGrid]:
    """A soft moving blob: density (fog volume, half float) and a vec3s velocity on the same voxels."""
    ijk, values = soft_blob(np.arange(24), (10 + t, 12, 11 - 0.5 * t), 30.0, (0.2, 0.7, 0.3 * t, 0.5))
    velocity = np.stack([np.sin(0.2 * ijk[:, 1]), np.cos(0.2 * ijk[:, 0]), 0.1 * ijk[:, 2] / 24], axis=1)
    transform = np.diag([0.05, 0.05, 0.05, 1.0])
    transform[3, :3] = [-0.6, 0.0, -0.6]
    meta = {"creator_note": "test blob", "frame_index": t}
    return [
        SparseGrid(name="density", ijk=ijk, values=values, grid_class="fog volume", save_half=True,
                   transform=transform, metadata=meta, metadata_types={"frame_index": "int32"}),
        SparseGrid(name="vel", ijk=ijk, values=velocity.astype(np.float32), value_type="vec3s",
                   background=(0.0, 0.0, 0.0), transform=transform),
    ]


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("blob")
    for t in range(FRAMES):
        write_vdb(folder / f"blob.{t + 1:04d}.vdb", blob_frame(t), metadata={"scene": "blob"})
    return folder


@pytest.fixture(scope="module")
def archive(sequence: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("nvox") / "blob.nvox"
    report = compress([str(sequence)], out, quality="low", base_only=True, device="cpu", gop=3, progress=False)
    return out, report


def test_round_trip_matches_the_recorded_errors_and_keeps_exact_topology(sequence: Path, archive) -> None:
    path, report = archive
    recorded = {g.name: g for g in report.grids}
    with neuralvox.open(path, device="cpu") as nvox:
        assert nvox.frames == [1, 2, 3, 4]
        worst = {"density": 0.0, "vel": 0.0}
        for number in nvox.frames:
            source = read_vdb(sequence / f"blob.{number:04d}.vdb")
            frame = nvox.frame(number)
            for name in ("density", "vel"):
                original, decoded = source.grids[name].sorted(), frame[name]
                assert np.array_equal(decoded.ijk, original.ijk)
                stats = error_stats(original.values, decoded.values, peak=1.0)
                worst[name] = max(worst[name], stats.max_abs_error)
                assert decoded.grid_class == original.grid_class and decoded.value_type == original.value_type
                assert np.array_equal(decoded.transform, original.transform)
                assert decoded.metadata == original.metadata
    for name, err in worst.items():
        assert err == pytest.approx(recorded[name].max_abs_error, rel=1e-6)
    assert recorded["density"].psnr > 25
    assert recorded["density"].ratio > 1


def test_the_stored_report_reads_back_as_compress_reported_it(archive) -> None:
    """neuralvox/2 stores neither the report's figures that the frames and payloads give nor file names that the
    pattern gives: read back, they are what compress reported (the coding time to the millisecond)."""
    path, report = archive
    with neuralvox.open(path, device="cpu") as nvox:
        header = nvox.reader.header
        summary = nvox.info().summary
        names = [nvox.frame(number).file_name for number in nvox.frames]
    assert header["format"] == "neuralvox/2" and not any("file" in frame for frame in header["frames"])
    assert all(list(entry) == list(GridReport.STORED) for entry in header["report"])
    assert names == [f"blob.{number:04d}.vdb" for number in range(1, FRAMES + 1)]
    for read, written in zip(summary.report, report.grids, strict=True):
        assert read == dataclasses.replace(written, fit_seconds=round(written.fit_seconds, 3))
        assert list(read.stream_bytes) == list(written.stream_bytes)  # info --json prints them in this order
        assert (read.psnr, read.ratio, read.bpv) == (written.psnr, written.ratio, written.bpv)


def test_decoding_is_deterministic(archive) -> None:
    path, _ = archive
    with neuralvox.open(path, device="cpu") as a, neuralvox.open(path, device="cpu") as b:
        assert np.array_equal(a.frame(3)["vel"].values, b.frame(3)["vel"].values)


def test_decoding_frame_k_reads_only_what_it_needs(archive) -> None:
    path, _ = archive
    with neuralvox.open(path, device="cpu") as nvox:
        nvox.frame(3)["density"]
        reads = set(nvox.reader.reads)
    # gop=3: frames 1-3 form a group, frame 4 starts the next; frame 3 is predicted from frame 2, which is predicted
    # from keyframe 1: it reads the group's weights and keyframe latents, the motion and residual of frames 2 and 3,
    # and the topologies on the way; never frame 4, nor another grid's values.
    assert {payload_key(1, "density", "latents"), payload_key(1, "density", "weights")} <= reads
    assert {payload_key(n, "density", s) for n in (2, 3) for s in ("motion", "residual")} <= reads
    assert not any(key.startswith("frames/4/") for key in reads)
    assert not any("/vel/" in key for key in reads if not key.endswith("/topology"))


def test_decompress_writes_the_source_names_and_vdb_print_reads_them(sequence: Path, archive, tmp_path: Path) -> None:
    path, _ = archive
    out = tmp_path / "out"
    assert main(["decompress", str(path), "-o", str(out), "--frames", "2-3", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["blob.0002.vdb", "blob.0003.vdb"]
    decoded = read_vdb(out / "blob.0002.vdb")
    source = read_vdb(sequence / "blob.0002.vdb")
    assert decoded.grids.keys() == source.grids.keys()
    assert decoded.metadata["scene"] == "blob"
    for name, grid in source.grids.items():
        assert decoded.grids[name].voxel_count == grid.voxel_count
        assert decoded.grids[name].save_half == grid.save_half
    if shutil.which("vdb_print"):
        text = subprocess.run(["vdb_print", "-l", str(out / "blob.0003.vdb")], check=True, capture_output=True,
                              text=True).stdout
        assert "fog volume" in text and "Name: vel" in text


def flip_byte(path: Path, key: str, dest: Path) -> Path:
    shutil.copy(path, dest)
    with ArchiveReader(dest) as reader:
        offset = reader.file_offset(key) + reader.nbytes(key) // 2
    data = bytearray(dest.read_bytes())
    data[offset] ^= 0x5A
    dest.write_bytes(bytes(data))
    return dest


@pytest.mark.parametrize("stream", ["topology", "latents", "weights"])
def test_flipped_byte_is_caught_naming_frame_and_stream(archive, tmp_path: Path, stream: str) -> None:
    """Small payloads are checked in blocks: the error names the payload being read and the block's range, which
    holds the damaged one."""
    path, _ = archive
    broken = flip_byte(path, payload_key(1, "density", stream), tmp_path / "broken.nvox")
    with neuralvox.open(broken, device="cpu") as nvox, pytest.raises(ArchiveError) as error:
        nvox.frame(1)["density"]
    message = str(error.value)
    assert "checksum mismatch in frame 1, grid 'density', stream" in message
    first, _, last = message.rpartition("(")[2].partition(" payloads, ")[2].rstrip(")").partition(" to ")
    with ArchiveReader(path) as reader:
        keys = reader.keys()
    described = [describe_key(key) for key in keys]
    block = keys[described.index(first) : described.index(last) + 1]
    assert payload_key(1, "density", stream) in block


def test_truncated_archive_is_refused(archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = archive
    cut = tmp_path / "cut.nvox"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises(ArchiveError, match="cut.nvox"):
        neuralvox.open(cut)
    assert main(["decompress", str(cut), "-o", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(sequence: Path, archive, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.nvox"
    cases = [
        ["compress", "-o", str(out)],  # no inputs
        ["compress", str(sequence), "-o", str(out), "--grids", "smoke"],  # unknown grid
        ["compress", str(tmp_path / "missing.vdb"), "-o", str(out)],
        ["compress", str(sequence), "-o", str(archive[0])],  # existing output without --force
        ["decompress", str(archive[0]), "-o", str(tmp_path / "d"), "--frames", "9"],
    ]
    before = archive[0].read_bytes()
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error" in err, (argv, err)
    assert not out.exists() and not (tmp_path / "d").exists()
    assert archive[0].read_bytes() == before


def test_nan_values_are_refused_naming_file_and_grid(tmp_path: Path) -> None:
    grids = blob_frame(0)
    grids[0].values[5] = np.nan
    write_vdb(tmp_path / "nan.0001.vdb", grids)
    with pytest.raises(ValueError, match=r"nan\.0001\.vdb: grid 'density' has 1 NaN/Inf"):
        compress([str(tmp_path / "nan.0001.vdb")], tmp_path / "nan.nvox", progress=False, device="cpu")
    assert not (tmp_path / "nan.nvox").exists()


def test_archive_info_reports_streams_and_errors(archive, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(archive[0])]) == 0
    text = capsys.readouterr().out
    assert "4 frames (1-4)" in text and "density" in text and "topology" in text


def test_render_of_a_missing_frame_is_one_clean_line(archive, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(archive[0]), "--frame", "99", "-o", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuralvox: error: ") and "no frame 99" in err and "'" not in err.split("error: ")[1][:1]
    assert not (tmp_path / "r.png").exists()
    assert main(["render", str(archive[0]), "--frame", "2", "-o", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("channels", [1, 3])
def test_error_stats_over_slices_of_rows_match_the_whole_computation(channels: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from neuralvox import metrics

    rng = np.random.default_rng(4)
    original = rng.normal(size=(10_000, channels)).astype(np.float32).squeeze()
    decoded = (original + rng.uniform(-0.01, 0.01, size=original.shape)).astype(np.float32)
    diff = decoded.astype(np.float64) - original.astype(np.float64)
    whole = metrics.error_stats(original, decoded, peak=2.0)  # one slice: the computation as before
    assert whole.rmse == float(np.sqrt(np.mean(diff**2))) and whole.max_abs_error == float(np.abs(diff).max())
    monkeypatch.setattr(metrics, "_STATS_ROWS", 777)
    sliced = metrics.error_stats(original, decoded, peak=2.0)
    assert sliced.max_abs_error == whole.max_abs_error and sliced.voxels == whole.voxels
    assert sliced.rmse == pytest.approx(whole.rmse, rel=1e-12) and sliced.psnr == pytest.approx(whole.psnr, rel=1e-12)
