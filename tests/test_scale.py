"""Large frames: chunked archives, any number of workers or engine gives the same archive, regions decode alone."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

import neuralvox.codec.decoder as decoder_module
from neuralvox.cli import main
from neuralvox.codec import chunked
from neuralvox.codec.decoder import decompress, open_archive
from neuralvox.codec.encoder import compress
from neuralvox.codec.header import without_timing
from neuralvox.container import ArchiveError, ArchiveReader, ArchiveWriter
from neuralvox.sim.turbulence import turbulent_frame
from neuralvox.vdb import read_vdb, write_vdb

FRAMES = 3
BOUND = 2e-3
CHUNK = 12_000


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("turbulence")
    paths = []
    for t in range(FRAMES):
        path = folder / f"smoke.{t + 1:04d}.vdb"
        grid = turbulent_frame(60_000, frame=3 * t, frames=3 * FRAMES, seed=7)
        # every other voxel along each axis: the voxels span 3 blocks of 64 a side, so the grid splits into chunks
        write_vdb(path, [dataclasses.replace(grid, ijk=grid.ijk * 2)])
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def serial(sequence: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serial") / "smoke.nvox"
    compress(sequence, out, max_error=BOUND, chunk_voxels=CHUNK, workers=1, progress=False)
    return out


def assert_same_archive(first: Path, second: Path) -> None:
    with ArchiveReader(first) as a, ArchiveReader(second) as b:
        assert a.keys() == b.keys()
        assert all(a.get(key) == b.get(key) for key in a)
        assert without_timing(a.header) == without_timing(b.header)


def _rewritten(folder: Path, payloads: dict[str, bytes], header: dict, name: str) -> Path:
    """An archive ``folder / name`` holding ``payloads`` under ``header`` (as the test has edited it)."""
    with ArchiveWriter(folder / name) as writer:
        for key, data in payloads.items():
            writer.put(key, data)
        writer.set_header(header)
    return folder / name


def test_a_large_grid_is_stored_in_chunks_within_the_bound(serial: Path, sequence: list[Path]) -> None:
    with open_archive(serial) as archive:
        for number, path in zip(archive.frames, sequence, strict=True):
            header = archive.entry(number).grids["density"].values
            assert isinstance(header, chunked.ChunkedHeader) and len(header.chunks) > 2
            original = read_vdb(path).grids["density"].sorted()
            decoded = archive.frame(number)["density"]
            assert np.array_equal(decoded.ijk, original.ijk)
            assert np.abs(decoded.values - original.values).max() <= BOUND


def test_the_archive_does_not_depend_on_the_number_of_workers(serial: Path, sequence: list[Path],
                                                              tmp_path: Path) -> None:
    out = tmp_path / "pool.nvox"
    compress(sequence, out, max_error=BOUND, chunk_voxels=CHUNK, workers=2, progress=False)
    assert_same_archive(serial, out)


def test_the_archive_does_not_depend_on_the_engine(serial: Path, sequence: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "ray.nvox"
    compress(sequence, out, max_error=BOUND, chunk_voxels=CHUNK, workers=2, ray=True, progress=False)
    assert_same_archive(serial, out)


def test_decompress_with_workers_writes_the_same_frames(serial: Path, tmp_path: Path) -> None:
    one = decompress(serial, tmp_path / "one", workers=1, progress=False)
    two = decompress(serial, tmp_path / "two", workers=2, progress=False)
    assert [p.name for p in one] == [p.name for p in two] and len(one) == FRAMES
    for a, b in zip(one, two, strict=True):
        x, y = read_vdb(a).grids["density"], read_vdb(b).grids["density"]
        assert np.array_equal(x.ijk, y.ijk) and np.array_equal(x.values, y.values)


def test_a_region_decodes_only_the_chunks_it_meets(serial: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    decoded_chunks = []
    real = decoder_module.decode_chunk

    def counting(part, header, stream, context, known_blocks, seed):
        decoded_chunks.append(header.voxels)
        return real(part, header, stream, context, known_blocks, seed)

    monkeypatch.setattr(decoder_module, "decode_chunk", counting)
    with open_archive(serial) as archive:
        whole = archive.frame(archive.frames[0])["density"]
        chunks = len(decoded_chunks)
        low = whole.ijk.min(axis=0) + 20
        region = (tuple(int(v) for v in low), tuple(int(v) for v in low + 20))
        part = archive.frame(archive.frames[0], region)["density"]
    inside = np.all((whole.ijk >= low) & (whole.ijk <= low + 20), axis=1)
    assert 0 < inside.sum() < whole.voxel_count
    assert np.array_equal(part.ijk, whole.ijk[inside]) and np.array_equal(part.values, whole.values[inside])
    assert 0 < len(decoded_chunks) - chunks < chunks  # some chunks, not all

    bbox = ",".join(str(v) for v in [*region[0], *region[1]])
    assert main(["decompress", str(serial), "-o", str(tmp_path / "roi"), "--bbox", bbox, "--quiet",
                 "--frames", str(archive.frames[0])]) == 0
    written = read_vdb(next((tmp_path / "roi").glob("*.vdb"))).grids["density"].sorted()
    assert np.array_equal(written.ijk, part.ijk)


def test_a_point_query_decodes_only_the_chunks_it_reads(serial: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded_chunks = []
    real = decoder_module.decode_chunk

    def counting(part, header, stream, context, known_blocks, seed):
        decoded_chunks.append(header.voxels)
        return real(part, header, stream, context, known_blocks, seed)

    with open_archive(serial) as archive:
        number = archive.frames[0]
        whole = archive.frame(number)["density"]
        monkeypatch.setattr(decoder_module, "decode_chunk", counting)
        voxels = whole.ijk[:: max(1, whole.voxel_count // 5000)][:50]  # the first voxels in i: a few chunks
        assert len(voxels) == 50
        points = whole.index_to_world(voxels.astype(np.float64))
        sampled = archive.frame(number).sample(points, "density", mode="nearest")
        header = archive.entry(number).grids["density"].values
    expected = whole.values[[int(np.flatnonzero(np.all(whole.ijk == v, axis=1))[0]) for v in voxels]]
    assert np.array_equal(sampled.reshape(-1), expected)
    assert 0 < len(decoded_chunks) < len(header.chunks)


def test_a_chunk_table_that_disagrees_with_the_topology_is_refused(serial: Path, tmp_path: Path) -> None:
    with ArchiveReader(serial) as reader:
        header = reader.header
        payloads = {key: reader.get(key) for key in reader}
    values = header["frames"][0]["grids"]["density"]["values"]
    values["chunks"][0]["voxels"] += 1
    values["chunks"][1]["voxels"] -= 1  # the sum still agrees: only the split can tell


    tampered = _rewritten(tmp_path, payloads, header, "tampered.nvox")
    with open_archive(tampered) as archive, pytest.raises(ArchiveError, match="voxels"):
        archive.frame(archive.frames[0])["density"]
    values["chunks"][1]["voxels"] -= 5
    with pytest.raises(ArchiveError, match="the chunks hold"):
        open_archive(_rewritten(tmp_path, payloads, header, "sum.nvox"))
    values["chunks"][1]["voxels"] += 5
    values["chunks"][1]["context_frame"] = None if values["chunks"][0]["context_frame"] is not None else 1
    _rewritten(tmp_path, payloads, header, "context.nvox")
    with pytest.raises(ArchiveError, match="context_frame"):
        open_archive(tmp_path / "context.nvox")


def test_cli_workers_and_a_missing_ray_are_clear(sequence: list[Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compress", *map(str, sequence), "-o", str(tmp_path / "w0.nvox"), "--workers", "0"]) == 2
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["compress", *map(str, sequence), "-o", str(tmp_path / "r.nvox"), "--ray", "--quiet",
                 "--max-error", str(BOUND)]) == 2
    err = capsys.readouterr().err
    assert "neuralvox[ray]" in err and not (tmp_path / "r.nvox").exists()


def test_a_third_format_archive_still_decodes_and_a_missing_own_model_is_refused(serial: Path,
                                                                                tmp_path: Path) -> None:
    with ArchiveReader(serial) as reader:
        header = reader.header
        payloads = {key: reader.get(key) for key in reader}
    values = header["frames"][0]["grids"]["density"]["values"]
    assert values["format"] == chunked.FORMAT and values["coarse_own_model"] is False


    values["coarse_own_model"] = True
    frame, values["coarse"]["context_frame"] = values["coarse"]["context_frame"], None
    with pytest.raises(ArchiveError, match="names no context frame"):
        open_archive(_rewritten(tmp_path, payloads, header, "own.nvox"))
    if values["chunks"][0]["context_frame"] is not None:  # the grid has a neural model: the own model's stream lacks
        values["coarse"]["context_frame"] = values["chunks"][0]["context_frame"]
        with pytest.raises(ArchiveError, match="lacks values.coarse.context"):
            open_archive(_rewritten(tmp_path, payloads, header, "stream.nvox"))
    values["coarse"]["context_frame"] = frame
    values["coarse_own_model"] = "no"
    with pytest.raises(ArchiveError, match="coarse_own_model"):
        open_archive(_rewritten(tmp_path, payloads, header, "flag.nvox"))
    del values["coarse_own_model"]
    values["format"] = "neuralvox-chunked/3"  # a /4 grid without an own model is coded as /3 coded it
    with open_archive(serial) as archive, open_archive(_rewritten(tmp_path, payloads, header, "third.nvox")) as third:
        number = archive.frames[0]
        assert isinstance(third.entry(number).grids["density"].values, chunked.ChunkedHeader)
        assert third.entry(number).grids["density"].values.format == "neuralvox-chunked/3"
        expected, decoded = archive.frame(number)["density"], third.frame(number)["density"]
        assert np.array_equal(decoded.ijk, expected.ijk) and np.array_equal(decoded.values, expected.values)
