"""The user's own code that a job calls by name (``module:function``): REMAP_DATA functions,
and the loading of INMODs and output modules. Importing them is I/O (a module may run code
when imported), so it lives here, not in core."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from pumpkit.core.catalog import TableDef
from pumpkit.errors import PumpkitError, UsageError

__all__ = ("BatchRemap", "Rows", "batch_remap", "load_object", "remapper")


def load_object(spec: str) -> Any:
    """``module:Name`` -> the object; raises ``UsageError`` naming what is missing."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"{spec!r} is not module:Name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r} for {spec!r}: {exc}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise UsageError(f"module {module_name!r} has no {name!r}") from None


Rows = list[tuple[Any, ...]]


def batch_remap(function: Callable[[list[Any]], list[Any]]) -> Callable[[list[Any]], list[Any]]:
    """Mark a REMAP_DATA function as taking a whole batch column (a list of values) and
    returning a list of as many values; unmarked functions are called once per value."""
    function.pumpkit_batch = True  # type: ignore[attr-defined]
    return function


class BatchRemap:
    """REMAP_DATA of one table: ``column -> function``, applied to batches of rows."""

    def __init__(self, table: str, columns: Sequence[str], functions: dict[str, str]) -> None:
        self.table = table
        self._plan: list[tuple[int, str, Callable[..., Any], bool]] = []
        folded = [c.casefold() for c in columns]
        for column, spec in functions.items():
            if column.casefold() not in folded:
                raise UsageError(
                    f"REMAP_DATA names column {column!r} of table {table!r}, which it does not"
                    f" have (columns: {', '.join(columns)})"
                )
            function = load_object(spec)
            if not callable(function):
                raise UsageError(f"REMAP_DATA {spec!r} is not a function")
            batch = bool(getattr(function, "pumpkit_batch", False))
            self._plan.append((folded.index(column.casefold()), spec, function, batch))

    def __bool__(self) -> bool:
        return bool(self._plan)

    def __call__(self, rows: Rows) -> Rows:
        if not self._plan or not rows:
            return rows
        columns = [list(c) for c in zip(*rows, strict=True)]
        for index, spec, function, batch in self._plan:
            values = columns[index]
            try:
                out = function(values) if batch else [function(v) for v in values]
            except PumpkitError:
                raise
            except Exception as exc:
                raise UsageError(
                    f"REMAP_DATA {spec} failed on table {self.table!r}: {type(exc).__name__}: {exc}"
                ) from None
            if not isinstance(out, list) or len(out) != len(values):
                raise UsageError(
                    f"REMAP_DATA {spec} on table {self.table!r} must return a list of"
                    f" {len(values)} values"
                )
            columns[index] = out
        return list(zip(*columns, strict=True))


def remapper(table: TableDef, functions: dict[str, str]) -> BatchRemap | None:
    """REMAP_DATA of ``table`` (``column -> module:function``), or None without any."""
    return BatchRemap(table.name, table.columns, functions) if functions else None
