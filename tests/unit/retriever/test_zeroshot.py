"""Zero-shot prompt-template strategies of ``ASIF.classify``, checked against direct numpy."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.optimize import brentq

from asif_qdrant import ASIF, InvalidParameterError
from asif_qdrant.model import DEFAULT_TEMPLATE_STRATEGY, TEMPLATE_STRATEGIES
from asif_qdrant.store import Store
from tests import helpers
from tests.conftest import ColorImageEncoder, HashTextEncoder
from tests.helpers import colors

K, P = 7, 8.0
SPREAD = 0.3  # the default of classification (DEFAULT_CLASSIFY_SPREAD)
LABELS = ["red", "green", "blue", "yellow", "purple"]
TEMPLATES = ["a {} thing", "{}", "a photo of something {}", "{} colour"]
WORDS = ("a thing in", "an object coloured", "photo:", "the swatch is")
RGB = colors(5)


def swatch(rgb: tuple[int, int, int], seed: int) -> np.ndarray:
    return helpers.swatch(rgb, noise=60, seed=seed)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def spread_power(kept: np.ndarray, fraction: float) -> float:
    """The p at which the weights' perplexity is ``fraction`` x kept anchors (scipy's root)."""
    s = np.clip(kept, 0, None) / kept.max()

    def excess(p: float) -> float:
        w = s**p / (s**p).sum()
        w = w[w > 0]
        return float(np.exp(-(w * np.log(w)).sum())) - fraction * len(kept)

    lo, hi = 0.25, 64.0
    if excess(lo) <= 0:
        return lo
    if excess(hi) >= 0:
        return hi
    return brentq(excess, lo, hi, xtol=1e-12)


def relative(
    q: np.ndarray, anchors: np.ndarray, k: int = K, p: float = P, spread: float | None = None
) -> np.ndarray:
    """The paper's recipe in plain numpy: dense (n_queries, n_anchors); ``spread``: a p per row."""
    sims = unit(q) @ unit(anchors).T
    out = np.zeros_like(sims)
    for r, row in enumerate(sims):
        top = np.argsort(-row, kind="stable")[:k]
        pr = p if spread is None else spread_power(row[top], spread)
        out[r, top] = np.clip(row[top], 0, None) ** pr
    return unit(out)


def build(store: Store, **options) -> tuple[ASIF, np.ndarray, np.ndarray, list[np.ndarray]]:
    img_enc, txt_enc = ColorImageEncoder(), HashTextEncoder()
    anchor_images = [swatch(RGB[c], 10 * j + i) for i, c in enumerate(LABELS) for j in range(4)]
    captions = [
        f"{w} {c} no. {3 * i + j}" for i, c in enumerate(LABELS) for j, w in enumerate(WORDS)
    ]
    asif = ASIF(store=store, k=K, p=P, image_encoder=img_enc, text_encoder=txt_enc, **options)
    asif.add_anchors(anchor_images, captions)
    queries = [swatch(RGB[c], 500 + i) for i, c in enumerate(LABELS * 2)]
    return asif, img_enc.embed(anchor_images), txt_enc.embed(captions), queries


@pytest.fixture
def model(store: Store) -> tuple[ASIF, np.ndarray, np.ndarray, list[np.ndarray]]:
    return build(store)


def expected_scores(
    strategy: str,
    anchors_img: np.ndarray,
    anchors_txt: np.ndarray,
    queries: list[np.ndarray],
    k: int = K,
    p: float = P,
    spread: float | None = SPREAD,
) -> np.ndarray:
    """Classification scores; by default with the default spread rule (``p`` unused)."""
    txt_enc = HashTextEncoder()
    img = relative(ColorImageEncoder().embed(queries), anchors_img, k, p, spread)
    prompts = [t.format(lab) for lab in LABELS for t in TEMPLATES]
    emb = txt_enc.embed(prompts).reshape(len(LABELS), len(TEMPLATES), -1)
    if strategy == "mean-embedding":
        return img @ relative(emb.mean(axis=1), anchors_txt, k, p, spread).T
    rel = relative(emb.reshape(len(prompts), -1), anchors_txt, k, p, spread).reshape(
        len(LABELS), len(TEMPLATES), -1
    )
    if strategy == "mean-relative":
        return img @ unit(rel.mean(axis=1)).T
    return np.einsum("qa,lta->qlt", img, rel).max(axis=2)


@pytest.mark.parametrize("strategy", TEMPLATE_STRATEGIES)
def test_classify_scores_equal_numpy_for_every_strategy(model, strategy: str) -> None:
    asif, a_img, a_txt, queries = model
    predicted = asif.classify(queries, LABELS, templates=TEMPLATES, template_strategy=strategy)
    scores = asif.classify_scores(queries, LABELS, templates=TEMPLATES, template_strategy=strategy)
    want = expected_scores(strategy, a_img, a_txt, queries)
    np.testing.assert_allclose(scores, want, atol=2e-5)
    assert predicted == [LABELS[j] for j in np.argmax(want, axis=1)]


def test_classify_k_and_p_are_classification_own_and_leave_search_alone(store: Store) -> None:
    """``ASIF(classify_k=, classify_p=)``: image and prompt vectors of classify use them."""
    asif, a_img, a_txt, queries = build(store, classify_k=4, classify_p=2.0)
    assert (asif.fingerprint.classify_k, asif.fingerprint.classify_p) == (4, 2.0)
    for strategy in TEMPLATE_STRATEGIES:
        got = asif.classify_scores(queries, LABELS, templates=TEMPLATES, template_strategy=strategy)
        want = expected_scores(strategy, a_img, a_txt, queries, k=4, p=2.0, spread=None)
        np.testing.assert_allclose(got, want, atol=2e-5)
        paper = expected_scores(strategy, a_img, a_txt, queries, spread=None)
        assert not np.allclose(got, paper, atol=1e-3)  # not the model's own k and p
    # search (and what catalogs store) keeps the model's k and p
    (vec,) = asif.embed_images(queries[:1])
    dense = np.zeros(len(a_img))
    dense[vec.indices] = vec.values
    np.testing.assert_allclose(
        dense, relative(ColorImageEncoder().embed(queries[:1]), a_img)[0], atol=2e-6
    )
    assert len(vec.indices) == K


def test_classify_k_p_spread_are_checked_and_the_paper_is_one_argument_away(
    store: Store,
) -> None:
    with pytest.raises(InvalidParameterError, match=r"'classify_k' parameter of ASIF.*>= 1"):
        ASIF(store=store, classify_k=0, image_encoder=ColorImageEncoder())
    with pytest.raises(InvalidParameterError, match=r"'classify_p' parameter of ASIF"):
        ASIF(store=store, classify_p=-1.0, image_encoder=ColorImageEncoder())
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(InvalidParameterError, match=r"classify_spread.*ASIF.*" + f"{bad}"):
            ASIF(store=store, classify_spread=bad, image_encoder=ColorImageEncoder())
    with pytest.raises(InvalidParameterError, match=r"classify_p.*or classify_spread.*not both"):
        ASIF(store=store, classify_p=8, classify_spread=0.25, image_encoder=ColorImageEncoder())
    # classify_p=8 (the model's p): the paper's classification, stored as given
    asif, a_img, a_txt, queries = build(store, classify_k=K, classify_p=P)
    fp = asif.fingerprint
    assert (fp.classify_k, fp.classify_p, fp.classify_spread) == (None, P, SPREAD)
    for strategy in TEMPLATE_STRATEGIES:
        got = asif.classify_scores(queries, LABELS, templates=TEMPLATES, template_strategy=strategy)
        paper = expected_scores(strategy, a_img, a_txt, queries, spread=None)
        np.testing.assert_allclose(got, paper, atol=2e-5)


def test_classify_spread_sets_the_perplexity_of_every_classification_vector(
    store: Store,
) -> None:
    """Each image / prompt vector spreads over ``fraction`` x k anchors (perplexity)."""
    asif, a_img, a_txt, queries = build(store, classify_spread=0.8)
    assert (asif.fingerprint.classify_spread, asif.fingerprint.classify_p) == (0.8, None)
    got = asif.classify_scores(queries, LABELS, templates=TEMPLATES, template_strategy="max")
    want = expected_scores("max", a_img, a_txt, queries, spread=0.8)
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert not np.allclose(got, expected_scores("max", a_img, a_txt, queries), atol=1e-3)
    # the perplexity of each image vector's weights (normalised to sum 1) is 0.8 x K
    sims = unit(ColorImageEncoder().embed(queries)) @ unit(a_img).T
    checked = 0
    for row in sims:
        top = np.sort(np.clip(row, 0, None))[::-1][:K]
        pr = spread_power(top, 0.8)
        q = top**pr / (top**pr).sum()
        if 0.25 < pr < 64:
            assert np.exp(-(q * np.log(q)).sum()) == pytest.approx(0.8 * K, rel=1e-6)
            checked += 1
    assert checked == len(sims)


def test_strategies_differ_and_the_default_is_mean_embedding(model) -> None:
    asif, a_img, a_txt, queries = model
    assert DEFAULT_TEMPLATE_STRATEGY == "mean-embedding"
    default = asif.classify_scores(queries, LABELS, templates=TEMPLATES)
    maxed = asif.classify_scores(queries, LABELS, templates=TEMPLATES, template_strategy="max")
    np.testing.assert_allclose(
        default, expected_scores("mean-embedding", a_img, a_txt, queries), atol=2e-5
    )
    assert not np.allclose(default, maxed, atol=1e-3)


def test_one_template_gives_the_same_scores_for_every_strategy(model) -> None:
    asif, _, _, queries = model
    got = [
        asif.classify_scores(queries, LABELS, templates=["a {} thing"], template_strategy=s)
        for s in TEMPLATE_STRATEGIES
    ]
    for other in got[1:]:
        np.testing.assert_allclose(other, got[0], atol=1e-6)


def test_explain_label_follows_the_strategy(model) -> None:
    asif, _, _, queries = model
    for strategy in TEMPLATE_STRATEGIES:
        predicted = asif.classify(
            queries[:3], LABELS, templates=TEMPLATES, template_strategy=strategy
        )
        scores = asif.classify_scores(
            queries[:3], LABELS, templates=TEMPLATES, template_strategy=strategy
        )
        for row, q in enumerate(queries[:3]):
            why = asif.explain_label(q, LABELS, templates=TEMPLATES, template_strategy=strategy)
            assert why.label == predicted[row]
            for j, lab in enumerate(LABELS):
                assert why.scores[lab] == pytest.approx(float(scores[row, j]), abs=1e-5)


def test_bad_strategy_is_refused(model) -> None:
    asif, _, _, queries = model
    with pytest.raises(InvalidParameterError, match=r"'template_strategy'.*'max'.*'mean"):
        asif.classify(queries, LABELS, template_strategy="median")  # type: ignore[arg-type]


def test_cli_offers_the_strategies() -> None:
    from asif_qdrant.cli import main

    out = CliRunner().invoke(main, ["classify", "--help"])
    assert out.exit_code == 0
    assert "--template-strategy" in out.output and "mean-embedding" in out.output
