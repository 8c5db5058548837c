"""Write neuralvox/toc_dictionary.py: the preset dictionary container version 4 deflates its table against.

    .venv/bin/python scripts/make_toc_dictionary.py [--check]

The dictionary is the packed ``[header, payload key parts]`` of the three committed blob fixtures (bounded, over the
neural base, base only; tests/fixtures), each header read and written again as neuralvox/2, end to end. It is a
format constant: an archive deflated against it needs these exact bytes to read, so it is made once and never again
(``--check`` only says whether today's code would make the same bytes).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import sys
import textwrap
from pathlib import Path

from neuralvox.codec.header import ARCHIVE_FORMAT, ArchiveHeader
from neuralvox.container import ArchiveReader
from neuralvox.packed_header import pack_header

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = [ROOT / "tests" / "fixtures" / f"blob_{name}.nvox" for name in ("bounded", "based", "base_only")]
MODULE = ROOT / "neuralvox" / "toc_dictionary.py"


def packed_fixture(path: Path) -> bytes:
    with ArchiveReader(path) as archive:
        sizes = {key: archive.nbytes(key) for key in archive}
        header = ArchiveHeader.from_json(archive.header, with_summary=True, payload_sizes=sizes)
        keys = [[int(part) if part.isdigit() else part for part in key.split("/")] for key in archive]
    return pack_header([dataclasses.replace(header, format=ARCHIVE_FORMAT).to_json(), keys])


def dictionary() -> bytes:
    return b"".join(packed_fixture(path) for path in FIXTURES)


def module_text(data: bytes) -> str:
    encoded = textwrap.wrap(base64.b64encode(data).decode(), 112)
    lines = "\n".join(f'    "{line}"' for line in encoded)
    return f'''"""The preset dictionary container version 4 deflates its table of contents against (``neuralvox.toc``'s
``DEFLATE_DICTIONARY``): the packed headers of the three blob fixtures in neuralvox/2, made once by
scripts/make_toc_dictionary.py. A format constant: never edit it (a changed byte makes every archive deflated
against it unreadable); a later container version may add another."""

import base64

DICTIONARY = base64.b64decode(
{lines}
)
SHA256 = "{hashlib.sha256(data).hexdigest()}"
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed dictionary")
    args = parser.parse_args()
    data = dictionary()
    if args.check:
        from neuralvox.toc_dictionary import DICTIONARY

        print("same bytes" if data == DICTIONARY else "differs: today's code packs the fixtures otherwise")
        sys.exit(0 if data == DICTIONARY else 1)
    MODULE.write_text(module_text(data))
    print(f"{MODULE}: {len(data)} bytes")


if __name__ == "__main__":
    main()
