"""Scale checks of issue 17: one copy of the anchors, indexing speed, a 1M-pair import.

Each measurement runs in its own process (``--json`` out), so that its peak RSS is its own:

``build``
    A model of ``--n`` anchor pairs from a ``.npy`` matrix (both modalities from it: image =
    rows ``0..n``, text = the same rows in reverse order), added in chunks.
``query``
    Opens a model and answers ``--queries`` text queries (precomputed ``(m, d)`` rows, so no
    encoder is loaded) through ``ASIF.relative_from_embeddings``; reports the open, the
    first call (index built, or read from the anchor cache), queries/s and peak RSS against
    the float32 anchor matrix of the modality queried (``n * d * 4`` bytes).
``index``
    ``ASIF.index_embeddings`` of ``--items`` items into a catalog of a model with ``--n``
    anchors, profiled: items/s and the split (relative step, keys, dedup lookup, upsert).
``import``
    A clip-retrieval folder (``img_emb/img_emb_0.npy``, ``text_emb/text_emb_0.npy``,
    ``metadata/metadata_0.parquet``; written under ``--work`` from ``--data`` first when
    missing) added as anchor pairs, ``--chunk`` at a time, with
    :func:`asif_qdrant.embedding_sets.clip_retrieval_chunks`; time and peak RSS.
``all``
    ``build`` (1M), ``query`` (1M), ``index`` (100k anchors) and ``import`` (1M), each in a
    child process; one JSON document.

Usage::

    python -m benchmarks.scale all --work /tmp/scale --data /tmp/proto/a.npy
    python -m benchmarks.scale query --path /tmp/scale/m1m --queries /tmp/proto/q.npy
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant import ASIF

__all__ = ["main"]

PRECOMPUTED = {"image_encoder": "precomputed/image", "text_encoder": "precomputed/text"}


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """This process's resident set size now, MiB (anonymous and file-backed pages)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def build(path: str, data: str, n: int, chunk: int, anchor_search: str) -> dict[str, Any]:
    """A model of ``n`` anchor pairs from the rows of ``data`` (see the module docstring)."""
    a = np.load(data, mmap_mode="r")
    t0 = time.perf_counter()
    la = load_avg()
    with ASIF(path, **PRECOMPUTED, show_progress_bar=True, anchor_search=anchor_search) as asif:
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            img = np.array(a[s:e])
            txt = np.array(a[n - e : n - s][::-1])
            asif.add_anchor_embeddings(img, txt, on_duplicate="add")
        count = asif.anchor_count
    return {
        "step": "build",
        "n": n,
        "anchors": count,
        "seconds": round(time.perf_counter() - t0, 1),
        "pairs_per_s": round(n / (time.perf_counter() - t0), 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "load_avg": [la, load_avg()],
    }


def query(path: str, queries: str, anchor_search: str, batches: int) -> dict[str, Any]:
    """Open a model and answer text queries; RSS against the text anchor matrix."""
    la = load_avg()
    q = np.array(np.load(queries, mmap_mode="r")[:64])
    t0 = time.perf_counter()
    asif = ASIF(path, **PRECOMPUTED, show_progress_bar=False, anchor_search=anchor_search)
    opened = time.perf_counter() - t0
    rss_open = rss_mib()
    t = time.perf_counter()
    asif.relative_from_embeddings(q[:1], "text")
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(batches):
        asif.relative_from_embeddings(q, "text")
    per_s = batches * len(q) / (time.perf_counter() - t)
    t = time.perf_counter()
    for row in q[:16]:
        asif.relative_from_embeddings(row[None, :], "text")
    per_s1 = 16 / (time.perf_counter() - t)
    n, d = asif.anchor_count, asif.fingerprint.text_dim or 0
    index = asif.state.anchor_indexes.get("text")
    matrix = n * d * 4 / 2**20
    out = {
        "step": "query",
        "anchor_search": anchor_search,
        "anchors": n,
        "dim": d,
        "index": repr(index[1]) if index else None,
        "open_s": round(opened, 2),
        "first_call_s": round(first, 2),
        "q_per_s_batch64": round(per_s, 1),
        "q_per_s_batch1": round(per_s1, 1),
        "rss_after_open_mib": round(rss_open, 1),
        "rss_end_mib": round(rss_mib(), 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "text_anchor_matrix_mib": round(matrix, 3),
        "peak_over_matrix": round(peak_rss_mib() / matrix, 3) if matrix else None,
        "load_avg": [la, load_avg()],
    }
    asif.close()
    return out


SPLIT = {
    "relative": "anchors.py:.*\\(relative\\)",
    "upsert": "writes.py:.*\\(upsert\\)",
    "check_records": "writes.py:.*\\(check_records\\)",
    "keys": "ingest.py:.*\\(embedding_keys\\)",
    "portable_payloads": "keys.py:.*\\(portable_payload_and_key\\)",
    "dedup_lookup": "ingest.py:.*\\(plan_items\\)",
    "check_embeddings": "state.py:.*\\(check_embeddings\\)",
    "kth_vectors": "\\(kth_vectors\\)",
}


def index(path: str, data: str, n: int, items: int, anchor_search: str) -> dict[str, Any]:
    """``index_embeddings`` of ``items`` rows into a catalog of a model with ``n`` anchors."""
    a = np.load(data, mmap_mode="r")
    if not Path(path).exists():
        build(path, data, n, 100_000, anchor_search)
    emb = np.array(a[n : n + items])
    la = load_avg()
    with ASIF(path, **PRECOMPUTED, show_progress_bar=False, anchor_search=anchor_search) as asif:
        asif.relative_from_embeddings(emb[:1], "image")  # the index, built once per process
        name = f"items_{int(time.time())}"
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        asif.index_embeddings(name, emb, "image")
        prof.disable()
        total = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    split = {}
    for label, pattern in SPLIT.items():
        import re

        rx = re.compile(pattern)
        split[label] = round(
            sum(v[3] for k, v in stats.stats.items() if rx.search(f"{k[0]}:{k[1]}({k[2]})")), 3
        )
    return {
        "step": "index",
        "anchors": n,
        "items": items,
        "seconds": round(total, 2),
        "items_per_s": round(items / total, 1),
        "split_s": split,
        "load_avg": [la, load_avg()],
    }


def write_clip_retrieval(folder: Path, data: str, n: int) -> None:
    """A clip-retrieval folder of ``n`` pairs from ``data`` (text rows: reversed order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    a = np.load(data, mmap_mode="r")
    for sub in ("img_emb", "text_emb", "metadata"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    shape = (n, a.shape[1])
    img = np.lib.format.open_memmap(folder / "img_emb/img_emb_0.npy", "w+", np.float32, shape)
    txt = np.lib.format.open_memmap(folder / "text_emb/text_emb_0.npy", "w+", np.float32, shape)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        img[s:e] = a[s:e]
        txt[s:e] = a[n - e : n - s][::-1]
    img.flush()
    txt.flush()
    table = pa.table(
        {
            "caption": [f"synthetic caption {i}" for i in range(n)],
            "url": [f"https://example.org/{i}.jpg" for i in range(n)],
        }
    )
    pq.write_table(table, folder / "metadata/metadata_0.parquet")


def import_clip_retrieval(path: str, work: str, data: str, n: int, chunk: int) -> dict[str, Any]:
    """Add a clip-retrieval folder of ``n`` pairs (written first when missing) as anchors."""
    from asif_qdrant.embedding_sets import clip_retrieval_chunks, clip_retrieval_count
    from asif_qdrant.progress import progress_bar

    folder = Path(work) / f"clip_retrieval_{n}"
    if not (folder / "metadata/metadata_0.parquet").exists():
        write_clip_retrieval(folder, data, n)
    la = load_avg()
    t0 = time.perf_counter()
    total = clip_retrieval_count(folder)
    with (
        ASIF(path, **PRECOMPUTED, show_progress_bar=False) as asif,
        progress_bar(total=total, desc="Adding anchor pairs", unit="pair", show=True) as bar,
    ):
        for img, txt, payloads in clip_retrieval_chunks(folder, chunk_size=chunk):
            asif.add_anchor_embeddings(img, txt, payloads=payloads, on_duplicate="add")
            bar.update(len(img))
        count = asif.anchor_count
    seconds = time.perf_counter() - t0
    return {
        "step": "import",
        "pairs": total,
        "anchors": count,
        "chunk": chunk,
        "seconds": round(seconds, 1),
        "pairs_per_s": round(total / seconds, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "load_avg": [la, load_avg()],
    }


def _child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    ap.add_argument("step", choices=("build", "query", "index", "import", "all"))
    ap.add_argument("--path", help="the model folder (build, query, index)")
    ap.add_argument("--work", default="/tmp/scale", help="folder for 'all'")
    ap.add_argument("--data", default="/tmp/proto/a.npy", help="(N, d) float32 .npy rows")
    ap.add_argument("--queries", default="/tmp/proto/q.npy", help="(m, d) float32 queries")
    ap.add_argument("--n", type=int, default=1_000_000, help="anchor pairs")
    ap.add_argument("--items", type=int, default=20_000, help="items indexed (index)")
    ap.add_argument("--chunk", type=int, default=100_000, help="pairs per add (build)")
    ap.add_argument("--batches", type=int, default=3, help="batches of 64 queries (query)")
    ap.add_argument("--anchor-search", default="auto")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)
    if a.step == "build":
        res: Any = build(a.path, a.data, a.n, a.chunk, a.anchor_search)
    elif a.step == "query":
        res = query(a.path, a.queries, a.anchor_search, a.batches)
    elif a.step == "index":
        res = index(a.path, a.data, a.n, a.items, a.anchor_search)
    elif a.step == "import":
        res = import_clip_retrieval(a.path, a.work, a.data, a.n, a.chunk)
    else:
        work = Path(a.work)
        m1 = str(work / "m1m")
        res = [
            _child(["build", "--path", m1, "--data", a.data, "--n", str(a.n)]),
            _child(["query", "--path", m1, "--queries", a.queries]),
            _child(["query", "--path", m1, "--queries", a.queries]),
            _child(["index", "--path", str(work / "m100k"), "--data", a.data, "--n", "100000"]),
            _child(
                [
                    "import",
                    "--path",
                    str(work / "imported"),
                    "--work",
                    str(work),
                    "--n",
                    str(a.n),
                    "--chunk",
                    "65536",
                    "--data",
                    a.data,
                ]
            ),
        ]
    text = json.dumps(res)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))
    print(text)


if __name__ == "__main__":
    main()
