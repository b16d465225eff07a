"""Dump-file name templates: ``%U`` and ``%L`` (section 2 of ``formats/dumpfile.md``).

A job is given file names, each literal or a template. ``%U``/``%u`` become the number as two
digits (01..99), ``%L``/``%l`` as at least two digits with no upper bound; every code in one
template gets the same number, the 1-based count of files named so far from that template.
Pure: strings in, strings out. The writer (``pumpkit.io.dumpset.writer``) takes names from
here as it creates files; ``pumpkit.io.dumpset.files`` lists the files a name can mean.
"""

from __future__ import annotations

import re

from pumpkit.errors import DumpSetFullError

__all__ = ("U_LIMIT", "expand_template", "template_capacity")

_CODE = re.compile(r"%([UuLl])")
#: How many files a ``%U`` template can name.
U_LIMIT = 99


def expand_template(template: str, number: int) -> str:
    """The file name of file ``number`` (1-based) made from ``template``.

    ``%U``/``%u`` become a two-digit number (01..99); ``%L``/``%l`` become at least two digits
    with no upper bound. A template without either names exactly one file. Raises
    ``DumpSetFullError`` for a number past 99 in a template holding ``%U``.
    """

    def one(match: re.Match[str]) -> str:
        if match.group(1) in "Uu" and number > U_LIMIT:
            raise DumpSetFullError(f"template {template!r} is used up: %U stops at 99")
        return f"{number:02d}"

    return _CODE.sub(one, template)


def template_capacity(template: str) -> int | None:
    """How many files ``template`` can name (``None``: no bound)."""
    codes = _CODE.findall(template)
    if not codes:
        return 1
    if any(c in "Uu" for c in codes):
        return U_LIMIT
    return None
