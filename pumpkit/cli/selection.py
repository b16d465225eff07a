"""The command line's what-to-move options, named as expdp/impdp name them, turned into
Session calls: ``--include``/``--exclude`` (``TABLE:"LIKE 'ORD%'"``), ``--query``
(``[table:]condition``), ``--sample``, ``--content``, ``--remap-table``, ``--remap-data``,
``--transform``, ``--table-exists-action``, ``--estimate[-only]``, ``--sqlfile`` and the
encryption password (``--encryption-password``, ``--encryption-pwd-prompt`` or
``$PUMPKIT_ENCRYPTION_PASSWORD``)."""

from __future__ import annotations

import argparse
import getpass
import os
import re
from typing import Any

from pumpkit.core.selection import parse_object_filter
from pumpkit.engine.session import Session
from pumpkit.errors import InvalidArgumentError

__all__ = ("LIST_KEYS", "PARFILE_KEYS", "add_selection_options", "apply_selection", "password_of")

#: Parfile keys of these options (expdp's names) -> option destinations.
PARFILE_KEYS = {
    "INCLUDE": "include",
    "EXCLUDE": "exclude",
    "QUERY": "query",
    "SAMPLE": "sample",
    "CONTENT": "content",
    "REMAP_TABLE": "remap_table",
    "REMAP_SCHEMA": "remap_schema",
    "REMAP_DATA": "remap_data",
    "TRANSFORM": "transform",
    "TABLE_EXISTS_ACTION": "table_exists_action",
    "ESTIMATE": "estimate",
    "ESTIMATE_ONLY": "estimate_only",
    "SQLFILE": "sqlfile",
    "ENCRYPTION": "encryption",
    "ENCRYPTION_PASSWORD": "encryption_password",
    "ROLE": "role",
    "NO_OWNER": "no_owner",
    "NO_PRIVILEGES": "no_privileges",
    "SIGN_KEY": "sign_key",
    "VERIFY_KEY": "verify_key",
}
#: Options that may be given several times (on the command line and in a parfile).
LIST_KEYS = (
    "include",
    "exclude",
    "query",
    "sample",
    "remap_table",
    "remap_schema",
    "remap_data",
    "transform",
)

_TABLE_PREFIX = re.compile(r'^\s*("(?:[^"]|"")+"|[A-Za-z_][\w$]*)\s*:(?!:)')


def add_selection_options(p: argparse.ArgumentParser, operation: str) -> None:
    p.add_argument(
        "--include",
        action="append",
        help="""object types to move, TYPE[:name_clause], e.g. TABLE:"LIKE 'ORD%%'" (repeatable)""",
    )
    p.add_argument(
        "--exclude",
        action="append",
        help="object types to leave out, e.g. INDEX or TABLE:\"IN ('A','B')\" (repeatable)",
    )
    p.add_argument(
        "--query", action="append", help="[table:]condition: only rows where it holds (repeatable)"
    )
    p.add_argument(
        "--sample", action="append", help="[table:]percent: a random share of rows (repeatable)"
    )
    p.add_argument("--content", choices=("ALL", "DATA_ONLY", "METADATA_ONLY"))
    p.add_argument(
        "--remap-data",
        action="append",
        help="table.column:module:function, the column's values pass through it (repeatable)",
    )
    p.add_argument("--encryption-password", help="encrypt (export) or decrypt (import) with it")
    p.add_argument(
        "--encryption-pwd-prompt",
        action="store_true",
        help="ask for the encryption password (it is not echoed)",
    )
    if operation == "export":
        p.add_argument("--sign-key", help="sign the set with this Ed25519 private key (a PEM file)")
    else:
        p.add_argument(
            "--verify-key",
            help="refuse a set not signed by this Ed25519 public key (a PEM file), or changed",
        )
    if operation == "export":
        p.add_argument(
            "--encryption",
            choices=("ALL", "DATA_ONLY", "METADATA_ONLY", "NONE"),
            help="what is encrypted with the password (default: ALL with a password, NONE without)",
        )
        p.add_argument(
            "--estimate",
            choices=("BLOCKS", "STATISTICS"),
            help="how the size of the table data is estimated before the export: from the"
            " pages the tables take (BLOCKS) or from the row counts (STATISTICS, the default)",
        )
        p.add_argument(
            "--estimate-only", action="store_true", help="report the estimate, write no data"
        )
    else:
        p.add_argument(
            "--table-exists-action",
            choices=("SKIP", "APPEND", "TRUNCATE", "REPLACE"),
            help="for tables the target has (default SKIP; APPEND with --content DATA_ONLY)",
        )
        p.add_argument("--remap-table", action="append", help="old:new (repeatable)")
        p.add_argument(
            "--remap-schema", action="append", help="old:new, PostgreSQL schemas (repeatable)"
        )
        p.add_argument(
            "--role",
            help="PostgreSQL: run the dump's statements and rows as this role (SET ROLE),"
            " with only its rights; the way to import a set one does not trust",
        )
        p.add_argument(
            "--no-owner", action="store_true", help="PostgreSQL: do not set objects' owners"
        )
        p.add_argument(
            "--no-privileges",
            action="store_true",
            help="PostgreSQL: do not restore grants (pg_restore's --no-privileges)",
        )
        p.add_argument(
            "--transform",
            action="append",
            help="NAME:0|1 - OMIT_STORAGE, RENAME_INDEXES, RENAME_CONSTRAINTS (repeatable)",
        )
        p.add_argument(
            "--sqlfile",
            help="write the DDL to this file and import nothing (a relative name is in"
            " --directory; an absolute path is used as it is)",
        )


def _split_table(text: str) -> tuple[str | None, str]:
    match = _TABLE_PREFIX.match(text)
    if match is None:
        return None, text.strip()
    name = match.group(1)
    if name.startswith('"'):
        name = name[1:-1].replace('""', '"')
    return name, text[match.end() :].strip()


def password_of(options: dict[str, Any]) -> str | None:
    if options.get("encryption_pwd_prompt"):
        return getpass.getpass("Encryption password: ")
    return options.get("encryption_password") or os.environ.get("PUMPKIT_ENCRYPTION_PASSWORD")


async def apply_selection(session: Session, h: int, options: dict[str, Any]) -> None:
    """Make the Session calls the options stand for (each is checked as it is made)."""
    for text in options.get("include") or ():
        chosen = parse_object_filter(text)
        await session.metadata_filter(h, "INCLUDE_PATH_EXPR", f"= '{chosen.object_type}'")
        if chosen.name is not None:
            await session.metadata_filter(h, "NAME_EXPR", chosen.name.text, chosen.object_type)
    for text in options.get("exclude") or ():
        chosen = parse_object_filter(text)
        if chosen.name is not None:
            await session.metadata_filter(
                h, "EXCLUDE_NAME_EXPR", chosen.name.text, chosen.object_type
            )
        else:
            await session.metadata_filter(h, "EXCLUDE_PATH_EXPR", f"= '{chosen.object_type}'")
    for text in options.get("query") or ():
        table, condition = _split_table(text)
        await session.data_filter(h, "QUERY", condition, table)
    for text in options.get("sample") or ():
        table, percent = _split_table(text)
        await session.data_filter(h, "SAMPLE", percent, table)
    for text in options.get("remap_table") or ():
        old, sep, new = text.partition(":")
        if not sep:
            raise InvalidArgumentError(f"--remap-table takes old:new, not {text!r}")
        await session.metadata_remap(h, "REMAP_TABLE", old.strip(), new.strip())
    for text in options.get("remap_schema") or ():
        old, sep, new = text.partition(":")
        if not sep:
            raise InvalidArgumentError(f"--remap-schema takes old:new, not {text!r}")
        await session.metadata_remap(h, "REMAP_SCHEMA", old.strip(), new.strip())
    for text in options.get("remap_data") or ():
        column, sep, function = text.partition(":")
        if not sep:
            raise InvalidArgumentError(
                f"--remap-data takes table.column:module:function, not {text!r}"
            )
        await session.metadata_remap(h, "REMAP_DATA", column.strip(), function.strip())
    for text in options.get("transform") or ():
        name, sep, value = text.partition(":")
        await session.metadata_transform(h, name.strip().upper(), value.strip() if sep else "1")
    for key in ("content", "table_exists_action", "estimate", "encryption", "role"):
        if options.get(key):
            await session.set_parameter(h, key.upper(), options[key])
    for key in ("no_owner", "no_privileges"):
        if str(options.get(key) or "").upper() not in ("", "FALSE", "N", "NO", "0"):
            await session.set_parameter(h, key.upper(), 1)
    if str(options.get("estimate_only") or "").upper() not in ("", "FALSE", "N", "NO", "0"):
        await session.set_parameter(h, "ESTIMATE_ONLY", 1)
    for key in ("sign_key", "verify_key"):
        if options.get(key):
            # The job may run in another directory: the key file's path is kept absolute.
            await session.set_parameter(h, key.upper(), os.path.abspath(options[key]))
    password = password_of(options)
    if password:
        await session.set_parameter(h, "ENCRYPTION_PASSWORD", password)
