"""Commands from other packages (entry-point group ``asif_qdrant.cli_commands``)."""

from __future__ import annotations

import logging
from importlib import metadata

import click
import pytest
from click.testing import CliRunner

from asif_qdrant.cli import PLUGIN_GROUP, main


@click.command()
@click.option("--who", default="world")
def hello(who: str) -> None:
    """Say hello."""
    click.echo(f"hello {who}")


class FakeEntryPoint:
    """What the CLI uses of an entry point: name, value, load()."""

    def __init__(self, name: str, target: object = None, error: Exception | None = None) -> None:
        self.name, self.value, self.group = name, f"fake_plugin:{name}", PLUGIN_GROUP
        self.target, self.error, self.loads = target, error, 0

    def load(self) -> object:
        self.loads += 1
        if self.error is not None:
            raise self.error
        return self.target


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch):
    """Install entry points of the group for one test; returns the setter."""

    def install(*entry_points: object) -> None:
        def fake(*, group: str) -> list[object]:
            return list(entry_points) if group == PLUGIN_GROUP else []

        monkeypatch.setattr(metadata, "entry_points", fake)

    return install


def test_a_plugin_command_is_listed_and_runs(plugins) -> None:
    ep = FakeEntryPoint("hello", hello)
    plugins(ep)
    out = CliRunner().invoke(main, ["search", "--help"])
    assert out.exit_code == 0 and ep.loads == 0  # loaded only when asked for
    out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0
    assert "hello" in out.output and "Say hello." in out.output and "search" in out.output
    out = CliRunner().invoke(main, ["hello", "--who", "ASIF"])
    assert out.exit_code == 0 and out.output == "hello ASIF\n"


def test_real_entry_points_load(plugins) -> None:
    plugins(
        metadata.EntryPoint("status", "asif_qdrant.cli.admin:info", PLUGIN_GROUP),
    )
    out = CliRunner().invoke(main, ["status", "--help"])
    assert out.exit_code == 0 and "fingerprint" in out.output


@pytest.mark.parametrize(
    "entry_point, error",
    [
        (FakeEntryPoint("broken", error=ImportError("no module named 'lab'")), "ImportError"),
        (FakeEntryPoint("broken", error=RuntimeError("plugin bug")), "RuntimeError"),
        (metadata.EntryPoint("broken", "no_such_module_xyz:cmd", PLUGIN_GROUP), "NotFound"),
        (FakeEntryPoint("broken", target=print), "not a click command"),
    ],
)
def test_a_broken_plugin_warns_and_the_cli_still_works(
    plugins, caplog: pytest.LogCaptureFixture, entry_point, error: str
) -> None:
    plugins(entry_point, FakeEntryPoint("hello", hello))
    with caplog.at_level(logging.WARNING, logger="asif_qdrant.cli"):
        out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0
    assert "anchors" in out.output and "hello" in out.output and "broken" not in out.output
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'broken'" in w and error in w for w in warnings), warnings
    assert CliRunner().invoke(main, ["hello"]).output == "hello world\n"
    assert CliRunner().invoke(main, ["info", "--help"]).exit_code == 0
    out = CliRunner().invoke(main, ["broken"])
    assert out.exit_code == 2 and "No such command 'broken'" in out.output


def test_a_builtin_command_wins_over_a_plugin_of_its_name(
    plugins, caplog: pytest.LogCaptureFixture
) -> None:
    ep = FakeEntryPoint("search", hello)
    plugins(ep)
    with caplog.at_level(logging.WARNING, logger="asif_qdrant.cli"):
        out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0 and "Say hello." not in out.output and ep.loads == 0
    assert any("'search'" in r.getMessage() for r in caplog.records)
    out = CliRunner().invoke(main, ["search", "--help"])
    assert "--item-modality" in out.output


def test_listing_the_plugins_may_fail(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    def broken(*, group: str) -> list[object]:
        raise ValueError("bad metadata")

    monkeypatch.setattr(metadata, "entry_points", broken)
    with caplog.at_level(logging.WARNING, logger="asif_qdrant.cli"):
        out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0 and "anchors" in out.output
    assert any("bad metadata" in r.getMessage() for r in caplog.records)
