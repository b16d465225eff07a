"""Peak RSS of import, verify, ls and cat (JSON lines) of memory bombs, each in a child process of its own.

The bombs are those of tests/hostile/test_bounded_memory.py (``tests/hostile/bombs.py``):
a real export whose table's frames are replaced, every checksum right. Printed: one line per
(bomb, command) with the set's size on disk, the child's peak RSS (VmHWM), and the outcome;
and the peak RSS of a child that only imports pumpkit (the floor). The bound is
``pumpkit.core.limits.PEAK_RSS_BOUND``.

    .venv/bin/python benchmarks/bomb_rss.py [OUT_DIR]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "hostile"))

from bombs import MB, baseline, batch_size, bomb, export_source, measure

from pumpkit.core.limits import MAX_DATA_FRAME_BYTES, PEAK_RSS_BOUND


def outcome(result: dict[str, object]) -> str:
    if "state" in result:
        errors = result.get("errors") or []
        return str(result["state"]) + (f": {str(errors[0])[-70:]}" if errors else "")  # type: ignore[index]
    if "sound" in result:
        faults = result.get("faults") or []
        return "sound" if result["sound"] else f"{len(faults)} faults"  # type: ignore[arg-type]
    if "objects" in result:
        return "listed"
    if "exit" in result:
        return f"exit {result['exit']}"
    return f"{result.get('error')}: {str(result.get('message'))[-70:]}"


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="bombs-"))
    root.mkdir(parents=True, exist_ok=True)
    exported = export_source(root)
    print(
        f"floor (a child that imports pumpkit): {baseline() / MB:.0f} MB;"
        f" bound {PEAK_RSS_BOUND / MB:.0f} MB"
    )
    print(f"{'bomb':<34} {'on disk':>10} {'command':<7} {'peak RSS':>9}  outcome")
    at_limit = MAX_DATA_FRAME_BYTES - batch_size(0)
    cases = [(f"{n} x 255 MB frame", n, 255 * MB) for n in (1, 4, 8)]
    cases += [(f"{n} x 64 MiB frame (at the limit)", n, at_limit) for n in (1, 4, 8)]
    for label, frames, size in cases:
        directory = root / label.replace(" ", "_")
        paths = bomb(exported, directory / "dump", frames, size)
        disk = sum(p.stat().st_size for p in paths)
        for what in ("verify", "ls", "cat", "import"):
            result = measure(what, paths[0], directory / "target.db", directory / "home")
            peak = int(result["peak_rss"])  # type: ignore[call-overload]
            print(f"{label:<34} {disk:>10,} {what:<7} {peak / MB:>6.0f} MB  {outcome(result)}")
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
