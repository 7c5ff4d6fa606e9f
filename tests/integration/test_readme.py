"""The README's Python example runs as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import python_blocks

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_has_a_python_example() -> None:
    assert python_blocks(README)


@pytest.mark.parametrize("block", python_blocks(README))
def test_readme_python_block_runs(block: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes its model folder in the working directory
    exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert out.strip(), "the example prints its results"
