"""``ASIFServiceRetriever``: a LangChain retriever over a running ``asif-qdrant serve``.

Where :class:`~langchain_asif_qdrant.ASIFRetriever` opens the model in the same process
(loading its encoders there), this one talks HTTP to the service (docs/SERVE.md), which
holds the model and its encoders once for many clients. Its documents are those of
``ASIFRetriever`` (``page_content``: the item's text or image path; ``metadata``: the
payload plus ``id``, ``score`` and ``collection_name``), with ``image_url``: where the
service shows the item's image.

A ``str`` query is a text; a ``pathlib.Path``, bytes or a PIL image is an image query
(uploaded). ``k``, ``filter``, ``item_modality`` and ``score_threshold`` may be set on the
retriever or passed to ``invoke``. An error of the service raises ``ValueError`` with its
message (``LookupError`` for an unknown catalog).

Example:
    >>> r = ASIFServiceRetriever(url="http://127.0.0.1:8000", collection_name="stamps", k=3)
    >>> r.k, r.api_key is None
    (3, True)
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, SecretStr

__all__ = ["ASIFServiceRetriever"]

_SEARCH_KEYS = ("k", "filter", "item_modality", "score_threshold")


class ASIFServiceRetriever(BaseRetriever):
    """Retrieve catalog items from an ``asif-qdrant serve`` service, by text or image.

    Attributes:
        url: The service's base URL, e.g. ``http://127.0.0.1:8000``.
        collection_name: The catalog searched.
        k: How many documents (1-1000).
        filter: Exact-match payload filter, e.g. ``{"category": "animals"}``.
        item_modality: Only items of this modality ("image" or "text"); None: both.
        score_threshold: Drop hits scoring below this.
        api_key: The service's key (sent as ``X-API-Key``), if it has one.
        timeout: Seconds per request.
    """

    url: str
    collection_name: str
    k: int = Field(4, ge=1, le=1000)
    filter: dict[str, Any] | None = None
    item_modality: Literal["image", "text"] | None = None
    score_threshold: float | None = None
    api_key: SecretStr | None = None
    timeout: float = 60.0

    def _request(self, query: Any, options: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of the HTTP request for ``query``."""
        unknown = set(options) - set(_SEARCH_KEYS)
        if unknown:
            raise TypeError(f"Unknown search options {sorted(unknown)}; allowed: {_SEARCH_KEYS}.")
        opts = {key: options.get(key, getattr(self, key)) for key in _SEARCH_KEYS}
        fields = {
            "limit": opts["k"],
            "filter": opts["filter"],
            "min_score": opts["score_threshold"],
            "item_modality": opts["item_modality"],
        }
        base = f"{self.url.rstrip('/')}/api/catalogs/{self.collection_name}"
        headers = {"X-API-Key": self.api_key.get_secret_value()} if self.api_key else {}
        if isinstance(query, str):
            body = {"query": query, **{k: v for k, v in fields.items() if v is not None}}
            return {"method": "POST", "url": f"{base}/search", "json": body, "headers": headers}
        data = {"limit": str(fields["limit"])}
        if fields["filter"] is not None:
            import json

            data["filter"] = json.dumps(fields["filter"])
        if fields["min_score"] is not None:
            data["min_score"] = str(fields["min_score"])
        files = {"image": ("query", _image_bytes(query))}
        url = f"{base}/search/image"
        return {"method": "POST", "url": url, "data": data, "files": files, "headers": headers}

    def _documents(self, response: httpx.Response) -> list[Document]:
        if response.status_code != 200:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            error = LookupError if response.status_code == 404 else ValueError
            raise error(f"asif-qdrant service ({response.status_code}): {message}")
        out = []
        for hit in response.json()["hits"]:
            payload = dict(hit["payload"])
            key = "text" if payload.get("modality") == "text" else "image"
            image_url = hit.get("image_url")
            metadata = {
                **payload,
                "id": hit["id"],
                "score": float(hit["score"]),
                "collection_name": self.collection_name,
                "image_url": f"{self.url.rstrip('/')}{image_url}" if image_url else None,
            }
            doc = Document(page_content=str(payload.get(key, "")), metadata=metadata)
            doc.id = str(hit["id"])
            out.append(doc)
        return out

    def _get_relevant_documents(
        self, query: Any, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        with httpx.Client(timeout=self.timeout) as client:
            return self._documents(client.request(**self._request(query, kwargs)))

    async def _aget_relevant_documents(
        self, query: Any, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            return self._documents(await client.request(**self._request(query, kwargs)))


def _image_bytes(query: Any) -> bytes:
    """The bytes to upload for an image query (a path, bytes or a PIL image)."""
    if isinstance(query, (bytes, bytearray, memoryview)):
        return bytes(query)
    if isinstance(query, os.PathLike):
        with open(query, "rb") as f:
            return f.read()
    if hasattr(query, "save"):  # a PIL image
        buf = io.BytesIO()
        query.save(buf, format="PNG")
        return buf.getvalue()
    raise TypeError(
        "An ASIFServiceRetriever query is a str (a text), or an image: a pathlib.Path, bytes "
        f"or a PIL image. Got {type(query).__name__}."
    )
