"""``pumpkit export`` and ``pumpkit import``: options named after expdp/impdp's parameters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

import anyio
import msgspec

from pumpkit.cli.client import Client, status_report
from pumpkit.cli.selection import (
    LIST_KEYS,
    PARFILE_KEYS,
    add_selection_options,
    apply_selection,
    password_of,
)
from pumpkit.core.status import JobView
from pumpkit.core.templates import expand_template
from pumpkit.engine.session import Session
from pumpkit.errors import FileAccessError, InvalidArgumentError, NotADumpFileError, UsageError
from pumpkit.exitcodes import ExitCode
from pumpkit.io.dumpset.info import get_dumpfile_info

__all__ = ("add_commands", "read_parfile")

# Parfile keys (expdp's names) -> our option destinations.
_PARFILE_KEYS = {
    "DATABASE": "database",
    "DIRECTORY": "directory",
    "DUMPFILE": "dumpfile",
    "LOGFILE": "logfile",
    "NOLOGFILE": "nologfile",
    "JOB_NAME": "job_name",
    "PARALLEL": "parallel",
    "FULL": "full",
    "SCHEMAS": "schemas",
    "TABLES": "tables",
    "FILESIZE": "filesize",
    "KEEP_MASTER": "keep_master",
    "REUSE_DUMPFILES": "reuse_dumpfiles",
    "COMPRESSION": "compression",
    "COMPRESSION_LEVEL": "compression_level",
    **PARFILE_KEYS,
}


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``export`` and ``import``."""
    for operation in ("export", "import"):
        p = commands.add_parser(
            operation,
            help=f"{operation} a database {'to' if operation == 'export' else 'from'} a dump-file set",
        )
        p.add_argument(
            "--database",
            help="the database: a SQLite path or sqlite:///path, or a postgresql:// URL",
        )
        p.add_argument("--directory", help="where dump and log files are (default: .)")
        p.add_argument(
            "--dumpfile",
            help="dump file names, comma-separated; %%U makes 01, 02, ... (default expdat.dmp)",
        )
        p.add_argument("--logfile", help=f"log file name, in --directory (default {operation}.log)")
        p.add_argument("--nologfile", action="store_true", help="write no log file (NOLOGFILE=YES)")
        p.add_argument(
            "--job-name",
            help=f"the job's name (default SYS_{operation.upper()}_FULL_01, _02 and so on;"
            " SCHEMA or TABLE for those modes)",
        )
        p.add_argument("--parallel", type=int, help="number of workers, 1 or more (default 1)")
        p.add_argument("--full", action="store_true", help="the whole database (the default)")
        p.add_argument("--schemas", help="schemas, comma-separated (SQLite: main)")
        p.add_argument("--tables", help="tables, comma-separated (TABLE mode)")
        p.add_argument("--keep-master", action="store_true", help="keep the control table")
        p.add_argument("--parfile", help="a file of KEY=VALUE lines (expdp's parameter names)")
        p.add_argument("--home", help="control-store directory (default $PUMPKIT_HOME)")
        p.add_argument("--quiet", action="store_true", help="no progress line, log lines only")
        p.add_argument(
            "--foreground",
            action="store_true",
            help="run the job in this process (by default it runs in its own, so the terminal may close)",
        )
        if operation == "export":
            p.add_argument("--filesize", help="largest dump file, e.g. 2GB; files roll over")
            p.add_argument(
                "--reuse-dumpfiles", action="store_true", help="overwrite existing dump files"
            )
            p.add_argument(
                "--compression",
                choices=("ALL", "DATA_ONLY", "METADATA_ONLY", "NONE"),
                help="what is compressed with zstd: ALL, DATA_ONLY, METADATA_ONLY or NONE"
                " (default ALL)",
            )
            p.add_argument("--compression-level", type=int, help="zstd level 1-22 (default 3)")
        else:
            p.add_argument(
                "--no-verify",
                action="store_true",
                help="skip checking the whole set before the target changes (VERIFY=0)",
            )
        add_selection_options(p, operation)
        p.set_defaults(run=run_job_command, operation=operation.upper())
    load = commands.add_parser(
        "load", help="load records from an input module (INMOD) into a table, TPump-style"
    )
    load.add_argument("--database", required=True, help="the target SQLite database")
    load.add_argument("--table", required=True, help="the target table")
    load.add_argument(
        "--inmod",
        default="pumpkit.io.inmods:DelimitedFile",
        help="the input module, module:Name (default: the delimited-text file module)",
    )
    load.add_argument("--parms", default="", help="the module's parameter string (e.g. its file)")
    load.add_argument(
        "--layout", default="VARTEXT", help="VARTEXT, JSON, MSGPACK or module:function"
    )
    load.add_argument("--delimiter", default="|", help="the VARTEXT delimiter (default |)")
    load.add_argument("--columns", help="the columns the fields fill, comma-separated")
    load.add_argument("--upsert-key", help="UPSERT on these key columns instead of INSERT")
    load.add_argument("--checkpoint", type=int, default=10_000, help="records per checkpoint")
    load.add_argument("--checkpoint-seconds", type=int, default=0, help="also every N seconds")
    load.add_argument(
        "--errlimit", type=int, default=0, help="stop after N failed records (0: no limit)"
    )
    load.add_argument("--job-name", help="the job's name (default SYS_LOAD_TABLE_01 and so on)")
    load.add_argument("--logfile", help="log file name, in --directory")
    load.add_argument("--directory", help="where the log file goes (default: .)")
    load.add_argument("--home", help="control-store directory (default $PUMPKIT_HOME)")
    load.add_argument("--quiet", action="store_true", help="no progress line, log lines only")
    load.add_argument("--foreground", action="store_true", help="run the job in this process")
    load.set_defaults(run=run_load_command)
    attach = commands.add_parser("attach", help="attach to a job: the interactive mode")
    attach.add_argument("job", metavar="JOB")
    attach.add_argument("--home", help="control-store directory (default $PUMPKIT_HOME)")
    attach.add_argument(
        "--encryption-password",
        help="the job's ENCRYPTION_PASSWORD, which a restart needs again (it is never stored)",
    )
    attach.add_argument("--encryption-pwd-prompt", action="store_true", help="ask for it")
    attach.set_defaults(run=run_attach)
    jobs = commands.add_parser("jobs", help="the jobs, like DBA_DATAPUMP_JOBS")
    jobs.add_argument("--json", action="store_true", help="JSON, for scripts")
    jobs.add_argument("--home", help="control-store directory (default $PUMPKIT_HOME)")
    jobs.set_defaults(run=run_jobs)


def read_parfile(path: str) -> dict[str, Any]:
    """KEY=VALUE lines; ``#`` starts a comment. Raises ``UsageError`` naming the bad line."""
    values: dict[str, Any] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FileAccessError(f"parfile {path}: {exc.strerror}", path=path) from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.strip().upper()
        if not sep or key not in _PARFILE_KEYS:
            raise UsageError(
                f"parfile {path} line {number}: {raw.strip()!r} is not KEY=VALUE with a known key"
                f" ({', '.join(sorted(_PARFILE_KEYS))})"
            )
        dest = _PARFILE_KEYS[key]
        value = value.strip()
        if dest in LIST_KEYS:
            # Repeatable, and holding quotes of their own (TABLE:"LIKE 'A%'"): kept as written.
            values.setdefault(dest, []).append(value)
        else:
            values[dest] = value.strip("'\"")
    return values


def _merged(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.parfile:
        options.update(read_parfile(args.parfile))
    for key in _PARFILE_KEYS.values():
        value = getattr(args, key, None)
        if value is not None and value is not False:  # (0 == False: --parallel 0 is a value)
            if key in LIST_KEYS:
                options[key] = [*options.get(key, []), *value]
            else:
                options[key] = value
    options["encryption_pwd_prompt"] = getattr(args, "encryption_pwd_prompt", False)
    return options


def _integer(value: object, name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a whole number, not {value!r}") from None


def _yes(value: object) -> bool:
    """A flag from the command line (True) or a parfile (YES, Y, TRUE, 1; NO and the like)."""
    return str(value or "").upper() not in ("", "FALSE", "N", "NO", "0")


def _degree(options: dict[str, Any]) -> int:
    """PARALLEL: 1 or more (0 is refused, not taken as the default)."""
    value = options.get("parallel")
    if value is None:
        return 1
    degree = _integer(value, "PARALLEL")
    if degree < 1:
        raise InvalidArgumentError(f"PARALLEL (--parallel) must be 1 or more, not {degree}")
    return degree


def _folder_of(name: str, directory: str) -> str | None:
    """An absolute file name is honoured as it is (its own folder); others go in --directory."""
    return None if Path(name).is_absolute() else directory


def _check_database(operation: str, database: object) -> None:
    """A SQLite path that is a directory is refused before any job is defined."""
    text = str(database or "")
    if not text or ("://" in text and not text.startswith("sqlite")):
        return
    path = Path(text.removeprefix("sqlite:///").removeprefix("sqlite://"))
    if path.is_dir():
        raise FileAccessError(
            f"--database {text}: is a directory, not a SQLite database file"
            f" (the {'target' if operation == 'IMPORT' else 'source'} of the"
            f" {operation.lower()})",
            path=str(path),
        )


def _check_dump_files(dumpfiles: list[str], directory: str) -> None:
    """An import's first dump file must be a pumpkit dump file: said before a job is defined
    (exit 4), not as the job's failure."""
    path = Path(dumpfiles[0])
    if path.is_absolute():
        first = path.parent / expand_template(path.name, 1)
    else:
        first = Path(directory) / expand_template(str(path), 1)
    if not first.is_file():
        return  # missing: add_file names it (exit 3)
    if get_dumpfile_info(first).file_type != "pumpkit":
        raise NotADumpFileError(
            "not a pumpkit dump file (no pumpkit magic); --dumpfile names the dump files of"
            " an export",
            path=str(first.absolute()),
            offset=0,
        )


def run_job_command(
    args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    options = _merged(args)
    if not options.get("database") and not options.get("sqlfile"):
        print(
            f"pumpkit {args.operation.lower()}: --database is required"
            + (" (or --sqlfile)" if args.operation == "IMPORT" else ""),
            file=err,
        )
        return int(ExitCode.USAGE)
    return anyio.run(_define_and_watch, args, options, out, err)


async def _define_and_watch(
    args: argparse.Namespace, options: dict[str, Any], out: TextIO, err: TextIO
) -> int:
    """Define the job, start it (in its own process unless --foreground), then watch it."""
    operation: str = args.operation
    mode = "TABLE" if options.get("tables") else ("SCHEMA" if options.get("schemas") else "FULL")
    directory = options.get("directory") or "."
    dumpfiles = [d.strip() for d in str(options.get("dumpfile") or "expdat.dmp").split(",")]
    degree = _degree(options)
    _check_database(operation, options.get("database"))
    if operation == "IMPORT":
        _check_dump_files(dumpfiles, directory)
    async with Session(args.home) as session:
        h = await session.open(
            operation, mode, job_name=options.get("job_name"), database=options.get("database")
        )
        for dumpfile in dumpfiles:
            await _add_dump_file(session, h, dumpfile, directory, options)
        if not _yes(options.get("nologfile")):
            # As expdp and impdp: export.log or import.log in the dump directory unless
            # NOLOGFILE (an SQLFILE import's log too).
            name = options.get("logfile") or f"{operation.lower()}.log"
            await session.add_file(
                h, name, _folder_of(name, directory), filetype="LOG", reusefile=True
            )
        if options.get("sqlfile"):
            name = options["sqlfile"]
            await session.add_file(
                h, name, _folder_of(name, directory), filetype="SQL", reusefile=True
            )
        await apply_selection(session, h, options)
        if options.get("tables"):
            await session.metadata_filter(h, "NAME_LIST", str(options["tables"]))
        if options.get("schemas"):
            await session.metadata_filter(h, "SCHEMA_LIST", str(options["schemas"]))
        if _yes(options.get("keep_master")):
            await session.set_parameter(h, "KEEP_MASTER", 1)
        if getattr(args, "no_verify", False):
            await session.set_parameter(h, "VERIFY", 0)
        for key in ("compression", "compression_level"):
            if options.get(key):
                await session.set_parameter(h, key.upper(), options[key])
        await session.set_parallel(h, degree)
        await session.start_job(h, detached=not args.foreground)
        client = Client(
            session,
            h,
            prompt=operation.capitalize(),
            out=out,
            err=err,
            show_progress=False if args.quiet else None,
            foreground=args.foreground,
            home=args.home,
        )
        return await client.run()


async def _add_dump_file(
    session: Session, h: int, name: str, directory: str, options: dict[str, Any]
) -> None:
    reuse = _yes(options.get("reuse_dumpfiles"))
    try:
        await session.add_file(
            h, name, _folder_of(name, directory), options.get("filesize"), "DUMP", reuse
        )
    except FileAccessError as exc:
        if not reuse and "already exists" in str(exc) and Path(exc.path).is_file():
            # The library names its argument (reusefile=True); a user of the command line
            # needs the option. Not a missing file (3): a call to be made differently (2).
            raise UsageError(
                f"dump file {exc.path!r} already exists; remove it or pass --reuse-dumpfiles"
                " (REUSE_DUMPFILES=YES in a parfile)"
            ) from None
        raise


def run_load_command(
    args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    async def load() -> int:
        async with Session(args.home) as session:
            h = await session.open("LOAD", "TABLE", job_name=args.job_name, database=args.database)
            settings: list[tuple[str, str | int]] = [
                ("TARGET_TABLE", args.table),
                ("INMOD", args.inmod),
                ("INMOD_PARMS", args.parms),
                ("LAYOUT", args.layout),
                ("DELIMITER", args.delimiter),
                ("CHECKPOINT", args.checkpoint),
                ("CHECKPOINT_SECONDS", args.checkpoint_seconds),
                ("ERRLIMIT", args.errlimit),
            ]
            if args.columns:
                settings.append(("COLUMNS", args.columns))
            if args.upsert_key:
                settings += [("LOAD_MODE", "UPSERT"), ("UPSERT_KEY", args.upsert_key)]
            for name, value in settings:
                await session.set_parameter(h, name, value)
            if args.logfile:
                await session.add_file(
                    h, args.logfile, args.directory or ".", filetype="LOG", reusefile=True
                )
            await session.start_job(h, detached=not args.foreground)
            client = Client(
                session,
                h,
                prompt="Load",
                out=out,
                err=err,
                show_progress=False if args.quiet else None,
                foreground=args.foreground,
            )
            return await client.run()

    return anyio.run(load)


def run_attach(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    async def attach() -> int:
        async with Session(args.home) as session:
            h = await session.attach(args.job)
            password = password_of(vars(args))
            if password:
                await session.set_parameter(h, "ENCRYPTION_PASSWORD", password)
            status = await session.final_status(args.job)
            operation = status.operation or "Job"
            # As expdp's ATTACH: the job's status first, then the prompt.
            print(status_report(status), file=out, flush=True)
            client = Client(
                session, h, prompt=operation.capitalize(), out=out, err=err, home=args.home
            )
            return await client.run(interactive_first=True)

    return anyio.run(attach)


def run_jobs(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    async def jobs() -> list[JobView]:
        async with Session(args.home) as session:
            return await session.jobs()

    views = anyio.run(jobs)
    if args.json:
        out.write(msgspec.json.encode(views).decode() + "\n")
        return int(ExitCode.OK)
    header = (
        f"{'JOB_NAME':<24} {'OPERATION':<9} {'MODE':<6} {'STATE':<12} {'DEGREE':>6}"
        f" {'ATTACHED':>8} {'OWNER':<22} {'ALIVE':<5} {'RESTARTS':>8}  STOPPED"
    )
    print(header, file=out)
    for v in views:
        owner = f"{v.owner_host}:{v.owner_pid}" if v.owner_pid else "-"
        print(
            f"{v.job_name:<24} {v.operation:<9} {v.job_mode:<6} {v.state:<12} {v.degree:>6}"
            f" {v.attached_sessions:>8} {owner:<22} {'yes' if v.owner_alive else 'no':<5}"
            f" {v.restart_count:>8}  {v.stop_reason or '-'}",
            file=out,
        )
    return int(ExitCode.OK)
