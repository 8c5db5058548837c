"""The typed archive header: exact JSON round trip, unknown formats refused by name, archives of the pre-refactor
format (committed fixtures, written by 72ce35f) read and re-encoded byte for byte, a light ``import neuralvox``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, archive_table, write_current_archive

from neuralvox.codec.header import ArchiveHeader, UnknownFormatError, value_header_from_json, without_timing
from neuralvox.codec.schema import check_header, check_summary
from neuralvox.container import ArchiveFormatError, ArchiveReader

sys.path.insert(0, str(FIXTURES))
from make_fixtures import BASE_ONLY, BASED, BOUNDED, BOUNDED_OPTIONS, blob_frames  # noqa: E402

import neuralvox  # noqa: E402
from neuralvox.cli import main  # noqa: E402
from neuralvox.codec.encoder import compress  # noqa: E402


def raw_header(path: Path) -> tuple[dict, dict[str, int]]:
    with ArchiveReader(path) as reader:
        return reader.header, {key: reader.nbytes(key) for key in reader}


@pytest.mark.parametrize("fixture", [BOUNDED, BASE_ONLY, BASED], ids=["bounded", "base_only", "based"])
def test_header_round_trips_to_the_same_json(fixture: Path) -> None:
    raw, sizes = raw_header(fixture)
    typed = check_header(fixture, raw, sizes)
    assert typed.summary is None  # decoding does not read the summary
    again = ArchiveHeader.from_json(raw, with_summary=True).to_json()
    if fixture == BOUNDED:  # neuralvox-bounded/1 is read into the /2 header (no context model): same objects
        assert ArchiveHeader.from_json(again, with_summary=True) == ArchiveHeader.from_json(raw, with_summary=True)
    else:
        assert json.dumps(again) == json.dumps(raw)  # key order included: the archive's bytes depend on it


def test_unknown_formats_are_refused_by_name() -> None:
    raw, sizes = raw_header(BOUNDED)
    with pytest.raises(ArchiveFormatError, match="'neuralvox/2' is not 'neuralvox/1'"):
        check_header(BOUNDED, {**raw, "format": "neuralvox/2"}, sizes)
    with pytest.raises(UnknownFormatError, match="neuralvox/2"):
        ArchiveHeader.from_json({**raw, "format": "neuralvox/2"})
    values = raw["frames"][0]["grids"]["density"]["values"]
    with pytest.raises(UnknownFormatError, match="unknown value format 'neuralvox-bounded/9'"):
        value_header_from_json({**values, "format": "neuralvox-bounded/9"})


def test_fields_older_archives_of_the_format_lack_are_optional_in_the_summary() -> None:
    raw, _ = raw_header(BASE_ONLY)
    older = json.loads(json.dumps(raw))
    for field in ("coherence", "target", "bounds"):
        del older["codec"][field]
    for entry in older["report"]:
        del entry["bound"], entry["peak"]
    summary = check_summary(BASE_ONLY, older)
    assert summary.codec.bounds is None and all(g.bound is None and g.peak is None for g in summary.report)
    older["codec"]["coherence"] = "high"
    with pytest.raises(ArchiveFormatError, match="coherence"):
        check_summary(BASE_ONLY, older)


def test_the_bounded_fixture_is_re_encoded_byte_for_byte(tmp_path: Path) -> None:
    """The bounded codec is bit-identical on every machine: the same frames, coded with the counting model that
    neuralvox-bounded/1 always used and without the time mode, give the same payloads and header but for the value
    format's name, its ``context_frame`` and ``time_frame`` (null)."""
    out = tmp_path / "again.nvox"
    compress([str(p) for p in blob_frames(tmp_path)], out, progress=False, context_model="counting",
             time_mode="off", **BOUNDED_OPTIONS)
    with ArchiveReader(BOUNDED) as old, ArchiveReader(out) as new:
        assert old.keys() == new.keys()
        assert all(old.get(key) == new.get(key) for key in old)
        new_header = json.loads(json.dumps(new.header))
        for frame in new_header["frames"]:
            for grid in frame["grids"].values():
                assert grid["values"].pop("context_frame") is None
                assert grid["values"].pop("time_frame") is None
                grid["values"]["format"] = "neuralvox-bounded/1"
        assert json.dumps(without_timing(old.header)) == json.dumps(without_timing(new_header))
        again = ArchiveHeader.from_json(new.header, with_summary=True).to_json()
        assert json.dumps(again) == json.dumps(new.header)


@pytest.mark.parametrize("fixture", [BOUNDED, BASE_ONLY, BASED], ids=["bounded", "base_only", "based"])
def test_the_fixtures_decode_within_their_recorded_errors(fixture: Path, tmp_path: Path) -> None:
    sources = {p.name: p for p in blob_frames(tmp_path)}
    with neuralvox.open(fixture, device="cpu") as archive:
        report = {g.name: g for g in archive.info().summary.report}
        for number in archive.frames:
            frame = archive.frame(number)
            source = neuralvox.read_vdb(sources[frame.file_name])
            for name in frame:
                original, decoded = source.grids[name].sorted(), frame[name]
                assert np.array_equal(decoded.ijk, original.ijk)
                error = float(np.abs(decoded.values.astype(np.float64) - original.values).max())
                assert error <= report[name].max_abs_error * (1 + 1e-6) + 1e-7, (number, name)


def test_import_neuralvox_loads_no_torch_or_warp_and_sets_no_environment() -> None:
    code = ("import os, sys; before = dict(os.environ); import neuralvox; "
            "print('torch' in sys.modules, 'warp' in sys.modules, dict(os.environ) == before); "
            "import neuralvox.codec; print(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["False", "False", "True", "PASSIVE"]  # set when the codec is imported


@pytest.mark.parametrize("fixture", [BOUNDED, BASE_ONLY, BASED], ids=["bounded", "base_only", "based"])
def test_the_packed_header_gives_the_same_objects_and_info(fixture: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A fixture (container version 1, its header JSON) rewritten in today's container (its header packed): the same
    typed header and summary, and ``neuralvox info`` prints the same lines but the first (file name and size)."""
    table, payloads = archive_table(fixture)
    now = tmp_path / fixture.name
    write_current_archive(now, table, payloads)
    (old, old_sizes), (new, new_sizes) = raw_header(fixture), raw_header(now)
    assert json.dumps(new) == json.dumps(old) and new_sizes == old_sizes
    assert check_header(now, new, new_sizes) == check_header(fixture, old, old_sizes)
    assert check_summary(now, new) == check_summary(fixture, old)
    outputs = []
    for path in (fixture, now):
        assert main(["info", str(path)]) == 0
        outputs.append(capsys.readouterr().out.splitlines())
    assert outputs[0][1:] == outputs[1][1:] and len(outputs[0]) > 3
    assert now.stat().st_size < fixture.stat().st_size
