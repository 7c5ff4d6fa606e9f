"""``asif-qdrant index``, ``search`` and ``classify``: the catalog and zero-shot commands.

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(search, ["--help"])
    >>> "--item-modality, --modality" in result.output
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from asif_qdrant.cli.common import (
    EXISTING_FILE,
    ModelOptions,
    choice_option,
    file_option,
    folder_option,
    labels_option,
    method_option,
    model_options,
    number_option,
    on_duplicate_option,
    query_options,
    split_labels,
    template_options,
    text_or_image,
)

__all__ = ["classify", "index", "search"]

_MODALITIES = ("image", "text")


@click.command()
@click.argument("collection")
@file_option("--images", "image_paths", multiple=True, help="An image file to index (repeatable).")
@folder_option("--image-folder", help="Index every image in this folder (recursively).")
@file_option("--texts", "text_file", help="A text file: one catalog text per line.")
@file_option(
    "--embeddings",
    "embeddings_file",
    help="A .npy file of precomputed (n, dim) embeddings (with --modality), instead of files.",
)
@choice_option("--modality", choices=_MODALITIES, help="The modality of --embeddings.")
@click.option(
    "--resume",
    is_flag=True,
    help="Finish an interrupted run on the same input: items already stored are skipped.",
)
@number_option(
    "--chunk-size",
    click.IntRange(min=1),
    1000,
    "Items per committed chunk (each is logged at -v: 'committed rows a..b of n').",
)
@on_duplicate_option("An item (same image bytes or text)")
@model_options
def index(
    collection: str,
    image_paths: Sequence[Path],
    image_folder: Path | None,
    text_file: Path | None,
    embeddings_file: Path | None,
    modality: str | None,
    resume: bool,
    chunk_size: int,
    on_duplicate: str,
    model: ModelOptions,
) -> None:
    """Index catalog images and/or texts (or precomputed embeddings) into COLLECTION.

    An item already in the catalog (the same image bytes or text; for --embeddings the same
    numbers) is skipped and counted ("12 added, 30 already present"); --on-duplicate replace
    or add changes that. Image paths are stored resolved and absolute.

    Items are written in chunks that each commit for good, with deterministic ids (the
    input's row order after the catalog's next free id): after a crash or kill -9, run the
    same command with --resume to write only the items not yet stored.
    """
    import numpy as np

    from asif_qdrant.loaders import DEFAULT_IMAGE_EXTENSIONS

    images = [str(x) for x in image_paths]
    if image_folder is not None:
        found = sorted(
            str(x)
            for x in image_folder.rglob("*")
            if x.suffix.lower() in DEFAULT_IMAGE_EXTENSIONS and x.is_file()
        )
        if not found:
            raise click.BadParameter(
                f"the folder {image_folder} holds no images (looked for "
                f"{', '.join(DEFAULT_IMAGE_EXTENSIONS)} files, in sub-folders too).",
                param_hint="--image-folder",
            )
        images += found
    texts = []
    if text_file is not None:
        texts = [t.strip() for t in text_file.read_text().splitlines() if t.strip()]
        if not texts:
            raise click.BadParameter(
                f"the file {text_file} holds no text (one catalog text per line).",
                param_hint="--texts",
            )
    embeddings = None
    if embeddings_file is not None:
        if images or texts:
            raise click.UsageError("Give --embeddings or image/text inputs, not both.")
        if modality is None:
            raise click.UsageError("--embeddings needs --modality image or --modality text.")
        try:
            embeddings = np.load(embeddings_file, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise click.BadParameter(
                f"cannot read {embeddings_file} as a .npy array: {e}", param_hint="--embeddings"
            ) from e
    elif modality is not None:
        raise click.UsageError("--modality goes with --embeddings.")
    if not images and not texts and embeddings is None:
        raise click.UsageError(
            "Nothing to index: give --images, --image-folder, --texts or --embeddings."
        )
    with model.open() as asif:
        job = asif.resumable_index(
            collection,
            images=images,
            texts=texts,
            embeddings=embeddings,
            modality=modality,  # type: ignore[arg-type]
            resume=resume,
            chunk_size=chunk_size,
            on_duplicate=on_duplicate,  # type: ignore[arg-type]
        )
        counts = f"{job.new} added"
        if job.already_present:
            counts += f", {job.already_present} already present"
        if job.resumed:
            counts += f", {job.skipped} already stored by the interrupted run"
        model.emit(
            {"indexed": job.total, "added": job.new, **job.as_dict()},
            f"indexed {job.total} items into '{collection}': {counts}",
        )


@click.command()
@query_options("Search with this image instead of a text QUERY.")
@click.option("--limit", type=int, default=10, show_default=True)
@choice_option(
    "--item-modality",
    "--modality",
    "item_modality",
    choices=_MODALITIES,
    help="Only return catalog items of this modality.",
)
@method_option
@choice_option(
    "--query-via",
    choices=["native", "invert"],
    default="native",
    help="'invert': carry an image query over to text through its anchors' captions.",
)
@choice_option(
    "--target",
    choices=["item", "caption"],
    default="item",
    help="'caption': compare with the catalog items' caption vectors (indexed with captions).",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Calibrated 'no match': refuse a query less like the anchors than this share of the "
    "anchors are to each other (0.03: 90% of unrelated queries refused, 97% of captions "
    "kept, docs/levers/RESULTS.md).",
)
@model_options
def search(
    collection: str,
    query: str | None,
    image: Path | None,
    limit: int,
    item_modality: str | None,
    method: str,
    query_via: str,
    target: str,
    min_confidence: float | None,
    model: ModelOptions,
) -> None:
    """Search COLLECTION with a text QUERY (or --image)."""
    q = text_or_image(query, image)
    with model.open() as asif:
        hits = asif.search(
            collection,
            q,
            limit=limit,
            item_modality=item_modality,  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
            query_via=query_via,  # type: ignore[arg-type]
            target=target,  # type: ignore[arg-type]
            min_confidence=min_confidence,
        )
        rows = [{"id": h.id, "score": h.score, "payload": h.payload} for h in hits]
        text = "\n".join(
            f"{h.score:8.4f}  {h.id!s:>6}  "
            f"{h.payload.get('caption') or h.payload.get('text') or h.payload.get('image', '')}"
            for h in hits
        ) or (
            "no match (no catalog item shares an anchor with the query)"
            if min_confidence is None
            else f"no match (confidence below {min_confidence:g}, or no shared anchor)"
        )
        model.emit({"query": str(q), "hits": rows}, text)


@click.command()
@click.argument("images", nargs=-1, required=True, type=EXISTING_FILE)
@labels_option
@template_options
@method_option
@model_options
def classify(
    images: Sequence[Path],
    labels: str,
    templates: Sequence[str],
    template_strategy: str,
    method: str,
    model: ModelOptions,
) -> None:
    """Zero-shot classify IMAGES into --labels."""
    names = split_labels(labels)
    with model.open() as asif:
        scores = asif.classify_scores(
            [str(x) for x in images],
            names,
            templates=list(templates) or None,
            template_strategy=template_strategy,  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
        )
        predicted = [names[j] for j in scores.argmax(axis=1)]  # what classify() returns
        rows = [
            {
                "image": str(img),
                "label": lab,
                "scores": dict(zip(names, map(float, s), strict=True)),
            }
            for img, lab, s in zip(images, predicted, scores, strict=True)
        ]
        model.emit(
            {"predictions": rows},
            "\n".join(f"{r['label']:<20} {r['image']}" for r in rows),
        )
