"""Real stamps, real encoders: QdrantVectorStore round trips and ASIFRetriever on each backend.

All three directions are checked against the queries the small stamp model answers with a wide
margin (see conftest.py): text "A fire truck." -> the fire truck image; the fire truck image ->
its caption; a European bear photo (not in the catalog) -> the koala image.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from asif_qdrant import ASIF
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_qdrant import QdrantVectorStore, RetrievalMode
from qdrant_client import QdrantClient

from langchain_asif_qdrant import ASIFQdrantVectorStore, ASIFRetriever, ASIFSparseEmbeddings

pytestmark = pytest.mark.integration


def _stem(path: str) -> str:
    return Path(path).stem


@pytest.fixture
def collection_name() -> Iterator[str]:
    yield f"lc_test_{uuid.uuid4().hex[:10]}"


def _cleanup(store: QdrantVectorStore) -> None:
    if store.client.collection_exists(store.collection_name):
        store.client.delete_collection(store.collection_name)
    store.client.close()


@pytest.mark.parametrize("mode", [RetrievalMode.SPARSE, RetrievalMode.HYBRID])
def test_qdrant_vector_store_round_trip(
    mode: RetrievalMode, location: str, collection_name: str, stamp_asif: ASIF, stamps
) -> None:
    """Add texts and images to the real QdrantVectorStore, search in all three directions.

    HYBRID fuses ASIF with a dense *text* embedding; here langchain-core's
    DeterministicFakeEmbedding (a fake: seeded random vectors per text) plays that part.
    """
    names = list(stamps.catalog)
    store = ASIFQdrantVectorStore.from_texts(
        [stamps.captions[n] for n in names],
        metadatas=[{"name": n} for n in names],
        embedding=DeterministicFakeEmbedding(size=32) if mode == RetrievalMode.HYBRID else None,
        location=location,
        collection_name=collection_name,
        retrieval_mode=mode,
        sparse_embedding=ASIFSparseEmbeddings(stamp_asif),
    )
    try:
        store.add_images([stamps.catalog[n] for n in names], [{"name": n} for n in names])
        images, texts = store.modality_filter("image"), store.modality_filter("text")
        # text -> image: the expected item first
        docs = store.similarity_search("A fire truck.", k=4, filter=images)
        assert [d.metadata["name"] for d in docs][:1] == ["firetruck"]
        assert docs[0].page_content == str(stamps.catalog["firetruck"])
        assert len(docs) == 4
        # image -> text
        docs = store.similarity_search_by_image(stamps.catalog["firetruck"], k=2, filter=texts)
        assert docs[0].page_content == "A fire truck."
        # image -> image, with a photo that is not in the store
        hits = store.similarity_search_by_image_with_score(
            stamps.queries["european_bear"], k=4, filter=images
        )
        assert hits[0][0].metadata["name"] == "koala"
        assert hits[0][1] > hits[1][1]
        # as_retriever: a text and a Path query
        retriever = store.as_retriever(search_kwargs={"k": 1, "filter": images})
        assert retriever.invoke("A fire truck.")[0].metadata["name"] == "firetruck"
        assert retriever.invoke(stamps.queries["european_bear"])[0].metadata["name"] == "koala"
    finally:
        _cleanup(store)


def test_plain_qdrant_vector_store_sparse_texts(
    location: str, collection_name: str, stamp_asif: ASIF, stamps
) -> None:
    """langchain-qdrant's own class, SPARSE mode, no dense embedding: text -> text."""
    store = QdrantVectorStore.from_texts(
        list(stamps.captions.values()),
        location=location,
        collection_name=collection_name,
        retrieval_mode=RetrievalMode.SPARSE,
        sparse_embedding=ASIFSparseEmbeddings(stamp_asif),
    )
    try:
        docs = store.as_retriever(search_kwargs={"k": 1}).invoke("a fire engine")
        assert [d.page_content for d in docs] == ["A fire truck."]
    finally:
        _cleanup(store)


def test_sparse_store_survives_reopening(
    tmp_path: Path, make_stamp_asif: Callable[..., ASIF], image_encoder, text_encoder, stamps
) -> None:
    """Reopen both the ASIF model (embedded folder) and the Qdrant collection (local folder)."""
    asif = make_stamp_asif("edge", tmp_path)
    store = ASIFQdrantVectorStore.from_texts(
        ["A fire truck.", "A koala."],
        path=str(tmp_path / "qdrant"),
        collection_name="stamps",
        retrieval_mode=RetrievalMode.SPARSE,
        sparse_embedding=ASIFSparseEmbeddings(asif),
    )
    store.add_images([stamps.catalog["firetruck"], stamps.catalog["koala"]])
    before = store.similarity_search_with_score("A fire truck.", k=4)
    store.client.close()
    asif.close()

    asif = ASIF(path=tmp_path / "edge", image_encoder=image_encoder, text_encoder=text_encoder)
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        again = ASIFQdrantVectorStore(
            client,
            "stamps",
            retrieval_mode=RetrievalMode.SPARSE,
            sparse_embedding=ASIFSparseEmbeddings(asif),
        )
        after = again.similarity_search_with_score("A fire truck.", k=4)
        assert [(d.page_content, round(s, 5)) for d, s in after] == [
            (d.page_content, round(s, 5)) for d, s in before
        ]
        found = again.similarity_search("A fire truck.", k=1, filter=again.modality_filter("image"))
        assert _stem(found[0].page_content) == "firetruck"
    finally:
        client.close()
        asif.close()


def test_retriever_all_three_directions(stamp_asif_any: ASIF, stamps) -> None:
    """ASIFRetriever on each backend: add_images / add_texts, then the three directions."""
    coll = f"{stamp_asif_any.name}_catalog"
    r = ASIFRetriever(asif=stamp_asif_any, collection_name=coll, k=2)
    names = list(stamps.catalog)
    r.add_images([stamps.catalog[n] for n in names], [{"name": n} for n in names])
    r.add_texts([stamps.captions[n] for n in names], [{"name": n} for n in names])

    docs = r.invoke("A fire truck.", item_modality="image")
    assert docs[0].metadata["name"] == "firetruck"
    assert docs[0].page_content == str(stamps.catalog["firetruck"])
    assert docs[0].metadata["score"] > docs[1].metadata["score"] > 0
    docs = r.invoke(stamps.catalog["firetruck"], item_modality="text")
    assert docs[0].page_content == "A fire truck." and docs[0].metadata["modality"] == "text"
    docs = r.similarity_search_by_image(stamps.queries["european_bear"], item_modality="image")
    assert docs[0].metadata["name"] == "koala"
    # filters and k
    only = r.invoke("A fire truck.", filter={"name": ["koala", "duck"]}, k=8)
    assert {d.metadata["name"] for d in only} == {"koala", "duck"} and len(only) == 4
