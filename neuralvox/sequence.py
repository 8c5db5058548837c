"""Frame discovery and naming: find one sequence's .vdb files, order them by frame number, reproduce their names."""

from __future__ import annotations

import dataclasses
import glob
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# A frame number is the digit run just before ".vdb", optionally after one separator:
# smoke.0001.vdb, smoke_0001.vdb, fluid_data_0001.vdb, smoke-001.vdb, smoke1001.vdb.
_NUMBERED_NAME = re.compile(r"^(?P<prefix>.*?)(?P<separator>[._-]?)(?P<digits>\d+)(?P<suffix>\.vdb)$", re.IGNORECASE)
SEPARATORS = ("", ".", "_", "-")
_GLOB_CHARACTERS = frozenset("*?[")


class SequenceError(ValueError):
    """The input files do not form one frame sequence."""


@dataclasses.dataclass(frozen=True)
class NamePattern:
    """How a sequence names its files: ``prefix + separator + number zero-padded to padding + suffix``.

    ``padding`` 0 means the numbers are written without leading zeros. A file without a frame number has
    ``prefix`` = its stem and is named by ``format(None)``.
    """

    prefix: str
    separator: str = "."
    padding: int = 4
    suffix: str = ".vdb"

    def __post_init__(self) -> None:
        # The pattern comes back from archives on decompression: never let it name a path outside the output folder.
        for part in (self.prefix, self.suffix):
            if any(character in part for character in "/\\\0"):
                raise SequenceError(f"name pattern {self}: prefix and suffix must be plain file-name text")
        if self.separator not in SEPARATORS:
            raise SequenceError(f"name pattern {self}: separator must be one of {SEPARATORS}")
        if not isinstance(self.padding, int) or isinstance(self.padding, bool) or self.padding < 0:
            raise SequenceError(f"name pattern {self}: padding must be an integer >= 0")
        if self.suffix.lower() != ".vdb":
            raise SequenceError(f"name pattern {self}: suffix must be '.vdb'")

    def __str__(self) -> str:
        return f"{self.prefix}{self.separator}{'#' * max(self.padding, 1)}{self.suffix}"

    def format(self, number: int | None) -> str:
        """The file name of frame ``number``; ``None`` for the one frame of an unnumbered file."""
        if number is None:
            return f"{self.prefix}{self.suffix}"
        return f"{self.prefix}{self.separator}{str(number).zfill(self.padding)}{self.suffix}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for archive headers."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NamePattern:
        """Inverse of :meth:`to_dict`."""
        fields = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(fields):
            raise SequenceError(f"name pattern {data!r}: expected the keys {fields}")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class Frame:
    """One input file and its frame number (``None`` for a single file without a number)."""

    number: int | None
    path: Path


@dataclasses.dataclass
class FrameSequence:
    """The frames of one sequence in numeric order, with the pattern that names them."""

    pattern: NamePattern
    frames: list[Frame]

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)

    @property
    def numbers(self) -> list[int | None]:
        return [frame.number for frame in self.frames]

    @property
    def paths(self) -> list[Path]:
        return [frame.path for frame in self.frames]

    def gaps(self) -> list[int]:
        """Frame numbers missing between the first and the last frame."""
        present = {number for number in self.numbers if number is not None}
        if not present:
            return []
        return [number for number in range(min(present), max(present) + 1) if number not in present]

    def name_for(self, number: int | None) -> str:
        """The file name the user's naming gives frame ``number``."""
        return self.pattern.format(number)


def discover(paths: Sequence[str | Path]) -> FrameSequence:
    """Collect one frame sequence from files, folders (their ``*.vdb`` files) and glob patterns.

    Duplicates are dropped and frames sorted by number. Gaps are allowed (see :meth:`FrameSequence.gaps`);
    files of two sequences, two files for one frame, or inconsistent zero padding raise :class:`SequenceError`.
    """
    if not paths:
        raise SequenceError("no input files given")
    files: dict[Path, Path] = {}
    for argument in paths:
        for path in _expand(argument):
            files.setdefault(path.resolve(), path)
    return _build_sequence(list(files.values()))


def _expand(argument: str | Path) -> list[Path]:
    path = Path(argument)
    if path.is_dir():
        found = sorted(child for child in path.iterdir() if child.is_file() and child.suffix.lower() == ".vdb")
        if not found:
            raise SequenceError(f"{argument}: folder holds no .vdb files")
        return found
    if path.exists():
        if not path.is_file() or path.suffix.lower() != ".vdb":
            raise SequenceError(f"{argument}: not a .vdb file")
        return [path]
    if _GLOB_CHARACTERS.intersection(str(argument)):
        matches = sorted(glob.glob(str(argument)))
        if not matches:
            raise SequenceError(f"{argument}: no files match")
        return [found for match in matches for found in _expand(match)]
    raise SequenceError(f"{argument}: no such file")


def _build_sequence(paths: list[Path]) -> FrameSequence:
    parsed = {path: _NUMBERED_NAME.match(path.name) for path in paths}
    families: dict[tuple[str, str, str] | Path, list[Path]] = {}
    for path, match in parsed.items():
        family = (match["prefix"], match["separator"], match["suffix"]) if match else Path(path.name)
        families.setdefault(family, []).append(path)
    if len(families) > 1:
        shown = [_describe_family(family, parsed[members[0]]) for family, members in families.items()]
        count = "two" if len(shown) == 2 else str(len(shown))
        listed = ", ".join(repr(name) for name in shown[:-1]) + f" and {shown[-1]!r}"
        raise SequenceError(f"{count} sequences given: {listed}; pass one at a time")

    if not parsed[paths[0]]:
        if len(paths) > 1:
            raise SequenceError(f"one frame given twice: {paths[0]} and {paths[1]}")
        path = paths[0]
        return FrameSequence(NamePattern(path.stem, "", 0, path.suffix), [Frame(None, path)])

    digits = [parsed[path]["digits"] for path in paths]
    first = parsed[paths[0]]
    pattern = NamePattern(first["prefix"], first["separator"], _padding(digits), first["suffix"])
    frames: dict[int, Frame] = {}
    for path in paths:
        number = int(parsed[path]["digits"])
        if number in frames:
            raise SequenceError(f"frame {number} given twice: {frames[number].path} and {path}")
        if pattern.format(number) != path.name:
            raise SequenceError(f"{path}: frame number does not follow the zero padding of the others ({pattern})")
        frames[number] = Frame(number, path)
    return FrameSequence(pattern, [frames[number] for number in sorted(frames)])


def _padding(digits: list[str]) -> int:
    """Zero-padded width of the numbers; 0 when they are written without padding."""
    padded_widths = {len(run) for run in digits if len(run) > 1 and run.startswith("0")}
    if padded_widths:
        return min(padded_widths)  # names padded otherwise then fail the check against the pattern, by name
    widths = {len(run) for run in digits}
    # Names of equal width without leading zeros (1001, 1002, ...) read as padded to that width: same names either way.
    if len(widths) == 1 and (width := widths.pop()) > 1:
        return width
    return 0


def _describe_family(family: tuple[str, str, str] | Path, match: re.Match[str] | None) -> str:
    if match is None:
        return str(family)
    prefix, separator, suffix = family
    return f"{prefix}{separator}{'#' * len(match['digits'])}{suffix}"
