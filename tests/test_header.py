"""The typed archive header: exact JSON round trip, unknown formats refused by name, archives of the pre-refactor
format (committed fixtures, written by 72ce35f) read and re-encoded byte for byte, a light ``import neuralvox``."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, archive_table, write_current_archive

from neuralvox.codec.header import (
    ARCHIVE_FORMAT,
    ArchiveHeader,
    FrameEntry,
    GridReport,
    UnknownFormatError,
    value_header_from_json,
    without_timing,
)
from neuralvox.codec.schema import check_header, check_summary
from neuralvox.container import ArchiveFormatError, ArchiveReader
from neuralvox.sequence import NamePattern

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
    with pytest.raises(ArchiveFormatError, match="'neuralvox/3' is not 'neuralvox/2' or an earlier format"):
        check_header(BOUNDED, {**raw, "format": "neuralvox/3"}, sizes)
    with pytest.raises(UnknownFormatError, match="neuralvox/3"):
        ArchiveHeader.from_json({**raw, "format": "neuralvox/3"})
    values = raw["frames"][0]["grids"]["density"]["values"]
    with pytest.raises(UnknownFormatError, match="unknown value format 'neuralvox-bounded/9'"):
        value_header_from_json({**values, "format": "neuralvox-bounded/9"})


def test_fields_older_archives_of_the_format_lack_are_optional_in_the_summary() -> None:
    raw, sizes = raw_header(BASE_ONLY)
    older = json.loads(json.dumps(raw))
    for field in ("coherence", "target", "bounds"):
        del older["codec"][field]
    for entry in older["report"]:
        del entry["bound"], entry["peak"]
    summary = check_summary(BASE_ONLY, older, sizes)
    assert summary.codec.bounds is None and all(g.bound is None and g.peak is None for g in summary.report)
    older["codec"]["coherence"] = "high"
    with pytest.raises(ArchiveFormatError, match="coherence"):
        check_summary(BASE_ONLY, older, sizes)


def without_topology_figures(header: dict) -> dict:
    """The header less what the topology streams' lengths decide: each grid's reference choice, the report's sizes."""
    header = json.loads(json.dumps(header))
    for frame in header["frames"]:
        for grid in frame["grids"].values():
            grid.pop("topology_ref")
    for entry in header["report"]:
        for field in ("ratio", "bpv", "coded_bytes"):
            entry.pop(field)
        entry["stream_bytes"].pop("topology")
    return header


def test_the_bounded_fixture_is_re_encoded_byte_for_byte(tmp_path: Path) -> None:
    """The bounded codec is bit-identical on every machine: the same frames, coded with the counting model that
    neuralvox-bounded/1 always used and without the time mode, give the same value payloads and header but for the
    value format's name, its ``context_frame`` and ``time_frame`` (null). The topology streams are format 2 now (the
    fixture's are format 1): they hold the same voxels in fewer bytes."""
    out = tmp_path / "again.nvox"
    compress([str(p) for p in blob_frames(tmp_path)], out, progress=False, context_model="counting",
             time_mode="off", **BOUNDED_OPTIONS)
    with ArchiveReader(BOUNDED) as old, ArchiveReader(out) as new:
        assert old.keys() == new.keys()
        topology = [key for key in old if key.endswith("/topology")]
        assert all(old.get(key) == new.get(key) for key in old if key not in topology)
        assert all(old.get(key)[0] & 0x7F == 1 and new.get(key)[0] & 0x7F == 2 for key in topology)
        assert sum(len(new.get(key)) for key in topology) < sum(len(old.get(key)) for key in topology)
        sizes = {key: new.nbytes(key) for key in new}
        typed = ArchiveHeader.from_json(new.header, with_summary=True, payload_sizes=sizes)
        # neuralvox/2 derives the report's figures and file names: in neuralvox/1's form, they are the fixture's
        new_header = json.loads(json.dumps(dataclasses.replace(typed, format="neuralvox/1").to_json()))
        for frame in new_header["frames"]:
            for grid in frame["grids"].values():
                assert grid["values"].pop("context_frame") is None
                assert grid["values"].pop("time_frame") is None
                grid["values"]["format"] = "neuralvox-bounded/1"
        assert json.dumps(without_timing(without_topology_figures(old.header))) == json.dumps(
            without_timing(without_topology_figures(new_header)))
        assert json.dumps(typed.to_json()) == json.dumps(new.header)
    with neuralvox.open(BOUNDED, device="cpu") as before, neuralvox.open(out, device="cpu") as after:
        for number in before.frames:
            old_frame, new_frame = before.frame(number), after.frame(number)
            for name in old_frame:
                assert np.array_equal(old_frame[name].ijk, new_frame[name].ijk)
                assert np.array_equal(old_frame[name].values, new_frame[name].values)


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
    assert check_summary(now, new, new_sizes) == check_summary(fixture, old, old_sizes)
    outputs = []
    for path in (fixture, now):
        assert main(["info", str(path)]) == 0
        outputs.append(capsys.readouterr().out.splitlines())
    assert outputs[0][1:] == outputs[1][1:] and len(outputs[0]) > 3
    assert now.stat().st_size < fixture.stat().st_size


def current_header(tmp_path: Path) -> tuple[dict, dict[str, int]]:
    """The base-only fixture's header and payload sizes as today's format writes them."""
    raw, sizes = raw_header(BASE_ONLY)
    typed = ArchiveHeader.from_json(raw, with_summary=True)
    return json.loads(json.dumps(dataclasses.replace(typed, format=ARCHIVE_FORMAT).to_json())), sizes


def test_neuralvox_2_leaves_out_what_the_frames_payloads_and_pattern_give() -> None:
    raw, sizes = raw_header(BASE_ONLY)
    old = ArchiveHeader.from_json(raw, with_summary=True)
    new = json.loads(json.dumps(dataclasses.replace(old, format=ARCHIVE_FORMAT).to_json()))
    assert all("file" not in frame for frame in new["frames"])
    assert [list(entry) for entry in new["report"]] == [list(GridReport.STORED)]
    again = ArchiveHeader.from_json(new, with_summary=True, payload_sizes=sizes)
    assert again.frames == old.frames
    (read,), (recorded,) = again.summary.report, old.summary.report
    assert read == dataclasses.replace(recorded, fit_seconds=round(recorded.fit_seconds, 3))
    assert check_summary(BASE_ONLY, new, sizes) == again.summary
    assert check_header(BASE_ONLY, new, sizes) == dataclasses.replace(check_header(BASE_ONLY, raw, sizes),
                                                                      format=ARCHIVE_FORMAT)


def test_a_file_name_the_pattern_does_not_give_is_kept() -> None:
    raw, _ = raw_header(BASE_ONLY)
    frame = ArchiveHeader.from_json(raw).frames[0]
    pattern = NamePattern("blob")
    assert "file" not in frame.to_json(pattern)
    renamed = dataclasses.replace(frame, file="blob_first.vdb")
    assert renamed.to_json(pattern)["file"] == "blob_first.vdb"
    assert FrameEntry.from_json(renamed.to_json(pattern), pattern) == renamed


@pytest.mark.parametrize(("edit", "message"), [
    (lambda h: h["report"][0].pop("rmse"), "report.*members"),
    (lambda h: h["report"][0].update(rmse=-1.0), "field 'rmse': -1.0 is not a finite number >= 0"),
    (lambda h: h["report"][0].update(peak="1"), "field 'peak': expected an integer or a number"),
    (lambda h: h["report"][0].update(name="vel"), "grid \"'vel'\", field 'report': a grid no frame holds"),
    (lambda h: h["report"].append(dict(h["report"][0])), "reported twice"),
    (lambda h: h["frames"][1].update(file="../up.vdb"), "field 'file'"),
])
def test_a_malformed_neuralvox_2_summary_is_refused_naming_the_field(tmp_path: Path, edit, message: str) -> None:
    header, sizes = current_header(tmp_path)
    edit(header)
    with pytest.raises(ArchiveFormatError, match=message):
        check_summary(BASE_ONLY, header, sizes)
