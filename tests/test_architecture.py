"""The house rules of docs/design.md, checked on the source (issue #14).

* Small rooms: ``model.py`` <= 900 lines, each of its methods (``__init__`` aside) at most
  12 lines of code below its docstring (validate, then delegate), no module of the package over
  800, no function over 100 (docstrings included).
* One door for writes: only ``asif_qdrant/store/`` and ``asif_qdrant/retriever/writes.py`` call
  a store's writing methods.
* No reaching in: no module uses a private name (``_x``) that only other modules of the
  package define, through an object or an import (tests, benchmarks and the lab included).

The layers themselves are import contracts (``lint-imports``, run by scripts/test.sh).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "asif_qdrant"
#: Everything that uses the package: it must use public names too.
USERS = [
    PACKAGE,
    *(ROOT / d for d in ("tests", "benchmarks", "evaluation", "integrations", "examples")),
]
WRITES = {
    "create_collection",
    "create_payload_index",
    "delete_collection",
    "upsert",
    "update_vectors",
    "delete",
}


def _sources(*roots: Path) -> Iterator[tuple[Path, ast.Module]]:
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_model_is_a_facade_and_every_room_is_small() -> None:
    assert len((PACKAGE / "model.py").read_text().splitlines()) <= 900
    model_tree = ast.parse((PACKAGE / "model.py").read_text(encoding="utf-8"))
    logic = []
    for node in ast.walk(model_tree):
        if isinstance(node, ast.FunctionDef) and node.name != "__init__":
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            n = body[-1].end_lineno - body[0].lineno + 1 if body else 0  # type: ignore[operator]
            if n > 12:
                logic.append(f"model.py:{node.lineno} {node.name} ({n} lines of code)")
    assert not logic, f"the facade holds logic; move it to asif_qdrant/retriever/: {logic}"
    too_long, too_big = [], []
    for path, tree in _sources(PACKAGE):
        lines = len(path.read_text().splitlines())
        if lines > 800:
            too_big.append(f"{_rel(path)} ({lines} lines)")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > 100:
                    too_long.append(f"{_rel(path)}:{node.lineno} {node.name} ({n} lines)")
    assert not too_big, f"modules over 800 lines: {too_big}"
    assert not too_long, f"functions over 100 lines: {too_long}"


def test_every_store_write_passes_through_the_writes_module() -> None:
    doors = {PACKAGE / "retriever" / "writes.py"}
    found = []
    for path, tree in _sources(PACKAGE):
        if path in doors or (PACKAGE / "store") in path.parents:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WRITES
                and ast.unparse(node.func.value).split(".")[-1].endswith("store")
            ):
                found.append(f"{_rel(path)}:{node.lineno} {ast.unparse(node.func)}")
    assert not found, f"store writes outside asif_qdrant.retriever.writes: {found}"


def _private_names() -> dict[str, set[str]]:
    """Private names the package defines (functions, methods, attributes), and where."""
    names: dict[str, set[str]] = {}
    for path, tree in _sources(PACKAGE):
        for node in ast.walk(tree):
            name = None
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = node.name
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                name = node.attr
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                name = node.id
            if name and name.startswith("_") and not name.startswith("__"):
                names.setdefault(name, set()).add(_rel(path))
    return names


@pytest.mark.parametrize("root", USERS, ids=lambda p: p.name)
def test_no_module_reaches_into_another_modules_private_names(root: Path) -> None:
    if not root.exists():
        pytest.skip(f"{_rel(root)} is not in this checkout")
    private = _private_names()
    found = []
    for path, tree in _sources(root):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("asif_qdrant"):
                found += [
                    f"{_rel(path)}:{node.lineno} imports {a.name} from {node.module}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
            elif (
                isinstance(node, ast.Attribute)
                and _rel(path) not in private.get(node.attr, {_rel(path)})
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and ast.unparse(node.value) != "super()"  # a subclass extending its base's hook
            ):
                found.append(f"{_rel(path)}:{node.lineno} {ast.unparse(node)}")
    assert not found, f"private names used from outside their class or module: {found}"
