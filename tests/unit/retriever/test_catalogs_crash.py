"""Crash safety of indexing: ``kill -9`` during ``asif-qdrant index``, then ``index --resume``.

A real ``asif-qdrant index`` process (the CLI, on the embedded Qdrant engine) indexes
precomputed embeddings in committed chunks and logs each acknowledged chunk (``-v``:
``committed rows a..b of n``). The test reads those lines as they come and kills the process
with SIGKILL after a few of them, mid-run. It then checks that every acknowledged item is
stored with exactly the vectors a fresh index gives, runs ``index --resume``, and checks that
the catalog holds each input item once, with the fresh index's vectors.

The 20,000-item run is marked slow; the default run does the same with 3,000 items.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from asif_qdrant import ASIF
from asif_qdrant.cli import main
from asif_qdrant.retriever.writes import write_fingerprint

ROOT = Path(__file__).resolve().parents[3]
ACK = re.compile(r"committed rows (\d+)\.\.(\d+) of (\d+)")


def _model(path: Path) -> None:
    rng = np.random.default_rng(3)
    with ASIF(
        path=path,
        k=16,
        image_encoder="precomputed/image",
        text_encoder="precomputed/text",
        show_progress_bar=False,
    ) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(256, 32)), rng.normal(size=(256, 16)))


def _vectors(asif: ASIF, collection: str) -> dict[int, tuple]:
    return {
        int(r.id): (r.sparse["asif"], r.dense["image"], r.payload.get("row"))
        for r in asif.store.scroll(collection, with_vectors=["asif", "image"])
    }


def _same(a: tuple, b: tuple) -> bool:
    return (
        np.array_equal(a[0].indices, b[0].indices)
        and np.allclose(a[0].values, b[0].values, atol=1e-6)
        and np.allclose(a[1], b[1], atol=1e-6)
    )


def _kill_mid_index(db: Path, emb_file: Path, chunk: int, after_acks: int) -> int:
    """Start ``asif-qdrant index``, SIGKILL it after ``after_acks`` chunks; the last acked row."""
    cmd = [sys.executable, "-m", "asif_qdrant", "-v", "index", "items", "--embeddings"]
    cmd += [str(emb_file), "--modality", "image", "--chunk-size", str(chunk)]
    cmd += ["--path", str(db), "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    acked, last = 0, -1
    deadline = time.monotonic() + 120
    assert proc.stderr is not None
    for line in proc.stderr:
        m = ACK.search(line)
        if m:
            assert int(m.group(1)) == last + 1  # chunks are acknowledged in order
            last, acked = int(m.group(2)), acked + 1
            if acked == after_acks:
                os.kill(proc.pid, signal.SIGKILL)
                break
        assert time.monotonic() < deadline
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the index finished before it could be killed"
    return last


@pytest.mark.parametrize(
    ("n", "chunk"), [(3_000, 250), pytest.param(20_000, 500, marks=pytest.mark.slow)]
)
def test_kill_during_index_then_resume(tmp_path: Path, n: int, chunk: int) -> None:
    db, emb_file = tmp_path / "db", tmp_path / "emb.npy"
    _model(db)
    emb = np.random.default_rng(4).normal(size=(n, 32)).astype(np.float32)
    np.save(emb_file, emb)

    last_acked = _kill_mid_index(db, emb_file, chunk, after_acks=3)
    assert last_acked == 3 * chunk - 1

    with ASIF(path=db, show_progress_bar=False) as asif:
        assert asif.integrity.unfinished_jobs == ("items",)
        partial = _vectors(asif, "items")
        assert last_acked < len(partial) < n  # killed mid-way, nothing lost
        asif.index_embeddings("fresh", emb, "image")  # the reference: one uninterrupted index
        fresh = _vectors(asif, "fresh")
    assert set(range(last_acked + 1)) <= set(partial)  # every acknowledged item is there
    for pid, vec in partial.items():  # ... and every stored one is intact
        assert vec[2] == pid and _same(vec, fresh[pid]), pid

    result = CliRunner().invoke(
        main,
        [
            *("index", "items", "--embeddings", str(emb_file), "--modality", "image"),
            *("--resume", "--chunk-size", str(chunk), "--path", str(db), "--json", "-q"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["resumed"] and done["skipped"] == len(partial)
    assert done["new"] == n - len(partial) and done["indexed"] == n

    with ASIF(path=db, show_progress_bar=False) as asif:
        assert asif.store.count("items") == n
        resumed = _vectors(asif, "items")
        assert sorted(resumed) == list(range(n))  # each item once, under its row's id
        assert sorted(v[2] for v in resumed.values()) == list(range(n))
        assert all(_same(resumed[i], fresh[i]) for i in range(n))
        assert asif.fingerprint.catalogs["items"]["job"]["done"]
        assert asif.fingerprint.catalogs["items"]["next_id"] == n
        assert asif.integrity.unfinished_jobs == ()


def test_resume_refuses_another_input(tmp_path: Path) -> None:
    db = tmp_path / "db"
    _model(db)
    rng = np.random.default_rng(5)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, rng.normal(size=(30, 32)).astype(np.float32))
    np.save(b, rng.normal(size=(30, 32)).astype(np.float32))
    with ASIF(path=db, show_progress_bar=False) as asif:  # an interrupted job on input a
        fp = asif.fingerprint
        asif.resumable_index("items", embeddings=np.load(a), modality="image")
        fp.catalogs["items"]["job"]["done"] = False
        write_fingerprint(asif.state)
    args = ["index", "items", "--modality", "image", "--path", str(db), "--json", "-q"]
    result = CliRunner().invoke(main, [*args, "--embeddings", str(b), "--resume"])
    assert result.exit_code == 1
    err = json.loads(result.stdout)
    assert err["error"] == "InvalidParameterError" and "another input" in err["message"]
    again = json.loads(CliRunner().invoke(main, [*args, "--embeddings", str(a), "--resume"]).stdout)
    assert again["resumed"] and again["skipped"] == 30 and again["new"] == 0
    fresh = json.loads(CliRunner().invoke(main, [*args, "--embeddings", str(b)]).stdout)
    assert fresh["start"] == 30 and fresh["ids"][:2] == [30, 31]  # a new job: new ids


def test_index_cli_input_errors(tmp_path: Path) -> None:
    db = tmp_path / "db"
    _model(db)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not a numpy file")
    texts = tmp_path / "t.txt"
    texts.write_text("a\n")
    base = ["index", "items", "--path", str(db)]
    for extra, fragment in [
        (["--embeddings", str(bad), "--modality", "image"], "cannot read"),
        (["--embeddings", str(bad)], "needs --modality"),
        (["--texts", str(texts), "--modality", "text"], "--modality goes with --embeddings"),
        (["--embeddings", str(bad), "--modality", "image", "--texts", str(texts)], "not both"),
    ]:
        result = CliRunner().invoke(main, base + extra)
        assert result.exit_code == 2 and fragment in result.output, result.output
