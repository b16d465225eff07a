"""Every error pumpkit raises, in one flat module.

One root, :class:`PumpkitError`; its direct subclasses say whose fault it is:

- :class:`DumpError` — the bytes of a dump file are not what the format allows (damage,
  truncation, a newer major version, files of two sets mixed), or what they say would act
  outside the objects they name (:class:`UnsafeDumpError`). It carries the file and the
  byte offset of the fault.
- :class:`UsageError` — the caller asked for something that cannot be (a bad argument value,
  an unknown handle).
- :class:`BadStateError` — the call is fine but not in the job's current state.
- :class:`StoreError` — the control store (where jobs are recorded) failed or is incoherent.
- :class:`ConnectorError` — the source or target database refused or failed; names the table
  and column where known.
- :class:`InmodError` — a user input module broke the INMOD protocol.
- :class:`DumpSetFullError` — no file of a dump-file set can take more bytes.
- :class:`JobStopped` — an immediate stop (or kill) interrupted the work in hand.

Codecs' own faults (:class:`CopyFormatError`, :class:`LayoutError`) are ValueErrors that their
callers turn into the error that says whose fault it is, with where.
"""

from __future__ import annotations

__all__ = (
    "BadStateError",
    "ConnectorError",
    "CopyFormatError",
    "CorruptDumpError",
    "DumpError",
    "DumpLimitError",
    "DumpSetFullError",
    "DumpSetNoSpaceError",
    "EncryptedError",
    "ErrorLimitReached",
    "FileAccessError",
    "IncompleteSetError",
    "InmodError",
    "InvalidArgumentError",
    "InvalidHandleError",
    "InvalidStateError",
    "InvalidTransitionError",
    "JobHeldError",
    "JobStopped",
    "JobTakenOverError",
    "LayoutError",
    "NotADumpFileError",
    "PumpkitError",
    "RetryableError",
    "SignatureError",
    "StoreError",
    "TranslationError",
    "UnsafeDumpError",
    "UnsafeFileNameError",
    "UnsupportedFeatureError",
    "UnsupportedVersionError",
    "UsageError",
    "WorkerDiedError",
)


def printable(text: str) -> str:
    """``text`` with every character that is not printable (line breaks, escape sequences)
    written as a Python escape (``\\n``, ``\\x1b``)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class PumpkitError(Exception):
    """The root of every error pumpkit raises on purpose."""


# --- the dump file's fault -------------------------------------------------------------------


class DumpError(PumpkitError):
    """The bytes of a dump file are not what the format allows.

    ``path`` is the file (``None`` when the bytes came from memory) and ``offset`` the byte
    offset of the fault from the start of that file (``None`` when it concerns the whole file
    or set). ``reason`` is the fault without the location.
    """

    def __init__(self, reason: str, *, path: str | None = None, offset: int | None = None):
        self.reason = reason
        self.path = path
        self.offset = offset
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        return ": ".join([*where, self.reason])

    def located(self, path: str | None, base: int = 0) -> DumpError:
        """The same error, placed in ``path`` with its offset moved by ``base``."""
        offset = None if self.offset is None else self.offset + base
        error = type(self).__new__(type(self))
        DumpError.__init__(error, self.reason, path=path or self.path, offset=offset)
        return error


class EncryptedError(DumpError):
    """The set is encrypted and no password was given, or the password is not the one it
    was written with (the header's key check says so before any frame is read)."""


class DumpLimitError(DumpError):
    """A dump claims more than a reader takes (``pumpkit.core.limits``): a frame larger, a
    row count higher, a payload of more values. The bytes may be sound; the claim is refused
    before anything is allocated for it, so that memory stays bounded whatever a dump says."""


class CorruptDumpError(DumpError):
    """A checksum, length, magic or field is wrong, or the file ends too early."""


class NotADumpFileError(DumpError):
    """The file does not start with the pumpkit magic: it is not a dump file at all."""


class UnsupportedVersionError(DumpError):
    """The file was written by a newer major version of the format."""


class UnsupportedFeatureError(DumpError):
    """The file uses a must-understand feature (a flag bit, a frame encoding) this reader lacks."""


class IncompleteSetError(DumpError):
    """A dump-file set has a file missing, twice, or from another set."""


class SignatureError(DumpError):
    """A signed set's signature is missing, misplaced or does not hold under the key given
    (format 1.3, formats/dumpfile.md section 3.8): not signed by that key, or changed since."""


class UnsafeDumpError(DumpError):
    """A statement or definition in a dump would act outside the objects the dump names.

    The bytes may be perfectly sound (every checksum holds): a dump is input from a stranger,
    and this is the refusal of what it asks for. ``object_type`` and ``object_name`` name the
    object whose definition was refused, ``refused`` what it would have done (for instance
    ``SQLITE_ATTACH '/tmp/loot.db'`` or ``a second statement``), ``why`` the rule it breaks.
    ``action`` is the authorizer's record of the denied action, as SQLite reported it:
    ``(action code name, arg1, arg2, database, trigger or view)``, or ``None`` when the parse
    gate refused the statement before SQLite was asked to run it.
    """

    def __init__(
        self,
        reason: str | None = None,
        *,
        object_type: str = "",
        object_name: str = "",
        refused: str = "",
        why: str = "",
        action: tuple[str, str | None, str | None, str | None, str | None] | None = None,
        path: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.object_type = object_type
        self.object_name = object_name
        self.refused = refused
        self.why = why
        self.action = action
        if reason is None:
            reason = f"unsafe dump: {object_type} {object_name!r} refused: {refused}: {why}"
        # The names are the dump's: no line break or escape sequence of theirs reaches a log.
        super().__init__(printable(reason), path=path, offset=offset)

    def located(self, path: str | None, base: int = 0) -> UnsafeDumpError:
        return self.at(path or self.path, None if self.offset is None else self.offset + base)

    def at(self, path: str | None, offset: int | None) -> UnsafeDumpError:
        """The same refusal, placed at ``offset`` of the dump file ``path`` (the frame that
        defines the object)."""
        return UnsafeDumpError(
            self.reason,
            object_type=self.object_type,
            object_name=self.object_name,
            refused=self.refused,
            why=self.why,
            action=self.action,
            path=path,
            offset=offset,
        )


class UnsafeFileNameError(DumpError):
    """A name a dump gives one of its own files (its header's ``set_files``, its control
    table's FILE rows) is not a plain file name: it would reach outside the set's directory
    (``../x``, ``/etc/passwd``, ``a/b``), or it is empty or holds a NUL. ``offset`` is where
    the name lies in the file (for a control-table row: its frame)."""

    def __init__(self, reason: str, *, path: str | None = None, offset: int | None = None):
        # The name is the dump's: no line break or escape sequence of it reaches a log.
        super().__init__(printable(reason), path=path, offset=offset)


# --- the caller's fault ----------------------------------------------------------------------


class UsageError(PumpkitError):
    """The call itself is wrong, whatever the job's state."""


class InvalidArgumentError(UsageError, ValueError):
    """An argument has a value that is not allowed; the message names it and the allowed ones."""


class FileAccessError(UsageError):
    """A named file cannot be opened as asked (missing, a directory, no permission, exists)."""

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)


class InvalidHandleError(UsageError):
    """The integer handle is not one this session made (or it was detached)."""


# --- the job's state -------------------------------------------------------------------------


class BadStateError(PumpkitError):
    """The call is valid in general but not now."""


class InvalidStateError(BadStateError):
    """A procedure was called in a job state where Table 6-1 does not allow it."""

    def __init__(
        self,
        message: str,
        *,
        procedure: str,
        state: str,
        valid: tuple[str, ...],
    ) -> None:
        self.procedure = procedure
        self.state = state
        self.valid = valid
        super().__init__(message)

    def explained(self, why: str) -> InvalidStateError:
        """The same refusal with ``why`` in front: what the state means for this job."""
        return InvalidStateError(
            f"{why} ({self})", procedure=self.procedure, state=self.state, valid=self.valid
        )


class InvalidTransitionError(BadStateError, ValueError):
    """The job was asked to move between two states that no edge of the machine joins.

    ``current`` and ``new`` are the two states' values; the message names both.
    """

    def __init__(self, message: str, *, current: str, new: str) -> None:
        self.current = current
        self.new = new
        super().__init__(message)


class JobTakenOverError(BadStateError):
    """Another process holds the job (it took it over, or won the race to start it); the
    message names the job and that process."""


class JobHeldError(InvalidStateError, JobTakenOverError):
    """A call lost a race: another session or process started the job first (START_JOB), or
    holds its name (OPEN). Still Table 6-1's refusal (``procedure``, ``state``, ``valid``);
    the message names the job and, where one runs it, the process (``holder``). The CLI
    exits JOB_TAKEN (8)."""

    def __init__(
        self,
        message: str,
        *,
        procedure: str,
        state: str,
        valid: tuple[str, ...],
        holder: str | None = None,
    ) -> None:
        self.holder = holder
        super().__init__(message, procedure=procedure, state=state, valid=valid)


# --- the environment's fault -----------------------------------------------------------------


class StoreError(PumpkitError):
    """The control store failed, or holds something it should not."""


class ConnectorError(PumpkitError):
    """The source or target database refused or failed."""

    def __init__(
        self, message: str, *, table: str | None = None, column: str | None = None
    ) -> None:
        self.table = table
        self.column = column
        super().__init__(message)


class TranslationError(ConnectorError):
    """A statement or expression of one engine's SQL has no counterpart in another's (a
    cross-engine move): names the object (``what``) and says why (``reason``). The import
    reports that object as left out."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class RetryableError(ConnectorError):
    """The database itself failed (locked, busy, I/O, the connection lost), not the work's
    SQL: the work can be rolled back and tried again."""


class WorkerDiedError(PumpkitError):
    """A worker process of the job died (killed, crashed) while it held a granule: the
    control process replaces it and redoes the granule, up to a limit per job.
    ``worker`` is its number (from 1), ``table`` what it was reading."""

    def __init__(self, message: str, *, worker: int, table: str | None = None) -> None:
        self.worker = worker
        self.table = table
        super().__init__(message)


class InmodError(PumpkitError):
    """A user input module broke the INMOD protocol; the message names the rule."""


class ErrorLimitReached(PumpkitError):
    """ERRLIMIT records failed: the load stops (restartable) after its last checkpoint."""


class JobStopped(PumpkitError):
    """An immediate stop interrupted the work in hand; it is redone when the job restarts."""


# --- codecs ----------------------------------------------------------------------------------


class CopyFormatError(ValueError):
    """The bytes are not a binary COPY stream this decoder can read, or a kind is unknown.

    ``reason`` is the fault alone; ``offset`` the byte offset in the stream where it was
    found (the start of the field, count word or header part at fault); ``row`` the 1-based
    number of the tuple; ``column`` the 0-based index into the kinds and ``column_name`` its
    name when the caller gave names. Each is ``None`` where it does not apply; the message
    names all that do.
    """

    def __init__(
        self,
        reason: str,
        *,
        offset: int | None = None,
        row: int | None = None,
        column: int | None = None,
        column_name: str | None = None,
    ) -> None:
        self.reason = reason
        self.offset = offset
        self.row = row
        self.column = column
        self.column_name = column_name
        where = []
        if offset is not None:
            where.append(f"byte offset {offset}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            name = "" if column_name is None else f" ({column_name})"
            where.append(f"column {column}{name}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


class LayoutError(ValueError):
    """A record does not fit the layout; the message says why (the loader adds where)."""


class DumpSetFullError(PumpkitError):
    """No file of the dump-file set can take more bytes (FILESIZE reached, templates used up)."""


class DumpSetNoSpaceError(DumpSetFullError):
    """The file system of a dump file has no room (ENOSPC, EDQUOT, EFBIG): nothing of the
    frame was kept, the file stays at its last durable point. Like a full set, a wait: for
    ADD_FILE in another directory (the set goes on in a new file there) or for space freed
    and CONTINUE (the set goes on in place). ``path`` is the file, ``reason`` the OS's."""

    def __init__(self, message: str, *, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(message)
