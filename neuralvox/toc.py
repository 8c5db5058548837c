"""The archive's table of contents in its compact binary form (container version 2), written and read back checked.

The table is stored LZMA2-compressed (raw stream, the fixed ``_FILTERS``: on these tables 10% smaller than zlib).
Uncompressed, it is: the header JSON's length (varint) and its UTF-8 bytes; the payload count; per payload its
key, front coded against the previous key (varints: bytes shared with it, bytes that follow; then those bytes), and
its size (varint); the checked-block count; per block the number of payloads it holds (varint) and the CRC-32 of
their bytes end to end (4 bytes, little-endian). Blocks cover the payloads in order, each at least one payload.
"""

from __future__ import annotations

import dataclasses
import json
import lzma
from typing import Any

from neuralvox.varint import MAX_BYTES, OverlongVarint, TruncatedVarint, decode_varint, encode_varint

_MAX_KEY_BYTES = 1024
# Front coding lets a short table name long keys: their total is capped at this many bytes per table byte (a real
# table's keys come to 2-4), so a crafted table cannot grow past what its plain form would hold.
_KEY_INFLATION = 16


# pb=0: the table is text and bytes, not aligned words; a 1 MiB window keeps the reader's allocation small
_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20, "pb": 0}]


class TocError(ValueError):
    """The table of contents is malformed: the message says where (the container adds the archive's name)."""


@dataclasses.dataclass(frozen=True)
class PayloadEntry:
    """One payload: its key and size; its bytes start where the previous payload's end."""

    key: str
    size: int


@dataclasses.dataclass(frozen=True)
class CheckedBlock:
    """Consecutive payloads checked together: ``count`` payloads whose bytes, end to end, have CRC-32 ``crc``."""

    count: int
    crc: int


@dataclasses.dataclass(frozen=True)
class Toc:
    """What the table of contents holds: the header (JSON object), the payloads in order and their checked blocks."""

    header: dict[str, Any]
    payloads: tuple[PayloadEntry, ...]
    blocks: tuple[CheckedBlock, ...]


def pack_toc(toc: Toc) -> bytes:
    """The table's bytes (before LZMA2)."""
    header = json.dumps(toc.header, separators=(",", ":")).encode()
    out = bytearray(encode_varint(len(header)) + header + encode_varint(len(toc.payloads)))
    previous = b""
    for entry in toc.payloads:
        key = entry.key.encode()
        shared = _shared_prefix(previous, key)
        out += encode_varint(shared) + encode_varint(len(key) - shared) + key[shared:] + encode_varint(entry.size)
        previous = key
    out += encode_varint(len(toc.blocks))
    for block in toc.blocks:
        out += encode_varint(block.count) + block.crc.to_bytes(4, "little")
    return bytes(out)


def compress_table(table: bytes) -> bytes:
    """The stored form of a packed table."""
    return lzma.compress(table, format=lzma.FORMAT_RAW, filters=_FILTERS)


def expand_table(data: bytes, limit: int) -> bytes:
    """The packed table from its stored form, refusing one that expands past ``limit`` bytes (a bomb)."""
    expander = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_FILTERS)
    try:
        table = expander.decompress(data, limit)
    except lzma.LZMAError as error:
        raise TocError(f"not an LZMA2 stream ({error})") from None
    if not expander.eof:
        if len(table) >= limit:
            raise TocError(f"inflates past {limit} bytes from {len(data)}")
        raise TocError("truncated")
    if expander.unused_data:
        raise TocError(f"{len(expander.unused_data)} bytes after the compressed table")
    return table


def unpack_toc(data: bytes, payload_bytes: int) -> Toc:
    """The table from ``data``, every field checked: keys non-empty, unique, UTF-8; sizes adding up to exactly
    ``payload_bytes``; blocks of at least one payload covering every payload; nothing left over."""
    reader = _Reader(data)
    header_bytes = reader.take(reader.varint("header length"), "header")
    try:
        header = json.loads(header_bytes)
    except (ValueError, RecursionError) as error:
        raise TocError(f"header: not JSON ({error})") from None
    if not isinstance(header, dict):
        raise TocError("header: not a JSON object")
    count = reader.varint("payload count")
    payloads, seen, previous, total, key_total = [], set(), b"", 0, 0
    for index in range(count):
        shared = reader.varint(f"payload {index}: shared key length")
        if shared > len(previous):
            raise TocError(f"payload {index}: shares {shared} key bytes with a key of {len(previous)}")
        key_bytes = previous[:shared] + reader.take(reader.varint(f"payload {index}: key length"), "key")
        key_total += len(key_bytes)
        if len(key_bytes) > _MAX_KEY_BYTES or key_total > _KEY_INFLATION * len(data):
            raise TocError(f"payload {index}: key of {len(key_bytes)} bytes, {key_total} in all: too long")
        key = _decode_key(key_bytes, index)
        if key in seen:
            raise TocError(f"payload {index}: key {_short(key)} repeated")
        size = reader.varint(f"payload {index}: size")
        if size > payload_bytes - total:
            raise TocError(f"payload {index} ({_short(key)}): size {size} runs past the {payload_bytes} payload bytes")
        payloads.append(PayloadEntry(key, size))
        seen.add(key)
        previous, total = key_bytes, total + size
    if total != payload_bytes:
        raise TocError(f"payloads: sizes add up to {total} bytes, the archive holds {payload_bytes}")
    blocks = _read_blocks(reader, count)
    if reader.remaining:
        raise TocError(f"{reader.remaining} bytes after the last checked block")
    return Toc(header, tuple(payloads), blocks)


def _read_blocks(reader: _Reader, payloads: int) -> tuple[CheckedBlock, ...]:
    block_count = reader.varint("block count")
    if block_count > payloads:
        raise TocError(f"{block_count} checked blocks for {payloads} payloads")
    blocks, covered = [], 0
    for index in range(block_count):
        count = reader.varint(f"block {index}: payload count")
        if not 1 <= count <= payloads - covered:
            raise TocError(f"block {index}: {count} payloads where {payloads - covered} remain")
        blocks.append(CheckedBlock(count, int.from_bytes(reader.take(4, f"block {index}: checksum"), "little")))
        covered += count
    if covered != payloads:
        raise TocError(f"checked blocks cover {covered} of {payloads} payloads")
    return tuple(blocks)


def _decode_key(key: bytes, index: int) -> str:
    try:
        text = key.decode()
    except UnicodeDecodeError:
        raise TocError(f"payload {index}: key is not UTF-8") from None
    if not text:
        raise TocError(f"payload {index}: empty key")
    return text


def _short(key: str) -> str:
    return repr(key) if len(key) <= 60 else repr(key[:57] + "...")


def _shared_prefix(a: bytes, b: bytes) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


class _Reader:
    """Bytes read front to back; running short or an overlong varint is a TocError naming the field."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.position

    def take(self, size: int, field: str) -> bytes:
        if size > self.remaining:
            raise TocError(f"{field}: {size} bytes wanted, {self.remaining} left")
        self.position += size
        return self.data[self.position - size : self.position]

    def varint(self, field: str) -> int:
        try:
            value, self.position = decode_varint(self.data, self.position)
        except TruncatedVarint:
            raise TocError(f"{field}: the table ends inside it") from None
        except OverlongVarint:
            raise TocError(f"{field}: varint longer than {MAX_BYTES} bytes") from None
        return value
