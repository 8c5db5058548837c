"""The .nvox archive: named, checksummed byte payloads and a JSON header in one HDF5 file, written atomically.

The container knows nothing of models: the codec names its payloads with slash paths such as
``frames/3/density/latents`` or ``groups/0/density/weights`` and keeps in the header whatever index it needs to
decode one frame alone. Layout of the HDF5 file:

- root attributes ``format`` = ``"neuralvox"`` and ``format_version`` = 1;
- ``payloads``: one contiguous uint8 dataset, every payload's bytes end to end in the order they were put,
  stored without HDF5 filters (payloads are entropy coded already);
- ``toc``: uint8 dataset of zlib-compressed JSON ``{"header": {...}, "payloads": [[key, size, crc32], ...]}``
  with its own ``crc32`` attribute; a payload's offset is the sum of the sizes listed before it.

Packing the payloads into one dataset keeps the HDF5 overhead at about 1.3 kB per archive; one HDF5 dataset per payload
costs 320-560 bytes each, as much as a whole compressed frame. Reading one payload reads only its byte range.
"""

from __future__ import annotations

import contextlib
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

FORMAT = "neuralvox"
FORMAT_VERSION = 1
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 1.8 file format, readable by every h5py; small metadata blocks keep the file overhead low.
_FILE_OPTIONS: dict[str, Any] = {"libver": ("v108", "v108"), "meta_block_size": 64}
_COPY_BLOCK_BYTES = 16 << 20
_COMPACT_BYTES = 60_000  # a table of contents this small lives inside its object header: 200 bytes less
# The table of contents inflates to at most this many bytes per compressed byte, and never past _MAX_TOC_BYTES:
# a real one compresses about 10:1, a zlib bomb 1000:1.
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
        self._payloads: dict[str, tuple[int, int]] = {}  # key -> (size, crc32), in the order put
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
        json.dumps(header)  # fail here, where the caller can see which header, not on exit
        self._header = header

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Store the bytes ``data`` under ``key`` (a slash path such as ``frames/0/density/latents``)."""
        if self._cleanup is None:
            raise RuntimeError(f"{self.path}: ArchiveWriter.put outside its 'with' block")
        if not isinstance(key, str) or not key:
            raise ValueError(f"{self.path}: payload key must be a non-empty string, got {key!r}")
        if key in self._payloads:
            raise ValueError(f"{self.path}: {describe_key(key)} put twice")
        self._payloads[key] = (memoryview(data).nbytes, zlib.crc32(data))
        self._spool.write(data)

    def _lay_out(self) -> None:
        table = {"header": self._header, "payloads": [[key, size, crc] for key, (size, crc) in self._payloads.items()]}
        toc = zlib.compress(json.dumps(table, separators=(",", ":")).encode(), 9)
        total = sum(size for size, _ in self._payloads.values())
        with h5py.File(self._temporary, "w", **_FILE_OPTIONS) as file:
            file.attrs["format"] = np.bytes_(FORMAT)  # fixed-length: a variable-length string costs a 4 kB heap
            file.attrs["format_version"] = np.int64(FORMAT_VERSION)
            toc_dataset = _create_bytes(file, "toc", len(toc))
            toc_dataset[:] = np.frombuffer(toc, np.uint8)
            toc_dataset.attrs["crc32"] = np.uint32(zlib.crc32(toc))
            payloads = file.create_dataset("payloads", shape=(total,), dtype=np.uint8)  # contiguous: file_offset
            self._spool.seek(0)
            for start in range(0, total, _COPY_BLOCK_BYTES):
                block = np.frombuffer(self._spool.read(_COPY_BLOCK_BYTES), np.uint8)
                payloads[start : start + block.size] = block


def _create_bytes(file: h5py.File, name: str, size: int) -> h5py.Dataset:
    """A uint8 dataset of ``size`` bytes, in compact layout when small (HDF5 readers read it as any other)."""
    if not 0 < size <= _COMPACT_BYTES:
        return file.create_dataset(name, shape=(size,), dtype=np.uint8)
    properties = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    properties.set_layout(h5py.h5d.COMPACT)
    h5py.h5d.create(file.id, name.encode(), h5py.h5t.NATIVE_UINT8, h5py.h5s.create_simple((size,)), dcpl=properties)
    return file[name]


class ArchiveReader:
    """Read an archive: ``with ArchiveReader(path) as archive: archive.get(key)``.

    Opening reads the header and the table of payloads; :meth:`get` reads one payload's bytes and checks them.
    ``reads`` lists the keys read so far, so callers can check that one frame decodes without the others.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.reads: list[str] = []
        self._file = _open_hdf5(self.path)
        try:
            self._payloads = self._dataset("payloads")
            self.header, self._table = self._read_toc()
            listed = sum(size for _, size, _ in self._table.values())
            if self._payloads.size != listed:
                raise ArchiveError(f"{self.path}: payload data holds {self._payloads.size} bytes, table lists {listed}")
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
        return self._payloads.id.get_offset() + offset

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``, checked against their CRC-32."""
        offset, size, crc = self._entry(key)
        try:
            data = self._payloads[offset : offset + size].tobytes()
        except OSError as error:
            raise ArchiveError(f"{self.path}: cannot read {describe_key(key)} ({error})") from error
        self.reads.append(key)
        if zlib.crc32(data) != crc:
            raise ArchiveError(f"{self.path}: checksum mismatch in {describe_key(key)}")
        return data

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

    def _dataset(self, name: str) -> h5py.Dataset:
        """A 1-D uint8 dataset stored unfiltered, so that its bytes are in the file: never larger than the file."""
        dataset = self._file.get(name)
        if not isinstance(dataset, h5py.Dataset) or dataset.dtype != np.uint8 or dataset.ndim != 1:
            raise ArchiveError(f"{self.path}: damaged archive: dataset '{name}' missing or malformed")
        if dataset.size > self.file_size or dataset.compression is not None:
            raise ArchiveFormatError(self.path, name, f"claims {dataset.size} bytes in a file of {self.file_size}")
        return dataset

    def _read_toc(self) -> tuple[dict[str, Any], dict[str, tuple[int, int, int]]]:
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
        return table["header"], self._payload_table(table.get("payloads"))

    def _inflate(self, toc: bytes) -> bytes:
        """The table of contents inflated, refusing one that inflates past a bound (a zlib bomb)."""
        limit = min(_MAX_TOC_BYTES, max(_MIN_TOC_BYTES, _TOC_INFLATION * len(toc)))
        inflater = zlib.decompressobj()
        data = inflater.decompress(toc, limit)
        if inflater.unconsumed_tail:
            raise ArchiveFormatError(self.path, "toc", f"inflates past {limit} bytes from {len(toc)}")
        if not inflater.eof:
            raise ArchiveError(f"{self.path}: damaged header (truncated table of contents)")
        return data

    def _payload_table(self, rows: Any) -> dict[str, tuple[int, int, int]]:
        """key -> (offset, size, crc32) of every payload, each row checked: a unique key, a size that fits the file."""
        if not isinstance(rows, list):
            raise ArchiveFormatError(self.path, "payloads", "not a list")
        payloads, offset, limit = {}, 0, self.file_size
        for row in rows:
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and row[0]):
                raise ArchiveFormatError(self.path, "payloads", f"row {str(row)[:80]} is not [key, size, crc32]")
            key, size, crc = row
            if not _is_int(size) or not 0 <= size <= limit - offset:
                raise ArchiveFormatError(self.path, "payloads", f"{describe_key(key)}: size {size!r} out of range")
            if not _is_int(crc) or not 0 <= crc <= _MAX_CRC or key in payloads:
                raise ArchiveFormatError(self.path, "payloads", f"{describe_key(key)}: bad checksum or repeated key")
            payloads[key] = (offset, size, crc)
            offset += size
        return payloads


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _open_hdf5(path: Path) -> h5py.File:
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
        format_name = file.attrs.get("format")
        version = file.attrs.get("format_version")
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as error:  # HDF5's message names no file
        file.close()
        raise ArchiveError(f"{path}: damaged archive ({error})") from None
    if not isinstance(format_name, bytes) or format_name != FORMAT.encode() or not isinstance(version, np.integer):
        file.close()
        raise ArchiveError(f"{path}: not a neuralvox archive (HDF5 file without the neuralvox format mark)")
    if version > FORMAT_VERSION:
        file.close()
        raise ArchiveError(f"{path}: format version {version} is newer than this neuralvox reads ({FORMAT_VERSION})")
    return file
