"""LangChain integration of asif-qdrant: ASIF as CLIP-like embeddings and a multimodal retriever.

* :class:`ASIFSparseEmbeddings`: langchain-qdrant ``SparseEmbeddings`` (texts and images) for
  ``QdrantVectorStore`` in SPARSE or HYBRID mode.
* :class:`ASIFEmbeddings`: a langchain-core ``Embeddings`` with ``embed_image``, dense over the
  anchor slots, like the CLIP embeddings people use.
* :class:`ASIFQdrantVectorStore`: ``QdrantVectorStore`` plus ``add_images`` and
  ``similarity_search_by_image``.
* :class:`ASIFRetriever`: a ``BaseRetriever`` over an ASIF catalog (embedded engine or server),
  text or image queries.
* :class:`ASIFServiceRetriever`: the same over HTTP, from a running ``asif-qdrant serve``.

Example:
    >>> import langchain_asif_qdrant
    >>> sorted(langchain_asif_qdrant.__all__)[:2]
    ['ASIFEmbeddings', 'ASIFQdrantVectorStore']
"""

from __future__ import annotations

from langchain_asif_qdrant.embeddings import DEFAULT_MAX_DIM, ASIFEmbeddings, ASIFSparseEmbeddings
from langchain_asif_qdrant.retrievers import ASIFRetriever
from langchain_asif_qdrant.service import ASIFServiceRetriever
from langchain_asif_qdrant.vectorstores import MODALITY_KEY, ASIFQdrantVectorStore

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_DIM",
    "MODALITY_KEY",
    "ASIFEmbeddings",
    "ASIFQdrantVectorStore",
    "ASIFRetriever",
    "ASIFServiceRetriever",
    "ASIFSparseEmbeddings",
    "__version__",
]
