"""What each part of an archive's table of contents costs, stored as container version 2 and as today's version.

    .venv/bin/python benchmarks/toc_parts.py ARCHIVE.nvox [...]

Each archive (any version) is read, and its header and payload table stored both ways (version 2: the header as JSON
text, LZMA2; today's: the header packed); a part's cost is the table's stored bytes less the stored bytes without
that part (the header's ``frames``, its ``report``, the rest of the header, or the payload keys, sizes and block
checksums), so the parts need not add up to the table. The HDF5 bytes are the file's size less the dataset's.
"""

from __future__ import annotations

import argparse
import tempfile
import zlib
from pathlib import Path
from typing import Any

import h5py

from neuralvox.container import BLOCK_BYTES, FORMAT_VERSION, ArchiveReader, ArchiveWriter
from neuralvox.toc import CheckedBlock, PayloadEntry, Toc, compress_table, pack_toc

PARTS = ("frames", "report")


def stored(header: dict[str, Any], payloads: tuple[PayloadEntry, ...], blocks: tuple[CheckedBlock, ...],
           version: int) -> int:
    return len(compress_table(pack_toc(Toc(header, payloads, blocks), version), version))


def part_costs(header: dict[str, Any], payloads: tuple[PayloadEntry, ...], blocks: tuple[CheckedBlock, ...],
               version: int) -> dict[str, int]:
    whole = stored(header, payloads, blocks, version)
    costs = {"table": whole, "keys, sizes, checksums": whole - stored(header, (), (), version)}
    for part in PARTS:
        costs[part] = whole - stored({k: v for k, v in header.items() if k != part}, payloads, blocks, version)
    costs["rest of the header"] = whole - stored({k: v for k, v in header.items() if k in PARTS}, payloads, blocks,
                                                 version)
    return costs


def checked_blocks(payloads: list[bytes]) -> tuple[CheckedBlock, ...]:
    """The blocks ArchiveWriter checks the payloads in: consecutive payloads of at most BLOCK_BYTES together."""
    blocks: list[CheckedBlock] = []
    count, crc, size = 0, 0, 0
    for data in payloads:
        if count and size + len(data) > BLOCK_BYTES:
            blocks.append(CheckedBlock(count, crc))
            count, crc, size = 0, 0, 0
        count, crc, size = count + 1, zlib.crc32(data, crc), size + len(data)
    return (*blocks, CheckedBlock(count, crc)) if count else tuple(blocks)


def hdf5_bytes(path: Path) -> int:
    with h5py.File(path, "r") as file:
        return path.stat().st_size - sum(item.size for item in file.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archives", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.archives:
        with ArchiveReader(path) as archive, tempfile.TemporaryDirectory() as folder:
            payloads = tuple(PayloadEntry(key, archive.nbytes(key)) for key in archive)
            blocks = checked_blocks([archive.get(key) for key in archive])
            now = Path(folder) / "now.nvox"
            with ArchiveWriter(now) as rewritten:
                rewritten.set_header(archive.header)
                for key in archive:
                    rewritten.put(key, archive.get(key))
            old, new = (part_costs(archive.header, payloads, blocks, version) for version in (2, FORMAT_VERSION))
            print(f"{path.name}: version {archive.version}, {path.stat().st_size:,} B (HDF5 {hdf5_bytes(path)} B), "
                  f"{len(payloads)} payloads of {sum(p.size for p in payloads):,} B; rewritten as version "
                  f"{FORMAT_VERSION}: {now.stat().st_size:,} B (HDF5 {hdf5_bytes(now)} B)")
            print("| part | version 2 | version 3 |\n|---|---:|---:|")
            for part in old:
                print(f"| {part} | {old[part]:,} | {new[part]:,} |")


if __name__ == "__main__":
    main()
