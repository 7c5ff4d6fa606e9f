"""The real QdrantVectorStore (qdrant-client local mode) with ASIF vectors, on colour squares."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asif_qdrant import ASIF
from asif_qdrant.errors import InvalidInputError, InvalidParameterError
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseEmbeddings, SparseVector
from langchain_qdrant.qdrant import QdrantVectorStoreError
from qdrant_client import QdrantClient, models

from langchain_asif_qdrant import ASIFEmbeddings, ASIFQdrantVectorStore, ASIFSparseEmbeddings

TEXTS = [f"Something {name}." for name in ("red", "green", "blue", "yellow")]


@pytest.fixture(autouse=True)
def _close_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every QdrantClient a test opens (local mode complains at exit otherwise)."""
    opened: list[QdrantClient] = []
    init = QdrantClient.__init__

    def tracking_init(self: QdrantClient, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(QdrantClient, "__init__", tracking_init)
    yield
    for client in opened:
        client.close()


def _name(path: str) -> str:
    return Path(path).stem.removeprefix("item_")


def _sparse_store(asif: ASIF, **kw) -> ASIFQdrantVectorStore:
    return ASIFQdrantVectorStore.from_texts(
        TEXTS,
        metadatas=[{"n": i} for i in range(len(TEXTS))],
        location=":memory:",
        collection_name="c",
        retrieval_mode=RetrievalMode.SPARSE,
        sparse_embedding=ASIFSparseEmbeddings(asif),
        **kw,
    )


def test_plain_qdrant_vector_store_sparse_mode_texts(color_asif: ASIF) -> None:
    """langchain-qdrant's own class, no dense embedding at all, as_retriever included."""
    store = QdrantVectorStore.from_texts(
        TEXTS,
        location=":memory:",
        retrieval_mode=RetrievalMode.SPARSE,
        sparse_embedding=ASIFSparseEmbeddings(color_asif),
    )
    assert store.embeddings is None
    docs = store.similarity_search("a blue thing", k=2)
    assert docs[0].page_content == "Something blue."
    (_, score), *_ = store.similarity_search_with_score("a blue thing", k=1)
    ref = ASIFSparseEmbeddings(color_asif)
    q, d = ref.embed_query("a blue thing"), ref.embed_documents(["Something blue."])[0]
    dot = sum(
        dict(zip(q.indices, q.values, strict=True)).get(i, 0.0) * v
        for i, v in zip(d.indices, d.values, strict=True)
    )
    assert score == pytest.approx(dot, rel=1e-4)  # the stored score is the ASIF similarity
    retriever = store.as_retriever(search_kwargs={"k": 1})
    assert retriever.tags == ["QdrantVectorStore"]
    assert [d.page_content for d in retriever.invoke("the yellow one")] == ["Something yellow."]


def test_texts_and_images_all_three_directions(color_asif: ASIF, color_data) -> None:
    store = _sparse_store(color_asif)
    uris = [color_data.catalog[n] for n in ("red", "green", "blue", "yellow")]
    ids = store.add_images(uris, metadatas=[{"shade": "pale"}] * 4)
    assert len(ids) == 4 and len(set(ids)) == 4
    # text -> image
    docs = store.similarity_search("a red thing", k=2, filter=store.modality_filter("image"))
    assert _name(docs[0].page_content) == "red"
    assert docs[0].metadata["image"] == str(color_data.catalog["red"])
    assert docs[0].metadata["modality"] == "image" and docs[0].metadata["shade"] == "pale"
    # image -> text
    docs = store.similarity_search_by_image(
        color_data.catalog["blue"], k=1, filter=store.modality_filter("text")
    )
    assert docs[0].page_content == "Something blue."
    assert docs[0].metadata["modality"] == "text" and docs[0].metadata["n"] == 2
    # image -> image (a Path query is an image, also through as_retriever)
    hits = store.similarity_search_by_image_with_score(
        color_data.catalog["yellow"], k=4, filter=store.modality_filter("image")
    )
    assert _name(hits[0][0].page_content) == "yellow"
    assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    retriever = store.as_retriever(search_kwargs={"k": 1, "filter": store.modality_filter("image")})
    assert [_name(d.page_content) for d in retriever.invoke(color_data.catalog["green"])] == [
        "green"
    ]
    # relevance scores in SPARSE mode are the ASIF scores themselves
    rel = store.similarity_search_with_relevance_scores("a red thing", k=1)
    raw = store.similarity_search_with_score("a red thing", k=1)
    assert rel[0][1] == pytest.approx(raw[0][1])


def test_hybrid_mode_with_a_text_only_dense_embedding(color_asif: ASIF, color_data) -> None:
    """HYBRID: any dense text embedding (langchain-core's DeterministicFakeEmbedding, a fake
    that hashes texts to random vectors) fused with ASIF; images carry the ASIF vector only."""
    store = ASIFQdrantVectorStore.from_texts(
        TEXTS,
        embedding=DeterministicFakeEmbedding(size=16),
        location=":memory:",
        retrieval_mode=RetrievalMode.HYBRID,
        sparse_embedding=ASIFSparseEmbeddings(color_asif),
    )
    ids = store.add_images([color_data.catalog[n] for n in ("red", "green", "blue")])
    (point,) = store.client.retrieve(store.collection_name, ids[:1], with_vectors=True)
    assert set(point.vector) == {"langchain-sparse"}  # no dense text vector for an image
    images = store.modality_filter("image")
    assert _name(store.similarity_search("a green thing", k=1, filter=images)[0].page_content) == (
        "green"
    )
    assert store.similarity_search("Something red.", k=1)[0].page_content == "Something red."
    docs = store.similarity_search_by_image(color_data.catalog["blue"], k=1, filter=images)
    assert _name(docs[0].page_content) == "blue"


def test_hybrid_and_dense_modes_with_asif_embeddings(color_asif: ASIF, color_data) -> None:
    """ASIFEmbeddings embeds images too, so images get the dense vector in both modes."""
    dense = ASIFEmbeddings(color_asif)
    for mode, sparse in (
        (RetrievalMode.HYBRID, ASIFSparseEmbeddings(color_asif)),
        (RetrievalMode.DENSE, None),
    ):
        store = ASIFQdrantVectorStore.from_texts(
            TEXTS[:2],
            embedding=dense,
            location=":memory:",
            retrieval_mode=mode,
            sparse_embedding=sparse,
        )
        (pid,) = store.add_images([color_data.catalog["cyan"]])
        (point,) = store.client.retrieve(store.collection_name, [pid], with_vectors=True)
        vector = point.vector[""] if isinstance(point.vector, dict) else point.vector
        assert len(vector) == dense.dim
        found = store.similarity_search("the cyan one", k=1, filter=store.modality_filter("image"))
        assert _name(found[0].page_content) == "cyan", mode
        by_image = store.similarity_search_by_image(color_data.catalog["cyan"], k=1)
        assert _name(by_image[0].page_content) == "cyan", mode


def test_dense_mode_with_a_text_only_embedding_cannot_store_images(color_data) -> None:
    store = ASIFQdrantVectorStore.from_texts(
        TEXTS, embedding=DeterministicFakeEmbedding(size=8), location=":memory:"
    )
    with pytest.raises(InvalidParameterError, match="DeterministicFakeEmbedding has none"):
        store.add_images([color_data.catalog["red"]])
    with pytest.raises(InvalidParameterError, match="embed_image"):
        store.similarity_search_by_image(color_data.catalog["red"])


class _TextOnlySparse(SparseEmbeddings):
    """A sparse embedding that cannot read images (like FastEmbedSparse)."""

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        return [SparseVector(indices=[len(t)], values=[1.0]) for t in texts]

    def embed_query(self, text: str) -> SparseVector:
        return self.embed_documents([text])[0]


def test_misconfigurations_raise_instead_of_falling_back(color_asif: ASIF) -> None:
    sparse = ASIFSparseEmbeddings(color_asif)
    fake = DeterministicFakeEmbedding(size=8)
    client = QdrantClient(":memory:")
    cases = [
        ({"retrieval_mode": RetrievalMode.SPARSE}, "sparse_embedding"),
        (
            {"retrieval_mode": RetrievalMode.SPARSE, "sparse_embedding": sparse, "embedding": fake},
            "would be ignored",
        ),
        (
            {"retrieval_mode": RetrievalMode.DENSE, "sparse_embedding": sparse, "embedding": fake},
            "would be ignored",
        ),
        (
            {"retrieval_mode": RetrievalMode.SPARSE, "sparse_embedding": _TextOnlySparse()},
            "needs an ASIF sparse embedding.*Got _TextOnlySparse",
        ),
        ({"retrieval_mode": "sparsest", "sparse_embedding": sparse}, "retrieval_mode"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            ASIFQdrantVectorStore(client, "nothing", **kwargs)
        # also through from_texts, before any collection is created
        with pytest.raises(ValueError, match=match):
            ASIFQdrantVectorStore.from_texts(["x"], location=":memory:", **kwargs)
    assert client.get_collections().collections == []


def test_existing_collections_are_checked(color_asif: ASIF) -> None:
    sparse = ASIFSparseEmbeddings(color_asif)
    client = QdrantClient(":memory:")
    client.create_collection(
        "dense_only", vectors_config={"": models.VectorParams(size=8, distance="Cosine")}
    )
    client.create_collection(
        "idf",
        vectors_config={},
        sparse_vectors_config={
            "langchain-sparse": models.SparseVectorParams(modifier=models.Modifier.IDF)
        },
    )
    for cls in (QdrantVectorStore, ASIFQdrantVectorStore):  # both refuse the dense collection
        with pytest.raises(QdrantVectorStoreError, match="does not contain sparse vectors"):
            cls(client, "dense_only", retrieval_mode=RetrievalMode.SPARSE, sparse_embedding=sparse)
    with pytest.raises(QdrantVectorStoreError, match=r"modifier .*plain dot product"):
        ASIFQdrantVectorStore(
            client, "idf", retrieval_mode=RetrievalMode.SPARSE, sparse_embedding=sparse
        )


def test_sparse_store_survives_reopening(color_asif: ASIF, color_data, tmp_path: Path) -> None:
    sparse = ASIFSparseEmbeddings(color_asif)
    name = f"c_{uuid.uuid4().hex[:8]}"
    store = ASIFQdrantVectorStore.from_texts(
        TEXTS,
        path=str(tmp_path / "qdrant"),
        collection_name=name,
        retrieval_mode=RetrievalMode.SPARSE,
        sparse_embedding=sparse,
    )
    store.add_images([color_data.catalog["magenta"]], metadatas=[{"tag": "m"}])
    before = [(d.page_content, s) for d, s in store.similarity_search_with_score("magenta", k=9)]
    store.client.close()

    again = ASIFQdrantVectorStore.from_existing_collection(
        name,
        path=str(tmp_path / "qdrant"),
        retrieval_mode=RetrievalMode.SPARSE,
        sparse_embedding=sparse,
    )
    after = [(d.page_content, s) for d, s in again.similarity_search_with_score("magenta", k=9)]
    assert after == before and len(after) == 4  # "Something blue." shares no anchor
    assert after[0][0] == str(color_data.catalog["magenta"])
    docs = again.as_retriever(search_kwargs={"k": 1}).invoke(color_data.catalog["magenta"])
    assert docs[0].metadata["tag"] == "m"
    with pytest.raises(ValueError, match="DENSE uses the dense 'embedding' only"):
        ASIFQdrantVectorStore(again.client, name, sparse_embedding=sparse)  # forgot the mode: DENSE
    again.client.close()


def test_add_images_checks_its_arguments(color_asif: ASIF, color_data) -> None:
    store = _sparse_store(color_asif)
    red = color_data.catalog["red"]
    with pytest.raises(InvalidInputError, match="one entry per item"):
        store.add_images([red], metadatas=[{}, {}])
    with pytest.raises(InvalidInputError, match="one entry per image"):
        store.add_images([red], ids=[1, 2])
    with pytest.raises(InvalidInputError, match="wrap it in a list"):
        store.add_images(red)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"'batch_size' parameter .* int >= 1"):
        store.add_images([red], batch_size=0)
    with pytest.raises(InvalidInputError, match=r"must be a str .* or an os.PathLike"):
        store.similarity_search_with_score(b"png bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="'image' or 'text'"):
        store.modality_filter("video")  # type: ignore[arg-type]
    assert store.add_images([red], ids=[7]) == [7]
    assert store.get_by_ids([7])[0].metadata["modality"] == "image"
