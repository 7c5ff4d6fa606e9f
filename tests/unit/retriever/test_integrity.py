"""Paired collections stay paired: a real SIGKILL in the middle of an anchor edit, then reopen.

Each case starts a child process that opens a real model (embedded Qdrant engine), starts an
anchor edit and kills itself with SIGKILL at one point between the edit's writes (the child
wraps the store's ``upsert`` / ``delete`` so that the kill lands right after a chosen write:
a real kill of the process, the writes before it are real). The parent then reopens the
model and checks that it was repaired as docs/RELIABILITY.md says: the two anchor
collections hold the same ids, the fingerprint counts them, and every catalog vector equals a
full re-index.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asif_qdrant import ASIF
from asif_qdrant.retriever.integrity import IntegrityReport, check_integrity, exclusive_store
from asif_qdrant.retriever.writes import write_fingerprint
from asif_qdrant.store import Record
from tests.helpers import precomputed_asif

ROOT = Path(__file__).resolve().parents[3]
DI, DT = 8, 6
N_ANCHORS, N_ITEMS = 40, 60

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import asif_qdrant.retriever.recompute as recompute
    from asif_qdrant import ASIF

    path, point = sys.argv[1], sys.argv[2]
    asif = ASIF(path=path, show_progress_bar=False)
    store = asif.store
    upsert, delete, recompute_ids = store.upsert, store.delete, recompute.recompute_ids

    def kill():
        os.kill(os.getpid(), signal.SIGKILL)

    def killing_upsert(name, records):
        upsert(name, records)
        marker = asif.fingerprint.pending_edit
        if point.endswith(":after-marker") and name == asif.layout.meta and marker:
            kill()
        if point == "add:after-image" and name == asif.layout.image_anchors:
            kill()
        if point == "add:after-text" and name == asif.layout.text_anchors:
            kill()

    def killing_delete(name, ids):
        delete(name, ids)
        if point == "delete:after-image" and name == asif.layout.image_anchors:
            kill()

    def killing_recompute(*args, **kwargs):
        recompute_ids(*args, **kwargs)
        if point.endswith(":during-catalogs"):
            kill()

    store.upsert, store.delete = killing_upsert, killing_delete
    recompute.recompute_ids = killing_recompute
    if point.startswith("add:"):
        asif.add_anchor_embeddings(np.load(sys.argv[3]), np.load(sys.argv[4]))
    else:
        asif.delete_anchors([int(x) for x in sys.argv[3].split(",")])
    print("the edit returned: the kill point was never reached", flush=True)
    """
)


def _random(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return rng.normal(size=(n, d)).astype(np.float32)


@pytest.fixture
def built(tmp_path: Path) -> dict[str, Any]:
    """A closed model: 40 anchor pairs, a catalog of 60 items (both modalities)."""
    rng = np.random.default_rng(7)
    path = tmp_path / "db"
    with precomputed_asif(path=path, k=5) as asif:
        asif.add_anchor_embeddings(_random(rng, N_ANCHORS, DI), _random(rng, N_ANCHORS, DT))
        asif.index_embeddings("items", _random(rng, N_ITEMS // 2, DI), "image")
        asif.index_embeddings("items", _random(rng, N_ITEMS // 2, DT), "text")
        version = asif.fingerprint.anchor_version
    new_img, new_txt = tmp_path / "img.npy", tmp_path / "txt.npy"
    # New anchors close to many items, so that adding them changes catalog vectors.
    np.save(new_img, _random(rng, 6, DI) * 3)
    np.save(new_txt, _random(rng, 6, DT) * 3)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return {"path": path, "img": new_img, "txt": new_txt, "script": script, "version": version}


def _kill_during(built: dict[str, Any], point: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(built["script"]), str(built["path"]), point, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)


def _catalog(asif: ASIF) -> dict[Any, tuple[list[int], list[float]]]:
    return {
        r.id: (r.sparse["asif"].indices.tolist(), np.round(r.sparse["asif"].values, 5).tolist())
        for r in asif.store.scroll("items", with_vectors=["asif"])
    }


def _check_consistent(asif: ASIF) -> None:
    """Paired, counted, no marker, and the catalog equals a full re-index."""
    img_ids, _ = asif.anchor_embeddings("image")
    txt_ids, _ = asif.anchor_embeddings("text")
    assert img_ids == txt_ids
    assert len(img_ids) == asif.anchor_count
    assert asif.fingerprint.pending_edit is None
    assert asif.fingerprint.next_anchor_id > max(img_ids)
    assert asif.fingerprint.catalogs["items"]["anchor_version"] == asif.fingerprint.anchor_version
    before = _catalog(asif)
    asif.reindex("items")
    assert _catalog(asif) == before


def _reopen(built: dict[str, Any], caplog: pytest.LogCaptureFixture) -> ASIF:
    with caplog.at_level(logging.WARNING, logger="asif_qdrant.retriever.integrity"):
        return ASIF(path=built["path"], show_progress_bar=False)


@pytest.mark.parametrize(
    ("point", "outcome"),
    [
        ("add:after-marker", "cleared"),
        ("add:after-image", "rolled back"),
        ("add:after-text", "adopted"),
        ("add:during-catalogs", "re-computed"),
    ],
)
def test_killed_add_is_repaired_on_open(
    built: dict[str, Any], point: str, outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    _kill_during(built, point, str(built["img"]), str(built["txt"]))
    asif = _reopen(built, caplog)
    try:
        report = asif.integrity
        assert report.applied and not report.ok and report.repaired
        assert outcome in caplog.text and outcome in report.summary()
        ids, emb = asif.anchor_embeddings("image")
        if outcome in ("cleared", "rolled back"):  # the store is as before the call
            assert ids == list(range(N_ANCHORS))
            assert asif.fingerprint.anchor_version == built["version"]
            assert report.rolled_back == (() if outcome == "cleared" else tuple(range(40, 46)))
        else:  # the edit is complete: the 6 pairs are there, with their exact vectors
            assert ids == list(range(N_ANCHORS + 6))
            new = np.load(built["img"])
            new /= np.linalg.norm(new, axis=1, keepdims=True)
            np.testing.assert_allclose(emb[N_ANCHORS:], new, atol=1e-6)
            assert asif.fingerprint.anchor_version > built["version"]
            if outcome == "adopted":
                assert report.adopted == tuple(range(40, 46))
                assert report.interrupted == "add"
            else:
                assert report.recomputed_catalogs == ("items",)
                assert report.interrupted is None  # the marker was cleared before the kill
        _check_consistent(asif)
    finally:
        asif.close()
    with ASIF(path=built["path"]) as again:  # a repair is done once
        assert again.integrity.ok and again.integrity.checked == "counts"


@pytest.mark.parametrize("point", ["delete:after-marker", "delete:after-image"])
def test_killed_delete_is_completed_on_open(
    built: dict[str, Any], point: str, caplog: pytest.LogCaptureFixture
) -> None:
    _kill_during(built, point, "3,7,11")
    asif = _reopen(built, caplog)
    try:
        assert asif.integrity.completed_deletes == (3, 7, 11)
        assert "completed an interrupted delete" in caplog.text
        ids, _ = asif.anchor_embeddings("text")
        assert ids == [i for i in range(N_ANCHORS) if i not in (3, 7, 11)]
        _check_consistent(asif)
        stored = {int(i) for vec in asif.store.scroll("items", with_vectors=["asif"])
                  for i in vec.sparse["asif"].indices}  # fmt: skip
        assert not stored & {3, 7, 11}
    finally:
        asif.close()


def test_store_without_marker_is_checked_by_ids(built: dict[str, Any]) -> None:
    """A store broken outside the library (or by an older version): counts disagree.

    Ids in one anchor collection only, with no marker to explain them, are damage: the open
    refuses (ModelDamagedError) and deletes nothing; ``repair --drop-unpaired`` deletes them.
    """
    from asif_qdrant.errors import ModelDamagedError
    from asif_qdrant.retriever.integrity import repair_model

    with ASIF(path=built["path"]) as asif:
        store, unit = asif.store, np.ones(DI, np.float32) / DI**0.5
        store.upsert(asif.layout.image_anchors, [Record(50, {}, dense={"image": unit})])
        store.delete(asif.layout.text_anchors, [5])
        for coll, vn, d in ((asif.layout.image_anchors, "image", DI),
                            (asif.layout.text_anchors, "text", DT)):  # fmt: skip
            store.upsert(coll, [Record(60, {}, dense={vn: np.ones(d, np.float32) / d**0.5})])
    with pytest.raises(ModelDamagedError, match=r"image-only \[5, 50\]"):
        ASIF(path=built["path"])
    from asif_qdrant.store import EdgeStore

    with EdgeStore(built["path"]) as store:
        assert store.count("asif_image_anchors") == N_ANCHORS + 2  # nothing deleted
        report = repair_model(store, "asif", check_only=True)
        assert report.damage and not report.applied
        report = repair_model(store, "asif", drop_unpaired=True)
    assert report.checked == "ids" and report.interrupted is None
    assert report.rolled_back == (50,)  # beyond next_anchor_id, one side only
    assert report.completed_deletes == (5,)  # a known id gone from one side
    assert report.adopted == (60,)  # in both, unknown to the fingerprint
    assert not report.recounted
    with ASIF(path=built["path"]) as asif:
        _check_consistent(asif)
        assert 5 not in asif.anchor_embeddings("image")[0]


def test_anchors_deleted_outside_are_recounted(built: dict[str, Any]) -> None:
    with ASIF(path=built["path"]) as asif:
        for coll in (asif.layout.image_anchors, asif.layout.text_anchors):
            asif.store.delete(coll, [0, 1])
    with ASIF(path=built["path"]) as asif:
        assert asif.integrity.recounted
        assert asif.integrity.recomputed_catalogs == ("items",)
        assert asif.anchor_count == N_ANCHORS - 2
        _check_consistent(asif)


def test_report_only_when_not_applied(built: dict[str, Any], caplog) -> None:
    """``repair=False`` (what a shared server store gets on open) reports and changes nothing."""
    with ASIF(path=built["path"]) as asif:
        fp = asif.fingerprint
        fp.pending_edit = {"operation": "add", "ids": [fp.next_anchor_id, fp.next_anchor_id + 1]}
        write_fingerprint(asif.state)
        unit = np.ones(DI, np.float32) / DI**0.5
        asif.store.upsert(asif.layout.image_anchors, [Record(40, {}, dense={"image": unit})])
        with caplog.at_level(logging.WARNING, logger="asif_qdrant.retriever.integrity"):
            report = check_integrity(asif.state, repair=False)
        assert not report.applied and not report.repaired and report.rolled_back == (40,)
        assert "to roll back" in report.summary() and "needs a repair" in caplog.text
        assert asif.store.count(asif.layout.image_anchors) == N_ANCHORS + 1
        assert check_integrity(asif.state, repair=True).rolled_back == (40,)
        assert asif.store.count(asif.layout.image_anchors) == N_ANCHORS
        assert check_integrity(asif.state).ok


def test_consistent_store_costs_two_counts(built: dict[str, Any]) -> None:
    with ASIF(path=built["path"]) as asif:
        assert asif.integrity == IntegrityReport()
        assert asif.integrity.summary() == ""
        assert exclusive_store(asif.store)


def test_server_store_is_not_exclusive() -> None:
    from qdrant_client import QdrantClient

    from asif_qdrant.store import ClientStore

    local = ClientStore(QdrantClient(":memory:"))
    remote = ClientStore(QdrantClient(url="http://127.0.0.1:9", check_compatibility=False))
    assert exclusive_store(local) and not exclusive_store(remote)


def test_old_fingerprint_without_marker_field_loads(built: dict[str, Any]) -> None:
    from asif_qdrant.retriever.fingerprint import Fingerprint

    with ASIF(path=built["path"]) as asif:
        payload = asif.fingerprint.as_payload()
    del payload["pending_edit"]
    assert Fingerprint.from_payload(payload).pending_edit is None


def test_check_integrity_method_and_repair_command(tmp_path: Path) -> None:
    """A pair broken after the model opened (by hand, outside the library) is reported by
    ``check_integrity(repair=False)`` and ``asif-qdrant repair --check-only``, and repaired by
    ``check_integrity()`` / ``asif-qdrant repair``."""
    import json

    from click.testing import CliRunner

    from asif_qdrant.cli import main

    rng = np.random.default_rng(0)
    path = tmp_path / "m"
    with precomputed_asif(path=path, k=3) as asif:
        asif.add_anchor_embeddings(rng.random((6, 4)), rng.random((6, 3)))
        asif.store.delete(asif.layout.text_anchors, [2])  # half a pair left behind
        found = asif.check_integrity(repair=False)
        assert not found.ok and not found.applied
        assert asif.store.count(asif.layout.image_anchors) == 6  # nothing changed
        fixed = asif.check_integrity(drop_unpaired=True)
        assert fixed.applied and fixed.repaired
        image_ids = {r.id for r in asif.store.scroll(asif.layout.image_anchors)}
        text_ids = {r.id for r in asif.store.scroll(asif.layout.text_anchors)}
        assert image_ids == text_ids and asif.anchor_count == len(image_ids)
        assert asif.check_integrity().ok
        # Break it again for the command line.
        asif.store.delete(asif.layout.image_anchors, [4])
    # Half a pair with no marker is damage: reported, refused, deleted only when asked.
    out = CliRunner().invoke(main, ["repair", "--check-only", "--path", str(path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["damage"] and "text-only [4]" in out.stdout
    out = CliRunner().invoke(main, ["repair", "--path", str(path), "-q"])
    assert out.exit_code != 0 and "--drop-unpaired" in out.output
    args = ["repair", "--drop-unpaired", "--path", str(path), "--json", "-q"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["completed_deletes"] == [4]
    out = CliRunner().invoke(main, ["repair", "--check-only", "--path", str(path), "-q"])
    assert out.exit_code == 0 and "consistent" in out.output
