"""Signed sets (format 1.3, formats/dumpfile.md §3.8): a signed set verifies under its key;
one changed byte, with every checksum fixed up, does not; nor does another key or no
signature."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pumpkit.core import signing
from pumpkit.core.frame import FrameKind
from pumpkit.core.header import HeaderBody, decode_header
from pumpkit.errors import InvalidArgumentError, SignatureError
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.io.dumpset.writer import DumpSetWriter

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def write_set(directory: Path, *, key: Ed25519PrivateKey | None = KEY) -> list[Path]:
    writer = DumpSetWriter(
        ["s%U.dmp"],
        directory=directory,
        body=HeaderBody(job_name="SIGNED"),
        filesize=4096 + 3000,
        sign_key=key,
    )
    meta = msgspec.msgpack.encode({"object_type": "TABLE", "schema": "", "name": "t"})
    writer.write_frame(FrameKind.METADATA, meta, object_id=1, count=1)
    for i in range(6):
        rows = [[i * 10 + j, "x" * 40] for j in range(10)]
        writer.write_frame(
            FrameKind.TABLE_DATA, msgspec.msgpack.encode(rows), object_id=1, count=10
        )
    return writer.close()


def fix_frame(data: bytearray, position: int) -> None:
    length = struct.unpack_from("<I", data, position + 16)[0]
    struct.pack_into(
        "<I", data, position + 24, zlib.crc32(data[position + 32 : position + 32 + length])
    )
    struct.pack_into("<I", data, position + 28, zlib.crc32(data[position : position + 28]))


def fix_header(data: bytearray) -> None:
    struct.pack_into("<I", data, 4092, zlib.crc32(data[:4092]))


def test_a_signed_set_verifies_and_carries_the_signature_last(tmp_path):
    files = write_set(tmp_path)
    assert len(files) >= 2
    signatures = set()
    for path in files:
        raw = path.read_bytes()
        header = decode_header(raw)
        start, end = signing.signature_span(raw)
        assert raw[start - 2 : end] == b"\xc4\x40" + header.body.signature
        assert header.body.signature_algorithm == "ed25519"
        signatures.add(header.body.signature)
    assert len(signatures) == 1
    with DumpSetReader.open(files) as reader:
        reader.check_signature(KEY.public_key())
    assert verify_paths(files, verify_key=KEY.public_key()).sound


def test_another_key_is_refused(tmp_path):
    files = write_set(tmp_path)
    with DumpSetReader.open(files) as reader, pytest.raises(SignatureError, match="this key"):
        reader.check_signature(OTHER.public_key())
    report = verify_paths(files, verify_key=OTHER.public_key())
    assert not report.sound and "signature" in report.faults[0].reason


def test_an_unsigned_set_is_refused(tmp_path):
    files = write_set(tmp_path, key=None)
    with DumpSetReader.open(files) as reader, pytest.raises(SignatureError) as info:
        reader.check_signature(KEY.public_key())
    assert "not signed" in str(info.value) and info.value.offset == 80


def test_one_changed_row_byte_with_checksums_fixed_up_is_refused(tmp_path):
    files = write_set(tmp_path)
    target = files[-1]
    data = bytearray(target.read_bytes())
    with DumpSetReader.open(files) as reader:
        fileid = decode_header(data).file_number
        frame = next(
            f for n, f in reader.frames() if n == fileid and f.header.kind == FrameKind.TABLE_DATA
        )
        position = frame.header.offset
        del frame
    at = data.index(b"x" * 40, position)
    data[at] = ord("y")
    fix_frame(data, position)
    target.write_bytes(bytes(data))
    assert verify_paths(files).sound, "the checksums are fixed up: only the signature can tell"
    with (
        DumpSetReader.open(files) as reader,
        pytest.raises(SignatureError, match="changed after signing"),
    ):
        reader.check_signature(KEY.public_key())
    assert not verify_paths(files, verify_key=KEY.public_key()).sound


def test_one_changed_header_byte_with_its_crc_fixed_up_is_refused(tmp_path):
    files = write_set(tmp_path)
    data = bytearray(files[0].read_bytes())
    at = data.index(b"SIGNED")
    data[at] = ord("Z")
    fix_header(data)
    files[0].write_bytes(bytes(data))
    with DumpSetReader.open(files) as reader, pytest.raises(SignatureError):
        reader.check_signature(KEY.public_key())


def test_a_file_swapped_in_from_another_signed_set_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = write_set(tmp_path / "a")
    other = write_set(tmp_path / "b")
    # File 2 of another set signed by the same key, given this set's GUID: a sound set of
    # sound files, every checksum good, but not the files that were signed together.
    data = bytearray(other[1].read_bytes())
    data[24:40] = files[0].read_bytes()[24:40]
    fix_header(data)
    files[1].write_bytes(bytes(data))
    assert verify_paths(files).sound
    with DumpSetReader.open(files) as reader, pytest.raises(SignatureError):
        reader.check_signature(KEY.public_key())


def test_key_files_are_pem_and_ed25519():
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert signing.load_private_key(pem, where="k.pem").public_key() == KEY.public_key()
    assert signing.load_public_key(public, where="k.pub") == KEY.public_key()
    with pytest.raises(InvalidArgumentError, match=r"k\.pem"):
        signing.load_private_key(b"not a key", where="k.pem")
    with pytest.raises(InvalidArgumentError, match=r"k\.pub"):
        signing.load_public_key(pem, where="k.pub")
