"""The retrieval service: one FastAPI app over one open :class:`~asif_qdrant.ASIF` model.

:func:`create_app` builds it; ``asif-qdrant serve`` runs it with uvicorn (docs/SERVE.md).
Every model call runs in a worker thread (``run_in_threadpool``), so the event loop keeps
answering while encoders and searches work. Consistency is the model's own: each ``ASIF``
method holds the model's read-write lock (:mod:`asif_qdrant.locking`), searches as readers
and anchor edits and indexing as writers, so a search sees the model entirely before or
entirely after an edit. What the service reads besides (payloads for images, catalog
sizes) it reads under the same read lock (:func:`asif_qdrant.locking.locked`).

The endpoints (``/docs`` lists them with their schemas):

=======================================  ==================================================
``GET /health``, ``GET /ready``          the process answers; the encoders are loaded
``GET /api/model``                       the model: settings, anchors, catalogs
``POST /api/catalogs/{c}/search``        a text query (JSON)
``POST /api/catalogs/{c}/search/image``  an image query (multipart upload)
``POST /api/catalogs/{c}/search/batch``  several text queries
``POST /api/catalogs/{c}/explain``       the anchor pairs behind a hit (``.png``: a figure)
``POST /api/catalogs/{c}/explain/image`` the same for an image query
``POST /api/classify``                   zero-shot label of an uploaded image
``GET/POST/DELETE /api/anchors``         list, add (uploaded pairs), delete anchor pairs
``POST /api/catalogs/{c}/items``         index texts (``/items/images``: uploaded images)
``GET /api/images/...``                  the image of an anchor or a catalog item, by id
=======================================  ==================================================
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, File, Form, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from asif_qdrant.errors import AnchorSetError, ASIFError
from asif_qdrant.locking import locked
from asif_qdrant.model import ASIF
from asif_qdrant.retriever.keys import IngestResult
from asif_qdrant.service.problems import (
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    ServiceError,
    install_error_handlers,
)
from asif_qdrant.service.schemas import (
    COLLECTION_PATTERN,
    MAX_BATCH,
    MAX_LIMIT,
    AnchorList,
    AnchorOut,
    AnchorsAdded,
    AnchorsDeleted,
    BatchSearchRequest,
    BatchSearchResponse,
    ClassifyResponse,
    ErrorOut,
    ExplainAnchor,
    ExplainRequest,
    ExplainResponse,
    Health,
    HitOut,
    IndexTextsRequest,
    ItemsIndexed,
    ModelInfo,
    PointIdIn,
    Readiness,
    SearchRequest,
    SearchResponse,
)
from asif_qdrant.service.uploads import image_media_type, keep_upload, read_upload
from asif_qdrant.version import __version__

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "RESERVED_PAYLOAD_KEYS",
    "STATIC_DIR",
    "Service",
    "create_app",
]

T = TypeVar("T")

#: The most bytes one uploaded file may have (10 MiB).
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: The most pixels one uploaded image may have (40 megapixels).
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
#: Payload keys the model writes itself; a client may not set them.
RESERVED_PAYLOAD_KEYS = frozenset({"image", "text", "modality"})
#: The search page's files (HTML, JS, CSS), served at ``/`` and ``/static``.
STATIC_DIR = Path(__file__).parent / "static"
#: The most files in one upload request (anchor pairs, catalog images).
MAX_FILES = 64

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in {
        400: "A malformed body (not JSON, broken multipart).",
        401: "No API key sent (when the service has one).",
        403: "The wrong API key, or an edit sent to a read-only service.",
        404: "No such catalog, item or anchor.",
        409: "The model cannot do this (no CSA, no encoder, a store error).",
        413: "An upload too large, or an image with too many pixels.",
        415: "An upload that is not an image.",
        422: "A request that does not fit the schema; the field is named.",
    }.items()
}

Collection = Annotated[
    str, PathParam(pattern=COLLECTION_PATTERN, description="A catalog of the model.")
]
_FILTER = TypeAdapter(SearchRequest.model_fields["filter"].annotation)
_POINT_ID = TypeAdapter(PointIdIn)
Method = Literal["asif", "csa", "hybrid"]


# -- reads under the model's read lock -----------------------------------------------------
@locked("read")
def _catalog_sizes(asif: ASIF) -> dict[str, int]:
    store = asif.state.store
    return {c: store.count(c) for c in sorted(asif.fingerprint.catalogs)}


@locked("read")
def _model_info(asif: ASIF) -> dict[str, Any]:
    fp = asif.fingerprint
    return {
        "name": asif.name,
        "store": asif.store.describe(),
        "image_encoder": fp.image_encoder,
        "text_encoder": fp.text_encoder,
        "k": fp.k,
        "p": fp.p,
        "anchor_count": fp.anchor_count,
        "anchor_version": fp.anchor_version,
        "csa": fp.csa_dim is not None,
        "catalogs": _catalog_sizes(asif),
        "fingerprint": fp.as_payload(),
    }


@locked("read")
def _payload(asif: ASIF, collection: str | None, point_id: int | str) -> dict[str, Any] | None:
    """The payload of an anchor (``collection`` None) or a catalog item; None if absent."""
    name = asif.layout.image_anchors if collection is None else collection
    if collection is not None and collection not in asif.fingerprint.catalogs:
        return None
    records = asif.state.store.retrieve(name, [point_id])
    return dict(records[0].payload) if records else None


@locked("read")
def _edit_summary(asif: ASIF) -> dict[str, Any]:
    last = asif.last_edit
    fp = asif.fingerprint
    return {
        "anchor_count": fp.anchor_count,
        "anchor_version": fp.anchor_version,
        "last_edit": None if last is None else last.as_dict(),
    }


# -- the service -------------------------------------------------------------------------
@dataclass
class Service:
    """What the endpoints share: the model, the limits, readiness.

    Attributes:
        asif: The served model (the service does not close it).
        max_upload_bytes: The most bytes per uploaded file.
        max_image_pixels: The most pixels per uploaded image.
        upload_dir: Where uploaded anchor and item images are kept (None: not kept, so
            they have no image to show).
        read_only: Refuse edits (anchors add / delete, indexing) with a 403.
        encoders: Per modality: ``"loaded"`` or why not (filled by :meth:`warm_up`).
        ready: Set once :meth:`warm_up` is done.
    """

    asif: ASIF
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    upload_dir: Path | None = None
    read_only: bool = False
    encoders: dict[str, str] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)
    load_seconds: float | None = None

    def warm_up(self) -> None:
        """Load both encoders and the anchor indexes (one query of each modality)."""
        from PIL import Image

        start = time.perf_counter()
        probes: dict[str, Any] = {"text": "warm-up", "image": Image.new("RGB", (32, 32))}
        fp = self.asif.fingerprint
        for modality, probe in probes.items():
            name = getattr(fp, f"{modality}_encoder")
            if not name or name.startswith("precomputed/"):
                self.encoders[modality] = f"none: the model's {modality} encoder is {name!r}"
                continue
            try:
                if self.asif.anchor_count:
                    embed = self.asif.embed_texts if modality == "text" else self.asif.embed_images
                    embed([probe], show_progress_bar=False)
                else:
                    self.asif.encode([probe], modality, show_progress_bar=False)  # type: ignore[arg-type]
                self.encoders[modality] = "loaded"
            except ASIFError as e:
                self.encoders[modality] = f"failed: {e}"
        self.load_seconds = round(time.perf_counter() - start, 3)
        self.ready.set()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a model call in a worker thread (off the event loop)."""
        return await run_in_threadpool(fn, *args, **kwargs)

    async def upload(self, upload: UploadFile, field: str) -> bytes:
        """An uploaded image's bytes, within the limits."""
        return await read_upload(
            upload, field, max_bytes=self.max_upload_bytes, max_pixels=self.max_image_pixels
        )

    def kept(self, data: bytes) -> Any:
        """An uploaded image as the model should store it: a kept file's path, else bytes."""
        return data if self.upload_dir is None else keep_upload(data, self.upload_dir)

    def require_writable(self) -> None:
        """Raise a 403 when this service is read-only."""
        if self.read_only:
            raise ServiceError(
                403,
                "This service is read-only (asif-qdrant serve --read-only): send edits to the "
                "service that edits the model.",
                None,
                "ReadOnly",
            )

    async def require_catalog(self, collection: str) -> None:
        """Raise a 404 naming the catalogs when ``collection`` is not one of the model."""
        catalogs = self.asif.fingerprint.catalogs  # no store call: this runs on every search
        if collection not in catalogs:
            known = ", ".join(sorted(catalogs)) or "none yet"
            raise ServiceError(
                404,
                f"'{collection}' is not a catalog of the model '{self.asif.name}'. Its "
                f"catalogs: {known}.",
                "collection",
                "CollectionNotFoundError",
            )

    def hits(self, collection: str, hits: Sequence[Any]) -> list[HitOut]:
        """Hits as the API shows them, with the URL of each item's image."""
        return [
            HitOut(
                id=h.id,
                score=h.score,
                payload=h.payload,
                image_url=f"/api/images/catalogs/{collection}/{h.id}"
                if h.payload.get("image")
                else None,
            )
            for h in hits
        ]

    def explanation(self, why: Any, top: int) -> ExplainResponse:
        """An :class:`~asif_qdrant.retriever.explain.Explanation` as the API shows it."""
        data = why.as_dict(top)
        anchors = [
            ExplainAnchor(
                **{k: a[k] for k in ExplainAnchor.model_fields if k != "image_url"},
                image_url=f"/api/images/anchors/{a['id']}" if a.get("image") else None,
            )
            for a in data.pop("anchors")
        ]
        item_url = None
        if why.item_image and why.collection is not None:
            item_url = f"/api/images/catalogs/{why.collection}/{why.item_id}"
        return ExplainResponse(**data, anchors=anchors, item_image_url=item_url)


def _parse_filter(text: str | None) -> Any:
    if text is None or not text.strip():
        return None
    try:
        return _FILTER.validate_json(text)
    except ValidationError as e:
        raise ServiceError(
            422,
            "The 'filter' form field must be a JSON object of payload key to a string, an "
            'integer, a boolean or a list of them, e.g. {"category": "animals"}. '
            f"Got {text[:100]!r}: {e.errors()[0]['msg']}.",
            "filter",
            "RequestValidationError",
        ) from e


def _point_id(text: str, field: str) -> int | str:
    """A point id from a path: an unsigned integer or a UUID (never anything else)."""
    try:
        value = _POINT_ID.validate_python(int(text) if text.isdigit() else uuid.UUID(text))
    except (ValueError, ValidationError) as e:
        raise ServiceError(
            422,
            f"'{field}' must be a point id: an unsigned integer or a UUID. Got {text[:80]!r}.",
            field,
            "RequestValidationError",
        ) from e
    return value if isinstance(value, int) else str(value)


def _search_fields(body: Any) -> dict[str, Any]:
    return {
        "limit": body.limit,
        "filter": body.filter,
        "method": body.method,
        "min_score": body.min_score,
        "item_modality": body.item_modality,
    }


def _check_payloads(payloads: Sequence[dict[str, Any]] | None, n: int) -> None:
    if payloads is None:
        return
    if len(payloads) != n:
        raise ServiceError(
            422, f"'payloads' needs one entry per item ({n}). Got {len(payloads)}.", "payloads"
        )
    for p in payloads:
        bad = sorted(RESERVED_PAYLOAD_KEYS & set(p))
        if bad:
            raise ServiceError(
                422,
                f"'payloads' may not set {', '.join(map(repr, bad))}: the model writes these "
                f"keys itself ({', '.join(sorted(RESERVED_PAYLOAD_KEYS))}).",
                "payloads",
            )


def _model_routes(svc: Service) -> APIRouter:
    router = APIRouter(responses=_ERRORS)

    @router.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """The process answers (it may still be loading its encoders: see ``/ready``)."""
        return Health()

    @router.get(
        "/ready",
        response_model=Readiness,
        tags=["service"],
        responses={503: {"model": Readiness, "description": "Still loading the encoders."}},
    )
    async def ready() -> Any:
        """Ready once the encoders and anchor indexes are loaded (503 until then)."""
        body = Readiness(
            ready=svc.ready.is_set(), encoders=dict(svc.encoders), seconds=svc.load_seconds
        )
        return body if body.ready else JSONResponse(body.model_dump(), 503)

    @router.get("/api/model", response_model=ModelInfo, tags=["model"])
    async def model_info() -> ModelInfo:
        """The model's settings, its anchor set and its catalogs with their sizes."""
        return ModelInfo(**await svc.run(_model_info, svc.asif))

    return router


def _search_routes(svc: Service) -> APIRouter:
    router = APIRouter(prefix="/api/catalogs/{collection}", tags=["search"], responses=_ERRORS)
    asif = svc.asif

    @router.post("/search", response_model=SearchResponse)
    async def search_text(collection: Collection, body: SearchRequest) -> SearchResponse:
        """Search a catalog with a text."""
        await svc.require_catalog(collection)
        start = time.perf_counter()
        hits = await svc.run(asif.search, collection, body.query, **_search_fields(body))
        took = time.perf_counter() - start
        return SearchResponse(collection=collection, hits=svc.hits(collection, hits), seconds=took)

    @router.post("/search/batch", response_model=BatchSearchResponse)
    async def search_batch(collection: Collection, body: BatchSearchRequest) -> Any:
        """Search a catalog with several texts at once (encoded in one batch)."""
        await svc.require_catalog(collection)
        start = time.perf_counter()
        fields = _search_fields(body)
        results = await svc.run(asif.search_batch, collection, body.queries, **fields)
        took = time.perf_counter() - start
        out = [svc.hits(collection, r) for r in results]
        return BatchSearchResponse(collection=collection, results=out, seconds=took)

    @router.post("/search/image", response_model=SearchResponse)
    async def search_image(
        collection: Collection,
        image: Annotated[UploadFile, File(description="The query image.")],
        limit: Annotated[int, Form(ge=1, le=MAX_LIMIT)] = 10,
        filter: Annotated[str | None, Form(description="A JSON payload filter.")] = None,
        method: Annotated[Method, Form()] = "asif",
        min_score: Annotated[float | None, Form(allow_inf_nan=False)] = None,
    ) -> SearchResponse:
        """Search a catalog with an uploaded image."""
        data = await svc.upload(image, "image")
        flt = _parse_filter(filter)
        await svc.require_catalog(collection)
        start = time.perf_counter()
        fields = {"limit": limit, "filter": flt, "method": method, "min_score": min_score}
        hits = await svc.run(asif.search, collection, data, **fields)
        took = time.perf_counter() - start
        return SearchResponse(collection=collection, hits=svc.hits(collection, hits), seconds=took)

    return router


def _explain_routes(svc: Service) -> APIRouter:
    router = APIRouter(prefix="/api/catalogs/{collection}", tags=["explain"], responses=_ERRORS)
    asif = svc.asif

    async def explain(collection: str, query: Any, item_id: Any) -> Any:
        await svc.require_catalog(collection)
        item = str(item_id) if isinstance(item_id, uuid.UUID) else item_id
        return await svc.run(asif.explain, query, item, collection)

    @router.post("/explain", response_model=ExplainResponse)
    async def explain_text(collection: Collection, body: ExplainRequest) -> ExplainResponse:
        """The anchor pairs behind the score of one item for a text query."""
        why = await explain(collection, body.query, body.item_id)
        return svc.explanation(why, body.top)

    @router.post(
        "/explain/image",
        response_model=ExplainResponse,
    )
    async def explain_image(
        collection: Collection,
        image: Annotated[UploadFile, File(description="The query image.")],
        item_id: Annotated[str, Form(description="The catalog item's id.", max_length=64)],
        top: Annotated[int, Form(ge=1, le=100)] = 8,
    ) -> ExplainResponse:
        """The anchor pairs behind the score of one item for an uploaded image query."""
        data = await svc.upload(image, "image")
        why = await explain(collection, data, _point_id(item_id, "item_id"))
        return svc.explanation(why, top)

    @router.post(
        "/explain.png",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "The figure."}},
    )
    async def explain_png(collection: Collection, body: ExplainRequest) -> Response:
        """The explanation of a text query's hit as a figure (needs ``asif-qdrant[plot]``)."""
        why = await explain(collection, body.query, body.item_id)
        return Response(await svc.run(_figure, why, body.top), media_type="image/png")

    return router


def _figure(why: Any, top: int) -> bytes:
    try:
        from asif_qdrant.plotting import explain_figure
    except ImportError as e:  # pragma: no cover - matplotlib is an extra
        raise ServiceError(409, f"Drawing needs matplotlib: {e}", None, "MissingExtra") from e
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = explain_figure(why, Path(tmp) / "explain.png", top=top)
        except ImportError as e:
            raise ServiceError(409, str(e), None, "MissingExtra") from e
        return path.read_bytes()


def _edit_routes(svc: Service) -> APIRouter:
    router = APIRouter(tags=["anchors"], responses=_ERRORS)
    asif = svc.asif

    @router.get("/api/anchors", response_model=AnchorList)
    async def list_anchors(
        offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    ) -> AnchorList:
        """A page of anchor pairs, in id order."""
        rows = await svc.run(asif.list_anchors, limit=offset + limit)
        out = [
            AnchorOut(
                id=r["id"],
                caption=r.get("caption"),
                payload=r,
                image_url=f"/api/images/anchors/{r['id']}" if r.get("image") else None,
            )
            for r in rows[offset:]
        ]
        total = (await svc.run(_edit_summary, asif))["anchor_count"]
        return AnchorList(total=total, offset=offset, anchors=out)

    @router.post("/api/anchors", response_model=AnchorsAdded)
    async def add_anchors(
        images: Annotated[list[UploadFile], File(description="The anchor images.")],
        captions: Annotated[list[str], Form(description="One caption per image, in order.")],
    ) -> AnchorsAdded:
        """Add uploaded image-caption pairs as anchors (every catalog is brought up to date)."""
        svc.require_writable()
        if not 1 <= len(images) <= MAX_FILES or len(captions) != len(images):
            raise ServiceError(
                422,
                f"Upload 1-{MAX_FILES} images with one caption each. Got {len(images)} "
                f"images and {len(captions)} captions.",
                "captions",
            )
        if any(not c.strip() for c in captions):
            raise ServiceError(422, "Every caption must have text.", "captions")
        data = [await svc.upload(f, f"images[{i}]") for i, f in enumerate(images)]
        kept = [svc.kept(d) for d in data]
        result = await svc.run(asif.add_anchors, kept, captions, source="upload")
        return AnchorsAdded(**_ingested(result), **await svc.run(_edit_summary, asif))

    @router.delete("/api/anchors", response_model=AnchorsDeleted)
    async def delete_anchors(
        ids: Annotated[list[int], Query(min_length=1, max_length=MAX_BATCH)],
    ) -> AnchorsDeleted:
        """Delete anchor pairs by id (all or nothing; every catalog is brought up to date)."""
        svc.require_writable()
        if any(not 0 <= i < 2**63 for i in ids):
            raise ServiceError(422, "Anchor ids are unsigned integers.", "ids")
        try:
            deleted = await svc.run(asif.delete_anchors, ids)
        except AnchorSetError as e:
            raise ServiceError(404, str(e), "ids", "AnchorSetError") from e
        return AnchorsDeleted(deleted=deleted, **await svc.run(_edit_summary, asif))

    return router


def _ingested(result: IngestResult) -> dict[str, Any]:
    """The ids and counts of an ingestion call, as the responses carry them."""
    return {"ids": list(result), **{k: v for k, v in result.as_dict().items() if k != "ids"}}


def _index_routes(svc: Service) -> APIRouter:
    router = APIRouter(prefix="/api/catalogs/{collection}", tags=["index"], responses=_ERRORS)
    asif = svc.asif

    def check_name(collection: str) -> None:
        svc.require_writable()
        if asif.layout.is_model_collection(collection):
            raise ServiceError(
                422,
                f"'{collection}' is one of the model's own collections, not a catalog: "
                "index into another name.",
                "collection",
            )

    async def indexed(collection: str, result: IngestResult) -> ItemsIndexed:
        sizes = await svc.run(_catalog_sizes, asif)
        return ItemsIndexed(
            collection=collection, items=sizes.get(collection, 0), **_ingested(result)
        )

    @router.post("/items", response_model=ItemsIndexed)
    async def index_texts(collection: Collection, body: IndexTextsRequest) -> ItemsIndexed:
        """Index text items into a catalog (created on first use)."""
        check_name(collection)
        _check_payloads(body.payloads, len(body.texts))
        ids = (
            None
            if body.ids is None
            else [str(i) if isinstance(i, uuid.UUID) else i for i in body.ids]
        )
        if ids is not None and len(ids) != len(body.texts):
            raise ServiceError(422, "'ids' needs one id per text.", "ids")
        out = await svc.run(
            asif.index,
            collection,
            texts=body.texts,
            payloads=body.payloads,
            ids=ids,
            show_progress_bar=False,
        )
        return await indexed(collection, out)

    @router.post("/items/images", response_model=ItemsIndexed)
    async def index_images(
        collection: Collection,
        images: Annotated[list[UploadFile], File(description="The item images.")],
        payloads: Annotated[
            str | None, Form(description="A JSON list with one payload object per image.")
        ] = None,
    ) -> ItemsIndexed:
        """Index uploaded images into a catalog (created on first use)."""
        check_name(collection)
        if not 1 <= len(images) <= MAX_FILES:
            raise ServiceError(422, f"Upload 1-{MAX_FILES} images.", "images")
        try:
            parsed = None if payloads is None else json.loads(payloads)
        except json.JSONDecodeError as e:
            raise ServiceError(422, f"'payloads' is not JSON: {e}.", "payloads") from e
        if parsed is not None and not (
            isinstance(parsed, list) and all(isinstance(p, dict) for p in parsed)
        ):
            raise ServiceError(422, "'payloads' must be a JSON list of objects.", "payloads")
        _check_payloads(parsed, len(images))
        data = [await svc.upload(f, f"images[{i}]") for i, f in enumerate(images)]
        kept = [svc.kept(d) for d in data]
        out = await svc.run(
            asif.index, collection, images=kept, payloads=parsed, show_progress_bar=False
        )
        return await indexed(collection, out)

    return router


def _image_routes(svc: Service) -> APIRouter:
    router = APIRouter(prefix="/api/images", tags=["images"], responses=_ERRORS)

    async def send(collection: str | None, point: str, what: str) -> FileResponse:
        point_id = _point_id(point, "id")
        payload = await svc.run(_payload, svc.asif, collection, point_id)
        ref = (payload or {}).get("image")
        path = Path(ref) if isinstance(ref, str) else None
        media = image_media_type(path) if path is not None and path.is_file() else None
        if media is None:
            raise ServiceError(404, f"{what} {point} has no image to show.", "id", "NotFound")
        return FileResponse(path, media_type=media)  # type: ignore[arg-type]

    @router.get("/anchors/{point}", response_class=FileResponse)
    async def anchor_image(point: Annotated[str, PathParam(max_length=64)]) -> FileResponse:
        """The image of an anchor pair, by anchor id."""
        return await send(None, point, "The anchor")

    @router.get("/catalogs/{collection}/{point}", response_class=FileResponse)
    async def item_image(
        collection: Collection, point: Annotated[str, PathParam(max_length=64)]
    ) -> FileResponse:
        """The image of a catalog item, by point id."""
        return await send(collection, point, f"The item of '{collection}'")

    return router


def _classify_routes(svc: Service) -> APIRouter:
    router = APIRouter(tags=["classify"], responses=_ERRORS)

    @router.post("/api/classify", response_model=ClassifyResponse)
    async def classify(
        image: Annotated[UploadFile, File(description="The image to classify.")],
        labels: Annotated[
            str, Form(description="Comma-separated class names, e.g. 'cat,dog'.", max_length=20000)
        ],
        method: Annotated[Method, Form()] = "asif",
    ) -> ClassifyResponse:
        """Zero-shot classification of an uploaded image against labels."""
        names = list(dict.fromkeys(x.strip() for x in labels.split(",") if x.strip()))
        if not 2 <= len(names) <= MAX_BATCH:
            raise ServiceError(
                422,
                f"Give 2-{MAX_BATCH} distinct comma-separated labels. Got {len(names)}.",
                "labels",
            )
        data = await svc.upload(image, "image")
        scores = await svc.run(svc.asif.classify_scores, [data], names, method=method)
        row = [float(s) for s in scores[0]]
        best = max(range(len(names)), key=row.__getitem__)
        return ClassifyResponse(label=names[best], scores=dict(zip(names, row, strict=True)))

    return router


def create_app(
    asif: ASIF,
    *,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    upload_dir: str | Path | None = None,
    warm_up: bool = True,
    read_only: bool = False,
) -> FastAPI:
    """The retrieval service over an open model (served by ``asif-qdrant serve``).

    Args:
        asif: The open model. The app does not close it.
        api_key: When set, every request but the page's own files must carry it in the
            ``X-API-Key`` header (401 without, 403 when wrong).
        max_upload_bytes: The most bytes per uploaded file (413 above); a request body may
            carry at most 8 such files' worth plus 1 MiB.
        max_image_pixels: The most pixels per uploaded image (413 above), checked from the
            image header before any decoding (decompression bombs).
        upload_dir: Where uploaded anchor and item images are kept so that the page can show
            them (None: they are indexed from their bytes and have no image).
        warm_up: Load the encoders when the app starts (``/ready`` says when it is done);
            else the first query loads them.
        read_only: Refuse every edit (anchors add / delete, indexing) with a 403: a replica
            that only answers queries (docs/SERVE.md, scale-out).

    Returns:
        The FastAPI app (OpenAPI at ``/openapi.json``, docs at ``/docs``, page at ``/``).

    Example:
        >>> import tempfile, numpy as np
        >>> from asif_qdrant import ASIF
        >>> asif = ASIF(path=tempfile.mkdtemp(), image_encoder="precomputed/image",
        ...             text_encoder="precomputed/text", k=2)
        >>> app = create_app(asif, warm_up=False)
        >>> "/api/catalogs/{collection}/search" in app.openapi()["paths"]
        True
        >>> asif.close()
    """
    if max_upload_bytes < 1 or max_image_pixels < 1:
        raise ServiceError(422, "max_upload_bytes and max_image_pixels must be >= 1.")
    svc = Service(
        asif,
        max_upload_bytes=int(max_upload_bytes),
        max_image_pixels=int(max_image_pixels),
        upload_dir=None if upload_dir is None else Path(upload_dir),
        read_only=read_only,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            threading.Thread(target=svc.warm_up, name="asif-warm-up", daemon=True).start()
        else:
            svc.ready.set()
        yield

    app = FastAPI(
        title="asif-qdrant",
        version=__version__,
        summary="Search, explain and edit an ASIF model over HTTP.",
        lifespan=lifespan,
    )
    app.state.service = svc
    install_error_handlers(app)
    for routes in (
        _model_routes,
        _search_routes,
        _explain_routes,
        _classify_routes,
        _edit_routes,
        _index_routes,
        _image_routes,
    ):
        app.include_router(routes(svc))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.add_middleware(BodyLimitMiddleware, max_bytes=8 * svc.max_upload_bytes + (1 << 20))
    if api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    return app
