"""Catalog search on the embedded engine: full vs pruned item vectors, one- vs two-stage queries.

Usage::

    python -m benchmarks.catalog                      # 100k items, 100k x 384 anchors
    python -m benchmarks.catalog --catalog-sizes 1000000 --catalog-on-disk \
        --anchors-npy /tmp/proto/a.npy --queries-npy /tmp/proto/q.npy --variants m128,m400
    python -m benchmarks.catalog --variants full,m128,m128/q64c200 --out /tmp/cat

A 1M catalog over 100k anchors walks lists of 8,000 items per anchor; ``--catalog-anchors
10000`` at 100k items gives lists of the same length in minutes (the query cost of 1M, not
its memory or disk).

Each variant is ``full`` (every item stores its k = 800 non-zeros; the query walks all of
its own) or ``m<M>[/q<Q>c<C>]``: items store their ``M`` largest weights
(``ASIF(catalog_nnz=M)``); with ``/q<Q>c<C>`` the query's ``Q`` largest weights find ``C``
candidates that the full query then rescores (``SearchOptions(query_nnz=Q, candidates=C)``,
one engine call with a prefetch). Variants with the same ``M`` share one collection.

Per variant: recall@10 against exact full-vector scoring (every item's full k-sparse vector
dotted with the full query, computed outside the engine), query p50 / p99 ms at batch 1,
and per collection: upsert items/s, disk MiB; peak RSS of the whole worker. Writes
``catalog.json`` and ``catalog.md`` under ``--out`` (JSON: machine, load average, settings,
rows). :func:`worker_catalog` and :func:`catalog_table` are also the catalog section of
``python -m benchmarks.run``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.memory import rss_mb
from benchmarks.synthetic import clustered_embeddings

__all__ = ["catalog_table", "main", "parse_variant", "worker_catalog"]

K = 800
P = 8.0
LIMIT = 10
#: Every variant the catalog section measures by default: today's layout, the two-stage
#: settings of the library (TWO_STAGE_*), and pruned items (PRUNED_CATALOG_NNZ, and 400).
VARIANTS = ["full", "full/q128c100", "m128", "m400"]
_VARIANT = re.compile(r"^(full|m(\d+))(?:/q(\d+)c(\d+)|/x(\d+))?$")


def parse_variant(name: str) -> dict[str, Any]:
    """``"m128/q64c200"`` -> ``{"name", "item_nnz": 128, "query_nnz": 64, "candidates": 200}``.

    Example:
        >>> parse_variant("full")["item_nnz"] is None, parse_variant("m64/q32c100")["candidates"]
        (True, 100)
    """
    hit = _VARIANT.match(name)
    if hit is None:
        raise SystemExit(
            f"variant {name!r}: expected 'full', 'm<M>', 'm<M>/q<Q>c<C>' or 'm<M>/x<C>'"
        )
    item = None if hit.group(1) == "full" else int(hit.group(2))
    q = None if hit.group(3) is None else int(hit.group(3))
    c = None if hit.group(4) is None else int(hit.group(4))
    out = {"name": name, "item_nnz": item, "query_nnz": q, "candidates": c}
    if hit.group(5) is not None:  # prototype: exact rescoring outside the engine
        out.update(candidates=int(hit.group(5)), exact_rescore=True)
    return out


def _dense_queries(qv: list[Any], n_anchors: int) -> np.ndarray:
    """Full query vectors as a dense ``(n_anchors, q)`` matrix (for exact scoring)."""
    out = np.zeros((n_anchors, len(qv)), np.float32)
    for j, v in enumerate(qv):
        out[v.indices.astype(np.int64), j] = v.values
    return out


def _scores(vecs: list[Any], qmat: np.ndarray) -> np.ndarray:
    """Exact dot products ``(len(vecs), q)`` of sparse item vectors with the dense queries."""
    from scipy.sparse import csr_matrix

    lens = np.fromiter((len(v) for v in vecs), np.int64, len(vecs))
    indptr = np.concatenate([[0], np.cumsum(lens)])
    cols = np.concatenate([v.indices for v in vecs]).astype(np.int64)
    vals = np.concatenate([v.values for v in vecs])
    items = csr_matrix((vals, cols, indptr), shape=(len(vecs), qmat.shape[0]))
    return np.asarray(items @ qmat, dtype=np.float32)


class _TopK:
    """Running exact top-``LIMIT`` item ids per query over chunks of items."""

    def __init__(self, n_queries: int) -> None:
        self.ids = np.full((n_queries, 0), -1, np.int64)
        self.scores = np.zeros((n_queries, 0), np.float32)

    def add(self, first_id: int, scores: np.ndarray) -> None:
        ids = np.broadcast_to(np.arange(first_id, first_id + len(scores)), scores.T.shape)
        s = np.concatenate([self.scores, scores.T], axis=1)
        i = np.concatenate([self.ids, ids], axis=1)
        keep = np.argsort(-s, axis=1, kind="stable")[:, :LIMIT]
        self.scores = np.take_along_axis(s, keep, axis=1)
        self.ids = np.take_along_axis(i, keep, axis=1)


def _item_vectors(spec: dict[str, Any], anchors: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """The unique items' embeddings and full vectors (approximate top-k, cheap to make)."""
    from asif_qdrant.anchor_index import IVFIndex, relative_vectors

    unique = min(spec["items"], spec.get("unique_items", 100_000))
    emb, _ = clustered_embeddings(unique, anchors.shape[1], seed=777)
    # ASIF vectors over the anchors from an IVF that scores ~3k candidates per item
    # (approximate, to keep generation cheap); they have real vectors' sparsity and overlap.
    gen = IVFIndex().build(np.arange(len(anchors)), anchors)
    gen.nprobe = max(1, int(np.ceil(3 * K * gen.lists / len(anchors))))  # ~3k candidates
    base: list[Any] = []
    for s in range(0, unique, 4096):
        base.extend(relative_vectors(gen, emb[s : s + 4096], K, P))
    return emb, base


def _jittered(base: list[Any], pos: np.ndarray, rng: np.random.Generator) -> list[Any]:
    """Items past the unique ones: a copy with +-10% jitter on every weight, re-sorted."""
    out = []
    for i in pos:
        v = base[i]
        w = v.values * rng.lognormal(0.0, 0.1, len(v)).astype(np.float32)
        order = np.argsort(-w, kind="stable")
        out.append(type(v)(indices=v.indices[order], values=w[order] / np.linalg.norm(w)))
    return out


def _exact_stage(store: Any, name: str, anchors: np.ndarray, c: int) -> Any:
    """Prototype of exact rescoring outside the engine (variant ``m<M>/x<C>``).

    Stage 1: the full query against the pruned items, ``c`` candidates. Stage 2, as the
    library would run it: read the candidates' dense embeddings (no sparse vector), compute
    their similarities to the query's own anchors and the full weights (boundary and norm:
    placeholders here, one stored number each in the library). It returns the candidates
    (exact rescoring ranks them by their full-vector score, so recall@10 is the share of the
    true top 10 among them); the time is that of both stages.
    """

    def run(v: Any) -> list[int]:
        hits = store.query_sparse(name, "asif", [v], c, with_payload=False)[0]
        ids = [h.id for h in hits]
        recs = store.retrieve(name, ids, with_vectors=["text"])
        emb = np.stack([r.dense["text"] for r in recs]) if recs else np.zeros((0, 1))
        if len(emb):
            sims = emb @ anchors[v.indices.astype(np.int64)].T
            w = np.where(sims >= 0.0, np.maximum(sims, 0.0) ** P, 0.0)  # boundary 0 here
            scores = w @ v.values
            np.argsort(-scores)[:LIMIT]
        return ids

    return run


def _measure(
    store: Any, name: str, qv: list[Any], variant: dict[str, Any], anchors: np.ndarray
) -> dict[str, Any]:
    """Batch-1 latency and the top-``LIMIT`` ids of each query for one variant."""
    prefetch = None
    if variant["query_nnz"] is not None:
        prefetch = (variant["query_nnz"], variant["candidates"])

    def run(v: Any) -> list[int]:
        return [
            int(h.id) for h in store.query_sparse(name, "asif", [v], LIMIT, prefetch=prefetch)[0]
        ]

    if variant.get("exact_rescore"):
        run = _exact_stage(store, name, anchors, variant["candidates"])

    from threadpoolctl import threadpool_limits

    # Stage 2 products are small: one BLAS thread (threads spin on a shared CPU).
    with threadpool_limits(1, user_api="blas"):
        for v in qv[:5]:
            run(v)  # warm-up
        lat, found = [], []
        for v in qv:
            t1 = time.perf_counter()
            hits = run(v)
            lat.append(time.perf_counter() - t1)
            found.append(hits)
    lat_ms = np.array(lat) * 1000
    return {
        "query_p50_ms": float(np.percentile(lat_ms, 50)),
        "query_p99_ms": float(np.percentile(lat_ms, 99)),
        "query_mean_ms": float(lat_ms.mean()),
        "found": found,
        "load_average": os.getloadavg()[0],
    }


def worker_catalog(spec: dict[str, Any]) -> dict[str, Any]:
    """One catalog size: build a collection per stored non-zero count, measure each variant.

    ``spec``: ``anchors`` / ``queries`` (.npy paths), ``items``, ``queries_n``,
    ``unique_items``, ``on_disk``, ``variants`` (names, default :data:`VARIANTS`).
    """
    from asif_qdrant.anchor_index import ExactIndex, relative_vectors
    from asif_qdrant.retriever.recompute import prune
    from asif_qdrant.store import CollectionSpec, EdgeStore, Record

    variants = [parse_variant(v) for v in spec.get("variants") or VARIANTS]
    anchors = np.load(spec["anchors"], mmap_mode="r")
    anchors = np.ascontiguousarray(anchors[: spec.get("n_anchors", len(anchors))])
    queries = np.load(spec["queries"], mmap_mode="r")
    n_items = spec["items"]
    t0 = time.perf_counter()
    emb, base = _item_vectors(spec, anchors)
    unique = len(base)
    exact = ExactIndex().build(np.arange(len(anchors)), anchors)
    qv = relative_vectors(exact, np.asarray(queries[: spec["queries_n"]]), K, P)
    qmat = _dense_queries(qv, len(anchors))
    rss_load = rss_mb()[0]
    out: dict[str, Any] = {
        "items": n_items,
        "unique_vectors": unique,
        "anchors": len(anchors),
        "d": anchors.shape[1],
        "on_disk": bool(spec.get("on_disk")),
        "queries": len(qv),
        "generate_s": time.perf_counter() - t0,
        "collections": {},
        "variants": [],
    }
    sizes = sorted({v["item_nnz"] or K for v in variants})
    names = {m: f"cat_{m}" for m in sizes}
    truth = _TopK(len(qv))
    jitter = np.random.default_rng(5)
    with tempfile.TemporaryDirectory(prefix="asif-bench-catalog-") as tmp:
        store = EdgeStore(tmp, on_disk=bool(spec.get("on_disk")))
        for m in sizes:
            store.create_collection(
                names[m], CollectionSpec(dense={"text": emb.shape[1]}, sparse=("asif",))
            )
        upsert_s = dict.fromkeys(sizes, 0.0)
        nnz = dict.fromkeys(sizes, 0)
        for s in range(0, n_items, 4096):
            pos = np.arange(s, min(n_items, s + 4096)) % unique
            full = (
                [base[i] for i in pos] if s + len(pos) <= unique else _jittered(base, pos, jitter)
            )
            truth.add(s, _scores(full, qmat))
            for m in sizes:
                vecs = prune(full, m) if m < K else full
                nnz[m] += sum(len(v) for v in vecs)
                records = [
                    Record(s + j, {"modality": "text"}, dense={"text": emb[i]}, sparse={"asif": v})
                    for j, (i, v) in enumerate(zip(pos, vecs, strict=True))
                ]
                t1 = time.perf_counter()
                for r0 in range(0, len(records), 256):  # index_embeddings writes 256 at a time
                    store.upsert(names[m], records[r0 : r0 + 256])
                if spec.get("on_disk") and (s + len(pos)) % 102_400 < 4096:
                    store.optimize(names[m])  # the engine runs no background optimizer
                upsert_s[m] += time.perf_counter() - t1
        out["build_s"] = time.perf_counter() - t0
        for m in sizes:
            t1 = time.perf_counter()
            store.optimize(names[m])
            upsert_s[m] += time.perf_counter() - t1
            out["collections"][str(m)] = {
                "mean_nnz": nnz[m] / n_items,
                "upsert_s": upsert_s[m],
                "upsert_items_per_s": n_items / upsert_s[m],
            }
        for v in variants:
            res = _measure(store, names[v["item_nnz"] or K], qv, v, anchors)
            found = res.pop("found")
            rec = [  # exact rescoring: the share of the true top 10 among the candidates
                len(set(f) & set(t)) / LIMIT for f, t in zip(found, truth.ids.tolist(), strict=True)
            ]
            res["recall_at_10"] = float(np.mean(rec))
            res["recall_at_10_min"] = float(np.min(rec))
            out["variants"].append({**v, **res})
        store.close()
        for m in sizes:
            du = subprocess.run(
                ["du", "-sm", str(Path(tmp) / "collections" / names[m])],
                capture_output=True,
                text=True,
                check=False,
            )
            disk = float(du.stdout.split()[0]) if du.returncode == 0 else float("nan")
            out["collections"][str(m)]["disk_mb"] = disk
    out["rss_after_load_mb"] = rss_load
    out["peak_rss_mb"] = rss_mb()[1]
    out["setup_s"] = time.perf_counter() - t0
    return out


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}"


def catalog_table(rows: list[dict[str, Any]]) -> str:
    """One Markdown row per (catalog size, variant)."""
    out = [
        "| items (unique vectors) | anchors | variant | stored nnz | recall@10 mean (min) | "
        "p50 ms | p99 ms | load avg | upsert items/s | disk MiB | peak RSS MiB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            last = (r["error"] or "?").strip().splitlines()[-1][:80]
            out.append(f"| {r.get('items')} | error: {last} |||||||||")
            continue
        for v in r["variants"]:
            c = r["collections"][str(v["item_nnz"] or K)]
            out.append(
                f"| {r['items']:,} ({r['unique_vectors']:,}){' on disk' if r['on_disk'] else ''}"
                f" | {r['anchors']:,} | {v['name']} | {c['mean_nnz']:.0f} | "
                f"{v['recall_at_10']:.4f} ({v['recall_at_10_min']:.2f}) | "
                f"{v['query_p50_ms']:.2f} | {v['query_p99_ms']:.2f} | {v['load_average']:.1f} | "
                f"{_fmt(c['upsert_items_per_s'])} | {_fmt(c['disk_mb'])} | "
                f"{_fmt(r['peak_rss_mb'])} |"
            )
    return "\n".join(out)


def _data(work: Path, n_anchors: int, d: int) -> dict[str, str]:
    """Anchors and held-out queries as .npy (the shared benchmark data; reused when present)."""
    anchors, queries = (
        work / f"cat_n{n_anchors}_d{d}_anchors.npy",
        work / f"cat_n{n_anchors}_d{d}_q.npy",
    )
    if not (anchors.exists() and queries.exists()):
        a, q = clustered_embeddings(n_anchors, d, n_queries=256, seed=d)
        np.save(anchors, a)
        np.save(queries, q)
    return {"anchors": str(anchors), "queries": str(queries)}


def main(argv: list[str] | None = None) -> int:
    """Run the catalog benchmark (each size in its own process) and write the report."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.catalog", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--catalog-sizes", default="100000", help="catalog items, comma-separated")
    ap.add_argument("--catalog-anchors", type=int, default=100_000)
    ap.add_argument("--catalog-unique", type=int, default=100_000, help="distinct item vectors")
    ap.add_argument("--catalog-on-disk", action="store_true", help="EdgeStore(on_disk=True)")
    ap.add_argument("--queries", type=int, default=256, help="queries (at most 256)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--no-full", action="store_true", help="leave out the 'full' variant")
    ap.add_argument(
        "--anchors-npy", default=None, help="anchors .npy (rows used: --catalog-anchors)"
    )
    ap.add_argument("--queries-npy", default=None, help="queries .npy (with --anchors-npy)")
    ap.add_argument("--work", default=None, help="folder for generated data (reused)")
    ap.add_argument("--out", default="benchmarks/results_catalog")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker_catalog(json.loads(args.worker))), flush=True)
        return 0
    variants = [v for v in args.variants.split(",") if v and not (args.no_full and v == "full")]
    for v in variants:
        parse_variant(v)
    if args.anchors_npy:
        data = {"anchors": args.anchors_npy, "queries": args.queries_npy or args.anchors_npy}
    else:
        work = Path(args.work or tempfile.mkdtemp(prefix="asif-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        data = _data(work, args.catalog_anchors, 384)
    report: dict[str, Any] = {
        "command": "python -m benchmarks.catalog "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "load_average_at_start": os.getloadavg(),
        "settings": {"k": K, "p": P, "limit": LIMIT, "variants": variants},
        "catalog": [],
    }
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for items in [int(s) for s in args.catalog_sizes.split(",")]:
        spec = {
            **data,
            "n_anchors": args.catalog_anchors,
            "items": items,
            "queries_n": args.queries,
            "unique_items": args.catalog_unique,
            "on_disk": args.catalog_on_disk,
            "variants": variants,
        }
        cmd = [sys.executable, "-m", "benchmarks.catalog", "--worker", json.dumps(spec)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        res = (
            json.loads(lines[-1])
            if lines and proc.returncode == 0
            else {"items": items, "error": proc.stderr[-2000:]}
        )
        report["catalog"].append(res)
        print(json.dumps({k: v for k, v in res.items() if k != "variants"}), flush=True)
    report["load_average_at_end"] = os.getloadavg()
    md = [
        f"Command: `{report['command']}`  ",
        f"Load average at start {report['load_average_at_start'][0]:.1f}, at end "
        f"{report['load_average_at_end'][0]:.1f} (timings on a loaded machine are not final).",
        "",
        catalog_table(report["catalog"]),
        "",
    ]
    text = "\n".join(md)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "catalog.md").write_text(text)
    (out / "catalog.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
