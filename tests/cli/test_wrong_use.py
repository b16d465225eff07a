"""Every wrong use a new user met (issue 15), as a table: the command, the exit code README.md
gives for it, the words the message must hold, and never a traceback. Then what the command
line says of itself: the exit-code table of ``--help`` against README's, ``-V``, the help of
options, the name of a fresh home's first job, ``ls --summary`` with long names.

Each case runs ``python -m pumpkit`` in a process of its own with its own control store.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from pumpkit import __version__
from pumpkit.engine.session import Session
from pumpkit.exitcodes import MEANINGS, ExitCode

ROOT = Path(__file__).resolve().parents[2]


def run(*args: object, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TERM": "dumb", "LANG": "C.UTF-8"}
    return subprocess.run(
        [sys.executable, "-m", "pumpkit", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def make_db(path: Path, rows: int = 50) -> Path:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"row {i}") for i in range(rows)])
    conn.close()
    return path


@dataclass
class Place:
    """A case's working directory: a source database, a sound dump set, a control store."""

    root: Path
    home: Path = field(init=False)
    db: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.db = make_db(self.root / "src.db")

    def export(self, dumpfile: str = "good%U.dmp", *more: object) -> None:
        done = run(
            "export", "--database", self.db, "--dumpfile", dumpfile, "--home", self.home,
            "--quiet", *more, cwd=self.root,
        )  # fmt: skip
        assert done.returncode == ExitCode.OK, done.stdout + done.stderr


def _kill_case(place: Place) -> list[object]:
    """A stopped job kept in the store (as a failed job is): KILL_JOB from attach."""

    async def define() -> None:
        async with Session(place.home) as s:
            h = await s.open("EXPORT", "FULL", job_name="TO_KILL", database=place.db)
            await s.add_file(h, "kill%U.dmp", directory=str(place.root))
            await s.stop_job(h, keep_master=True)

    anyio.run(define)
    return ["attach", "TO_KILL", "--home", place.home]


@dataclass(frozen=True)
class Case:
    name: str
    args: Callable[[Place], list[object]]
    code: ExitCode
    words: tuple[str, ...]
    stdin: str = ""
    after: Callable[[Place, str], None] | None = None


def _no_job_left(place: Place, _: str) -> None:
    done = run("jobs", "--home", place.home, cwd=place.root)
    assert done.stdout.splitlines()[1:] == [], done.stdout


def _killed(place: Place, out: str) -> None:
    assert "Job TO_KILL killed" in out, out
    _no_job_left(place, out)


def _notes(place: Place) -> list[object]:
    (place.root / "notes.txt").write_text("my notes, not a dump\n")
    return ["import", "--database", place.root / "copy.db", "--dumpfile", "notes.txt"]


def _directory_db(place: Place) -> list[object]:
    place.export()
    (place.root / "adir").mkdir()
    return ["import", "--database", place.root / "adir", "--dumpfile", "good01.dmp"]


def _existing(place: Place) -> list[object]:
    (place.root / "old01.dmp").write_bytes(b"an older file")
    return ["export", "--database", place.db, "--dumpfile", "old%U.dmp"]


CASES = [
    Case(
        "import --database DIR",
        _directory_db,
        ExitCode.NO_INPUT,
        ("--database", "adir", "is a directory", "not a SQLite database"),
        after=_no_job_left,
    ),
    Case(
        "import --dumpfile notes.txt",
        _notes,
        ExitCode.NOT_A_DUMP,
        ("notes.txt", "offset 0", "not a pumpkit dump file"),
        after=_no_job_left,
    ),
    Case(
        "export to an existing dump file",
        _existing,
        ExitCode.USAGE,
        ("old01.dmp", "already exists", "--reuse-dumpfiles"),
        after=_no_job_left,
    ),
    Case(
        "export --parallel 0",
        lambda p: ["export", "--database", p.db, "--dumpfile", "z%U.dmp", "--parallel", "0"],
        ExitCode.USAGE,
        ("--parallel", "1 or more", "not 0"),
        after=_no_job_left,
    ),
    Case(
        "export --parallel -3",
        lambda p: ["export", "--database", p.db, "--dumpfile", "z%U.dmp", "--parallel", "-3"],
        ExitCode.USAGE,
        ("--parallel", "not -3"),
    ),
    Case(
        "import of a missing dump file",
        lambda p: ["import", "--database", p.root / "c.db", "--dumpfile", "gone%U.dmp"],
        ExitCode.NO_INPUT,
        ("gone01.dmp", "does not exist"),
        after=_no_job_left,
    ),
    Case(
        "export without --database",
        lambda p: ["export", "--dumpfile", "z%U.dmp"],
        ExitCode.USAGE,
        ("--database is required",),
    ),
    Case(
        "an unknown option",
        lambda p: ["export", "--databse", p.db],
        ExitCode.USAGE,
        ("unrecognized arguments", "--databse"),
    ),
    Case(
        "KILL_JOB",
        _kill_case,
        ExitCode.KILLED,
        ("Job TO_KILL killed",),
        stdin="KILL_JOB\nyes\n",
        after=_killed,
    ),
    Case(
        "attach to no such job",
        lambda p: ["attach", "NOBODY", "--home", p.home],
        ExitCode.USAGE,
        ("NOBODY",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_wrong_use(case: Case, tmp_path: Path) -> None:
    place = Place(tmp_path)
    args = case.args(place)
    if "--home" not in args:
        args = [*args, "--home", place.home]
    done = run(*args, cwd=tmp_path, stdin=case.stdin)
    said = done.stdout + done.stderr
    assert done.returncode == case.code, f"exit {done.returncode}, not {case.code}:\n{said}"
    for words in case.words:
        assert words in said, f"{words!r} not in:\n{said}"
    assert "Traceback" not in said, said
    if case.code not in (ExitCode.OK, ExitCode.KILLED):
        # One message, on standard error, naming the program.
        assert done.stderr.strip(), said
        assert any(line.startswith("pumpkit") for line in done.stderr.splitlines()), said
    if case.after is not None:
        case.after(place, said)


# -- after a wrong use, the right one ------------------------------------------------------------


def test_first_job_of_a_fresh_home_is_01_even_after_a_refused_one(tmp_path: Path) -> None:
    place = Place(tmp_path)
    (tmp_path / "e01.dmp").write_bytes(b"in the way")
    refused = run("export", "--database", place.db, "--dumpfile", "e%U.dmp", "--home",
                  place.home, cwd=tmp_path)  # fmt: skip
    assert refused.returncode == ExitCode.USAGE, refused.stderr
    done = run("export", "--database", place.db, "--dumpfile", "e%U.dmp", "--home", place.home,
               "--reuse-dumpfiles", cwd=tmp_path)  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "Starting SYS_EXPORT_FULL_01:" in done.stdout, done.stdout
    imported = run("import", "--database", tmp_path / "copy.db", "--dumpfile", "e%U.dmp",
                   "--home", place.home, cwd=tmp_path)  # fmt: skip
    assert imported.returncode == ExitCode.OK, imported.stdout + imported.stderr
    assert "Starting SYS_IMPORT_FULL_01:" in imported.stdout, imported.stdout
    # Said once, by the job's log, not again by the client at the end.
    assert imported.stdout.count("successfully completed") == 1, imported.stdout
    assert done.stdout.count("successfully completed") == 1, done.stdout


def test_sqlfile_with_an_absolute_path_is_written_there(tmp_path: Path) -> None:
    place = Place(tmp_path)
    place.export()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run("import", "--sqlfile", elsewhere / "ddl.sql", "--dumpfile", "good01.dmp",
               "--home", place.home, cwd=tmp_path)  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "CREATE TABLE" in (elsewhere / "ddl.sql").read_text()
    assert not (tmp_path / "ddl.sql").exists()
    # A relative name goes into --directory.
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (tmp_path / "good01.dmp").rename(dumps / "good01.dmp")
    done = run("import", "--sqlfile", "rel.sql", "--directory", dumps, "--dumpfile",
               "good01.dmp", "--home", place.home, cwd=tmp_path)  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert (dumps / "rel.sql").is_file()


# -- what the command line says of itself ------------------------------------------------------


def _readme_exit_codes() -> dict[int, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("| code | meaning |")
    table = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        code, meaning = (cell.strip() for cell in line.strip("|").split("|"))
        table[int(code)] = meaning
    return table


def test_help_prints_the_exit_codes_as_the_readme_gives_them(tmp_path: Path) -> None:
    done = run("--help", cwd=tmp_path)
    assert done.returncode == ExitCode.OK, done.stderr
    printed = {
        int(m.group(1)): m.group(2).strip()
        for m in re.finditer(r"^\s+(\d+)  (.+)$", done.stdout.split("exit codes:", 1)[1], re.M)
    }
    assert printed == _readme_exit_codes()
    assert printed == {int(c): m for c, m in MEANINGS.items()}
    assert set(MEANINGS) == set(ExitCode)


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag: str, tmp_path: Path) -> None:
    done = run(flag, cwd=tmp_path)
    assert done.returncode == ExitCode.OK
    assert done.stdout.strip() == f"pumpkit {__version__}"


@pytest.mark.parametrize("operation", ["export", "import"])
def test_help_names_the_operations_own_default_job(operation: str, tmp_path: Path) -> None:
    done = run(operation, "--help", cwd=tmp_path)
    text = " ".join(done.stdout.split())
    assert f"SYS_{operation.upper()}_FULL_01" in text, text
    other = "IMPORT" if operation == "export" else "EXPORT"
    assert f"SYS_{other}_" not in text, text


def _help_of(text: str, option: str) -> str:
    """The help text of ``option`` in an argparse help page (what follows its choices)."""
    flat = " ".join(text.split())
    match = re.search(rf"{re.escape(option)} \{{[A-Z_,]+\}} (.*?)(?= --|$)", flat)
    assert match, f"{option} not in {flat}"
    return match.group(1)


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("--compression", ("zstd", "default ALL")),
        ("--encryption", ("password", "default")),
        ("--estimate", ("BLOCKS", "STATISTICS", "default")),
    ],
)
def test_export_options_have_help(option: str, words: tuple[str, ...], tmp_path: Path) -> None:
    said = _help_of(run("export", "--help", cwd=tmp_path).stdout, option)
    for word in words:
        assert word in said, said


def test_ls_summary_keeps_its_columns_with_long_names(tmp_path: Path) -> None:
    db = tmp_path / "long.db"
    long_name = "a_table_whose_name_is_much_longer_than_thirty_two_characters"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(f"CREATE TABLE {long_name} (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE s (id INTEGER PRIMARY KEY)")
        conn.executemany(f"INSERT INTO {long_name} VALUES (?)", [(i,) for i in range(30)])
    conn.close()
    home = tmp_path / "home"
    done = run("export", "--database", db, "--dumpfile", "l%U.dmp", "--home", home, "--quiet",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    for flags in (["--summary"], []):
        lines = run("ls", *flags, tmp_path / "l01.dmp", cwd=tmp_path).stdout.splitlines()[1:]
        header = lines[0]
        # Every row has the header's number of fields, and the numbers end where the
        # header's titles end (right-aligned under them).
        width = len(header.split())
        rows = [line for line in lines[1:] if not line.startswith("note:")]
        assert any(long_name in line for line in rows), lines
        for line in rows:
            assert len(line.split()) == width, (line, header)
            assert len(line) == len(header), (line, header)
