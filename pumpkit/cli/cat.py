"""``pumpkit cat SET [TABLE...]``: the rows of a dump-file set, offline, as CSV, JSON lines,
Parquet or Arrow IPC files (no database, no job)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from pumpkit.errors import UsageError
from pumpkit.exitcodes import ExitCode
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.rows import (
    SetTable,
    choose_columns,
    choose_tables,
    set_paths,
    set_tables,
    table_rows,
)
from pumpkit.io.rowfiles import BINARY_FORMATS, FORMATS, arrow_types, open_writer

__all__ = ("add_commands",)

_SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet", "arrow": ".arrow"}


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``cat``."""
    cat = commands.add_parser(
        "cat",
        help="the rows of a dump-file set, offline: CSV, JSON lines, Parquet or Arrow",
        description="Print or write the rows of the tables of a dump-file set. SET is a file"
        " of the set (its header names the others) or a template such as 'exp%%U.dmp'.",
    )
    cat.add_argument("set", metavar="SET", help="a dump file of the set, or its %%U template")
    cat.add_argument(
        "tables", nargs="*", metavar="TABLE", help="tables (name or schema.name; default all)"
    )
    cat.add_argument(
        "--format",
        choices=FORMATS,
        default="csv",
        help="csv (default), jsonl (one JSON object a row), parquet or arrow (Arrow IPC file)",
    )
    cat.add_argument(
        "--output",
        metavar="PATH",
        help="a file (one table) or a directory (a file per table, named schema.table.FORMAT);"
        " CSV and JSON lines of one table go to standard output without it",
    )
    cat.add_argument("--columns", help="only these columns, comma-separated, in this order")
    cat.add_argument("--limit", type=int, help="at most this many rows of each table")
    cat.add_argument(
        "--password",
        "--encryption-password",
        dest="password",
        help="the set's ENCRYPTION_PASSWORD (or $PUMPKIT_ENCRYPTION_PASSWORD)",
    )
    cat.set_defaults(run=run_cat)


def run_cat(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Raises ``FileAccessError`` (3), ``NotADumpFileError`` (4), ``UsageError`` (2) and
    ``DumpError`` (1, damage) for ``main`` to report."""
    if args.limit is not None and args.limit < 0:
        raise UsageError(f"--limit must be 0 or more, not {args.limit}")
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    with DumpSetReader.open(set_paths(args.set)) as reader:
        reader.unlock(args.password or os.environ.get("PUMPKIT_ENCRYPTION_PASSWORD"))
        tables = choose_tables(set_tables(reader), args.tables)
        targets = _targets(args, tables)
        for table, target in zip(tables, targets, strict=True):
            positions = choose_columns(table, columns)
            _cat_table(reader, table, positions, args, target, out)
    return int(ExitCode.OK)


def _targets(args: argparse.Namespace, tables: list[SetTable]) -> list[Path | None]:
    """Where each table goes: None for standard output."""
    fmt = args.format
    output = Path(args.output) if args.output else None
    if output is None:
        if fmt in BINARY_FORMATS:
            raise UsageError(f"--format {fmt} writes files: give --output FILE or DIRECTORY")
        if len(tables) > 1:
            raise UsageError(
                f"the set has {len(tables)} tables ({', '.join(t.name for t in tables)}):"
                " name one, or give --output DIRECTORY for a file each"
            )
        return [None]
    if len(tables) == 1 and not output.is_dir():
        if not output.parent.is_dir():
            raise UsageError(f"--output {output}: directory {output.parent} does not exist")
        return [output]
    if not output.is_dir():
        raise UsageError(
            f"--output {output}: not a directory, and {len(tables)} tables need a file each"
        )
    return [output / f"{t.name}{_SUFFIX[fmt]}" for t in tables]


def _cat_table(
    reader: DumpSetReader,
    table: SetTable,
    positions: list[int],
    args: argparse.Namespace,
    target: Path | None,
    out: TextIO,
) -> None:
    names = [table.columns[p] for p in positions]

    def batches() -> Any:
        return table_rows(reader, table, positions=positions, limit=args.limit)

    if args.format in BINARY_FORMATS:
        assert target is not None
        # Arrow wants each column's type before the first batch: a first pass finds it.
        types = arrow_types(len(names), batches())
        writer = open_writer(args.format, names, path=target, types=types)
        try:
            for rows in batches():
                writer.write(rows)
        finally:
            writer.close()
        return
    if target is None:
        _write_text(args.format, names, batches(), out)
        return
    with open(target, "w", encoding="utf-8", newline="") as fh:
        _write_text(args.format, names, batches(), fh)


def _write_text(fmt: str, names: list[str], batches: Any, out: TextIO) -> None:
    writer = open_writer(fmt, names, out=out)
    for rows in batches:
        writer.write(rows)
    writer.close()
