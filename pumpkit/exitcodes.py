"""The exit codes of every ``pumpkit`` command and of a job's own process, in one place
(README.md lists them; ``pumpkit --help`` prints them)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ("MEANINGS", "ExitCode")


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


#: What each code means, as README.md's table says it (``pumpkit --help`` prints this; a test
#: holds the two to the same words).
MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done: the job completed, the file is sound",
    ExitCode.FAULT: "a fault: damage found, or the job failed (its control table is kept)",
    ExitCode.USAGE: "bad usage: unknown option, bad value (also in a parfile), a call the job's"
    " state refuses",
    ExitCode.NO_INPUT: "a named file or directory (dump file, parfile, directory) is missing or"
    " cannot be read",
    ExitCode.NOT_A_DUMP: "a named file is not a pumpkit dump file",
    ExitCode.COMPLETED_WITH_ERRORS: "the job completed, but some objects failed",
    ExitCode.STOPPED: "the job stopped (it can be restarted)",
    ExitCode.KILLED: "the job was killed (KILL_JOB): its control table is gone",
    ExitCode.JOB_TAKEN: "another process holds the job (it started or took it first)",
    ExitCode.INTERRUPTED: "interrupted",
}
