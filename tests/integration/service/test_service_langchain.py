"""The LangChain retriever pointed at the live service (``ASIFServiceRetriever``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

lc = pytest.importorskip(
    "langchain_asif_qdrant", reason="the LangChain adapter: pip install -e integrations/langchain"
)


def test_service_retriever_text_image_and_errors(served) -> None:
    retriever = lc.ASIFServiceRetriever(url=served.url, collection_name="stamps", k=3)
    docs = retriever.invoke("A red apple.")
    want = served.asif.search("stamps", "A red apple.", limit=3)
    assert [d.metadata["id"] for d in docs] == [h.id for h in want]
    assert [d.id for d in docs] == [str(h.id) for h in want]
    assert docs[0].page_content == want[0].payload["image"]
    assert docs[0].metadata["score"] == pytest.approx(want[0].score, abs=1e-5)
    assert docs[0].metadata["image_url"].startswith(served.url + "/api/images/catalogs/stamps/")
    category = served.items[0].metadata["category"]
    docs = retriever.invoke("An animal.", k=16, filter={"category": category})
    assert docs and all(d.metadata["category"] == category for d in docs)
    image = Path(served.items[5].image)
    (doc,) = asyncio.run(retriever.ainvoke(image, k=1))
    assert doc.metadata["id"] == 5
    with pytest.raises(LookupError, match="not a catalog"):
        lc.ASIFServiceRetriever(url=served.url, collection_name="nope").invoke("x")
    keyed = lc.ASIFServiceRetriever(url=served.keyed_url, collection_name="stamps")
    with pytest.raises(ValueError, match="API key"):
        keyed.invoke("x")
    keyed = lc.ASIFServiceRetriever(
        url=served.keyed_url, collection_name="stamps", api_key="test-key-0123456789"
    )
    assert len(keyed.invoke("A red apple.")) == 4
