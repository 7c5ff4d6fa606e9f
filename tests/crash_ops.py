"""Crash tests' shared parts: a child process that edits a model, and the checks after a kill.

The child (``python -m tests.crash_ops PATH OP [ARG]``) opens the embedded model at PATH and
runs one operation; the parent kills it with SIGKILL, either at a named point (environment
variable ``ASIF_QDRANT_KILL_AT``, :func:`asif_qdrant.retriever.journal.crashpoint`) or after
a random delay. :func:`check_model` then reopens the model and checks what must hold after any
kill: both anchor collections hold the same ids, the fingerprint counts them and hands out ids
above them, no staging copy is left, and every catalog vector equals a fresh re-computation.

Operations (the data are derived from ``ARG``, a seed, so a run is reproducible):

* ``add SEED`` (6 new anchor pairs), ``delete SEED`` / ``purge SEED`` (3 existing pairs),
  ``index SEED[:CATALOG]`` (40 new items, default catalog ``items``), ``export FILE``,
  ``import FILE`` (``--overwrite``), ``hold`` (open the model, print ``ready`` and wait).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant import ASIF
from asif_qdrant.retriever.journal import KILL_ENV
from tests.helpers import precomputed_asif

ROOT = Path(__file__).resolve().parents[1]
DI, DT = 8, 6
STAGING = (".compacting", ".migrating", ".importing", ".swapping")


#: The named kill points every rewrite (``purge``, ``recompute``...) passes, in order; a
#: later pass of the same point is named ``point#N``.
REWRITE_POINTS = (
    "rewrite:marked",
    "rewrite:copying",
    "rewrite:staged",
    "rewrite:dropped",
    "rewrite:restoring",
    "rewrite:staging-dropped",
)


def random_rows(seed: int, n: int, d: int) -> np.ndarray:
    """``n`` Gaussian rows of dim ``d`` from ``seed``."""
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def build(path: Path, *, anchors: int = 40, items: int = 60, k: int = 5) -> None:
    """A closed model: ``anchors`` pairs and a catalog ``items`` of both modalities."""
    with precomputed_asif(path=path, k=k) as asif:
        asif.add_anchor_embeddings(random_rows(1, anchors, DI), random_rows(2, anchors, DT))
        asif.index_embeddings("items", random_rows(3, items // 2, DI), "image")
        asif.index_embeddings("items", random_rows(4, items - items // 2, DT), "text")


def run_op(asif: ASIF, op: str, arg: str) -> None:
    """Run one operation on an open model (what the child does)."""
    from asif_qdrant.transfer import export_model, import_model

    if op == "add":
        seed = int(arg)
        asif.add_anchor_embeddings(random_rows(seed, 6, DI) * 3, random_rows(seed + 1, 6, DT) * 3)
    elif op in ("delete", "purge"):
        ids, _ = asif.anchor_embeddings("image")
        rng = np.random.default_rng(int(arg))
        chosen = rng.choice(ids, size=min(3, len(ids) - 5), replace=False).tolist()
        asif.delete_anchors(chosen, purge=op == "purge")
    elif op == "index":
        seed_text, _, catalog = arg.partition(":")
        seed = int(seed_text)
        modality = "image" if seed % 2 else "text"
        emb = random_rows(seed, 40, DI if modality == "image" else DT)
        asif.index_embeddings(catalog or "items", emb, modality)
    elif op == "export":
        export_model(asif.store, asif.name, arg, show_progress_bar=False)
    elif op == "import":
        import_model(arg, asif.store, overwrite=True, show_progress_bar=False)
    else:
        raise SystemExit(f"unknown operation {op!r}")


def child(path: str, op: str, arg: str = "") -> None:
    """The child process: open, run ``op``, close."""
    if op == "hold":
        with ASIF(path=path, show_progress_bar=False):
            print("ready", flush=True)
            time.sleep(600)
        return
    if op == "import":  # imports write into the store, not through an open model
        from asif_qdrant.store import EdgeStore
        from asif_qdrant.transfer import import_model

        with EdgeStore(path) as store:
            import_model(arg, store, overwrite=True, show_progress_bar=False)
        return
    with ASIF(path=path, show_progress_bar=False) as asif:
        run_op(asif, op, arg)


def spawn(path: Path, op: str, arg: str = "", kill_at: str | None = None) -> subprocess.Popen:
    """Start the child; ``kill_at`` names the point where it kills itself."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop(KILL_ENV, None)
    if kill_at:
        env[KILL_ENV] = kill_at
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_ops", str(path), op, arg],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_killed(path: Path, op: str, arg: str = "", kill_at: str | None = None) -> int:
    """Run the child to its end or its kill; returns its exit code (-9: killed)."""
    proc = spawn(path, op, arg, kill_at)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode in (0, -signal.SIGKILL), (proc.returncode, err[-3000:])
    return int(proc.returncode)


def kill_after(path: Path, op: str, arg: str, delay: float) -> int:
    """Run the child and SIGKILL it after ``delay`` seconds (if still running)."""
    proc = spawn(path, op, arg)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode in (0, -signal.SIGKILL), (proc.returncode, err[-3000:])
    return int(proc.returncode)


def catalog_vectors(asif: ASIF, catalog: str) -> dict[Any, tuple[list[int], np.ndarray]]:
    """Each item's sparse ASIF vector: ``id -> (indices, values)``."""
    out = {}
    for r in asif.store.scroll(catalog, with_vectors=["asif"]):
        v = r.sparse["asif"]
        order = np.argsort(v.indices)
        out[r.id] = (v.indices[order].tolist(), np.asarray(v.values)[order])
    return out


def check_model(path: Path) -> dict[str, Any]:
    """Reopen the model and check every invariant a kill must keep (see the module docstring).

    Returns:
        ``{"anchors": ids, "catalogs": {name: item count}, "integrity": report}``.
    """
    with ASIF(path=path, show_progress_bar=False) as asif:
        report = asif.integrity
        img_ids, _ = asif.anchor_embeddings("image")
        txt_ids, _ = asif.anchor_embeddings("text")
        fp = asif.fingerprint
        assert sorted(img_ids) == sorted(txt_ids), "anchor collections disagree"
        assert len(img_ids) == fp.anchor_count == asif.anchor_count
        assert fp.pending_edit is None and fp.pending_rewrite is None
        assert fp.next_anchor_id > max(img_ids, default=-1)
        left = [c for c in asif.store.list_collections() if any(x in c for x in STAGING)]
        assert not left, f"staging copies left: {left}"
        sizes = {}
        for catalog in fp.catalogs:
            assert asif.store.has_collection(catalog), f"catalog {catalog} lost"
            assert fp.catalogs[catalog]["anchor_version"] == fp.anchor_version
            before = catalog_vectors(asif, catalog)
            asif.reindex(catalog)
            after = catalog_vectors(asif, catalog)
            assert before.keys() == after.keys()
            for pid, (idx, val) in after.items():
                assert before[pid][0] == idx, (catalog, pid)
                np.testing.assert_allclose(before[pid][1], val, rtol=1e-5, atol=1e-6)
            sizes[catalog] = len(after)
        return {"anchors": sorted(img_ids), "catalogs": sizes, "integrity": report}


if __name__ == "__main__":
    child(*sys.argv[1:])
