"""A ``QdrantVectorStore`` that also stores and searches images with ASIF vectors.

:class:`ASIFQdrantVectorStore` is langchain-qdrant's ``QdrantVectorStore`` (same constructor,
same ``from_texts`` / ``from_existing_collection``, same collections) plus what users expect of
a multimodal store (the names of ``langchain_chroma.Chroma``'s image API):

* ``add_images(uris, metadatas, ids)``: stores image files. The document's ``page_content`` is
  the image path; its metadata is yours plus ``image`` (the path) and ``modality`` ("image").
  ``add_texts`` sets ``modality`` to "text", so :meth:`~ASIFQdrantVectorStore.modality_filter`
  can restrict a search to one kind of item.
* ``similarity_search_by_image(uri, k)`` and ``similarity_search_by_image_with_score``.
  ``similarity_search(Path(...))`` (any ``os.PathLike`` query; a ``str`` is always a text) is an
  image search too, so ``as_retriever().invoke(Path("query.png"))`` works.

Which vector an item gets, by retrieval mode:

=========  ===========================================  ======================================
mode       texts                                        images
=========  ===========================================  ======================================
SPARSE     ASIF sparse vector                           ASIF sparse vector
HYBRID     dense text embedding + ASIF sparse vector    ASIF sparse vector, plus the dense
                                                        embedding's ``embed_image`` if it has
                                                        one (CLIP-like, e.g. ASIFEmbeddings)
DENSE      dense embedding                              the dense embedding's ``embed_image``
=========  ===========================================  ======================================

An image query uses the same vectors: in HYBRID mode with a text-only dense embedding (one
without ``embed_image``) it is an ASIF sparse query, the only side that can read an image; the
images in such a store have no dense vector anyway.

Misconfigurations raise instead of quietly using another mode: SPARSE and HYBRID need an
ASIF-like sparse embedding (one with ``embed_image``); a dense ``embedding`` given in SPARSE mode
(or a ``sparse_embedding`` in DENSE mode) is an error, not ignored; an existing collection
whose sparse vector has the IDF modifier (which would change ASIF scores) is refused; DENSE
mode with an embedding that cannot embed images raises on ``add_images``. The collection checks
of ``QdrantVectorStore`` (missing named vectors, dimensions) apply unchanged.

Example:
    >>> from langchain_qdrant import RetrievalMode
    >>> from langchain_asif_qdrant.vectorstores import check_retrieval_config
    >>> try:
    ...     check_retrieval_config(RetrievalMode.SPARSE, None, None)
    ... except ValueError as e:
    ...     print(str(e)[:66])
    RetrievalMode.SPARSE needs an ASIF sparse embedding: pass sparse_e
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from operator import itemgetter
from typing import Any, Literal

from asif_qdrant.errors import InvalidInputError, InvalidParameterError, check_int
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseEmbeddings, SparseVector
from langchain_qdrant.qdrant import QdrantVectorStoreError
from qdrant_client import QdrantClient, models

from langchain_asif_qdrant.inputs import ImageURI, check_metadatas, check_uris

__all__ = ["MODALITY_KEY", "ASIFQdrantVectorStore", "check_retrieval_config"]

#: Metadata key holding "image" or "text" on every item added through ASIFQdrantVectorStore.
MODALITY_KEY = "modality"
#: Metadata key holding the image path of image items.
IMAGE_KEY = "image"


def _can_embed_images(embedding: Any) -> bool:
    return callable(getattr(embedding, "embed_image", None))


def check_retrieval_config(
    retrieval_mode: RetrievalMode,
    embedding: Embeddings | None,
    sparse_embedding: SparseEmbeddings | None,
) -> None:
    """Refuse the combinations of mode and embeddings that QdrantVectorStore silently ignores.

    SPARSE and HYBRID need an ASIF-like sparse embedding (one with ``embed_image``); a dense
    ``embedding`` in SPARSE mode, or a ``sparse_embedding`` in DENSE mode, is an error.

    Raises:
        InvalidParameterError: On such a combination, or an unknown retrieval mode.
    """
    try:
        mode = RetrievalMode(retrieval_mode)
    except ValueError:
        raise InvalidParameterError(
            "The 'retrieval_mode' parameter of ASIFQdrantVectorStore must be one of "
            f"{[m.value for m in RetrievalMode]}. Got {retrieval_mode!r} instead."
        ) from None
    if mode != RetrievalMode.DENSE and not _can_embed_images(sparse_embedding):
        got = "None" if sparse_embedding is None else type(sparse_embedding).__name__
        raise InvalidParameterError(
            f"RetrievalMode.{mode.name} needs an ASIF sparse embedding: pass "
            "sparse_embedding=ASIFSparseEmbeddings(asif) (any SparseEmbeddings with "
            f"embed_image). Got {got} instead."
        )
    if mode == RetrievalMode.SPARSE and embedding is not None:
        raise InvalidParameterError(
            "RetrievalMode.SPARSE uses the ASIF sparse vectors only, so the dense "
            f"'embedding' ({type(embedding).__name__}) would be ignored: drop it, or use "
            "RetrievalMode.HYBRID to fuse both."
        )
    if mode == RetrievalMode.DENSE and sparse_embedding is not None:
        raise InvalidParameterError(
            "RetrievalMode.DENSE uses the dense 'embedding' only, so 'sparse_embedding' "
            f"({type(sparse_embedding).__name__}) would be ignored: drop it, or use "
            "RetrievalMode.SPARSE or RetrievalMode.HYBRID."
        )


class ASIFQdrantVectorStore(QdrantVectorStore):
    """``QdrantVectorStore`` with images: ``add_images`` and ``similarity_search_by_image``.

    Takes exactly the arguments of ``langchain_qdrant.QdrantVectorStore`` (``client``,
    ``collection_name``, ``embedding``, ``retrieval_mode``, ``sparse_embedding``, ...); see the
    module docstring for what each retrieval mode stores and the checks added on top.

    Example:
        >>> from qdrant_client import QdrantClient
        >>> ASIFQdrantVectorStore.__mro__[1].__name__
        'QdrantVectorStore'
    """

    def __init__(
        self,
        client: QdrantClient,
        collection_name: str,
        embedding: Embeddings | None = None,
        retrieval_mode: RetrievalMode = RetrievalMode.DENSE,
        vector_name: str = QdrantVectorStore.VECTOR_NAME,
        content_payload_key: str = QdrantVectorStore.CONTENT_KEY,
        metadata_payload_key: str = QdrantVectorStore.METADATA_KEY,
        distance: models.Distance = models.Distance.COSINE,
        sparse_embedding: SparseEmbeddings | None = None,
        sparse_vector_name: str = QdrantVectorStore.SPARSE_VECTOR_NAME,
        validate_embeddings: bool = True,
        validate_collection_config: bool = True,
    ) -> None:
        # Always checked, also when QdrantVectorStore.construct_instance turns validation off.
        check_retrieval_config(retrieval_mode, embedding, sparse_embedding)
        super().__init__(
            client=client,
            collection_name=collection_name,
            embedding=embedding,
            retrieval_mode=retrieval_mode,
            vector_name=vector_name,
            content_payload_key=content_payload_key,
            metadata_payload_key=metadata_payload_key,
            distance=distance,
            sparse_embedding=sparse_embedding,
            sparse_vector_name=sparse_vector_name,
            validate_embeddings=validate_embeddings,
            validate_collection_config=validate_collection_config,
        )

    @classmethod
    def _validate_embeddings(
        cls,
        retrieval_mode: RetrievalMode,
        embedding: Embeddings | None,
        sparse_embedding: SparseEmbeddings | None,
    ) -> None:
        super()._validate_embeddings(retrieval_mode, embedding, sparse_embedding)
        check_retrieval_config(retrieval_mode, embedding, sparse_embedding)

    @classmethod
    def _validate_collection_for_sparse(
        cls,
        client: QdrantClient,
        collection_name: str,
        sparse_vector_name: str,
    ) -> None:
        super()._validate_collection_for_sparse(client, collection_name, sparse_vector_name)
        config = client.get_collection(collection_name).config.params.sparse_vectors or {}
        params = config.get(sparse_vector_name)
        modifier = getattr(params, "modifier", None)
        if modifier not in (None, models.Modifier.NONE):
            raise QdrantVectorStoreError(
                f"The sparse vector '{sparse_vector_name}' of the Qdrant collection "
                f"'{collection_name}' has the modifier {modifier}; ASIF scores need a plain "
                "dot product (no modifier). Use another collection, or recreate it with "
                "force_recreate=True."
            )

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # ASIF scores are cosines of non-negative unit vectors: already relevance in [0, 1].
        if self.retrieval_mode == RetrievalMode.SPARSE:
            return lambda score: score
        return super()._select_relevance_score_fn()

    # -- helpers -----------------------------------------------------------------------------
    def modality_filter(self, modality: Literal["image", "text"]) -> models.Filter:
        """A Qdrant filter keeping only image items or only text items.

        Example:
            >>> store = ASIFQdrantVectorStore.__new__(ASIFQdrantVectorStore)
            >>> store.metadata_payload_key = "metadata"
            >>> store.modality_filter("image").must[0].key
            'metadata.modality'
        """
        if modality not in ("image", "text"):
            raise InvalidParameterError(
                "The 'modality' parameter of modality_filter must be 'image' or 'text'. "
                f"Got {modality!r} instead."
            )
        return models.Filter(
            must=[
                models.FieldCondition(
                    key=f"{self.metadata_payload_key}.{MODALITY_KEY}",
                    match=models.MatchValue(value=modality),
                )
            ]
        )

    @staticmethod
    def _tagged(
        metadatas: Sequence[dict[str, Any] | None] | None, n: int, extra: Callable[[int], dict]
    ) -> list[dict[str, Any]]:
        check_metadatas(metadatas, n)
        base = list(metadatas) if metadatas is not None else [None] * n
        return [{**dict(m or {}), **extra(i)} for i, m in enumerate(base)]

    # -- texts ---------------------------------------------------------------------------------
    def add_texts(  # type: ignore[override]
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        ids: Sequence[str | int] | None = None,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> list[str | int]:
        """Add texts, as ``QdrantVectorStore.add_texts``, with ``modality: "text"`` metadata."""
        texts = list(texts)
        tagged = self._tagged(metadatas, len(texts), lambda i: {MODALITY_KEY: "text"})
        return super().add_texts(texts, tagged, ids, batch_size, **kwargs)

    # -- images -------------------------------------------------------------------------------
    def _dense_images(self, uris: list[ImageURI], *, required: bool) -> list[list[float]] | None:
        embedding = self.embeddings
        if embedding is not None and _can_embed_images(embedding):
            return embedding.embed_image(uris)  # type: ignore[attr-defined]
        if required:
            raise InvalidParameterError(
                "RetrievalMode.DENSE stores images with the dense embedding's embed_image, but "
                f"{type(embedding).__name__} has none. Use a CLIP-like embedding such as "
                "ASIFEmbeddings, or RetrievalMode.SPARSE / HYBRID with ASIFSparseEmbeddings."
            )
        return None

    def _sparse_images(self, uris: list[ImageURI]) -> list[SparseVector]:
        return self.sparse_embeddings.embed_image(uris)  # type: ignore[attr-defined]

    def _image_embeddings(
        self, uris: list[ImageURI]
    ) -> tuple[list[list[float]] | None, list[SparseVector] | None]:
        """The images' dense and sparse vectors, each None where the retrieval mode has none."""
        dense_mode = self.retrieval_mode == RetrievalMode.DENSE
        dense = self._dense_images(uris, required=dense_mode)
        return dense, (None if dense_mode else self._sparse_images(uris))

    def _image_vectors(self, uris: list[ImageURI]) -> list[models.VectorStruct]:
        dense, sparse = self._image_embeddings(uris)
        out: list[models.VectorStruct] = []
        for i in range(len(uris)):
            vec: dict[str, Any] = {}
            if dense is not None:
                vec[self.vector_name] = dense[i]
            if sparse is not None:
                vec[self.sparse_vector_name] = models.SparseVector(
                    indices=sparse[i].indices, values=sparse[i].values
                )
            out.append(vec)
        return out

    def add_images(
        self,
        uris: list[ImageURI],
        metadatas: list[dict] | None = None,
        ids: Sequence[str | int] | None = None,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> list[str | int]:
        """Embed image files and store them (``page_content`` = the path).

        Args:
            uris: Image file paths.
            metadatas: One metadata dict per image (``image`` and ``modality`` are added).
            ids: Point ids (ints or UUID strings); default: random UUIDs.
            batch_size: Images embedded and upserted at once.
            **kwargs: Passed to ``QdrantClient.upsert``.

        Returns:
            The point ids.
        """
        uris = check_uris("ASIFQdrantVectorStore.add_images", uris)
        batch_size = check_int("batch_size", "add_images", batch_size, minimum=1)
        paths = [os.fspath(u) for u in uris]
        tagged = self._tagged(
            metadatas, len(paths), lambda i: {IMAGE_KEY: paths[i], MODALITY_KEY: "image"}
        )
        if ids is not None and len(ids) != len(paths):
            raise InvalidInputError(
                f"'ids' must have one entry per image ({len(paths)}). Got {len(ids)}."
            )
        all_ids = list(ids) if ids is not None else [uuid.uuid4().hex for _ in paths]
        it = iter(range(len(paths)))
        while batch := list(islice(it, batch_size)):
            vectors = self._image_vectors([paths[i] for i in batch])
            points = [
                models.PointStruct(
                    id=all_ids[i],
                    vector=vec,
                    payload={
                        self.content_payload_key: paths[i],
                        self.metadata_payload_key: tagged[i],
                    },
                )
                for i, vec in zip(batch, vectors, strict=True)
            ]
            self.client.upsert(collection_name=self.collection_name, points=points, **kwargs)
        return all_ids

    def similarity_search_by_image_with_score(
        self,
        uri: ImageURI,
        k: int = 4,
        filter: models.Filter | None = None,
        search_params: models.SearchParams | None = None,
        offset: int = 0,
        score_threshold: float | None = None,
        consistency: models.ReadConsistency | None = None,
        hybrid_fusion: models.FusionQuery | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Items most similar to an image file, with their scores (best first).

        In SPARSE mode (and HYBRID with a text-only dense embedding) the score is the ASIF
        similarity; in HYBRID mode with an image-capable dense embedding it is the fusion
        score (RRF by default), as for text queries.
        """
        (path,) = check_uris("similarity_search_by_image", [uri])
        options: dict[str, Any] = {
            "collection_name": self.collection_name,
            "query_filter": filter,
            "search_params": search_params,
            "limit": k,
            "offset": offset,
            "with_payload": True,
            "with_vectors": False,
            "score_threshold": score_threshold,
            "consistency": consistency,
            **kwargs,
        }
        dense, sparse = self._image_embeddings([path])
        sparse_query = (
            None
            if sparse is None
            else models.SparseVector(indices=sparse[0].indices, values=sparse[0].values)
        )
        if dense is not None and sparse_query is not None:
            points = self.client.query_points(
                prefetch=[
                    models.Prefetch(
                        using=self.vector_name,
                        query=dense[0],
                        filter=filter,
                        limit=k,
                        params=search_params,
                    ),
                    models.Prefetch(
                        using=self.sparse_vector_name,
                        query=sparse_query,
                        filter=filter,
                        limit=k,
                        params=search_params,
                    ),
                ],
                query=hybrid_fusion or models.FusionQuery(fusion=models.Fusion.RRF),
                **options,
            ).points
        elif sparse_query is not None:
            points = self.client.query_points(
                query=sparse_query, using=self.sparse_vector_name, **options
            ).points
        else:  # DENSE mode: _dense_images raised above if it could not embed the image
            points = self.client.query_points(
                query=dense[0],  # type: ignore[index]
                using=self.vector_name,
                **options,
            ).points
        return [
            (
                self._document_from_point(
                    p, self.collection_name, self.content_payload_key, self.metadata_payload_key
                ),
                p.score,
            )
            for p in points
        ]

    def similarity_search_by_image(
        self, uri: ImageURI, k: int = 4, filter: models.Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Items most similar to an image file (best first)."""
        return list(
            map(
                itemgetter(0),
                self.similarity_search_by_image_with_score(uri, k, filter=filter, **kwargs),
            )
        )

    def similarity_search_with_score(  # type: ignore[override]
        self, query: str | os.PathLike[str], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """As ``QdrantVectorStore``'s, and an ``os.PathLike`` query is an image search."""
        if isinstance(query, os.PathLike):
            return self.similarity_search_by_image_with_score(query, k, **kwargs)
        if not isinstance(query, str):
            raise InvalidInputError(
                "A query must be a str (a text) or an os.PathLike (an image file). Got "
                f"{type(query).__name__}."
            )
        return super().similarity_search_with_score(query, k, **kwargs)
