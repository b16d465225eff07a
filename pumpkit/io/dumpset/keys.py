"""Key files for signed sets (format 1.3): an Ed25519 key in PEM, read from its path.

``--sign-key`` names a private key (PKCS #8 PEM, unencrypted: ``openssl genpkey -algorithm
ed25519``), ``--verify-key`` its public key (``openssl pkey -pubout``). Only the path is kept
in a job's parameters, never the key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pumpkit.core.signing import load_private_key, load_public_key
from pumpkit.errors import FileAccessError
from pumpkit.io.dumpset.files import access_message

__all__ = ("read_signing_key", "read_verify_key")


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FileAccessError(access_message(Path(path), exc), path=str(path)) from None


def read_signing_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``. Raises ``FileAccessError`` or
    ``InvalidArgumentError`` naming the file."""
    return load_private_key(_read(path), where=str(path))


def read_verify_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file ``path``. Raises ``FileAccessError`` or
    ``InvalidArgumentError`` naming the file."""
    return load_public_key(_read(path), where=str(path))
