"""CLI commands that explain scores and curate the anchor set.

* ``asif-qdrant explain COLLECTION QUERY`` (or ``--image``): the anchor pairs behind a
  match, as a table (``--json``: one entry per anchor) and a PNG (paper, Fig. 6/7).
* ``asif-qdrant explain-label IMAGE --labels a,b,c``: why one label beat another.
* ``asif-qdrant anchors audit --folder DIR``: on a labeled set (``DIR/<label>/...`` or a CSV),
  the anchors most responsible for wrong zero-shot predictions, ranked; ``--delete N``
  deletes the top N and measures the accuracy again.

Registered on :data:`asif_qdrant.cli.main` when :mod:`asif_qdrant.cli` is imported.

Example:
    >>> from click.testing import CliRunner
    >>> from asif_qdrant.cli import main
    >>> "explain" in CliRunner().invoke(main, ["--help"]).output
    True
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from asif_qdrant.cli import _emit, _open, anchors, common_options, main, template_options

__all__ = ["audit", "explain", "explain_label_command", "load_labeled"]


def _item_id(text: str) -> int | str:
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _png_option(default: str) -> Any:
    return click.option(
        "--png",
        "png",
        type=click.Path(dir_okay=False, path_type=Path),
        default=default,
        show_default=True,
        help="Where to write the picture (a .png).",
    )


@main.command("explain")
@click.argument("collection")
@click.argument("query", required=False)
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Explain a search with this image instead of a text QUERY.",
)
@click.option("--item", "item", default=None, help="The item id to explain [default: top hit].")
@click.option("--top", type=int, default=6, show_default=True, help="Anchors to show.")
@_png_option("explain.png")
@click.option("--no-png", is_flag=True, help="Do not write the picture.")
@common_options
def explain(
    collection: str,
    query: str | None,
    image: Path | None,
    item: str | None,
    top: int,
    png: Path,
    no_png: bool,
    path: Path | None,
    url: str | None,
    name: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Explain why an item of COLLECTION matches QUERY: the anchor pairs behind its score."""
    if (query is None) == (image is None):
        raise click.UsageError("Give a text QUERY or --image PATH (one of them).")
    if top < 1:
        raise click.UsageError(f"--top must be >= 1. Got {top}.")
    q: Any = image if image is not None else query
    with _open(path, url, name, quiet) as asif:
        if item is None:
            hits = asif.search(collection, q, limit=1)
            if not hits:
                _emit(
                    as_json,
                    {"query": str(q), "item_id": None, "score": 0.0, "shared_anchors": 0},
                    "no match: the query shares no anchor with any item of the catalog",
                )
                return
            target: Any = hits[0].id
        else:
            target = _item_id(item)
        why = asif.explain(q, target, collection)
        data = why.as_dict(top)
        text = why.table(top)
        if not no_png:
            from asif_qdrant.plotting import explain_figure

            data["png"] = str(explain_figure(why, png, top=top))
            text += f"\npicture: {data['png']}"
        _emit(as_json, data, text)


@main.command("explain-label")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--labels", required=True, help="Comma-separated class names, e.g. 'cat,dog'.")
@template_options
@click.option("--label", default=None, help="Label A [default: the predicted one].")
@click.option("--versus", default=None, help="Label B [default: the runner-up].")
@click.option("--top", type=int, default=6, show_default=True, help="Anchors to show.")
@_png_option("explain-label.png")
@click.option("--no-png", is_flag=True, help="Do not write the picture.")
@common_options
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
    path: Path | None,
    url: str | None,
    name: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Explain why IMAGE got one label rather than another (zero-shot classification)."""
    names = [x.strip() for x in labels.split(",") if x.strip()]
    if top < 1:
        raise click.UsageError(f"--top must be >= 1. Got {top}.")
    with _open(path, url, name, quiet) as asif:
        why = asif.explain_label(
            image,
            names,
            templates=list(templates) or None,
            template_strategy=template_strategy,  # type: ignore[arg-type]
            label=label,
            versus=versus,
        )
        data = why.as_dict(top)
        text = why.table(top)
        if not no_png:
            from asif_qdrant.plotting import explain_figure

            data["png"] = str(explain_figure(why, png, top=top))
            text += f"\npicture: {data['png']}"
        _emit(as_json, data, text)


def load_labeled(folder: Path | None, csv_file: Path | None) -> list[tuple[str, str]]:
    """``(image path, label)`` pairs of a labeled set.

    A folder holds one sub-folder per label (any depth below it: the first level names the
    label, as the Tux Paint stamps are laid out); a CSV has ``image`` and ``label`` columns
    (relative paths are resolved against the CSV's folder).
    """
    from asif_qdrant.loaders import DEFAULT_IMAGE_EXTENSIONS

    if (folder is None) == (csv_file is None):
        raise click.UsageError("Give exactly one of --folder or --csv.")
    out: list[tuple[str, str]] = []
    if folder is not None:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            for f in sorted(sub.rglob("*")):
                if f.is_file() and f.suffix.lower() in DEFAULT_IMAGE_EXTENSIONS:
                    out.append((str(f), sub.name))
    else:
        assert csv_file is not None
        with csv_file.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"image", "label"} <= set(reader.fieldnames):
                raise click.UsageError(
                    f"{csv_file} must have 'image' and 'label' columns. Got {reader.fieldnames}."
                )
            for row in reader:
                img = Path(row["image"])
                out.append((str(img if img.is_absolute() else csv_file.parent / img), row["label"]))
    if not out:
        raise click.UsageError("The labeled set is empty: no images found.")
    return out


def _split(n: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    cut = round(n * holdout)
    check, audit_part = sorted(order[:cut]), sorted(order[cut:])
    return audit_part, check


@anchors.command("audit")
@click.option(
    "--folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A labeled set: one sub-folder of images per label.",
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A labeled set: a CSV with 'image' and 'label' columns.",
)
@template_options
@click.option("--top", type=int, default=10, show_default=True, help="Anchors to list.")
@click.option(
    "--delete",
    "delete_n",
    type=int,
    default=0,
    show_default=True,
    help="Delete the N most harmful anchors, then measure the accuracy again.",
)
@click.option(
    "--holdout",
    type=float,
    default=0.5,
    show_default=True,
    help="Share of the set kept out of the ranking, to check the accuracy change on.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@common_options
def audit(
    folder: Path | None,
    csv_file: Path | None,
    templates: Sequence[str],
    template_strategy: str,
    top: int,
    delete_n: int,
    holdout: float,
    seed: int,
    path: Path | None,
    url: str | None,
    name: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Rank anchors by how much they cause wrong zero-shot predictions on a labeled set.

    The label of an image is its sub-folder's name (underscores read as spaces) or the CSV's
    'label' column. Anchors are ranked on one part of the set; the accuracy before and after
    deleting the top --delete N is reported on both parts (the held-out one is the honest
    measure).
    """
    if not 0 <= holdout < 1:
        raise click.UsageError(f"--holdout must be in [0, 1). Got {holdout}.")
    if delete_n < 0 or top < 1:
        raise click.UsageError("--delete must be >= 0 and --top >= 1.")
    rows = load_labeled(folder, csv_file)
    labels = sorted({lab for _, lab in rows})
    words = {lab: lab.replace("_", " ") for lab in labels}
    prompts = [words[lab] for lab in labels]
    tmpl = list(templates) or None
    audit_idx, check_idx = _split(len(rows), holdout, seed)
    with _open(path, url, name, quiet) as asif:
        emb = asif.encode([img for img, _ in rows], "image")

        def accuracy(idx: list[int]) -> float | None:
            if not idx:
                return None
            vecs = asif.relative_from_embeddings(emb[idx], "image")
            predicted = asif.classify(
                vecs,
                prompts,
                templates=tmpl,
                template_strategy=template_strategy,  # type: ignore[arg-type]
            )
            right = sum(p == words[rows[i][1]] for p, i in zip(predicted, idx, strict=True))
            return right / len(idx)

        vecs = asif.relative_from_embeddings(emb[audit_idx], "image")
        report = asif.audit_anchors(
            vecs,
            [words[rows[i][1]] for i in audit_idx],
            prompts,
            templates=tmpl,
            template_strategy=template_strategy,  # type: ignore[arg-type]
        )
        data: dict[str, Any] = {
            "images": len(rows),
            "labels": labels,
            "audit_images": len(audit_idx),
            "check_images": len(check_idx),
            **{f"audit_{k}": v for k, v in report.as_dict(top).items() if k != "labels"},
            "check_accuracy": accuracy(check_idx),
        }
        text = [
            f"{len(rows)} labeled images, {len(labels)} labels; ranked on {len(audit_idx)}, "
            f"checked on {len(check_idx)}",
            report.table(top),
        ]
        if data["check_accuracy"] is not None:
            text.append(f"held-out accuracy {data['check_accuracy']:.3f}")
        if delete_n:
            victims = [a.id for a in report.anchors[:delete_n]]
            asif.delete_anchors(victims)
            after_audit = accuracy(audit_idx)
            after_check = accuracy(check_idx)
            data["deleted"] = victims
            data["edit"] = asif.last_edit.as_dict() if asif.last_edit else None
            data["audit_accuracy_after"] = after_audit
            data["check_accuracy_after"] = after_check
            text.append(
                f"deleted {len(victims)} anchors; accuracy on the ranked part "
                f"{report.accuracy:.3f} -> {after_audit:.3f}"
                + (
                    f", on the held-out part {data['check_accuracy']:.3f} -> {after_check:.3f}"
                    if after_check is not None
                    else ""
                )
            )
            if asif.last_edit is not None:
                text.append(asif.last_edit.summary())
        _emit(as_json, data, "\n".join(text))
