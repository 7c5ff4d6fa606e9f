"""Errors that leave the library: typed, and never showing a URL's credentials (#19)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asif_qdrant.errors import (
    ASIFError,
    InvalidInputError,
    InvalidParameterError,
    StoreError,
    is_blank,
    redact_credentials,
)
from asif_qdrant.relative import relative_weights
from asif_qdrant.store.base import filter_conditions
from asif_qdrant.store.remote import public_url
from tests.helpers import precomputed_asif

SECRET = "s3cr/et:pw"
URLS = [
    f"http://user:{SECRET}@localhost:1",
    f"http://user:{SECRET}@host:abc",
    f"https://user:{SECRET}@host:6333/x?api-key=k3y",
]


@pytest.mark.parametrize("url", URLS)
def test_credentials_are_redacted_in_messages_and_reprs(url: str) -> None:
    assert "s3cr" not in redact_credentials(f"cannot reach {url}: refused")
    assert "s3cr" not in public_url(url)
    err = StoreError(f"Qdrant failed at {url}")
    assert "s3cr" not in str(err) and "s3cr" not in repr(err)
    assert "k3y" not in str(err)


@pytest.mark.parametrize("url", URLS[:2])
def test_the_cli_never_prints_the_password(url: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "asif_qdrant", "anchors", "list", "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "s3cr" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize("query", ["\u200b", " \u200b\u200b ", "\ufeff", "\t\n"])
def test_invisible_queries_are_refused(query: str, tmp_path: Path) -> None:
    """A zero-width-space query got confident hits; it says nothing, so it is refused."""
    assert is_blank(query) and not is_blank("a\u200b")
    rng = np.random.default_rng(0)
    with precomputed_asif(path=str(tmp_path), k=2, p=8.0) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(3, 4)), rng.normal(size=(3, 3)))
        with pytest.raises(InvalidInputError, match="empty"):
            asif.embed_texts([query])


def test_a_large_p_does_not_underflow_to_no_hits(tmp_path: Path) -> None:
    """p = 400 left rows of zeros (0.1**400 underflows float64): the weights scale first."""
    sims = np.array([[0.1, 0.099, 0.05], [0.3, 0.2, 0.1]])
    w = relative_weights(sims, p=400.0)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, rtol=1e-6)  # no row of zeros
    assert (w[:, 0] > 0.99).all()
    rng = np.random.default_rng(1)
    with precomputed_asif(path=str(tmp_path), k=3, p=400.0) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(6, 4)), rng.normal(size=(6, 3)))
        items = rng.normal(size=(4, 4))
        asif.index_embeddings("items", items, "image")
        hits = asif.search_embeddings("items", items, "image")
        assert all(h for h in hits)


@pytest.mark.parametrize(
    "flt", [{1: "x"}, {"": 1}, {"a": [[1]]}, {"a": 10**30}, {"a": [1, 10**30]}, {"a": 1.5}]
)
def test_bad_filters_are_typed_errors(flt: dict, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="filter"):
        filter_conditions(flt)
    rng = np.random.default_rng(2)
    with precomputed_asif(path=str(tmp_path), k=2, p=8.0) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(3, 4)), rng.normal(size=(3, 3)))
        asif.index_embeddings("c", rng.normal(size=(2, 4)), "image")
        with pytest.raises(ASIFError, match="filter"):
            asif.search_embeddings("c", rng.normal(size=(1, 4)), "image", filter=flt)
