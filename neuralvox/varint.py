"""Unsigned LEB128 varints (7 bits a byte, low bits first, the high bit set on every byte but the last), and a
checked cursor over bytes that hold them."""

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


class ByteReader:
    """Bytes read front to back; running short or a bad varint raises ``error`` naming the field (``what`` names
    the data in the message: "the table ends inside a varint")."""

    def __init__(self, data: bytes, error: type[ValueError], what: str) -> None:
        self.data, self.position = data, 0
        self._error, self._what = error, what

    @property
    def remaining(self) -> int:
        return len(self.data) - self.position

    def take(self, size: int, field: str) -> bytes:
        if size > self.remaining:
            raise self._error(f"{field}: {size} bytes wanted, {self.remaining} left")
        self.position += size
        return self.data[self.position - size : self.position]

    def varint(self, field: str) -> int:
        try:
            value, self.position = decode_varint(self.data, self.position)
        except TruncatedVarint:
            raise self._error(f"{field}: the {self._what} ends inside a varint") from None
        except OverlongVarint:
            raise self._error(f"{field}: varint longer than {MAX_BYTES} bytes") from None
        return value
