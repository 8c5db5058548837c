"""The compiled loops of the topology coder give the numpy reference's bytes, and decode them to the same voxels."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from conftest import without_compiled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_topology import SHAPES, format_1_streams, noisy_sphere

from neuralvox.topology import decode_topology, encode_topology, kernels, octree, stream
from neuralvox.topology.bitcoder import BitCoder

USERS = (octree, stream)


def test_the_compiled_loops_are_built() -> None:
    assert kernels.compiled is not None, "neuralvox._topology is not built: run make setup"


def reference(monkeypatch: pytest.MonkeyPatch, run):
    """``run()`` with the compiled loops switched off: the numpy reference throughout."""
    return without_compiled(monkeypatch, USERS, run)


def assert_same_bytes(monkeypatch: pytest.MonkeyPatch, ijk: np.ndarray, ref: np.ndarray | None) -> None:
    compiled_bytes = encode_topology(ijk, ref)
    numpy_bytes = reference(monkeypatch, lambda: encode_topology(ijk, ref))
    assert compiled_bytes == numpy_bytes
    decoded = decode_topology(compiled_bytes, ref)
    np.testing.assert_array_equal(decoded, reference(monkeypatch, lambda: decode_topology(compiled_bytes, ref)))
    assert len(decoded) == len(ijk)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shapes_intra_and_against_a_moved_reference(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    ijk = SHAPES[name]()
    assert_same_bytes(monkeypatch, ijk, None)
    assert_same_bytes(monkeypatch, ijk, ijk + np.array([1, 0, -2], np.int32))


def test_reference_with_duplicate_rows_and_a_cube_beyond_morton_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    sphere = noisy_sphere()
    assert_same_bytes(monkeypatch, sphere, np.concatenate([sphere[::2], sphere[::3]]))
    far = np.array([[-2**30, 5, 7], [2**30, -3, 2**29], [0, 0, 0], [0, 0, 1]], np.int32)
    assert_same_bytes(monkeypatch, far, far[1:] + 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), box=st.integers(1, 24), fill=st.floats(0.01, 1.0), with_reference=st.booleans())
def test_random_sets_give_the_same_bytes(monkeypatch: pytest.MonkeyPatch, seed: int, box: int, fill: float,
                                         with_reference: bool) -> None:
    rng = np.random.default_rng(seed)
    cells = np.argwhere(rng.random((box, box, box)) < fill).astype(np.int32) - box // 2
    if len(cells) == 0:
        cells = np.zeros((1, 3), np.int32)
    ref = None
    if with_reference:
        kept = cells[rng.random(len(cells)) < 0.8]
        ref = np.concatenate([kept, rng.integers(-box, box, (len(cells) // 5 + 1, 3)).astype(np.int32)])
    assert_same_bytes(monkeypatch, cells, ref)


def test_garbage_with_a_valid_checksum_raises_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    body = bytearray(encode_topology(noisy_sphere())[:-2])
    body[12:] = np.random.default_rng(0).integers(0, 256, len(body) - 12, dtype=np.uint8).tobytes()
    forged = bytes(body) + (zlib.crc32(bytes(body)) & 0xFFFF).to_bytes(2, "little")
    with pytest.raises(ValueError, match="topology stream") as compiled_error:
        decode_topology(forged)
    with pytest.raises(ValueError, match="topology stream") as numpy_error:
        reference(monkeypatch, lambda: decode_topology(forged))
    assert str(compiled_error.value) == str(numpy_error.value)


def _sphere_octrees(with_reference: bool):
    """A noisy sphere's voxels, its octree's depth, extent and octree, and a reference's masks and first children
    (every other voxel moved by one; None without a reference)."""
    ijk = noisy_sphere(radius=20)
    origin = ijk.min(axis=0).astype(np.int64)
    extent = ijk.max(axis=0).astype(np.int64) - origin
    depth = max(int(e).bit_length() for e in extent)
    truth, _ = stream._octree(ijk, origin, depth, reference=False)
    ref = stream._reference_octree(ijk[::2] + 1, origin, depth)[0] if with_reference else None
    masks = None if ref is None else ref.masks
    first = None if ref is None else ref.first_child
    return ijk, depth, extent, truth, masks, first


@pytest.mark.parametrize("with_reference", [False, True])
def test_finest_level_without_a_neighbour_table_codes_the_same(with_reference: bool) -> None:
    """Frames above ``max_finest_table`` nodes compute the finest level's neighbours on the fly: same bits."""
    ijk, depth, extent, truth, masks, first = _sphere_octrees(with_reference)

    def encoded(limit: int) -> bytes:
        coder = BitCoder()
        kernels.compiled.walk(depth, extent, truth.masks, masks, first, len(ijk), coder.range_code, limit)
        return coder.compressed()

    table, on_the_fly = encoded(1 << 20), encoded(0)
    assert table == on_the_fly
    decoder = BitCoder(np.frombuffer(on_the_fly, "<u4").astype(np.uint32))
    _, leaves = kernels.compiled.walk(depth, extent, None, masks, first, len(ijk), decoder.range_code, 0)
    np.testing.assert_array_equal(leaves[leaves != 0], truth.masks[1])  # nodes of the reference alone hold none


@pytest.mark.parametrize("name", ["noisy_sphere_intra", "noisy_sphere_against_every_third", "thin_shell_intra"])
def test_format_1_streams_decode_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    data, _, ref = format_1_streams()[name]
    numpy_voxels = reference(monkeypatch, lambda: decode_topology(data, ref))
    np.testing.assert_array_equal(decode_topology(data, ref), numpy_voxels)


@pytest.mark.parametrize("with_reference", [False, True])
def test_format_2_finest_level_without_a_neighbour_table_codes_the_same(with_reference: bool) -> None:
    ijk, depth, extent, truth, masks, first = _sphere_octrees(with_reference)
    run = (depth, extent, truth.masks, masks, first, len(ijk), None)
    table = kernels.compiled.walk(*run, 1 << 20, sequential=True)[2]
    on_the_fly = kernels.compiled.walk(*run, 0, sequential=True)[2]
    assert table == on_the_fly
    _, leaves, read = kernels.compiled.walk(depth, extent, None, masks, first, len(ijk), None, 0, sequential=True,
                                            payload=on_the_fly)
    np.testing.assert_array_equal(leaves[leaves != 0], truth.masks[1])
    assert read == len(on_the_fly) + 3

