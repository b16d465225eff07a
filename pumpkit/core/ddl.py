"""Small, careful edits of CREATE statements: rename what they create, retarget their ON
table, leave out storage clauses. Pure text work over a tokenizer that knows SQL's quoting
(``"x"``, ``[x]``, ```x```, ``'text'``) and comments, so a name inside a string or a comment
is never touched. SQLite keeps each object's CREATE text as written; these edits keep the
rest of it byte for byte.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = (
    "Token",
    "created_name",
    "omit_storage",
    "quote_ident",
    "rename_created",
    "retarget_on",
    "tokens",
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<ident>"(?:[^"]|"")*"|\[[^\]]*\]|`(?:[^`]|``)*`)
  | (?P<string>'(?:[^']|'')*')
  | (?P<word>[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


class Token(NamedTuple):
    kind: str  # ident (quoted), word, string, other
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """The identifier this token spells (quotes removed)."""
        if self.kind != "ident":
            return self.text
        body = self.text[1:-1]
        if self.text[0] == '"':
            return body.replace('""', '"')
        if self.text[0] == "`":
            return body.replace("``", "`")
        return body


def tokens(sql: str) -> list[Token]:
    """The tokens of ``sql`` without whitespace and comments."""
    found = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "other"
        if kind in ("space", "comment"):
            continue
        found.append(Token(kind, match.group(), match.start(), match.end()))
    return found


def quote_ident(name: str) -> str:
    """An SQL identifier in double quotes, inner quotes doubled (SQLite and PostgreSQL alike)."""
    return '"' + name.replace('"', '""') + '"'


def _name_index(toks: list[Token]) -> int:
    """The index of the created object's name token in a CREATE statement (after an optional
    ``schema.``); raises ``ValueError`` if this is not one."""
    i = 0
    if not toks or toks[0].upper != "CREATE":
        raise ValueError("not a CREATE statement")
    i = 1
    while i < len(toks) and toks[i].upper in ("TEMP", "TEMPORARY", "UNIQUE", "VIRTUAL"):
        i += 1
    if i >= len(toks) or toks[i].upper not in ("TABLE", "INDEX", "VIEW", "TRIGGER"):
        raise ValueError("not a CREATE TABLE, INDEX, VIEW or TRIGGER statement")
    i += 1
    if [t.upper for t in toks[i : i + 3]] == ["IF", "NOT", "EXISTS"]:
        i += 3
    if i + 2 < len(toks) and toks[i + 1].text == ".":
        i += 2
    if i >= len(toks):
        raise ValueError("CREATE statement without a name")
    return i


def created_name(sql: str) -> str:
    toks = tokens(sql)
    return toks[_name_index(toks)].name


def _replace(sql: str, token: Token, new: str) -> str:
    return sql[: token.start] + quote_ident(new) + sql[token.end :]


def rename_created(sql: str, new: str) -> str:
    """``sql`` creating ``new`` instead (a ``schema.`` prefix is dropped with the old name:
    the statement is replayed in the target's own schema)."""
    toks = tokens(sql)
    i = _name_index(toks)
    start = toks[i - 2] if i >= 2 and toks[i - 1].text == "." else toks[i]
    return sql[: start.start] + quote_ident(new) + sql[toks[i].end :]


def retarget_on(sql: str, new_table: str) -> str:
    """An index's or trigger's ``ON table`` pointed at ``new_table``."""
    toks = tokens(sql)
    i = _name_index(toks) + 1
    while i < len(toks) and toks[i].upper != "ON":
        i += 1
    if i + 1 >= len(toks):
        raise ValueError("no ON clause")
    target = i + 1
    if target + 2 < len(toks) and toks[target + 1].text == ".":
        return sql[: toks[target].start] + quote_ident(new_table) + sql[toks[target + 2].end :]
    return _replace(sql, toks[target], new_table)


def omit_storage(sql: str) -> str:
    """A CREATE TABLE without its table options (``WITHOUT ROWID``, ``STRICT``): the storage
    clauses of SQLite. Other statements come back unchanged."""
    toks = tokens(sql)
    try:
        i = _name_index(toks)
    except ValueError:
        return sql
    if toks[1].upper not in ("TABLE", "TEMP", "TEMPORARY") or i + 1 >= len(toks):
        return sql
    depth = 0
    close = None
    for k in range(i + 1, len(toks)):
        if toks[k].text == "(":
            depth += 1
        elif toks[k].text == ")":
            depth -= 1
            if depth == 0:
                close = k
                break
    if close is None or close + 1 >= len(toks):
        return sql
    options = [t.upper for t in toks[close + 1 :] if t.text != ","]
    if not options or any(o not in ("WITHOUT", "ROWID", "STRICT") for o in options):
        return sql
    return sql[: toks[close].end]
