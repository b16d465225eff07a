"""Password encryption of frames: an scrypt key and AES-256-GCM, as pure functions.

The key is derived from the password and a random 16-byte salt recorded in every file
header, with the scrypt cost (N, r, p) beside it, so a reader years later derives the same key.
The header also keeps a *key check* (HMAC-SHA-256 of a fixed text under the key, 16 bytes):
a wrong password is refused when the set is opened, before any frame is read. Each
encrypted frame's stored payload is a fresh random 12-byte nonce, the ciphertext, and the
16-byte GCM tag; the frame header's fields that do not depend on the ciphertext are the
associated data, so a payload moved under another frame header does not decrypt either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pumpkit.core.buffers import Buffer
from pumpkit.errors import CorruptDumpError

__all__ = (
    "ALGORITHM",
    "KDF",
    "NONCE_SIZE",
    "OVERHEAD",
    "SCRYPT_N",
    "FrameCipher",
    "derive_key",
    "key_check",
    "new_salt",
)

ALGORITHM = "aes-256-gcm"
KDF = "scrypt"
#: scrypt cost: 2**15 x 8 x 128 bytes = 32 MiB and about 0.1 s per derivation.
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
#: Bytes an encrypted payload has beyond its plaintext.
OVERHEAD = NONCE_SIZE + TAG_SIZE
_CHECK_TEXT = b"pumpkit key check v1"


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_SIZE)


def derive_key(
    password: str, salt: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
) -> bytes:
    """The 32-byte AES key of ``password`` (UTF-8) under ``salt``."""
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))


def key_check(key: bytes) -> bytes:
    """What the header stores to recognise the key: 16 bytes of HMAC-SHA-256."""
    return hmac.new(key, _CHECK_TEXT, hashlib.sha256).digest()[:16]


class FrameCipher:
    """AES-256-GCM over frame payloads with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("an AES-256 key is 32 bytes")
        self.key = key
        self._aead = AESGCM(key)

    def encrypt(self, aad: bytes, data: Buffer, *, nonce: bytes | None = None) -> bytes:
        """``nonce || ciphertext || tag``; ``nonce`` is random unless given (test vectors)."""
        nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, memoryview(data), aad)

    def decrypt(self, aad: bytes, stored: Buffer, *, offset: int | None = None) -> bytes:
        """The plaintext; raises ``CorruptDumpError`` when any byte of the payload or of the
        associated header fields changed (or the key is not the one it was written with)."""
        view = memoryview(stored).cast("B")
        if len(view) < OVERHEAD:
            raise CorruptDumpError(
                f"encrypted payload of {len(view)} bytes is shorter than nonce and tag",
                offset=offset,
            )
        try:
            # Views, not copies: the ciphertext of a frame may be 256 MiB of the mapped file.
            return self._aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], aad)
        except InvalidTag:
            raise CorruptDumpError(
                "encrypted frame fails its authentication tag: the frame was changed",
                offset=offset,
            ) from None
