"""ASIF as LangChain embeddings: a sparse one for Qdrant and a dense, CLIP-like one.

An :class:`asif_qdrant.ASIF` model turns a text or an image into a *relative* vector: its
weights over the model's anchor pairs, sparse (the ``k`` best anchors) and L2-normalised. Texts
and images land in the same space, so a text vector can be compared with an image vector, as
with CLIP. The two classes here hand those vectors to LangChain:

* :class:`ASIFSparseEmbeddings` implements langchain-qdrant's ``SparseEmbeddings``: the sparse
  vector as it is, indices = anchor ids. Use it with
  ``QdrantVectorStore(..., retrieval_mode=RetrievalMode.SPARSE, sparse_embedding=...)`` (or
  ``HYBRID`` with any dense text embedding). No size limit: anchor ids are Qdrant sparse
  indices.
* :class:`ASIFEmbeddings` implements langchain-core's ``Embeddings``: the same vector written
  out densely, one float per anchor *slot*. Position ``i`` holds the weight of anchor id ``i``;
  the length is ``dim``, by default the model's ``next_anchor_id`` when the object is created
  (ids of deleted anchors keep their slot, always 0). Dense vectors cost one float per slot, so
  ``dim`` is capped by ``max_dim`` (default 65,536, the largest dense vector Qdrant stores):
  above it you get an error that points to :class:`ASIFSparseEmbeddings`.

Both add ``embed_image(uris)`` (and ``aembed_image``) like the CLIP embeddings of
``langchain_experimental.open_clip``: a list of image files in, one vector per image out.

Example:
    >>> import tempfile, numpy as np
    >>> from asif_qdrant import ASIF
    >>> from langchain_asif_qdrant import ASIFEmbeddings, ASIFSparseEmbeddings
    >>> class Letters:  # a toy text encoder for this example: letter counts
    ...     name, dim = "toy/letters", 26
    ...     def embed(self, batch, *, batch_size=32, show_progress_bar=None):
    ...         x = np.array([[t.count(c) + 0.01 for c in "abcdefghijklmnopqrstuvwxyz"]
    ...                       for t in batch], np.float32)
    ...         return x / np.linalg.norm(x, axis=1, keepdims=True)
    >>> asif = ASIF(path=tempfile.mkdtemp(), k=2, image_encoder="precomputed/image",
    ...             text_encoder=Letters())
    >>> ids = asif.add_anchor_embeddings(np.eye(3, 4) + 0.1, Letters().embed(["cat", "dog", "owl"]))
    >>> sparse = ASIFSparseEmbeddings(asif).embed_query("a cat")
    >>> sparse.indices[0]  # the anchor "cat" weighs most
    0
    >>> dense = ASIFEmbeddings(asif).embed_query("a cat")
    >>> len(dense), dense.index(max(dense))  # one float per anchor slot
    (3, 0)
    >>> asif.close()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from asif_qdrant import ASIF
from asif_qdrant.errors import AnchorSetError, InvalidParameterError, check_int
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_qdrant import SparseEmbeddings, SparseVector

from langchain_asif_qdrant.inputs import ImageURI, check_asif, check_query, check_texts, check_uris

if TYPE_CHECKING:
    from asif_qdrant.types import SparseVector as ASIFSparseVector

__all__ = ["DEFAULT_MAX_DIM", "ASIFEmbeddings", "ASIFSparseEmbeddings", "ImageURI"]

#: The largest dense vector Qdrant stores (65,536 floats); the default cap of ASIFEmbeddings.
DEFAULT_MAX_DIM = 65_536


class _ASIFVectors:
    """Shared plumbing: texts and image files -> ASIF sparse relative vectors."""

    asif: ASIF
    _owner: str

    def _text_vectors(self, texts: Sequence[str], what: str) -> list[ASIFSparseVector]:
        texts = check_texts(f"{self._owner}.{what}", texts)
        if not texts:
            return []
        return self.asif.embed_texts(texts)

    def _image_vectors(self, uris: Sequence[ImageURI], what: str) -> list[ASIFSparseVector]:
        uris = check_uris(f"{self._owner}.{what}", uris)
        if not uris:
            return []
        return self.asif.embed_images([os.fspath(u) for u in uris])


class ASIFSparseEmbeddings(_ASIFVectors, SparseEmbeddings):
    """ASIF relative vectors as langchain-qdrant sparse embeddings (texts and images).

    ``indices`` are anchor ids and ``values`` their weights (L2-normalised, non-negative), so a
    Qdrant sparse vector without modifier scores a pair by the ASIF similarity (a cosine in
    ``[0, 1]``). Vectors depend on the anchor set: after adding or deleting anchors, embed the
    stored items again.

    Args:
        asif: The ASIF model (embedded engine or server; see :class:`asif_qdrant.ASIF`).

    Raises:
        InvalidParameterError: If ``asif`` is not an :class:`asif_qdrant.ASIF`.

    Example:
        >>> import tempfile, numpy as np
        >>> from asif_qdrant import ASIF
        >>> asif = ASIF(path=tempfile.mkdtemp(), k=2, image_encoder="precomputed/image",
        ...             text_encoder="precomputed/text")
        >>> emb = ASIFSparseEmbeddings(asif)
        >>> emb.embed_documents([])  # no text: nothing to encode
        []
        >>> asif.close()
    """

    _owner = "ASIFSparseEmbeddings"

    def __init__(self, asif: ASIF) -> None:
        self.asif = check_asif(self._owner, asif)

    def __repr__(self) -> str:
        return f"ASIFSparseEmbeddings(asif={self.asif!r})"

    @staticmethod
    def to_sparse_vector(vector: ASIFSparseVector) -> SparseVector:
        """Convert an ASIF sparse vector to langchain-qdrant's (plain ints and floats).

        Example:
            >>> import numpy as np
            >>> from asif_qdrant import SparseVector as V
            >>> ASIFSparseEmbeddings.to_sparse_vector(V(np.array([7, 2]), np.array([0.8, 0.6])))
            SparseVector(indices=[7, 2], values=[0.800000011920929, 0.6000000238418579])
        """
        return SparseVector(indices=vector.indices.tolist(), values=vector.values.tolist())

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Sparse ASIF vectors of texts (one per text)."""
        return [self.to_sparse_vector(v) for v in self._text_vectors(texts, "embed_documents")]

    def embed_query(self, text: str) -> SparseVector:
        """Sparse ASIF vector of one query text."""
        text = check_query(f"{self._owner}.embed_query", text)
        return self.to_sparse_vector(self._text_vectors([text], "embed_query")[0])

    def embed_image(self, uris: list[ImageURI]) -> list[SparseVector]:
        """Sparse ASIF vectors of image files (one per path), comparable with text vectors."""
        return [self.to_sparse_vector(v) for v in self._image_vectors(uris, "embed_image")]

    async def aembed_image(self, uris: list[ImageURI]) -> list[SparseVector]:
        """Async :meth:`embed_image` (runs in the default executor)."""
        return await run_in_executor(None, self.embed_image, uris)


class ASIFEmbeddings(_ASIFVectors, Embeddings):
    """ASIF as a CLIP-like LangChain ``Embeddings``: dense float lists over the anchor slots.

    Position ``i`` of every vector holds the weight of anchor id ``i`` (0 when the anchor is
    not among the ``k`` best, or was deleted). The length ``dim`` is fixed when the object is
    created, so that all vectors of a vector store have the same size: by default the model's
    ``next_anchor_id`` (every anchor id handed out so far). Anchors added later get ids
    ``>= dim``; a vector that needs one raises :class:`~asif_qdrant.errors.AnchorSetError`
    (create a new ``ASIFEmbeddings`` and embed the stored items again, or pass a larger
    ``dim`` up front). Vectors are L2-normalised, so cosine, dot product and the ASIF score
    agree.

    Args:
        asif: The ASIF model.
        dim: Vector length (anchor slots); default: the model's ``next_anchor_id``. Must be
            at least that.
        max_dim: The largest ``dim`` accepted (default 65,536, Qdrant's dense vector limit).
            Models with more anchor slots should use :class:`ASIFSparseEmbeddings`.

    Raises:
        InvalidParameterError: On a bad argument, or more anchor slots than ``max_dim``.
        AnchorSetError: If the model has no anchors yet.

    Example:
        >>> import tempfile, numpy as np
        >>> from asif_qdrant import ASIF
        >>> asif = ASIF(path=tempfile.mkdtemp(), k=2, image_encoder="precomputed/image",
        ...             text_encoder="precomputed/text")
        >>> _ = asif.add_anchor_embeddings(np.eye(3, 4) + 0.1, np.eye(3, 5) + 0.1)
        >>> ASIFEmbeddings(asif).dim, ASIFEmbeddings(asif, dim=10).dim
        (3, 10)
        >>> try:
        ...     ASIFEmbeddings(asif, max_dim=2)
        ... except ValueError as e:
        ...     print(str(e)[:71])
        The 'dim' of ASIFEmbeddings must be at most max_dim=2 (one float per an
        >>> asif.close()
    """

    _owner = "ASIFEmbeddings"

    def __init__(
        self, asif: ASIF, *, dim: int | None = None, max_dim: int = DEFAULT_MAX_DIM
    ) -> None:
        self.asif = check_asif(self._owner, asif)
        self.max_dim = check_int("max_dim", self._owner, max_dim, minimum=1)
        slots = int(self.asif.fingerprint.next_anchor_id)
        if slots == 0:
            raise AnchorSetError(
                f"The ASIF model '{self.asif.name}' has no anchors, so ASIFEmbeddings would have "
                "no dimension: add anchor pairs first."
            )
        if dim is None:
            dim = slots
        dim = check_int("dim", self._owner, dim, minimum=1)
        if dim < slots:
            raise InvalidParameterError(
                f"The 'dim' parameter of ASIFEmbeddings must be >= {slots}, the anchor slots of "
                f"the model '{self.asif.name}' (anchor ids 0..{slots - 1}). Got {dim} instead."
            )
        if dim > self.max_dim:
            raise InvalidParameterError(
                f"The 'dim' of ASIFEmbeddings must be at most max_dim={self.max_dim} (one float "
                f"per anchor slot). Got {dim} (the model '{self.asif.name}' has {slots} anchor "
                "slots). Use ASIFSparseEmbeddings, which has no such limit, or raise max_dim."
            )
        self.dim = dim

    def __repr__(self) -> str:
        return f"ASIFEmbeddings(asif={self.asif!r}, dim={self.dim}, max_dim={self.max_dim})"

    def to_dense(self, vector: ASIFSparseVector) -> list[float]:
        """Write an ASIF sparse vector out as ``dim`` plain floats (position = anchor id).

        Raises:
            AnchorSetError: If the vector uses an anchor id ``>= dim``.
        """
        out = np.zeros(self.dim, dtype=np.float32)
        if len(vector):
            top = int(vector.indices.max())
            if top >= self.dim:
                raise AnchorSetError(
                    f"Anchor id {top} does not fit in this ASIFEmbeddings of dim {self.dim} "
                    f"(anchor ids 0..{self.dim - 1}): anchors were added to the model "
                    f"'{self.asif.name}' after it was created. Create a new ASIFEmbeddings "
                    f"(dim >= {top + 1}) and embed the stored items again, or pass a larger "
                    "'dim' up front."
                )
            out[vector.indices.astype(np.int64)] = vector.values
        return out.tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Dense ASIF vectors of texts (``dim`` floats each)."""
        return [self.to_dense(v) for v in self._text_vectors(texts, "embed_documents")]

    def embed_query(self, text: str) -> list[float]:
        """Dense ASIF vector of one query text."""
        text = check_query(f"{self._owner}.embed_query", text)
        return self.to_dense(self._text_vectors([text], "embed_query")[0])

    def embed_image(self, uris: list[ImageURI]) -> list[list[float]]:
        """Dense ASIF vectors of image files, comparable with the text vectors (as CLIP's)."""
        return [self.to_dense(v) for v in self._image_vectors(uris, "embed_image")]

    async def aembed_image(self, uris: list[ImageURI]) -> list[list[float]]:
        """Async :meth:`embed_image` (runs in the default executor)."""
        return await run_in_executor(None, self.embed_image, uris)
