"""The dump file header: layout, magic, checksum and version gate.

Theory of operation: every file of a dump-file set opens with one fixed-size header
(``HEADER_SIZE`` bytes). A fixed binary prefix holds what a reader needs before it can trust
anything else (magic, version, sizes, flags, the file's place in its set, where the index and
the control table are); a msgpack map (the *body*) holds the descriptive facts, so a later
minor version can add facts without moving anything. The last four bytes are a CRC-32 of all
bytes before them, padding included, so any change to a header is detected. The writer
rewrites the header in place when it closes the file (and at checkpoints), which is why its
size never changes. ``formats/dumpfile.md`` is the normative description; this module is
its one implementation. Pure: bytes in, values out; no files.
"""

from __future__ import annotations

import struct
import uuid
from enum import IntFlag

import msgspec

from pumpkit.core.buffers import Buffer
from pumpkit.core.checksum import crc32
from pumpkit.core.msgpackscan import container, skip, str_at
from pumpkit.errors import (
    CorruptDumpError,
    NotADumpFileError,
    UnsafeFileNameError,
    UnsupportedFeatureError,
    UnsupportedVersionError,
)

__all__ = (
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_CREATED_US",
    "MAX_HEADER_SIZE",
    "MIN_CREATED_US",
    "FileHeader",
    "HeaderBody",
    "HeaderFlags",
    "decode_header",
    "encode_header",
    "file_name_fault",
    "is_dump_magic",
    "set_files_offset",
)

#: ``\x89 P K D \r \n \x1a \n``: the high first byte catches 7-bit channels, ``PKD`` names
#: the format, CR LF catches line-ending conversion, ^Z stops DOS ``type``, LF catches the
#: reverse conversion (the PNG trick).
MAGIC = b"\x89PKD\r\n\x1a\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 3
HEADER_SIZE = 4096

# The fixed prefix, little-endian; offsets are the spec's.
_PREFIX = struct.Struct("<8sHHIII16sqQQQII")
PREFIX_SIZE = _PREFIX.size  # 80
_CRC = struct.Struct("<I")
_MIN_HEADER_SIZE = 512
#: The creation time's range, in microseconds from 1970: years 1 to 9999, as ISO 8601 has.
MIN_CREATED_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_CREATED_US = 253_402_300_800_000_000  # 10000-01-01T00:00:00Z
#: The largest header a file may have (its size, offset 12, is checked against it).
MAX_HEADER_SIZE = 65536

OFFSET_VERSION = 8
OFFSET_HEADER_SIZE = 12
OFFSET_FLAGS = 16
OFFSET_FILE_NUMBER = 20
OFFSET_GUID = 24
OFFSET_CREATED = 40
OFFSET_DATA_END = 48
OFFSET_INDEX = 56
OFFSET_CONTROL = 64
OFFSET_BODY_LENGTH = 72
OFFSET_RESERVED = 76
OFFSET_BODY = PREFIX_SIZE


class HeaderFlags(IntFlag):
    """Header flag bits. Bits 2-15 are reserved must-understand, bits 16-31 reserved ignorable."""

    CLEAN_CLOSE = 1 << 0
    CONTROL_TABLE = 1 << 1
    ENCRYPTED = 1 << 2  # format 1.1: frames may be encrypted; a 1.0 reader refuses the file


_KNOWN_FLAGS = int(HeaderFlags.CLEAN_CLOSE | HeaderFlags.CONTROL_TABLE | HeaderFlags.ENCRYPTED)
_MUST_UNDERSTAND = 0x0000FFFF & ~_KNOWN_FLAGS
_IGNORABLE = 0xFFFF0000


class HeaderBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """The descriptive facts of a file, stored as a msgpack map (unknown keys are ignored)."""

    job_name: str = ""
    operation: str = ""
    job_mode: str = ""
    producer: str = "pumpkit"
    producer_version: str = ""
    platform: str = ""
    source_engine: str = ""
    source_version: str = ""
    charset: str = "UTF-8"
    compression: str = "none"
    compression_level: int = 0
    metadata_compressed: bool = False
    data_compressed: bool = False
    encryption: str = "none"
    set_file_count: int = 0
    set_files: tuple[str, ...] = ()
    # Format 1.1: password encryption (section 3.4 of formats/dumpfile.md).
    encryption_scope: str = ""
    kdf: str = ""
    kdf_salt: bytes = b""
    kdf_n: int = 0
    kdf_r: int = 0
    kdf_p: int = 0
    key_check: bytes = b""
    # Format 1.3: a signed set (section 3.8). ``signature`` MUST stay the last key: a verifier
    # finds its 64 bytes at the end of the body.
    signature_algorithm: str = ""
    signature: bytes = b""


class FileHeader(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded header: the fixed prefix's fields and the body."""

    major: int = FORMAT_MAJOR
    minor: int = FORMAT_MINOR
    header_size: int = HEADER_SIZE
    flags: int = 0
    file_number: int = 1
    guid: bytes = b"\x00" * 16
    created_us: int = 0
    data_end: int = 0
    index_position: int = 0
    control_position: int = 0
    body: HeaderBody = HeaderBody()

    @property
    def clean_close(self) -> bool:
        return bool(self.flags & HeaderFlags.CLEAN_CLOSE)

    @property
    def holds_control_table(self) -> bool:
        return bool(self.flags & HeaderFlags.CONTROL_TABLE)

    @property
    def guid_hex(self) -> str:
        return str(uuid.UUID(bytes=self.guid))


_body_encoder = msgspec.msgpack.Encoder()
_body_decoder = msgspec.msgpack.Decoder(HeaderBody)


def is_dump_magic(data: Buffer) -> bool:
    """True when ``data`` starts with the pumpkit magic."""
    return bytes(memoryview(data)[: len(MAGIC)]) == MAGIC


def encode_header(header: FileHeader) -> bytes:
    """The ``header.header_size`` bytes of ``header``, checksum included.

    Raises ``ValueError`` when the body does not fit or a field is out of range: that is a
    writer's bug, never a reader's concern.
    """
    body = _body_encoder.encode(header.body)
    size = header.header_size
    if len(body) > size - PREFIX_SIZE - _CRC.size:
        raise ValueError(f"header body of {len(body)} bytes does not fit a {size}-byte header")
    if len(header.guid) != 16:
        raise ValueError("a job GUID is 16 bytes")
    if header.flags & ~_KNOWN_FLAGS:
        raise ValueError(f"unknown header flags {header.flags:#x}")
    if not MIN_CREATED_US <= header.created_us < MAX_CREATED_US:
        raise ValueError(f"creation time {header.created_us} us is outside years 1-9999")
    buf = bytearray(size)
    _PREFIX.pack_into(
        buf,
        0,
        MAGIC,
        header.major,
        header.minor,
        size,
        header.flags,
        header.file_number,
        header.guid,
        header.created_us,
        header.data_end,
        header.index_position,
        header.control_position,
        len(body),
        0,
    )
    buf[PREFIX_SIZE : PREFIX_SIZE + len(body)] = body
    _CRC.pack_into(buf, size - _CRC.size, crc32(memoryview(buf)[: size - _CRC.size]))
    return bytes(buf)


def decode_header(data: Buffer) -> FileHeader:
    """Decode and check the header at the start of ``data`` (bytes, bytearray, memoryview).

    ``data`` may be longer than the header. Offsets in errors are from the start of ``data``.

    Raises:
        NotADumpFileError: ``data`` does not start with the magic (empty included).
        UnsupportedVersionError: a newer major version (offset 8).
        UnsupportedFeatureError: a must-understand flag bit this reader does not know.
        CorruptDumpError: truncation, a bad checksum, a bad field; the offset names it.
    """
    view = memoryview(data).cast("B")
    n = len(view)
    if n == 0:
        raise NotADumpFileError("empty file: no pumpkit magic", offset=0)
    head = bytes(view[: len(MAGIC)])
    if head != MAGIC[: len(head)]:
        raise NotADumpFileError("not a pumpkit dump file (no pumpkit magic)", offset=0)
    if n < PREFIX_SIZE:
        raise CorruptDumpError(
            f"file ends at offset {n}, inside the {HEADER_SIZE}-byte header", offset=n
        )
    (
        _magic,
        major,
        minor,
        size,
        flags,
        file_number,
        guid,
        created_us,
        data_end,
        index_position,
        control_position,
        body_length,
        reserved,
    ) = _PREFIX.unpack_from(view, 0)
    if major > FORMAT_MAJOR:
        raise UnsupportedVersionError(
            f"format version {major}.{minor} is newer than this reader's "
            f"{FORMAT_MAJOR}.{FORMAT_MINOR}; a newer pumpkit is needed",
            offset=OFFSET_VERSION,
        )
    if major == 0:
        raise CorruptDumpError("format major version 0 does not exist", offset=OFFSET_VERSION)
    if not (_MIN_HEADER_SIZE <= size <= MAX_HEADER_SIZE) or size % _MIN_HEADER_SIZE:
        raise CorruptDumpError(
            f"header size {size} is not a multiple of 512 between 512 and 65536",
            offset=OFFSET_HEADER_SIZE,
        )
    if n < size:
        raise CorruptDumpError(f"file ends at offset {n}, inside the {size}-byte header", offset=n)
    stored_crc = _CRC.unpack_from(view, size - _CRC.size)[0]
    actual_crc = crc32(view[: size - _CRC.size])
    if stored_crc != actual_crc:
        raise CorruptDumpError(
            f"header checksum mismatch (stored {stored_crc:#010x}, computed {actual_crc:#010x}):"
            f" the {size}-byte header is damaged",
            offset=size - _CRC.size,
        )
    if flags & _MUST_UNDERSTAND:
        raise UnsupportedFeatureError(
            f"header flags {flags & _MUST_UNDERSTAND:#x} are must-understand bits this reader"
            " does not know",
            offset=OFFSET_FLAGS,
        )
    if flags & _IGNORABLE and minor <= FORMAT_MINOR:
        raise CorruptDumpError(
            f"reserved header flags {flags & _IGNORABLE:#x} are set", offset=OFFSET_FLAGS
        )
    if not MIN_CREATED_US <= created_us < MAX_CREATED_US:
        raise CorruptDumpError(
            f"creation time {created_us} us is outside years 1-9999", offset=OFFSET_CREATED
        )
    if file_number == 0:
        raise CorruptDumpError("file number 0 (numbers start at 1)", offset=OFFSET_FILE_NUMBER)
    for value, offset, name in (
        (data_end, OFFSET_DATA_END, "data end"),
        (index_position, OFFSET_INDEX, "index position"),
        (control_position, OFFSET_CONTROL, "control table position"),
    ):
        if value and value < size:
            raise CorruptDumpError(f"{name} {value} lies inside the header", offset=offset)
    if index_position and data_end and index_position >= data_end:
        raise CorruptDumpError(
            f"index position {index_position} is not before data end {data_end}",
            offset=OFFSET_INDEX,
        )
    if bool(control_position) != bool(flags & HeaderFlags.CONTROL_TABLE):
        raise CorruptDumpError(
            "control-table flag and control-table position disagree", offset=OFFSET_CONTROL
        )
    if reserved:
        raise CorruptDumpError("reserved field is not zero", offset=OFFSET_RESERVED)
    if body_length > size - PREFIX_SIZE - _CRC.size:
        raise CorruptDumpError(
            f"header body length {body_length} does not fit the header",
            offset=OFFSET_BODY_LENGTH,
        )
    padding = view[PREFIX_SIZE + body_length : size - _CRC.size]
    if any(padding):
        first = next(i for i, b in enumerate(padding) if b)
        raise CorruptDumpError(
            "header padding is not zero", offset=PREFIX_SIZE + body_length + first
        )
    try:
        body = _body_decoder.decode(view[PREFIX_SIZE : PREFIX_SIZE + body_length])
    except msgspec.DecodeError as exc:
        raise CorruptDumpError(f"header body is not valid: {exc}", offset=OFFSET_BODY) from None
    if bool(flags & HeaderFlags.ENCRYPTED) != (body.encryption != "none"):
        raise CorruptDumpError(
            f"the ENCRYPTED flag and the body's encryption {body.encryption!r} disagree",
            offset=OFFSET_FLAGS,
        )

    for i, name in enumerate(body.set_files):
        fault = file_name_fault(name)
        if fault is not None:
            raise UnsafeFileNameError(
                f"set_files[{i}] {name!r} {fault}: a set names its files only inside its own"
                " directory",
                offset=OFFSET_BODY
                + set_files_offset(view[PREFIX_SIZE : PREFIX_SIZE + body_length], i),
            )
    return FileHeader(
        major=major,
        minor=minor,
        header_size=size,
        flags=flags,
        file_number=file_number,
        guid=bytes(guid),
        created_us=created_us,
        data_end=data_end,
        index_position=index_position,
        control_position=control_position,
        body=body,
    )


#: The longest file name most file systems hold (NAME_MAX), in UTF-8 bytes.
MAX_FILE_NAME_BYTES = 255


def file_name_fault(name: str) -> str | None:
    """Why ``name`` is not a plain file name (one that can only name a file in the directory it
    is resolved in), or ``None`` when it is one. A dump names its own files (``set_files``,
    the control table's FILE rows) only by such names: a directory part, an absolute path,
    ``.``/``..``, a NUL, an empty name or a control character is refused."""
    if not name:
        return "is empty"
    if "\x00" in name:
        return "holds a NUL"
    if "/" in name or "\\" in name:
        return "holds a directory separator"
    if name in (".", ".."):
        return "names a directory"
    if not name.isprintable():
        return "holds a control character"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME_BYTES:
        return f"is longer than {MAX_FILE_NAME_BYTES} bytes"
    return None


def set_files_offset(body: Buffer, index: int) -> int:
    """The offset, in the msgpack header body ``body``, of string ``index`` of its
    ``set_files`` array (of the array itself when it has no such element; 0 when the body
    has no ``set_files``). For error messages: it walks the encoded map, skipping values."""
    view = memoryview(body).cast("B")
    try:
        top = container(view, 0)
        if top is None:
            return 0
        pos, entries = top
        for _ in range(entries // 2):
            key = str_at(view, pos)
            pos = skip(view, pos)
            if key != "set_files":
                pos = skip(view, pos)
                continue
            array = container(view, pos)
            if array is None or index >= array[1]:
                return pos
            pos = array[0]
            for _ in range(index):
                pos = skip(view, pos)
            return pos
    except (IndexError, ValueError):
        pass
    return 0
