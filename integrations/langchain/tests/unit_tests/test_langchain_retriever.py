"""ASIFRetriever on both backends (embedded engine, qdrant-client local), colour squares."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from asif_qdrant import ASIF
from asif_qdrant.errors import CollectionNotFoundError, InvalidInputError
from langchain_core.documents import Document
from PIL import Image
from pydantic import ValidationError

from langchain_asif_qdrant import ASIFRetriever

NAMES = ["red", "green", "blue", "yellow"]


def _name(doc: Document) -> str:
    return Path(doc.page_content).stem.removeprefix("item_")


@pytest.fixture
def retriever(asif_any: ASIF, color_data) -> ASIFRetriever:
    r = ASIFRetriever(asif=asif_any, collection_name="things", k=2)
    ids = r.add_images(
        [color_data.catalog[n] for n in NAMES],
        metadatas=[
            {"color": n, "group": "warm" if n in ("red", "yellow") else "cool"} for n in NAMES
        ],
    )
    assert ids == [0, 1, 2, 3]
    assert r.add_texts([f"Something {n}." for n in NAMES], [{"color": n} for n in NAMES]) == [
        4,
        5,
        6,
        7,
    ]
    return r


def test_text_to_image(retriever: ASIFRetriever, color_data) -> None:
    docs = retriever.invoke("a red thing", item_modality="image")
    assert [_name(d) for d in docs][:1] == ["red"]
    top = docs[0]
    assert top.page_content == str(color_data.catalog["red"])
    assert top.id == "0"
    assert top.metadata["image"] == str(color_data.catalog["red"])
    assert top.metadata["modality"] == "image" and top.metadata["color"] == "red"
    assert top.metadata["id"] == 0 and top.metadata["collection_name"] == "things"
    assert 0.5 < top.metadata["score"] <= 1.0 + 1e-6
    assert top.metadata["score"] >= docs[1].metadata["score"]


def test_image_to_text(retriever: ASIFRetriever, color_data) -> None:
    docs = retriever.invoke(color_data.catalog["blue"], item_modality="text")
    assert docs[0].page_content == "Something blue."
    assert (
        docs[0].metadata["modality"] == "text" and docs[0].metadata["text"] == docs[0].page_content
    )


def test_image_to_image(retriever: ASIFRetriever, color_data, tmp_path: Path) -> None:
    # another shade of yellow, not in the catalog, as a file and as a PIL image
    query = tmp_path / "query.png"
    Image.new("RGB", (16, 16), (240, 230, 30)).save(query)
    assert (
        _name(retriever.similarity_search_by_image(query, k=1, item_modality="image")[0])
        == "yellow"
    )
    assert (
        _name(retriever.similarity_search_by_image(str(query), item_modality="image")[0])
        == "yellow"
    )
    with Image.open(query) as img:
        assert _name(retriever.invoke(img.copy(), item_modality="image")[0]) == "yellow"
    assert (
        _name(retriever.invoke(np.asarray(Image.open(query)), item_modality="image")[0]) == "yellow"
    )


def test_k_filter_modality_and_threshold(retriever: ASIFRetriever) -> None:
    assert len(retriever.invoke("a red thing")) == 2
    assert len(retriever.invoke("a red thing", k=1)) == 1
    assert len(retriever.similarity_search("a red thing", k=3)) == 3
    warm = retriever.invoke("a blue thing", filter={"group": "warm"}, k=4)
    assert warm and {d.metadata["color"] for d in warm} <= {"red", "yellow"}
    assert all(d.metadata["modality"] == "image" for d in warm)  # only images have "group"
    texts = ASIFRetriever(asif=retriever.asif, collection_name="things", item_modality="text", k=8)
    assert {d.metadata["modality"] for d in texts.invoke("a red thing")} == {"text"}
    strict = retriever.invoke("a red thing", score_threshold=0.5, k=8)
    assert strict and all(d.metadata["score"] >= 0.5 for d in strict)
    assert len(strict) < len(retriever.invoke("a red thing", k=8))


def test_async_invoke(retriever: ASIFRetriever) -> None:
    docs = asyncio.run(retriever.ainvoke("a green thing", item_modality="image"))
    assert _name(docs[0]) == "green"


@pytest.mark.parametrize("kind", ["edge", "client-local"])
def test_add_documents_and_reopening(kind: str, tmp_path: Path, color_data, color_models) -> None:
    build, reopen = color_models
    asif = build(kind, tmp_path, color_data)
    r = ASIFRetriever(asif=asif, collection_name="docs", k=3)
    ids = r.add_documents([Document(page_content="Something cyan.", metadata={"src": "a"})])
    r.add_images([color_data.catalog["cyan"], color_data.catalog["red"]])
    before = r.invoke("the cyan one")
    assert {d.metadata["modality"] for d in before} == {"text", "image"}
    text = next(d for d in before if d.metadata["modality"] == "text")
    assert text.metadata == {
        "text": "Something cyan.",
        "modality": "text",
        "src": "a",
        "id": ids[0],
        "score": text.metadata["score"],
        "collection_name": "docs",
    }
    asif.close()
    again = reopen(kind, tmp_path)
    try:
        after = ASIFRetriever(asif=again, collection_name="docs", k=3).invoke("the cyan one")
        assert [(d.page_content, d.metadata) for d in after] == [
            (d.page_content, d.metadata) for d in before
        ]
    finally:
        again.close()


def test_bad_arguments(retriever: ASIFRetriever, color_data) -> None:
    with pytest.raises(ValidationError, match=r"The 'k' parameter of ASIFRetriever must be an int"):
        ASIFRetriever(asif=retriever.asif, collection_name="things", k=0)
    with pytest.raises(ValidationError):
        ASIFRetriever(asif="not a model", collection_name="things")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"unexpected search arguments \['top_k'\]"):
        retriever.invoke("red", top_k=3)
    with pytest.raises(InvalidInputError, match="must be a str"):
        retriever.invoke(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="similarity_search takes a text"):
        retriever.similarity_search(color_data.catalog["red"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="one entry per item"):
        retriever.add_texts(["a", "b"], metadatas=[{}])
    with pytest.raises(InvalidInputError, match="wrap it"):
        retriever.add_images(str(color_data.catalog["red"]))  # type: ignore[arg-type]
    with pytest.raises(CollectionNotFoundError, match="'nowhere' does not exist"):
        ASIFRetriever(asif=retriever.asif, collection_name="nowhere").invoke("red")
