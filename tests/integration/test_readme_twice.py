"""The README run twice: its Python example and its command-line sequence store nothing twice.

Both run on a small subset of the Tux Paint stamps (the Python example's ``[::10]`` slice
becomes ``[::40]``; the CLI's ``--tuxpaint`` becomes ``--folder`` with 20 of them), in a
temporary folder, with the real offline encoders and the embedded engine.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from asif_qdrant import ASIF
from asif_qdrant.cli import main
from asif_qdrant.loaders import load_tuxpaint_stamps
from asif_qdrant.retriever.keys import KEY_FIELD
from tests.helpers import python_blocks

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def stamps() -> list[Any]:
    try:
        return load_tuxpaint_stamps()
    except Exception as e:  # pragma: no cover - the setup script installs them
        pytest.skip(str(e))


def assert_nothing_twice(path: str, name: str | None = None) -> tuple[int, dict[str, int]]:
    """No two anchors and no two catalog items share a key; ``(anchors, items per catalog)``."""
    with ASIF(path=path, **({"name": name} if name else {})) as asif:
        anchors = asif.list_anchors()
        assert len({a[KEY_FIELD] for a in anchors}) == len(anchors) == asif.anchor_count
        items = {}
        for catalog in asif.fingerprint.catalogs:
            recs = list(asif.store.scroll(catalog))
            assert len({r.payload[KEY_FIELD] for r in recs}) == len(recs)
            items[catalog] = len(recs)
        return len(anchors), items


def test_readme_python_example_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (block,) = [b for b in python_blocks(README) if "add_anchors" in b][:1]
    assert "[::10]" in block, "the README's example changed: adapt the subset substitution"
    block = block.replace("[::10]", "[::40]")
    stamps()
    monkeypatch.chdir(tmp_path)
    reports: list[tuple[str, Any]] = []
    for method in ("add_anchors", "index"):
        original = getattr(ASIF, method)

        def spy(self: ASIF, *args: Any, _original: Any = original, _m: str = method, **kw: Any):
            result = _original(self, *args, **kw)
            reports.append((_m, result))
            return result

        monkeypatch.setattr(ASIF, method, spy)
    for _ in range(2):
        exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip()
    monkeypatch.undo()
    (_, add1), (_, index1), (_, add2), (_, index2) = reports
    assert add1.added > 0 and add1.already_present == 0
    assert (add2.added, add2.already_present) == (0, add1.added)
    assert (index2.added, index2.already_present) == (0, index1.added)
    assert list(add2) == list(add1) and list(index2) == list(index1)
    anchors, items = assert_nothing_twice(str(tmp_path / "my-asif"))
    assert anchors == add1.added and items == {"stamps": index1.added}


def readme_cli_commands() -> list[list[str]]:
    """The commands of the README's command-line block, one argument list each."""
    text = README.read_text()
    section = text[text.index("## Command line") :]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[:1]
    commands = []
    for line in block.splitlines():
        line = line.split("  #")[0]
        for part in line.split(" ; "):
            args = shlex.split(part)
            if args:
                assert args[0] == "asif-qdrant", part
                commands.append(args[1:])
    return commands


def cli_inputs(root: Path) -> None:
    """A 20-pair anchor folder, ./photos with 4 stamps, query.png and photo.png."""
    pairs = stamps()
    anchors = root / "subset"
    anchors.mkdir()
    for j, pair in enumerate(pairs[::40][:20]):
        shutil.copy(pair.image, anchors / f"{j:02d}.png")
        (anchors / f"{j:02d}.txt").write_text(pair.caption + "\n")
    photos = root / "photos"
    photos.mkdir()
    for j, pair in enumerate(pairs[7::150][:4]):
        shutil.copy(pair.image, photos / f"{j}.png")
    shutil.copy(pairs[3].image, root / "query.png")
    shutil.copy(pairs[5].image, root / "photo.png")


def test_readme_cli_sequence_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = readme_cli_commands()
    assert any(c[:2] == ["anchors", "add"] and "--tuxpaint" in c for c in commands)
    cli_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    runs: list[list[tuple[str, int, str]]] = []
    for _ in range(2):
        out = []
        for args in commands:
            args = [x for a in args for x in (["--folder", "subset"] if a == "--tuxpaint" else [a])]
            result = CliRunner().invoke(main, [*args, "--json", "-q"], catch_exceptions=False)
            out.append((" ".join(args[:2]), result.exit_code, result.stdout))
        runs.append(out)
    first, second = ({cmd: (code, stdout) for cmd, code, stdout in run} for run in runs)
    assert all(code == 0 for _, code, _ in runs[0]), runs[0]
    add1, add2 = (json.loads(r["anchors add"][1]) for r in (first, second))
    index1, index2 = (json.loads(r["index stamps"][1]) for r in (first, second))
    assert (add1["added"], add1["already_present"]) == (20, 0)
    # The first run deleted anchors 3 and 17: the second adds those two pairs back (new ids),
    # finds the other 18, and its 'anchors delete 3 17' is refused (no such anchors now).
    assert (add2["added"], add2["already_present"]) == (2, 18)
    assert (index1["added"], index1["already_present"]) == (4, 0)
    assert (index2["added"], index2["already_present"]) == (0, 4)
    assert index2["ids"] == index1["ids"]
    code, stdout = second["anchors delete"]
    assert code != 0 and "AnchorSetError" in stdout
    assert all(code == 0 for cmd, code, _ in runs[1] if cmd != "anchors delete"), runs[1]
    anchors, items = assert_nothing_twice(str(tmp_path / "my-asif"))
    assert anchors == 20 and items == {"stamps": 4}
