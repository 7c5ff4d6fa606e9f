"""Fast anchor search for ASIF relative vectors: a pure component (numpy, torch).

An :class:`AnchorIndex` holds the anchor embeddings of one modality under their ids and returns
each query's top-k anchors with their cosine similarities; :func:`relative_vectors` turns them
into ASIF sparse vectors. :func:`make_index` builds one by method name, ``"auto"`` picking
an exact path: ``torch`` on CUDA, ``exact`` on a CPU (see ``docs/PERFORMANCE.md``):

=================  ===========================================================================
``exact``          numpy BLAS over an in-memory float32 matrix, argpartition per row
``ivf``            two-stage: centroid ranking, then exact scoring of the probed lists
                   (``nprobe`` calibrated on held-out anchors: recall 0.995, cosine 0.9993)
``ivf-pca``        the same lists scanned in a PCA space (half the dims), the best ``C``
                   candidates (calibrated likewise) rescored exactly in ``float32``
``torch``          torch matmul + topk, on CUDA when present (exact)
=================  ===========================================================================

The benchmark measures more paths (reduced-precision scans, the Qdrant engine's exact,
quantized and HNSW search); they live with it, in ``benchmarks/indexes``.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.anchor_index import choose_method, make_index
    >>> choose_method(50_000, device="cpu"), choose_method(2_000_000, device="cpu")
    ('exact', 'exact')
    >>> index = make_index("exact").build(np.arange(3), np.eye(3))
    >>> index.topk(np.eye(3)[:1], k=1)[0].tolist()
    [[0]]
"""

from __future__ import annotations

from typing import Any

from asif_qdrant.anchor_index.base import (
    AnchorIndex,
    recall_at_k,
    relative_search,
    relative_vectors,
    segmented_topk,
    sparse_cosine,
)
from asif_qdrant.anchor_index.exact import ExactIndex, exact_topk
from asif_qdrant.anchor_index.ivf import IVFIndex
from asif_qdrant.anchor_index.ivf_pca import IVFPCAIndex
from asif_qdrant.anchor_index.torch_index import TorchIndex, cuda_available
from asif_qdrant.errors import InvalidParameterError, check_int

__all__ = [
    "METHODS",
    "AnchorIndex",
    "ExactIndex",
    "IVFIndex",
    "IVFPCAIndex",
    "TorchIndex",
    "choose_method",
    "cuda_available",
    "exact_topk",
    "make_index",
    "recall_at_k",
    "relative_search",
    "relative_vectors",
    "segmented_topk",
    "sparse_cosine",
]

#: Every method :func:`make_index` accepts, besides ``"auto"``.
METHODS: tuple[str, ...] = ("exact", "ivf", "torch", "ivf-pca")


def choose_method(n: int, *, device: str | None = None) -> str:
    """The method ``"auto"`` resolves to for ``n`` anchors: always an exact one.

    A CUDA device (given, or present when ``device`` is ``None``) means ``"torch"``; on a CPU,
    ``"exact"`` at every size. The approximate paths (``"ivf"``, ``"ivf-pca"``) are one
    argument away: at 1M x 384 they answer about 2x faster, but their calibrated recall and
    cosine are estimates that one draw of queries missed (mean sparse-vector cosine 0.9986
    against the 0.999 bar), their first query trains and calibrates (about 90 s at 1M against
    2 s) and they hold a copy of the anchors (docs/PERFORMANCE.md). ``n`` is kept so that a
    size rule can come back without changing callers.

    Example:
        >>> choose_method(10, device="cpu"), choose_method(10**7, device="cpu")
        ('exact', 'exact')
    """
    check_int("n", "choose_method", n, minimum=0)
    if device is not None and device.startswith("cuda"):
        return "torch"
    if device is None and cuda_available():
        return "torch"
    return "exact"


def make_index(
    method: str = "auto", *, n: int | None = None, device: str | None = None, **options: Any
) -> AnchorIndex:
    """An empty :class:`AnchorIndex` of the given method (``build`` it next).

    Args:
        method: ``"auto"`` or one of :data:`METHODS`.
        n: The expected anchor count (used by ``"auto"``).
        device: Torch device for ``"torch"`` (and what ``"auto"`` considers).
        **options: Passed to the index class (``nprobe=``, ``target_recall=`` ...).

    Raises:
        InvalidParameterError: On an unknown method.

    Example:
        >>> type(make_index("auto", n=1_000_000, device="cpu")).__name__
        'ExactIndex'
    """
    if method == "auto":
        method = choose_method(n or 0, device=device)
    if method == "exact":
        return ExactIndex(**options)
    if method == "ivf":
        return IVFIndex(**options)
    if method == "ivf-pca":
        return IVFPCAIndex(**options)
    if method == "torch":
        return TorchIndex(device=device, **options)
    raise InvalidParameterError(
        f"The 'method' parameter of make_index must be 'auto' or one of {list(METHODS)}. "
        f"Got {method!r} instead."
    )
