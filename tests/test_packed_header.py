"""Tests for the archive header's packed binary form (container version 3)."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralvox.container import ArchiveReader
from neuralvox.packed_header import (
    BACK,
    DATETIME,
    DECIMAL,
    INT,
    INT_DELTA,
    KNOWN_STRING,
    LIKE_NAMESAKE,
    LIST,
    LIST_LIKE_REF,
    OBJECT,
    OBJECT_LIKE_REF,
    SAME,
    SMALL_DELTA,
    SMALL_INT,
    STRING,
    STRING_MIDDLE,
    STRING_STEP,
    VOCABULARY,
    PackedHeaderError,
    identical,
    pack_header,
    unpack_header,
)
from neuralvox.varint import encode_varint

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.nvox"))

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32), st.text(max_size=12), st.sampled_from(["plume.0001.vdb", "plume.0002.vdb", "frame_9.vdb",
                                                                "frame_10.vdb", "2026-11-30T08:35:18.371028",
                                                                "density", "", "0", "007"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                    max_leaves=30)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=JSON)
def test_any_json_value_round_trips_exactly(value):
    assert identical(unpack_header(pack_header(value)), value)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(frames=st.lists(st.dictionaries(st.sampled_from(["number", "file", "low", "grids"]), JSON, max_size=4),
                       min_size=2, max_size=8))
def test_lists_of_objects_coded_against_earlier_items_round_trip(frames):
    header = {"frames": frames, "again": frames}
    assert identical(unpack_header(pack_header(header)), header)


def test_identical_tells_json_types_and_float_bits_apart():
    assert not identical(1, 1.0) and not identical(True, 1) and not identical(0.0, -0.0)
    assert identical(math.nan, math.nan) and not identical({"a": 1, "b": 2}, {"b": 2, "a": 1})


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.stem)
def test_real_headers_round_trip_in_a_fraction_of_their_json(path):
    header = ArchiveReader(path).header
    packed = pack_header(header)
    assert identical(unpack_header(packed), header)
    assert len(packed) < len(json.dumps(header, separators=(",", ":"))) / 4


def test_a_frame_like_the_one_before_costs_one_byte_a_member_that_repeats():
    frame = {"number": 1, "file": "plume.0001.vdb", "low": [0.25], "grids": {"density": {"voxels": 510}}}
    later = {"number": 2, "file": "plume.0002.vdb", "low": [0.25], "grids": {"density": {"voxels": 510}}}
    one = pack_header([frame])
    two = pack_header([frame, later])
    # the second frame: an object like the first, number + 1, the file's number + 1, the rest as before
    assert two[len(one) :] == bytes([OBJECT_LIKE_REF, SMALL_INT + 2, STRING_STEP, 2, SAME, SAME])
    assert len(pack_header([frame] * 100)) == len(one) + 99


def test_alternating_frames_are_coded_against_the_one_of_their_kind():
    key = {"key": True, "streams": ["latents", "weights"], "voxels": 900}
    predicted = {"key": False, "streams": ["residual", "motion"], "predicted": {"stride": 16}, "voxels": 1000}
    frames = [key, predicted, key, predicted]
    packed = pack_header(frames)
    assert packed.endswith(bytes([BACK, 2, SAME, BACK, 2, SAME]))
    assert unpack_header(packed) == frames


@pytest.mark.parametrize(("value", "packed"), [
    (5, bytes([SMALL_INT + 5])),
    ([1000, 1003], bytes([LIST, 2, 4]) + encode_varint(2000) + bytes([SMALL_DELTA + 35])),
    ([1000, 9000], bytes([LIST, 2, 4]) + encode_varint(2000) + bytes([INT_DELTA]) + encode_varint(16000)),
    (0.0010070801, bytes([DECIMAL]) + encode_varint(2 * 10070801) + encode_varint(2 * 10 - 1)),
    ("2026-11-30T08:35:18.371028", bytes([DATETIME]) + encode_varint(
        (datetime.datetime(2026, 11, 30, 8, 35, 18, 371028) - datetime.datetime(2000, 1, 1)).days * 86_400_000_000
        + (8 * 3600 + 35 * 60 + 18) * 1_000_000 + 371028)),
    ("density", bytes([KNOWN_STRING]) + encode_varint(VOCABULARY.index("density"))),
    (["somewhere", "somewhere"], bytes([LIST, 2, STRING, 9]) + b"somewhere" + bytes([SAME])),
    (["left-middle-right", "left-MID-right"], bytes([LIST, 2, STRING, 17]) + b"left-middle-right"
     + bytes([STRING_MIDDLE, 5, 6, 3]) + b"MID"),
    ([[1, 2], [1, 3]], bytes([LIST, 2, LIST, 2, SMALL_INT + 1, SMALL_INT + 2, LIST_LIKE_REF, SAME, SMALL_INT + 3])),
    ({"voxels": 3, "zz": 4}, bytes([OBJECT, 2, VOCABULARY.index("voxels") + 1, SMALL_INT + 3, 0, 2]) + b"zz"
     + bytes([SMALL_INT + 4])),
    ({"voxels": 700, "values": {"voxels": 700}}, bytes([OBJECT, 2, VOCABULARY.index("voxels") + 1, INT])
     + encode_varint(1400) + bytes([VOCABULARY.index("values") + 1, OBJECT, 1, VOCABULARY.index("voxels") + 1,
                                    LIKE_NAMESAKE])),
])
def test_each_coding(value, packed):
    assert pack_header(value) == packed
    assert identical(unpack_header(packed), value)


@pytest.mark.parametrize("value", [{1, 2}, {"a": b"bytes"}, 2**70, {3: "x"}])
def test_what_json_cannot_hold_is_refused_when_packed(value):
    with pytest.raises(ValueError, match="header"):
        pack_header(value)


def deep(levels: int) -> bytes:
    return bytes([LIST, 1]) * levels + bytes([SMALL_INT])


@pytest.mark.parametrize(("data", "problem"), [
    (b"", "header: 1 bytes wanted, 0 left"),
    (bytes([99]), "unknown tag 99"),
    (bytes([SAME]), "'same as before' where there is nothing before"),
    (bytes([SMALL_DELTA + 3]), "a difference from None, which is not an integer"),
    (bytes([LIST, 2, STRING, 1]) + b"a" + bytes([INT_DELTA, 2]), "a difference from 'a'"),
    (bytes([LIST, 2, STRING, 1]) + b"a" + bytes([STRING_STEP, 2]), "'a' has no number that moves so"),
    (bytes([LIST, 2, STRING, 1]) + b"9" + bytes([STRING_STEP, 2]), "'9' has no number that moves so"),
    (bytes([LIST, 2, STRING, 2]) + b"ab" + bytes([STRING_MIDDLE, 2, 1, 0]), "2 + 1 bytes shared with a string of 2"),
    (bytes([STRING_MIDDLE, 0, 0, 0]), "a string coded against None"),
    (bytes([KNOWN_STRING]) + encode_varint(len(VOCABULARY)), f"string {len(VOCABULARY)} of the"),
    (bytes([STRING, 2, 0xFF, 0xFE]), "not UTF-8"),
    (bytes([STRING, 5]) + b"ab", "5 bytes wanted, 2 left"),
    (bytes([OBJECT, 2, 1, SMALL_INT, 1, SMALL_INT]), "member 'format' repeated"),
    (bytes([OBJECT, 1]) + encode_varint(5000) + bytes([SMALL_INT]), "member name: string 4999 of the"),
    (bytes([LIST, 100, SMALL_INT]), "100 items in 1 bytes"),
    (bytes([OBJECT, 9]), "9 members in 0 bytes"),
    (bytes([LIST_LIKE_REF]), "a list as long as None"),
    (bytes([OBJECT, 1, VOCABULARY.index("low") + 1, LIKE_NAMESAKE]), "like an earlier 'low', where there is none"),
    (bytes([LIKE_NAMESAKE]), "unknown tag 19"),
    (bytes([OBJECT_LIKE_REF]), "an object like None"),
    (bytes([LIST, 3, SMALL_INT, SMALL_INT, BACK, 3, SMALL_INT]), "[2]: coded against the item 3 before it"),
    (bytes([LIST, 3, LIST, 0, LIST, 0, BACK, 1, SAME]), "[2]: coded against the item 1 before it"),
    (bytes([LIST, 6, *[SMALL_INT] * 5, BACK, 5, SAME]), "[5]: coded against the item 5 before it"),
    (bytes([DECIMAL, 2]) + encode_varint(2 * 401), "decimal exponent 401 out of range"),
    (bytes([DATETIME]) + encode_varint(10**18), "a date past the year 9999"),
    (bytes([SMALL_INT, SMALL_INT]), "1 bytes after the header"),
    (bytes([INT]) + b"\xff" * 11, "varint longer than 10 bytes"),
    (bytes([INT, 0x80]), "the header ends inside a varint"),
    (deep(70), "nested deeper than 64"),
])
def test_malformed_packed_headers_are_refused_saying_where(data, problem):
    with pytest.raises(PackedHeaderError) as error:
        unpack_header(data)
    assert problem in str(error.value)


def test_a_copy_bomb_is_refused():
    """'Same as before' copies: nesting lists of copies would unpack to 2**40 values from a few hundred bytes."""
    bomb = bytes([LIST, 2, SMALL_INT, SAME])
    for _ in range(40):
        bomb = bytes([LIST, 2]) + bomb + bytes([SAME])
    with pytest.raises(PackedHeaderError, match="more values than its"):
        unpack_header(bomb)


def test_a_string_copy_bomb_is_refused():
    """200 copies of a 10 kB string: 2 MB of text from 10 kB."""
    data = bytes([LIST]) + encode_varint(200) + bytes([STRING]) + encode_varint(10_000) + b"x" * 10_000
    with pytest.raises(PackedHeaderError, match="more values than its"):
        unpack_header(data + bytes([SAME]) * 199)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_edited_packed_headers_unpack_or_fail_cleanly(edits):
    """Random byte edits of a real packed header: a JSON value, or one PackedHeaderError; never another error."""
    data = bytearray(pack_header(ArchiveReader(FIXTURES[0]).header))
    for position, value in edits:
        data[position % len(data)] = value
    with contextlib.suppress(PackedHeaderError):
        json.dumps(unpack_header(bytes(data)))


def test_long_runs_of_digits_are_coded_whole_and_never_stepped():
    """A number moves only with at most 18 digits: a crafted run of 100,000 digits costs linear time, not more."""
    long_number = "1" * 100_000 + "x"
    value = [long_number, "1" * 99_999 + "2x"]
    assert unpack_header(pack_header(value)) == value
    data = bytes([LIST, 2, STRING]) + encode_varint(len(long_number)) + long_number.encode() + bytes([STRING_STEP, 2])
    with pytest.raises(PackedHeaderError, match="has no number that moves so"):
        unpack_header(data)
