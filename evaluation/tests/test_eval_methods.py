"""Methods: the library path equals the direct numpy recipe; strategies; edits; registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from asif_qdrant.errors import InvalidParameterError
from asif_qdrant.relative import relative_topk

from asif_qdrant_evaluation.methods import (
    METHODS,
    STRATEGIES,
    AnchorSet,
    Method,
    MethodContext,
    PromptSet,
    TopK,
    register_method,
)
from asif_qdrant_evaluation.metrics import rank_counts
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


@pytest.mark.parametrize("spread", [None, 0.3, 0.8])
@pytest.mark.parametrize("k", [5, 25, 60, 200])
def test_library_path_equals_numpy_recipe(world: dict, k: int, spread: float | None) -> None:
    """Every path at the paper's p; classification also with the spread rule (its default)."""
    world["context"].options["classify_spread"] = spread
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
            # The spread rule solves p from float32 similarities (the engine's vs numpy's,
            # a few ulps apart); the solved p carries that difference into every weight.
            np.testing.assert_allclose(a, b, atol=1e-6 if spread is None else 2e-5)
            assert (a.argmax(axis=1) == b.argmax(axis=1)).all()
    finally:
        lib.close()
    check = world["context"].checks[-1]
    assert check["same_argmax"] and check["max_abs_diff"] < 1e-5
    if spread is not None:  # the rule changes the scores (a test that can fail)
        paper = METHODS["numpy"](MethodContext()).fit(world["anchors"], k=k, p=8.0)
        assert not np.allclose(
            b, paper.classification_scores(world["images"], world["prompts"], STRATEGIES[-1])
        )


def test_spread_powers_match_the_library_bisection() -> None:
    """scipy's root (the evaluation) and the library's bisection find the same p."""
    from asif_qdrant.relative import Spread, power_for_spread

    from asif_qdrant_evaluation.methods import spread_powers

    rng = np.random.default_rng(3)
    s = np.sort(rng.uniform(-0.2, 0.9, size=(50, 40)), axis=1)[:, ::-1]
    for fraction in (0.05, 0.3, 0.9, 1.0):
        np.testing.assert_allclose(
            spread_powers(s, fraction), power_for_spread(s, Spread(fraction)), atol=1e-9
        )


def test_pruned_catalogs_leave_classification_and_its_check_alone(world: dict) -> None:
    """``catalog_nnz`` prunes catalogs, not label prompts: classify equals the full recipe,
    and the evaluation's own scoring (its check) agrees with ASIF.classify."""
    lib = METHODS["asif-pruned"](world["context"]).fit(world["anchors"], k=200, p=8.0)
    ref = METHODS["numpy"](world["context"]).fit(world["anchors"], k=200, p=8.0)
    before = len(world["context"].checks)
    try:
        assert lib.asif.fingerprint.catalog_nnz is not None
        for strategy in STRATEGIES:
            a = lib.classification_scores(world["images"], world["prompts"], strategy)
            b = ref.classification_scores(world["images"], world["prompts"], strategy)
            np.testing.assert_allclose(a, b, atol=1e-6)
    finally:
        lib.close()
    checks = world["context"].checks[before:]
    assert len(checks) == len(STRATEGIES)
    assert all(c["same_argmax"] and c["max_abs_diff"] < 1e-5 for c in checks)


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


# -------------------------------------------------------------------------------------------
# CSA, hybrid and image->image variants
# -------------------------------------------------------------------------------------------


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def paired() -> dict:
    """Anchor pairs with a shared latent structure (CSA finds it), and queries."""
    rng = np.random.default_rng(3)
    latent = rng.normal(size=(120, 5))
    wi, wt = rng.normal(size=(5, 16)), rng.normal(size=(5, 10))
    img = latent @ wi + 0.3 * rng.normal(size=(120, 16))
    txt = latent @ wt + 0.3 * rng.normal(size=(120, 10))
    q = rng.normal(size=(12, 5))
    return {
        "anchors": AnchorSet(img[:100], txt[:100]),
        "q_img": q @ wi + 0.3 * rng.normal(size=(12, 16)),
        "q_txt": q @ wt + 0.3 * rng.normal(size=(12, 10)),
    }


@pytest.mark.parametrize("ridge", [1e-3, 0.1])
def test_csa_numpy_equals_the_library_fit_csa(paired: dict, tmp_path: Path, ridge: float) -> None:
    from asif_qdrant.csa import fit_csa

    a = paired["anchors"]
    ctx = MethodContext(workdir=tmp_path, options={"csa_dim": 4, "csa_ridge": ridge})
    ours = METHODS["csa-numpy"](ctx).fit(a, k=10, p=8.0)
    lib = fit_csa(_unit_rows(a.image), _unit_rows(a.text), sim_dim=4, ridge=ridge)
    np.testing.assert_allclose(ours.csa.rho, lib.rho, atol=1e-10)
    for qm, q, cm, c in [
        ("image", paired["q_img"], "text", paired["q_txt"]),
        ("text", paired["q_txt"], "image", paired["q_img"]),
        ("image", paired["q_img"], "image", paired["q_img"]),
    ]:
        np.testing.assert_allclose(
            ours.retrieval_scores(q, qm, c, cm),
            lib.similarity(_unit_rows(q), qm, _unit_rows(c), cm),
            atol=1e-6,
        )
    # CSA finds the shared structure: each query's own caption ranks first far above chance.
    s = ours.retrieval_scores(paired["q_img"], "image", paired["q_txt"], "text")
    assert (s.argmax(axis=1) == np.arange(12)).mean() > 0.5


def test_csa_dims_default_to_half_the_anchors(paired: dict) -> None:
    from asif_qdrant_evaluation.methods import csa_dim_for

    fitted = METHODS["csa-numpy"](MethodContext()).fit(
        paired["anchors"].subset(range(14)), k=5, p=1
    )
    assert fitted.csa.rho.shape == (7,) == (csa_dim_for(14, 16, 10),)
    assert csa_dim_for(1000, 16, 10) == 10 and csa_dim_for(1000, 16, 10, 3) == 3


def test_csa_template_strategies(paired: dict) -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, 3, 10))
    prompts = PromptSet(LABELS, TEMPLATES, emb)
    csa = METHODS["csa-numpy"](MethodContext(options={"csa_dim": 5})).fit(
        paired["anchors"], k=5, p=8.0
    )
    scores = {s: csa.classification_scores(paired["q_img"], prompts, s) for s in STRATEGIES}
    assert scores["max"].shape == (12, 4)
    img = csa.vectors(paired["q_img"], "image", query=True)
    txt = csa.vectors(emb.reshape(12, 10), "text").reshape(4, 3, -1)
    np.testing.assert_allclose(
        scores["max"], (img @ txt.reshape(12, -1).T).reshape(12, 4, 3).max(2)
    )
    mean_rel = txt.mean(axis=1)
    np.testing.assert_allclose(scores["mean-relative"], img @ _unit_rows(mean_rel).T, atol=1e-9)
    # mean-embedding: the mean of the unit prompt embeddings, projected as it is (ASIF.classify)
    mean = _unit_rows(emb.reshape(12, 10)).reshape(4, 3, 10).mean(axis=1)
    proj = (mean - csa.csa.mean["text"]) @ csa.csa.proj["text"].T
    np.testing.assert_allclose(scores["mean-embedding"], img @ _unit_rows(proj).T, atol=1e-9)
    one = prompts.first_template()
    single = [csa.classification_scores(paired["q_img"], one, s) for s in STRATEGIES]
    np.testing.assert_allclose(single[0], single[1], atol=1e-9)
    np.testing.assert_allclose(single[0], single[2], atol=1e-9)


def test_rrf_scores_by_hand() -> None:
    from asif_qdrant_evaluation.methods import rrf_scores

    asif = np.array([[0.9, 0.0, 0.5, 0.0]])  # items 1 and 3 share no anchor: not ranked
    csa = np.array([[0.1, 0.4, 0.3, 0.2]])
    got = rrf_scores(asif, csa, k=2, positive=(True, False))
    # asif ranks: item 0 -> 0, item 2 -> 1; csa ranks: 1, 2, 3, 0 -> 3, 0, 1, 2
    expected = [1 / 2 + 1 / 5, 1 / 2, 1 / 3 + 1 / 3, 1 / 4]
    np.testing.assert_allclose(got[0], expected)
    # without 'positive', zero-score items are ranked too (after the others, in item order)
    np.testing.assert_allclose(rrf_scores(asif, csa, k=2)[0][1], 1 / 4 + 1 / 2)


def test_hybrid_numpy_fuses_the_numpy_and_csa_rankings(paired: dict) -> None:
    from asif_qdrant_evaluation.methods import rrf_scores

    ctx = MethodContext(options={"csa_dim": 4, "rrf_k": 2})
    a = paired["anchors"]
    hyb = METHODS["hybrid-numpy"](ctx).fit(a, k=20, p=8.0)
    asif = METHODS["numpy"](ctx).fit(a, k=20, p=8.0)
    csa = METHODS["csa-numpy"](ctx).fit(a, k=20, p=8.0)
    args = (paired["q_img"], "image", paired["q_txt"], "text")
    np.testing.assert_allclose(
        hyb.retrieval_scores(*args),
        rrf_scores(
            asif.retrieval_scores(*args), csa.retrieval_scores(*args), k=2, positive=(True,)
        ),
    )
    assert hyb.image_variants == ("intra", "caption-side")


def test_image_variants_of_the_numpy_recipe(paired: dict) -> None:
    a = paired["anchors"]
    fitted = METHODS["numpy"](MethodContext()).fit(a, k=15, p=8.0)
    q, ci, ct = paired["q_img"][:4], paired["q_img"], paired["q_txt"]
    np.testing.assert_allclose(
        fitted.image_scores(q, ci, ct, "intra"), fitted.retrieval_scores(q, "image", ci, "image")
    )
    np.testing.assert_allclose(
        fitted.image_scores(q, ci, ct, "caption-side"),
        fitted.retrieval_scores(q, "image", ct, "text"),
    )
    # inversion: the relative-weighted mean of the unit caption embeddings of the top anchors
    rel = fitted.relative(q, "image")
    assert (np.count_nonzero(rel, axis=1) <= 15).all()
    pseudo = _unit_rows(rel @ _unit_rows(a.text))
    np.testing.assert_allclose(
        fitted.image_scores(q, ci, ct, "inversion"),
        fitted.retrieval_scores(pseudo, "text", ci, "image"),
        atol=1e-6,
    )
    csa = METHODS["csa-numpy"](MethodContext(options={"csa_dim": 4})).fit(a, k=15, p=8.0)
    with pytest.raises(InvalidParameterError, match="variant of 'csa-numpy' must be one of"):
        csa.image_scores(q, ci, ct, "inversion")


def _skip_without(name: str) -> None:
    why = METHODS[name].unavailable()
    if why:
        pytest.skip(f"library method {name!r} not available: {why}")


@pytest.mark.parametrize("lib, ref", [("csa", "csa-numpy"), ("hybrid", "hybrid-numpy")])
def test_library_csa_and_hybrid_equal_their_numpy_versions(
    paired: dict, tmp_path: Path, lib: str, ref: str
) -> None:
    _skip_without(lib)
    text = HashTextEncoder(dim=10)
    ctx = MethodContext(
        text_encoder=text,
        workdir=tmp_path,
        options={"csa_dim": 4, "csa_ridge": 0.1, "rrf_k": 2},
    )
    prompts = PromptSet(
        LABELS,
        TEMPLATES,
        text.embed([t.format(lab) for lab in LABELS for t in TEMPLATES]).reshape(4, 3, -1),
    )
    a = paired["anchors"]
    ours = METHODS[ref](ctx).fit(a, k=20, p=8.0)
    with METHODS[lib](ctx).fit(a, k=20, p=8.0) as fitted:
        for args in [
            (paired["q_img"], "image", paired["q_txt"], "text"),
            (paired["q_txt"], "text", paired["q_img"], "image"),
        ]:
            x, y = fitted.retrieval_scores(*args), ours.retrieval_scores(*args)
            np.testing.assert_allclose(x, y, atol=1e-5)
        for variant in fitted.image_variants:
            x = fitted.image_scores(paired["q_img"], paired["q_img"], paired["q_txt"], variant)
            y = ours.image_scores(paired["q_img"], paired["q_img"], paired["q_txt"], variant)
            np.testing.assert_allclose(x, y, atol=1e-5)
        for strategy in STRATEGIES:
            for p in (prompts, prompts.first_template()):
                x = fitted.classification_scores(paired["q_img"], p, strategy)
                y = ours.classification_scores(paired["q_img"], p, strategy)
                assert x.shape == (12, 4)
                np.testing.assert_allclose(x, y, atol=1e-5, err_msg=strategy)


def test_library_image_variants_equal_the_numpy_recipe(paired: dict, tmp_path: Path) -> None:
    ctx = MethodContext(workdir=tmp_path)
    a = AnchorSet(np.abs(paired["anchors"].image), np.abs(paired["anchors"].text))
    q, ct = np.abs(paired["q_img"]), np.abs(paired["q_txt"])
    ours = METHODS["numpy"](ctx).fit(a, k=20, p=8.0)
    with METHODS["asif"](ctx).fit(a, k=20, p=8.0) as fitted:
        assert "intra" in fitted.image_variants
        for variant in fitted.image_variants:
            np.testing.assert_allclose(
                fitted.image_scores(q, q, ct, variant),
                ours.image_scores(q, q, ct, variant),
                atol=1e-5,
                err_msg=variant,
            )


@pytest.mark.parametrize("name", ["csa-numpy", "hybrid-numpy", "csa", "hybrid"])
def test_csa_edits_keep_the_dims_and_undo_restores(paired: dict, tmp_path: Path, name: str) -> None:
    _skip_without(name)
    a = paired["anchors"]
    ctx = MethodContext(workdir=tmp_path, options={"csa_ridge": 0.1})  # dims: 30 // 2
    args = (paired["q_img"], "image", paired["q_txt"], "text")
    with METHODS[name](ctx).fit(a.subset(range(30)), k=10, p=8.0) as fitted:
        before = fitted.retrieval_scores(*args)
        token = fitted.add_anchors(a.image[30:], a.text[30:])
        after = fitted.retrieval_scores(*args)
        ref = "csa-numpy" if "csa" in name else "hybrid-numpy"
        fresh = METHODS[ref](MethodContext(options={"csa_dim": 15, "csa_ridge": 0.1}))
        np.testing.assert_allclose(
            after, fresh.fit(a, k=10, p=8.0).retrieval_scores(*args), atol=1e-5
        )
        fitted.undo_add(token)
        np.testing.assert_allclose(fitted.retrieval_scores(*args), before, atol=1e-5)


def test_csa_numpy_with_fewer_anchors_than_dims_equals_fit_csa() -> None:
    from asif_qdrant.csa import fit_csa

    rng = np.random.default_rng(5)
    img, txt = rng.normal(size=(12, 40)), rng.normal(size=(12, 30))
    q, c = rng.normal(size=(3, 40)), rng.normal(size=(4, 30))
    ours = METHODS["csa-numpy"](MethodContext(options={"csa_dim": 5, "csa_ridge": 0.1}))
    fitted = ours.fit(AnchorSet(img, txt), k=1, p=1.0)
    lib = fit_csa(_unit_rows(img), _unit_rows(txt), sim_dim=5, ridge=0.1)
    np.testing.assert_allclose(fitted.csa.rho, lib.rho, atol=1e-9)
    np.testing.assert_allclose(
        fitted.retrieval_scores(q, "image", c, "text"),
        lib.similarity(_unit_rows(q), "image", _unit_rows(c), "text"),
        atol=1e-6,
    )
