"""ASIFEmbeddings / ASIFSparseEmbeddings on the colour model (small deterministic encoders)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asif_qdrant import ASIF
from asif_qdrant.errors import (
    AnchorSetError,
    ImageDecodeError,
    InvalidInputError,
    InvalidParameterError,
)
from asif_suites import ASIFEmbeddingsSuite
from langchain_core.embeddings import Embeddings
from langchain_qdrant import SparseEmbeddings, SparseVector
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_asif_qdrant import DEFAULT_MAX_DIM, ASIFEmbeddings, ASIFSparseEmbeddings


class TestASIFEmbeddingsStandardUnit(ASIFEmbeddingsSuite, EmbeddingsUnitTests):
    """langchain-tests' standard unit suite, on the colour model."""

    @pytest.fixture(autouse=True)
    def _use_model(self, color_asif: ASIF) -> None:
        self._asif = color_asif


def _cos(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a), np.asarray(b)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


# -- ASIFEmbeddings (dense over anchor slots) ----------------------------------------------------
def test_dense_vector_is_the_sparse_vector_written_out_by_anchor_id(color_asif: ASIF) -> None:
    emb = ASIFEmbeddings(color_asif)
    assert isinstance(emb, Embeddings)
    assert emb.dim == color_asif.fingerprint.next_anchor_id == 8
    texts = ["a red thing", "blue", "the yellow one"]
    dense = emb.embed_documents(texts)
    for vec, sparse in zip(dense, color_asif.embed_texts(texts), strict=True):
        assert len(vec) == 8
        assert all(type(x) is float for x in vec)
        expected = np.zeros(8, np.float32)
        expected[sparse.indices.astype(int)] = sparse.values
        np.testing.assert_allclose(vec, expected, rtol=1e-6)
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    # the caption "A red square." is anchor 0: "a red thing" weighs on it most
    assert int(np.argmax(dense[0])) == 0


def test_text_and_image_vectors_share_one_space(color_asif: ASIF, color_data) -> None:
    emb = ASIFEmbeddings(color_asif)
    names = list(color_data.catalog)
    images = emb.embed_image([color_data.catalog[n] for n in names])
    for name in ("red", "blue", "yellow"):
        query = emb.embed_query(f"the {name} one")
        best = max(names, key=lambda n: _cos(query, images[names.index(n)]))
        assert best == name
    # image paths may be str or Path
    assert emb.embed_image([str(color_data.catalog["red"])]) == emb.embed_image(
        [color_data.catalog["red"]]
    )


def test_deleted_anchor_keeps_its_slot_at_zero(asif: ASIF) -> None:
    assert asif.delete_anchors([0]) == 1  # "A red square."
    emb = ASIFEmbeddings(asif)
    assert emb.dim == 8
    vec = emb.embed_query("a red thing")
    assert vec[0] == 0.0
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)


def test_anchor_added_after_creation_is_a_clear_error(asif: ASIF, color_data) -> None:
    emb = ASIFEmbeddings(asif)
    roomy = ASIFEmbeddings(asif, dim=12)
    asif.add_anchors([color_data.catalog["red"]], ["A pale red tile."])  # anchor id 8
    query = "a pale red tile"
    assert 8 in asif.embed_texts([query])[0].indices.tolist()
    with pytest.raises(AnchorSetError, match=r"Anchor id 8 does not fit .* dim 8 .*dim >= 9"):
        emb.embed_query(query)
    vec = roomy.embed_query(query)
    assert len(vec) == 12 and vec[8] > 0 and vec[9:] == [0.0, 0.0, 0.0]
    assert len(ASIFEmbeddings(asif).embed_query(query)) == 9


def test_dim_and_max_dim_are_checked(color_asif: ASIF) -> None:
    assert DEFAULT_MAX_DIM == 65_536
    with pytest.raises(InvalidParameterError, match=r"'dim' parameter .* must be >= 8"):
        ASIFEmbeddings(color_asif, dim=7)
    with pytest.raises(InvalidParameterError, match=r"at most max_dim=5 .*Got 8 .*ASIFSparse"):
        ASIFEmbeddings(color_asif, max_dim=5)
    with pytest.raises(InvalidParameterError, match=r"max_dim=20 .*Got 21"):
        ASIFEmbeddings(color_asif, dim=21, max_dim=20)
    with pytest.raises(InvalidParameterError, match=r"'max_dim' parameter .* int >= 1"):
        ASIFEmbeddings(color_asif, max_dim=0)
    with pytest.raises(InvalidParameterError, match=r"'asif' parameter of ASIFEmbeddings"):
        ASIFEmbeddings("my-asif")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ASIFEmbeddings(color_asif, 10)  # type: ignore[misc]


def test_a_model_without_anchors_has_no_dimension(tmp_path: Path) -> None:
    with ASIF(path=tmp_path, image_encoder="precomputed/i", text_encoder="precomputed/t") as m:
        with pytest.raises(AnchorSetError, match="no anchors"):
            ASIFEmbeddings(m)
        assert ASIFSparseEmbeddings(m).embed_documents([]) == []  # nothing to encode


def test_bad_inputs_are_named(color_asif: ASIF, color_data) -> None:
    for emb in (ASIFEmbeddings(color_asif), ASIFSparseEmbeddings(color_asif)):
        with pytest.raises(InvalidInputError, match="Got one str: wrap it"):
            emb.embed_documents("a red thing")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="text 1 must be a str"):
            emb.embed_documents(["red", 3])  # type: ignore[list-item]
        with pytest.raises(InvalidInputError, match="embed_query takes one str"):
            emb.embed_query(Path("x.png"))  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match=r"Got one path .*wrap it in a list"):
            emb.embed_image(str(color_data.catalog["red"]))  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="web URL"):
            emb.embed_image(["https://example.org/cat.png"])
        with pytest.raises(ImageDecodeError):
            emb.embed_image([color_data.catalog["red"].with_name("missing.png")])
        assert emb.embed_documents([]) == [] and emb.embed_image([]) == []


def test_async_versions_equal_sync(color_asif: ASIF, color_data) -> None:
    dense, sparse = ASIFEmbeddings(color_asif), ASIFSparseEmbeddings(color_asif)
    uris = [color_data.catalog["green"]]

    async def run() -> tuple[Any, ...]:
        return (
            await dense.aembed_query("green"),
            await dense.aembed_documents(["green", "cyan"]),
            await dense.aembed_image(uris),
            await sparse.aembed_query("green"),
            await sparse.aembed_documents(["green", "cyan"]),
            await sparse.aembed_image(uris),
        )

    got = asyncio.run(run())
    assert got[0] == dense.embed_query("green")
    assert got[1] == dense.embed_documents(["green", "cyan"])
    assert got[2] == dense.embed_image(uris)
    assert got[3] == sparse.embed_query("green")
    assert got[4] == sparse.embed_documents(["green", "cyan"])
    assert got[5] == sparse.embed_image(uris)


# -- ASIFSparseEmbeddings -------------------------------------------------------------------------
def test_sparse_vectors_are_the_asif_vectors(color_asif: ASIF, color_data) -> None:
    emb = ASIFSparseEmbeddings(color_asif)
    assert isinstance(emb, SparseEmbeddings)
    texts = ["a red thing", "cyan"]
    for got, ref in zip(emb.embed_documents(texts), color_asif.embed_texts(texts), strict=True):
        assert isinstance(got, SparseVector)
        assert all(type(i) is int for i in got.indices)
        assert all(type(v) is float for v in got.values)
        assert got.indices == ref.indices.tolist()
        np.testing.assert_allclose(got.values, ref.values)
        assert len(got.indices) <= color_asif.k
    image = emb.embed_image([color_data.catalog["blue"]])[0]
    ref = color_asif.embed_images([color_data.catalog["blue"]])[0]
    assert image.indices == ref.indices.tolist()
    assert image.indices[0] == 2  # "A blue square." is anchor 2
    assert emb.embed_query("a red thing") == emb.embed_documents(["a red thing"])[0]
    assert "ASIFSparseEmbeddings(asif=ASIF(" in repr(emb)
