"""Benchmark-only anchor indexes: the paths measured against the library's, not shipped with it.

The library (:mod:`asif_qdrant.anchor_index`) keeps the paths a model uses (``exact``, ``ivf``,
``torch``); the benchmark (``python -m benchmarks.run``, docs/PERFORMANCE.md) also measures:

==================  ==========================================================================
``official``        the official ASIF code's recipe: torch ``einsum`` + ``topk`` per 100k-anchor
                    chunk, merged (a baseline, :mod:`benchmarks.indexes.baselines`)
``numpy``           numpy ``q @ A.T`` + ``argpartition`` over pre-normalised anchors (a baseline)
``int8-rescore``    int8 scan (``torch._int_mm``) + exact rescoring of 2k candidates
``bf16-rescore``    bfloat16 scan (torch) + exact rescoring
``binary-rescore``  Hamming scan of sign bits + exact rescoring of 16k candidates
``qdrant-exact``    the embedded Qdrant engine, exact search (``ASIF(anchor_search="qdrant")``)
``qdrant-sq``       Qdrant int8 scalar quantization, oversampling 2 + rescoring
``qdrant-bq``       Qdrant binary quantization, oversampling 8 + rescoring
``qdrant-hnsw``     Qdrant HNSW, ``ef = 2k``
==================  ==========================================================================

:func:`make_index` builds any of :data:`METHODS` (these and the library's) by name.

Example:
    >>> from benchmarks.indexes import METHODS, make_index
    >>> METHODS[:3], type(make_index("binary-rescore")).__name__, make_index("exact").method
    (('official', 'numpy', 'exact'), 'QuantizedIndex', 'exact')
"""

from __future__ import annotations

from typing import Any

from asif_qdrant.anchor_index import METHODS as LIBRARY_METHODS
from asif_qdrant.anchor_index import AnchorIndex
from asif_qdrant.anchor_index import make_index as make_library_index
from asif_qdrant.errors import InvalidParameterError
from benchmarks.indexes.baselines import NumpyIndex, OfficialIndex
from benchmarks.indexes.qdrant_index import QdrantIndex
from benchmarks.indexes.quantized import QuantizedIndex

__all__ = [
    "BASELINE_METHODS",
    "METHODS",
    "QDRANT_METHODS",
    "QUANTIZED_METHODS",
    "NumpyIndex",
    "OfficialIndex",
    "QdrantIndex",
    "QuantizedIndex",
    "make_index",
]

#: The honest brute-force baselines (:mod:`benchmarks.indexes.baselines`); every ``x baseline``
#: of the benchmark is a ratio to the faster of the two in the same run.
BASELINE_METHODS: tuple[str, ...] = ("official", "numpy")
#: Reduced-precision scans with exact rescoring (:class:`QuantizedIndex`).
QUANTIZED_METHODS: tuple[str, ...] = ("int8-rescore", "bf16-rescore", "binary-rescore")
#: Anchor search inside the embedded Qdrant engine (:class:`QdrantIndex`).
QDRANT_METHODS: tuple[str, ...] = ("qdrant-exact", "qdrant-sq", "qdrant-bq", "qdrant-hnsw")
#: Every method :func:`make_index` accepts besides ``"auto"``, in the benchmark's order: the
#: baselines, every method of the library (:data:`asif_qdrant.anchor_index.METHODS`, whatever
#: it holds), then the benchmark-only paths.
METHODS: tuple[str, ...] = (
    *BASELINE_METHODS,
    *LIBRARY_METHODS,
    *QUANTIZED_METHODS,
    *QDRANT_METHODS,
)


def make_index(
    method: str = "auto", *, n: int | None = None, device: str | None = None, **options: Any
) -> AnchorIndex:
    """An empty index of any method of :data:`METHODS` (``options`` go to the index class).

    ``"auto"`` and the library's methods are built by :func:`asif_qdrant.anchor_index.make_index`.

    Example:
        >>> make_index("int8-rescore", oversample=4).describe()["oversample"]
        4.0
    """
    if method == "official":
        return OfficialIndex(device=device, **options)
    if method == "numpy":
        return NumpyIndex(**options)
    if method in QUANTIZED_METHODS:
        return QuantizedIndex(method.split("-")[0], **options)  # type: ignore[arg-type]
    if method in QDRANT_METHODS:
        return QdrantIndex(method.split("-", 1)[1], **options)  # type: ignore[arg-type]
    if method != "auto" and method not in LIBRARY_METHODS:
        raise InvalidParameterError(
            f"The 'method' parameter of make_index must be 'auto' or one of {list(METHODS)}. "
            f"Got {method!r} instead."
        )
    return make_library_index(method, n=n, device=device, **options)
