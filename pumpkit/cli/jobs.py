"""``pumpkit export`` and ``pumpkit import``: options named after expdp/impdp's parameters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

import anyio
import msgspec

from pumpkit.cli.client import Client
from pumpkit.cli.selection import (
    LIST_KEYS,
    PARFILE_KEYS,
    add_selection_options,
    apply_selection,
    password_of,
)
from pumpkit.core.status import JobView
from pumpkit.engine.session import Session
from pumpkit.errors import FileAccessError, InvalidArgumentError, UsageError
from pumpkit.exitcodes import ExitCode

__all__ = ("add_commands", "read_parfile")

# Parfile keys (expdp's names) -> our option destinations.
_PARFILE_KEYS = {
    "DATABASE": "database",
    "DIRECTORY": "directory",
    "DUMPFILE": "dumpfile",
    "LOGFILE": "logfile",
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
        p.add_argument("--logfile", help="log file name, in --directory")
        p.add_argument("--job-name", help="the job's name (default SYS_EXPORT_FULL_01 and so on)")
        p.add_argument("--parallel", type=int, help="number of workers (default 1)")
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
            p.add_argument("--compression", choices=("ALL", "DATA_ONLY", "METADATA_ONLY", "NONE"))
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
        if value not in (None, False):
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
    async with Session(args.home) as session:
        h = await session.open(
            operation, mode, job_name=options.get("job_name"), database=options.get("database")
        )
        dumpfiles = str(options.get("dumpfile") or "expdat.dmp").split(",")
        for dumpfile in dumpfiles:
            await session.add_file(
                h,
                dumpfile.strip(),
                directory,
                options.get("filesize"),
                "DUMP",
                bool(options.get("reuse_dumpfiles")),
            )
        if options.get("logfile"):
            await session.add_file(h, options["logfile"], directory, filetype="LOG", reusefile=True)
        if options.get("sqlfile"):
            await session.add_file(h, options["sqlfile"], directory, filetype="SQL", reusefile=True)
        await apply_selection(session, h, options)
        if options.get("tables"):
            await session.metadata_filter(h, "NAME_LIST", str(options["tables"]))
        if options.get("schemas"):
            await session.metadata_filter(h, "SCHEMA_LIST", str(options["schemas"]))
        if str(options.get("keep_master") or "").upper() not in ("", "FALSE", "N", "NO", "0"):
            await session.set_parameter(h, "KEEP_MASTER", 1)
        if getattr(args, "no_verify", False):
            await session.set_parameter(h, "VERIFY", 0)
        for key in ("compression", "compression_level"):
            if options.get(key):
                await session.set_parameter(h, key.upper(), options[key])
        await session.set_parallel(h, _integer(options.get("parallel") or 1, "PARALLEL"))
        await session.start_job(h, detached=not args.foreground)
        client = Client(
            session,
            h,
            prompt=operation.capitalize(),
            out=out,
            err=err,
            show_progress=False if args.quiet else None,
            foreground=args.foreground,
        )
        return await client.run()


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
            operation = (await session.final_status(args.job)).operation or "Job"
            client = Client(session, h, prompt=operation.capitalize(), out=out, err=err)
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
