"""SQL across engines: SQLite's views, indexes, CHECK and DEFAULT expressions in PostgreSQL's
SQL and back, through sqlglot's parser and generator (never by rewriting the text).

Theory of operation: a statement is parsed in its source's dialect into a tree, the tree is
adjusted where the two engines differ in more than spelling, and the tree is written in the
target's dialect. What differs:

- **Names.** Every identifier is written double-quoted (a ``[bracketed]`` or
  `` `backtick` `` name of SQLite becomes ``"double-quoted"``). SQLite matches names without
  regard to case, PostgreSQL only as written: given the names the database has (``names``),
  each identifier is spelled as the database spells it.
- **Schemas.** SQLite has one (``main``); PostgreSQL's objects are schema-qualified by
  pg_dump. Going to SQLite the schema qualifiers are dropped; going to PostgreSQL the
  statement runs with the target schema on the search path.
- **Indexes.** Only PostgreSQL's btree has a SQLite counterpart. SQLite's index columns take
  no ``NULLS FIRST``/``LAST``; each column gets its target's default null order (where the
  nulls sort in an index changes which ORDER BY it serves, never which rows it holds or
  whether it is unique, nor what a partial index's WHERE keeps).
- **Functions.** A function sqlglot does not know in both dialects (SQLite's
  ``datetime('now')``, PostgreSQL's ``to_tsvector``) has no translation: the statement
  raises :class:`~pumpkit.errors.TranslationError` naming the object and the function, as
  does anything the target's generator cannot write, or SQL that does not parse.

Pure: text in, text out. Nothing here depends on a job state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, NamedTuple

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError
from sqlglot.tokenizer_core import TokenType

from pumpkit.core.ddl import quote_ident
from pumpkit.errors import TranslationError

__all__ = (
    "Dialect",
    "ForeignKey",
    "Names",
    "TableParts",
    "Translated",
    "fkey_name",
    "foreign_key_of",
    "foreign_key_sql",
    "name_map",
    "table_parts",
    "translate_expression",
    "translate_index",
    "translate_view",
    "unique_of",
)

Dialect = Literal["sqlite", "postgres"]
#: The names a database has, by ``casefold``: their spellings (see :func:`name_map`).
Names = Mapping[str, tuple[str, ...]]
_ENGINE = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
#: SQLite's own schema names: dropped, never carried to another engine.
_SQLITE_SCHEMAS = frozenset({"main", "temp"})
#: The longest name PostgreSQL keeps (NAMEDATALEN - 1 bytes).
_PG_NAME_BYTES = 63


class Translated(NamedTuple):
    """One expression of a table (a CHECK, a column's DEFAULT): its SQL in the target's
    dialect, or ``None`` and why not."""

    name: str | None  # the constraint's name (CHECK), the column (DEFAULT)
    sql: str | None
    why: str | None = None


class ForeignKey(NamedTuple):
    """A FOREIGN KEY of a table: its columns, the table and columns it references (none: that
    table's primary key), and its actions and deferral as SQL words (``ON DELETE CASCADE``,
    ``DEFERRABLE INITIALLY DEFERRED``), which both engines spell alike."""

    name: str | None
    columns: tuple[str, ...]
    table: str
    ref_columns: tuple[str, ...]
    actions: tuple[str, ...] = ()


class TableParts(NamedTuple):
    """What a CREATE TABLE says beyond its columns' names and types, in the target's SQL."""

    checks: tuple[Translated, ...]
    defaults: tuple[Translated, ...]
    foreign_keys: tuple[ForeignKey, ...]
    uniques: tuple[tuple[str | None, tuple[str, ...]], ...]
    #: What is lost with a column or constraint whose definition sqlglot cannot read.
    lost: tuple[str, ...] = ()


# --- parsing and writing ----------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _statements(sql: str, dialect: Dialect, what: str) -> list[exp.Expression]:
    try:
        trees = sqlglot.parse(sql, read=dialect)
    except (ParseError, TokenError) as exc:
        raise TranslationError(
            what, f"its {_ENGINE[dialect]} SQL does not parse ({_first_line(exc)})"
        ) from None
    return [t for t in trees if isinstance(t, exp.Expression)]


def _creates(sql: str, dialect: Dialect, what: str) -> list[str]:
    """The text of each CREATE statement of ``sql``, cut at the tokenizer's semicolons (so a
    semicolon inside a string or a quoted name does not cut)."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except TokenError as exc:
        raise TranslationError(
            what, f"its {_ENGINE[dialect]} SQL does not parse ({_first_line(exc)})"
        ) from None
    found: list[str] = []
    first = None  # the first token of the statement in hand
    for token in [*tokens, None]:
        if token is None or token.token_type == TokenType.SEMICOLON:
            if first is not None and first.token_type == TokenType.CREATE:
                found.append(sql[first.start : len(sql) if token is None else token.start])
            first = None
        elif first is None:
            first = token
    return found


def _one(sql: str, dialect: Dialect, what: str, kind: str) -> exp.Create:
    """The one CREATE ``kind`` statement of ``sql`` (pg_dump may add ALTER ... OWNER TO and
    the like after it: those are other entries' business and are not translated)."""
    creates = [
        t
        for text in _creates(sql, dialect, what)
        for t in _statements(text, dialect, what)
        if isinstance(t, exp.Create) and t.kind == kind
    ]
    if len(creates) != 1:
        raise TranslationError(what, f"its SQL is not one CREATE {kind} statement")
    return creates[0]


def _expression(sql: str, dialect: Dialect, what: str) -> exp.Expression:
    trees = _statements(sql, dialect, what)
    if len(trees) != 1:
        raise TranslationError(what, "its SQL is not one expression")
    return trees[0]


def _check_functions(tree: exp.Expression, target: Dialect, what: str) -> None:
    for node in tree.find_all(exp.Anonymous):
        raise TranslationError(
            what,
            f"function {node.name}() has no {_ENGINE[target]} counterpart that pumpkit knows",
        )


#: Type names of a cast of a literal that SQLite needs not (the literal is of that kind).
_TEXT_TYPES = frozenset({"TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR", "BPCHAR"})
_NUMBER_TYPES = frozenset(
    {"INT", "BIGINT", "SMALLINT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "TINYINT"}
)


def _for_sqlite(tree: exp.Expression) -> exp.Expression:
    """What pg_dump writes that SQLite needs not: a cast of a literal to its own kind
    (``'x'::text``, ``(0)::double precision``) is the literal; true and false are 1 and 0
    (what SQLite stores for them)."""
    for cast in list(tree.find_all(exp.Cast)):
        inner = cast.this.unnest() if isinstance(cast.this, exp.Paren) else cast.this
        to = cast.args.get("to")
        kind = to.this.name if isinstance(to, exp.DataType) else ""
        if isinstance(inner, exp.Literal) and (
            (inner.is_string and kind in _TEXT_TYPES)
            or (not inner.is_string and kind in _NUMBER_TYPES)
        ):
            replaced = cast.replace(inner.copy())
            if cast is tree:
                tree = replaced
    for boolean in list(tree.find_all(exp.Boolean)):
        number: exp.Expression = exp.Literal.number(1 if boolean.this else 0)
        boolean.replace(number)
        if boolean is tree:
            tree = number
    return tree


def _write(tree: exp.Expression, target: Dialect, what: str) -> str:
    _check_functions(tree, target, what)
    if target == "sqlite":
        tree = _for_sqlite(tree)
    try:
        return tree.sql(dialect=target, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise TranslationError(
            what, f"{_ENGINE[target]} cannot express it ({_first_line(exc)})"
        ) from None


def _names(tree: exp.Expression, source: Dialect, target: Dialect, names: Names | None) -> None:
    """Every identifier quoted, spelled as the database spells it (an alias the statement
    defines keeps its own spelling, and so do the references to it); schema qualifiers the
    target has no use for dropped."""
    for table in list(tree.find_all(exp.Table)):
        db = table.args.get("db")
        if db is not None and (
            target == "sqlite" or (source == "sqlite" and db.name.lower() in _SQLITE_SCHEMAS)
        ):
            table.set("db", None)
            table.set("catalog", None)
    for column in list(tree.find_all(exp.Column)):
        if target == "sqlite" and column.args.get("db") is not None:
            column.set("db", None)
            column.set("catalog", None)
    defined = {
        i.name.casefold(): i.name
        for i in tree.find_all(exp.Identifier)
        if isinstance(i.parent, exp.Alias | exp.TableAlias)
    }
    known = names or {}
    for ident in list(tree.find_all(exp.Identifier)):
        name = ident.name
        key = name.casefold()
        parent = ident.parent
        if isinstance(parent, exp.Alias | exp.TableAlias):
            pass  # an alias: as written
        elif source == "sqlite" or not ident.quoted:
            spelled = _spell(name, known)
            # A table's alias qualifies a column; an output column's alias is what ORDER
            # BY names first; elsewhere a name of the database wins.
            alias_ref = isinstance(parent, exp.Column) and (
                ident.arg_key == "table"
                or spelled is None
                or (parent.args.get("table") is None and parent.find_ancestor(exp.Order))
            )
            if alias_ref and key in defined:
                name = defined[key]
            elif spelled is not None:
                name = spelled
        ident.set("this", name)
        ident.set("quoted", True)


def _spell(name: str, known: Names) -> str | None:
    """How the database spells ``name``: as written when it has that spelling, or its one
    spelling without regard to case; ``None`` when it has none, or several."""
    spellings = known.get(name.casefold(), ())
    if name in spellings:
        return name
    return spellings[0] if len(spellings) == 1 else None


def _booleans(tree: exp.Expression, booleans: frozenset[str]) -> None:
    """SQLite's 0 and 1 compared with a column PostgreSQL holds as boolean become false
    and true (PostgreSQL has no boolean = integer)."""
    if not booleans:
        return
    for node in list(tree.find_all(exp.EQ, exp.NEQ, exp.Is)):
        for this, other in (("this", "expression"), ("expression", "this")):
            column, value = node.args.get(this), node.args.get(other)
            if (
                isinstance(column, exp.Column)
                and column.name.casefold() in booleans
                and isinstance(value, exp.Literal)
                and not value.is_string
                and value.name in ("0", "1")
            ):
                node.set(other, exp.Boolean(this=value.name == "1"))


#: Collations each engine has by another name (or none: the default order of bytes).
_BINARY = frozenset({"binary", "c", "posix", "default"})


def _collations(tree: exp.Expression, target: Dialect, what: str, *, index: bool) -> None:
    """COLLATE clauses the target can take: the byte order dropped (both engines' default);
    SQLite's NOCASE on an index column as PostgreSQL's lower() of it (the same keys for
    ASCII text, which is all NOCASE folds); any other collation has no counterpart."""
    for node in list(tree.find_all(exp.Collate)):
        collation = node.expression.name.lower() if node.expression is not None else ""
        if collation in _BINARY:
            node.replace(node.this)
        elif (
            collation == "nocase"
            and target == "postgres"
            and index
            and isinstance(node.parent, exp.Ordered)
        ):
            node.replace(exp.Lower(this=node.this))
        else:
            raise TranslationError(
                what,
                f"collation {node.expression.name if node.expression else ''!r} has no"
                f" {_ENGINE[target]} counterpart here",
            )


def name_map(*groups: object) -> dict[str, tuple[str, ...]]:
    """The names given (strings, or iterables of them) by ``casefold``: each with its
    spellings (SQLite's names are one name whatever their case; a database may still
    spell two of its tables' columns ``Title`` and ``title``)."""
    seen: dict[str, set[str]] = {}
    stack = list(groups)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            seen.setdefault(item.casefold(), set()).add(item)
        elif isinstance(item, Iterable):
            stack.extend(item)
    return {key: tuple(sorted(v)) for key, v in seen.items()}


# --- statements -------------------------------------------------------------------------------


def translate_view(
    sql: str,
    *,
    source: Dialect,
    target: Dialect,
    name: str,
    names: Names | None = None,
    booleans: frozenset[str] = frozenset(),
) -> str:
    """The CREATE VIEW ``sql`` (in ``source``'s SQL) in ``target``'s SQL, creating ``name``
    (unqualified). Raises ``TranslationError`` naming the view and why when it has none."""
    what = f"view {name!r}"
    tree = _one(sql, source, what, "VIEW")
    _collations(tree, target, what, index=False)
    _booleans(tree, booleans)
    _names(tree, source, target, names)
    named = exp.Table(this=exp.to_identifier(name, quoted=True))
    if isinstance(tree.this, exp.Schema):  # CREATE VIEW v (a, b) AS ...
        tree.this.set("this", named)
    else:
        tree.set("this", named)
    if target == "sqlite":
        for flag in ("replace", "materialized"):
            if tree.args.get(flag):
                tree.set(flag, False)
    return _write(tree, target, what)


def translate_index(
    sql: str,
    *,
    source: Dialect,
    target: Dialect,
    name: str,
    table: str,
    names: Names | None = None,
    booleans: frozenset[str] = frozenset(),
) -> str:
    """The CREATE INDEX ``sql`` (a partial or expression index too) in ``target``'s SQL,
    creating ``name`` on ``table`` (both unqualified). Raises ``TranslationError`` naming the
    index and why when it has none (an index method other than btree, an unknown function,
    an operator class)."""
    what = f"index {name!r}"
    tree = _one(sql, source, what, "INDEX")
    index = tree.this
    if not isinstance(index, exp.Index):
        raise TranslationError(what, "its SQL names no index")
    params = index.args.get("params")
    if not isinstance(params, exp.IndexParameters):
        raise TranslationError(what, "its SQL names no indexed columns")
    using = params.args.get("using")
    if using is not None:
        method = using.name.lower()
        if method != "btree":
            raise TranslationError(
                what, f"a {method} index has no {_ENGINE[target]} counterpart (only btree has)"
            )
        params.set("using", None)
    for key in ("include", "with_storage", "tablespace", "on"):
        if params.args.get(key):
            raise TranslationError(what, f"its {key.upper()} clause has no counterpart")
    for column in params.args.get("columns") or ():
        if isinstance(column, exp.Ordered):
            descending = bool(column.args.get("desc"))
            # Each engine's default: SQLite's nulls are smallest, PostgreSQL's largest.
            column.set("nulls_first", not descending if target == "sqlite" else descending)
        if column.find(exp.Opclass) is not None:
            raise TranslationError(what, "an operator class has no counterpart")
    _collations(tree, target, what, index=True)
    _booleans(tree, booleans)
    _names(tree, source, target, names)
    index.set("this", exp.to_identifier(name, quoted=True))
    index.set("table", exp.Table(this=exp.to_identifier(table, quoted=True)))
    tree.set("concurrently", False)
    return _write(tree, target, what)


def translate_expression(
    sql: str,
    *,
    source: Dialect,
    target: Dialect,
    what: str,
    names: Names | None = None,
    booleans: frozenset[str] = frozenset(),
) -> str:
    """A CHECK or DEFAULT expression in ``target``'s SQL; ``what`` names it in the error
    raised when it has none (``TranslationError``)."""
    tree = _expression(sql, source, what)
    _collations(tree, target, what, index=False)
    _booleans(tree, booleans)
    _names(tree, source, target, names)
    return _write(tree, target, what)


def _translated(
    tree: exp.Expression,
    source: Dialect,
    target: Dialect,
    name: str | None,
    what: str,
    names: Names | None,
    booleans: frozenset[str],
) -> Translated:
    tree = tree.copy()
    if isinstance(tree, exp.Paren):
        tree = tree.this
    try:
        _collations(tree, target, what, index=False)
        _booleans(tree, booleans)
        _names(tree, source, target, names)
        return Translated(name, _write(tree, target, what))
    except TranslationError as exc:
        return Translated(name, None, exc.reason)


# --- tables -----------------------------------------------------------------------------------


def _idents(node: exp.Expression | None) -> tuple[str, ...]:
    if node is None:
        return ()
    items = node.expressions if isinstance(node, exp.Schema) else [node]
    return tuple(i.name for i in items if isinstance(i, exp.Identifier | exp.Column))


def _reference(
    name: str | None, columns: tuple[str, ...], ref: exp.Reference, names: Names
) -> ForeignKey:
    target = ref.this
    if isinstance(target, exp.Schema):
        table, ref_columns = target.this, _idents(target)
    else:
        table, ref_columns = target, ()
    options = tuple(
        " ".join(str(o.name if isinstance(o, exp.Expression) else o).split()).upper()
        for o in ref.args.get("options") or ()
    )
    actions = tuple(
        o for o in options if o.startswith(("ON DELETE", "ON UPDATE", "DEFERRABLE", "INITIALLY"))
    )

    def spell(n: str) -> str:
        return _spell(n, names) or n

    return ForeignKey(
        name=name,
        columns=tuple(spell(c) for c in columns),
        table=spell(table.name),
        ref_columns=tuple(spell(c) for c in ref_columns),
        actions=actions,
    )


def table_parts(
    ddl: str,
    *,
    source: Dialect,
    target: Dialect,
    table: str,
    names: Names | None = None,
    booleans: frozenset[str] = frozenset(),
    numerics: frozenset[str] = frozenset(),
) -> TableParts:
    """The CHECK constraints, column defaults, FOREIGN KEYs and UNIQUE constraints of the
        CREATE TABLE ``ddl``, the expressions in ``target``'s SQL (one that has no translation
        comes with why). ``numerics``: columns SQLite holds as text of exact digits (PostgreSQL's
    numeric), which a CHECK compares as numbers. Raises ``TranslationError`` when ``ddl`` is
    not one CREATE TABLE."""
    spelled = names or {}
    items, lost = _table_items(ddl, source, f"table {table!r}")
    checks: list[Translated] = []
    defaults: list[Translated] = []
    fks: list[ForeignKey] = []
    uniques: list[tuple[str | None, tuple[str, ...]]] = []

    def check(node: exp.CheckColumnConstraint, name: str | None) -> None:
        what = f"CHECK {name!r} of table {table!r}" if name else f"a CHECK of table {table!r}"
        tree = node.this
        if numerics:
            tree = tree.copy()
            for column in list(tree.find_all(exp.Column)):
                if column.name.casefold() in numerics:
                    column.replace(exp.cast(column.copy(), "NUMERIC"))
        checks.append(_translated(tree, source, target, name, what, names, booleans))

    for item in items:
        if isinstance(item, exp.ColumnDef):
            column = _spell(item.name, spelled) or item.name
            for constraint in item.args.get("constraints") or ():
                kind = constraint.args.get("kind")
                cname = constraint.name or None
                if isinstance(kind, exp.CheckColumnConstraint):
                    check(kind, cname)
                elif isinstance(kind, exp.DefaultColumnConstraint):
                    what = f"the default of column {column!r} of table {table!r}"
                    defaults.append(
                        _translated(kind.this, source, target, column, what, names, booleans)
                    )
                elif isinstance(kind, exp.Reference):
                    fks.append(_reference(cname, (column,), kind, spelled))
                elif isinstance(kind, exp.UniqueColumnConstraint):
                    uniques.append((cname, (column,)))
            continue
        name: str | None = None
        inner = [item]
        if isinstance(item, exp.Constraint):
            name = item.name or None
            inner = list(item.expressions)
        for node in inner:
            if isinstance(node, exp.CheckColumnConstraint):
                check(node, name)
            elif isinstance(node, exp.ForeignKey):
                reference = node.args.get("reference")
                if isinstance(reference, exp.Reference):
                    fks.append(_reference(name, _idents_of(node), reference, spelled))
            elif isinstance(node, exp.UniqueColumnConstraint):
                columns = tuple(_spell(c, spelled) or c for c in _idents(node.this))
                uniques.append((name, columns))
    return TableParts(tuple(checks), tuple(defaults), tuple(fks), tuple(uniques), lost)


#: Tokens of a column's or constraint's definition that say something is lost with it.
_CONSTRAINT_TOKENS = frozenset(
    {TokenType.DEFAULT, TokenType.REFERENCES, TokenType.FOREIGN_KEY, TokenType.UNIQUE,
     TokenType.PRIMARY_KEY, TokenType.CONSTRAINT}
)  # fmt: skip


def _table_items(
    ddl: str, dialect: Dialect, what: str
) -> tuple[list[exp.Expression], tuple[str, ...]]:
    """The columns and constraints of the CREATE TABLE ``ddl``. When the whole does not
    parse (a type sqlglot does not know, such as ``bit varying``), each element of the
    column list is parsed on its own, cut at the tokenizer's top-level commas: one that
    does not parse is left out, and said when it had a constraint or a default."""
    try:
        tree = _one(ddl, dialect, what, "TABLE")
    except TranslationError as exc:
        creates = _creates(ddl, dialect, what)
        if len(creates) != 1:
            raise
        first = exc
    else:
        if not isinstance(tree.this, exp.Schema):
            raise TranslationError(what, "its SQL has no column list")
        return list(tree.this.expressions), ()
    text = creates[0]
    tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(text)
    pieces: list[tuple[int, int, bool]] = []
    depth, start, flagged = 0, -1, False
    for token in tokens:
        kind = token.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
            if depth == 1:
                start, flagged = token.end + 1, False
                continue
        elif kind == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                pieces.append((start, token.start, flagged))
                break
        elif kind == TokenType.COMMA and depth == 1:
            pieces.append((start, token.start, flagged))
            start, flagged = token.end + 1, False
            continue
        flagged = flagged or (
            depth >= 1 and (kind in _CONSTRAINT_TOKENS or token.text.upper() == "CHECK")
        )
    if not pieces:
        raise first
    items: list[exp.Expression] = []
    lost: list[str] = []
    for begin, end, flagged in pieces:
        piece = text[begin:end].strip()
        try:
            parsed = sqlglot.parse_one(f"CREATE TABLE t ({piece})", read=dialect)
        except (ParseError, TokenError) as exc:
            if flagged:
                lost.append(
                    f"{piece.split()[0]}: its definition does not parse ({_first_line(exc)})"
                )
            continue
        if isinstance(parsed, exp.Create) and isinstance(parsed.this, exp.Schema):
            items.extend(parsed.this.expressions)
    return items, tuple(lost)


def _idents_of(node: exp.ForeignKey) -> tuple[str, ...]:
    return tuple(i.name for i in node.expressions)


def foreign_key_of(sql: str, *, source: Dialect, what: str) -> ForeignKey:
    """The FOREIGN KEY an ``ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY`` statement adds
    (pg_dump's FK CONSTRAINT entry). Raises ``TranslationError`` when it adds no one
    foreign key."""
    for tree in _statements(sql, source, what):
        for fk in tree.find_all(exp.ForeignKey):
            reference = fk.args.get("reference")
            parent = fk.parent
            name = parent.name if isinstance(parent, exp.Constraint) else None
            if isinstance(reference, exp.Reference):
                return _reference(name or None, _idents_of(fk), reference, {})
    raise TranslationError(what, "its SQL adds no FOREIGN KEY")


def unique_of(sql: str, *, source: Dialect, what: str) -> tuple[str | None, tuple[str, ...]]:
    """The name and columns of the UNIQUE constraint an ``ALTER TABLE ... ADD CONSTRAINT
    ... UNIQUE`` statement adds (pg_dump's CONSTRAINT entry). Raises ``TranslationError``
    when it adds no plain UNIQUE constraint (a primary key, an exclusion constraint, one
    with INCLUDE columns or NULLS NOT DISTINCT)."""
    for tree in _statements(sql, source, what):
        for unique in tree.find_all(exp.UniqueColumnConstraint):
            include = unique.args.get("include")
            if any(unique.args.get(k) for k in ("nulls", "index_type", "options")) or (
                include is not None and include.args.get("include")
            ):
                break
            parent = unique.parent
            name = parent.name if isinstance(parent, exp.Constraint) else None
            columns = _idents(unique.this)
            if columns:
                return name or None, columns
    raise TranslationError(what, "its SQL adds no plain UNIQUE constraint SQLite can take")


def foreign_key_sql(fk: ForeignKey, *, table: str) -> str:
    """The ``CONSTRAINT name FOREIGN KEY (...) REFERENCES ...`` clause of ``fk`` (both
    engines' SQL), named as PostgreSQL would name it when it has no name (``table``'s)."""
    name = fk.name or fkey_name(table, fk.columns)
    clause = (
        f"CONSTRAINT {quote_ident(name)} FOREIGN KEY ("
        + ", ".join(quote_ident(c) for c in fk.columns)
        + f") REFERENCES {quote_ident(fk.table)}"
    )
    if fk.ref_columns:
        clause += " (" + ", ".join(quote_ident(c) for c in fk.ref_columns) + ")"
    return " ".join([clause, *fk.actions])


def fkey_name(table: str, columns: Sequence[str]) -> str:
    """The name PostgreSQL gives a foreign key of ``table`` on ``columns``."""
    name = "_".join((table, *columns, "fkey"))
    while len(name.encode()) > _PG_NAME_BYTES:
        name = name[:-1]
    return name
