"""``asif-qdrant anchors audit`` and ``anchors restore``: find harmful anchors, safely.

``anchors audit`` only reports: on a labeled set it ranks the anchors most responsible for
wrong zero-shot predictions. ``--delete N`` names the top N; with ``--apply`` they are first
saved to a file (:mod:`asif_qdrant.retriever.pairs`), then deleted, and put back at once if
the held-out accuracy drops (unless ``--force``). ``anchors restore FILE`` adds saved pairs
back.

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(audit, ["--help"])
    >>> "--apply" in result.output and "--force" in result.output
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
    EXISTING_FILE,
    FILE_PATH,
    ModelOptions,
    file_option,
    folder_option,
    model_options,
    template_options,
)
from asif_qdrant.errors import AnchorSetError

__all__ = ["LabeledSet", "audit", "load_labeled", "restore"]


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


class LabeledSet:
    """A labeled set split into the part anchors are ranked on and the held-out part.

    Args:
        rows: ``(image path, label)`` pairs (:func:`load_labeled`).
        holdout: Share kept out of the ranking.
        seed: Seed of the split.
    """

    def __init__(self, rows: list[tuple[str, str]], holdout: float, seed: int) -> None:
        self.rows = rows
        self.labels = sorted({lab for _, lab in rows})
        #: Each label in the prompts' words (underscores read as spaces).
        self.words = {lab: lab.replace("_", " ") for lab in self.labels}
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        cut = round(len(rows) * holdout)
        self.check, self.ranked = sorted(order[:cut]), sorted(order[cut:])

    def truth(self, idx: list[int]) -> list[str]:
        """The true labels (prompt words) of the images ``idx``."""
        return [self.words[self.rows[i][1]] for i in idx]


@click.command("audit")
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
    help="Name the N most harmful anchors for deletion (deleted only with --apply).",
)
@click.option(
    "--apply",
    is_flag=True,
    help="Delete the --delete N anchors: saved to --backup first, put back if the held-out "
    "accuracy drops (unless --force).",
)
@click.option(
    "--force", is_flag=True, help="With --apply: keep the deletion even if accuracy drops."
)
@click.option(
    "--backup",
    type=FILE_PATH,
    default=None,
    help="File the deleted pairs are saved to, for `anchors restore` "
    "[default: ./asif-deleted-<name>-v<anchor version>.npz].",
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
    apply: bool,
    force: bool,
    backup: Path | None,
    holdout: float,
    seed: int,
    model: ModelOptions,
) -> None:
    """Rank anchors by how much they cause wrong zero-shot predictions on a labeled set.

    Reports only. The label of an image is its sub-folder's name (underscores read as
    spaces) or the CSV's 'label' column. Anchors are ranked on one part of the set and the
    accuracy is checked on the other (held-out) part. --delete N --apply deletes the top N,
    saved first to --backup (`anchors restore FILE` adds them back), and only when the
    held-out accuracy does not drop (else they are put back at once), unless --force.
    """
    if not 0 <= holdout < 1:
        raise click.UsageError(f"--holdout must be in [0, 1). Got {holdout}.")
    if delete_n < 0 or top < 1:
        raise click.UsageError("--delete must be >= 0 and --top >= 1.")
    if (apply or force) and not delete_n:
        raise click.UsageError("--apply and --force need --delete N (the anchors to delete).")
    if force and not apply:
        raise click.UsageError("--force goes with --apply (--delete N --apply --force).")
    labeled = LabeledSet(load_labeled(folder, csv_file), holdout, seed)
    tmpl = list(templates) or None
    with model.open() as asif:
        emb = asif.encode([img for img, _ in labeled.rows], "image")

        def accuracy(idx: list[int]) -> float | None:
            if not idx:
                return None
            predicted = asif.classify(
                asif.relative_from_embeddings(emb[idx], "image"),
                list(labeled.words.values()),
                templates=tmpl,
                template_strategy=template_strategy,  # type: ignore[arg-type]
            )
            return sum(p == t for p, t in zip(predicted, labeled.truth(idx), strict=True)) / len(
                idx
            )

        report = asif.audit_anchors(
            asif.relative_from_embeddings(emb[labeled.ranked], "image"),
            labeled.truth(labeled.ranked),
            list(labeled.words.values()),
            templates=tmpl,
            template_strategy=template_strategy,  # type: ignore[arg-type]
        )
        data: dict[str, Any] = {
            "images": len(labeled.rows),
            "labels": labeled.labels,
            "audit_images": len(labeled.ranked),
            "check_images": len(labeled.check),
            **{f"audit_{k}": v for k, v in report.as_dict(top).items() if k != "labels"},
            "check_accuracy": accuracy(labeled.check),
        }
        text = [
            f"{len(labeled.rows)} labeled images, {len(labeled.labels)} labels; ranked on "
            f"{len(labeled.ranked)}, checked on {len(labeled.check)}",
            report.table(top),
        ]
        if data["check_accuracy"] is not None:
            text.append(f"held-out accuracy {data['check_accuracy']:.3f}")
        victims = [a.id for a in report.anchors[:delete_n]]
        if victims and not apply:
            data["would_delete"] = victims
            text.append(
                f"--delete {delete_n} names anchors {victims}; nothing was deleted. Add --apply "
                "to delete them (saved first for `anchors restore`, and put back if the "
                "held-out accuracy drops, unless --force)."
            )
        elif victims:
            before = (data["check_accuracy"], report.accuracy)
            backup = backup or Path(
                f"asif-deleted-{asif.name}-v{asif.fingerprint.anchor_version}.npz"
            )
            text += _delete_checked(asif, victims, backup, before, accuracy, labeled, force, data)
        model.emit(data, "\n".join(text))


def _delete_checked(
    asif: Any,
    victims: list[int],
    backup: Path,
    before: tuple[float | None, float],
    accuracy: Any,
    labeled: LabeledSet,
    force: bool,
    data: dict[str, Any],
) -> list[str]:
    """Save, delete, measure again; put the pairs back if the accuracy dropped (not ``force``).

    Returns:
        The lines to print.

    Raises:
        AnchorSetError: The accuracy dropped (without ``force``): the pairs were put back.
    """
    from asif_qdrant.retriever.pairs import read_anchor_pairs, save_anchor_pairs

    save_anchor_pairs(asif.state, victims, backup)
    asif.delete_anchors(victims)
    edit = asif.last_edit
    after_check, after_ranked = accuracy(labeled.check), accuracy(labeled.ranked)
    # The held-out part is the honest measure; without one (--holdout 0), the ranked part.
    measured = "held-out" if before[0] is not None else "ranked"
    old, new = (before[0], after_check) if before[0] is not None else (before[1], after_ranked)
    if new < old and not force:
        pairs = read_anchor_pairs(backup)
        back = asif.add_anchor_embeddings(pairs.image, pairs.text, payloads=pairs.payloads)
        backup.unlink()
        raise AnchorSetError(
            f"Deleting anchors {victims} lowers the {measured} accuracy {old:.3f} -> "
            f"{new:.3f}, so nothing was deleted: the pairs were put back at once (as ids "
            f"{back}; ids are never reused). Give --force (with --apply) to delete them anyway."
        )
    data.update(
        deleted=victims,
        saved_to=str(backup.absolute()),
        edit=edit.as_dict() if edit else None,
        audit_accuracy_after=after_ranked,
        check_accuracy_after=after_check,
    )
    lines = [
        f"deleted {len(victims)} anchors {victims} (saved to {backup}; undo with "
        f"`asif-qdrant anchors restore {backup}`); {measured} accuracy {old:.3f} -> {new:.3f}"
        + ("; kept because of --force" if new < old else ""),
    ]
    if edit is not None:
        lines.append(edit.summary())
    return lines


@click.command("restore")
@click.argument("file", type=EXISTING_FILE)
@model_options
def restore(file: Path, model: ModelOptions) -> None:
    """Add back the anchor pairs saved in FILE by `anchors audit --apply`.

    The pairs get new ids (ids are never reused); their embeddings and payloads are the
    saved ones, so the model answers as before the deletion.
    """
    from asif_qdrant.retriever.pairs import read_anchor_pairs

    pairs = read_anchor_pairs(file)
    with model.open() as asif:
        pairs.check_fits(asif.fingerprint, asif.name)
        new = asif.add_anchor_embeddings(pairs.image, pairs.text, payloads=pairs.payloads)
        edit = asif.last_edit
        model.emit(
            {
                "restored": len(new),
                "ids": {str(old): n for old, n in zip(pairs.ids, new, strict=True)},
                "anchor_count": asif.anchor_count,
                "edit": edit.as_dict() if edit else None,
            },
            f"restored {len(new)} anchor pairs from {file} as ids {new} (they were "
            f"{pairs.ids}; ids are never reused); {asif.anchor_count} anchor pairs now"
            + (f"\n{edit.summary()}" if edit else ""),
        )
