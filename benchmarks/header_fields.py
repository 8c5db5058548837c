"""What each field of an archive's header costs in its table of contents, packed and stored.

    .venv/bin/python benchmarks/header_fields.py ARCHIVE.nvox [...] [--min-bytes 2]

A field is a member path with list items merged (``frames[].grids.density.values.low``); its cost is the table's size
less the size of the same table with that member removed wherever it occurs, both packed (before compression) and
stored (as the archive stores it), so costs need not add up. ``(keys, sizes, checksums)`` is the same for the payload
table. Only fields costing at least ``--min-bytes`` stored or packed bytes are listed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toc_parts import checked_blocks

from neuralvox.container import ArchiveReader
from neuralvox.toc import CheckedBlock, PayloadEntry, Toc, compress_table, pack_toc

MemberPath = tuple[str, ...]


def member_paths(value: Any, prefix: MemberPath = ()) -> list[MemberPath]:
    """Every member path of a JSON value, list items merged as ``[]``, parents before children, each once."""
    paths: list[MemberPath] = []
    if isinstance(value, dict):
        for name, item in value.items():
            paths.append((*prefix, name))
            paths += member_paths(item, (*prefix, name))
    elif isinstance(value, list):
        for item in value:
            paths += member_paths(item, (*prefix, "[]"))
    return list(dict.fromkeys(paths))


def without(value: Any, path: MemberPath) -> Any:
    """``value`` with the member at ``path`` removed wherever it occurs."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == "[]":
        return [without(item, rest) for item in value] if isinstance(value, list) else value
    if not isinstance(value, dict):
        return value
    if not rest:
        return {name: item for name, item in value.items() if name != head}
    return {name: without(item, rest) if name == head else item for name, item in value.items()}


def sizes(header: dict[str, Any], payloads: tuple[PayloadEntry, ...],
          blocks: tuple[CheckedBlock, ...]) -> tuple[int, int]:
    packed = pack_toc(Toc(header, payloads, blocks))
    return len(packed), len(compress_table(packed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archives", nargs="+", type=Path)
    parser.add_argument("--min-bytes", type=int, default=2)
    args = parser.parse_args()
    for path in args.archives:
        with ArchiveReader(path) as archive:
            header = archive.header
            payloads = tuple(PayloadEntry(key, archive.nbytes(key)) for key in archive)
            blocks = checked_blocks([archive.get(key) for key in archive])
            file_bytes, payload_bytes = archive.file_size, sum(entry.size for entry in payloads)
        packed, stored = sizes(header, payloads, blocks)
        print(f"{path}: {file_bytes:,} B, payloads {payload_bytes:,} B, container {file_bytes - payload_bytes:,} B; "
              f"table packed {packed:,} B, stored {stored:,} B")
        print("| field | packed B | stored B |\n|---|---:|---:|")
        rows = [("(keys, sizes, checksums)", *(a - b for a, b in zip((packed, stored), sizes(header, (), ()),
                                                                      strict=True)))]
        for member in member_paths(header):
            cut = sizes(without(header, member), payloads, blocks)
            rows.append((".".join(member).replace(".[]", "[]"), packed - cut[0], stored - cut[1]))
        for name, packed_cost, stored_cost in rows:
            if max(packed_cost, stored_cost) >= args.min_bytes:
                print(f"| {name} | {packed_cost:,} | {stored_cost:,} |")


if __name__ == "__main__":
    main()
