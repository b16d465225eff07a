"""Record layouts: VARTEXT, JSON, MSGPACK and user decoders, and their refusals."""

from __future__ import annotations

import contextlib

import msgspec
import pytest

from pumpkit.core.layouts import Layout, LayoutError, make_layout

COLUMNS = ("id", "name", "value")


def test_vartext_splits_on_the_delimiter_and_empty_is_null():
    layout = Layout("VARTEXT", COLUMNS, delimiter="|")
    assert layout.decode(b"1|a b|2.5\n") == ("1", "a b", "2.5")
    assert layout.decode(b"2||\r\n") == ("2", None, None)
    assert Layout("vartext", COLUMNS, delimiter="\t").decode("3\tüñ\t4".encode()) == (
        "3",
        "üñ",
        "4",
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [(b"1|2", "2 fields"), (b"1|2|3|4", "4 fields"), (b"\xff|a|b", "not utf-8")],
)
def test_vartext_refuses_what_does_not_fit(body, words):
    with pytest.raises(LayoutError, match=words):
        Layout("VARTEXT", COLUMNS).decode(body)


def test_json_arrays_and_objects():
    layout = Layout("JSON", COLUMNS)
    assert layout.decode(b'[1, "a", 2.5]\n') == (1, "a", 2.5)
    assert layout.decode(b'{"name": "b", "id": 2}') == (2, "b", None)
    with pytest.raises(LayoutError, match="unknown field"):
        layout.decode(b'{"id": 1, "nope": 2}')
    with pytest.raises(LayoutError, match="not JSON"):
        layout.decode(b"[1, 2")
    with pytest.raises(LayoutError, match="array or an object"):
        layout.decode(b"17")


def test_msgpack_keeps_types_exactly():
    layout = Layout("MSGPACK", COLUMNS)
    row = (2**63 - 1, b"\x00bytes", -0.0)
    assert layout.decode(msgspec.msgpack.encode(row)) == row
    with pytest.raises(LayoutError, match="not msgpack"):
        layout.decode(b"\xc1")


def test_a_user_decoder_and_its_failures():
    layout = make_layout("m:f", COLUMNS, load=lambda spec: lambda body: body.decode().split(","))
    assert layout.decode(b"1,a,2") == ("1", "a", "2")
    failing = make_layout("m:f", COLUMNS, load=lambda spec: lambda body: 1 / 0)
    with pytest.raises(LayoutError, match="ZeroDivisionError"):
        failing.decode(b"x")


def test_bad_layouts_are_refused_up_front():
    with pytest.raises(LayoutError, match="layouts: VARTEXT, JSON, MSGPACK"):
        Layout("CSVISH", COLUMNS)
    with pytest.raises(LayoutError, match="one character"):
        Layout("VARTEXT", COLUMNS, delimiter="||")


def test_vartext_batches_decode_like_records_one_by_one():
    layout = Layout("VARTEXT", COLUMNS)
    bodies = [b"1|a|2\n", b"2||\r\n", b"bad\n", "4|\u00fc|5\n".encode(), b"5|x|y|z\n"]
    rows, bad = layout.decode_many(bodies)
    assert rows == [["1", "a", "2"], ["2", None, None], ["4", "\u00fc", "5"]]
    assert [i for i, _ in bad] == [2, 4] and "1 fields" in bad[0][1]
    one_by_one = []
    for body in bodies:
        with contextlib.suppress(LayoutError):
            one_by_one.append(list(layout.decode(body)))
    assert rows == one_by_one
    # A batch that is not UTF-8 falls back to record by record and names the bad record.
    rows, bad = layout.decode_many([b"1|a|2\n", b"\xff|a|b\n"])
    assert rows == [("1", "a", "2")] and bad[0][0] == 1 and "utf-8" in bad[0][1]
