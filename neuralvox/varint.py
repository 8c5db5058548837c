"""Unsigned LEB128 varints (7 bits a byte, low bits first, the high bit set on every byte but the last)."""

from __future__ import annotations

MAX_BYTES = 10  # 70 bits: more than any size, count or coordinate an archive holds


class TruncatedVarint(ValueError):
    """The data ends inside a varint."""


class OverlongVarint(ValueError):
    """A varint runs past ``MAX_BYTES`` bytes."""


def encode_varint(value: int) -> bytes:
    """The varint of ``value`` (>= 0)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, position: int) -> tuple[int, int]:
    """The varint starting at ``position`` of ``data`` and the position after it."""
    value = 0
    for shift in range(0, 7 * MAX_BYTES, 7):
        if position >= len(data):
            raise TruncatedVarint
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
    raise OverlongVarint
