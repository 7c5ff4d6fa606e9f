"""Methods: the library path equals the direct numpy recipe; strategies; edits; registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asif_qdrant.errors import InvalidParameterError
from asif_qdrant.evaluation.methods import (
    METHODS,
    STRATEGIES,
    AnchorSet,
    Method,
    MethodContext,
    PromptSet,
    TopK,
    register_method,
)
from asif_qdrant.evaluation.metrics import rank_counts
from asif_qdrant.relative import relative_topk
from tests.conftest import HashTextEncoder

LABELS = ["a red square", "a blue circle", "a green tree", "a yellow car"]
TEMPLATES = ["a photo of {}.", "a drawing of {}.", "{}"]


@pytest.fixture
def world(tmp_path: Path) -> dict:
    """Random anchors, hashed-text queries and prompts.

    Anchors are continuous random vectors: hashed trigram counts of similar captions give
    exactly tied similarities, and the two paths round ties differently (a separate test
    covers exact duplicates).
    """
    rng = np.random.default_rng(7)
    text = HashTextEncoder(dim=32)
    anchors = AnchorSet(np.abs(rng.normal(size=(60, 12))), rng.normal(size=(60, 32)))
    prompts = PromptSet(
        LABELS,
        TEMPLATES,
        text.embed([t.format(lab) for lab in LABELS for t in TEMPLATES]).reshape(
            len(LABELS), len(TEMPLATES), -1
        ),
    )
    return {
        "anchors": anchors,
        "prompts": prompts,
        "images": np.abs(rng.normal(size=(15, 12))),
        "texts": text.embed([f"query {i} {LABELS[i % 4]}" for i in range(9)]),
        "context": MethodContext(text_encoder=text, workdir=tmp_path),
    }


def test_topk_equals_the_library_relative_topk() -> None:
    rng = np.random.default_rng(0)
    q, a = rng.normal(size=(5, 8)), rng.normal(size=(40, 8))
    idx, val = relative_topk(q, a, k=7, p=3.0)
    dense = TopK(q, a, 7).dense(7, 3.0)
    expected = np.zeros_like(dense)
    np.put_along_axis(expected, idx, val, axis=1)
    np.testing.assert_allclose(dense, expected, atol=1e-6)


def test_topk_ties_at_the_kth_place_keep_the_lower_row() -> None:
    anchors = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    top = TopK(np.array([[0.6, 0.8]]), anchors, 2)  # rows 1, 2, 3 tie at 0.8
    assert top.index[0].tolist() == [1, 2]
    top = TopK(np.array([[0.8, 0.6]]), anchors, 2)  # row 0 first, then the tie: row 1 wins
    assert top.index[0].tolist() == [0, 1]


def test_topk_clamp_and_sweep() -> None:
    anchors = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    top = TopK(np.array([[1.0, 0.0]]), anchors, 3)
    assert top.dense(3, 2.0).tolist() == [[1.0, 0.0, 0.0]]  # -1 clamped, 0 stays 0
    assert top.dense(3, 2.0, clamp=False).round(4).tolist() == [[0.7071, 0.0, 0.7071]]
    assert top.dense(1, 8.0).tolist() == [[1.0, 0.0, 0.0]]


@pytest.mark.parametrize("k", [5, 25, 60, 200])
def test_library_path_equals_numpy_recipe(world: dict, k: int) -> None:
    lib = METHODS["asif"](world["context"]).fit(world["anchors"], k=k, p=8.0)
    ref = METHODS["numpy"](world["context"]).fit(world["anchors"], k=k, p=8.0)
    try:
        for q, qm, c, cm in [
            (world["images"], "image", world["texts"], "text"),
            (world["texts"], "text", world["images"], "image"),
        ]:
            a = lib.retrieval_scores(q, qm, c, cm)
            b = ref.retrieval_scores(q, qm, c, cm)
            np.testing.assert_allclose(a, b, atol=1e-6)
            targets = np.arange(len(q)) % len(c)
            assert [x.tolist() for x in rank_counts(a, targets)] == [
                x.tolist() for x in rank_counts(b, targets)
            ]
        for strategy in STRATEGIES:
            a = lib.classification_scores(world["images"], world["prompts"], strategy)
            b = ref.classification_scores(world["images"], world["prompts"], strategy)
            assert a.shape == (15, len(LABELS))
            np.testing.assert_allclose(a, b, atol=1e-6)
            assert (a.argmax(axis=1) == b.argmax(axis=1)).all()
    finally:
        lib.close()
    check = world["context"].checks[-1]
    assert check["same_argmax"] and check["max_abs_diff"] < 1e-5


def test_duplicate_anchors_tie_the_same_way_on_both_paths(world: dict) -> None:
    # Rows 40..49 repeat rows 0..9: every similarity to them ties exactly with the original,
    # and both paths keep the lower row at the k-th place.
    a = world["anchors"].subset(list(range(40)) + list(range(10)))
    lib = METHODS["asif"](world["context"]).fit(a, k=15, p=8.0)
    ref = METHODS["numpy"](world["context"]).fit(a, k=15, p=8.0)
    try:
        for k_query in (world["images"], world["texts"]):
            modality = "image" if k_query is world["images"] else "text"
            other = world["texts"] if modality == "image" else world["images"]
            om = "text" if modality == "image" else "image"
            np.testing.assert_allclose(
                lib.retrieval_scores(k_query, modality, other, om),
                ref.retrieval_scores(k_query, modality, other, om),
                atol=1e-6,
            )
    finally:
        lib.close()


def test_strategies_differ_and_reduce_to_one_template(world: dict) -> None:
    ref = METHODS["numpy"](world["context"]).fit(world["anchors"], k=20, p=8.0)
    scores = {
        s: ref.classification_scores(world["images"], world["prompts"], s) for s in STRATEGIES
    }
    assert not np.allclose(scores["max"], scores["mean-relative"])
    one = world["prompts"].first_template()
    single = {s: ref.classification_scores(world["images"], one, s) for s in STRATEGIES}
    np.testing.assert_allclose(single["max"], single["mean-relative"], atol=1e-6)
    np.testing.assert_allclose(single["max"], single["mean-embedding"], atol=1e-6)
    with pytest.raises(InvalidParameterError, match="The strategy must be one of"):
        ref.classification_scores(world["images"], world["prompts"], "median")


def test_dense_baseline_is_plain_cosine_of_similarity_vectors(world: dict) -> None:
    dense = METHODS["dense"](world["context"]).fit(world["anchors"], k=3, p=8.0)
    a = world["anchors"]

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    si = unit(unit(world["images"]) @ unit(a.image).T)
    st = unit(unit(world["texts"]) @ unit(a.text).T)
    np.testing.assert_allclose(
        dense.retrieval_scores(world["images"], "image", world["texts"], "text"),
        si @ st.T,
        atol=1e-5,
    )


def test_noclamp_differs_only_when_similarities_are_negative(world: dict) -> None:
    rng = np.random.default_rng(1)
    anchors = AnchorSet(rng.normal(size=(30, 6)), rng.normal(size=(30, 6)))  # signed cosines
    q, c = rng.normal(size=(4, 6)), rng.normal(size=(5, 6))
    clamp = METHODS["numpy"](world["context"]).fit(anchors, k=30, p=8.0)
    raw = METHODS["numpy-noclamp"](world["context"]).fit(anchors, k=30, p=8.0)
    assert not np.allclose(
        clamp.retrieval_scores(q, "image", c, "text"), raw.retrieval_scores(q, "image", c, "text")
    )
    positive = AnchorSet(np.abs(anchors.image), np.abs(anchors.text))
    clamp = METHODS["numpy"](world["context"]).fit(positive, k=30, p=8.0)
    raw = METHODS["numpy-noclamp"](world["context"]).fit(positive, k=30, p=8.0)
    np.testing.assert_allclose(
        clamp.retrieval_scores(np.abs(q), "image", np.abs(c), "text"),
        raw.retrieval_scores(np.abs(q), "image", np.abs(c), "text"),
    )


@pytest.mark.parametrize("name", ["asif", "numpy"])
def test_add_and_undo_anchors(world: dict, name: str) -> None:
    base = world["anchors"].subset(range(30))
    extra = world["anchors"].subset(range(30, 45))
    with METHODS[name](world["context"]).fit(base, k=10, p=8.0) as fitted:
        before = fitted.classification_scores(world["images"], world["prompts"], "max")
        token = fitted.add_anchors(extra.image, extra.text)
        after = fitted.classification_scores(world["images"], world["prompts"], "max")
        fresh = METHODS["numpy"](world["context"]).fit(base.concat(extra), k=10, p=8.0)
        np.testing.assert_allclose(
            after,
            fresh.classification_scores(world["images"], world["prompts"], "max"),
            atol=1e-6,
        )
        assert not np.allclose(before, after)
        fitted.undo_add(token)
        restored = fitted.classification_scores(world["images"], world["prompts"], "max")
        np.testing.assert_allclose(restored, before, atol=1e-6)


def test_register_method_plugs_a_new_method_in(world: dict) -> None:
    class CosineBaseline(Method):
        name = "test-cosine"
        title = "cosine"

        def fit(self, anchors, *, k, p):  # type: ignore[no-untyped-def]
            return METHODS["numpy"](self.context).fit(anchors, k=k, p=p)

    try:
        register_method(CosineBaseline)
        assert METHODS["test-cosine"] is CosineBaseline
        fitted = METHODS["test-cosine"](world["context"]).fit(world["anchors"], k=5, p=8.0)
        assert fitted.classification_scores(world["images"], world["prompts"]).shape == (15, 4)
    finally:
        METHODS.pop("test-cosine", None)

    class Nameless(Method):
        def fit(self, anchors, *, k, p):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    with pytest.raises(InvalidParameterError, match="needs a non-empty 'name'"):
        register_method(Nameless)
