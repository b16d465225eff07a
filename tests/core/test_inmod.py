"""Tests of pumpkit.core.inmod: the loader side of Teradata TPump's INMOD protocol.

Every rule checked here is one of the seed's (``shared/seeds/003_*``, Teradata TPump
reference, "status codes"; the English summary is DESIGN.md, "INMOD"):

- entry codes 0-7 and what each one expects back; return code 0 ("a record" on a read,
  "done" elsewhere) against non-zero (end of file on a read, an error that ends the job
  elsewhere); a length of 0 is end of file;
- a body is at most 63,488 bytes, checkpoint information (the answer to code 3) at most 100;
- no record is expected on codes 2, 3 and 4;
- a client restart before the first checkpoint is answered with code 0 (re-initialise),
  after it with code 2 and the saved bytes; a database failure before the first checkpoint
  with code 5 then code 0, after it with code 4 and the saved bytes;
- a module that cannot reposition ends the job (non-zero) on 2, 3 or 4;
- the sequence number is a 4-byte integer; the parameter list a VARCHAR (2-byte length).

The expected values are written here as literals, not read back from the module.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from pumpkit.core.inmod import (
    MAX_BODY,
    MAX_CHECKPOINT,
    MAX_PARMS,
    MAX_SEQUENCE,
    Call,
    EntryCode,
    LoaderProtocol,
    Outcome,
    Phase,
    Record,
    Reply,
    ReturnCode,
    decode_parms,
    encode_parms,
)
from pumpkit.errors import InmodError, PumpkitError

# --- helpers ---------------------------------------------------------------------------------

DONE = Reply(0)  # "done" on a call that is not a read
EOF = Reply(1)  # end of file on a read (non-zero return code)

FIRST = EntryCode.FIRST
NEXT = EntryCode.NEXT
CLIENT_RESTART = EntryCode.CLIENT_RESTART
CHECKPOINT = EntryCode.CHECKPOINT
DATABASE_FAILURE = EntryCode.DATABASE_FAILURE
END = EntryCode.END


def rec(body: bytes, sequence: int | None = None) -> Reply:
    """A well-formed record reply (return code 0, length = the body's)."""
    return Reply(0, len(body), body, sequence)


def info(data: bytes) -> Reply:
    """A well-formed answer to code 3: the repositioning information."""
    return Reply(0, len(data), data)


def reading(n: int) -> LoaderProtocol:
    """A fresh conversation after code 0 and ``n >= 1`` records (loader-numbered 1..n)."""
    p = LoaderProtocol()
    assert p.start() == [Call(FIRST)]
    assert p.accept(Call(FIRST), rec(b"r1")) is Outcome.RECORD
    for i in range(2, n + 1):
        assert p.accept(p.read(), rec(b"r%d" % i)) is Outcome.RECORD
    return p


def checkpointed(n: int, data: bytes = b"pos=N") -> LoaderProtocol:
    """``n`` records read, then a checkpoint taken (code 3) and stored."""
    p = reading(n)
    assert p.accept(p.checkpoint_due(), info(data)) is Outcome.DONE
    p.checkpoint_stored()
    return p


def raises_inmod(*fragments: str):
    """``pytest.raises(InmodError)`` that also checks the message names each fragment."""
    return _RaisesNaming(fragments)


class _RaisesNaming:
    def __init__(self, fragments: tuple[str, ...]) -> None:
        self.fragments = fragments
        self._cm = pytest.raises(InmodError)

    def __enter__(self):
        self._info = self._cm.__enter__()
        return self._info

    def __exit__(self, *exc):
        suppressed = self._cm.__exit__(*exc)
        message = str(self._info.value)
        for fragment in self.fragments:
            assert fragment in message, f"{fragment!r} not named in {message!r}"
        return suppressed


# --- entry codes and return codes ------------------------------------------------------------


def test_the_eight_entry_codes_and_their_values():
    assert {int(c): c.name for c in EntryCode} == {
        0: "FIRST",
        1: "NEXT",
        2: "CLIENT_RESTART",
        3: "CHECKPOINT",
        4: "DATABASE_FAILURE",
        5: "END",
        6: "RECEIVE_INIT",
        7: "RECEIVE_NEXT",
    }


def test_return_codes_zero_and_non_zero():
    assert ReturnCode.OK == 0
    assert ReturnCode.END_OR_ERROR != 0


def test_the_limits_are_the_seeds():
    assert MAX_BODY == 63_488  # 62K, the database's largest record
    assert MAX_CHECKPOINT == 100
    assert MAX_SEQUENCE == 2_147_483_647  # a 4-byte signed integer
    assert MAX_PARMS == 65_535  # a 2-byte length


def test_inmod_error_is_a_pumpkit_error():
    assert issubclass(InmodError, PumpkitError)


@pytest.mark.parametrize("return_code", [1, 2, 4, 8, 16, -1, 2**31 - 1])
def test_any_non_zero_return_code_on_a_read_is_end_of_file(return_code):
    p = reading(3)
    assert p.accept(p.read(), Reply(return_code)) is Outcome.END_OF_FILE
    assert p.phase is Phase.END_OF_FILE
    assert p.record is None


@pytest.mark.parametrize("return_code", [1, 8, -1])
def test_a_non_zero_return_code_on_code_0_is_an_empty_input(return_code):
    p = LoaderProtocol()
    (call,) = p.start()
    assert p.accept(call, Reply(return_code)) is Outcome.END_OF_FILE
    assert p.record is None
    with pytest.raises(InmodError):
        p.read()


@pytest.mark.parametrize("return_code", [1, 12, -1])
@pytest.mark.parametrize(
    "code",
    [
        CLIENT_RESTART,
        CHECKPOINT,
        DATABASE_FAILURE,
        END,
        EntryCode.RECEIVE_INIT,
        EntryCode.RECEIVE_NEXT,
    ],
)
def test_a_non_zero_return_code_on_any_other_call_ends_the_job(code, return_code):
    p = checkpointed(2, b"pos=2")
    with raises_inmod(f"code {int(code)}", f"return code {return_code}", "ends"):
        p.accept(Call(code, p.checkpoint if code in (2, 4) else b""), Reply(return_code))


@pytest.mark.parametrize(
    "code", [CLIENT_RESTART, DATABASE_FAILURE, EntryCode.RECEIVE_INIT, EntryCode.RECEIVE_NEXT]
)
def test_return_code_zero_on_a_call_that_is_not_a_read_is_done(code):
    p = checkpointed(2, b"pos=2")
    assert p.accept(Call(code, b"x"), DONE) is Outcome.DONE


# --- a fresh start ---------------------------------------------------------------------------


def test_a_fresh_start_is_code_0_with_an_empty_buffer():
    p = LoaderProtocol()
    assert p.phase is Phase.NOT_STARTED
    assert p.start() == [Call(EntryCode.FIRST, b"")]
    assert p.read() == Call(FIRST)  # still code 0 until the first answer


def test_the_first_record_comes_back_on_code_0_and_is_numbered_1():
    p = LoaderProtocol()
    (call,) = p.start()
    assert p.accept(call, rec(b"hello")) is Outcome.RECORD
    assert p.record == Record(b"hello", 1)
    assert p.record.length == 5
    assert p.phase is Phase.READING
    assert p.read() == Call(NEXT)  # then code 1


@pytest.mark.parametrize(("given_", "expected"), [(None, 1), (0, 1), (1, 1), (42, 42)])
def test_the_sequence_is_the_modules_or_the_loaders_when_it_gives_none(given_, expected):
    p = LoaderProtocol()
    p.start()
    p.accept(Call(FIRST), rec(b"x", given_))
    assert p.record.sequence == expected


def test_records_flow_on_code_1_with_loader_numbers():
    p = LoaderProtocol()
    p.start()
    p.accept(Call(FIRST), rec(b"a"))
    seen = [p.record]
    for body in (b"b", b"c", b"d"):
        call = p.read()
        assert call == Call(NEXT, b"")
        assert p.accept(call, rec(body)) is Outcome.RECORD
        seen.append(p.record)
    assert seen == [Record(b"a", 1), Record(b"b", 2), Record(b"c", 3), Record(b"d", 4)]


def test_module_numbers_may_have_gaps_and_the_loader_goes_on_from_the_last():
    p = LoaderProtocol()
    p.start()
    p.accept(Call(FIRST), rec(b"a", 10))
    p.accept(p.read(), rec(b"b", 20))
    p.accept(p.read(), rec(b"c"))
    assert p.record == Record(b"c", 21)


def test_length_0_on_a_read_is_end_of_file():
    p = reading(2)
    assert p.accept(p.read(), Reply(0, 0, b"")) is Outcome.END_OF_FILE
    assert p.phase is Phase.END_OF_FILE
    assert p.record is None


def test_length_0_on_code_0_is_an_empty_input():
    p = LoaderProtocol()
    (call,) = p.start()
    assert p.accept(call, Reply(0, 0, b"", 7)) is Outcome.END_OF_FILE


@pytest.mark.parametrize("eof", [EOF, Reply(0, 0, b"")])
def test_no_read_after_end_of_file(eof):
    p = reading(2)
    p.accept(p.read(), eof)
    with raises_inmod("end of file"):
        p.read()


def test_start_twice_is_refused():
    p = reading(1)
    with pytest.raises(InmodError):
        p.start()
    with pytest.raises(InmodError):
        p.start(restart=True)


# --- checkpoints (code 3) --------------------------------------------------------------------


def test_a_checkpoint_is_code_3_with_an_empty_buffer():
    p = reading(3)
    assert p.checkpoint_due() == Call(EntryCode.CHECKPOINT, b"")


def test_no_checkpoint_before_the_conversation_started():
    with pytest.raises(InmodError):
        LoaderProtocol().checkpoint_due()


def test_the_answer_to_code_3_is_pending_until_stored():
    p = reading(3)
    assert p.accept(p.checkpoint_due(), info(b"offset=1234")) is Outcome.DONE
    assert p.pending_checkpoint == b"offset=1234"
    assert p.checkpoint is None
    p.checkpoint_stored()
    assert p.checkpoint == b"offset=1234"
    assert p.checkpoint_sequence == 3
    assert p.pending_checkpoint is None


def test_stored_without_code_3_is_refused():
    with raises_inmod("code 3"):
        reading(2).checkpoint_stored()


@pytest.mark.parametrize("size", [0, 1, 99, 100])
def test_checkpoint_information_up_to_100_bytes(size):
    p = reading(1)
    assert p.accept(p.checkpoint_due(), info(b"c" * size)) is Outcome.DONE
    p.checkpoint_stored()
    assert p.checkpoint == b"c" * size


@pytest.mark.parametrize("size", [101, 200, 70_000])
def test_checkpoint_information_over_100_bytes_is_refused(size):
    p = reading(1)
    with raises_inmod("100", str(size), "code 3"):
        p.accept(p.checkpoint_due(), info(b"c" * size))
    assert p.pending_checkpoint is None


@pytest.mark.parametrize(("body", "sequence"), [(b"row 4", 4), (b"", 4), (b"row", 1)])
def test_a_record_on_code_3_is_refused(body, sequence):
    p = reading(3)
    with raises_inmod("code 3", str(sequence)):
        p.accept(p.checkpoint_due(), Reply(0, len(body), body, sequence))
    assert p.pending_checkpoint is None


def test_a_module_that_cannot_checkpoint_ends_the_job():
    p = reading(3)
    with raises_inmod("code 3", "return code 1", "ends"):
        p.accept(p.checkpoint_due(), Reply(1))
    assert p.pending_checkpoint is None


def test_records_go_on_after_a_checkpoint():
    p = checkpointed(3)
    assert p.read() == Call(NEXT)
    p.accept(p.read(), rec(b"r4"))
    assert p.record == Record(b"r4", 4)


def test_a_checkpoint_at_end_of_file():
    p = reading(2)
    p.accept(p.read(), EOF)
    assert p.checkpoint_due() == Call(CHECKPOINT)
    p.accept(Call(CHECKPOINT), info(b"eof"))
    p.checkpoint_stored()
    assert (p.checkpoint, p.checkpoint_sequence) == (b"eof", 2)


def test_a_later_checkpoint_replaces_the_earlier():
    p = checkpointed(2, b"pos=2")
    p.accept(p.read(), rec(b"r3"))
    p.accept(p.read(), rec(b"r4"))
    p.accept(p.checkpoint_due(), info(b"pos=4"))
    assert p.checkpoint == b"pos=2"  # not yet: pending
    p.checkpoint_stored()
    assert (p.checkpoint, p.checkpoint_sequence) == (b"pos=4", 4)


def test_the_checkpoint_covers_the_records_read_before_code_3():
    """The bytes answered on code 3 reposition the module *there* (seed, code 3: "return
    what is needed to reposition to this checkpoint"). If the engine reads on before it
    commits the checkpoint, the saved sequence must still be the one at code 3, or a
    well-behaved module that repositions there is refused after a restart."""
    p = reading(5)
    p.accept(p.checkpoint_due(), info(b"pos=5"))
    p.accept(p.read(), rec(b"r6", 6))  # read on before the checkpoint's commit
    p.checkpoint_stored()
    saved, saved_sequence = p.checkpoint, p.checkpoint_sequence

    # The client restarts: the module repositions to "pos=5" and returns record 6 again.
    q = LoaderProtocol(checkpoint=saved, checkpoint_sequence=saved_sequence)
    (call,) = q.start(restart=True)
    assert call == Call(CLIENT_RESTART, b"pos=5")
    q.accept(call, DONE)
    assert q.accept(q.read(), rec(b"r6", 6)) is Outcome.RECORD
    assert saved_sequence == 5


# --- client restart after the first checkpoint (code 2) --------------------------------------


def test_client_restart_after_a_checkpoint_is_code_2_with_the_saved_bytes():
    p = LoaderProtocol(checkpoint=b"pos=7", checkpoint_sequence=7)
    assert p.start(restart=True) == [Call(EntryCode.CLIENT_RESTART, b"pos=7")]
    assert p.accept(Call(CLIENT_RESTART, b"pos=7"), DONE) is Outcome.DONE
    assert p.phase is Phase.READING
    assert p.read() == Call(NEXT)  # code 1, not 0: the module repositioned
    p.accept(Call(NEXT), rec(b"r8"))
    assert p.record == Record(b"r8", 8)


def test_client_restart_after_a_checkpoint_accepts_the_modules_next_number():
    p = LoaderProtocol(checkpoint=b"pos=7", checkpoint_sequence=7)
    (call,) = p.start(restart=True)
    p.accept(call, DONE)
    p.accept(p.read(), rec(b"r8", 8))
    p.accept(p.read(), rec(b"r9", 9))
    assert p.record == Record(b"r9", 9)


@pytest.mark.parametrize("sequence", [7, 6, 1, -3])
def test_after_a_client_restart_the_sequence_must_pass_the_checkpoints(sequence):
    p = LoaderProtocol(checkpoint=b"pos=7", checkpoint_sequence=7)
    (call,) = p.start(restart=True)
    p.accept(call, DONE)
    with raises_inmod("backwards", str(sequence), "7"):
        p.accept(p.read(), rec(b"again", sequence))


def test_client_restart_with_an_empty_checkpoint_is_still_code_2():
    # Zero bytes is valid checkpoint information ("up to 100 bytes").
    p = LoaderProtocol(checkpoint=b"", checkpoint_sequence=4)
    assert p.start(restart=True) == [Call(CLIENT_RESTART, b"")]
    p.accept(Call(CLIENT_RESTART, b""), DONE)
    p.accept(p.read(), rec(b"r5"))
    assert p.record.sequence == 5
    with raises_inmod("backwards", "5"):
        p.accept(p.read(), rec(b"r5", 5))


def test_a_body_on_code_2_is_refused():
    p = LoaderProtocol(checkpoint=b"pos=7", checkpoint_sequence=7)
    (call,) = p.start(restart=True)
    with raises_inmod("code 2", "no record"):
        p.accept(call, info(b"row 8"))


def test_a_record_on_code_2_is_refused():
    p = LoaderProtocol(checkpoint=b"pos=7", checkpoint_sequence=7)
    (call,) = p.start(restart=True)
    with raises_inmod("code 2", "8"):
        p.accept(call, rec(b"row 8", 8))


def test_a_module_that_cannot_reposition_on_code_2_ends_the_job():
    p = LoaderProtocol(checkpoint=b"pos=7", checkpoint_sequence=7)
    (call,) = p.start(restart=True)
    with raises_inmod("code 2", "reposition", "ends"):
        p.accept(call, Reply(1))


def test_checkpoints_go_on_after_a_client_restart():
    p = LoaderProtocol(checkpoint=b"pos=7", checkpoint_sequence=7)
    (call,) = p.start(restart=True)
    p.accept(call, DONE)
    p.accept(p.read(), rec(b"r8"))
    p.accept(p.checkpoint_due(), info(b"pos=8"))
    p.checkpoint_stored()
    assert (p.checkpoint, p.checkpoint_sequence) == (b"pos=8", 8)


def test_without_restart_a_saved_checkpoint_is_not_repositioned_to():
    p = LoaderProtocol(checkpoint=b"pos=7", checkpoint_sequence=7)
    assert p.start() == [Call(FIRST)]


def test_a_saved_checkpoint_of_100_bytes_is_accepted():
    p = LoaderProtocol(checkpoint=b"s" * 100, checkpoint_sequence=1)
    assert p.start(restart=True) == [Call(CLIENT_RESTART, b"s" * 100)]


@pytest.mark.parametrize("size", [101, 1000])
def test_a_saved_checkpoint_over_100_bytes_is_refused(size):
    with raises_inmod("100", str(size)):
        LoaderProtocol(checkpoint=b"s" * size, checkpoint_sequence=1)


# --- client restart before the first checkpoint (code 0 again) -------------------------------


def test_client_restart_before_a_checkpoint_reinitialises_with_code_0():
    p = LoaderProtocol()
    assert p.start(restart=True) == [Call(EntryCode.FIRST, b"")]
    p.accept(Call(FIRST), rec(b"r1"))
    assert p.record == Record(b"r1", 1)
    p.accept(p.read(), rec(b"r2"))
    assert p.record == Record(b"r2", 2)


def test_client_restart_before_a_checkpoint_lets_the_module_number_from_1_again():
    # The first run read 1..5 and took a checkpoint that was never stored.
    first = reading(5)
    first.accept(first.checkpoint_due(), info(b"pos=5"))
    p = LoaderProtocol(checkpoint=first.checkpoint, checkpoint_sequence=first.checkpoint_sequence)
    assert p.start(restart=True) == [Call(FIRST)]
    p.accept(Call(FIRST), rec(b"r1", 1))
    assert p.record == Record(b"r1", 1)


# --- database failure after the first checkpoint (code 4) ------------------------------------


def test_database_failure_after_a_checkpoint_is_code_4_with_the_saved_bytes():
    p = checkpointed(3, b"pos=3")
    p.accept(p.read(), rec(b"r4"))
    p.accept(p.read(), rec(b"r5"))
    assert p.database_failed() == [Call(EntryCode.DATABASE_FAILURE, b"pos=3")]
    assert p.record is None
    assert p.accept(Call(DATABASE_FAILURE, b"pos=3"), DONE) is Outcome.DONE
    assert p.phase is Phase.READING
    assert p.read() == Call(NEXT)
    p.accept(Call(NEXT), rec(b"r4"))
    assert p.record == Record(b"r4", 4)  # numbered after the checkpoint's again


def test_database_failure_after_a_checkpoint_lets_the_module_repeat_its_numbers():
    p = checkpointed(3, b"pos=3")
    p.accept(p.read(), rec(b"r4", 4))
    p.accept(p.read(), rec(b"r5", 5))
    (call,) = p.database_failed()
    p.accept(call, DONE)
    p.accept(p.read(), rec(b"r4", 4))
    assert p.record == Record(b"r4", 4)
    with raises_inmod("backwards", "3", "4"):
        p.accept(p.read(), rec(b"r3", 3))


def test_database_failure_discards_the_pending_checkpoint():
    p = checkpointed(3, b"pos=3")
    p.accept(p.read(), rec(b"r4"))
    p.accept(p.checkpoint_due(), info(b"pos=4"))
    assert p.database_failed() == [Call(DATABASE_FAILURE, b"pos=3")]
    assert p.pending_checkpoint is None
    p.accept(Call(DATABASE_FAILURE, b"pos=3"), DONE)
    assert (p.checkpoint, p.checkpoint_sequence) == (b"pos=3", 3)
    with pytest.raises(InmodError):
        p.checkpoint_stored()


def test_database_failure_after_end_of_file_reads_again():
    p = checkpointed(3, b"pos=3")
    p.accept(p.read(), rec(b"r4"))
    p.accept(p.read(), EOF)
    (call,) = p.database_failed()
    p.accept(call, DONE)
    assert p.read() == Call(NEXT)
    p.accept(Call(NEXT), rec(b"r4"))
    assert p.record.sequence == 4


def test_a_body_on_code_4_is_refused():
    p = checkpointed(3, b"pos=3")
    (call,) = p.database_failed()
    with raises_inmod("code 4", "no record"):
        p.accept(call, info(b"r4"))


def test_a_record_on_code_4_is_refused():
    p = checkpointed(3, b"pos=3")
    (call,) = p.database_failed()
    with raises_inmod("code 4", "4"):
        p.accept(call, rec(b"r4", 4))


def test_a_module_that_cannot_reposition_on_code_4_ends_the_job():
    p = checkpointed(3, b"pos=3")
    (call,) = p.database_failed()
    with raises_inmod("code 4", "reposition", "ends"):
        p.accept(call, Reply(3))


# --- database failure before the first checkpoint (codes 5 then 0) ---------------------------


def test_database_failure_before_a_checkpoint_is_code_5_then_code_0():
    p = reading(4)
    calls = p.database_failed()
    assert calls == [Call(EntryCode.END, b""), Call(EntryCode.FIRST, b"")]
    assert p.accept(calls[0], DONE) is Outcome.DONE
    assert p.phase is Phase.NOT_STARTED  # cleaned up, not ended
    assert p.accept(calls[1], rec(b"r1")) is Outcome.RECORD
    assert p.record == Record(b"r1", 1)
    p.accept(p.read(), rec(b"r2"))
    assert p.record == Record(b"r2", 2)


def test_database_failure_before_a_checkpoint_lets_the_module_number_from_1_again():
    p = LoaderProtocol()
    p.start()
    p.accept(Call(FIRST), rec(b"r1", 1))
    p.accept(p.read(), rec(b"r2", 2))
    end, first = p.database_failed()
    p.accept(end, DONE)
    p.accept(first, rec(b"r1", 1))
    assert p.record == Record(b"r1", 1)


def test_database_failure_before_a_checkpoint_discards_the_pending_one():
    p = reading(4)
    p.accept(p.checkpoint_due(), info(b"pos=4"))
    assert p.database_failed() == [Call(END), Call(FIRST)]
    assert p.pending_checkpoint is None
    assert p.checkpoint is None


def test_database_failure_before_a_checkpoint_at_end_of_file():
    p = reading(2)
    p.accept(p.read(), EOF)
    end, first = p.database_failed()
    p.accept(end, DONE)
    p.accept(first, rec(b"r1"))
    assert p.record == Record(b"r1", 1)


def test_a_module_that_fails_to_clean_up_on_code_5_ends_the_job():
    p = reading(2)
    end, _first = p.database_failed()
    with raises_inmod("code 5", "return code 1"):
        p.accept(end, Reply(1))


# --- end of job (code 5) ---------------------------------------------------------------------


def test_end_of_job_is_code_5():
    p = reading(3)
    assert p.end() == Call(EntryCode.END, b"")
    assert p.accept(Call(END), DONE) is Outcome.DONE
    assert p.phase is Phase.ENDED


def test_no_read_after_the_job_ended():
    p = reading(3)
    p.accept(p.end(), DONE)
    with raises_inmod("ended"):
        p.read()
    with raises_inmod("code 5"):
        p.accept(Call(NEXT), rec(b"late"))
    with pytest.raises(InmodError):
        p.checkpoint_due()


def test_end_of_job_after_end_of_file():
    p = reading(3)
    p.accept(p.read(), EOF)
    p.accept(p.end(), DONE)
    assert p.phase is Phase.ENDED


def test_a_body_on_code_5_is_refused():
    p = reading(3)
    with raises_inmod("code 5", "no record"):
        p.accept(p.end(), info(b"bye"))


# --- protocol breaks -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [MAX_BODY + 1, 70_000])
def test_a_body_over_63488_bytes_is_refused(size):
    p = reading(2)
    with raises_inmod("63488", str(size)):
        p.accept(p.read(), rec(b"b" * size))


def test_a_body_over_63488_bytes_on_code_0_is_refused():
    p = LoaderProtocol()
    (call,) = p.start()
    with raises_inmod("63488", "70000", "code 0"):
        p.accept(call, rec(b"b" * 70_000))


def test_a_body_of_exactly_63488_bytes_is_accepted():
    p = reading(2)
    assert p.accept(p.read(), rec(b"b" * 63_488)) is Outcome.RECORD
    assert p.record.length == 63_488


@pytest.mark.parametrize(
    ("length", "body"), [(10, b"abc"), (2, b"abc"), (0, b"abc"), (-1, b""), (5, b"")]
)
def test_a_length_that_is_not_the_bodys_is_refused(length, body):
    p = reading(2)
    with raises_inmod("length", str(length), str(len(body))):
        p.accept(p.read(), Reply(0, length, body))


def test_a_length_that_is_not_the_bodys_is_refused_on_code_3():
    p = reading(2)
    with raises_inmod("code 3", "length 50"):
        p.accept(p.checkpoint_due(), Reply(0, 50, b"c" * 10))


def test_a_sequence_going_backwards_names_both_numbers():
    p = LoaderProtocol()
    p.start()
    p.accept(Call(FIRST), rec(b"a", 5))
    with raises_inmod("backwards", "3", "5"):
        p.accept(p.read(), rec(b"b", 3))


def test_a_repeated_sequence_is_refused():
    p = LoaderProtocol()
    p.start()
    p.accept(Call(FIRST), rec(b"a", 5))
    with raises_inmod("5 after 5"):
        p.accept(p.read(), rec(b"b", 5))


def test_a_negative_sequence_is_refused():
    p = LoaderProtocol()
    p.start()
    with raises_inmod("-1"):
        p.accept(Call(FIRST), rec(b"a", -1))


def test_the_largest_sequence_fits_and_one_more_does_not():
    p = LoaderProtocol()
    p.start()
    p.accept(Call(FIRST), rec(b"a", 2**31 - 1))
    assert p.record.sequence == 2_147_483_647
    with raises_inmod("2147483648"):
        p.accept(p.read(), rec(b"b"))  # the loader's own next number overflows too


def test_a_module_sequence_over_4_bytes_is_refused():
    p = reading(2)
    with raises_inmod("2147483648", "4"):
        p.accept(p.read(), rec(b"b", 2**31))


@given(st.lists(st.integers(1, MAX_SEQUENCE), min_size=1, max_size=20))
def test_module_sequences_are_accepted_exactly_when_strictly_increasing(sequences):
    p = LoaderProtocol()
    p.start()
    call = Call(FIRST)
    accepted = []
    try:
        for s in sequences:
            p.accept(call, rec(b"x", s))
            accepted.append(p.record.sequence)
            call = p.read()
    except InmodError as e:
        assert "backwards" in str(e)
        bad = len(accepted)
        assert sequences[bad] <= sequences[bad - 1]
    assert accepted == sequences[: len(accepted)]
    assert all(a < b for a, b in itertools.pairwise(accepted))
    if len(accepted) == len(sequences):
        assert all(a < b for a, b in itertools.pairwise(sequences))


# --- the parameter list (a VARCHAR) ----------------------------------------------------------


def test_parms_are_a_2_byte_little_endian_length_and_the_bytes():
    assert encode_parms("") == b"\x00\x00"
    assert encode_parms("abc") == b"\x03\x00abc"
    assert encode_parms("x" * 300) == b"\x2c\x01" + b"x" * 300
    assert encode_parms("é") == b"\x02\x00\xc3\xa9"  # UTF-8 bytes are counted


@given(st.text(max_size=300))
def test_parms_round_trip(text):
    data = encode_parms(text)
    assert int.from_bytes(data[:2], "little") == len(data) - 2
    assert decode_parms(data) == text


@given(st.text(max_size=50), st.binary(max_size=20))
def test_parms_decode_only_their_own_bytes(text, rest):
    assert decode_parms(encode_parms(text) + rest) == text


def test_the_longest_parms_fit():
    data = encode_parms("p" * 65_535)
    assert data[:2] == b"\xff\xff"
    assert decode_parms(data) == "p" * 65_535


@pytest.mark.parametrize("text", ["p" * 65_536, "é" * 32_768])
def test_parms_too_long_are_refused(text):
    with raises_inmod("65536", "65535"):
        encode_parms(text)


@pytest.mark.parametrize("data", [b"", b"\x05", b"\x05\x00abc", b"\xff\xff" + b"p" * 100])
def test_parms_cut_short_are_refused(data):
    with pytest.raises(InmodError):
        decode_parms(data)


# --- a well-behaved module in any interleaving -----------------------------------------------


class WellBehavedModule:
    """An input module over a list of records that follows every rule of the seed. Its
    checkpoint information is its position (4 bytes); it numbers its records itself (the
    position in the file) or leaves that to the loader."""

    def __init__(self, records: list[bytes], numbered: bool, eof_by_length: bool) -> None:
        self.records = records
        self.numbered = numbered
        self.eof_by_length = eof_by_length
        self.position = 0  # forgotten when the client restarts: a new instance

    def __call__(self, call: Call) -> Reply:
        code = call.code
        if code == FIRST:
            self.position = 0
            return self._next()
        if code == NEXT:
            return self._next()
        if code == CHECKPOINT:
            return info(self.position.to_bytes(4, "little"))
        if code in (CLIENT_RESTART, DATABASE_FAILURE):
            self.position = int.from_bytes(call.buffer, "little")
            return DONE
        assert code == END
        return DONE

    def _next(self) -> Reply:
        if self.position >= len(self.records):
            return Reply(0, 0, b"") if self.eof_by_length else EOF
        body = self.records[self.position]
        self.position += 1
        return rec(body, self.position if self.numbered else None)


class Conversation(RuleBasedStateMachine):
    """The loader (LoaderProtocol), the module and a target database that commits the
    records a checkpoint covers in the checkpoint's own transaction. Whatever happens —
    reads, checkpoints, database failures, client restarts, in any order — sequence
    numbers rise strictly between repositionings, no record comes back on a call that is
    not a read, and the committed rows are the input's first rows, each exactly once."""

    @initialize(
        size=st.integers(0, 12),
        numbered=st.booleans(),
        eof_by_length=st.booleans(),
    )
    def begin(self, size, numbered, eof_by_length):
        self.records = [b"row %d" % i for i in range(1, size + 1)]
        self.numbered = numbered
        self.eof_by_length = eof_by_length
        self.module = WellBehavedModule(self.records, numbered, eof_by_length)
        self.committed: list[Record] = []
        self.uncommitted: list[Record] = []
        self.saved: tuple[bytes, int] | None = None  # the restart log table
        self.last_seen = 0
        self.ended = False
        self.protocol = LoaderProtocol()
        calls = self.protocol.start()
        assert [c.code for c in calls] == [FIRST]
        self._drive(calls)

    def _drive(self, calls: list[Call]) -> None:
        for call in calls:
            reply = self.module(call)
            outcome = self.protocol.accept(call, reply)
            if call.code in (FIRST, NEXT):
                assert outcome in (Outcome.RECORD, Outcome.END_OF_FILE)
            else:
                assert outcome is Outcome.DONE  # never a record on a non-read call
            if call.code == FIRST:
                self.last_seen = 0
            if call.code in (CLIENT_RESTART, DATABASE_FAILURE):
                assert self.saved is not None
                assert call.buffer == self.saved[0]
                self.last_seen = self.saved[1]
            if outcome is Outcome.RECORD:
                record = self.protocol.record
                assert record.sequence > self.last_seen
                self.last_seen = record.sequence
                self.uncommitted.append(record)

    @precondition(lambda self: not self.ended and self.protocol.phase is Phase.READING)
    @rule()
    def read(self):
        self._drive([self.protocol.read()])

    @precondition(lambda self: not self.ended)
    @rule()
    def checkpoint(self):
        call = self.protocol.checkpoint_due()
        assert call == Call(CHECKPOINT)
        self._drive([call])
        # One transaction: the rows read so far and the checkpoint information.
        self.protocol.checkpoint_stored()
        self.committed += self.uncommitted
        self.uncommitted = []
        self.saved = (self.protocol.checkpoint, self.protocol.checkpoint_sequence)
        assert self.saved[1] == (self.committed[-1].sequence if self.committed else 0)

    @precondition(lambda self: not self.ended)
    @rule()
    def database_failure(self):
        self.uncommitted = []  # rolled back
        calls = self.protocol.database_failed()
        if self.saved is None:
            assert [c.code for c in calls] == [END, FIRST]
        else:
            assert calls == [Call(DATABASE_FAILURE, self.saved[0])]
        self._drive(calls)

    @precondition(lambda self: not self.ended)
    @rule()
    def client_restart(self):
        self.uncommitted = []  # rolled back
        self.module = WellBehavedModule(self.records, self.numbered, self.eof_by_length)
        if self.saved is None:
            self.protocol = LoaderProtocol()
        else:
            self.protocol = LoaderProtocol(
                checkpoint=self.saved[0], checkpoint_sequence=self.saved[1]
            )
        calls = self.protocol.start(restart=True)
        if self.saved is None:
            assert calls == [Call(FIRST)]
        else:
            assert calls == [Call(CLIENT_RESTART, self.saved[0])]
        self._drive(calls)

    @precondition(lambda self: not self.ended)
    @rule()
    def end_of_job(self):
        self._drive([self.protocol.end()])
        assert self.protocol.phase is Phase.ENDED
        self.ended = True

    @precondition(lambda self: self.ended)
    @rule()
    def nothing_after_the_end(self):
        with pytest.raises(InmodError):
            self.protocol.read()
        with pytest.raises(InmodError):
            self.protocol.checkpoint_due()
        with pytest.raises(InmodError):
            self.protocol.accept(Call(NEXT), self.module(Call(NEXT)))

    @invariant()
    def rows_neither_lost_nor_repeated(self):
        if not hasattr(self, "records"):
            return
        rows = self.committed + self.uncommitted
        assert rows == [Record(self.records[i], i + 1) for i in range(len(rows))]


Conversation.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_any_interleaving_with_a_well_behaved_module = Conversation.TestCase
