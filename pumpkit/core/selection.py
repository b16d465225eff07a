"""What a job moves: metadata filters, data filters, CONTENT and remaps, as pure decisions.

The Session validates every filter here while the job is DEFINING (a bad expression is
refused then, never found mid-job); the export plans and the import replays only what
:meth:`Selection.keeps` keeps. Nothing here touches a database: the decisions are over
*candidates*, ``(object_type, schema, name, table)`` tuples that export builds from the
catalog and import from the control table copied into the dump.

Name expressions are expdp's: ``= 'X'``, ``!= 'X'``, ``IN ('A', 'B')``, ``LIKE 'ORD%'``
(``%`` any run, ``_`` one character, optional ``ESCAPE '\\'``), each optionally after
``NOT``. Names compare without regard to ASCII case, as SQLite (and unquoted PostgreSQL)
resolve them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec

from pumpkit.errors import InvalidArgumentError

__all__ = (
    "ARCHIVE_TYPES",
    "CONTENTS",
    "OBJECT_PATHS",
    "TABLE_EXISTS_ACTIONS",
    "Candidate",
    "NameExpr",
    "PathFilter",
    "Selection",
    "fold",
    "parse_name_list",
    "parse_object_filter",
    "remap_name",
)

#: The object types a filter may name, with the paths the control table records.
OBJECT_PATHS = {
    "TABLE": "SCHEMA/TABLE",
    "TABLE_DATA": "SCHEMA/TABLE/TABLE_DATA",
    "INDEX": "SCHEMA/TABLE/INDEX",
    "TRIGGER": "SCHEMA/TABLE/TRIGGER",
    "SEQUENCE": "SCHEMA/TABLE/SEQUENCE_VALUE",
    "VIEW": "SCHEMA/VIEW",
    "PRAGMA": "DATABASE/SETTING",
    # PostgreSQL's kinds of objects.
    "SCHEMA": "DATABASE/SCHEMA",
    "TYPE": "SCHEMA/TYPE",
    "SEQUENCE_DEF": "SCHEMA/SEQUENCE",
    "CONSTRAINT": "SCHEMA/TABLE/CONSTRAINT",
    "REF_CONSTRAINT": "SCHEMA/TABLE/CONSTRAINT/REF_CONSTRAINT",
    "COMMENT": "SCHEMA/COMMENT",
    # The other kinds of a PostgreSQL schema archive (pg_dump's entries: ARCHIVE_TYPES).
    "EXTENSION": "DATABASE/EXTENSION",
    "PROCEDURAL_LANGUAGE": "DATABASE/PROCEDURAL_LANGUAGE",
    "ACCESS_METHOD": "DATABASE/ACCESS_METHOD",
    "CAST": "DATABASE/CAST",
    "TRANSFORM": "DATABASE/TRANSFORM",
    "FOREIGN_DATA_WRAPPER": "DATABASE/FOREIGN_DATA_WRAPPER",
    "SERVER": "DATABASE/SERVER",
    "USER_MAPPING": "DATABASE/SERVER/USER_MAPPING",
    "EVENT_TRIGGER": "DATABASE/EVENT_TRIGGER",
    "PUBLICATION": "DATABASE/PUBLICATION",
    "PUBLICATION_TABLE": "DATABASE/PUBLICATION/PUBLICATION_TABLE",
    "PUBLICATION_SCHEMA": "DATABASE/PUBLICATION/PUBLICATION_SCHEMA",
    "SUBSCRIPTION": "DATABASE/SUBSCRIPTION",
    "SUBSCRIPTION_TABLE": "DATABASE/SUBSCRIPTION/SUBSCRIPTION_TABLE",
    "LARGE_OBJECT": "DATABASE/LARGE_OBJECT",
    "DEFAULT_GRANT": "SCHEMA/DEFAULT_GRANT",
    "DOMAIN": "SCHEMA/DOMAIN",
    "COLLATION": "SCHEMA/COLLATION",
    "CONVERSION": "SCHEMA/CONVERSION",
    "FUNCTION": "SCHEMA/FUNCTION",
    "PROCEDURE": "SCHEMA/PROCEDURE",
    "AGGREGATE": "SCHEMA/AGGREGATE",
    "OPERATOR": "SCHEMA/OPERATOR",
    "OPERATOR_CLASS": "SCHEMA/OPERATOR_CLASS",
    "OPERATOR_FAMILY": "SCHEMA/OPERATOR_FAMILY",
    "TEXT_SEARCH_CONFIGURATION": "SCHEMA/TEXT_SEARCH_CONFIGURATION",
    "TEXT_SEARCH_DICTIONARY": "SCHEMA/TEXT_SEARCH_DICTIONARY",
    "TEXT_SEARCH_PARSER": "SCHEMA/TEXT_SEARCH_PARSER",
    "TEXT_SEARCH_TEMPLATE": "SCHEMA/TEXT_SEARCH_TEMPLATE",
    "SEQUENCE_OWNED_BY": "SCHEMA/SEQUENCE/OWNED_BY",
    "FOREIGN_TABLE": "SCHEMA/FOREIGN_TABLE",
    "TABLE_ATTACH": "SCHEMA/TABLE/TABLE_ATTACH",
    "DEFAULT": "SCHEMA/TABLE/DEFAULT",
    "INDEX_ATTACH": "SCHEMA/TABLE/INDEX/INDEX_ATTACH",
    "STATISTICS": "SCHEMA/TABLE/STATISTICS",
    "RULE": "SCHEMA/TABLE/RULE",
    "POLICY": "SCHEMA/TABLE/POLICY",
    "ROW_SECURITY": "SCHEMA/TABLE/ROW_SECURITY",
    "MATERIALIZED_VIEW": "SCHEMA/MATERIALIZED_VIEW",
    "MATERIALIZED_VIEW_DATA": "SCHEMA/MATERIALIZED_VIEW/REFRESH",
    "GRANT": "GRANT",
    "SECURITY_LABEL": "SECURITY_LABEL",
    "ARCHIVE_ENTRY": "DATABASE/ARCHIVE_ENTRY",
}
#: pg_dump's kinds of entries (the "desc" of its archive's table of contents) as pumpkit's
#: object types; an entry of a kind not listed is an ``ARCHIVE_ENTRY``.
ARCHIVE_TYPES = {
    "SCHEMA": "SCHEMA",
    "EXTENSION": "EXTENSION",
    "PROCEDURAL LANGUAGE": "PROCEDURAL_LANGUAGE",
    "ACCESS METHOD": "ACCESS_METHOD",
    "CAST": "CAST",
    "TRANSFORM": "TRANSFORM",
    "FOREIGN DATA WRAPPER": "FOREIGN_DATA_WRAPPER",
    "SERVER": "SERVER",
    "USER MAPPING": "USER_MAPPING",
    "EVENT TRIGGER": "EVENT_TRIGGER",
    "PUBLICATION": "PUBLICATION",
    "PUBLICATION TABLE": "PUBLICATION_TABLE",
    "PUBLICATION TABLES IN SCHEMA": "PUBLICATION_SCHEMA",
    "SUBSCRIPTION": "SUBSCRIPTION",
    "SUBSCRIPTION TABLE": "SUBSCRIPTION_TABLE",
    "BLOB": "LARGE_OBJECT",
    "BLOB METADATA": "LARGE_OBJECT",
    "DEFAULT ACL": "DEFAULT_GRANT",
    "TYPE": "TYPE",
    "SHELL TYPE": "TYPE",
    "DOMAIN": "DOMAIN",
    "COLLATION": "COLLATION",
    "CONVERSION": "CONVERSION",
    "FUNCTION": "FUNCTION",
    "PROCEDURE": "PROCEDURE",
    "AGGREGATE": "AGGREGATE",
    "OPERATOR": "OPERATOR",
    "OPERATOR CLASS": "OPERATOR_CLASS",
    "OPERATOR FAMILY": "OPERATOR_FAMILY",
    "TEXT SEARCH CONFIGURATION": "TEXT_SEARCH_CONFIGURATION",
    "TEXT SEARCH DICTIONARY": "TEXT_SEARCH_DICTIONARY",
    "TEXT SEARCH PARSER": "TEXT_SEARCH_PARSER",
    "TEXT SEARCH TEMPLATE": "TEXT_SEARCH_TEMPLATE",
    "SEQUENCE": "SEQUENCE_DEF",
    "SEQUENCE OWNED BY": "SEQUENCE_OWNED_BY",
    "TABLE": "TABLE",
    "FOREIGN TABLE": "FOREIGN_TABLE",
    "TABLE ATTACH": "TABLE_ATTACH",
    "DEFAULT": "DEFAULT",
    "CONSTRAINT": "CONSTRAINT",
    "CHECK CONSTRAINT": "CONSTRAINT",
    "FK CONSTRAINT": "REF_CONSTRAINT",
    "INDEX": "INDEX",
    "INDEX ATTACH": "INDEX_ATTACH",
    "STATISTICS": "STATISTICS",
    "TRIGGER": "TRIGGER",
    "RULE": "RULE",
    "POLICY": "POLICY",
    "ROW SECURITY": "ROW_SECURITY",
    "VIEW": "VIEW",
    "MATERIALIZED VIEW": "MATERIALIZED_VIEW",
    "MATERIALIZED VIEW DATA": "MATERIALIZED_VIEW_DATA",
    "COMMENT": "COMMENT",
    "ACL": "GRANT",
    "SECURITY LABEL": "SECURITY_LABEL",
}
_ALIASES = {
    "SEQUENCE_VALUE": "SEQUENCE",
    "SETTING": "PRAGMA",
    "DATABASE/SETTING": "PRAGMA",
}
#: Objects that belong to a table: they go (or stay) with it.
DEPENDENTS = (
    "TABLE_DATA",
    "INDEX",
    "TRIGGER",
    "SEQUENCE",
    "CONSTRAINT",
    "REF_CONSTRAINT",
    "COMMENT",
    "TABLE_ATTACH",
    "DEFAULT",
    "INDEX_ATTACH",
    "STATISTICS",
    "RULE",
    "POLICY",
    "ROW_SECURITY",
    "GRANT",
    "SECURITY_LABEL",
    "SEQUENCE_DEF",
    "SEQUENCE_OWNED_BY",
    "PUBLICATION_TABLE",
    "MATERIALIZED_VIEW_DATA",
)
#: The kinds of objects other objects can belong to (an index on a materialized view, a
#: trigger on a view, a comment on a foreign table's column).
RELATIONS = ("TABLE", "VIEW", "MATERIALIZED_VIEW", "FOREIGN_TABLE")
CONTENTS = ("ALL", "DATA_ONLY", "METADATA_ONLY")
TABLE_EXISTS_ACTIONS = ("SKIP", "APPEND", "TRUNCATE", "REPLACE")


class Candidate(NamedTuple):
    """An object a job could move. ``table`` is the table it belongs to (its own name for a
    table and its data; empty for views and settings)."""

    object_type: str
    schema: str
    name: str
    table: str = ""


# --- name expressions -------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op>!=|<>|=|\(|\)|,)|(?P<word>[A-Za-z_]+))"
)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            rest = text[position:]
            at = position + len(rest) - len(rest.lstrip())
            raise InvalidArgumentError(
                f"name expression {text!r}: unexpected {rest.strip()[:20]!r} at character {at + 1}"
            )
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = value[1:-1].replace("''", "'")
        elif kind == "word":
            value = value.upper()
        tokens.append((kind, value, match.start(kind) + 1))
        position = match.end()
    return tokens


_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """``name`` with ASCII letters in lower case and nothing else changed: SQLite's (and
    unquoted PostgreSQL's) sense of "the same name" (``Ä`` and ``ä`` stay two names)."""
    return name.translate(_ASCII_FOLD)


def _literal(ch: str) -> str:
    if ch.isascii() and ch.isalpha():
        return f"[{ch.lower()}{ch.upper()}]"
    return re.escape(ch)


def _like_pattern(pattern: str, escape: str | None) -> re.Pattern[str]:
    parts = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            parts.append(_literal(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else _literal(ch))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


class NameExpr(msgspec.Struct, frozen=True):
    """A parsed name expression; ``matches(name)`` applies it."""

    text: str
    op: str  # "=", "IN", "LIKE"
    values: tuple[str, ...]
    negated: bool = False
    escape: str | None = None

    @classmethod
    def parse(cls, text: str) -> NameExpr:
        """Parse ``= 'X'``, ``IN ('A','B')``, ``LIKE 'A%' [ESCAPE '\\']``, with ``NOT``/``!=``;
        raises ``InvalidArgumentError`` saying what is wrong and where."""
        tokens = _tokens(text)

        def fail(why: str) -> InvalidArgumentError:
            return InvalidArgumentError(f"name expression {text!r}: {why}")

        def take(kind: str, value: str | None = None) -> str:
            if not tokens:
                raise fail(f"ends where {value or kind} was expected")
            got_kind, got, where = tokens.pop(0)
            if got_kind != kind or (value is not None and got != value):
                raise fail(f"{value or kind} expected at character {where}, not {got!r}")
            return got

        if not tokens:
            raise fail("it is empty; write e.g. IN ('A', 'B') or LIKE 'ORD%'")
        negated = False
        if tokens[0][:2] == ("word", "NOT"):
            tokens.pop(0)
            negated = True
        if not tokens:
            raise fail("nothing follows NOT")
        kind, op, where = tokens.pop(0)
        escape = None
        if kind == "op" and op in ("=", "!=", "<>"):
            if op != "=":
                negated = not negated
            values: tuple[str, ...] = (take("string"),)
            op = "="
        elif kind == "word" and op == "IN":
            take("op", "(")
            items = [take("string")]
            while tokens and tokens[0][1] == ",":
                tokens.pop(0)
                items.append(take("string"))
            take("op", ")")
            values = tuple(items)
        elif kind == "word" and op == "LIKE":
            values = (take("string"),)
            if tokens and tokens[0][:2] == ("word", "ESCAPE"):
                tokens.pop(0)
                escape = take("string")
                if len(escape) != 1:
                    raise fail(f"ESCAPE takes one character, not {escape!r}")
        else:
            raise fail(f"=, !=, IN or LIKE expected at character {where}, not {op!r}")
        if tokens:
            raise fail(f"unexpected {tokens[0][1]!r} at character {tokens[0][2]}")
        return cls(text=text, op=op, values=values, negated=negated, escape=escape)

    def matches(self, name: str) -> bool:
        if self.op == "LIKE":
            hit = _like_pattern(self.values[0], self.escape).fullmatch(name) is not None
        else:
            folded = fold(name)
            hit = any(fold(v) == folded for v in self.values)
        return hit != self.negated


# --- object filters (INCLUDE / EXCLUDE) -------------------------------------------------------


def object_type_of(path: str) -> str:
    """The object type a path names: ``INDEX``, ``SCHEMA/TABLE/INDEX``, ``SETTING``..."""
    key = path.strip().upper()
    key = _ALIASES.get(key, key)
    if key in OBJECT_PATHS:
        return key
    for name, full in OBJECT_PATHS.items():
        if key == full:
            return name
    raise InvalidArgumentError(
        f"object type {path!r} is not known; valid types: {', '.join(OBJECT_PATHS)}"
    )


class PathFilter(msgspec.Struct, frozen=True):
    """One INCLUDE or EXCLUDE: an object type and, optionally, a name expression."""

    object_type: str
    name: NameExpr | None = None

    def hits(self, c: Candidate) -> bool:
        return c.object_type == self.object_type and (
            self.name is None or self.name.matches(c.name)
        )


def parse_object_filter(text: str) -> PathFilter:
    """expdp's ``TYPE[:name_clause]`` (``INDEX``, ``TABLE:"LIKE 'ORD%'"``)."""
    head, _, clause = text.partition(":")
    clause = clause.strip()
    if len(clause) >= 2 and clause[0] == clause[-1] == '"':
        clause = clause[1:-1]
    return PathFilter(
        object_type=object_type_of(head), name=NameExpr.parse(clause) if clause else None
    )


def parse_path_expr(text: str) -> list[str]:
    """INCLUDE_PATH_EXPR/EXCLUDE_PATH_EXPR: a name expression over object types, as the
    object types it selects (``IN ('INDEX','TRIGGER')``, ``LIKE '%INDEX'``, ``= 'VIEW'``)."""
    expr = NameExpr.parse(text)
    if expr.op != "LIKE":
        for value in expr.values:
            object_type_of(value)  # a misspelt type is refused, not silently matching nothing
    # A type is named by its name, its path or its path's last part; NOT negates whether any
    # of them matches (``!= 'INDEX'`` leaves out SCHEMA/TABLE/INDEX too).
    positive = msgspec.structs.replace(expr, negated=False)
    return [
        t
        for t, full in OBJECT_PATHS.items()
        if any(positive.matches(form) for form in (t, full, full.rsplit("/", 1)[-1]))
        != expr.negated
    ]


# --- the whole selection -----------------------------------------------------------------------


class DataFilter(msgspec.Struct, frozen=True):
    """QUERY, SUBQUERY, SAMPLE or INCLUDE_ROWS, for one table or (table "") all."""

    name: str
    value: str | int | float
    table: str = ""


class Remap(msgspec.Struct, frozen=True):
    """REMAP_TABLE / REMAP_SCHEMA (old -> new) or REMAP_DATA (``table.column`` -> function)."""

    name: str
    old: str
    new: str


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """Every filter, remap and transform of a job, as stored in its control table."""

    include: tuple[PathFilter, ...] = ()
    exclude: tuple[PathFilter, ...] = ()
    names: tuple[tuple[str, NameExpr], ...] = ()  # (object type, expression) it must match
    schemas: tuple[NameExpr, ...] = ()
    data: tuple[DataFilter, ...] = ()
    remaps: tuple[Remap, ...] = ()
    transforms: tuple[tuple[str, int], ...] = ()
    content: str = "ALL"

    # -- objects

    def keeps(self, candidates: Sequence[Candidate]) -> list[bool]:
        """For every candidate, whether the job moves it. A table's dependents (its data,
        indexes, triggers, sequence value) go with it: excluding a table excludes them."""
        # The owners a dependent can have: tables, and views (a trigger may be on a view).
        tables_kept = {
            fold(c.name) for c in candidates if c.object_type in RELATIONS and self._own(c)
        }
        result = []
        for c in candidates:
            if c.object_type in DEPENDENTS and c.object_type != "TABLE" and c.table:
                keep = fold(c.table) in tables_kept and self._own(c, dependent=True)
            else:
                keep = self._own(c)
            if keep and c.object_type == "TABLE_DATA":
                keep = self.content != "METADATA_ONLY" and self.rows_included(c.table)
            elif keep and c.object_type not in ("TABLE", "TABLE_DATA"):
                keep = self.content != "DATA_ONLY"
            result.append(keep)
        return result

    def _own(self, c: Candidate, *, dependent: bool = False) -> bool:
        """The filters that name this object's own type (and name)."""
        if any(not e.matches(c.schema) for e in self.schemas):
            return False
        for object_type, expr in self.names:
            if object_type == c.object_type and not expr.matches(c.name):
                return False
        if any(f.hits(c) for f in self.exclude):
            return False
        if self.include:
            if any(f.hits(c) for f in self.include):
                return True
            # A table's dependents come along unless their own type is filtered: INCLUDE=TABLE
            # takes the tables with their indexes; INCLUDE=TABLE,VIEW also the views.
            listed = {f.object_type for f in self.include}
            return dependent and c.object_type not in listed
        return True

    # -- rows

    def rows_included(self, table: str) -> bool:
        value = self.data_value("INCLUDE_ROWS", table)
        return value is None or int(value) != 0

    def data_value(self, name: str, table: str) -> str | int | float | None:
        """The data filter ``name`` for ``table``: its own, else the one for every table."""
        own = [f for f in self.data if f.name == name and fold(f.table) == fold(table)]
        every = [f for f in self.data if f.name == name and not f.table]
        chosen = (own or every)[-1:] if (own or every) else []
        return chosen[0].value if chosen else None

    # -- names

    def remapped_table(self, name: str) -> str:
        return remap_name(self.remaps, "REMAP_TABLE", name)

    def remapped_schema(self, name: str) -> str:
        return remap_name(self.remaps, "REMAP_SCHEMA", name)

    def data_remaps(self, table: str) -> dict[str, str]:
        """``column -> module:function`` of the REMAP_DATA entries for ``table``."""
        found = {}
        for r in self.remaps:
            if r.name == "REMAP_DATA":
                owner, _, column = r.old.rpartition(".")
                if fold(owner) == fold(table):
                    found[column] = r.new
        return found

    def transform(self, name: str, default: int = 0) -> int:
        values = [v for n, v in self.transforms if n == name]
        return values[-1] if values else default

    @property
    def moves_data(self) -> bool:
        return self.content != "METADATA_ONLY"


def remap_name(remaps: Iterable[Remap], kind: str, name: str) -> str:
    for r in remaps:
        if r.name == kind and fold(r.old) == fold(name):
            return r.new
    return name


# --- from the stored procedure calls ---------------------------------------------------------


def parse_name_list(value: object) -> list[str]:
    """Names from a list, or from Oracle's form ``'A','B'`` / ``A, B``."""
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    names = []
    for part in str(value).split(","):
        part = part.strip()
        if len(part) >= 2 and part[0] == part[-1] and part[0] in "'\"":
            part = part[1:-1]
        if part:
            names.append(part)
    return names


def _in_list(names: list[str]) -> NameExpr:
    if not names:
        raise InvalidArgumentError("a name list must name at least one object")
    text = "IN (" + ", ".join("'" + n.replace("'", "''") + "'" for n in names) + ")"
    return NameExpr(text=text, op="IN", values=tuple(names))


def build_selection(
    entries: Iterable[tuple[str, object, str | None]], *, content: str = "ALL"
) -> Selection:
    """The selection of a job from its stored filter calls, ``(KIND:NAME, value, target)``
    in call order (target: the object path, table name or object type the call gave).

    Raises ``InvalidArgumentError`` for an expression, value or combination that cannot be;
    the Session calls it on every new call while DEFINING, so nothing bad is stored.
    """
    include: list[PathFilter] = []
    exclude: list[PathFilter] = []
    names: list[tuple[str, NameExpr]] = []
    schemas: list[NameExpr] = []
    data: list[DataFilter] = []
    remaps: list[Remap] = []
    transforms: list[tuple[str, int]] = []
    used: set[str] = set()  # INCLUDE and EXCLUDE, as the caller gave them
    for key, value, target in entries:
        kind, _, name = key.partition(":")
        if kind == "METADATA_FILTER":
            object_type = object_type_of(target) if target else "TABLE"
            if name in ("NAME_LIST", "NAME_EXPR"):
                expr = (
                    _in_list(parse_name_list(value))
                    if name == "NAME_LIST"
                    else NameExpr.parse(str(value))
                )
                names.append((object_type, expr))
            elif name in ("EXCLUDE_NAME_LIST", "EXCLUDE_NAME_EXPR"):
                expr = (
                    _in_list(parse_name_list(value))
                    if name == "EXCLUDE_NAME_LIST"
                    else NameExpr.parse(str(value))
                )
                exclude.append(PathFilter(object_type=object_type, name=expr))
                used.add("EXCLUDE")
            elif name in ("SCHEMA_LIST", "SCHEMA_EXPR"):
                schemas.append(
                    _in_list(parse_name_list(value))
                    if name == "SCHEMA_LIST"
                    else NameExpr.parse(str(value))
                )
            elif name in (
                "INCLUDE_PATH_EXPR",
                "EXCLUDE_PATH_EXPR",
                "INCLUDE_PATH_LIST",
                "EXCLUDE_PATH_LIST",
            ):
                types = (
                    parse_path_expr(str(value))
                    if name.endswith("EXPR")
                    else [object_type_of(t) for t in parse_name_list(value)]
                )
                if not types:
                    raise InvalidArgumentError(
                        f"{name} {value!r} selects no object type; valid types:"
                        f" {', '.join(OBJECT_PATHS)}"
                    )
                if name.startswith("INCLUDE"):
                    used.add("INCLUDE")
                    if name.endswith("EXPR") and NameExpr.parse(str(value)).negated:
                        # "All but these": the types it leaves out are excluded, dependents
                        # of a table included (INCLUDE_PATH_EXPR "!= 'INDEX'": no indexes).
                        exclude.extend(
                            PathFilter(object_type=t) for t in OBJECT_PATHS if t not in types
                        )
                    else:
                        include.extend(PathFilter(object_type=t) for t in types)
                else:
                    used.add("EXCLUDE")
                    exclude.extend(PathFilter(object_type=t) for t in types)
            else:
                raise InvalidArgumentError(f"METADATA_FILTER: unknown name {name!r}")
        elif kind == "DATA_FILTER":
            data.append(_data_filter(name, value, target or ""))
        elif kind == "METADATA_REMAP":
            old, new = [*value, "", ""][:2] if isinstance(value, list | tuple) else ("", "")
            remaps.append(_remap(name, str(old), str(new)))
        elif kind == "METADATA_TRANSFORM":
            try:
                number = int(str(value).strip())
            except ValueError:
                number = -1
            if number not in (0, 1):
                raise InvalidArgumentError(f"METADATA_TRANSFORM {name} takes 0 or 1, not {value!r}")
            transforms.append((name, number))
        else:
            raise InvalidArgumentError(f"unknown filter kind {kind!r}")
    # Name filters that name an object type make it included: INCLUDE=TABLE:"LIKE 'A%'" is
    # INCLUDE_PATH_EXPR plus NAME_EXPR, as expdp translates it.
    if used == {"INCLUDE", "EXCLUDE"}:
        raise InvalidArgumentError(
            "INCLUDE and EXCLUDE cannot both be used in one job (as in expdp): keep one"
        )
    if content not in CONTENTS:
        raise InvalidArgumentError(
            f"CONTENT cannot be {content!r}; allowed values: {', '.join(CONTENTS)}"
        )
    for table in {f.table for f in data}:
        given = {f.name for f in data if f.table == table}
        if {"QUERY", "SUBQUERY"} <= given:
            raise InvalidArgumentError(
                f"QUERY and SUBQUERY cannot both be given for {table or 'every table'}:"
                " put the condition in one of them"
            )
    return Selection(
        include=tuple(include),
        exclude=tuple(exclude),
        names=tuple(names),
        schemas=tuple(schemas),
        data=tuple(data),
        remaps=tuple(remaps),
        transforms=tuple(transforms),
        content=content,
    )


def _data_filter(name: str, value: object, table: str) -> DataFilter:
    if name in ("QUERY", "SUBQUERY"):
        text = str(value).strip()
        if not text:
            raise InvalidArgumentError(f"DATA_FILTER {name} needs a condition")
        if ";" in text:
            raise InvalidArgumentError(f"DATA_FILTER {name} {text!r}: one condition, without ';'")
        if name == "QUERY" and text.upper().startswith("WHERE "):
            text = text[6:].strip()
        return DataFilter(name=name, value=text, table=table)
    if name == "SAMPLE":
        try:
            percent = float(str(value))
        except ValueError:
            percent = -1.0
        if not 0 < percent <= 100:
            raise InvalidArgumentError(
                f"DATA_FILTER SAMPLE takes a percentage above 0 and at most 100, not {value!r}"
            )
        return DataFilter(name=name, value=percent, table=table)
    if name == "INCLUDE_ROWS":
        if str(value).strip() not in ("0", "1"):
            raise InvalidArgumentError(f"DATA_FILTER INCLUDE_ROWS takes 0 or 1, not {value!r}")
        return DataFilter(name=name, value=int(str(value).strip()), table=table)
    raise InvalidArgumentError(
        f"DATA_FILTER: unknown name {name!r}; valid names: INCLUDE_ROWS, QUERY, SAMPLE, SUBQUERY"
    )


def _remap(name: str, old: str, new: str) -> Remap:
    if not old or not new:
        raise InvalidArgumentError(f"METADATA_REMAP {name} needs an old and a new value")
    if name == "REMAP_DATA":
        table, dot, column = old.rpartition(".")
        if not dot or not table or not column:
            raise InvalidArgumentError(f"REMAP_DATA names a column as table.column, not {old!r}")
        module, colon, function = new.partition(":")
        if not colon or not module or not function:
            raise InvalidArgumentError(
                f"REMAP_DATA takes a function as module:function, not {new!r}"
            )
    elif name not in ("REMAP_TABLE", "REMAP_SCHEMA"):
        raise InvalidArgumentError(
            f"METADATA_REMAP: unknown name {name!r}; valid names: REMAP_DATA, REMAP_SCHEMA,"
            " REMAP_TABLE"
        )
    return Remap(name=name, old=old, new=new)
