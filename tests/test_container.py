"""Tests for the .nvox archive container."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest

from neuralvox.atomic import OutputExistsError
from neuralvox.container import FORMAT_VERSION, ArchiveError, ArchiveReader, ArchiveWriter, describe_key

HEADER = {"frames": [{"number": 1001, "needs": ["groups/0"]}], "pattern": {"prefix": "smoke"}, "psnr": 46.5}


def random_payloads(seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    payloads = {"groups/0/density/weights": rng.bytes(300)}
    for frame in range(4):
        for grid in ("density", "velocity"):
            for stream in ("topology", "latents"):
                payloads[f"frames/{frame}/{grid}/{stream}"] = rng.bytes(int(rng.integers(20, 200)))
    payloads["frames/3/density/correction"] = b""
    payloads["frames/0/all_byte_values"] = bytes(range(256))
    return payloads


def write_archive(path, payloads: dict[str, bytes], header=HEADER) -> None:
    with ArchiveWriter(path) as archive:
        archive.set_header(header)
        for key, data in payloads.items():
            archive.put(key, data)


@pytest.fixture
def archive_path(tmp_path):
    path = tmp_path / "smoke.nvox"
    write_archive(path, random_payloads())
    return path


def test_round_trip_header_and_payloads(archive_path):
    payloads = random_payloads()
    with ArchiveReader(archive_path) as archive:
        assert archive.header == HEADER
        assert archive.keys() == list(archive) == list(payloads)
        for key, data in payloads.items():
            assert key in archive
            assert archive.nbytes(key) == len(data)
            assert archive.get(key) == data
        assert "frames/9/density/latents" not in archive
        assert archive.file_size == os.path.getsize(archive_path)


def test_stream_sizes_sum_over_frames_and_grids(archive_path):
    payloads = random_payloads()
    expected: dict[str, int] = {}
    for key, data in payloads.items():
        stream = key.split("/")[-1]
        expected[stream] = expected.get(stream, 0) + len(data)
    with ArchiveReader(archive_path) as archive:
        assert archive.stream_sizes() == expected


def test_layout_is_hdf5_with_format_mark_and_unfiltered_payloads(archive_path):
    with h5py.File(archive_path, "r") as file:
        assert file.attrs["format"] == b"neuralvox"
        assert file.attrs["format_version"] == FORMAT_VERSION
        assert file["payloads"].compression is None
        assert file["payloads"].chunks is None


def test_overhead_per_payload_is_small(tmp_path):
    path = tmp_path / "many.nvox"
    payloads = {f"frames/{frame}/grid{grid}/latents": bytes(50) for frame in range(10) for grid in range(20)}
    write_archive(path, payloads, header={})
    overhead = os.path.getsize(path) - sum(len(data) for data in payloads.values())
    assert overhead < 2500 + 16 * len(payloads)


def test_file_offset_points_at_the_payload_bytes(archive_path):
    raw = archive_path.read_bytes()
    with ArchiveReader(archive_path) as archive, h5py.File(archive_path, "r") as file:
        base = file["payloads"].id.get_offset()
        for key in archive:
            size = archive.nbytes(key)
            if size:
                offset = archive.file_offset(key)
                assert offset >= base
                assert raw[offset : offset + size] == archive.get(key)


@pytest.mark.parametrize("key", [key for key, data in random_payloads().items() if data])
def test_flipped_byte_detected_naming_frame_grid_and_stream(tmp_path, archive_path, key):
    with ArchiveReader(archive_path) as archive:
        offset = archive.file_offset(key) + archive.nbytes(key) // 2
    damaged = tmp_path / "damaged.nvox"
    shutil.copyfile(archive_path, damaged)
    with damaged.open("r+b") as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0x10]))
    with ArchiveReader(damaged) as archive:
        with pytest.raises(ArchiveError) as error:
            archive.get(key)
        assert str(error.value) == f"{damaged}: checksum mismatch in {describe_key(key)}"
        others = [other for other in archive if other != key]
        assert all(archive.get(other) == random_payloads()[other] for other in others)


def test_checksum_message_spells_out_frame_and_stream(tmp_path):
    path = tmp_path / "smoke.nvox"
    write_archive(path, {"frames/3/density/latents": b"\x01\x02\x03\x04"})
    with ArchiveReader(path) as archive:
        offset = archive.file_offset("frames/3/density/latents")
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with ArchiveReader(path) as archive, pytest.raises(ArchiveError) as error:
        archive.get("frames/3/density/latents")
    assert str(error.value) == f"{path}: checksum mismatch in frame 3, grid 'density', stream 'latents'"


def test_damaged_header_detected(tmp_path, archive_path):
    with h5py.File(archive_path, "r") as file:
        toc = file["toc"][()].tobytes()
    data = bytearray(archive_path.read_bytes())
    offset = bytes(data).index(toc) + 3  # a small table of contents is stored compact: find its bytes
    data[offset] ^= 0x01
    archive_path.write_bytes(bytes(data))
    # a compact table of contents sits inside its HDF5 object header, whose own checksum catches the flip first
    with pytest.raises(ArchiveError, match="checksum mismatch in the header|dataset 'toc' missing or malformed"):
        ArchiveReader(archive_path)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.99])
def test_truncated_file_refused(tmp_path, archive_path, fraction):
    data = archive_path.read_bytes()
    truncated = tmp_path / "cut.nvox"
    truncated.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ArchiveError) as error:
        ArchiveReader(truncated)
    assert str(error.value).startswith(f"{truncated}: ")


@pytest.mark.parametrize("content", [b"hello, this is not an archive\n", b"", b"\x89HDF\r\n\x1a\n" + b"\0" * 100])
def test_non_archive_file_refused(tmp_path, content):
    path = tmp_path / "x.nvox"
    path.write_bytes(content)
    with pytest.raises(ArchiveError) as error:
        ArchiveReader(path)
    assert str(error.value).startswith(f"{path}: ")


def test_foreign_hdf5_file_refused(tmp_path):
    path = tmp_path / "other.nvox"
    with h5py.File(path, "w") as file:
        file["payloads"] = np.zeros(4, np.uint8)
    with pytest.raises(ArchiveError, match="not a neuralvox archive"):
        ArchiveReader(path)


def test_newer_format_version_refused(archive_path):
    with h5py.File(archive_path, "r+") as file:
        file.attrs["format_version"] = np.int64(FORMAT_VERSION + 1)
    with pytest.raises(ArchiveError, match=f"format version {FORMAT_VERSION + 1} is newer"):
        ArchiveReader(archive_path)


def test_missing_payloads_dataset_named(archive_path):
    with h5py.File(archive_path, "r+") as file:
        del file["payloads"]
    with pytest.raises(ArchiveError, match="dataset 'payloads' missing"):
        ArchiveReader(archive_path)


def test_missing_file_and_folder_refused(tmp_path):
    with pytest.raises(ArchiveError, match="no such file"):
        ArchiveReader(tmp_path / "missing.nvox")
    with pytest.raises(ArchiveError, match="not a file"):
        ArchiveReader(tmp_path)


def test_unknown_key_named(archive_path):
    with ArchiveReader(archive_path) as archive, pytest.raises(ArchiveError) as error:
        archive.get("frames/7/flame/latents")
    assert str(error.value) == f"{archive_path}: no frame 7, grid 'flame', stream 'latents' in the archive"


def test_existing_output_refused_and_untouched(tmp_path):
    path = tmp_path / "smoke.nvox"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError), ArchiveWriter(path) as archive:
        archive.put("frames/0/density/latents", b"new")
    assert path.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["smoke.nvox"]


def test_force_replaces_existing_output(tmp_path):
    path = tmp_path / "smoke.nvox"
    path.write_bytes(b"old")
    with ArchiveWriter(path, force=True) as archive:
        archive.put("frames/0/density/latents", b"new")
    with ArchiveReader(path) as archive:
        assert archive.get("frames/0/density/latents") == b"new"


def test_exception_inside_writer_leaves_nothing(tmp_path):
    path = tmp_path / "smoke.nvox"
    with pytest.raises(KeyboardInterrupt), ArchiveWriter(path) as archive:
        archive.put("frames/0/density/latents", b"\x00" * 1000)
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_unserializable_header_refused_at_once(tmp_path):
    with pytest.raises(TypeError), ArchiveWriter(tmp_path / "smoke.nvox") as archive:
        archive.set_header({"values": np.zeros(3)})
    assert os.listdir(tmp_path) == []


def test_key_put_twice_refused(tmp_path):
    twice = "frame 0, grid 'density', stream 'latents' put twice"
    with pytest.raises(ValueError, match=twice), ArchiveWriter(tmp_path / "smoke.nvox") as archive:
        archive.put("frames/0/density/latents", b"a")
        archive.put("frames/0/density/latents", b"b")
    assert os.listdir(tmp_path) == []


def test_put_outside_with_block_refused(tmp_path):
    with pytest.raises(RuntimeError, match="outside its 'with' block"):
        ArchiveWriter(tmp_path / "smoke.nvox").put("frames/0/density/latents", b"a")


def test_reads_record_only_the_payloads_asked_for(archive_path):
    frame_two = ["groups/0/density/weights", "frames/2/density/topology", "frames/2/density/latents"]
    with ArchiveReader(archive_path) as archive:
        assert archive.reads == []
        for key in frame_two:
            archive.get(key)
        assert archive.header == HEADER
        archive.nbytes("frames/1/velocity/latents")
        assert archive.reads == frame_two


def test_empty_archive_round_trips(tmp_path):
    path = tmp_path / "empty.nvox"
    with ArchiveWriter(path):
        pass
    with ArchiveReader(path) as archive:
        assert archive.header == {}
        assert archive.keys() == []
        assert archive.stream_sizes() == {}


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("frames/3/density/latents", "frame 3, grid 'density', stream 'latents'"),
        ("groups/0/velocity/weights", "group 0, grid 'velocity', stream 'weights'"),
        ("frames/12/motion", "frame 12, stream 'motion'"),
        ("frames/1/fluid/density/latents", "frame 1, grid 'fluid/density', stream 'latents'"),
        ("model/weights", "payload 'model/weights'"),
    ],
)
def test_describe_key(key, text):
    assert describe_key(key) == text
