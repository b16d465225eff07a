"""The gates every statement from a dump passes on a SQLite connection.

A dump-file set is input from a stranger, and its checksums say only that the bytes are the
ones its writer wrote, not that the writer meant well. So nothing in it may act outside the
objects it names. Each CREATE statement a dump carries goes through two gates, both of them
SQLite's own judgement of the statement (no regular expression reads SQL here):

1. **The parse gate.** The statement is compiled, not run (``EXPLAIN <statement>``), with an
   authorizer that records every action SQLite reports. Python's sqlite3 refuses a string
   that holds more than one statement. The recorded actions must show exactly one CREATE
   of the declared kind (TABLE, INDEX, VIEW, TRIGGER) and name, in ``main``, on the declared
   table for an index or a trigger, and nothing else but the bookkeeping such a CREATE does.
   A VACUUM, for one, compiles to no action at all, so it never gets past this gate.
2. **The authorizer gate.** The statement then runs inside a savepoint under an authorizer
   that denies, as it happens, every action outside that bookkeeping: ATTACH and DETACH
   (a ``VACUUM INTO`` reaches the authorizer only when it runs, as an ATTACH of its file),
   PRAGMAs but :data:`ALLOWED_PRAGMAS`, the functions of :data:`DANGEROUS_FUNCTIONS`, every
   read or write of another object. The authorizer is removed afterwards.

A view or trigger is stored by its CREATE, never run, and SQLite does not even compile its
body then. So after the CREATE, still inside the savepoint, the guard asks SQLite what the
body would do: it compiles (``EXPLAIN``, nothing runs) ``SELECT * FROM`` the view, or an
INSERT, UPDATE and DELETE on the trigger's table, and the authorizer, which names the view or
trigger responsible for each action, judges the body's actions: writes only to the tables of
the import's :class:`Scope`, no read of pumpkit's own tables, no dangerous function, no
PRAGMA, nothing in another database. A table's DEFAULT
expressions, which SQLite parses without consulting the authorizer, are compiled one by one
the same way. A refusal rolls the savepoint back: the target is as it was.

What SQLite reports (3.40; ``tests/hostile`` holds it to this):

============== ================================================================================
CREATE TABLE   INSERT sqlite_master; CREATE_TABLE t; per UNIQUE/PRIMARY KEY index INSERT
               sqlite_master, CREATE_INDEX sqlite_autoindex_t_N on t, READ t.column; FUNCTION
               and READ t.column for CHECK and generated columns; UPDATE sqlite_master (type,
               name, tbl_name, rootpage, sql); READ sqlite_master.ROWID. DEFAULTs: nothing.
               The first AUTOINCREMENT table adds the same for CREATE_TABLE sqlite_sequence.
               AS SELECT adds SELECT and a READ of every column it reads.
CREATE INDEX   INSERT sqlite_master; CREATE_INDEX i on t; READ t.column for every column of
               the key, the WHERE of a partial index and each expression (and FUNCTION for
               its functions); INSERT sqlite_master; REINDEX i. Rows in t add nothing.
CREATE VIEW    INSERT sqlite_master; CREATE_VIEW v; UPDATE sqlite_master (5 columns); READ
               sqlite_master.ROWID. The SELECT is not compiled: no READ of what it reads.
CREATE TRIGGER CREATE_TRIGGER tr on t; INSERT sqlite_master twice. The body is not compiled.
============== ================================================================================
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from pumpkit.core.ddl import quote_ident
from pumpkit.core.selection import fold
from pumpkit.errors import UnsafeDumpError, printable

__all__ = (
    "ALLOWED_PRAGMAS",
    "DANGEROUS_FUNCTIONS",
    "KINDS",
    "Action",
    "Declared",
    "Denied",
    "Scope",
    "SqliteGuard",
    "one_line",
    "refusal_comment",
    "scratch_guard",
)

#: The kinds of object a dump's SQL may create in SQLite.
KINDS: Final = ("TABLE", "INDEX", "VIEW", "TRIGGER")
#: The only settings a dump may touch: the two pumpkit restores (reading them, in a view's
#: ``pragma_user_version``, is allowed too). Every other PRAGMA is refused.
ALLOWED_PRAGMAS: Final = frozenset({"user_version", "application_id"})
#: Functions that reach outside the database (files, shared libraries, pointers) or run SQL
#: of their own: SQLite's, and those of its shell that an application may have registered.
DANGEROUS_FUNCTIONS: Final = frozenset(
    [
        "load_extension",
        "fts3_tokenizer",
        "readfile",
        "writefile",
        "edit",
        "lsmode",
        "fsdir",
        "sha3_query",
        "eval",
        "shell_add_schema",
        "shell_module_schema",
        "shell_putsnl",
        "sqlar_compress",
        "sqlar_uncompress",
        "zipfile",
    ]
)
_SCHEMA_TABLES: Final = frozenset({"sqlite_master", "sqlite_schema"})
_SCHEMA_COLUMNS: Final = frozenset({"type", "name", "tbl_name", "rootpage", "sql", "rowid"})
#: How many functions or collations the connection lacks a body may name before the guard
#: gives up checking it (each gets a stub so that SQLite can compile the rest).
_MAX_STUBS: Final = 32

_ACTION_NAMES: Final = {
    getattr(sqlite3, "SQLITE_" + name): "SQLITE_" + name
    for name in [
        "CREATE_INDEX",
        "CREATE_TABLE",
        "CREATE_TEMP_INDEX",
        "CREATE_TEMP_TABLE",
        "CREATE_TEMP_TRIGGER",
        "CREATE_TEMP_VIEW",
        "CREATE_TRIGGER",
        "CREATE_VIEW",
        "DELETE",
        "DROP_INDEX",
        "DROP_TABLE",
        "DROP_TEMP_INDEX",
        "DROP_TEMP_TABLE",
        "DROP_TEMP_TRIGGER",
        "DROP_TEMP_VIEW",
        "DROP_TRIGGER",
        "DROP_VIEW",
        "INSERT",
        "PRAGMA",
        "READ",
        "SELECT",
        "TRANSACTION",
        "UPDATE",
        "ATTACH",
        "DETACH",
        "ALTER_TABLE",
        "REINDEX",
        "ANALYZE",
        "CREATE_VTABLE",
        "DROP_VTABLE",
        "FUNCTION",
        "SAVEPOINT",
        "RECURSIVE",
    ]
    if hasattr(sqlite3, "SQLITE_" + name)
}
_CREATE_KIND: Final = {
    sqlite3.SQLITE_CREATE_TABLE: "TABLE",
    sqlite3.SQLITE_CREATE_INDEX: "INDEX",
    sqlite3.SQLITE_CREATE_VIEW: "VIEW",
    sqlite3.SQLITE_CREATE_TRIGGER: "TRIGGER",
}
_TEMP_CREATES: Final = frozenset(
    {
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
    }
)
_WRITES: Final = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
_QUERIES: Final = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE})
#: Why an action no CREATE needs is refused, by action.
_NEVER: Final = {
    sqlite3.SQLITE_ATTACH: "it would open a database file (ATTACH, or a VACUUM, whose INTO"
    " file SQLite attaches)",
    sqlite3.SQLITE_DETACH: "it would detach a database",
    sqlite3.SQLITE_TRANSACTION: "it would begin or end a transaction",
    sqlite3.SQLITE_SAVEPOINT: "it would make or end a savepoint",
    sqlite3.SQLITE_ALTER_TABLE: "it would alter a table",
    sqlite3.SQLITE_ANALYZE: "it would analyze tables",
    sqlite3.SQLITE_CREATE_VTABLE: "it would make a virtual table (pumpkit imports none)",
    sqlite3.SQLITE_DROP_VTABLE: "it would drop a virtual table",
    sqlite3.SQLITE_REINDEX: "it would rebuild an index",
}


class Action(NamedTuple):
    """One action as SQLite's authorizer reports it (``sqlite3_set_authorizer``)."""

    code: int
    arg1: str | None
    arg2: str | None
    database: str | None
    #: The innermost trigger or view responsible for the action; ``None``: the statement.
    source: str | None

    @property
    def name(self) -> str:
        return _ACTION_NAMES.get(self.code, f"SQLITE action {self.code}")

    def record(self) -> tuple[str, str | None, str | None, str | None, str | None]:
        return (self.name, self.arg1, self.arg2, self.database, self.source)

    def __str__(self) -> str:
        code, a1, a2 = self.code, self.arg1, self.arg2
        if code == sqlite3.SQLITE_FUNCTION:
            text = f"{self.name} {a2}()"
        elif code in (sqlite3.SQLITE_READ, sqlite3.SQLITE_UPDATE) and a2 is not None:
            text = f"{self.name} {quote_ident(a1 or '')}.{quote_ident(a2)}"
        elif code == sqlite3.SQLITE_PRAGMA:
            text = f"{self.name} {a1}" + (f" = {a2}" if a2 is not None else "")
        elif code in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_TRANSACTION):
            text = f"{self.name} {a1!r}"
        else:
            text = " ".join([self.name, *(quote_ident(a) for a in (a1, a2) if a is not None)])
        if self.database not in (None, "main"):
            text += f" in database {self.database!r}"
        if self.source is not None:
            text += f" (by {quote_ident(self.source)})"
        return text


class Declared(NamedTuple):
    """What a dump says an object is: its kind, its name and (index, trigger) its table."""

    kind: str
    name: str
    table: str = ""

    def __str__(self) -> str:
        on = f" on {self.table!r}" if self.table and self.kind in ("INDEX", "TRIGGER") else ""
        return f"{self.kind} {self.name!r}{on}"


@dataclass
class Scope:
    """The objects an import names in its target: the tables it makes or loads and the
    views it makes. What a dump's triggers write stays among them; an index or trigger must
    be on one of them. ``reserved`` are the tables pumpkit itself keeps in the
    target (markers, load tables): never in scope, whatever a dump calls its tables."""

    tables: set[str] = field(default_factory=set)
    views: set[str] = field(default_factory=set)
    #: Other tables the dump names: those of its tables the import leaves alone because
    #: the target has them already (TABLE_EXISTS_ACTION=SKIP). A trigger may write to them.
    named: set[str] = field(default_factory=set)
    reserved: frozenset[str] = frozenset()
    reserved_prefixes: tuple[str, ...] = ()

    def widen(
        self, tables: Iterable[str] = (), views: Iterable[str] = (), named: Iterable[str] = ()
    ) -> None:
        self.tables.update(fold(t) for t in tables)
        self.views.update(fold(v) for v in views)
        self.named.update(fold(n) for n in named)

    def names_table(self, name: str | None) -> bool:
        """A table the import makes, loads, or (skipping it) names."""
        return self.has_table(name) or (
            name is not None and fold(name) in self.named and not self.is_reserved(name)
        )

    def is_pumpkits(self, name: str) -> bool:
        """One of pumpkit's own tables in the target."""
        folded = fold(name)
        return folded in self.reserved or any(folded.startswith(p) for p in self.reserved_prefixes)

    def is_reserved(self, name: str) -> bool:
        """A name no dump's object may have or be on: pumpkit's or SQLite's."""
        return self.is_pumpkits(name) or fold(name).startswith("sqlite_")

    def has_table(self, name: str | None) -> bool:
        return name is not None and fold(name) in self.tables and not self.is_reserved(name)

    def has_view(self, name: str | None) -> bool:
        return name is not None and fold(name) in self.views and not self.is_reserved(name)


def _same(a: str | None, b: str) -> bool:
    return a is not None and fold(a) == fold(b)


Judge = Callable[[Action], str | None]


class Denied(Exception):
    """The authorizer denied ``action`` for the reason ``why`` (the gates turn it into an
    ``UnsafeDumpError`` that names the object)."""

    def __init__(self, action: Action, why: str) -> None:
        self.action = action
        self.why = why
        super().__init__(why)


class _Pending(NamedTuple):
    declared: Declared
    error: str


class SqliteGuard:
    """Both gates for the statements of a dump on one SQLite connection.

    ``scope`` is what the import names (see :class:`Scope`); ``denials`` records every action
    the authorizer refused, in order. A view or trigger that SQLite cannot compile when it is
    made (it names an object the import makes later, or one nobody has made: a partial
    export) cannot run, so it is inert: it is kept (``unchecked``), and checked again after
    every later CREATE; once it compiles it passes the same judgement or is dropped and
    refused. Not thread-safe: one thread at a time, like the connection.
    """

    def __init__(self, conn: sqlite3.Connection, scope: Scope | None = None) -> None:
        self.conn = conn
        self.scope = scope if scope is not None else Scope()
        self.denials: list[Action] = []
        #: Triggers that write to a table their dump names which the import skipped.
        self.writes_outside: list[tuple[Declared, str]] = []
        self._pending: list[_Pending] = []
        self._stubs: set[str] = set()
        self._collation_stubs: set[str] = set()

    def note(self, declared: Declared, table: str) -> None:
        """``declared`` (a trigger) writes ``table``, a table its dump names that this import
        does not make or load (it was in the target already and was skipped)."""
        if (declared, table) not in self.writes_outside:
            self.writes_outside.append((declared, table))

    @property
    def unchecked(self) -> list[tuple[Declared, str]]:
        """Views and triggers made but not compilable yet, with SQLite's reason: inert."""
        return [(p.declared, p.error) for p in self._pending]

    # -- the authorizer -------------------------------------------------------------------

    @contextmanager
    def authorized(self, judge: Judge) -> Iterator[list[Action]]:
        """Run the block under an authorizer that records every action and denies those
        ``judge`` gives a reason for; yields the record. The authorizer is removed after,
        also on an error; a denial inside the block raises ``Denied`` after the block."""
        record: list[Action] = []
        denied: list[Denied] = []

        def authorizer(
            code: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None
        ) -> int:
            action = Action(code, arg1, arg2, db, src)
            record.append(action)
            try:
                why = judge(action)
            except Exception as exc:  # a judge's bug denies: never fail open
                why = f"the guard could not judge it ({type(exc).__name__}: {exc})"
            if why is None:
                return sqlite3.SQLITE_OK
            self.denials.append(action)
            if not denied:
                denied.append(Denied(action, why))
            return sqlite3.SQLITE_DENY

        self.conn.set_authorizer(authorizer)
        try:
            yield record
        except sqlite3.Error:
            if denied:
                raise denied[0] from None
            raise
        finally:
            self.conn.set_authorizer(None)
        if denied:
            raise denied[0]

    # -- the gates ------------------------------------------------------------------------

    def check(self, sql: str, declared: Declared) -> list[Action]:
        """The parse gate: ``sql`` compiles (it does not run) to exactly one CREATE of
        ``declared``, in ``main``, doing nothing a CREATE does not need. Returns the actions
        SQLite reported. Raises ``UnsafeDumpError`` when it does not, ``sqlite3.Error`` when
        SQLite cannot compile it for another reason (a syntax error, a missing table)."""
        self._check_declared(declared)
        if not isinstance(sql, str) or not sql.strip():
            raise self._refusal(declared, "an empty definition", "there is nothing to create")
        record: list[Action] = []
        try:
            with self.authorized(partial_create(declared)) as record:
                self.conn.execute("EXPLAIN " + sql).fetchall()
        except Denied as exc:
            raise self._refusal(declared, str(exc.action), exc.why, exc.action) from None
        except sqlite3.Error as exc:
            if "one statement" in str(exc):
                raise self._refusal(
                    declared,
                    "a second statement",
                    "a definition must be exactly one statement, and SQLite reads more"
                    " after the first one ends",
                ) from None
            if "null character" in str(exc):
                raise self._refusal(declared, "a NUL character", "SQL text holds none") from None
            if not any(judge_create(declared)(a) is None for a in record if a.code in _CREATE_KIND):
                # It failed before SQLite even saw it create the declared object: whatever it
                # is, it is not that object's definition (and it never runs).
                raise self._refusal(
                    declared,
                    f"a statement SQLite cannot compile as its CREATE ({exc})",
                    f"the definition of {declared} must create exactly that"
                    f" {declared.kind.lower()}",
                ) from None
            raise  # an ordinary failure of that CREATE: the caller reports it
        creates = [a for a in record if a.code in _CREATE_KIND and not _implied(a, declared)]
        if len(creates) != 1 or judge_create(declared)(creates[0]) is not None:
            what = next((a for a in record if not _bookkeeping(a)), None)
            raise self._refusal(
                declared,
                "a statement that creates " + _describe_creates(creates)
                if creates
                else f"a statement that is no CREATE {declared.kind} (SQLite reports "
                + (f"{what})" if what else "no action it would take: a VACUUM is one)"),
                f"the definition of {declared} must create exactly that {declared.kind.lower()}",
            )
        return record

    def execute(self, sql: str, declared: Declared) -> list[Action]:
        """Both gates: :meth:`check`, then ``sql`` runs in a savepoint under the authorizer;
        a view's or trigger's body and a table's defaults are compiled and judged before the
        savepoint is released. Returns the actions of the run. Raises ``UnsafeDumpError``
        (the target unchanged), or ``sqlite3.Error`` for a failure of another kind."""
        self.check(sql, declared)
        conn = self.conn
        conn.execute("SAVEPOINT pumpkit_guard")
        try:
            try:
                with self.authorized(judge_create(declared)) as record:
                    conn.execute(sql).fetchall()
            except Denied as exc:
                raise self._refusal(declared, str(exc.action), exc.why, exc.action) from None
            self._probe(declared)
        except BaseException:
            conn.execute("ROLLBACK TO pumpkit_guard")
            conn.execute("RELEASE pumpkit_guard")
            raise
        conn.execute("RELEASE pumpkit_guard")
        # What the import made is part of what it names (a later trigger may be on it).
        if declared.kind == "TABLE":
            self.scope.widen(tables=[declared.name])
        elif declared.kind == "VIEW":
            self.scope.widen(views=[declared.name])
        self._recheck_pending()
        return record

    def require_table(self, kind: str, name: str, table: str, doing: str) -> None:
        """Refuse ``doing`` to ``table`` on behalf of the dump's object ``kind name`` unless
        the table is one the import makes or loads."""
        if not self.scope.has_table(table):
            raise UnsafeDumpError(
                object_type=kind,
                object_name=name,
                refused=f"{doing} table {table!r}",
                why="that table is not one this import makes or loads",
            )

    # -- what it checks -------------------------------------------------------------------

    def _check_declared(self, declared: Declared) -> None:
        kind, name, table = declared
        if kind not in KINDS:
            raise self._refusal(declared, f"an object of kind {kind!r}", f"SQL is run for {KINDS}")
        if not name:
            raise self._refusal(declared, "an object without a name", "every object has one")
        if self.scope.is_reserved(name):
            raise self._refusal(
                declared,
                f"the name {name!r}",
                "the name belongs to SQLite or to pumpkit's own tables in the target",
            )
        if kind in ("INDEX", "TRIGGER"):
            allowed = self.scope.has_table(table) or (
                kind == "TRIGGER" and self.scope.has_view(table)
            )
            if not allowed:
                raise self._refusal(
                    declared,
                    f"{'an index' if kind == 'INDEX' else 'a trigger'} on {table!r}",
                    "an index or trigger must be on a table (or, a trigger, a view) this"
                    " import makes or loads, and never on pumpkit's own tables",
                )

    def _probe(self, declared: Declared) -> None:
        """Compile what the object would do later and judge it (inside the savepoint)."""
        if declared.kind == "TABLE":
            self._probe_defaults(declared)
        elif declared.kind in ("VIEW", "TRIGGER"):
            error = self._probe_body(declared)
            if error is not None:
                self._pending.append(_Pending(declared, error))

    def _probe_body(self, declared: Declared) -> str | None:
        """Judge a view's or trigger's body: ``None`` when it passed, SQLite's reason when
        it cannot be compiled yet (the object is then inert)."""
        if declared.kind == "VIEW":
            return self._probe_view(declared)
        return self._probe_trigger(declared)

    def _probe_defaults(self, declared: Declared) -> None:
        info = self.conn.execute(
            "SELECT name, dflt_value FROM pragma_table_xinfo(?, 'main')", (declared.name,)
        ).fetchall()
        for column, default in info:
            if default is None:
                continue
            try:
                self._compile(f"SELECT {default}", judge_default(declared, column))
            except Denied as exc:
                raise self._refusal(declared, str(exc.action), exc.why, exc.action) from None
            except sqlite3.Error as exc:
                self._unsafe_use(declared, exc)
                # SQLite keeps a bare name after DEFAULT as text; any other failure means the
                # default cannot be computed here at all, so it cannot act either.
                if "no such column" not in str(exc):
                    raise self._refusal(
                        declared,
                        f"the default of column {column!r} ({exc})",
                        "a default SQLite cannot compile cannot be checked",
                    ) from None

    def _probe_view(self, declared: Declared) -> str | None:
        """Judge the view's query; ``None`` when it passed, SQLite's error when it cannot be
        compiled yet (the view is then inert)."""
        try:
            self._compile(f"SELECT * FROM main.{quote_ident(declared.name)}", judge_view(self))
        except Denied as exc:
            raise self._refusal(declared, str(exc.action), exc.why, exc.action) from None
        except sqlite3.Error as exc:
            self._unsafe_use(declared, exc)
            return str(exc)
        return None

    def _unsafe_use(self, declared: Declared, exc: sqlite3.Error) -> None:
        """SQLite refuses some functions in views and triggers before it asks the authorizer
        (``unsafe use of load_extension()``): that is a refusal of the object, not a view
        that waits for a table."""
        if str(exc).startswith("unsafe use of "):
            raise self._refusal(
                declared,
                str(exc).removeprefix("unsafe use of "),
                f"SQLite itself refuses it in a schema object ({exc}), and a dump's"
                " definitions may not call it",
            ) from None

    def _probe_trigger(self, declared: Declared) -> str | None:
        table = quote_ident(declared.table)
        columns = [
            quote_ident(row[0])
            for row in self.conn.execute(
                "SELECT name, hidden FROM pragma_table_xinfo(?, 'main')", (declared.table,)
            )
            if row[1] == 0
        ]
        triggers = {
            fold(row[0])
            for row in self.conn.execute(
                "SELECT name FROM main.sqlite_master WHERE type = 'trigger'"
            )
        }
        events = [
            f"INSERT INTO main.{table} DEFAULT VALUES",
            f"UPDATE main.{table} SET " + ", ".join(f"{c} = {c}" for c in columns),
            f"DELETE FROM main.{table}",
        ]
        judge = judge_trigger(self, declared, triggers)
        compiled = False
        errors: list[str] = []
        for statement in events:
            record: list[Action] = []
            try:
                record = self._compile(statement, judge)
            except Denied as exc:
                raise self._refusal(declared, str(exc.action), exc.why, exc.action) from None
            except sqlite3.Error as exc:
                self._unsafe_use(declared, exc)
                # An event the trigger is not for may not compile (a DELETE from a view
                # without an INSTEAD OF DELETE trigger); when its own body does not (it
                # names a table nobody made), the trigger cannot fire: it is inert.
                if any(_same(a.source, declared.name) for a in judge.seen):
                    return str(exc)
                errors.append(str(exc))
                judge.seen.clear()
                continue
            compiled = compiled or any(_same(a.source, declared.name) for a in record)
            judge.seen.clear()
        if compiled:
            return None
        if errors:
            return errors[0]
        raise self._refusal(
            declared,
            "a body SQLite never compiles (no INSERT, UPDATE or DELETE on its table reaches it)",
            "a trigger whose body cannot be compiled cannot be checked",
        )

    def _compile(self, statement: str, judge: Judge) -> list[Action]:
        """``EXPLAIN statement`` under ``judge``: SQLite compiles it and runs nothing. A
        function or collation the connection lacks gets a stub (which raises if ever called)
        so that SQLite compiles, and the guard judges, the rest."""
        for _ in range(_MAX_STUBS):
            try:
                with self.authorized(judge) as record:
                    self.conn.execute("EXPLAIN " + statement).fetchall()
                return record
            except sqlite3.OperationalError as exc:
                message = str(exc)
                if message.startswith("no such function: "):
                    self._stub_function(message.removeprefix("no such function: "))
                elif message.startswith("no such collation sequence: "):
                    self._stub_collation(message.removeprefix("no such collation sequence: "))
                else:
                    raise
        raise sqlite3.OperationalError("too many functions or collations this database lacks")

    def _stub_function(self, name: str) -> None:
        if fold(name) in self._stubs:
            raise sqlite3.OperationalError(f"no such function: {name}")
        self._stubs.add(fold(name))

        def unavailable(*_: object) -> None:
            raise sqlite3.OperationalError(f"function {name} is not available here")

        self.conn.create_function(name, -1, unavailable)

    def _stub_collation(self, name: str) -> None:
        if fold(name) in self._collation_stubs:
            raise sqlite3.OperationalError(f"no such collation sequence: {name}")
        self._collation_stubs.add(fold(name))

        def unavailable(_a: str, _b: str) -> int:
            raise sqlite3.OperationalError(f"collation {name} is not available here")

        self.conn.create_collation(name, unavailable)

    def _recheck_pending(self) -> None:
        """Views and triggers that could not be compiled are checked again once more
        objects exist; one that is refused then is dropped."""
        waiting, self._pending = self._pending, []
        for i, entry in enumerate(waiting):
            try:
                error = self._probe_body(entry.declared)
            except UnsafeDumpError as exc:
                self._pending.extend(waiting[i + 1 :])
                kind, name = entry.declared.kind, quote_ident(entry.declared.name)
                self.conn.execute(f"DROP {kind} IF EXISTS main.{name}")
                raise UnsafeDumpError(
                    object_type=exc.object_type,
                    object_name=exc.object_name,
                    refused=exc.refused,
                    why=exc.why + " (checked once the objects it names were made; dropped)",
                    action=exc.action,
                ) from None
            if error is not None:
                self._pending.append(_Pending(entry.declared, error))

    def _refusal(
        self, declared: Declared, refused: str, why: str, action: Action | None = None
    ) -> UnsafeDumpError:
        return UnsafeDumpError(
            object_type=declared.kind,
            object_name=declared.name,
            refused=refused,
            why=why,
            action=None if action is None else action.record(),
        )


# --- the judges: why an action is refused (None: allowed) --------------------------------------


def _implied(a: Action, declared: Declared) -> bool:
    """What SQLite creates along with a table: the index of a UNIQUE or PRIMARY KEY
    constraint, and ``sqlite_sequence`` with the first AUTOINCREMENT table."""
    if declared.kind != "TABLE":
        return False
    if a.code == sqlite3.SQLITE_CREATE_TABLE:
        return a.arg1 == "sqlite_sequence"
    return (
        a.code == sqlite3.SQLITE_CREATE_INDEX
        and _same(a.arg2, declared.name)
        and fold(a.arg1 or "").startswith("sqlite_autoindex_" + fold(declared.name) + "_")
    )


def _bookkeeping(a: Action) -> bool:
    """What every CREATE does to the schema table."""
    if a.database not in (None, "main") or a.code in _CREATE_KIND:
        return False
    if a.arg1 in _SCHEMA_TABLES:
        if a.code == sqlite3.SQLITE_INSERT:
            return True
        if a.code in (sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_READ):
            return fold(a.arg2 or "") in _SCHEMA_COLUMNS
    return False


def _describe_creates(creates: list[Action]) -> str:
    return ", ".join(
        f"{_CREATE_KIND[a.code]} {a.arg1!r}" + (f" on {a.arg2!r}" if a.arg2 else "")
        for a in creates
    )


def _function(a: Action) -> str | None:
    if fold(a.arg2 or "") in DANGEROUS_FUNCTIONS:
        return (
            f"{a.arg2}() reaches outside the database (files, libraries, pointers) and no"
            " definition from a dump may call it"
        )
    return None


def _pragma(a: Action) -> str | None:
    if fold(a.arg1 or "") in ALLOWED_PRAGMAS and a.arg2 is None:
        return None
    return (
        "a dump may not run PRAGMAs (pumpkit restores user_version and application_id"
        " itself, from their values)"
    )


def _elsewhere(a: Action) -> str | None:
    if a.database not in (None, "main"):
        return (
            f"it reaches database {a.database!r}: a dump's objects are made in main only"
            " (no TEMP objects, no attached databases)"
        )
    return None


def partial_create(declared: Declared) -> Judge:
    """The parse gate's judge: like :func:`judge_create`, but it lets any CREATE through to
    be counted (a second CREATE or a wrong name is refused by the count, with both named)."""
    strict = judge_create(declared)

    def judge(a: Action) -> str | None:
        if a.code in _CREATE_KIND and a.database in (None, "main"):
            return None
        if a.code == sqlite3.SQLITE_DELETE and a.arg1 in _SCHEMA_TABLES and a.database == "main":
            return None  # a DROP's first action: let SQLite name what it would drop
        return strict(a)

    return judge


def judge_create(declared: Declared) -> Judge:
    """What may happen while the CREATE of ``declared`` compiles and runs."""
    own = (
        declared.name
        if declared.kind == "TABLE"
        else declared.table
        if declared.kind == "INDEX"
        else None
    )

    def judge(a: Action) -> str | None:
        code = a.code
        if (where := _elsewhere(a)) is not None:
            return where
        if code in _CREATE_KIND:
            kind = _CREATE_KIND[code]
            on_it = kind in ("TABLE", "VIEW") or _same(a.arg2, declared.table)
            if kind == declared.kind and _same(a.arg1, declared.name) and on_it:
                return None
            if _implied(a, declared):
                return None
            return f"the definition of {declared} may create that object and no other"
        if code in _TEMP_CREATES:
            return "it would make a TEMP object: a dump's objects are made in main only"
        if _bookkeeping(a):
            return None
        if code == sqlite3.SQLITE_READ:
            if own is not None and _same(a.arg1, own):
                return None
            return f"it would read {a.arg1!r}, which is not the object being created"
        if code == sqlite3.SQLITE_REINDEX and declared.kind == "INDEX":
            return None if _same(a.arg1, declared.name) else _NEVER[code]
        if code in _QUERIES:
            return None
        if code == sqlite3.SQLITE_FUNCTION:
            return _function(a)
        if code == sqlite3.SQLITE_PRAGMA:
            return _pragma(a)
        if code in _WRITES:
            return f"it would write {a.arg1!r}: a CREATE from a dump writes nothing but itself"
        if a.name.startswith("SQLITE_DROP_"):
            return f"it would drop {a.arg1!r}: a dump's statement may only create what it names"
        return _NEVER.get(code, f"a CREATE from a dump never needs {a.name}")

    return judge


def judge_default(declared: Declared, column: str) -> Judge:
    """A column's DEFAULT may compute a value from constants and harmless functions."""

    def judge(a: Action) -> str | None:
        if a.code in _QUERIES:
            return None
        if a.code == sqlite3.SQLITE_FUNCTION:
            return _function(a)
        return f"the default of column {column!r} of {declared} may only compute a value"

    return judge


def _reads(guard: SqliteGuard, a: Action, what: str) -> str | None:
    """Judge a read or write by a dump's view or trigger body. A body only runs when someone
    writes to the trigger's table or queries the view, later, so what it reads is what that
    someone could read anyway: reads may be of anything in ``main`` but pumpkit's own
    tables. Writes, which a trigger does by itself, stay among the tables the dump names."""
    if (where := _elsewhere(a)) is not None:
        return where
    name = a.arg1
    scope = guard.scope
    if a.code == sqlite3.SQLITE_READ:
        if name is not None and not scope.is_pumpkits(name):
            return None
        return f"{what} reads {name!r}, one of pumpkit's own tables in the target"
    if scope.names_table(name) or (scope.has_view(name) and a.code in _WRITES):
        return None
    return f"{what} writes {name!r}, which is not a table this import's dump names"


def judge_view(guard: SqliteGuard) -> Judge:
    """What ``SELECT * FROM view`` may do: read (see ``_reads``), call harmless functions."""

    def judge(a: Action) -> str | None:
        code = a.code
        if code in _QUERIES:
            return None
        if code == sqlite3.SQLITE_FUNCTION:
            return _function(a)
        if code == sqlite3.SQLITE_PRAGMA:
            return _pragma(a)
        if a.source is None and _bookkeeping(a):
            return None  # SQLite registers a table-valued function on its first use
        if code == sqlite3.SQLITE_READ:
            return _reads(guard, a, "the view")
        return f"a view's query may only read, and SQLite reports {a.name}"

    return judge


class _TriggerJudge:
    """What an INSERT, UPDATE or DELETE on a trigger's table may do through the trigger."""

    def __init__(self, guard: SqliteGuard, declared: Declared, triggers: set[str]) -> None:
        self.guard = guard
        self.declared = declared
        self.others = triggers - {fold(declared.name)}
        self.seen: list[Action] = []

    def __call__(self, a: Action) -> str | None:
        self.seen.append(a)
        source = a.source
        if source is not None and fold(source) in self.others:
            return None  # another trigger on the table: not this one's doing
        if source is None:
            # The probe statement itself, on the trigger's table (and what the table's own
            # schema makes it do: CHECK constraints, generated columns).
            if _bookkeeping(a) or a.code in _QUERIES:
                return None
            if a.code == sqlite3.SQLITE_FUNCTION:
                return _function(a)
            if a.code == sqlite3.SQLITE_READ:
                return _reads(self.guard, a, "the trigger's table")
            if a.code in _WRITES and _same(a.arg1, self.declared.table):
                return None
            return f"the probe of {self.declared} met {a.name}"
        what = "the trigger" if _same(source, self.declared.name) else "a view it reads"
        code = a.code
        if code in _QUERIES:
            return None
        if code == sqlite3.SQLITE_FUNCTION:
            return _function(a)
        if code == sqlite3.SQLITE_PRAGMA:
            return _pragma(a)
        if code in (*_WRITES, sqlite3.SQLITE_READ):
            if what != "the trigger" and code != sqlite3.SQLITE_READ:
                return f"{what} writes {a.arg1!r}"
            why = _reads(self.guard, a, what)
            scope = self.guard.scope
            loaded = scope.has_table(a.arg1) or scope.has_view(a.arg1)
            if why is None and code in _WRITES and not loaded:
                self.guard.note(self.declared, a.arg1 or "")
            return why
        return _NEVER.get(code, f"{what} may not do {a.name}")


def judge_trigger(guard: SqliteGuard, declared: Declared, triggers: set[str]) -> _TriggerJudge:
    return _TriggerJudge(guard, declared, triggers)


# --- for callers that only want to know ------------------------------------------------------


def scratch_guard(scope: Scope) -> SqliteGuard:
    """A guard over a new in-memory database: where an SQLFILE rehearses a dump's statements
    (both gates, in order) to learn which would be refused, without any file opened."""
    return SqliteGuard(sqlite3.connect(":memory:", isolation_level=None), scope)


def one_line(text: str) -> str:
    """``text`` with every line break and control character escaped as Python writes them
    (``\\n``, ``\\x1b``): a dump's names go into logs and SQL comments, where a raw line
    break would start a line of the dump's choosing."""
    return printable(text)


def refusal_comment(reason: str, sql: str) -> str:
    """One SQL comment line naming a refused statement and why; the statement is quoted
    with its line breaks escaped, so nothing of it can end the comment."""
    return f"-- REFUSED, not written: {one_line(reason)}. Its SQL: {one_line(sql)}"
