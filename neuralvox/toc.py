"""The archive's table of contents in its compact binary form (container versions 2 to 4), written and read back
checked.

Uncompressed, the table is: the header's length (varint) and its bytes; version 2: the header as JSON text in UTF-8,
the payload count, and per payload its key, front coded against the previous key (varints: bytes shared with it, bytes
that follow; then those bytes), and its size (varint); versions 3 and 4: ``[header, [key parts, ...]]`` in
``neuralvox.packed_header``'s binary form (version 3 with the ``VOCABULARY`` before "neuralvox/2"), then each
payload's size (varint). Then the checked-block count; per block the number of payloads it holds (varint) and the
CRC-32 of their bytes end to end (4 bytes, little-endian). Blocks cover the payloads in order, each at least one
payload.

Stored, version 2's table is LZMA2-compressed (raw stream, the fixed ``_FILTERS``); version 3's is one byte naming
the method (``RAW``, ``LZMA2`` with the same filters, ``DEFLATE``: raw zlib stream, level 9) and the table so
stored, whichever method gives the fewest bytes; version 4's the same, its LZMA2 with one literal context bit
(``_FILTERS_V4``: 2-3% fewer bytes on these small binary tables than the default three), and a fourth method,
``DEFLATE_DICTIONARY``: deflate against the preset dictionary ``neuralvox.toc_dictionary`` (packed headers of three
small archives, so that a short table finds its structure there: 530 -> 374 bytes on Blender c42 at low).
"""

from __future__ import annotations

import dataclasses
import json
import lzma
import zlib
from typing import Any

from neuralvox.packed_header import VOCABULARY, PackedHeaderError, pack_header, shared_prefix, unpack_header
from neuralvox.toc_dictionary import DICTIONARY
from neuralvox.varint import ByteReader, encode_varint

_MAX_KEY_BYTES = 1024
# Front coding lets a short table name long keys: their total is capped at this many bytes per table byte (a real
# table's keys come to 2-4), so a crafted table cannot grow past what its plain form would hold.
_KEY_INFLATION = 16


# pb=0: the table is text and bytes, not aligned words; a 1 MiB window keeps the reader's allocation small
_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20, "pb": 0}]
_FILTERS_V4 = [{**_FILTERS[0], "lc": 1}]
RAW, LZMA2, DEFLATE = 0, 1, 2  # versions 3 and 4: how the stored table is compressed, its first byte
DEFLATE_DICTIONARY = 3  # version 4 on
_METHODS = {3: (RAW, LZMA2, DEFLATE), 4: (RAW, LZMA2, DEFLATE, DEFLATE_DICTIONARY)}
_METHOD_NAMES = {RAW: "raw", LZMA2: "LZMA2", DEFLATE: "deflate", DEFLATE_DICTIONARY: "deflate with the dictionary"}
CURRENT = 4  # the version written


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


def pack_toc(toc: Toc, version: int = CURRENT) -> bytes:
    """The table's bytes (before compression)."""
    if version == 2:
        header = json.dumps(toc.header, separators=(",", ":")).encode()
        out = bytearray(encode_varint(len(header)) + header + encode_varint(len(toc.payloads)))
        previous = b""
        for entry in toc.payloads:
            key = entry.key.encode()
            shared = shared_prefix(previous, key)
            out += encode_varint(shared) + encode_varint(len(key) - shared) + key[shared:] + encode_varint(entry.size)
            previous = key
    else:
        packed = pack_header([toc.header, [_key_parts(entry.key) for entry in toc.payloads]])
        out = bytearray(encode_varint(len(packed)) + packed)
        for entry in toc.payloads:
            out += encode_varint(entry.size)
    out += encode_varint(len(toc.blocks))
    for block in toc.blocks:
        out += encode_varint(block.count) + block.crc.to_bytes(4, "little")
    return bytes(out)


def _key_parts(key: str) -> list[str | int]:
    """A key's slash-separated parts, the numbers as integers (``frames/12/density/latents``: 12)."""
    return [int(part) if part.isascii() and part.isdigit() and len(part) < 19 and str(int(part)) == part else part
            for part in key.split("/")]


def compress_table(table: bytes, version: int = CURRENT) -> bytes:
    """The stored form of a packed table."""
    lzma2 = lzma.compress(table, format=lzma.FORMAT_RAW, filters=_lzma2_filters(version))
    if version == 2:
        return lzma2
    stored = [bytes([RAW]) + table, bytes([LZMA2]) + lzma2, bytes([DEFLATE]) + _deflate(table, None)]
    if DEFLATE_DICTIONARY in _METHODS[version]:
        stored.append(bytes([DEFLATE_DICTIONARY]) + _deflate(table, DICTIONARY))
    return min(stored, key=len)


def _deflate(table: bytes, dictionary: bytes | None) -> bytes:
    deflater = (zlib.compressobj(9, zlib.DEFLATED, -15, 9) if dictionary is None
                else zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=dictionary))
    return deflater.compress(table) + deflater.flush()


def _lzma2_filters(version: int) -> list[dict[str, Any]]:
    return _FILTERS_V4 if version >= 4 else _FILTERS


def expand_table(data: bytes, limit: int, version: int = CURRENT) -> bytes:
    """The packed table from its stored form, refusing one that expands past ``limit`` bytes (a bomb)."""
    if version == 2:
        return _expand_lzma2(data, limit, version)
    methods = _METHODS[version]
    if not data or data[0] not in methods:
        known = ", ".join(f"{_METHOD_NAMES[method]} ({method:02x})" for method in methods)
        raise TocError(f"compression method {data[:1].hex() or 'missing'} is none of {known}")
    method, stored = data[0], data[1:]
    if method == RAW:
        if len(stored) > limit:
            raise TocError(f"{len(stored)} bytes, more than {limit}")
        return stored
    if method == LZMA2:
        return _expand_lzma2(stored, limit, version)
    return _expand_deflate(stored, limit, DICTIONARY if method == DEFLATE_DICTIONARY else None)


def _expand_lzma2(data: bytes, limit: int, version: int) -> bytes:
    expander = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_lzma2_filters(version))
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


def _expand_deflate(data: bytes, limit: int, dictionary: bytes | None) -> bytes:
    inflater = zlib.decompressobj(-15) if dictionary is None else zlib.decompressobj(-15, zdict=dictionary)
    try:
        table = inflater.decompress(data, limit)
    except zlib.error as error:
        raise TocError(f"not a deflate stream ({error})") from None
    if inflater.unconsumed_tail:
        raise TocError(f"inflates past {limit} bytes from {len(data)}")
    if not inflater.eof:
        raise TocError("truncated")
    if inflater.unused_data:
        raise TocError(f"{len(inflater.unused_data)} bytes after the compressed table")
    return table


def unpack_toc(data: bytes, payload_bytes: int, version: int = CURRENT) -> Toc:
    """The table from ``data``, every field checked: keys non-empty, unique, UTF-8; sizes adding up to exactly
    ``payload_bytes``; blocks of at least one payload covering every payload; nothing left over."""
    reader = ByteReader(data, TocError, "table")
    header_bytes = reader.take(reader.varint("header length"), "header")
    if version == 2:
        header, keys = _json_header(header_bytes), None
    else:
        header, keys = _packed_header(header_bytes, version)
    count = reader.varint("payload count") if keys is None else len(keys)
    payloads, seen, previous, total, key_total = [], set(), b"", 0, 0
    for index in range(count):
        if keys is None:
            shared = reader.varint(f"payload {index}: shared key length")
            if shared > len(previous):
                raise TocError(f"payload {index}: shares {shared} key bytes with a key of {len(previous)}")
            key_bytes = previous[:shared] + reader.take(reader.varint(f"payload {index}: key length"), "key")
        else:
            key_bytes = _joined_key(keys[index], index)
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


def _json_header(data: bytes) -> dict[str, Any]:
    """Version 2's header: JSON text."""
    try:
        header = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise TocError(f"header: not JSON ({error})") from None
    if not isinstance(header, dict):
        raise TocError("header: not a JSON object")
    return header


def _packed_header(data: bytes, version: int) -> tuple[dict[str, Any], list[Any]]:
    """Version 3's header and payload keys, packed together: ``[header, [key parts, ...]]``."""
    try:
        value = unpack_header(data, len(VOCABULARY) if version >= 4 else VOCABULARY.index("neuralvox/2"))
    except PackedHeaderError as error:
        raise TocError(f"header: {error}") from None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], list)):
        raise TocError("header: not the header and the payload keys")
    if not isinstance(value[0], dict):
        raise TocError("header: not a JSON object")
    return value[0], value[1]


def _joined_key(parts: Any, index: int) -> bytes:
    if not (isinstance(parts, list) and parts and all(
            isinstance(part, str) or (type(part) is int and part >= 0) for part in parts)):
        raise TocError(f"payload {index}: key parts {str(parts)[:60]} are not texts and numbers")
    return "/".join(map(str, parts)).encode()


def _read_blocks(reader: ByteReader, payloads: int) -> tuple[CheckedBlock, ...]:
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
