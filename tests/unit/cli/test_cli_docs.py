"""docs/CLI.md documents every command of the click group, and its examples are real.

Every example parses with click (known command, known options, the right arguments); the ones
that load no encoder run on a small model laid out as the demo's (``asif-demo/model``, model
``tuxpaint``, catalog ``stamps``), from precomputed embeddings.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from asif_qdrant.cli import main
from tests.helpers import precomputed_asif

DOC = Path(__file__).resolve().parents[3] / "docs" / "CLI.md"
#: Examples that load no encoder: run for real on the small model.
FAST = (("info",), ("anchors", "list"), ("anchors", "delete"), ("repair",))


def leaf_commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command path of the group, plugins included: ``("anchors", "add")``..."""
    ctx = click.Context(group)
    out: set[tuple[str, ...]] = set()
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out |= leaf_commands(cmd, (*prefix, name))
        elif cmd is not None:
            out.add((*prefix, name))
    return out


def examples() -> list[list[str]]:
    """The arguments of every ``asif-qdrant ...`` line of the doc's bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    lines = [ln for b in blocks for ln in b.splitlines() if ln.startswith("asif-qdrant ")]
    return [shlex.split(ln)[1:] for ln in lines]


def resolve(args: list[str]) -> tuple[tuple[str, ...], click.Command, list[str]]:
    """The command path, command and its own arguments of one example (after ``-v``)."""
    args = [a for a in args if a not in ("-v", "--verbose")]
    cmd: click.Command = main
    path: list[str] = []
    while isinstance(cmd, click.Group):
        sub = cmd.get_command(click.Context(cmd), args[0])
        assert sub is not None, f"unknown command {args[0]!r} in docs/CLI.md"
        path.append(args.pop(0))
        cmd = sub
    return tuple(path), cmd, args


def test_every_command_is_documented() -> None:
    documented = set(re.findall(r"^### `asif-qdrant ([\w -]+)`", DOC.read_text(), flags=re.M))
    commands = {" ".join(c) for c in leaf_commands()}
    assert commands - documented == set(), "commands missing from docs/CLI.md"
    assert documented - commands <= {"evaluate"}  # the plugin, when the lab is not installed
    exampled = {
        resolve(a)[0] for a in examples() if a[0] in main.list_commands(click.Context(main))
    }
    assert leaf_commands() - exampled == set(), "commands without an example"


@pytest.mark.parametrize("args", examples(), ids=lambda a: " ".join(a[:3]))
def test_every_example_parses(args: list[str]) -> None:
    if args[0] not in main.list_commands(click.Context(main)):
        pytest.skip(f"the plugin command {args[0]!r} is not installed here")
    path, cmd, own = resolve(args)
    # click's parser, before values are converted (files need not exist): an unknown option
    # raises, and every argument is there, no more.
    parser = cmd.make_parser(click.Context(cmd, info_name=" ".join(path)))
    opts, extra, _ = parser.parse_args(list(own))
    assert not extra, f"unexpected arguments {extra} in {args}"
    required = [p.name for p in cmd.params if isinstance(p, click.Argument) and p.required]
    missing = [
        n for n in required if opts.get(n) in (None, ()) or not isinstance(opts[n], str | tuple)
    ]
    assert not missing, f"missing arguments {missing} in {args}"


@pytest.fixture
def demo_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working folder of a small model where the demo puts its own."""
    rng = np.random.default_rng(0)
    with precomputed_asif(path=tmp_path / "asif-demo" / "model", name="tuxpaint", k=3) as asif:
        captions = [{"caption": f"stamp {i}"} for i in range(30)]
        asif.add_anchor_embeddings(rng.random((30, 8)), rng.random((30, 6)), payloads=captions)
        asif.index_embeddings("stamps", rng.random((6, 8)), "image")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_fast_examples_run(demo_like: Path) -> None:
    ran = 0
    for args in examples():
        path, _, _ = resolve(list(args))
        if path in FAST:
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, (args, result.output)
            ran += 1
    assert ran >= len(FAST)
