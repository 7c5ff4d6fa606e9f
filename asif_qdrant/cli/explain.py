"""``asif-qdrant explain`` and ``explain-label``: the anchor pairs behind a score.

* ``asif-qdrant explain COLLECTION QUERY`` (or ``--image``): the anchor pairs behind a
  match, as a table (``--json``: one entry per anchor) and a PNG (paper, Fig. 6/7).
* ``asif-qdrant explain-label IMAGE --labels a,b,c``: why one label beat another.

Example:
    >>> from click.testing import CliRunner
    >>> "--no-png" in CliRunner().invoke(explain, ["--help"]).output
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from asif_qdrant.cli.common import (
    EXISTING_FILE,
    FILE_PATH,
    F,
    ModelOptions,
    labels_option,
    model_options,
    query_options,
    split_labels,
    stack,
    template_options,
    text_or_image,
)

__all__ = ["explain", "explain_label_command"]


def _item_id(text: str) -> int | str:
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _picture_options(default: str) -> Callable[[F], F]:
    """``--top``, ``--png`` (default ``default``) and ``--no-png``: what an explanation shows."""
    return stack(
        click.option("--top", type=int, default=6, show_default=True, help="Anchors to show."),
        click.option(
            "--png",
            "png",
            type=FILE_PATH,
            default=default,
            show_default=True,
            help="Where to write the picture (a .png).",
        ),
        click.option("--no-png", is_flag=True, help="Do not write the picture."),
    )


def _check_top(top: int) -> None:
    if top < 1:
        raise click.UsageError(f"--top must be >= 1. Got {top}.")


def _show(model: ModelOptions, why: Any, top: int, png: Path, no_png: bool) -> None:
    """Print an explanation (its ``top`` anchors) and draw it to ``png`` unless ``no_png``."""
    data = why.as_dict(top)
    text = why.table(top)
    if not no_png:
        from asif_qdrant.plotting import explain_figure

        data["png"] = str(explain_figure(why, png, top=top))
        text += f"\npicture: {data['png']}"
    model.emit(data, text)


@click.command("explain")
@query_options("Explain a search with this image instead of a text QUERY.")
@click.option("--item", "item", default=None, help="The item id to explain [default: top hit].")
@_picture_options("explain.png")
@model_options
def explain(
    collection: str,
    query: str | None,
    image: Path | None,
    item: str | None,
    top: int,
    png: Path,
    no_png: bool,
    model: ModelOptions,
) -> None:
    """Explain why an item of COLLECTION matches QUERY: the anchor pairs behind its score."""
    q = text_or_image(query, image)
    _check_top(top)
    with model.open() as asif:
        if item is None:
            hits = asif.search(collection, q, limit=1)
            if not hits:
                model.emit(
                    {"query": str(q), "item_id": None, "score": 0.0, "shared_anchors": 0},
                    "no match: the query shares no anchor with any item of the catalog",
                )
                return
            target: Any = hits[0].id
        else:
            target = _item_id(item)
        _show(model, asif.explain(q, target, collection), top, png, no_png)


@click.command("explain-label")
@click.argument("image", type=EXISTING_FILE)
@labels_option
@template_options
@click.option("--label", default=None, help="Label A [default: the predicted one].")
@click.option("--versus", default=None, help="Label B [default: the runner-up].")
@_picture_options("explain-label.png")
@model_options
def explain_label_command(
    image: Path,
    labels: str,
    templates: Sequence[str],
    template_strategy: str,
    label: str | None,
    versus: str | None,
    top: int,
    png: Path,
    no_png: bool,
    model: ModelOptions,
) -> None:
    """Explain why IMAGE got one label rather than another (zero-shot classification)."""
    names = split_labels(labels)
    _check_top(top)
    with model.open() as asif:
        why = asif.explain_label(
            image,
            names,
            templates=list(templates) or None,
            template_strategy=template_strategy,  # type: ignore[arg-type]
            label=label,
            versus=versus,
        )
        _show(model, why, top, png, no_png)
