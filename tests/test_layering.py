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
    "sqlglot",
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


def _package_imports(layer: str):
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module, line in _imports(path):
            yield path.relative_to(PACKAGE), module, line


def test_io_never_imports_the_engine_or_the_cli():
    offences = [
        f"{path}:{line} imports {module}"
        for path, module, line in _package_imports("io")
        if module.startswith(("pumpkit.engine", "pumpkit.cli"))
    ]
    assert offences == []


def test_the_engine_never_imports_the_cli():
    offences = [
        f"{path}:{line} imports {module}"
        for path, module, line in _package_imports("engine")
        if module.startswith("pumpkit.cli")
    ]
    assert offences == []


# The names by which the engine could tell engines apart instead of asking an interface.
CONNECTOR_CLASSES = {"SqliteSource", "SqliteTarget", "PgSource", "PgTarget", "PgSnapshot"}
ENGINE_NAMES = {"sqlite", "postgresql", "postgres", "pg"}


def test_the_engine_asks_interfaces_and_never_names_an_engine():
    """No ``isinstance`` on a connector class and no comparison with an engine's name in
    engine/: what differs between engines is a capability the connector declares."""
    offences = []
    for path in sorted((PACKAGE / "engine").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("pumpkit.io.connectors.")
            ):
                named = {a.name for a in node.names} & CONNECTOR_CLASSES
                if named:
                    offences.append(f"{path.name}:{node.lineno} imports {sorted(named)}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance"
            ):
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                names |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
                if names & CONNECTOR_CLASSES:
                    offences.append(f"{path.name}:{node.lineno} isinstance on {names}")
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for operand in operands:
                    values = [operand] if isinstance(operand, ast.Constant) else []
                    if isinstance(operand, ast.Tuple | ast.List | ast.Set):
                        values = [e for e in operand.elts if isinstance(e, ast.Constant)]
                    offences.extend(
                        f"{path.name}:{node.lineno} compares with {value.value!r}"
                        for value in values
                        if isinstance(value.value, str) and value.value.lower() in ENGINE_NAMES
                    )
    assert offences == []


def test_no_import_circles_between_modules():
    """Every module of the package can be imported first, on its own, in a fresh
    interpreter (a circle shows up as an ImportError for one of them)."""
    import subprocess
    import sys

    modules = [
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "__main__.py"
    ]
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('pumpkit')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name.removesuffix('.__init__'))\n"
        "    except ImportError as exc:\n"
        "        failed.append(f'{name}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
