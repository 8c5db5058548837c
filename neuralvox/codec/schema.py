"""The archive header's schema: every name, size, shape, count and reference of untrusted JSON checked, then the
typed header (``neuralvox.codec.header``) built from it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from neuralvox.codec import chunked
from neuralvox.codec.bounded import FORMATS as BOUNDED_FORMATS
from neuralvox.codec.header import (
    ARCHIVE_FORMAT,
    ARCHIVE_FORMATS,
    BASED_FORMAT,
    CONTEXT,
    MOTION,
    NEURAL_FORMATS,
    TOPOLOGY,
    VALUES,
    ArchiveHeader,
    ArchiveSummary,
    GridReport,
    payload_key,
    report_figures,
)
from neuralvox.codec.interpolation import MAX_OPTIONS
from neuralvox.container import ArchiveFormatError
from neuralvox.grid import VALUE_TYPES, VECTOR_TYPES
from neuralvox.metrics import ErrorStats
from neuralvox.model.decoder import ACTIVATIONS
from neuralvox.sequence import SEPARATORS, NamePattern

MAX_FRAMES = 1_000_000
MAX_GRIDS = 1024  # per frame
MAX_VOXELS = 1 << 31  # per grid (int32 indices)
MAX_NAME = 255  # characters of a file, grid or stream name
MAX_LEVELS = 8
MAX_LEVEL_CHANNELS = 64
MAX_STRIDE = 1 << 12
MAX_HIDDEN_LAYERS = 8
MAX_HIDDEN_WIDTH = 1024
MAX_FREQUENCIES = 16
MAX_PADDING = 32
MAX_ANCHOR_LEVEL = 16  # the bounded codec's coarsest level (anchors every 2**level voxels)

_PATTERN_FIELDS = {"prefix", "separator", "padding", "suffix"}
_ERROR_FIELDS = [field.name for field in dataclasses.fields(ErrorStats)]
_Where = dict[str, Any]  # frame=..., grid=... for ArchiveFormatError


class _Checker:
    """Raise ArchiveFormatError naming the archive and where a field was read."""

    def __init__(self, archive: Path, **where: Any) -> None:
        self.archive = archive
        self.where = where

    def at(self, **where: Any) -> _Checker:
        return _Checker(self.archive, **{**self.where, **where})

    def fail(self, field: str, problem: str) -> ArchiveFormatError:
        return ArchiveFormatError(self.archive, field, problem, **self.where)

    def get(self, mapping: Mapping[str, Any], field: str, kind: type | tuple[type, ...]) -> Any:
        if field not in mapping:
            raise self.fail(field, "missing")
        value = mapping[field]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise self.fail(field, f"expected {_kind_name(kind)}, got {_short(value)}")
        return value

    def integer(self, mapping: Mapping[str, Any], field: str, low: int, high: int) -> int:
        value = self.get(mapping, field, int)
        if not low <= value <= high:
            raise self.fail(field, f"{value} is outside {low}..{high}")
        return value

    def numbers(self, mapping: Mapping[str, Any], field: str, count: int) -> list[float]:
        value = self.get(mapping, field, list)
        if len(value) != count or not all(_is_finite(v) for v in value):
            raise self.fail(field, f"expected {count} finite numbers, got {_short(value)}")
        return value

    def name(self, value: Any, field: str) -> str:
        if not is_plain_name(value):
            raise self.fail(field, f"{_short(value)} is not a plain file name (no folder, '..' or NUL)")
        return value


def is_plain_name(value: Any) -> bool:
    """A name that stays inside its folder: non-empty text without separators, NUL, '.' or '..'."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_NAME and value not in (".", "..")
            and not any(c in value for c in "/\\\0") and not Path(value).is_absolute())


def _optional(check: _Checker, mapping: Mapping[str, Any], field: str, kind: type | tuple[type, ...]) -> Any:
    """A field that older archives of the same format lack: None when absent, else checked like ``check.get``."""
    return check.get(mapping, field, kind) if field in mapping else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "text", list: "a list", dict: "an object", bool: "true/false",
             type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------------------- value headers
ValueValidator = Callable[[_Checker, dict[str, Any], dict[str, Any]], None]


def check_values_v1(check: _Checker, header: dict[str, Any], grid: dict[str, Any]) -> None:
    """``neuralvox-values/1``, ``/2`` and ``/3`` (the same fields): a constant, or latent levels, a decoder MLP and the
    streams they are coded in."""
    channels = check.integer(header, "channels", 1, 3)
    if channels != (3 if grid["value_type"] in VECTOR_TYPES else 1):
        raise check.fail("channels", f"{channels} channels for a {grid['value_type']} grid")
    if check.integer(header, "voxels", 0, MAX_VOXELS) != grid["voxels"]:
        raise check.fail("voxels", f"value header says {header['voxels']}, grid says {grid['voxels']}")
    if "constant" in header:
        check.numbers(header, "constant", channels)
        return
    _check_levels(check, header)
    hidden = check.get(header, "hidden", list)
    if len(hidden) > MAX_HIDDEN_LAYERS or not all(isinstance(w, int) and 1 <= w <= MAX_HIDDEN_WIDTH for w in hidden):
        raise check.fail("hidden", f"{_short(hidden)}: at most {MAX_HIDDEN_LAYERS} widths of 1..{MAX_HIDDEN_WIDTH}")
    check.integer(header, "frequencies", 0, MAX_FREQUENCIES)
    if check.get(header, "activation", str) not in ACTIVATIONS:
        raise check.fail("activation", f"{_short(header['activation'])} is not one of {sorted(ACTIVATIONS)}")
    check.numbers(header, "low", channels)
    check.numbers(header, "high", channels)
    shared = check.get(header, "shared_decoder", bool)
    needed = {"residual", "motion"} if "predicted" in header else {"latents"}
    if "predicted" in header:
        predicted = check.get(header, "predicted", dict)
        check.integer(predicted, "motion_stride", 1, MAX_STRIDE)
        step = check.get(predicted, "motion_step", (int, float))
        if not (_is_finite(step) and 0 < step <= MAX_STRIDE):
            raise check.fail("motion_step", f"{step!r} is not a positive step")
    missing = needed - set(grid["streams"]) | ({"weights"} - set(grid["streams"]) if not shared else set())
    if missing:
        raise check.fail("streams", f"lacks {', '.join(sorted(missing))}")


def _check_levels(check: _Checker, header: dict[str, Any]) -> None:
    levels = check.get(header, "levels", list)
    good = 1 <= len(levels) <= MAX_LEVELS and all(
        isinstance(level, list) and len(level) == 2 and all(isinstance(n, int) and not isinstance(n, bool)
                                                            for n in level)
        and 1 <= level[0] <= MAX_STRIDE and level[0] & (level[0] - 1) == 0 and 1 <= level[1] <= MAX_LEVEL_CHANNELS
        for level in levels)
    if not good:
        raise check.fail("levels", f"{_short(levels)}: 1..{MAX_LEVELS} [stride (a power of two up to {MAX_STRIDE}), "
                                   f"channels (1..{MAX_LEVEL_CHANNELS})]")


def check_bounded_v1(check: _Checker, header: dict[str, Any], grid: dict[str, Any]) -> None:
    """``neuralvox-bounded/1``: per channel bound and background, the visiting order's depth and each pass's
    prediction, coded in one ``values`` stream."""
    channels = check.integer(header, "channels", 1, 3)
    if channels != (3 if grid["value_type"] in VECTOR_TYPES else 1):
        raise check.fail("channels", f"{channels} channels for a {grid['value_type']} grid")
    if check.integer(header, "voxels", 0, MAX_VOXELS) != grid["voxels"]:
        raise check.fail("voxels", f"value header says {header['voxels']}, grid says {grid['voxels']}")
    if not all(b > 0 for b in check.numbers(header, "bounds", channels)):
        raise check.fail("bounds", f"{_short(header['bounds'])}: bounds must be positive")
    check.numbers(header, "background", channels)
    check.get(header, "inactive_known", bool)
    if not all(f >= 1 for f in check.numbers(header, "shrink", 2)):
        raise check.fail("shrink", f"{_short(header['shrink'])}: level factors must be at least 1")
    max_level = check.integer(header, "max_level", 1, MAX_ANCHOR_LEVEL)
    choices = check.get(header, "choices", list)
    passes = 1 + 7 * max_level
    if len(choices) != channels or not all(
            isinstance(c, list) and len(c) <= passes and all(isinstance(i, int) and 0 <= i < MAX_OPTIONS for i in c)
            for c in choices):
        raise check.fail("choices", f"{_short(choices)}: per channel at most {passes} predictions of "
                                    f"0..{MAX_OPTIONS - 1}")
    if VALUES not in grid["streams"]:
        raise check.fail("streams", "lacks values")


def check_bounded_v2(check: _Checker, header: dict[str, Any], grid: dict[str, Any]) -> None:
    """``neuralvox-bounded/2``: /1 plus ``context_frame``, the frame whose ``context`` stream holds the neural
    context model the codes use (null: the counting model); ``_check_context_frame`` checks it points back."""
    check_bounded_v1(check, header, grid)
    check.get(header, "context_frame", (int, type(None)))


def check_bounded_v3(check: _Checker, header: dict[str, Any], grid: dict[str, Any]) -> None:
    """``neuralvox-bounded/3``: /2 plus ``time_frame``, the frame whose decoded grid the time mode predicts leaves
    from (null: no time mode); ``_check_time_frame`` checks it points back."""
    check_bounded_v2(check, header, grid)
    check.get(header, "time_frame", (int, type(None)))


def check_chunked(check: _Checker, header: dict[str, Any], grid: dict[str, Any]) -> None:
    """``neuralvox-chunked/1`` to ``/4`` (/2 codes a chunk knowing its inactive voxels inside its own blocks; /3 adds
    the ``coarse`` layer's bounded header and its ``values.coarse`` stream; /4 adds ``coarse_own_model``, true where
    the layer is coded under its own context model, sent in ``values.coarse.context``): bounded values in spatial
    chunks, each a header of the bounded format and one ``values.<k>`` stream; the chunks' voxels add up to the
    grid's, and all (and the coarse layer) name the same context frame."""
    if check.integer(header, "voxels", 0, MAX_VOXELS) != grid["voxels"]:
        raise check.fail("voxels", f"value header says {header['voxels']}, grid says {grid['voxels']}")
    check.integer(header, "max_voxels", 1, MAX_VOXELS)
    check.integer(header, "max_box", 1, MAX_VOXELS << 16)
    check.integer(header, "block_shift", 1, chunked.MAX_BLOCK_SHIFT)
    chunks = check.get(header, "chunks", list)
    if not 2 <= len(chunks) <= min(chunked.MAX_CHUNKS, max(2, grid["voxels"])):
        raise check.fail("chunks", f"{len(chunks)} chunks for {grid['voxels']} voxels")
    total = 0
    for index, chunk in enumerate(chunks):
        if not isinstance(chunk, dict) or chunk.get("format") not in BOUNDED_FORMATS[1:]:
            raise check.fail(f"chunks[{index}]", f"not a {' or '.join(BOUNDED_FORMATS[1:])} header")
        try:
            voxels = check.integer(chunk, "voxels", 1, MAX_VOXELS)
            VALUE_VALIDATORS[chunk["format"]](check, chunk, {**grid, "voxels": voxels, "streams": [VALUES]})
            if chunk.get("time_frame") is not None:
                raise check.fail("time_frame", "a chunk of a chunked grid is never predicted from another frame")
        except ArchiveFormatError as exc:
            raise check.fail(f"chunks[{index}].{exc.field}", exc.problem) from None
        if chunk["context_frame"] != chunks[0]["context_frame"]:
            raise check.fail(f"chunks[{index}].context_frame", "differs from the first chunk's")
        total += voxels
    if total != grid["voxels"]:
        raise check.fail("chunks", f"the chunks hold {total} voxels, the grid {grid['voxels']}")
    coarse_streams = []
    if header["format"] in chunked.COARSE_FORMATS:
        coarse = check.get(header, "coarse", dict)
        _check_coarse(check, coarse, chunks[0]["context_frame"], grid)
        coarse_streams.append(chunked.COARSE_STREAM)
        if header["format"] == chunked.FORMAT and check.get(header, "coarse_own_model", bool):
            if coarse["context_frame"] is None:
                raise check.fail("coarse_own_model", "true, but the coarse layer names no context frame")
            coarse_streams.append(chunked.COARSE_MODEL_STREAM)
    missing = [chunked.chunk_stream(i) for i in range(len(chunks)) if chunked.chunk_stream(i) not in grid["streams"]]
    missing[:0] = [stream for stream in coarse_streams if stream not in grid["streams"]]
    if missing:
        raise check.fail("streams", f"lacks {', '.join(missing[:3])}")


def _check_coarse(check: _Checker, coarse: dict[str, Any], context_frame: Any, grid: dict[str, Any]) -> None:
    """The coarse layer of a ``neuralvox-chunked/3`` or ``/4`` grid: a bounded header of at most the grid's voxels."""
    try:
        if coarse.get("format") != BOUNDED_FORMATS[2]:
            raise check.fail("format", f"not {BOUNDED_FORMATS[2]}")
        voxels = check.integer(coarse, "voxels", 0, grid["voxels"])
        check_bounded_v3(check, coarse, {**grid, "voxels": voxels, "streams": [VALUES]})
        if coarse.get("time_frame") is not None:
            raise check.fail("time_frame", "the coarse layer is never predicted from another frame")
        if coarse["context_frame"] not in (None, context_frame):
            raise check.fail("context_frame", "is neither null (the counting model) nor the chunks'")
    except ArchiveFormatError as exc:
        raise check.fail(f"coarse.{exc.field}", exc.problem) from None


def check_based(check: _Checker, header: dict[str, Any], grid: dict[str, Any]) -> None:
    """``neuralvox-based/1``: the neural base (``neuralvox-values/1``, ``/2`` or ``/3``, a keyframe with its own
    decoder, in ``latents`` and ``weights``) and a ``neuralvox-bounded/3`` residual, never in the time mode, in
    ``values``, coded to at most the grid's bound."""
    for part, expected, validator in (("base", NEURAL_FORMATS, check_values_v1),
                                      ("residual", (BOUNDED_FORMATS[2],), check_bounded_v3)):
        value = check.get(header, part, dict)
        if value.get("format") not in expected:
            names = " or ".join(map(repr, expected))
            raise check.fail(f"{part}.format", f"{_short(value.get('format'))} is not {names}")
        try:
            validator(check, value, grid)
        except ArchiveFormatError as exc:
            raise check.fail(f"{part}.{exc.field}", exc.problem) from None
    base, residual = header["base"], header["residual"]
    if "constant" in base or "predicted" in base or base["shared_decoder"]:
        raise check.fail("base", "the base under a bound is a keyframe with its own decoder")
    if residual["time_frame"] is not None:
        raise check.fail("residual.time_frame", "the residual over a base is never in the time mode")
    if grid["latents_from"] is not None or grid["weights_from"] is not None:
        raise check.fail("latents_from", "a grid coded over a base refers to no other frame's latents or weights")
    channels = residual["channels"]
    bounds = check.numbers(header, "bounds", channels)
    if not all(b > 0 for b in bounds):
        raise check.fail("bounds", f"{_short(bounds)}: bounds must be positive")
    if not all(m >= 0 for m in check.numbers(header, "margin", channels)):
        raise check.fail("margin", f"{_short(header['margin'])}: margins are not negative")
    if any(r > b for r, b in zip(residual["bounds"], bounds, strict=True)):
        raise check.fail("residual.bounds", "above the grid's bound")


VALUE_VALIDATORS: dict[str, ValueValidator] = {
    **dict.fromkeys(NEURAL_FORMATS, check_values_v1), BOUNDED_FORMATS[0]: check_bounded_v1,
    BOUNDED_FORMATS[1]: check_bounded_v2, BOUNDED_FORMATS[2]: check_bounded_v3,
    **dict.fromkeys(chunked.FORMATS, check_chunked), BASED_FORMAT: check_based}


# ------------------------------------------------------------------------------------------------ header
def check_header(archive: Path, header: dict[str, Any], payload_sizes: Mapping[str, int]) -> ArchiveHeader:
    """The typed header of an archive, after checking its JSON against the schema and the archive's payload table
    (raise ArchiveFormatError). The summary is left out: decoding never reads it (see ``check_summary``)."""
    _check_frames(_Checker(archive), header, payload_sizes)
    return ArchiveHeader.from_json(header)


def _check_frames(check: _Checker, header: dict[str, Any], payload_sizes: Mapping[str, int]) -> None:
    if header.get("format") not in ARCHIVE_FORMATS:
        raise check.fail("format", f"{_short(header.get('format'))} is not {ARCHIVE_FORMAT!r} or an earlier "
                                   f"format (from a newer neuralvox?)")
    pattern = check.get(header, "pattern", dict)
    _check_pattern(check, pattern)
    name_pattern = NamePattern.from_dict(pattern)
    named = header["format"] == "neuralvox/1"  # neuralvox/2 leaves out a file name the pattern gives
    if not all(_is_int(n) for n in check.get(header, "gaps", list)):
        raise check.fail("gaps", "expected frame numbers")
    frames = check.get(header, "frames", list)
    if not 1 <= len(frames) <= MAX_FRAMES:
        raise check.fail("frames", f"{len(frames)} frames (expected 1..{MAX_FRAMES})")
    seen: dict[int, dict[str, Any]] = {}  # frame number -> its grids, frames before this one
    files: set[str] = set()
    for index, entry in enumerate(frames):
        label = entry.get("number", index) if isinstance(entry, dict) else index
        at = check.at(frame=label if isinstance(label, int) and not isinstance(label, bool) else _short(label))
        if not isinstance(entry, dict):
            raise at.fail("frames", f"entry {index} is not an object")
        number = at.get(entry, "number", (int, type(None)))
        number = 0 if number is None else number
        if number in seen or (entry["number"] is None and len(frames) > 1):
            raise at.fail("number", "repeated, or missing in a sequence of several frames")
        if named or "file" in entry:
            file = at.name(at.get(entry, "file", str), "file")
        else:
            file = at.name(name_pattern.format(entry["number"]), "file")
        if file in files:
            raise at.fail("file", f"{file!r} is the name of an earlier frame too")
        files.add(file)
        at.get(entry, "key", bool)
        _check_metadata(at, entry)
        grids = at.get(entry, "grids", dict)
        if len(grids) > MAX_GRIDS:
            raise at.fail("grids", f"{len(grids)} grids (at most {MAX_GRIDS})")
        for name, grid in grids.items():
            _check_grid(at.at(grid=name), number, name, grid, seen, grids, payload_sizes)
        seen[number] = grids


def _check_pattern(check: _Checker, pattern: dict[str, Any]) -> None:
    for field in ("prefix", "suffix"):
        value = check.get(pattern, field, str)
        if value and not is_plain_name(value):
            raise check.fail(f"pattern.{field}", f"{_short(value)} is not plain file-name text")
    check.get(pattern, "separator", str)
    check.integer(pattern, "padding", 0, MAX_PADDING)
    if pattern["suffix"] != ".vdb" or pattern["separator"] not in SEPARATORS or set(pattern) != _PATTERN_FIELDS:
        raise check.fail("pattern", f"{_short(pattern)} is not a .vdb name pattern")


def _check_metadata(check: _Checker, entry: dict[str, Any]) -> None:
    metadata = check.get(entry, "metadata", dict)
    types = check.get(entry, "metadata_types", dict)
    if not all(isinstance(v, str) for v in types.values()) or not set(types) <= set(metadata):
        raise check.fail("metadata_types", "expected type names of metadata fields")
    for key, value in metadata.items():
        if not _metadata_value_ok(value, types.get(key)):
            raise check.fail("metadata", f"{_short(key)}: {_short(value)} is not a value a .vdb can hold")


def _metadata_value_ok(value: Any, kind: str | None) -> bool:
    """What the binding writes as OpenVDB metadata: text, true/false, an integer of the type's range, a number, or
    3 numbers."""
    if isinstance(value, (str, bool, float)):
        return True
    if isinstance(value, int):
        bits = 31 if kind == "int32" else 63
        return -(1 << bits) <= value < 1 << bits
    return isinstance(value, list) and len(value) == 3 and all(_is_finite(v) for v in value)


def _check_grid(check: _Checker, number: int, name: str, grid: Any, earlier: dict[int, dict[str, Any]],
                this_frame: dict[str, Any], payload_sizes: Mapping[str, int]) -> None:
    if not is_plain_name(name):
        raise check.fail("grids", f"grid name {_short(name)} is not a plain name")
    if not isinstance(grid, dict):
        raise check.fail("grids", "not an object")
    if check.get(grid, "value_type", str) not in VALUE_TYPES:
        raise check.fail("value_type", f"{_short(grid['value_type'])} is not one of {sorted(VALUE_TYPES)}")
    check.get(grid, "grid_class", str)
    matrix = check.get(grid, "transform", list)
    if len(matrix) != 4 or not all(isinstance(row, list) and len(row) == 4 and all(map(_is_finite, row))
                                   for row in matrix):
        raise check.fail("transform", "expected a 4x4 matrix of finite numbers")
    background = check.get(grid, "background", (int, float, list))
    if not (_is_finite(background) or (isinstance(background, list) and len(background) == 3
                                       and all(map(_is_finite, background)))):
        raise check.fail("background", f"{_short(background)} is not a number or 3 numbers")
    check.get(grid, "save_half", bool)
    check.get(grid, "vector_type", (str, type(None)))
    _check_metadata(check, grid)
    check.integer(grid, "voxels", 0, MAX_VOXELS)
    streams = check.get(grid, "streams", list)
    for stream in [TOPOLOGY, *streams]:
        check.name(stream, "streams")
        if payload_key(number, name, stream) not in payload_sizes:
            raise check.fail("streams", f"payload {stream!r} is not in the archive")
    _check_references(check, number, name, grid, earlier, this_frame)
    values = check.get(grid, "values", dict)
    format_name = values.get("format")
    validator = VALUE_VALIDATORS.get(format_name) if isinstance(format_name, str) else None
    if validator is None:
        raise check.fail("values.format", f"unknown value format {_short(values.get('format'))} (known: "
                                          f"{', '.join(VALUE_VALIDATORS)}; from a newer neuralvox?)")
    validator(check, values, grid)
    _check_context_frame(check, number, name, values, grid, earlier)
    _check_time_frame(check, name, values, earlier)
    if "predicted" in values and grid["latents_from"] is None:
        raise check.fail("latents_from", "a predicted grid needs the frame it is predicted from")
    if "stats" in grid:
        _check_stats(check, check.get(grid, "stats", dict))


def _check_stats(check: _Checker, stats: dict[str, Any]) -> None:
    """A frame's recorded errors, bytes per stream and fitting time (never read by the decoder)."""
    for field in [*_ERROR_FIELDS, "fit_seconds"]:
        _optional(check, stats, field, (int, float))
    if not all(_is_int(v) for v in check.get(stats, "bytes", dict).values()):
        raise check.fail("stats.bytes", "expected byte counts")


def _check_references(check: _Checker, number: int, name: str, grid: dict[str, Any],
                      earlier: dict[int, dict[str, Any]], this_frame: dict[str, Any]) -> None:
    """Every reference points back: to an earlier frame of the list, or to a grid listed before in this frame, so
    the references can never form a cycle."""
    before = list(this_frame)[: list(this_frame).index(name)]
    ref = check.get(grid, "topology_ref", (list, type(None)))
    if ref is not None:
        good = (len(ref) in (2, 3) and isinstance(ref[0], int) and not isinstance(ref[0], bool)
                and isinstance(ref[1], str) and ref[2:] in ([], [MOTION]))
        if not good or not (ref[1] in earlier.get(ref[0], {}) or (ref[0] == number and ref[1] in before and
                                                                  not ref[2:])):
            raise check.fail("topology_ref", f"{_short(ref)} is not a grid coded before this one")
        if ref[2:] and (ref[1] != name or MOTION not in grid.get("streams", [])):
            raise check.fail("topology_ref", f"{_short(ref)}: motion context without this grid's motion")
    for field, needs in (("latents_from", None), ("weights_from", "weights")):
        source = check.get(grid, field, (int, type(None)))
        if source is None or (field == "weights_from" and source == number):
            continue
        owner = earlier.get(source, {}).get(name)
        if not isinstance(owner, dict) or "constant" in owner["values"] or (needs and needs not in owner["streams"]):
            raise check.fail(field, f"frame {source} is not an earlier frame holding this grid's {needs or 'latents'}")


def _check_context_frame(check: _Checker, number: int, name: str, values: dict[str, Any], grid: dict[str, Any],
                         earlier: dict[int, dict[str, Any]]) -> None:
    """A bounded grid's context model is sent by this frame or an earlier frame holding the same grid."""
    bounded = values["chunks"][0] if values["format"] in chunked.FORMATS else values
    owner = (values["residual"] if values["format"] == BASED_FORMAT else bounded).get("context_frame")
    if owner is None:
        return
    holder = grid if owner == number else earlier.get(owner, {}).get(name)
    if not isinstance(holder, dict) or CONTEXT not in holder.get("streams", []):
        raise check.fail("values.context_frame", f"frame {owner} is not this or an earlier frame holding this grid's "
                                                 "context model")


def _check_time_frame(check: _Checker, name: str, values: dict[str, Any], earlier: dict[int, dict[str, Any]]) -> None:
    """A grid in the time mode is predicted from an earlier frame holding the same grid coded bounded in one piece."""
    source = values.get("time_frame")
    if source is None:
        return
    holder = earlier.get(source, {}).get(name)
    if not isinstance(holder, dict) or holder["values"].get("format") not in BOUNDED_FORMATS:
        raise check.fail("values.time_frame", f"frame {source} is not an earlier frame holding this grid's bounded "
                                              "values in one piece")


_REPORT_NUMBERS = ("frames", "voxels", "source_bytes", "coded_bytes", "ratio", "bpv", "psnr", "rmse", "max_abs_error",
                   "fit_seconds")


def check_summary(archive: Path, header: dict[str, Any], payload_sizes: Mapping[str, int]) -> ArchiveSummary:
    """The typed summary (what ``neuralvox info`` prints besides the frames: codec settings, per-grid report, skipped
    grids), after checking it; a neuralvox/2 report's figures come from the frames and ``payload_sizes``."""
    check = _Checker(archive)
    codec = check.get(header, "codec", dict)
    for field in ("quality", "gop", "device"):
        check.get(codec, field, (str, int))
    # fields later versions of neuralvox/1 added: checked where present
    _optional(check, codec, "coherence", (int, float))
    _optional(check, codec, "target", (str, type(None)))
    _optional(check, codec, "base", str)
    bounds = _optional(check, codec, "bounds", (dict, type(None)))
    if bounds is not None and not all(_is_finite(v) for v in bounds.values()):
        raise check.fail("bounds", "expected a number per grid")
    first = header.get("format") == "neuralvox/1"
    report = check.get(header, "report", list)
    for entry in report:
        at = check.at(grid=_short(entry.get("name")) if isinstance(entry, dict) else None)
        if not isinstance(entry, dict):
            raise at.fail("report", "entry is not an object")
        at.get(entry, "name", str)
        if first:
            _check_report_v1(at, entry)
        else:
            _check_report_v2(at, entry)
    skipped = check.get(header, "skipped", dict)
    if not all(isinstance(v, str) for v in skipped.values()):
        raise check.fail("skipped", "expected a reason per grid")
    if first:
        return ArchiveSummary.from_json(header)
    _check_frames(check, header, payload_sizes)
    figures = report_figures(ArchiveHeader.from_json(header).frames, payload_sizes)
    names = [entry["name"] for entry in report]
    for name in names:
        if name not in figures or names.count(name) > 1:
            raise check.at(grid=_short(name)).fail("report", "a grid no frame holds, or reported twice")
    return ArchiveSummary.from_json(header, figures)


def _check_report_v1(check: _Checker, entry: dict[str, Any]) -> None:
    for field in _REPORT_NUMBERS:
        check.get(entry, field, (int, float))
    check.get(entry, "flicker", (int, float, type(None)))
    _optional(check, entry, "peak", (int, float))
    _optional(check, entry, "bound", (int, float, type(None)))
    streams = check.get(entry, "stream_bytes", dict)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in streams.values()):
        raise check.fail("stream_bytes", "expected byte counts")


def _check_report_v2(check: _Checker, entry: dict[str, Any]) -> None:
    """neuralvox/2 stores ``GridReport.STORED``; the PSNR is computed from the RMSE and peak."""
    if set(entry) != set(GridReport.STORED):
        raise check.fail("report", f"members {_short(sorted(entry))}, expected {list(GridReport.STORED)}")
    for field in ("source_bytes", "max_abs_error", "peak", "fit_seconds"):
        check.get(entry, field, (int, float))
    rmse = check.get(entry, "rmse", (int, float))
    if not (math.isfinite(rmse) and rmse >= 0):
        raise check.fail("rmse", f"{_short(rmse)} is not a finite number >= 0")
    check.get(entry, "flicker", (int, float, type(None)))
    check.get(entry, "bound", (int, float, type(None)))
