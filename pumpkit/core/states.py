"""The job state machine: every rule about job states lives in this file.

Theory of operation
-------------------
A pumpkit job is always in exactly one :class:`JobState`, named and spelled as Oracle's
DBMS_DATAPUMP names them ("STOP PENDING", "NOT RUNNING" with a space). Two questions are
answered here and nowhere else:

1. *May this procedure be called now?* Table 6-1 of the Oracle Data Pump API ("Valid Job
   States in Which DBMS_DATAPUMP Procedures Can Be Executed") is kept as data:
   :data:`VALID_STATES` is its main column, one entry per :class:`Procedure`, and
   :data:`FOOTNOTES` holds its two footnotes as rows that widen an entry when the call's
   context matches (ADD_FILE of dump files for export jobs; SET_PARAMETER of
   ENCRYPTION_PASSWORD). :func:`valid_states` combines the two and :func:`check` raises
   :class:`~pumpkit.errors.InvalidStateError` when the answer is no.
2. *May the job move from this state to that one?* :data:`TRANSITION_REASONS` lists every
   legal edge with the one-line reason it exists; :data:`TRANSITIONS` is the same graph keyed
   by source state, and :func:`transition` raises :class:`InvalidTransitionError` for any
   other move.

Nothing here performs I/O, awaits, or keeps state between calls: the engine owns the job's
current state and asks this module before changing it, the way h11's ``_state.py`` serves
its connection object.

"NOT RUNNING" is a *view-only* state (:data:`VIEW_ONLY_STATES`): it is what a job listing
shows for a control table that no process serves (after a crash). GET_STATUS and
WAIT_FOR_JOB are never valid in it and so never report it; :func:`reported_state` enforces
that for status reports.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from pumpkit.errors import InvalidStateError, InvalidTransitionError

__all__ = (
    "ACTIVE_STATES",
    "ALL_STATES",
    "FOOTNOTES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "TRANSITION_REASONS",
    "VALID_STATES",
    "VIEW_ONLY_STATES",
    "WORKER_STATES",
    "Footnote",
    "InvalidStateError",
    "InvalidTransitionError",
    "JobState",
    "Operation",
    "Procedure",
    "check",
    "parse_state",
    "reported_state",
    "transition",
    "valid_states",
)


class JobState(enum.StrEnum):
    """The state of a job; each value is spelled exactly as DBMS_DATAPUMP reports it."""

    UNDEFINED = "UNDEFINED"
    DEFINING = "DEFINING"
    EXECUTING = "EXECUTING"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    STOP_PENDING = "STOP PENDING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    IDLING = "IDLING"
    NOT_RUNNING = "NOT RUNNING"


class Operation(enum.StrEnum):
    """What a job does. LOAD is a TPump-style load job; for Table 6-1 it is "not export"."""

    EXPORT = "EXPORT"
    IMPORT = "IMPORT"
    LOAD = "LOAD"


class Procedure(enum.StrEnum):
    """The DBMS_DATAPUMP procedures whose validity depends on the job state."""

    ADD_FILE = "ADD_FILE"
    ATTACH = "ATTACH"
    DATA_FILTER = "DATA_FILTER"
    DETACH = "DETACH"
    GET_DUMPFILE_INFO = "GET_DUMPFILE_INFO"
    GET_STATUS = "GET_STATUS"
    LOG_ENTRY = "LOG_ENTRY"
    METADATA_FILTER = "METADATA_FILTER"
    METADATA_REMAP = "METADATA_REMAP"
    METADATA_TRANSFORM = "METADATA_TRANSFORM"
    OPEN = "OPEN"
    SET_PARALLEL = "SET_PARALLEL"
    SET_PARAMETER = "SET_PARAMETER"
    START_JOB = "START_JOB"
    STOP_JOB = "STOP_JOB"
    WAIT_FOR_JOB = "WAIT_FOR_JOB"


# --- the named groups of states --------------------------------------------------------------

ALL_STATES: frozenset[JobState] = frozenset(JobState)
"""Every state; Table 6-1's "All"."""

ACTIVE_STATES: frozenset[JobState] = frozenset(
    {
        JobState.DEFINING,
        JobState.IDLING,
        JobState.EXECUTING,
        JobState.STOPPING,
        JobState.STOP_PENDING,
        JobState.COMPLETING,
    }
)
"""States in which the job's control coroutine is alive (Oracle: the master control process
is active). Exactly the states where GET_STATUS and WAIT_FOR_JOB are valid."""

WORKER_STATES: frozenset[JobState] = frozenset({JobState.EXECUTING, JobState.STOP_PENDING})
"""States in which worker tasks process work items (in STOP PENDING they only finish the
items they hold)."""

TERMINAL_STATES: frozenset[JobState] = ALL_STATES - ACTIVE_STATES
"""States in which WAIT_FOR_JOB returns, i.e. no control coroutine serves the job:
COMPLETED and STOPPED (the normal ends), NOT RUNNING (it crashed) and UNDEFINED (it was
removed). The engine reports the first two as results and raises for the other two, since
NOT RUNNING is view-only. Terminal for waiting, not for the graph: a STOPPED or NOT RUNNING
job can be attached and restarted."""

VIEW_ONLY_STATES: frozenset[JobState] = frozenset({JobState.NOT_RUNNING})
"""States shown by job listings but never returned by GET_STATUS or WAIT_FOR_JOB."""


# --- Table 6-1 -------------------------------------------------------------------------------

VALID_STATES: Mapping[Procedure, frozenset[JobState]] = MappingProxyType(
    {
        # Defining (export and import); Executing and Idling only via FOOTNOTES.
        Procedure.ADD_FILE: frozenset({JobState.DEFINING}),
        Procedure.ATTACH: frozenset(
            {
                JobState.DEFINING,
                JobState.EXECUTING,
                JobState.IDLING,
                JobState.STOPPED,
                JobState.COMPLETED,
                JobState.COMPLETING,
                JobState.NOT_RUNNING,
            }
        ),
        Procedure.DATA_FILTER: frozenset({JobState.DEFINING}),
        Procedure.DETACH: ALL_STATES,
        Procedure.GET_DUMPFILE_INFO: ALL_STATES,
        Procedure.GET_STATUS: ALL_STATES
        - {JobState.COMPLETED, JobState.NOT_RUNNING, JobState.STOPPED, JobState.UNDEFINED},
        Procedure.LOG_ENTRY: frozenset(
            {
                JobState.DEFINING,
                JobState.EXECUTING,
                JobState.IDLING,
                JobState.STOP_PENDING,
                JobState.COMPLETING,
            }
        ),
        Procedure.METADATA_FILTER: frozenset({JobState.DEFINING}),
        Procedure.METADATA_REMAP: frozenset({JobState.DEFINING}),
        Procedure.METADATA_TRANSFORM: frozenset({JobState.DEFINING}),
        Procedure.OPEN: frozenset({JobState.UNDEFINED}),
        Procedure.SET_PARALLEL: frozenset({JobState.DEFINING, JobState.EXECUTING, JobState.IDLING}),
        # Defining; ENCRYPTION_PASSWORD also Idling, via FOOTNOTES.
        Procedure.SET_PARAMETER: frozenset({JobState.DEFINING}),
        Procedure.START_JOB: frozenset({JobState.DEFINING, JobState.IDLING}),
        Procedure.STOP_JOB: frozenset(
            {JobState.DEFINING, JobState.EXECUTING, JobState.IDLING, JobState.STOP_PENDING}
        ),
        Procedure.WAIT_FOR_JOB: ALL_STATES
        - {JobState.COMPLETED, JobState.NOT_RUNNING, JobState.STOPPED, JobState.UNDEFINED},
    }
)
"""Table 6-1's main column: the states in which each procedure may be called, whatever its
arguments. :data:`FOOTNOTES` may add states for particular arguments."""

ContextKey = Literal["operation", "filetype", "parameter"]
"""The keyword arguments of :func:`valid_states` a footnote may test."""


@dataclass(frozen=True, slots=True)
class Footnote:
    """A footnote of Table 6-1: ``extra_states`` are also valid for ``procedure`` when every
    ``(keyword, value)`` pair of ``conditions`` matches the call (case-insensitively)."""

    procedure: Procedure
    conditions: tuple[tuple[ContextKey, str], ...]
    extra_states: frozenset[JobState]
    text: str


FOOTNOTES: tuple[Footnote, ...] = (
    Footnote(
        procedure=Procedure.ADD_FILE,
        conditions=(("operation", Operation.EXPORT.value), ("filetype", "DUMP")),
        extra_states=frozenset({JobState.EXECUTING, JobState.IDLING}),
        text="Executing and Idling: valid only for specifying dump files for export jobs "
        "(log and SQL files, and every file of import and load jobs: Defining only).",
    ),
    Footnote(
        procedure=Procedure.SET_PARAMETER,
        conditions=(("parameter", "ENCRYPTION_PASSWORD"),),
        extra_states=frozenset({JobState.IDLING}),
        text="The ENCRYPTION_PASSWORD parameter may be set during Defining and Idling.",
    ),
)
"""The footnotes of Table 6-1, as data. A context value that is ``None`` (unknown) never
matches, so an unknown context never widens a procedure's states."""


def valid_states(
    procedure: Procedure,
    *,
    operation: Operation | None = None,
    filetype: str | None = None,
    parameter: str | None = None,
) -> frozenset[JobState]:
    """The states in which ``procedure`` may be called with this context.

    ``operation`` is the job's operation, ``filetype`` the ADD_FILE file type ("DUMP", "LOG",
    "SQL") and ``parameter`` the SET_PARAMETER name; string values compare case-insensitively.
    Context that does not concern ``procedure`` is ignored.
    """
    context: Mapping[ContextKey, str | None] = {
        "operation": operation,
        "filetype": filetype,
        "parameter": parameter,
    }
    states = VALID_STATES[procedure]
    for footnote in FOOTNOTES:
        if footnote.procedure is procedure and all(
            (given := context[keyword]) is not None and given.upper() == required.upper()
            for keyword, required in footnote.conditions
        ):
            states = states | footnote.extra_states
    return states


def _in_declared_order(states: frozenset[JobState]) -> tuple[str, ...]:
    return tuple(state.value for state in JobState if state in states)


def check(
    procedure: Procedure,
    state: JobState,
    *,
    operation: Operation | None = None,
    filetype: str | None = None,
    parameter: str | None = None,
) -> None:
    """Return if ``procedure`` may be called in ``state``; raise InvalidStateError if not.

    The message names the procedure, the state and the states where the call is valid, e.g.
    ``START_JOB is not valid in state EXECUTING; valid in: DEFINING, IDLING``.
    """
    allowed = valid_states(procedure, operation=operation, filetype=filetype, parameter=parameter)
    if state in allowed:
        return
    valid = _in_declared_order(allowed)
    raise InvalidStateError(
        f"{procedure.value} is not valid in state {state.value}; valid in: {', '.join(valid)}",
        procedure=procedure.value,
        state=state.value,
        valid=valid,
    )


# --- transitions -----------------------------------------------------------------------------

TRANSITION_REASONS: Mapping[JobState, Mapping[JobState, str]] = MappingProxyType(
    {
        JobState.UNDEFINED: {
            JobState.DEFINING: "OPEN creates the job and its control table.",
        },
        JobState.DEFINING: {
            JobState.EXECUTING: "START_JOB starts the workers.",
            JobState.STOPPING: "STOP_JOB with keep_master: the control coroutine records the "
            "definition and ends.",
            JobState.STOPPED: "STOP_JOB with keep_master, when there is nothing to wind down.",
            JobState.UNDEFINED: "The last DETACH, STOP_JOB without keep_master, a crash or a "
            "kill removes a job that never started, control table and all.",
        },
        JobState.EXECUTING: {
            JobState.COMPLETING: "Every work item is done and recorded (an export's set is "
            "closed, an import's markers dropped); the job wraps up.",
            JobState.STOP_PENDING: "STOP_JOB (orderly): workers finish their current items.",
            JobState.STOPPING: "STOP_JOB immediate, a failure, or its session's end: the "
            "workers are ended at once.",
            JobState.NOT_RUNNING: "The control coroutine died; the control table outlives it.",
            JobState.UNDEFINED: "Kill: the control table is dropped.",
        },
        JobState.STOP_PENDING: {
            JobState.STOPPING: "The workers finished their items (or STOP_JOB immediate, or a "
            "failure, cut them short).",
            JobState.NOT_RUNNING: "The control coroutine died while the workers drained.",
            JobState.UNDEFINED: "Kill: the control table is dropped.",
        },
        JobState.STOPPING: {
            JobState.STOPPED: "The control table is written and no task serves the job.",
            JobState.NOT_RUNNING: "The control coroutine died before recording the stop.",
            JobState.UNDEFINED: "Kill: the control table is dropped.",
        },
        JobState.COMPLETING: {
            JobState.COMPLETED: "The job finished and its tasks ended.",
            JobState.NOT_RUNNING: "The control coroutine died while wrapping up.",
            JobState.UNDEFINED: "Kill: the control table is dropped.",
        },
        JobState.COMPLETED: {
            JobState.UNDEFINED: "The control table is dropped (at the end unless keep_master, "
            "or later by a kill).",
        },
        JobState.STOPPED: {
            JobState.IDLING: "ATTACH revives the control coroutine to await START_JOB.",
            JobState.UNDEFINED: "Kill: the control table of the stopped job is dropped.",
        },
        JobState.IDLING: {
            JobState.EXECUTING: "START_JOB restarts the job where it stopped.",
            JobState.STOPPING: "STOP_JOB: the control coroutine records the stop and ends.",
            JobState.STOPPED: "STOP_JOB, or the last session's DETACH, when there is nothing "
            "to wind down.",
            JobState.NOT_RUNNING: "The control coroutine died while idling.",
            JobState.UNDEFINED: "Kill: the control table is dropped.",
        },
        JobState.NOT_RUNNING: {
            JobState.IDLING: "ATTACH revives the control coroutine of the orphaned job.",
            JobState.UNDEFINED: "Kill: the orphaned control table is dropped.",
        },
    }
)
"""Every legal move of the job, ``{from: {to: why}}``. Staying in a state is not a move.
NOT RUNNING is entered only when the control coroutine dies, and left only by ATTACH or a
kill; every state but UNDEFINED can be killed (its control table dropped)."""

TRANSITIONS: Mapping[JobState, frozenset[JobState]] = MappingProxyType(
    {source: frozenset(TRANSITION_REASONS[source]) for source in JobState}
)
"""The states each state may move to: :data:`TRANSITION_REASONS` without the reasons."""


def transition(current: JobState, new: JobState) -> JobState:
    """Return ``new`` if the job may move there from ``current``; raise if it may not."""
    if new in TRANSITIONS[current]:
        return new
    legal = ", ".join(_in_declared_order(TRANSITIONS[current])) or "none"
    raise InvalidTransitionError(
        f"a job cannot move from {current.value} to {new.value}; "
        f"from {current.value} it may move to: {legal}",
        current=current.value,
        new=new.value,
    )


def reported_state(state: JobState) -> JobState:
    """Return ``state`` as a status report (GET_STATUS, WAIT_FOR_JOB) may carry it.

    Raises ValueError for a view-only state: those appear in job listings only.
    """
    if state in VIEW_ONLY_STATES:
        raise ValueError(
            f"{state.value} is a view-only state; GET_STATUS and WAIT_FOR_JOB never report it"
        )
    return state


def parse_state(text: str) -> JobState:
    """The state named by ``text``: its value or member name, in any case, with spaces or
    underscores ("STOP PENDING", "stop_pending", "Stop Pending")."""
    key = " ".join(text.replace("_", " ").split()).upper()
    try:
        return JobState(key)
    except ValueError:
        known = ", ".join(state.value for state in JobState)
        raise ValueError(f"unknown job state {text!r}; known states: {known}") from None
