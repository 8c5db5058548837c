"""Tests of the lossless topology coder: exact round trips, references, edge cases, corruption and rate."""

import zlib

import numpy as np
import pytest
from conftest import FIXTURES, ball_cells

from neuralvox.topology import decode_topology, encode_topology
from neuralvox.topology.bitcoder import SequentialBitCoder
from neuralvox.topology.octree import Octree, morton_keys, morton_sorted


def noisy_sphere(radius: float = 12, seed: int = 0, center=(0, 0, 0)) -> np.ndarray:
    """A fog-like blob: a sphere whose boundary is thresholded through noise (fuzzy, with stray voxels)."""
    cells, dist = ball_cells(int(radius) + 4)
    noise = np.random.default_rng(seed).normal(0.0, 1.2, len(cells))
    return (cells[dist + noise < radius] + np.asarray(center)).astype(np.int32)


def smooth_blob(radius: float = 14) -> np.ndarray:
    """A solid blob with a smooth, gently wavy boundary."""
    cells, dist = ball_cells(int(radius * 1.2) + 2)
    x, y, z = cells.T / radius
    wobble = 1 + 0.12 * np.sin(3 * x + 1) * np.cos(2 * y) + 0.08 * np.sin(4 * z)
    return cells[dist < radius * wobble].astype(np.int32)


def thin_shell(radius: float = 14, thickness: float = 3) -> np.ndarray:
    """A level-set narrow band: the voxels within ``thickness`` of a sphere's surface."""
    cells, dist = ball_cells(int(radius + thickness) + 1)
    return cells[np.abs(dist - radius) < thickness].astype(np.int32)


def dense_box(shape=(21, 13, 9), corner=(-5, 7, 100)) -> np.ndarray:
    cells = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).reshape(-1, 3)
    return (cells + np.asarray(corner)).astype(np.int32)


def scattered(count: int = 400, span: int = 5000, seed: int = 1) -> np.ndarray:
    points = np.random.default_rng(seed).integers(-span, span, size=(count, 3))
    return np.unique(points, axis=0).astype(np.int32)


def canonical(ijk: np.ndarray) -> np.ndarray:
    ijk = np.asarray(ijk, dtype=np.int32).reshape(-1, 3)
    return ijk[np.lexsort((ijk[:, 2], ijk[:, 1], ijk[:, 0]))]


def shuffled(ijk: np.ndarray, seed: int = 3) -> np.ndarray:
    return ijk[np.random.default_rng(seed).permutation(len(ijk))]


def assert_round_trip(ijk: np.ndarray, reference: np.ndarray | None = None) -> bytes:
    data = encode_topology(shuffled(ijk), reference)
    decoded = decode_topology(data, reference)
    assert decoded.dtype == np.int32
    np.testing.assert_array_equal(decoded, canonical(ijk))
    return data


def bits_per_voxel(data: bytes, ijk: np.ndarray) -> float:
    return 8 * len(data) / len(ijk)


SHAPES = {
    "noisy_sphere": noisy_sphere,
    "smooth_blob": smooth_blob,
    "thin_shell": thin_shell,
    "dense_box": dense_box,
    "scattered": scattered,
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_round_trip_intra(name):
    assert_round_trip(SHAPES[name]())


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_round_trip_against_moved_reference(name):
    current = SHAPES[name]()
    reference = canonical(current + np.array([1, 0, -1], dtype=np.int32))
    assert_round_trip(current, reference)


def test_round_trip_moving_sphere_sequence():
    previous = None
    for frame in range(3):
        current = noisy_sphere(radius=10 + frame, seed=frame, center=(frame, 2 * frame, 0))
        assert_round_trip(current, previous)
        previous = canonical(current)


def test_reference_makes_a_similar_frame_cheaper():
    previous = noisy_sphere(radius=12, seed=4)
    current = canonical(np.concatenate([previous, np.array([[0, 0, 16], [0, 1, 16]], np.int32)]))
    intra = assert_round_trip(current)
    inter = assert_round_trip(current, previous)
    assert len(inter) < 0.5 * len(intra)


def test_unrelated_or_empty_reference_costs_no_more_than_intra():
    current = noisy_sphere()
    intra = assert_round_trip(current)
    assert len(assert_round_trip(current, scattered(seed=7))) <= len(intra)
    assert len(assert_round_trip(current, noisy_sphere(center=(500, 0, 0)))) <= len(intra)
    assert len(assert_round_trip(current, np.zeros((0, 3), np.int32))) <= len(intra)


FORMAT_1 = FIXTURES / "topology_v1.npz"  # streams the format 1 encoder wrote (commit 75504f4)


def format_1_streams() -> dict[str, tuple[bytes, np.ndarray, np.ndarray | None]]:
    """Each committed format 1 stream, the voxels it holds and the reference it was coded against."""
    streams = np.load(FORMAT_1)
    sphere = noisy_sphere(radius=8)
    return {
        "noisy_sphere_intra": (streams["noisy_sphere_intra"].tobytes(), sphere, None),
        "noisy_sphere_against_every_third": (
            streams["noisy_sphere_against_every_third"].tobytes(), sphere, sphere[::3]),
        "thin_shell_intra": (streams["thin_shell_intra"].tobytes(), thin_shell(radius=10), None),
    }


@pytest.mark.parametrize("name", ["noisy_sphere_intra", "noisy_sphere_against_every_third", "thin_shell_intra"])
def test_format_1_streams_still_decode(name):
    data, voxels, reference = format_1_streams()[name]
    assert data[0] & 0x7F == 1 and bool(data[0] & 0x80) == (reference is not None)
    np.testing.assert_array_equal(decode_topology(data, reference), canonical(voxels))


def test_format_2_is_written_and_codes_the_format_1_sets_in_fewer_bytes():
    for data, voxels, reference in format_1_streams().values():
        coded = assert_round_trip(voxels, reference)
        assert coded[0] & 0x7F == 2
        assert len(coded) < len(data)


def test_format_2_payload_read_past_its_end_or_short_of_it_raises():
    data = encode_topology(noisy_sphere(radius=8))
    for body in (data[:-2] + b"\0", data[:-3]):  # one byte too many, one too few, checksum made valid
        forged = body + (zlib.crc32(body) & 0xFFFF).to_bytes(2, "little")
        with pytest.raises(ValueError, match="corrupted"):
            decode_topology(forged)


def test_intra_stream_decodes_whatever_reference_is_given():
    current = noisy_sphere()
    data = encode_topology(current)
    np.testing.assert_array_equal(decode_topology(data, scattered()), canonical(current))


def test_empty_set():
    data = assert_round_trip(np.zeros((0, 3), np.int32))
    assert decode_topology(data).shape == (0, 3)
    assert_round_trip(np.zeros((0, 3), np.int32), noisy_sphere())


@pytest.mark.parametrize("voxel", [(0, 0, 0), (-7, 3, 2**20), (2**31 - 1, -(2**31), 5)])
def test_single_voxel(voxel):
    assert_round_trip(np.array([voxel], np.int32))


def test_negative_and_large_coordinates():
    corners = np.array([[-(2**20), -(2**20), -(2**20)], [2**20, 2**20, 2**20], [-(2**20), 2**20, 0]], np.int32)
    assert_round_trip(np.concatenate([corners, noisy_sphere(center=(-(2**20) + 20, 2**19, -33))]))
    extremes = np.array([[-(2**31), -(2**31), -(2**31)], [2**31 - 1, 2**31 - 1, 2**31 - 1], [0, 1, -1]], np.int32)
    assert_round_trip(extremes)


def test_accepts_other_integer_dtypes():
    ijk = noisy_sphere()
    np.testing.assert_array_equal(decode_topology(encode_topology(ijk.astype(np.int64))), canonical(ijk))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 2), np.int32),
        np.zeros((3, 3), np.float32),
        np.array([[1, 2, 3], [1, 2, 3]], np.int32),
        np.array([[2**31, 0, 0]], np.int64),
    ],
    ids=["shape", "float", "duplicates", "int32-range"],
)
def test_invalid_input_raises(bad):
    with pytest.raises(ValueError):
        encode_topology(bad)


def test_every_truncation_raises():
    data = encode_topology(noisy_sphere(radius=8))
    for length in range(len(data)):
        with pytest.raises(ValueError):
            decode_topology(data[:length])


def test_corrupted_bytes_raise():
    data = encode_topology(noisy_sphere(radius=8))
    rng = np.random.default_rng(5)
    for _ in range(40):
        corrupted = bytearray(data)
        corrupted[rng.integers(len(data))] ^= 1 << rng.integers(8)
        with pytest.raises(ValueError):
            decode_topology(bytes(corrupted))


def test_garbage_with_a_valid_checksum_never_hangs():
    data = encode_topology(noisy_sphere(radius=8))
    rng = np.random.default_rng(6)
    for _ in range(20):
        body = bytearray(data[:-2])
        body[12:] = rng.integers(0, 256, len(body) - 12, dtype=np.uint8).tobytes()
        forged = bytes(body) + (zlib.crc32(bytes(body)) & 0xFFFF).to_bytes(2, "little")
        try:
            decoded = decode_topology(forged)
        except ValueError:
            continue
        assert decoded.dtype == np.int32 and decoded.shape[1] == 3


def test_reference_is_required_and_checked():
    previous = noisy_sphere(seed=1)
    current = noisy_sphere(seed=2)
    data = encode_topology(current, previous)
    with pytest.raises(ValueError, match="reference"):
        decode_topology(data)
    with pytest.raises(ValueError, match="reference"):
        decode_topology(data, canonical(previous[1:]))


def test_smooth_blob_rate():
    blob = smooth_blob(radius=14)
    assert bits_per_voxel(assert_round_trip(blob), blob) < 0.3  # measured 0.21; zstd of packed leaf masks: 0.55


def test_dense_box_costs_almost_nothing():
    box = dense_box(shape=(40, 30, 20))
    assert len(assert_round_trip(box)) < 40  # measured 22 bytes for 24000 voxels


def test_octree_from_morton_keys_matches_the_coordinate_octree():
    voxels = np.concatenate([noisy_sphere(center=(40, 40, 40)), scattered(span=200) + 300])
    origin = voxels.min(axis=0).astype(np.int64)
    relative = voxels.astype(np.int64) - origin
    depth = int(relative.max()).bit_length()
    by_coordinates = Octree(morton_sorted(relative), depth)
    keys = morton_keys(voxels, origin)
    keys.sort()
    by_keys = Octree.from_keys(keys, depth)
    for level in range(1, depth + 1):
        assert np.array_equal(by_keys.masks[level], by_coordinates.masks[level])
        if level > 1:  # the walk looks up children from level 2 up
            assert np.array_equal(by_keys.first_child[level], by_coordinates.first_child[level])


def test_sequential_coder_round_trips_long_runs_at_the_clamped_probabilities() -> None:
    """The interval shrinks fastest at the extreme probabilities: a long run of them still decodes exactly."""
    rng = np.random.default_rng(2)
    bits = (rng.random(3000) < 0.999).astype(np.uint8)
    bits[1500:] = 0
    contexts = [np.zeros(len(bits), np.int64), np.arange(len(bits)) % 2]
    patterns = [np.zeros(len(bits), np.int64)]
    encoder = SequentialBitCoder()
    encoder.code(contexts, (2, 2), bits, patterns, 0)
    data = encoder.compressed()
    assert len(data) < 40  # a sure run costs little: the mixer learns to trust the counts
    decoder = SequentialBitCoder(data)
    np.testing.assert_array_equal(decoder.code(contexts, (2, 2), None, patterns, 0), bits)
    assert decoder.exhausted()


def test_stretch_is_the_smallest_logit_that_squashes_to_at_least_each_probability():
    from neuralvox.topology.mixing import LOGIT_LIMIT, STRETCH, squash

    assert [squash(x) for x in range(-LOGIT_LIMIT, LOGIT_LIMIT)] == sorted(squash(x) for x in range(-LOGIT_LIMIT,
                                                                                                   LOGIT_LIMIT))
    for p in range(1, 4095):
        assert squash(STRETCH[p]) >= p
        assert STRETCH[p] == -LOGIT_LIMIT or squash(STRETCH[p] - 1) < p
    assert STRETCH[2048] in (0, 1) and squash(0) == 2047
