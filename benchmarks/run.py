"""The asif-qdrant performance benchmark: every anchor-search path side by side, in one run.

Usage::

    python -m benchmarks.run            # full run (n = 10k, 100k, 1M; about 25 minutes)
    python -m benchmarks.run --quick    # n = 10k and 100k, fewer repeats (about 4 minutes)
    python -m benchmarks.run --sections relative --sizes 100000 --paths official,numpy,exact,ivf

It prints Markdown tables and writes ``results.json`` (machine, versions, settings, the
measured memory bandwidth, every figure as the median of its repeats), ``results.md`` and
``scaling.png`` (queries/s vs n per path) under ``--out`` (default ``benchmarks/results``).
Sections:

* ``relative``: relative vectors (queries/s at batch 1 and 64) for each path, recall@k of the
  anchor set and cosine of the sparse vector vs the exact ones, build seconds, peak RSS. Each
  path runs in its own subprocess so that its peak RSS is its own. ``x baseline`` is the
  ratio to the FASTER of the two honest baselines of the same run, per size and batch size
  (:mod:`benchmarks.indexes.baselines`): ``official`` (the official ASIF code's recipe, torch
  ``einsum`` + ``topk`` per 100,000-anchor chunk, merged) and ``numpy`` (``q @ A.T`` +
  ``argpartition`` over anchors normalised once). The old baseline,
  :func:`asif_qdrant.relative_topk` (re-normalises every anchor on every call), is measured as
  ``renormalising (old baseline)`` and is no yardstick. The run first measures the memory
  read bandwidth (:mod:`benchmarks.bandwidth`); ``% limit`` compares each path's batch-1 q/s
  with a full float32 scan at that bandwidth.
* ``edits``: seconds to add and to delete ``--edit-pairs`` anchors at the largest n.
* ``catalog``: sparse search p50/p99 latency and indexing throughput on the embedded engine.
* ``e2e``: per-image time of the image encoder's forward pass vs the ASIF step.

Data are synthetic but structured like real embeddings (see :mod:`benchmarks.synthetic`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bandwidth import limit_qps
from benchmarks.bandwidth import measure as measure_bandwidth
from benchmarks.catalog import catalog_table, worker_catalog
from benchmarks.indexes import BASELINE_METHODS, METHODS
from benchmarks.memory import rss_mb
from benchmarks.synthetic import clustered_embeddings

#: The old baseline, :func:`asif_qdrant.relative_topk`: it re-normalises every anchor on every
#: call, so it is no fair yardstick; measured and labelled for what it is.
OLD_BASELINE = "renormalising"
#: Every path of the relative section: the two honest baselines, the old one, then every other
#: anchor index of :data:`benchmarks.indexes.METHODS` (the library's among them).
PATHS = [
    *BASELINE_METHODS,
    OLD_BASELINE,
    *(m for m in METHODS if m not in BASELINE_METHODS),
]
#: How the tables name a path (the old baseline says what it is).
LABELS = {OLD_BASELINE: "renormalising (old baseline)"}
#: The commands that regenerate docs/PERFORMANCE.md (printed by ``--help``), on a quiet machine.
PERFORMANCE_COMMANDS = """\
To regenerate docs/PERFORMANCE.md (on a quiet machine; each writes JSON and Markdown):
  python -m benchmarks.run --work /tmp/asif-bench --out benchmarks/results
      every section; relative at n = 10k, 100k, 1M (d = 384) and 10k, 100k (d = 1280), with
      both honest baselines (official, numpy), the memory bandwidth and the limit (~25 min)
  python -m benchmarks.asif_default --sizes 100000,1000000 \\
      --out benchmarks/results_asif_default.json
      the model's public path (ASIF.relative_from_embeddings) per anchor_search vs both
      baselines, recall@800 and sparse cosine (1M: adding the anchors ~6 min)
  python -m benchmarks.bandwidth --gib 1.5
      the memory read bandwidth alone
  python -m benchmarks.run --sections relative --paths official,numpy,exact,ivf,torch \\
      --device cuda --out benchmarks/results_gpu
      on a GPU host (the official recipe runs on the GPU too)
  python -m benchmarks.run --smoke
      seconds: both baselines and the default paths at n = 30k (what the tests assert)
"""
#: Largest n (at d = 384; n * d for other d) at which a path runs by default: above it, its
#: build costs minutes on 2 cores (HNSW at 100k x 1280: 3.5 minutes).
MAX_N = {"qdrant-hnsw": 100_000}
FULL: dict[str, Any] = {
    "configs": [(10_000, 384), (100_000, 384), (1_000_000, 384), (10_000, 1280), (100_000, 1280)],
    "repeats": 3,
    "batch1_queries": 16,
    "catalog_sizes": [100_000],
    "catalog_anchors": 100_000,
    "catalog_queries": 300,
    "edit_pairs": 10_000,
}
QUICK: dict[str, Any] = {
    "configs": [(10_000, 384), (100_000, 384)],
    "repeats": 2,
    "batch1_queries": 8,
    "catalog_sizes": [20_000],
    "catalog_anchors": 10_000,
    "catalog_queries": 100,
    "edit_pairs": 2_000,
}
K = 800
P = 8.0
BATCH = 64
#: Stop timing batch-1 queries of one path after this many seconds (the median stays valid).
BATCH1_BUDGET_S = 15.0


# -- helpers ---------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """Machine, load and library versions."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str] = {"python": platform.python_version(), "numpy": np.__version__}
    for dist in ("torch", "qdrant-edge-py", "qdrant-client", "threadpoolctl"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        dep = cfg["Build Dependencies"]["blas"]
        blas = f"{dep['name']} {dep['version']}"
    except Exception:
        pass
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = float("nan")
    with contextlib.suppress(ValueError, OSError):
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception:
        gpu = "none"
    return {
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "gpu": gpu,
        "blas": blas,
        "load_average_at_start": os.getloadavg(),
        "versions": versions,
    }


def median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else float("nan")


#: Held-out rows drawn with each data set: queries first, then rows used as new anchors.
N_HELD_OUT = 256
N_EXTRA = 10_000


def data_paths(work: Path, n: int, d: int) -> dict[str, str]:
    stem = work / f"n{n}_d{d}"
    return {
        "anchors": f"{stem}_anchors.npy",
        "queries": f"{stem}_queries.npy",
        "extra": f"{stem}_extra.npy",
        "truth_ids": f"{stem}_truth_ids.npy",
        "truth_sims": f"{stem}_truth_sims.npy",
    }


def prepare_data(work: Path, n: int, d: int) -> dict[str, str]:
    """Anchors, held-out queries, held-out rows for anchor edits (same distribution), and the
    exact top-k of the first BATCH queries, as .npy files (reused when present)."""
    from asif_qdrant.anchor_index import exact_topk

    paths = data_paths(work, n, d)
    if all(Path(p).exists() for p in paths.values()):
        return paths
    anchors, held = clustered_embeddings(n, d, n_queries=N_HELD_OUT + N_EXTRA, seed=d)
    queries = held[:N_HELD_OUT]
    rows, sims = exact_topk(queries[:BATCH], anchors, min(K, n))
    np.save(paths["anchors"], anchors)
    np.save(paths["queries"], queries)
    np.save(paths["extra"], held[N_HELD_OUT:])
    np.save(paths["truth_ids"], rows)
    np.save(paths["truth_sims"], sims)
    return paths


def quality(
    truth_ids: np.ndarray, truth_sims: np.ndarray, ids: np.ndarray, sims: np.ndarray
) -> dict[str, float]:
    """Recall@k of the anchor set and cosine of the sparse vector, vs the exact ones."""
    from asif_qdrant.anchor_index import recall_at_k, sparse_cosine
    from asif_qdrant.relative import relative_weights

    rec = recall_at_k(truth_ids, ids)
    cos = sparse_cosine(truth_ids, relative_weights(truth_sims, P), ids, relative_weights(sims, P))
    return {
        "recall_mean": float(rec.mean()),
        "recall_min": float(rec.min()),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
    }


# -- worker: one path on one data set, in its own process -------------------------------------
def worker_relative(spec: dict[str, Any]) -> dict[str, Any]:
    from asif_qdrant.relative import relative_topk
    from benchmarks.indexes import make_index

    anchors = np.load(spec["anchors"])
    queries = np.load(spec["queries"])[:BATCH]
    truth_ids = np.load(spec["truth_ids"])
    truth_sims = np.load(spec["truth_sims"])
    n = len(anchors)
    rss_load, _ = rss_mb()
    path = spec["path"]
    out: dict[str, Any] = {"path": path, "n": n, "d": anchors.shape[1]}
    index = None
    t0 = time.perf_counter()
    if path == OLD_BASELINE:

        def run(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            rows, w = relative_topk(q, anchors, K, P)
            return rows, w

    else:
        options = spec.get("options", {})
        index = make_index(path, device=spec.get("device"), **options).build(np.arange(n), anchors)

        def run(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            ids, sims = index.topk(q, K)
            if hasattr(index, "synchronize"):
                index.synchronize()
            return ids, sims

    out["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids, sims = run(queries)  # warm-up (IVF calibrates here)
    out["first_batch_s"] = time.perf_counter() - t0
    times = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        ids, sims = run(queries)
        times.append(time.perf_counter() - t0)
    out["b64_s"] = times
    out["b64_qps"] = BATCH / median(times)
    if path == OLD_BASELINE:  # relative_topk returns weights, not similarities
        from asif_qdrant.anchor_index import recall_at_k, sparse_cosine
        from asif_qdrant.relative import relative_weights

        rec = recall_at_k(truth_ids, ids)
        cos = sparse_cosine(truth_ids, relative_weights(truth_sims, P), ids, sims)
        out.update(
            recall_mean=float(rec.mean()),
            recall_min=float(rec.min()),
            cosine_mean=float(cos.mean()),
            cosine_min=float(cos.min()),
        )
    else:
        out.update(quality(truth_ids, truth_sims, ids, sims))
    t1: list[float] = []
    start = time.perf_counter()
    for i in range(spec["batch1_queries"]):
        t0 = time.perf_counter()
        run(queries[i : i + 1])
        t1.append(time.perf_counter() - t0)
        if time.perf_counter() - start > BATCH1_BUDGET_S and len(t1) >= 3:
            break
    out["b1_s"] = t1
    out["b1_qps"] = 1.0 / median(t1)
    if index is not None:
        out["index"] = index.describe()
        if hasattr(index, "memory_bytes"):
            out["index_mb"] = index.memory_bytes() / 1024**2
    if spec.get("edit_pairs"):
        new_rows = np.load(spec["extra"])[: spec["edit_pairs"]]
        if path != OLD_BASELINE:
            out["edits"] = edits(index, n, new_rows)
            if path == "qdrant-exact":
                out["edits"]["read_back_s"] = read_back(index)
        else:
            out["edits"] = edits_plain(anchors, new_rows)
    if index is not None:
        index.close()
    out["rss_after_load_mb"] = rss_load
    out["peak_rss_mb"] = rss_mb()[1]
    return out


def edits(index: Any, n: int, new: np.ndarray) -> dict[str, float]:
    """Seconds to add then delete ``len(new)`` anchors (one modality) in a built index."""
    pairs = len(new)
    ids = np.arange(n, n + pairs)
    t0 = time.perf_counter()
    index.add(ids, new)
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gone = index.delete(ids)
    delete_s = time.perf_counter() - t0
    assert gone == pairs, (gone, pairs)
    return {"pairs": pairs, "add_s": add_s, "delete_s": delete_s}


def edits_plain(anchors: np.ndarray, new: np.ndarray) -> dict[str, float]:
    """The same edits on a bare numpy matrix (what the old baseline holds)."""
    pairs = len(new)
    t0 = time.perf_counter()
    grown = np.concatenate([anchors, new])
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    keep = np.ones(len(grown), dtype=bool)
    keep[len(anchors) :] = False
    _ = grown[keep]
    delete_s = time.perf_counter() - t0
    return {"pairs": pairs, "add_s": add_s, "delete_s": delete_s}


def read_back(index: Any) -> float:
    """Seconds to read every stored anchor vector back, as ``ASIF.anchor_embeddings`` does
    (``EdgeStore.scroll`` pages of 256 points, each vector turned into a numpy array)."""
    import qdrant_edge as qe

    t0 = time.perf_counter()
    offset = None
    rows = []
    while True:
        req = qe.ScrollRequest(offset=offset, limit=256, with_payload=True, with_vector=["v"])
        page, offset = index.shard.scroll(req)
        rows.extend(np.asarray(r.vector["v"], dtype=np.float32) for r in page)
        if offset is None or not page:
            break
    np.stack(rows)
    return time.perf_counter() - t0


# -- worker: end to end on the offline encoders ----------------------------------------------
def worker_e2e(spec: dict[str, Any]) -> dict[str, Any]:
    from asif_qdrant.anchor_index import choose_method, make_index
    from asif_qdrant.encoders import load_image_encoder
    from asif_qdrant.loaders import load_tuxpaint_stamps
    from asif_qdrant.relative import l2_normalize, relative_topk, relative_weights

    pairs = load_tuxpaint_stamps()
    images = [p.image for p in pairs[:: max(1, len(pairs) // spec["images"])]][: spec["images"]]
    enc = load_image_encoder(device="cpu")
    enc.embed(images[:4], batch_size=4, show_progress_bar=False)  # warm-up
    batch = spec["batch"]
    enc_times = []
    emb = None
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        emb = enc.embed(images, batch_size=batch, show_progress_bar=False)
        enc_times.append((time.perf_counter() - t0) / len(images))
    assert emb is not None
    anchors = np.load(spec["anchors"])
    n, d = anchors.shape
    method = choose_method(n, device="cpu")
    index = make_index(method).build(np.arange(n), anchors)
    out: dict[str, Any] = {
        "images": len(images),
        "encoder": enc.name,
        "encoder_batch": batch,
        "anchors": n,
        "d": d,
        "auto_method": method,
        "encoder_s_per_image": median(enc_times),
    }
    from benchmarks.indexes import make_index as make_any_index

    index.topk(emb[:batch], K)  # warm-up
    official = make_any_index("official").build(np.arange(n), anchors)
    numpy_index = make_any_index("numpy").build(np.arange(n), anchors)
    for label, fn in (
        ("auto", lambda e: relative_weights(index.topk(e, K)[1], P)),
        ("official", lambda e: relative_weights(official.topk(e, K)[1], P)),
        ("numpy", lambda e: relative_weights(numpy_index.topk(e, K)[1], P)),
        (OLD_BASELINE, lambda e: relative_topk(e, anchors, K, P)[1]),
    ):
        per_batch, per_one = [], []
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            for s in range(0, len(emb), batch):
                fn(l2_normalize(emb[s : s + batch]))
            per_batch.append((time.perf_counter() - t0) / len(emb))
        for i in range(min(8, len(emb))):
            t0 = time.perf_counter()
            fn(l2_normalize(emb[i : i + 1]))
            per_one.append(time.perf_counter() - t0)
        out[f"{label}_s_per_image_batched"] = median(per_batch)
        out[f"{label}_s_per_image_single"] = median(per_one)
        out[f"{label}_share_of_encoder_batched"] = median(per_batch) / out["encoder_s_per_image"]
    # how close are the real images' vectors from the auto path to the exact ones
    from asif_qdrant.anchor_index import exact_topk

    rows, sims = exact_topk(l2_normalize(emb), anchors, K)
    ids, got = index.topk(emb, K)
    out.update(quality(rows, sims, ids, got))
    out["peak_rss_mb"] = rss_mb()[1]
    return out


def default_methods() -> list[str]:
    """The paths ``anchor_search="auto"`` picks on a CPU (at 10 and at 10 million anchors)."""
    from asif_qdrant.anchor_index import choose_method

    return list(dict.fromkeys([choose_method(n, device="cpu") for n in (10, 10**7)]))


def smoke(
    n: int = 30_000, d: int = 384, m: int = 32, seed: int = 3, *, keep: bool = False
) -> list[dict[str, Any]]:
    """Seconds-long version of the relative section, in this process (used by the tests).

    Runs the two honest baselines (``official``, ``numpy``), the old renormalising one and the
    default paths (:func:`default_methods`) on the same structured data; returns their
    queries/s (batch ``m``), ``x_baseline`` (vs the faster honest baseline) and quality vs
    the exact result (:func:`asif_qdrant.anchor_index.exact_topk`). With ``keep``, each
    index's row also holds its ``ids`` and ``sims`` arrays (not JSON).
    """
    from asif_qdrant.anchor_index import exact_topk
    from asif_qdrant.relative import relative_topk
    from benchmarks.indexes import make_index

    anchors, queries = clustered_embeddings(n, d, n_queries=m, seed=seed)
    truth_ids, truth_sims = exact_topk(queries, anchors, min(K, n))
    rows = []
    for method in [*BASELINE_METHODS, *default_methods()]:
        index = make_index(method).build(np.arange(n), anchors)
        index.topk(queries[:2], K)  # warm-up (IVF calibrates)
        t0 = time.perf_counter()
        ids, sims = index.topk(queries, K)
        dt = time.perf_counter() - t0
        row = {"path": method, "qps": m / dt, **quality(truth_ids, truth_sims, ids, sims)}
        rows.append({**row, "ids": ids, "sims": sims} if keep else row)
    t0 = time.perf_counter()
    relative_topk(queries, anchors, K, P)
    rows.append({"path": OLD_BASELINE, "qps": m / (time.perf_counter() - t0)})
    best = max(r["qps"] for r in rows if r["path"] in BASELINE_METHODS)
    for r in rows:
        r["x_baseline"] = r["qps"] / best
    return rows


def worker_bandwidth(spec: dict[str, Any]) -> dict[str, Any]:
    """The memory read bandwidth (:mod:`benchmarks.bandwidth`) on ``spec["anchors"]`` (a
    ``.npy``) or, without it, a fresh ``spec["gib"]`` GiB array."""
    if spec.get("anchors"):
        mat = np.load(spec["anchors"])
    else:
        mat = np.full((int(spec.get("gib", 1.0) * 1024**3 / (4 * 384)), 384), 0.5, np.float32)
    return {
        **measure_bandwidth(mat),
        "shape": list(mat.shape),
        "load_average": os.getloadavg(),
    }


WORKERS = {
    "relative": worker_relative,
    "catalog": worker_catalog,
    "e2e": worker_e2e,
    "bandwidth": worker_bandwidth,
}


def in_subprocess(kind: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; returns its JSON result (or the error)."""
    cmd = [sys.executable, "-m", "benchmarks.run", "--worker", kind, json.dumps(spec)]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=root, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-2000:]}
    return json.loads(lines[-1])


# -- report ----------------------------------------------------------------------------------
def fmt(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{nd}f}"
    return str(x)


def best_baselines(rows: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """Per ``(n, d)``: the faster honest baseline's q/s at batch 1 and 64, and which it was.

    Example:
        >>> rows = [{"n": 1, "d": 2, "path": "official", "b1_qps": 5.0, "b64_qps": 70.0},
        ...         {"n": 1, "d": 2, "path": "numpy", "b1_qps": 23.0, "b64_qps": 60.0}]
        >>> best_baselines(rows)[1, 2]
        {'b1_qps': 23.0, 'b1_path': 'numpy', 'b64_qps': 70.0, 'b64_path': 'official'}
    """
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for r in rows:
        if r.get("path") not in BASELINE_METHODS or "error" in r:
            continue
        b = out.setdefault((r["n"], r["d"]), {})
        for key in ("b1_qps", "b64_qps"):
            if r[key] > b.get(key, 0.0):
                b[key] = r[key]
                b[key.replace("qps", "path")] = r["path"]
    return out


def relative_table(rows: list[dict[str, Any]], bandwidth: dict[str, Any] | None = None) -> str:
    """The relative section as Markdown; ``x baseline`` is against the faster of ``official``
    and ``numpy`` in the same run (per size and batch), ``% limit`` against the batch-1 rate
    of a full ``float32`` scan at the measured read bandwidth."""
    out = [
        "| n | d | path | q/s batch 1 | x baseline | % limit | q/s batch 64 | x baseline | "
        "recall@800 mean (min) | sparse cos mean (min) | build s | peak RSS MiB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = best_baselines(rows)
    gbs = (bandwidth or {}).get("read_gbs")
    for r in rows:
        if "error" in r:
            out.append(
                f"| {r.get('n')} | {r.get('d')} | {r.get('path')} | error: "
                f"{(r['error'] or '?').strip().splitlines()[-1][:80]} ||||||||"
            )
            continue
        b = base.get((r["n"], r["d"]), {})
        x1 = r["b1_qps"] / b["b1_qps"] if b else float("nan")
        x64 = r["b64_qps"] / b["b64_qps"] if b else float("nan")
        share = 100 * r["b1_qps"] / limit_qps(gbs, r["n"], r["d"]) if gbs else float("nan")
        out.append(
            f"| {r['n']:,} | {r['d']} | {LABELS.get(r['path'], r['path'])} | {fmt(r['b1_qps'])} | "
            f"{fmt(x1, 2)} | {fmt(share, 0)} | {fmt(r['b64_qps'])} | {fmt(x64, 2)} | "
            f"{r['recall_mean']:.4f} ({r['recall_min']:.3f}) | "
            f"{r['cosine_mean']:.5f} ({r['cosine_min']:.4f}) | {fmt(r['build_s'])} | "
            f"{fmt(r['peak_rss_mb'])} |"
        )
    notes = [
        f"n = {n:,}, d = {d}: baseline = `{b['b1_path']}` {fmt(b['b1_qps'])} q/s at batch 1, "
        f"`{b['b64_path']}` {fmt(b['b64_qps'])} q/s at batch 64"
        + (f"; limit {fmt(limit_qps(gbs, n, d))} q/s at batch 1" if gbs else "")
        for (n, d), b in base.items()
        if "b1_path" in b and "b64_path" in b
    ]
    if gbs:
        bw = bandwidth or {}
        notes.insert(
            0,
            f"Memory read bandwidth {gbs:.1f} GB/s (best of BLAS gemv {bw['gemv']:.1f}, "
            f"torch sum {bw['torch_sum']:.1f}, numpy sum {bw['numpy_sum']:.1f}; copy "
            f"{bw['copy']:.1f} GB/s counting read + write; over a {bw['bytes'] / 1e9:.2f} GB "
            f"matrix, load average {bw['load_average'][0]:.1f}). Limit: the batch-1 q/s of a "
            "path that reads the whole float32 matrix per query, bandwidth / (4 n d); `% limit` "
            "is each path's batch-1 q/s against it (a path that scans less can pass 100).",
        )
    return "\n".join([*out, "", *(f"* {line}" for line in notes)])


def edits_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| n | path | pairs | add s | delete s | note |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        e = r.get("edits")
        if not e:
            continue
        note = ""
        if "read_back_s" in e:
            note = f"reading all {r['n']:,} vectors back from the engine: {e['read_back_s']:.1f} s"
        out.append(
            f"| {r['n']:,} | {r['path']} | {e['pairs']:,} | {e['add_s']:.3f} | "
            f"{e['delete_s']:.3f} | {note} |"
        )
    return "\n".join(out)


def e2e_table(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"e2e error: {(r['error'] or '?').strip().splitlines()[-1]}"
    enc = r["encoder_s_per_image"] * 1000
    lines = [
        f"Image encoder `{r['encoder']}` forward: {enc:.1f} ms per image (batch "
        f"{r['encoder_batch']}, {r['images']} Tux Paint stamps). Anchors: {r['anchors']:,} x "
        f"{r['d']} (auto path: `{r['auto_method']}`).",
        "",
        "| ASIF step | ms per image, batched | share of encoder | ms, batch of 1 |",
        "|---|---:|---:|---:|",
    ]
    for label in ("auto", *BASELINE_METHODS, OLD_BASELINE):
        lines.append(
            f"| {LABELS.get(label, label)} | {r[f'{label}_s_per_image_batched'] * 1000:.2f} | "
            f"{100 * r[f'{label}_share_of_encoder_batched']:.1f}% | "
            f"{r[f'{label}_s_per_image_single'] * 1000:.1f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=False)
    ok = [r for r in rows if "error" not in r and r["d"] == 384]
    paths = [p for p in PATHS if any(r["path"] == p for r in ok)]
    colors = dict(zip(PATHS, plt.get_cmap("tab20")(np.linspace(0, 1, 20))[::2], strict=False))
    colors.update(official="black", numpy="dimgray", exact="tab:orange", ivf="tab:green")
    main_paths = (*BASELINE_METHODS, "exact", "ivf")
    for ax, key, title in ((axes[0], "b1_qps", "batch 1"), (axes[1], "b64_qps", "batch 64")):
        for p in paths:
            pts = sorted((r["n"], r[key], r["recall_mean"]) for r in ok if r["path"] == p)
            style = "-" if p in main_paths else "--"
            width = 2.6 if p in main_paths else 1.2
            ax.plot(
                [x[0] for x in pts],
                [x[1] for x in pts],
                style,
                marker="o",
                lw=width,
                color=colors.get(p),
                label=LABELS.get(p, p) if ax is axes[0] else None,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("anchors n (d = 384, k = 800)")
        ax.set_ylabel("relative vectors per second")
        ax.set_title(f"queries/s, {title}")
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def annotate(rows: list[dict[str, Any]], bandwidth: dict[str, Any] | None) -> None:
    """Add to each row its ratios to the faster honest baseline and the bandwidth limit."""
    base = best_baselines(rows)
    gbs = (bandwidth or {}).get("read_gbs")
    for r in rows:
        b = base.get((r.get("n"), r.get("d")))
        if "error" in r or not b:
            continue
        r["x_baseline_b1"] = r["b1_qps"] / b["b1_qps"]
        r["x_baseline_b64"] = r["b64_qps"] / b["b64_qps"]
        if gbs and "bytes" in (bandwidth or {}):
            r["limit_b1_qps"] = limit_qps(gbs, r["n"], r["d"])
            r["b1_share_of_limit"] = r["b1_qps"] / r["limit_b1_qps"]


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.split("\n")[0],
        epilog=PERFORMANCE_COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, fewer repeats (~3 min)")
    ap.add_argument("--sections", default="relative,edits,catalog,e2e")
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated relative paths")
    ap.add_argument("--sizes", default=None, help="comma-separated n to keep (default: all)")
    ap.add_argument("--catalog-sizes", default=None, help="catalog items, comma-separated")
    ap.add_argument(
        "--catalog-on-disk",
        action="store_true",
        help="catalog vectors and sparse index memory-mapped (EdgeStore(on_disk=True))",
    )
    ap.add_argument("--catalog-unique", type=int, default=None, help="distinct item vectors")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument(
        "--device", default="cpu", help="torch device of the 'torch' and 'official' paths"
    )
    ap.add_argument(
        "--bandwidth-gib",
        type=float,
        default=1.5,
        help="size of the array the memory bandwidth is measured on (0: skip)",
    )
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--plot", default=None, help="also write the scaling plot here")
    ap.add_argument("--work", default=None, help="folder for the generated data (reused)")
    ap.add_argument("--smoke", action="store_true", help="seconds-long in-process check")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        kind, spec = args.worker
        print(json.dumps(WORKERS[kind](json.loads(spec))), flush=True)
        return 0

    if args.smoke:
        for row in smoke():
            print(json.dumps(row))
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    if args.repeats:
        cfg["repeats"] = args.repeats
    sections = set(args.sections.split(","))
    paths = [p for p in args.paths.split(",") if p]
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        ap.error(f"--paths: unknown {', '.join(unknown)}; allowed: {', '.join(PATHS)}")
    configs = cfg["configs"]
    if args.sizes:
        keep = {int(s) for s in args.sizes.split(",")}
        configs = [c for c in configs if c[0] in keep]
    if args.catalog_sizes:
        cfg["catalog_sizes"] = [int(s) for s in args.catalog_sizes.split(",")]
    if args.catalog_unique:
        cfg["catalog_unique"] = args.catalog_unique
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="asif-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    report: dict[str, Any] = {
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "settings": {"k": K, "p": P, "batch": BATCH, **cfg, "paths": paths},
        "relative": [],
        "catalog": [],
        "e2e": None,
    }
    print(f"# asif-qdrant benchmark ({'quick' if args.quick else 'full'})", flush=True)
    print(json.dumps(report["machine"]), flush=True)
    largest = max(n for n, _ in configs) if configs else 0

    if "relative" in sections and args.bandwidth_gib > 0:
        bw = in_subprocess("bandwidth", {"gib": args.bandwidth_gib}, timeout=600)
        report["bandwidth"] = bw
        print(f"bandwidth: {bw}", flush=True)
    if "relative" in sections or "edits" in sections:
        for n, d in configs:
            data = prepare_data(work, n, d)
            for path in paths:
                limit = MAX_N.get(path)
                if limit is not None and n * d > limit * 384:
                    continue
                if "relative" not in sections and path not in (
                    OLD_BASELINE,
                    "exact",
                    "ivf",
                    "qdrant-exact",
                ):
                    continue
                spec = {
                    **data,
                    "path": path,
                    "repeats": cfg["repeats"],
                    "batch1_queries": cfg["batch1_queries"],
                    "device": args.device if path in ("torch", "official") else None,
                }
                if "edits" in sections and n == largest and d == 384:
                    spec["edit_pairs"] = cfg["edit_pairs"]
                t0 = time.perf_counter()
                res = in_subprocess("relative", spec, timeout=1800)
                res.setdefault("path", path)
                res.setdefault("n", n)
                res.setdefault("d", d)
                report["relative"].append(res)
                partial = out_dir / "results.partial.json"
                partial.write_text(json.dumps(report, indent=1, default=float) + "\n")
                brief = {k: res.get(k) for k in ("b1_qps", "b64_qps", "recall_mean", "cosine_min")}
                print(f"n={n} d={d} {path}: {brief} ({time.perf_counter() - t0:.0f} s)", flush=True)
                if "error" in res:
                    print(res["error"][-800:], flush=True)

    if "catalog" in sections:
        n_a = cfg["catalog_anchors"]
        data = prepare_data(work, n_a, 384)
        for items in cfg["catalog_sizes"]:
            spec = {
                **data,
                "items": items,
                "queries_n": cfg["catalog_queries"],
                "unique_items": cfg.get("catalog_unique", 100_000),
                "on_disk": args.catalog_on_disk,
            }
            t0 = time.perf_counter()
            res = in_subprocess("catalog", spec, timeout=3600)
            res.setdefault("items", items)
            report["catalog"].append(res)
            print(
                f"catalog {items}: {res.get('query_p50_ms')} ms p50 "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
            if "error" in res:
                print(res["error"][-800:], flush=True)

    if "e2e" in sections:
        data = prepare_data(work, 100_000 if not args.quick else 10_000, 1280)
        spec = {**data, "images": 64, "batch": 32, "repeats": 3 if not args.quick else 2}
        report["e2e"] = in_subprocess("e2e", spec, timeout=1800)
        print(f"e2e: {report['e2e']}", flush=True)

    report["wall_s"] = time.time() - started
    report["machine"]["load_average_at_end"] = os.getloadavg()
    md = [
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']['machine']}, {report['machine']['cpu']}, "
        f"{report['machine']['cpu_cores']} CPU cores, {report['machine']['memory_gib']} GiB, "
        f"GPU: {report['machine']['gpu']}; load average at start "
        f"{report['machine']['load_average_at_start'][0]:.1f}, at end "
        f"{report['machine']['load_average_at_end'][0]:.1f}; wall {report['wall_s'] / 60:.1f} min.",
        "",
    ]
    if report["relative"]:
        annotate(report["relative"], report.get("bandwidth"))
        table = relative_table(report["relative"], report.get("bandwidth"))
        md += ["## Relative vectors (k = 800, p = 8)", "", table, ""]
        if any(r.get("edits") for r in report["relative"]):
            md += ["## Anchor edits", "", edits_table(report["relative"]), ""]
        plot(report["relative"], out_dir / "scaling.png")
        if args.plot:
            plot(report["relative"], Path(args.plot))
    if report["catalog"]:
        md += [
            "## Catalog search (embedded engine, limit 10)",
            "",
            catalog_table(report["catalog"]),
            "",
        ]
    if report["e2e"]:
        md += ["## End to end (per image)", "", e2e_table(report["e2e"]), ""]
    text = "\n".join(md)
    print(text)
    (out_dir / "results.md").write_text(text + "\n")
    (out_dir / "results.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out_dir / "results.partial.json").unlink(missing_ok=True)
    print(
        f"\nwrote {out_dir / 'results.json'}, {out_dir / 'results.md'}, {out_dir / 'scaling.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
