"""The dump-set reader: a whole set opened, any frame read by its location.

``DumpSetReader.open`` opens the files it is given and those their headers name, checks that
they are one set with no file missing (``pumpkit.core.dumpset``: it raises the first fault),
and maps each file. A frame is read by ``(fileid, position, length)`` from the map without
copying its payload; the pages of a compressed or encrypted frame are released once it is
decoded (``MADV_DONTNEED``), so a set of any size keeps only the frames in use resident. A file
that a crash cut short is read by scanning, up to its last sound frame (section 8 of
``formats/dumpfile.md``). Blocking file I/O: async callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import hmac
import mmap
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pumpkit.core import signing
from pumpkit.core.buffers import Buffer
from pumpkit.core.crypto import ALGORITHM, KDF, FrameCipher, derive_key, key_check
from pumpkit.core.dumpset import file_row_faults, set_faults
from pumpkit.core.frame import (
    FRAME_HEADER_SIZE,
    Encoding,
    Frame,
    FrameKind,
    Location,
    check_encoding,
    decode_frame,
    decode_index,
    granule_tag,
    parse_frame_header,
    payload_bytes,
)
from pumpkit.core.granules import GranuleRun, TaggedFrame, granule_runs, granules_of
from pumpkit.core.header import MAX_HEADER_SIZE, OFFSET_BODY, FileHeader, decode_header
from pumpkit.core.limits import check_frame_claims, check_value_count
from pumpkit.errors import (
    CorruptDumpError,
    DumpError,
    EncryptedError,
    IncompleteSetError,
    InvalidArgumentError,
    NotADumpFileError,
    UnsafeFileNameError,
    UnsupportedFeatureError,
)
from pumpkit.io.dumpset.files import map_file, set_member

__all__ = ("DumpSetReader", "ObjectFrames")


@dataclass
class _ReadFile:
    path: Path
    header: FileHeader
    size: int
    map: mmap.mmap | None
    view: memoryview


@dataclass(frozen=True)
class ObjectFrames:
    """One object of a set as its frames show it (what ``pumpkit ls`` prints)."""

    object_id: int
    object_type: str
    schema: str
    name: str
    frames: tuple[tuple[int, int, int, int, int], ...]  # fileid, position, length, rows, bytes

    @property
    def rows(self) -> int:
        return sum(f[3] for f in self.frames)

    @property
    def bytes(self) -> int:
        return sum(f[4] for f in self.frames)


class DumpSetReader:
    """Reads one dump-file set. Open with :meth:`open`; use as a context manager.

    Raises on open: ``FileAccessError`` (missing or unreadable file), ``NotADumpFileError``,
    ``CorruptDumpError`` (damaged header), ``UnsupportedVersionError``, ``IncompleteSetError``
    (a file missing, two sets mixed, a file twice). Every error names the file and offset.
    """

    def __init__(self, files: dict[int, _ReadFile]) -> None:
        self._files = files
        self._local = threading.local()
        first = files[min(files)]
        self.guid = first.header.guid
        self.header = first.header
        self._cipher: FrameCipher | None = None

    @property
    def encrypted(self) -> bool:
        return self.header.body.encryption != "none"

    def unlock(self, password: str | None) -> None:
        """Give the set's ENCRYPTION_PASSWORD. A wrong one raises ``EncryptedError`` here,
        from the header's key check, before any frame is read; an encrypted set without a
        password raises it too. A set in clear ignores the call."""
        body = self.header.body
        path = str(self.path_of(self.file_numbers[0]))
        if not self.encrypted:
            return
        if body.encryption != ALGORITHM or body.kdf != KDF:
            raise UnsupportedFeatureError(
                f"encryption {body.encryption!r} with key derivation {body.kdf!r} is unknown to"
                " this reader",
                path=path,
            )
        if not password:
            raise EncryptedError(
                "the dump-file set is encrypted: give its ENCRYPTION_PASSWORD", path=path
            )
        key = derive_key(password, body.kdf_salt, n=body.kdf_n, r=body.kdf_r, p=body.kdf_p)
        if not hmac.compare_digest(key_check(key), body.key_check):
            raise EncryptedError(
                "wrong ENCRYPTION_PASSWORD: the key check in the header does not match",
                path=path,
            )
        self._cipher = FrameCipher(key)

    def check_signature(self, public_key: Ed25519PublicKey) -> None:
        """Refuse the set unless it is signed by ``public_key``'s owner and unchanged since
        (format 1.3, formats/dumpfile.md §3.8): ``SignatureError`` naming file and offset.
        Reads every byte of every file (a signature covers them all)."""
        signing.verify_set(
            public_key,
            [(str(rf.path), rf.view, rf.header) for _, rf in sorted(self._files.items())],
        )

    @classmethod
    def open(cls, paths: Sequence[str | os.PathLike[str]]) -> DumpSetReader:
        """Open the set that ``paths`` belong to (one file is enough if the set closed clean)."""
        if not paths:
            raise InvalidArgumentError("no dump file given")
        opened: dict[Path, _ReadFile] = {}
        try:
            queue = [Path(p) for p in paths]
            while queue:
                path = queue.pop(0)
                key = path.resolve()
                if key in opened:
                    continue
                rf = _open_file(path)
                opened[key] = rf
                for name in rf.header.body.set_files:
                    sibling = set_member(path.parent, name, path=path, offset=OFFSET_BODY)
                    if sibling.resolve() not in opened and sibling.exists():
                        queue.append(sibling)
            files = _check_set(list(opened.values()))
        except BaseException:
            for rf in opened.values():
                _close_file(rf)
            raise
        return cls(files)

    def __enter__(self) -> DumpSetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for rf in self._files.values():
            _close_file(rf)

    @property
    def file_numbers(self) -> list[int]:
        return sorted(self._files)

    def path_of(self, fileid: int) -> Path:
        return self._file(fileid).path

    def header_of(self, fileid: int) -> FileHeader:
        return self._file(fileid).header

    def _file(self, fileid: int) -> _ReadFile:
        try:
            return self._files[fileid]
        except KeyError:
            raise IncompleteSetError(f"the set has no file number {fileid}") from None

    def read_frame(self, fileid: int, position: int, length: int) -> Frame:
        """The checked frame at ``(fileid, position, length)``; its payload is a view of the map.

        Raises ``CorruptDumpError`` (with file and offset) when the frame is damaged, the
        location lies outside the file, or the length does not match the frame.
        """
        rf = self._file(fileid)
        path = str(rf.path)
        if position < rf.header.header_size or length < FRAME_HEADER_SIZE:
            raise CorruptDumpError(
                f"no frame can lie at position {position} with length {length}",
                path=path,
                offset=position,
            )
        if position + length > rf.size:
            raise CorruptDumpError(
                f"frame of {length} bytes at {position} runs past the end of the file"
                f" ({rf.size} bytes)",
                path=path,
                offset=position,
            )
        try:
            frame = decode_frame(rf.view[: position + length], position)
        except DumpError as exc:
            raise exc.located(path) from None
        if frame.header.length != length:
            raise CorruptDumpError(
                f"frame at {position} is {frame.header.length} bytes long, not {length}",
                path=path,
                offset=position,
            )
        return frame

    def payload(self, fileid: int, frame: Frame) -> Buffer:
        """The frame's uncompressed payload (a view when it was stored uncompressed).

        Raises ``DumpLimitError`` for a frame that claims more than a reader takes, before
        anything is decompressed; ``CorruptDumpError`` for a damaged payload."""
        decompressor: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
            self._local.decompressor = decompressor
        try:
            check_encoding(frame.header)
            # Every claim checked before a byte is decompressed (pumpkit.core.limits).
            check_frame_claims(frame.header)
            data = payload_bytes(frame, decompressor, self._cipher)
            if frame.header.kind != FrameKind.TABLE_DATA and (
                frame.header.encoding == Encoding.MSGPACK
            ):
                check_value_count(data, frame.header.offset)
            return data
        except DumpError as exc:
            raise exc.located(str(self.path_of(fileid))) from None

    def read(self, location: Location) -> Buffer:
        """The uncompressed payload of the frame at ``location``.

        A compressed or encrypted frame's pages of the map are released once it is decoded, so that
        reading a set of any size keeps only the frames in use resident.
        """
        frame = self.read_frame(location.fileid, location.position, location.length)
        data = self.payload(location.fileid, frame)
        if frame.header.compressed or frame.header.encrypted:  # the payload is a copy now
            del frame
            self._release(location)
        return data

    def release(self, location: Location) -> None:
        """Let the pages of the map under ``location`` go (a frame whose payload is no longer
        used): a reader that walks a whole set keeps resident only what it reads now."""
        self._release(location)

    def _release(self, location: Location) -> None:
        rf = self._files[location.fileid]
        if rf.map is None:
            return
        start = location.position - location.position % mmap.PAGESIZE
        end = location.position + location.length
        with contextlib.suppress(OSError, ValueError):
            rf.map.madvise(mmap.MADV_DONTNEED, start, end - start)

    def frames(self) -> Iterator[tuple[int, Frame]]:
        """Every frame of the set in order, as ``(fileid, frame)``.

        A file closed cleanly is read through its index; one cut short (a crash) is scanned
        from its header and read up to its last sound frame, after which iteration of that
        file stops quietly: :meth:`readable_end` says where.
        """
        for fileid in self.file_numbers:
            rf = self._files[fileid]
            if rf.header.clean_close and rf.header.index_position:
                index = self.read_frame(
                    fileid,
                    rf.header.index_position,
                    _frame_length_at(rf, rf.header.index_position),
                )
                try:
                    entries = decode_index(self.payload(fileid, index), rf.header.index_position)
                except DumpError as exc:
                    raise exc.located(str(rf.path)) from None
                expected = rf.header.header_size
                for e in entries:
                    frame = self.read_frame(fileid, e.position, e.length)
                    h = frame.header
                    if e.position != expected or (h.kind, h.object_id, h.count) != (
                        e.kind,
                        e.object_id,
                        e.count,
                    ):
                        raise CorruptDumpError(
                            f"index entry for offset {e.position} does not describe the frame"
                            " there (frames must be listed back to back, as written)",
                            path=str(rf.path),
                            offset=rf.header.index_position,
                        )
                    expected += e.length
                    yield fileid, frame
                if expected != rf.header.index_position:
                    raise CorruptDumpError(
                        f"index lists frames up to offset {expected}, the index is at"
                        f" {rf.header.index_position}",
                        path=str(rf.path),
                        offset=rf.header.index_position,
                    )
                yield fileid, index
                continue
            offset = rf.header.header_size
            while offset < rf.size:
                try:
                    frame = decode_frame(rf.view, offset)
                except UnsupportedFeatureError as exc:
                    raise exc.located(str(rf.path)) from None
                except DumpError:
                    break
                yield fileid, frame
                if frame.header.kind == FrameKind.END:
                    break
                offset += frame.header.length

    def readable_end(self, fileid: int) -> int:
        """The offset just past the last sound frame of file ``fileid``."""
        rf = self._file(fileid)
        if rf.header.clean_close:
            return rf.header.data_end
        offset = rf.header.header_size
        while offset < rf.size:
            try:
                frame = decode_frame(rf.view, offset)
            except DumpError:
                break
            offset += frame.header.length
        return offset

    def objects(self) -> list[ObjectFrames]:
        """The objects of the set, in id order.

        From the control table when the set holds one (it is the catalog: frames that a
        stopped or crashed export wrote but never recorded are dead space, not data), else
        from the METADATA and TABLE_DATA frames themselves (a set cut short by a crash).
        """
        catalog = self._objects_from_control_table()
        if catalog is not None:
            return catalog
        return self._objects_from_frames()

    def _objects_from_control_table(self) -> list[ObjectFrames] | None:
        payload = self.control_table()
        if payload is None:
            return None
        try:
            doc = _control_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise CorruptDumpError(f"the control table does not decode: {exc}") from None
        self.check_file_rows(doc.columns, doc.rows)
        column = {name: i for i, name in enumerate(doc.columns)}
        needed = ("object_type", "object_schema", "object_name", "object_number", "frames")
        if any(name not in column for name in needed):
            return None

        def get(row: list[object], name: str) -> object:
            return row[column[name]]

        names: dict[int, tuple[str, str, str]] = {}
        frames: dict[int, list[tuple[int, int, int, int, int]]] = {}
        for row in doc.rows:
            kind = str(get(row, "object_type"))
            number = get(row, "object_number")
            if not isinstance(number, int):
                continue
            if kind == "TABLE_DATA":
                spans = get(row, "frames")
                if isinstance(spans, bytes) and spans:
                    for f in msgspec.msgpack.decode(spans, type=list[list[int]]):
                        frames.setdefault(number, []).append((f[0], f[1], f[2], f[3], f[4]))
            elif kind not in ("JOB", "PARAMETER", "FILE", "WORKER", "FILTER"):
                names[number] = (
                    kind,
                    str(get(row, "object_schema") or ""),
                    str(get(row, "object_name")),
                )
        return [
            ObjectFrames(
                n, *names.get(n, ("TABLE_DATA", "", f"#{n}")), tuple(sorted(frames.get(n, ())))
            )
            for n in sorted(names.keys() | frames.keys())
        ]

    def granule_runs(self) -> list[GranuleRun]:
        """The runs of the set's tagged TABLE_DATA frames (format 1.3), complete or not, read
        from the frames alone (``pumpkit.core.granules``; formats/dumpfile.md §8.1)."""
        tagged = []
        for fileid, frame in self.frames():
            tag = granule_tag(frame) if frame.header.kind == FrameKind.TABLE_DATA else None
            if tag is not None:
                tagged.append(TaggedFrame(fileid, frame.header, tag))
        return granule_runs(tagged)

    def _objects_from_frames(self) -> list[ObjectFrames]:
        names: dict[int, tuple[str, str, str]] = {}
        data: dict[int, list[tuple[int, int, int, int, int]]] = {}
        tagged: list[TaggedFrame] = []
        for fileid, frame in self.frames():
            h = frame.header
            if h.kind == FrameKind.METADATA and h.encoding == Encoding.PG_ARCHIVE:
                names[h.object_id] = ("PG_SCHEMA", "", "pg_dump archive")
            elif h.kind == FrameKind.METADATA:
                names[h.object_id] = _object_name(self.payload(fileid, frame))
            elif h.kind == FrameKind.TABLE_DATA:
                tag = granule_tag(frame)
                if tag is not None:
                    tagged.append(TaggedFrame(fileid, h, tag))
                    continue
                data.setdefault(h.object_id, []).append(
                    (fileid, h.offset, h.length, h.count, h.uncompressed_length)
                )
        # 1.3: only a granule's last complete run is data; unfinished frames are not. A
        # table's frames are listed granule by granule (a COPY stream is one granule's).
        for run in granules_of(granule_runs(tagged)).values():
            data.setdefault(run.object_id, []).extend(
                (
                    f.fileid,
                    f.header.offset,
                    f.header.length,
                    f.header.count,
                    f.header.uncompressed_length,
                )
                for f in run.frames
            )
        result = []
        for object_id in sorted(names.keys() | data.keys()):
            object_type, schema, name = names.get(object_id, ("TABLE_DATA", "", f"#{object_id}"))
            result.append(
                ObjectFrames(object_id, object_type, schema, name, tuple(data.get(object_id, ())))
            )
        return result

    def check_file_rows(self, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """Refuse a control table (decoded: its columns and rows) whose FILE rows name a file
        by more than a plain file name (``pumpkit.core.dumpset.file_row_faults``): an
        ``UnsafeFileNameError`` at the control-table frame, naming the row and column."""
        faults = file_row_faults(columns, rows)
        if not faults:
            return
        fault = faults[0]
        path, offset = self._control_place()
        raise UnsafeFileNameError(
            f"control table row {fault.row} (FILE), column {fault.column}: {fault.name!r}"
            f" {fault.reason}: a set names its files only inside its own directory",
            path=path,
            offset=offset,
        )

    def _control_place(self) -> tuple[str | None, int | None]:
        for fileid in self.file_numbers:
            rf = self._files[fileid]
            if rf.header.control_position:
                return str(rf.path), rf.header.control_position
        return None, None

    def control_table(self) -> Buffer | None:
        """The uncompressed payload of the control-table frame, if the set holds one."""
        for fileid in self.file_numbers:
            rf = self._files[fileid]
            if rf.header.control_position:
                position = rf.header.control_position
                frame = self.read_frame(fileid, position, _frame_length_at(rf, position))
                return self.payload(fileid, frame)
        return None


def _frame_length_at(rf: _ReadFile, position: int) -> int:
    try:
        return parse_frame_header(rf.view, position).length
    except DumpError as exc:
        raise exc.located(str(rf.path)) from None


_name_decoder = msgspec.msgpack.Decoder(dict[str, object])


class _ControlTable(msgspec.Struct):
    table: str
    columns: list[str]
    rows: list[list[object]]


_control_decoder = msgspec.msgpack.Decoder(_ControlTable)


def _object_name(payload: Buffer) -> tuple[str, str, str]:
    try:
        meta = _name_decoder.decode(payload)
    except msgspec.DecodeError:
        return ("UNKNOWN", "", "?")
    return (str(meta.get("object_type", "")), str(meta.get("schema", "")), str(meta.get("name")))


def _open_file(path: Path) -> _ReadFile:
    mm = map_file(path)
    if mm is None:
        raise NotADumpFileError("empty file: no pumpkit magic", path=str(path), offset=0)
    try:
        # A copy of the header's bytes: an error's traceback then holds no view of the map.
        header = decode_header(mm[:MAX_HEADER_SIZE])
    except DumpError as exc:
        mm.close()
        raise exc.located(str(path)) from None
    return _ReadFile(path=path, header=header, size=len(mm), map=mm, view=memoryview(mm))


def _close_file(rf: _ReadFile) -> None:
    try:
        rf.view.release()
        if rf.map is not None:
            rf.map.close()
    except BufferError:
        # A caller still holds a payload view; the map closes when that view goes.
        pass


def _check_set(files: list[_ReadFile]) -> dict[int, _ReadFile]:
    """The files by number, once ``pumpkit.core.dumpset`` finds them one whole set; else its
    first fault, raised."""
    faults = set_faults([(str(rf.path), rf.header) for rf in files])
    if faults:
        raise faults[0].exception()
    return {rf.header.file_number: rf for rf in sorted(files, key=lambda rf: rf.header.file_number)}
