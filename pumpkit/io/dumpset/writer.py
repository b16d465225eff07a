"""The dump-set writer: files made from templates, frames placed in them.

``DumpSetWriter`` turns file-name templates into files (``pumpkit.core.templates``), rolls
over to the next file when FILESIZE would be passed, writes each frame's header and payload
with one ``os.pwritev`` (never joined), and closes each file with an INDEX frame, an END frame
and a rewritten header (sections 3.7 and 7 of ``formats/dumpfile.md``). It reopens the files
of a stopped or crashed job at their durable points (section 8).

Every change to the set happens under the writer's one lock, file creation included: a file's
number is handed out when it is created. When no template can name another file, a write
raises ``DumpSetFullError`` having written and changed nothing; the caller waits (for
ADD_FILE: ``add_template``) outside the writer and writes the same frame again. Blocking file
I/O: async callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import mmap
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pumpkit.core import signing
from pumpkit.core.buffers import Buffer
from pumpkit.core.crypto import FrameCipher
from pumpkit.core.frame import (
    FRAME_HEADER_SIZE,
    Encoding,
    FrameKind,
    IndexEntry,
    Location,
    build_frame,
    encode_index,
    parse_frame_header,
)
from pumpkit.core.framescan import frame_entries
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
    DumpError,
    DumpSetFullError,
    DumpSetNoSpaceError,
    FileAccessError,
    IncompleteSetError,
    InvalidArgumentError,
)

__all__ = ("DumpSetWriter",)

#: The errors of a file system without room for a dump file: a wait, not a failure.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

# An INDEX entry is a msgpack array of six unsigned integers: at most 1 + 6 * 9 bytes.
_INDEX_ENTRY_MAX = 55
_INDEX_ARRAY_MAX = 5


@dataclass
class _OpenFile:
    number: int
    path: Path
    fd: int
    position: int
    entries: list[IndexEntry] = field(default_factory=list)
    control_position: int = 0
    #: Bytes of the file the file system has given (``posix_fallocate``): the next frame
    #: and room for the file's INDEX and END, so that finishing it never finds a full disk.
    allocated: int = 0


class DumpSetWriter:
    """Writes one dump-file set. Thread-safe: workers may call ``write_frame`` at once.

    ``templates`` are file names (with ``%U``/``%L``) relative to ``directory``; files are
    taken from them in order. ``filesize`` caps every file (``None``: unlimited). Existing
    files are refused unless ``reusefile``. ``durable`` (file number -> end of its last
    recorded frame) reopens the set a stopped or crashed writer left.

    Raises ``FileAccessError`` for a missing directory or an existing file,
    ``InvalidArgumentError`` for a frame that cannot fit any file, and, from ``write_built``
    and ``write_frame``, ``DumpSetFullError`` when the current file is full and no template
    can name another: nothing was written or changed, and after ``add_template`` the same
    call succeeds.
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
        sign_key: Ed25519PrivateKey | None = None,
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
        self._sign_key = sign_key
        self._local = threading.local()
        # The one lock: every frame placed, every file created or finished, every template
        # added. No write waits for room while holding it: a full set raises instead.
        self._lock = threading.Lock()
        self._closed: list[_OpenFile] = []
        self._current: _OpenFile | None = None
        self._control_written = False
        # Directories whose file system had no room (ENOSPC, EDQUOT, EFBIG) and the error
        # that said so: no new file is made in them until ``retry_in_place``.
        self._full_dirs: set[Path] = set()
        self._no_space: DumpSetNoSpaceError | None = None
        self._fallocate = True
        for template in templates:
            self.add_template(template)
        with self._lock:
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
        with self._lock:
            return [f.path for f in self._files()]

    def add_template(self, template: str) -> None:
        """Add a file name (or template; relative to the directory) the set may grow into.
        A write that raised ``DumpSetFullError`` may then be made again."""
        with self._lock:
            self._templates.append(template)
            self._template_used.append(0)

    def retry_in_place(self) -> None:
        """Space was freed (CONTINUE): the next write tries the file (and the directories)
        that had no room again."""
        with self._lock:
            self._full_dirs.clear()
            self._no_space = None

    def can_grow(self) -> bool:
        """Whether a template can still name another file of the set (so a write that found
        the set full is worth making again)."""
        with self._lock:
            try:
                self._next_name()
            except DumpSetFullError:
                return False
            return True

    def _files(self) -> list[_OpenFile]:
        return [*self._closed, *([self._current] if self._current else [])]

    def _next_name(self) -> tuple[int, Path]:
        """The template the next file is named from and that file's path; nothing is taken.
        Raises ``DumpSetFullError`` when every template is used up."""
        for i, template in enumerate(self._templates):
            capacity = template_capacity(template)
            if capacity is not None and self._template_used[i] >= capacity:
                continue
            path = self._directory / expand_template(template, self._template_used[i] + 1)
            if path.parent.absolute() in self._full_dirs:
                continue  # its file system has no room: ADD_FILE elsewhere, or CONTINUE
            return i, path
        if self._no_space is not None:
            raise self._no_space
        raise DumpSetFullError(
            "no file of the dump-file set can take more bytes: every file name is used"
            + (f" and FILESIZE {self._filesize} is reached" if self._filesize else "")
            + "; add a file (ADD_FILE) to go on"
        )

    def _roll(self) -> _OpenFile:
        """Create the next file of the set and make it the current one, finishing the one
        before. Its number is given here, under the lock. Raises ``DumpSetFullError`` (no
        name left) and ``FileAccessError`` (cannot create) having changed nothing."""
        slot, path = self._next_name()
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if self._reusefile else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            raise FileAccessError(
                f"dump file {str(path)!r} already exists; remove it or set REUSEFILE",
                path=str(path),
            ) from None
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise self._out_of_room(path, exc) from None
            raise FileAccessError(
                f"cannot create dump file {str(path)!r}: {exc.strerror}", path=str(path)
            ) from None
        number = len(self._closed) + (2 if self._current is not None else 1)
        f = _OpenFile(number=number, path=path, fd=fd, position=HEADER_SIZE)
        try:
            self._allocate(f, HEADER_SIZE + self._reserve(0))
            os.pwrite(fd, self._header_for(f, clean=False), 0)
        except OSError as exc:
            # No room for even the header: the file is taken back, the set is as it was.
            os.close(fd)
            path.unlink(missing_ok=True)
            if exc.errno in NO_SPACE:
                raise self._out_of_room(path, exc) from None
            raise FileAccessError(
                f"cannot write dump file {str(path)!r}: {exc.strerror}", path=str(path)
            ) from None
        self._template_used[slot] += 1
        if self._current is not None:
            self._finish(self._current)
            self._closed.append(self._current)
        self._current = f
        return f

    def _out_of_room(self, path: Path, exc: OSError) -> DumpSetNoSpaceError:
        """Note that ``path``'s directory has no room; the error that says so (a wait)."""
        self._full_dirs.add(path.parent.absolute())
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        self._no_space = DumpSetNoSpaceError(
            f"no room for dump file {str(path)!r}: {reason}"
            f" ({errno.errorcode.get(exc.errno or 0, '?')}); the job waits: free space and"
            " CONTINUE to go on in place, or ADD_FILE in another directory",
            path=str(path),
            reason=reason,
        )
        return self._no_space

    def _allocate(self, f: _OpenFile, end: int) -> None:
        """Have the file system give ``f`` its first ``end`` bytes now, so that a full disk
        is found before a frame is written, never halfway through one or while the file is
        being finished. On a failure the file is cut back to what it had."""
        if end <= f.allocated:
            return
        if self._fallocate:
            try:
                os.posix_fallocate(f.fd, f.allocated, end - f.allocated)
            except OSError as exc:
                if exc.errno in NO_SPACE:
                    with contextlib.suppress(OSError):
                        os.ftruncate(f.fd, max(f.allocated, f.position))
                    raise
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                self._fallocate = False  # this file system cannot: writes find a full disk
        f.allocated = end

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
                slot, path = self._next_name()
            except DumpSetFullError:
                break
            try:
                with open(path, "rb") as fh:
                    header = decode_header(fh.read(HEADER_SIZE))
            except FileNotFoundError:
                break
            except DumpError as exc:
                raise exc.located(str(path)) from None
            if header.guid != self.guid or header.file_number != len(found) + 1:
                raise IncompleteSetError(
                    f"{path} is not file {len(found) + 1} of this job's dump-file set",
                    path=str(path),
                )
            self._template_used[slot] += 1
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
            f = _OpenFile(
                number=number, path=path, fd=fd, position=end, entries=entries, allocated=end
            )
            if number < len(found):
                self._finish(f)
                self._closed.append(f)
            else:
                os.pwrite(fd, self._header_for(f, clean=False, data_end=end), 0)
                os.fsync(fd)
                self._current = f

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
        """Frame ``data`` and write it (see ``write_built``).

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
        """Write a frame made by ``build_frame`` (for instance in a worker process); where
        it went.

        Raises ``DumpSetFullError`` when the frame does not fit the current file and no
        template can name another: nothing was written or changed, so the caller may call
        again with the same frame once ``add_template`` gave room. ``InvalidArgumentError``
        when the frame could fit no file, or the set is closed.
        """
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
                    f = self._roll()
            if f.path.parent.absolute() in self._full_dirs and f.entries:
                # This file's disk had no room: a file named elsewhere (ADD_FILE) takes the
                # frame; with none, it waits (``_roll`` raises the no-room error again).
                f = self._roll()
            try:
                self._allocate(f, f.position + length + self._reserve(len(f.entries) + 1))
                position = f.position
                _writev_all(f.fd, [header, payload], f.position, f.path)
            except _NoSpace as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(f.fd, max(f.allocated, f.position))  # the partial frame goes
                raise self._out_of_room(f.path, exc.error) from None
            except OSError as exc:
                if exc.errno not in NO_SPACE:
                    raise
                raise self._out_of_room(f.path, exc) from None
            self._full_dirs.discard(f.path.parent.absolute())
            self._no_space = None
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
        """Write the control table (once per set); the file's header will point at it.

        Raises ``DumpSetFullError`` as ``write_built`` does, and may then be called again."""
        if self._control_written:
            raise InvalidArgumentError("the control table is already in this dump-file set")
        location = self.write_frame(FrameKind.CONTROL_TABLE, data, count=count)
        self._control_written = True
        return location

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
        with self._lock:
            return {f.number: f.position for f in self._files()}

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
        os.ftruncate(f.fd, f.position)  # what was given for frames that never came
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
            if self._sign_key is not None:
                # 64 zero bytes hold the signature's place (the digests read them as zeros).
                self._body = msgspec.structs.replace(
                    self._body,
                    signature_algorithm=signing.ALGORITHM,
                    signature=bytes(signing.SIGNATURE_SIZE),
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
            if self._sign_key is not None:
                self._sign()
            return [f.path for f in self._closed]

    def _sign(self) -> None:
        """Sign the closed set (format 1.3, section 3.8): digest every file, sign, and write
        the signature over its placeholder in every header (the body keeps its length)."""
        assert self._sign_key is not None
        digests = []
        for f in self._closed:
            with (
                open(f.path, "rb") as src,
                mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as mm,
            ):
                digests.append(signing.file_digest(mm, decode_header(mm[:HEADER_SIZE])))
        signature = signing.sign_set(self._sign_key, self.guid, digests)
        self._body = msgspec.structs.replace(self._body, signature=signature)
        for f in self._closed:
            with open(f.path, "r+b") as fh:
                head = decode_header(fh.read(HEADER_SIZE))
                fh.seek(0)
                fh.write(encode_header(msgspec.structs.replace(head, body=self._body)))
                fh.flush()
                os.fsync(fh.fileno())

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
        if exc.errno in NO_SPACE:
            raise _NoSpace(exc) from None
        raise FileAccessError(
            f"cannot write dump file {str(path)!r}: {exc.strerror}", path=str(path)
        ) from None


class _NoSpace(Exception):
    """A write found its file system without room (the writer turns it into a wait)."""

    def __init__(self, error: OSError) -> None:
        self.error = error
        super().__init__(str(error))
