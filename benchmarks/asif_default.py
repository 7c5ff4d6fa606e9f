"""The model's public relative-vector path, ``ASIF.relative_from_embeddings``, vs the baselines.

``benchmarks.run`` measures the anchor-search components on their own; this measures them
where users meet them: an :class:`~asif_qdrant.ASIF` model on the embedded engine, anchors
added once with ``add_anchor_embeddings`` (precomputed embeddings), then reopened with each
``anchor_search`` value, queries through ``relative_from_embeddings`` (search, tie rule,
weights and sparse vectors included). In the same run, the two honest baselines
(:mod:`benchmarks.indexes.baselines`: ``official``, the official ASIF code's recipe, and
``numpy``) make the same sparse vectors (their top-k through the same weighting,
:func:`asif_qdrant.anchor_index.relative_vectors`). Every path's vectors are compared with the
exact ones (:func:`asif_qdrant.anchor_index.exact_topk` over the normalised anchors, ties by
the lower id, the model's recipe): recall@k of the anchor set and cosine of the sparse vector.

Adding the anchors is timed too (``setup``). ``first_call_s`` is what the first query of an
opened model costs: it reads every anchor vector back from the engine and builds the
in-memory index (nothing for ``"qdrant"``).

Usage::

    python -m benchmarks.asif_default                          # n = 100k, d = 384
    python -m benchmarks.asif_default --sizes 100000,1000000   # 1M: see below
    python -m benchmarks.asif_default --sizes 1000000 --anchors /tmp/proto/a.npy \\
        --queries /tmp/proto/q.npy --model /tmp/asif-1m --modes auto,qdrant

At 1M most of the time is adding the anchors (about 2,000 pairs/s on the shared 2-core
machine: ~8 minutes; ``--model`` keeps the built model for the next run), then each mode's
first call (reading 1M vectors back, ~25 s, and building its index).

With ``--anchors`` the first n rows of that ``.npy`` (memory-mapped) are the anchors and
``--queries`` gives the queries (at least 80 rows); otherwise both are
:func:`benchmarks.synthetic.clustered_embeddings` (seed 0).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant import ASIF, SparseVector
from asif_qdrant.anchor_index import METHODS as LIBRARY_METHODS
from asif_qdrant.anchor_index import exact_topk, relative_vectors
from asif_qdrant.relative import l2_normalize, relative_from_topk, sparse_rows
from asif_qdrant.retriever.anchors import anchor_index, check_anchor_search
from benchmarks.indexes import BASELINE_METHODS, make_index
from benchmarks.run import machine, median, rss_mb
from benchmarks.synthetic import clustered_embeddings

__all__ = ["MODES", "main", "measure", "table"]

#: Every ``anchor_search`` value the model accepts (``"auto"`` first), whatever methods the
#: library has (:data:`asif_qdrant.anchor_index.METHODS`).
MODES: tuple[str, ...] = (
    "auto",
    "qdrant",
    *(m for m in LIBRARY_METHODS if not m.startswith("qdrant-")),
)
P = 8.0
N_SINGLE = 16
BATCH = 64
#: Anchor pairs per ``add_anchor_embeddings`` call.
ADD_CHUNK = 50_000


def load_data(
    n: int, d: int, anchors_npy: str | None, queries_npy: str | None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(anchors, queries)``: ``n`` anchors (memory-mapped from ``anchors_npy`` when given)
    and ``BATCH + N_SINGLE`` queries."""
    m = BATCH + N_SINGLE
    if anchors_npy:
        anchors = np.load(anchors_npy, mmap_mode="r")
        if len(anchors) < n:
            raise SystemExit(f"--anchors {anchors_npy} has {len(anchors)} rows; n = {n}.")
        anchors = anchors[:n]
        if not queries_npy:
            raise SystemExit("--anchors needs --queries (a .npy of at least 80 rows).")
        queries = np.array(np.load(queries_npy, mmap_mode="r")[:m], dtype=np.float32)
        return anchors, queries
    return clustered_embeddings(n, d, n_queries=m, seed=seed)


def rss_parts() -> dict[str, float]:
    """This process's resident memory now, MiB: ``total``, ``anon`` (its own heap) and
    ``file`` (memory-mapped files: the anchor ``.npy``, the engine's segments; shared with
    other processes and reclaimable)."""
    keys = {"VmRSS:": "total", "RssAnon:": "anon", "RssFile:": "file"}
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name = line.split(maxsplit=1)[0] if line else ""
            if name in keys:
                out[keys[name]] = int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return out


def timed(fn: Any, queries: np.ndarray, repeats: int) -> tuple[float, float, list[Any]]:
    """``(q/s at batch 1, q/s at batch 64, vectors of the batch)``, medians of ``repeats``.

    Batch 1: the last :data:`N_SINGLE` queries one by one; batch 64: the first 64 at once.
    """
    singles, batches, vecs = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for q in queries[BATCH:]:
            fn(q[None, :])
        singles.append(N_SINGLE / (time.perf_counter() - t))
        t = time.perf_counter()
        vecs = fn(queries[:BATCH])
        batches.append(BATCH / (time.perf_counter() - t))
    return median(singles), median(batches), vecs


def quality(truth: list[SparseVector], got: list[SparseVector], k: int) -> dict[str, float]:
    """Recall@k of the anchor sets and cosine of the sparse vectors, vs the exact ones."""
    rec = [len(np.intersect1d(t.indices, g.indices)) / k for t, g in zip(truth, got, strict=True)]
    cos = [t.dot(g) for t, g in zip(truth, got, strict=True)]
    return {
        "recall_mean": float(np.mean(rec)),
        "recall_min": float(np.min(rec)),
        "cosine_mean": float(np.mean(cos)),
        "cosine_min": float(np.min(cos)),
    }


def baselines(
    anchors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, repeats: int
) -> tuple[list[dict[str, Any]], list[SparseVector]]:
    """Both honest baselines over one normalised copy of the anchors, and the exact vectors."""
    numpy_index = make_index("numpy").build(ids, anchors)
    official = make_index("official")
    official.dim, official.rows = numpy_index.dim, numpy_index.rows  # one copy, shared
    assert numpy_index.rows is not None
    rows, sims = exact_topk(
        l2_normalize(queries[:BATCH]), numpy_index.rows.vecs, k, keys=numpy_index.rows.ids
    )
    kept, weights, _ = relative_from_topk(numpy_index.rows.ids[rows], sims, k, P)
    truth = sparse_rows(kept, weights)
    out = []
    for name, index in (("official", official), ("numpy", numpy_index)):
        fn = lambda q, index=index: relative_vectors(index, q, k, P)  # noqa: E731
        fn(queries[:2])  # warm-up
        b1, b64, vecs = timed(fn, queries, repeats)
        out.append({"path": name, "qps_batch1": b1, "qps_batch64": b64, **quality(truth, vecs, k)})
    return out, truth


def build_model(folder: Path, anchors: np.ndarray, k: int, seed: int) -> dict[str, Any]:
    """An ASIF model with ``anchors`` as image anchors (8-d random texts); returns timings."""
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    ids: list[int] = []
    with ASIF(
        path=folder,
        k=k,
        p=P,
        image_encoder="precomputed/image",
        text_encoder="precomputed/text",
        show_progress_bar=False,
        anchor_search="qdrant",
    ) as asif:
        for s in range(0, len(anchors), ADD_CHUNK):
            chunk = np.asarray(anchors[s : s + ADD_CHUNK], dtype=np.float32)
            text = rng.normal(size=(len(chunk), 8)).astype(np.float32)
            ids += asif.add_anchor_embeddings(chunk, text)
    add_s = time.perf_counter() - t
    return {
        "ids": np.asarray(ids, dtype=np.int64),
        "add_s": add_s,
        "add_pairs_per_s": len(anchors) / add_s,
        "rss_after_add_mb": rss_parts(),
    }


def measure(
    n: int,
    d: int = 384,
    *,
    k: int = 800,
    repeats: int = 3,
    seed: int = 0,
    modes: tuple[str, ...] = MODES,
    anchors_npy: str | None = None,
    queries_npy: str | None = None,
    model_dir: Path | None = None,
) -> dict[str, Any]:
    """The public path per ``anchor_search`` and both baselines at ``n`` anchors, one run.

    With ``model_dir``, the model is built there and kept (its anchor ids beside it, in
    ``<model_dir>.ids.npy``), and a later run with the same folder and ``n`` reuses it.
    """
    anchors, queries = load_data(n, d, anchors_npy, queries_npy, seed)
    d = anchors.shape[1]
    out: dict[str, Any] = {"n": n, "d": d, "k": k, "load_average_start": os.getloadavg()}
    # the baselines first, over row numbers, so that their copy is gone before the model opens
    rows, truth = baselines(anchors, np.arange(n), queries, k, repeats)
    out["rss_after_baselines_mb"] = rss_parts()
    with tempfile.TemporaryDirectory(prefix="asif-default-") as tmp:
        folder = Path(tmp) / "model" if model_dir is None else Path(model_dir)
        ids_file = Path(f"{folder}.ids.npy")
        if folder.exists() and ids_file.exists() and len(np.load(ids_file)) == n:
            ids, setup = np.load(ids_file), {"reused": str(folder)}
        else:
            setup = build_model(folder, anchors, k, seed)
            ids = setup.pop("ids")
            if model_dir is not None:
                np.save(ids_file, ids)
        out["setup"] = setup
        del anchors  # a memory-mapped file's pages leave the RSS with it
        # the exact vectors under the model's anchor ids (given in row order, increasing, so
        # the tie rule "lower row wins" is "lower id wins")
        assert (np.diff(ids) > 0).all(), "anchor ids are not increasing in row order"
        truth = [SparseVector(ids[t.indices.astype(np.int64)], t.values) for t in truth]
        for mode in modes:
            with ASIF(
                path=folder,
                image_encoder="precomputed/image",
                text_encoder="precomputed/text",
                show_progress_bar=False,
                anchor_search=check_anchor_search(mode),
            ) as asif:
                t = time.perf_counter()
                asif.relative_from_embeddings(queries[:1], "image")  # builds the index
                first = time.perf_counter() - t
                fn = lambda q, asif=asif: asif.relative_from_embeddings(q, "image")  # noqa: E731
                b1, b64, vecs = timed(fn, queries, repeats)
                rows.append(
                    {
                        "path": f"anchor_search={mode}",
                        "index": repr(anchor_index(asif.state, "image")),
                        "first_call_s": first,
                        "qps_batch1": b1,
                        "qps_batch64": b64,
                        **quality(truth, vecs, k),
                        "rss_mb": rss_parts(),
                    }
                )
            print(f"n={n:,} {rows[-1]}", flush=True)
    best1 = max(r["qps_batch1"] for r in rows if r["path"] in BASELINE_METHODS)
    best64 = max(r["qps_batch64"] for r in rows if r["path"] in BASELINE_METHODS)
    for r in rows:
        r["x_baseline_batch1"] = r["qps_batch1"] / best1
        r["x_baseline_batch64"] = r["qps_batch64"] / best64
    out["rows"] = rows
    out["load_average_end"] = os.getloadavg()
    out["peak_rss_mb"] = rss_mb()[1]
    return out


def table(runs: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`measure` results; ``x baseline`` is against the faster of
    ``official`` and ``numpy`` in the same run, per batch size."""
    out = [
        "| n | path | index | first call s | q/s batch 1 | x baseline | q/s batch 64 | "
        "x baseline | recall@k mean (min) | sparse cos mean (min) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        for r in run["rows"]:
            first = f"{r['first_call_s']:.2f}" if "first_call_s" in r else "-"
            out.append(
                f"| {run['n']:,} | {r['path']} | {r.get('index', '-')} | {first} | "
                f"{r['qps_batch1']:,.1f} | {r['x_baseline_batch1']:.2f} | "
                f"{r['qps_batch64']:,.1f} | {r['x_baseline_batch64']:.2f} | "
                f"{r['recall_mean']:.4f} ({r['recall_min']:.3f}) | "
                f"{r['cosine_mean']:.5f} ({r['cosine_min']:.4f}) |"
            )
    for run in runs:
        s = run["setup"]
        added = (
            f"anchors added in {s['add_s']:.0f} s ({s['add_pairs_per_s']:,.0f} pairs/s)"
            if "add_s" in s
            else f"model reused from {s.get('reused')}"
        )
        last = run["rows"][-1].get("rss_mb", {})
        out.append(
            f"\nn = {run['n']:,}: {added}; peak RSS {run['peak_rss_mb']:,.0f} MiB (at the end: "
            f"{last.get('anon', float('nan')):,.0f} MiB own heap, "
            f"{last.get('file', float('nan')):,.0f} MiB mapped files); "
            f"load average {run['load_average_start'][0]:.1f} at start, "
            f"{run['load_average_end'][0]:.1f} at end."
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.asif_default",
        description=__doc__.split("\n")[0],
    )
    ap.add_argument("--sizes", default="100000", help="Anchor counts, comma-separated.")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES), help="anchor_search values to measure")
    ap.add_argument("--anchors", default=None, help="a float32 .npy of anchors (first n rows)")
    ap.add_argument("--queries", default=None, help="a float32 .npy of >= 80 queries")
    ap.add_argument(
        "--model",
        type=Path,
        default=None,
        help="build the model here and keep it (one size); a later run reuses it",
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results_asif_default.json"))
    args = ap.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m)
    runs = []
    report = {"command": "python -m benchmarks.asif_default " + " ".join(argv or [])}
    report["machine"] = machine()
    for n in (int(x) for x in args.sizes.split(",")):
        runs.append(
            measure(
                n,
                args.dim,
                k=args.k,
                repeats=args.repeats,
                modes=modes,
                anchors_npy=args.anchors,
                queries_npy=args.queries,
                model_dir=args.model,
            )
        )
        report["runs"] = runs
        args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(table(runs))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
