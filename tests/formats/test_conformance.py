"""The spec against the vectors, with the spec's own numbers: no pumpkit constant is used.

Every field offset, size and type, every flag bit, encoding, kind and error checked here is
parsed out of the tables of ``formats/dumpfile.md`` (sections 3.2, 3.3, 5.1, 5.2, 5.3, 5.5,
5.9 and 11). Each vector's bytes are then decoded with those numbers alone and compared with
the vector's JSON, and each invalid vector's error class and offset with the row of the
error table that names it. Change one offset in the spec, and this fails: spec and code
cannot drift apart in silence.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import struct
import uuid
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "formats" / "dumpfile.md"
VECTORS = ROOT / "formats" / "vectors" / "v1"
STRUCT_CODE = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i64": "q"}


# --- the spec's tables -----------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@cache
def spec_tables() -> dict[str, list[list[dict[str, str]]]]:
    """Every table of the spec, by the number of the section it is in ("3.2", "11", ...)."""
    out: dict[str, list[list[dict[str, str]]]] = {}
    section = ""
    lines = SPEC.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        heading = re.match(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", lines[i])
        if heading:
            section = heading.group(1)
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|--"):
            names = _cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(names, _cells(lines[i]), strict=True)))
                i += 1
            out.setdefault(section, []).append(rows)
            continue
        i += 1
    return out


def table(section: str, *columns: str) -> list[dict[str, str]]:
    """The first table of ``section`` that has all ``columns``."""
    for rows in spec_tables().get(section, []):
        if rows and all(c in rows[0] for c in columns):
            return rows
    raise AssertionError(f"dumpfile.md section {section} has no table with columns {columns}")


def plain(cell: str) -> str:
    return cell.replace("`", "").strip()


@cache
def layout(section: str, offset_column: str = "Offset") -> dict[str, tuple[int, int, str]]:
    """Name -> (offset, size, type) of the fixed fields of a layout table."""
    fields = {}
    for row in table(section, offset_column, "Size", "Type", "Name"):
        offset, size = plain(row[offset_column]), plain(row["Size"])
        if offset.isdigit() and size.isdigit():
            fields[plain(row["Name"])] = (int(offset), int(size), plain(row["Type"]))
    return fields


def struct_of(fields: dict[str, tuple[int, int, str]]) -> tuple[struct.Struct, list[str]]:
    """A little-endian struct of the fields, which must lie back to back from 0."""
    code, names, at = "<", [], 0
    for name, (offset, size, kind) in sorted(fields.items(), key=lambda f: f[1][0]):
        assert offset == at, f"field {name} at {offset}, the one before ends at {at}"
        code += f"{size}s" if kind == "bytes" else STRUCT_CODE[kind]
        names.append(name)
        at += size
    unpacker = struct.Struct(code)
    assert unpacker.size == at
    return unpacker, names


@cache
def flags(section: str) -> dict[str, int]:
    """Flag name -> mask, from a Bit/Mask/Name table (reserved rows left out)."""
    out = {}
    for row in table(section, "Bit", "Mask", "Name"):
        name = plain(row["Name"])
        if re.fullmatch(r"[A-Z_]+", name):
            out[name] = int(plain(row["Mask"]), 16)
    return out


def numbered(section: str, key: str) -> dict[int, str]:
    out = {}
    for row in table(section, key, "Name"):
        value, name = plain(row[key]), plain(row["Name"])
        if value.isdigit() and re.fullmatch(r"[A-Z_]+", name):
            out[int(value)] = name
    return out


def decode_prefix(data: bytes) -> dict[str, Any]:
    unpacker, names = struct_of(layout("3.2"))
    return dict(zip(names, unpacker.unpack_from(data, 0), strict=True))


def decode_frame_header(data: bytes, at: int) -> dict[str, Any]:
    unpacker, names = struct_of(layout("5.1"))
    return dict(zip(names, unpacker.unpack_from(data, at), strict=True))


def frame_header_size() -> int:
    return struct_of(layout("5.1"))[0].size


# --- the vectors -----------------------------------------------------------------------------

VALID = sorted((VECTORS / "valid").glob("*.json"))
INVALID = sorted((VECTORS / "invalid").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_spec_tables_are_there():
    assert {"magic", "major", "minor", "header_size", "flags", "body_length"} <= set(layout("3.2"))
    assert {"kind", "flags", "payload_length", "header_crc"} <= set(layout("5.1"))
    assert {"CLEAN_CLOSE", "CONTROL_TABLE", "ENCRYPTED"} <= set(flags("3.3"))
    assert {"COMPRESSED", "ENCRYPTED", "TAGGED"} <= set(flags("5.2"))
    assert {"FIRST", "LAST"} <= set(flags("5.9"))
    assert {"granule", "sequence", "tag_flags"} <= set(layout("5.9", "Offset in payload"))
    assert numbered("5.3", "Value")[2] == "PGCOPY"
    assert numbered("5.5", "Kind")[2] == "TABLE_DATA"


@pytest.mark.parametrize("spec_path", VALID, ids=[p.stem for p in VALID])
def test_valid_vector_read_with_the_spec_numbers(spec_path: Path) -> None:
    spec = load(spec_path)
    header_flags = flags("3.3")
    frame_flags = flags("5.2")
    tag_flags = flags("5.9")
    kinds = numbered("5.5", "Kind")
    encodings = numbered("5.3", "Value")
    raw = {f["name"]: (spec_path.parent / f["name"]).read_bytes() for f in spec["files"]}
    for number, entry in enumerate(spec["files"], start=1):
        data, info = raw[entry["name"]], entry["info"]
        h = decode_prefix(data)
        size = h["header_size"]
        assert h["magic"] == bytes.fromhex("89504b440d0a1a0a")
        assert f"{h['major']}.{h['minor']}" == info["file_version"]
        assert h["file_number"] == info["file_number"] == number
        assert str(uuid.UUID(bytes=h["guid"])) == info["guid"]
        assert size == info["block_size"]
        assert h["data_end"] == info["data_end"]
        created = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            microseconds=h["created_us"]
        )
        assert created.isoformat(timespec="seconds") == info["creation_date"]
        assert bool(h["flags"] & header_flags["CLEAN_CLOSE"]) == info["clean_close"]
        assert bool(h["flags"] & header_flags["CONTROL_TABLE"]) == info["master_present"]
        assert bool(h["flags"] & header_flags["ENCRYPTED"]) == (info["encryption_mode"] != "none")
        (crc,) = struct.unpack_from("<I", data, size - 4)
        assert crc == zlib.crc32(data[: size - 4])
    fields = layout("5.1")
    crc_span = fields["header_crc"][0]
    top = frame_header_size()
    tag_layout = layout("5.9", "Offset in payload")
    tag_struct, tag_names = struct_of(tag_layout)
    for frame in spec["frames"]:
        data = raw[spec["files"][frame["file"] - 1]["name"]]
        at = frame["position"]
        f = decode_frame_header(data, at)
        assert f["magic"] == b"PKFR"
        assert kinds.get(f["kind"]) or 7 <= f["kind"] <= 127
        assert (f["kind"], f["object_id"], f["count"], f["encoding"]) == (
            frame["kind"],
            frame["object_id"],
            frame["count"],
            frame["encoding"],
        )
        assert f["encoding"] in encodings
        assert f["uncompressed_length"] == frame["uncompressed_length"]
        assert top + f["payload_length"] == frame["length"]
        assert f["header_crc"] == zlib.crc32(data[at : at + crc_span])
        payload = data[at + top : at + top + f["payload_length"]]
        assert f["payload_crc"] == zlib.crc32(payload)
        tagged = bool(f["flags"] & frame_flags["TAGGED"])
        assert tagged == ("tag" in frame)
        t = tag_struct.size if tagged else 0
        e = 28 if f["flags"] & frame_flags["ENCRYPTED"] else 0
        if not f["flags"] & frame_flags["COMPRESSED"]:
            assert f["uncompressed_length"] == f["payload_length"] - t - e  # 5.4
        if tagged:
            tag = dict(zip(tag_names, tag_struct.unpack_from(payload, 0), strict=True))
            assert tag["granule"] == frame["tag"]["granule"]
            assert tag["sequence"] == frame["tag"]["sequence"]
            assert bool(tag["tag_flags"] & tag_flags["FIRST"]) == frame["tag"]["first"]
            assert bool(tag["tag_flags"] & tag_flags["LAST"]) == frame["tag"]["last"]


# --- the error table -------------------------------------------------------------------------


@cache
def error_rows() -> list[dict[str, str]]:
    return table("11", "Condition", "Error", "Offset", "Vector")


def vectors_of(row: dict[str, str]) -> list[tuple[str, bool]]:
    """The vectors a row names, each with whether it is named for ``verify``."""
    out = []
    for part in row["Vector"].split(","):
        name = re.search(r"`([a-z0-9_]+)`", part)
        if name:
            out.append((name.group(1), "(verify)" in part))
    return out


def frame_containing(data: bytes, offset: int) -> tuple[int, int]:
    """(P, payload_length) of the frame whose bytes hold ``offset``, found by walking the
    frames from the header with the spec's field offsets."""
    position = layout("3.2")["header_size"][0]
    (p,) = struct.unpack_from("<I", data, position)
    top = frame_header_size()
    length_at = layout("5.1")["payload_length"][0]
    while True:
        if p + top > len(data):
            return p, 0
        (length,) = struct.unpack_from("<I", data, p + length_at)
        if offset < p + top + length:
            return p, length
        p += top + length


def expected_offset(expression: str, data: bytes, got: int | None) -> bool:
    """Whether ``got`` is what the error table's offset ``expression`` says, in ``data``."""
    text = plain(expression.split("(")[0])
    prefix = decode_prefix(data) if len(data) >= 80 else None
    if text == "none":
        return got is None
    if got is None:
        return False
    if text.isdigit():
        return got == int(text)
    if text == "file length":
        return got == len(data)
    if text == "H - 4":
        return prefix is not None and got == prefix["header_size"] - 4
    if text == "data_end":
        return prefix is not None and got == prefix["data_end"]
    if text == "the first nonzero padding byte":
        assert prefix is not None
        start = 80 + prefix["body_length"]
        return data[got] != 0 and not any(data[start:got])
    if text == "P of the INDEX frame":
        return prefix is not None and got == prefix["index_position"]
    if text == "position":
        p, _ = frame_containing(data, got)
        return got == p
    p, length = frame_containing(data, got)
    if text == "P":
        # A frame start, or where the header says one is though the file ends before it.
        return got == p or (prefix is not None and got == prefix["index_position"])
    if text == "P + 32 + a":
        top = frame_header_size()
        return got == len(data) and top <= got - p < top + length
    match = re.fullmatch(r"P \+ (\d+)", text)
    assert match, f"an offset the test cannot read: {expression!r}"
    return got - p == int(match.group(1))


NAMED = [
    (row["Condition"], name, for_verify)
    for row in error_rows()
    for name, for_verify in vectors_of(row)
]


def test_every_invalid_vector_is_in_the_error_table():
    named = {name for _, name, _ in NAMED}
    assert {p.stem for p in INVALID} <= named, {p.stem for p in INVALID} - named
    assert named <= {p.stem for p in INVALID}, named - {p.stem for p in INVALID}


@pytest.mark.parametrize(
    ("condition", "name", "for_verify"),
    NAMED,
    ids=[f"{n}-{i}" for i, (_, n, _) in enumerate(NAMED)],
)
def test_the_error_table_row_matches_its_vector(condition, name, for_verify):
    row = next(r for r in error_rows() if r["Condition"] == condition)
    spec = load(VECTORS / "invalid" / f"{name}.json")
    error = spec["error"]
    data = (VECTORS / "invalid" / error["file"]).read_bytes()
    if for_verify:
        # A fault only verify meets: one of the faults it reports is where the row says.
        from pumpkit.io.dumpset.verify import verify_paths

        report = verify_paths([VECTORS / "invalid" / f for f in spec["files"]])
        offsets = [f.offset for f in report.faults if Path(f.path).name == error["file"]]
        assert any(expected_offset(row["Offset"], data, o) for o in offsets), (row, offsets)
        return
    assert error["class"] == plain(row["Error"]), (condition, error)
    assert expected_offset(row["Offset"], data, error["offset"]), (row["Offset"], error)


def test_the_control_table_columns_are_all_specified():
    """Spec against code in the other direction: control-table.md lists every column pumpkit
    writes into a set, in order."""
    from pumpkit.core.control_table import CONTROL_COLUMNS

    text = (ROOT / "formats" / "control-table.md").read_text(encoding="utf-8")
    section = text.split("## Each column, byte for byte", 1)[1].split("\n## ", 1)[0]
    listed = []
    for line in section.splitlines():
        if line.startswith("| `"):
            listed += re.findall(r"`([a-z_]+)`", _cells(line)[0])
    assert listed == list(CONTROL_COLUMNS)
