"""The request and response bodies of the service (pydantic models, in the OpenAPI schema).

Every bound here is also a documented 4xx: a ``limit`` of 0 or above :data:`MAX_LIMIT`, an
empty query, a filter value that is not a string, an integer, a boolean or a list of them,
a point id that is neither an unsigned integer nor a UUID.

Example:
    >>> SearchRequest(query="a red apple", limit=3).limit
    3
    >>> from pydantic import ValidationError
    >>> try:
    ...     SearchRequest(query="", limit=3)
    ... except ValidationError as e:
    ...     e.errors()[0]["loc"], e.errors()[0]["type"]
    (('query',), 'string_too_short')
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "COLLECTION_PATTERN",
    "MAX_BATCH",
    "MAX_LIMIT",
    "AnchorList",
    "AnchorOut",
    "AnchorsAdded",
    "AnchorsDeleted",
    "BatchSearchRequest",
    "BatchSearchResponse",
    "ClassifyResponse",
    "ErrorOut",
    "ExplainAnchor",
    "ExplainRequest",
    "ExplainResponse",
    "FilterValue",
    "Health",
    "HitOut",
    "IndexTextsRequest",
    "ItemsIndexed",
    "ModelInfo",
    "PointIdIn",
    "Readiness",
    "SearchRequest",
    "SearchResponse",
]

#: The most hits one search may ask for.
MAX_LIMIT = 1000
#: The most queries (or items, or labels) in one batch request.
MAX_BATCH = 256
#: A catalog name: what :func:`asif_qdrant.store.base.check_collection_name` allows.
COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$"

#: A point id of a catalog item or an anchor: an unsigned 63-bit integer or a UUID.
PointIdIn = Annotated[int, Field(ge=0, le=2**63 - 1)] | uuid.UUID
_Scalar = (
    Annotated[str, Field(max_length=1000)] | Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | bool
)
#: An exact-match payload filter value: a string, an integer, a boolean or a list of them.
FilterValue = _Scalar | Annotated[list[_Scalar], Field(min_length=1, max_length=MAX_BATCH)]
_Filter = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=200)], FilterValue] | None,
    Field(
        description='Exact-match payload filter, e.g. {"category": "animals"}; a list '
        "value matches any of its values.",
        max_length=32,
    ),
]
_Text = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\S")]
_Method = Literal["asif", "csa", "hybrid"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Options(_Body):
    limit: int = Field(10, ge=1, le=MAX_LIMIT, description="How many hits (1-1000).")
    filter: _Filter = None
    method: _Method = Field("asif", description="asif, csa (a model with CSA) or hybrid.")
    min_score: float | None = Field(
        None, allow_inf_nan=False, description="Drop hits scoring below this."
    )
    item_modality: Literal["image", "text"] | None = Field(
        None, description="Only items of this modality."
    )


class SearchRequest(_Options):
    """A text query and its search options."""

    query: _Text = Field(description="The text query.")


class BatchSearchRequest(_Options):
    """Several text queries with the same options."""

    queries: list[_Text] = Field(min_length=1, max_length=MAX_BATCH)


class HitOut(BaseModel):
    """One hit: the item's id, its score, its payload and where to get its image."""

    id: int | str
    score: float
    payload: dict[str, Any]
    image_url: str | None = Field(None, description="The item's image (served by this service).")


class SearchResponse(BaseModel):
    """The hits of one query, best first."""

    collection: str
    hits: list[HitOut]
    seconds: float = Field(description="Time spent in ASIF.search (encoding included).")


class BatchSearchResponse(BaseModel):
    """One list of hits per query, in the order of the queries."""

    collection: str
    results: list[list[HitOut]]
    seconds: float


class ExplainRequest(_Body):
    """Which hit of which text query to explain."""

    query: _Text
    item_id: PointIdIn = Field(description="The id of the catalog item (a hit's id).")
    top: int = Field(8, ge=1, le=100, description="How many anchor pairs to show.")


class ExplainAnchor(BaseModel):
    """One anchor pair shared by the query and the item."""

    id: int
    caption: str | None
    query_weight: float
    item_weight: float
    contribution: float
    image_url: str | None


class ExplainResponse(BaseModel):
    """The anchor pairs behind a score (the largest ``top`` contributions)."""

    query: str
    item: str
    item_id: int | str | None
    collection: str | None
    score: float
    shared_anchors: int
    query_anchors: int
    item_anchors: int
    anchors: list[ExplainAnchor]
    rest: float = Field(description="What the anchors not shown contribute together.")
    item_image_url: str | None


class ClassifyResponse(BaseModel):
    """The zero-shot label of an image and every label's score."""

    label: str
    scores: dict[str, float]


class AnchorOut(BaseModel):
    """One anchor pair."""

    id: int
    caption: str | None
    payload: dict[str, Any]
    image_url: str | None


class AnchorList(BaseModel):
    """A page of anchor pairs, in id order."""

    total: int
    offset: int
    anchors: list[AnchorOut]


class AnchorsAdded(BaseModel):
    """What adding anchor pairs did."""

    ids: list[int]
    added: int = Field(0, description="Written new.")
    already_present: int = Field(
        0, description="Found already stored (same content key) and left alone."
    )
    replaced: int = Field(0, description="Found already stored and written again.")
    anchor_count: int
    anchor_version: int
    last_edit: dict[str, Any] | None


class AnchorsDeleted(BaseModel):
    """What deleting anchor pairs did."""

    deleted: int
    anchor_count: int
    anchor_version: int
    last_edit: dict[str, Any] | None


class IndexTextsRequest(_Body):
    """Text items to index into a catalog."""

    texts: list[_Text] = Field(min_length=1, max_length=MAX_BATCH)
    payloads: list[dict[str, Any]] | None = Field(
        None, description="One payload per text (keys 'image', 'text', 'modality' are ours)."
    )
    ids: list[PointIdIn] | None = Field(None, description="One point id per text.")


class ItemsIndexed(BaseModel):
    """The ids of the items indexed."""

    collection: str
    ids: list[int | str]
    items: int = Field(description="Items in the catalog now.")
    added: int = Field(0, description="Written new.")
    already_present: int = Field(
        0, description="Found already stored (same content key) and left alone."
    )
    replaced: int = Field(0, description="Found already stored and written again.")


class ModelInfo(BaseModel):
    """The served model: its settings, anchors and catalogs."""

    name: str
    store: str
    image_encoder: str
    text_encoder: str
    k: int
    p: float
    anchor_count: int
    anchor_version: int
    csa: bool
    catalogs: dict[str, int] = Field(description="Catalog name -> items.")
    fingerprint: dict[str, Any]


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether the encoders are loaded and the model answers queries."""

    ready: bool
    encoders: dict[str, str] = Field(description="Per modality: 'loaded' or why not.")
    seconds: float | None = Field(None, description="How long loading took.")


class ErrorOut(BaseModel):
    """Every error: its kind, a message saying what was wrong and what is allowed, the field."""

    error: str
    message: str
    field: str | None = None
