"""Commands from other packages: the entry-point group ``asif_qdrant.cli_commands``.

A package adds a command to ``asif-qdrant`` by registering a click command in that group,
e.g. in its ``pyproject.toml``::

    [project.entry-points."asif_qdrant.cli_commands"]
    evaluate = "asif_qdrant_evaluation.cli:evaluate"

The entry point's name is the command's name. A plugin is imported only when its command
runs or the command list is shown (``--help``); one that fails to import, or is not a click
command, is left out with a logged warning naming it and the error, and every other command
works. A built-in command wins over a plugin of the same name.

Example:
    >>> import click
    >>> group = PluginGroup(plugin_group="no.such.group")
    >>> group.add_command(click.Command("hello"))
    >>> group.list_commands(click.Context(group))
    ['hello']
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any

import click

__all__ = ["PLUGIN_GROUP", "PluginGroup", "load_plugin"]

logger = logging.getLogger(__name__)

#: The entry-point group whose click commands ``asif-qdrant`` offers next to its own.
PLUGIN_GROUP = "asif_qdrant.cli_commands"


def load_plugin(entry_point: metadata.EntryPoint) -> click.Command | None:
    """The click command an entry point names, or None (with a warning) when it fails.

    Args:
        entry_point: An entry point of :data:`PLUGIN_GROUP` (anything with ``name``,
            ``value`` and ``load()``).

    Returns:
        The command, or None when loading it raised or gave something else than a click
        command.
    """
    try:
        command = entry_point.load()
    except Exception as e:
        logger.warning(
            "The asif-qdrant command plugin %r (%s) failed to load: %s: %s",
            entry_point.name,
            entry_point.value,
            type(e).__name__,
            e,
        )
        return None
    if not isinstance(command, click.Command):
        logger.warning(
            "The asif-qdrant command plugin %r (%s) is not a click command (got %s): left out.",
            entry_point.name,
            entry_point.value,
            type(command).__name__,
        )
        return None
    return command


class PluginGroup(click.Group):
    """A click group that also offers the commands of an entry-point group.

    The entry points are looked up on each listing or lookup of a command that is not built
    in (nothing is cached: a plugin installed later shows up), and a plugin is imported only
    when its command is asked for.

    Args:
        plugin_group: The entry-point group (default :data:`PLUGIN_GROUP`).
        *args: Passed to :class:`click.Group`.
        **kwargs: Passed to :class:`click.Group`.
    """

    def __init__(self, *args: Any, plugin_group: str = PLUGIN_GROUP, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_group = plugin_group

    def plugins(self) -> dict[str, metadata.EntryPoint]:
        """The plugin entry points by command name (the first of a name; built-ins excluded)."""
        found: dict[str, metadata.EntryPoint] = {}
        try:
            entry_points = metadata.entry_points(group=self.plugin_group)
        except Exception as e:  # broken distribution metadata must not break the CLI
            logger.warning(
                "Cannot list the asif-qdrant command plugins (%s): %s: %s",
                self.plugin_group,
                type(e).__name__,
                e,
            )
            return found
        for ep in entry_points:
            if ep.name in self.commands:
                logger.warning(
                    "The asif-qdrant command plugin %r (%s) is left out: a built-in command "
                    "has that name.",
                    ep.name,
                    ep.value,
                )
            elif ep.name not in found:
                found[ep.name] = ep
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The built-in commands and the plugins' names, sorted."""
        return sorted({*super().list_commands(ctx), *self.plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The built-in command ``cmd_name``, else the plugin of that name (loaded now)."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry_point = self.plugins().get(cmd_name)
        return load_plugin(entry_point) if entry_point is not None else None
