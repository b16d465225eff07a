"""The client of a running job: logging mode (log lines and a progress line) and the
interactive mode of expdp/impdp (``Export>``), entered with Ctrl-C or ``pumpkit attach``.

Commands (case does not matter): STATUS[=seconds], STOP_JOB[=IMMEDIATE],
START_JOB[=SKIP_CURRENT], KILL_JOB[=KEEP_FILES], PARALLEL=n, ADD_FILE=name, FILESIZE=size,
CONTINUE_CLIENT, EXIT_CLIENT, HELP. On a terminal they are typed at the prompt; when
standard input is not a terminal they are read from it line by line, and its end is
EXIT_CLIENT.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TextIO

import anyio

from pumpkit.cli.progress_view import Meter, TerminalBar, progress_text
from pumpkit.core.parameters import parse_size
from pumpkit.core.states import JobState
from pumpkit.core.status import Status, StatusMask
from pumpkit.engine.session import Session
from pumpkit.errors import JobTakenOverError, PumpkitError
from pumpkit.exitcodes import ExitCode

__all__ = ("Client", "exit_code_for", "status_report")

HELP = """\
The following commands are valid while in interactive mode.
Note: abbreviations are not allowed.

ADD_FILE=name       Add a dump file to the dump-file set (export).
CONTINUE_CLIENT     Return to logging mode. The job is restarted if it is idle.
EXIT_CLIENT         Quit the client session and leave the job running.
FILESIZE=size       Default size of files added with ADD_FILE (e.g. 2GB).
HELP                Summarize the interactive commands.
KILL_JOB            Detach and delete the job (its control table; an export's dump files,
                    kept with KILL_JOB=KEEP_FILES).
PARALLEL=n          Change the number of active workers of the job.
START_JOB[=SKIP_CURRENT]  Start or resume the job; SKIP_CURRENT skips what was in progress.
STATUS[=seconds]    Show the job's status now (and every so many seconds in logging mode).
STOP_JOB[=IMMEDIATE]  Stop the job in order (workers finish their granule), or at once.
"""
_PROGRESS_INTERVAL = 0.5


def exit_code_for(status: Status) -> ExitCode:
    """COMPLETED -> 0 (5 with errors); STOPPED by request -> 6; stopped by an error -> 1."""
    if status.state == JobState.COMPLETED.value:
        return ExitCode.COMPLETED_WITH_ERRORS if status.error_count else ExitCode.OK
    if status.errors:
        return ExitCode.FAULT
    return ExitCode.STOPPED


def status_report(status: Status) -> str:
    """expdp's STATUS: the job, its progress, what it waits for, its files and workers."""
    lines = [
        f"Job: {status.job_name}",
        f"  Operation: {status.operation}  Mode: {status.job_mode}  State: {status.state}",
        f"  Degree: {status.degree}  Restarts: {status.restart_count}  Errors: {status.error_count}",
        f"  Done: {status.percent_done:.0f}%  objects {status.completed_objects}/{status.total_objects}"
        f"  rows {status.completed_rows:,}/{status.total_rows:,}"
        f"  bytes {status.completed_bytes:,}",
    ]
    if status.waiting_for:
        lines.append(f"  Waiting: {status.waiting_for}")
    for f in status.files:
        limit = f" (max {f.max_size:,})" if f.max_size else ""
        lines.append(f"  {f.file_type} file: {f.file_name}, {f.size:,} bytes{limit}")
    for w in status.workers:
        doing = (
            f" {w.object_type} {w.object_name} {w.partition_name or ''}".rstrip()
            if w.object_name
            else ""
        )
        lines.append(f"  {w.name}: {w.state}{doing}")
    return "\n".join(lines)


class Client:
    """One attached client; ``run`` returns the exit code."""

    def __init__(
        self,
        session: Session,
        handle: int,
        *,
        prompt: str,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        stdin: TextIO = sys.stdin,
        show_progress: bool | None = None,
        foreground: bool = False,
        home: str | None = None,
    ) -> None:
        self.session = session
        self.handle = handle
        self.job_name = session.job_name(handle)
        self.prompt = prompt
        self.out = out
        self.err = err
        self.stdin = stdin
        self.interactive_input = stdin.isatty()
        self.show_progress = err.isatty() if show_progress is None else show_progress
        self.foreground = foreground
        self.home = home
        self.filesize: str | None = None
        self.status_every: float | None = None
        self._interrupted = anyio.Event()
        self._printed = 0
        self.meter = Meter()
        # A rich bar on a terminal that can draw one; elsewhere a line redrawn with \r.
        bar = TerminalBar(err) if self.show_progress else None
        self._bar = bar if bar is not None and bar.console.is_interactive else None

    # -- the loop

    async def run(self, *, interactive_first: bool = False) -> int:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals, tg.cancel_scope)
            code = await self._loop(interactive_first)
            tg.cancel_scope.cancel()
        return int(code)

    async def _watch_signals(self, _: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            async for _signal in signals:
                self._interrupted.set()

    async def _loop(self, interactive: bool) -> ExitCode:
        while True:
            if not interactive:
                ended = await self.logging_mode()
                if ended is not None:
                    return ended
            action = await self.interactive_mode()
            if isinstance(action, ExitCode):
                return action
            interactive = False

    # -- logging mode

    async def logging_mode(self) -> ExitCode | None:
        """Log lines and progress until the job ends (its exit code) or Ctrl-C (None)."""
        self._interrupted = anyio.Event()
        last_report = time.monotonic()
        while not self._interrupted.is_set():
            try:
                status = await self.session.get_status(
                    self.handle, StatusMask.ALL, timeout=_PROGRESS_INTERVAL
                )
            except PumpkitError:
                return await self._finish()
            self._clear_progress()
            self._print_lines(status.log_lines)
            if self.status_every and time.monotonic() - last_report >= self.status_every:
                last_report = time.monotonic()
                self._say(status_report(status))
            if status.state in (JobState.COMPLETED.value, JobState.STOPPED.value):
                return await self._finish()
            if self.show_progress:
                self.meter.add(status)
                self._show_progress(status)
        self._clear_progress()
        self._stop_bar()
        return None

    def _show_progress(self, status: Status) -> None:
        if self._bar is not None:
            self._bar.show(status, self.meter)
        else:
            self.err.write(progress_text(status, self.meter))
            self.err.flush()

    def _clear_progress(self) -> None:
        if self.show_progress and self._bar is None:
            self.err.write("\r\x1b[K")
            self.err.flush()

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _say(self, text: str) -> None:
        """A line for the user; above the bar while one is shown."""
        if self._bar is not None and self.out.isatty():
            self._bar.print(text)
        else:
            print(text, file=self.out, flush=True)

    def _print_lines(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            self._say(line)
        self._printed += len(lines)

    async def _finish(self) -> ExitCode:
        final = await self.session.final_status(self.job_name)
        self._print_lines(final.log_lines[self._printed :])
        self._stop_bar()
        await self.session.release(self.handle)
        code = exit_code_for(final)
        if self.show_progress and final.state == JobState.COMPLETED.value:
            # The last progress line stays: where the job ended (100 %, its rows).
            self.meter.add(final)
            print(progress_text(final, self.meter), file=self.err, flush=True)
        if code == ExitCode.FAULT and final.state == JobState.STOPPED.value:
            print(self.failed_advice(), file=self.out, flush=True)
        return code

    def failed_advice(self) -> str:
        """What a user can do with a job that failed: its control table is kept (as Oracle
        keeps a master table), so it can be restarted once the cause is fixed, or dropped."""
        attach = f"pumpkit attach {self.job_name}"
        if self.home:
            attach += f" --home {self.home}"
        return (
            f"Job {self.job_name} is kept STOPPED with its control table.\n"
            f"  To restart it once the cause is fixed: {attach}, then START_JOB\n"
            f"  To drop it: {attach}, then KILL_JOB"
        )

    # -- interactive mode

    async def _read_line(self, prompt: str) -> str | None:
        def read() -> str | None:
            if self.interactive_input:
                try:
                    return input(prompt)
                except EOFError:
                    return None
            line = self.stdin.readline()
            return None if line == "" else line.rstrip("\n")

        return await anyio.to_thread.run_sync(read, abandon_on_cancel=True)

    async def interactive_mode(self) -> ExitCode | str:
        """Read and obey commands; returns an exit code, or ``"continue"`` for logging mode."""
        while True:
            line = await self._read_line(f"{self.prompt}> ")
            if line is None:
                return await self._exit_client()
            line = line.strip()
            if not line:
                continue
            try:
                result = await self.obey(line)
            except JobTakenOverError as exc:
                # This client lost a race (another started the job): it did not get what it
                # asked for, so it says so and leaves with JOB_TAKEN.
                print(f"{self.prompt}: {exc}", file=self.out, flush=True)
                await self.session.release(self.handle)
                return ExitCode.JOB_TAKEN
            except PumpkitError as exc:
                print(f"{self.prompt}: {exc}", file=self.out, flush=True)
                continue
            if result is not None:
                return result

    async def _confirm(self, question: str) -> bool:
        answer = await self._read_line(f"{question} ([yes]/no): ")
        return answer is None or answer.strip().lower() in ("", "y", "yes")

    async def obey(self, line: str) -> ExitCode | str | None:
        name, _, value = line.partition("=")
        command = name.strip().upper()
        value = value.strip()
        if command == "HELP":
            print(HELP, file=self.out, end="", flush=True)
        elif command == "STATUS":
            if value:
                self.status_every = float(value)
            status = await self.session.final_status(self.job_name)
            print(status_report(status), file=self.out, flush=True)
        elif command == "PARALLEL":
            await self.session.set_parallel(self.handle, int(value))
            print(f"Degree of parallelism set to {int(value)}", file=self.out, flush=True)
        elif command == "FILESIZE":
            parse_size(value)
            self.filesize = value
        elif command == "ADD_FILE":
            directory = await self._directory()
            for name_ in value.split(","):
                await self.session.add_file(self.handle, name_.strip(), directory, self.filesize)
                print(f"Dump file {name_.strip()} added", file=self.out, flush=True)
        elif command == "STOP_JOB":
            immediate = value.upper() == "IMMEDIATE"
            if not await self._confirm("Are you sure you wish to stop this job"):
                return None
            await self.session.stop_job(self.handle, immediate=immediate)
            final = await self.session.final_status(self.job_name)
            self._print_lines(final.log_lines[self._printed :])
            code = exit_code_for(final)
            if code == ExitCode.STOPPED:
                print(
                    f"Job {self.job_name} stopped; restart it with `pumpkit attach {self.job_name}`",
                    file=self.out,
                    flush=True,
                )
            return code
        elif command == "KILL_JOB":
            if not await self._confirm("Are you sure you wish to stop this job and delete it"):
                return None
            keep = value.upper() == "KEEP_FILES"
            await self.session.stop_job(self.handle, keep_master=False, keep_files=keep)
            kept = "; its dump files are kept (KEEP_FILES)" if keep else ""
            print(f"Job {self.job_name} killed{kept}", file=self.out, flush=True)
            return ExitCode.KILLED
        elif command == "START_JOB":
            skip = value.upper() == "SKIP_CURRENT"
            await self.session.start_job(self.handle, skip_current=skip, detached=True)
            print(f"Job {self.job_name} started", file=self.out, flush=True)
        elif command == "CONTINUE_CLIENT":
            state = await self.session.state(self.handle)
            if state == JobState.IDLING:
                await self.session.start_job(self.handle, detached=True)
            elif state == JobState.EXECUTING:
                # A job that waits for room on a full disk tries again (space was freed).
                await self.session.continue_job(self.handle)
            return "continue"
        elif command == "EXIT_CLIENT":
            return await self._exit_client()
        else:
            print(
                f"{self.prompt}: unknown command {command!r}; HELP lists them",
                file=self.out,
                flush=True,
            )
        return None

    async def _exit_client(self) -> ExitCode:
        if self.foreground and await self.session.state(self.handle) == JobState.EXECUTING:
            print(
                f"Job {self.job_name} runs in this process (--foreground): leaving stops it",
                file=self.out,
                flush=True,
            )
            await self.session.stop_job(self.handle, immediate=True)
            return ExitCode.STOPPED
        await self.session.release(self.handle)
        print(f"Client detached; job {self.job_name} goes on", file=self.out, flush=True)
        return ExitCode.OK

    async def _directory(self) -> str:
        status = await self.session.final_status(self.job_name)
        for f in status.files:
            if f.file_type == "DUMP":
                return str(Path(f.file_name).parent)
        return "."
