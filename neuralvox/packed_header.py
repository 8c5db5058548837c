"""The archive header (a JSON value) in a compact binary form, each value coded against one before it.

Every value is coded against a reference: an object's member against the member of the same name in the reference
object, a list's item against the reference list's item at the same index, or, where there is none, against the
list's previous item (so each frame of the header is coded against the frame before it); an object in such a list
may instead name one of the 4 items before it (``BACK``: a key frame against the last key frame), the packer keeping
whichever codes shortest. One tag byte says how:

- ``SAME``: identical to the reference (same JSON types, same float bits); ``LIKE_NAMESAKE``: a member identical
  to the last member of the same name (a value header's ``voxels`` after its grid's);
- small integers in the tag itself (``0..63``), or as the difference from an integer reference (``-32..31``);
  other integers as zigzag varints, absolute or as that difference;
- floats as their float32 bits where they are a float32, float64 bits, or the mantissa and exponent of their
  shortest decimal form, whichever is shortest; ISO dates (``created``) as microseconds since 2000;
- strings by index among ``VOCABULARY`` and the strings given before, whole (length and UTF-8 bytes), as the
  reference with the number in its last run of digits moved (``plume.0002.vdb`` after ``plume.0001.vdb``, same
  width), or as the bytes between a prefix and a suffix shared with the reference;
- lists with their count or as long as the reference, then the items; objects with the reference's member names in
  its order (the values only), or with their own (count, then per member a name, by index where known, and the
  value).

``unpack_header`` checks everything (tags, lengths, UTF-8, references, depth) and bounds the work a crafted table
can cause: ``SAME`` and ``LIKE_NAMESAKE`` copy an earlier value, and the values and string characters decoded and
copied may not pass a budget set by the header's length. JSON round-trips exactly: ``unpack_header(pack_header(v))``
is ``v`` with its types, float bits and member order.
"""

from __future__ import annotations

import datetime
import decimal
import math
import struct
from typing import Any

from neuralvox.varint import MAX_BYTES, ByteReader, encode_varint

MAX_DEPTH = 64
# Values decoded and copied: at most this many, plus this many per byte of the packed header.
_MIN_BUDGET = 1 << 20
_BUDGET_PER_BYTE = 64
_MAX_INT = 1 << (7 * MAX_BYTES - 2)  # the zigzag of any integer below it fits in a varint

NULL, FALSE, TRUE, SAME = 0, 1, 2, 3
INT, INT_DELTA, FLOAT32, FLOAT64 = 4, 5, 6, 7
STRING, STRING_STEP, STRING_MIDDLE = 8, 9, 10
LIST, OBJECT, OBJECT_LIKE_REF = 11, 12, 13
KNOWN_STRING, BACK, DECIMAL, DATETIME, LIST_LIKE_REF, LIKE_NAMESAKE = 14, 15, 16, 17, 18, 19
SMALL_INT = 0x80  # 0x80 + n for an integer n in 0..63
SMALL_DELTA = 0xC0  # 0xC0 + d + 32 for an integer that is its reference plus d, d in -32..31

_DIGITS = frozenset("0123456789")
_MAX_DIGITS = 18  # a string's number moves only when it has at most this many digits
_EPOCH = datetime.datetime(2000, 1, 1)
_MAX_EXPONENT = 400  # a float's decimal exponent: beyond it, a decimal is no float
_BACK_LIMIT = 4  # an object in a list is coded against one of the 4 items before it, whichever packs shortest

# The strings known before any header: its member names and common values. Part of the format: append only (a
# reader that does not know a later entry refuses it as out of range; none may change or move).
VOCABULARY = (
    # archive, frame and grid entries
    "format", "neuralvox", "created", "pattern", "prefix", "separator", "padding", "suffix", ".vdb", "gaps", "codec",
    "quality", "gop", "coherence", "device", "target", "bounds", "base", "frames", "number", "file", "key",
    "metadata", "metadata_types", "grids", "value_type", "grid_class", "transform", "background", "save_half",
    "vector_type", "voxels", "topology_ref", "values", "weights_from", "streams", "latents_from", "stats", "skipped",
    "report",
    # value headers
    "channels", "constant", "levels", "hidden", "frequencies", "activation", "low", "high", "shared_decoder",
    "predicted", "motion_stride", "motion_step", "margin", "residual", "inactive_known", "choices", "shrink",
    "max_level", "context_frame", "time_frame", "chunks", "coarse", "block_shift", "max_box", "max_voxels",
    # the report and recorded stats
    "name", "source_bytes", "stream_bytes", "psnr", "rmse", "max_abs_error", "peak", "flicker", "fit_seconds",
    "bound", "ratio", "bpv", "coded_bytes", "bytes", "error",
    # stream names, formats and settings
    "topology", "latents", "weights", "motion", "context", "neuralvox/1", "neuralvox-values/1",
    "neuralvox-values/2", "neuralvox-based/1", "neuralvox-bounded/1", "neuralvox-bounded/2", "neuralvox-bounded/3",
    "neuralvox-chunked/1", "neuralvox-chunked/2", "neuralvox-chunked/3", "gelu", "relu", "silu", "auto", "cpu",
    "cuda", "medium", "on", "off",
    # grids, their classes, value types and metadata
    "density", "temperature", "flame", "heat", "vel", "velocity", "surface", "color", "float", "double", "vec3s",
    "vec3d", "vec3i", "int32", "int64", "bool", "string", "unknown", "level set", "fog volume", "staggered",
    "invariant", "covariant", "covariant normalize", "contravariant relative", "contravariant absolute", "creator",
    "class", "file_bbox_min", "file_bbox_max", "file_compression", "file_mem_bytes", "file_voxel_count",
    "is_local_space", "is_saved_as_half_float", "resolution", "scenario", "seed", "frame", "neuralvox.sim",
    "file_base_resolution", "file_voxel_size", "fire", "fuel", "react", "smoke", "fluid", "points",
    # formats added later
    "neuralvox-values/3",
    # container version 4 on (version 3's tables know only the entries above)
    "neuralvox/2", "0.1.0",
)


class PackedHeaderError(ValueError):
    """The packed header is malformed: the message says where."""


def pack_header(value: Any) -> bytes:
    """The packed form of a JSON value (an object, for a header); ValueError for what JSON cannot hold."""
    packer = _Packer({text: index for index, text in enumerate(VOCABULARY)}, {})
    packer.value(value, None, 0)
    return bytes(packer.out)


def unpack_header(data: bytes, known: int = len(VOCABULARY)) -> Any:
    """The JSON value packed in ``data``, which it must use up exactly (raise PackedHeaderError), with the first
    ``known`` entries of ``VOCABULARY`` (those its container version had)."""
    reader = _Unpacker(data, known)
    value = reader.value(None, 0, "header")
    if reader.position != len(data):
        raise PackedHeaderError(f"{len(data) - reader.position} bytes after the header")
    return value


def identical(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same value: same types (True is not 1), same float bits, same member order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    return a == b


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def _unzigzag(value: int) -> int:
    return value >> 1 if not value & 1 else -(value >> 1) - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _item_ref(ref: Any, items: list[Any], index: int) -> tuple[Any, bool]:
    """A list item's reference, and whether it is the item before it (rather than the reference list's item)."""
    if isinstance(ref, list) and index < len(ref):
        return ref[index], False
    return (items[index - 1], True) if index else (None, False)


def _last_number(text: str) -> tuple[int, int] | None:
    """Where the last run of ASCII digits in ``text`` starts and ends; None where there is none, or a longer one
    than ``_MAX_DIGITS``."""
    end = len(text)
    while end and text[end - 1] not in _DIGITS:
        end -= 1
    start = end
    while start and text[start - 1] in _DIGITS:
        start -= 1
    return (start, end) if 0 < end - start <= _MAX_DIGITS else None


def _step_string(ref: str, delta: int) -> str | None:
    """``ref`` with the number in its last run of digits moved by ``delta``, same width; None where it has none or
    the number would leave the width."""
    place = _last_number(ref)
    if place is None:
        return None
    start, end = place
    number = int(ref[start:end]) + delta
    if not 0 <= number < 10 ** (end - start):
        return None
    return f"{ref[:start]}{number:0{end - start}d}{ref[end:]}"


def _decimal(value: float) -> tuple[int, int] | None:
    """The float as mantissa and exponent of its shortest decimal form, where that form reads back as it."""
    if value != value or value in (math.inf, -math.inf):
        return None
    sign, digits, exponent = decimal.Decimal(repr(value)).as_tuple()
    mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
    if not isinstance(exponent, int) or _float_bits(_decimal_float(mantissa, exponent)) != _float_bits(value):
        return None
    return mantissa, exponent


def _decimal_float(mantissa: int, exponent: int) -> float:
    return float(f"{mantissa}e{exponent}")


def _float_bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _datetime_text(microseconds: int) -> str:
    return (_EPOCH + datetime.timedelta(microseconds=microseconds)).isoformat()


def shared_prefix(a: bytes, b: bytes) -> int:
    """How many leading bytes ``a`` and ``b`` share."""
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


class _Packer:
    def __init__(self, strings: dict[str, int], namesakes: dict[str, Any]) -> None:
        self.out = bytearray()
        self.strings = strings  # string -> its index in the table: the vocabulary, then each literal given
        self.namesakes = namesakes  # member name -> the last value coded under it

    def fork(self) -> _Packer:
        return _Packer(dict(self.strings), dict(self.namesakes))

    def literal(self, text: str) -> bytes:
        data = text.encode()
        self.strings.setdefault(text, len(self.strings))
        return encode_varint(len(data)) + data

    def value(self, value: Any, ref: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ValueError(f"header nested deeper than {MAX_DEPTH}")
        if ref is not None and value == ref and identical(value, ref):  # == first: C speed, and rarely true
            self.out.append(SAME)
        elif value is None:
            self.out.append(NULL)
        elif isinstance(value, bool):
            self.out.append(TRUE if value else FALSE)
        elif isinstance(value, int):
            self.integer(value, ref)
        elif isinstance(value, float):
            self.float(value)
        elif isinstance(value, str):
            self.string(value, ref)
        elif isinstance(value, list):
            self.list(value, ref, depth)
        elif isinstance(value, dict):
            self.object(value, ref, depth)
        else:
            raise ValueError(f"header value of type {type(value).__name__} is not JSON")

    def integer(self, value: int, ref: Any) -> None:
        if not -_MAX_INT <= value < _MAX_INT:
            raise ValueError(f"header integer {value} out of range")
        delta = value - ref if _is_int(ref) and -_MAX_INT <= value - ref < _MAX_INT else None
        if 0 <= value < 64:
            self.out.append(SMALL_INT + value)
        elif delta is not None and -32 <= delta < 32:
            self.out.append(SMALL_DELTA + delta + 32)
        elif delta is not None and abs(delta) < abs(value):
            self.out += bytes([INT_DELTA]) + encode_varint(_zigzag(delta))
        else:
            self.out += bytes([INT]) + encode_varint(_zigzag(value))

    def float(self, value: float) -> None:
        candidates = [bytes([FLOAT64]) + _float_bits(value)]
        single = struct.pack("<f", value) if abs(value) <= 3.4e38 or value != value else b""
        if single and _float_bits(struct.unpack("<f", single)[0]) == _float_bits(value):
            candidates.append(bytes([FLOAT32]) + single)
        shortest = _decimal(value)
        if shortest is not None and abs(shortest[1]) <= _MAX_EXPONENT:
            candidates.append(bytes([DECIMAL]) + encode_varint(_zigzag(shortest[0]))
                              + encode_varint(_zigzag(shortest[1])))
        self.out += min(candidates, key=len)

    def string(self, value: str, ref: Any) -> None:
        candidates = []
        if value in self.strings:
            candidates.append(bytes([KNOWN_STRING]) + encode_varint(self.strings[value]))
        if isinstance(ref, str):
            place, ref_place = _last_number(value), _last_number(ref)
            if place and ref_place:
                delta = int(value[slice(*place)]) - int(ref[slice(*ref_place)])
                if _step_string(ref, delta) == value:
                    candidates.append(bytes([STRING_STEP]) + encode_varint(_zigzag(delta)))
            data, ref_data = value.encode(), ref.encode()
            prefix = shared_prefix(ref_data, data)
            suffix = shared_prefix(ref_data[prefix:][::-1], data[prefix:][::-1])
            middle = data[prefix : len(data) - suffix]
            if prefix + suffix > 2:
                candidates.append(bytes([STRING_MIDDLE]) + encode_varint(prefix) + encode_varint(suffix)
                                  + encode_varint(len(middle)) + middle)
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is None and moment >= _EPOCH:
            microseconds = (moment - _EPOCH) // datetime.timedelta(microseconds=1)
            if _datetime_text(microseconds) == value:
                candidates.append(bytes([DATETIME]) + encode_varint(microseconds))
        if candidates:
            self.out += min(candidates, key=len)
        else:
            self.out += bytes([STRING]) + self.literal(value)

    def list(self, value: list[Any], ref: Any, depth: int) -> None:
        if isinstance(ref, list) and len(ref) == len(value):
            self.out.append(LIST_LIKE_REF)
        else:
            self.out += bytes([LIST]) + encode_varint(len(value))
        for index, item in enumerate(value):
            item_ref, previous = _item_ref(ref, value, index)
            if not isinstance(item, dict) or index < 2 or not previous:
                self.value(item, item_ref, depth + 1)
                continue
            trials = []
            for back in range(1, min(_BACK_LIMIT, index) + 1):
                trial = self.fork()
                if back > 1:
                    trial.out += bytes([BACK]) + encode_varint(back)
                trial.value(item, value[index - back], depth + 1)
                trials.append(trial)
                if len(trial.out) == 1:  # the item before it, unchanged: nothing codes shorter
                    break
            best = min(trials, key=lambda trial: len(trial.out))
            self.out += best.out
            self.strings, self.namesakes = best.strings, best.namesakes

    def object(self, value: dict[str, Any], ref: Any, depth: int) -> None:
        if isinstance(ref, dict) and list(ref) == list(value):
            self.out.append(OBJECT_LIKE_REF)
            for name, item in value.items():
                self.member(name, item, ref[name], depth)
            return
        self.out += bytes([OBJECT]) + encode_varint(len(value))
        for name, item in value.items():
            if not isinstance(name, str):
                raise ValueError(f"header member name {name!r} is not a string")
            if name in self.strings:
                self.out += encode_varint(self.strings[name] + 1)
            else:
                self.out += encode_varint(0) + self.literal(name)
            self.member(name, item, ref.get(name) if isinstance(ref, dict) else None, depth)

    def member(self, name: str, item: Any, ref: Any, depth: int) -> None:
        namesake = self.namesakes.get(name)
        if (namesake is not None and item == namesake and identical(item, namesake)
                and not (ref is not None and item == ref and identical(item, ref))):
            self.out.append(LIKE_NAMESAKE)
        else:
            self.value(item, ref, depth + 1)
        self.namesakes[name] = item


class _Unpacker(ByteReader):
    def __init__(self, data: bytes, known: int) -> None:
        super().__init__(data, PackedHeaderError, "header")
        self.strings: list[str] = list(VOCABULARY[:known])
        self.namesakes: dict[str, Any] = {}
        self.budget = _MIN_BUDGET + _BUDGET_PER_BYTE * len(data)

    def spend(self, count: int, where: str) -> None:
        self.budget -= count
        if self.budget < 0:
            raise PackedHeaderError(f"{where}: the header unpacks to more values than its {len(self.data)} bytes "
                                    f"allow")

    def literal(self, where: str) -> str:
        data = self.take(self.varint(where), where)
        self.spend(len(data), where)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise PackedHeaderError(f"{where}: not UTF-8") from None
        self.strings.append(text)
        return text

    def known(self, index: int, where: str) -> str:
        if index >= len(self.strings):
            raise PackedHeaderError(f"{where}: string {index} of the {len(self.strings)} known")
        self.spend(len(self.strings[index]), where)
        return self.strings[index]

    def value(self, ref: Any, depth: int, where: str) -> Any:
        if depth > MAX_DEPTH:
            raise PackedHeaderError(f"{where}: nested deeper than {MAX_DEPTH}")
        self.spend(1, where)
        tag = self.take(1, where)[0]
        if tag >= SMALL_DELTA:
            return self.reference_int(ref, where) + tag - SMALL_DELTA - 32
        if tag >= SMALL_INT:
            return tag - SMALL_INT
        if tag in (NULL, FALSE, TRUE):
            return (None, False, True)[tag]
        if tag == SAME:
            if ref is None:
                raise PackedHeaderError(f"{where}: 'same as before' where there is nothing before")
            return self.copy(ref, where)
        if tag == INT:
            return _unzigzag(self.varint(where))
        if tag == INT_DELTA:
            return self.reference_int(ref, where) + _unzigzag(self.varint(where))
        if tag == FLOAT32:
            return struct.unpack("<f", self.take(4, where))[0]
        if tag == FLOAT64:
            return struct.unpack("<d", self.take(8, where))[0]
        if tag == DECIMAL:
            return self.decimal(where)
        if tag == DATETIME:
            return self.datetime(where)
        return self.text_or_collection(tag, ref, depth, where)

    def text_or_collection(self, tag: int, ref: Any, depth: int, where: str) -> Any:
        if tag == STRING:
            return self.literal(where)
        if tag == KNOWN_STRING:
            return self.known(self.varint(where), where)
        if tag in (STRING_STEP, STRING_MIDDLE):
            return self.string(tag, ref, where)
        if tag in (LIST, LIST_LIKE_REF):
            return self.list(tag, ref, depth, where)
        if tag in (OBJECT, OBJECT_LIKE_REF):
            return self.object(tag, ref, depth, where)
        raise PackedHeaderError(f"{where}: unknown tag {tag}")

    def decimal(self, where: str) -> float:
        mantissa, exponent = _unzigzag(self.varint(where)), _unzigzag(self.varint(where))
        if abs(exponent) > _MAX_EXPONENT:
            raise PackedHeaderError(f"{where}: decimal exponent {exponent} out of range")
        return _decimal_float(mantissa, exponent)

    def datetime(self, where: str) -> str:
        try:
            text = _datetime_text(self.varint(where))
        except OverflowError:
            raise PackedHeaderError(f"{where}: a date past the year 9999") from None
        self.spend(len(text), where)
        return text

    def reference_int(self, ref: Any, where: str) -> int:
        if not _is_int(ref):
            raise PackedHeaderError(f"{where}: a difference from {_short(ref)}, which is not an integer")
        return ref

    def copy(self, value: Any, where: str) -> Any:
        """A copy of an earlier value, each of its values and string characters counted against the budget."""
        if isinstance(value, list):
            self.spend(len(value), where)
            return [self.copy(item, where) for item in value]
        if isinstance(value, dict):
            self.spend(len(value), where)
            return {name: self.copy(item, where) for name, item in value.items()}
        if isinstance(value, str):
            self.spend(len(value), where)
        return value

    def string(self, tag: int, ref: Any, where: str) -> str:
        if not isinstance(ref, str):
            raise PackedHeaderError(f"{where}: a string coded against {_short(ref)}, which is not a string")
        if tag == STRING_STEP:
            stepped = _step_string(ref, _unzigzag(self.varint(where)))
            if stepped is None:
                raise PackedHeaderError(f"{where}: {_short(ref)} has no number that moves so")
            self.spend(len(stepped), where)
            return stepped
        ref_data = ref.encode()
        prefix, suffix = self.varint(where), self.varint(where)
        if prefix + suffix > len(ref_data):
            raise PackedHeaderError(f"{where}: {prefix} + {suffix} bytes shared with a string of {len(ref_data)}")
        middle = self.take(self.varint(where), where)
        data = ref_data[:prefix] + middle + ref_data[len(ref_data) - suffix :]
        self.spend(len(data), where)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise PackedHeaderError(f"{where}: not UTF-8") from None

    def list(self, tag: int, ref: Any, depth: int, where: str) -> list[Any]:
        if tag == LIST_LIKE_REF and not isinstance(ref, list):
            raise PackedHeaderError(f"{where}: a list as long as {_short(ref)}, which is not a list")
        count = len(ref) if tag == LIST_LIKE_REF else self.varint(where)
        if count > self.remaining:
            raise PackedHeaderError(f"{where}: {count} items in {self.remaining} bytes")
        items: list[Any] = []
        for index in range(count):
            at = f"{where}[{index}]"
            item_ref, previous = _item_ref(ref, items, index)
            if self.position < len(self.data) and self.data[self.position] == BACK:
                self.position += 1
                back = self.varint(at)
                if not 2 <= back <= min(_BACK_LIMIT, index) or not previous:
                    raise PackedHeaderError(f"{at}: coded against the item {back} before it")
                item_ref = items[index - back]
            items.append(self.value(item_ref, depth + 1, at))
        return items

    def object(self, tag: int, ref: Any, depth: int, where: str) -> dict[str, Any]:
        if tag == OBJECT_LIKE_REF:
            if not isinstance(ref, dict):
                raise PackedHeaderError(f"{where}: an object like {_short(ref)}, which is not an object")
            return {name: self.member(name, item, depth, f"{where}.{name}") for name, item in ref.items()}
        count = self.varint(where)
        if count > self.remaining:
            raise PackedHeaderError(f"{where}: {count} members in {self.remaining} bytes")
        out: dict[str, Any] = {}
        for _ in range(count):
            at = f"{where}: member name"
            index = self.varint(at)
            name = self.literal(at) if index == 0 else self.known(index - 1, at)
            if name in out:
                raise PackedHeaderError(f"{where}: member {_short(name)} repeated")
            out[name] = self.member(name, ref.get(name) if isinstance(ref, dict) else None, depth, f"{where}.{name}")
        return out

    def member(self, name: str, ref: Any, depth: int, where: str) -> Any:
        if self.position < len(self.data) and self.data[self.position] == LIKE_NAMESAKE:
            self.position += 1
            self.spend(1, where)
            if self.namesakes.get(name) is None:
                raise PackedHeaderError(f"{where}: like an earlier {name!r}, where there is none")
            value = self.copy(self.namesakes[name], where)
        else:
            value = self.value(ref, depth + 1, where)
        self.namesakes[name] = value
        return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
