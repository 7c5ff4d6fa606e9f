"""Edit timing: add and delete anchor pairs on a model with a 10k-item catalog.

Precomputed synthetic embeddings (``benchmarks.synthetic.clustered_embeddings``: clustered,
anisotropic, unit norm, tuned to the statistics of real EfficientNet-Lite0 / MiniLM
embeddings) at the real dims (1280 image, 384 text), on the embedded engine. It times:

* the full re-index of the catalog from its stored embeddings (``ASIF.reindex``), the cost an
  edit would have without the incremental update;
* edits of 1, 10, 100 and 1,000 pairs, added and then deleted, each as one call, with the
  catalog items it re-computed;
* after all edits, a check that a sample of catalog vectors equals a numpy re-index.

Run it (about 10 minutes on 2 CPU cores with the defaults)::

    python -m benchmarks.edit_timing                     # k=800, 10k anchors, 10k items
    python -m benchmarks.edit_timing --k 100 --json      # another k; one JSON document

Example:
    >>> from benchmarks.edit_timing import edit_sizes
    >>> edit_sizes(1000)
    [1, 10, 100, 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from asif_qdrant import ASIF
from asif_qdrant.relative import relative_weights
from benchmarks.synthetic import clustered_embeddings

__all__ = ["Settings", "edit_sizes", "run"]


@dataclass(frozen=True)
class Settings:
    """What the benchmark builds and times (the command line sets the first five)."""

    items: int = 10_000  # catalog items
    anchors: int = 10_000  # anchor pairs before the edits
    largest: int = field(default=1_000, metadata={"help": "largest edit, in pairs"})
    k: int = 800
    seed: int = 0
    image_dim: int = 1280
    text_dim: int = 384
    check: int = 300  # catalog items compared with a numpy re-index at the end


def edit_sizes(largest: int) -> list[int]:
    """1, 10, 100, ... up to ``largest`` (included)."""
    sizes, n = [], 1
    while n < largest:
        sizes.append(n)
        n *= 10
    return [*sizes, largest]


def _reference_check(asif: ASIF, collection: str, sample: int, seed: int) -> float:
    """Max abs difference between stored vectors and a numpy re-index, over a sample."""
    ids, anchors = asif.anchor_embeddings("image")
    ids_arr = np.asarray(ids)
    n = asif.store.count(collection)
    rng = np.random.default_rng(seed)
    picked = sorted(int(i) for i in rng.choice(n, size=min(sample, n), replace=False))
    worst = 0.0
    for rec in asif.store.retrieve(collection, picked, with_vectors=True):
        e = rec.dense["image"].astype(np.float64)
        sims = anchors.astype(np.float64) @ e
        order = np.lexsort((ids_arr, -sims))[: asif.k]
        w = relative_weights(sims[order], asif.p)
        want = {int(ids_arr[o]): float(x) for o, x in zip(order, w, strict=True) if x > 0}
        got = rec.sparse["asif"].to_dict_weights()
        keys = set(want) | set(got)
        worst = max(worst, max(abs(want.get(k, 0.0) - got.get(k, 0.0)) for k in keys))
    return worst


def _edit(operation: str, pairs: int, asif: ASIF) -> dict[str, Any]:
    """The figures of the model's last edit."""
    r = asif.last_edit
    assert r is not None
    return {
        "operation": operation,
        "pairs": pairs,
        "items_touched": r.items_touched,
        "items_total": r.items_total,
        "seconds": round(r.seconds, 2),
    }


def run(settings: Settings = Settings()) -> dict[str, Any]:
    """Build the model, time the edits, and return every figure."""
    items, anchors, largest, k = settings.items, settings.anchors, settings.largest, settings.k
    image_dim, text_dim, seed, check = (
        settings.image_dim,
        settings.text_dim,
        settings.seed,
        settings.check,
    )
    extra = sum(edit_sizes(largest))
    t = time.perf_counter()
    img, cat = clustered_embeddings(anchors + extra, image_dim, n_queries=items, seed=seed)
    txt, _ = clustered_embeddings(anchors + extra, text_dim, seed=seed + 1)
    gen_s = time.perf_counter() - t
    out: dict[str, Any] = {
        "items": items,
        "anchors": anchors,
        "k": k,
        "image_dim": image_dim,
        "text_dim": text_dim,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPU cores, "
        f"Python {platform.python_version()}",
        "seconds_generate": round(gen_s, 2),
        "edits": [],
    }
    with tempfile.TemporaryDirectory(prefix="asif-edit-bench-") as folder:
        asif = ASIF(
            path=folder,
            k=k,
            image_encoder="precomputed/image",
            text_encoder="precomputed/text",
            show_progress_bar=False,
        )
        try:
            t = time.perf_counter()
            asif.add_anchor_embeddings(img[:anchors], txt[:anchors])
            out["seconds_add_initial_anchors"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            asif.index_embeddings("catalog", cat, "image")
            out["seconds_index_catalog"] = round(time.perf_counter() - t, 2)
            full = asif.reindex("catalog")
            out["seconds_full_reindex"] = round(full.seconds, 2)

            start = anchors
            added: list[list[int]] = []
            for n in edit_sizes(largest):
                ids = asif.add_anchor_embeddings(img[start : start + n], txt[start : start + n])
                start += n
                added.append(ids)
                out["edits"].append(_edit("add", n, asif))
            for ids in added:
                asif.delete_anchors(ids)
                out["edits"].append(_edit("delete", len(ids), asif))
            out["max_abs_diff_vs_numpy_reindex"] = _reference_check(asif, "catalog", check, seed)
            out["checked_items"] = min(check, items)
        finally:
            asif.close()
    return out


def table(result: dict[str, Any]) -> str:
    """A markdown table of the edits."""
    lines = [
        f"catalog {result['items']} items, {result['anchors']} anchors, k={result['k']}, "
        f"dims {result['image_dim']}/{result['text_dim']}; machine: {result['machine']}",
        f"index catalog: {result['seconds_index_catalog']} s; full re-index from stored "
        f"embeddings: {result['seconds_full_reindex']} s",
        "",
        "| edit | pairs | items re-computed / total | seconds |",
        "|---|---|---|---|",
    ]
    for e in result["edits"]:
        lines.append(
            f"| {e['operation']} | {e['pairs']} | {e['items_touched']} / {e['items_total']} | "
            f"{e['seconds']} |"
        )
    lines.append("")
    lines.append(
        f"after all edits, max |stored - numpy re-index| over {result['checked_items']} items: "
        f"{result['max_abs_diff_vs_numpy_reindex']:.2e}"
    )
    return "\n".join(lines)


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = asdict(Settings())
    for f in fields(Settings)[:5]:
        ap.add_argument(
            f"--{f.name}", type=int, default=defaults[f.name], help=f.metadata.get("help")
        )
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    result = run(Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)[:5]}))
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
