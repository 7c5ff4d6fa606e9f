"""``ASIFRetriever``: an ASIF catalog as a LangChain retriever (text or image queries).

The retriever searches a catalog collection of an :class:`asif_qdrant.ASIF` model, on whatever
backend the model uses (the embedded engine, ``ASIF(path=...)``, or a Qdrant server,
``ASIF(client=QdrantClient(url=...))``). It turns each hit into a ``Document``:

* ``page_content``: the item's text for a text item, its image path for an image item;
* ``metadata``: the item's payload as stored (``modality``, ``image`` or ``text``, and your own
  keys) plus ``id``, ``score`` (the ASIF similarity, in ``[0, 1]``) and ``collection_name``;
* ``id``: the point id as a string.

A ``str`` query is always a text. An image query is a ``pathlib.Path`` (any ``os.PathLike``),
the image bytes, a PIL image or an array: ``retriever.invoke(Path("query.png"))``, or
:meth:`ASIFRetriever.similarity_search_by_image`. ``k``, ``filter`` (exact-match payload
filter, e.g. ``{"category": "animals"}``; a list value matches any of its values),
``item_modality`` ("image" or "text": the kind of catalog item returned) and
``score_threshold`` can be set on the retriever or passed to ``invoke`` as keyword arguments.

Example:
    >>> ASIFRetriever.model_fields["k"].default
    4
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from asif_qdrant import ASIF, Hit
from asif_qdrant.errors import InvalidInputError, check_int, check_real
from asif_qdrant.retriever.keys import IMAGE_HASH_FIELD, KEY_FIELD
from asif_qdrant.types import SparseVector
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, field_validator

from langchain_asif_qdrant.inputs import (
    ImageURI,
    Metadatas,
    PointIds,
    check_metadatas,
    check_texts,
    check_uris,
)

__all__ = ["ASIFRetriever"]

_SEARCH_KEYS = ("k", "filter", "item_modality", "score_threshold")


def _is_image(query: Any) -> bool:
    if isinstance(query, (os.PathLike, bytes, bytearray, memoryview, np.ndarray)):
        return True
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency of asif-qdrant
        return False
    return isinstance(query, Image.Image)


class ASIFRetriever(BaseRetriever):
    """Retrieve catalog items of an ASIF model for a text or an image query.

    Attributes:
        asif: The :class:`asif_qdrant.ASIF` model (embedded engine or server).
        collection_name: The catalog collection searched (and filled by ``add_*``).
        k: How many documents to return (>= 1).
        filter: Exact-match payload filter, e.g. ``{"category": "animals"}``.
        item_modality: Only return catalog items of this modality ("image" or "text");
            None: both. (The query's own modality follows from its type.)
        score_threshold: Drop hits whose ASIF score is below this.

    Example:
        >>> import tempfile, numpy as np
        >>> from asif_qdrant import ASIF
        >>> asif = ASIF(path=tempfile.mkdtemp(), k=2, image_encoder="precomputed/image",
        ...             text_encoder="precomputed/text")
        >>> _ = asif.add_anchor_embeddings(np.eye(3, 4) + 0.1, np.eye(3, 5) + 0.1)
        >>> _ = asif.index_embeddings("items", np.eye(2, 4) + 0.1, "image",
        ...                           payloads=[{"image": "a.png"}, {"image": "b.png"}])
        >>> retriever = ASIFRetriever(asif=asif, collection_name="items", k=1)
        >>> query = asif.relative_from_embeddings(np.eye(1, 5) + 0.1, "text")[0]
        >>> from pathlib import Path  # image paths are stored resolved (absolute)
        >>> [Path(d.page_content).name for d in retriever.invoke(query)]  # a text finds a.png
        ['a.png']
        >>> asif.close()
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    asif: ASIF
    collection_name: str
    k: int = 4
    filter: dict[str, Any] | None = None
    item_modality: Literal["image", "text"] | None = None
    score_threshold: float | None = None

    @field_validator("k")
    @classmethod
    def _check_k(cls, v: Any) -> int:
        return check_int("k", "ASIFRetriever", v, minimum=1)

    @field_validator("score_threshold")
    @classmethod
    def _check_threshold(cls, v: Any) -> float | None:
        return None if v is None else check_real("score_threshold", "ASIFRetriever", v)

    # -- search ------------------------------------------------------------------------------
    def _search(self, query: Any, options: Mapping[str, Any]) -> list[Document]:
        unknown = sorted(set(options) - set(_SEARCH_KEYS))
        if unknown:
            raise TypeError(
                f"ASIFRetriever got unexpected search arguments {unknown}; allowed: "
                f"{list(_SEARCH_KEYS)}."
            )
        k = check_int("k", "ASIFRetriever", options.get("k", self.k), minimum=1)
        threshold = options.get("score_threshold", self.score_threshold)
        if threshold is not None:
            threshold = check_real("score_threshold", "ASIFRetriever", threshold)
        if not (isinstance(query, (str, SparseVector)) or _is_image(query)):
            raise InvalidInputError(
                "An ASIFRetriever query must be a str (a text), an image (pathlib.Path, bytes, "
                f"PIL image or array) or an asif_qdrant.SparseVector. Got {type(query).__name__}."
            )
        hits = self.asif.search(
            self.collection_name,
            query,
            limit=k,
            item_modality=options.get("item_modality", self.item_modality),
            filter=options.get("filter", self.filter),
        )
        return [self._document(h) for h in hits if threshold is None or h.score >= float(threshold)]

    def _document(self, hit: Hit) -> Document:
        payload = dict(hit.payload)
        if payload.get("modality") == "text":
            content = str(payload.get("text", ""))
        else:
            content = str(payload.get("image", ""))
        # The library's own bookkeeping (content key, image hash) is not the user's metadata.
        hidden = (KEY_FIELD, IMAGE_HASH_FIELD)
        metadata = {
            **{k: v for k, v in payload.items() if k not in hidden},
            "id": hit.id,
            "score": float(hit.score),
            "collection_name": self.collection_name,
        }
        return Document(page_content=content, metadata=metadata, id=str(hit.id))

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self._search(query, kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return await run_in_executor(None, self._search, query, kwargs)

    def similarity_search(self, query: str, k: int | None = None, **kwargs: Any) -> list[Document]:
        """Documents for a text query (``k``, ``filter``, ... override the retriever's)."""
        if not isinstance(query, str):
            raise InvalidInputError(
                f"similarity_search takes a text (str). Got {type(query).__name__}; use "
                "similarity_search_by_image for images."
            )
        return self._search(query, {**kwargs, **({"k": k} if k is not None else {})})

    def similarity_search_by_image(
        self, uri: ImageURI, k: int | None = None, **kwargs: Any
    ) -> list[Document]:
        """Documents for an image file query (``k``, ``filter``, ... override the retriever's)."""
        (path,) = check_uris("similarity_search_by_image", [uri])
        return self._search(Path(path), {**kwargs, **({"k": k} if k is not None else {})})

    # -- adding items ------------------------------------------------------------------------
    def add_texts(
        self, texts: Sequence[str], metadatas: Metadatas = None, ids: PointIds = None
    ) -> list[int | str]:
        """Index texts into the catalog (payload: ``text``, ``modality`` and your metadata).

        Returns:
            The point ids (consecutive ints unless ``ids`` are given: ints or UUID strings).
        """
        texts = check_texts("ASIFRetriever.add_texts", texts)
        return self._index(metadatas, ids, texts=texts)

    def add_images(
        self, uris: Sequence[ImageURI], metadatas: Metadatas = None, ids: PointIds = None
    ) -> list[int | str]:
        """Index image files, as :meth:`add_texts` texts (payload: ``image``, ``modality``...)."""
        paths = [Path(u) for u in check_uris("ASIFRetriever.add_images", uris)]
        return self._index(metadatas, ids, images=paths)

    def _index(
        self, metadatas: Metadatas, ids: PointIds, **items: Sequence[Any]
    ) -> list[int | str]:
        """Index one kind of items (``texts=`` or ``images=``) with their metadata and ids."""
        (batch,) = items.values()
        check_metadatas(metadatas, len(batch))
        return self.asif.index(self.collection_name, payloads=metadatas, ids=ids, **items)

    def add_documents(self, documents: Sequence[Document], ids: PointIds = None) -> list[int | str]:
        """Index text ``Document``s (``page_content`` and ``metadata``)."""
        return self.add_texts(
            [d.page_content for d in documents], [dict(d.metadata) for d in documents], ids
        )
