"""``asif-qdrant anchors``: add, list, delete and audit the anchor pairs (image + caption).

* ``anchors add --folder DIR`` (or ``--csv``, ``--jsonl``, ``--tuxpaint``, ``--pool
  tuxpaint,openclipart,emoji``: the offline pools of :mod:`asif_qdrant.pools`): embed the pairs and
  add them (a new model is created with ``--k``, ``--p``, the encoders and ``--csa-dim``).
* ``anchors list`` / ``anchors delete ID...``.
* ``anchors audit --folder DIR``: on a labeled set (``DIR/<label>/...`` or a CSV), the anchors
  most responsible for wrong zero-shot predictions, ranked; ``--delete N`` deletes the top N
  and measures the accuracy again.

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(anchors, ["--help"])
    >>> all(c in result.output for c in ("add", "list", "delete", "audit"))
    True
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from asif_qdrant.cli.common import (
    ModelOptions,
    file_option,
    folder_option,
    model_options,
    template_options,
)

__all__ = [
    "anchors",
    "anchors_add",
    "anchors_delete",
    "anchors_list",
    "audit",
    "load_labeled",
    "load_pairs",
]


@click.group()
def anchors() -> None:
    """Add, list and delete anchor pairs (image + caption)."""


def load_pairs(
    folder: Path | None,
    csv_file: Path | None,
    jsonl: Path | None,
    tuxpaint: bool,
    pool: str | None = None,
) -> list[Any]:
    """The anchor pairs (:class:`~asif_qdrant.loaders.Pair`) of exactly one source.

    Raises:
        click.UsageError: Not exactly one of the sources is given.
    """
    from asif_qdrant import loaders

    chosen = [x for x in (folder, csv_file, jsonl, pool) if x is not None] + (
        [True] if tuxpaint else []
    )
    if len(chosen) != 1:
        raise click.UsageError(
            "Give exactly one of --folder, --csv, --jsonl, --tuxpaint or --pool."
        )
    if pool is not None:
        from asif_qdrant import pools
        from asif_qdrant.errors import InvalidInputError

        try:
            return pools.load_pool(pool)
        except InvalidInputError as e:  # an unknown pool, or one not installed
            raise click.UsageError(f"--pool: {e}") from e
    if folder is not None:
        return loaders.load_folder(folder)
    if csv_file is not None:
        return loaders.load_csv(csv_file)
    if jsonl is not None:
        return loaders.load_jsonl(jsonl)
    return loaders.load_tuxpaint_stamps()


def _recomputed(touched: int, total: int, seconds: float) -> str:
    return f"re-computed {touched} of {total} catalog items in {seconds:.2f} s"


@anchors.command("add")
@folder_option("--folder", help="Images with same-name .txt captions.")
@file_option("--csv", "csv_file", help="CSV with 'image' and 'caption' columns.")
@file_option("--jsonl", help="JSON Lines with 'image' and 'caption' keys.")
@click.option("--tuxpaint", is_flag=True, help="The Tux Paint stamps (Debian package).")
@click.option(
    "--pool",
    default=None,
    metavar="NAMES",
    help="Ready-made offline pools, comma-separated: tuxpaint,openclipart,emoji (all three: "
    "the evaluation's 4,085 pairs; sources and licences in asif_qdrant.pools).",
)
@click.option("--k", type=int, default=None, help="Anchors per relative vector [new model: 800].")
@click.option("--p", type=float, default=None, help="Exponent of the weights [new model: 8].")
@click.option("--image-encoder", default=None, help="timm model name [default: offline Lite0].")
@click.option("--text-encoder", default=None, help="sentence-transformers name or folder.")
@click.option(
    "--csa-dim",
    type=int,
    default=None,
    help="Also fit CSA with this many canonical dimensions (enables --method csa/hybrid).",
)
@model_options
def anchors_add(
    folder: Path | None,
    csv_file: Path | None,
    jsonl: Path | None,
    tuxpaint: bool,
    pool: str | None,
    k: int | None,
    p: float | None,
    image_encoder: str | None,
    text_encoder: str | None,
    csa_dim: int | None,
    model: ModelOptions,
) -> None:
    """Embed image-caption pairs and add them as anchors."""
    pairs = load_pairs(folder, csv_file, jsonl, tuxpaint, pool)
    with model.open(
        create=True,
        k=k,
        p=p,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        csa_dim=csa_dim,
    ) as asif:
        ids = asif.add_anchors(
            [x.image for x in pairs],
            [x.caption for x in pairs],
            payloads=[x.metadata for x in pairs],
            source=pairs[0].source if pairs else None,
        )
        edit = asif.last_edit if ids else None
        data = {
            "added": len(ids),
            "ids": ids,
            "anchor_count": asif.anchor_count,
            "anchor_version": asif.fingerprint.anchor_version,
            "edit": edit.as_dict() if edit else None,
        }
        model.emit(
            data,
            f"added {len(ids)} anchor pairs; the model '{model.name}' now has "
            f"{asif.anchor_count} (version {asif.fingerprint.anchor_version})"
            + (
                f"\n{_recomputed(edit.items_touched, edit.items_total, edit.seconds)}"
                if edit
                else ""
            ),
        )


@anchors.command("list")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many to show (0: all).",
)
@model_options
def anchors_list(limit: int, model: ModelOptions) -> None:
    """List anchor pairs (id and caption)."""
    with model.open() as asif:
        rows = asif.list_anchors(limit=limit or None)
        text = "\n".join(f"{r['id']:>8}  {r.get('caption', '')}" for r in rows)
        if len(rows) < asif.anchor_count:
            text += (
                f"\n(the first {len(rows)} of {asif.anchor_count}: see more with --limit N, "
                "or all with --limit 0)"
            )
        last = asif.fingerprint.last_edit
        model.emit(
            {
                "anchor_count": asif.anchor_count,
                "anchor_version": asif.fingerprint.anchor_version,
                "last_edit": last,
                "shown": len(rows),
                "truncated": len(rows) < asif.anchor_count,
                "anchors": rows,
            },
            f"{asif.anchor_count} anchor pairs (version {asif.fingerprint.anchor_version})"
            + (
                f"; last edit: {last['operation']} {last['pairs']} pairs, "
                + _recomputed(last["items_touched"], last["items_total"], last["seconds"])
                if last
                else ""
            )
            + f"\n{text}",
        )


@anchors.command("delete")
@click.argument("ids", nargs=-1, type=int, required=True)
@model_options
def anchors_delete(ids: Sequence[int], model: ModelOptions) -> None:
    """Delete anchor pairs by id."""
    with model.open() as asif:
        n = asif.delete_anchors(ids)
        edit = asif.last_edit if n else None
        model.emit(
            {"deleted": n, "anchor_count": asif.anchor_count},
            f"deleted {n} anchor pairs; {asif.anchor_count} left"
            + (
                f"\n{_recomputed(edit.items_touched, edit.items_total, edit.seconds)} "
                f"(version {edit.anchor_version})"
                if edit
                else ""
            ),
        )


def load_labeled(folder: Path | None, csv_file: Path | None) -> list[tuple[str, str]]:
    """``(image path, label)`` pairs of a labeled set.

    A folder holds one sub-folder per label (any depth below it: the first level names the
    label, as the Tux Paint stamps are laid out); a CSV has ``image`` and ``label`` columns
    (relative paths are resolved against the CSV's folder).

    Raises:
        click.UsageError: Not exactly one source, a CSV without those columns, or no image.
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
@folder_option("--folder", help="A labeled set: one sub-folder of images per label.")
@file_option("--csv", "csv_file", help="A labeled set: a CSV with 'image' and 'label' columns.")
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
@model_options
def audit(
    folder: Path | None,
    csv_file: Path | None,
    templates: Sequence[str],
    template_strategy: str,
    top: int,
    delete_n: int,
    holdout: float,
    seed: int,
    model: ModelOptions,
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
    with model.open() as asif:
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
        model.emit(data, "\n".join(text))
