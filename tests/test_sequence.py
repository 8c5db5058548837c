"""Tests for frame discovery and naming."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import BLENDER, needs_blender

from neuralvox.sequence import Frame, FrameSequence, NamePattern, SequenceError, discover


def touch_all(folder: Path, names: list[str]) -> list[Path]:
    paths = [folder / name for name in names]
    for path in paths:
        path.touch()
    return paths


@pytest.mark.parametrize(
    ("names", "prefix", "separator", "padding", "numbers"),
    [
        (["smoke.0001.vdb", "smoke.0002.vdb", "smoke.0003.vdb"], "smoke", ".", 4, [1, 2, 3]),
        (["smoke_0001.vdb", "smoke_0002.vdb"], "smoke", "_", 4, [1, 2]),
        ([f"fluid_data_{n:04d}.vdb" for n in range(1, 11)], "fluid_data", "_", 4, list(range(1, 11))),
        (["smoke-001.vdb", "smoke-002.vdb", "smoke-099.vdb"], "smoke", "-", 3, [1, 2, 99]),
        ([f"smoke.{n}.vdb" for n in range(1, 12)], "smoke", ".", 0, list(range(1, 12))),
        (["smoke.1001.vdb", "smoke.1002.vdb", "smoke.1003.vdb"], "smoke", ".", 4, [1001, 1002, 1003]),
        (["smoke0008.vdb", "smoke0009.vdb", "smoke0010.vdb"], "smoke", "", 4, [8, 9, 10]),
        (["cache.v2.0999.vdb", "cache.v2.1000.vdb"], "cache.v2", ".", 4, [999, 1000]),
        (["smoke.9.vdb", "smoke.10.vdb", "smoke.100.vdb"], "smoke", ".", 0, [9, 10, 100]),
    ],
)
def test_naming_conventions_parsed_and_reproduced(tmp_path, names, prefix, separator, padding, numbers):
    shuffled = touch_all(tmp_path, names)
    random.Random(0).shuffle(shuffled)
    sequence = discover(shuffled)
    assert sequence.pattern == NamePattern(prefix, separator, padding, ".vdb")
    assert sequence.numbers == numbers
    assert [path.name for path in sequence.paths] == [sequence.name_for(number) for number in numbers]
    assert sorted(sequence.name_for(number) for number in numbers) == sorted(names)


def test_frames_sorted_numerically_not_by_text(tmp_path):
    touch_all(tmp_path, ["smoke.10.vdb", "smoke.2.vdb", "smoke.1.vdb"])
    sequence = discover([tmp_path])
    assert sequence.numbers == [1, 2, 10]
    assert [path.name for path in sequence.paths] == ["smoke.1.vdb", "smoke.2.vdb", "smoke.10.vdb"]


def test_gaps_reported_not_refused(tmp_path):
    touch_all(tmp_path, ["smoke.1001.vdb", "smoke.1002.vdb", "smoke.1005.vdb", "smoke.1007.vdb"])
    sequence = discover([tmp_path])
    assert len(sequence) == 4
    assert sequence.gaps() == [1003, 1004, 1006]


def test_no_gaps_in_contiguous_sequence(tmp_path):
    touch_all(tmp_path, ["smoke.0001.vdb", "smoke.0002.vdb"])
    assert discover([tmp_path]).gaps() == []


def test_two_sequences_refused_with_both_patterns(tmp_path):
    paths = touch_all(tmp_path, ["smoke.0001.vdb", "smoke.0002.vdb", "fire.0001.vdb"])
    with pytest.raises(SequenceError) as error:
        discover(paths)
    assert str(error.value) == "two sequences given: 'smoke.####.vdb' and 'fire.####.vdb'; pass one at a time"


@pytest.mark.parametrize(
    "names",
    [
        ["smoke.0001.vdb", "smoke_0002.vdb"],
        ["smoke.0001.vdb", "smoke.vdb"],
        ["smoke.vdb", "fire.vdb"],
        ["smoke.0001.vdb", "fire.0001.vdb", "steam.0001.vdb"],
    ],
)
def test_different_naming_is_another_sequence(tmp_path, names):
    with pytest.raises(SequenceError, match="sequences given") as error:
        discover(touch_all(tmp_path, names))
    assert "pass one at a time" in str(error.value)


def test_folder_input_takes_only_its_vdb_files(tmp_path):
    touch_all(tmp_path, ["smoke.0001.vdb", "smoke.0002.vdb", "SOURCE.md", "notes.txt"])
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "fire.0001.vdb").touch()
    sequence = discover([str(tmp_path)])
    assert [path.name for path in sequence.paths] == ["smoke.0001.vdb", "smoke.0002.vdb"]


def test_glob_pattern_expanded_when_shell_did_not(tmp_path):
    touch_all(tmp_path, ["smoke.0001.vdb", "smoke.0002.vdb", "smoke.0003.vdb", "fire.0001.vdb"])
    sequence = discover([str(tmp_path / "smoke.*.vdb")])
    assert sequence.numbers == [1, 2, 3]
    assert all(path.exists() for path in sequence.paths)


def test_duplicates_removed(tmp_path):
    first, second = touch_all(tmp_path, ["smoke.0001.vdb", "smoke.0002.vdb"])
    sequence = discover([first, str(first), tmp_path, str(tmp_path / "smoke.*.vdb"), second])
    assert sequence.numbers == [1, 2]


def test_single_file_without_number(tmp_path):
    (path,) = touch_all(tmp_path, ["explosion.vdb"])
    sequence = discover([path])
    assert sequence.frames == [Frame(None, path)]
    assert sequence.name_for(None) == "explosion.vdb"
    assert sequence.gaps() == []


def test_single_numbered_file(tmp_path):
    (path,) = touch_all(tmp_path, ["smoke.0042.vdb"])
    sequence = discover([path])
    assert sequence.numbers == [42]
    assert sequence.name_for(42) == "smoke.0042.vdb"


@pytest.mark.parametrize(
    ("make", "argument", "message"),
    [
        (lambda folder: None, "missing.0001.vdb", "missing.0001.vdb: no such file"),
        (lambda folder: (folder / "notes.txt").touch(), "notes.txt", "notes.txt: not a .vdb file"),
        (lambda folder: (folder / "empty").mkdir(), "empty", "empty: folder holds no .vdb files"),
        (lambda folder: None, "smoke.*.vdb", "smoke.*.vdb: no files match"),
    ],
)
def test_bad_argument_named_in_error(tmp_path, monkeypatch, make, argument, message):
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    with pytest.raises(SequenceError) as error:
        discover([argument])
    assert str(error.value) == message


def test_no_arguments_refused():
    with pytest.raises(SequenceError, match="no input files"):
        discover([])


def test_same_frame_from_two_folders_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = touch_all(tmp_path / "a", ["smoke.0001.vdb"])[0]
    second = touch_all(tmp_path / "b", ["smoke.0001.vdb"])[0]
    with pytest.raises(SequenceError, match="frame 1 given twice") as error:
        discover([first, second])
    assert str(first) in str(error.value) and str(second) in str(error.value)


def test_inconsistent_padding_names_the_odd_file(tmp_path):
    touch_all(tmp_path, ["smoke.0001.vdb", "smoke.0002.vdb", "smoke.3.vdb"])
    with pytest.raises(SequenceError, match=r"smoke\.3\.vdb: frame number does not follow the zero padding"):
        discover([tmp_path])


def test_same_number_padded_twice_refused(tmp_path):
    touch_all(tmp_path, ["smoke.01.vdb", "smoke.001.vdb"])
    with pytest.raises(SequenceError, match="smoke.001.vdb"):
        discover([tmp_path])


def test_pattern_round_trips_through_json():
    pattern = NamePattern("fluid_data", "_", 4, ".vdb")
    restored = NamePattern.from_dict(json.loads(json.dumps(pattern.to_dict())))
    assert restored == pattern
    assert restored.format(7) == "fluid_data_0007.vdb"
    assert restored.format(12345) == "fluid_data_12345.vdb"
    assert str(restored) == "fluid_data_####.vdb"


@pytest.mark.parametrize(
    "data",
    [
        {"prefix": "../../etc/smoke", "separator": ".", "padding": 4, "suffix": ".vdb"},
        {"prefix": "smoke", "separator": "/", "padding": 4, "suffix": ".vdb"},
        {"prefix": "smoke", "separator": ".", "padding": -1, "suffix": ".vdb"},
        {"prefix": "smoke", "separator": ".", "padding": 4, "suffix": ".sh"},
        {"prefix": "smoke", "separator": "."},
    ],
)
def test_pattern_from_archive_cannot_escape_output_folder(data):
    with pytest.raises(SequenceError, match="name pattern"):
        NamePattern.from_dict(data)


def test_sequence_object_built_directly():
    pattern = NamePattern("smoke", ".", 4)
    sequence = FrameSequence(pattern, [Frame(1, Path("smoke.0001.vdb")), Frame(3, Path("smoke.0003.vdb"))])
    assert sequence.gaps() == [2]
    assert [frame.number for frame in sequence] == [1, 3]


@needs_blender
def test_real_blender_cache_folder():
    sequence = discover([BLENDER])
    assert sequence.pattern == NamePattern("fluid_data", "_", 4, ".vdb")
    assert sequence.numbers == list(range(1, 11))
    assert [sequence.name_for(number) for number in sequence.numbers] == [path.name for path in sequence.paths]
