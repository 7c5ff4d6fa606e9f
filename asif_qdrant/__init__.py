"""asif-qdrant: a CLIP-like multimodal retriever from two frozen unimodal encoders (ASIF) on Qdrant.

Importing this package does not import torch, timm or sentence-transformers: encoders load on
first use.

Example:
    >>> from asif_qdrant import ASIF, relative_topk
    >>> ASIF.__name__, relative_topk.__name__
    ('ASIF', 'relative_topk')
"""

from __future__ import annotations

from asif_qdrant.csa import CSA, fit_csa
from asif_qdrant.errors import (
    AnchorSetError,
    ASIFError,
    CollectionNotFoundError,
    EncoderLoadError,
    FingerprintMismatchError,
    ImageDecodeError,
    InvalidInputError,
    InvalidParameterError,
    ModelNotFoundError,
    StoreError,
)
from asif_qdrant.model import ASIF
from asif_qdrant.relative import relative_topk, relative_weights
from asif_qdrant.retriever.catalogs import IndexJob
from asif_qdrant.retriever.explain import AuditReport, Explanation, LabelExplanation
from asif_qdrant.retriever.integrity import IntegrityReport
from asif_qdrant.retriever.keys import IngestResult
from asif_qdrant.retriever.recompute import EditReport
from asif_qdrant.types import Hit, SearchOptions, SparseVector
from asif_qdrant.version import __version__

__all__ = [
    "ASIF",
    "CSA",
    "ASIFError",
    "AnchorSetError",
    "AuditReport",
    "CollectionNotFoundError",
    "EditReport",
    "EncoderLoadError",
    "Explanation",
    "FingerprintMismatchError",
    "Hit",
    "ImageDecodeError",
    "IndexJob",
    "IngestResult",
    "IntegrityReport",
    "InvalidInputError",
    "InvalidParameterError",
    "LabelExplanation",
    "ModelNotFoundError",
    "SearchOptions",
    "SparseVector",
    "StoreError",
    "__version__",
    "fit_csa",
    "relative_topk",
    "relative_weights",
]
