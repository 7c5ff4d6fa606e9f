"""The ``asif-qdrant`` command line: a thin layer over :class:`asif_qdrant.ASIF` (click).

Every command takes ``--help`` and ``--json`` (one machine-readable JSON document on stdout).
The model lives in the embedded engine's folder ``--path`` (default ``$ASIF_QDRANT_PATH`` or
``./asif-data``), or on a Qdrant server given by ``--url`` (or ``$QDRANT_URL``).

One module per command group: :mod:`~asif_qdrant.cli.anchors` (``anchors add/list/delete/
audit``), :mod:`~asif_qdrant.cli.catalog` (``index``, ``search``, ``classify``),
:mod:`~asif_qdrant.cli.explain` (``explain``, ``explain-label``),
:mod:`~asif_qdrant.cli.transfer` (``export``, ``import``, ``migrate``) and
:mod:`~asif_qdrant.cli.admin` (``info``, ``repair``, ``demo``) and
:mod:`~asif_qdrant.cli.serve` (``serve``), sharing
:mod:`~asif_qdrant.cli.common`. This module builds the group :data:`main` from them; other
packages add commands through the entry-point group ``asif_qdrant.cli_commands``
(:mod:`~asif_qdrant.cli.plugins`).

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(main, ["--help"])
    >>> "anchors" in result.output and "demo" in result.output
    True
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from asif_qdrant.cli.admin import demo, info, repair
from asif_qdrant.cli.anchors import anchors
from asif_qdrant.cli.catalog import classify, index, search
from asif_qdrant.cli.common import VERBOSE, json_error
from asif_qdrant.cli.explain import explain, explain_label_command
from asif_qdrant.cli.plugins import PLUGIN_GROUP, PluginGroup
from asif_qdrant.cli.serve import serve
from asif_qdrant.cli.transfer import export_cmd, import_cmd, migrate_cmd
from asif_qdrant.encoders.base import text_only_imports

__all__ = ["PLUGIN_GROUP", "MainGroup", "main"]


class MainGroup(PluginGroup):
    """The ``asif-qdrant`` group: with ``--json`` anywhere, every failure is a JSON document.

    Usage errors (a missing argument, an unknown option, a bad choice) are raised before a
    command runs, so they are turned into ``{"error": ..., "message": ...}`` on stdout here,
    with click's exit code (2 for usage); any other failure exits 1 the same way.
    """

    def main(  # noqa: D102
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or "--json" not in argv:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as e:
            json_error(type(e).__name__, e.format_message())
            sys.exit(e.exit_code)
        except click.Abort:
            json_error("Abort", "Aborted.")
            sys.exit(1)
        except Exception as e:
            json_error(type(e).__name__, str(e))
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=MainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asif-qdrant")
@click.option(
    "--verbose", "-v", is_flag=True, help="Log what happens (INFO level) and print timings."
)
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """ASIF on Qdrant: a CLIP-like retriever from two frozen unimodal encoders."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    ctx.meta[VERBOSE] = verbose
    text_only_imports()  # a text encoder here never needs transformers' vision back-ends


for _command in (
    anchors,
    index,
    search,
    classify,
    explain,
    explain_label_command,
    export_cmd,
    import_cmd,
    migrate_cmd,
    info,
    repair,
    demo,
    serve,
):
    main.add_command(_command)
