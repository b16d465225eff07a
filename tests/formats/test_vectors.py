"""The golden vectors of formats/vectors/v1, checked against the reader.

Every ``*.json`` under ``formats/vectors/v1/valid`` and ``formats/vectors/v1/invalid`` is one
test case (found by globbing, so a new vector is tested without touching this file). The JSON
says what a reader must do with the vector's files; ``formats/README.md`` describes its
fields. The files are copied to a private directory first, so that the set a vector names is
exactly the files it lists.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pumpkit.core.frame import Encoding, FrameKind, Location, granule_tag
from pumpkit.core.pgcopy import CopyDecoder
from pumpkit.core.rowcodec import Batch, decode_rows
from pumpkit.errors import DumpError, EncryptedError
from pumpkit.io.dumpset.info import get_dumpfile_info
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import VerifyReport, verify_paths

VECTORS = Path(__file__).resolve().parents[2] / "formats" / "vectors" / "v1"
VALID = sorted((VECTORS / "valid").glob("*.json"))
INVALID = sorted((VECTORS / "invalid").glob("*.json"))

# The vectors the format's first version promised; more may be added, none may go.
REQUIRED_VALID = {
    "minimal",
    "compressed",
    "multifile",
    "types",
    "crashcut",
    "crashcut_partial",
    "no_objects",
    "future_minor",
    "header_size_512",
    "header_size_65536",
    "compressed_index",
    "ignorable_frame_flag",
    "index_extra_fields",
    # format 1.1: password encryption
    "encrypted_all",
    "encrypted_data_only",
    "crashcut_parallel",
    "crashcut_unfinished",
    "rowid_table",
    "encrypted_tagged",
}
REQUIRED_INVALID = {
    "not_a_dump",
    "empty",
    "truncated_header",
    "bad_header_crc",
    "newer_major",
    "must_understand_flag",
    "reserved_ignorable_flag_minor0",
    "bad_frame_crc",
    "huge_length",
    "truncated_frame",
    "mixed_sets",
    "missing_file",
    "trailing_garbage",
    "index_mismatch",
    "must_understand_frame_flag",
    "bad_frame_kind",
    "unknown_encoding",
    "duplicate_file_number",
    "extra_file_number",
    # format 1.1: password encryption
    "encrypted_tampered",
    "encrypted_wrong_password",
    "encrypted_no_password",
    "bad_frame_header_crc",
    "bad_header_size",
    "bad_msgpack",
    "body_length_too_big",
    "body_not_a_map",
    "control_flag_mismatch",
    "control_in_header",
    "count_mismatch",
    "created_out_of_range",
    "data_end_in_header",
    "encrypted_flag_mismatch",
    "file_number_zero",
    "frame_reserved",
    "header_padding",
    "header_reserved",
    "header_under_80",
    "huge_uncompressed_length",
    "index_in_header",
    "index_not_array",
    "index_not_before_data_end",
    "lengths_differ",
    "major_zero",
    "no_frame_magic",
    "set_sizes_disagree",
    "tag_first_mismatch",
    "tag_granule_zero",
    "tag_reserved",
    "tag_unknown_flag",
    "tagged_metadata",
    "truncated_before_index",
    "wrong_encoding_for_kind",
}


def to_json(value: Any) -> Any:
    """A decoded msgpack value in the vectors' JSON form (see formats/README.md)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return {"float": "nan"}
        if math.isinf(value):
            return {"float": "inf" if value > 0 else "-inf"}
        if value == 0.0 and math.copysign(1.0, value) < 0:
            return {"float": "-0.0"}
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"hex": bytes(value).hex()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    raise TypeError(f"no JSON form for {type(value).__name__}")


def canonical(value: Any) -> str:
    """Compare JSON values by their text: 1 and 1.0, 1 and true, stay different."""
    return json.dumps(value, sort_keys=True, allow_nan=False)


def decode(payload: Any) -> Any:
    return msgspec.msgpack.decode(bytes(payload))


def load(spec_path: Path, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    assert spec["vector"] == spec_path.stem
    names = [f["name"] for f in spec["files"]] if spec["valid"] else spec["files"]
    paths = {}
    for name in names:
        shutil.copyfile(spec_path.parent / name, tmp_path / name)
        paths[name] = tmp_path / name
    return spec, paths


def open_set(paths: list[Path], password: str | None) -> DumpSetReader:
    """``DumpSetReader.open``, then ``unlock(password)`` when the vector gives a password."""
    reader = DumpSetReader.open(paths)
    if password is not None:
        try:
            reader.unlock(password)
        except BaseException:
            reader.close()
            raise
    return reader


def read_everything(reader: DumpSetReader) -> dict[str, Any]:
    """Everything a reader gives of a set, in JSON form; DumpErrors propagate."""
    frames = []
    definitions: dict[int, dict[str, Any]] = {}
    for fileid, frame in reader.frames():
        h = frame.header
        if h.kind in (FrameKind.INDEX, FrameKind.END):
            continue
        entry: dict[str, Any] = {
            "file": fileid,
            "position": h.offset,
            "length": h.length,
            "kind": h.kind,
            "object_id": h.object_id,
            "count": h.count,
            "encoding": h.encoding,
            "uncompressed_length": h.uncompressed_length,
        }
        tag = granule_tag(frame) if h.kind == FrameKind.TABLE_DATA else None
        if tag is not None:  # format 1.3 (dumpfile.md 5.9)
            entry["tag"] = {
                "granule": tag.granule,
                "sequence": tag.sequence,
                "first": tag.first,
                "last": tag.last,
            }
        if h.kind != FrameKind.TABLE_DATA:
            payload = reader.payload(fileid, frame)
            entry["payload"] = (
                to_json(decode(payload))
                if h.encoding == Encoding.MSGPACK
                else {"hex": bytes(payload).hex()}
            )
            if h.kind == FrameKind.METADATA and h.encoding == Encoding.MSGPACK:
                definition = decode(payload).get("definition")
                if isinstance(definition, dict):
                    definitions[h.object_id] = definition
        frames.append(entry)
    objects = []
    for obj in reader.objects():
        rows: list[Any] = []
        definition = definitions.get(obj.object_id) or {}
        copy: CopyDecoder | None = None
        for fileid, position, length, count, nbytes in obj.frames:
            if definition.get("row_format") == "pgcopy":
                # One COPY stream per granule: a FIRST frame opens the next (5.8, 5.9).
                frame = reader.read_frame(fileid, position, length)
                tag = granule_tag(frame)
                assert tag is not None, "a PGCOPY frame of format 1.3 is tagged"
                if tag.first:
                    copy = CopyDecoder(definition["column_kinds"], definition["columns"])
                assert copy is not None
                decoded = copy.feed(reader.payload(fileid, frame))
                rows.extend([list(r) for r in decoded])
                if tag.last:
                    copy.finish()
                    assert copy.rows == count
                continue
            payload = reader.read(Location(fileid, position, length))
            assert memoryview(payload).nbytes == nbytes
            batch = decode_rows(
                Batch(payload, count, str(reader.path_of(fileid)), position), table=obj.name
            )
            rows.extend([list(r) for r in batch])
        objects.append(
            {
                "object_id": obj.object_id,
                "object_type": obj.object_type,
                "schema": obj.schema,
                "name": obj.name,
                "row_count": obj.rows,
                "data_frames": len(obj.frames),
                "rows": to_json(rows),
            }
        )
    control = reader.control_table()
    return {
        "frames": frames,
        "objects": objects,
        "control_table": None if control is None else to_json(decode(control)),
    }


def check_verify(report: VerifyReport, expected: dict[str, Any], order: list[str]) -> None:
    """Fault count, and the first fault in file order then offset order (None first)."""
    assert len(report.faults) == expected["faults"], report.faults
    if not report.faults:
        return
    first = min(
        report.faults,
        key=lambda f: (
            order.index(Path(f.path).name),
            -1 if f.offset is None else f.offset,
        ),
    )
    assert Path(first.path).name == expected["first_fault_file"], report.faults
    assert first.offset == expected["first_fault_offset"], report.faults


def check_error(exc: DumpError, expected: dict[str, Any]) -> None:
    assert type(exc).__name__ == expected["class"], repr(exc)
    if expected["file"] is None:
        assert exc.path is None, repr(exc)
    else:
        assert exc.path is not None, repr(exc)
        assert Path(exc.path).name == expected["file"], repr(exc)
    assert exc.offset == expected["offset"], repr(exc)


# --- the set of vectors ----------------------------------------------------------------------


def test_vectors_are_present() -> None:
    assert {p.stem for p in VALID} >= REQUIRED_VALID
    assert {p.stem for p in INVALID} >= REQUIRED_INVALID


@pytest.mark.parametrize("kind", ["valid", "invalid"])
def test_every_file_belongs_to_a_vector(kind: str) -> None:
    claimed: set[str] = set()
    for spec_path in sorted((VECTORS / kind).glob("*.json")):
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        assert spec["valid"] is (kind == "valid")
        names = [f["name"] for f in spec["files"]] if spec["valid"] else spec["files"]
        for name in names:
            assert (VECTORS / kind / name).is_file(), f"{spec_path.name} lists missing {name}"
        claimed.update(names)
    on_disk = {p.name for p in (VECTORS / kind).iterdir() if p.suffix != ".json"}
    assert on_disk == claimed


# --- valid vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec_path", VALID, ids=[p.stem for p in VALID])
def test_valid_vector(spec_path: Path, tmp_path: Path) -> None:
    spec, paths = load(spec_path, tmp_path)

    for entry in spec["files"]:
        info = msgspec.structs.asdict(get_dumpfile_info(paths[entry["name"]]))
        assert Path(info.pop("path")).name == entry["name"]
        info["set_files"] = list(info["set_files"])
        assert info == entry["info"], entry["name"]

    opened = [paths[n] for n in spec["open"]]
    password = spec.get("password")
    with open_set(opened, password) as reader:
        assert reader.file_numbers == list(range(1, len(spec["files"]) + 1))
        got = read_everything(reader)
        for fileid, end in spec.get("readable_end", {}).items():
            assert reader.readable_end(int(fileid)) == end
        for frame in spec["frames"]:
            h = reader.read_frame(frame["file"], frame["position"], frame["length"]).header
            assert (h.kind, h.object_id, h.count) == (
                frame["kind"],
                frame["object_id"],
                frame["count"],
            )
    assert canonical(got["frames"]) == canonical(spec["frames"])
    assert canonical(got["objects"]) == canonical(spec["objects"])
    assert canonical(got["control_table"]) == canonical(spec["control_table"])

    # One file is enough to open a set that closed cleanly: the header names its siblings.
    if all(f["info"]["clean_close"] for f in spec["files"]):
        with open_set([opened[0]], password) as reader:
            assert canonical(read_everything(reader)) == canonical(got)

    if password is not None:
        # An encrypted set refuses to be unlocked without a password (a fault of the set).
        with DumpSetReader.open(opened) as reader, pytest.raises(EncryptedError) as caught:
            reader.unlock(None)
        check_error(
            caught.value, {"class": "EncryptedError", "file": spec["open"][0], "offset": None}
        )

    order = [f["name"] for f in spec["files"]]
    check_verify(verify_paths(opened), spec["verify"], order)


# --- invalid vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("spec_path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_vector(spec_path: Path, tmp_path: Path) -> None:
    spec, paths = load(spec_path, tmp_path)
    expected = spec["error"]
    assert expected["operation"] in ("open", "read", "verify")

    for name, info in spec["info"].items():
        if "raises" in info:
            with pytest.raises(DumpError) as caught:
                get_dumpfile_info(paths[name])
            check_error(
                caught.value, {"class": info["raises"], "file": name, "offset": info["offset"]}
            )
        else:
            got = get_dumpfile_info(paths[name])
            assert got.file_type == info["file_type"]
            assert got.file_size == info["file_size"]

    opened = [paths[n] for n in spec["open"]]
    password = spec.get("password")
    if expected["operation"] == "open":
        # Opening includes unlocking with the vector's password, if it gives one.
        with pytest.raises(DumpError) as caught:
            open_set(opened, password).close()
        check_error(caught.value, expected)
    elif expected["operation"] == "read":
        # The error may come as the set is opened or while it is read, never not at all.
        with pytest.raises(DumpError) as caught, open_set(opened, password) as reader:
            read_everything(reader)
        check_error(caught.value, expected)
    else:
        with open_set(opened, password) as reader:
            read_everything(reader)

    report = verify_paths(opened)
    for fault in report.faults:
        assert Path(fault.path).name in spec["files"]
    if spec["verify"] is not None:  # null: the format does not say what verify reports
        check_verify(report, spec["verify"], spec["files"])
    if expected["operation"] == "verify":
        assert any(
            Path(f.path).name == expected["file"] and f.offset == expected["offset"]
            for f in report.faults
        ), report.faults
