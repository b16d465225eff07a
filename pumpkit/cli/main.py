"""The ``pumpkit`` command: parses the command line and hands over to one command module."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pumpkit import __version__
from pumpkit.cli import cat, inspect, jobs
from pumpkit.errors import (
    BadStateError,
    FileAccessError,
    JobTakenOverError,
    NotADumpFileError,
    PumpkitError,
    UsageError,
)
from pumpkit.exitcodes import MEANINGS, ExitCode

__all__ = ("exit_code_table", "main", "parser")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"pumpkit: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def exit_code_table() -> str:
    """The exit codes and their meanings, as ``pumpkit --help`` ends."""
    return "exit codes:\n" + "\n".join(
        f"  {int(code):>3}  {meaning}" for code, meaning in MEANINGS.items()
    )


def parser() -> argparse.ArgumentParser:
    """The whole command line."""
    top = _Parser(
        prog="pumpkit",
        description="Move a database's schema and rows through self-describing dump-file sets.",
        epilog=exit_code_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("-V", "--version", action="version", version=f"pumpkit {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    jobs.add_commands(commands)
    inspect.add_commands(commands)
    cat.add_commands(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (see ``ExitCode``)."""
    args = parser().parse_args(argv)
    if getattr(args, "run", None) is None:
        parser().print_help(sys.stderr)
        return int(ExitCode.USAGE)
    try:
        return int(args.run(args))
    except BrokenPipeError:
        # The reader of our output went away (`pumpkit ls | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(ExitCode.OK)
    except KeyboardInterrupt:
        print("pumpkit: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except FileAccessError as exc:
        print(f"pumpkit: {exc}", file=sys.stderr)
        return int(ExitCode.NO_INPUT)
    except JobTakenOverError as exc:
        # A race lost (START_JOB, OPEN of a name): another session or process has the job.
        print(f"pumpkit: {exc}", file=sys.stderr)
        return int(ExitCode.JOB_TAKEN)
    except NotADumpFileError as exc:
        print(f"pumpkit: {exc}", file=sys.stderr)
        return int(ExitCode.NOT_A_DUMP)
    except (UsageError, BadStateError) as exc:
        # A bad value, an unknown handle or job, a call the job's state refuses: the user's.
        print(f"pumpkit: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    except PumpkitError as exc:
        print(f"pumpkit: {exc}", file=sys.stderr)
        return int(ExitCode.FAULT)


if __name__ == "__main__":
    sys.exit(main())
