"""Signed sets (format 1.3): one Ed25519 signature over every byte of every file of a set.

Theory of operation: CRC-32 finds damage, not an attacker, who fixes the checksums up after
a change. A set exported with a signing key carries, in every file's header body, the keys
``signature_algorithm`` (``"ed25519"``) and, last of all, ``signature``: 64 bytes. The
signature is over the *signed message*: a fixed text, the set's GUID, the number of files,
and for each file in file-number order the SHA-256 of its bytes with the signature's own 64
bytes and the header CRC read as zeros (both change when the signature is written). A file's
digest covers its header (every field, ``set_files`` included), its frames and its INDEX, so
a reader that holds the public key and finds the signature good knows that no byte of the set
changed since it was signed, and that no file was added, dropped or swapped. Pure: bytes in,
verdicts out (formats/dumpfile.md §3.8).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pumpkit.core.buffers import Buffer
from pumpkit.core.header import PREFIX_SIZE, FileHeader
from pumpkit.errors import InvalidArgumentError, SignatureError

__all__ = (
    "ALGORITHM",
    "SIGNATURE_SIZE",
    "file_digest",
    "load_private_key",
    "load_public_key",
    "sign_set",
    "signature_span",
    "signed_message",
    "verify_set",
)

ALGORITHM = "ed25519"
SIGNATURE_SIZE = 64
#: The msgpack encoding of a 64-byte bin (bin 8, length 64) that opens the signature's value.
_BIN64 = b"\xc4\x40"
_CONTEXT = b"pumpkit signed set v1\x00"
_BODY_LENGTH = 72  # the header's body_length field


def signature_span(data: Buffer) -> tuple[int, int]:
    """Where the signature's 64 bytes lie in a file: the last 64 bytes of its header body."""
    end = PREFIX_SIZE + struct.unpack_from("<I", data, _BODY_LENGTH)[0]
    return end - SIGNATURE_SIZE, end


def file_digest(data: Buffer, header: FileHeader) -> bytes:
    """SHA-256 of a file's bytes, its signature bytes and header CRC read as zeros."""
    view = memoryview(data).cast("B")
    start, end = signature_span(view)
    crc = header.header_size - 4
    digest = hashlib.sha256()
    digest.update(view[:start])
    digest.update(bytes(SIGNATURE_SIZE))
    digest.update(view[end:crc])
    digest.update(bytes(4))
    digest.update(view[header.header_size :])
    return digest.digest()


def signed_message(guid: bytes, digests: Sequence[bytes]) -> bytes:
    """What the signature signs: context text, GUID, file count (u32 LE), the digests."""
    return _CONTEXT + guid + struct.pack("<I", len(digests)) + b"".join(digests)


def sign_set(key: Ed25519PrivateKey, guid: bytes, digests: Sequence[bytes]) -> bytes:
    """The 64-byte signature of a set whose files have these digests (file-number order)."""
    return key.sign(signed_message(guid, digests))


def verify_set(
    public_key: Ed25519PublicKey,
    files: Sequence[tuple[str, Buffer, FileHeader]],
) -> None:
    """Check that ``files`` (path, bytes, header; every file of one set, in file-number order)
    are the files a holder of ``public_key``'s private key signed, unchanged.

    Raises ``SignatureError`` naming the file and offset: a file not signed (no signature,
    or not where format 1.3 puts it), files whose signatures differ, a set not closed, or a
    signature that does not hold (another key, or a byte changed since signing).
    """
    first_path, _, first = files[0]
    for path, data, header in files:
        body = header.body
        view = memoryview(data).cast("B")
        start, end = signature_span(view)
        if body.signature_algorithm != ALGORITHM or len(body.signature) != SIGNATURE_SIZE:
            raise SignatureError(
                "the dump file is not signed (its header has no Ed25519 signature)",
                path=path,
                offset=PREFIX_SIZE,
            )
        if bytes(view[start - len(_BIN64) : end]) != _BIN64 + body.signature:
            raise SignatureError(
                "the signature is not the header body's last value", path=path, offset=start
            )
        if body.signature != first.body.signature:
            raise SignatureError(
                f"the signature differs from that of {first_path}", path=path, offset=start
            )
        if body.set_file_count != len(files):
            raise SignatureError(
                f"the signed set has {body.set_file_count} files, {len(files)} were read",
                path=path,
            )
    digests = [file_digest(data, header) for _, data, header in files]
    try:
        public_key.verify(first.body.signature, signed_message(first.guid, digests))
    except InvalidSignature:
        raise SignatureError(
            "the signature does not hold: the set was not signed by this key, or a byte of it"
            " changed after signing",
            path=first_path,
            offset=signature_span(files[0][1])[0],
        ) from None


def load_private_key(data: bytes, *, where: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS #8, unencrypted). ``where`` names its file."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidArgumentError(f"{where}: not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidArgumentError(f"{where}: the signing key must be an Ed25519 key")
    return key


def load_public_key(data: bytes, *, where: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo). ``where`` names its file."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidArgumentError(f"{where}: not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidArgumentError(f"{where}: the verifying key must be an Ed25519 key")
    return key
