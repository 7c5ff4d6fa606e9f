"""``asif-qdrant info``, ``repair`` and ``demo``: look at a model, mend it, try one.

Example:
    >>> [command.name for command in (info, repair, demo)]
    ['info', 'repair', 'demo']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from asif_qdrant.cli.common import (
    FOLDER_PATH,
    ModelOptions,
    StoreOptions,
    api_key,
    emit,
    model_options,
    models_in_folder,
    output_options,
    quiet_third_parties,
    reported_errors,
    require_model,
    resolve_location,
    store_options,
)
from asif_qdrant.retriever.layout import model_fingerprints

if TYPE_CHECKING:
    from asif_qdrant.store import Store

__all__ = ["demo", "info", "model_details", "models_table", "repair"]


@click.command()
@store_options(
    click.option(
        "--name",
        default=None,
        help="Show this model in detail [default: the store's only model, if one].",
    )
)
def info(name: str | None, store: StoreOptions) -> None:
    """List the models in the store (a table); show one model's fingerprint and catalogs."""
    with _open_store(store) as opened:
        fingerprints = model_fingerprints(opened)
        require_model(name, list(fingerprints), store.where())
        models = {
            m: {**fp.as_payload(), "catalog_items": _catalog_sizes(opened, fp.catalogs)}
            for m, fp in fingerprints.items()
        }
        chosen = name if name is not None else (next(iter(models)) if len(models) == 1 else None)
        data: dict[str, Any] = {"store": opened.describe(), "models": list(models)}
        lines = [f"store: {opened.describe()}", "", models_table(models)]
        if chosen is not None:
            prefix = f"{chosen}_"
            data |= {"name": chosen, **models[chosen]}
            data["collections"] = [c for c in opened.list_collections() if c.startswith(prefix)]
            data["collections"] += [c for c in models[chosen]["catalogs"]]
            lines += ["", model_details(chosen, models[chosen])]
        store.emit(data, "\n".join(lines))


def _open_store(store: StoreOptions) -> Store:
    """The store of ``--path`` / ``--url`` (a folder that is no store raises, creates nothing)."""
    from asif_qdrant.store import ClientStore, EdgeStore

    folder, url = resolve_location(store.path, store.url)
    if url:
        return ClientStore.from_url(url, api_key=api_key())
    assert folder is not None
    require_model(None, models_in_folder(folder), str(folder))
    return EdgeStore(folder)


def _catalog_sizes(store: Store, catalogs: dict[str, Any]) -> dict[str, int | None]:
    return {c: store.count(c) if store.has_collection(c) else None for c in catalogs}


def _shown(value: Any) -> str:
    """A value as people read it: '-' for None, 'a, b' for a list, 'k=v, ...' for a dict."""
    if value is None or value == {} or value == []:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_shown(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def models_table(models: dict[str, dict[str, Any]]) -> str:
    """One row per model: name, anchors, encoders, k, p and catalogs (with their item counts).

    Example:
        >>> print(models_table({"pets": {"anchor_count": 3, "image_encoder": "img",
        ...     "text_encoder": "txt", "k": 2, "p": 8.0, "catalog_items": {"photos": 5}}}))
        model  anchors  image encoder  text encoder  k  p  catalogs
        pets   3        img            txt           2  8  photos (5 items)
    """
    header = ("model", "anchors", "image encoder", "text encoder", "k", "p", "catalogs")
    rows = [header]
    for name, m in models.items():
        catalogs = ", ".join(
            f"{c} ({'missing' if n is None else f'{n} items'})"
            for c, n in m["catalog_items"].items()
        )
        rows.append(
            (
                name,
                _shown(m["anchor_count"]),
                _shown(m["image_encoder"]),
                _shown(m["text_encoder"]),
                _shown(m["k"]),
                _shown(m["p"]),
                catalogs or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    )


def model_details(name: str, model: dict[str, Any]) -> str:
    """The fingerprint of the model ``name`` as ``field: value`` lines people read."""
    lines = [f"model '{name}':"]
    for key, value in model.items():
        if key in ("catalogs", "catalog_items", "library"):
            continue
        lines.append(f"  {key.replace('_', ' ')}: {_shown(value)}")
    for catalog, entry in model["catalogs"].items():
        n = model["catalog_items"].get(catalog)
        lines.append(
            f"  catalog {catalog}: {'missing' if n is None else f'{n} items'}, "
            f"indexed at anchor version {_shown(entry.get('anchor_version'))}"
        )
    return "\n".join(lines)


@click.command()
@click.option("--check-only", is_flag=True, help="Report what is wrong; change nothing.")
@click.option(
    "--drop-unpaired",
    is_flag=True,
    help="Also delete anchors found in one anchor collection only (their pair is gone).",
)
@model_options
def repair(check_only: bool, drop_unpaired: bool, model: ModelOptions) -> None:
    """Check the model's anchor pairing, fingerprint and catalogs; repair what is provable.

    Opening a model repairs an interrupted edit already (on a server the open only warns:
    another process may be editing) and refuses a model with damage no edit explains; this
    command reports that damage (--check-only) and fixes what it can prove: it re-computes
    stale catalogs, registers catalogs the fingerprint lacks, re-derives the next anchor id.
    """
    from asif_qdrant.retriever.integrity import repair_model

    folder, _ = resolve_location(model.path, model.url)
    if folder is not None:
        require_model(model.name, models_in_folder(folder), model.where())
    with _open_store(model) as opened:
        report = repair_model(
            opened, model.name, check_only=check_only, drop_unpaired=drop_unpaired
        )
        model.emit(
            report.as_dict(),
            report.summary() or "consistent: the anchors are paired and the catalogs current",
        )


@click.command()
@click.option(
    "--out",
    type=FOLDER_PATH,
    default="asif-demo",
    show_default=True,
    help="Folder for the demo's model and contact sheet.",
)
@click.option("--k", type=int, default=800, show_default=True)
@click.option("--p", type=float, default=8.0, show_default=True)
@click.option(
    "--classify-p",
    type=float,
    default=None,
    help="A fixed p for zero-shot classification (8: the paper's) [default: the spread rule].",
)
@click.option("--limit-pairs", type=int, default=None, help="Use only this many stamps.")
@output_options
def demo(
    out: Path,
    k: int,
    p: float,
    classify_p: float | None,
    limit_pairs: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Build a model from the Tux Paint stamps and measure text->image search on held-out ones."""
    from asif_qdrant.demo import run_demo

    with reported_errors(as_json), quiet_third_parties(quiet):
        result = run_demo(
            out,
            k=k,
            p=p,
            classify_p=classify_p,
            limit_pairs=limit_pairs,
            show_progress_bar=not quiet and not as_json,
        )
    emit(as_json, result.as_dict(), result.table())
