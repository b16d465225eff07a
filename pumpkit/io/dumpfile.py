"""Dump-file sets on disk: the writer, the reader, and ``get_dumpfile_info``.

The writer turns file-name templates into files (``%U`` -> 01..99, ``%L`` -> 01.. without an
upper bound), rolls over to the next file when FILESIZE would be passed, writes each frame's
header and payload with one ``os.pwritev`` (never joined), and closes each file with an INDEX
frame, an END frame and a rewritten header. The reader opens a whole set, checks that it is
one set with no file missing, and reads any frame by ``(fileid, position, length)`` from an
``mmap`` without copying its payload. Everything here is blocking file I/O: async callers run
it in a worker thread. The byte layout itself lives in ``pumpkit.core``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hmac
import mmap
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import zstandard

from pumpkit.core.buffers import Buffer
from pumpkit.core.crypto import ALGORITHM, KDF, FrameCipher, derive_key, key_check
from pumpkit.core.dumpset import set_faults
from pumpkit.core.frame import (
    FRAME_HEADER_SIZE,
    Encoding,
    Frame,
    FrameKind,
    IndexEntry,
    build_frame,
    decode_frame,
    decode_index,
    encode_index,
    parse_frame_header,
    payload_bytes,
)
from pumpkit.core.framescan import frame_entries, scan_frames
from pumpkit.core.header import (
    HEADER_SIZE,
    FileHeader,
    HeaderBody,
    HeaderFlags,
    decode_header,
    encode_header,
)
from pumpkit.core.templates import expand_template, template_capacity
from pumpkit.errors import (
    CorruptDumpError,
    DumpError,
    DumpSetFullError,
    EncryptedError,
    FileAccessError,
    IncompleteSetError,
    InvalidArgumentError,
    NotADumpFileError,
    UnsupportedFeatureError,
)

__all__ = (
    "DumpFileInfo",
    "DumpSetReader",
    "DumpSetWriter",
    "Fault",
    "Location",
    "ObjectFrames",
    "VerifyReport",
    "get_dumpfile_info",
    "verify_paths",
)

# An INDEX entry is a msgpack array of six unsigned integers: at most 1 + 6 * 9 bytes.
_INDEX_ENTRY_MAX = 55
_INDEX_ARRAY_MAX = 5
_MAX_HEADER_BYTES = 65536


class Location(msgspec.Struct, frozen=True, array_like=True):
    """Where a frame lies: file number in the set, byte offset of its header, whole length."""

    fileid: int
    position: int
    length: int


# --- the writer ------------------------------------------------------------------------------


@dataclass
class _OpenFile:
    number: int
    path: Path
    fd: int
    position: int
    entries: list[IndexEntry] = field(default_factory=list)
    control_position: int = 0


class DumpSetWriter:
    """Writes one dump-file set. Thread-safe: workers may call ``write_frame`` at once.

    ``templates`` are file names (with ``%U``/``%L``) relative to ``directory``; files are
    taken from them in order. ``filesize`` caps every file (``None``: unlimited). Existing
    files are refused unless ``reusefile``.

    Raises ``FileAccessError`` for a missing directory or an existing file,
    ``DumpSetFullError`` when no template can name another file (``add_template`` then lets
    the writer go on), ``InvalidArgumentError`` for a frame that cannot fit any file.
    """

    def __init__(
        self,
        templates: Sequence[str],
        *,
        directory: str | os.PathLike[str] = ".",
        body: HeaderBody,
        guid: bytes | None = None,
        filesize: int | None = None,
        reusefile: bool = False,
        created: dt.datetime | None = None,
        durable: dict[int, int] | None = None,
        cipher: FrameCipher | None = None,
    ) -> None:
        if not templates:
            raise InvalidArgumentError("a dump-file set needs at least one file name")
        self._directory = Path(directory)
        if not self._directory.is_dir():
            raise FileAccessError(
                f"directory {str(self._directory)!r} does not exist", path=str(self._directory)
            )
        if filesize is not None and filesize < HEADER_SIZE + 16 * FRAME_HEADER_SIZE:
            raise InvalidArgumentError(f"FILESIZE {filesize} is too small for a dump file")
        self._templates: list[str] = []
        self._template_used: list[int] = []
        self.guid = guid or uuid.uuid4().bytes
        self._body = body
        self._filesize = filesize
        self._reusefile = reusefile
        self._created_us = int((created or dt.datetime.now(dt.UTC)).timestamp() * 1_000_000)
        self._level = body.compression_level or 3
        if (cipher is None) != (body.encryption == "none"):
            raise InvalidArgumentError(
                "an encrypted set needs a cipher and a header that says so, and only it"
            )
        self._cipher = cipher
        self._local = threading.local()
        self._lock = threading.Lock()
        # Signalled by add_template: a writer waiting for room (see ``when_full``) goes on.
        self._room = threading.Condition(self._lock)
        #: Called (from the writing thread) with a message while no file can take more bytes,
        #: and with ``None`` once one can; it returns whether to keep waiting. ``None``: raise
        #: ``DumpSetFullError`` at once.
        self.when_full: Callable[[str | None], bool] | None = None
        self._closed: list[_OpenFile] = []
        self._current: _OpenFile | None = None
        self._control_written = False
        for template in templates:
            self.add_template(template)
        if durable is None:
            self._roll()
        else:
            self._resume(durable)

    # -- files

    @property
    def compression_level(self) -> int:
        return self._level

    @property
    def compresses_data(self) -> bool:
        return self._body.compression == "zstd" and self._body.data_compressed

    def cipher_for(self, kind: int) -> FrameCipher | None:
        """The cipher frames of ``kind`` are encrypted with (``None``: stored in clear). The
        header's ``encryption_scope`` decides: ALL, DATA_ONLY or METADATA_ONLY."""
        if self._cipher is None:
            return None
        scope = self._body.encryption_scope or "ALL"
        data = kind == FrameKind.TABLE_DATA
        if scope == "ALL" or (scope == "DATA_ONLY") == data:
            return self._cipher
        return None

    @property
    def paths(self) -> list[Path]:
        """Every file of the set made so far, in file-number order."""
        files = [*self._closed, *([self._current] if self._current else [])]
        return [f.path for f in files]

    def add_template(self, template: str) -> None:
        """Add a file name (or template; relative to the directory) the set may grow into;
        a writer waiting for room goes on."""
        with self._room:
            self._templates.append(template)
            self._template_used.append(0)
            self._room.notify_all()

    def _next_path_or_wait(self) -> Path:
        """The next file's path; when there is none, wait for ``add_template`` as long as
        ``when_full`` says to (the lock is held: ``write_built`` rolls under it)."""
        waited = False
        while True:
            try:
                path = self._next_path()
            except DumpSetFullError as full:
                if self.when_full is None or not self.when_full(str(full)):
                    raise
                waited = True
                self._room.wait(timeout=0.5)
                continue
            if waited and self.when_full is not None:
                self.when_full(None)
            return path

    def _next_path(self) -> Path:
        for i, template in enumerate(self._templates):
            capacity = template_capacity(template)
            if capacity is not None and self._template_used[i] >= capacity:
                continue
            self._template_used[i] += 1
            return self._directory / expand_template(template, self._template_used[i])
        raise DumpSetFullError(
            "no file of the dump-file set can take more bytes: every file name is used"
            + (f" and FILESIZE {self._filesize} is reached" if self._filesize else "")
            + "; add a file (ADD_FILE) to go on"
        )

    def _roll(self) -> None:
        number = len(self._closed) + (1 if self._current else 0) + 1
        path = self._next_path() if self._current is None else self._next_path_or_wait()
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if self._reusefile else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            raise FileAccessError(
                f"dump file {str(path)!r} already exists; remove it or set REUSEFILE",
                path=str(path),
            ) from None
        except OSError as exc:
            raise FileAccessError(
                f"cannot create dump file {str(path)!r}: {exc.strerror}", path=str(path)
            ) from None
        if self._current is not None:
            self._finish(self._current)
            self._closed.append(self._current)
        self._current = _OpenFile(number=number, path=path, fd=fd, position=HEADER_SIZE)
        os.pwrite(fd, self._header_for(self._current, clean=False), 0)

    def _resume(self, durable: dict[int, int]) -> None:
        """Reopen the files a stopped or crashed writer of this set left.

        ``durable`` maps a file number to the end of its last frame that the job recorded
        (so: fsynced); bytes past it were never recorded and are discarded. Earlier files are
        finished (INDEX, END) if the crash left them open; the last one becomes the file being
        written. Frames that lie before a durable end but were never recorded stay as dead
        space: the control table, not the frames, says what the set holds.
        """
        found: list[tuple[Path, FileHeader]] = []
        while True:
            try:
                path = self._next_path()
            except DumpSetFullError:
                break
            try:
                with open(path, "rb") as fh:
                    header = decode_header(fh.read(HEADER_SIZE))
            except FileNotFoundError:
                self._unconsume(path)
                break
            except DumpError as exc:
                raise exc.located(str(path)) from None
            if header.guid != self.guid or header.file_number != len(found) + 1:
                raise IncompleteSetError(
                    f"{path} is not file {len(found) + 1} of this job's dump-file set",
                    path=str(path),
                )
            found.append((path, header))
        if not found:
            self._roll()
            return
        for number, (path, header) in enumerate(found, 1):
            end = max(durable.get(number, header.header_size), header.header_size)
            fd = os.open(path, os.O_RDWR)
            try:
                entries = _durable_entries(fd, header.header_size, end, path)
            except BaseException:
                os.close(fd)
                raise
            os.ftruncate(fd, end)
            f = _OpenFile(number=number, path=path, fd=fd, position=end, entries=entries)
            f.control_position = 0
            if number < len(found):
                self._finish(f)
                self._closed.append(f)
            else:
                os.pwrite(fd, self._header_for(f, clean=False, data_end=end), 0)
                os.fsync(fd)
                self._current = f

    def _unconsume(self, path: Path) -> None:
        """Give back the name ``_next_path`` just handed out."""
        for i, template in enumerate(self._templates):
            if (
                self._template_used[i]
                and self._directory / expand_template(template, self._template_used[i]) == path
            ):
                self._template_used[i] -= 1
                return

    def _header_for(self, f: _OpenFile, *, clean: bool, data_end: int = 0, index: int = 0) -> bytes:
        flags = HeaderFlags.CLEAN_CLOSE if clean else HeaderFlags(0)
        if f.control_position:
            flags |= HeaderFlags.CONTROL_TABLE
        if self._body.encryption != "none":
            flags |= HeaderFlags.ENCRYPTED
        return encode_header(
            FileHeader(
                flags=int(flags),
                file_number=f.number,
                guid=self.guid,
                created_us=self._created_us,
                data_end=data_end,
                index_position=index,
                control_position=f.control_position,
                body=self._body,
            )
        )

    @staticmethod
    def _reserve(frames: int) -> int:
        """Bytes kept free at the end of a file of ``frames`` frames for its INDEX and END."""
        return 2 * FRAME_HEADER_SIZE + _INDEX_ARRAY_MAX + _INDEX_ENTRY_MAX * (frames + 1)

    # -- frames

    def write_frame(
        self,
        kind: FrameKind,
        data: Buffer,
        *,
        object_id: int = 0,
        count: int = 0,
        encoding: Encoding = Encoding.MSGPACK,
        compress: bool | None = None,
    ) -> Location:
        """Frame ``data`` and write it.

        ``compress=None`` follows the header: table data is compressed when the set's data
        is, everything else when its metadata is.
        """
        if compress is None:
            body = self._body
            compress = body.compression == "zstd" and (
                body.data_compressed if kind == FrameKind.TABLE_DATA else body.metadata_compressed
            )
        header, payload = build_frame(
            kind,
            data,
            object_id=object_id,
            count=count,
            encoding=encoding,
            compressor=self.compressor() if compress else None,
            cipher=self.cipher_for(kind),
        )
        return self.write_built(header, payload)

    def compressor(self) -> zstandard.ZstdCompressor:
        """This thread's zstd compressor at the set's level (a compressor is not thread-safe)."""
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=self._level)
            self._local.compressor = compressor
        return compressor

    def write_built(self, header: Buffer, payload: Buffer) -> Location:
        """Write a frame made by ``build_frame`` (for instance in a worker process)."""
        length = memoryview(header).nbytes + memoryview(payload).nbytes
        parsed = parse_frame_header(header)
        with self._lock:
            f = self._current
            if f is None:
                raise InvalidArgumentError("the dump-file set is closed")
            if self._filesize is not None:
                if HEADER_SIZE + length + self._reserve(1) > self._filesize:
                    raise InvalidArgumentError(
                        f"FILESIZE {self._filesize} cannot hold one record of {length} bytes;"
                        f" give a FILESIZE of at least {HEADER_SIZE + length + 4096}"
                    )
                fits = f.position + length + self._reserve(len(f.entries) + 1) <= self._filesize
                if f.entries and not fits:
                    self._roll()
                    f = self._current
                    assert f is not None
            position = f.position
            _writev_all(f.fd, [header, payload], f.position, f.path)
            f.position += length
            f.entries.append(
                IndexEntry(
                    kind=parsed.kind,
                    object_id=parsed.object_id,
                    count=parsed.count,
                    position=position,
                    length=length,
                    uncompressed_length=parsed.uncompressed_length,
                )
            )
            if parsed.kind == FrameKind.CONTROL_TABLE:
                f.control_position = position
            return Location(f.number, position, length)

    def write_control_table(self, data: Buffer, *, count: int) -> Location:
        """Write the control table (once per set); the file's header will point at it."""
        if self._control_written:
            raise InvalidArgumentError("the control table is already in this dump-file set")
        self._control_written = True
        return self.write_frame(FrameKind.CONTROL_TABLE, data, count=count)

    def sync(self) -> None:
        """A checkpoint: make every frame written so far durable (fsync), note it in the header."""
        with self._lock:
            f = self._current
            if f is None:
                return
            os.fsync(f.fd)
            os.pwrite(f.fd, self._header_for(f, clean=False, data_end=f.position), 0)

    @property
    def durable_points(self) -> dict[int, int]:
        """For every file, the offset just past its last frame written (after ``sync``)."""
        files = [*self._closed, *([self._current] if self._current else [])]
        return {f.number: f.position for f in files}

    # -- closing

    def _finish(self, f: _OpenFile) -> None:
        """Close one file: INDEX, END, clean header, fsync."""
        index_payload = encode_index(f.entries)
        header, payload = build_frame(
            FrameKind.INDEX, index_payload, count=len(f.entries), encoding=Encoding.MSGPACK
        )
        index_position = f.position
        _writev_all(f.fd, [header, payload], f.position, f.path)
        f.position += len(header) + len(index_payload)
        end_header, _ = build_frame(
            FrameKind.END, b"", count=len(f.entries) + 1, encoding=Encoding.RAW
        )
        _writev_all(f.fd, [end_header], f.position, f.path)
        f.position += len(end_header)
        os.fsync(f.fd)
        os.pwrite(
            f.fd, self._header_for(f, clean=True, data_end=f.position, index=index_position), 0
        )
        f.entries.append(IndexEntry(FrameKind.INDEX, 0, 0, index_position, FRAME_HEADER_SIZE, 0))
        os.fsync(f.fd)
        os.close(f.fd)
        f.fd = -1

    def close(self) -> list[Path]:
        """Finish every file and record the whole set in each header. Returns the paths."""
        with self._lock:
            if self._current is None:
                return [f.path for f in self._closed]
            self._finish(self._current)
            self._closed.append(self._current)
            self._current = None
            names = tuple(f.path.name for f in self._closed)
            self._body = msgspec.structs.replace(
                self._body, set_file_count=len(self._closed), set_files=names
            )
            if len(msgspec.msgpack.encode(self._body)) > HEADER_SIZE - 256:
                # Too many names for the header: the count still lets a reader check the set.
                self._body = msgspec.structs.replace(self._body, set_files=())
            for f in self._closed:
                with open(f.path, "r+b") as fh:
                    head = decode_header(fh.read(HEADER_SIZE))
                    fh.seek(0)
                    fh.write(encode_header(msgspec.structs.replace(head, body=self._body)))
                    fh.flush()
                    os.fsync(fh.fileno())
            return [f.path for f in self._closed]

    def abandon(self) -> None:
        """Close the file descriptors without finishing (the set stays as a crash leaves it)."""
        with self._lock:
            if self._current is not None and self._current.fd >= 0:
                os.close(self._current.fd)
            self._current = None


def _durable_entries(fd: int, start: int, end: int, path: Path) -> list[IndexEntry]:
    """The INDEX entries of the frames between ``start`` and ``end`` of an open file."""
    size = os.fstat(fd).st_size
    if size <= start:
        # Nothing past the header (mmap cannot map nothing): the frames' walk sees no bytes.
        data: Buffer = b""
        mm = None
    else:
        mm = data = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    try:
        return frame_entries(data, start, end)
    except DumpError as exc:
        raise exc.located(str(path)) from None
    finally:
        if mm is not None:
            # A traceback may still hold a view of it; it then closes when collected.
            with contextlib.suppress(BufferError):
                mm.close()


def _writev_all(fd: int, parts: list[Buffer], offset: int, path: Path) -> None:
    """Write ``parts`` one after the other at ``offset`` with ``pwritev``, never joining them."""
    views = [memoryview(p).cast("B") for p in parts]
    try:
        while views:
            written = os.pwritev(fd, views, offset)
            offset += written
            while views and written >= views[0].nbytes:
                written -= views[0].nbytes
                views.pop(0)
            if views and written:
                views[0] = views[0][written:]
    except OSError as exc:
        raise FileAccessError(
            f"cannot write dump file {str(path)!r}: {exc.strerror}", path=str(path)
        ) from None


# --- the reader ------------------------------------------------------------------------------


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
                    sibling = path.parent / name
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
        """The frame's uncompressed payload (a view when it was stored uncompressed)."""
        decompressor: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
            self._local.decompressor = decompressor
        try:
            return payload_bytes(frame, decompressor, self._cipher)
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
                entries = decode_index(self.payload(fileid, index), rf.header.index_position)
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

    def _objects_from_frames(self) -> list[ObjectFrames]:
        names: dict[int, tuple[str, str, str]] = {}
        data: dict[int, list[tuple[int, int, int, int, int]]] = {}
        for fileid, frame in self.frames():
            h = frame.header
            if h.kind == FrameKind.METADATA:
                names[h.object_id] = _object_name(self.payload(fileid, frame))
            elif h.kind == FrameKind.TABLE_DATA:
                data.setdefault(h.object_id, []).append(
                    (fileid, h.offset, h.length, h.count, h.uncompressed_length)
                )
        result = []
        for object_id in sorted(names.keys() | data.keys()):
            object_type, schema, name = names.get(object_id, ("TABLE_DATA", "", f"#{object_id}"))
            result.append(
                ObjectFrames(object_id, object_type, schema, name, tuple(data.get(object_id, ())))
            )
        return result

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
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise FileAccessError(_access_message(path, exc), path=str(path)) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileAccessError(f"{path}: is a directory, not a dump file", path=str(path))
        size = st.st_size
        if size == 0:
            raise NotADumpFileError("empty file: no pumpkit magic", path=str(path), offset=0)
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        # A copy of the header's bytes: an error's traceback then holds no view of the map.
        header = decode_header(mm[:_MAX_HEADER_BYTES])
    except DumpError as exc:
        mm.close()
        raise exc.located(str(path)) from None
    return _ReadFile(path=path, header=header, size=size, map=mm, view=memoryview(mm))


def _close_file(rf: _ReadFile) -> None:
    try:
        rf.view.release()
        if rf.map is not None:
            rf.map.close()
    except BufferError:
        # A caller still holds a payload view; the map closes when that view goes.
        pass


def _access_message(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return f"{path}: no such file"
    if exc.errno == errno.EISDIR:
        return f"{path}: is a directory, not a dump file"
    return f"{path}: cannot open: {exc.strerror}"


def _check_set(files: list[_ReadFile]) -> dict[int, _ReadFile]:
    """The files by number, once ``pumpkit.core.dumpset`` finds them one whole set; else its
    first fault, raised."""
    faults = set_faults([(str(rf.path), rf.header) for rf in files])
    if faults:
        raise faults[0].exception()
    return {rf.header.file_number: rf for rf in sorted(files, key=lambda rf: rf.header.file_number)}


# --- GET_DUMPFILE_INFO ----------------------------------------------------------------------


class DumpFileInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What one file's header says (Oracle's GET_DUMPFILE_INFO items, snake_cased).

    ``file_type`` is ``"pumpkit"`` for a pumpkit dump file and ``"unknown"`` otherwise (Oracle
    answers 0); every other field is then its default.
    """

    path: str
    file_type: str = "unknown"
    file_version: str = ""
    master_present: bool = False
    guid: str = ""
    file_number: int = 0
    charset: str = ""
    creation_date: str = ""
    job_name: str = ""
    operation: str = ""
    job_mode: str = ""
    platform: str = ""
    block_size: int = 0
    producer: str = ""
    producer_version: str = ""
    source_engine: str = ""
    db_version: str = ""
    compression_algorithm: str = ""
    compression_level: int = 0
    metadata_compressed: bool = False
    data_compressed: bool = False
    encryption_mode: str = ""
    metadata_encrypted: bool = False
    data_encrypted: bool = False
    clean_close: bool = False
    data_end: int = 0
    file_size: int = 0
    set_file_count: int = 0
    set_files: tuple[str, ...] = ()


def get_dumpfile_info(path: str | os.PathLike[str]) -> DumpFileInfo:
    """Read one file's header and say what it is (valid in every job state: it needs no job).

    Raises ``FileAccessError`` (missing, a directory, unreadable) and, for a file that starts
    like a pumpkit dump but whose header is damaged, ``CorruptDumpError`` naming the file and
    offset. A file that is not a pumpkit dump at all gives ``file_type == "unknown"``.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(HEADER_SIZE)
            header_size = int.from_bytes(head[12:16], "little") if len(head) >= 16 else 0
            if header_size > HEADER_SIZE and header_size <= 65536:
                head += fh.read(header_size - HEADER_SIZE)
    except IsADirectoryError:
        raise FileAccessError(f"{p}: is a directory, not a dump file", path=str(p)) from None
    except OSError as exc:
        raise FileAccessError(_access_message(p, exc), path=str(p)) from None
    try:
        header = decode_header(head)
    except NotADumpFileError:
        return DumpFileInfo(path=str(p), file_size=size)
    except DumpError as exc:
        raise exc.located(str(p)) from None
    body = header.body
    created = dt.datetime.fromtimestamp(header.created_us / 1_000_000, dt.UTC)
    return DumpFileInfo(
        path=str(p),
        file_type="pumpkit",
        file_version=f"{header.major}.{header.minor}",
        master_present=header.holds_control_table,
        guid=header.guid_hex,
        file_number=header.file_number,
        charset=body.charset,
        creation_date=created.isoformat(timespec="seconds"),
        job_name=body.job_name,
        operation=body.operation,
        job_mode=body.job_mode,
        platform=body.platform,
        block_size=header.header_size,
        producer=body.producer,
        producer_version=body.producer_version,
        source_engine=body.source_engine,
        db_version=body.source_version,
        compression_algorithm=body.compression,
        compression_level=body.compression_level,
        metadata_compressed=body.metadata_compressed,
        data_compressed=body.data_compressed,
        encryption_mode=body.encryption,
        metadata_encrypted=body.encryption != "none"
        and (body.encryption_scope or "ALL") in ("ALL", "METADATA_ONLY"),
        data_encrypted=body.encryption != "none"
        and (body.encryption_scope or "ALL") in ("ALL", "DATA_ONLY"),
        clean_close=header.clean_close,
        data_end=header.data_end,
        file_size=size,
        set_file_count=body.set_file_count,
        set_files=body.set_files,
    )


# --- verify ----------------------------------------------------------------------------------


class Fault(msgspec.Struct, frozen=True):
    """One fault ``verify`` found: the file, the byte offset, what is wrong."""

    path: str
    offset: int | None
    reason: str

    def __str__(self) -> str:
        where = self.path if self.offset is None else f"{self.path}: offset {self.offset}"
        return f"{where}: {self.reason}"


class VerifyReport(msgspec.Struct, frozen=True):
    """What ``verify`` found: counts, and the faults in file and offset order."""

    files: int
    frames: int
    rows: int
    faults: tuple[Fault, ...]

    @property
    def sound(self) -> bool:
        return not self.faults


def verify_paths(paths: Sequence[str | os.PathLike[str]]) -> VerifyReport:
    """Check every byte of the files and the completeness of their set; never raises on damage.

    Each file's header, every frame's checksums and lengths, that every compressed payload
    decompresses to its declared length and every msgpack payload decodes, that the index and
    END frame agree with the frames, and that the set has all its files and only one GUID.
    After a damaged frame it resynchronises on the next sound frame, so one report counts
    every fault. Raises ``FileAccessError`` only for a path that cannot be read at all.
    """
    faults: list[Fault] = []
    headers: list[tuple[str, FileHeader]] = []
    frames = rows = 0
    seen: set[Path] = set()
    queue = [Path(p) for p in paths]
    while queue:
        path = queue.pop(0)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        header, n_frames, n_rows, file_faults = _verify_file(path)
        frames += n_frames
        rows += n_rows
        faults.extend(file_faults)
        if header is not None:
            headers.append((str(path), header))
            for name in header.body.set_files:
                sibling = path.parent / name
                if sibling.resolve() not in seen and sibling.exists():
                    queue.append(sibling)
    faults.extend(Fault(f.path, f.offset, f.reason) for f in set_faults(headers))
    faults.sort(key=lambda f: (f.path, -1 if f.offset is None else f.offset))
    return VerifyReport(files=len(seen), frames=frames, rows=rows, faults=tuple(faults))


def _verify_file(path: Path) -> tuple[FileHeader | None, int, int, list[Fault]]:
    where = str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            data = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ) if size else b""
    except IsADirectoryError:
        raise FileAccessError(f"{path}: is a directory, not a dump file", path=where) from None
    except OSError as exc:
        raise FileAccessError(_access_message(path, exc), path=where) from None
    try:
        return _verify_data(where, data)
    finally:
        if isinstance(data, mmap.mmap):
            _close_map(data)


def _close_map(mm: mmap.mmap) -> None:
    # A view of it may still be referenced by a traceback; it then closes when collected.
    with contextlib.suppress(BufferError):
        mm.close()


def _verify_data(
    where: str, data: bytes | mmap.mmap
) -> tuple[FileHeader | None, int, int, list[Fault]]:
    faults: list[Fault] = []
    header: FileHeader | None = None
    try:
        header = decode_header(data)
    except NotADumpFileError as exc:
        return None, 0, 0, [Fault(where, exc.offset, exc.reason)]
    except DumpError as exc:
        faults.append(Fault(where, exc.offset, exc.reason))
    scan = scan_frames(data, header.header_size if header else HEADER_SIZE)
    faults.extend(Fault(where, f.offset, f.reason) for f in scan.faults)
    scanned, rows, end = scan.frames, scan.rows, scan.end
    if header is None:
        return None, len(scanned), rows, faults
    if not header.clean_close:
        faults.append(
            Fault(
                where,
                end,
                "file was not closed cleanly (the job stopped or crashed while writing):"
                f" readable up to offset {end}",
            )
        )
        return header, len(scanned), rows, faults
    size = len(data)
    if size < header.data_end:
        faults.append(
            Fault(
                where, size, f"file is cut short: {size} bytes, the header says {header.data_end}"
            )
        )
    elif size > header.data_end:
        faults.append(
            Fault(where, header.data_end, f"{size - header.data_end} bytes after the END frame")
        )
    if not scanned or scanned[-1].kind != FrameKind.END:
        faults.append(Fault(where, end, "no END frame at the end of a cleanly closed file"))
    else:
        if scanned[-1].count != len(scanned) - 1:
            faults.append(
                Fault(
                    where,
                    scanned[-1].offset,
                    f"END frame counts {scanned[-1].count} frames, the file has {len(scanned) - 1}",
                )
            )
    by_position = {h.offset: h for h in scanned}
    index = by_position.get(header.index_position)
    if index is None or index.kind != FrameKind.INDEX:
        faults.append(
            Fault(where, header.index_position, "the header's index position holds no INDEX frame")
        )
    else:
        try:
            entries = decode_index(payload_bytes(decode_frame(data, index.offset)), index.offset)
        except DumpError as exc:
            faults.append(Fault(where, exc.offset, exc.reason))
            entries = []
        listed = {(e.position, e.length, e.kind) for e in entries}
        present = {
            (h.offset, h.length, h.kind)
            for h in scanned
            if h.kind not in (FrameKind.INDEX, FrameKind.END)
        }
        for position, length, kind in sorted(listed - present):
            faults.append(
                Fault(
                    where, position, f"index lists a frame (kind {kind}, {length} bytes) not found"
                )
            )
        for position, length, kind in sorted(present - listed):
            faults.append(
                Fault(
                    where, position, f"frame (kind {kind}, {length} bytes) missing from the index"
                )
            )
    if header.control_position:
        control = by_position.get(header.control_position)
        if control is None or control.kind != FrameKind.CONTROL_TABLE:
            faults.append(
                Fault(
                    where,
                    header.control_position,
                    "the header's control-table position holds no control-table frame",
                )
            )
    return header, len(scanned), rows, faults
