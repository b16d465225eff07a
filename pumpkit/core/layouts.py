"""Record layouts: how a load turns a record body into a row (TPump's LAYOUT).

``VARTEXT`` is delimited text (TPump's VARTEXT): fields separated by one delimiter, an empty
field is NULL, as in TPump. ``JSON`` is one JSON array (fields in column order) or object
(fields by column name) per record. ``MSGPACK`` is one msgpack array or map per record. A
user decoder (``module:function``) takes the body and returns the row.

Decoders work on whole batches where they can (one C call per batch for msgpack), and raise
``LayoutError`` naming the record's sequence number and what is wrong with it; the loader
puts such a record in the error table and goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from pumpkit.errors import LayoutError

__all__ = ("LAYOUTS", "Layout", "LayoutError", "make_layout")

LAYOUTS = ("VARTEXT", "JSON", "MSGPACK")

Row = tuple[Any, ...]


class Layout:
    """Decodes record bodies into rows of ``columns``."""

    def __init__(
        self,
        kind: str,
        columns: Sequence[str],
        *,
        delimiter: str = "|",
        decoder: Callable[[bytes], Sequence[Any]] | None = None,
        encoding: str = "utf-8",
    ) -> None:
        self.kind = kind.upper()
        self.columns = tuple(columns)
        self.delimiter = delimiter
        self.encoding = encoding
        self._user = decoder
        self._width = len(self.columns)
        if self.kind not in (*LAYOUTS, "USER"):
            raise LayoutError(f"layout {kind!r} is unknown; layouts: {', '.join(LAYOUTS)}")
        if self.kind == "VARTEXT" and len(delimiter) != 1:
            raise LayoutError(f"a VARTEXT delimiter is one character, not {delimiter!r}")
        self._msgpack = msgspec.msgpack.Decoder()

    def decode(self, body: bytes) -> Row:
        """One record's row; raises ``LayoutError``."""
        if self.kind == "VARTEXT":
            try:
                text = body.decode(self.encoding)
            except UnicodeDecodeError as exc:
                raise LayoutError(f"not {self.encoding} text: {exc}") from None
            if text.endswith("\n"):
                text = text[:-1].removesuffix("\r")
            fields = text.split(self.delimiter)
            return self._fit([None if f == "" else f for f in fields])
        if self.kind == "JSON":
            try:
                value = json.loads(body)
            except ValueError as exc:
                raise LayoutError(f"not JSON: {exc}") from None
            return self._fit(value)
        if self.kind == "MSGPACK":
            try:
                value = self._msgpack.decode(body)
            except msgspec.DecodeError as exc:
                raise LayoutError(f"not msgpack: {exc}") from None
            return self._fit(value)
        assert self._user is not None
        try:
            return self._fit(self._user(body))
        except LayoutError:
            raise
        except Exception as exc:
            raise LayoutError(f"the decoder refused it: {type(exc).__name__}: {exc}") from None

    def decode_many(self, bodies: Sequence[bytes]) -> tuple[list[Any], list[tuple[int, str]]]:
        """The rows of many records, and ``(index, reason)`` of those that do not fit.

        VARTEXT is decoded for the whole batch at once (one decode, one split per record, in
        C); a row is then a list. Other layouts go record by record.
        """
        if self.kind != "VARTEXT":
            return self._one_by_one(bodies)
        try:
            text = b"".join(bodies).decode(self.encoding)
        except UnicodeDecodeError:
            return self._one_by_one(bodies)  # find the records at fault
        lines = text.split("\n")
        if len(lines) != len(bodies) + 1 or lines[-1]:
            return self._one_by_one(bodies)  # a record without its line end, or with two
        del lines[-1]
        cr = "\r" in text
        rows: list[Any] = []
        bad: list[tuple[int, str]] = []
        width, delimiter = self._width, self.delimiter
        for i, line in enumerate(lines):
            fields = (line[:-1] if cr and line.endswith("\r") else line).split(delimiter)
            if len(fields) != width:
                bad.append((i, f"{len(fields)} fields where the table has {width} columns"))
                continue
            rows.append([None if f == "" else f for f in fields] if "" in fields else fields)
        return rows, bad

    def _one_by_one(self, bodies: Sequence[bytes]) -> tuple[list[Any], list[tuple[int, str]]]:
        rows: list[Any] = []
        bad: list[tuple[int, str]] = []
        for i, body in enumerate(bodies):
            try:
                rows.append(self.decode(body))
            except LayoutError as exc:
                bad.append((i, str(exc)))
        return rows, bad

    def _fit(self, value: object) -> Row:
        if isinstance(value, dict):
            unknown = set(value) - set(self.columns)
            if unknown:
                raise LayoutError(f"unknown field(s) {sorted(unknown)!r}")
            return tuple(value.get(c) for c in self.columns)
        if not isinstance(value, (list, tuple)):
            raise LayoutError(f"a record is an array or an object, not {type(value).__name__}")
        if len(value) != self._width:
            raise LayoutError(f"{len(value)} fields where the table has {self._width} columns")
        return tuple(value)


def make_layout(
    spec: str,
    columns: Sequence[str],
    *,
    delimiter: str = "|",
    load: Callable[[str], Callable[[bytes], Sequence[Any]]] | None = None,
) -> Layout:
    """A layout from its name, or from ``module:function`` (loaded by ``load``)."""
    if ":" in spec:
        if load is None:
            raise LayoutError(f"layout {spec!r} names a decoder, and none can be loaded here")
        return Layout("USER", columns, decoder=load(spec))
    return Layout(spec, columns, delimiter=delimiter)
