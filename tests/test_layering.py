"""The house's walls: core/ stays pure, and the public face says what it exports."""

from __future__ import annotations

import ast
import pathlib

import pumpkit

PACKAGE = pathlib.Path(pumpkit.__file__).parent
# What pure code may import: the standard library's pure parts, msgspec, zstandard, itself.
CORE_ALLOWED = {
    "__future__",
    "collections",
    "dataclasses",
    "datetime",
    "enum",
    "functools",
    "itertools",
    "math",
    "mmap",
    "re",
    "struct",
    "typing",
    "uuid",
    "zlib",
    "isal",
    "cryptography",
    "msgspec",
    "zstandard",
    "pumpkit",
    "types",
    "abc",
    "operator",
    "hashlib",
    "hmac",
    "secrets",
    "string",
    "bisect",
    "heapq",
    "decimal",
    "fractions",
    "json",
    "base64",
    "binascii",
    "codecs",
    "unicodedata",
    "contextlib",
}
CORE_FORBIDDEN_CALLS = {"open"}


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


def test_core_imports_only_pure_modules():
    offences = []
    for path in sorted((PACKAGE / "core").glob("*.py")):
        for module, line in _imports(path):
            top = module.split(".")[0]
            if top not in CORE_ALLOWED:
                offences.append(f"{path.name}:{line} imports {module}")
            if module.startswith("pumpkit.") and not (
                module.startswith("pumpkit.core") or module == "pumpkit.errors"
            ):
                offences.append(f"{path.name}:{line} imports {module} (outside core)")
    assert offences == []


def test_core_opens_no_files():
    for path in sorted((PACKAGE / "core").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in CORE_FORBIDDEN_CALLS, f"{path.name}:{node.lineno}"


def test_all_is_an_honest_tuple():
    for module in (pumpkit, pumpkit.errors):
        assert isinstance(module.__all__, tuple)
        assert sorted(module.__all__) == list(module.__all__), f"{module.__name__} unsorted"
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name} missing"
    public = {n for n in dir(pumpkit.errors) if n.endswith("Error")}
    assert public <= set(pumpkit.errors.__all__)
    assert public <= set(pumpkit.__all__)
