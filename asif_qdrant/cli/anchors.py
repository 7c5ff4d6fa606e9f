"""``asif-qdrant anchors``: add, list, delete and audit the anchor pairs (image + caption).

* ``anchors add --folder DIR`` (or ``--csv``, ``--jsonl``, ``--tuxpaint``, ``--pool
  tuxpaint,openclipart,emoji``: the offline pools of :mod:`asif_qdrant.pools`): embed the pairs and
  add them (a new model is created with ``--k``, ``--p``, the encoders and ``--csa-dim``).
* ``anchors list`` / ``anchors delete ID...``.
* ``anchors audit --folder DIR``: on a labeled set (``DIR/<label>/...`` or a CSV), the anchors
  most responsible for wrong zero-shot predictions, ranked (report only; ``--delete N
  --apply`` deletes the top N when the held-out accuracy does not drop), and
  ``anchors restore FILE`` (:mod:`asif_qdrant.cli.audit`).

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(anchors, ["--help"])
    >>> all(c in result.output for c in ("add", "list", "delete", "audit"))
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from asif_qdrant.cli.audit import audit, load_labeled, restore
from asif_qdrant.cli.common import (
    ModelOptions,
    file_option,
    folder_option,
    model_options,
    number_option,
    on_duplicate_option,
)

__all__ = [
    "anchors",
    "anchors_add",
    "anchors_delete",
    "anchors_list",
    "audit",
    "load_labeled",
    "load_pairs",
    "restore",
]


@click.group()
def anchors() -> None:
    """Add, list, delete, audit and restore anchor pairs (image + caption)."""


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
@click.option(
    "--classify-spread",
    type=float,
    default=None,
    help="Zero-shot classification's p rule: each vector's weights spread over this fraction "
    "of its k anchors, in (0, 1] [new model: 0.3]. Stored with the model.",
)
@click.option(
    "--classify-p",
    type=float,
    default=None,
    help="A fixed p for zero-shot classification instead (8: the paper's). Stored.",
)
@on_duplicate_option("A pair (same image bytes and caption)")
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
    classify_spread: float | None,
    classify_p: float | None,
    on_duplicate: str,
    model: ModelOptions,
) -> None:
    """Embed image-caption pairs and add them as anchors.

    A pair already in the model (the same image bytes and caption) is skipped and counted
    ("12 added, 30 already present"); --on-duplicate replace or add changes that.
    """
    pairs = load_pairs(folder, csv_file, jsonl, tuxpaint, pool)
    with model.open(
        create=True,
        k=k,
        p=p,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        csa_dim=csa_dim,
        classify_spread=classify_spread,
        classify_p=classify_p,
    ) as asif:
        ids = asif.add_anchors(
            [x.image for x in pairs],
            [x.caption for x in pairs],
            payloads=[x.metadata for x in pairs],
            source=pairs[0].source if pairs else None,
            on_duplicate=on_duplicate,  # type: ignore[arg-type]
        )
        edit = asif.last_edit if ids.added or ids.replaced else None
        data = {
            **ids.as_dict(),
            "anchor_count": asif.anchor_count,
            "anchor_version": asif.fingerprint.anchor_version,
            "edit": edit.as_dict() if edit else None,
        }
        model.emit(
            data,
            f"anchor pairs: {ids.summary()}; the model '{model.name}' now has "
            f"{asif.anchor_count} (version {asif.fingerprint.anchor_version})"
            + (
                f"\n{_recomputed(edit.items_touched, edit.items_total, edit.seconds)}"
                if edit
                else ""
            ),
        )


@anchors.command("list")
@number_option("--limit", click.IntRange(min=0), 20, "How many to show (0: all).")
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


anchors.add_command(audit)
anchors.add_command(restore)
