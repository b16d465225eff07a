"""``pumpkit info|ls|verify`` as a user runs them: real processes, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pumpkit.core.header import FORMAT_MINOR
from pumpkit.exitcodes import ExitCode


def pumpkit(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "pumpkit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_info_of_a_dump_file(sample_set):
    paths, _ = sample_set
    done = pumpkit("info", paths[0])
    assert done.returncode == ExitCode.OK, done.stderr
    assert "Job name:             SAMPLE" in done.stdout
    assert f"Format version:       1.{FORMAT_MINOR}" in done.stdout
    facts = json.loads(pumpkit("info", "--json", paths[0]).stdout)
    assert facts[0]["file_type"] == "pumpkit"
    assert facts[0]["master_present"] is True
    assert facts[0]["set_files"] == [p.name for p in paths]


@pytest.mark.parametrize(
    ("kind", "code", "words"),
    [
        ("empty", ExitCode.NOT_A_DUMP, "not a pumpkit dump file"),
        ("text", ExitCode.NOT_A_DUMP, "not a pumpkit dump file"),
        ("directory", ExitCode.NO_INPUT, "is a directory"),
        ("missing", ExitCode.NO_INPUT, "no such file"),
    ],
)
def test_info_of_what_is_not_a_dump_file(tmp_path, kind, code, words):
    path = tmp_path / kind
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello, this is not a dump\n")
    elif kind == "directory":
        path.mkdir()
    done = pumpkit("info", path)
    assert done.returncode == code
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert words in lines[0] and str(path) in lines[0]
    assert "Traceback" not in done.stderr


def test_info_of_a_damaged_header_names_file_and_offset(sample_set):
    paths, _ = sample_set
    data = bytearray(paths[0].read_bytes())
    data[100] ^= 0xFF
    paths[0].write_bytes(bytes(data))
    done = pumpkit("info", paths[0])
    assert done.returncode == ExitCode.FAULT
    assert str(paths[0]) in done.stderr and "offset 4092" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_ls_lists_every_frame_and_totals(sample_set):
    paths, rows = sample_set
    done = pumpkit("ls", "--json", paths[0])
    assert done.returncode == ExitCode.OK, done.stderr
    doc = json.loads(done.stdout)
    by_name = {o["name"]: o for o in doc["objects"]}
    assert set(by_name) == set(rows)
    for name, table_rows in rows.items():
        assert by_name[name]["rows"] == len(table_rows)
        assert sum(f["rows"] for f in by_name[name]["frames"]) == len(table_rows)
    text = pumpkit("ls", paths[0]).stdout.splitlines()
    assert text[1].split() == ["TYPE", "OBJECT", "FILEID", "POSITION", "LENGTH", "ROWS", "BYTES"]
    assert len(text) == 2 + sum(len(o["frames"]) for o in doc["objects"])


def test_verify_sound_then_damaged(sample_set):
    paths, _ = sample_set
    done = pumpkit("verify", *paths)
    assert done.returncode == ExitCode.OK
    assert done.stdout.strip().endswith("sound")
    data = bytearray(paths[0].read_bytes())
    data[5000] ^= 0x01
    data[-40] ^= 0x01
    paths[0].write_bytes(bytes(data))
    done = pumpkit("verify", paths[0])
    assert done.returncode == ExitCode.FAULT
    report = json.loads(pumpkit("verify", "--json", paths[0]).stdout)
    assert report["sound"] is False
    assert len(report["faults"]) >= 2
    assert all(f["offset"] is not None for f in report["faults"])
    assert "fault(s)" in done.stdout.splitlines()[-1]


def test_verify_a_set_with_a_file_missing(tmp_path):
    from conftest import write_sample_set

    paths, _ = write_sample_set(tmp_path, filesize=5000, batches=6)
    assert len(paths) >= 3
    paths[1].unlink()
    done = pumpkit("verify", paths[0])
    assert done.returncode == ExitCode.FAULT
    assert f"missing {paths[1].name}" in done.stdout
    done = pumpkit("ls", paths[0])
    assert done.returncode == ExitCode.FAULT
    assert paths[1].name in done.stderr and "Traceback" not in done.stderr


def test_usage_errors_exit_2():
    assert pumpkit().returncode == ExitCode.USAGE
    assert pumpkit("info").returncode == ExitCode.USAGE
    assert pumpkit("frobnicate").returncode == ExitCode.USAGE
