"""The Python blocks of docs/LANGCHAIN.md and of the adapter's README run as written."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from tests.helpers import python_blocks

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
DOCS = [REPO / "docs" / "LANGCHAIN.md", REPO / "integrations" / "langchain" / "README.md"]
BLOCKS = [
    pytest.param(doc, block, id=f"{doc.name}-{i}")
    for doc in DOCS
    for i, block in enumerate(python_blocks(doc))
]


def test_each_doc_has_a_python_block() -> None:
    assert {doc for doc, *_ in (p.values for p in BLOCKS)} == set(DOCS)


@pytest.mark.parametrize(("doc", "block"), BLOCKS)
def test_block_compiles_and_imports_exist(doc: Path, block: str) -> None:
    """Smoke check (fast): the block parses and every name it imports exists."""
    tree = ast.parse(block, filename=str(doc))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"


@pytest.mark.slow
@pytest.mark.parametrize(("doc", "block"), BLOCKS)
def test_block_runs(doc: Path, block: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the blocks write their model folder in the working directory
    exec(compile(block, str(doc), "exec"), {"__name__": "__doc_block__"})
    out = capsys.readouterr().out
    assert "pigeon.png" in out  # both blocks ask for "a bird"
