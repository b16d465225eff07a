"""GET_DUMPFILE_INFO: what one file's header says, with no set and no job.

``get_dumpfile_info`` reads the header of one file (section 3 of ``formats/dumpfile.md``) and
answers Oracle's GET_DUMPFILE_INFO items as a ``DumpFileInfo``; a file that is not a pumpkit
dump at all is an answer too (``file_type == "unknown"``). Blocking file I/O.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import msgspec

from pumpkit.core.header import HEADER_SIZE, MAX_HEADER_SIZE, OFFSET_HEADER_SIZE, decode_header
from pumpkit.errors import DumpError, FileAccessError, NotADumpFileError
from pumpkit.io.dumpset.files import access_message

__all__ = ("DumpFileInfo", "get_dumpfile_info")


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
            # The header's size (a u32 at offset 12) says how much more to read.
            size_field = head[OFFSET_HEADER_SIZE : OFFSET_HEADER_SIZE + 4]
            header_size = int.from_bytes(size_field, "little") if len(size_field) == 4 else 0
            if HEADER_SIZE < header_size <= MAX_HEADER_SIZE:
                head += fh.read(header_size - HEADER_SIZE)
    except IsADirectoryError:
        raise FileAccessError(f"{p}: is a directory, not a dump file", path=str(p)) from None
    except OSError as exc:
        raise FileAccessError(access_message(p, exc), path=str(p)) from None
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
