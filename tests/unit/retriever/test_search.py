"""Catalog search settings for scale: pruned item vectors and two-stage queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import InvalidParameterError
from asif_qdrant.types import SearchOptions
from tests.helpers import precomputed_asif


def _model(path: Path, **options):
    rng = np.random.default_rng(3)
    asif = precomputed_asif(path=path, k=6, **options)
    asif.add_anchor_embeddings(rng.normal(size=(20, 8)), rng.normal(size=(20, 4)))
    asif.index_embeddings("items", rng.normal(size=(30, 8)), "image")
    return asif, rng.normal(size=(5, 4))


def test_pruned_items_store_their_largest_weights(tmp_path: Path) -> None:
    asif, queries = _model(tmp_path / "m", catalog_nnz=2)
    with asif:
        stored = {r.id: r for r in asif.store.scroll("items", with_vectors=True)}
        full = asif.relative_from_embeddings(
            np.stack([r.dense["image"] for r in stored.values()]), "image"
        )
        for rec, vec in zip(stored.values(), full, strict=True):
            got = rec.sparse["asif"].to_dict_weights()
            want = dict(sorted(vec.to_dict_weights().items(), key=lambda kv: (-kv[1], kv[0]))[:2])
            assert got.keys() == want.keys()
            assert np.allclose([got[a] for a in want], list(want.values()), atol=1e-6)
        # Scores: the full query against the stored (pruned) vectors.
        qv = asif.relative_from_embeddings(queries, "text")
        for q, hits in zip(qv, asif.search_batch("items", qv, limit=5), strict=True):
            qd = q.to_dict_weights()
            for h in hits:
                w = stored[h.id].sparse["asif"].to_dict_weights()
                assert h.score == pytest.approx(
                    sum(qd.get(a, 0.0) * x for a, x in w.items()), abs=1e-5
                )


def test_two_stage_search_rescores_its_candidates_exactly(tmp_path: Path) -> None:
    asif, queries = _model(tmp_path / "m")
    with asif:
        every = asif.search_embeddings("items", queries, "text", limit=30)
        two = asif.search_embeddings(
            "items", queries, "text", limit=5, query_nnz=2, prefetch_limit=10
        )
        for a, b in zip(every, two, strict=True):
            scores = {h.id: h.score for h in a}
            assert b and len(b) <= 5
            # Every hit scores what the full query gives it (exact rescoring), best first.
            assert [h.score for h in b] == pytest.approx([scores[h.id] for h in b], abs=1e-6)
            assert [h.score for h in b] == sorted((h.score for h in b), reverse=True)
        # With query_nnz >= k (every query weight) the result is the one-stage one.
        same = asif.search_embeddings("items", queries, "text", limit=5, query_nnz=6)
        assert [[h.id for h in x] for x in same] == [[h.id for h in x[:5]] for x in every]


def test_query_nnz_is_validated() -> None:
    with pytest.raises(InvalidParameterError, match="query_nnz"):
        SearchOptions(query_nnz=0)
