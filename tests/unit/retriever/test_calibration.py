"""The calibrated "no match": confidence against a direct numpy formula, and its floor in search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import ASIF, InvalidInputError, InvalidParameterError, SearchOptions


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def direct_confidence(anchors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Leave-one-out best cosines of the anchors; the share at or below each query's best."""
    a = unit(anchors)
    sims = a @ a.T
    np.fill_diagonal(sims, -np.inf)
    ref = np.sort(sims.max(axis=1))
    best = (unit(queries) @ a.T).max(axis=1)
    return np.searchsorted(ref, best, side="right") / len(ref)


def model(path: Path, mode: str) -> ASIF:
    return ASIF(
        path=path,
        k=8,
        image_encoder="precomputed/image",
        text_encoder="precomputed/text",
        show_progress_bar=False,
        anchor_search=mode,
    )


@pytest.mark.parametrize("mode", ["auto", "qdrant"])
def test_confidence_equals_the_direct_formula(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(3)
    img, txt = rng.normal(size=(60, 6)), rng.normal(size=(60, 5)) + 1.0
    queries = np.concatenate([txt[:5] + 0.05 * rng.normal(size=(5, 5)), rng.normal(size=(5, 5))])
    with model(tmp_path, mode) as asif:
        asif.add_anchor_embeddings(img, txt)
        got = asif.confidence_of_embeddings(queries, "text")
        got_img = asif.confidence_of_embeddings(img[:3], "image")
    # float32 storage moves a cosine by ~1e-7: at most one reference step of difference.
    np.testing.assert_allclose(got, direct_confidence(txt, queries), atol=1 / 60 + 1e-9)
    np.testing.assert_allclose(got_img, direct_confidence(img, img[:3]), atol=1 / 60 + 1e-9)


def test_reference_follows_anchor_edits_and_min_confidence_refuses(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    img, txt = rng.normal(size=(40, 6)), rng.normal(size=(40, 5)) + 2.0
    with model(tmp_path, "auto") as asif:
        asif.add_anchor_embeddings(img, txt)
        asif.index_embeddings("items", img[:10], "image")
        near, far = txt[:1] + 0.01, np.array([[1.0, -1.0, 1.0, -1.0, 0.3]])
        kept = asif.search_embeddings("items", near, "text", min_confidence=0.05)
        refused = asif.search_embeddings("items", far, "text", min_confidence=0.05)
        assert len(kept[0]) > 0 and refused == [[]]
        # Without the floor the unrelated query still gets hits (what the floor is for).
        assert len(asif.search_embeddings("items", far, "text")[0]) > 0
        # An edit re-computes the reference: the confidence follows the new anchors.
        new_txt = rng.normal(size=(5, 5))
        asif.add_anchor_embeddings(rng.normal(size=(5, 6)), new_txt)
        all_txt = np.concatenate([txt, new_txt])
        got = asif.confidence_of_embeddings(np.concatenate([near, far, new_txt[:2]]), "text")
    want = direct_confidence(all_txt, np.concatenate([near, far, new_txt[:2]]))
    np.testing.assert_allclose(got, want, atol=1 / 45 + 1e-9)


def test_min_confidence_is_validated_and_needs_the_query(tmp_path: Path) -> None:
    for bad in (-0.1, 1.5, float("nan"), "0.1"):
        with pytest.raises(InvalidParameterError, match="min_confidence"):
            SearchOptions(min_confidence=bad)
    rng = np.random.default_rng(5)
    with model(tmp_path, "auto") as asif:
        asif.add_anchor_embeddings(rng.normal(size=(12, 6)), rng.normal(size=(12, 5)))
        asif.index_embeddings("items", rng.normal(size=(4, 6)), "image")
        (vec,) = asif.relative_from_embeddings(rng.normal(size=(1, 6)), "image")
        with pytest.raises(InvalidInputError, match="min_confidence"):
            asif.search_batch("items", [vec], min_confidence=0.1)
