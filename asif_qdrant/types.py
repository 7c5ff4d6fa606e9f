"""Small value types and input aliases shared by every module.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.types import SparseVector
    >>> a = SparseVector(indices=np.array([3, 7]), values=np.array([0.6, 0.8]))
    >>> b = SparseVector.from_dict({"indices": [7, 9], "values": [1.0, 0.0]})
    >>> round(a.dot(b), 6)
    0.8
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, Union

import numpy as np

from asif_qdrant.errors import InvalidParameterError, check_int, check_one_of, check_real

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "FUSIONS",
    "METHODS",
    "MODALITIES",
    "QUERY_VIA",
    "TARGETS",
    "Fusion",
    "Hit",
    "ImageInput",
    "Method",
    "Modality",
    "QueryVia",
    "SearchFields",
    "SearchOptions",
    "SparseVector",
    "Target",
    "TextInput",
]

#: One image: a file path, the encoded file bytes, a PIL image or an (H, W[, C]) array.
ImageInput: TypeAlias = Union[str, "os.PathLike[str]", bytes, "PILImage", np.ndarray]
#: One text.
TextInput: TypeAlias = str
#: The modality of an input (the encoder and anchor side it goes through).
Modality = Literal["image", "text"]
MODALITIES: tuple[str, ...] = ("image", "text")
#: How a search or a classification scores: ASIF sparse vectors, CSA, or both fused.
Method = Literal["asif", "csa", "hybrid"]
METHODS: tuple[str, ...] = ("asif", "csa", "hybrid")
#: ``native``: the query's own relative vector; ``invert``: through its anchors' other side.
QueryVia = Literal["native", "invert"]
QUERY_VIA: tuple[str, ...] = ("native", "invert")
#: ``item``: the items' own vectors; ``caption``: the caption vectors of image items.
Target = Literal["item", "caption"]
TARGETS: tuple[str, ...] = ("item", "caption")
#: How two rankings are fused: reciprocal rank fusion or distribution-based score fusion.
Fusion = Literal["rrf", "dbsf"]
FUSIONS: tuple[str, ...] = ("rrf", "dbsf")


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector over anchor ids: the ASIF relative representation.

    Attributes:
        indices: Anchor point ids (``uint64``), sorted by decreasing value.
        values: The weights (``float32``), L2-normalised unless every weight is 0.
    """

    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        indices = np.asarray(self.indices, dtype=np.uint64).reshape(-1)
        values = np.asarray(self.values, dtype=np.float32).reshape(-1)
        if indices.shape != values.shape:
            raise ValueError(
                f"SparseVector needs as many indices as values. Got {indices.size} indices "
                f"and {values.size} values."
            )
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return int(self.indices.size)

    def as_dict(self) -> dict[str, list[Any]]:
        """Plain-Python form (JSON-serialisable)."""
        return {"indices": self.indices.tolist(), "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SparseVector:
        """Build from ``{"indices": [...], "values": [...]}``."""
        return cls(indices=np.asarray(data["indices"]), values=np.asarray(data["values"]))

    def to_dict_weights(self) -> dict[int, float]:
        """Map of anchor id to weight."""
        return {int(i): float(v) for i, v in zip(self.indices, self.values, strict=True)}

    def dot(self, other: SparseVector) -> float:
        """Dot product with another sparse vector (the ASIF similarity)."""
        common, ia, ib = np.intersect1d(
            self.indices, other.indices, assume_unique=True, return_indices=True
        )
        if common.size == 0:
            return 0.0
        return float(
            np.dot(self.values[ia].astype(np.float64), other.values[ib].astype(np.float64))
        )


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: The catalog point id.
        score: The ASIF score: the dot product of the query's and the item's sparse vectors.
        payload: The item's payload as stored.
    """

    id: int | str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


class SearchFields(TypedDict, total=False):
    """The fields of :class:`SearchOptions`, as keyword arguments of the search methods."""

    limit: int
    item_modality: Modality | None
    filter: Mapping[str, Any] | None
    min_score: float | None
    min_shared_anchors: int | None
    method: Method
    query_via: QueryVia
    target: Target
    fusion: Fusion
    prefetch_limit: int | None
    min_confidence: float | None


@dataclass(frozen=True)
class SearchOptions:
    """How a catalog search runs: validated once, shared by every search method.

    ``ASIF.search``, ``search_batch`` and ``search_embeddings`` take a ``SearchOptions`` and/or
    its fields as keyword arguments (keywords override the options).

    Attributes:
        limit: How many hits, >= 1.
        item_modality: Only return catalog items of this modality ("image" or "text").
        filter: Exact-match payload filter, e.g. ``{"category": "animals"}``.
        min_score: Drop hits scoring below this (a score floor).
        min_shared_anchors: Drop hits sharing fewer anchors with the query (an empty result
            is the "no match" outcome).
        method: ``"asif"`` (sparse relative vectors), ``"csa"`` (the CSA similarity of a model
            built with ``csa_dim``) or ``"hybrid"`` (both rankings fused by the engine).
        query_via: ``"native"``, or ``"invert"``: move the query into the other modality
            through its top anchors (method "asif").
        target: ``"item"`` (the items' own vectors) or ``"caption"``: the caption vectors of
            image items indexed with captions (method "asif").
        fusion: ``"rrf"`` (reciprocal rank fusion, k=2) or ``"dbsf"``, for "hybrid".
        prefetch_limit: Candidates per prefetch for "hybrid", and of the first stage of a
            two-stage "asif" search (``None``: ``max(2 * limit, 50)``, see
            :attr:`candidates`).
        min_confidence: Refuse (return no hit for) a text or image query whose best cosine
            to the anchors of its modality is below this share of the anchors' own
            (leave-one-out) best cosines: a calibrated "no match" in [0, 1]
            (:mod:`asif_qdrant.retriever.calibration`; 0.03 is the measured level in
            docs/levers/RESULTS.md). Needs the query itself, not a sparse vector.
        query_nnz: Two-stage "asif" search of the items' own vectors: the query's
            ``query_nnz`` largest weights find :attr:`candidates` items (the engine walks
            that many posting lists instead of all k), which the full query then rescores
            exactly, in one engine call. ``None``: one stage (the full query walks all
            its lists). A query with at most ``query_nnz`` non-zeros runs in one stage.

    Example:
        >>> opts = SearchOptions(limit=5, item_modality="image")
        >>> opts.payload_filter, opts.candidates
        ({'modality': 'image'}, 50)
        >>> SearchOptions.merge(opts, limit=3).limit
        3
        >>> SearchOptions(method="csa", target="caption")
        Traceback (most recent call last):
        ...
        asif_qdrant.errors.InvalidParameterError: ASIF.search: query_via='invert' and \
target='caption' work on ASIF relative vectors only: use them with method='asif'. Got \
method='csa', query_via='native', target='caption'.
    """

    limit: int = 10
    item_modality: Modality | None = None
    filter: Mapping[str, Any] | None = None
    min_score: float | None = None
    min_shared_anchors: int | None = None
    method: Method = "asif"
    query_via: QueryVia = "native"
    target: Target = "item"
    fusion: Fusion = "rrf"
    prefetch_limit: int | None = None
    min_confidence: float | None = None
    query_nnz: int | None = None

    def __post_init__(self) -> None:
        owner = "ASIF.search"
        set_ = object.__setattr__
        set_(self, "limit", check_int("limit", owner, self.limit, minimum=1))
        if self.min_score is not None:
            set_(self, "min_score", check_real("min_score", owner, self.min_score))
        if self.min_shared_anchors is not None:
            shared = check_int("min_shared_anchors", owner, self.min_shared_anchors, minimum=0)
            set_(self, "min_shared_anchors", shared)
        if self.item_modality is not None:
            check_one_of(owner, "item_modality", self.item_modality, MODALITIES)
        if self.filter is not None and not isinstance(self.filter, Mapping):
            raise InvalidParameterError(
                f"The 'filter' parameter of {owner} must be a mapping of payload key to value "
                f"(exact match) or None. Got {self.filter!r:.100} instead."
            )
        method = check_one_of(owner, "method", self.method, METHODS)
        query_via = check_one_of(owner, "query_via", self.query_via, QUERY_VIA)
        target = check_one_of(owner, "target", self.target, TARGETS)
        if method != "asif" and (query_via != "native" or target != "item"):
            raise InvalidParameterError(
                f"{owner}: query_via='invert' and target='caption' work on ASIF relative "
                f"vectors only: use them with method='asif'. Got method={method!r}, "
                f"query_via={query_via!r}, target={target!r}."
            )
        check_one_of(owner, "fusion", self.fusion, FUSIONS)
        if self.prefetch_limit is not None:
            pl = check_int("prefetch_limit", owner, self.prefetch_limit, minimum=1)
            set_(self, "prefetch_limit", pl)
        if self.query_nnz is not None:
            set_(self, "query_nnz", check_int("query_nnz", owner, self.query_nnz, minimum=1))
        if self.min_confidence is not None:
            conf = check_real("min_confidence", owner, self.min_confidence)
            if not 0.0 <= conf <= 1.0:
                raise InvalidParameterError(
                    f"The 'min_confidence' parameter of {owner} must be a share in [0, 1] "
                    "(0.03 refuses queries less like the anchors than 97% of the anchors "
                    f"are to each other). Got {conf} instead."
                )
            set_(self, "min_confidence", conf)

    @classmethod
    def merge(cls, options: SearchOptions | None = None, **fields: Any) -> SearchOptions:
        """``options`` (default: the defaults) with ``fields`` replaced, validated.

        Raises:
            TypeError: On a keyword that is not a field (the message lists the fields).
            InvalidParameterError: On a bad value.
        """
        if options is not None and not isinstance(options, SearchOptions):
            raise InvalidParameterError(
                "The 'options' parameter of ASIF.search must be a SearchOptions or None. "
                f"Got {type(options).__name__} instead."
            )
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(fields) - set(names))
        if unknown:
            hint = (
                " ('modality' filters are named 'item_modality' now)"
                if "modality" in unknown or "modality_filter" in unknown
                else ""
            )
            raise TypeError(
                f"Unknown search option(s) {', '.join(map(repr, unknown))}{hint}. The options "
                f"are: {', '.join(names)}."
            )
        if options is None:
            return cls(**fields)
        return dataclasses.replace(options, **fields) if fields else options

    @property
    def candidates(self) -> int:
        """Candidates per prefetch of a hybrid or two-stage search."""
        return self.prefetch_limit if self.prefetch_limit is not None else max(2 * self.limit, 50)

    @property
    def payload_filter(self) -> dict[str, Any] | None:
        """The engine's payload filter: ``filter`` plus the item modality (None if empty)."""
        flt = dict(self.filter or {})
        if self.item_modality is not None:
            flt["modality"] = self.item_modality
        return flt or None
