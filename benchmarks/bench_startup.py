"""bench_startup: the fixed cost of a pumpkit job from the command line, beside a bare Python.

    python benchmarks/bench_startup.py [--repeat 7] [--json FILE]

Three commands, each as its own child process under bench_load's launcher (fork, exec,
``os.wait4``; wall time from fork to the last descendant reaped), in rounds that rotate
their order:

* bare: ``python -c "import sqlite3, zstandard, msgspec, anyio, aiosqlite"`` (the libraries
  a SQLite job cannot do without: the floor the issue measures against);
* export: ``pumpkit export --database EMPTY.db --dumpfile e.dmp --reuse-dumpfiles
  --foreground --quiet --home <new dir>`` of a SQLite database with one empty table;
* import: ``pumpkit import --database NEW.db --dumpfile e.dmp --foreground --quiet
  --home <new dir>`` of that dump into a database that does not exist yet.

Every pumpkit run gets a new home, so it pays for making its control store, as a first job
does. The table shows the median and best wall of each, and the ratios of the medians to
bare. The goal (issue 16): export and import within 3x of bare. A run that exits non-zero
gets no ratio. It is a measurement, not a test: it exits 0 whatever the numbers are.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import measure  # the launcher: the same measurement as bench_load

BARE = [sys.executable, "-c", "import sqlite3, zstandard, msgspec, anyio, aiosqlite"]
GOAL = 3.0


def pumpkit(*args: object) -> list[str]:
    return [sys.executable, "-m", "pumpkit", *map(str, args)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        work = Path(tmp)
        source = work / "empty.db"
        with sqlite3.connect(source) as conn:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        walls: dict[str, list[float]] = {"bare": [], "export": [], "import": []}
        failed: dict[str, int] = {}

        def run(name: str, number: int) -> None:
            home = work / f"home-{name}-{number}"
            if name == "bare":
                argv = BARE
            elif name == "export":
                argv = pumpkit(
                    "export",
                    "--database",
                    source,
                    "--dumpfile",
                    "e.dmp",
                    "--directory",
                    work,
                    "--reuse-dumpfiles",
                    "--foreground",
                    "--quiet",
                    "--home",
                    home,
                )
            else:
                target = work / f"new-{number}.db"
                argv = pumpkit(
                    "import",
                    "--database",
                    target,
                    "--dumpfile",
                    "e.dmp",
                    "--directory",
                    work,
                    "--foreground",
                    "--quiet",
                    "--home",
                    home,
                )
            got = measure(argv, work / f"{name}-{number}.log", timeout=120)
            if got.rc != 0:
                failed[name] = failed.get(name, 0) + 1
                print((work / f"{name}-{number}.log").read_text(errors="replace"))
            walls[name].append(got.wall)

        run("export", 0)  # untimed warm-up: the page cache and the dump the imports read
        order = ["bare", "export", "import"]
        for number in range(1, args.repeat + 1):
            for name in order:
                run(name, number)
            order = order[1:] + order[:1]
    median = {name: statistics.median(v) for name, v in walls.items()}
    print(
        f"bench_startup: {args.repeat} rounds, python {sys.version.split()[0]},"
        f" {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}"
    )
    print("| command | wall s median | wall s best | / bare (median) | goal | runs failed |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    report: dict[str, object] = {}
    for name in ("bare", "export", "import"):
        ratio = median[name] / median["bare"]
        verdict = "" if name == "bare" else ("met" if ratio <= GOAL else "**not met**")
        goal = "" if name == "bare" else f"<= {GOAL:.0f}x {verdict}"
        print(
            f"| {name} | {median[name]:.3f} | {min(walls[name]):.3f} | {ratio:.2f}x"
            f" | {goal} | {failed.get(name, 0)} |"
        )
        report[name] = {"walls": walls[name], "median": median[name], "ratio": ratio}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
