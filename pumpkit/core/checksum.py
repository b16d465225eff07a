"""The one checksum of the dump format: CRC-32 (ISO-HDLC, the zlib polynomial).

python-isal computes the same CRC-32 as zlib several times faster (it uses carry-less
multiplication); the format does not change with the implementation. Without isal, zlib's.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ("IMPLEMENTATION", "crc32")

crc32: Callable[..., int]
try:
    from isal.isal_zlib import crc32

    IMPLEMENTATION = "isal"
except ImportError:  # pragma: no cover - the fallback is the same function, slower
    from zlib import crc32

    IMPLEMENTATION = "zlib"
