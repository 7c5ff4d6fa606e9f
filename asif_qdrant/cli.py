"""The ``asif-qdrant`` command line: a thin layer over :class:`asif_qdrant.ASIF` (click).

Every command takes ``--help`` and ``--json`` (one machine-readable JSON document on stdout).
The model lives in the embedded engine's folder ``--path`` (default ``$ASIF_QDRANT_PATH`` or
``./asif-data``), or on a Qdrant server given by ``--url`` (or ``$QDRANT_URL``).

Example:
    >>> from click.testing import CliRunner
    >>> from asif_qdrant.cli import main
    >>> result = CliRunner().invoke(main, ["--help"])
    >>> "anchors" in result.output and "demo" in result.output
    True
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from asif_qdrant.errors import ASIFError

__all__ = ["main"]


def _emit(ctx_json: bool, data: Any, text: str) -> None:
    if ctx_json:
        click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        click.echo(text)


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every command shares: where the model is, and how to print."""

    @click.option(
        "--path",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of the embedded Qdrant engine [default: $ASIF_QDRANT_PATH or ./asif-data].",
    )
    @click.option(
        "--url", default=None, help="Qdrant server URL instead of --path [default: $QDRANT_URL]."
    )
    @click.option("--name", default="asif", show_default=True, help="Name of the ASIF model.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ASIFError as e:
            if kwargs.get("as_json"):
                click.echo(json.dumps({"error": type(e).__name__, "message": str(e)}))
                sys.exit(1)
            raise click.ClickException(f"{type(e).__name__}: {e}") from e

    return wrapper


def template_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The zero-shot prompt options (``--template``, ``--template-strategy``)."""
    from asif_qdrant.model import DEFAULT_TEMPLATE_STRATEGY, TEMPLATE_STRATEGIES

    fn = click.option(
        "--template-strategy",
        type=click.Choice(TEMPLATE_STRATEGIES),
        default=DEFAULT_TEMPLATE_STRATEGY,
        show_default=True,
        help="How several templates of a label combine (see ASIF.classify).",
    )(fn)
    return click.option(
        "--template",
        "templates",
        multiple=True,
        help="Prompt template with {} for the label (repeatable) [default: 'a photo of a {}.'].",
    )(fn)


def method_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--method``: ASIF, CSA (a model opened with ``csa_dim``) or their fusion."""
    return click.option(
        "--method",
        type=click.Choice(["asif", "csa", "hybrid"]),
        default="asif",
        show_default=True,
        help="Score with ASIF, CSA (a model built with csa_dim) or both fused (hybrid).",
    )(fn)


def _open(
    path: Path | None,
    url: str | None,
    name: str,
    quiet: bool,
    *,
    k: int | None = None,
    p: float | None = None,
    image_encoder: str | None = None,
    text_encoder: str | None = None,
    csa_dim: int | None = None,
) -> Any:
    from asif_qdrant.model import ASIF

    kwargs: dict[str, Any] = {
        "name": name,
        "k": k,
        "p": p,
        "csa_dim": csa_dim,
        "image_encoder": image_encoder,
        "text_encoder": text_encoder,
        "show_progress_bar": not quiet,
    }
    url = url or (None if path else os.environ.get("QDRANT_URL"))
    if url:
        from qdrant_client import QdrantClient

        return ASIF(
            client=QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY")), **kwargs
        )
    return ASIF(path=path or Path(os.environ.get("ASIF_QDRANT_PATH", "asif-data")), **kwargs)


def _pairs(folder: Path | None, csv: Path | None, jsonl: Path | None, tuxpaint: bool) -> list[Any]:
    from asif_qdrant import loaders

    chosen = [x for x in (folder, csv, jsonl) if x is not None] + ([True] if tuxpaint else [])
    if len(chosen) != 1:
        raise click.UsageError("Give exactly one of --folder, --csv, --jsonl or --tuxpaint.")
    if folder is not None:
        return loaders.load_folder(folder)
    if csv is not None:
        return loaders.load_csv(csv)
    if jsonl is not None:
        return loaders.load_jsonl(jsonl)
    return loaders.load_tuxpaint_stamps()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asif-qdrant")
@click.option("--verbose", "-v", is_flag=True, help="Log what happens (INFO level).")
def main(verbose: bool) -> None:
    """ASIF on Qdrant: a CLIP-like retriever from two frozen unimodal encoders."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


@main.group()
def anchors() -> None:
    """Add, list and delete anchor pairs (image + caption)."""


@anchors.command("add")
@click.option(
    "--folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Images with same-name .txt captions.",
)
@click.option(
    "--csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with 'image' and 'caption' columns.",
)
@click.option(
    "--jsonl",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON Lines with 'image' and 'caption' keys.",
)
@click.option("--tuxpaint", is_flag=True, help="The Tux Paint stamps (Debian package).")
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
@common_options
def anchors_add(
    folder: Path | None,
    csv: Path | None,
    jsonl: Path | None,
    tuxpaint: bool,
    k: int | None,
    p: float | None,
    image_encoder: str | None,
    text_encoder: str | None,
    csa_dim: int | None,
    path: Path | None,
    url: str | None,
    name: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Embed image-caption pairs and add them as anchors."""
    pairs = _pairs(folder, csv, jsonl, tuxpaint)
    with _open(
        path,
        url,
        name,
        quiet,
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
        _emit(
            as_json,
            data,
            f"added {len(ids)} anchor pairs; the model '{name}' now has "
            f"{asif.anchor_count} (version {asif.fingerprint.anchor_version})"
            + (
                f"\nre-computed {edit.items_touched} of {edit.items_total} catalog items in "
                f"{edit.seconds:.2f} s"
                if edit
                else ""
            ),
        )


@anchors.command("list")
@click.option("--limit", type=int, default=20, show_default=True, help="How many to show.")
@common_options
def anchors_list(
    limit: int, path: Path | None, url: str | None, name: str, as_json: bool, quiet: bool
) -> None:
    """List anchor pairs (id and caption)."""
    with _open(path, url, name, quiet) as asif:
        rows = asif.list_anchors(limit=limit)
        text = "\n".join(f"{r['id']:>8}  {r.get('caption', '')}" for r in rows)
        last = asif.fingerprint.last_edit
        _emit(
            as_json,
            {
                "anchor_count": asif.anchor_count,
                "anchor_version": asif.fingerprint.anchor_version,
                "last_edit": last,
                "anchors": rows,
            },
            f"{asif.anchor_count} anchor pairs (version {asif.fingerprint.anchor_version})"
            + (
                f"; last edit: {last['operation']} {last['pairs']} pairs, re-computed "
                f"{last['items_touched']} of {last['items_total']} catalog items in "
                f"{last['seconds']:.2f} s"
                if last
                else ""
            )
            + f"\n{text}",
        )


@anchors.command("delete")
@click.argument("ids", nargs=-1, type=int, required=True)
@common_options
def anchors_delete(
    ids: Sequence[int], path: Path | None, url: str | None, name: str, as_json: bool, quiet: bool
) -> None:
    """Delete anchor pairs by id."""
    with _open(path, url, name, quiet) as asif:
        n = asif.delete_anchors(ids)
        edit = asif.last_edit if n else None
        _emit(
            as_json,
            {"deleted": n, "anchor_count": asif.anchor_count},
            f"deleted {n} anchor pairs; {asif.anchor_count} left"
            + (
                f"\nre-computed {edit.items_touched} of {edit.items_total} catalog items in "
                f"{edit.seconds:.2f} s (version {edit.anchor_version})"
                if edit
                else ""
            ),
        )


@main.command()
@click.argument("collection")
@click.option(
    "--images",
    "image_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An image file to index (repeatable).",
)
@click.option(
    "--image-folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Index every image in this folder (recursively).",
)
@click.option(
    "--texts",
    "text_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A text file: one catalog text per line.",
)
@click.option(
    "--embeddings",
    "embeddings_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A .npy file of precomputed (n, dim) embeddings (with --modality), instead of files.",
)
@click.option(
    "--modality",
    type=click.Choice(["image", "text"]),
    default=None,
    help="The modality of --embeddings.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Finish an interrupted run on the same input: items already stored are skipped.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Items per committed chunk (each is logged at -v: 'committed rows a..b of n').",
)
@common_options
def index(
    collection: str,
    image_paths: Sequence[Path],
    image_folder: Path | None,
    text_file: Path | None,
    embeddings_file: Path | None,
    modality: str | None,
    resume: bool,
    chunk_size: int,
    path: Path | None,
    url: str | None,
    name: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Index catalog images and/or texts (or precomputed embeddings) into COLLECTION.

    Items are written in chunks that each commit for good, with deterministic ids (the
    input's row order after the catalog's next free id): after a crash or kill -9, run the
    same command with --resume to write only the items not yet stored.
    """
    import numpy as np

    from asif_qdrant.loaders import DEFAULT_IMAGE_EXTENSIONS

    images = [str(x) for x in image_paths]
    if image_folder is not None:
        images += sorted(
            str(x)
            for x in image_folder.rglob("*")
            if x.suffix.lower() in DEFAULT_IMAGE_EXTENSIONS and x.is_file()
        )
    texts = []
    if text_file is not None:
        texts = [t.strip() for t in text_file.read_text().splitlines() if t.strip()]
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
    with _open(path, url, name, quiet) as asif:
        job = asif.resumable_index(
            collection,
            images=images,
            texts=texts,
            embeddings=embeddings,
            modality=modality,  # type: ignore[arg-type]
            resume=resume,
            chunk_size=chunk_size,
        )
        _emit(
            as_json,
            {"indexed": job.total, **job.as_dict()},
            f"indexed {job.total} items into '{collection}'"
            + (f" ({job.skipped} already stored, {job.new} written)" if job.resumed else ""),
        )


@main.command()
@click.argument("collection")
@click.argument("query", required=False)
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Search with this image instead of a text QUERY.",
)
@click.option("--limit", type=int, default=10, show_default=True)
@click.option(
    "--modality",
    type=click.Choice(["image", "text"]),
    default=None,
    help="Only return catalog items of this modality.",
)
@method_option
@click.option(
    "--query-via",
    type=click.Choice(["native", "invert"]),
    default="native",
    show_default=True,
    help="'invert': carry an image query over to text through its anchors' captions.",
)
@click.option(
    "--target",
    type=click.Choice(["item", "caption"]),
    default="item",
    show_default=True,
    help="'caption': compare with the catalog items' caption vectors (indexed with captions).",
)
@common_options
def search(
    collection: str,
    query: str | None,
    image: Path | None,
    limit: int,
    modality: str | None,
    method: str,
    query_via: str,
    target: str,
    path: Path | None,
    url: str | None,
    name: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Search COLLECTION with a text QUERY (or --image)."""
    if (query is None) == (image is None):
        raise click.UsageError("Give a text QUERY or --image PATH (one of them).")
    with _open(path, url, name, quiet) as asif:
        hits = asif.search(
            collection,
            image if image is not None else query,  # type: ignore[arg-type]
            limit=limit,
            item_modality=modality,  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
            query_via=query_via,  # type: ignore[arg-type]
            target=target,  # type: ignore[arg-type]
        )
        rows = [{"id": h.id, "score": h.score, "payload": h.payload} for h in hits]
        text = (
            "\n".join(
                f"{h.score:8.4f}  {h.id!s:>6}  "
                f"{h.payload.get('caption') or h.payload.get('text') or h.payload.get('image', '')}"
                for h in hits
            )
            or "no match (no catalog item shares an anchor with the query)"
        )
        _emit(as_json, {"query": query or str(image), "hits": rows}, text)


@main.command()
@click.argument(
    "images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--labels", required=True, help="Comma-separated class names, e.g. 'cat,dog'.")
@template_options
@method_option
@common_options
def classify(
    images: Sequence[Path],
    labels: str,
    templates: Sequence[str],
    template_strategy: str,
    method: str,
    path: Path | None,
    url: str | None,
    name: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Zero-shot classify IMAGES into --labels."""
    names = [x.strip() for x in labels.split(",") if x.strip()]
    with _open(path, url, name, quiet) as asif:
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
        _emit(
            as_json,
            {"predictions": rows},
            "\n".join(f"{r['label']:<20} {r['image']}" for r in rows),
        )


@main.command()
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def demo(out: Path, k: int, p: float, limit_pairs: int | None, as_json: bool, quiet: bool) -> None:
    """Build a model from the Tux Paint stamps and measure text->image search on held-out ones."""
    from asif_qdrant.demo import run_demo

    try:
        result = run_demo(
            out, k=k, p=p, limit_pairs=limit_pairs, show_progress_bar=not quiet and not as_json
        )
    except ASIFError as e:
        raise click.ClickException(f"{type(e).__name__}: {e}") from e
    _emit(as_json, result.as_dict(), result.table())


@main.command()
@common_options
def info(path: Path | None, url: str | None, name: str, as_json: bool, quiet: bool) -> None:
    """Show the model's fingerprint and collections."""
    with _open(path, url, name, quiet) as asif:
        data = {
            "store": asif.store.describe(),
            **asif.fingerprint.as_payload(),
            "collections": asif.store.list_collections(),
        }
        _emit(as_json, data, "\n".join(f"{k}: {v}" for k, v in data.items()))


@main.command()
@click.option("--check-only", is_flag=True, help="Report what is wrong; change nothing.")
@common_options
def repair(
    check_only: bool, path: Path | None, url: str | None, name: str, as_json: bool, quiet: bool
) -> None:
    """Check the model's anchor pairing and catalogs; repair an interrupted edit.

    Opening a model on the embedded engine repairs it already; on a server the open only warns
    (another process may be editing): run this once no other process is editing.
    """
    with _open(path, url, name, quiet) as asif:
        report = asif.check_integrity(repair=not check_only)
        _emit(
            as_json,
            report.as_dict(),
            report.summary() or "consistent: the anchors are paired and the catalogs current",
        )


from asif_qdrant import cli_edit as _cli_edit  # noqa: E402,F401
from asif_qdrant import cli_evaluate as _cli_evaluate  # noqa: E402,F401
from asif_qdrant import cli_transfer as _cli_transfer  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    main()
