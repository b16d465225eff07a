"""User modules: INMODs that give records (TPump's codes 0-5) and output modules that take
an export's rows (codes 6, 7, 5), driven the same way whatever their form.

A module is named ``module:Name`` and written in either form:

- a *class* with async methods: ``initialize(parms)``, ``read() -> bytes | (bytes, seq) |
  None``, ``checkpoint() -> bytes``, ``reposition(info)``, ``close()`` (and, optionally,
  ``read_many(limit) -> list[bytes]``: up to ``limit`` records per call); an output module
  has ``initialize(parms)``, ``receive(record)`` and ``close()``;
- the *classic single entry point*, a function ``f(code, buffer, parms)`` (sync or async)
  that reads the entry code and the buffer and fills ``buffer.return_code``,
  ``buffer.length``, ``buffer.body`` and ``buffer.sequence``, as TPump calls an INMOD.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from pumpkit.core.inmod import Call, EntryCode, Record, Reply, encode_parms
from pumpkit.errors import InmodError, UsageError
from pumpkit.io.usercode import load_object

__all__ = (
    "ClassDriver",
    "Driver",
    "FunctionDriver",
    "InmodBuffer",
    "Receiver",
    "make_driver",
)

_READS = (EntryCode.FIRST, EntryCode.NEXT)


@dataclass
class InmodBuffer:
    """What the classic entry point reads and fills, as TPump's INMOD interface has it."""

    return_code: int = 0
    length: int = 0
    body: bytes | bytearray = b""
    sequence: int = 0


# --- driving a module ----------------------------------------------------------------------


class Driver:
    """Makes one call of the protocol to a module and returns its reply."""

    can_read_many = False

    async def call(self, call: Call) -> Reply:
        raise NotImplementedError

    async def read_many(self, limit: int) -> list[bytes]:
        raise NotImplementedError


class ClassDriver(Driver):
    """A module written as a class with async methods."""

    def __init__(self, module: Any, parms: str) -> None:
        self.module = module
        self.parms = parms
        self.can_read_many = callable(getattr(module, "read_many", None))
        self._initialized = False

    async def _initialize(self) -> None:
        if not self._initialized:
            await self.module.initialize(self.parms)
            self._initialized = True

    async def call(self, call: Call) -> Reply:
        code = call.code
        try:
            if code == EntryCode.FIRST:
                await self._initialize()
                return await self._read()
            if code == EntryCode.NEXT:
                return await self._read()
            if code in (EntryCode.CLIENT_RESTART, EntryCode.DATABASE_FAILURE):
                await self._initialize()  # a restarted client has a new module
                reposition = getattr(self.module, "reposition", None)
                if reposition is None:
                    return Reply(1)  # it cannot reposition: the job must end
                await reposition(call.buffer)
                return Reply(0)
            if code == EntryCode.CHECKPOINT:
                checkpoint = getattr(self.module, "checkpoint", None)
                if checkpoint is None:
                    return Reply(1)
                info = await checkpoint()
                return Reply(0, len(info), bytes(info))
            if code == EntryCode.RECEIVE_INIT:
                await self._initialize()
                return Reply(0)
            if code == EntryCode.RECEIVE_NEXT:
                await self.module.receive(call.buffer)
                return Reply(0)
            if code == EntryCode.END:
                close = getattr(self.module, "close", None)
                if close is not None:
                    await close()
                self._initialized = False
                return Reply(0)
        except NotImplementedError:
            return Reply(1)
        raise InmodError(f"entry code {code.value} is not for an input module")

    async def _read(self) -> Reply:
        item = await self.module.read()
        if item is None:
            return Reply(1)
        if isinstance(item, Record):
            return Reply(0, item.length, item.body, item.sequence)
        if isinstance(item, tuple):
            body, sequence = item
            return Reply(0, len(body), bytes(body), int(sequence))
        return Reply(0, len(item), bytes(item))

    async def read_many(self, limit: int) -> list[bytes]:
        return list(await self.module.read_many(limit))


class FunctionDriver(Driver):
    """A module written as TPump's single entry point ``f(code, buffer, parms)``."""

    def __init__(self, function: Callable[..., Any], parms: str) -> None:
        self.function = function
        self.parms = encode_parms(parms)

    async def call(self, call: Call) -> Reply:
        buffer = InmodBuffer(length=len(call.buffer), body=bytearray(call.buffer))
        result = self.function(int(call.code), buffer, self.parms)
        if inspect.isawaitable(result):
            await result
        sequence = buffer.sequence or None
        if call.code not in (*_READS, EntryCode.CHECKPOINT):
            # Codes 2, 4, 5 expect nothing back: what is left in the buffer is ours.
            return Reply(buffer.return_code, 0, b"", sequence)
        length = buffer.length
        body = (
            bytes(buffer.body[:length]) if 0 <= length <= len(buffer.body) else bytes(buffer.body)
        )
        return Reply(buffer.return_code, length, body, sequence)


def make_driver(spec: str, parms: str) -> Driver:
    """A driver for the module ``spec`` names: a class is instantiated, a function is the
    classic entry point."""
    obj = load_object(spec)
    if inspect.isclass(obj):
        return ClassDriver(obj(), parms)
    if callable(obj):
        return FunctionDriver(obj, parms)
    raise UsageError(f"{spec!r} is neither a class nor a function")


class Receiver:
    """An export's output module (OUTMOD): code 6 once, code 7 per row, code 5 at the end.

    Each record is one row as msgpack ``[table, [value, ...]]``, so one module can take the
    rows of every table. A non-zero return code ends the export with an error.
    """

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._rows = msgspec.msgpack.Decoder(list[tuple])  # type: ignore[type-arg]
        self._encoder = msgspec.msgpack.Encoder()
        self.sent = 0

    async def start(self) -> None:
        await self._call(Call(EntryCode.RECEIVE_INIT), "initialise")

    async def send(self, table: str, payload: bytes) -> None:
        """Every row of one TABLE_DATA frame's uncompressed payload, in order."""
        for row in self._rows.decode(payload):
            await self._call(
                Call(EntryCode.RECEIVE_NEXT, self._encoder.encode((table, row))),
                f"a row of {table!r}",
            )
            self.sent += 1

    async def end(self) -> None:
        await self._call(Call(EntryCode.END), "end")

    async def _call(self, call: Call, what: str) -> None:
        reply = await self.driver.call(call)
        if reply.return_code:
            raise InmodError(
                f"the output module answered code {call.code.value} ({what}) with return code"
                f" {reply.return_code}: the export ends"
            )
