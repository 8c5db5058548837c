"""Tests for the .nvox archive container."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import write_v1_archive
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralvox import container
from neuralvox.atomic import OutputExistsError
from neuralvox.container import (
    BLOCK_BYTES,
    FORMAT_VERSION,
    ArchiveError,
    ArchiveFormatError,
    ArchiveReader,
    ArchiveWriter,
    describe_key,
)
from neuralvox.packed_header import VOCABULARY, pack_header
from neuralvox.toc import (
    DEFLATE,
    DEFLATE_DICTIONARY,
    LZMA2,
    RAW,
    CheckedBlock,
    PayloadEntry,
    Toc,
    compress_table,
    pack_toc,
)
from neuralvox.toc_dictionary import DICTIONARY, SHA256
from neuralvox.varint import decode_varint, encode_varint

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


def test_layout_is_hdf5_with_format_mark_and_one_unfiltered_dataset(archive_path):
    with h5py.File(archive_path, "r") as file:
        assert not file.attrs
        assert list(file) == ["neuralvox"]  # the name is the format mark
        assert not file["neuralvox"].attrs
        assert file["neuralvox"][0] == FORMAT_VERSION == 4  # the version is the data's first byte
        assert file["neuralvox"].compression is None
        assert file["neuralvox"].chunks is None


def test_the_same_archive_twice_is_the_same_file(tmp_path):
    """No times recorded: the same header and payloads make the same bytes."""
    write_archive(tmp_path / "a.nvox", random_payloads())
    write_archive(tmp_path / "b.nvox", random_payloads())
    assert (tmp_path / "a.nvox").read_bytes() == (tmp_path / "b.nvox").read_bytes()


def hdf5_bytes(path):
    with h5py.File(path, "r") as file:
        return os.path.getsize(path) - file["neuralvox"].size


def test_hdf5_costs_under_140_bytes_below_64_kb_and_under_170_above(tmp_path):
    """The HDF5 structure around the data: superblock, root group, one bare dataset named as the format mark, with
    2-byte addresses and lengths where the file stays below 64 kB, 4-byte ones above; both read back."""
    below = (1 << 16) - 2 - container._HDF5_METADATA_BYTES  # the most data bytes with 2-byte addresses
    for name, size, most in (("small", 1000, 140), ("below", below - 200, 140), ("above", below + 1, 170)):
        payloads = {"frames/1/x/y": bytes(range(256)) * (size // 256) + bytes(size % 256)}
        write_archive(tmp_path / f"{name}.nvox", payloads, header={})
        assert hdf5_bytes(tmp_path / f"{name}.nvox") < most, name
        assert contents(tmp_path / f"{name}.nvox")[1:] == ({}, payloads)


@pytest.mark.parametrize(("data_bytes", "width"), [(0, 2), ((1 << 16) - 1026, 2), ((1 << 16) - 1025, 4),
                                                   ((1 << 32) - 1026, 4), ((1 << 32) - 1025, 8)])
def test_address_width_is_the_narrowest_the_file_allows(data_bytes, width):
    assert container._address_bytes(data_bytes) == width


def test_overhead_per_payload_is_small(tmp_path):
    path = tmp_path / "many.nvox"
    payloads = {f"frames/{frame}/grid{grid}/latents": bytes(50) for frame in range(10) for grid in range(20)}
    write_archive(path, payloads, header={})
    overhead = os.path.getsize(path) - sum(len(data) for data in payloads.values())
    assert overhead < 2500 + 16 * len(payloads)


def test_file_offset_points_at_the_payload_bytes(archive_path):
    raw = archive_path.read_bytes()
    with ArchiveReader(archive_path) as archive, h5py.File(archive_path, "r") as file:
        start = file["neuralvox"].id.get_offset()
        toc_bytes, after = decode_varint(raw, start + 1)  # after the version byte: the table's length, CRC, table
        base = after + 4 + toc_bytes
        for key in archive:
            size = archive.nbytes(key)
            if size:
                offset = archive.file_offset(key)
                assert offset >= base
                assert raw[offset : offset + size] == archive.get(key)


def flip_byte(source, dest, offset):
    data = bytearray(source.read_bytes())
    data[offset] ^= 0x10
    dest.write_bytes(bytes(data))


@pytest.mark.parametrize("key", [key for key, data in random_payloads().items() if data])
def test_flipped_byte_detected_naming_frame_grid_and_stream(tmp_path, archive_path, key):
    """These payloads share one checked block: a flip in one makes each of them refuse to read, naming itself."""
    with ArchiveReader(archive_path) as archive:
        offset = archive.file_offset(key) + archive.nbytes(key) // 2
    damaged = tmp_path / "damaged.nvox"
    flip_byte(archive_path, damaged, offset)
    with ArchiveReader(damaged) as archive:
        for other in [key, *archive]:
            if archive.nbytes(other):
                with pytest.raises(ArchiveError) as error:
                    archive.get(other)
                assert str(error.value).startswith(f"{damaged}: checksum mismatch in {describe_key(other)}")


def test_a_flip_spares_the_payloads_of_other_blocks(tmp_path):
    """Payloads over BLOCK_BYTES are checked alone, small ones in blocks of at most BLOCK_BYTES: a flip in one block
    leaves every other block readable."""
    rng = np.random.default_rng(3)
    half = BLOCK_BYTES // 2
    sizes = [BLOCK_BYTES + 5, 100, half, half, 50, BLOCK_BYTES * 2, 10]
    payloads = {f"frames/{n}/density/latents": rng.bytes(size) for n, size in enumerate(sizes)}
    path = tmp_path / "blocks.nvox"
    write_archive(path, payloads)
    blocks = [[0], [1, 2], [3, 4], [5], [6]]  # 100 + half fit; another half does not
    keys = list(payloads)
    for block in blocks:
        with ArchiveReader(path) as archive:
            offset = archive.file_offset(keys[block[-1]])
        flip_byte(path, tmp_path / "damaged.nvox", offset)
        with ArchiveReader(tmp_path / "damaged.nvox") as archive:
            for index, key in enumerate(keys):
                if index in block:
                    with pytest.raises(ArchiveError, match="checksum mismatch"):
                        archive.get(key)
                else:
                    assert archive.get(key) == payloads[key]


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
        offset = file["neuralvox"].id.get_offset() + 3
    flip_byte(archive_path, archive_path, offset)
    with pytest.raises(ArchiveError, match="checksum mismatch in the header"):
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
        file["neuralvox"][0] = FORMAT_VERSION + 1
    with pytest.raises(ArchiveError, match=f"format version {FORMAT_VERSION + 1} is newer"):
        ArchiveReader(archive_path)


def test_newer_format_version_in_a_version_2_attribute_refused(tmp_path):
    write_raw_v2(tmp_path / "a.nvox", table_bytes(PAYLOADS), b"abcdefgh")
    with h5py.File(tmp_path / "a.nvox", "r+") as file:
        file["archive"].attrs["format_version"] = np.int64(FORMAT_VERSION + 1)
    with pytest.raises(ArchiveError, match=f"format version {FORMAT_VERSION + 1} is newer"):
        ArchiveReader(tmp_path / "a.nvox")


def test_missing_dataset_is_no_archive(archive_path):
    with h5py.File(archive_path, "r+") as file:
        del file["neuralvox"]
    with pytest.raises(ArchiveError, match="not a neuralvox archive .*without the neuralvox format mark"):
        ArchiveReader(archive_path)


def test_missing_version_2_dataset_named(tmp_path):
    write_raw_v2(tmp_path / "a.nvox", table_bytes(PAYLOADS), b"abcdefgh")
    with h5py.File(tmp_path / "a.nvox", "r+") as file:
        del file["archive"]
    with pytest.raises(ArchiveError, match="dataset 'archive' or 'neuralvox' missing"):
        ArchiveReader(tmp_path / "a.nvox")


@pytest.mark.parametrize("data", [np.zeros(0, np.uint8), np.full(4, 3.0), np.full((2, 2), 3, np.uint8)])
def test_a_marked_dataset_that_cannot_hold_an_archive_is_refused(tmp_path, data):
    with h5py.File(tmp_path / "a.nvox", "w") as file:
        file["neuralvox"] = data
    with pytest.raises(ArchiveError, match="without its format version"):
        ArchiveReader(tmp_path / "a.nvox")


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


# ------------------------------------------------------------------------------------ container version 2
def write_raw_v2(path, table: bytes, payloads: bytes, *, toc_bytes=None, toc_crc=None) -> None:
    """A version 2 archive around a packed binary ``table`` (compressed here), checksum recomputed unless given."""
    toc = compress_table(table, version=2)
    with h5py.File(path, "w") as file:
        file.attrs["format"] = np.bytes_("neuralvox")
        dataset = file.create_dataset("archive", data=np.frombuffer(toc + payloads, np.uint8))
        dataset.attrs["format_version"] = np.int64(2)
        dataset.attrs["toc_bytes"] = np.int64(len(toc) if toc_bytes is None else toc_bytes)
        dataset.attrs["toc_crc32"] = np.uint32(zlib.crc32(toc) if toc_crc is None else toc_crc)


def table_bytes(payloads: dict[str, bytes], blocks=None, header=None) -> bytes:
    entries = tuple(PayloadEntry(key, len(data)) for key, data in payloads.items())
    if blocks is None:
        blocks = [CheckedBlock(len(entries), zlib.crc32(b"".join(payloads.values())))] if entries else []
    return pack_toc(Toc(HEADER if header is None else header, entries, tuple(blocks)), version=2)


def test_a_hand_built_version_2_archive_reads(tmp_path):
    payloads = {"frames/1/density/topology": b"abc", "frames/1/density/latents": b"defgh", "frames/1/x/y": b""}
    write_raw_v2(tmp_path / "a.nvox", table_bytes(payloads), b"".join(payloads.values()))
    with ArchiveReader(tmp_path / "a.nvox") as archive:
        assert archive.header == HEADER
        assert {key: archive.get(key) for key in archive} == payloads


def test_version_1_archives_still_read(tmp_path):
    payloads = random_payloads()
    rows = [[key, len(data), zlib.crc32(data)] for key, data in payloads.items()]
    toc = zlib.compress(json.dumps({"header": HEADER, "payloads": rows}).encode())
    write_v1_archive(tmp_path / "old.nvox", toc, b"".join(payloads.values()))
    with ArchiveReader(tmp_path / "old.nvox") as archive:
        assert archive.version == 1
        assert archive.header == HEADER
        assert {key: archive.get(key) for key in archive} == payloads


PAYLOADS = {"frames/1/density/topology": b"abc", "frames/1/density/latents": b"defgh"}
GOOD_CRC = zlib.crc32(b"abcdefgh")


@pytest.mark.parametrize(("table", "problem"), [
    (b"", "header length: the table ends inside a varint"),
    (None, "not an LZMA2 stream"),
    (b"\x05{}", "header: 5 bytes wanted"),
    (b"\x02[]\x00\x00", "header: not a JSON object"),
    (b"\x02{}" + b"\xff" * 11, "payload count: varint longer than 10 bytes"),
    (b"\x02{}\x01\x00\x00\x00\x00", "payload 0: empty key"),
    (b"\x02{}\x01\x03", "payload 0: shares 3 key bytes"),
    (b"\x02{}\x01\x00\x01\xff\x08", "payload 0: key is not UTF-8"),
    (b"\x02{}\x02\x00\x01a\x04\x01\x00\x04", "payload 1: key 'a' repeated"),
    (b"\x02{}\x01\x00\x01a\x09", "payload 0 ('a'): size 9 runs past the 8 payload bytes"),
    (b"\x02{}\x01\x00\x01a\x07", "sizes add up to 7 bytes, the archive holds 8"),
    (b"\x02{}\x01\x00\x01a\x08\x02", "2 checked blocks for 1 payloads"),
    (b"\x02{}\x01\x00\x01a\x08\x01\x00", "block 0: 0 payloads where 1 remain"),
    (b"\x02{}\x01\x00\x01a\x08\x00", "checked blocks cover 0 of 1 payloads"),
    (b"\x02{}\x01\x00\x01a\x08\x01\x01\x00", "block 0: checksum: 4 bytes wanted"),
    (b"\x02{}\x01\x00\x01a\x08\x01\x01" + GOOD_CRC.to_bytes(4, "little") + b"\x00",
     "1 bytes after the last checked block"),
    (b"\x02{}\x02\x00\x03aaa\x00\x00\x00\x08", "payload 1: empty key"),
])
def test_malformed_binary_table_is_refused_naming_the_field(tmp_path, table, problem):
    if table is None:  # not compressed at all
        toc = b"\x02{}\x00\x00"
        with h5py.File(tmp_path / "evil.nvox", "w") as file:
            file.attrs["format"] = np.bytes_("neuralvox")
            dataset = file.create_dataset("archive", data=np.frombuffer(toc + b"abcdefgh", np.uint8))
            dataset.attrs.update(format_version=np.int64(2), toc_bytes=np.int64(len(toc)),
                                 toc_crc32=np.uint32(zlib.crc32(toc)))
    else:
        write_raw_v2(tmp_path / "evil.nvox", table, b"abcdefgh")
    with pytest.raises(ArchiveFormatError) as error:
        ArchiveReader(tmp_path / "evil.nvox")
    assert error.value.field == "toc"
    assert problem in str(error.value)


def test_front_coded_keys_cannot_inflate_past_a_bound(tmp_path):
    long_key = b"k" * 1000
    rows = b"".join(b"\xe8\x07\x02" + bytes([65 + n // 26, 65 + n % 26]) + b"\x00" for n in range(200))  # share 1000
    table = b"\x02{}" + bytes([201, 1]) + b"\x00\xe8\x07" + long_key + b"\x00" + rows + b"\x00"
    write_raw_v2(tmp_path / "evil.nvox", table, b"")
    with pytest.raises(ArchiveFormatError, match="too long"):
        ArchiveReader(tmp_path / "evil.nvox")


@pytest.mark.parametrize("toc_bytes", [0, -1, 10**9])
def test_table_length_outside_the_dataset_is_refused(tmp_path, toc_bytes):
    write_raw_v2(tmp_path / "evil.nvox", table_bytes(PAYLOADS), b"abcdefgh", toc_bytes=toc_bytes)
    with pytest.raises(ArchiveFormatError, match="toc_bytes"):
        ArchiveReader(tmp_path / "evil.nvox")


def test_table_checksum_is_checked_before_it_is_inflated(tmp_path):
    write_raw_v2(tmp_path / "evil.nvox", table_bytes(PAYLOADS), b"abcdefgh", toc_crc=1234)
    with pytest.raises(ArchiveError, match="checksum mismatch in the header"):
        ArchiveReader(tmp_path / "evil.nvox")


def test_block_checksum_is_checked_on_read(tmp_path):
    write_raw_v2(tmp_path / "evil.nvox", table_bytes(PAYLOADS, blocks=[CheckedBlock(2, GOOD_CRC ^ 1)]), b"abcdefgh")
    with ArchiveReader(tmp_path / "evil.nvox") as archive, pytest.raises(ArchiveError, match="checksum mismatch"):
        archive.get("frames/1/density/latents")


def test_bomb_binary_table_is_refused(tmp_path):
    bomb = compress_table(b"\x80" * 9 + b"\x01" + b"\0" * (100 << 20), version=2)  # 100 MB of zeros in a few kB
    assert len(bomb) < 100_000
    with h5py.File(tmp_path / "bomb.nvox", "w") as file:
        file.attrs["format"] = np.bytes_("neuralvox")
        dataset = file.create_dataset("archive", data=np.frombuffer(bomb, np.uint8))
        dataset.attrs.update(format_version=np.int64(2), toc_bytes=np.int64(len(bomb)),
                             toc_crc32=np.uint32(zlib.crc32(bomb)))
    with pytest.raises(ArchiveFormatError, match="'toc': inflates past"):
        ArchiveReader(tmp_path / "bomb.nvox")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_edited_binary_tables_fail_cleanly(tmp_path_factory, edits):
    """Random byte edits of a real table (checksum recomputed): it reads, or one ArchiveError; never another error."""
    payloads = random_payloads()
    table = bytearray(table_bytes(payloads))
    for position, value in edits:
        table[position % len(table)] = value
    path = tmp_path_factory.mktemp("edit") / "e.nvox"
    write_raw_v2(path, bytes(table), b"".join(payloads.values()))
    _read_or_refuse(path)


def _read_or_refuse(path) -> None:
    """Open the archive and read every payload: each step succeeds or raises ArchiveError, never another error."""
    try:
        with ArchiveReader(path) as archive:
            for key in archive:
                with contextlib.suppress(ArchiveError):
                    assert isinstance(archive.get(key), bytes)
    except ArchiveError:
        pass


# ------------------------------------------------------------------------------------ container version 3
def write_raw_v3(path, stored: bytes, payloads: bytes, *, version=3, toc_bytes=None, toc_crc=None) -> None:
    """A version 3 archive around a stored table (method byte included), its length and checksum computed unless
    given."""
    prefix = bytes([version]) + encode_varint(len(stored) if toc_bytes is None else toc_bytes)
    prefix += (zlib.crc32(stored) if toc_crc is None else toc_crc).to_bytes(4, "little")
    with h5py.File(path, "w") as file:
        file.create_dataset("neuralvox", data=np.frombuffer(prefix + stored + payloads, np.uint8))


def table_v3(payloads: dict[str, bytes], header=HEADER, keys=None) -> bytes:
    """A version 3 table (uncompressed): the header and key parts packed together, sizes, one checked block."""
    keys = [key.split("/") for key in payloads] if keys is None else keys
    packed = pack_header([header, keys])
    out = encode_varint(len(packed)) + packed + b"".join(encode_varint(len(data)) for data in payloads.values())
    crc = zlib.crc32(b"".join(payloads.values())).to_bytes(4, "little")
    return out + encode_varint(1) + encode_varint(len(payloads)) + crc


@pytest.mark.parametrize("method", [RAW, LZMA2, DEFLATE])
def test_each_compression_method_reads(tmp_path, method):
    table = table_v3(PAYLOADS)
    stored = {RAW: table, LZMA2: compress_table(table, version=2), DEFLATE: zlib.compress(table, 9)[2:-4]}[method]
    write_raw_v3(tmp_path / "a.nvox", bytes([method]) + stored, b"abcdefgh")
    with ArchiveReader(tmp_path / "a.nvox") as archive:
        assert archive.header == HEADER
        assert {key: archive.get(key) for key in archive} == PAYLOADS


def test_the_shortest_method_is_kept():
    tiny, large = table_v3(PAYLOADS), table_v3(random_payloads(), header={"frames": [HEADER] * 50})
    assert compress_table(tiny, version=3) == bytes([RAW]) + tiny
    stored = compress_table(large, version=3)
    assert len(stored) < len(large) and stored[0] in (LZMA2, DEFLATE)
    for table in (tiny, large):  # version 4 has one method more
        assert len(compress_table(table)) <= len(compress_table(table, version=3))


def test_key_numbers_are_packed_as_integers(tmp_path):
    payloads = {"frames/12/density/latents": b"abc", "frames/0012/x": b"", "frames/13/density/latents": b"de"}
    path = tmp_path / "a.nvox"
    write_archive(path, payloads)
    with ArchiveReader(path) as archive:
        assert archive.keys() == list(payloads)
        assert {key: archive.get(key) for key in archive} == payloads


GOOD_V3 = b"abcdefgh"


@pytest.mark.parametrize(("stored", "problem"), [
    (b"", "'toc_bytes': 0 is not 1..8"),
    (b"\x07" + table_v3(PAYLOADS), "compression method 07 is none of raw (00), LZMA2 (01), deflate (02)"),
    (b"\x03" + table_v3(PAYLOADS), "compression method 03 is none of raw (00), LZMA2 (01), deflate (02)"),
    (b"\x01" + table_v3(PAYLOADS), "not an LZMA2 stream"),
    (b"\x02" + table_v3(PAYLOADS), "not a deflate stream"),
    (b"\x02" + zlib.compress(table_v3(PAYLOADS))[2:-10], "truncated"),
    (b"\x02" + zlib.compress(table_v3(PAYLOADS))[2:-4] + b"xyz", "3 bytes after the compressed table"),
    (b"\x00" + table_v3(PAYLOADS, keys=[["frames", 1, "density", "topology"]]), "sizes add up to 3 bytes"),
    (b"\x00" + table_v3(PAYLOADS, keys=[["a"], ["a"]]), "payload 1: key 'a' repeated"),
    (b"\x00" + table_v3(PAYLOADS, keys=[["a"], []]), "payload 1: key parts [] are not texts and numbers"),
    (b"\x00" + table_v3(PAYLOADS, keys=[["a"], ["b", -1]]), "payload 1: key parts"),
    (b"\x00" + table_v3(PAYLOADS, keys=[["a"], ["b", 1.5]]), "payload 1: key parts"),
    (b"\x00" + table_v3(PAYLOADS, keys=[["a"], [""]]), "payload 1: empty key"),
    (b"\x00" + table_v3(PAYLOADS, keys=[["a"], ["k" * 2000]]), "payload 1: key of 2000 bytes"),
    (b"\x00" + table_v3(PAYLOADS, header=[1]), "header: not a JSON object"),
    (b"\x00" + encode_varint(len(pack_header([HEADER]))) + pack_header([HEADER]),
     "header: not the header and the payload keys"),
    (b"\x00\x02" + bytes([99, 0]), "header: header: unknown tag 99"),
    (b"\x00" + table_v3(PAYLOADS) + b"\x00", "1 bytes after the last checked block"),
])
def test_malformed_version_3_table_is_refused_naming_the_field(tmp_path, stored, problem):
    write_raw_v3(tmp_path / "evil.nvox", stored, GOOD_V3)
    with pytest.raises(ArchiveFormatError) as error:
        ArchiveReader(tmp_path / "evil.nvox")
    assert error.value.field in ("toc", "toc_bytes")
    assert problem in str(error.value)
    assert str(error.value).startswith(f"{tmp_path / 'evil.nvox'}: malformed archive: field ")


@pytest.mark.parametrize("toc_bytes", [0, 10**9, 2**70])
def test_version_3_table_length_outside_the_dataset_is_refused(tmp_path, toc_bytes):
    write_raw_v3(tmp_path / "evil.nvox", b"\x00" + table_v3(PAYLOADS), GOOD_V3, toc_bytes=toc_bytes)
    with pytest.raises(ArchiveFormatError, match="toc_bytes"):
        ArchiveReader(tmp_path / "evil.nvox")


def test_version_3_table_checksum_is_checked(tmp_path):
    write_raw_v3(tmp_path / "evil.nvox", b"\x00" + table_v3(PAYLOADS), GOOD_V3, toc_crc=1234)
    with pytest.raises(ArchiveError, match="checksum mismatch in the header"):
        ArchiveReader(tmp_path / "evil.nvox")


@pytest.mark.parametrize("version", [0, 5, 255])
def test_unknown_version_byte_is_refused(tmp_path, version):
    write_raw_v3(tmp_path / "evil.nvox", b"\x00" + table_v3(PAYLOADS), GOOD_V3, version=version)
    with pytest.raises(ArchiveError, match=f"format version {version} is"):
        ArchiveReader(tmp_path / "evil.nvox")


@pytest.mark.parametrize("method", [LZMA2, DEFLATE])
def test_version_3_bombs_are_refused(tmp_path, method):
    zeros = b"\x80" * 9 + b"\x01" + b"\0" * (100 << 20)  # 100 MB of zeros in a few kB
    stored = {LZMA2: compress_table(zeros, version=2), DEFLATE: zlib.compress(zeros, 9)[2:-4]}[method]
    write_raw_v3(tmp_path / "bomb.nvox", bytes([method]) + stored, b"")
    with pytest.raises(ArchiveFormatError, match="'toc': inflates past"):
        ArchiveReader(tmp_path / "bomb.nvox")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_edited_version_3_tables_fail_cleanly(tmp_path_factory, edits):
    """Random byte edits of a real version 3 table (stored raw, checksum recomputed): it reads, or one ArchiveError;
    never another error."""
    payloads = random_payloads()
    entries = tuple(PayloadEntry(key, len(data)) for key, data in payloads.items())
    table = bytearray(pack_toc(Toc(HEADER, entries, (CheckedBlock(len(entries), zlib.crc32(
        b"".join(payloads.values()))),))))
    for position, value in edits:
        table[position % len(table)] = value
    path = tmp_path_factory.mktemp("edit") / "e.nvox"
    write_raw_v3(path, b"\x00" + bytes(table), b"".join(payloads.values()))
    _read_or_refuse(path)


# ------------------------------------------------------------------------------------ container version 4
@pytest.mark.parametrize("method", [RAW, LZMA2, DEFLATE, DEFLATE_DICTIONARY])
def test_each_version_4_compression_method_reads_and_the_new_ones_only_in_version_4(tmp_path, method):
    """Version 4's table is version 3's; its LZMA2 stream has one literal context bit, and deflate against the preset
    dictionary is a fourth method: read as version 3 both fail."""
    header = {"format": "neuralvox/2", "frames": [{"number": n, "low": [n * 0.37]} for n in range(200)]}
    table = table_v3(PAYLOADS, header=header)
    assert compress_table(table)[0] == LZMA2  # what the writer keeps for a table this long
    dictionary = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=DICTIONARY)
    stored = {RAW: bytes([RAW]) + table, LZMA2: compress_table(table),
              DEFLATE: bytes([DEFLATE]) + zlib.compress(table, 9)[2:-4],
              DEFLATE_DICTIONARY: bytes([DEFLATE_DICTIONARY]) + dictionary.compress(table) + dictionary.flush()}[method]
    write_raw_v3(tmp_path / "a.nvox", stored, b"abcdefgh", version=4)
    with ArchiveReader(tmp_path / "a.nvox") as archive:
        assert archive.header == header
        assert {key: archive.get(key) for key in archive} == PAYLOADS
    if method in (LZMA2, DEFLATE_DICTIONARY):
        write_raw_v3(tmp_path / "b.nvox", stored, b"abcdefgh", version=3)
        with pytest.raises(ArchiveFormatError, match="'toc'"):
            ArchiveReader(tmp_path / "b.nvox")


def test_a_version_4_dictionary_bomb_is_refused(tmp_path):
    zeros = b"\x80" * 9 + b"\x01" + b"\0" * (100 << 20)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=DICTIONARY)
    write_raw_v3(tmp_path / "bomb.nvox", bytes([DEFLATE_DICTIONARY]) + deflater.compress(zeros) + deflater.flush(), b"",
                 version=4)
    with pytest.raises(ArchiveFormatError, match="'toc': inflates past"):
        ArchiveReader(tmp_path / "bomb.nvox")


def test_a_short_table_is_deflated_against_the_dictionary_and_the_dictionary_is_frozen():
    """The dictionary is a format constant: its digest is pinned, and it is what scripts/make_toc_dictionary.py makes
    from the committed fixtures (if the packer ever packs them otherwise, keep the dictionary: archives need it)."""
    table = table_v3(PAYLOADS, header={"format": "neuralvox/2", "codec": {"quality": "low", "gop": "auto"},
                                       "report": [{"name": "density", "rmse": 0.25, "bound": None}]})
    assert compress_table(table)[0] == DEFLATE_DICTIONARY
    assert hashlib.sha256(DICTIONARY).hexdigest() == SHA256 == (
        "b5b50434688da1c62f08d5c3b74eed6820854616443f61379c468aef2509be8b")
    script = Path(__file__).resolve().parent.parent / "scripts" / "make_toc_dictionary.py"
    out = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert out.returncode == 0 and "same bytes" in out.stdout, out.stdout + out.stderr


def test_version_3_knows_only_its_own_vocabulary(tmp_path):
    """A string that version 4 added to the packed header's vocabulary ("neuralvox/2") is out of range in version 3."""
    table = table_v3(PAYLOADS, header={"format": "neuralvox/2"})
    write_raw_v3(tmp_path / "v3.nvox", b"\x00" + table, b"abcdefgh", version=3)
    known = VOCABULARY.index("neuralvox/2")
    with pytest.raises(ArchiveFormatError, match=f"string {known} of the {known} known"):
        ArchiveReader(tmp_path / "v3.nvox")
    write_raw_v3(tmp_path / "v4.nvox", b"\x00" + table, b"abcdefgh", version=4)
    with ArchiveReader(tmp_path / "v4.nvox") as archive:
        assert archive.header == {"format": "neuralvox/2"}


def test_writer_refuses_a_header_the_packed_form_cannot_hold(tmp_path):
    with ArchiveWriter(tmp_path / "a.nvox") as archive, pytest.raises(ValueError, match="out of range"):
        archive.set_header({"huge": 2**80})


# ------------------------------------------------------------------------------------ committed old archives
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def contents(path: Path) -> tuple[int, dict, dict[str, bytes]]:
    with ArchiveReader(path) as archive:
        return archive.version, archive.header, {key: archive.get(key) for key in archive}


def test_committed_version_1_2_and_3_archives_read_and_rewrite_smaller(tmp_path):
    """blob_base_only.nvox (container version 1), blob_base_only_v2.nvox and blob_base_only_v3.nvox (the same header
    and payloads, written by main's container version 2 at 75504f4 and version 3 at 046468c) read the same; rewritten
    today they read the same again, in fewer bytes."""
    v3, v2, v1 = (contents(FIXTURES / name) for name in ("blob_base_only_v3.nvox", "blob_base_only_v2.nvox",
                                                          "blob_base_only.nvox"))
    assert (v3[0], v2[0], v1[0]) == (3, 2, 1)
    assert v3[1:] == v2[1:] == v1[1:]
    write_archive(tmp_path / "now.nvox", v3[2], header=v3[1])
    assert contents(tmp_path / "now.nvox") == (FORMAT_VERSION, *v3[1:])
    assert os.path.getsize(tmp_path / "now.nvox") < os.path.getsize(FIXTURES / "blob_base_only_v2.nvox") - 400
    assert os.path.getsize(tmp_path / "now.nvox") < os.path.getsize(FIXTURES / "blob_base_only_v3.nvox") - 70


def test_without_the_hdf5_setters_h5py_lacks_the_archive_is_larger_and_reads(tmp_path, monkeypatch):
    write_archive(tmp_path / "small.nvox", random_payloads())
    monkeypatch.setattr(container, "_hdf5_function", lambda *_: None)
    write_archive(tmp_path / "plain.nvox", random_payloads())
    assert os.path.getsize(tmp_path / "plain.nvox") > os.path.getsize(tmp_path / "small.nvox") + 100
    assert contents(tmp_path / "plain.nvox") == contents(tmp_path / "small.nvox")
