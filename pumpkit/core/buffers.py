"""The byte containers the codecs accept (``collections.abc.Buffer`` arrives only in 3.12)."""

from __future__ import annotations

import mmap
from typing import TypeAlias

__all__ = ("Buffer",)

#: What every decoder takes and every encoder may return: decoders are tested with each.
Buffer: TypeAlias = bytes | bytearray | memoryview | mmap.mmap
