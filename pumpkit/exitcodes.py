"""The exit codes of every ``pumpkit`` command and of a job's own process, in one place
(README.md lists them; ``pumpkit --help`` prints them)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ("ExitCode",)


class ExitCode(IntEnum):
    OK = 0  #: done: the job completed, the file is sound
    FAULT = 1  #: damage found, or the job failed (its control table is kept)
    USAGE = 2  #: bad usage: unknown option, bad value, a call the job's state refuses
    NO_INPUT = 3  #: a named file or directory is missing or cannot be read
    NOT_A_DUMP = 4  #: a named file is not a pumpkit dump file
    COMPLETED_WITH_ERRORS = 5  #: the job completed, but some objects or rows failed
    STOPPED = 6  #: the job stopped (it can be restarted)
    KILLED = 7  #: the job was killed (KILL_JOB): its control table is gone
    JOB_TAKEN = 8  #: another process holds the job (it started or took it first)
    INTERRUPTED = 130  #: Ctrl-C outside the interactive mode
