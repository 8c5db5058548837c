"""The topology stream: header, checksum and the encode/decode entry points.

Layout: 1 byte (format version, 0x80 when coded against a reference), varint voxel count, then for a non-empty set
the box origin (3 zigzag varints) and extent - 1 (3 varints), the payload, and a 16-bit check of all of it (CRC-32
seeded with a CRC of the reference voxels used, so a wrong reference is caught too). Payload of format 2 (written):
the arithmetic coder's bytes of ``SequentialBitCoder`` (counts after every bit); of format 1 (still read): the range
coder's 32-bit words of ``BitCoder`` (counts between chunks). Both walk the same octree with the same contexts.
"""

from __future__ import annotations

import zlib

import numpy as np

from neuralvox.topology.bitcoder import BitCoder, SequentialBitCoder
from neuralvox.topology.kernels import compiled
from neuralvox.topology.octree import KEY_BITS, OCTANTS, POPCOUNT, Octree, morton_keys, morton_sorted, walk
from neuralvox.varint import OverlongVarint, TruncatedVarint, decode_varint, encode_varint

_FORMAT_VERSION = 2
_CHUNKED_VERSION = 1  # format 1: counts between chunks, constriction's range coder
_FLAG_REFERENCE = 0x80
_CHECK_BYTES = 2
_ROWS = 1 << 20  # rows converted at a time (bounds the temporaries of a large set)


def _checked_coords(array, what: str) -> np.ndarray:
    """(N, 3) integer coordinates that fit int32, as C-contiguous int32 (not copied when they are already)."""
    coords = np.asarray(array)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"{what} must have shape (N, 3), got {coords.shape}")
    if coords.dtype.kind not in "iu":
        raise ValueError(f"{what} must hold integers, got dtype {coords.dtype}")
    if coords.dtype == np.int32:
        return np.ascontiguousarray(coords)
    info = np.iinfo(np.int32)
    if coords.size and (coords.min() < info.min or coords.max() > info.max):
        raise ValueError(f"{what} holds coordinates outside the int32 range")
    return coords.astype(np.int32)


def _octree(coords: np.ndarray, origin: np.ndarray, depth: int, reference: bool) -> tuple[Octree, int]:
    """The octree of ``coords - origin`` (all inside the cube of side 2**depth) and, for a ``reference``, a CRC-32 of
    those coordinates in Morton order (as int64); a coded set must hold distinct voxels. Cubes up to 2**KEY_BITS go
    through Morton keys, a few bytes a voxel; larger ones through the coordinates."""
    if depth > KEY_BITS:
        voxels = morton_sorted(coords.astype(np.int64) - origin)
        if not reference and len(voxels) > 1 and (voxels[1:] == voxels[:-1]).all(axis=1).any():
            raise ValueError("ijk holds duplicate coordinates; a topology is a set of distinct voxels")
        return Octree(voxels, depth), zlib.crc32(voxels.astype("<i8").tobytes()) if reference else 0
    if compiled is not None:
        masks, first_child, order, duplicate = compiled.morton_octree(coords, origin, depth, reference, reference)
        if duplicate and not reference:
            raise ValueError("ijk holds duplicate coordinates; a topology is a set of distinct voxels")
        return Octree.from_levels(masks, first_child), _crc_in_order(coords, origin, order) if reference else 0
    keys = morton_keys(coords, origin)
    crc = 0
    if reference:
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        crc = _crc_in_order(coords, origin, order)
        del order
    else:
        keys.sort()
        if len(keys) > 1 and (keys[1:] == keys[:-1]).any():
            raise ValueError("ijk holds duplicate coordinates; a topology is a set of distinct voxels")
    return Octree.from_keys(keys, depth, children=reference), crc


def _crc_in_order(coords: np.ndarray, origin: np.ndarray, order: np.ndarray) -> int:
    """CRC-32 of the rows of ``coords - origin`` (as little-endian int64) taken in ``order``."""
    crc = 0
    for start in range(0, len(order), _ROWS):
        rows = coords[order[start:start + _ROWS]].astype(np.int64) - origin
        crc = zlib.crc32(rows.astype("<i8").tobytes(), crc)
    return crc


def _reference_octree(reference, origin: np.ndarray, depth: int) -> tuple[Octree | None, int]:
    """The reference's voxels inside the coded cube as an octree, and a checksum of them (0 when none)."""
    if reference is None or depth == 0:
        return None, 0
    coords = _checked_coords(reference, "reference")
    inside = np.ones(len(coords), bool)
    for axis in range(3):
        relative = coords[:, axis].astype(np.int64) - origin[axis]
        inside &= (relative >= 0) & (relative < (1 << depth))
    if not inside.all():
        coords = coords[inside]
    if len(coords) == 0:
        return None, 0
    return _octree(coords, origin, depth, reference=True)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    try:
        return decode_varint(data, pos)
    except TruncatedVarint:
        raise ValueError("topology stream is truncated (header ends early)") from None
    except OverlongVarint:
        raise ValueError("topology stream is corrupted (overlong number in header)") from None


def _zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def _unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


def _check(body: bytes, reference_crc: int) -> bytes:
    return (zlib.crc32(body, reference_crc) & 0xFFFF).to_bytes(_CHECK_BYTES, "little")


def _canonical(parents: np.ndarray, masks: np.ndarray, origin: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """The children of ``parents`` (their child ``masks``; coordinates relative to ``origin``) as absolute int32
    coordinates in lexicographic (i, j, k) order: through one int64 key a voxel, sorted in place, when the box
    allows."""
    span_j, span_k = int(extent[1]) + 1, int(extent[2]) + 1
    if (int(extent[0]) + 1) * span_j * span_k < 2**63 and compiled is not None:
        return compiled.canonical(parents, masks, origin, extent)
    if (int(extent[0]) + 1) * span_j * span_k >= 2**63:
        parent, octant = np.nonzero(np.unpackbits(masks[:, None], axis=1, bitorder="little"))
        voxels = 2 * parents[parent] + OCTANTS[octant]
        return (voxels[np.lexsort((voxels[:, 2], voxels[:, 1], voxels[:, 0]))] + origin).astype(np.int32)
    keys = np.empty(int(POPCOUNT[masks].sum()), np.int64)
    filled = 0
    for octant in range(8):
        child = 2 * parents[np.flatnonzero(masks & np.uint8(1 << octant))] + OCTANTS[octant]
        keys[filled:filled + len(child)] = (child[:, 0] * span_j + child[:, 1]) * span_k + child[:, 2]
        filled += len(child)
    keys.sort()
    voxels = np.empty((len(keys), 3), np.int32)
    for start in range(0, len(keys), _ROWS):
        block = keys[start:start + _ROWS]
        voxels[start:start + _ROWS, 0] = block // (span_j * span_k) + origin[0]
        voxels[start:start + _ROWS, 1] = block // span_k % span_j + origin[1]
        voxels[start:start + _ROWS, 2] = block % span_k + origin[2]
    return voxels


def encode_topology(ijk: np.ndarray, reference: np.ndarray | None = None) -> bytes:
    """Losslessly code a set of active voxels (N, 3), in any order, optionally against a reference set.

    ``reference`` is the previous frame's decoded set (or any related set, e.g. another grid of the same frame); the
    decoder needs the same one. The stream is coded both with and without it and the shorter one is kept.
    """
    coords = _checked_coords(ijk, "ijk")
    body = bytearray()
    if len(coords) == 0:
        body.append(_FORMAT_VERSION)
        body += encode_varint(0)
        return bytes(body) + _check(bytes(body), 0)
    if compiled is not None:
        origin, high = compiled.coordinate_range(coords)
    else:
        origin, high = coords.min(axis=0).astype(np.int64), coords.max(axis=0).astype(np.int64)
    extent = high - origin
    depth = max(int(e).bit_length() for e in extent)
    truth, _ = _octree(coords, origin, depth, reference=False)
    payload = _encode_payload(truth, depth, extent, None, len(coords))
    flags, reference_crc = 0, 0
    reference_tree, crc = _reference_octree(reference, origin, depth)
    if reference_tree is not None:
        with_reference = _encode_payload(truth, depth, extent, reference_tree, len(coords))
        if len(with_reference) < len(payload):
            payload, flags, reference_crc = with_reference, _FLAG_REFERENCE, crc
    body.append(_FORMAT_VERSION | flags)
    body += encode_varint(len(coords))
    for value in origin:
        body += encode_varint(_zigzag(int(value)))
    for value in extent:
        body += encode_varint(int(value))
    body += payload
    return bytes(body) + _check(bytes(body), reference_crc)


def _encode_payload(truth: Octree, depth: int, extent: np.ndarray, reference: Octree | None, count: int) -> bytes:
    if depth == 0:
        return b""
    bitcoder = SequentialBitCoder()
    walk(bitcoder, depth, extent, reference, truth, count)
    return bitcoder.compressed()


def _payload_decoder(version: int, payload: bytes) -> BitCoder | SequentialBitCoder:
    if version == _FORMAT_VERSION:
        return SequentialBitCoder(payload)
    if len(payload) % 4:
        raise ValueError("topology stream is corrupted (payload is not whole 32-bit words)")
    return BitCoder(np.frombuffer(payload, "<u4").astype(np.uint32))


def decode_topology(data: bytes, reference: np.ndarray | None = None, *, expected: int | None = None) -> np.ndarray:
    """The voxel set of an ``encode_topology`` stream as (N, 3) int32 in lexicographic (i, j, k) order.

    Pass the same ``reference`` the encoder had (it is ignored when the stream was coded without one).
    Raises ValueError on a truncated or corrupted stream, or one coded against a reference that is not given, or
    one whose voxel count is not ``expected`` (checked before anything is allocated).
    """
    data = bytes(data)
    if len(data) < 2 + _CHECK_BYTES:
        raise ValueError(f"topology stream is truncated ({len(data)} bytes)")
    body, check = data[:-_CHECK_BYTES], data[-_CHECK_BYTES:]
    version, flags = body[0] & 0x7F, body[0] & _FLAG_REFERENCE
    if version not in (_FORMAT_VERSION, _CHUNKED_VERSION):
        raise ValueError(f"topology stream has unknown format version {version} (corrupted, or from a newer neuralvox)")
    count, pos = _read_varint(body, 1)
    if expected is not None and count != expected:
        raise ValueError(f"topology stream holds {count} voxels where the header says {expected}")
    if count == 0:
        if pos != len(body) or _check(body, 0) != check:
            raise ValueError("topology stream is corrupted (checksum mismatch)")
        return np.zeros((0, 3), np.int32)
    origin = np.zeros(3, np.int64)
    extent = np.zeros(3, np.int64)
    for axis in range(3):
        value, pos = _read_varint(body, pos)
        origin[axis] = _unzigzag(value)
    for axis in range(3):
        extent[axis], pos = _read_varint(body, pos)
    info = np.iinfo(np.int32)
    if origin.min() < info.min or (origin + extent).max() > info.max or count > np.prod(extent + 1, dtype=float):
        raise ValueError("topology stream is corrupted (box or voxel count out of range)")
    depth = max(int(e).bit_length() for e in extent)
    reference_tree, reference_crc = None, 0
    if flags:
        if reference is None:
            raise ValueError("topology stream was coded against a reference set; pass the encoder's reference")
        reference_tree, reference_crc = _reference_octree(reference, origin, depth)
    if _check(body, reference_crc) != check:
        raise ValueError(
            "topology stream checksum mismatch: the data is corrupted or truncated"
            + (", or the reference differs from the encoder's" if flags else "")
        )
    bitcoder = _payload_decoder(version, body[pos:])
    if depth == 0:
        return origin[None].astype(np.int32)
    parents, masks = walk(bitcoder, depth, extent, reference_tree, None, count)
    decoded = int(POPCOUNT[masks].sum())
    if decoded != count or not bitcoder.exhausted():
        raise ValueError(f"topology stream is corrupted: decoded {decoded} voxels, header says {count}")
    return _canonical(parents, masks, origin, extent)
