"""Explanations: every score traced back to anchor pairs, on every backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asif_qdrant import ASIF, CollectionNotFoundError, InvalidInputError, InvalidParameterError
from asif_qdrant.plotting import explain_figure
from asif_qdrant.retriever.explain import explain_vectors, roc_auc
from asif_qdrant.store import Store
from asif_qdrant.types import SparseVector
from tests import helpers
from tests.conftest import ColorImageEncoder, HashTextEncoder
from tests.helpers import colors, precomputed_asif, swatch

COLORS = colors(8)


def clustered(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return helpers.clustered(rng, n, d, centers=8)


def precomputed(store: Store, k: int = 20) -> ASIF:
    return precomputed_asif(store=store, k=k)


def test_contributions_sum_to_the_search_score(store: Store) -> None:
    rng = np.random.default_rng(0)
    asif = precomputed(store)
    n = 150
    asif.add_anchor_embeddings(
        clustered(rng, n, 24),
        clustered(rng, n, 16),
        payloads=[{"caption": f"caption {i}", "image": f"img/{i}.png"} for i in range(n)],
    )
    asif.index_embeddings("cat", clustered(rng, 40, 24), "image")
    asif.index_embeddings("cat", clustered(rng, 10, 16), "text")
    stored = {r.id: r.sparse["asif"] for r in asif.store.scroll("cat", with_vectors=["asif"])}
    checked = 0
    for q in asif.relative_from_embeddings(clustered(rng, 6, 16), "text"):
        for hit in asif.search("cat", q, limit=8):
            why = asif.explain(q, hit.id, "cat")
            assert abs(why.score - hit.score) < 1e-5
            assert abs(sum(a.contribution for a in why.anchors) - hit.score) < 1e-5
            assert why.item_id == hit.id and why.collection == "cat"
            # One entry per shared anchor: both weights as stored, and their product.
            qw, iw = q.to_dict_weights(), stored[hit.id].to_dict_weights()
            assert {a.id for a in why.anchors} == {a for a in qw if a in iw and iw[a] > 0}
            for a in why.anchors:
                assert a.query_weight == pytest.approx(qw[a.id], abs=1e-7)
                assert a.item_weight == pytest.approx(iw[a.id], abs=1e-7)
                assert a.contribution == pytest.approx(a.query_weight * a.item_weight)
                # image paths are stored resolved (issue 15): relative to the working folder
                assert a.caption == f"caption {a.id}"
                assert a.image == str(Path(f"img/{a.id}.png").resolve())
            contributions = [a.contribution for a in why.anchors]
            assert contributions == sorted(contributions, reverse=True)
            checked += 1
    assert checked >= 20


def test_explain_raw_inputs_with_small_encoders(store: Store) -> None:
    asif = ASIF(store=store, k=4, image_encoder=ColorImageEncoder(), text_encoder=HashTextEncoder())
    names = list(COLORS)
    anchors = [
        (swatch(COLORS[c], 20, 10 * j + i), c) for i, c in enumerate(names) for j in range(2)
    ]
    asif.add_anchors([a for a, _ in anchors], [c for _, c in anchors])
    catalog = [swatch(COLORS[c], 20, 500 + i) for i, c in enumerate(names)]
    asif.index("sw", images=catalog, payloads=[{"caption": f"a {c} swatch"} for c in names])
    (hit,) = asif.search("sw", "red", limit=1)
    why = asif.explain("red", hit.id, "sw")
    assert abs(why.score - hit.score) < 1e-5
    assert why.query == "red" and why.item == hit.payload["caption"]
    assert why.anchors and why.anchors[0].caption == "red"
    # Two inputs, no catalog: the same decomposition of their dot product.
    pair = asif.explain("red", catalog[0])
    (tv,) = asif.embed_texts(["red"])
    (iv,) = asif.embed_images([catalog[0]])
    assert abs(pair.score - tv.dot(iv)) < 1e-6 and pair.item_id is None
    assert "score" in why.table() and why.as_dict(top=2)["anchors"][0]["caption"] == "red"


def test_no_shared_anchor_means_no_match(store: Store) -> None:
    """An item and a query sharing no anchor score 0: search returns nothing, explain says so."""
    asif = precomputed(store, k=1)
    eye = np.eye(4)
    asif.add_anchor_embeddings(eye, eye)
    asif.index_embeddings("c", np.array([[1.0, 0.1, 0.0, 0.0]]), "image")
    (q,) = asif.relative_from_embeddings(np.array([[0.0, 1.0, 0.1, 0.0]]), "text")
    assert asif.search("c", q) == []
    why = asif.explain(q, 0, "c")
    assert why.score == 0.0 and why.shared == 0
    assert "no match" in why.table()


def test_label_explanation_adds_up_to_the_classify_margin(store: Store) -> None:
    asif = ASIF(store=store, k=6, image_encoder=ColorImageEncoder(), text_encoder=HashTextEncoder())
    names = list(COLORS)
    anchors = [
        (swatch(COLORS[c], 20, 10 * j + i), c) for i, c in enumerate(names) for j in range(3)
    ]
    asif.add_anchors([a for a, _ in anchors], [f"a {c} thing" for _, c in anchors])
    images = [swatch(COLORS[c], 20, 900 + i) for i, c in enumerate(names)]
    templates = ["a {} thing", "{}"]
    predicted = asif.classify(images, names, templates=templates)
    scores = asif.classify_scores(images, names, templates=templates)
    for row, img in enumerate(images):
        why = asif.explain_label(img, names, templates=templates)
        assert why.label == predicted[row]
        for j, lab in enumerate(names):
            assert why.scores[lab] == pytest.approx(float(scores[row, j]), abs=1e-5)
        assert why.versus is not None and why.versus != why.label
        assert why.margin == pytest.approx(why.scores[why.label] - why.scores[why.versus], abs=1e-5)
        assert why.margin >= -1e-6
        assert abs(why.explanation.score - why.scores[why.label]) < 1e-5
        diffs = [m.difference for m in why.margins]
        assert diffs == sorted(diffs, reverse=True)
    # A chosen pair of labels, in either order.
    forced = asif.explain_label(images[0], names, templates=templates, label="blue", versus="red")
    assert (forced.label, forced.versus) == ("blue", "red")
    assert forced.margin == pytest.approx(forced.scores["blue"] - forced.scores["red"], abs=1e-5)
    with pytest.raises(InvalidParameterError, match="'versus' parameter"):
        asif.explain_label(images[0], names, versus="mauve")


def test_score_floor_and_min_shared_anchors_on_search(store: Store) -> None:
    asif = precomputed(store, k=2)
    eye = np.eye(6)
    asif.add_anchor_embeddings(eye, eye, payloads=[{"caption": f"axis {i}"} for i in range(6)])
    items = np.array([[1.0, 0.5, 0, 0, 0, 0], [0, 0, 1.0, 0.4, 0, 0], [0.9, 0, 0, 0, 0, 1.0]])
    asif.index_embeddings("c", items, "image")
    (q,) = asif.relative_from_embeddings(np.array([[1.0, 0.45, 0, 0, 0, 0]]), "text")
    hits = asif.search("c", q, limit=10)
    assert [h.id for h in hits] == [0, 2]  # item 1 shares nothing with the query
    assert [h.id for h in asif.search("c", q, min_shared_anchors=2)] == [0]
    assert [h.id for h in asif.search("c", q, min_score=hits[0].score)] == [0]
    assert asif.search("c", q, min_score=1.01) == []
    with pytest.raises(InvalidParameterError, match="'min_shared_anchors' parameter"):
        asif.search("c", q, min_shared_anchors=-1)


def test_score_floor_and_min_shared_anchors_on_classify(store: Store) -> None:
    asif = ASIF(store=store, k=2, image_encoder=ColorImageEncoder(), text_encoder=HashTextEncoder())
    names = ["red", "blue"]
    asif.add_anchors(
        [swatch(COLORS[c], 10, i) for i, c in enumerate(names * 2)],
        ["red", "blue", "red", "blue"],
    )
    images = [swatch(COLORS["red"], 10, 50), swatch(COLORS["white"], 10, 51)]
    vecs = asif.embed_images(images)
    labels = ["red", "blue"]
    predicted = asif.classify(vecs, labels, templates=["{}"])
    scores = asif.classify_scores(vecs, labels, templates=["{}"])
    assert "unknown" not in predicted
    floored = asif.classify(
        vecs, labels, templates=["{}"], min_score=float(scores.max()) + 1e-3, unknown_label="?"
    )
    assert floored == ["?", "?"]
    best = int(np.argmax(scores.max(axis=1)))
    floored = asif.classify(vecs, labels, templates=["{}"], min_score=float(scores.max()))
    assert floored[best] == predicted[best] and floored[1 - best] == "unknown"
    shared = []
    for v in vecs:
        why = asif.explain_label(v, labels, templates=["{}"])
        shared.append(why.explanation.shared)
    out = asif.classify(vecs, labels, templates=["{}"], min_shared_anchors=max(shared) + 1)
    assert out == ["unknown", "unknown"]
    out = asif.classify(vecs, labels, templates=["{}"], min_shared_anchors=min(shared))
    assert out == predicted


def test_audit_finds_the_broken_anchors(tmp_path: Path) -> None:
    """The paper's broken-sample example: red swatches captioned "blue" are found and removed."""
    asif = ASIF(
        path=tmp_path, k=3, image_encoder=ColorImageEncoder(), text_encoder=HashTextEncoder()
    )
    names = ["red", "green", "blue", "yellow"]
    good = [(swatch(COLORS[c], 20, 10 * j + i), c) for i, c in enumerate(names) for j in range(2)]
    broken = [(swatch(COLORS["red"], 5, 700 + j), "blue") for j in range(3)]
    ids = asif.add_anchors([a for a, _ in good + broken], [c for _, c in good + broken])
    broken_ids = set(ids[len(good) :])
    images = [swatch(COLORS[c], 20, 300 + 7 * j + i) for i, c in enumerate(names) for j in range(4)]
    truth = [c for c in names for _ in range(4)]
    report = asif.audit_anchors(images, truth, names, templates=["{}"])
    assert report.wrong > 0 and report.accuracy < 1.0
    assert "accuracy" in report.table() and report.as_dict(top=1)["anchors"][0]["id"] in broken_ids
    # Curate: delete the most harmful anchor, audit again, until nothing is wrong. Only broken
    # anchors are ever picked.
    deleted = []
    accuracies = [report.accuracy]
    while report.wrong and len(deleted) < 6:
        worst = report.anchors[0]
        assert worst.caption == "blue" and worst.net > 0 and worst.wrong > 0
        deleted.append(worst.id)
        asif.delete_anchors([worst.id])
        report = asif.audit_anchors(images, truth, names, templates=["{}"])
        accuracies.append(report.accuracy)
    assert deleted and set(deleted) <= broken_ids
    assert accuracies[-1] == 1.0 and accuracies == sorted(accuracies)
    with pytest.raises(InvalidInputError, match="one of the labels"):
        asif.audit_anchors(images[:1], ["mauve"], names)
    asif.close()


def test_explain_errors(store: Store) -> None:
    rng = np.random.default_rng(3)
    asif = precomputed(store, k=3)
    asif.add_anchor_embeddings(rng.normal(size=(6, 4)), rng.normal(size=(6, 3)))
    asif.index_embeddings("c", rng.normal(size=(2, 4)), "image")
    (q,) = asif.relative_from_embeddings(rng.normal(size=(1, 3)), "text")
    with pytest.raises(InvalidParameterError, match="Got 99, which is not in it"):
        asif.explain(q, 99, "c")
    with pytest.raises(CollectionNotFoundError, match="'nope' does not exist"):
        asif.explain(q, 0, "nope")


def test_roc_auc() -> None:
    assert roc_auc([1.0, 2.0], [0.0]) == 1.0
    assert roc_auc([0.0], [1.0, 2.0]) == 0.0
    assert roc_auc([1.0], [1.0]) == 0.5
    with pytest.raises(InvalidInputError, match="at least one positive"):
        roc_auc([], [1.0])


def _panels(path: Path) -> list[dict]:
    with Image.open(path) as im:
        return json.loads(im.info["asif:panels"])


def test_explain_figure_layout_and_content(tmp_path: Path) -> None:
    colors = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
    files = []
    for i, c in enumerate(colors):
        p = tmp_path / f"{c}.png"
        Image.fromarray(swatch(COLORS[c], 0, i)).resize((40, 30)).save(p)
        files.append(str(p))
    q = SparseVector(np.arange(8), np.linspace(1.0, 0.3, 8))
    item = SparseVector(np.arange(8), np.linspace(0.2, 0.9, 8))
    payloads = {i: {"caption": f"A {c} square.", "image": files[i]} for i, c in enumerate(colors)}
    why = explain_vectors(
        q, item, payloads, query="a warm colour", item="a swatch", item_image=files[0]
    )
    out = explain_figure(why, tmp_path / "why.png", top=5)
    panels = _panels(out)
    kinds = [p["kind"] for p in panels]
    assert kinds.count("query") == 1 and kinds.count("item") == 1 and kinds.count("bars") == 1
    assert kinds.count("anchor") == 5
    with Image.open(out) as im:
        arr = np.asarray(im.convert("RGB")).astype(int)
        assert im.width > 1000 and im.height > 700
    for p, a in zip([p for p in panels if p["kind"] == "anchor"], why.anchors[:5], strict=True):
        x0, y0, x1, y1 = p["box"]
        inner = arr[y0 + 8 : y1 - 8, x0 + 8 : x1 - 8]
        want = np.array(COLORS[a.caption.split()[1]])
        # The anchor's own image fills its panel.
        assert (np.abs(inner - want).max(axis=-1) < 40).mean() > 0.5
    x0, y0, x1, y1 = next(p["box"] for p in panels if p["kind"] == "item")
    assert (np.abs(arr[y0 + 8 : y1 - 8, x0 + 8 : x1 - 8] - COLORS["red"]).max(-1) < 40).mean() > 0.5
    # Fewer shared anchors than asked for: one panel each; none shared: no anchor panel.
    two = explain_vectors(q, SparseVector(np.array([1, 2]), np.array([0.6, 0.8])), payloads)
    assert [p["kind"] for p in _panels(explain_figure(two, tmp_path / "two.png"))].count(
        "anchor"
    ) == 2
    none = explain_vectors(q, SparseVector(np.array([99]), np.array([1.0])))
    assert "anchor" not in [p["kind"] for p in _panels(explain_figure(none, tmp_path / "n.png"))]
    with pytest.raises(InvalidParameterError, match="'top' parameter"):
        explain_figure(why, tmp_path / "x.png", top=0)
    with pytest.raises(InvalidParameterError, match=r"ending in '\.png'"):
        explain_figure(why, tmp_path / "x.jpg")
