"""Probe: anchor-index paths vs the numpy baseline at one size, in one run (JSON out).

Measures, on rows of a shared ``.npy`` matrix (unit rows) and its held-out queries: the numpy
baseline (``q @ A.T`` + ``argpartition`` over pre-normalised anchors), then each method's
``topk`` and :func:`asif_qdrant.anchor_index.relative_search` (the model's path: ties and
weights included) at batch 1 and 64, recall@k and sparse-vector cosine against the baseline's
exact top-k, build and first-call (calibration) time, ``memory_bytes`` and the load average.

    python scripts/fastpath_probe.py --n 1000000 --methods ivf,ivf-pca --out /tmp/probe.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from asif_qdrant.anchor_index import make_index, recall_at_k, relative_search, sparse_cosine
from asif_qdrant.relative import relative_weights

K = 800
P = 8.0


def baseline(a: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy: one product over pre-normalised anchors, argpartition, sort of the k."""
    s = q @ a.T
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    ps = np.take_along_axis(s, part, 1)
    order = np.argsort(-ps, axis=1)
    return np.take_along_axis(part, order, 1), np.take_along_axis(ps, order, 1)


def rate(fn: Any, q: np.ndarray, batch: int) -> float:
    """Queries per second of ``fn`` over ``q`` in batches."""
    t = time.perf_counter()
    for s in range(0, len(q), batch):
        fn(q[s : s + batch])
    return len(q) / (time.perf_counter() - t)


def main() -> None:
    """Run the probe (see the module docstring)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--anchors", default="/tmp/proto/a.npy")
    ap.add_argument("--queries", default="/tmp/proto/q.npy")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--methods", default="ivf-pca")
    ap.add_argument("--options", default="{}", help="JSON {method: options for make_index}")
    ap.add_argument("--single", type=int, default=32, help="queries timed one by one")
    ap.add_argument("--batches", type=int, default=2, help="batches of 64 timed")
    ap.add_argument("--skip-baseline-timing", action="store_true")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    a = np.load(args.anchors, mmap_mode="r")[: args.n]
    q = np.array(np.load(args.queries)[: max(args.single, 64 * args.batches)])
    rows: list[dict[str, Any]] = []
    a_mem = a  # memory-mapped: the page cache holds it, shared with other processes
    true_ids, true_sims = baseline(a_mem, q, K)
    if not args.skip_baseline_timing:
        rows.append(
            {
                "method": "numpy-baseline",
                "qps_batch1": rate(lambda x: baseline(a_mem, x, K), q[: args.single // 2], 1),
                "qps_batch64": rate(lambda x: baseline(a_mem, x, K), q[: 64 * args.batches], 64),
                "load": os.getloadavg()[0],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    options = json.loads(args.options)
    for method in args.methods.split(","):
        t = time.perf_counter()
        index = make_index(method, **options.get(method, {})).build(np.arange(args.n), a_mem)
        build = time.perf_counter() - t
        t = time.perf_counter()
        index.topk(q[:1], K + 32)
        first = time.perf_counter() - t
        ids, sims = index.topk(q, K)
        rec = recall_at_k(true_ids, ids)
        cos = sparse_cosine(
            true_ids, relative_weights(true_sims, P), ids, relative_weights(sims, P)
        )
        one, many = q[: args.single], q[: 64 * args.batches]

        def rel(x: np.ndarray, index: Any = index) -> Any:
            return relative_search(index, x, K, P)

        row = {
            "method": method,
            "n": args.n,
            "describe": {k: str(v) for k, v in index.describe().items()},
            "calibration": {str(k): v for k, v in getattr(index, "calibration", {}).items()},
            "build_s": build,
            "first_call_s": first,
            "memory_mib": index.memory_bytes() / 2**20 if hasattr(index, "memory_bytes") else None,
            "recall_mean": float(rec.mean()),
            "recall_min": float(rec.min()),
            "cosine_mean": float(cos.mean()),
            "cosine_min": float(cos.min()),
            "topk_qps_batch1": rate(lambda x, index=index: index.topk(x, K), one, 1),
            "topk_qps_batch64": rate(lambda x, index=index: index.topk(x, K), many, 64),
            "relative_qps_batch1": rate(rel, one, 1),
            "relative_qps_batch64": rate(rel, many, 64),
            "load": os.getloadavg()[0],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        del index
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
