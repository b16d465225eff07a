"""``--sign-key`` at export, ``--verify-key`` at import, ls and verify, as a user runs them:
a signed set passes all three; another key, and one changed byte with every checksum fixed
up, are refused with a non-zero exit and an error naming the file."""

from __future__ import annotations

import os
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pumpkit.core.frame import FrameKind
from pumpkit.exitcodes import ExitCode
from pumpkit.io.dumpset.reader import DumpSetReader


def pumpkit(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PUMPKIT_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "pumpkit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def key_files(directory: Path, name: str, seed: int) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A signed export of a small database: (dump file, public key, another public key)."""
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO kv VALUES (?, ?)", [(i, f"value {i}") for i in range(500)])
    (tmp_path / "dumps").mkdir()
    private, public = key_files(tmp_path, "signer", 7)
    _, other = key_files(tmp_path, "other", 8)
    done = pumpkit(
        "export", "--database", db, "--directory", "dumps", "--dumpfile", "s%U.dmp",
        "--home", "home", "--job-name", "SIGNED", "--sign-key", private, "--foreground",
        "--compression", "NONE",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    return tmp_path / "dumps" / "s01.dmp", public, other


def test_a_signed_set_passes_ls_verify_and_import(signed, tmp_path):
    dump, public, _ = signed
    assert pumpkit("ls", "--verify-key", public, dump, cwd=tmp_path).returncode == 0
    done = pumpkit("verify", "--verify-key", public, dump, cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    done = pumpkit(
        "import", "--database", tmp_path / "copy.db", "--directory", dump.parent,
        "--dumpfile", dump.name, "--home", "home", "--job-name", "IMP",
        "--verify-key", public, "--foreground",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "copy.db") as conn:
        assert conn.execute("SELECT count(*) FROM kv").fetchone() == (500,)


def test_another_key_is_refused_by_ls_verify_and_import(signed, tmp_path):
    dump, _, other = signed
    done = pumpkit("ls", "--verify-key", other, dump, cwd=tmp_path)
    assert done.returncode == ExitCode.FAULT and "not signed by this key" in done.stderr
    done = pumpkit("verify", "--verify-key", other, dump, cwd=tmp_path)
    assert done.returncode == ExitCode.FAULT and "signature" in done.stdout
    done = pumpkit(
        "import", "--database", tmp_path / "copy.db", "--directory", dump.parent,
        "--dumpfile", dump.name, "--home", "home", "--job-name", "IMP2",
        "--verify-key", other, "--foreground",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != ExitCode.OK
    assert "signature" in done.stdout + done.stderr
    if (tmp_path / "copy.db").exists():
        with sqlite3.connect(tmp_path / "copy.db") as conn:
            tables = conn.execute("SELECT name FROM sqlite_master WHERE name = 'kv'").fetchall()
        assert tables == [], "nothing is imported from a set the key refuses"


def test_one_changed_byte_with_checksums_fixed_up_is_refused(signed, tmp_path):
    dump, public, _ = signed
    data = bytearray(dump.read_bytes())
    with DumpSetReader.open([dump]) as reader:
        position = next(
            f.header.offset for _, f in reader.frames() if f.header.kind == FrameKind.TABLE_DATA
        )
        length = next(
            f.header.payload_length
            for _, f in reader.frames()
            if f.header.kind == FrameKind.TABLE_DATA
        )
    at = data.index(b"value 1", position)
    data[at + 6] = ord("9")
    struct.pack_into(
        "<I", data, position + 24, zlib.crc32(data[position + 32 : position + 32 + length])
    )
    struct.pack_into("<I", data, position + 28, zlib.crc32(data[position : position + 28]))
    dump.write_bytes(bytes(data))
    assert pumpkit("verify", dump, cwd=tmp_path).returncode == ExitCode.OK  # checksums hold
    done = pumpkit("verify", "--verify-key", public, dump, cwd=tmp_path)
    assert done.returncode == ExitCode.FAULT and "changed after signing" in done.stdout
    done = pumpkit("ls", "--verify-key", public, dump, cwd=tmp_path)
    assert done.returncode == ExitCode.FAULT and str(dump.name) in done.stderr


def test_a_key_file_that_is_not_a_key_is_a_usage_error(signed, tmp_path):
    dump, _, _ = signed
    bad = tmp_path / "bad.pub"
    bad.write_text("hello")
    done = pumpkit("verify", "--verify-key", bad, dump, cwd=tmp_path)
    assert done.returncode == ExitCode.USAGE and "bad.pub" in done.stderr
    done = pumpkit("verify", "--verify-key", tmp_path / "missing.pub", dump, cwd=tmp_path)
    assert done.returncode == ExitCode.NO_INPUT
