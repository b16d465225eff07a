"""PostgreSQL's own client tools, driven from asyncio: a schema is what pg_dump says it is.

pumpkit takes a PostgreSQL schema with ``pg_dump`` in the export's exported snapshot, keeps
that custom-format archive in the dump set, and gives it back to ``pg_restore``: pre-data
before the rows, post-data after them, while the rows go through pumpkit's own COPY path (as
pgcopydb does). This module is the toolkit for that; it knows nothing of jobs.

* :func:`find_tools` / :func:`tools_for` — ``pg_dump``, ``pg_restore`` and ``psql`` of the
  server's major version or newer, or a :class:`ConnectorError` naming the package to install.
* :func:`dump_schema` — the archive, as bytes.
* :func:`read_toc` — its table of contents: one :class:`TocEntry` per object.
* :func:`restore` — chosen entries into a database, every failure collected per entry.
* :func:`script` — the SQL ``pg_restore`` would run (its plain-text output).

Statements are parsed and renamed in :mod:`pumpkit.io.connectors.postgres.statements`.

How the tools are run
---------------------
Every tool runs as a child process (``anyio.run_process``); archives go through a private
temporary directory written and removed on a worker thread. A password in the URL is moved
to ``PGPASSWORD`` so that it never shows in a process list; ``--no-password`` makes a
missing one an error instead of a prompt. Messages are asked for in English
(``LC_MESSAGES=C``): :func:`restore` reads them.

``dump_schema`` runs ``pg_dump --format=custom --schema-only --no-password --no-sync
[--snapshot=S]``:

* ``--format=custom``: every TOC entry keeps its section and its dependencies, and
  ``pg_restore`` can pick entries (``-L``) and run them in parallel (``-j``).
* ``--no-sync``: the archive is read back into memory at once and the dump set has its own
  durability; an fsync of a temporary file buys nothing.
* ``--snapshot``: the schema is the one the rows are read in (``pg_export_snapshot()`` of
  the coordinator, whose transaction must stay open while pg_dump runs).
* not ``--quote-all-identifiers`` unless asked (``quote_all_identifiers=True``): pg_dump
  already quotes every name that is a keyword of its own version, which is the server's or
  newer; quoting all protects only against keywords new in an even newer target. It has a
  cost found here: pg_dump 15 then no longer recognises public's default comment and dumps
  a ``COMMENT ON SCHEMA "public"`` entry, which fails for any role that does not own
  ``public`` (a restore with ``role``); and the tags of COMMENT and ACL entries change
  (``TABLE "t"`` instead of ``TABLE t``).
* no ``-b``/``--blobs`` (PostgreSQL 16 calls it ``--large-objects``): with
  ``--schema-only`` it adds nothing (large objects count as data, see below). With
  ``sections=True`` the dump is ``--section=pre-data --section=post-data`` instead, which
  is the schema plus large objects' metadata and the materialized views' refreshes.

What a schema-only custom archive holds and omits (PostgreSQL 15.20's pg_dump)
---------------------------------------------------------------------------
Found with the real tools on :mod:`pumpkit.testing.pg_rich`; the tests hold them.

* It holds every object of the database's schemas, each with its owner (``ALTER ... OWNER
  TO``), comments (``COMMENT`` entries), grants (``ACL`` entries, also per column) and
  default privileges (``DEFAULT ACL``), in pre-data (types, functions, tables, views,
  sequences, defaults, ``TABLE ATTACH`` of partitions, foreign servers, user mappings,
  materialized views created ``WITH NO DATA``) or post-data (constraints, indexes, ``INDEX
  ATTACH``, ``FK CONSTRAINT``, triggers, rules, policies, ``ROW SECURITY``, extended
  statistics, publications with their ``PUBLICATION TABLE`` and ``PUBLICATION TABLES IN
  SCHEMA`` entries, ``EVENT TRIGGER`` last). COMMENT and ACL entries are of no section of
  their own: pg_restore counts them in the section of the entry before them, which is what
  :attr:`TocEntry.section` reports (it is read with ``pg_restore -l --section=...``).
* Extensions are one ``EXTENSION`` entry each (``CREATE EXTENSION IF NOT EXISTS ... WITH
  SCHEMA``) plus its comment; their member objects are not dumped (the target's extension
  script makes them), so the target needs the extension's files installed.
* Partitions are dumped as tables of their own plus a ``TABLE ATTACH`` entry; inheritance
  children say ``INHERITS``. Identity columns are ``ALTER TABLE ... ADD GENERATED ... AS
  IDENTITY`` inside the TABLE entry; serial columns are a SEQUENCE, a ``SEQUENCE OWNED BY``
  and a ``DEFAULT`` entry.
* It omits all rows (no ``TABLE DATA``), and with them:
  - sequence values: no ``SEQUENCE SET`` entry; a restored sequence starts at its START.
    The integration must set every sequence's value itself (``setval(seq, last_value,
    is_called)``, identity sequences included), from the snapshot.
  - materialized views' contents: no ``MATERIALIZED VIEW DATA`` entry; every materialized
    view is created empty (``WITH NO DATA``). The integration must ``REFRESH`` the ones that
    were populated in the source (``pg_class.relispopulated``), after the rows and in
    dependency order (a view over a view), and leave the others unpopulated.
  - large objects entirely: not even their metadata (``BLOB`` entries), ``-b`` or not —
    pg_dump treats them as data. The integration must create each (``lo_create(oid)``:
    pg_dump keeps oids), its owner, comment and grants, and write its bytes; or dump with
    ``sections=True``, which keeps the ``BLOB`` entries (``lo_create``, ``ALTER LARGE
    OBJECT ... OWNER TO``, their COMMENT and ACL entries, all pre-data), so that only the
    bytes are left to move.
* ``\\restrict <key>`` / ``\\unrestrict <key>`` (pg_dump 13.22, 14.19, 15.14, 16.10, 17.6
  and later: a psql meta-command that refuses other meta-commands in between) are not in the
  archive: ``pg_restore`` writes them, with a new random key each time, only in a script
  (:func:`script`); psql of the same point release or newer understands them, older ones
  do not.
* ``ENCODING``, ``STDSTRINGS`` and ``SEARCHPATH`` entries are in the archive but hidden from
  ``pg_restore -l`` and always applied at the start of a restore.
* Not in it at all: roles and tablespaces (cluster-wide: ``pg_dumpall --globals-only``), so
  the owners and grantees must exist in the target, or be dropped with ``no_owner`` and
  ``no_privileges``; the database's own properties (``ALTER DATABASE ... SET``, its grants
  and comment: only with ``--create``); subscriptions unless the dumping user is a
  superuser.

What a copy needs besides the archive (proven by ``tests/pg/test_pgtools.py``)
----------------------------------------------------------------------------
A database rebuilt as ``restore(section="pre-data")``, then the rows, then
``restore(section="post-data")`` (both with ``jobs=2``) has the same ``pg_dump`` output and
the same rows as its source when, between the two restores, the copy also:

* copies the rows of every plain table (``relkind 'r'``): leaf partitions, inheritance
  parents (their own rows only: ``COPY t TO`` never reads children) and children, unlogged
  tables; partitioned tables hold none, foreign tables' rows live elsewhere. Binary COPY
  without a column list is right: it leaves out generated columns (recomputed on the way in)
  and writes identity ``ALWAYS`` columns as they are. Nothing fires while the rows go in:
  triggers, constraint triggers, rules, foreign keys, row security and the event trigger
  are all post-data;
* sets every sequence: ``setval(seq, last_value, is_called)`` (``is_called`` false for one
  never used), owned and identity sequences included;
* large objects: with ``--schema-only``, ``lo_create(oid)``, ``ALTER LARGE OBJECT ... OWNER
  TO``, its comment, its grants (from ``aclexplode(lomacl)``), then the bytes
  (``lo_put``); with ``sections=True`` only the bytes;
* with ``--schema-only``, ``REFRESH MATERIALIZED VIEW`` of each view populated in the source
  (with ``sections=True`` pg_restore does it in post-data, after the indexes).

pg_restore's messages
---------------------
Only with ``--verbose`` does pg_restore say which entry an error belongs to (``from TOC entry
N; ...``, printed once per failing entry); :func:`restore` always passes it and reads
stderr. Without ``--exit-on-error`` pg_restore goes on after a failed statement and ends with
``warning: errors ignored on restore: N`` and exit status 1; a failure to connect or to read
the archive ends it without that line, which :func:`restore` raises.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Final, Literal

import anyio
import msgspec

from pumpkit.errors import ConnectorError, InvalidArgumentError
from pumpkit.io.connectors.postgres.common import connect

__all__ = (
    "LIBRARY_DIRS",
    "OBJECT_PATHS",
    "SECTIONS",
    "FailedEntry",
    "PgTools",
    "RestoreResult",
    "TocEntry",
    "dump_schema",
    "find_tools",
    "object_type_path",
    "read_toc",
    "restore",
    "script",
    "server_major",
    "tools_for",
)

#: Where Debian and Ubuntu install each major version's tools, searched after ``PATH``.
LIBRARY_DIRS: Final = "/usr/lib/postgresql/*/bin"
TOOLS: Final = ("pg_dump", "pg_restore", "psql")
#: The values of :attr:`TocEntry.section`.
SECTIONS: Final = ("pre-data", "data", "post-data", "none")
Section = Literal["pre-data", "data", "post-data", "none"]
_TIMEOUT: Final = 3600


# --- finding the tools ------------------------------------------------------------------------


class PgTools(msgspec.Struct, frozen=True):
    """One installation's ``pg_dump``, ``pg_restore`` and ``psql`` (absolute paths), and
    their version ``(major, minor)``."""

    pg_dump: str
    pg_restore: str
    psql: str
    version: tuple[int, int]


_VERSION = re.compile(rb"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


def _tool_version(path: str) -> tuple[int, int] | None:
    import subprocess

    try:
        done = subprocess.run(
            [path, "--version"], capture_output=True, timeout=30, check=False, stdin=None
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    # Before 10, the major version was two numbers (9.6); their first one is enough here.
    return (major, minor)


def _candidate_dirs(path: str | None, library_dirs: str | Sequence[str] | None) -> list[str]:
    dirs = [d for d in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep)]
    patterns = (
        [LIBRARY_DIRS]
        if library_dirs is None
        else ([library_dirs] if isinstance(library_dirs, str) else list(library_dirs))
    )
    for pattern in patterns:
        dirs += sorted(glob.glob(pattern))
    seen: set[str] = set()
    out = []
    for d in dirs:
        if d and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def find_tools(
    server_major: int,
    *,
    path: str | None = None,
    library_dirs: str | Sequence[str] | None = None,
) -> PgTools:
    """The newest installation whose ``pg_dump``, ``pg_restore`` and ``psql`` are all of
    major version ``server_major`` or newer (and of one version: pg_restore must read what
    pg_dump writes), looking in ``path`` (default ``$PATH``) and then in ``library_dirs``
    (glob patterns, default :data:`LIBRARY_DIRS`).

    Blocking (it runs each candidate's ``--version``): call it on a worker thread, or use
    :func:`tools_for`. Raises :class:`ConnectorError` when none fits, saying what was found
    and which package to install; call it before anything is written.
    """
    found: list[tuple[str, tuple[int, int] | None]] = []
    fitting: list[tuple[tuple[int, int], int, PgTools]] = []
    versions: dict[str, tuple[int, int] | None] = {}
    for order, directory in enumerate(_candidate_dirs(path, library_dirs)):
        here: dict[str, tuple[str, tuple[int, int] | None]] = {}
        for tool in TOOLS:
            candidate = os.path.join(directory, tool)
            if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
                continue
            real = os.path.realpath(candidate)
            if real not in versions:
                versions[real] = _tool_version(candidate)
            here[tool] = (candidate, versions[real])
            if (candidate, versions[real]) not in found:
                found.append((candidate, versions[real]))
        if len(here) < len(TOOLS):
            continue
        tool_versions = {v for _, v in here.values()}
        if len(tool_versions) != 1:
            continue
        (version,) = tool_versions
        if version is None or version[0] < server_major:
            continue
        tools = PgTools(
            pg_dump=os.path.abspath(here["pg_dump"][0]),
            pg_restore=os.path.abspath(here["pg_restore"][0]),
            psql=os.path.abspath(here["psql"][0]),
            version=version,
        )
        fitting.append((version, -order, tools))
    if fitting:
        return max(fitting, key=lambda f: (f[0], f[1]))[2]
    seen = (
        ", ".join(f"{p} ({f'{v[0]}.{v[1]}' if v else 'version unknown'})" for p, v in found)
        or "none"
    )
    raise ConnectorError(
        f"pg_dump, pg_restore and psql of PostgreSQL {server_major} or newer are needed for"
        f" a PostgreSQL {server_major} server, all from one installation; found: {seen}."
        f" Install them: on Debian or Ubuntu the package postgresql-client-{server_major}"
        f" (from apt.postgresql.org if the distribution has no such package), elsewhere the"
        f" PostgreSQL {server_major} client tools"
    )


async def server_major(url: str) -> int:
    """The major version of the server at ``url`` (15 for 15.20; 9 for 9.6)."""
    conn = await connect(url)
    try:
        number = int(await conn.fetchval("SHOW server_version_num"))
    finally:
        await conn.close()
    return number // 10000


async def tools_for(
    url: str,
    *,
    path: str | None = None,
    library_dirs: str | Sequence[str] | None = None,
) -> PgTools:
    """:func:`find_tools` for the server at ``url`` (asks it its version)."""
    major = await server_major(url)
    return await anyio.to_thread.run_sync(
        lambda: find_tools(major, path=path, library_dirs=library_dirs)
    )


# --- running them -----------------------------------------------------------------------------


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment to run a tool in: the password
    in ``PGPASSWORD`` (never on a command line), messages in English."""
    env = dict(os.environ)
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        env["PGPASSWORD"] = urllib.parse.unquote(parts.password)
        host = parts.netloc.rpartition("@")[2]
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        url = urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{host}"))
    # LC_ALL would override LC_MESSAGES: keep its character type, drop the rest of it.
    all_ = env.pop("LC_ALL", None)
    if all_:
        env.setdefault("LC_CTYPE", all_)
    env.pop("LANGUAGE", None)
    env["LC_MESSAGES"] = "C"
    return url, env


async def _run(
    args: Sequence[str], env: dict[str, str] | None = None, *, what: str
) -> tuple[int, bytes, bytes]:
    try:
        with anyio.fail_after(_TIMEOUT):
            done = await anyio.run_process(list(args), env=env, check=False, stdin=None)
    except OSError as exc:
        raise ConnectorError(f"{what}: cannot run {args[0]}: {exc}") from None
    except TimeoutError:
        raise ConnectorError(f"{what}: {args[0]} ran longer than {_TIMEOUT} s") from None
    return done.returncode, done.stdout, done.stderr


@contextlib.asynccontextmanager
async def _workdir() -> AsyncIterator[Path]:
    directory = Path(await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="pumpkit-pg-")))
    try:
        yield directory
    finally:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(directory, ignore_errors=True))


async def _write(path: Path, data: bytes) -> None:
    await anyio.to_thread.run_sync(path.write_bytes, data)


# --- dumping ----------------------------------------------------------------------------------


async def dump_schema(
    url: str,
    snapshot: str | None = None,
    *,
    sections: bool = False,
    quote_all_identifiers: bool = False,
    tools: PgTools | None = None,
) -> bytes:
    """The schema of the database at ``url`` as a pg_dump custom-format archive (see the
    module's notes for the options and for what it holds).

    ``snapshot`` is a name from ``pg_export_snapshot()`` whose transaction is still open: the
    schema is then the one that snapshot sees. ``sections=True`` dumps ``--section=pre-data
    --section=post-data`` instead of ``--schema-only``: the same, plus the large objects'
    metadata (``BLOB`` entries) and a ``MATERIALIZED VIEW DATA`` entry (``REFRESH``) for each
    populated materialized view. ``quote_all_identifiers`` adds pg_dump's option of that name
    (see the module's notes for why it is off).

    Raises :class:`ConnectorError` when the tools are missing or too old (before running
    anything) or pg_dump fails (with its message).
    """
    tools = tools or await tools_for(url)
    target, env = _libpq(url)
    async with _workdir() as work:
        archive = work / "schema.dump"
        args = [
            tools.pg_dump,
            "--format=custom",
            *(["--section=pre-data", "--section=post-data"] if sections else ["--schema-only"]),
            "--no-password",
            "--no-sync",
            *(["--quote-all-identifiers"] if quote_all_identifiers else []),
            f"--file={archive}",
        ]
        if snapshot is not None:
            args.append(f"--snapshot={snapshot}")
        args.append(f"--dbname={target}")
        code, _, err = await _run(args, env, what=f"pg_dump of {target}")
        if code != 0:
            raise ConnectorError(
                f"pg_dump of {target} failed: {err.decode(errors='replace').strip()}"
            )
        return await anyio.to_thread.run_sync(archive.read_bytes)


# --- the table of contents --------------------------------------------------------------------


class TocEntry(msgspec.Struct, frozen=True):
    """One entry of an archive's table of contents: one object, or one property of one
    (its comment, its grants, a partition's attachment).

    ``dump_id`` numbers it within the archive (what ``pg_restore -L`` names);
    ``catalog_oid`` is the system catalog the object lives in (1259 is ``pg_class``; 0 for
    entries that are no object of their own) and ``object_oid`` its oid in the source.
    ``desc`` is pg_dump's type of entry ("TABLE", "FK CONSTRAINT", "TABLE ATTACH",
    "MATERIALIZED VIEW", "DEFAULT ACL", ...). ``schema`` is ``None`` for objects of no schema.
    ``name`` is pg_dump's tag, exactly: the object's name, a function's with its argument
    types, "table constraint" for what belongs to a table, "TABLE name" for a COMMENT or ACL.
    ``section`` is where pg_restore puts it: "pre-data", "data", "post-data", or "none".
    ``dependencies`` are the dump ids it needs restored first (``None`` when the archive's
    TOC could not be read, only listed). ``table`` is the table, view or materialized view it
    belongs to (for constraints, indexes, triggers, rules, policies, defaults, comments of
    columns...), found through its dependencies; ``None`` otherwise.
    """

    dump_id: int
    catalog_oid: int
    object_oid: int
    desc: str
    schema: str | None
    name: str
    owner: str | None
    section: Section
    dependencies: tuple[int, ...] | None = None
    table: str | None = None

    @property
    def object_type_path(self) -> str:
        """pumpkit's object type path for the entry: see :func:`object_type_path`."""
        return object_type_path(self)

    @property
    def own_name(self) -> str:
        """The name without the table's in front ("orders_pkey" of "orders orders_pkey")."""
        if self.table is not None and self.name.startswith(self.table + " "):
            return self.name[len(self.table) + 1 :]
        return self.name


#: pg_dump's entry types, and pumpkit's object type path for each (the last part is the type
#: a filter names; Data Pump's paths where it has the kind, PostgreSQL's words elsewhere).
#: COMMENT, ACL and SECURITY LABEL entries get the path of what they are on, plus their own.
OBJECT_PATHS: Final[dict[str, str]] = {
    "ENCODING": "DATABASE/SETTING",
    "STDSTRINGS": "DATABASE/SETTING",
    "SEARCHPATH": "DATABASE/SETTING",
    "DATABASE": "DATABASE",
    "DATABASE PROPERTIES": "DATABASE/SETTING",
    "SCHEMA": "DATABASE/SCHEMA",
    "EXTENSION": "DATABASE/EXTENSION",
    "PROCEDURAL LANGUAGE": "DATABASE/PROCEDURAL_LANGUAGE",
    "ACCESS METHOD": "DATABASE/ACCESS_METHOD",
    "CAST": "DATABASE/CAST",
    "TRANSFORM": "DATABASE/TRANSFORM",
    "FOREIGN DATA WRAPPER": "DATABASE/FOREIGN_DATA_WRAPPER",
    "SERVER": "DATABASE/SERVER",
    "USER MAPPING": "DATABASE/SERVER/USER_MAPPING",
    "EVENT TRIGGER": "DATABASE/EVENT_TRIGGER",
    "PUBLICATION": "DATABASE/PUBLICATION",
    "PUBLICATION TABLE": "DATABASE/PUBLICATION/PUBLICATION_TABLE",
    "PUBLICATION TABLES IN SCHEMA": "DATABASE/PUBLICATION/PUBLICATION_SCHEMA",
    "SUBSCRIPTION": "DATABASE/SUBSCRIPTION",
    "SUBSCRIPTION TABLE": "DATABASE/SUBSCRIPTION/SUBSCRIPTION_TABLE",
    "BLOB": "DATABASE/LARGE_OBJECT",
    "BLOB METADATA": "DATABASE/LARGE_OBJECT",
    "BLOBS": "DATABASE/LARGE_OBJECT/LARGE_OBJECT_DATA",
    "DEFAULT ACL": "SCHEMA/DEFAULT_GRANT",
    "TYPE": "SCHEMA/TYPE",
    "SHELL TYPE": "SCHEMA/TYPE",
    "DOMAIN": "SCHEMA/DOMAIN",
    "COLLATION": "SCHEMA/COLLATION",
    "CONVERSION": "SCHEMA/CONVERSION",
    "FUNCTION": "SCHEMA/FUNCTION",
    "PROCEDURE": "SCHEMA/PROCEDURE",
    "AGGREGATE": "SCHEMA/AGGREGATE",
    "OPERATOR": "SCHEMA/OPERATOR",
    "OPERATOR CLASS": "SCHEMA/OPERATOR_CLASS",
    "OPERATOR FAMILY": "SCHEMA/OPERATOR_FAMILY",
    "TEXT SEARCH CONFIGURATION": "SCHEMA/TEXT_SEARCH_CONFIGURATION",
    "TEXT SEARCH DICTIONARY": "SCHEMA/TEXT_SEARCH_DICTIONARY",
    "TEXT SEARCH PARSER": "SCHEMA/TEXT_SEARCH_PARSER",
    "TEXT SEARCH TEMPLATE": "SCHEMA/TEXT_SEARCH_TEMPLATE",
    "SEQUENCE": "SCHEMA/SEQUENCE",
    "SEQUENCE OWNED BY": "SCHEMA/SEQUENCE/OWNED_BY",
    "SEQUENCE SET": "SCHEMA/TABLE/SEQUENCE_VALUE",
    "TABLE": "SCHEMA/TABLE",
    "FOREIGN TABLE": "SCHEMA/FOREIGN_TABLE",
    "TABLE ATTACH": "SCHEMA/TABLE/TABLE_ATTACH",
    "TABLE DATA": "SCHEMA/TABLE/TABLE_DATA",
    "DEFAULT": "SCHEMA/TABLE/DEFAULT",
    "CONSTRAINT": "SCHEMA/TABLE/CONSTRAINT",
    "CHECK CONSTRAINT": "SCHEMA/TABLE/CONSTRAINT",
    "FK CONSTRAINT": "SCHEMA/TABLE/CONSTRAINT/REF_CONSTRAINT",
    "INDEX": "SCHEMA/TABLE/INDEX",
    "INDEX ATTACH": "SCHEMA/TABLE/INDEX/INDEX_ATTACH",
    "STATISTICS": "SCHEMA/TABLE/STATISTICS",
    "TRIGGER": "SCHEMA/TABLE/TRIGGER",
    "RULE": "SCHEMA/TABLE/RULE",
    "POLICY": "SCHEMA/TABLE/POLICY",
    "ROW SECURITY": "SCHEMA/TABLE/ROW_SECURITY",
    "VIEW": "SCHEMA/VIEW",
    "MATERIALIZED VIEW": "SCHEMA/MATERIALIZED_VIEW",
    "MATERIALIZED VIEW DATA": "SCHEMA/MATERIALIZED_VIEW/REFRESH",
    "COMMENT": "COMMENT",
    "ACL": "GRANT",
    "SECURITY LABEL": "SECURITY_LABEL",
}
# What a COMMENT, ACL or SECURITY LABEL tag starts with, beyond the entry types above.
_TAG_KINDS: Final = {
    "COLUMN": "SCHEMA/TABLE/COLUMN",
    "LARGE OBJECT": "DATABASE/LARGE_OBJECT",
    "LANGUAGE": "DATABASE/PROCEDURAL_LANGUAGE",
    "MATERIALIZED VIEW": "SCHEMA/MATERIALIZED_VIEW",
    "FOREIGN TABLE": "SCHEMA/FOREIGN_TABLE",
    "FOREIGN DATA WRAPPER": "DATABASE/FOREIGN_DATA_WRAPPER",
    "FOREIGN SERVER": "DATABASE/SERVER",
}
_ON_WHAT: Final = ("COMMENT", "ACL", "SECURITY LABEL")


def object_type_path(entry: TocEntry) -> str:
    """pumpkit's object type path of ``entry`` (``SCHEMA/TABLE/TRIGGER`` for a TRIGGER,
    ``SCHEMA/TABLE/COLUMN/COMMENT`` for a column's comment, ``SCHEMA/FUNCTION/GRANT`` for a
    function's ACL); an entry type this module does not know gets ``UNKNOWN/<desc>``."""
    if entry.desc in _ON_WHAT:
        kinds = {**OBJECT_PATHS, **_TAG_KINDS}
        on = max(
            (k for k in kinds if entry.name == k or entry.name.startswith(k + " ")),
            key=len,
            default=None,
        )
        parent = kinds[on] if on is not None and on not in _ON_WHAT else "UNKNOWN"
        return f"{parent}/{OBJECT_PATHS[entry.desc]}"
    return OBJECT_PATHS.get(entry.desc, f"UNKNOWN/{entry.desc.replace(' ', '_')}")


_LIST_LINE = re.compile(r"^(\d+); (\d+) (\d+) (.*)$")


class _Listed(msgspec.Struct, frozen=True):
    dump_id: int
    catalog_oid: int
    object_oid: int
    rest: str  # "DESC SCHEMA TAG OWNER", each with newlines made spaces


def _parse_list(text: str) -> list[_Listed]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        match = _LIST_LINE.match(line)
        if match is None:
            raise ConnectorError(f"pg_restore -l printed a line it should not: {line!r}")
        out.append(
            _Listed(int(match.group(1)), int(match.group(2)), int(match.group(3)), match.group(4))
        )
    return out


def _split_rest(rest: str) -> tuple[str, str | None, str, str | None]:
    """``DESC SCHEMA TAG OWNER`` of a listed line, when the archive itself cannot be read:
    the longest known entry type first, then the schema and the owner as single words (a
    name with a space in it cannot be told apart there; the archive reader has it exactly)."""
    desc = (
        max((d for d in OBJECT_PATHS if rest.startswith(d + " ")), key=len, default=None)
        or rest.partition(" ")[0]
    )
    words = rest[len(desc) + 1 :]
    schema, _, words = words.partition(" ")
    tag, _, owner = words.rpartition(" ")
    return desc, (None if schema == "-" else schema), tag, owner or None


async def read_toc(archive: bytes, *, tools: PgTools | None = None) -> list[TocEntry]:
    """The entries of a custom-format archive, in its order (the order pg_restore runs them
    in when it runs one at a time).

    Two readings make one answer: ``pg_restore -l`` (plain and with each ``--section=``) is
    the tools' own word on which entries there are, their ids, oids, types and sections;
    the archive's TOC, read here from its documented layout (custom format 1.12 to 1.16),
    gives the exact schemas, tags and owners (``-l`` turns newlines in names into spaces and
    leaves names with spaces ambiguous) and each entry's dependencies. Every entry of the
    two must agree (id, oids, type, and the listed line); if the archive is of a layout this
    reader does not know, or they disagree, the names come from the listing and
    ``dependencies`` and ``table`` are ``None``.

    Raises :class:`ConnectorError` when pg_restore cannot read the archive.
    """
    if tools is None:
        tools = await anyio.to_thread.run_sync(lambda: find_tools(0))
    async with _workdir() as work:
        path = work / "archive.dump"
        await _write(path, archive)
        listings: dict[str, str] = {}

        async def listing(section: str | None) -> None:
            args = [tools.pg_restore, "--list"]
            if section is not None:
                args.append(f"--section={section}")
            code, out, err = await _run([*args, str(path)], _libpq("")[1], what="pg_restore -l")
            if code != 0:
                raise ConnectorError(
                    f"pg_restore cannot read the archive: {err.decode(errors='replace').strip()}"
                )
            listings[section or ""] = out.decode("utf-8", errors="surrogateescape")

        async with anyio.create_task_group() as tg:
            for section in (None, "pre-data", "data", "post-data"):
                tg.start_soon(listing, section)
    listed = _parse_list(listings[""])
    section_of: dict[int, Section] = {}
    for name in ("pre-data", "data", "post-data"):
        for line in _parse_list(listings[name]):
            section_of[line.dump_id] = name
    raw = {e.dump_id: e for e in _archive_toc(archive) or ()}
    exact = bool(raw) and all(
        (e := raw.get(line.dump_id)) is not None
        and (e.catalog_oid, e.object_oid) == (line.catalog_oid, line.object_oid)
        and e.listed() == line.rest
        for line in listed
    )
    entries = []
    for line in listed:
        if exact:
            r = raw[line.dump_id]
            desc, schema, name, owner, deps = r.desc, r.schema, r.tag, r.owner, r.dependencies
        else:
            desc, schema, name, owner = _split_rest(line.rest)
            deps = None
        entries.append(
            TocEntry(
                dump_id=line.dump_id,
                catalog_oid=line.catalog_oid,
                object_oid=line.object_oid,
                desc=desc,
                schema=schema,
                name=name,
                owner=owner,
                section=section_of.get(line.dump_id, "none"),
                dependencies=deps,
            )
        )
    return _with_tables(entries, raw) if exact else entries


_RELATIONS: Final = ("TABLE", "FOREIGN TABLE", "VIEW", "MATERIALIZED VIEW")


def _with_tables(entries: list[TocEntry], raw: dict[int, _RawEntry]) -> list[TocEntry]:
    """Each entry's table, from its dependencies: what pg_dump tags "table name" (a
    constraint, trigger, rule, policy, default) depends on the relation whose name starts
    the tag; an index or extended statistics on its only relation; a ``TABLE ATTACH`` is the
    partition's, an ``INDEX ATTACH`` the table of the partition's index; a COMMENT, ACL or
    SECURITY LABEL is of the table of what it is on (or that relation itself)."""
    tables: dict[int, str | None] = {}

    def relations(entry: TocEntry) -> list[_RawEntry]:
        deps = (raw.get(d) for d in entry.dependencies or ())
        return [r for r in deps if r is not None and r.desc in _RELATIONS]

    for entry in entries:  # the archive's order: an index comes before its INDEX ATTACH
        table = None
        if entry.desc in ("INDEX", "STATISTICS"):
            found = {r.tag for r in relations(entry)}
            table = found.pop() if len(found) == 1 else None
        elif entry.desc == "TABLE ATTACH":
            table = entry.name if any(r.tag == entry.name for r in relations(entry)) else None
        elif entry.desc == "INDEX ATTACH":
            for dep in entry.dependencies or ():
                r = raw.get(dep)
                if (
                    r is not None
                    and r.desc in ("INDEX", "CONSTRAINT")
                    and (r.tag == entry.name or r.tag.endswith(" " + entry.name))
                ):
                    table = tables.get(dep)
                    break
        elif entry.desc not in _RELATIONS and entry.desc not in _ON_WHAT:
            for r in relations(entry):
                if entry.name.startswith(r.tag + " ") or entry.desc == "ROW SECURITY":
                    table = r.tag
                    break
        tables[entry.dump_id] = table
    out = []
    for entry in entries:
        table = tables[entry.dump_id]
        if entry.desc in _ON_WHAT and entry.dependencies:
            on = raw.get(entry.dependencies[0])
            if on is not None:
                table = on.tag if on.desc in _RELATIONS else tables.get(on.dump_id)
        out.append(msgspec.structs.replace(entry, table=table))
    return out


# --- the archive's own TOC ---------------------------------------------------------------------
#
# The custom format (pg_backup_archiver.c, pg_backup_custom.c), as far as the TOC:
#   "PGDMP", version major, minor, revision (1 byte each), int size, offset size, format
#   (1 = custom); compression (an int; from 1.15 one byte, the algorithm); the creation time
#   (7 ints); database name, server version, pg_dump version (strings); the number of entries
#   (an int); then per entry: dump id, had-dumper (ints); table oid, oid, tag, desc (strings);
#   section (an int: 1 none, 2 pre-data, 3 data, 4 post-data); definition, drop statement,
#   copy statement, namespace, tablespace, table access method (strings); from 1.16 the
#   relkind (an int); owner, "false" (strings); the dependencies (strings of dump ids,
#   ending with a null string); then the custom format's data position (a flag byte and an
#   offset of the offset size).
#   An int is a sign byte and then int-size bytes, least significant first; a string is an
#   int length (-1: null) and that many bytes, in the archive's encoding.

_MAGIC: Final = b"PGDMP"
_KNOWN: Final = ((1, 12), (1, 16))
_SECTION_CODES: Final = {1: "none", 2: "pre-data", 3: "data", 4: "post-data"}


class _RawEntry(msgspec.Struct, frozen=True):
    dump_id: int
    catalog_oid: int
    object_oid: int
    tag: str
    desc: str
    raw_section: str
    schema: str | None
    owner: str | None
    dependencies: tuple[int, ...]

    def listed(self) -> str:
        """The entry as ``pg_restore -l`` prints it after the oids."""

        def sanitize(text: str | None, hyphen: bool) -> str:
            if text is None:
                return "-" if hyphen else ""
            return text.replace("\n", " ").replace("\r", " ")

        return (
            f"{self.desc} {sanitize(self.schema, True)} {sanitize(self.tag, False)}"
            f" {sanitize(self.owner, False)}"
        )


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.at = 0
        self.int_size = 4
        self.encoding = "utf-8"

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise ValueError("the archive ends inside its TOC")
        value = self.data[self.at]
        self.at += 1
        return value

    def integer(self) -> int:
        negative = self.byte()
        raw = self.take(self.int_size)
        value = int.from_bytes(raw, "little")
        return -value if negative else value

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise ValueError("the archive ends inside its TOC")
        raw = bytes(self.data[self.at : self.at + n])
        self.at += n
        return raw

    def string(self) -> str | None:
        n = self.integer()
        if n < 0:
            return None
        return self.take(n).decode(self.encoding, errors="surrogateescape")


def _archive_toc(data: bytes) -> list[_RawEntry] | None:
    """The TOC as the archive holds it, or ``None`` when its layout is not one this reader
    knows (the listing then stands alone)."""
    if not data.startswith(_MAGIC) or len(data) < 11:
        return None
    version = (data[5], data[6])
    if not (_KNOWN[0] <= version <= _KNOWN[1]) or data[10] != 1:
        return None
    r = _Reader(data)
    r.at = 8
    r.int_size = r.byte()
    offset_size = r.byte()
    r.byte()  # the format
    try:
        if version >= (1, 15):
            r.byte()
        else:
            r.integer()
        for _ in range(7):
            r.integer()
        for _ in range(3):
            r.string()
        count = r.integer()
        entries = []
        for _ in range(count):
            dump_id = r.integer()
            r.integer()
            table_oid, oid, tag, desc = r.string(), r.string(), r.string(), r.string()
            section = r.integer()
            defn = r.string()
            for _ in range(2):
                r.string()
            namespace = r.string()
            for _ in range(2):
                r.string()
            if version >= (1, 16):
                r.integer()
            owner = r.string()
            r.string()
            deps = []
            while (dep := r.string()) is not None:
                deps.append(int(dep))
            r.byte()
            r.take(offset_size)
            if desc == "ENCODING" and defn:
                match = re.search(r"'([^']+)'", defn)
                if match:
                    r.encoding = _python_encoding(match.group(1))
            entries.append(
                _RawEntry(
                    dump_id=dump_id,
                    catalog_oid=int(table_oid or 0),
                    object_oid=int(oid or 0),
                    tag=tag or "",
                    desc=desc or "",
                    raw_section=_SECTION_CODES.get(section, "none"),
                    schema=namespace,
                    owner=owner,
                    dependencies=tuple(dict.fromkeys(deps)),
                )
            )
    except (ValueError, UnicodeDecodeError):
        return None
    return entries


def _python_encoding(pg_name: str) -> str:
    name = pg_name.upper().replace("_", "")
    if name in ("UTF8", "SQLASCII"):
        return "utf-8"
    if name.startswith("WIN"):
        return "cp" + name[3:]
    if name.startswith("LATIN"):
        return "latin-" + name[5:]
    try:
        import codecs

        return codecs.lookup(pg_name).name
    except LookupError:
        return "utf-8"


# --- restoring --------------------------------------------------------------------------------


class FailedEntry(msgspec.Struct, frozen=True):
    """One error pg_restore reported and went on after: the entry it was restoring
    (``dump_id`` and its ``desc``, ``schema`` and ``name`` from the TOC; all ``None`` for an
    error outside any entry), PostgreSQL's message, and the statement that failed."""

    dump_id: int | None
    desc: str | None
    schema: str | None
    name: str | None
    message: str
    command: str | None = None


class RestoreResult(msgspec.Struct, frozen=True):
    """What a restore did: ``failed`` has one item per error, ``errors_ignored`` is the
    count pg_restore reported (the two agree), ``warnings`` are the server's warnings and
    pg_restore's own that are no error, ``entries`` how many entries were asked for."""

    entries: int
    failed: tuple[FailedEntry, ...]
    errors_ignored: int
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errors_ignored


_PREFIX: Final = "pg_restore: "
_NOTICE: Final = re.compile(r"^(WARNING|NOTICE|INFO|LOG|DEBUG):  ")
_FROM_ENTRY: Final = re.compile(r"^from TOC entry (\d+); ")
_IGNORED: Final = re.compile(r"^warning: errors ignored on restore: (\d+)$")
_QUERY_FAILED: Final = "error: could not execute query: "


def _parse_stderr(
    text: str, toc: dict[int, TocEntry]
) -> tuple[list[FailedEntry], int | None, list[str]]:
    """pg_restore's messages (of ``--verbose``): each starts with ``pg_restore: ``; the lines
    after one that do not are its continuation (PostgreSQL's message over several lines,
    ``Command was:`` and the statement), except server notices printed by libpq
    (``WARNING:  ...``). An error belongs to the entry of the last ``from TOC entry N;``
    (printed once per entry that fails) unless a ``while INITIALIZING:`` or ``while
    FINALIZING:`` came in between. With ``jobs > 1`` the workers' lines could in principle
    interleave; each worker prints an entry's context and its error one after the other."""
    messages: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith(_PREFIX):
            messages.append([line[len(_PREFIX) :]])
        elif _NOTICE.match(line) or not messages:
            messages.append(["\0notice", line])
        else:
            messages[-1].append(line)
    failed: list[FailedEntry] = []
    warnings: list[str] = []
    ignored = None
    current: int | None = None
    for message in messages:
        head = message[0]
        if head == "\0notice":
            warnings.append("\n".join(message[1:]).strip())
            continue
        if head.startswith(("while PROCESSING TOC:", "while INITIALIZING:", "while FINALIZING:")):
            current = None
            continue
        if match := _FROM_ENTRY.match(head):
            current = int(match.group(1))
            continue
        if match := _IGNORED.match(head):
            ignored = int(match.group(1))
            continue
        if head.startswith("error: "):
            body = "\n".join([head, *message[1:]])
            command = None
            if head.startswith(_QUERY_FAILED):
                body = body[len(_QUERY_FAILED) :]
                body, sep, command_text = body.partition("\nCommand was: ")
                command = command_text.strip() if sep else None
            else:
                body = body[len("error: ") :]
            entry = toc.get(current) if current is not None else None
            failed.append(
                FailedEntry(
                    dump_id=current,
                    desc=entry.desc if entry else None,
                    schema=entry.schema if entry else None,
                    name=entry.name if entry else None,
                    message=_server_message(body.strip()),
                    command=command,
                )
            )
            continue
        if head.startswith("warning: "):
            warnings.append("\n".join(message)[len("warning: ") :].strip())
        # Anything else is --verbose's progress ("creating TABLE ...", "processing item ...").
    return failed, ignored, warnings


def _server_message(text: str) -> str:
    """PostgreSQL's message without libpq's "ERROR:  " in front."""
    return re.sub(r"^(ERROR|FATAL):  ", "", text)


def _list_file(entries: Iterable[int] | None, toc: list[TocEntry]) -> str | None:
    if entries is None:
        return None
    wanted = set(entries)
    known = {e.dump_id for e in toc}
    unknown = sorted(wanted - known)
    if unknown:
        raise InvalidArgumentError(f"entries {unknown} are not in the archive")
    # In the archive's order, whatever the caller's: that order respects the dependencies.
    return "".join(f"{e.dump_id}\n" for e in toc if e.dump_id in wanted)


def _restore_options(
    *,
    section: str | None,
    no_owner: bool,
    no_privileges: bool,
    no_comments: bool,
    no_publications: bool,
    no_subscriptions: bool,
    no_security_labels: bool,
    no_tablespaces: bool,
) -> list[str]:
    if section is not None and section not in ("pre-data", "data", "post-data"):
        raise InvalidArgumentError(
            f"section {section!r} is not one of 'pre-data', 'data', 'post-data'"
        )
    flags = {
        "--no-owner": no_owner,
        "--no-privileges": no_privileges,
        "--no-comments": no_comments,
        "--no-publications": no_publications,
        "--no-subscriptions": no_subscriptions,
        "--no-security-labels": no_security_labels,
        "--no-tablespaces": no_tablespaces,
    }
    return [*([f"--section={section}"] if section else []), *(f for f, on in flags.items() if on)]


async def restore(
    archive: bytes,
    url: str,
    *,
    entries: Sequence[int] | None = None,
    section: str | None = None,
    jobs: int = 1,
    role: str | None = None,
    no_owner: bool = False,
    no_privileges: bool = False,
    no_comments: bool = False,
    no_publications: bool = False,
    no_subscriptions: bool = False,
    no_security_labels: bool = False,
    no_tablespaces: bool = False,
    toc: list[TocEntry] | None = None,
    tools: PgTools | None = None,
) -> RestoreResult:
    """Restore ``entries`` (dump ids; all when ``None``) of ``archive``, of ``section`` if
    given, into the database at ``url`` with ``pg_restore -L``, ``jobs`` at a time.

    The entries run in the archive's order whatever the order given (with ``jobs > 1``
    pg_restore orders them by their dependencies). pg_restore never stops at an error: every
    failed entry is in :attr:`RestoreResult.failed` with its TOC id and PostgreSQL's message.
    ``role`` is pg_restore's ``--role``: it runs ``SET ROLE`` after connecting, so that the
    archive's statements have that role's rights only (an archive is a stranger's input);
    with it, ``no_owner`` is usually wanted (the objects then belong to ``role``).

    Raises :class:`InvalidArgumentError` for an unknown entry or section, and
    :class:`ConnectorError` when the tools are missing or pg_restore could not run the
    restore at all (it cannot connect, the archive is unreadable).
    """
    if jobs < 1:
        raise InvalidArgumentError(f"jobs must be 1 or more, not {jobs}")
    options = _restore_options(
        section=section,
        no_owner=no_owner,
        no_privileges=no_privileges,
        no_comments=no_comments,
        no_publications=no_publications,
        no_subscriptions=no_subscriptions,
        no_security_labels=no_security_labels,
        no_tablespaces=no_tablespaces,
    )
    tools = tools or await tools_for(url)
    toc = toc if toc is not None else await read_toc(archive, tools=tools)
    listing = _list_file(entries, toc)
    target, env = _libpq(url)
    async with _workdir() as work:
        path = work / "archive.dump"
        await _write(path, archive)
        # --verbose: only then does pg_restore say which entry an error is of ("from TOC
        # entry N; ..."), which is what makes the failures per entry.
        args = [tools.pg_restore, "--verbose", "--no-password", f"--dbname={target}"]
        args.append(f"--jobs={jobs}")
        if role is not None:
            args.append(f"--role={role}")
        if listing is not None:
            await _write(work / "entries.list", listing.encode())
            args.append(f"--use-list={work / 'entries.list'}")
        code, _, err = await _run(
            [*args, *options, str(path)], env, what=f"pg_restore into {target}"
        )
    failed, ignored, warnings = _parse_stderr(
        err.decode("utf-8", errors="replace"), {e.dump_id: e for e in toc}
    )
    if code != 0 and ignored is None:
        raise ConnectorError(
            f"pg_restore into {target} failed: {err.decode(errors='replace').strip()}"
        )
    count = len(toc) if entries is None else len(set(entries))
    return RestoreResult(
        entries=count, failed=tuple(failed), errors_ignored=ignored or 0, warnings=tuple(warnings)
    )


async def script(
    archive: bytes,
    entries: Sequence[int] | None = None,
    *,
    section: str | None = None,
    no_owner: bool = False,
    no_privileges: bool = False,
    no_comments: bool = False,
    no_publications: bool = False,
    no_subscriptions: bool = False,
    no_security_labels: bool = False,
    no_tablespaces: bool = False,
    toc: list[TocEntry] | None = None,
    tools: PgTools | None = None,
) -> str:
    """The SQL script pg_restore writes for ``entries`` (dump ids; all when ``None``) of
    ``archive`` without a database (``pg_restore -f -``): what SQLFILE shows, and what
    ``psql -v ON_ERROR_STOP=1`` can run. It starts with pg_restore's settings (search_path
    empty, and so on) and, with pg_dump 15.14 and later, ``\\restrict <random key>``.

    Raises :class:`InvalidArgumentError` for an unknown entry, :class:`ConnectorError` when
    pg_restore cannot read the archive.
    """
    options = _restore_options(
        section=section,
        no_owner=no_owner,
        no_privileges=no_privileges,
        no_comments=no_comments,
        no_publications=no_publications,
        no_subscriptions=no_subscriptions,
        no_security_labels=no_security_labels,
        no_tablespaces=no_tablespaces,
    )
    if tools is None:
        tools = await anyio.to_thread.run_sync(lambda: find_tools(0))
    if toc is None and entries is not None:
        toc = await read_toc(archive, tools=tools)
    listing = _list_file(entries, toc or [])
    async with _workdir() as work:
        path = work / "archive.dump"
        await _write(path, archive)
        args = [tools.pg_restore, "--file=-"]
        if listing is not None:
            await _write(work / "entries.list", listing.encode())
            args.append(f"--use-list={work / 'entries.list'}")
        code, out, err = await _run(
            [*args, *options, str(path)], _libpq("")[1], what="pg_restore -f"
        )
    if code != 0:
        raise ConnectorError(
            f"pg_restore cannot write the script: {err.decode(errors='replace').strip()}"
        )
    return out.decode("utf-8", errors="surrogateescape")


_ENTRY_MARK = re.compile(r"^-- TOC entry (\d+) \(class \d+ OID \d+\)$", re.MULTILINE)
_META = re.compile(r"^\\(?:un)?restrict\b.*$", re.MULTILINE)


class EntryScripts(msgspec.Struct, frozen=True):
    """The SQL pg_restore writes for each entry of an archive: ``prolog`` (its session
    settings: an empty search_path, check_function_bodies off, ...) and ``entries`` by dump id
    (each entry's statements, without pg_restore's comment header). psql's ``\\restrict``
    meta-commands are left out: they are no SQL."""

    prolog: str
    entries: dict[int, str]


def split_entry_scripts(text: str) -> EntryScripts:
    """Split pg_restore's verbose script (``pg_restore -v -f -``, whose entries each start
    with ``-- TOC entry N (class C OID O)``) by entry."""
    text = _META.sub("", text)
    marks = list(_ENTRY_MARK.finditer(text))
    prolog = text[: marks[0].start()] if marks else text
    entries: dict[int, str] = {}
    for mark, after in zip(marks, [*marks[1:], None], strict=True):
        body = text[mark.end() : after.start() if after is not None else len(text)]
        # The header's remaining comment lines (Dependencies, Name), then the statements.
        lines = body.splitlines()
        while lines and (lines[0].startswith("--") or not lines[0].strip()):
            lines.pop(0)
        # ... and the comment lines that open the next entry or close the script.
        while lines and (lines[-1].startswith("--") or not lines[-1].strip()):
            lines.pop()
        entries[int(mark.group(1))] = "\n".join(lines).strip()
    return EntryScripts(prolog=prolog.strip(), entries=entries)


async def entry_scripts(archive: bytes, *, tools: PgTools | None = None) -> EntryScripts:
    """Each entry's SQL, as pg_restore would run it, without a database. Raises
    :class:`ConnectorError` when pg_restore cannot read the archive."""
    if tools is None:
        tools = await anyio.to_thread.run_sync(lambda: find_tools(0))
    async with _workdir() as work:
        path = work / "archive.dump"
        await _write(path, archive)
        code, out, err = await _run(
            [tools.pg_restore, "--verbose", "--file=-", str(path)],
            _libpq("")[1],
            what="pg_restore -f",
        )
    if code != 0:
        raise ConnectorError(
            f"pg_restore cannot write the script: {err.decode(errors='replace').strip()}"
        )
    return split_entry_scripts(out.decode("utf-8", errors="surrogateescape"))
