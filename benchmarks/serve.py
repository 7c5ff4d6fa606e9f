"""Serve benchmark: ``asif-qdrant serve`` over HTTP against ``ASIF.search`` in-process.

The model: the offline encoders (EfficientNet-Lite0 + all-MiniLM-L6-v2), the demo's split of
the Tux Paint stamps (half of the 785 captioned stamps as anchor pairs, k=800, p=8), and a
catalog of ``--items`` images (default 10,000): the held-out stamps' own embeddings, then
copies of them jittered by Gaussian noise (sigma 0.02 per dimension, re-normalised), each
item showing its stamp's picture. It is built once in a temporary folder (about a minute:
encoding the stamps), then timed:

* **cold CLI**: ``python -m asif_qdrant search stamps QUERY`` in a new process (imports,
  encoder load, one query), the path a user pays without the service;
* **text query, warm**: ``--queries`` held-out captions, one at a time, over HTTP
  (``POST /api/catalogs/stamps/search``, limit 10) and in-process (``ASIF.search``): p50, p99;
* **image query**: a 256 x 256 PNG upload (``POST .../search/image``), one at a time;
* **throughput**: 8 clients (threads, one keep-alive connection each) sending text queries
  for ``--seconds`` (default 30): requests per second, and errors (must be 0).

The server is uvicorn in a thread of the same process (``serve_in_thread``), so client and
server share the CPU, as on one 2-core machine. Run it::

    python -m benchmarks.serve                     # 10k items, 30 s of throughput
    python -m benchmarks.serve --items 2000 --seconds 10 --json
    python -m benchmarks.serve --keep /tmp/bench-model   # keep the model (name "bench")

Results go to ``benchmarks/results_serve.json`` (with the machine's load average: other
processes slow every number).

Example:
    >>> percentiles([1.0, 2.0, 3.0, 4.0])
    {'p50': 2.5, 'p99': 3.97}
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_model", "percentiles", "report", "run"]

RESULTS = Path(__file__).parent / "results_serve.json"


def percentiles(ms: list[float]) -> dict[str, float]:
    """p50 and p99 of latencies (ms), rounded to 0.01."""
    a = np.asarray(ms, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
    }


def build_model(folder: Path, items: int, seed: int = 0) -> list[str]:
    """Build the benchmark's model in ``folder`` (name ``bench``); the held-out captions."""
    from asif_qdrant import ASIF
    from asif_qdrant.loaders import load_tuxpaint_stamps, split_pairs

    anchors, held = split_pairs(load_tuxpaint_stamps(), test_fraction=0.5, seed=seed)
    with ASIF(path=folder, name="bench", device="cpu", show_progress_bar=False) as asif:
        asif.add_anchors(
            [Path(p.image) for p in anchors], [p.caption for p in anchors], source="tuxpaint"
        )
        emb = asif.encode([Path(p.image) for p in held], "image")
        rng = np.random.default_rng(seed)
        rows = np.arange(items) % len(held)
        jitter = emb[rows] + np.where(
            (np.arange(items) >= len(held))[:, None],
            0.02 * rng.normal(size=(items, emb.shape[1])),
            0,
        )
        jitter /= np.linalg.norm(jitter, axis=1, keepdims=True)
        payloads = [{"caption": held[r].caption, "image": held[r].image} for r in rows]
        asif.index_embeddings("stamps", jitter.astype(np.float32), "image", payloads=payloads)
    return [p.caption for p in held]


def _cold_cli(folder: Path, query: str) -> float:
    cmd = [sys.executable, "-m", "asif_qdrant", "search", "stamps", query, "--path", str(folder)]
    cmd += ["--name", "bench", "--json", "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def _png_256(path: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(path) as im:
        im.convert("RGB").resize((256, 256)).save(buf, format="PNG")
    return buf.getvalue()


def _throughput(url: str, queries: list[str], seconds: float, clients: int) -> dict[str, Any]:
    import httpx

    done, errors = [0] * clients, [0] * clients
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            j = i
            while time.perf_counter() < stop:
                r = c.post("/api/catalogs/stamps/search", json={"query": queries[j % len(queries)]})
                done[i] += r.status_code == 200
                errors[i] += r.status_code != 200
                j += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - start
    return {
        "clients": clients,
        "seconds": round(took, 1),
        "requests": sum(done),
        "errors": sum(errors),
        "requests_per_second": round(sum(done) / took, 1),
    }


def run(
    items: int = 10_000, queries: int = 200, seconds: float = 30.0, keep: Path | None = None
) -> dict[str, Any]:
    """Build the model, time every path, return the results (see the module docstring).

    ``keep``: build the model in this folder (it must not exist) and keep it.
    """
    import httpx

    from asif_qdrant import ASIF
    from asif_qdrant.service import create_app, serve_in_thread

    out: dict[str, Any] = {"items": items, "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep if keep is not None else Path(tmp) / "model"
        start = time.perf_counter()
        captions = build_model(folder, items)
        out["build_seconds"] = round(time.perf_counter() - start, 1)
        out["cold_cli_seconds"] = round(_cold_cli(folder, captions[0]), 2)
        qs = [captions[i % len(captions)] for i in range(queries)]
        with ASIF(path=folder, name="bench", device="cpu", show_progress_bar=False) as asif:
            app = create_app(asif)
            with serve_in_thread(app, wait_ready=300) as url, httpx.Client(base_url=url) as c:
                out["ready_seconds"] = app.state.service.load_seconds
                for q in qs[:10]:  # warm both paths
                    asif.search("stamps", q)
                    c.post("/api/catalogs/stamps/search", json={"query": q})
                http, local = [], []
                for q in qs:
                    t = time.perf_counter()
                    r = c.post("/api/catalogs/stamps/search", json={"query": q})
                    http.append(1000 * (time.perf_counter() - t))
                    assert r.status_code == 200, r.text
                    t = time.perf_counter()
                    asif.search("stamps", q)
                    local.append(1000 * (time.perf_counter() - t))
                out["text_http_ms"] = percentiles(http)
                out["text_in_process_ms"] = percentiles(local)
                from asif_qdrant.loaders import load_tuxpaint_stamps

                pngs = [_png_256(p.image) for p in load_tuxpaint_stamps()[:50]]
                image = []
                for png in pngs:
                    t = time.perf_counter()
                    r = c.post("/api/catalogs/stamps/search/image", files={"image": ("q.png", png)})
                    image.append(1000 * (time.perf_counter() - t))
                    assert r.status_code == 200, r.text
                out["image_http_ms"] = percentiles(image)
                out["throughput"] = _throughput(url, qs, seconds, clients=8)
    out["load_average_after"] = os.getloadavg()
    out["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    return out


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000, help="catalog items")
    parser.add_argument("--queries", type=int, default=200, help="warm text queries timed")
    parser.add_argument("--seconds", type=float, default=30.0, help="throughput run length")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--keep", type=Path, help="build the model here and keep it (name bench)")
    args = parser.parse_args()
    result = run(args.items, args.queries, args.seconds, args.keep)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(report(result))


def report(r: dict[str, Any]) -> str:
    """The results as lines of text."""
    t = r["throughput"]

    def pct(key: str) -> str:
        return f"p50 {r[key]['p50']} ms, p99 {r[key]['p99']} ms"

    return "\n".join(
        [
            f"catalog: {r['items']} items (built in {r['build_seconds']} s); load average "
            f"{r['load_average_before'][0]:.1f} before, {r['load_average_after'][0]:.1f} after",
            f"cold CLI search:        {r['cold_cli_seconds']} s",
            f"text query, HTTP:       {pct('text_http_ms')}",
            f"text query, in-process: {pct('text_in_process_ms')}",
            f"image query (256 px):   {pct('image_http_ms')}",
            f"throughput, {t['clients']} clients: {t['requests_per_second']} req/s over "
            f"{t['seconds']} s, {t['errors']} errors",
        ]
    )


if __name__ == "__main__":
    main()
