#!/usr/bin/env python3
"""Write the golden dump-file vectors of format v1 (``formats/vectors/v1``).

Usage::

    python formats/make_vectors.py [OUTDIR] [--check]

Every vector is ``NAME.dmp`` (or a set ``NAME-01.dmp``, ``NAME-02.dmp`` ...) and ``NAME.json``,
the result a reader must give, in ``OUTDIR/valid`` or ``OUTDIR/invalid``. The script is
deterministic: fixed GUIDs, a fixed creation time, fixed data, so two runs with the same
pumpkit and zstd library give byte-identical files.

The vectors are committed and never regenerated. This script only writes files that do not
exist yet; a file that exists with other bytes is an error (exit 1), never overwritten. With
``--check`` it writes nothing and exits 1 unless every file exists with the same bytes. A change
of the format adds new vectors (new names, or a new ``vN`` directory); it never rewrites old
ones.

Payloads follow section 5.5 of ``formats/dumpfile.md``: METADATA a msgpack map (``object_type``,
``schema``, ``name``, ``columns``) with count 1; TABLE_DATA a msgpack array of rows (arrays of
column values) with count = rows; LOG RAW UTF-8 text with count = lines; the control table
the map the engine writes (``table``, ``columns``, ``rows``) with count = rows. Error classes
and offsets in the JSON are those of its section 11.

Format 1.1 added password encryption (section 5.7). The vectors in clear keep the 1.0 header
they were first written with (``as_1_0``); the encrypted ones (``encrypted_vectors``) are
put together frame by frame with a fixed salt, a small scrypt cost and fixed nonces, with
``hashlib.scrypt`` and ``cryptography``'s AESGCM rather than pumpkit's cipher, and their JSON
gives the ``password`` to unlock them with.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import math
import shutil
import struct
import sys
import tempfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pumpkit.core.crypto import FrameCipher
from pumpkit.core.frame import (
    FRAME_HEADER_SIZE,
    Encoding,
    FrameKind,
    GranuleTag,
    Location,
    build_frame,
    decode_frame,
    decode_index,
    encode_frame_header,
    encode_index,
    parse_frame_header,
)
from pumpkit.core.header import HEADER_SIZE, FileHeader, HeaderBody, HeaderFlags, encode_header
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.io.dumpset.writer import DumpSetWriter

FORMAT_VERSION = 1
CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CREATION_DATE = "2026-01-01T00:00:00+00:00"
GUID_A = bytes(range(16))
GUID_B = bytes(range(16, 32))
DEFAULT_OUT = Path(__file__).resolve().parent / "vectors" / "v1"

# The header prefix layout (pumpkit.core.header._PREFIX), written out here so that the
# hand-made headers do not depend on the encoder that refuses them.
PREFIX = struct.Struct("<8sHHIII16sqQQQII")
FRAME_HEADER = struct.Struct("<4sBBBBIIIIII")

# Format 1.1 (section 5.7 of dumpfile.md), written out here as well: the GCM associated data
# of an encrypted frame, the frame and header flag bits, the key check's text.
FRAME_AAD = struct.Struct("<4sBBBBIII")
FRAME_COMPRESSED = 0x01
FRAME_ENCRYPTED = 0x04
HEADER_ENCRYPTED = 1 << 2
KEY_CHECK_TEXT = b"pumpkit key check v1"

#: The header body keys of format 1.0, in the order a 1.0 writer wrote them (section 3.4).
#: Every vector made before format 1.1 has exactly this body and (but for the 1.1 and 1.7
#: ones) minor version 0. pumpkit's writer now writes minor 1 and the seven encryption keys
#: too, so the script puts those vectors' headers back to what they were (``as_1_0``): the
#: committed files must stay byte-identical.
BODY_KEYS_1_0 = (
    "job_name",
    "operation",
    "job_mode",
    "producer",
    "producer_version",
    "platform",
    "source_engine",
    "source_version",
    "charset",
    "compression",
    "compression_level",
    "metadata_compressed",
    "data_compressed",
    "encryption",
    "set_file_count",
    "set_files",
)
#: Format 1.1's seven encryption keys, written after those of 1.0. The encrypted vectors have
#: exactly these 23 keys; format 1.3's signature keys came later and are cut (``as_1_1``).
BODY_KEYS_1_1 = (
    *BODY_KEYS_1_0,
    "encryption_scope",
    "kdf",
    "kdf_salt",
    "kdf_n",
    "kdf_r",
    "kdf_p",
    "key_check",
)


# --- JSON form of decoded msgpack values -----------------------------------------------------


def to_json(value: Any) -> Any:
    """A decoded msgpack value as JSON: bytes as {"hex"}, -0.0 and non-finite floats as {"float"}."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return {"float": "nan"}
        if math.isinf(value):
            return {"float": "inf" if value > 0 else "-inf"}
        if value == 0.0 and math.copysign(1.0, value) < 0:
            return {"float": "-0.0"}
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"hex": bytes(value).hex()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    raise TypeError(f"no JSON form for {type(value).__name__}")


# --- recording what was written --------------------------------------------------------------


@dataclass
class Written:
    location: Location
    kind: int
    object_id: int
    count: int
    encoding: int
    raw: bytes
    value: Any  # the Python value encoded (None for a RAW payload)
    tag: GranuleTag | None = None  # format 1.3: the frame's granule tag
    data: bool = True  # False: an unfinished granule's frame, no data of the set (8.1)


@dataclass
class TableSpec:
    object_id: int
    schema: str
    name: str
    columns: list[tuple[str, str]]
    object_type: str = "TABLE"

    def metadata(self) -> dict[str, Any]:
        return {
            "object_type": self.object_type,
            "schema": self.schema,
            "name": self.name,
            "columns": [{"name": n, "type": t} for n, t in self.columns],
        }


@dataclass
class Recorder:
    """A DumpSetWriter that remembers every frame it wrote (as the writer reported it)."""

    writer: DumpSetWriter | ComposedFile
    written: list[Written] = field(default_factory=list)
    tables: dict[int, TableSpec] = field(default_factory=dict)
    rows: dict[int, list[Any]] = field(default_factory=dict)

    def _write(
        self,
        kind: int,
        value: Any,
        *,
        object_id: int = 0,
        count: int = 0,
        compress: bool | None = None,
        raw: bytes | None = None,
    ) -> Location:
        encoding = Encoding.MSGPACK if raw is None else Encoding.RAW
        data = msgspec.msgpack.encode(value) if raw is None else raw
        loc = self.writer.write_frame(
            kind,  # type: ignore[arg-type]
            data,
            object_id=object_id,
            count=count,
            encoding=encoding,
            compress=compress,
        )
        self.written.append(
            Written(
                loc,
                int(kind),
                object_id,
                count,
                int(encoding),
                data,
                value if raw is None else None,
            )
        )
        return loc

    def table(self, spec: TableSpec, *, compress: bool | None = None) -> None:
        self.tables[spec.object_id] = spec
        self.rows.setdefault(spec.object_id, [])
        self._write(
            FrameKind.METADATA,
            spec.metadata(),
            object_id=spec.object_id,
            count=1,
            compress=compress,
        )

    def batch(self, object_id: int, rows: list[list[Any]], *, compress: bool | None = None) -> None:
        self.rows[object_id].extend(rows)
        self._write(
            FrameKind.TABLE_DATA, rows, object_id=object_id, count=len(rows), compress=compress
        )

    def log(self, lines: list[str]) -> None:
        """A LOG frame: RAW UTF-8 text, one line per entry, count = lines."""
        text = "".join(line + "\n" for line in lines).encode("utf-8")
        self._write(FrameKind.LOG, None, count=len(lines), raw=text)

    def control_table(self, table: str, columns: list[str], rows: list[list[Any]]) -> None:
        """The control table as the engine writes it: a map of table, columns and rows."""
        value = {"table": table, "columns": columns, "rows": rows}
        data = msgspec.msgpack.encode(value)
        loc = self.writer.write_control_table(data, count=len(rows))
        self.written.append(
            Written(
                loc, int(FrameKind.CONTROL_TABLE), 0, len(rows), int(Encoding.MSGPACK), data, value
            )
        )

    def other(self, kind: int, raw: bytes, *, count: int = 0) -> None:
        self._write(kind, None, count=count, raw=raw)


@dataclass(frozen=True)
class Encryption:
    """Password encryption of a vector set (section 5.7 of dumpfile.md), made deterministic:
    a fixed salt, a small scrypt cost (recorded in the header like any other) and fixed
    nonces, so that two runs give the same bytes. A writer draws salt and nonces at random."""

    password: str
    scope: str  # "ALL", "DATA_ONLY" or "METADATA_ONLY"
    salt: bytes = bytes(range(0xA0, 0xB0))
    n: int = 1024
    r: int = 8
    p: int = 1

    @property
    def key(self) -> bytes:
        """scrypt of the UTF-8 password: hashlib's, not pumpkit's derive_key."""
        return hashlib.scrypt(
            self.password.encode("utf-8"), salt=self.salt, n=self.n, r=self.r, p=self.p, dklen=32
        )

    def body_fields(self) -> dict[str, Any]:
        """The header body keys of an encrypted set (section 3.4)."""
        return {
            "encryption": "aes-256-gcm",
            "encryption_scope": self.scope,
            "kdf": "scrypt",
            "kdf_salt": self.salt,
            "kdf_n": self.n,
            "kdf_r": self.r,
            "kdf_p": self.p,
            "key_check": hmac.new(self.key, KEY_CHECK_TEXT, hashlib.sha256).digest()[:16],
        }

    def encrypts(self, kind: int) -> bool:
        """Whether frames of ``kind`` are encrypted; INDEX and END never are."""
        if kind in (FrameKind.INDEX, FrameKind.END):
            return False
        data = kind == FrameKind.TABLE_DATA
        return self.scope == "ALL" or (self.scope == "DATA_ONLY") == data


def encrypted_frame(
    key: bytes,
    nonce: bytes,
    kind: int,
    plain: bytes,
    *,
    object_id: int,
    count: int,
    encoding: int,
    compressor: zstandard.ZstdCompressor | None,
) -> tuple[bytes, bytes]:
    """An encrypted frame packed by hand: header and ``nonce || ciphertext || tag``."""
    flags = FRAME_ENCRYPTED
    stored = plain
    if compressor is not None:
        stored = compressor.compress(plain)
        flags |= FRAME_COMPRESSED
    aad = FRAME_AAD.pack(b"PKFR", kind, flags, encoding, 0, object_id, count, len(plain))
    stored = nonce + AESGCM(key).encrypt(nonce, stored, aad)
    header = frame_header_bytes(
        kind,
        flags=flags,
        encoding=encoding,
        object_id=object_id,
        count=count,
        payload_length=len(stored),
        uncompressed_length=len(plain),
        payload_crc=zlib.crc32(stored),
    )
    return header, stored


class ComposedFile:
    """A one-file set put together frame by frame, for what DumpSetWriter never writes.

    It follows the writer's layout (section 7 of dumpfile.md) and lets a vector choose the
    header size, the minor version, extra (ignorable) frame flag bits, extra INDEX entry
    fields, a compressed INDEX frame, and encryption with fixed nonces. A set in clear gets
    the 1.0 header body (``BODY_KEYS_1_0``), an encrypted one the 1.1 body with all its keys.
    """

    def __init__(
        self,
        name: str,
        body: HeaderBody,
        *,
        guid: bytes = GUID_A,
        header_size: int = HEADER_SIZE,
        minor: int = 0,
        frame_flags: int = 0,
        index_extra: tuple[Any, ...] = (),
        index_compressed: bool = False,
        encryption: Encryption | None = None,
    ) -> None:
        self.name = name
        self.body = body
        self.guid = guid
        self.header_size = header_size
        self.minor = minor
        self.frame_flags = frame_flags
        self.index_extra = index_extra
        self.index_compressed = index_compressed
        self.encryption = encryption
        self.key = encryption.key if encryption else b""
        if encryption and body.encryption != "aes-256-gcm":
            raise ValueError("an encrypted ComposedFile needs a body that says so")
        self.parts: list[bytes] = []
        self.position = header_size
        self.entries: list[list[Any]] = []
        self.control_position = 0

    def _compressor(self) -> zstandard.ZstdCompressor:
        return zstandard.ZstdCompressor(level=self.body.compression_level or 3)

    def _append(self, header: bytes, stored: bytes) -> Location:
        h = parse_frame_header(header)
        if self.frame_flags:
            header = encode_frame_header(
                h.kind,
                flags=h.flags | self.frame_flags,
                encoding=h.encoding,
                object_id=h.object_id,
                count=h.count,
                payload_length=h.payload_length,
                uncompressed_length=h.uncompressed_length,
                payload_crc=h.payload_crc,
            )
        loc = Location(1, self.position, len(header) + len(stored))
        self.parts += [header, stored]
        self.entries.append(
            [h.kind, h.object_id, h.count, loc.position, loc.length, h.uncompressed_length]
        )
        self.position += loc.length
        return loc

    def write_frame(
        self,
        kind: int,
        data: bytes,
        *,
        object_id: int = 0,
        count: int = 0,
        encoding: int = Encoding.MSGPACK,
        compress: bool | None = None,
    ) -> Location:
        if compress is None:
            compress = self.body.compression == "zstd" and (
                self.body.data_compressed
                if kind == FrameKind.TABLE_DATA
                else self.body.metadata_compressed
            )
        if self.encryption is not None and self.encryption.encrypts(kind):
            # A fixed nonce per frame, never the same twice: the vectors share one key.
            label = f"{self.name} frame {len(self.entries)}".encode()
            nonce = hashlib.sha256(label).digest()[:12]
            head, sealed = encrypted_frame(
                self.key,
                nonce,
                kind,
                bytes(data),
                object_id=object_id,
                count=count,
                encoding=encoding,
                compressor=self._compressor() if compress else None,
            )
            return self._append(head, sealed)
        header, stored = build_frame(
            kind,
            data,
            object_id=object_id,
            count=count,
            encoding=encoding,
            compressor=self._compressor() if compress else None,
        )
        return self._append(header, bytes(stored))

    def write_control_table(self, data: bytes, *, count: int) -> Location:
        loc = self.write_frame(FrameKind.CONTROL_TABLE, data, count=count)
        self.control_position = loc.position
        return loc

    def finish(self) -> bytes:
        index_payload = msgspec.msgpack.encode([[*e, *self.index_extra] for e in self.entries])
        index_position = self.position
        head, stored = build_frame(
            FrameKind.INDEX,
            index_payload,
            count=len(self.entries),
            compressor=self._compressor() if self.index_compressed else None,
        )
        end, _ = build_frame(FrameKind.END, b"", count=len(self.entries) + 1, encoding=0)
        frames = b"".join([*self.parts, head, bytes(stored), end])
        flags = HeaderFlags.CLEAN_CLOSE
        if self.control_position:
            flags |= HeaderFlags.CONTROL_TABLE
        if self.encryption is not None:
            flags |= HEADER_ENCRYPTED
        header = encode_header(
            FileHeader(
                minor=self.minor,
                header_size=self.header_size,
                flags=int(flags),
                file_number=1,
                guid=self.guid,
                created_us=int(CREATED.timestamp()) * 1_000_000,
                data_end=self.header_size + len(frames),
                index_position=index_position,
                control_position=self.control_position,
                body=msgspec.structs.replace(self.body, set_file_count=1, set_files=(self.name,)),
            )
        )
        if self.encryption is None:
            return as_1_0(header + frames)
        return as_1_0(header + frames, keys=BODY_KEYS_1_1)


def as_1_0(
    data: bytes, *, minor: int | None = None, keys: tuple[str, ...] = BODY_KEYS_1_0
) -> bytes:
    """``data`` with its header body cut to the sixteen keys of format 1.0 (or to ``keys``)
    and, if given, its minor version set: the header every vector in clear had before format
    1.1 (and every encrypted one before 1.3)."""
    fields = header_fields(data)
    body = msgspec.msgpack.decode(data[PREFIX.size : PREFIX.size + fields[11]])
    return rebuild_header(
        data, minor=minor, body=msgspec.msgpack.encode({k: body[k] for k in keys})
    )


def body_for(job: str, **changes: Any) -> HeaderBody:
    fields: dict[str, Any] = {
        "job_name": job,
        "operation": "EXPORT",
        "job_mode": "TABLE",
        "producer": "pumpkit",
        "producer_version": "vectors-v1",
        "platform": "any",
        "source_engine": "sqlite",
        "source_version": "3.45.0",
    }
    fields.update(changes)
    return HeaderBody(**fields)


def write_set(
    workdir: Path,
    template: str,
    body: HeaderBody,
    script: Callable[[Recorder], None],
    *,
    guid: bytes = GUID_A,
    filesize: int | None = None,
    finish: str = "close",
) -> tuple[Recorder, dict[str, bytes]]:
    """Write one set in a fresh directory; returns the recorder and the files' bytes by name."""
    directory = Path(tempfile.mkdtemp(dir=workdir))
    writer = DumpSetWriter(
        [template], directory=directory, body=body, guid=guid, filesize=filesize, created=CREATED
    )
    rec = Recorder(writer)
    script(rec)
    paths = list(writer.paths)
    if finish == "close":
        writer.close()
    elif finish == "abandon":
        writer.abandon()
    else:
        raise ValueError(finish)
    # Every set the writer makes here is in clear and was a 1.0 file when its vector was made.
    return rec, {p.name: as_1_0(p.read_bytes(), minor=0) for p in paths}


# --- expectations ----------------------------------------------------------------------------


def info_for(
    body: HeaderBody,
    *,
    guid: bytes,
    file_number: int,
    data: bytes,
    clean: bool,
    master: bool,
    data_end: int | None = None,
    set_files: tuple[str, ...] = (),
    version: str = f"{FORMAT_VERSION}.0",
    block_size: int = HEADER_SIZE,
) -> dict[str, Any]:
    """What get_dumpfile_info must say of a file (path left out), from what was written."""
    return {
        "file_type": "pumpkit",
        "file_version": version,
        "master_present": master,
        "guid": str(uuid.UUID(bytes=guid)),
        "file_number": file_number,
        "charset": body.charset,
        "creation_date": CREATION_DATE,
        "job_name": body.job_name,
        "operation": body.operation,
        "job_mode": body.job_mode,
        "platform": body.platform,
        "block_size": block_size,
        "producer": body.producer,
        "producer_version": body.producer_version,
        "source_engine": body.source_engine,
        "db_version": body.source_version,
        "compression_algorithm": body.compression,
        "compression_level": body.compression_level,
        "metadata_compressed": body.metadata_compressed,
        "data_compressed": body.data_compressed,
        "encryption_mode": body.encryption,
        # Section 3.4: scope ALL encrypts metadata (METADATA, CONTROL_TABLE, LOG) and data,
        # DATA_ONLY the TABLE_DATA frames, METADATA_ONLY the others (an empty scope is ALL).
        "metadata_encrypted": body.encryption != "none"
        and (body.encryption_scope or "ALL") in ("ALL", "METADATA_ONLY"),
        "data_encrypted": body.encryption != "none"
        and (body.encryption_scope or "ALL") in ("ALL", "DATA_ONLY"),
        "clean_close": clean,
        "data_end": (len(data) if clean else 0) if data_end is None else data_end,
        "file_size": len(data),
        "set_file_count": len(set_files),
        "set_files": list(set_files),
    }


def valid_spec(
    name: str,
    description: str,
    rec: Recorder,
    files: dict[str, bytes],
    body: HeaderBody,
    *,
    guid: bytes = GUID_A,
    clean: bool = True,
    data_end: dict[str, int] | None = None,
    version: str = f"{FORMAT_VERSION}.0",
    verify: dict[str, Any] | None = None,
    readable_end: dict[int, int] | None = None,
    block_size: int = HEADER_SIZE,
    password: str | None = None,
) -> dict[str, Any]:
    names = list(files)
    control_files = {w.location.fileid for w in rec.written if w.kind == FrameKind.CONTROL_TABLE}
    set_files = tuple(names) if clean else ()
    file_entries = []
    for number, fname in enumerate(names, start=1):
        file_entries.append(
            {
                "name": fname,
                "info": info_for(
                    body,
                    guid=guid,
                    file_number=number,
                    data=files[fname],
                    clean=clean,
                    master=number in control_files,
                    data_end=(data_end or {}).get(fname),
                    set_files=set_files,
                    version=version,
                    block_size=block_size,
                ),
            }
        )
    objects = []
    for object_id in sorted(rec.tables):
        table = rec.tables[object_id]
        rows = rec.rows[object_id]
        objects.append(
            {
                "object_id": object_id,
                "object_type": table.object_type,
                "schema": table.schema,
                "name": table.name,
                "row_count": len(rows),
                "data_frames": sum(
                    1
                    for w in rec.written
                    if w.kind == FrameKind.TABLE_DATA and w.object_id == object_id and w.data
                ),
                "rows": to_json(rows),
            }
        )
    frames = []
    for w in rec.written:
        entry: dict[str, Any] = {
            "file": w.location.fileid,
            "position": w.location.position,
            "length": w.location.length,
            "kind": w.kind,
            "object_id": w.object_id,
            "count": w.count,
            "encoding": w.encoding,
            "uncompressed_length": len(w.raw),
        }
        if w.tag is not None:
            entry["tag"] = {
                "granule": w.tag.granule,
                "sequence": w.tag.sequence,
                "first": w.tag.first,
                "last": w.tag.last,
            }
        if w.kind != FrameKind.TABLE_DATA:
            entry["payload"] = (
                to_json(w.value) if w.encoding == Encoding.MSGPACK else {"hex": w.raw.hex()}
            )
        frames.append(entry)
    control = [w for w in rec.written if w.kind == FrameKind.CONTROL_TABLE]
    spec: dict[str, Any] = {
        "vector": name,
        "format": FORMAT_VERSION,
        "valid": True,
        "description": description,
        "files": file_entries,
        "open": names,
    }
    if password is not None:
        spec["password"] = password
    spec |= {
        "objects": objects,
        "frames": frames,
        "control_table": to_json(control[0].value) if control else None,
        "verify": verify or {"faults": 0, "first_fault_file": None, "first_fault_offset": None},
    }
    if readable_end is not None:
        spec["readable_end"] = {str(k): v for k, v in readable_end.items()}
    return spec


def invalid_spec(
    name: str,
    description: str,
    files: dict[str, bytes],
    *,
    operation: str,
    error: str | None,
    file: str | None,
    offset: int | None,
    faults: int | None,
    first_fault_file: str | None,
    first_fault_offset: int | None,
    info: dict[str, dict[str, Any]],
    open_paths: list[str] | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """``faults=None``: the format does not say what verify reports (``"verify": null``).
    ``password``: the one the set is unlocked with after it is opened (none: not unlocked)."""
    return {
        "vector": name,
        "format": FORMAT_VERSION,
        "valid": False,
        "description": description,
        "files": list(files),
        "open": open_paths or list(files),
        **({} if password is None else {"password": password}),
        "error": {"operation": operation, "class": error, "file": file, "offset": offset},
        "verify": None
        if faults is None
        else {
            "faults": faults,
            "first_fault_file": first_fault_file,
            "first_fault_offset": first_fault_offset,
        },
        "info": info,
    }


# --- data ------------------------------------------------------------------------------------

PEOPLE = TableSpec(1, "main", "people", [("id", "INTEGER"), ("name", "TEXT"), ("score", "REAL")])
CUSTOMERS = TableSpec(
    1, "main", "customers", [("id", "INTEGER"), ("name", "TEXT"), ("city", "TEXT")]
)
ORDERS = TableSpec(
    2, "main", "orders", [("id", "INTEGER"), ("customer", "INTEGER"), ("total", "REAL")]
)
EMPTY = TableSpec(3, "main", "empty_table", [("id", "INTEGER")])
TYPES = TableSpec(1, "main", "types", [("id", "INTEGER"), ("label", "TEXT"), ("value", "ANY")])
EVENTS = TableSpec(1, "main", "events", [("id", "INTEGER"), ("payload", "TEXT")])

CITIES = ("Oslo", "Lima", "Kyiv", "Quito", "Accra", "Hanoi", "Perth")


def people_rows(start: int, n: int) -> list[list[Any]]:
    return [[i, f"person {i}", round(i * 1.25, 2)] for i in range(start, start + n)]


def customer_rows(start: int, n: int) -> list[list[Any]]:
    return [[i, f"customer {i:04d}", CITIES[i % len(CITIES)]] for i in range(start, start + n)]


def order_rows(start: int, n: int) -> list[list[Any]]:
    return [[i, 1 + i % 17, (i * 37 % 1000) / 4] for i in range(start, start + n)]


CONTROL_COLUMNS = ["process_order", "object_type", "object_name", "processing_state"]
CONTROL_ROWS: list[list[Any]] = [
    [1, "TABLE", "customers", "C"],
    [2, "TABLE", "orders", "C"],
    [3, "TABLE", "empty_table", "C"],
]

BLOB_100K = bytes((i * 131 + (i >> 8) * 7 + 3) & 0xFF for i in range(100_000))

TYPE_VALUES: list[tuple[str, Any]] = [
    ("nil", None),
    ("zero", 0),
    ("one", 1),
    ("minus_one", -1),
    ("fixint_max", 127),
    ("uint8_min", 128),
    ("uint8_max", 255),
    ("uint16_min", 256),
    ("uint16_max", 65535),
    ("uint32_min", 65536),
    ("uint32_max", 2**32 - 1),
    ("uint64_min", 2**32),
    ("int64_max", 2**63 - 1),
    ("negfixint_min", -32),
    ("int8_min_edge", -33),
    ("int8_min", -128),
    ("int16_min_edge", -129),
    ("int16_min", -32768),
    ("int32_min_edge", -32769),
    ("int32_min", -(2**31)),
    ("int64_min_edge", -(2**31) - 1),
    ("int64_min_plus_one", -(2**63) + 1),
    ("int64_min", -(2**63)),
    ("float_zero", 0.0),
    ("float_minus_zero", -0.0),
    ("float_one", 1.0),
    ("float_tenth", 0.1),
    ("float_max", sys.float_info.max),
    ("float_min_normal", sys.float_info.min),
    ("float_min_subnormal", 5e-324),
    ("float_neg", -2.5e-300),
    ("float_inf", math.inf),
    ("float_minus_inf", -math.inf),
    ("float_nan", math.nan),
    ("text_empty", ""),
    ("text_ascii", "hello"),
    ("text_nul", "a\x00b\x00"),
    ("text_non_ascii", "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \U0001d11e"),
    ("text_fixstr_max", "x" * 31),
    ("text_str8", "y" * 32),
    ("text_str16", "z" * 256),
    ("text_str32", "w" * 65_536),
    ("bin_empty", b""),
    ("bin_small", b"\x00\x01\xfe\xff"),
    ("bin16", bytes(range(256)) * 2),
]


# --- header and frame surgery ----------------------------------------------------------------


def header_fields(data: bytes) -> list[Any]:
    return list(PREFIX.unpack_from(data, 0))


def rebuild_header(
    data: bytes,
    *,
    major: int | None = None,
    minor: int | None = None,
    flags_or: int = 0,
    file_number: int | None = None,
    body: bytes | None = None,
) -> bytes:
    """``data`` with its header re-made by hand (any field, any flag) and a valid CRC."""
    fields = header_fields(data)
    size = fields[3]
    if major is not None:
        fields[1] = major
    if minor is not None:
        fields[2] = minor
    fields[4] |= flags_or
    if file_number is not None:
        fields[5] = file_number
    if body is None:
        body = bytes(data[PREFIX.size : PREFIX.size + fields[11]])
    fields[11] = len(body)
    head = bytearray(size)
    PREFIX.pack_into(head, 0, *fields)
    head[PREFIX.size : PREFIX.size + len(body)] = body
    struct.pack_into("<I", head, size - 4, zlib.crc32(head[: size - 4]))
    return bytes(head) + data[size:]


def frame_header_bytes(
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
    """A frame header with any lengths (encode_frame_header refuses oversize ones)."""
    head = bytearray(FRAME_HEADER_SIZE)
    FRAME_HEADER.pack_into(
        head,
        0,
        b"PKFR",
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
    struct.pack_into("<I", head, 28, zlib.crc32(head[:28]))
    return bytes(head)


def first_data_frame(rec: Recorder) -> Location:
    return next(w.location for w in rec.written if w.kind == FrameKind.TABLE_DATA)


def index_position(data: bytes) -> int:
    return int(header_fields(data)[9])


# --- the vectors -----------------------------------------------------------------------------


@dataclass
class Vector:
    name: str
    valid: bool
    files: dict[str, bytes]
    spec: dict[str, Any]


def v_minimal(work: Path) -> Vector:
    body = body_for("VECTORS_MINIMAL")

    def script(rec: Recorder) -> None:
        rec.table(PEOPLE)
        rec.batch(1, people_rows(1, 3))

    rec, files = write_set(work, "minimal.dmp", body, script)
    return Vector(
        "minimal",
        True,
        files,
        valid_spec("minimal", "one table, one batch of rows, nothing compressed", rec, files, body),
    )


def v_compressed(work: Path) -> Vector:
    body = body_for(
        "VECTORS_COMPRESSED",
        compression="zstd",
        compression_level=3,
        metadata_compressed=True,
        data_compressed=True,
        job_mode="SCHEMA",
    )

    def script(rec: Recorder) -> None:
        rec.log(["export started", "job VECTORS_COMPRESSED in SCHEMA mode"])
        rec.table(CUSTOMERS)
        rec.table(ORDERS)
        rec.table(EMPTY)
        rec.batch(1, customer_rows(1, 40))
        rec.batch(2, order_rows(1, 60))
        rec.batch(1, customer_rows(41, 40))
        rec.batch(2, order_rows(61, 60))
        rec.batch(1, customer_rows(81, 5))
        rec.control_table("VECTORS_COMPRESSED", CONTROL_COLUMNS, CONTROL_ROWS)
        rec.log(["export finished: 3 tables, 205 rows"])

    rec, files = write_set(work, "compressed.dmp", body, script)
    return Vector(
        "compressed",
        True,
        files,
        valid_spec(
            "compressed",
            "zstd data and metadata; three tables (one empty), five batches interleaved,"
            " a control-table frame and two LOG frames",
            rec,
            files,
            body,
        ),
    )


def multifile_script(rec: Recorder) -> None:
    rec.table(EVENTS)
    for batch in range(5):
        rows = [[batch * 10 + i, f"event {batch * 10 + i}: " + "x" * 60] for i in range(10)]
        rec.batch(1, rows)


def v_multifile(work: Path) -> Vector:
    body = body_for("VECTORS_MULTIFILE")
    rec, files = write_set(work, "multifile-%U.dmp", body, multifile_script, filesize=6144)
    if list(files) != ["multifile-01.dmp", "multifile-02.dmp", "multifile-03.dmp"]:
        raise AssertionError(f"multifile made {list(files)}, not three files")
    if any(len(b) > 6144 for b in files.values()):
        raise AssertionError("a file of the multifile set is larger than its FILESIZE")
    return Vector(
        "multifile",
        True,
        files,
        valid_spec(
            "multifile",
            "FILESIZE 6144 rolls the set over to three files named by %U",
            rec,
            files,
            body,
        ),
    )


def v_types(work: Path) -> Vector:
    body = body_for("VECTORS_TYPES")

    def script(rec: Recorder) -> None:
        rec.table(TYPES)
        rec.batch(1, [[i, label, value] for i, (label, value) in enumerate(TYPE_VALUES, 1)])
        rec.batch(1, [[1001, "blob_100k", BLOB_100K], [1002, "all_nil", None], [None, None, None]])

    rec, files = write_set(work, "types.dmp", body, script)
    return Vector(
        "types",
        True,
        files,
        valid_spec(
            "types",
            "every msgpack type SQLite values use: nil, ints in every msgpack width up to the"
            " int64 boundaries, floats (-0.0, inf, -inf, nan, extremes), text with NUL and"
            " non-ASCII, empty text vs empty bin vs nil, and a 100 kB blob",
            rec,
            files,
            body,
        ),
    )


def v_crashcut(work: Path) -> Vector:
    body = body_for("VECTORS_CRASHCUT")

    def script(rec: Recorder) -> None:
        rec.table(PEOPLE)
        rec.batch(1, people_rows(1, 4))

    rec, files = write_set(work, "crashcut.dmp", body, script, finish="abandon")
    (data,) = files.values()
    return Vector(
        "crashcut",
        True,
        files,
        valid_spec(
            "crashcut",
            "a set left by a crash (DumpSetWriter.abandon) after two frames: not closed"
            " cleanly, no INDEX or END, read by scanning its frames",
            rec,
            files,
            body,
            clean=False,
            verify={
                "faults": 1,
                "first_fault_file": "crashcut.dmp",
                "first_fault_offset": len(data),
            },
            readable_end={1: len(data)},
        ),
    )


def v_crashcut_partial(work: Path) -> Vector:
    body = body_for("VECTORS_CRASHCUT_PARTIAL")
    cut: dict[str, int] = {}

    def script(rec: Recorder) -> None:
        rec.table(PEOPLE)
        rec.batch(1, people_rows(1, 4))
        rec.writer.sync()
        cut["at"] = rec.writer.durable_points[1]
        rec.batch(1, people_rows(5, 4))

    rec, files = write_set(work, "crashcut_partial.dmp", body, script, finish="abandon")
    # The third frame was being written when the machine stopped: only part of it is there.
    lost = rec.written.pop()
    rec.rows[1] = rec.rows[1][: -lost.count]
    end = cut["at"]
    partial = end + lost.location.length // 2
    files = {name: data[:partial] for name, data in files.items()}
    return Vector(
        "crashcut_partial",
        True,
        files,
        valid_spec(
            "crashcut_partial",
            "a crash after a checkpoint (sync) while a third frame was being written: the"
            " header is not clean but has a data end; half of the third frame is in the file",
            rec,
            files,
            body,
            clean=False,
            data_end={"crashcut_partial.dmp": end},
            verify={
                "faults": 2,
                "first_fault_file": "crashcut_partial.dmp",
                "first_fault_offset": end,
            },
            readable_end={1: end},
        ),
    )


def v_no_objects(work: Path) -> Vector:
    body = body_for("VECTORS_NO_OBJECTS")
    rec, files = write_set(work, "no_objects.dmp", body, lambda rec: None)
    return Vector(
        "no_objects",
        True,
        files,
        valid_spec(
            "no_objects", "a clean set with no frames but its INDEX and END", rec, files, body
        ),
    )


def v_future_minor(work: Path) -> Vector:
    body = body_for("VECTORS_FUTURE_MINOR")

    def script(rec: Recorder) -> None:
        rec.table(PEOPLE)
        rec.other(42, b"a frame kind from the future: readers skip it\x00\x01\x02", count=7)
        rec.batch(1, people_rows(1, 3))

    rec, files = write_set(work, "future_minor.dmp", body, script)
    ((fname, data),) = files.items()
    fields = msgspec.structs.asdict(
        msgspec.msgpack.decode(
            data[PREFIX.size : PREFIX.size + header_fields(data)[11]], type=HeaderBody
        )
    )
    fields = {k: fields[k] for k in BODY_KEYS_1_0}
    fields["future_fact"] = {"added_in": "1.7", "values": [1, 2, 3]}
    new_body = msgspec.msgpack.encode(fields)
    files = {fname: rebuild_header(data, minor=7, flags_or=1 << 16, body=new_body)}
    return Vector(
        "future_minor",
        True,
        files,
        valid_spec(
            "future_minor",
            "written by a future minor version 1.7: an unknown header body key, the ignorable"
            " header flag bit 16 set, and a frame of unknown kind 42 that readers skip",
            rec,
            files,
            body,
            version=f"{FORMAT_VERSION}.7",
        ),
    )


# -- invalid


def small_set(work: Path, name: str, *, guid: bytes = GUID_A) -> tuple[Recorder, bytes]:
    body = body_for("VECTORS_" + name.upper())

    def script(rec: Recorder) -> None:
        rec.table(PEOPLE)
        rec.batch(1, people_rows(1, 5))
        rec.batch(1, people_rows(6, 5))

    rec, files = write_set(work, f"{name}.dmp", body, script, guid=guid)
    (data,) = files.values()
    return rec, data


def header_error(
    name: str,
    description: str,
    data: bytes,
    error: str,
    offset: int,
) -> Vector:
    fname = f"{name}.dmp"
    return Vector(
        name,
        False,
        {fname: data},
        invalid_spec(
            name,
            description,
            {fname: data},
            operation="open",
            error=error,
            file=fname,
            offset=offset,
            faults=1,
            first_fault_file=fname,
            first_fault_offset=offset,
            info={fname: {"raises": error, "offset": offset}},
        ),
    )


def invalid_vectors(work: Path) -> list[Vector]:
    out: list[Vector] = []

    text = b"name,score\nalice,3\nbob,5\n" * 4
    out.append(
        Vector(
            "not_a_dump",
            False,
            {"not_a_dump.dmp": text},
            invalid_spec(
                "not_a_dump",
                "a text file: no pumpkit magic",
                {"not_a_dump.dmp": text},
                operation="open",
                error="NotADumpFileError",
                file="not_a_dump.dmp",
                offset=0,
                faults=1,
                first_fault_file="not_a_dump.dmp",
                first_fault_offset=0,
                info={"not_a_dump.dmp": {"file_type": "unknown", "file_size": len(text)}},
            ),
        )
    )
    out.append(
        Vector(
            "empty",
            False,
            {"empty.dmp": b""},
            invalid_spec(
                "empty",
                "an empty file",
                {"empty.dmp": b""},
                operation="open",
                error="NotADumpFileError",
                file="empty.dmp",
                offset=0,
                faults=1,
                first_fault_file="empty.dmp",
                first_fault_offset=0,
                info={"empty.dmp": {"file_type": "unknown", "file_size": 0}},
            ),
        )
    )

    _, data = small_set(work, "truncated_header")
    out.append(
        header_error(
            "truncated_header",
            "the first 100 bytes of a dump file: the header is cut short",
            data[:100],
            "CorruptDumpError",
            100,
        )
    )

    _, data = small_set(work, "bad_header_crc")
    damaged = bytearray(data)
    damaged[PREFIX.size + 3] ^= 0x20  # a byte of the header body
    out.append(
        header_error(
            "bad_header_crc",
            "one byte of the header body changed: the header checksum (at 4092) fails",
            bytes(damaged),
            "CorruptDumpError",
            HEADER_SIZE - 4,
        )
    )

    _, data = small_set(work, "newer_major")
    out.append(
        header_error(
            "newer_major",
            "format version 2.0 with a valid header checksum",
            rebuild_header(data, major=2, minor=0),
            "UnsupportedVersionError",
            8,
        )
    )

    _, data = small_set(work, "must_understand_flag")
    out.append(
        header_error(
            "must_understand_flag",
            "header flag bit 5 (reserved must-understand) set, valid header checksum",
            rebuild_header(data, flags_or=1 << 5),
            "UnsupportedFeatureError",
            16,
        )
    )

    _, data = small_set(work, "reserved_ignorable_flag_minor0")
    out.append(
        header_error(
            "reserved_ignorable_flag_minor0",
            "header flag bit 16 (reserved ignorable) set in a minor-0 file, which cannot have"
            " it: valid header checksum",
            rebuild_header(data, flags_or=1 << 16),
            "CorruptDumpError",
            16,
        )
    )

    rec, data = small_set(work, "bad_frame_crc")
    frame = first_data_frame(rec)
    damaged = bytearray(data)
    damaged[frame.position + FRAME_HEADER_SIZE + 5] ^= 0x01
    fname = "bad_frame_crc.dmp"
    out.append(
        Vector(
            "bad_frame_crc",
            False,
            {fname: bytes(damaged)},
            invalid_spec(
                "bad_frame_crc",
                "one payload byte of the first TABLE_DATA frame flipped",
                {fname: bytes(damaged)},
                operation="read",
                error="CorruptDumpError",
                file=fname,
                offset=frame.position + FRAME_HEADER_SIZE,
                faults=3,
                first_fault_file=fname,
                first_fault_offset=frame.position,
                info={fname: {"file_type": "pumpkit", "file_size": len(damaged)}},
            ),
        )
    )

    rec, data = small_set(work, "huge_length")
    frame = first_data_frame(rec)
    old = decode_frame(data, frame.position).header
    forged = frame_header_bytes(
        old.kind,
        flags=old.flags,
        encoding=old.encoding,
        object_id=old.object_id,
        count=old.count,
        payload_length=0xFFFFFFF0,
        uncompressed_length=0xFFFFFFF0,
        payload_crc=old.payload_crc,
    )
    damaged = bytearray(data)
    damaged[frame.position : frame.position + FRAME_HEADER_SIZE] = forged
    fname = "huge_length.dmp"
    out.append(
        Vector(
            "huge_length",
            False,
            {fname: bytes(damaged)},
            invalid_spec(
                "huge_length",
                "a TABLE_DATA frame header with a valid header checksum claiming 0xFFFFFFF0"
                " payload bytes: refused before anything is allocated",
                {fname: bytes(damaged)},
                operation="read",
                error="CorruptDumpError",
                file=fname,
                offset=frame.position + 16,
                faults=3,
                first_fault_file=fname,
                first_fault_offset=frame.position,
                info={fname: {"file_type": "pumpkit", "file_size": len(damaged)}},
            ),
        )
    )

    rec, data = small_set(work, "truncated_frame")
    frame = first_data_frame(rec)
    cut = frame.position + FRAME_HEADER_SIZE + (frame.length - FRAME_HEADER_SIZE) // 2
    fname = "truncated_frame.dmp"
    out.append(
        Vector(
            "truncated_frame",
            False,
            {fname: data[:cut]},
            invalid_spec(
                "truncated_frame",
                "a cleanly closed file cut in the middle of its first TABLE_DATA frame: a reader"
                " goes to the INDEX frame first (7.3) and finds fewer than 32 bytes at its"
                " position P, past the end of the file (CorruptDumpError at P, section 11)",
                {fname: data[:cut]},
                operation="read",
                error="CorruptDumpError",
                file=fname,
                offset=index_position(data),
                faults=4,
                first_fault_file=fname,
                first_fault_offset=frame.position,
                info={fname: {"file_type": "pumpkit", "file_size": cut}},
            ),
        )
    )

    body = body_for("VECTORS_MIXED_SETS")
    _, set_a = write_set(work, "mixed_sets-%U.dmp", body, multifile_script, filesize=6144)
    _, set_b = write_set(
        work, "mixed_sets-%U.dmp", body, multifile_script, filesize=6144, guid=GUID_B
    )
    files = {
        "mixed_sets-01.dmp": set_a["mixed_sets-01.dmp"],
        "mixed_sets-02.dmp": set_b["mixed_sets-02.dmp"],
    }
    out.append(
        Vector(
            "mixed_sets",
            False,
            files,
            invalid_spec(
                "mixed_sets",
                "file 1 of one set and file 2 of another (same names, other GUID) opened"
                " together; file 3 of both is absent",
                files,
                operation="open",
                error="IncompleteSetError",
                file="mixed_sets-02.dmp",
                offset=24,
                faults=3,
                first_fault_file="mixed_sets-01.dmp",
                first_fault_offset=None,
                info={n: {"file_type": "pumpkit", "file_size": len(b)} for n, b in files.items()},
            ),
        )
    )

    body = body_for("VECTORS_MISSING_FILE")
    _, whole = write_set(work, "missing_file-%U.dmp", body, multifile_script, filesize=6144)
    if list(whole) != ["missing_file-01.dmp", "missing_file-02.dmp", "missing_file-03.dmp"]:
        raise AssertionError(f"missing_file made {list(whole)}, not three files")
    files = {n: b for n, b in whole.items() if n != "missing_file-02.dmp"}
    out.append(
        Vector(
            "missing_file",
            False,
            files,
            invalid_spec(
                "missing_file",
                "a three-file set with file 2 removed",
                files,
                operation="open",
                error="IncompleteSetError",
                file="missing_file-01.dmp",
                offset=None,
                faults=1,
                first_fault_file="missing_file-01.dmp",
                first_fault_offset=None,
                info={n: {"file_type": "pumpkit", "file_size": len(b)} for n, b in files.items()},
            ),
        )
    )

    _, data = small_set(work, "trailing_garbage")
    fname = "trailing_garbage.dmp"
    garbage = data + b"GARBAGE AFTER THE END FRAME\n" * 3
    out.append(
        Vector(
            "trailing_garbage",
            False,
            {fname: garbage},
            invalid_spec(
                "trailing_garbage",
                "a clean file with bytes after its END frame: readable, verify finds them",
                {fname: garbage},
                operation="verify",
                error=None,
                file=fname,
                offset=len(data),
                faults=2,
                first_fault_file=fname,
                first_fault_offset=len(data),
                info={fname: {"file_type": "pumpkit", "file_size": len(garbage)}},
            ),
        )
    )

    rec, data = small_set(work, "index_mismatch")
    frame = first_data_frame(rec)
    at = index_position(data)
    index = decode_frame(data, at)
    entries = decode_index(index.payload)
    wrong = [
        msgspec.structs.replace(e, length=e.length + 1) if e.position == frame.position else e
        for e in entries
    ]
    payload = encode_index(wrong)
    if len(payload) != len(index.payload):
        raise AssertionError("the rewritten index changed length")
    head = encode_frame_header(
        FrameKind.INDEX,
        flags=index.header.flags,
        encoding=index.header.encoding,
        object_id=index.header.object_id,
        count=index.header.count,
        payload_length=len(payload),
        uncompressed_length=len(payload),
        payload_crc=zlib.crc32(payload),
    )
    damaged = bytearray(data)
    damaged[at : at + FRAME_HEADER_SIZE + len(payload)] = head + payload
    fname = "index_mismatch.dmp"
    out.append(
        Vector(
            "index_mismatch",
            False,
            {fname: bytes(damaged)},
            invalid_spec(
                "index_mismatch",
                "the INDEX frame rewritten (valid checksums) so that the entry of the first"
                " TABLE_DATA frame gives its length one byte too long",
                {fname: bytes(damaged)},
                operation="read",
                error="CorruptDumpError",
                file=fname,
                offset=frame.position,
                faults=2,
                first_fault_file=fname,
                first_fault_offset=frame.position,
                info={fname: {"file_type": "pumpkit", "file_size": len(damaged)}},
            ),
        )
    )
    out += forged_frame_vectors(work)
    out += set_number_vectors(work)
    return out


def forged_frame(data: bytes, at: int, **changes: int) -> bytes:
    """``data`` with fields of the frame header at ``at`` changed and its checksum made valid."""
    h = parse_frame_header(data, at)
    fields = {
        "kind": h.kind,
        "flags": h.flags,
        "encoding": h.encoding,
        "object_id": h.object_id,
        "count": h.count,
        "payload_length": h.payload_length,
        "uncompressed_length": h.uncompressed_length,
        "payload_crc": h.payload_crc,
    }
    fields.update(changes)
    head = frame_header_bytes(**fields)
    return data[:at] + head + data[at + FRAME_HEADER_SIZE :]


def forged_frame_vectors(work: Path) -> list[Vector]:
    out = []
    cases = [
        (
            "must_understand_frame_flag",
            "the first TABLE_DATA frame has frame flag bit 1 (reserved must-understand) set,"
            " valid checksums",
            {"flags": 0x02},
            "UnsupportedFeatureError",
            5,
            3,
        ),
        (
            "bad_frame_kind",
            "the first TABLE_DATA frame says kind 200 (128-255 are never valid), valid checksums",
            {"kind": 200},
            "CorruptDumpError",
            4,
            3,
        ),
        (
            "unknown_encoding",
            "the first TABLE_DATA frame says encoding 9 (reserved for a later minor version),"
            " valid checksums: a reader must refuse to decode its payload (what verify says of"
            " it is not specified)",
            {"encoding": 9},
            "UnsupportedFeatureError",
            6,
            None,
        ),
    ]
    for name, description, changes, error, field_offset, faults in cases:
        rec, data = small_set(work, name)
        frame = first_data_frame(rec)
        damaged = forged_frame(data, frame.position, **changes)
        fname = f"{name}.dmp"
        out.append(
            Vector(
                name,
                False,
                {fname: damaged},
                invalid_spec(
                    name,
                    description,
                    {fname: damaged},
                    operation="read",
                    error=error,
                    file=fname,
                    offset=frame.position + field_offset,
                    faults=faults,
                    first_fault_file=fname,
                    first_fault_offset=frame.position,
                    info={fname: {"file_type": "pumpkit", "file_size": len(damaged)}},
                ),
            )
        )
    return out


def set_number_vectors(work: Path) -> list[Vector]:
    out = []
    body = body_for("VECTORS_DUPLICATE_FILE_NUMBER")
    _, whole = write_set(
        work, "duplicate_file_number-%U.dmp", body, multifile_script, filesize=6144
    )
    files = dict(whole)
    files["duplicate_file_number-04.dmp"] = whole["duplicate_file_number-02.dmp"]
    out.append(
        Vector(
            "duplicate_file_number",
            False,
            files,
            invalid_spec(
                "duplicate_file_number",
                "a three-file set and a copy of its file 2 under another name, opened together",
                files,
                operation="open",
                error="IncompleteSetError",
                file="duplicate_file_number-04.dmp",
                offset=20,
                faults=1,
                first_fault_file="duplicate_file_number-04.dmp",
                first_fault_offset=20,
                info={n: {"file_type": "pumpkit", "file_size": len(b)} for n, b in files.items()},
            ),
        )
    )

    body = body_for("VECTORS_EXTRA_FILE_NUMBER")
    _, whole = write_set(work, "extra_file_number-%U.dmp", body, multifile_script, filesize=6144)
    files = dict(whole)
    files["extra_file_number-04.dmp"] = rebuild_header(
        whole["extra_file_number-03.dmp"], file_number=4
    )
    out.append(
        Vector(
            "extra_file_number",
            False,
            files,
            invalid_spec(
                "extra_file_number",
                "a three-file set (set_file_count 3) and a fourth file of the same GUID that"
                " says it is file number 4 (section 9, rule 3)",
                files,
                operation="open",
                error="IncompleteSetError",
                file="extra_file_number-04.dmp",
                offset=20,
                faults=1,
                first_fault_file="extra_file_number-04.dmp",
                first_fault_offset=20,
                info={n: {"file_type": "pumpkit", "file_size": len(b)} for n, b in files.items()},
            ),
        )
    )
    return out


# -- valid vectors put together frame by frame


def two_batches(rec: Recorder) -> None:
    rec.table(PEOPLE)
    rec.batch(1, people_rows(1, 3))
    rec.batch(1, people_rows(4, 3))


def composed(
    name: str,
    description: str,
    body: HeaderBody,
    *,
    version: str = f"{FORMAT_VERSION}.0",
    **options: Any,
) -> Vector:
    cf = ComposedFile(f"{name}.dmp", body, **options)
    rec = Recorder(cf)
    two_batches(rec)
    files = {f"{name}.dmp": cf.finish()}
    return Vector(
        name,
        True,
        files,
        valid_spec(name, description, rec, files, body, version=version, block_size=cf.header_size),
    )


def composed_vectors(work: Path) -> list[Vector]:
    # ComposedFile must lay a file out exactly as DumpSetWriter does: check it on one set.
    body = body_for("VECTORS_COMPOSED_CHECK", compression="zstd", data_compressed=True)
    _, written = write_set(work, "check.dmp", body, two_batches)
    cf = ComposedFile("check.dmp", body)
    two_batches(Recorder(cf))
    if cf.finish() != written["check.dmp"]:
        raise AssertionError("ComposedFile and DumpSetWriter lay out the same set differently")

    zstd = {"compression": "zstd", "metadata_compressed": True, "data_compressed": True}
    return [
        composed(
            "header_size_512",
            "a 512-byte header (the smallest allowed): frames start at 512",
            body_for("VECTORS_HEADER_SIZE_512"),
            header_size=512,
        ),
        composed(
            "header_size_65536",
            "a 65536-byte header (the largest allowed): frames start at 65536",
            body_for("VECTORS_HEADER_SIZE_65536"),
            header_size=65536,
        ),
        composed(
            "compressed_index",
            "the INDEX frame zstd-compressed (a 1.0 writer does not; a reader must accept it)",
            body_for("VECTORS_COMPRESSED_INDEX", **zstd),
            index_compressed=True,
        ),
        composed(
            "ignorable_frame_flag",
            "every frame but INDEX and END has the ignorable frame flag bits 4-7 set in a"
            " minor-0 file: readers ignore them",
            body_for("VECTORS_IGNORABLE_FRAME_FLAG", **zstd),
            frame_flags=0xF0,
        ),
        composed(
            "index_extra_fields",
            "a 1.1 file whose INDEX entries carry a seventh and eighth element: readers ignore"
            " elements after the sixth",
            body_for("VECTORS_INDEX_EXTRA_FIELDS"),
            version=f"{FORMAT_VERSION}.1",
            minor=1,
            index_extra=(7, "added in 1.1"),
        ),
    ]


# -- format 1.1: password encryption

PASSWORD = "pumpkit-vector"
WRONG_PASSWORD = "pumpkit-vectors"


def encrypted_all_script(rec: Recorder) -> None:
    rec.log(["export started", "job VECTORS_ENCRYPTED in TABLE mode"])
    rec.table(CUSTOMERS)
    rec.table(ORDERS)
    rec.batch(1, customer_rows(1, 30))
    rec.batch(2, order_rows(1, 40))
    rec.batch(1, customer_rows(31, 10))
    rec.control_table("VECTORS_ENCRYPTED", CONTROL_COLUMNS, CONTROL_ROWS[:2])


def encrypted_set(
    name: str, job: str, script: Callable[[Recorder], None], encryption: Encryption, **body: Any
) -> tuple[Recorder, dict[str, bytes], HeaderBody]:
    """A one-file format 1.1 set named ``NAME.dmp``, encrypted, put together frame by frame."""
    header_body = body_for(job, **body, **encryption.body_fields())
    cf = ComposedFile(f"{name}.dmp", header_body, minor=1, encryption=encryption)
    rec = Recorder(cf)
    script(rec)
    return rec, {f"{name}.dmp": cf.finish()}, header_body


def encrypted_vectors() -> list[Vector]:
    out = []
    everything = Encryption(PASSWORD, "ALL")
    zstd_data = {"compression": "zstd", "compression_level": 3, "data_compressed": True}
    version = f"{FORMAT_VERSION}.1"

    name = "encrypted_all"
    rec, files, body = encrypted_set(
        name, "VECTORS_ENCRYPTED", encrypted_all_script, everything, **zstd_data
    )
    out.append(
        Vector(
            name,
            True,
            files,
            valid_spec(
                name,
                f"a 1.1 set encrypted with the password {PASSWORD!r} (scrypt N=1024 r=8 p=1,"
                " a fixed salt and fixed nonces), scope ALL: LOG, METADATA, TABLE_DATA and"
                " CONTROL_TABLE frames encrypted, TABLE_DATA zstd-compressed before it is"
                " encrypted, the others not compressed; INDEX and END in clear",
                rec,
                files,
                body,
                version=version,
                password=PASSWORD,
            ),
        )
    )

    name = "encrypted_data_only"
    data_only = Encryption(PASSWORD, "DATA_ONLY")

    def data_only_script(rec: Recorder) -> None:
        rec.table(PEOPLE)
        rec.batch(1, people_rows(1, 4))
        rec.batch(1, people_rows(5, 3))
        rec.control_table("VECTORS_ENCRYPTED_DATA_ONLY", CONTROL_COLUMNS, CONTROL_ROWS[:1])

    rec, files, body = encrypted_set(
        name, "VECTORS_ENCRYPTED_DATA_ONLY", data_only_script, data_only
    )
    out.append(
        Vector(
            name,
            True,
            files,
            valid_spec(
                name,
                f"a 1.1 set encrypted with the password {PASSWORD!r}, scope DATA_ONLY: only"
                " the TABLE_DATA frames are encrypted (not compressed); METADATA and"
                " CONTROL_TABLE are in clear",
                rec,
                files,
                body,
                version=version,
                password=PASSWORD,
            ),
        )
    )

    name = "encrypted_tampered"
    rec, files, body = encrypted_set(
        name, "VECTORS_ENCRYPTED", encrypted_all_script, everything, **zstd_data
    )
    ((fname, data),) = files.items()
    frame = first_data_frame(rec)
    payload_at = frame.position + FRAME_HEADER_SIZE
    damaged = bytearray(data)
    damaged[payload_at + 12 + 5] ^= 0x01  # a byte of the ciphertext, past the 12-byte nonce
    stored = bytes(damaged[payload_at : frame.position + frame.length])
    damaged = bytearray(
        forged_frame(bytes(damaged), frame.position, payload_crc=zlib.crc32(stored))
    )
    out.append(
        Vector(
            name,
            False,
            {fname: bytes(damaged)},
            invalid_spec(
                name,
                f"encrypted_all's set (password {PASSWORD!r}) with one ciphertext byte of"
                " the first TABLE_DATA frame flipped and both frame checksums made valid"
                " again: only the GCM tag finds it, when the frame is decrypted (verify,"
                " which has no password, cannot: what it reports is not specified)",
                {fname: bytes(damaged)},
                operation="read",
                error="CorruptDumpError",
                file=fname,
                offset=payload_at,
                faults=None,
                first_fault_file=None,
                first_fault_offset=None,
                info={fname: {"file_type": "pumpkit", "file_size": len(damaged)}},
                password=PASSWORD,
            ),
        )
    )

    name = "encrypted_wrong_password"
    rec, files, body = encrypted_set(
        name, "VECTORS_ENCRYPTED", encrypted_all_script, everything, **zstd_data
    )
    ((fname, data),) = files.items()
    out.append(
        Vector(
            name,
            False,
            files,
            invalid_spec(
                name,
                f"a sound set encrypted like encrypted_all with the password {PASSWORD!r},"
                f" unlocked with {WRONG_PASSWORD!r}: the key check in the header refuses it"
                " before any frame is read (a fault of the whole set: no offset)",
                files,
                operation="open",
                error="EncryptedError",
                file=fname,
                offset=None,
                faults=0,
                first_fault_file=None,
                first_fault_offset=None,
                info={fname: {"file_type": "pumpkit", "file_size": len(data)}},
                password=WRONG_PASSWORD,
            ),
        )
    )

    name = "encrypted_no_password"
    rec, files, body = encrypted_set(
        name, "VECTORS_ENCRYPTED", encrypted_all_script, everything, **zstd_data
    )
    ((fname, data),) = files.items()
    first = rec.written[0].location
    out.append(
        Vector(
            name,
            False,
            files,
            invalid_spec(
                name,
                f"a sound set encrypted like encrypted_all (password {PASSWORD!r}) read"
                " without a password: opening it works, decoding its first frame (an"
                " encrypted LOG frame at P) raises EncryptedError at P",
                files,
                operation="read",
                error="EncryptedError",
                file=fname,
                offset=first.position,
                faults=0,
                first_fault_file=None,
                first_fault_offset=None,
                info={fname: {"file_type": "pumpkit", "file_size": len(data)}},
            ),
        )
    )
    return out


# --- format 1.3: granule tags, PG_ARCHIVE, and a vector for every fault of section 11 -------

#: The 12-byte granule tag (section 5.9), written out here as the spec gives it.
GRANULE_TAG = struct.Struct("<IIB3s")
TAG_FIRST, TAG_LAST = 0x01, 0x02
FRAME_TAGGED = 0x08
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def copy_stream(rows: list[tuple[int, str | None]]) -> bytes:
    """PostgreSQL's binary COPY stream of rows (id int8, name text), packed by hand."""
    out = bytearray(COPY_SIGNATURE + struct.pack(">ii", 0, 0))
    for ident, name in rows:
        out += struct.pack(">hiq", 2, 8, ident)
        if name is None:
            out += struct.pack(">i", -1)
        else:
            text = name.encode("utf-8")
            out += struct.pack(">i", len(text)) + text
    return bytes(out + struct.pack(">h", -1))


def tagged_frame(
    data: bytes,
    *,
    object_id: int,
    count: int,
    encoding: int,
    tag: GranuleTag,
    encryption: Encryption | None = None,
    nonce: bytes = b"",
) -> tuple[bytes, bytes]:
    """A tagged TABLE_DATA frame packed by hand (5.9): the tag in clear, then the payload (or
    nonce, AES-256-GCM ciphertext and GCM tag, with the tag in the associated data)."""
    flags = FRAME_TAGGED
    tag_flags = (TAG_FIRST if tag.first else 0) | (TAG_LAST if tag.last else 0)
    tag_bytes = GRANULE_TAG.pack(tag.granule, tag.sequence, tag_flags, bytes(3))
    body = data
    if encryption is not None:
        flags |= FRAME_ENCRYPTED
        aad = FRAME_AAD.pack(
            b"PKFR", FrameKind.TABLE_DATA, flags, encoding, 0, object_id, count, len(data)
        )
        body = nonce + AESGCM(encryption.key).encrypt(nonce, data, aad + tag_bytes)
    stored = tag_bytes + body
    header = frame_header_bytes(
        FrameKind.TABLE_DATA,
        flags=flags,
        encoding=encoding,
        object_id=object_id,
        count=count,
        payload_length=len(stored),
        uncompressed_length=len(data),
        payload_crc=zlib.crc32(stored),
    )
    return header, stored


class Recorder13(Recorder):
    """A Recorder that also writes tagged TABLE_DATA frames (format 1.3) and METADATA with a
    ``definition`` (the form pumpkit's exports write, section 5.5)."""

    def table_def(self, spec: TableSpec, definition: dict[str, Any]) -> None:
        self.tables[spec.object_id] = spec
        self.rows.setdefault(spec.object_id, [])
        value = {
            "object_type": spec.object_type,
            "schema": spec.schema,
            "name": spec.name,
            "definition": definition,
        }
        self._write(FrameKind.METADATA, value, object_id=spec.object_id, count=1, compress=False)

    def tagged(
        self,
        object_id: int,
        data: bytes,
        tag: GranuleTag,
        *,
        count: int,
        encoding: int = Encoding.MSGPACK,
        value: Any = None,
        is_data: bool = True,
        encryption: Encryption | None = None,
    ) -> Location:
        nonce = b""
        if encryption is not None:
            nonce = hashlib.sha256(f"1.3 frame {len(self.written)}".encode()).digest()[:12]
        head, stored = tagged_frame(
            data,
            object_id=object_id,
            count=count,
            encoding=encoding,
            tag=tag,
            encryption=encryption,
            nonce=nonce,
        )
        assert isinstance(self.writer, DumpSetWriter)
        loc = self.writer.write_built(head, stored)
        self.written.append(
            Written(
                loc,
                int(FrameKind.TABLE_DATA),
                object_id,
                count,
                int(encoding),
                data,
                value,
                tag=tag,
                data=is_data,
            )
        )
        return loc


def write_set_13(
    workdir: Path,
    template: str,
    body: HeaderBody,
    script: Callable[[Recorder13], None],
    *,
    finish: str = "close",
    cipher: FrameCipher | None = None,
) -> tuple[Recorder13, dict[str, bytes]]:
    """One set as pumpkit's 1.3 writer lays it out: its header is not cut back."""
    directory = Path(tempfile.mkdtemp(dir=workdir))
    writer = DumpSetWriter(
        [template], directory=directory, body=body, guid=GUID_A, created=CREATED, cipher=cipher
    )
    rec = Recorder13(writer)
    script(rec)
    paths = list(writer.paths)
    if finish == "close":
        writer.close()
    else:
        writer.abandon()
    return rec, {p.name: p.read_bytes() for p in paths}


BIG = TableSpec(1, "public", "big", [("id", "bigint"), ("name", "text")])
BIG_DEFINITION = {
    "schema": "public",
    "name": "big",
    "ddl": "CREATE TABLE public.big (id bigint NOT NULL, name text)",
    "columns": ["id", "name"],
    "rowid_column": None,
    "column_types": ["bigint", "text"],
    "column_kinds": ["int8", "text"],
    "row_format": "pgcopy",
}
NOTES = TableSpec(1, "main", "notes", [("rowid", "INTEGER"), ("body", "TEXT")])
NOTES_DEFINITION = {
    "schema": "main",
    "name": "notes",
    "ddl": "CREATE TABLE notes (body TEXT)",
    "columns": ["rowid", "body"],
    "rowid_column": "rowid",
    "row_format": "msgpack",
}


def big_rows(start: int, n: int) -> list[tuple[int, str | None]]:
    return [(i, None if i % 7 == 0 else f"row {i}") for i in range(start, start + n)]


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def v_crashcut_parallel(work: Path) -> Vector:
    body = body_for("VECTORS_CRASHCUT_PARALLEL", source_engine="postgresql", source_version="15")
    streams = {1: big_rows(1, 6), 2: big_rows(101, 5), 3: big_rows(201, 6)}
    parts = {g: pieces(copy_stream(rows), 40) for g, rows in streams.items()}
    # Two workers: granules 1 and 2 interleave; granule 3 was begun when the crash came.
    order = [(1, 0), (2, 0), (1, 1), (2, 1), (3, 0), (1, 2), (2, 2), (3, 1)]
    order += [(g, i) for g in (1, 2) for i in range(3, len(parts[g]))]

    def script(rec: Recorder13) -> None:
        rec.table_def(BIG, BIG_DEFINITION)
        for granule, i in order:
            last = i == len(parts[granule]) - 1
            rows = streams[granule]
            rec.tagged(
                1,
                parts[granule][i],
                GranuleTag(granule, i, first=i == 0, last=last),
                count=len(rows) if last else 0,
                encoding=Encoding.PGCOPY,
                is_data=granule != 3,
            )
        rec.rows[1] = [list(r) for g in (1, 2) for r in streams[g]]

    rec, files = write_set_13(work, "crashcut_parallel.dmp", body, script, finish="abandon")
    (data,) = files.values()
    name = "crashcut_parallel"
    return Vector(
        name,
        True,
        files,
        valid_spec(
            name,
            "format 1.3: a --parallel 2 PostgreSQL export cut short by kill -9, no control"
            " table: the PGCOPY frames of granules 1 and 2 interleave and both are whole"
            " (FIRST to LAST); granule 3 has two frames and no LAST, so it is unfinished and"
            " none of its rows are data (section 8.1); rows decode per granule as one COPY"
            " stream each, NULLs included",
            rec,
            files,
            body,
            clean=False,
            version="1.3",
            verify={"faults": 1, "first_fault_file": f"{name}.dmp", "first_fault_offset": len(data)},
            readable_end={1: len(data)},
        ),
    )


def v_crashcut_unfinished(work: Path) -> Vector:
    body = body_for("VECTORS_CRASHCUT_UNFINISHED")

    def batch(rec: Recorder13, rows: list[list[Any]], tag: GranuleTag, is_data: bool) -> None:
        rec.tagged(1, msgspec.msgpack.encode(rows), tag, count=len(rows), is_data=is_data)
        if is_data:
            rec.rows[1].extend(rows)

    def script(rec: Recorder13) -> None:
        rec.table(PEOPLE)
        batch(rec, people_rows(1, 2), GranuleTag(1, 0, first=True, last=False), True)
        batch(rec, people_rows(3, 2), GranuleTag(1, 1, first=False, last=True), True)
        # Granule 2 begun, then (a restart) begun again and finished: the first run is dead.
        batch(rec, people_rows(11, 2), GranuleTag(2, 0, first=True, last=False), False)
        batch(rec, people_rows(13, 1), GranuleTag(2, 1, first=False, last=False), False)
        batch(rec, people_rows(11, 2), GranuleTag(2, 0, first=True, last=False), True)
        batch(rec, people_rows(13, 2), GranuleTag(2, 1, first=False, last=False), True)
        batch(rec, people_rows(15, 1), GranuleTag(2, 2, first=False, last=True), True)
        # Granule 3: its second frame never made it (a gap), then the crash.
        batch(rec, people_rows(21, 2), GranuleTag(3, 0, first=True, last=False), False)
        batch(rec, people_rows(25, 2), GranuleTag(3, 2, first=False, last=True), False)

    rec, files = write_set_13(work, "crashcut_unfinished.dmp", body, script, finish="abandon")
    (data,) = files.values()
    name = "crashcut_unfinished"
    return Vector(
        name,
        True,
        files,
        valid_spec(
            name,
            "format 1.3, msgpack rows, no control table: granule 1 whole; granule 2 begun,"
            " begun again by a restart and finished (only the last complete run is data);"
            " granule 3 with a missing frame (sequence 1), so unfinished even though its last"
            " frame says LAST (section 8.1)",
            rec,
            files,
            body,
            clean=False,
            version="1.3",
            verify={"faults": 1, "first_fault_file": f"{name}.dmp", "first_fault_offset": len(data)},
            readable_end={1: len(data)},
        ),
    )


def v_rowid_table(work: Path) -> Vector:
    body = body_for("VECTORS_ROWID")
    rows = [[5, "first note"], [9, None], [12, "third"]]

    def script(rec: Recorder13) -> None:
        rec.table_def(NOTES, NOTES_DEFINITION)
        rec.tagged(1, msgspec.msgpack.encode(rows), GranuleTag(1, 0, first=True, last=True), count=3)
        rec.rows[1].extend(rows)

    rec, files = write_set_13(work, "rowid_table.dmp", body, script)
    return Vector(
        "rowid_table",
        True,
        files,
        valid_spec(
            "rowid_table",
            "format 1.3: an SQLite rowid table without an INTEGER PRIMARY KEY; its DDL declares"
            " one column (body), its rows hold two: the rowid first (definition.rowid_column"
            " 'rowid', definition.columns ['rowid', 'body']), as section 5.5 says",
            rec,
            files,
            body,
            version="1.3",
        ),
    )


def v_encrypted_tagged(work: Path) -> Vector:
    encryption = Encryption(PASSWORD, "DATA_ONLY")
    body = body_for("VECTORS_ENCRYPTED_TAGGED", **encryption.body_fields())
    rows = people_rows(5, 3)

    def script(rec: Recorder13) -> None:
        rec.table(PEOPLE)
        rec.tagged(
            1,
            msgspec.msgpack.encode(rows),
            GranuleTag(1, 0, first=True, last=True),
            count=3,
            encryption=encryption,
        )
        rec.rows[1].extend(rows)

    rec, files = write_set_13(
        work, "encrypted_tagged.dmp", body, script, cipher=FrameCipher(encryption.key)
    )
    data_frame = next(w for w in rec.written if w.kind == FrameKind.TABLE_DATA)
    assert len(data_frame.raw) == 61 and data_frame.location.length == 32 + 12 + 12 + 61 + 16
    return Vector(
        "encrypted_tagged",
        True,
        files,
        valid_spec(
            "encrypted_tagged",
            "format 1.3, password encryption of scope DATA_ONLY: a tagged TABLE_DATA frame"
            " of 3 rows (61 bytes of msgpack): uncompressed_length 61, payload_length"
            " 12 (granule tag, in clear) + 12 (nonce) + 61 + 16 (GCM tag) = 101; the tag is"
            " part of the GCM associated data (section 5.7)",
            rec,
            files,
            body,
            version="1.3",
            password=PASSWORD,
        ),
    )


def forge_prefix(data: bytes, **fields: int) -> bytes:
    """``data`` with fields of the 80-byte prefix changed (by the names of section 3.2) and
    the header CRC made valid again."""
    names = [
        "magic", "major", "minor", "header_size", "flags", "file_number", "guid",
        "created_us", "data_end", "index_position", "control_position", "body_length",
        "reserved",
    ]  # fmt: skip
    values = header_fields(data)
    for name, value in fields.items():
        values[names.index(name)] = value
    out = bytearray(data)
    PREFIX.pack_into(out, 0, *values)
    size = header_fields(data)[3]
    struct.pack_into("<I", out, size - 4, zlib.crc32(out[: size - 4]))
    return bytes(out)


def forge_payload(data: bytes, at: int, offset: int, new: bytes) -> bytes:
    """``data`` with bytes of the payload of the frame at ``at`` replaced from ``offset`` and
    both frame checksums made valid again."""
    h = parse_frame_header(data, at)
    out = bytearray(data)
    start = at + FRAME_HEADER_SIZE + offset
    out[start : start + len(new)] = new
    payload = out[at + FRAME_HEADER_SIZE : at + FRAME_HEADER_SIZE + h.payload_length]
    struct.pack_into("<I", out, at + 24, zlib.crc32(payload))
    struct.pack_into("<I", out, at + 28, zlib.crc32(out[at : at + 28]))
    return bytes(out)


def measured(
    work: Path,
    name: str,
    description: str,
    files: dict[str, bytes],
    *,
    operation: str,
    error: str | None,
    file: str,
    offset: int | None,
    header_fault: bool = False,
    verify_known: bool = True,
) -> Vector:
    """An invalid vector whose verify expectation is what ``pumpkit verify`` reports of it
    (``verify_known=False``: null, the format does not say)."""
    directory = Path(tempfile.mkdtemp(dir=work))
    for fname, data in files.items():
        (directory / fname).write_bytes(data)
    report = verify_paths([directory / f for f in files])
    order = list(files)
    assert report.faults or not verify_known, f"{name}: verify finds nothing"
    first = min(
        report.faults,
        key=lambda f: (order.index(Path(f.path).name), -1 if f.offset is None else f.offset),
        default=None,
    )
    info: dict[str, dict[str, Any]] = {}
    for fname, data in files.items():
        info[fname] = (
            {"raises": error, "offset": offset}
            if header_fault and fname == file
            else {"file_type": "pumpkit", "file_size": len(data)}
        )
    return Vector(
        name,
        False,
        files,
        invalid_spec(
            name,
            description,
            files,
            operation=operation,
            error=error,
            file=file,
            offset=offset,
            faults=len(report.faults) if verify_known else None,
            first_fault_file=None if first is None else Path(first.path).name,
            first_fault_offset=None if first is None else first.offset,
            info=info,
        ),
    )


def tagged_small_set(work: Path, name: str) -> tuple[Recorder13, bytes]:
    """A clean 1.3 file: a table and two tagged TABLE_DATA frames of one granule."""

    def script(rec: Recorder13) -> None:
        rec.table(PEOPLE)
        rows = people_rows(1, 3)
        rec.tagged(1, msgspec.msgpack.encode(rows), GranuleTag(1, 0, first=True, last=False), count=3)
        rows = people_rows(4, 2)
        rec.tagged(1, msgspec.msgpack.encode(rows), GranuleTag(1, 1, first=False, last=True), count=2)

    rec, files = write_set_13(work, f"{name}.dmp", body_for("VECTORS_1_3"), script)
    (data,) = files.values()
    return rec, data


def header_fault_vectors_13(work: Path) -> list[Vector]:
    """Section 11's header faults that had no vector before 1.3."""
    out = []
    cases: list[tuple[str, str, Callable[[bytes], bytes], str, int]] = [
        ("header_under_80", "the first 50 bytes of a dump file (it begins like the magic)",
         lambda d: d[:50], "CorruptDumpError", 50),
        ("major_zero", "format major version 0, valid header checksum",
         lambda d: forge_prefix(d, major=0), "CorruptDumpError", 8),
        ("bad_header_size", "header_size 1000: not a multiple of 512",
         lambda d: forge_prefix(d, header_size=1000), "CorruptDumpError", 12),
        ("created_out_of_range", "created_us in the year 10000, valid header checksum",
         lambda d: forge_prefix(d, created_us=253_402_300_800_000_000), "CorruptDumpError", 40),
        ("file_number_zero", "file_number 0, valid header checksum",
         lambda d: forge_prefix(d, file_number=0), "CorruptDumpError", 20),
        ("data_end_in_header", "data_end 100: inside the header",
         lambda d: forge_prefix(d, data_end=100), "CorruptDumpError", 48),
        ("index_in_header", "index_position 100: inside the header",
         lambda d: forge_prefix(d, index_position=100), "CorruptDumpError", 56),
        ("control_in_header", "control_position 100 and the CONTROL_TABLE flag: inside the header",
         lambda d: forge_prefix(d, control_position=100, flags=3), "CorruptDumpError", 64),
        ("index_not_before_data_end", "index_position equal to data_end",
         lambda d: forge_prefix(d, index_position=header_fields(d)[8]), "CorruptDumpError", 56),
        ("control_flag_mismatch", "the CONTROL_TABLE flag set, control_position 0",
         lambda d: forge_prefix(d, flags=header_fields(d)[4] | 2), "CorruptDumpError", 64),
        ("header_reserved", "the reserved u32 at 76 is 1",
         lambda d: forge_prefix(d, reserved=1), "CorruptDumpError", 76),
        ("body_length_too_big", "body_length 4096: more than H - 84",
         lambda d: forge_prefix(d, body_length=4096), "CorruptDumpError", 72),
        ("encrypted_flag_mismatch", "the ENCRYPTED header flag set, the body's encryption 'none'",
         lambda d: forge_prefix(d, flags=header_fields(d)[4] | 4), "CorruptDumpError", 16),
    ]  # fmt: skip
    for name, description, forge, error, offset in cases:
        _, data = small_set(work, name)
        fname = f"{name}.dmp"
        out.append(
            measured(work, name, description, {fname: forge(data)}, operation="open",
                     error=error, file=fname, offset=offset, header_fault=True)
        )  # fmt: skip
    _, data = small_set(work, "header_padding")
    body_end = PREFIX.size + header_fields(data)[11]
    padded = bytearray(data)
    padded[body_end + 10] = 1
    struct.pack_into("<I", padded, HEADER_SIZE - 4, zlib.crc32(padded[: HEADER_SIZE - 4]))
    out.append(
        measured(work, "header_padding", "a padding byte of the header is 1, valid checksum",
                 {"header_padding.dmp": bytes(padded)}, operation="open",
                 error="CorruptDumpError", file="header_padding.dmp", offset=body_end + 10,
                 header_fault=True)
    )  # fmt: skip
    _, data = small_set(work, "body_not_a_map")
    out.append(
        measured(work, "body_not_a_map", "the header body is a msgpack array, not a map",
                 {"body_not_a_map.dmp": rebuild_header(data, body=msgspec.msgpack.encode([1]))},
                 operation="open", error="CorruptDumpError", file="body_not_a_map.dmp",
                 offset=80, header_fault=True)
    )  # fmt: skip
    return out


def frame_fault_vectors_13(work: Path) -> list[Vector]:
    """Section 11's frame faults that had no vector before 1.3."""
    out = []

    def one(name: str, description: str, data: bytes, error: str | None, offset: int,
            operation: str = "read", verify_known: bool = True) -> None:  # fmt: skip
        fname = f"{name}.dmp"
        out.append(
            measured(work, name, description, {fname: data}, operation=operation,
                     error=error, file=fname, offset=offset, verify_known=verify_known)
        )  # fmt: skip

    rec, data = small_set(work, "bad_frame_header_crc")
    p = first_data_frame(rec).position
    damaged = bytearray(data)
    damaged[p + 12] ^= 0x01  # count, with the frame header's CRC left as it was
    one("bad_frame_header_crc", "one byte of the first TABLE_DATA frame's header changed:"
        " its header_crc fails", bytes(damaged), "CorruptDumpError", p)  # fmt: skip

    rec, data = small_set(work, "no_frame_magic")
    p = first_data_frame(rec).position
    one("no_frame_magic", "the first TABLE_DATA frame's magic is PKFX (the INDEX points at it)",
        data[:p] + b"PKFX" + data[p + 4 :], "CorruptDumpError", p)  # fmt: skip

    rec, data = small_set(work, "frame_reserved")
    p = first_data_frame(rec).position
    forged = bytearray(data)
    forged[p + 7] = 1
    struct.pack_into("<I", forged, p + 28, zlib.crc32(forged[p : p + 28]))
    one("frame_reserved", "the first TABLE_DATA frame's reserved byte is 1, valid checksums",
        bytes(forged), "CorruptDumpError", p + 7)  # fmt: skip

    rec, data = small_set(work, "huge_uncompressed_length")
    p = first_data_frame(rec).position
    one("huge_uncompressed_length", "uncompressed_length 2^28 + 1 (over MAX_PAYLOAD), valid"
        " checksums", forged_frame(data, p, uncompressed_length=(1 << 28) + 1),
        "CorruptDumpError", p + 20)  # fmt: skip

    rec, data = small_set(work, "lengths_differ")
    w = first_data_frame(rec)
    one("lengths_differ", "an uncompressed frame whose uncompressed_length is one more than"
        " payload_length, valid checksums",
        forged_frame(data, w.position, uncompressed_length=w.length - 32 + 1),
        "CorruptDumpError", w.position + 20)  # fmt: skip

    rec, data = small_set(work, "wrong_encoding_for_kind")
    meta = next(x.location for x in rec.written if x.kind == FrameKind.METADATA)
    one("wrong_encoding_for_kind", "the METADATA frame says encoding RAW (0), which 5.5 does"
        " not allow a METADATA frame", forged_frame(data, meta.position, encoding=0),
        "CorruptDumpError", meta.position + 6)  # fmt: skip

    rec, data = small_set(work, "count_mismatch")
    w = first_data_frame(rec)
    one("count_mismatch", "the first TABLE_DATA frame's count is one more than the rows it"
        " holds (its INDEX entry agrees): a reader of its rows refuses it",
        index_agrees(forged_frame(data, w.position, count=6), w.position, count=6),
        "CorruptDumpError", w.position, verify_known=False)  # fmt: skip

    rec, data = small_set(work, "bad_msgpack")
    w = first_data_frame(rec)
    one("bad_msgpack", "the first TABLE_DATA frame's payload starts with 0xC1 (never used in"
        " msgpack), checksums fixed: verify finds it at P + 32; a reader of its rows at P",
        forge_payload(data, w.position, 0, b"\xc1"), "CorruptDumpError", w.position)  # fmt: skip

    rec, data = small_set(work, "index_not_array")
    at = index_position(data)
    one("index_not_array", "the INDEX payload is a msgpack map, checksums fixed",
        forge_payload(data, at, 0, b"\x80"), "CorruptDumpError", at)  # fmt: skip

    rec, data = small_set(work, "truncated_before_index")
    at = index_position(data)
    one("truncated_before_index", "a cleanly closed file cut 10 bytes into its INDEX frame's"
        " header: fewer than 32 bytes where the header says a frame starts",
        data[: at + 10], "CorruptDumpError", at)  # fmt: skip

    rec, data = tagged_small_set(work, "tagged_metadata")
    meta = next(x.location for x in rec.written if x.kind == FrameKind.METADATA)
    h = parse_frame_header(data, meta.position)
    one("tagged_metadata", "a METADATA frame with the TAGGED flag (only TABLE_DATA is tagged)",
        forged_frame(data, meta.position, flags=h.flags | FRAME_TAGGED, uncompressed_length=h.uncompressed_length - 12),
        "CorruptDumpError", meta.position + 5)  # fmt: skip

    for name, description, offset, new in (
        ("tag_granule_zero", "a granule tag naming granule 0", 0, b"\0\0\0\0"),
        ("tag_first_mismatch", "a granule tag with sequence 0 and FIRST clear", 8, b"\x00"),
        ("tag_unknown_flag", "a granule tag with tag flag bit 2 set", 8, b"\x05"),
        ("tag_reserved", "a granule tag whose reserved bytes are not zero", 9, b"\x01"),
    ):
        rec, data = tagged_small_set(work, name)
        w = first_data_frame(rec)
        field_at = 4 if name == "tag_first_mismatch" else offset
        one(name, description + ", checksums fixed", forge_payload(data, w.position, offset, new),
            "CorruptDumpError", w.position + 32 + field_at)  # fmt: skip
    return out


def index_agrees(data: bytes, position: int, *, count: int) -> bytes:
    """``data`` with the INDEX entry of the frame at ``position`` saying ``count``, the INDEX
    frame's checksums made valid again (its payload keeps its length: small counts)."""
    at = index_position(data)
    h = parse_frame_header(data, at)
    payload = data[at + 32 : at + 32 + h.payload_length]
    entries = msgspec.msgpack.decode(payload)
    for e in entries:
        if e[3] == position:
            e[2] = count
    new = msgspec.msgpack.encode(entries)
    assert len(new) == len(payload)
    return forge_payload(data, at, 0, new)


def set_size_vector(work: Path) -> Vector:
    body = body_for("VECTORS_SET_SIZES")
    _, files = write_set(work, "set_sizes-%U.dmp", body, multifile_script, filesize=6144)
    names = list(files)
    last = names[-1]
    head = msgspec.msgpack.decode(files[last][PREFIX.size : PREFIX.size + header_fields(files[last])[11]])
    head["set_file_count"] = len(names) + 1
    files[last] = rebuild_header(files[last], body=msgspec.msgpack.encode(head))
    return measured(work, "set_sizes_disagree", "a three-file set whose last header says it"
                    " has four files: the headers disagree on the set's size", files,
                    operation="open", error="IncompleteSetError", file=names[0], offset=None)  # fmt: skip


def vectors_1_3(work: Path) -> list[Vector]:
    return [
        v_crashcut_parallel(work),
        v_crashcut_unfinished(work),
        v_rowid_table(work),
        v_encrypted_tagged(work),
        *header_fault_vectors_13(work),
        *frame_fault_vectors_13(work),
        set_size_vector(work),
    ]


def all_vectors(work: Path) -> list[Vector]:
    valid = [
        v_minimal(work),
        v_compressed(work),
        v_multifile(work),
        v_types(work),
        v_crashcut(work),
        v_crashcut_partial(work),
        v_no_objects(work),
        v_future_minor(work),
        *composed_vectors(work),
    ]
    return valid + invalid_vectors(work) + encrypted_vectors() + vectors_1_3(work)


def rendered(vectors: list[Vector]) -> dict[Path, bytes]:
    """Every file to write, by path relative to the output directory."""
    out: dict[Path, bytes] = {}
    for v in vectors:
        sub = Path("valid" if v.valid else "invalid")
        for name, data in v.files.items():
            out[sub / name] = data
        text = json.dumps(v.spec, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
        out[sub / f"{v.name}.json"] = text.encode("ascii")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail unless every file is the same"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pumpkit-vectors-"))
    try:
        files = rendered(all_vectors(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    outdir: Path = args.outdir
    differ, missing = [], []
    for rel, data in sorted(files.items()):
        target = outdir / rel
        if not target.exists():
            missing.append(rel)
        elif target.read_bytes() != data:
            differ.append(rel)
    for rel in differ:
        print(f"DIFFERS (not rewritten: vectors are never regenerated): {rel}", file=sys.stderr)
    if args.check:
        for rel in missing:
            print(f"MISSING: {rel}", file=sys.stderr)
        print(f"{len(files) - len(differ) - len(missing)} of {len(files)} files are identical")
        return 1 if differ or missing else 0
    for rel in missing:
        target = outdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[rel])
        print(f"wrote {rel}")
    print(f"{len(missing)} written, {len(files) - len(differ) - len(missing)} already identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
