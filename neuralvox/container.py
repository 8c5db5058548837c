"""The .nvox archive: named, checksummed byte payloads and a JSON header in one HDF5 file, written atomically.

The container knows nothing of models: the codec names its payloads with slash paths such as
``frames/3/density/latents`` or ``groups/0/density/weights`` and keeps in the header whatever index it needs to
decode one frame alone. Layout of the HDF5 file (container version 4):

- ``neuralvox`` (the name is the format mark): one contiguous uint8 dataset stored without HDF5 filters,
  attributes or times, in the root group and nothing else (both object headers made no larger than they need, where
  the HDF5 library h5py loaded offers that; file addresses and lengths of 2 bytes where the file stays below 64 kB, 4
  below 4 GB, else 8): the container version (one byte, 4), the table of contents' stored length (varint) and
  CRC-32 (4 bytes, little-endian), the stored table of contents (``neuralvox.toc``: the header in its packed binary
  form with the payload keys, each payload's size, and a CRC-32 per checked block of consecutive payloads, a block
  being at most ``BLOCK_BYTES`` unless one payload is larger; compressed by whichever of LZMA2, deflate, deflate
  against a preset dictionary, or none is shortest), then every payload's bytes end to end in the order they were
  put.

Version 3 (still read): the same, its table's packed header with a shorter vocabulary, its LZMA2 with the default
literal context, no dictionary (``neuralvox.toc``); a neuralvox that reads up to version 3 refuses a version 4 archive
as newer.

Version 2 (still read): root attribute ``format`` = ``"neuralvox"``; the dataset ``archive`` with attributes
``format_version`` = 2, ``toc_bytes`` and ``toc_crc32``, holding the LZMA2-compressed table (the header as JSON text,
the keys front coded) then the payloads. A neuralvox that reads only versions 1 and 2 refuses a version 3 or 4
archive as "without the neuralvox format mark" (the root attribute).

Version 1 (still read): root attributes ``format`` and ``format_version`` = 1, a ``toc`` dataset of zlib JSON
``{"header": {...}, "payloads": [[key, size, crc32], ...]}`` with a ``crc32`` attribute, and a ``payloads`` dataset.

Version 4 costs 136 bytes of HDF5 below 64 kB, 162 below 4 GB, 214 above (version 3 always 214; 233 more without the
smaller object headers; a ``format`` attribute would cost about 90 more, a version attribute 47), version 2 about 450,
version 1 about 850; one HDF5 dataset per payload would cost 320-560 bytes each. Reading one payload reads only its
checked block.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from neuralvox.atomic import atomic_output
from neuralvox.packed_header import pack_header
from neuralvox.toc import (
    CheckedBlock,
    PayloadEntry,
    Toc,
    TocError,
    compress_table,
    expand_table,
    pack_toc,
    unpack_toc,
)
from neuralvox.varint import OverlongVarint, TruncatedVarint, decode_varint, encode_varint

FORMAT = "neuralvox"
FORMAT_VERSION = 4
_CRC_BYTES = 4
_MAX_PREFIX_BYTES = 1 + 10 + _CRC_BYTES  # version 3 on: the version byte, table length (a varint) and checksum
# Payloads are checked in blocks of at most this many bytes (or one larger payload): 5 bytes a block in the table
# (4 kB until 2026-11-30: 50 bytes more on a 58 kB archive), a read reads its whole block, a damaged byte makes the
# block's other payloads unreadable too
BLOCK_BYTES = 16384
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_METADATA_BYTES = 1024  # more than the file's HDF5 metadata takes, setters or not (136-450 bytes)
_COPY_BLOCK_BYTES = 16 << 20
_DATASET = "archive"  # version 2's data
_MARKED_DATASET = FORMAT  # version 3 on: the data, its name the format mark
# The table of contents inflates to at most this many bytes per compressed byte, and never past _MAX_TOC_BYTES:
# a real one compresses about 10:1, a zlib or LZMA bomb 1000:1 and more.
_TOC_INFLATION = 64
_MIN_TOC_BYTES = 16 << 20
_MAX_TOC_BYTES = 256 << 20
_MAX_CRC = (1 << 32) - 1


class ArchiveError(Exception):
    """The archive is missing, damaged, or not a neuralvox archive."""


class ArchiveFormatError(ArchiveError):
    """A field of an archive's table of contents is missing, malformed or out of bounds: the message names the
    archive, and where they apply the frame, the grid and the field."""

    def __init__(self, archive: str | os.PathLike, field: str, problem: str, *, frame: object = None,
                 grid: str | None = None) -> None:
        self.archive, self.field, self.problem, self.frame, self.grid = Path(archive), field, problem, frame, grid
        where = [f"frame {frame}"] if frame is not None else []
        where += [f"grid {grid!r}"] if grid is not None else []
        super().__init__(f"{archive}: malformed archive: {', '.join([*where, f'field {field!r}'])}: {problem}")


def describe_key(key: str) -> str:
    """Name a payload for messages: ``frames/3/density/latents`` -> "frame 3, grid 'density', stream 'latents'"."""
    kind, _, rest = key.partition("/")
    index, _, rest = rest.partition("/")
    if kind not in ("frames", "groups") or not index or not rest:
        return f"payload {key!r}"
    grid, _, stream = rest.rpartition("/")
    place = f"{kind[:-1]} {index}"
    return f"{place}, grid {grid!r}, stream {stream!r}" if grid else f"{place}, stream {stream!r}"


class ArchiveWriter:
    """Write an archive: ``with ArchiveWriter(path) as archive: archive.put(key, data)``.

    The file appears at ``path`` only when the block ends without an exception; otherwise nothing is left behind.
    An existing ``path`` is refused unless ``force``.
    """

    def __init__(self, path: str | os.PathLike, *, force: bool = False) -> None:
        self.path = Path(path)
        self.force = force
        self._header: dict[str, Any] = {}
        self._payloads: dict[str, int] = {}  # key -> size, in the order put
        self._blocks: list[CheckedBlock] = []  # closed blocks
        self._open_block = CheckedBlock(0, 0)  # payloads and running CRC of the block being filled
        self._open_bytes = 0
        self._spool: Any = None
        self._temporary: Path | None = None
        self._cleanup: contextlib.ExitStack | None = None

    def __enter__(self) -> ArchiveWriter:
        with contextlib.ExitStack() as stack:
            self._temporary = stack.enter_context(atomic_output(self.path, force=self.force))
            # Payloads wait in an anonymous file until the archive is laid out in one piece on exit.
            self._spool = stack.enter_context(tempfile.TemporaryFile(dir=self._temporary.parent))
            self._cleanup = stack.pop_all()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is None:
            return
        if exc_type is not None:
            cleanup.__exit__(exc_type, exc, traceback)
            return
        with cleanup:
            self._lay_out()

    def set_header(self, header: dict[str, Any]) -> None:
        """Store ``header`` (JSON-serializable) in the archive, replacing any earlier one."""
        # JSON's meaning (tuples are lists), checked here, where the caller can see which header, not on exit
        checked = json.loads(json.dumps(header))
        pack_header(checked)
        self._header = checked

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store the bytes ``data`` under ``key`` (a slash path such as ``frames/0/density/latents``)."""
        if self._cleanup is None:
            raise RuntimeError(f"{self.path}: ArchiveWriter.put outside its 'with' block")
        if not isinstance(key, str) or not key:
            raise ValueError(f"{self.path}: payload key must be a non-empty string, got {key!r}")
        if key in self._payloads:
            raise ValueError(f"{self.path}: {describe_key(key)} put twice")
        size = memoryview(data).nbytes
        if self._open_block.count and self._open_bytes + size > BLOCK_BYTES:
            self._blocks.append(self._open_block)
            self._open_block, self._open_bytes = CheckedBlock(0, 0), 0
        self._open_block = CheckedBlock(self._open_block.count + 1, zlib.crc32(data, self._open_block.crc))
        self._open_bytes += size
        self._payloads[key] = size
        self._spool.write(data)

    def _lay_out(self) -> None:
        blocks = [*self._blocks, self._open_block] if self._open_block.count else self._blocks
        entries = tuple(PayloadEntry(key, size) for key, size in self._payloads.items())
        table = compress_table(pack_toc(Toc(self._header, entries, tuple(blocks)), FORMAT_VERSION), FORMAT_VERSION)
        toc = (bytes([FORMAT_VERSION]) + encode_varint(len(table)) + zlib.crc32(table).to_bytes(_CRC_BYTES, "little")
               + table)
        total = sum(self._payloads.values())
        with _create_file(self._temporary, len(toc) + total) as file:
            dataset = _create_bare_dataset(file, len(toc) + total)
            dataset[: len(toc)] = np.frombuffer(toc, np.uint8)
            self._spool.seek(0)
            for start in range(len(toc), len(toc) + total, _COPY_BLOCK_BYTES):
                block = np.frombuffer(self._spool.read(_COPY_BLOCK_BYTES), np.uint8)
                dataset[start : start + block.size] = block


@dataclasses.dataclass(frozen=True)
class _Block:
    """A checked block: the byte range ``start``..``end`` of the payload data, its CRC-32, its first and last
    payloads and how many it holds."""

    start: int
    end: int
    crc: int
    first: str
    last: str
    count: int


class ArchiveReader:
    """Read an archive: ``with ArchiveReader(path) as archive: archive.get(key)``.

    Opening reads the header and the table of payloads; :meth:`get` reads one payload's checked block, checks it
    and returns the payload's bytes. ``reads`` lists the keys read so far, so callers can check that one frame
    decodes without the others.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.reads: list[str] = []
        self._file, self.version = _open_hdf5(self.path)
        self._cached: tuple[int, bytes] | None = None  # the last block read and checked
        try:
            if self.version == 1:
                self._data, self._base = self._dataset("payloads"), 0
                self.header, self._table, self._blocks = self._read_json_toc()
            else:
                self._data = self._dataset(_DATASET if self.version == 2 else _MARKED_DATASET)
                self.header, self._table, self._blocks = self._read_binary_toc(self.version)
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as error:  # HDF5 errors name no file
            self._file.close()
            if isinstance(error, ArchiveError):
                raise
            raise ArchiveError(f"{self.path}: damaged archive ({error})") from None
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __contains__(self, key: str) -> bool:
        return key in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def close(self) -> None:
        self._file.close()

    def keys(self) -> list[str]:
        """Payload keys in the order they were written."""
        return list(self._table)

    def nbytes(self, key: str) -> int:
        """Size of one payload, without reading it."""
        return self._entry(key)[1]

    def file_offset(self, key: str) -> int:
        """Byte offset of a non-empty payload inside the archive file."""
        offset, size, _ = self._entry(key)
        if size == 0:
            raise ArchiveError(f"{self.path}: {describe_key(key)} is empty and has no offset")
        return self._data.id.get_offset() + self._base + offset

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``, checked (with the rest of their block) against their CRC-32."""
        offset, size, index = self._entry(key)
        block = self._blocks[index]
        data = self._checked_block(index, key)
        self.reads.append(key)
        return data[offset - block.start : offset - block.start + size]

    def stream_sizes(self) -> dict[str, int]:
        """Bytes per stream name (the last part of each key), summed over frames, groups and grids."""
        sizes: dict[str, int] = {}
        for key, (_, size, _) in self._table.items():
            stream = key.rpartition("/")[2]
            sizes[stream] = sizes.get(stream, 0) + size
        return sizes

    @property
    def file_size(self) -> int:
        return self.path.stat().st_size

    def _entry(self, key: str) -> tuple[int, int, int]:
        try:
            return self._table[key]
        except KeyError:
            raise ArchiveError(f"{self.path}: no {describe_key(key)} in the archive") from None

    def _checked_block(self, index: int, key: str) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        block = self._blocks[index]
        try:
            data = self._data[self._base + block.start : self._base + block.end].tobytes()
        except OSError as error:
            raise ArchiveError(f"{self.path}: cannot read {describe_key(key)} ({error})") from error
        if zlib.crc32(data) != block.crc:
            others = "" if block.count == 1 else (f" or a payload checked with it ({block.count} payloads, "
                                                  f"{describe_key(block.first)} to {describe_key(block.last)})")
            raise ArchiveError(f"{self.path}: checksum mismatch in {describe_key(key)}{others}")
        self._cached = (index, data)
        return data

    def _dataset(self, name: str) -> h5py.Dataset:
        """A 1-D uint8 dataset stored unfiltered, so that its bytes are in the file: never larger than the file."""
        dataset = self._file.get(name)
        if not isinstance(dataset, h5py.Dataset) or dataset.dtype != np.uint8 or dataset.ndim != 1:
            raise ArchiveError(f"{self.path}: damaged archive: dataset '{name}' missing or malformed")
        if dataset.size > self.file_size or dataset.compression is not None:
            raise ArchiveFormatError(self.path, name, f"claims {dataset.size} bytes in a file of {self.file_size}")
        return dataset

    def _table_place(self, version: int) -> tuple[int, int, object]:
        """Where the stored table starts in the dataset, its length and its CRC-32 (version 2: the attributes;
        versions 3 and 4: the dataset's first bytes, after the version byte)."""
        if version == 2:
            toc_bytes, crc = self._data.attrs.get("toc_bytes"), self._data.attrs.get("toc_crc32")
            if not isinstance(toc_bytes, np.integer) or not 0 < toc_bytes <= self._data.size:
                raise ArchiveFormatError(self.path, "toc_bytes", f"{toc_bytes!r} is not 1..{self._data.size}")
            return 0, int(toc_bytes), crc
        prefix = self._data[: min(_MAX_PREFIX_BYTES, self._data.size)].tobytes()
        try:
            toc_bytes, start = decode_varint(prefix, 1)
        except (TruncatedVarint, OverlongVarint):
            raise ArchiveFormatError(self.path, "toc_bytes", "no table length at the start of the data") from None
        start += _CRC_BYTES
        if not 0 < toc_bytes <= self._data.size - start:
            raise ArchiveFormatError(self.path, "toc_bytes", f"{toc_bytes} is not 1..{self._data.size - start}")
        return start, toc_bytes, int.from_bytes(prefix[start - _CRC_BYTES : start], "little")

    def _read_binary_toc(self, version: int) -> tuple[dict[str, Any], dict[str, tuple[int, int, int]], list[_Block]]:
        start, toc_bytes, crc = self._table_place(version)
        self._base = start + toc_bytes
        toc = self._data[start : self._base].tobytes()
        if not isinstance(crc, (int, np.integer)) or zlib.crc32(toc) != crc:
            raise ArchiveError(f"{self.path}: checksum mismatch in the header")
        try:
            table = unpack_toc(expand_table(toc, self._toc_limit(toc), version), self._data.size - self._base,
                               version)
        except TocError as error:
            raise ArchiveFormatError(self.path, "toc", str(error)) from None
        payloads, blocks, offset = {}, [], 0
        entries = iter(table.payloads)
        for index, checked in enumerate(table.blocks):
            start = offset
            members = [next(entries) for _ in range(checked.count)]
            for entry in members:
                payloads[entry.key] = (offset, entry.size, index)
                offset += entry.size
            blocks.append(_Block(start, offset, checked.crc, members[0].key, members[-1].key, checked.count))
        return table.header, payloads, blocks

    def _read_json_toc(self) -> tuple[dict[str, Any], dict[str, tuple[int, int, int]], list[_Block]]:
        """Version 1: the zlib JSON table of contents; each payload is its own checked block."""
        dataset = self._dataset("toc")
        toc = dataset[()].tobytes()
        if zlib.crc32(toc) != dataset.attrs.get("crc32"):
            raise ArchiveError(f"{self.path}: checksum mismatch in the header")
        try:
            table = json.loads(self._inflate(toc))
        except (zlib.error, ValueError, RecursionError) as error:
            raise ArchiveError(f"{self.path}: damaged header ({error})") from None
        if not isinstance(table, dict) or not isinstance(table.get("header"), dict):
            raise ArchiveFormatError(self.path, "header", "missing, or not a JSON object")
        payloads, blocks = self._payload_rows(table.get("payloads"))
        listed = blocks[-1].end if blocks else 0
        if self._data.size != listed:
            raise ArchiveError(f"{self.path}: payload data holds {self._data.size} bytes, table lists {listed}")
        return table["header"], payloads, blocks

    @staticmethod
    def _toc_limit(toc: bytes) -> int:
        return min(_MAX_TOC_BYTES, max(_MIN_TOC_BYTES, _TOC_INFLATION * len(toc)))

    def _inflate(self, toc: bytes) -> bytes:
        """The table of contents inflated, refusing one that inflates past a bound (a zlib bomb)."""
        limit = self._toc_limit(toc)
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(toc, limit)
        except zlib.error as error:
            raise ArchiveError(f"{self.path}: damaged header ({error})") from None
        if inflater.unconsumed_tail:
            raise ArchiveFormatError(self.path, "toc", f"inflates past {limit} bytes from {len(toc)}")
        if not inflater.eof:
            raise ArchiveError(f"{self.path}: damaged header (truncated table of contents)")
        return data

    def _payload_rows(self, rows: Any) -> tuple[dict[str, tuple[int, int, int]], list[_Block]]:
        """Version 1's rows [key, size, crc32], each checked: a unique key, a size that fits the file."""
        if not isinstance(rows, list):
            raise ArchiveFormatError(self.path, "payloads", "not a list")
        payloads, blocks, offset, limit = {}, [], 0, self.file_size
        for row in rows:
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and row[0]):
                raise ArchiveFormatError(self.path, "payloads", f"row {str(row)[:80]} is not [key, size, crc32]")
            key, size, crc = row
            if not _is_int(size) or not 0 <= size <= limit - offset:
                raise ArchiveFormatError(self.path, "payloads", f"{describe_key(key)}: size {size!r} out of range")
            if not _is_int(crc) or not 0 <= crc <= _MAX_CRC or key in payloads:
                raise ArchiveFormatError(self.path, "payloads", f"{describe_key(key)}: bad checksum or repeated key")
            payloads[key] = (offset, size, len(blocks))
            blocks.append(_Block(offset, offset + size, crc, key, key, 1))
            offset += size
        return payloads, blocks


def _create_file(path: Path, data_bytes: int) -> h5py.File:
    """An empty HDF5 file in the 1.8 format (readable by every h5py), with small metadata blocks, no times, file
    addresses and lengths as narrow as a file holding ``data_bytes`` allows, and a root group whose object header
    has room for one link named like the data and no more, where the library offers that."""
    creation = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    creation.set_obj_track_times(False)
    width = _address_bytes(data_bytes)
    creation.set_sizes(width, width)
    estimate = _hdf5_function("H5Pset_est_link_info", ctypes.c_uint, ctypes.c_uint)
    if estimate is not None:
        estimate(creation.id, 1, len(_MARKED_DATASET))
    access = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    access.set_libver_bounds(h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_V18)
    access.set_meta_block_size(64)
    return h5py.File(h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_TRUNC, fcpl=creation, fapl=access))


def _address_bytes(data_bytes: int) -> int:
    """The narrowest HDF5 address and length width (2, 4 or 8 bytes) for a file of ``data_bytes`` of data and its
    metadata (at most ``_HDF5_METADATA_BYTES``): every address, the end of file included, must stay below the
    all-ones address, which HDF5 reserves for "undefined"."""
    for width in (2, 4):
        if data_bytes + _HDF5_METADATA_BYTES < (1 << (8 * width)) - 1:
            return width
    return 8


def _create_bare_dataset(file: h5py.File, size: int) -> h5py.Dataset:
    """The contiguous (``file_offset``) uint8 dataset of ``size`` bytes, without times, its object header without
    the room HDF5 otherwise keeps for attributes (about 90 bytes), where the library offers that."""
    properties = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    properties.set_obj_track_times(False)  # 16 bytes, and the same input makes the same file
    minimize = _hdf5_function("H5Pset_dset_no_attrs_hint", ctypes.c_bool)
    if minimize is not None:
        minimize(properties.id, True)
    space = h5py.h5s.create_simple((size,))
    return h5py.Dataset(h5py.h5d.create(file.id, _MARKED_DATASET.encode(), h5py.h5t.STD_U8LE, space,
                                        dcpl=properties))


@functools.cache
def _hdf5_function(name: str, *arguments: Any) -> Any:
    """A property-list setter h5py does not wrap (``name``, taking a property list and ``arguments``), from the HDF5
    library h5py loaded, found among the process's mapped files; None where it cannot be found."""
    try:
        maps = Path("/proc/self/maps").read_text().split()
    except OSError:
        return None
    libraries = sorted({word for word in maps if Path(word).name.startswith("libhdf5") and "_hl" not in word})
    if len(libraries) != 1:
        return None
    try:
        function = getattr(ctypes.CDLL(libraries[0]), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_int64, *arguments], ctypes.c_int  # hid_t: 64 bits since 1.10
    return function


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _open_hdf5(path: Path) -> tuple[h5py.File, int]:
    """The open file and its container version (1: on the root; 2: on the ``archive`` dataset; 3 and later: the first
    byte of the ``neuralvox`` dataset)."""
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    with path.open("rb") as stream:
        if stream.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
            raise ArchiveError(f"{path}: not a neuralvox archive (not an HDF5 file)")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise ArchiveError(f"{path}: damaged or truncated archive ({error})") from error
    try:
        format_name, version = file.attrs.get("format"), file.attrs.get("format_version")
        marked, dataset = file.get(_MARKED_DATASET), file.get(_DATASET)
        if format_name is None and isinstance(marked, h5py.Dataset):
            format_name = FORMAT.encode()
            if marked.dtype == np.uint8 and marked.ndim == 1 and marked.size:
                version = marked[0]
        elif version is None and isinstance(dataset, h5py.Dataset):
            version = dataset.attrs.get("format_version")
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as error:  # HDF5's message names no file
        file.close()
        raise ArchiveError(f"{path}: damaged archive ({error})") from None
    if not isinstance(format_name, bytes) or format_name != FORMAT.encode():
        file.close()
        raise ArchiveError(f"{path}: not a neuralvox archive (HDF5 file without the neuralvox format mark)")
    if not isinstance(version, np.integer):
        file.close()
        raise ArchiveError(f"{path}: damaged archive: dataset '{_DATASET}' or '{_MARKED_DATASET}' missing or without "
                           f"its format version")
    if version > FORMAT_VERSION:
        file.close()
        raise ArchiveError(f"{path}: format version {version} is newer than this neuralvox reads ({FORMAT_VERSION})")
    if version < 1:
        file.close()
        raise ArchiveError(f"{path}: format version {version} is not one neuralvox wrote")
    return file, int(version)
