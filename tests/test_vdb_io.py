"""OpenVDB I/O through the binding: real Blender files against vdb_print, exact round trips, bad input."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import BLENDER_FRAMES, needs_blender

from neuralvox.grid import GridError, SparseGrid
from neuralvox.vdb import VdbError, grid_stats, list_grids, read_vdb, write_nvdb, write_vdb

needs_vdb_print = pytest.mark.skipif(shutil.which("vdb_print") is None, reason="vdb_print (libopenvdb-tools) absent")


def vdb_print(path: Path) -> dict[str, dict[str, str]]:
    """Grid name -> the fields vdb_print -l -m reports (type, active voxels, bbox, class, voxel size, metadata keys)."""
    text = subprocess.run(["vdb_print", "-l", "-m", str(path)], check=True, capture_output=True, text=True).stdout
    grids: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Name: "):
            current = grids.setdefault(line[6:].strip(), {"meta_keys": ""})
        elif m := re.match(r"\s+Number of active voxels:\s+([\d,]+)", line):
            current["voxels"] = m.group(1).replace(",", "")
        elif m := re.match(r"\s+Bounding box of active voxels: (.*)", line):
            current["bbox"] = m.group(1).strip()
        elif m := re.match(r"\s+Type: (.*)", line):
            current["type"] = m.group(1).strip()
        elif m := re.match(r"\s{2}([a-z_][\w]*): (.*)", line):
            current["meta_keys"] += m.group(1) + " "
            current[m.group(1)] = m.group(2).strip()
    return grids


def random_grid(n: int, *, vector: bool = False, save_half: bool = False, seed: int = 0) -> SparseGrid:
    rng = np.random.default_rng(seed)
    ijk = rng.permutation(np.unique(rng.integers(-100, 100, size=(int(n * 1.2) + 10, 3), dtype=np.int32), axis=0)[:n])
    values = rng.standard_normal((len(ijk), 3) if vector else len(ijk)).astype(np.float32)
    return SparseGrid(
        name="rand", ijk=ijk, values=values, value_type="vec3s" if vector else "float", save_half=save_half,
        background=(0.0, 0.0, 0.0) if vector else 0.0, transform=np.diag([0.1, 0.1, 0.1, 1.0]),
    )


def same_voxels(a: SparseGrid, b: SparseGrid) -> bool:
    a, b = a.sorted(), b.sorted()
    return np.array_equal(a.ijk, b.ijk) and np.array_equal(a.values, b.values)


@needs_blender
@needs_vdb_print
@pytest.mark.parametrize("path", BLENDER_FRAMES, ids=lambda p: p.name)
def test_blender_frame_counts_and_bboxes_match_vdb_print(path: Path) -> None:
    expected = vdb_print(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vdb = read_vdb(path)
    assert [name for name, _ in vdb.skipped] == ["flags"]  # the int32 grid is listed and skipped
    assert any("flags" in str(w.message) for w in caught)
    assert len(vdb.grids) == 23
    for name, grid in vdb.grids.items():
        want = expected[name]
        assert grid.voxel_count == int(want["voxels"]), name
        box = grid.bbox()
        if box is None:
            assert "bbox" not in want, name
        else:
            assert want["bbox"] == f"[{', '.join(map(str, box[0]))}] -> [{', '.join(map(str, box[1]))}]", name
        assert grid.grid_class == want["class"], name
        assert grid.save_half


@needs_blender
@needs_vdb_print
def test_blender_write_read_exact_and_vdb_print_agrees(tmp_path: Path) -> None:
    source = BLENDER_FRAMES[4]
    original = read_vdb(source, warn_skipped=False)
    out = write_vdb(tmp_path / "copy.vdb", list(original.grids.values()), metadata=original.metadata)
    again = read_vdb(out)
    assert again.grids.keys() == original.grids.keys()
    for name, grid in original.grids.items():
        copy = again.grids[name]
        assert same_voxels(grid, copy), name
        assert (copy.grid_class, copy.save_half, copy.value_type) == (grid.grid_class, grid.save_half, grid.value_type)
        assert copy.metadata == grid.metadata and copy.metadata_types == grid.metadata_types, name
        assert np.array_equal(copy.transform, grid.transform)
    source_info, copy_info = vdb_print(source), vdb_print(out)
    for name in original.grids:
        for key in ("class", "file_voxel_size", "voxels", "type"):
            assert copy_info[name].get(key) == source_info[name].get(key), (name, key)
        assert set(copy_info[name]["meta_keys"].split()) == set(source_info[name]["meta_keys"].split()), name


@needs_blender
def test_active_tiles_are_voxelized_and_written_back_with_the_same_count(tmp_path: Path) -> None:
    source = BLENDER_FRAMES[0]
    phi = read_vdb(source, ["phi_out"]).grids["phi_out"]
    assert phi.tile_count > 0
    leaves_only = read_vdb(source, ["phi_out"], voxelize_tiles=False).grids["phi_out"]
    assert leaves_only.voxel_count < phi.voxel_count
    out = write_vdb(tmp_path / "phi.vdb", [phi])
    stats = {row["name"]: row for row in grid_stats(out)}["phi_out"]
    assert stats["active_voxels"] == phi.voxel_count
    assert stats["active_tiles"] > 0  # uniform leaves were pruned back to tiles
    assert same_voxels(read_vdb(out).grids["phi_out"], phi)


@needs_blender
def test_grid_stats_and_list_grids_cover_every_grid() -> None:
    rows = {row["name"]: row for row in grid_stats(BLENDER_FRAMES[0])}
    assert len(rows) == 24 and rows["flags"]["value_type"] == "int32"
    assert all(row["bytes"] > 0 for row in rows.values())
    assert sum(row["bytes"] for row in rows.values()) < BLENDER_FRAMES[0].stat().st_size
    info = {g.name: g for g in list_grids(BLENDER_FRAMES[0])}
    assert not info["flags"].supported and info["velocity"].value_type == "vec3s"
    assert info["velocity"].grid_class == "staggered"


@pytest.mark.parametrize("vector", [False, True])
def test_million_random_voxels_round_trip_exactly(tmp_path: Path, vector: bool) -> None:
    grid = random_grid(1_000_000, vector=vector)
    again = read_vdb(write_vdb(tmp_path / "r.vdb", [grid])).grids["rand"]
    assert again.voxel_count == 1_000_000
    assert same_voxels(grid, again)
    assert np.allclose(again.voxel_size, 0.1)


@pytest.mark.parametrize("compression", ["blosc", "zip", "none"])
def test_half_float_grids_read_back_as_the_float16_cast(tmp_path: Path, compression: str) -> None:
    grid = random_grid(20_000, save_half=True)
    again = read_vdb(write_vdb(tmp_path / "h.vdb", [grid], compression=compression)).grids["rand"].sorted()
    want = grid.sorted().values.astype(np.float16).astype(np.float32)
    assert np.array_equal(again.values, want)
    assert not np.array_equal(again.values, grid.sorted().values)


def test_metadata_types_and_attributes_round_trip(tmp_path: Path) -> None:
    meta = {"s": "text", "b": True, "i32": 7, "i64": 1 << 40, "f": 0.5, "d": 0.1, "v3i": (1, 2, 3), "v3d": (0.5, 1, 2)}
    types = {"i32": "int32", "f": "float", "v3i": "vec3i"}
    grid = SparseGrid(
        name="vel", ijk=np.array([[0, 0, 0], [9, -3, 2]], np.int32), values=np.ones((2, 3), np.float32),
        value_type="vec3s", grid_class="staggered", vector_type="contravariant relative", background=(1.0, 2.0, 3.0),
        metadata=meta, metadata_types=types, transform=[[0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 0.5, 0], [1, 2, 3, 1]],
    )
    out = write_vdb(tmp_path / "m.vdb", [grid], metadata={"creator": "neuralvox test"})
    vdb = read_vdb(out)
    again = vdb.grids["vel"]
    assert again.metadata == meta
    assert again.metadata_types == {"s": "string", "b": "bool", "i32": "int32", "i64": "int64", "f": "float",
                                    "d": "double", "v3i": "vec3i", "v3d": "vec3d"}
    assert (again.grid_class, again.vector_type, again.background) == ("staggered", "contravariant relative",
                                                                       (1.0, 2.0, 3.0))
    assert np.allclose(again.index_to_world([[1, 1, 1]]), [[1.5, 2.5, 3.5]])
    assert vdb.metadata["creator"] == "neuralvox test"


def test_empty_grid_round_trips(tmp_path: Path) -> None:
    empty = SparseGrid(name="empty", ijk=np.zeros((0, 3), np.int32), values=np.zeros(0, np.float32))
    again = read_vdb(write_vdb(tmp_path / "e.vdb", [empty])).grids["empty"]
    assert again.voxel_count == 0 and again.bbox() is None


def test_missing_file_text_file_and_truncated_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(VdbError, match="no such file"):
        read_vdb(tmp_path / "nope.vdb")
    text = tmp_path / "x.vdb"
    text.write_text("not a volume\n")
    with pytest.raises(VdbError, match=r"x\.vdb: not a readable OpenVDB file"):
        read_vdb(text)
    second = dataclasses.replace(random_grid(5000, seed=1), name="second")
    whole = write_vdb(tmp_path / "whole.vdb", [random_grid(5000), second])
    data = whole.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        cut_file = tmp_path / f"cut{cut}.vdb"
        cut_file.write_bytes(data[:cut])
        with pytest.raises(VdbError, match=rf"cut{cut}\.vdb: .*(truncated|not a readable)"):
            read_vdb(cut_file)


def test_writer_rejects_bad_arrays_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(GridError, match="ijk must be int32"):
        SparseGrid(name="g", ijk=np.zeros((4, 3), np.int64), values=np.zeros(4, np.float32))
    with pytest.raises(GridError, match="values must be float32 of shape"):
        SparseGrid(name="g", ijk=np.zeros((4, 3), np.int32), values=np.zeros((4, 2), np.float32))
    grid = random_grid(100)
    grid.values = grid.values[:50]  # broken after construction: the writer validates again
    with pytest.raises(GridError, match="grid 'rand'"):
        write_vdb(tmp_path / "bad.vdb", [grid])
    duplicate = SparseGrid(name="dup", ijk=np.array([[1, 2, 3], [1, 2, 3]], np.int32), values=np.ones(2, np.float32))
    with pytest.raises(VdbError, match=r"duplicate voxel coordinate \(1, 2, 3\)"):
        write_vdb(tmp_path / "dup.vdb", [duplicate])
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force(tmp_path: Path) -> None:
    target = tmp_path / "out.vdb"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="--force"):
        write_vdb(target, [random_grid(10)])
    assert target.read_bytes() == b"keep me"
    write_vdb(target, [random_grid(10)], force=True)
    assert read_vdb(target).grids["rand"].voxel_count == 10


def test_unknown_grid_name_is_an_error() -> None:
    if not BLENDER_FRAMES:
        pytest.skip("shared Blender cache not beside this checkout")
    with pytest.raises(VdbError, match="no grid named smoke"):
        read_vdb(BLENDER_FRAMES[0], ["smoke"])


def test_nanovdb_export_loads_in_warp_with_the_same_values(tmp_path: Path) -> None:
    wp = pytest.importorskip("warp")
    wp.config.quiet = True
    wp.init()
    grid = random_grid(3000, seed=3)
    path = write_nvdb(tmp_path / "g.nvdb", grid)
    with open(path, "rb") as handle:
        volume = wp.Volume.load_from_nvdb(handle, device="cpu")

    @wp.kernel
    def lookup(volume: wp.uint64, ijk: wp.array(dtype=wp.vec3i), out: wp.array(dtype=wp.float32)):
        t = wp.tid()
        out[t] = wp.volume_lookup_f(volume, ijk[t][0], ijk[t][1], ijk[t][2])

    ijk = wp.array(grid.ijk, dtype=wp.vec3i, device="cpu")
    out = wp.zeros(grid.voxel_count, dtype=wp.float32, device="cpu")
    wp.launch(lookup, dim=grid.voxel_count, inputs=[volume.id, ijk, out], device="cpu")
    assert np.array_equal(out.numpy(), grid.values)


@pytest.mark.parametrize("codec", ["float", "fp8", "fp16", "fpn"])
def test_nanovdb_export_of_an_empty_grid(tmp_path: Path, codec: str) -> None:
    from neuralvox.vdb import binding, grid_to_raw

    empty = SparseGrid(name="empty", ijk=np.zeros((0, 3), np.int32), values=np.zeros(0, np.float32))
    nbytes, values = binding().nano_roundtrip(grid_to_raw(empty), codec, 0.01)
    assert nbytes > 0 and values.shape == (0,)
    assert write_nvdb(tmp_path / "e.nvdb", empty).stat().st_size > 0


def test_the_same_grids_write_the_same_bytes(tmp_path: Path) -> None:
    grid = random_grid(2000)
    first = write_vdb(tmp_path / "a.vdb", [grid]).read_bytes()
    assert write_vdb(tmp_path / "b.vdb", [grid]).read_bytes() == first
    other = write_vdb(tmp_path / "c.vdb", [grid.with_values(grid.values + 1)]).read_bytes()
    assert other[21:57] != first[21:57]  # the header's UUID follows the content
