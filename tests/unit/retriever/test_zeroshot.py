"""Zero-shot prompt-template strategies of ``ASIF.classify``, checked against direct numpy."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from asif_qdrant import ASIF, InvalidParameterError
from asif_qdrant.model import DEFAULT_TEMPLATE_STRATEGY, TEMPLATE_STRATEGIES
from asif_qdrant.store import Store
from tests.conftest import ColorImageEncoder, HashTextEncoder

K, P = 7, 8.0
LABELS = ["red", "green", "blue", "yellow", "purple"]
TEMPLATES = ["a {} thing", "{}", "a photo of something {}", "{} colour"]
WORDS = ("a thing in", "an object coloured", "photo:", "the swatch is")
RGB = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "purple": (140, 30, 160),
}


def swatch(rgb: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((16, 16, 3), rgb, dtype=np.int16) + rng.integers(-60, 61, (16, 16, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def relative(q: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """The paper's recipe in plain numpy: dense (n_queries, n_anchors)."""
    sims = unit(q) @ unit(anchors).T
    out = np.zeros_like(sims)
    for r, row in enumerate(sims):
        top = np.argsort(-row, kind="stable")[:K]
        out[r, top] = np.clip(row[top], 0, None) ** P
    return unit(out)


@pytest.fixture
def model(store: Store) -> tuple[ASIF, np.ndarray, np.ndarray, list[np.ndarray]]:
    img_enc, txt_enc = ColorImageEncoder(), HashTextEncoder()
    anchor_images = [swatch(RGB[c], 10 * j + i) for i, c in enumerate(LABELS) for j in range(4)]
    captions = [
        f"{w} {c} no. {3 * i + j}" for i, c in enumerate(LABELS) for j, w in enumerate(WORDS)
    ]
    asif = ASIF(store=store, k=K, p=P, image_encoder=img_enc, text_encoder=txt_enc)
    asif.add_anchors(anchor_images, captions)
    queries = [swatch(RGB[c], 500 + i) for i, c in enumerate(LABELS * 2)]
    return asif, img_enc.embed(anchor_images), txt_enc.embed(captions), queries


def expected_scores(
    strategy: str, anchors_img: np.ndarray, anchors_txt: np.ndarray, queries: list[np.ndarray]
) -> np.ndarray:
    txt_enc = HashTextEncoder()
    img = relative(ColorImageEncoder().embed(queries), anchors_img)
    prompts = [t.format(lab) for lab in LABELS for t in TEMPLATES]
    emb = txt_enc.embed(prompts).reshape(len(LABELS), len(TEMPLATES), -1)
    if strategy == "mean-embedding":
        return img @ relative(emb.mean(axis=1), anchors_txt).T
    rel = relative(emb.reshape(len(prompts), -1), anchors_txt).reshape(
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
