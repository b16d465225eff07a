"""What a PostgreSQL statement says, read by PostgreSQL's own parser (pglast, libpg_query).

Two uses, both on SQL that comes from a dump (a stranger's input) or that pumpkit writes:

* :func:`remap_sql` — REMAP_SCHEMA and REMAP_TABLE on the SQL of archive entries (what
  :func:`pumpkit.io.connectors.postgres.tools.script` gives for them): each statement is parsed, the
  names in its tree are changed, and the tree is printed back. Never string replacement: a
  schema called ``app`` is not the ``app`` in ``'happy'`` or in a column ``app``.
* :func:`one_statement_of` — the check that SQL is exactly one statement, of the declared
  kind, creating the declared schema-qualified name; anything else is refused.

What the renaming changes
-------------------------
Schemas (``schemas={"app": "app2"}``): every schema-qualified name in the tree — relations
(``RangeVar``), types, functions, operators (``OPERATOR(app.=~=)``), collations, operator
classes, text-search objects, statistics, the qualified names in COMMENT and GRANT,
``OWNED BY``, schema names themselves (``CREATE SCHEMA``, ``GRANT ... ON SCHEMA``,
``ALTER DEFAULT PRIVILEGES IN SCHEMA``, ``CREATE EXTENSION ... WITH SCHEMA``, publications'
``TABLES IN SCHEMA``), column references qualified by schema, and the literals cast to
``regclass``, ``regtype``, ``regproc`` and ``regnamespace`` (``nextval('app.s'::regclass)``).
Function bodies in the SQL-standard form (``RETURN ...``, ``BEGIN ATOMIC ... END``) are part
of the tree, so they are renamed too.

Tables (``tables={("app", "orders"): "orders2"}``; the schema map applies after): the table
wherever a relation is named, its row type, COMMENT and SECURITY LABEL names
(``app.orders``, ``app.orders.column``, ``CONSTRAINT c ON app.orders``), ``OWNED BY``,
``regclass`` literals, and column references: a renamed table in a FROM list gets its old
name as alias when it had none (``FROM app.orders2 orders``), so that ``orders.id`` in a
view still means what it meant.

What it cannot rewrite
----------------------
* Function and procedure bodies given as strings (``AS $$ ... $$``: every plpgsql body, and
  SQL bodies in the old form): they are only text to the parser, and dynamic SQL in them
  could build any name. They keep the old names.
* Any other name inside a string: ``to_regclass('app.t')``, ``regprocedure`` and
  ``regoper`` literals, ``SET search_path = app`` as a function's setting, option values of
  foreign tables (``OPTIONS (schema_name 'app')``).
* Names derived from a table's name (its constraints, indexes, sequences, triggers keep
  theirs, as Data Pump's REMAP_TABLE does); and comments, which the printed SQL drops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, GrantTargetType, ObjectType, PublicationObjSpecType
from pglast.parser import ParseError
from pglast.stream import RawStream

from pumpkit.errors import DumpError, InvalidArgumentError

__all__ = ("KINDS", "one_statement_of", "remap_sql", "split_script")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _names(node: Any) -> tuple[str, ...] | None:
    """The strings of a tuple of ``String`` nodes (a qualified name), else ``None``."""
    if isinstance(node, tuple) and node and all(isinstance(n, ast.String) for n in node):
        return tuple(n.sval for n in node)
    return None


def _strings(names: tuple[str, ...]) -> tuple[ast.String, ...]:
    return tuple(ast.String(sval=n) for n in names)


def split_script(sql: str) -> list[tuple[bool, str]]:
    """``sql`` cut into pieces ``(is_meta_command, text)``: psql meta-commands (a line that
    starts with a backslash, such as pg_restore's ``\\restrict``) apart from the SQL between
    them, which the parser reads."""
    pieces: list[tuple[bool, str]] = []
    sql_lines: list[str] = []
    for line in sql.splitlines(keepends=True):
        if line.startswith("\\"):
            if sql_lines:
                pieces.append((False, "".join(sql_lines)))
                sql_lines = []
            pieces.append((True, line.rstrip("\n")))
        else:
            sql_lines.append(line)
    if sql_lines:
        pieces.append((False, "".join(sql_lines)))
    return pieces


def _print(stmt: Any) -> str:
    # special_functions: AT TIME ZONE, EXTRACT, SUBSTRING... come back in their SQL syntax,
    # not as the function calls the parser made of them; a view stored from either prints
    # differently.
    return str(RawStream(special_functions=True)(stmt))


def _nodes(node: Any) -> Any:
    """Every node under ``node``, itself first."""
    if isinstance(node, tuple):
        for item in node:
            yield from _nodes(item)
    elif isinstance(node, ast.Node):
        yield node
        for attr in node:
            yield from _nodes(getattr(node, attr))


def _parse(sql: str) -> tuple[Any, ...]:
    try:
        return tuple(s.stmt for s in parse_sql(sql))
    except ParseError as exc:
        raise DumpError(f"PostgreSQL's parser refuses the statement: {exc}") from None


# --- renaming --------------------------------------------------------------------------------

# Name lists that are no qualified names: text-search token types, column references (they
# have their own rule), and the relation lists of a few statements that hold plain names.
_NOT_QUALIFIED: Final = {
    ("AlterTSConfigurationStmt", "tokentype"),
    ("ColumnRef", "fields"),
    ("IndexElem", "indexcolname"),
}
_REG_TYPES: Final = {"regclass", "regtype", "regproc", "regnamespace"}
_RELATION_KINDS: Final = {
    ObjectType.OBJECT_TABLE,
    ObjectType.OBJECT_VIEW,
    ObjectType.OBJECT_MATVIEW,
    ObjectType.OBJECT_FOREIGN_TABLE,
    ObjectType.OBJECT_SEQUENCE,
    ObjectType.OBJECT_TYPE,
}
_ON_TABLE_KINDS: Final = {
    ObjectType.OBJECT_COLUMN,
    ObjectType.OBJECT_TABCONSTRAINT,
    ObjectType.OBJECT_TRIGGER,
    ObjectType.OBJECT_POLICY,
    ObjectType.OBJECT_RULE,
}
# Where a RangeVar is one of the relations a query reads (and so may be named by columns).
_FROM_FIELDS: Final = {
    ("SelectStmt", "fromClause"),
    ("JoinExpr", "larg"),
    ("JoinExpr", "rarg"),
    ("UpdateStmt", "fromClause"),
    ("DeleteStmt", "usingClause"),
}


class _Renamer:
    def __init__(self, schemas: Mapping[str, str], tables: Mapping[tuple[str, str], str]) -> None:
        self.schemas = dict(schemas)
        self.tables = dict(tables)
        # Per statement: the column qualifiers to rename (a renamed table named without an
        # alias is how its columns are qualified), and those that would be ambiguous.
        self.qualifiers: dict[str, str] = {}
        self.aliased: set[str] = set()

    def statement(self, stmt: Any) -> None:
        """Rename in one statement."""
        found: dict[str, set[str]] = {}
        aliases: set[str] = set()
        for node in _nodes(stmt):
            if isinstance(node, ast.Alias) and node.aliasname:
                aliases.add(node.aliasname)
            elif (
                isinstance(node, ast.RangeVar)
                and node.alias is None
                and node.schemaname is not None
                and node.relname is not None
                and (node.schemaname, node.relname) in self.tables
            ):
                found.setdefault(node.relname, set()).add(
                    self.tables[(node.schemaname, node.relname)]
                )
        self.qualifiers = {
            old: next(iter(new))
            for old, new in found.items()
            if len(new) == 1 and old not in aliases
        }
        # Where a qualifier cannot simply follow the rename, the relation keeps its old
        # name as an alias instead.
        self.aliased = set(found) - set(self.qualifiers)
        self.walk(stmt)

    def schema(self, name: str | None) -> str:
        return self.schemas.get(name or "", name or "")

    def relation(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """A qualified relation name [catalog.]schema.table, renamed."""
        if len(names) < 2:
            return names
        *head, schema, table = names
        table = self.tables.get((schema, table), table)
        return (*head, self.schema(schema), table)

    def table_only(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """schema.table[.more] with the table renamed and the schema not (yet)."""
        if len(names) < 2:
            return names
        return (names[0], self.tables.get((names[0], names[1]), names[1]), *names[2:])

    def qualified(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """Any other schema-qualified name: only its schema changes."""
        if len(names) < 2:
            return names
        return (self.schema(names[0]), *names[1:])

    # -- the walk

    def walk(self, node: Any, where: tuple[str, str] | None = None) -> None:
        if isinstance(node, tuple):
            for item in node:
                self.walk(item, where)
            return
        if not isinstance(node, ast.Node):
            return
        kind = type(node).__name__
        special = getattr(self, "_" + kind, None)
        # A node's own rule renames what it knows and says which fields it did.
        done: set[str] = (special(node, where) or set()) if special is not None else set()
        for attr in node:
            value = getattr(node, attr)
            names = _names(value)
            if names is not None:
                if attr not in done and (kind, attr) not in _NOT_QUALIFIED and len(names) >= 2:
                    renamed = (
                        self.relation(names)
                        if (kind, attr) == ("TypeName", "names")
                        else self.qualified(names)
                    )
                    if renamed != names:
                        setattr(node, attr, _strings(renamed))
                continue
            self.walk(value, (kind, attr))

    # -- the nodes with rules of their own: each renames what it knows and returns the
    # fields it did, which the generic rule then leaves alone. (``node: Any``: pglast's
    # stubs type every field optional, and these rules test what they touch.)

    def _RangeVar(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        if node.schemaname is None:
            return None
        old = node.relname
        new = self.tables.get((node.schemaname, old))
        if new is not None:
            node.relname = new
            if where in _FROM_FIELDS and node.alias is None and old in self.aliased:
                node.alias = ast.Alias(aliasname=old)
        node.schemaname = self.schema(node.schemaname)
        return None

    def _ColumnRef(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        fields: tuple[Any, ...] = tuple(node.fields or ())
        if len(fields) == 2 and isinstance(fields[0], ast.String):
            new = self.qualifiers.get(fields[0].sval or "")
            if new is not None:  # orders.id, where FROM names app.orders without an alias
                node.fields = (ast.String(sval=new), fields[1])
            return None
        if len(fields) < 3 or not all(isinstance(f, ast.String) for f in fields[-3:-1]):
            return None
        *head, schema, table, column = fields
        new = self.tables.get((schema.sval, table.sval))
        if new is not None and table.sval in self.aliased:
            node.fields = (table, column)  # the relation is in FROM under its old name
            return None
        renamed = ast.String(sval=new) if new is not None else table
        node.fields = (*head, ast.String(sval=self.schema(schema.sval)), renamed, column)
        return None

    def _TypeCast(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        type_names = _names(node.typeName.names if node.typeName else None) or ()
        arg = node.arg
        if not type_names or type_names[-1] not in _REG_TYPES:
            return None
        if not (isinstance(arg, ast.A_Const) and isinstance(arg.val, ast.String)):
            return None
        names = _identifier_list(arg.val.sval or "")
        if names is None:
            return None
        if type_names[-1] == "regnamespace":
            renamed = (self.schema(names[0]),) if len(names) == 1 else names
        elif len(names) < 2:
            return None
        elif type_names[-1] == "regclass":
            renamed = self.relation(names)
        else:
            renamed = self.qualified(names)
        if renamed != names:
            arg.val = ast.String(sval=".".join(_quote(n) for n in renamed))
        return None

    def _CommentStmt(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        return self._on_object(node)

    def _SecLabelStmt(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        return self._on_object(node)

    def _on_object(self, node: Any) -> set[str] | None:
        if node.objtype == ObjectType.OBJECT_SCHEMA and isinstance(node.object, ast.String):
            node.object = ast.String(sval=self.schema(node.object.sval))
            return None
        names = _names(node.object)
        if names is not None and (
            (node.objtype in _RELATION_KINDS and len(names) == 2)
            or (node.objtype in _ON_TABLE_KINDS and len(names) == 3)
        ):
            node.object = _strings(self.table_only(names))
        return None  # the generic rule renames the schema after

    def _AlterOwnerStmt(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        if node.objectType == ObjectType.OBJECT_SCHEMA and isinstance(node.object, ast.String):
            node.object = ast.String(sval=self.schema(node.object.sval))
        return None

    def _schema_list(self, items: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            ast.String(sval=self.schema(o.sval)) if isinstance(o, ast.String) else o for o in items
        )

    def _GrantStmt(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        if node.objects and (
            node.objtype == ObjectType.OBJECT_SCHEMA
            or node.targtype == GrantTargetType.ACL_TARGET_ALL_IN_SCHEMA
        ):
            node.objects = self._schema_list(node.objects)
            return {"objects"}
        return None

    def _DropStmt(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        if node.removeType == ObjectType.OBJECT_SCHEMA and node.objects:
            node.objects = self._schema_list(node.objects)
            return {"objects"}
        return None

    def _DefElem(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        if node.defname == "schema" and isinstance(node.arg, ast.String):
            node.arg = ast.String(sval=self.schema(node.arg.sval))  # CREATE EXTENSION
            return {"arg"}
        if node.defname == "schemas" and isinstance(node.arg, tuple):
            node.arg = self._schema_list(node.arg)  # ALTER DEFAULT PRIVILEGES IN SCHEMA
            return {"arg"}
        if node.defname == "owned_by" and (names := _names(node.arg)) and len(names) == 3:
            node.arg = _strings(self.table_only(names))  # the schema: the generic rule
        return None

    def _CreateSchemaStmt(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        if node.schemaname is not None:
            node.schemaname = self.schema(node.schemaname)
        return None

    def _AlterObjectSchemaStmt(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        if node.newschema is not None:
            node.newschema = self.schema(node.newschema)
        return None

    def _PublicationObjSpec(self, node: Any, where: tuple[str, str] | None) -> set[str] | None:
        if node.pubobjtype == PublicationObjSpecType.PUBLICATIONOBJ_TABLES_IN_SCHEMA and node.name:
            node.name = self.schema(node.name)
        return None


def _identifier_list(text: str) -> tuple[str, ...] | None:
    """The parts of a qualified name written as text (``"App"."my seq"``, ``app.s``), read
    by the parser; ``None`` if it is not just a name."""
    try:
        statements = parse_sql(f"SELECT * FROM {text}")
    except ParseError:
        return None
    if len(statements) != 1:
        return None
    select: Any = statements[0].stmt
    if not isinstance(select, ast.SelectStmt) or len(select.fromClause or ()) != 1:
        return None
    rel = (select.fromClause or ())[0]
    if not isinstance(rel, ast.RangeVar) or rel.alias is not None or select.whereClause:
        return None
    return tuple(n for n in (rel.catalogname, rel.schemaname, rel.relname) if n is not None)


def remap_sql(
    sql: str,
    *,
    schemas: Mapping[str, str] | None = None,
    tables: Mapping[tuple[str, str], str] | None = None,
) -> str:
    """``sql`` (statements as pg_dump and pg_restore write them, psql meta-commands allowed
    on lines of their own) with schemas renamed (``schemas``: old name to new) and tables
    renamed (``tables``: ``(schema, old name)`` to the new name in that schema; a schema
    renamed as well applies after). Each statement is printed back on its own, ending with
    ``;``; meta-commands are kept as they are, comments are dropped. See the module's notes
    for what it renames and what it cannot.

    Raises :class:`DumpError` when PostgreSQL's parser refuses the SQL.
    """
    renamer = _Renamer(schemas or {}, tables or {})
    out: list[str] = []
    for meta, text in split_script(sql):
        if meta:
            out.append(text + "\n")
            continue
        for stmt in _parse(text):
            renamer.statement(stmt)
            out.append(_print(stmt) + ";\n")
    return "".join(out)


# --- one statement of the declared kind --------------------------------------------------------


def _rangevar_name(rel: Any) -> tuple[str | None, str] | None:
    if isinstance(rel, ast.RangeVar) and rel.relname:
        return rel.schemaname, rel.relname
    return None


def _list_name(names: Any) -> tuple[str | None, str] | None:
    parts = _names(names)
    if parts is None:
        return None
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return None


def _created(stmt: Any, kind: str) -> tuple[str | None, str] | bool | None:
    """The (schema, name) ``stmt`` creates if it is a statement of ``kind``; ``False`` if it
    is of another kind."""
    if kind == "SCHEMA":
        if isinstance(stmt, ast.CreateSchemaStmt):
            # CREATE SCHEMA s CREATE TABLE ... makes more than the schema.
            return (None, stmt.schemaname or "") if not stmt.schemaElts else False
        return False
    if kind == "TABLE":
        ok = type(stmt) is ast.CreateStmt
        return _rangevar_name(stmt.relation) if ok else False
    if kind == "FOREIGN TABLE":
        ok = isinstance(stmt, ast.CreateForeignTableStmt)
        return _rangevar_name(stmt.base.relation) if ok else False
    if kind == "VIEW":
        return _rangevar_name(stmt.view) if isinstance(stmt, ast.ViewStmt) else False
    if kind == "MATERIALIZED VIEW":
        if isinstance(stmt, ast.CreateTableAsStmt) and stmt.objtype == ObjectType.OBJECT_MATVIEW:
            return _rangevar_name(stmt.into.rel if stmt.into else None)
        return False
    if kind == "SEQUENCE":
        return _rangevar_name(stmt.sequence) if isinstance(stmt, ast.CreateSeqStmt) else False
    if kind in ("FUNCTION", "PROCEDURE"):
        if isinstance(stmt, ast.CreateFunctionStmt) and bool(stmt.is_procedure) == (
            kind == "PROCEDURE"
        ):
            return _list_name(stmt.funcname)
        return False
    if kind == "INDEX":
        if isinstance(stmt, ast.IndexStmt) and stmt.idxname:
            table = _rangevar_name(stmt.relation)
            return (table[0], stmt.idxname) if table else None
        return False
    if kind == "TRIGGER":
        if isinstance(stmt, ast.CreateTrigStmt) and stmt.trigname:
            table = _rangevar_name(stmt.relation)
            return (table[0], stmt.trigname) if table else None
        return False
    if kind == "CONSTRAINT":
        if isinstance(stmt, ast.AlterTableStmt) and len(stmt.cmds or ()) == 1:
            cmd = (stmt.cmds or ())[0]
            if (
                isinstance(cmd, ast.AlterTableCmd)
                and cmd.subtype == AlterTableType.AT_AddConstraint
                and isinstance(cmd.def_, ast.Constraint)
                and cmd.def_.conname
            ):
                table = _rangevar_name(stmt.relation)
                return (table[0], cmd.def_.conname) if table else None
        return False
    if kind == "TYPE":
        if isinstance(stmt, ast.CreateEnumStmt | ast.CreateRangeStmt):
            return _list_name(stmt.typeName)
        if isinstance(stmt, ast.CompositeTypeStmt):
            return _rangevar_name(stmt.typevar)
        if isinstance(stmt, ast.DefineStmt) and stmt.kind == ObjectType.OBJECT_TYPE:
            return _list_name(stmt.defnames)
        return False
    if kind == "DOMAIN":
        return _list_name(stmt.domainname) if isinstance(stmt, ast.CreateDomainStmt) else False
    raise InvalidArgumentError(f"kind {kind!r} is not one of {', '.join(KINDS)}")


#: The kinds :func:`one_statement_of` knows. INDEX, TRIGGER and CONSTRAINT are named by the
#: schema of their table (where PostgreSQL puts them) and their own name.
KINDS: Final = (
    "SCHEMA",
    "TABLE",
    "FOREIGN TABLE",
    "VIEW",
    "MATERIALIZED VIEW",
    "SEQUENCE",
    "FUNCTION",
    "PROCEDURE",
    "INDEX",
    "TRIGGER",
    "CONSTRAINT",
    "TYPE",
    "DOMAIN",
)


def one_statement_of(sql: str, kind: str, name: tuple[str, str] | str) -> Any:
    """Check that ``sql`` is exactly one statement, a CREATE of ``kind`` (one of
    :data:`KINDS`; CONSTRAINT is ``ALTER TABLE ... ADD CONSTRAINT`` and nothing else),
    creating ``name``: ``(schema, name)``, compared exactly (as the catalog spells them),
    with the schema written in the statement (an unqualified name would go wherever the
    search_path says); a plain string for a SCHEMA. Returns the parsed statement (a pglast
    node).

    Raises :class:`DumpError` saying what the SQL is instead (more statements, another
    kind, another name, no schema), :class:`InvalidArgumentError` for an unknown kind.
    """
    if kind not in KINDS:
        raise InvalidArgumentError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    pieces = split_script(sql)
    if any(meta for meta, _ in pieces):
        raise DumpError(f"the SQL for {kind} {name!r} holds a psql meta-command")
    statements = _parse(sql)
    if len(statements) != 1:
        raise DumpError(f"the SQL for {kind} {name!r} must be one statement, not {len(statements)}")
    stmt = statements[0]
    created = _created(stmt, kind)
    if created is False:
        raise DumpError(
            f"the SQL for {kind} {name!r} is a {type(stmt).__name__}, not a CREATE {kind}"
        )
    if created is None or created is True:
        raise DumpError(f"the SQL for {kind} {name!r} does not say what it creates")
    want: tuple[str | None, str] = (None, name) if isinstance(name, str) else name
    if kind != "SCHEMA" and created[0] is None:
        raise DumpError(
            f"the SQL for {kind} {name!r} does not name the schema: it would create"
            f" {created[1]!r} wherever the search_path points"
        )
    if created != want:
        shown = ".".join(p for p in created if p is not None)
        raise DumpError(f"the SQL for {kind} {name!r} creates {shown!r} instead")
    return stmt
