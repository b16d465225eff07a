"""Password encryption of dump-file sets, end to end through the Session API.

* round trips with ENCRYPTION ALL, DATA_ONLY and METADATA_ONLY are exact, and the frames
  carry the ENCRYPTED flag exactly where the scope says; the header says the set is encrypted;
* an import without the password, or with a wrong one, stops at once (the header's key check)
  and leaves the target database as it was (absent, or byte for byte unchanged);
* a changed byte of an encrypted frame, with both CRCs mended so that only the GCM tag can
  tell, fails the import naming the file and the offset, and commits no row of that granule;
  so does a changed object id or row count in the frame header (associated data);
* with COMPRESSION NONE, a distinctive value and a table name of the source are in the file
  when (and only when) the scope leaves them in clear;
* a detached encrypted export killed with SIGKILL restarts only with its password: without
  one and with a wrong one the restart fails saying so, with the right one it completes and
  the import is exact. The password is stored nowhere.

The source is ``make_tricky_database`` (a 1 MB blob) plus a WITHOUT ROWID table of 3 MB - one
granule of several TABLE_DATA frames, so that a damaged last frame must roll back rows the
import already inserted - and a table holding a marker text.
"""

from __future__ import annotations

import concurrent.futures
import random
import re
import shutil
import sqlite3
import string
import struct
from contextlib import closing
from pathlib import Path

import anyio
import msgspec
import pytest
from process_helpers import kill_runner, wait_until

from pumpkit.core.checksum import crc32
from pumpkit.core.frame import FRAME_HEADER_SIZE, FrameFlags, FrameKind
from pumpkit.core.header import FORMAT_MINOR, OFFSET_FLAGS, HeaderFlags, decode_header
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session
from pumpkit.errors import CorruptDumpError, EncryptedError, PumpkitError
from pumpkit.io.dumpset.info import get_dumpfile_info
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.testing.sqlite_fixtures import compare_databases, make_tricky_database

PASSWORD = "correct horse battery staple"
WRONG = "correct horse battery stapler"
MARKER_VALUE = "PLAINTEXT-MARKER-7f3a9c-Zq0"
SECRET_TABLE = "secret_table_kq81"
BULK_TABLE = "bulk rows"
SCOPES = ("ALL", "DATA_ONLY", "METADATA_ONLY")
FINAL = (JobState.COMPLETED, JobState.STOPPED, JobState.NOT_RUNNING, JobState.UNDEFINED)
#: Frame kinds that follow the scope (INDEX and END frames hold no user data).
DATA_KINDS = {FrameKind.TABLE_DATA}
META_KINDS = {FrameKind.METADATA, FrameKind.CONTROL_TABLE}


def run_async(fn, *args):
    """Run ``fn(*args)`` in an event loop of its own thread (for module-scoped fixtures)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn, *args).result()


def make_source(path: Path) -> None:
    make_tricky_database(path, big_blob_mb=1)
    rng = random.Random(1234)
    with closing(sqlite3.connect(path)) as conn, conn:
        # No rowid: planned as one granule, read in ~1 MB batches - several frames.
        conn.execute(
            f'CREATE TABLE "{BULK_TABLE}" (k INTEGER PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID'
        )
        conn.executemany(
            f'INSERT INTO "{BULK_TABLE}" VALUES (?, ?)',
            ((i, "".join(rng.choices(string.ascii_letters, k=1000))) for i in range(3000)),
        )
        conn.execute(f"CREATE TABLE {SECRET_TABLE} (id INTEGER PRIMARY KEY, note TEXT)")
        conn.execute(f"INSERT INTO {SECRET_TABLE} VALUES (1, ?)", (MARKER_VALUE,))


async def job_log(s: Session, name: str) -> list[str]:
    return [t for _, _, t in await s._store.log_lines(name)]


async def export(
    s: Session,
    name: str,
    source: Path,
    directory: Path,
    template: str = "enc.dmp",
    *,
    password: str | None = PASSWORD,
    scope: str | None = None,
    compression: str | None = None,
) -> list[Path]:
    h = await s.open("EXPORT", "FULL", job_name=name, database=source)
    await s.add_file(h, template, directory=str(directory))
    if password is not None:
        await s.set_parameter(h, "ENCRYPTION_PASSWORD", password)
    if scope is not None:
        await s.set_parameter(h, "ENCRYPTION", scope)
    if compression is not None:
        await s.set_parameter(h, "COMPRESSION", compression)
    await s.start_job(h)
    assert await s.wait_for_job(h) == JobState.COMPLETED, await job_log(s, name)
    return sorted(directory.glob(template.replace("%U", "*")))


async def run_import(
    s: Session,
    name: str,
    files: list[Path],
    target: Path | None,
    *,
    password: str | None = PASSWORD,
    sql: Path | None = None,
) -> tuple[JobState, list[str]]:
    """Run an import to its end; (final state, the job's error lines)."""
    h = await s.open("IMPORT", "FULL", job_name=name, database=target)
    await s.add_file(h, files[0].name, directory=str(files[0].parent))
    if sql is not None:
        await s.add_file(h, sql.name, directory=str(sql.parent), filetype="SQL")
    if password is not None:
        await s.set_parameter(h, "ENCRYPTION_PASSWORD", password)
    await s.start_job(h)
    state = await s.wait_for_job(h)
    status = await s.final_status(name)
    return state, list(status.errors)


async def _export_sets(source: Path, directory: Path) -> dict[str, list[Path]]:
    sets = {}
    async with Session(directory / "home") as s:
        for scope in SCOPES:
            folder = directory / scope
            folder.mkdir()
            sets[scope] = await export(s, f"EXP_{scope}", source, folder, scope=scope)
    return sets


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("encsrc") / "source.db"
    make_source(path)
    return path


@pytest.fixture(scope="module")
def sets(source, tmp_path_factory) -> dict[str, list[Path]]:
    """One encrypted set per scope (default compression), shared: copy before changing."""
    return run_async(_export_sets, source, tmp_path_factory.mktemp("encsets"))


def copy_set(files: list[Path], directory: Path) -> list[Path]:
    directory.mkdir(exist_ok=True)
    return [Path(shutil.copy2(f, directory / f.name)) for f in files]


def frame_kinds(files: list[Path], password: str) -> dict[tuple[int, bool], int]:
    """{(kind, encrypted): count} of every frame of the set; every payload is decrypted."""
    seen: dict[tuple[int, bool], int] = {}
    with DumpSetReader.open(files) as reader:
        reader.unlock(password)
        for fileid, frame in reader.frames():
            h = frame.header
            assert h.encrypted == bool(h.flags & FrameFlags.ENCRYPTED)
            reader.payload(fileid, frame)  # decrypts (and decompresses) or raises
            seen[(h.kind, h.encrypted)] = seen.get((h.kind, h.encrypted), 0) + 1
    return seen


def control_rows(files: list[Path], password: str) -> list[dict]:
    with DumpSetReader.open(files) as reader:
        reader.unlock(password)
        doc = msgspec.msgpack.decode(reader.control_table())
    return [dict(zip(doc["columns"], row, strict=False)) for row in doc["rows"]]


def granule_frames(files: list[Path], password: str, table: str) -> list[tuple[dict, list]]:
    """The TABLE_DATA control rows of ``table`` with their frames [fileid, pos, len, rows, bytes]."""
    return [
        (row, msgspec.msgpack.decode(row["frames"] or b"\x90"))
        for row in control_rows(files, password)
        if row["object_type"] == "TABLE_DATA" and row["object_name"] == table
    ]


def path_of(files: list[Path], fileid: int) -> Path:
    with DumpSetReader.open(files) as reader:
        return reader.path_of(fileid)


def mend_crcs(data: bytearray, position: int, length: int) -> None:
    """Recompute a frame's payload CRC and header CRC after a change."""
    struct.pack_into(
        "<I", data, position + 24, crc32(data[position + FRAME_HEADER_SIZE : position + length])
    )
    struct.pack_into("<I", data, position + 28, crc32(data[position : position + 28]))


def user_tables(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'pumpkit_%'"
            )
        ]
        quoted = {n: '"' + n.replace('"', '""') + '"' for n in names}
        return {
            n: conn.execute(f"SELECT count(*) FROM {q}").fetchone()[0] for n, q in quoted.items()
        }


# --- round trips, frames, header ---------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("scope", SCOPES)
async def test_encrypted_round_trip_is_exact(source, sets, tmp_path, scope):
    files = sets[scope]
    target = tmp_path / "copy.db"
    async with Session(tmp_path / "home") as s:
        state, errors = await run_import(s, "IMP", files, target)
        assert state == JobState.COMPLETED, (errors, await job_log(s, "IMP"))
    assert compare_databases(source, target) == []


@pytest.mark.parametrize("scope", SCOPES)
def test_frames_are_encrypted_as_the_scope_says(sets, scope):
    files = sets[scope]
    seen = frame_kinds(files, PASSWORD)
    data_encrypted = scope in ("ALL", "DATA_ONLY")
    meta_encrypted = scope in ("ALL", "METADATA_ONLY")
    for kind, encrypted in seen:
        if kind in DATA_KINDS:
            assert encrypted == data_encrypted, (FrameKind(kind).name, encrypted, seen)
        elif kind in META_KINDS:
            assert encrypted == meta_encrypted, (FrameKind(kind).name, encrypted, seen)
    kinds = {kind for kind, _ in seen}
    assert kinds >= DATA_KINDS | META_KINDS, seen
    # Encrypted frames are compressed first (ciphertext does not compress).
    with DumpSetReader.open(files) as reader:
        reader.unlock(PASSWORD)
        flags = {
            f.header.flags
            for _, f in reader.frames()
            if f.header.kind == FrameKind.TABLE_DATA and f.header.uncompressed_length > 4096
        }
    # Format 1.3: table data carries its granule tag (TAGGED) as well.
    expected = (
        FrameFlags.COMPRESSED | FrameFlags.TAGGED | (FrameFlags.ENCRYPTED if data_encrypted else 0)
    )
    assert flags == {int(expected)}, flags


@pytest.mark.parametrize("scope", SCOPES)
def test_header_says_the_set_is_encrypted(sets, scope):
    path = sets[scope][0]
    raw = path.read_bytes()[:4096]
    (flags,) = struct.unpack_from("<I", raw, OFFSET_FLAGS)
    assert flags & HeaderFlags.ENCRYPTED and flags & (1 << 2)
    header = decode_header(raw)
    body = header.body
    assert body.encryption == "aes-256-gcm"
    assert body.encryption_scope == scope
    assert body.kdf == "scrypt" and len(body.kdf_salt) == 16 and len(body.key_check) == 16
    assert body.kdf_n >= 1 << 14 and body.kdf_r >= 1 and body.kdf_p >= 1
    assert (header.major, header.minor) == (1, FORMAT_MINOR)
    info = get_dumpfile_info(path)
    assert info.encryption_mode == "aes-256-gcm"
    assert info.file_version == f"1.{FORMAT_MINOR}"
    with DumpSetReader.open([path]) as reader:
        assert reader.encrypted
        assert reader.header.body.encryption == "aes-256-gcm"


@pytest.mark.parametrize("scope", SCOPES)
def test_dumpfile_info_says_which_part_is_encrypted(sets, scope):
    info = get_dumpfile_info(sets[scope][0])
    # Follows the header's encryption_scope, as metadata_/data_compressed follow COMPRESSION
    # (before c8e1c3f both said True under any scope).
    assert (info.metadata_encrypted, info.data_encrypted) == (
        scope in ("ALL", "METADATA_ONLY"),
        scope in ("ALL", "DATA_ONLY"),
    ), info


@pytest.mark.asyncio
async def test_clear_set_is_not_marked_encrypted(source, tmp_path):
    async with Session(tmp_path / "home") as s:
        files = await export(s, "CLEAR", source, tmp_path, "clear.dmp", password=None)
    header = decode_header(files[0].read_bytes()[:4096])
    assert not header.flags & HeaderFlags.ENCRYPTED
    assert header.body.encryption == "none" and not header.body.kdf_salt
    info = get_dumpfile_info(files[0])
    assert info.encryption_mode == "none"
    assert not info.metadata_encrypted and not info.data_encrypted
    with DumpSetReader.open(files) as reader:
        assert not reader.encrypted
        assert not any(f.header.encrypted for _, f in reader.frames())


# --- no password, wrong password ------------------------------------------------------------------


def test_reader_refuses_without_the_right_password(sets):
    files = sets["ALL"]
    rows = granule_frames(files, PASSWORD, BULK_TABLE)
    fileid, position, length = rows[0][1][0][:3]
    with DumpSetReader.open(files) as reader:
        assert reader.encrypted
        with pytest.raises(EncryptedError, match="ENCRYPTION_PASSWORD") as no_pw:
            reader.unlock(None)
        assert str(files[0]) in str(no_pw.value)
        with pytest.raises(EncryptedError, match="wrong ENCRYPTION_PASSWORD"):
            reader.unlock(WRONG)
        frame = reader.read_frame(fileid, position, length)  # the frame itself is sound
        with pytest.raises(EncryptedError):
            reader.payload(fileid, frame)  # but cannot be read without the key
        with pytest.raises(EncryptedError):
            reader.control_table()
        reader.unlock(PASSWORD)
        assert len(reader.payload(fileid, frame)) == frame.header.uncompressed_length
    # verify checks encrypted frames by their CRCs: it needs no password.
    report = verify_paths(files)
    assert report.sound, [str(f) for f in report.faults]


@pytest.mark.asyncio
@pytest.mark.parametrize("password", [None, WRONG], ids=["no-password", "wrong-password"])
@pytest.mark.parametrize("target_exists", [False, True], ids=["new-target", "existing-target"])
async def test_import_without_the_right_password_fails_at_once(
    sets, tmp_path, password, target_exists
):
    files = sets["ALL"]
    target = tmp_path / "target.db"
    before = None
    if target_exists:
        with closing(sqlite3.connect(target)) as conn, conn:
            conn.execute("CREATE TABLE keep (a)")
            conn.execute("INSERT INTO keep VALUES ('untouched')")
        before = target.read_bytes()
    async with Session(tmp_path / "home") as s:
        state, errors = await run_import(s, "IMP_PW", files, target, password=password)
        log = await job_log(s, "IMP_PW")
        record = await s._store.job("IMP_PW")
        planned = await s._store.rows("IMP_PW", object_types=["TABLE", "TABLE_DATA"])
    assert state == JobState.STOPPED, log
    assert record is not None and (record.stop_reason or "").startswith("ERROR"), record
    assert errors, log
    if password is None:
        assert "encrypted" in errors[0] and "ENCRYPTION_PASSWORD" in errors[0], errors
    else:
        assert "wrong ENCRYPTION_PASSWORD" in errors[0], errors
    assert str(files[0]) in errors[0], errors
    # At once: nothing planned, no table, no row.
    assert planned == [], planned
    assert not any("planned" in t for t in log), log
    if target_exists:
        assert target.read_bytes() == before
        assert user_tables(target) == {"keep": 1}
    else:
        assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == (
        ["target.db"] if target_exists else []
    )


@pytest.mark.asyncio
async def test_sqlfile_of_an_encrypted_set_needs_the_password(sets, tmp_path):
    files = sets["ALL"]
    sql = tmp_path / "ddl.sql"
    async with Session(tmp_path / "home") as s:
        state, errors = await run_import(s, "SQL_NO_PW", files, None, password=None, sql=sql)
        assert state == JobState.STOPPED and "ENCRYPTION_PASSWORD" in errors[0], errors
        assert not sql.exists()
        state, errors = await run_import(s, "SQL_PW", files, None, sql=sql)
        assert state == JobState.COMPLETED, errors
    text = sql.read_text("utf-8")
    assert f"CREATE TABLE {SECRET_TABLE}" in text


# --- damaged encrypted frames ---------------------------------------------------------------------


def last_bulk_frame(files: list[Path]) -> tuple[dict, int, int, int]:
    granules = granule_frames(files, PASSWORD, BULK_TABLE)
    assert len(granules) == 1, "the WITHOUT ROWID table is one granule"
    row, frames = granules[0]
    assert len(frames) >= 2, f"the granule must span several frames to test its rollback: {frames}"
    fileid, position, length = frames[-1][:3]
    return row, fileid, position, length


async def import_damaged(files: list[Path], tmp_path: Path) -> tuple[JobState, list[str], Path]:
    target = tmp_path / "target.db"
    async with Session(tmp_path / "home") as s:
        state, errors = await run_import(s, "IMP_BAD", files, target)
        log = await job_log(s, "IMP_BAD")
    assert state == JobState.STOPPED, log
    assert errors, log
    return state, errors, target


def assert_names_file_and_offset(errors: list[str], path: Path, start: int, end: int) -> None:
    message = errors[0]
    assert str(path) in message, message
    found = re.search(r"offset (\d+)", message)
    assert found, message
    assert start <= int(found.group(1)) < end, (message, start, end)


@pytest.mark.asyncio
async def test_changed_ciphertext_is_caught_by_the_tag(sets, tmp_path):
    files = copy_set(sets["ALL"], tmp_path / "set")
    _, fileid, position, length = last_bulk_frame(files)
    path = path_of(files, fileid)
    data = bytearray(path.read_bytes())
    header = data[position : position + FRAME_HEADER_SIZE]
    assert header[:4] == b"PKFR" and header[4] == FrameKind.TABLE_DATA
    assert header[5] & FrameFlags.ENCRYPTED
    # A byte in the middle of the ciphertext (past the 12-byte nonce, before the 16-byte tag).
    at = position + FRAME_HEADER_SIZE + 12 + (length - FRAME_HEADER_SIZE - 28) // 2
    data[at] ^= 0x20
    mend_crcs(data, position, length)
    path.write_bytes(bytes(data))

    # Header and payload CRCs hold: only the GCM tag can tell.
    with DumpSetReader.open(files) as reader:
        reader.unlock(PASSWORD)
        frame = reader.read_frame(fileid, position, length)
        with pytest.raises(CorruptDumpError, match="authentication tag") as caught:
            reader.payload(fileid, frame)
    assert caught.value.path == str(path)
    assert position <= caught.value.offset < position + length

    _, errors, target = await import_damaged(files, tmp_path)
    assert "authentication tag" in errors[0], errors
    assert_names_file_and_offset(errors, path, position, position + length)
    # The table was created; the granule's earlier frames were inserted, then rolled back:
    # none of its rows remain.
    assert user_tables(target)[BULK_TABLE] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(("field", "offset"), [("object_id", 8), ("count", 12)])
async def test_changed_frame_header_is_caught_by_the_tag(sets, tmp_path, field, offset):
    files = copy_set(sets["ALL"], tmp_path / "set")
    _, fileid, position, length = last_bulk_frame(files)
    path = path_of(files, fileid)
    data = bytearray(path.read_bytes())
    data[position + offset] ^= 0x01
    mend_crcs(data, position, length)
    path.write_bytes(bytes(data))

    with DumpSetReader.open(files) as reader:
        reader.unlock(PASSWORD)
        frame = reader.read_frame(fileid, position, length)  # the header checks itself fine
        with pytest.raises(CorruptDumpError, match="authentication tag"):
            reader.payload(fileid, frame)

    _, errors, target = await import_damaged(files, tmp_path)
    assert "authentication tag" in errors[0], errors
    assert_names_file_and_offset(errors, path, position, position + length)
    assert user_tables(target)[BULK_TABLE] == 0


@pytest.mark.asyncio
async def test_changed_control_table_fails_before_any_table(sets, tmp_path):
    files = copy_set(sets["ALL"], tmp_path / "set")
    with DumpSetReader.open(files) as reader:
        fileid = next(n for n in reader.file_numbers if reader.header_of(n).control_position)
        position = reader.header_of(fileid).control_position
        path = reader.path_of(fileid)
    data = bytearray(path.read_bytes())
    (stored,) = struct.unpack_from("<I", data, position + 16)
    length = FRAME_HEADER_SIZE + stored
    data[position + FRAME_HEADER_SIZE + 12 + (stored - 28) // 2] ^= 0x80
    mend_crcs(data, position, length)
    path.write_bytes(bytes(data))

    _, errors, target = await import_damaged(files, tmp_path)
    assert "authentication tag" in errors[0], errors
    assert_names_file_and_offset(errors, path, position, position + length)
    assert not target.exists() or user_tables(target) == {}


# --- no plaintext in the file ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("scope", [None, *SCOPES], ids=["clear", *SCOPES])
async def test_plaintext_is_absent_where_encrypted(source, tmp_path, scope):
    async with Session(tmp_path / "home") as s:
        files = await export(
            s,
            "PLAIN",
            source,
            tmp_path,
            "p%U.dmp",
            password=None if scope is None else PASSWORD,
            scope=scope,
            compression="NONE",
        )
    blob = b"".join(f.read_bytes() for f in files)
    data_clear = scope in (None, "METADATA_ONLY")
    meta_clear = scope in (None, "DATA_ONLY")
    assert (MARKER_VALUE.encode() in blob) == data_clear, scope
    assert (SECRET_TABLE.encode() in blob) == meta_clear, scope
    # Rows of the bulk table (1000 random letters each) likewise.
    with closing(sqlite3.connect(source)) as conn:
        (sample,) = conn.execute(f'SELECT v FROM "{BULK_TABLE}" WHERE k = 1500').fetchone()
    assert (sample.encode() in blob) == data_clear
    assert PASSWORD.encode() not in blob


# --- restart --------------------------------------------------------------------------------------


async def start_until_end(s: Session, name: str) -> tuple[JobState, str]:
    """Attach to ``name`` (it becomes IDLING), start it detached (no password unless the
    caller set one on the handle ``s`` holds), wait for its end; (state, why it failed).
    A start that raises counts as a failure with the error's text."""
    h = await s.attach(name)
    return await start_handle(s, h, name)


async def start_handle(s: Session, h: int, name: str) -> tuple[JobState, str]:
    assert await s.state(h) == JobState.IDLING
    try:
        await s.start_job(h, detached=True)
    except PumpkitError as exc:
        await s.release(h)
        record = await s._store.job(name)
        return JobState(record.state) if record else JobState.UNDEFINED, str(exc)

    async def ended() -> bool:
        return await s.state(h) in FINAL

    assert await wait_until(ended, 90, interval=0.05), await job_log(s, name)
    state = await s.state(h)
    await s.release(h)
    record = await s._store.job(name)
    return state, (record.stop_reason or "") if record else ""


def password_stored_in(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]


@pytest.mark.asyncio
async def test_killed_encrypted_export_restarts_only_with_its_password(source, tmp_path):
    home = tmp_path / "home"
    name = "ENC_RESTART"
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name=name, database=source)
        # FILESIZE and one plain file name: the export fills enc.dmp and waits for ADD_FILE,
        # in the middle of its data - a deterministic moment to kill it.
        await s.add_file(h, "enc.dmp", directory=str(tmp_path), filesize="3MB")
        await s.set_parameter(h, "ENCRYPTION_PASSWORD", PASSWORD)
        await s.start_job(h, detached=True)
        pid = (await s._store.job(name)).owner_pid
        try:

            async def waiting() -> bool:
                return any(t.startswith("Waiting:") for t in await job_log(s, name)) or (
                    await s.state(h) in FINAL
                )

            assert await wait_until(waiting, 60, interval=0.05), await job_log(s, name)
            assert await s.state(h) == JobState.EXECUTING, await job_log(s, name)
            done = [
                r
                for r in await s._store.rows(name, object_types=["TABLE_DATA"])
                if r.processing_state == "C"
            ]
            assert done, "some granules are complete before the kill"
        finally:
            orphans = await kill_runner(pid)  # also when an assertion failed: it would wait
        assert not orphans, orphans
        assert await s.state(h) == JobState.NOT_RUNNING

    async with Session(home) as s:  # a new client: it never saw the password
        h = await s.attach(name)
        await s.add_file(h, "enc_more%U.dmp", directory=str(tmp_path))
        state, why = await start_handle(s, h, name)
        assert state == JobState.STOPPED, (state, why, await job_log(s, name))
        assert "ENCRYPTION_PASSWORD" in why, why

        h = await s.attach(name)
        await s.set_parameter(h, "ENCRYPTION_PASSWORD", WRONG)
        state, why = await start_handle(s, h, name)
        assert state == JobState.STOPPED, (state, why, await job_log(s, name))
        assert "wrong ENCRYPTION_PASSWORD" in why, why

        h = await s.attach(name)
        await s.set_parameter(h, "ENCRYPTION_PASSWORD", PASSWORD)
        state, why = await start_handle(s, h, name)
        assert state == JobState.COMPLETED, (why, await job_log(s, name))

        files = [tmp_path / "enc.dmp", *sorted(tmp_path.glob("enc_more*.dmp"))]
        assert len(files) >= 2, files
        report = verify_paths(files)
        assert report.sound, [str(f) for f in report.faults]
        salts = {decode_header(f.read_bytes()[:4096]).body.kdf_salt for f in files}
        assert len(salts) == 1, "one key for the whole set, across the restart"
        seen = frame_kinds(files, PASSWORD)
        assert not any(
            not encrypted for (kind, encrypted) in seen if kind in DATA_KINDS | META_KINDS
        ), seen

        target = tmp_path / "copy.db"
        state, errors = await run_import(s, "ENC_RESTART_IMP", files, target)
        assert state == JobState.COMPLETED, errors
    assert compare_databases(source, target) == []
    # The password went through a pipe and memory only: not in the control store, the
    # runners' output or the dump files.
    assert password_stored_in(tmp_path) == []


@pytest.mark.asyncio
async def test_restart_without_password_never_writes_in_clear(source, tmp_path):
    """A job given ENCRYPTION_PASSWORD that fails before it wrote anything (here: its source
    is missing at the first start) and is restarted by a client that has no password."""
    home = tmp_path / "home"
    name = "ENC_EARLY"
    db = tmp_path / "src.db"
    shutil.copy2(source, db)
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name=name, database=db)
        await s.add_file(h, "early.dmp", directory=str(tmp_path))
        await s.set_parameter(h, "ENCRYPTION_PASSWORD", PASSWORD)
        db.rename(tmp_path / "away.db")
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.STOPPED
    (tmp_path / "away.db").rename(db)
    async with Session(home) as s:
        state, why = await start_until_end(s, name)
        log = await job_log(s, name)
    dump = tmp_path / "early.dmp"
    written_in_clear = dump.exists() and get_dumpfile_info(dump).encryption_mode == "none"
    # Regression (found while writing this file, since fixed): the password (and the ENCRYPTION scope it implies) is not recorded anywhere
    # until the export has derived its key, so a restart without the password exports the
    # whole database unencrypted and reports success.
    assert not written_in_clear, (state, log)
    assert state == JobState.STOPPED and "ENCRYPTION_PASSWORD" in why, (state, why, log)


# --- what the password is and who holds it -------------------------------------------------------


@pytest.mark.asyncio
async def test_encryption_without_a_password_fails_before_any_file(source, tmp_path):
    async with Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="NO_PW", database=source)
        await s.add_file(h, "nopw.dmp", directory=str(tmp_path))
        await s.set_parameter(h, "ENCRYPTION", "ALL")
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.STOPPED
        errors = (await s.final_status("NO_PW")).errors
    assert errors and "ENCRYPTION_PASSWORD" in errors[0], errors
    assert not (tmp_path / "nopw.dmp").exists()


@pytest.mark.asyncio
async def test_password_with_a_newline_reaches_a_detached_job_whole(source, tmp_path):
    """The detached runner gets the password through a pipe: all of it, or none is taken."""
    password = "first line\nsecond line"
    async with Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="NL", database=source)
        await s.add_file(h, "nl.dmp", directory=str(tmp_path))
        try:
            await s.set_parameter(h, "ENCRYPTION_PASSWORD", password)
        except PumpkitError:
            return  # refusing such a password at once is fine too
        await s.start_job(h, detached=True)

        async def ended() -> bool:
            return await s.state(h) in FINAL

        assert await wait_until(ended, 60, interval=0.05)
        assert await s.state(h) == JobState.COMPLETED, await job_log(s, "NL")
        await s.release(h)
        state, errors = await run_import(
            s, "NL_IMP", [tmp_path / "nl.dmp"], tmp_path / "copy.db", password=password
        )
    # Regression (found while writing this file, since fixed): the runner reads the password with sys.stdin.readline().rstrip("\n"): everything
    # from the first newline on is lost, the set is encrypted under "first line", and the
    # password the user gave is refused as wrong ("wrong ENCRYPTION_PASSWORD: the key check
    # in the header does not match").
    assert state == JobState.COMPLETED, errors
    assert compare_databases(source, tmp_path / "copy.db") == []


@pytest.mark.asyncio
async def test_a_new_job_does_not_inherit_an_old_jobs_password(source, tmp_path):
    """The session keeps ENCRYPTION_PASSWORD by job name; a later job that reuses the name
    (the first one completed, so OPEN may) was given no password and must be in clear."""
    async with Session(tmp_path / "home") as s:
        await export(s, "SAME_NAME", source, tmp_path, "first.dmp")
        assert get_dumpfile_info(tmp_path / "first.dmp").encryption_mode == "aes-256-gcm"
        await export(s, "SAME_NAME", source, tmp_path, "second.dmp", password=None)
    # Regression (found while writing this file, since fixed): Session._passwords is never cleared when a job ends or its name is reused, so the
    # second export is encrypted with the first job's password, which it was never given.
    assert get_dumpfile_info(tmp_path / "second.dmp").encryption_mode == "none"
