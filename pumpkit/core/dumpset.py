"""The set checks: whether the files found make one whole dump-file set (section 9).

Theory of operation: a reader opening a set and ``verify`` checking one ask the same question
of the headers of the files they found (those given, and those their headers name). Every
rule of section 9 of ``formats/dumpfile.md`` lives here, once: ``set_faults`` takes each
file's name and decoded header and returns every fault, each with the file, the offset of the
header field at fault (from ``pumpkit.core.header``'s layout), the reason and the error
class. The reader raises the first (``SetFault.error``), ``verify`` lists them all. The rules,
in the order their faults come:

1. every file carries the GUID of the lowest-numbered file (a file that does not is left out
   of the rules below);
2. no file number occurs twice;
3. the headers that know the set's size (``set_file_count``, written at set close) agree;
4. no file number is beyond that size;
5. every number from 1 to the size (or, for a set cut short, to the largest number seen) is
   present; one fault per missing file, named by ``set_files`` where the header knows it.

Pure: headers in, faults out; no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pumpkit.core.header import OFFSET_FILE_NUMBER, OFFSET_GUID, FileHeader, file_name_fault
from pumpkit.errors import DumpError, IncompleteSetError

__all__ = ("FileRowFault", "SetFault", "file_row_faults", "set_faults")


@dataclass(frozen=True, slots=True)
class SetFault:
    """One way the files fail to be one set: where (file and offset, ``None`` for the whole
    set), why, and the error a reader raises for it."""

    path: str
    offset: int | None
    reason: str
    error: type[DumpError] = IncompleteSetError

    def exception(self) -> DumpError:
        """The error a reader raises for this fault."""
        return self.error(self.reason, path=self.path, offset=self.offset)


def set_faults(files: Sequence[tuple[str, FileHeader]]) -> list[SetFault]:
    """Every fault of section 9 among ``files`` (name, header), in the order of the rules and,
    within a rule, of ``files`` (rules 1-2) or of the file numbers (4-5). Empty: one set."""
    if not files:
        return []
    first_path, first = min(files, key=lambda f: f[1].file_number)
    faults: list[SetFault] = []
    by_number: dict[int, str] = {}
    for path, header in files:
        if header.guid != first.guid:
            faults.append(
                SetFault(
                    path,
                    OFFSET_GUID,
                    f"{path} belongs to job {header.guid_hex}, {first_path} to"
                    f" {first.guid_hex}: files of two dump-file sets are mixed",
                )
            )
            continue
        n = header.file_number
        if n in by_number:
            faults.append(
                SetFault(
                    path,
                    OFFSET_FILE_NUMBER,
                    f"{path} and {by_number[n]} are both file number {n} of the set",
                )
            )
            continue
        by_number[n] = path
    counts = sorted({h.body.set_file_count for _, h in files} - {0})
    if len(counts) > 1:
        faults.append(
            SetFault(
                first_path, None, f"the files of the set disagree on its size ({counts} files)"
            )
        )
    count = counts[-1] if counts else 0
    if count:
        faults.extend(
            SetFault(
                path,
                OFFSET_FILE_NUMBER,
                f"{path} is file number {n}, but the set has only {count} files",
            )
            for n, path in sorted(by_number.items())
            if n > count
        )
    expected = count or max(by_number, default=0)
    names = first.body.set_files
    faults.extend(
        SetFault(
            first_path,
            None,
            f"the dump-file set of {first_path} is incomplete: missing"
            f" {names[n - 1] if n - 1 < len(names) else f'file number {n}'}"
            f" (the set has {expected} files)",
        )
        for n in range(1, expected + 1)
        if n not in by_number
    )
    return faults


@dataclass(frozen=True, slots=True)
class FileRowFault:
    """A FILE row of a set's control table that names a file by more than a plain name:
    the row's place in the table (0-based), the column and why."""

    row: int
    column: str
    name: str
    reason: str


def file_row_faults(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> list[FileRowFault]:
    """Every FILE row of a control table (as an export copies it into its set) whose file
    name is not a plain file name. ``user_file_name`` (the name or template the export was
    given) must be one; ``file_name`` is the exporter's own path of the file, which an
    import never opens, but its last part must be a plain name and no part of it ``..``.
    Empty: every FILE row is plain."""
    at = {name: i for i, name in enumerate(columns)}
    if "object_type" not in at:
        return []
    faults = []
    for number, row in enumerate(rows):
        if len(row) <= at["object_type"] or row[at["object_type"]] != "FILE":
            continue
        for column in ("user_file_name", "file_name"):
            if column not in at or at[column] >= len(row) or row[at[column]] is None:
                continue
            value = row[at[column]]
            if not isinstance(value, str):
                faults.append(FileRowFault(number, column, repr(value), "is not a string"))
                continue
            name = value
            if column == "file_name":
                parts = value.split("/")
                name = parts[-1]
                if ".." in parts:
                    faults.append(FileRowFault(number, column, value, "holds a '..' part"))
                    continue
            fault = file_name_fault(name)
            if fault is not None:
                faults.append(FileRowFault(number, column, value, fault))
    return faults
