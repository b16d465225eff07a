"""The INMOD protocol (Teradata TPump's input-module interface), loader side. Every rule of
the protocol lives in this file.

Theory of operation
-------------------
The loader calls the user's input module with an *entry code*; the module answers with a
*return code*, a *length*, a *body* and a *sequence number*:

====  ======================================================================  ===============
code  the loader says                                                          module returns
====  ======================================================================  ===============
0     first call: initialise, then return the first record                    a record
1     next call                                                                a record
2     the client restarted: reposition to the checkpoint given in the buffer  nothing
3     a checkpoint was written: return <= 100 bytes to reposition here         checkpoint info
4     the database failed: reposition to the checkpoint given in the buffer   nothing
5     the job ended: clean up                                                  nothing
6     (receiving side) initialise, get ready to receive records               nothing
7     (receiving side) the next record is in the buffer                       nothing
====  ======================================================================  ===============

A return code of 0 means "here is a record" on a read and "done" on anything else; non-zero
means end of file on a read and, on anything else, an error that ends the job. A length of 0
on a read is end of file too. A body is at most 63,488 bytes; checkpoint information at most
100. The seed's restart rules: a client restart before the first checkpoint is answered with
code 0 again (re-initialise), after it with code 2 and the saved bytes; a database failure
before the first checkpoint with code 5 then 0, after it with code 4 and the saved bytes. A
module that cannot reposition must end the job (non-zero) on 2, 3 or 4 rather than load data
twice.

:class:`LoaderProtocol` is the loader's side as a pure state machine: given what happened
(start, restart, checkpoint due, database failure, end of job) it says which calls to make
(:class:`Call`), and it checks every reply (:meth:`LoaderProtocol.accept`), raising
:class:`~pumpkit.errors.InmodError` naming the broken rule. It performs no I/O: the engine
makes the calls and stores the checkpoints.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum, IntEnum

from pumpkit.errors import InmodError

__all__ = (
    "MAX_BODY",
    "MAX_CHECKPOINT",
    "MAX_PARMS",
    "MAX_SEQUENCE",
    "Call",
    "EntryCode",
    "LoaderProtocol",
    "Outcome",
    "Phase",
    "Record",
    "Reply",
    "ReturnCode",
    "decode_parms",
    "encode_parms",
)

#: The largest record body: the database's largest record, 62K (63,488 bytes).
MAX_BODY = 63_488
#: The most a module may return on a checkpoint (code 3) to reposition there.
MAX_CHECKPOINT = 100
#: The parameter string is a VARCHAR: a 2-byte length and that many bytes.
MAX_PARMS = 0xFFFF
#: A sequence number is a 4-byte signed integer.
MAX_SEQUENCE = 2**31 - 1


class EntryCode(IntEnum):
    """What the loader tells the module (the seed's status codes 0-7)."""

    FIRST = 0
    NEXT = 1
    CLIENT_RESTART = 2
    CHECKPOINT = 3
    DATABASE_FAILURE = 4
    END = 5
    RECEIVE_INIT = 6
    RECEIVE_NEXT = 7


class ReturnCode(IntEnum):
    """What the module answers: 0, or anything else (end of file / an error)."""

    OK = 0
    END_OR_ERROR = 1


_READS = (EntryCode.FIRST, EntryCode.NEXT)
_REPOSITIONS = (EntryCode.CLIENT_RESTART, EntryCode.DATABASE_FAILURE)


@dataclass(frozen=True, slots=True)
class Record:
    """One record: its body (``length == len(body)``) and its sequence number."""

    body: bytes
    sequence: int

    @property
    def length(self) -> int:
        return len(self.body)


@dataclass(frozen=True, slots=True)
class Call:
    """One call the loader makes: the entry code and the bytes it hands over (the saved
    checkpoint on codes 2 and 4, a record on code 7)."""

    code: EntryCode
    buffer: bytes = b""


@dataclass(frozen=True, slots=True)
class Reply:
    """What a module answered. ``sequence`` is None when it gave none (the loader numbers)."""

    return_code: int
    length: int = 0
    body: bytes = b""
    sequence: int | None = None


class Outcome(Enum):
    RECORD = "record"  #: a record came back (see ``LoaderProtocol.record``)
    END_OF_FILE = "end of file"  #: the input is exhausted
    DONE = "done"  #: a non-read call succeeded


class Phase(Enum):
    """Where the conversation is."""

    NOT_STARTED = "not started"
    READING = "reading"
    END_OF_FILE = "end of file"
    ENDED = "ended"


class LoaderProtocol:
    """The loader's side of one module's conversation.

    ``checkpoint`` is the module's repositioning information of the last checkpoint the
    loader stored (None: no checkpoint yet) and ``checkpoint_sequence`` the sequence number
    of the last record it covers; on a restart the engine passes both back in.
    """

    def __init__(self, *, checkpoint: bytes | None = None, checkpoint_sequence: int = 0) -> None:
        if checkpoint is not None and len(checkpoint) > MAX_CHECKPOINT:
            raise InmodError(
                f"a saved checkpoint holds {len(checkpoint)} bytes; at most {MAX_CHECKPOINT}"
            )
        self.checkpoint = checkpoint
        self.checkpoint_sequence = checkpoint_sequence
        self.last_sequence = checkpoint_sequence
        self.phase = Phase.NOT_STARTED
        self.record: Record | None = None
        self.bodies: list[bytes] = []
        self.first_sequence = 0
        self.pending_checkpoint: bytes | None = None
        self._pending_sequence = 0
        self._reinitialise = False

    # -- what to send

    def start(self, *, restart: bool = False) -> list[Call]:
        """The calls that begin (or, after a client restart, resume) reading."""
        if self.phase is not Phase.NOT_STARTED:
            raise InmodError(f"the conversation has started already ({self.phase.value})")
        self.last_sequence = self.checkpoint_sequence if restart and self.checkpoint else 0
        if restart and self.checkpoint is not None:
            # Restarted after a checkpoint: reposition there, then read on (code 1).
            self.phase = Phase.READING
            return [Call(EntryCode.CLIENT_RESTART, self.checkpoint)]
        # A fresh start, or a restart before the first checkpoint: initialise (code 0).
        return [Call(EntryCode.FIRST)]

    def read(self) -> Call:
        """The next read call (code 0 right after initialisation, else 1)."""
        if self.phase is Phase.NOT_STARTED:
            return Call(EntryCode.FIRST)
        if self.phase is not Phase.READING:
            raise InmodError(f"no record can be read: the input is at {self.phase.value}")
        return Call(EntryCode.NEXT)

    def checkpoint_due(self) -> Call:
        """Ask the module for its repositioning information (code 3)."""
        if self.phase not in (Phase.READING, Phase.END_OF_FILE):
            raise InmodError(f"no checkpoint can be taken at {self.phase.value}")
        return Call(EntryCode.CHECKPOINT)

    def database_failed(self) -> list[Call]:
        """After a database failure: reposition (code 4) or, before the first checkpoint,
        clean up and start again (codes 5 then 0)."""
        self.record = None
        self.pending_checkpoint = None
        if self.checkpoint is not None:
            return [Call(EntryCode.DATABASE_FAILURE, self.checkpoint)]
        self._reinitialise = True
        return [Call(EntryCode.END), Call(EntryCode.FIRST)]

    def end(self) -> Call:
        """The job ended (code 5)."""
        return Call(EntryCode.END)

    # -- what came back

    def accept(self, call: Call, reply: Reply) -> Outcome:
        """Check ``reply`` to ``call`` against the protocol and update the state.

        Raises ``InmodError`` naming the rule a module broke: an oversized body or
        checkpoint, a length that is not the body's, a record where none is expected, a
        sequence number that goes backwards, or a non-zero return code on a call that is
        not a read (the module cannot go on: the job must end rather than load data twice).
        """
        code = call.code
        if reply.length < 0 or reply.length != len(reply.body):
            raise InmodError(
                f"on code {code.value} the module returned length {reply.length} with a body"
                f" of {len(reply.body)} bytes: the length must be the body's"
            )
        if code in _READS:
            return self._accept_read(code, reply)
        if reply.return_code != ReturnCode.OK:
            raise InmodError(
                f"the module answered code {code.value} ({code.name}) with return code"
                f" {reply.return_code}: it cannot go on, so the job ends"
                + (
                    " (a module that cannot reposition must end the job on 2, 3 and 4)"
                    if code in (*_REPOSITIONS, EntryCode.CHECKPOINT)
                    else ""
                )
            )
        if reply.sequence not in (None, 0):
            raise InmodError(
                f"the module returned a record (sequence number {reply.sequence}) on code"
                f" {code.value} ({code.name}); a record is expected only on codes 0 and 1"
            )
        if code == EntryCode.CHECKPOINT:
            if len(reply.body) > MAX_CHECKPOINT:
                raise InmodError(
                    f"the module returned {len(reply.body)} bytes of checkpoint information"
                    f" on code 3; at most {MAX_CHECKPOINT}"
                )
            self.pending_checkpoint = reply.body
            # The bytes reposition the module to after the records read so far: the checkpoint
            # covers exactly those, however many the loader reads before it stores it.
            self._pending_sequence = self.last_sequence
            return Outcome.DONE
        if reply.body:
            raise InmodError(
                f"the module returned {len(reply.body)} bytes on code {code.value}"
                f" ({code.name}); no record is expected there"
            )
        if code in _REPOSITIONS:
            self.phase = Phase.READING
            self.last_sequence = self.checkpoint_sequence
        elif code == EntryCode.END:
            if self._reinitialise:
                # Codes 5 then 0 after a database failure before the first checkpoint.
                self._reinitialise = False
                self.phase = Phase.NOT_STARTED
                self.last_sequence = 0
            else:
                self.phase = Phase.ENDED
        return Outcome.DONE

    def _accept_read(self, code: EntryCode, reply: Reply) -> Outcome:
        if self.phase is Phase.ENDED:
            raise InmodError("a read after the job ended (code 5)")
        self.phase = Phase.READING
        if reply.return_code != ReturnCode.OK or reply.length == 0:
            self.phase = Phase.END_OF_FILE
            self.record = None
            return Outcome.END_OF_FILE
        if len(reply.body) > MAX_BODY:
            raise InmodError(
                f"the module returned a body of {len(reply.body)} bytes on code {code.value};"
                f" a record body is at most {MAX_BODY} bytes"
            )
        sequence = self.last_sequence + 1 if reply.sequence in (None, 0) else reply.sequence
        if sequence <= self.last_sequence:
            raise InmodError(
                f"the module's sequence number went backwards: {sequence} after"
                f" {self.last_sequence}"
            )
        if sequence > MAX_SEQUENCE:
            raise InmodError(f"sequence number {sequence} does not fit 4 signed bytes")
        self.last_sequence = sequence
        self.record = Record(reply.body, sequence)
        return Outcome.RECORD

    def accept_many(self, code: EntryCode, bodies: list[bytes]) -> Outcome:
        """Several records answering one read (a module's ``read_many``, pumpkit's extension
        for speed): the same rules as one by one, checked for the batch at once. The loader
        numbers them; an empty list is end of file. ``self.bodies`` holds them, numbered from
        ``self.first_sequence``."""
        if code not in _READS:
            raise InmodError(f"records are expected only on codes 0 and 1, not {code.value}")
        if self.phase is Phase.ENDED:
            raise InmodError("a read after the job ended (code 5)")
        self.phase = Phase.READING
        if not bodies:
            self.phase = Phase.END_OF_FILE
            self.bodies = []
            return Outcome.END_OF_FILE
        longest = max(map(len, bodies))
        if longest > MAX_BODY:
            raise InmodError(
                f"the module returned a body of {longest} bytes; a record body is at most"
                f" {MAX_BODY} bytes"
            )
        if not min(map(len, bodies)):
            raise InmodError("the module returned an empty record inside a batch")
        first = self.last_sequence + 1
        if first + len(bodies) - 1 > MAX_SEQUENCE:
            raise InmodError("sequence numbers pass 4 signed bytes")
        # Numbered first, first + 1, ...: no object per record (measured: 4.7 s of a
        # 10 M-record load went to making them).
        self.bodies = bodies
        self.first_sequence = first
        self.last_sequence = first + len(bodies) - 1
        return Outcome.RECORD

    @property
    def pending_sequence(self) -> int:
        """The sequence number the pending checkpoint covers (the last record before it)."""
        return self._pending_sequence

    def checkpoint_stored(self) -> None:
        """The engine committed the pending checkpoint with the rows it covers."""
        if self.pending_checkpoint is None:
            raise InmodError("no checkpoint information is pending (code 3 first)")
        self.checkpoint = self.pending_checkpoint
        self.checkpoint_sequence = self._pending_sequence
        self.pending_checkpoint = None


_PARMS_LENGTH = struct.Struct("<H")


def encode_parms(text: str) -> bytes:
    """The parameter list's VARCHAR: a 2-byte length and the UTF-8 bytes of ``text``."""
    data = text.encode("utf-8")
    if len(data) > MAX_PARMS:
        raise InmodError(f"the parameter string is {len(data)} bytes; at most {MAX_PARMS}")
    return _PARMS_LENGTH.pack(len(data)) + data


def decode_parms(data: bytes) -> str:
    """The text of a parameter-list VARCHAR; raises ``InmodError`` when it is cut short."""
    if len(data) < _PARMS_LENGTH.size:
        raise InmodError("a parameter list is at least its 2-byte length")
    (length,) = _PARMS_LENGTH.unpack_from(data)
    if len(data) - _PARMS_LENGTH.size < length:
        raise InmodError(f"the parameter list says {length} bytes and holds fewer")
    try:
        return data[_PARMS_LENGTH.size : _PARMS_LENGTH.size + length].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InmodError(f"the parameter string is not UTF-8: {exc}") from None
