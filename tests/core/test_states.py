"""Tests of pumpkit.core.states: Table 6-1, its footnotes, and the job state machine.

The expected answers are written out here as literals copied from the specification, not
derived from the module's own tables, so a typo in either place shows up as a failure.
"""

from __future__ import annotations

import itertools

import pytest

from pumpkit.core import states
from pumpkit.core.states import (
    ACTIVE_STATES,
    FOOTNOTES,
    TERMINAL_STATES,
    TRANSITION_REASONS,
    TRANSITIONS,
    VALID_STATES,
    VIEW_ONLY_STATES,
    WORKER_STATES,
    InvalidTransitionError,
    JobState,
    Operation,
    Procedure,
    check,
    parse_state,
    reported_state,
    transition,
    valid_states,
)
from pumpkit.errors import BadStateError, InvalidStateError

# --- the specification, as literals ----------------------------------------------------------

STATE_VALUES = (
    "UNDEFINED",
    "DEFINING",
    "EXECUTING",
    "COMPLETING",
    "COMPLETED",
    "STOP PENDING",
    "STOPPING",
    "STOPPED",
    "IDLING",
    "NOT RUNNING",
)

PROCEDURE_NAMES = (
    "ADD_FILE",
    "ATTACH",
    "DATA_FILTER",
    "DETACH",
    "GET_DUMPFILE_INFO",
    "GET_STATUS",
    "LOG_ENTRY",
    "METADATA_FILTER",
    "METADATA_REMAP",
    "METADATA_TRANSFORM",
    "OPEN",
    "SET_PARALLEL",
    "SET_PARAMETER",
    "START_JOB",
    "STOP_JOB",
    "WAIT_FOR_JOB",
)

EVERY_STATE = set(STATE_VALUES)

# Table 6-1, main column (no footnote applies when the call's context is not given).
EXPECTED_VALID: dict[str, set[str]] = {
    "ADD_FILE": {"DEFINING"},
    "ATTACH": {
        "DEFINING",
        "EXECUTING",
        "IDLING",
        "STOPPED",
        "COMPLETED",
        "COMPLETING",
        "NOT RUNNING",
    },
    "DATA_FILTER": {"DEFINING"},
    "DETACH": EVERY_STATE,
    "GET_DUMPFILE_INFO": EVERY_STATE,
    "GET_STATUS": EVERY_STATE - {"COMPLETED", "NOT RUNNING", "STOPPED", "UNDEFINED"},
    "LOG_ENTRY": {"DEFINING", "EXECUTING", "IDLING", "STOP PENDING", "COMPLETING"},
    "METADATA_FILTER": {"DEFINING"},
    "METADATA_REMAP": {"DEFINING"},
    "METADATA_TRANSFORM": {"DEFINING"},
    "OPEN": {"UNDEFINED"},
    "SET_PARALLEL": {"DEFINING", "EXECUTING", "IDLING"},
    "SET_PARAMETER": {"DEFINING"},
    "START_JOB": {"DEFINING", "IDLING"},
    "STOP_JOB": {"DEFINING", "EXECUTING", "IDLING", "STOP PENDING"},
    "WAIT_FOR_JOB": EVERY_STATE - {"COMPLETED", "NOT RUNNING", "STOPPED", "UNDEFINED"},
}

EXPECTED_EDGES: dict[str, set[str]] = {
    "UNDEFINED": {"DEFINING"},
    "DEFINING": {"EXECUTING", "STOPPING", "STOPPED", "UNDEFINED"},
    "EXECUTING": {"COMPLETING", "STOP PENDING", "STOPPING", "NOT RUNNING", "UNDEFINED"},
    "STOP PENDING": {"STOPPING", "NOT RUNNING", "UNDEFINED"},
    "STOPPING": {"STOPPED", "NOT RUNNING", "UNDEFINED"},
    "COMPLETING": {"COMPLETED", "NOT RUNNING", "UNDEFINED"},
    "COMPLETED": {"UNDEFINED"},
    "STOPPED": {"IDLING", "UNDEFINED"},
    "IDLING": {"EXECUTING", "STOPPING", "STOPPED", "NOT RUNNING", "UNDEFINED"},
    "NOT RUNNING": {"IDLING", "UNDEFINED"},
}

ALLOWED_EDGES = sorted((old, new) for old, targets in EXPECTED_EDGES.items() for new in targets)
REFUSED_EDGES = sorted(
    (old, new)
    for old, new in itertools.product(STATE_VALUES, STATE_VALUES)
    if new not in EXPECTED_EDGES[old]
)


def _assert_refused(
    error: InvalidStateError, procedure: str, state: str, expected_valid: set[str]
) -> None:
    message = str(error)
    assert procedure in message
    assert f"state {state};" in message
    for valid in expected_valid:
        assert valid in message
    assert error.procedure == procedure
    assert error.state == state
    assert set(error.valid) == expected_valid


# --- the enumerations ------------------------------------------------------------------------


def test_job_state_values_and_names() -> None:
    assert [state.value for state in JobState] == list(STATE_VALUES)
    assert [state.name for state in JobState] == [
        "UNDEFINED",
        "DEFINING",
        "EXECUTING",
        "COMPLETING",
        "COMPLETED",
        "STOP_PENDING",
        "STOPPING",
        "STOPPED",
        "IDLING",
        "NOT_RUNNING",
    ]
    assert str(JobState.STOP_PENDING) == "STOP PENDING"


def test_procedure_and_operation_values() -> None:
    assert [procedure.value for procedure in Procedure] == list(PROCEDURE_NAMES)
    assert [operation.value for operation in Operation] == ["EXPORT", "IMPORT", "LOAD"]


def test_tables_cover_every_key() -> None:
    assert set(VALID_STATES) == set(Procedure)
    assert set(TRANSITIONS) == set(JobState)
    assert set(TRANSITION_REASONS) == set(JobState)


def test_all_names_exist() -> None:
    assert isinstance(states.__all__, tuple)
    for name in states.__all__:
        assert hasattr(states, name), name


# --- Table 6-1, every cell -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("procedure_name", "state_value"), list(itertools.product(PROCEDURE_NAMES, STATE_VALUES))
)
def test_table_6_1_cell(procedure_name: str, state_value: str) -> None:
    procedure = Procedure(procedure_name)
    state = JobState(state_value)
    expected_valid = EXPECTED_VALID[procedure_name]
    if state_value in expected_valid:
        check(procedure, state)
    else:
        with pytest.raises(InvalidStateError) as caught:
            check(procedure, state)
        _assert_refused(caught.value, procedure_name, state_value, expected_valid)
    assert {s.value for s in valid_states(procedure)} == expected_valid


def test_refusal_message_format() -> None:
    with pytest.raises(InvalidStateError) as caught:
        check(Procedure.START_JOB, JobState.EXECUTING)
    assert str(caught.value) == (
        "START_JOB is not valid in state EXECUTING; valid in: DEFINING, IDLING"
    )
    assert isinstance(caught.value, BadStateError)
    assert caught.value.valid == ("DEFINING", "IDLING")


# --- Table 6-1, footnotes --------------------------------------------------------------------

ADD_FILE_CASES = [
    # (operation, filetype, states where ADD_FILE is valid)
    (Operation.EXPORT, "DUMP", {"DEFINING", "EXECUTING", "IDLING"}),
    (Operation.EXPORT, "dump", {"DEFINING", "EXECUTING", "IDLING"}),
    (Operation.EXPORT, "LOG", {"DEFINING"}),
    (Operation.EXPORT, "SQL", {"DEFINING"}),
    (Operation.EXPORT, None, {"DEFINING"}),
    (Operation.IMPORT, "DUMP", {"DEFINING"}),
    (Operation.IMPORT, "LOG", {"DEFINING"}),
    (Operation.LOAD, "DUMP", {"DEFINING"}),
    (Operation.LOAD, "LOG", {"DEFINING"}),
    (None, "DUMP", {"DEFINING"}),
]


@pytest.mark.parametrize(
    ("operation", "filetype", "expected_valid", "state_value"),
    [(*case, state) for case in ADD_FILE_CASES for state in STATE_VALUES],
)
def test_add_file_footnote(
    operation: Operation | None, filetype: str | None, expected_valid: set[str], state_value: str
) -> None:
    state = JobState(state_value)
    if state_value in expected_valid:
        check(Procedure.ADD_FILE, state, operation=operation, filetype=filetype)
    else:
        with pytest.raises(InvalidStateError) as caught:
            check(Procedure.ADD_FILE, state, operation=operation, filetype=filetype)
        _assert_refused(caught.value, "ADD_FILE", state_value, expected_valid)


@pytest.mark.parametrize("state", [JobState.EXECUTING, JobState.IDLING])
def test_add_dump_file_while_running_export_only(state: JobState) -> None:
    check(Procedure.ADD_FILE, state, operation=Operation.EXPORT, filetype="DUMP")
    for operation in (Operation.IMPORT, Operation.LOAD):
        with pytest.raises(InvalidStateError):
            check(Procedure.ADD_FILE, state, operation=operation, filetype="DUMP")


def test_add_log_file_while_executing_refused_for_export() -> None:
    with pytest.raises(InvalidStateError) as caught:
        check(Procedure.ADD_FILE, JobState.EXECUTING, operation=Operation.EXPORT, filetype="LOG")
    _assert_refused(caught.value, "ADD_FILE", "EXECUTING", {"DEFINING"})


SET_PARAMETER_CASES = [
    # (parameter, states where SET_PARAMETER is valid)
    ("ENCRYPTION_PASSWORD", {"DEFINING", "IDLING"}),
    ("encryption_password", {"DEFINING", "IDLING"}),
    ("COMPRESSION", {"DEFINING"}),
    ("ENCRYPTION", {"DEFINING"}),
    (None, {"DEFINING"}),
]


@pytest.mark.parametrize(
    ("parameter", "expected_valid", "state_value"),
    [(*case, state) for case in SET_PARAMETER_CASES for state in STATE_VALUES],
)
def test_set_parameter_footnote(
    parameter: str | None, expected_valid: set[str], state_value: str
) -> None:
    state = JobState(state_value)
    if state_value in expected_valid:
        check(Procedure.SET_PARAMETER, state, parameter=parameter)
    else:
        with pytest.raises(InvalidStateError) as caught:
            check(Procedure.SET_PARAMETER, state, parameter=parameter)
        _assert_refused(caught.value, "SET_PARAMETER", state_value, expected_valid)


def test_encryption_password_while_idling() -> None:
    check(Procedure.SET_PARAMETER, JobState.IDLING, parameter="ENCRYPTION_PASSWORD")
    with pytest.raises(InvalidStateError):
        check(Procedure.SET_PARAMETER, JobState.IDLING, parameter="PARALLEL_THRESHOLD")


def test_footnotes_ignore_unrelated_context() -> None:
    assert valid_states(
        Procedure.START_JOB, operation=Operation.EXPORT, filetype="DUMP", parameter="X"
    ) == frozenset({JobState.DEFINING, JobState.IDLING})
    assert valid_states(Procedure.ADD_FILE, parameter="ENCRYPTION_PASSWORD") == frozenset(
        {JobState.DEFINING}
    )
    assert valid_states(
        Procedure.SET_PARAMETER, operation=Operation.EXPORT, filetype="DUMP"
    ) == frozenset({JobState.DEFINING})


def test_footnotes_only_widen() -> None:
    for footnote in FOOTNOTES:
        assert footnote.extra_states.isdisjoint(VALID_STATES[footnote.procedure])
        assert footnote.text


# --- transitions -----------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), ALLOWED_EDGES)
def test_allowed_transition(old: str, new: str) -> None:
    assert transition(JobState(old), JobState(new)) is JobState(new)
    assert TRANSITION_REASONS[JobState(old)][JobState(new)].strip()


@pytest.mark.parametrize(("old", "new"), REFUSED_EDGES)
def test_refused_transition(old: str, new: str) -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        transition(JobState(old), JobState(new))
    message = str(caught.value)
    assert f"from {old} to {new}" in message
    assert caught.value.current == old
    assert caught.value.new == new
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, BadStateError)


def test_transition_graph_matches_specification() -> None:
    assert {old.value: {new.value for new in targets} for old, targets in TRANSITIONS.items()} == (
        EXPECTED_EDGES
    )
    assert len(ALLOWED_EDGES) == 29


def test_no_state_moves_to_itself() -> None:
    for state in JobState:
        with pytest.raises(InvalidTransitionError):
            transition(state, state)


def test_every_existing_job_can_be_killed() -> None:
    for state in JobState:
        if state is not JobState.UNDEFINED:
            assert transition(state, JobState.UNDEFINED) is JobState.UNDEFINED


def test_every_state_is_reachable_from_undefined() -> None:
    reached = {JobState.UNDEFINED}
    frontier = [JobState.UNDEFINED]
    while frontier:
        for new in TRANSITIONS[frontier.pop()]:
            if new not in reached:
                reached.add(new)
                frontier.append(new)
    assert reached == set(JobState)


def test_transition_error_lists_legal_moves() -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        transition(JobState.COMPLETED, JobState.EXECUTING)
    assert str(caught.value) == (
        "a job cannot move from COMPLETED to EXECUTING; from COMPLETED it may move to: UNDEFINED"
    )


# --- NOT RUNNING is view-only ----------------------------------------------------------------


def test_not_running_is_view_only() -> None:
    assert frozenset({JobState.NOT_RUNNING}) == VIEW_ONLY_STATES
    with pytest.raises(ValueError, match="NOT RUNNING"):
        reported_state(JobState.NOT_RUNNING)
    for procedure in (Procedure.GET_STATUS, Procedure.WAIT_FOR_JOB):
        with pytest.raises(InvalidStateError):
            check(procedure, JobState.NOT_RUNNING)


@pytest.mark.parametrize("state_value", [s for s in STATE_VALUES if s != "NOT RUNNING"])
def test_reported_state_passes_other_states(state_value: str) -> None:
    assert reported_state(JobState(state_value)) is JobState(state_value)


def test_not_running_entered_only_by_dying_control() -> None:
    sources = {old for old, targets in EXPECTED_EDGES.items() if "NOT RUNNING" in targets}
    assert sources == {"EXECUTING", "STOP PENDING", "STOPPING", "COMPLETING", "IDLING"}
    assert {state.value for state in ACTIVE_STATES} >= sources


# --- groups of states ------------------------------------------------------------------------


def test_state_groups() -> None:
    assert {state.value for state in ACTIVE_STATES} == {
        "DEFINING",
        "IDLING",
        "EXECUTING",
        "STOPPING",
        "STOP PENDING",
        "COMPLETING",
    }
    assert {state.value for state in WORKER_STATES} == {"EXECUTING", "STOP PENDING"}
    assert {state.value for state in TERMINAL_STATES} == {
        "COMPLETED",
        "STOPPED",
        "NOT RUNNING",
        "UNDEFINED",
    }
    assert ACTIVE_STATES.isdisjoint(TERMINAL_STATES)
    assert set(JobState) == ACTIVE_STATES | TERMINAL_STATES
    assert WORKER_STATES <= ACTIVE_STATES


def test_wait_and_status_valid_exactly_while_active() -> None:
    assert valid_states(Procedure.WAIT_FOR_JOB) == ACTIVE_STATES
    assert valid_states(Procedure.GET_STATUS) == ACTIVE_STATES


# --- parse_state -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(JobState))
def test_parse_state_round_trip(state: JobState) -> None:
    spellings = {
        state.value,
        state.value.lower(),
        state.value.title(),
        state.name,
        state.name.lower(),
        f"  {state.value}  ",
    }
    for text in spellings:
        assert parse_state(text) is state, text


def test_parse_state_examples() -> None:
    for text in ("STOP PENDING", "stop_pending", "Stop Pending", "stop   pending"):
        assert parse_state(text) is JobState.STOP_PENDING
    assert parse_state("not_running") is JobState.NOT_RUNNING


@pytest.mark.parametrize("text", ["", "RUNNING", "STOPPEDX", "stop-pending", "IDLE"])
def test_parse_state_refuses_unknown(text: str) -> None:
    with pytest.raises(ValueError, match="unknown job state"):
        parse_state(text)
