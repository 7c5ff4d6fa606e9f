"""Anchor edits keep every catalog vector equal to a full re-index, touching only affected items.

The reference is plain numpy over the stored unit embeddings: the k most similar anchors
(ties broken by the lower id), weights clamped at 0, raised to p, normalised. An item is
*affected* by an add when a new anchor's similarity reaches its boundary (the k-th
similarity clamped at 0, or 0 while fewer than k anchors exist) minus EDIT_TOLERANCE, and by
a delete when its vector gives a deleted anchor a positive weight
(asif_qdrant/retriever/recompute.py).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asif_qdrant import ASIF
from asif_qdrant.relative import l2_normalize, relative_weights
from asif_qdrant.retriever.layout import kth_name
from asif_qdrant.retriever.recompute import EDIT_TOLERANCE, PRUNE_TIE
from tests.conftest import make_store
from tests.helpers import precomputed_asif

K, P = 4, 8.0
DIMS = {"image": 6, "text": 5}
CATALOG = "items"


@dataclass
class Model:
    """An ASIF model with precomputed embeddings, and the raw anchor embeddings it was fed."""

    asif: ASIF
    raw: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def add(self, img: np.ndarray, txt: np.ndarray) -> list[int]:
        # "add": the duplicate steps add exact copies on purpose (ties), not skipped.
        ids = self.asif.add_anchor_embeddings(img, txt, on_duplicate="add")
        for i, a, b in zip(ids, img, txt, strict=True):
            self.raw[i] = (a, b)
        return ids

    def delete(self, ids: list[int]) -> None:
        self.asif.delete_anchors(ids)
        for i in ids:
            self.raw.pop(i, None)


def reference(
    unit: np.ndarray, ids: np.ndarray, anchors: np.ndarray, k: int = K
) -> tuple[dict, float]:
    """Numpy re-index of one item: ``({anchor id: weight}, boundary)``."""
    sims = anchors.astype(np.float64) @ unit.astype(np.float64)
    order = np.lexsort((ids, -sims))[:k]
    kept = sims[order]
    w = relative_weights(kept, P)
    vec = {int(ids[o]): float(x) for o, x in zip(order, w, strict=True) if x > 0}
    boundary = max(float(kept[-1]), 0.0) if len(order) == k else 0.0
    return vec, boundary


def stored_items(asif: ASIF) -> list:
    return list(asif.store.scroll(CATALOG, with_vectors=True))


def anchors_of(asif: ASIF, modality: str) -> tuple[np.ndarray, np.ndarray]:
    ids, emb = asif.anchor_embeddings(modality)  # type: ignore[arg-type]
    return np.asarray(ids, np.int64), emb


def modality_of(rec) -> str:
    return "image" if "image" in rec.dense else "text"


def expected_affected_by_add(asif: ASIF, new: dict[str, np.ndarray]) -> set:
    """Items whose boundary (before the add) a new anchor reaches, in numpy."""
    out = set()
    for rec in stored_items(asif):
        m = modality_of(rec)
        ids, emb = anchors_of(asif, m)
        _, boundary = reference(rec.dense[m], ids, emb)
        sims = l2_normalize(new[m]).astype(np.float64) @ rec.dense[m].astype(np.float64)
        if sims.max() >= boundary - EDIT_TOLERANCE:
            out.add(rec.id)
    return out


def expected_affected_by_delete(asif: ASIF, deleted: list[int]) -> set:
    """Items whose re-indexed vector (before the delete) weighs a deleted anchor, in numpy."""
    out = set()
    for rec in stored_items(asif):
        m = modality_of(rec)
        ids, emb = anchors_of(asif, m)
        vec, _ = reference(rec.dense[m], ids, emb)
        if set(vec) & set(deleted):
            out.add(rec.id)
    return out


def top_weights(vec: dict, nnz: int | None) -> dict:
    """A vector's ``nnz`` largest weights, as ``catalog_nnz`` stores it.

    Ties: weights within ``PRUNE_TIE`` (relative) of the cut are equal anchors' weights that
    float32 rounding moved apart; among them the lower id is kept.
    """
    if nnz is None or len(vec) <= nnz:
        return vec
    cut = sorted(vec.values(), reverse=True)[nnz - 1]
    near = {a for a, w in vec.items() if abs(w - cut) <= PRUNE_TIE * cut}
    above = sorted((a for a, w in vec.items() if w > cut and a not in near), key=vec.get)
    keep = [*above, *sorted(near)][:nnz]
    return {a: vec[a] for a in keep}


def check_catalog_equals_full_reindex(asif: ASIF) -> None:
    """Every stored vector equals numpy's re-index and the engine's own re-index.

    Under ``catalog_nnz``, both pruned to the same largest weights.
    """
    nnz = asif.fingerprint.catalog_nnz
    live = {a["id"] for a in asif.list_anchors()}
    records = stored_items(asif)
    for m in ("image", "text"):
        group = [r for r in records if modality_of(r) == m]
        if not group:
            continue
        ids, emb = anchors_of(asif, m)
        engine = asif.relative_from_embeddings(np.stack([r.dense[m] for r in group]), m)
        for rec, fresh in zip(group, engine, strict=True):
            got = rec.sparse["asif"].to_dict_weights()
            want, boundary = reference(rec.dense[m], ids, emb)
            assert set(got) <= live, "a deleted anchor is still a dimension of a stored vector"
            for other in (top_weights(want, nnz), top_weights(fresh.to_dict_weights(), nnz)):
                keys = set(got) | set(other)
                diff = max((abs(got.get(x, 0.0) - other.get(x, 0.0)) for x in keys), default=0)
                assert diff < 1e-5, (rec.id, got, other)
            stored_boundary = -float(rec.dense[kth_name(m)][-1])
            assert abs(stored_boundary - boundary) < 1e-5, (rec.id, stored_boundary, boundary)
            np.testing.assert_array_equal(rec.dense[kth_name(m)][:-1], rec.dense[m])


def build(store, seed: int, nnz: int | None = None) -> Model:
    rng = np.random.default_rng(seed)
    asif = precomputed_asif(store=store, k=K, p=P, catalog_nnz=nnz)
    model = Model(asif)
    model.add(rng.normal(size=(7, DIMS["image"])), rng.normal(size=(7, DIMS["text"])))
    asif.index_embeddings(CATALOG, rng.normal(size=(12, DIMS["image"])), "image")
    asif.index_embeddings(CATALOG, rng.normal(size=(6, DIMS["text"])), "text")
    return model


def run_edits(model: Model, data: st.DataObject, steps: int) -> None:
    asif = model.asif
    check_catalog_equals_full_reindex(asif)
    for _ in range(steps):
        live = sorted(model.raw)
        kind = data.draw(st.sampled_from(["add", "add-duplicates", "delete"]), label="kind")
        if kind == "delete" and len(live) > 1:
            chosen = data.draw(
                st.lists(st.sampled_from(live), min_size=1, max_size=min(4, len(live) - 1)),
                label="delete",
            )
            deleted = sorted(set(chosen))
            expected = expected_affected_by_delete(asif, deleted)
            if asif.fingerprint.catalog_nnz is not None:
                # Pruned vectors: the deleted anchors probe the boundaries, as added ones do
                # (a superset of the items whose full vector weighs a deleted anchor).
                raw = {m: np.stack([model.raw[i][j] for i in deleted]) for j, m in enumerate(DIMS)}
                probed = expected_affected_by_add(asif, raw)
                assert probed >= expected
                expected = probed
            version = asif.fingerprint.anchor_version
            model.delete(deleted)
            assert asif.fingerprint.anchor_version == version + 1
        else:
            seed = data.draw(st.integers(0, 2**16), label="seed")
            n = data.draw(st.integers(1, 4), label="n")
            rng = np.random.default_rng(seed)
            if kind == "add-duplicates" and live:
                # Exact copies of existing anchors: their similarities tie exactly.
                copies = [live[int(j)] for j in rng.integers(0, len(live), n)]
                img = np.stack([model.raw[c][0] for c in copies])
                txt = np.stack([model.raw[c][1] for c in copies])
            else:
                img = rng.normal(size=(n, DIMS["image"]))
                txt = rng.normal(size=(n, DIMS["text"]))
            expected = expected_affected_by_add(asif, {"image": img, "text": txt})
            model.add(img, txt)
        report = asif.last_edit
        assert report is not None and len(report.catalogs) == 1
        (edit,) = report.catalogs
        assert edit.mode == "incremental"
        assert set(edit.ids) == expected
        assert edit.items_touched == len(expected)
        assert edit.items_total == 18
        check_catalog_equals_full_reindex(asif)


def fresh(kind: str) -> tuple[Path, object]:
    folder = Path(tempfile.mkdtemp(prefix="asif-edit-"))
    return folder, make_store(kind, folder)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_random_edits_keep_catalog_exact_smoke(seed: int, data: st.DataObject) -> None:
    _, store = fresh("edge")
    model = build(store, seed)
    try:
        run_edits(model, data, steps=4)
    finally:
        model.asif.close()


@pytest.mark.slow
@pytest.mark.parametrize(("backend_kind", "examples"), [("edge", 150), ("client-local", 25)])
def test_random_edits_keep_catalog_exact(backend_kind: str, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(seed=st.integers(0, 2**16), data=st.data())
    def inner(seed: int, data: st.DataObject) -> None:
        _, store = fresh(backend_kind)
        model = build(store, seed)
        try:
            run_edits(model, data, steps=8)
        finally:
            model.asif.close()

    inner()


def test_random_edits_on_client_local_mode_smoke() -> None:
    """A few fixed edit sequences on qdrant-client's local mode (the other backend)."""
    for seed in (1, 2):
        _, store = fresh("client-local")
        model = build(store, seed)
        asif = model.asif
        try:
            rng = np.random.default_rng(seed)
            for step in range(3):
                img, txt = rng.normal(size=(2, 6)), rng.normal(size=(2, 5))
                expected = expected_affected_by_add(asif, {"image": img, "text": txt})
                model.add(img, txt)
                assert set(asif.last_edit.catalogs[0].ids) == expected
                check_catalog_equals_full_reindex(asif)
                victims = sorted(model.raw)[step::3][:2]
                expected = expected_affected_by_delete(asif, victims)
                model.delete(victims)
                assert set(asif.last_edit.catalogs[0].ids) == expected
                check_catalog_equals_full_reindex(asif)
        finally:
            asif.close()


def test_ties_are_affected_and_broken_by_the_lower_id(tmp_path: Path) -> None:
    """A new anchor tying an item's k-th similarity is affected but does not enter its top-k;
    one tying its best anchor enters (and pushes the k-th out)."""
    store = make_store("edge", tmp_path)
    with precomputed_asif(store=store, k=2, p=P) as asif:
        # Image anchors at increasing angles from the item: similarities 1 > 0.8 > 0.6 > 0.
        img = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.6, 0.0, 0.8], [0.0, 1.0, 0.0]])
        txt = np.eye(4)
        asif.add_anchor_embeddings(img, txt)
        asif.index_embeddings(CATALOG, np.array([[1.0, 0.0, 0.0]]), "image")
        (before,) = asif.store.retrieve(CATALOG, [0], with_vectors=True)
        assert sorted(before.sparse["asif"].to_dict_weights()) == [0, 1]
        assert -before.dense["image_kth"][-1] == pytest.approx(0.8, abs=1e-6)

        # A copy of anchor 1 (the k-th): an exact tie, the lower id (1) stays.
        # (on_duplicate="add": exact copies are the point here, not skipped as already present)
        (dup_kth,) = asif.add_anchor_embeddings(img[1:2], np.eye(4)[1:2], on_duplicate="add")
        assert asif.last_edit.items_touched == 1
        (after,) = asif.store.retrieve(CATALOG, [0], with_vectors=True)
        assert sorted(after.sparse["asif"].to_dict_weights()) == [0, 1]
        np.testing.assert_allclose(after.sparse["asif"].values, before.sparse["asif"].values)

        # A copy of anchor 0 (the best): it enters, anchor 1 leaves.
        (dup_top,) = asif.add_anchor_embeddings(img[0:1], np.eye(4)[0:1], on_duplicate="add")
        assert asif.last_edit.items_touched == 1
        (after,) = asif.store.retrieve(CATALOG, [0], with_vectors=True)
        weights = after.sparse["asif"].to_dict_weights()
        assert sorted(weights) == [0, dup_top]
        assert weights[0] == pytest.approx(weights[dup_top])

        # An anchor below the boundary touches nothing.
        asif.add_anchor_embeddings(np.array([[0.0, 0.0, 1.0]]), np.eye(4)[2:3])
        assert asif.last_edit.items_touched == 0

        # Deleting the original best anchor: its copy stays first, and for the second place
        # anchor 1 and its copy tie: the lower id (1) wins.
        asif.delete_anchors([0])
        assert asif.last_edit.items_touched == 1
        (after,) = asif.store.retrieve(CATALOG, [0], with_vectors=True)
        assert sorted(after.sparse["asif"].to_dict_weights()) == [1, dup_top]
        assert dup_kth not in after.sparse["asif"].to_dict_weights()


def test_edit_report_version_and_label_caches(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    with precomputed_asif(path=tmp_path, k=3) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(10, 6)), rng.normal(size=(10, 5)))
        asif.index_embeddings(CATALOG, rng.normal(size=(30, 6)), "image")
        version = asif.fingerprint.anchor_version
        ids = asif.add_anchor_embeddings(rng.normal(size=(2, 6)), rng.normal(size=(2, 5)))
        report = asif.last_edit
        assert ids == [10, 11]  # the public contract: the new ids
        assert report.operation == "add" and report.pairs == 2
        assert report.anchor_version == version + 1 == asif.fingerprint.anchor_version
        assert 0 < report.items_touched <= report.items_total == 30
        assert report.seconds > 0 and report.catalogs[0].seconds > 0
        assert "of 30 catalog items" in report.summary()
        assert asif.fingerprint.last_edit["items_touched"] == report.items_touched
        assert asif.delete_anchors([3]) == 1  # the public contract: pairs deleted
        assert asif.last_edit.operation == "delete"
        assert asif.fingerprint.catalogs[CATALOG]["anchor_version"] == version + 2
        full = asif.reindex(CATALOG)
        assert full.items_touched == full.items_total == 30
    # The report survives reopening (stored in the fingerprint).
    with ASIF(path=tmp_path) as again:
        assert again.fingerprint.last_edit["operation"] == "delete"


def test_catalog_without_kth_vectors_is_recomputed_in_full(tmp_path: Path) -> None:
    """A catalog created by the first layout (no *_kth vectors) stays exact: full re-compute."""
    from asif_qdrant.store.base import CollectionSpec

    rng = np.random.default_rng(8)
    with precomputed_asif(path=tmp_path, k=3) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(10, 6)), rng.normal(size=(10, 5)))
        asif.store.create_collection(
            "old", CollectionSpec(dense={"image": 6, "text": 5}, sparse=("asif",))
        )
        asif.index_embeddings("old", rng.normal(size=(8, 6)), "image")
        asif.add_anchor_embeddings(rng.normal(size=(1, 6)), rng.normal(size=(1, 5)))
        (edit,) = asif.last_edit.catalogs
        assert edit.mode == "full" and edit.items_touched == 8
        ids, emb = asif.anchor_embeddings("image")
        for rec in asif.store.scroll("old", with_vectors=True):
            want, _ = reference(rec.dense["image"], np.asarray(ids), emb, k=3)
            got = rec.sparse["asif"].to_dict_weights()
            assert got.keys() == want.keys()
            assert max(abs(got[x] - want[x]) for x in want) < 1e-5


def test_deleting_every_anchor_empties_every_vector(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    with precomputed_asif(path=tmp_path, k=3) as asif:
        ids = asif.add_anchor_embeddings(rng.normal(size=(5, 6)), rng.normal(size=(5, 5)))
        asif.index_embeddings(CATALOG, rng.normal(size=(4, 6)), "image")
        asif.delete_anchors(ids)
        assert asif.anchor_count == 0
        assert all(len(r.sparse["asif"]) == 0 for r in stored_items(asif))


def test_purged_pair_leaves_no_trace_on_disk(tmp_path: Path) -> None:
    """delete_anchors(purge=True): the caption is in no file of the store afterwards."""
    rng = np.random.default_rng(10)
    secret = "LICENSED-CAPTION-7f3a9c"
    folder = tmp_path / "store"
    with precomputed_asif(path=folder, k=3) as asif:
        payloads = [{"caption": f"pair {i}"} for i in range(6)]
        payloads[2] = {"caption": secret, "image": f"/images/{secret}.png"}
        asif.add_anchor_embeddings(
            rng.normal(size=(6, 6)), rng.normal(size=(6, 5)), payloads=payloads
        )
        asif.index_embeddings(CATALOG, rng.normal(size=(10, 6)), "image")
        asif.delete_anchors([2], purge=True)
        assert secret not in str(asif.list_anchors())
        assert all(2 not in r.sparse["asif"].to_dict_weights() for r in stored_items(asif))
        (query,) = asif.relative_from_embeddings(rng.normal(size=(1, 6)), "image")
        assert asif.search(CATALOG, query)  # the catalog still answers after the rewrite
    found = subprocess.run(
        ["grep", "-rl", secret, str(folder)], capture_output=True, text=True, check=False
    )
    assert found.stdout == "", f"still on disk in: {found.stdout}"
    assert os.listdir(folder)  # the store itself is still there


def test_store_edit_methods(store) -> None:
    """query_dense_above and update_vectors behave the same on every backend."""
    from asif_qdrant.store.base import CollectionSpec, Record
    from asif_qdrant.types import SparseVector

    store.create_collection("c", CollectionSpec(dense={"a": 2, "b": 2}, sparse=("asif",)))
    store.upsert(
        "c",
        [
            Record(1, {"t": "one"}, dense={"a": np.array([1.0, 0.0])}),
            Record(2, {"t": "two"}, dense={"a": np.array([0.5, 0.75**0.5])}),
            Record(
                3,
                {"t": "three"},
                dense={"b": np.array([1.0, 0.0])},
                sparse={"asif": SparseVector(np.array([4]), np.array([1.0]))},
            ),
        ],
    )
    (hits,) = store.query_dense_above("c", "a", np.array([[1.0, 0.0]]), 0.25)
    assert sorted(i for i, _ in hits) == [1, 2]  # point 3 has no vector "a"
    (hits,) = store.query_dense_above("c", "a", np.array([[1.0, 0.0]]), 0.5)
    assert [i for i, _ in hits] == [1]  # strictly above the threshold (point 2 scores 0.5)
    assert store.query_dense_above("c", "a", np.zeros((0, 2)), 0.0) == []
    store.update_vectors(
        "c",
        [
            Record(3, sparse={"asif": SparseVector(np.array([7]), np.array([0.5]))}),
            Record(99, dense={"a": np.array([1.0, 0.0])}),  # unknown: skipped
        ],
    )
    (rec,) = store.retrieve("c", [3], with_vectors=True)
    assert rec.payload == {"t": "three"}
    assert rec.sparse["asif"].to_dict_weights() == {7: 0.5}
    np.testing.assert_array_equal(rec.dense["b"], [1.0, 0.0])
    assert store.retrieve("c", [99]) == []
    # More points pass than a first, small limit holds: every one still comes back.
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(700, 2))
    store.create_collection("many", CollectionSpec(dense={"a": 2}))
    store.upsert("many", [Record(i, dense={"a": v}) for i, v in enumerate(pts)])
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    got = store.query_dense_above("many", "a", q, 0.1)
    for row, hits in zip(q, got, strict=True):
        want = {i for i, v in enumerate(pts) if float(np.float32(v) @ row) > 0.1 + 1e-6}
        assert want <= {i for i, _ in hits}
        assert len(hits) > 256


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_random_edits_keep_pruned_catalog_exact_smoke(seed: int, data: st.DataObject) -> None:
    """catalog_nnz=2 of k=4: every edit equals a full re-index under the same pruning."""
    _, store = fresh("edge")
    model = build(store, seed, nnz=2)
    try:
        assert model.asif.fingerprint.catalog_nnz == 2
        run_edits(model, data, steps=4)
    finally:
        model.asif.close()


def test_pruned_catalog_after_interrupted_delete_is_recomputed_in_full(tmp_path: Path) -> None:
    """A delete whose anchors' embeddings are gone (integrity's repair) re-computes in full."""
    from asif_qdrant.retriever import writes
    from asif_qdrant.retriever.edits import finish_edit

    model = build(make_store("edge", tmp_path), 5, nnz=2)
    asif = model.asif
    try:
        victim = sorted(model.raw)[0]
        writes.delete_points(asif.store, asif.state.layout.image_anchors, [victim])
        writes.delete_points(asif.store, asif.state.layout.text_anchors, [victim])
        model.raw.pop(victim)
        report = finish_edit(asif.state, "delete", 1, 0.0, deleted=[victim])
        (edit,) = report.catalogs
        assert edit.mode == "full" and edit.items_touched == 18
        check_catalog_equals_full_reindex(asif)
    finally:
        asif.close()


def test_catalog_nnz_is_stored_and_checked(tmp_path: Path) -> None:
    from asif_qdrant import FingerprintMismatchError, InvalidParameterError

    with pytest.raises(InvalidParameterError, match="catalog_nnz"):
        precomputed_asif(path=tmp_path / "bad", catalog_nnz=0)
    rng = np.random.default_rng(0)
    with precomputed_asif(path=tmp_path / "m", k=K, catalog_nnz=2) as asif:
        assert asif.fingerprint.catalog_nnz == 2
        asif.add_anchor_embeddings(rng.random((5, 6)), rng.random((5, 5)))  # writes it
    with precomputed_asif(path=tmp_path / "m", catalog_nnz=2) as asif:
        assert asif.fingerprint.catalog_nnz == 2
    with pytest.raises(FingerprintMismatchError, match="catalog_nnz=2"):
        precomputed_asif(path=tmp_path / "m", catalog_nnz=3)
    with precomputed_asif(path=tmp_path / "full", k=K, catalog_nnz=K) as asif:
        assert asif.fingerprint.catalog_nnz is None  # all k: nothing pruned
