"""The library's own relative-vector path, ``ASIF.relative_from_embeddings``, per ``anchor_search``.

``benchmarks.run`` measures the anchor-search components on their own; this measures them
where users meet them: an :class:`~asif_qdrant.ASIF` model on the embedded engine, anchors
added with ``add_anchor_embeddings``, queries through ``relative_from_embeddings`` (search,
tie rule, weights and sparse vectors included). It also checks that the default (``"auto"``)
gives the same sparse vectors as the engine path (``"qdrant"``).

Usage::

    python -m benchmarks.asif_default                       # n = 10k and 100k, d = 384
    python -m benchmarks.asif_default --sizes 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant import ASIF, SparseVector
from asif_qdrant.retriever.anchors import anchor_index
from benchmarks.run import machine, median
from benchmarks.synthetic import clustered_embeddings

__all__ = ["main", "measure"]

MODES = ("qdrant", "auto")


def measure(
    n: int, d: int = 384, *, k: int = 800, repeats: int = 3, seed: int = 0
) -> list[dict[str, Any]]:
    """Queries/s of ``relative_from_embeddings`` at batch 1 and 64, per ``anchor_search``."""
    anchors, queries = clustered_embeddings(n, d, n_queries=64 + 16, seed=seed)
    rng = np.random.default_rng(seed)
    text = rng.normal(size=(n, 8)).astype(np.float32)
    rows, vectors = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            with ASIF(
                path=Path(tmp) / mode,
                k=k,
                image_encoder="precomputed/image",
                text_encoder="precomputed/text",
                show_progress_bar=False,
                anchor_search=mode,
            ) as asif:
                for start in range(0, n, 50_000):
                    asif.add_anchor_embeddings(
                        anchors[start : start + 50_000], text[start : start + 50_000]
                    )
                t = time.perf_counter()
                asif.relative_from_embeddings(queries[:1], "image")  # builds the index
                first = time.perf_counter() - t
                singles, batches = [], []
                for _ in range(repeats):
                    t = time.perf_counter()
                    for q in queries[64:]:
                        asif.relative_from_embeddings(q[None, :], "image")
                    singles.append(16 / (time.perf_counter() - t))
                    t = time.perf_counter()
                    vecs = asif.relative_from_embeddings(queries[:64], "image")
                    batches.append(64 / (time.perf_counter() - t))
                vectors[mode] = vecs
                rows.append(
                    {
                        "n": n,
                        "d": d,
                        "k": k,
                        "anchor_search": mode,
                        "index": repr(anchor_index(asif.state, "image")),
                        "first_call_s": first,
                        "qps_batch1": median(singles),
                        "qps_batch64": median(batches),
                    }
                )

    def same(a: SparseVector, b: SparseVector) -> bool:
        wa, wb = a.to_dict_weights(), b.to_dict_weights()
        return wa.keys() == wb.keys() and all(abs(wa[i] - wb[i]) <= 1e-5 for i in wa)

    same_rows = [same(a, b) for a, b in zip(vectors["qdrant"], vectors["auto"], strict=True)]
    cos = [a.dot(b) for a, b in zip(vectors["qdrant"], vectors["auto"], strict=True)]
    for r in rows:
        r["identical_to_qdrant"] = float(np.mean(same_rows))
        r["min_cosine_to_qdrant"] = float(np.min(cos))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`measure` rows, with the speed-up over ``"qdrant"``."""
    base = {r["n"]: r for r in rows if r["anchor_search"] == "qdrant"}
    out = [
        "| n | anchor_search | index | first call s | q/s batch 1 | q/s batch 64 | "
        "x qdrant (1 / 64) | identical to qdrant | min cosine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base[r["n"]]
        x1, x64 = r["qps_batch1"] / b["qps_batch1"], r["qps_batch64"] / b["qps_batch64"]
        out.append(
            f"| {r['n']:,} | `{r['anchor_search']}` | {r['index']} | {r['first_call_s']:.2f} | "
            f"{r['qps_batch1']:,.1f} | {r['qps_batch64']:,.1f} | "
            f"{x1:.1f} / {x64:.1f} | "
            f"{r['identical_to_qdrant']:.0%} | {r['min_cosine_to_qdrant']:.6f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="Anchor counts, comma-separated.")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results_asif_default.json"))
    args = ap.parse_args(argv)
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        rows += measure(n, args.dim, repeats=args.repeats)
    print(table(rows))
    args.out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
