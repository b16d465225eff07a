"""``verify``: every byte of a dump-file set checked, every fault listed (section 10).

``verify_paths`` gathers a set's files as a reader does (those given, and those their headers
name), checks each file's header, frames, INDEX and END (``pumpkit.core.framescan``, which
resynchronises after damage), and the set as a whole (``pumpkit.core.dumpset``); it never
stops at the first fault. Blocking file I/O.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pumpkit.core.buffers import Buffer
from pumpkit.core.dumpset import set_faults
from pumpkit.core.frame import FrameKind, decode_frame, decode_index, payload_bytes
from pumpkit.core.framescan import scan_frames
from pumpkit.core.header import HEADER_SIZE, OFFSET_BODY, FileHeader, decode_header
from pumpkit.errors import DumpError, NotADumpFileError
from pumpkit.io.dumpset.files import map_file, set_member
from pumpkit.io.dumpset.reader import DumpSetReader

__all__ = ("Fault", "VerifyReport", "verify_paths")


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


def verify_paths(
    paths: Sequence[str | os.PathLike[str]], *, verify_key: Ed25519PublicKey | None = None
) -> VerifyReport:
    """Check every byte of the files and the completeness of their set; never raises on damage.

    Each file's header, every frame's checksums and lengths, that every compressed payload
    decompresses to its declared length and every msgpack payload decodes, that the index and
    END frame agree with the frames, and that the set has all its files and only one GUID.
    After a damaged frame it resynchronises on the next sound frame, so one report counts
    every fault. Raises ``FileAccessError`` only for a path that cannot be read at all.
    With ``verify_key`` (format 1.3) a set not signed by its owner, or changed since it was
    signed, is a fault too.
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
                sibling = set_member(path.parent, name, path=path, offset=OFFSET_BODY)
                if sibling.resolve() not in seen and sibling.exists():
                    queue.append(sibling)
    faults.extend(Fault(f.path, f.offset, f.reason) for f in set_faults(headers))
    if verify_key is not None:
        faults.extend(_signature_faults(paths, verify_key))
    faults.sort(key=lambda f: (f.path, -1 if f.offset is None else f.offset))
    return VerifyReport(files=len(seen), frames=frames, rows=rows, faults=tuple(faults))


def _signature_faults(
    paths: Sequence[str | os.PathLike[str]], key: Ed25519PublicKey
) -> list[Fault]:
    try:
        with DumpSetReader.open(paths) as reader:
            reader.check_signature(key)
    except DumpError as exc:
        return [Fault(exc.path or str(paths[0]), exc.offset, exc.reason)]
    return []


def _verify_file(path: Path) -> tuple[FileHeader | None, int, int, list[Fault]]:
    mm = map_file(path)
    try:
        return _verify_data(str(path), b"" if mm is None else mm)
    finally:
        if mm is not None:
            # A view of it may still be referenced by a traceback; it then closes when collected.
            with contextlib.suppress(BufferError):
                mm.close()


def _verify_data(where: str, data: Buffer) -> tuple[FileHeader | None, int, int, list[Fault]]:
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
    scanned = scan.frames
    end = scan.end
    if header is None:
        return None, len(scanned), scan.rows, faults
    if not header.clean_close:
        faults.append(
            Fault(
                where,
                end,
                "file was not closed cleanly (the job stopped or crashed while writing):"
                f" readable up to offset {end}",
            )
        )
        return header, len(scanned), scan.rows, faults
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
    elif scanned[-1].count != len(scanned) - 1:
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
    return header, len(scanned), scan.rows, faults
