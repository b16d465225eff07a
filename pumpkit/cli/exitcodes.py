"""The exit codes of every ``pumpkit`` command, in one place (README.md lists them)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ("ExitCode",)


class ExitCode(IntEnum):
    OK = 0  #: done: the file is sound, the job completed
    FAULT = 1  #: damage found, or the job failed
    USAGE = 2  #: bad usage: unknown option, bad value
    NO_INPUT = 3  #: a named file or directory is missing or cannot be read
    NOT_A_DUMP = 4  #: a named file is not a pumpkit dump file
    COMPLETED_WITH_ERRORS = 5  #: the job completed, but some objects failed
    STOPPED = 6  #: the job stopped (it can be restarted)
    INTERRUPTED = 130  #: Ctrl-C outside the interactive mode
