"""PostgreSQL binary COPY: a streaming decoder into values SQLite stores losslessly.

Theory of operation: ``COPY ... TO STDOUT (FORMAT binary)`` sends an 11-byte signature
``PGCOPY\\n\\377\\r\\n\\0``, an int32 flags word, an int32 header-extension length and that
many extension bytes; then one tuple per row: an int16 field count and, per field, an int32
length (-1 for NULL) and that many bytes in the type's ``send`` form; then the trailer, an
int16 -1. All integers are big-endian. The PostgreSQL manual page for COPY ("Binary
Format") is the normative description; this module is the one home of its rules.

:class:`CopyDecoder` is a pure state machine over bytes (no I/O, no asyncpg): feed it the
stream cut anywhere and it returns the rows each chunk completes. A row in progress keeps the
fields already decoded, so a large value arriving in small chunks is joined once, not once
per chunk. Each column's decoder is chosen once, from its *kind*: the ``pg_type.typname`` of
the column's base type (domains resolved by the caller), ``enum`` for any enum, and ``_``
plus the element kind for an array. Text fields are read as UTF-8, the client encoding
asyncpg sets.

Each kind becomes a value SQLite can store without loss, and that equals PostgreSQL's own
text output under ``DateStyle='ISO, YMD'``, ``IntervalStyle='postgres'``, ``TimeZone='UTC'``:

=============================================  =========================================
kind                                           value
=============================================  =========================================
int2, int4, int8, oid                          int
float4, float8                                 float (float4 read as float32 and widened);
                                               NaN becomes the text ``'NaN'`` because
                                               SQLite stores a NaN REAL as NULL;
                                               +-Infinity stay floats
numeric                                        str, exactly ``numeric::text``: as many
                                               fraction digits as the dscale, ``'NaN'``,
                                               ``'Infinity'``, ``'-Infinity'``
bool                                           int 1 or 0
text, varchar, bpchar, name, json, enum        str (bpchar keeps its padding, as bpchar's
                                               output does; ``bpchar::text`` trims it)
xml, citext                                    str
jsonb                                          str (the version byte must be 1)
char (the one-byte ``"char"``)                 str of that byte read as latin-1; the zero
                                               byte is ``''``, as PostgreSQL writes it
bytea                                          bytes
uuid                                           str, lowercase with hyphens
tsvector                                       str, as tsvectorout writes it:
                                               ``'cat':2A,5 'fat':1``
macaddr, macaddr8                              str, ``'08:00:2b:01:02:03'``
bit, varbit                                    str of ``0`` and ``1``
date                                           ``'YYYY-MM-DD'``, ``'0044-03-15 BC'``,
                                               ``'infinity'``, ``'-infinity'``
time                                           ``'HH:MM:SS[.ffffff]'`` (trailing zeros of
                                               the fraction dropped)
timetz                                         the time and the offset east of UTC:
                                               ``'+02'``, ``'-03:30'``, ``'+01:02:03'``
timestamp                                      ``'YYYY-MM-DD HH:MM:SS[.ffffff][ BC]'``,
                                               ``'infinity'``, ``'-infinity'``
timestamptz                                    the UTC instant:
                                               ``'YYYY-MM-DD HH:MM:SS[.ffffff]+00[ BC]'``
interval                                       IntervalStyle postgres:
                                               ``'1 year 2 mons 3 days 04:05:06.5'``,
                                               ``'-1 days +02:00:00'``, ``'00:00:00'``
_<kind> (arrays, any number of dimensions)     str: compact JSON of nested lists of the
                                               element values above, NULL as ``null``;
                                               bytea elements as ``'\\\\x…'`` hex text,
                                               float NaN and +-Infinity as the strings
                                               ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
                                               (strict JSON has no such numbers); an empty
                                               array is ``'[]'``
=============================================  =========================================

One thing is not kept: an array's lower bounds (``'[0:2]={1,2,3}'`` becomes ``[1,2,3]``);
nothing else in the stream is dropped. Nothing here depends on a job state.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Sequence
from datetime import date
from functools import lru_cache
from typing import Final, NoReturn

from pumpkit.core.buffers import Buffer
from pumpkit.core.limits import MAX_DATA_FRAME_BYTES
from pumpkit.errors import CopyFormatError

__all__ = (
    "CopyDecoder",
    "CopyFormatError",
    "decoder_for",
    "kind_of",
)

#: What a column decoder takes (one field's bytes) and gives (its SQLite value).
Decoder = Callable[[bytes | memoryview], object]

SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00"
_HEADER_SIZE: Final = len(SIGNATURE) + 8  # signature, flags, extension length
_FLAG_OIDS: Final = 1 << 16
_CRITICAL_FLAGS: Final = 0xFFFF  # bits 0-15: a reader must refuse any it does not know

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U16 = struct.Struct(">H")
_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_FLAGS_EXT = struct.Struct(">Ii")
_NUMERIC_HEAD = struct.Struct(">hhHH")  # ndigits, weight, sign, dscale
_TIMETZ = struct.Struct(">qi")  # microseconds since midnight, zone in seconds WEST of UTC
_INTERVAL = struct.Struct(">qii")  # microseconds, days, months
_ARRAY_HEAD = struct.Struct(">iiI")  # ndim, has-null flag, element type oid

_INT32_MIN: Final = -(1 << 31)
_INT32_MAX: Final = (1 << 31) - 1
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_USECS_PER_DAY: Final = 86_400_000_000
_ORDINAL_2000: Final = date(2000, 1, 1).toordinal()  # PostgreSQL's epoch for dates and times
_MAX_ARRAY_DIMS: Final = 6  # PostgreSQL's MAXDIM


# --- scalar decoders -------------------------------------------------------------------------
# Each takes exactly one field's bytes; a wrong length raises struct.error or ValueError, which
# CopyDecoder turns into a CopyFormatError that says where.


def _int2(data: bytes | memoryview) -> int:
    value: int = _I16.unpack(data)[0]
    return value


def _int4(data: bytes | memoryview) -> int:
    value: int = _I32.unpack(data)[0]
    return value


def _int8(data: bytes | memoryview) -> int:
    value: int = _I64.unpack(data)[0]
    return value


def _oid(data: bytes | memoryview) -> int:
    value: int = _U32.unpack(data)[0]
    return value


def _float4(data: bytes | memoryview) -> float | str:
    value: float = _F32.unpack(data)[0]
    return value if value == value else "NaN"


def _float8(data: bytes | memoryview) -> float | str:
    value: float = _F64.unpack(data)[0]
    return value if value == value else "NaN"


def _numeric(data: bytes | memoryview) -> str:
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(data)
    if sign == 0xC000:
        return "NaN"
    if sign == 0xD000:
        return "Infinity"
    if sign == 0xF000:
        return "-Infinity"
    if sign not in (0x0000, 0x4000):
        raise ValueError(f"numeric sign word 0x{sign:04X} is not one PostgreSQL writes")
    if ndigits < 0 or len(data) != 8 + 2 * ndigits:
        raise ValueError(f"numeric of {len(data)} bytes cannot hold {ndigits} digits")
    if dscale > 0x3FFF:
        raise ValueError(f"numeric display scale {dscale} is out of range")
    digits = struct.unpack_from(f">{ndigits}H", data, 8)
    if ndigits and max(digits) > 9999:
        raise ValueError(f"numeric base-10000 digit {max(digits)} is out of range")
    # The digits as one decimal string, 4 per base-10000 digit; the first 4 * (weight + 1)
    # are the integer part. Leading zeros go and the fraction is cut (not rounded) at dscale,
    # as numeric_recv followed by numeric_out does.
    text = ("%04d" * ndigits) % digits
    intlen = 4 * (weight + 1)
    if intlen > 0:
        whole = (text[:intlen] if len(text) >= intlen else text.ljust(intlen, "0")).lstrip("0")
        fraction = text[intlen:]
        result = whole or "0"
    else:
        fraction = "0" * -intlen + text if dscale > -intlen else ""
        result = "0"
    if dscale:
        fraction = fraction[:dscale] if len(fraction) >= dscale else fraction.ljust(dscale, "0")
        result = f"{result}.{fraction}"
    # Zero has no sign in PostgreSQL, even when the digits cut away were not zero.
    if sign == 0x4000 and result.strip("0.") != "":
        return "-" + result
    return result


def _bool(data: bytes | memoryview) -> int:
    if len(data) != 1:
        raise ValueError(f"bool of {len(data)} bytes, not 1")
    return 1 if data[0] else 0


def _text(data: bytes | memoryview) -> str:
    return str(data, "utf-8")


def _jsonb(data: bytes | memoryview) -> str:
    if len(data) < 1 or data[0] != 1:
        version = data[0] if len(data) else None
        raise ValueError(f"jsonb version {version} is not 1")
    return str(data[1:], "utf-8")


def _char(data: bytes | memoryview) -> str:
    if len(data) != 1:
        raise ValueError(f'"char" of {len(data)} bytes, not 1')
    return chr(data[0]) if data[0] else ""


def _bytea(data: bytes | memoryview) -> bytes:
    return bytes(data)


_TSV_WEIGHTS: Final = ("", "C", "B", "A")  # WordEntryPos weight bits 14-15: D, C, B, A


def _tsvector(data: bytes | memoryview) -> str:
    """``tsvector_send``: an int32 count of lexemes; each a NUL-ended string, an uint16
    count of positions and that many uint16 (weight in the top two bits). As tsvectorout
    writes it: ``'cat':2A,5 'fat':1``, quotes and backslashes doubled."""
    raw = bytes(data)
    (count,) = _I32.unpack_from(raw, 0)
    if count < 0:
        raise ValueError(f"tsvector of {count} lexemes")
    at = 4
    words = []
    for _ in range(count):
        end = raw.index(0, at)
        lexeme = raw[at:end].decode("utf-8").replace("\\", "\\\\").replace("'", "''")
        at = end + 1
        (npos,) = _U16.unpack_from(raw, at)
        at += 2
        positions = []
        for _ in range(npos):
            (pos,) = _U16.unpack_from(raw, at)
            at += 2
            positions.append(f"{pos & 0x3FFF}{_TSV_WEIGHTS[pos >> 14]}")
        words.append(f"'{lexeme}'" + (":" + ",".join(positions) if positions else ""))
    if at != len(raw):
        raise ValueError(f"tsvector of {len(raw)} bytes has {len(raw) - at} left over")
    return " ".join(words)


def _macaddr(data: bytes | memoryview) -> str:
    if len(data) not in (6, 8):
        raise ValueError(f"macaddr of {len(data)} bytes, not 6 or 8")
    return ":".join(f"{b:02x}" for b in bytes(data))


def _bits(data: bytes | memoryview) -> str:
    """``bit_send``: an int32 length in bits, then the bits, high bit first."""
    raw = bytes(data)
    (length,) = _I32.unpack_from(raw, 0)
    if length < 0 or (length + 7) // 8 != len(raw) - 4:
        raise ValueError(f"bit string of {length} bits in {len(raw) - 4} bytes")
    text = "".join(f"{b:08b}" for b in raw[4:])
    return text[:length]


def _uuid(data: bytes | memoryview) -> str:
    if len(data) != 16:
        raise ValueError(f"uuid of {len(data)} bytes, not 16")
    h = data.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@lru_cache(maxsize=1 << 14)  # a column's dates and timestamps tend to share days
def _ymd(days: int) -> tuple[str, bool]:
    """Days since 2000-01-01 as ISO ``YYYY-MM-DD`` (BC years numbered as PG does) and is-BC."""
    ordinal = days + _ORDINAL_2000
    if 1 <= ordinal <= 3_652_059:  # what datetime.date covers: 0001-01-01 to 9999-12-31
        return date.fromordinal(ordinal).isoformat(), False
    # Proleptic Gregorian from a day count, for any year (year 0 is 1 BC): the era/day-of-era
    # method, with floor division doing the work for negative eras.
    z = ordinal + 305  # days since 0000-03-01
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d}", True
    return f"{year:04d}-{month:02d}-{day:02d}", False


def _hms(usecs: int) -> str:
    """Non-negative microseconds as ``HH:MM:SS[.ffffff]``, the fraction without trailing zeros."""
    secs, frac = divmod(usecs, 1_000_000)
    hms = (secs // 3600, secs // 60 % 60, secs % 60)
    # %-formatting is about twice as fast as an f-string with format specs, on a hot path.
    if frac:
        return ("%02d:%02d:%02d.%06d" % (*hms, frac)).rstrip("0")  # noqa: UP031
    return "%02d:%02d:%02d" % hms  # noqa: UP031


def _date(data: bytes | memoryview) -> str:
    (days,) = _I32.unpack(data)
    if days == _INT32_MAX:
        return "infinity"
    if days == _INT32_MIN:
        return "-infinity"
    text, bc = _ymd(days)
    return text + " BC" if bc else text


def _time(data: bytes | memoryview) -> str:
    (usecs,) = _I64.unpack(data)
    if not 0 <= usecs <= _USECS_PER_DAY:
        raise ValueError(f"time of {usecs} microseconds is out of range")
    return _hms(usecs)


def _zone(west: int) -> str:
    """A zone given in seconds west of UTC, written east-positive as PostgreSQL does."""
    mins, sec = divmod(abs(west), 60)
    hour, minute = divmod(mins, 60)
    sign = "+" if west <= 0 else "-"
    if sec:
        return f"{sign}{hour:02d}:{minute:02d}:{sec:02d}"
    if minute:
        return f"{sign}{hour:02d}:{minute:02d}"
    return f"{sign}{hour:02d}"


def _timetz(data: bytes | memoryview) -> str:
    usecs, west = _TIMETZ.unpack(data)
    if not 0 <= usecs <= _USECS_PER_DAY:
        raise ValueError(f"time of {usecs} microseconds is out of range")
    return _hms(usecs) + _zone(west)


def _timestamp_text(usecs: int, zone: str) -> str:
    days, usecs = divmod(usecs, _USECS_PER_DAY)
    day, bc = _ymd(days)
    text = f"{day} {_hms(usecs)}{zone}"
    return text + " BC" if bc else text


def _timestamp(data: bytes | memoryview) -> str:
    (usecs,) = _I64.unpack(data)
    if usecs == _INT64_MAX:
        return "infinity"
    if usecs == _INT64_MIN:
        return "-infinity"
    return _timestamp_text(usecs, "")


def _timestamptz(data: bytes | memoryview) -> str:
    (usecs,) = _I64.unpack(data)
    if usecs == _INT64_MAX:
        return "infinity"
    if usecs == _INT64_MIN:
        return "-infinity"
    return _timestamp_text(usecs, "+00")


def _truncdiv(a: int, b: int) -> tuple[int, int]:
    """C's division (toward zero) and its remainder, as interval2itm uses them."""
    q = -(-a // b) if a < 0 else a // b
    return q, a - q * b


def _interval(data: bytes | memoryview) -> str:
    usecs, days, months = _INTERVAL.unpack(data)
    # PostgreSQL 17's infinite intervals set all three fields to their extreme.
    if usecs == _INT64_MAX and days == _INT32_MAX and months == _INT32_MAX:
        return "infinity"
    if usecs == _INT64_MIN and days == _INT32_MIN and months == _INT32_MIN:
        return "-infinity"
    years, months = _truncdiv(months, 12)
    parts = []
    before = False  # the previous part was negative: a positive one then gets a '+'
    for value, unit in ((years, "year"), (months, "mon"), (days, "day")):
        if value:
            plus = "+" if before and value > 0 else ""
            plural = "" if value == 1 else "s"
            parts.append(f"{plus}{value} {unit}{plural}")
            before = value < 0
    if usecs or not parts:
        sign = "-" if usecs < 0 else "+" if before else ""
        parts.append(sign + _hms(abs(usecs)))
    return " ".join(parts)


_SCALARS: Final[dict[str, Decoder]] = {
    "int2": _int2,
    "int4": _int4,
    "int8": _int8,
    "oid": _oid,
    "float4": _float4,
    "float8": _float8,
    "numeric": _numeric,
    "bool": _bool,
    "text": _text,
    "varchar": _text,
    "bpchar": _text,
    "name": _text,
    "char": _char,
    "bytea": _bytea,
    "date": _date,
    "time": _time,
    "timetz": _timetz,
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "interval": _interval,
    "uuid": _uuid,
    "json": _text,
    "jsonb": _jsonb,
    "enum": _text,
    "xml": _text,
    "citext": _text,
    "tsvector": _tsvector,
    "macaddr": _macaddr,
    "macaddr8": _macaddr,
    "bit": _bits,
    "varbit": _bits,
}


# --- arrays ----------------------------------------------------------------------------------


def _json_float(decode: Decoder) -> Decoder:
    def element(data: bytes | memoryview) -> object:
        value = decode(data)
        if isinstance(value, float) and math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value

    return element


def _json_bytea(data: bytes | memoryview) -> str:
    return "\\x" + data.hex()


def _array_of(element: Decoder) -> Decoder:
    def decode(data: bytes | memoryview) -> str:
        ndim, flags, _element_oid = _ARRAY_HEAD.unpack_from(data)
        # The element oid is not checked: an array of a domain carries the domain's oid.
        if not 0 <= ndim <= _MAX_ARRAY_DIMS:
            raise ValueError(f"array of {ndim} dimensions")
        if flags not in (0, 1):
            raise ValueError(f"array flags {flags} are not 0 or 1")
        if ndim == 0:  # PostgreSQL's empty array, whatever its type
            if len(data) != _ARRAY_HEAD.size:
                raise ValueError(f"{len(data) - _ARRAY_HEAD.size} bytes after an empty array")
            return "[]"
        pos = _ARRAY_HEAD.size + 8 * ndim
        bounds = struct.unpack_from(f">{2 * ndim}i", data, _ARRAY_HEAD.size)
        sizes = bounds[0::2]  # the lower bounds, bounds[1::2], are not kept
        count = math.prod(sizes)
        if min(sizes, default=0) < 0 or count * 4 > len(data) - pos:
            raise ValueError(f"array dimensions {list(sizes)} do not fit in {len(data)} bytes")
        items: list[object] = []
        append = items.append
        unpack_from = _I32.unpack_from
        for _ in range(count):
            (length,) = unpack_from(data, pos)
            pos += 4
            if length < 0:
                if length != -1:
                    raise ValueError(f"array element length {length}")
                append(None)
                continue
            stop = pos + length
            if stop > len(data):
                raise ValueError("array element runs past the end of the field")
            append(element(data[pos:stop]))
            pos = stop
        if pos != len(data):
            raise ValueError(f"{len(data) - pos} bytes after the last array element")
        if count:
            for size in reversed(sizes[1:]):
                items = [items[k : k + size] for k in range(0, len(items), size)]
        return json.dumps(items, separators=(",", ":"))

    return decode


def _array_decoder(kind: str) -> Decoder:
    element = _SCALARS[kind]
    if kind in ("float4", "float8"):
        element = _json_float(element)
    elif kind == "bytea":
        element = _json_bytea
    return _array_of(element)


_ARRAYS: Final[dict[str, Decoder]] = {"_" + kind: _array_decoder(kind) for kind in _SCALARS}


def decoder_for(kind: str) -> Decoder:
    """The function that turns one non-NULL field of ``kind`` into its SQLite value.

    ``kind`` is a scalar kind of the module's table or ``_`` plus one (an array). The
    function takes exactly the field's bytes and raises ``ValueError`` or ``struct.error``
    when they are not a value of that kind. Raises :class:`CopyFormatError` naming ``kind``
    when it is not one of them.
    """
    decoder = _SCALARS.get(kind) or _ARRAYS.get(kind)
    if decoder is None:
        raise CopyFormatError(f"unknown kind {kind!r}")
    return decoder


# --- type names to kinds ---------------------------------------------------------------------

_NAMES: Final[dict[str, str]] = {
    **{kind: kind for kind in _SCALARS},
    "smallint": "int2",
    "smallserial": "int2",
    "serial2": "int2",
    "integer": "int4",
    "int": "int4",
    "serial": "int4",
    "serial4": "int4",
    "bigint": "int8",
    "bigserial": "int8",
    "serial8": "int8",
    "real": "float4",
    "double precision": "float8",
    "float": "float8",
    "decimal": "numeric",
    "boolean": "bool",
    "character varying": "varchar",
    "character": "bpchar",
    '"char"': "char",
    "time without time zone": "time",
    "time with time zone": "timetz",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "bit varying": "varbit",
}
_MODIFIER = re.compile(r"\s*\(([^)]*)\)")
_ARRAY_SUFFIX = re.compile(r"(\s*\[\d*\])+$")


def _scalar_kind(type_name: str) -> str:
    name = " ".join(type_name.strip().lower().split())
    name = name.removeprefix("pg_catalog.")
    modifiers = _MODIFIER.findall(name)
    bare = _MODIFIER.sub("", name)
    if bare == "float" and modifiers and modifiers[0].strip().isdigit():
        return "float4" if int(modifiers[0]) <= 24 else "float8"
    if bare == "char" and modifiers:
        return "bpchar"  # char(n) is SQL's blank-padded character; bare char is "char"
    if bare.startswith("interval"):  # interval, interval(3), interval day to second, ...
        return "interval"
    kind = _NAMES.get(bare)
    if kind is None:
        raise CopyFormatError(f"unknown type {type_name!r} (for an enum type, pass 'enum')")
    return kind


def kind_of(type_name: str, *, element: str | None = None) -> str:
    """The kind for a PostgreSQL type name, for :class:`CopyDecoder` and :func:`decoder_for`.

    ``type_name`` may be a ``pg_type.typname`` (``int4``, ``_text``; here ``char`` is the
    one-byte ``"char"``), what ``format_type`` writes (``integer``, ``character varying(20)``,
    ``timestamp(3) with time zone``, ``"char"``, ``numeric(10,2)[]``) or ``enum``.
    ``element`` names the element type of an array whose name does not say it usefully:
    information_schema's ``ARRAY``, or an array of an enum (``kind_of('_mood',
    element='enum')`` is ``'_enum'``). Raises :class:`CopyFormatError` naming the type when
    it has no kind here, or when ``element`` is given for a type that is not an array.
    """
    name = type_name.strip()
    if element is not None:
        if not (
            name.lower() in ("array", "anyarray")
            or name.startswith("_")
            or _ARRAY_SUFFIX.search(name)
        ):
            raise CopyFormatError(f"element {element!r} given for {type_name!r}, not an array")
        return "_" + _scalar_kind(element)
    suffix = _ARRAY_SUFFIX.search(name)
    if suffix is not None:
        return "_" + _scalar_kind(name[: suffix.start()])
    if name.startswith("_"):
        return "_" + _scalar_kind(name[1:])
    return _scalar_kind(name)


# --- the stream ------------------------------------------------------------------------------

_HEADER, _TUPLES, _DONE = 0, 1, 2


class CopyDecoder:
    """Decodes one binary COPY stream of rows whose columns have the given kinds.

    ``kinds`` has one kind per column (see :func:`kind_of`); ``columns``, if given, their
    names, used in error messages. Raises :class:`CopyFormatError` at byte offset 0 for a
    kind it does not know, and ``ValueError`` when ``columns`` and ``kinds`` differ in
    length. After a :class:`CopyFormatError` from :meth:`feed` or :meth:`finish` every later
    call raises the same error. ``rows`` is the number of rows returned so far.
    """

    def __init__(self, kinds: Sequence[str], columns: Sequence[str] | None = None) -> None:
        self._kinds = tuple(kinds)
        self._columns = None if columns is None else tuple(columns)
        if self._columns is not None and len(self._columns) != len(self._kinds):
            raise ValueError(
                f"{len(self._columns)} column names for {len(self._kinds)} kinds of column"
            )
        decoders = []
        for index, kind in enumerate(self._kinds):
            try:
                decoders.append(decoder_for(kind))
            except CopyFormatError as exc:
                self._fail(exc.reason, 0, column=index)
        self._decoders: tuple[Decoder, ...] = tuple(decoders)
        self.rows = 0
        self._phase = _HEADER
        self._buf = b""  # bytes joined for parsing; _buf[0] is at stream offset _base
        self._base = 0
        self._pos = 0  # the next unparsed byte of _buf
        self._pending: list[bytes] = []  # chunks received since the last join
        self._pending_size = 0
        self._need = 0  # bytes past _pos the parser needs before it can move on
        self._values: list[object] | None = None  # the fields of a row in progress
        self._error: CopyFormatError | None = None

    def feed(self, chunk: Buffer) -> list[tuple[object, ...]]:
        """Takes the next bytes of the stream, cut anywhere; returns the rows they complete.

        Raises :class:`CopyFormatError` as soon as the bytes seen break the format (a bad
        signature or flags, a field count other than the number of kinds, a field that is
        not a value of its kind, any byte after the trailer). Rows completed in a call that
        raises are not returned.
        """
        if self._error is not None:
            raise self._error
        data = chunk if type(chunk) is bytes else memoryview(chunk).cast("B").tobytes()
        if not data:
            return []
        if self._phase == _DONE:
            self._fail("bytes after the trailer", self._base + self._pos)
        if self._need > MAX_DATA_FRAME_BYTES:
            # A length field is a claim: no more than one frame's worth is held for it.
            self._fail(
                f"a row needs {self._need:,} bytes, more than the {MAX_DATA_FRAME_BYTES:,} a"
                " reader takes (pumpkit.core.limits)",
                self._base + self._pos,
                row=self.rows + 1,
            )
        self._pending.append(data)
        self._pending_size += len(data)
        if len(self._buf) - self._pos + self._pending_size < self._need:
            return []
        rest = self._buf[self._pos :]
        joined = b"".join(self._pending)
        self._buf = rest + joined if rest else joined
        self._base += self._pos
        self._pos = 0
        self._pending.clear()
        self._pending_size = 0
        if self._phase == _HEADER and not self._header():
            return []
        return self._tuples()

    def finish(self) -> None:
        """Says the stream has ended; returns only if it ended exactly after the trailer.

        Raises :class:`CopyFormatError` (at the stream's length) when the header was never
        complete or the trailer never came, and re-raises an earlier error.
        """
        if self._error is not None:
            raise self._error
        if self._phase == _DONE:
            return
        end = self._base + len(self._buf) + self._pending_size
        if self._phase == _HEADER:
            self._fail("the stream ended before the end of the header", end)
        if self._values is not None:
            done = len(self._values)
            self._fail(
                f"the stream ended inside the row, after {done} of {len(self._kinds)} fields",
                end,
                row=self.rows + 1,
                column=done,
            )
        self._fail("the stream ended without the trailer", end)

    def _fail(
        self, reason: str, offset: int, *, row: int | None = None, column: int | None = None
    ) -> NoReturn:
        name = None if column is None or self._columns is None else self._columns[column]
        self._error = CopyFormatError(
            reason, offset=offset, row=row, column=column, column_name=name
        )
        raise self._error

    def _header(self) -> bool:
        """Checks and skips the header; False while more bytes are needed."""
        buf = self._buf
        seen = buf[: len(SIGNATURE)]
        if not SIGNATURE.startswith(seen):
            at = next(i for i, (a, b) in enumerate(zip(seen, SIGNATURE, strict=False)) if a != b)
            self._fail("not a binary COPY stream (bad signature)", at)
        if len(buf) < _HEADER_SIZE:
            return False  # _need stays 0: every byte of the signature is checked on arrival
        flags, extension = _FLAGS_EXT.unpack_from(buf, len(SIGNATURE))
        if flags & _FLAG_OIDS:
            self._fail("the stream has OIDs (header flag bit 16), which are not read", 11)
        if flags & _CRITICAL_FLAGS:
            self._fail(f"unknown critical header flags 0x{flags & _CRITICAL_FLAGS:04X}", 11)
        if extension < 0:
            self._fail(f"header extension length {extension}", 15)
        if len(buf) < _HEADER_SIZE + extension:
            self._need = _HEADER_SIZE + extension
            return False
        self._pos = _HEADER_SIZE + extension
        self._need = 0
        self._phase = _TUPLES
        return True

    def _tuples(self) -> list[tuple[object, ...]]:
        """Decodes every tuple _buf completes from _pos, keeping a row in progress."""
        buf = self._buf
        end = len(buf)
        pos = self._pos
        decoders = self._decoders
        ncols = len(decoders)
        unpack_i16 = _I16.unpack_from
        unpack_i32 = _I32.unpack_from
        out: list[tuple[object, ...]] = []
        values = self._values
        need = 0
        while True:
            if values is None:
                if end - pos < 2:
                    need = 2
                    break
                (count,) = unpack_i16(buf, pos)
                if count != ncols:
                    if count == -1:
                        pos += 2
                        self._phase = _DONE
                        if pos != end:
                            self._fail("bytes after the trailer", self._base + pos)
                        break
                    self._fail(
                        f"the tuple has {count} fields, not the {ncols} expected",
                        self._base + pos,
                        row=self.rows + len(out) + 1,
                    )
                pos += 2
                values = []
            index = len(values)
            while index < ncols:
                if end - pos < 4:
                    need = 4
                    break
                (length,) = unpack_i32(buf, pos)
                if length < 0:
                    if length != -1:
                        self._fail(
                            f"field length {length}",
                            self._base + pos,
                            row=self.rows + len(out) + 1,
                            column=index,
                        )
                    values.append(None)
                    pos += 4
                else:
                    start = pos + 4
                    stop = start + length
                    if stop > end:
                        need = 4 + length
                        break
                    try:
                        values.append(decoders[index](buf[start:stop]))
                    except (ValueError, struct.error) as exc:
                        self._fail(
                            f"not a {self._kinds[index]} value: {exc}",
                            self._base + pos,
                            row=self.rows + len(out) + 1,
                            column=index,
                        )
                    pos = stop
                index += 1
            if index < ncols:
                break  # the row's next field is not all here yet
            out.append(tuple(values))
            values = None
        self._values = values
        self._pos = pos
        self._need = need
        self.rows += len(out)
        return out
