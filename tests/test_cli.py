"""The neuralvox command on .vdb inputs: info (text and JSON) and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import BLENDER, needs_blender

from neuralvox.cli import main
from neuralvox.grid import SparseGrid
from neuralvox.vdb import grid_stats, write_vdb


def tiny_sequence(folder: Path, frames: int = 3) -> Path:
    for t in range(frames):
        ijk = np.array([[0, 0, 0], [1, 0, 0], [2 + t, 1, 0]], dtype=np.int32)
        grid = SparseGrid(name="density", ijk=ijk, values=np.ones(3, np.float32), grid_class="fog volume")
        write_vdb(folder / f"tiny_{t + 1:03d}.vdb", [grid])
    return folder


def test_info_json_reports_counts_bbox_and_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tiny_sequence(tmp_path)
    assert main(["info", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == [1, 2, 3] and info["pattern"] == "tiny_###.vdb"
    density = info["grids"]["density"]
    assert (density["active_voxels_min"], density["active_voxels_max"]) == (3, 3)
    assert density["bbox"] == [[0, 0, 0], [4, 1, 0]]
    assert density["grid_class"] == "fog volume"
    assert density["bytes"] == sum(grid_stats(p)[0]["bytes"] for p in sorted(folder.iterdir()))


@needs_blender
def test_info_on_blender_counts_tiles_and_lists_the_int_grid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(BLENDER), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(info["frames"]) == 10 and info["gaps"] == []
    assert info["grids"]["phi_out"]["active_voxels_max"] == 937_500  # tiles counted as their voxels
    assert info["grids"]["flags"]["value_type"] == "int32"
    assert main(["info", str(BLENDER)]) == 0
    assert "velocity" in capsys.readouterr().out


def test_bad_vdb_inputs_exit_2_with_one_line_naming_the_file(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "x.vdb"
    text.write_text("hello\n")
    whole = write_vdb(tmp_path / "whole.vdb", [SparseGrid(name="d", ijk=np.zeros((1, 3), np.int32),
                                                          values=np.ones(1, np.float32))])
    cut = tmp_path / "cut.vdb"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    for path in (tmp_path / "missing.vdb", text, cut):
        assert main(["info", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and path.name in err, err
    assert main(["info"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
