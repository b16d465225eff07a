"""Walking msgpack bytes without decoding them: where a value ends, how many values there are.

For limits and error locations only (``pumpkit.core.limits``, ``pumpkit.core.header``):
decoding is msgspec's. ``skip`` and ``count_values`` are iterative (a nested payload cannot
exhaust the stack) and allocate nothing per value. Pure: bytes in, offsets out.
"""

from __future__ import annotations

from pumpkit.core.buffers import Buffer

__all__ = ("container", "count_values", "skip", "str_at")

# lead byte -> bytes of the whole value, for scalars without a length field.
_FIXED = {0xC0: 1, 0xC2: 1, 0xC3: 1, 0xCA: 5, 0xCB: 9, 0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9}
_FIXED.update({0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9, 0xD4: 3, 0xD5: 4, 0xD6: 6, 0xD7: 10, 0xD8: 18})
# lead byte -> (bytes of the length field, bytes between it and the data) for str, bin, ext.
_SIZED = {0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0), 0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0)}
_SIZED.update({0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1)})
_WIDE = {0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4}


def container(data: Buffer, pos: int) -> tuple[int, int] | None:
    """For an array or map at ``pos``: where its first element starts and how many encoded
    values it holds (a map's keys and values both count); ``None`` for any other value.
    Raises ``IndexError`` when ``data`` ends inside the header."""
    view = memoryview(data).cast("B")
    b = view[pos]
    if 0x80 <= b <= 0x8F:
        return pos + 1, 2 * (b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return pos + 1, b & 0x0F
    width = _WIDE.get(b)
    if width is None:
        return None
    if pos + 1 + width > len(view):
        raise IndexError(pos)
    n = int.from_bytes(view[pos + 1 : pos + 1 + width], "big")
    return pos + 1 + width, 2 * n if b >= 0xDE else n


def skip(data: Buffer, pos: int) -> int:
    """The offset just past the msgpack value at ``pos``. Raises ``IndexError`` when the
    data ends first, ``ValueError`` for a byte msgpack does not use (0xc1)."""
    return _walk(memoryview(data).cast("B"), pos, None)[0]


def count_values(data: Buffer, limit: int) -> int:
    """How many msgpack values the value at offset 0 of ``data`` is made of (itself and all
    it contains). Raises ``OverflowError`` as soon as there are more than ``limit``,
    ``ValueError``/``IndexError`` for bytes that are not msgpack."""
    try:
        return _walk(memoryview(data).cast("B"), 0, limit)[1]
    except IndexError:
        raise ValueError("msgpack data ends inside a value") from None


def _walk(view: memoryview, pos: int, limit: int | None) -> tuple[int, int]:
    pending = 1
    seen = 0
    while pending:
        pending -= 1
        seen += 1
        if limit is not None and seen > limit:
            raise OverflowError(limit)
        b = view[pos]
        if b <= 0x7F or b >= 0xE0:
            pos += 1
        elif 0xA0 <= b <= 0xBF:
            pos += 1 + (b & 0x1F)
        elif b in _FIXED:
            pos += _FIXED[b]
        elif b in _SIZED:
            width, extra = _SIZED[b]
            if pos + 1 + width > len(view):
                raise IndexError(pos)
            pos += 1 + width + extra + int.from_bytes(view[pos + 1 : pos + 1 + width], "big")
        else:
            inner = container(view, pos)
            if inner is None:
                raise ValueError(f"byte {b:#04x} at {pos} begins no msgpack value")
            pos, n = inner
            pending += n
        if pos > len(view):
            raise IndexError(pos)
    return pos, seen


def str_at(data: Buffer, pos: int) -> str | None:
    """The msgpack string at ``pos`` (undecodable bytes replaced), or ``None`` when the
    value there is not a string."""
    view = memoryview(data).cast("B")
    b = view[pos]
    if 0xA0 <= b <= 0xBF:
        start, n = pos + 1, b & 0x1F
    elif b in (0xD9, 0xDA, 0xDB):
        width = _SIZED[b][0]
        start = pos + 1 + width
        n = int.from_bytes(view[pos + 1 : start], "big")
    else:
        return None
    return bytes(view[start : start + n]).decode("utf-8", "replace")
