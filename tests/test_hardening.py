"""Issue 12: an archive from anywhere is safe to open, and no grid is ever lost silently (one test per defect)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import archive_table, crafted, write_v1_archive

from neuralvox.atomic import OutputExistsError, atomic_output
from neuralvox.cli import main
from neuralvox.codec.decoder import NvoxArchive, decompress
from neuralvox.codec.encoder import compress
from neuralvox.codec.motion_guess import block_matching_guess
from neuralvox.container import ArchiveError, ArchiveFormatError, ArchiveReader
from neuralvox.grid import SparseGrid
from neuralvox.vdb import VdbError, read_vdb, write_vdb


def cube(t: int, size: int = 8) -> SparseGrid:
    axis = np.arange(size)
    i, j, k = np.meshgrid(axis, axis, axis, indexing="ij")
    ijk = np.stack([i.ravel() + t, j.ravel(), k.ravel()], axis=1).astype(np.int32)
    values = (1 + np.sin(0.3 * ijk[:, 0]) * np.cos(0.4 * ijk[:, 1])).astype(np.float32)
    return SparseGrid(name="density", ijk=ijk, values=values, grid_class="fog volume")


def other(t: int) -> SparseGrid:
    return SparseGrid(name="heat", ijk=np.array([[t, 0, 0], [0, 1, 0]], np.int32), values=np.ones(2, np.float32))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cube")
    for t in range(3):
        write_vdb(folder / f"cube_{t + 1:03d}.vdb", [cube(t)])
    out = folder / "cube.nvox"
    compress([str(folder)], out, quality="low", base_only=True, device="cpu", progress=False)
    return out


def table_of(path: Path) -> dict[str, Any]:
    return archive_table(path)[0]


def mutated(source: Path, dest: Path, mutate: Callable[[dict[str, Any]], None], version: int = 1) -> Path:
    """A copy of ``source`` whose table of contents ``mutate`` changed (checksum recomputed: a crafted archive),
    in container version 1 or today's."""
    return crafted(source, dest, mutate, version)


def one_line_error(capsys: pytest.CaptureFixture[str], *names: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neuralvox: error: "), err
    for name in names:
        assert name in err, err
    return err


def grid_header(table: dict[str, Any], frame: int = 0) -> dict[str, Any]:
    return table["header"]["frames"][frame]["grids"]["density"]


# ------------------------------------------------------------------------------------ 1. path traversal
@pytest.mark.parametrize("version", [1, 3])
@pytest.mark.parametrize("name", ["../../escape.vdb", "ABSOLUTE", "sub/x.vdb", "..", "x\0.vdb",
                                  "a\\b.vdb", ""])
def test_1_frame_file_name_outside_output_is_refused(archive: Path, tmp_path: Path, name: str, version: int,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    absolute = tmp_path / "absolute.vdb"
    name = str(absolute) if name == "ABSOLUTE" else name
    evil = mutated(archive, tmp_path / "evil.nvox", lambda t: t["header"]["frames"][0].update(file=name), version)
    out = tmp_path / "deep" / "er" / "out"
    assert main(["decompress", str(evil), "-o", str(out), "--force", "--quiet"]) == 2
    one_line_error(capsys, "evil.nvox", "'file'")
    assert not out.exists() and not (tmp_path / "deep" / "escape.vdb").exists()
    assert not absolute.exists()


def test_1_pattern_prefix_with_a_folder_is_refused(archive: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    evil = mutated(archive, tmp_path / "evil.nvox", lambda t: t["header"]["pattern"].update(prefix="../../x"))
    assert main(["decompress", str(evil), "-o", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "evil.nvox", "pattern.prefix")


# -------------------------------------------------------------------------------------- 2. memory bombs
def test_2_payload_dataset_larger_than_the_file_is_refused(archive: Path, tmp_path: Path) -> None:
    evil = tmp_path / "big.nvox"
    table, payloads = archive_table(archive)
    claimed = 12 << 30
    table["payloads"][0][1] = claimed - sum(size for _, size, _ in table["payloads"][1:])
    write_v1_archive(evil, zlib.compress(json.dumps(table).encode()), payloads)
    with h5py.File(evil, "r+") as file:
        del file["payloads"]
        file.create_dataset("payloads", shape=(claimed,), dtype=np.uint8)  # late allocation: nothing written
    assert evil.stat().st_size < 1 << 20
    with pytest.raises(ArchiveFormatError, match="big.nvox.*(payloads|size)"):
        ArchiveReader(evil)


@pytest.mark.parametrize(("field", "value"), [("hidden", [45000, 45000]), ("levels", [[8, 1_000_000_000]]),
                                              ("voxels", 10**15), ("frequencies", 10**6), ("levels", [[3, 4]])])
def test_2_oversized_value_header_is_refused_before_decoding(archive: Path, tmp_path: Path, field: str, value: Any,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    evil = mutated(archive, tmp_path / "evil.nvox", lambda t: grid_header(t)["values"].update({field: value}))
    with pytest.raises(ArchiveFormatError) as caught:
        NvoxArchive(evil, device="cpu")
    assert (caught.value.frame, caught.value.grid, caught.value.field) == (1, "density", field)
    assert main(["decompress", str(evil), "-o", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "evil.nvox", "frame 1", "'density'", field)


def test_2_grid_voxel_count_must_match_its_topology(archive: Path, tmp_path: Path) -> None:
    def lie(table: dict[str, Any]) -> None:
        grid_header(table)["voxels"] = 10**9
        grid_header(table)["values"]["voxels"] = 10**9

    with NvoxArchive(mutated(archive, tmp_path / "evil.nvox", lie), device="cpu") as opened, \
            pytest.raises(ArchiveError, match="holds 512 voxels where the header says 1000000000"):
        opened.frame(1)["density"]


def test_2_zlib_bomb_table_of_contents_is_refused(archive: Path, tmp_path: Path) -> None:
    table = table_of(archive)
    head, tail = json.dumps(table)[:-1].encode(), b', "pad": "' + b" " * (1 << 20)
    packer = zlib.compressobj(9)
    toc = packer.compress(head) + packer.compress(tail[: 11])
    for _ in range(100):  # 100 MB of spaces in ~100 kB
        toc += packer.compress(b" " * (1 << 20))
    toc += packer.compress(b'"}') + packer.flush()
    evil = tmp_path / "bomb.nvox"
    write_v1_archive(evil, toc, archive_table(archive)[1])
    assert len(toc) < 200_000
    with pytest.raises(ArchiveFormatError, match="'toc': inflates past"):
        ArchiveReader(evil)


# ------------------------------------------------------------------------------ 3. errors are not absence
def test_3_membership_reads_the_header_and_decode_errors_are_not_absence(archive: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: NvoxArchive, number: int, grid: str, region: object = None) -> SparseGrid:
        raise KeyError("levels")

    monkeypatch.setattr(NvoxArchive, "decode_grid", broken)
    with NvoxArchive(archive, device="cpu") as opened:
        frame = opened.frame(1)
        assert "density" in frame and "heat" not in frame  # without decoding
        with pytest.raises(ArchiveError, match="frame 1, grid 'density': levels"):
            frame["density"]
    out = tmp_path / "out"
    with pytest.raises(ArchiveError):
        decompress(archive, out, grids=["density"], device="cpu", progress=False)
    assert not list(out.glob("*.vdb"))


# ------------------------------------------------------------------------- 4. compress keeps grids and chains
@pytest.fixture(scope="module")
def gappy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three frames; the middle one has no density grid (only an unrelated one)."""
    folder = tmp_path_factory.mktemp("gappy")
    for t in range(3):
        write_vdb(folder / f"gap_{t + 1:03d}.vdb", [other(t)] if t == 1 else [cube(t), other(t)])
    return folder


@pytest.mark.slow
def test_4_a_grid_absent_in_a_middle_frame_keeps_the_reference_chain(gappy: Path, tmp_path: Path) -> None:
    out = tmp_path / "gap.nvox"
    compress([str(gappy)], out, quality="low", base_only=True, device="cpu", progress=False, gop=3)
    with NvoxArchive(out, device="cpu") as opened:
        third = opened.entry(3).grids["density"]
        assert third.latents_from in (None, 1) and (third.topology_ref is None or third.topology_ref.frame != 2)
        decoded = opened.frame(3)["density"]
    source = read_vdb(gappy / "gap_003.vdb").grids["density"].sorted()
    np.testing.assert_array_equal(decoded.ijk, source.ijk)
    assert np.abs(decoded.values - source.values).max() < 0.2


def test_4_compress_refuses_a_frame_lacking_a_requested_grid_unless_asked_to_skip(
        gappy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gap.nvox"
    assert main(["compress", str(gappy), "-o", str(out), "--grids", "density", "--quality", "low", "--device", "cpu",
                 "--quiet"]) == 2
    one_line_error(capsys, "gap_002.vdb", "density", "heat", "--skip-bad-frames")
    assert not out.exists()
    with pytest.warns(UserWarning, match="gap_002.vdb: frame left out: no grid named density"):
        assert main(["compress", str(gappy), "-o", str(out), "--grids", "density", "--quality", "low", "--device",
                     "cpu", "--quiet", "--skip-bad-frames"]) == 0
    with NvoxArchive(out, device="cpu") as opened:
        assert opened.frames == [1, 3]
        assert len(opened.frame(3)["density"].ijk) == 512


def test_4_an_unreadable_requested_grid_is_refused(gappy: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import neuralvox.codec.encoder as encoder

    real = encoder.read_vdb

    def damaged(path: Path, grids: Any, **kwargs: Any):
        vdb = real(path, grids, **kwargs)
        vdb.grids.pop("density", None)
        vdb.skipped.append(("density", "OpenVDB cannot decode it: bad leaf"))
        return vdb

    monkeypatch.setattr(encoder, "read_vdb", damaged)
    with pytest.raises(VdbError, match="gap_001.vdb: grid density cannot be read: OpenVDB cannot decode it"):
        compress([str(gappy / "gap_001.vdb")], tmp_path / "x.nvox", grids=["density"], device="cpu", progress=False)


# ------------------------------------------------------------------------------------ 5. thin grids
def test_5_block_matching_on_a_thin_slab() -> None:
    axis = np.arange(64)
    i, j, k = np.meshgrid(axis, axis, np.arange(6), indexing="ij")
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1).astype(np.int32)
    values = np.sin(0.2 * ijk[:, 0]).astype(np.float32)
    guess = block_matching_guess((ijk, values), (ijk + [2, 0, 0], values), 16)
    motion = guess(ijk[:10].astype(np.float64))
    assert motion.shape == (10, 3) and np.isfinite(motion).all()


@pytest.mark.slow
def test_5_compress_a_thin_sequence_without_velocity(tmp_path: Path) -> None:
    for t in range(3):
        write_vdb(tmp_path / f"thin_{t + 1:03d}.vdb", [cube(t, size=5)])
    report = compress([str(tmp_path)], tmp_path / "thin.nvox", quality="low", base_only=True, device="cpu",
                      progress=False)
    assert report.grids[0].frames == 3


# ------------------------------------------------------------------------ 6. malformed tables of contents
def _cycle(table: dict[str, Any]) -> None:
    grid_header(table, 0)["topology_ref"] = [2, "density"]
    grid_header(table, 1)["topology_ref"] = [1, "density"]


MALFORMED = {
    "cycle": _cycle,
    "self-reference": lambda t: grid_header(t, 0).update(topology_ref=[1, "density"]),
    "float size": lambda t: t["payloads"][0].__setitem__(1, 19.5),
    "frames as a dict": lambda t: t["header"].update(frames={"0": t["header"]["frames"][0]}),
    "string frame number": lambda t: t["header"]["frames"][1].update(number="2"),
    "negative size": lambda t: t["payloads"][0].__setitem__(1, -5),
    "missing key": lambda t: grid_header(t)["values"].pop("levels"),
    "no frames": lambda t: t["header"].pop("frames"),
    "unknown value format": lambda t: grid_header(t)["values"].update(format="neuralvox-future/9"),
    "later latents": lambda t: grid_header(t, 1).update(latents_from=3),
    "bool as number": lambda t: t["header"]["frames"][0].update(number=True),
    "report not a list": lambda t: t["header"].update(report={}),
}


@pytest.mark.parametrize(("case", "version"), [*((case, 1) for case in sorted(MALFORMED)),
                                               *((case, 3) for case in sorted(MALFORMED) if "size" not in case)])
@pytest.mark.parametrize("command", ["decompress", "info"])
def test_6_malformed_table_of_contents_is_one_line(archive: Path, tmp_path: Path, case: str, version: int,
                                                   command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Container version 1 (JSON) and today's (the packed header) alike; sizes are only wrong in version 1."""
    evil = mutated(archive, tmp_path / "evil.nvox", MALFORMED[case], version)
    argv = ["decompress", str(evil), "-o", str(tmp_path / "out"), "--quiet"] if command == "decompress" \
        else ["info", str(evil)]
    if case == "report not a list" and command == "decompress":
        argv += ["--frames", "1"]  # decompress does not read the report: it must still work
        assert main(argv) == 0
        return
    assert main(argv) == 2
    one_line_error(capsys, "evil.nvox")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- 7. interrupted and concurrent runs
def test_7_temporary_of_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    target = tmp_path / "a.nvox"
    code = ("import os, signal, sys; from neuralvox.atomic import atomic_output\n"
            f"with atomic_output({str(target)!r}) as tmp:\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    result = subprocess.run([sys.executable, "-c", code], check=False)
    assert result.returncode == -signal.SIGKILL
    stale = list(tmp_path.glob(".a.nvox.*.tmp"))
    assert len(stale) == 1
    with atomic_output(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done" and not list(tmp_path.glob(".*.tmp"))


def test_7_two_runs_to_one_new_path_never_silently_replace(tmp_path: Path) -> None:
    target = tmp_path / "a.nvox"
    with pytest.raises(OutputExistsError, match="another run"), atomic_output(target) as first:
        first.write_text("first")
        with atomic_output(target) as second:
            second.write_text("second")
    assert target.read_text() == "second" and not list(tmp_path.glob(".*.tmp"))


def test_7_decompress_resumes_after_an_interrupted_run(archive: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    written = decompress(archive, out, device="cpu", progress=False)
    finished = {p: p.stat().st_mtime_ns for p in written[:2]}
    written[2].unlink()  # as if Ctrl-C stopped the run before the last frame
    assert main(["decompress", str(archive), "-o", str(out), "--quiet"]) == 2
    one_line_error(capsys, "--resume")
    assert main(["decompress", str(archive), "-o", str(out), "--quiet", "--resume"]) == 0
    assert "wrote 1 frames" in capsys.readouterr().out
    assert written[2].exists() and {p: p.stat().st_mtime_ns for p in written[:2]} == finished
    written[0].write_bytes(b"not a vdb")  # a file that is not a finished frame is not skipped, nor replaced
    assert main(["decompress", str(archive), "-o", str(out), "--quiet", "--resume"]) == 2
    one_line_error(capsys, written[0].name, "exists")


# ------------------------------------------------------------------------------------------- 8. messages
def test_8_hdf5_damage_is_one_line_naming_the_file(archive: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = archive.read_bytes()
    evil = tmp_path / "flip.nvox"
    for offset in range(0, min(2048, len(data)), 7):  # superblock, object headers and the table of contents
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        evil.write_bytes(bytes(flipped))
        if main(["info", str(evil)]) != 0:
            one_line_error(capsys, "flip.nvox")
        capsys.readouterr()


def test_8_compress_messages(archive: Path, gappy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compress", str(gappy), "-o", str(tmp_path), "--quiet"]) == 2
    assert "--force" not in one_line_error(capsys, "is a folder")
    assert main(["compress", str(gappy), "-o", str(tmp_path / "x.nvox"), "--grids", "dens", "--quiet"]) == 2
    one_line_error(capsys, "no grid named dens", "density", "heat")


def test_8_unrequested_velocity_missing_in_a_later_frame_is_fine(tmp_path: Path) -> None:
    velocity = SparseGrid(name="vel", ijk=cube(0).ijk, values=np.ones((512, 3), np.float32), value_type="vec3s",
                          background=(0.0, 0.0, 0.0))
    for t in range(2):
        write_vdb(tmp_path / f"v_{t + 1:03d}.vdb", [cube(t), velocity] if t == 0 else [cube(t)])
    report = compress([str(tmp_path)], tmp_path / "v.nvox", grids=["density"], quality="low", device="cpu",
                      progress=False)
    assert [g.name for g in report.grids] == ["density"]


def test_8_output_folder_created_is_said(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decompress", str(archive), "-o", str(tmp_path / "new"), "--frames", "1", "--quiet"]) == 0
    assert "a folder it created" in capsys.readouterr().out


def test_8_schema_error_names_archive_frame_grid_and_field(archive: Path, tmp_path: Path) -> None:
    evil = mutated(archive, tmp_path / "evil.nvox", lambda t: grid_header(t, 2)["values"].pop("low"))
    with pytest.raises(ArchiveFormatError) as caught:
        NvoxArchive(evil, device="cpu")
    assert str(caught.value) == f"{evil}: malformed archive: frame 3, grid 'density', field 'low': missing"


def test_keyboard_interrupt_leaves_no_temporary(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import neuralvox.codec.decoder as decoder

    calls = []

    def interrupted(*args: Any, **kwargs: Any) -> list[Path]:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = decoder._write_frame
    monkeypatch.setattr(decoder, "_write_frame", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        decompress(archive, out, device="cpu", progress=False)
    assert [p.name for p in out.iterdir()] == ["cube_001.vdb"]
    monkeypatch.setattr(decoder, "_write_frame", real)
    assert len(decompress(archive, out, device="cpu", progress=False, resume=True)) == 2
    assert os.listdir(out) and not list(out.glob(".*"))
