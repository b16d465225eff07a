"""Frames: the records of a dump file, and their codec.

Theory of operation: after the file header, a dump file is a sequence of frames with no gaps.
A frame is a 32-byte frame header and a payload. The header carries the frame's kind, flags,
payload encoding, the object it belongs to, an item count (rows, for table data), the stored
and uncompressed payload lengths, a CRC-32 of the stored payload, and a CRC-32 of itself.
Because the header checks itself before its lengths are trusted, a reader never allocates or
waits for a payload whose length is damage, and a reader that lost its place can find the next
sound frame by looking for the frame magic and a header whose checksum holds.

A record's location ``(fileid, position, length)`` is: the file number in its set, the byte
offset of the first byte of the frame header from the start of that file, and 32 plus the
stored payload length. Everything here works on bytes, bytearray and memoryview; nothing
opens a file. ``formats/dumpfile.md`` is the normative description.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag
from typing import Final

import msgspec
import zstandard

from pumpkit.core.buffers import Buffer
from pumpkit.core.checksum import crc32
from pumpkit.core.crypto import OVERHEAD, FrameCipher
from pumpkit.errors import CorruptDumpError, DumpError, EncryptedError, UnsupportedFeatureError

__all__ = (
    "FRAME_HEADER_SIZE",
    "FRAME_MAGIC",
    "GRANULE_TAG_SIZE",
    "MAX_PAYLOAD",
    "NEED_DATA",
    "Encoding",
    "Frame",
    "FrameDecoder",
    "FrameFlags",
    "FrameHeader",
    "FrameKind",
    "GranuleTag",
    "IndexEntry",
    "Location",
    "NeedData",
    "build_frame",
    "check_encoding",
    "check_payload",
    "decode_frame",
    "decode_index",
    "encode_frame_header",
    "encode_index",
    "frame_aad",
    "granule_tag",
    "iter_frames",
    "parse_frame_header",
    "payload_bytes",
)

FRAME_MAGIC: Final = b"PKFR"
FRAME_HEADER_SIZE: Final = 32
#: The largest stored or uncompressed payload a v1 frame may have (256 MiB). A length field
#: above it is damage and is refused before anything is allocated.
MAX_PAYLOAD: Final = 1 << 28

_HEADER = struct.Struct("<4sBBBBIIIIII")
_HEADER_CRC_SPAN = FRAME_HEADER_SIZE - 4


class FrameKind(IntEnum):
    """What a frame holds. Kinds 7-127 may be added by a minor version (readers skip them)."""

    METADATA = 1
    TABLE_DATA = 2
    CONTROL_TABLE = 3
    LOG = 4
    INDEX = 5
    END = 6


_MAX_SKIPPABLE_KIND = 127


class FrameFlags(IntFlag):
    """Frame flag bits. Bit 1 is reserved must-understand, bits 4-7 reserved ignorable.
    ENCRYPTED (format 1.1) and TAGGED (1.3) are must-understand: an older reader refuses such
    a frame rather than misread it."""

    COMPRESSED = 1 << 0
    ENCRYPTED = 1 << 2
    #: Since 1.3: the stored payload opens with a granule tag (``GranuleTag``), in clear.
    TAGGED = 1 << 3


_KNOWN_FRAME_FLAGS = int(FrameFlags.COMPRESSED | FrameFlags.TAGGED | FrameFlags.ENCRYPTED)
_FRAME_MUST_UNDERSTAND = 0x0F & ~_KNOWN_FRAME_FLAGS
_FRAME_IGNORABLE = 0xF0


class Encoding(IntEnum):
    """How the uncompressed payload is encoded. Others may be added by a minor version."""

    RAW = 0
    MSGPACK = 1
    #: Since 1.2: a piece of a PostgreSQL binary COPY stream (formats/dumpfile.md §5.8).
    PGCOPY = 2
    #: Since 1.3: a PostgreSQL custom-format archive of the source's schema (pg_dump's), in a
    #: METADATA frame (formats/dumpfile.md).
    PG_ARCHIVE = 3


#: The granule tag of a TAGGED frame (format 1.3): granule number, the frame's sequence number
#: in its granule, tag flags, three zero bytes.
GRANULE_TAG_SIZE: Final = 12
_TAG = struct.Struct("<IIB3s")
_TAG_FIRST = 0x01
_TAG_LAST = 0x02


@dataclass(frozen=True, slots=True)
class GranuleTag:
    """Which granule of its table a TABLE_DATA frame belongs to, where in it, and whether it
    opens (``first``: sequence 0) or closes (``last``) the granule (formats/dumpfile.md §5.9).
    For PGCOPY, ``first`` is the frame that holds the COPY signature, ``last`` the trailer."""

    granule: int
    sequence: int
    first: bool
    last: bool

    def encode(self) -> bytes:
        flags = (_TAG_FIRST if self.first else 0) | (_TAG_LAST if self.last else 0)
        return _TAG.pack(self.granule, self.sequence, flags, b"\0\0\0")


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """A checked frame header. ``offset`` is where the frame starts in its file or stream."""

    kind: int
    flags: int
    encoding: int
    object_id: int
    count: int
    payload_length: int
    uncompressed_length: int
    payload_crc: int
    offset: int

    @property
    def length(self) -> int:
        """The frame's whole length: header plus stored payload."""
        return FRAME_HEADER_SIZE + self.payload_length

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FrameFlags.COMPRESSED)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & FrameFlags.ENCRYPTED)

    @property
    def tagged(self) -> bool:
        return bool(self.flags & FrameFlags.TAGGED)

    @property
    def tag_length(self) -> int:
        """Bytes of granule tag at the start of the stored payload (0 or 12)."""
        return GRANULE_TAG_SIZE if self.flags & FrameFlags.TAGGED else 0

    @property
    def known_kind(self) -> bool:
        return self.kind in FrameKind._value2member_map_


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose header and payload checksums hold. ``payload`` is the stored bytes."""

    header: FrameHeader
    payload: bytes | memoryview


class NeedData:
    """The incremental decoder's answer when it needs more bytes (compare ``is NEED_DATA``)."""

    _instance: NeedData | None = None

    def __new__(cls) -> NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


class IndexEntry(msgspec.Struct, frozen=True, array_like=True):
    """One frame as the INDEX frame lists it."""

    kind: int
    object_id: int
    count: int
    position: int
    length: int
    uncompressed_length: int


class Location(msgspec.Struct, frozen=True, array_like=True):
    """Where a frame lies in its set: file number, byte offset of its header, whole length."""

    fileid: int
    position: int
    length: int


# --- encoding -------------------------------------------------------------------------------


def encode_frame_header(
    kind: int,
    *,
    flags: int,
    encoding: int,
    object_id: int,
    count: int,
    payload_length: int,
    uncompressed_length: int,
    payload_crc: int,
) -> bytes:
    """The 32 bytes of a frame header, its own checksum included."""
    if payload_length > MAX_PAYLOAD or uncompressed_length > MAX_PAYLOAD:
        raise ValueError(
            f"a frame payload is at most {MAX_PAYLOAD} bytes (got {payload_length} stored, "
            f"{uncompressed_length} uncompressed)"
        )
    buf = bytearray(FRAME_HEADER_SIZE)
    _HEADER.pack_into(
        buf,
        0,
        FRAME_MAGIC,
        kind,
        flags,
        encoding,
        0,
        object_id,
        count,
        payload_length,
        uncompressed_length,
        payload_crc,
        0,
    )
    struct.pack_into("<I", buf, _HEADER_CRC_SPAN, crc32(memoryview(buf)[:_HEADER_CRC_SPAN]))
    return bytes(buf)


def build_frame(
    kind: int,
    data: Buffer,
    *,
    object_id: int = 0,
    count: int = 0,
    encoding: int = Encoding.MSGPACK,
    compressor: zstandard.ZstdCompressor | None = None,
    cipher: FrameCipher | None = None,
    tag: GranuleTag | None = None,
) -> tuple[bytes, Buffer]:
    """Frame ``data``: returns ``(header, stored_payload)``, to be written one after the other.

    With a ``compressor`` the payload is one zstd frame (content size included). The payload is
    returned as given when not compressed, so the caller can pass both parts to ``writev``
    without joining them. With a ``cipher`` the (compressed) payload is then encrypted. With
    a ``tag`` (TABLE_DATA only, format 1.3) the stored payload opens with the granule tag, in
    clear, and the tag is part of an encrypted frame's associated data.
    """
    raw = memoryview(data).cast("B")
    flags = 0
    stored: Buffer = data
    tag_bytes = b""
    if tag is not None:
        if kind != FrameKind.TABLE_DATA:
            raise ValueError("only a TABLE_DATA frame carries a granule tag")
        flags |= FrameFlags.TAGGED
        tag_bytes = tag.encode()
    if compressor is not None:
        stored = compressor.compress(raw)
        flags |= FrameFlags.COMPRESSED
    if cipher is not None:
        flags |= FrameFlags.ENCRYPTED
        aad = frame_aad(kind, flags, encoding, object_id, count, raw.nbytes, tag_bytes)
        stored = cipher.encrypt(aad, stored)
    if tag_bytes:
        stored = tag_bytes + bytes(stored)
    stored_len = memoryview(stored).nbytes
    header = encode_frame_header(
        kind,
        flags=flags,
        encoding=encoding,
        object_id=object_id,
        count=count,
        payload_length=stored_len,
        uncompressed_length=raw.nbytes,
        payload_crc=crc32(stored),
    )
    return header, stored


def frame_aad(
    kind: int,
    flags: int,
    encoding: int,
    object_id: int,
    count: int,
    uncompressed_length: int,
    tag: Buffer = b"",
) -> bytes:
    """The associated data of an encrypted frame: the header's fields that do not depend on
    the ciphertext (magic, kind, flags, encoding, reserved, object id, count, uncompressed
    length), packed as in the header, then (1.3) the granule tag's 12 bytes when there is
    one."""
    head = _AAD.pack(FRAME_MAGIC, kind, flags, encoding, 0, object_id, count, uncompressed_length)
    return head + bytes(tag)


_AAD = struct.Struct("<4sBBBBIII")

#: The encodings each known kind may have (formats/dumpfile.md §5.5); kinds 7-127 any.
_ENCODINGS_OF_KIND: Final[dict[int, tuple[int, ...]]] = {
    FrameKind.METADATA: (Encoding.MSGPACK, Encoding.PG_ARCHIVE),
    FrameKind.TABLE_DATA: (Encoding.MSGPACK, Encoding.PGCOPY),
    FrameKind.CONTROL_TABLE: (Encoding.MSGPACK,),
    FrameKind.LOG: (Encoding.RAW,),
    FrameKind.INDEX: (Encoding.MSGPACK,),
    FrameKind.END: (Encoding.RAW,),
}


# --- decoding -------------------------------------------------------------------------------


def parse_frame_header(data: Buffer, offset: int = 0) -> FrameHeader:
    """Check and decode the frame header at ``offset`` of ``data``.

    Raises ``CorruptDumpError`` (bad magic, checksum, kind, length, reserved field, or fewer
    than 32 bytes) or ``UnsupportedFeatureError`` (a must-understand flag this reader lacks),
    with ``offset`` set to the frame's start or the field at fault.
    """
    view = memoryview(data).cast("B")
    if len(view) - offset < FRAME_HEADER_SIZE:
        raise CorruptDumpError(
            f"frame header cut short: {max(len(view) - offset, 0)} of 32 bytes", offset=offset
        )
    (
        magic,
        kind,
        flags,
        encoding,
        reserved,
        object_id,
        count,
        payload_length,
        uncompressed_length,
        payload_crc,
        header_crc,
    ) = _HEADER.unpack_from(view, offset)
    if magic != FRAME_MAGIC:
        raise CorruptDumpError("no frame magic where a frame should start", offset=offset)
    actual = crc32(view[offset : offset + _HEADER_CRC_SPAN])
    if actual != header_crc:
        raise CorruptDumpError(
            f"frame header checksum mismatch (stored {header_crc:#010x}, computed {actual:#010x})",
            offset=offset,
        )
    if kind == 0 or kind > _MAX_SKIPPABLE_KIND:
        raise CorruptDumpError(f"frame kind {kind} is not allowed", offset=offset + 4)
    if flags & _FRAME_MUST_UNDERSTAND:
        raise UnsupportedFeatureError(
            f"frame flags {flags & _FRAME_MUST_UNDERSTAND:#x} are must-understand bits this"
            " reader does not know",
            offset=offset + 5,
        )
    if reserved:
        raise CorruptDumpError("frame reserved byte is not zero", offset=offset + 7)
    if payload_length > MAX_PAYLOAD:
        raise CorruptDumpError(
            f"frame payload length {payload_length} exceeds the {MAX_PAYLOAD}-byte limit",
            offset=offset + 16,
        )
    if uncompressed_length > MAX_PAYLOAD:
        raise CorruptDumpError(
            f"frame uncompressed length {uncompressed_length} exceeds the {MAX_PAYLOAD}-byte limit",
            offset=offset + 20,
        )
    if flags & FrameFlags.TAGGED and kind != FrameKind.TABLE_DATA:
        raise CorruptDumpError(
            f"a frame of kind {kind} has the TAGGED flag (only TABLE_DATA carries a granule tag)",
            offset=offset + 5,
        )
    tag_length = GRANULE_TAG_SIZE if flags & FrameFlags.TAGGED else 0
    if flags & FrameFlags.TAGGED and payload_length < GRANULE_TAG_SIZE:
        raise CorruptDumpError(
            f"tagged frame payload of {payload_length} bytes cannot hold its granule tag",
            offset=offset + 16,
        )
    if flags & FrameFlags.ENCRYPTED and payload_length - tag_length < OVERHEAD:
        raise CorruptDumpError(
            f"encrypted frame payload of {payload_length} bytes cannot hold nonce and tag",
            offset=offset + 16,
        )
    plain = payload_length - tag_length - (OVERHEAD if flags & FrameFlags.ENCRYPTED else 0)
    if not flags & FrameFlags.COMPRESSED and uncompressed_length != plain:
        raise CorruptDumpError("uncompressed frame whose two lengths differ", offset=offset + 20)
    return FrameHeader(
        kind=kind,
        flags=flags,
        encoding=encoding,
        object_id=object_id,
        count=count,
        payload_length=payload_length,
        uncompressed_length=uncompressed_length,
        payload_crc=payload_crc,
        offset=offset,
    )


def check_payload(header: FrameHeader, payload: Buffer) -> None:
    """Raise ``CorruptDumpError`` unless ``payload`` is the header's payload, checksum and all."""
    view = memoryview(payload)
    if view.nbytes != header.payload_length:
        raise CorruptDumpError(
            f"frame payload cut short: {view.nbytes} of {header.payload_length} bytes",
            offset=header.offset + FRAME_HEADER_SIZE + view.nbytes,
        )
    actual = crc32(view)
    if actual != header.payload_crc:
        raise CorruptDumpError(
            f"frame payload checksum mismatch (stored {header.payload_crc:#010x}, computed"
            f" {actual:#010x})",
            offset=header.offset + FRAME_HEADER_SIZE,
        )
    if header.tagged:
        _check_tag(header, view)


def _check_tag(header: FrameHeader, payload: memoryview) -> GranuleTag:
    granule, sequence, flags, reserved = _TAG.unpack_from(payload, 0)
    at = header.offset + FRAME_HEADER_SIZE
    if granule == 0:
        raise CorruptDumpError("granule tag names granule 0 (granules start at 1)", offset=at)
    if bool(flags & _TAG_FIRST) != (sequence == 0):
        raise CorruptDumpError(
            f"granule tag: sequence {sequence} with FIRST {'set' if flags & _TAG_FIRST else 'clear'}"
            " (FIRST is set exactly on sequence 0)",
            offset=at + 4,
        )
    if flags & ~(_TAG_FIRST | _TAG_LAST):
        raise CorruptDumpError(f"granule tag flags {flags:#x} are not defined", offset=at + 8)
    if any(reserved):
        raise CorruptDumpError("granule tag reserved bytes are not zero", offset=at + 9)
    return GranuleTag(granule, sequence, bool(flags & _TAG_FIRST), bool(flags & _TAG_LAST))


def granule_tag(frame: Frame) -> GranuleTag | None:
    """The granule tag of a checked TABLE_DATA frame (format 1.3), or ``None`` when the frame
    has none (format 1.2 and older). Raises ``CorruptDumpError`` for a malformed tag."""
    if not frame.header.tagged:
        return None
    return _check_tag(frame.header, memoryview(frame.payload).cast("B"))


def decode_frame(data: Buffer, offset: int = 0) -> Frame:
    """The checked frame at ``offset`` of ``data``; the payload is a memoryview into ``data``."""
    view = memoryview(data).cast("B")
    header = parse_frame_header(view, offset)
    start = offset + FRAME_HEADER_SIZE
    payload = view[start : start + header.payload_length]
    check_payload(header, payload)
    return Frame(header, payload)


def iter_frames(data: Buffer, offset: int = 0) -> Iterator[Frame]:
    """Every frame of ``data`` from ``offset`` to its end; raises at the first fault."""
    view = memoryview(data).cast("B")
    while offset < len(view):
        frame = decode_frame(view, offset)
        yield frame
        offset += frame.header.length


def check_encoding(header: FrameHeader) -> None:
    """Raise ``CorruptDumpError`` (offset ``P + 6``) when a known kind has a known encoding the
    format does not allow it (formats/dumpfile.md §5.5): a reader calls it before it uses a
    payload. An unknown encoding is ``payload_bytes``'s ``UnsupportedFeatureError``."""
    allowed = _ENCODINGS_OF_KIND.get(header.kind)
    known = header.encoding in Encoding._value2member_map_
    if allowed is not None and known and header.encoding not in allowed:
        raise CorruptDumpError(
            f"a {FrameKind(header.kind).name} frame cannot have encoding"
            f" {Encoding(header.encoding).name}",
            offset=header.offset + 6,
        )


def payload_bytes(
    frame: Frame,
    decompressor: zstandard.ZstdDecompressor | None = None,
    cipher: FrameCipher | None = None,
) -> Buffer:
    """The frame's uncompressed (and decrypted) payload.

    Raises ``CorruptDumpError`` when the zstd frame is damaged or does not hold exactly the
    uncompressed length the header declares (checked before any output is allocated), or an
    encrypted payload fails its tag; ``EncryptedError`` for an encrypted frame without a
    ``cipher``.
    """
    header = frame.header
    if header.encoding not in Encoding._value2member_map_:
        raise UnsupportedFeatureError(
            f"payload encoding {header.encoding} is unknown to this reader",
            offset=header.offset + 6,
        )
    stored: bytes | memoryview = memoryview(frame.payload)
    tag = stored[: header.tag_length]
    stored = stored[header.tag_length :]
    where = header.offset + FRAME_HEADER_SIZE + header.tag_length
    if header.encrypted:
        if cipher is None:
            raise EncryptedError(
                "the frame is encrypted: give the ENCRYPTION_PASSWORD", offset=header.offset
            )
        aad = frame_aad(
            header.kind,
            header.flags,
            header.encoding,
            header.object_id,
            header.count,
            header.uncompressed_length,
            tag,
        )
        stored = cipher.decrypt(aad, stored, offset=where)
        if not header.compressed and len(stored) != header.uncompressed_length:
            raise CorruptDumpError(
                f"decrypted payload holds {len(stored)} bytes, frame header says"
                f" {header.uncompressed_length}",
                offset=where,
            )
    if not header.compressed:
        return stored
    try:
        declared = zstandard.frame_content_size(stored)
    except zstandard.ZstdError as exc:
        raise CorruptDumpError(f"payload is not a zstd frame: {exc}", offset=where) from None
    if declared != header.uncompressed_length:
        raise CorruptDumpError(
            f"zstd frame declares {declared} bytes, frame header {header.uncompressed_length}",
            offset=where,
        )
    try:
        out = (decompressor or zstandard.ZstdDecompressor()).decompress(
            stored, max_output_size=header.uncompressed_length
        )
    except zstandard.ZstdError as exc:
        raise CorruptDumpError(f"zstd payload is damaged: {exc}", offset=where) from None
    if len(out) != header.uncompressed_length:
        raise CorruptDumpError(
            f"zstd payload holds {len(out)} bytes, frame header says {header.uncompressed_length}",
            offset=where,
        )
    return out


class FrameDecoder:
    """Incremental frame decoder for streams: feed bytes, take frames or ``NEED_DATA``.

    ``offset`` is the stream offset of the first byte fed, so errors name file offsets.
    Memory stays bounded: the buffer never holds more than one frame (at most
    ``MAX_PAYLOAD`` plus 32 bytes) beyond what was fed in one call, and a frame's lengths are
    checked before it waits for its payload. After a ``CorruptDumpError`` the decoder is
    unusable (make a new one at a known frame start).
    """

    def __init__(self, offset: int = 0) -> None:
        self._buffer = bytearray()
        self._start = 0  # index into _buffer of the next unread byte
        self._offset = offset  # stream offset of _buffer[_start]
        self._header: FrameHeader | None = None

    @property
    def offset(self) -> int:
        """The stream offset of the next frame (or of the partial one held)."""
        return self._offset

    @property
    def buffered(self) -> int:
        """Bytes held that are not yet part of a returned frame."""
        return len(self._buffer) - self._start

    def feed(self, data: Buffer) -> None:
        """Add bytes from the stream."""
        if self._start and self._start >= len(self._buffer) // 2:
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += memoryview(data).cast("B")

    def next_frame(self) -> Frame | NeedData:
        """The next whole, checked frame, or ``NEED_DATA``. Raises on damage."""
        available = len(self._buffer) - self._start
        if self._header is None:
            if available < FRAME_HEADER_SIZE:
                return NEED_DATA
            raw = bytes(self._buffer[self._start : self._start + FRAME_HEADER_SIZE])
            try:
                header = parse_frame_header(raw)
            except DumpError as exc:
                raise exc.located(None, self._offset) from None
            self._header = replace(header, offset=self._offset)
        header = self._header
        if available < header.length:
            return NEED_DATA
        begin = self._start + FRAME_HEADER_SIZE
        payload = bytes(memoryview(self._buffer)[begin : begin + header.payload_length])
        check_payload(header, payload)
        self._header = None
        self._start += header.length
        self._offset += header.length
        return Frame(header, payload)

    def end(self) -> None:
        """Say the stream ended; raises ``CorruptDumpError`` if a frame was cut short."""
        available = len(self._buffer) - self._start
        if available:
            raise CorruptDumpError(
                f"stream ends inside a frame ({available} bytes of it)", offset=self._offset
            )


# --- the index frame -------------------------------------------------------------------------

_index_encoder = msgspec.msgpack.Encoder()
_index_decoder = msgspec.msgpack.Decoder(list[IndexEntry])


def encode_index(entries: list[IndexEntry]) -> bytes:
    """The payload of an INDEX frame."""
    return _index_encoder.encode(entries)


def decode_index(payload: Buffer, offset: int = 0) -> list[IndexEntry]:
    """The entries of an INDEX frame's uncompressed payload; ``offset`` is the frame's."""
    try:
        return _index_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise CorruptDumpError(f"index frame is not valid: {exc}", offset=offset) from None
