"""Damaged .vdb files are refused in one line, quickly and within bounded memory; the voxel limit can be raised."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BLENDER

from neuralvox.cli import main
from neuralvox.grid import SparseGrid
from neuralvox.vdb import VdbError, grid_stats, read_vdb, write_vdb

BLENDER_FRAME = BLENDER / "fluid_data_0001.vdb"
INT64_NAME = b"\x05\x00\x00\x00int64"  # a metadata type name (file_mem_bytes, file_voxel_count) with its length

# Reads a file in a child and prints its peak RSS in MB and the error, so a blow-up cannot take the tests down.
CHILD = """
import resource, sys
from neuralvox.vdb import VdbError, grid_stats
try:
    grid_stats(sys.argv[1])
    error = "no error"
except VdbError as exc:
    error = str(exc)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, error)
"""


def tile_grid() -> SparseGrid:
    """A 16^3 block of one value: stored as 8 active tiles of 8^3 voxels."""
    axis = np.arange(16, dtype=np.int32)
    ijk = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return SparseGrid(name="density", ijk=ijk, values=np.full(len(ijk), 0.5, np.float32), background=0.0,
                      transform=np.diag([0.1, 0.1, 0.1, 1.0]))


def with_huge_type_name(source: bytes, dest: Path) -> Path:
    """The file with its first grid metadata type name claiming 1 GiB (what one flipped bit did to a Blender frame)."""
    data = bytearray(source)
    at = data.index(INT64_NAME)
    data[at + 3] ^= 0x40
    dest.write_bytes(bytes(data))
    return dest


@pytest.fixture()
def damaged(tmp_path: Path) -> Path:
    source = write_vdb(tmp_path / "made.vdb", [tile_grid()])
    return with_huge_type_name(source.read_bytes(), tmp_path / "damaged.vdb")


def peak_mb_and_error(path: Path) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    peak, error = out.split(" ", 1)
    return int(peak), error.strip()


def test_project_file_with_a_huge_metadata_size_is_refused_within_bounded_memory(damaged: Path) -> None:
    baseline, error = peak_mb_and_error(damaged.with_name("made.vdb"))
    assert error == "no error"
    peak, error = peak_mb_and_error(damaged)
    assert "damaged.vdb: damaged: grid 'density'" in error
    assert peak < baseline + 200  # OpenVDB alone filled a 1 GiB string here


def test_read_vdb_refuses_the_damaged_file(damaged: Path) -> None:
    with pytest.raises(VdbError, match=r"damaged\.vdb: damaged: grid 'density' claims more than its \d+ bytes"):
        read_vdb(damaged)


def test_cli_info_on_a_damaged_file_is_one_line_exit_2(damaged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neuralvox: error: ") and "damaged.vdb: damaged" in err


@pytest.mark.skipif(not BLENDER_FRAME.exists(), reason="shared Blender cache not beside this checkout")
def test_blender_frame_with_a_huge_metadata_size_is_refused(tmp_path: Path) -> None:
    damaged = with_huge_type_name(BLENDER_FRAME.read_bytes(), tmp_path / "fluid_data_0001.vdb")
    peak, error = peak_mb_and_error(damaged)
    assert "fluid_data_0001.vdb: damaged: grid" in error
    assert peak < 1024


def test_voxel_limit_counts_tiles_names_the_grid_and_can_be_raised(tmp_path: Path) -> None:
    path = write_vdb(tmp_path / "tiles.vdb", [tile_grid()])
    assert grid_stats(path)[0]["active_tiles"] == 8
    with pytest.raises(VdbError, match=r"grid 'density' has 4096 active voxels \(tiles included\).*limit of 4095"):
        read_vdb(path, max_voxels=4095)
    assert read_vdb(path, max_voxels=4096).grids["density"].voxel_count == 4096
    assert read_vdb(path, max_voxels=0, voxelize_tiles=False).grids["density"].voxel_count == 0
    assert read_vdb(path).grids["density"].voxel_count == 4096  # the default limit is 2^24 at least
