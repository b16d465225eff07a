"""``pumpkit info``, ``pumpkit ls`` and ``pumpkit verify``: what is in a dump file."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pumpkit.errors import DumpError, FileAccessError, InvalidArgumentError, NotADumpFileError
from pumpkit.exitcodes import ExitCode
from pumpkit.io.dumpset.info import get_dumpfile_info
from pumpkit.io.dumpset.keys import read_verify_key
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import verify_paths

__all__ = ("add_commands",)

_FRAME_FIELDS = ("fileid", "position", "length", "rows", "bytes")
_INFO_LABELS = (
    ("file_type", "File type"),
    ("file_version", "Format version"),
    ("job_name", "Job name"),
    ("operation", "Operation"),
    ("job_mode", "Job mode"),
    ("guid", "Job GUID"),
    ("file_number", "File number"),
    ("set_file_count", "Files in set"),
    ("creation_date", "Created"),
    ("producer", "Producer"),
    ("producer_version", "Producer version"),
    ("platform", "Platform"),
    ("source_engine", "Source engine"),
    ("db_version", "Source version"),
    ("charset", "Character set"),
    ("block_size", "Header size"),
    ("compression_algorithm", "Compression"),
    ("compression_level", "Compression level"),
    ("metadata_compressed", "Metadata compressed"),
    ("data_compressed", "Data compressed"),
    ("encryption_mode", "Encryption"),
    ("master_present", "Holds control table"),
    ("clean_close", "Closed cleanly"),
    ("data_end", "Data end"),
    ("file_size", "File size"),
)


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``info``, ``ls`` and ``verify``."""
    info = commands.add_parser("info", help="what a dump file's header says")
    info.add_argument("files", nargs="+", metavar="FILE")
    info.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    info.set_defaults(run=run_info)

    ls = commands.add_parser("ls", help="the objects of a dump-file set and where they lie")
    ls.add_argument("files", nargs="+", metavar="FILE")
    ls.add_argument(
        "--summary", action="store_true", help="one line per object instead of one per frame"
    )
    ls.add_argument("--json", action="store_true", help="JSON, for scripts")
    ls.add_argument(
        "--encryption-password",
        help="the set's password, if it is encrypted (or $PUMPKIT_ENCRYPTION_PASSWORD)",
    )
    ls.add_argument("--verify-key", help=_VERIFY_KEY_HELP)
    ls.set_defaults(run=run_ls)

    verify = commands.add_parser(
        "verify", help="check every frame and the set's completeness (exit 0 when sound)"
    )
    verify.add_argument("files", nargs="+", metavar="FILE")
    verify.add_argument("--json", action="store_true", help="JSON, for scripts")
    verify.add_argument("--verify-key", help=_VERIFY_KEY_HELP)
    verify.set_defaults(run=run_verify)


_VERIFY_KEY_HELP = "refuse a set not signed by this Ed25519 public key (a PEM file), or changed"


def _verify_key(args: argparse.Namespace, err: TextIO) -> Ed25519PublicKey | ExitCode | None:
    path = getattr(args, "verify_key", None)
    if not path:
        return None
    try:
        return read_verify_key(path)
    except FileAccessError as exc:
        _say(err, str(exc))
        return ExitCode.NO_INPUT
    except InvalidArgumentError as exc:
        _say(err, str(exc))
        return ExitCode.USAGE


def _say(err: TextIO, message: str) -> None:
    print(f"pumpkit: {message}", file=err)


def run_info(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    worst = ExitCode.OK
    found = []
    for path in args.files:
        try:
            info = get_dumpfile_info(path)
        except FileAccessError as exc:
            _say(err, str(exc))
            worst = max(worst, ExitCode.NO_INPUT)
            continue
        except DumpError as exc:
            _say(err, f"damaged header: {exc}")
            worst = max(worst, ExitCode.FAULT)
            continue
        if info.file_type != "pumpkit":
            _say(err, f"{path}: not a pumpkit dump file (file type unknown)")
            worst = max(worst, ExitCode.NOT_A_DUMP)
            if not args.json:
                continue
        found.append(info)
    if args.json:
        out.write(msgspec.json.encode(found).decode() + "\n")
        return int(worst)
    for n, info in enumerate(found):
        if n:
            print(file=out)
        print(info.path, file=out)
        facts = msgspec.structs.asdict(info)
        for key, label in _INFO_LABELS:
            print(f"  {label + ':':<21} {_show(facts[key])}", file=out)
        if info.set_files:
            print(f"  {'Set files:':<21} {', '.join(info.set_files)}", file=out)
    return int(worst)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value != "" else "-"


def _open_set(paths: Sequence[str], err: TextIO) -> DumpSetReader | ExitCode:
    try:
        return DumpSetReader.open(paths)
    except FileAccessError as exc:
        _say(err, str(exc))
        return ExitCode.NO_INPUT
    except NotADumpFileError as exc:
        _say(err, f"{exc.path}: not a pumpkit dump file")
        return ExitCode.NOT_A_DUMP
    except DumpError as exc:
        _say(err, str(exc))
        return ExitCode.FAULT


def run_ls(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    key = _verify_key(args, err)
    if isinstance(key, ExitCode):
        return int(key)
    reader = _open_set(args.files, err)
    if isinstance(reader, ExitCode):
        return int(reader)
    with reader:
        try:
            password = getattr(args, "encryption_password", None) or os.environ.get(
                "PUMPKIT_ENCRYPTION_PASSWORD"
            )
            reader.unlock(password)
            if key is not None:
                reader.check_signature(key)
            objects = reader.objects()
        except DumpError as exc:
            _say(err, str(exc))
            return int(ExitCode.FAULT)
        cut = {
            n: reader.readable_end(n)
            for n in reader.file_numbers
            if not reader.header_of(n).clean_close
        }
        if args.json:
            doc = {
                "guid": reader.header.guid_hex,
                "job_name": reader.header.body.job_name,
                "files": [str(reader.path_of(n)) for n in reader.file_numbers],
                "objects": [
                    {
                        "object_id": o.object_id,
                        "object_type": o.object_type,
                        "schema": o.schema,
                        "name": o.name,
                        "rows": o.rows,
                        "bytes": o.bytes,
                        "frames": [
                            dict(
                                zip(
                                    ("fileid", "position", "length", "rows", "bytes"),
                                    f,
                                    strict=True,
                                )
                            )
                            for f in o.frames
                        ],
                    }
                    for o in objects
                ],
                "cut_short": {str(n): end for n, end in cut.items()},
            }
            out.write(msgspec.json.encode(doc).decode() + "\n")
            return int(ExitCode.OK)
        print(
            f"Job {reader.header.body.job_name or '-'} ({reader.header.guid_hex}),"
            f" {len(reader.file_numbers)} file(s)",
            file=out,
        )
        names = [f"{o.schema}.{o.name}" if o.schema else o.name for o in objects]
        # Columns as wide as their longest entry: a long name shifts the row, never breaks it.
        tw = max([4, *(len(o.object_type) for o in objects)])
        nw = max([6, *(len(n) for n in names)])
        if args.summary:
            print(
                f"{'TYPE':<{tw}} {'OBJECT':<{nw}} {'FRAMES':>6} {'STORED':>12} {'ROWS':>12}"
                f" {'BYTES':>14}",
                file=out,
            )
        else:
            print(
                f"{'TYPE':<{tw}} {'OBJECT':<{nw}} {'FILEID':>6} {'POSITION':>12} {'LENGTH':>10}"
                f" {'ROWS':>12} {'BYTES':>14}",
                file=out,
            )
        for o, name in zip(objects, names, strict=True):
            if args.summary:
                stored = sum(f[2] for f in o.frames)
                print(
                    f"{o.object_type:<{tw}} {name:<{nw}} {len(o.frames):>6} {stored:>12}"
                    f" {o.rows:>12} {o.bytes:>14}",
                    file=out,
                )
                continue
            if not o.frames:
                print(
                    f"{o.object_type:<{tw}} {name:<{nw}} {'-':>6} {'-':>12} {'-':>10} {0:>12}"
                    f" {0:>14}",
                    file=out,
                )
            for fileid, position, length, rows, size in o.frames:
                print(
                    f"{o.object_type:<{tw}} {name:<{nw}} {fileid:>6} {position:>12} {length:>10}"
                    f" {rows:>12} {size:>14}",
                    file=out,
                )
        for n, end in cut.items():
            print(
                f"note: {reader.path_of(n)} was not closed cleanly; listed up to offset {end}",
                file=out,
            )
    return int(ExitCode.OK)


def run_verify(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    key = _verify_key(args, err)
    if isinstance(key, ExitCode):
        return int(key)
    try:
        report = verify_paths(args.files, verify_key=key)
    except FileAccessError as exc:
        _say(err, str(exc))
        return int(ExitCode.NO_INPUT)
    if args.json:
        out.write(
            msgspec.json.encode(
                {
                    "sound": report.sound,
                    "files": report.files,
                    "frames": report.frames,
                    "rows": report.rows,
                    "faults": report.faults,
                }
            ).decode()
            + "\n"
        )
    else:
        for fault in report.faults:
            print(str(fault), file=out)
        verdict = "sound" if report.sound else f"{len(report.faults)} fault(s)"
        print(
            f"{report.files} file(s), {report.frames} frames, {report.rows} rows: {verdict}",
            file=out,
        )
    return int(ExitCode.OK if report.sound else ExitCode.FAULT)
