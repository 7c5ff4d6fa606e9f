"""``asif-qdrant info``, ``repair`` and ``demo``: look at a model, mend it, try one.

Example:
    >>> from click.testing import CliRunner
    >>> "--check-only" in CliRunner().invoke(repair, ["--help"]).output
    True
"""

from __future__ import annotations

from pathlib import Path

import click

from asif_qdrant.cli.common import ModelOptions, emit, model_options, output_options
from asif_qdrant.errors import ASIFError

__all__ = ["demo", "info", "repair"]


@click.command()
@model_options
def info(model: ModelOptions) -> None:
    """Show the model's fingerprint and collections."""
    with model.open() as asif:
        data = {
            "store": asif.store.describe(),
            **asif.fingerprint.as_payload(),
            "collections": asif.store.list_collections(),
        }
        model.emit(data, "\n".join(f"{k}: {v}" for k, v in data.items()))


@click.command()
@click.option("--check-only", is_flag=True, help="Report what is wrong; change nothing.")
@model_options
def repair(check_only: bool, model: ModelOptions) -> None:
    """Check the model's anchor pairing and catalogs; repair an interrupted edit.

    Opening a model on the embedded engine repairs it already; on a server the open only warns
    (another process may be editing): run this once no other process is editing.
    """
    with model.open() as asif:
        report = asif.check_integrity(repair=not check_only)
        model.emit(
            report.as_dict(),
            report.summary() or "consistent: the anchors are paired and the catalogs current",
        )


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default="asif-demo",
    show_default=True,
    help="Folder for the demo's model and contact sheet.",
)
@click.option("--k", type=int, default=800, show_default=True)
@click.option("--p", type=float, default=8.0, show_default=True)
@click.option("--limit-pairs", type=int, default=None, help="Use only this many stamps.")
@output_options
def demo(out: Path, k: int, p: float, limit_pairs: int | None, as_json: bool, quiet: bool) -> None:
    """Build a model from the Tux Paint stamps and measure text->image search on held-out ones."""
    from asif_qdrant.demo import run_demo

    try:
        result = run_demo(
            out, k=k, p=p, limit_pairs=limit_pairs, show_progress_bar=not quiet and not as_json
        )
    except ASIFError as e:
        raise click.ClickException(f"{type(e).__name__}: {e}") from e
    emit(as_json, result.as_dict(), result.table())
