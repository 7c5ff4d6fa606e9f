"""Catalogs: indexing items (images, texts, precomputed embeddings), re-indexing, index jobs.

A catalog is a collection named by the user (:mod:`asif_qdrant.retriever.layout` specs it).
Each item stores its sparse ASIF vector, its own unit embedding (so that edits and
re-indexing never encode it again), its boundary vector, and, when the model has them, its
CSA and caption vectors. The fingerprint records each catalog's anchor version and the
next free id; it is written only once the items are (a failed call leaves it as it was).

Example:
    >>> import tempfile
    >>> from asif_qdrant import ASIF, InvalidParameterError
    >>> with ASIF(path=tempfile.mkdtemp(), image_encoder="precomputed/image",
    ...           text_encoder="precomputed/text") as asif:
    ...     try:
    ...         prepare_catalog(asif.state, "asif_meta", 1, None, None)
    ...     except InvalidParameterError as e:
    ...         print(e)
    The collection 'asif_meta' belongs to the ASIF model itself. Index the catalog under \
another name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from asif_qdrant.errors import (
    CollectionNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    check_int,
    is_blank,
)
from asif_qdrant.progress import progress_bar
from asif_qdrant.relative import l2_normalize
from asif_qdrant.retriever import ingest, keys, writes
from asif_qdrant.retriever.anchors import relative
from asif_qdrant.retriever.crossgap import (
    caption_records,
    csa_vectors,
    has_vector,
    migrate_catalog,
    refresh_extra_vectors,
)
from asif_qdrant.retriever.journal import crashpoint
from asif_qdrant.retriever.keys import IngestResult
from asif_qdrant.retriever.layout import (
    CAPTION_SPARSE,
    CSA_VECTOR,
    SPARSE,
    catalog_spec,
    kth_name,
    kth_vectors,
)
from asif_qdrant.retriever.recompute import (
    CatalogEdit,
    EditReport,
    has_kth,
    prune,
    recompute_all,
)
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import PointId, Record, check_collection_name
from asif_qdrant.types import ImageInput, Modality

__all__ = [
    "PRUNED_CATALOG_NNZ",
    "IndexJob",
    "ensure_catalog",
    "index",
    "index_embeddings",
    "prepare_catalog",
    "reindex",
    "resumable_index",
    "warn_if_stale",
]

logger = logging.getLogger("asif_qdrant.model")

#: Items encoded and written per step.
CHUNK = 256
#: A measured pruned setting (``ASIF(catalog_nnz=...)``; ``python -m benchmarks.catalog``):
#: items store their 128 largest of k = 800 weights (2.9x less disk, 4x faster queries at
#: 100k items over 10k anchors). Not the default: scored against such items, even the full
#: query misses recall@10 >= 0.99 against full vectors (0.93 there; 0.98 at 400 of 800).
PRUNED_CATALOG_NNZ = 128


# -- checks --------------------------------------------------------------------------------------
def prepare_catalog(
    m: ModelState,
    collection: str,
    n: int,
    payloads: Sequence[Mapping[str, Any]] | None,
    ids: Sequence[Any] | None,
) -> list[PointId] | None:
    """Validate a catalog write and create the collection; the user's ids, canonical."""
    collection = check_collection_name(collection)
    if m.layout.is_model_collection(collection):
        raise InvalidParameterError(
            f"The collection '{collection}' belongs to the ASIF model itself. "
            "Index the catalog under another name."
        )
    if payloads is not None and len(payloads) != n:
        raise InvalidInputError(
            f"'payloads' must have one entry per item ({n}). Got {len(payloads)}."
        )
    writes.check_payloads(payloads, reserved=writes.CATALOG_RESERVED_KEYS)
    out = None if ids is None else keys.canonical_ids(ids, n)
    if n:
        m.require_anchors("before indexing")
        ensure_catalog(m, collection)
    return out


def ensure_catalog(m: ModelState, collection: str, *, captions: bool = False) -> None:
    """Create the catalog, or check that an existing collection is one (and migrate it)."""
    fp = m.fingerprint
    if m.store.has_collection(collection):
        spec = m.store.collection_spec(collection)
        if SPARSE not in spec.sparse:
            raise InvalidParameterError(
                f"The collection '{collection}' exists but is not an ASIF catalog (it has "
                f"no sparse vector '{SPARSE}'). Choose another collection name."
            )
        if (fp.csa_dim is not None and CSA_VECTOR not in spec.dense) or (
            captions and CAPTION_SPARSE not in spec.sparse
        ):
            # A catalog indexed before CSA / captions: rewritten with the new vectors.
            migrate_catalog(m, collection)
        return
    if collection not in fp.catalogs:
        # Registered before it exists: a run killed after writing items leaves a catalog
        # that later anchor edits keep current (its items are at this anchor version).
        fp.catalogs[collection] = {"next_id": 0, "anchor_version": fp.anchor_version}
        writes.write_fingerprint(m)
    writes.create_collection(m.store, collection, catalog_spec(fp))
    writes.create_payload_index(m.store, collection, keys.KEY_FIELD)
    m.kth_ready[collection] = True


def _has_kth(m: ModelState, collection: str) -> bool:
    """Whether a catalog stores the boundary vectors that incremental edits use (cached)."""
    ready = m.kth_ready.get(collection)
    if ready is None:
        ready = m.kth_ready[collection] = has_kth(m.store, collection)
    return ready


def check_caption_embeddings(
    m: ModelState, x: Any, n: int, modality: Modality
) -> np.ndarray | None:
    """Caption embeddings of ``n`` image items: ``(n, d_text)``, NaN rows for no caption."""
    if x is None:
        return None
    if modality != "image":
        raise InvalidParameterError(
            "'caption_embeddings' belong to image items: use them with modality='image'. "
            f"Got modality={modality!r}."
        )
    arr = np.asarray(x, dtype=np.float32)
    dim = m.dim("text")
    if arr.ndim != 2 or arr.shape[0] != n or (dim is not None and arr.shape[1] != dim):
        raise InvalidInputError(
            f"'caption_embeddings' must have shape ({n}, {dim}): one text embedding per "
            f"image (a row of NaN: no caption). Got shape {arr.shape}."
        )
    return arr


def warn_if_stale(m: ModelState, collection: str) -> None:
    """Log a warning when a catalog was indexed with an older anchor set (an interrupted edit)."""
    info = m.fingerprint.catalogs.get(collection)
    if info and info.get("anchor_version") not in (None, m.fingerprint.anchor_version):
        logger.warning(
            "Catalog '%s' was indexed with anchor set version %s; the anchors are now at "
            "version %s. Index its items again for exact scores.",
            collection,
            info.get("anchor_version"),
            m.fingerprint.anchor_version,
        )


# -- writing items -----------------------------------------------------------------------------
def write_items(
    m: ModelState,
    collection: str,
    modality: Modality,
    embeddings: np.ndarray,
    payloads: Sequence[dict[str, Any]],
    ids: Sequence[PointId],
    captions: np.ndarray | None = None,
) -> None:
    """Compute and write items' vectors (``captions``: caption embeddings, NaN rows: none)."""
    unit = l2_normalize(m.check_embeddings("embeddings", embeddings, modality))
    m.require_anchors("before indexing")
    vecs, boundary = relative(m, unit, modality)
    vecs = prune(vecs, m.fingerprint.catalog_nnz)
    kth = kth_vectors(unit, boundary) if _has_kth(m, collection) else None
    csa = (
        csa_vectors(m, unit, modality)
        if m.fingerprint.csa_dim is not None and has_vector(m, collection, CSA_VECTOR)
        else None
    )
    extra: dict[PointId, Record] = {}
    if captions is not None:
        has = ~np.isnan(captions).any(axis=1)
        cap_ids = [pid for pid, h in zip(ids, has, strict=True) if h]
        units = l2_normalize(m.check_embeddings("caption embeddings", captions[has], "text"))
        extra = {r.id: r for r in caption_records(m, cap_ids, units)}
    writes.upsert(
        m.store,
        collection,
        [
            Record(
                pid,
                payload,
                dense={modality: unit[j]}
                | ({kth_name(modality): kth[j]} if kth is not None else {})
                | ({CSA_VECTOR: csa[j]} if csa is not None else {})
                | (extra[pid].dense if pid in extra else {}),
                sparse={SPARSE: v} | (extra[pid].sparse if pid in extra else {}),
            )
            for j, (pid, payload, v) in enumerate(zip(ids, payloads, vecs, strict=True))
        ],
    )
    crashpoint("index:written")


def finish_catalog(m: ModelState, collection: str) -> None:
    """Record a written catalog (its anchor version and next id) in the fingerprint."""
    fp = m.fingerprint
    written = collection in m.pending_next_id
    pending = m.pending_next_id.pop(collection, None)
    if written or collection in fp.catalogs:
        info = fp.catalogs.setdefault(collection, {"next_id": 0})
        if pending is not None:
            info["next_id"] = max(int(info.get("next_id", 0)), pending)
        # A catalog left at an older version (an interrupted edit) stays marked so: its
        # older items are still stale, and the next edit re-computes it in full.
        if info.get("anchor_version") in (None, fp.anchor_version):
            info["anchor_version"] = fp.anchor_version
        writes.write_fingerprint(m)


def _without_echo(
    payloads: Sequence[Mapping[str, Any]] | None, modalities: Sequence[str]
) -> Sequence[Mapping[str, Any]] | None:
    """The payloads without a ``modality`` key that repeats the item's own modality.

    A payload read back from a search (a LangChain document's metadata) holds the stored
    ``modality``; writing it again is harmless. Any other ``modality`` is refused later
    (``writes.CATALOG_RESERVED_KEYS``).
    """
    if payloads is None or len(payloads) != len(modalities):
        return payloads
    return [
        {k: v for k, v in p.items() if k != "modality"}
        if isinstance(p, Mapping) and p.get("modality") == modality
        else p
        for p, modality in zip(payloads, modalities, strict=True)
    ]


def _check_index_inputs(
    images: Sequence[ImageInput] | None,
    texts: Sequence[str] | None,
    captions: Sequence[str | None] | None,
) -> tuple[list[Any], list[str]]:
    if isinstance(texts, str):
        raise InvalidInputError("'texts' must be a list of str. Got one str: wrap it.")
    images_, texts_ = list(images or []), list(texts or [])
    if captions is not None:
        if isinstance(captions, str) or len(captions) != len(images_):
            raise InvalidInputError(
                f"'captions' must be a list with one caption (or None) per image "
                f"({len(images_)}). Got {captions!r:.100}."
            )
        for i, c in enumerate(captions):
            if c is not None and (not isinstance(c, str) or is_blank(c)):
                raise InvalidInputError(
                    f"Caption {i} must be a non-empty str or None. Got {c!r:.60}."
                )
    for i, t in enumerate(texts_):
        if not isinstance(t, str):
            raise InvalidInputError(f"Text {i} must be a str. Got {type(t).__name__} ({t!r:.60}).")
        if is_blank(t):
            raise InvalidInputError(
                f"Text {i} is empty (or only whitespace): there is nothing to index."
            )
    return images_, texts_


def _encode_captions(
    m: ModelState, captions: Sequence[str | None] | None, pos: Sequence[int], modality: str
) -> np.ndarray | None:
    """Caption embeddings of the image items at ``pos`` (NaN rows: no caption)."""
    if captions is None or modality != "image":
        return None
    texts = [(row, captions[j]) for row, j in enumerate(pos) if captions[j] is not None]
    dim = int(m.dim("text") or m.encoder("text").dim)
    out = np.full((len(pos), dim), np.nan, np.float32)
    if texts:
        emb = m.encode([t for _, t in texts], "text", show_progress_bar=False)
        out[[row for row, _ in texts]] = emb
    return out


def index(
    m: ModelState,
    collection: str,
    images: Sequence[ImageInput] | None,
    texts: Sequence[str] | None,
    payloads: Sequence[Mapping[str, Any]] | None,
    ids: Sequence[PointId] | None,
    show_progress_bar: bool | None,
    captions: Sequence[str | None] | None,
    on_duplicate: str = "skip",
) -> IngestResult:
    """Store catalog items (images, then texts) with their vectors (see ``ASIF.index``)."""
    on_duplicate = keys.check_on_duplicate("ASIF.index", on_duplicate)
    images_, texts_ = _check_index_inputs(images, texts, captions)
    items: list[tuple[Modality, Any]] = [("image", x) for x in images_]
    items += [("text", t) for t in texts_]
    payloads = _without_echo(payloads, [modality for modality, _ in items])
    base: list[dict[str, Any]] = []
    item_keys = []
    for modality, x in items:
        payload: dict[str, Any] = {"modality": modality}
        if modality == "text":
            payload["text"] = x
            item_keys.append(keys.text_key(x))
        else:
            ref, key = keys.image_ref_key(x)
            payload.update(ref)
            item_keys.append(key)
        base.append(payload)
    user_ids = prepare_catalog(m, collection, len(items), payloads, ids)
    if captions is not None:
        ensure_catalog(m, collection, captions=True)
        for j, c in enumerate(captions):
            if c is not None:
                base[j]["caption"] = c
    if payloads is not None:
        base = [{**b, **dict(extra)} for b, extra in zip(base, payloads, strict=True)]

    def write(chunk: list[int], base: list[dict[str, Any]], result: IngestResult) -> None:
        for modality in ("image", "text"):
            pos = [j for j in chunk if items[j][0] == modality]
            if pos:
                emb = m.encode([items[j][1] for j in pos], modality, show_progress_bar=False)
                write_items(
                    m,
                    collection,
                    modality,
                    emb,
                    [base[j] for j in pos],
                    [result[j] for j in pos],
                    captions=_encode_captions(m, captions, pos, modality),
                )

    plan = (item_keys, user_ids, on_duplicate)
    return _write_planned(m, collection, base, plan, show_progress_bar, write)


def index_embeddings(
    m: ModelState,
    collection: str,
    embeddings: Any,
    modality: Modality,
    payloads: Sequence[Mapping[str, Any]] | None,
    ids: Sequence[PointId] | None,
    show_progress_bar: bool | None,
    caption_embeddings: Any,
    on_duplicate: str = "skip",
) -> IngestResult:
    """Store catalog items from embeddings of one modality (see ``ASIF.index_embeddings``)."""
    on_duplicate = keys.check_on_duplicate("ASIF.index_embeddings", on_duplicate)
    m.layout.anchors(modality)  # validates the modality
    emb = m.check_embeddings("embeddings", embeddings, modality)
    cap = check_caption_embeddings(m, caption_embeddings, len(emb), modality)
    payloads = _without_echo(payloads, [modality] * len(emb))
    user_ids = prepare_catalog(m, collection, len(emb), payloads, ids)
    if cap is not None and len(emb):
        ensure_catalog(m, collection, captions=True)
    portable = [keys.portable_payload_and_key(p) for p in (payloads or [{}] * len(emb))]
    base = [{"modality": modality, **p} for p, _ in portable]
    item_keys = ingest.embedding_keys(emb, base, [key for _, key in portable], modality)

    def write(rows: list[int], base: list[dict[str, Any]], result: IngestResult) -> None:
        write_items(
            m,
            collection,
            modality,
            emb[rows],
            [base[j] for j in rows],
            [result[j] for j in rows],
            captions=None if cap is None else cap[rows],
        )

    plan = (item_keys, user_ids, on_duplicate)
    return _write_planned(m, collection, base, plan, show_progress_bar, write)


def _write_planned(
    m: ModelState,
    collection: str,
    base: list[dict[str, Any]],
    plan: tuple[Sequence[str], list[PointId] | None, str],
    show_progress_bar: bool | None,
    write: Callable[[list[int], list[dict[str, Any]], IngestResult], None],
) -> IngestResult:
    """Index items by content: plan them, ``write`` the new rows in chunks, finish the catalog.

    Args:
        m: The model.
        collection: The catalog.
        base: Each item's payload (its content key is added here).
        plan: The items' content keys, the caller's ids (or None) and ``on_duplicate``
            (see :func:`~asif_qdrant.retriever.ingest.plan_items`).
        show_progress_bar: A progress bar; ``None`` follows the logger level.
        write: Writes some rows (positions in ``base``), given the keyed payloads and result.

    Returns:
        Each item's id and whether it was added, already present or replaced.
    """
    item_keys, user_ids, on_duplicate = plan
    base = [{**b, keys.KEY_FIELD: k} for b, k in zip(base, item_keys, strict=True)]
    todo, result = ingest.plan_items(m, collection, item_keys, user_ids, on_duplicate)
    show = m.progress(show_progress_bar)
    with progress_bar(
        total=len(todo), desc=f"Indexing {collection}", unit="item", show=show
    ) as bar:
        for start in range(0, len(todo), CHUNK):
            rows = todo[start : start + CHUNK]
            write(rows, base, result)
            bar.update(len(rows))
    finish_catalog(m, collection)
    return result


# -- re-indexing ---------------------------------------------------------------------------------
def reindex(m: ModelState, collection: str | None = None) -> EditReport:
    """Re-compute catalog vectors from the items' stored embeddings (see ``ASIF.reindex``)."""
    t0 = time.perf_counter()
    fp = m.fingerprint
    names = sorted(fp.catalogs) if collection is None else [collection]
    edits = []
    for name in names:
        if collection is None and not m.store.has_collection(name):
            continue  # a catalog deleted outside the model
        if not m.store.has_collection(name):
            raise CollectionNotFoundError(
                f"The catalog collection '{name}' does not exist. Catalogs of this model: "
                f"{sorted(fp.catalogs)}."
            )
        ensure_catalog(m, name)  # refuses collections that are not catalogs
        t = time.perf_counter()
        progress = m.progress()
        done = recompute_all(m, name, with_kth=has_kth(m.store, name), progress=progress)
        refresh_extra_vectors(m, name, incremental=False, progress=progress)
        fp.catalogs.setdefault(name, {"next_id": 0})["anchor_version"] = fp.anchor_version
        edits.append(
            CatalogEdit(name, len(done), len(done), time.perf_counter() - t, "full", tuple(done))
        )
    writes.write_fingerprint(m)
    m.last_edit = EditReport(
        "reindex",
        0,
        m.fingerprint.anchor_count,
        fp.anchor_version,
        time.perf_counter() - t0,
        tuple(edits),
    )
    return m.last_edit


# -- crash-safe, resumable indexing ---------------------------------------------------------------
@dataclass(frozen=True)
class IndexJob:
    """What :func:`resumable_index` did.

    Attributes:
        collection: The catalog.
        total: Items in the input.
        start: The id of the input's first item; item ``row`` has id ``start + row``.
        new: Items written by this call.
        skipped: Items found already stored (written by the interrupted run) and skipped.
        resumed: Whether this call resumed an interrupted job (else it started one).
        ids: The items' ids, in input order (an item already present: its stored id).
        already_present: Items whose content was already in the catalog under another id
            (indexed by an earlier call), left alone (``on_duplicate="skip"``).

    Example:
        >>> import tempfile, numpy as np
        >>> from asif_qdrant import ASIF
        >>> rng = np.random.default_rng(0)
        >>> with ASIF(path=tempfile.mkdtemp(), k=3, image_encoder="precomputed/image",
        ...           text_encoder="precomputed/text", show_progress_bar=False) as asif:
        ...     _ = asif.add_anchor_embeddings(rng.random((6, 8)), rng.random((6, 4)))
        ...     emb = rng.random((25, 8))
        ...     first = asif.resumable_index("items", embeddings=emb, modality="image",
        ...                                  chunk_size=10)
        ...     again = asif.resumable_index("items", embeddings=emb, modality="image",
        ...                                  resume=True)
        ...     (first.new, first.ids[:3]), (again.new, again.skipped), asif.store.count("items")
        ((25, [0, 1, 2]), (0, 25), 25)
    """

    collection: str
    total: int
    start: int
    new: int
    skipped: int
    resumed: bool
    ids: list[PointId] = field(repr=False, default_factory=list)
    already_present: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form (for ``--json``)."""
        return asdict(self)


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:32]


def resumable_index(
    m: ModelState,
    collection: str,
    images: Sequence[str],
    texts: Sequence[str],
    embeddings: Any,
    modality: Modality | None,
    resume: bool,
    chunk_size: int,
    on_commit: Callable[[int, int, int], None] | None,
    show_progress_bar: bool | None,
    on_duplicate: str = "skip",
) -> IndexJob:
    """Index an input in chunks that each commit for good, so a killed run can be resumed.

    The input is image paths then texts (as ``ASIF.index``), or precomputed ``embeddings``
    of one ``modality`` (as ``ASIF.index_embeddings``). Ids are deterministic: before
    writing anything, the job reserves ``total`` ids in the fingerprint
    (``catalogs[collection]["job"]``: first id, size, a digest of the input), and item
    ``row`` of the input gets id ``start + row``. Each chunk is written, then recorded in the
    fingerprint; only then is it *acknowledged* (logged at INFO as ``committed rows a..b of
    n``, and passed to ``on_commit(first_row, end_row, total)``). A kill at any point leaves
    every acknowledged item stored and intact (each write is durable when it returns), and
    at most the items of one unacknowledged chunk written.

    ``resume=True`` with the same input skips the items already stored and writes the rest:
    no item twice, no id changed (with no job for this input it starts one). An item whose
    content key is already stored under another id (an earlier call indexed it) is left
    alone and counted in ``already_present`` (``on_duplicate="skip"``); ``"replace"`` writes
    it again under its stored id, ``"add"`` under its job id. The caller holds the model's
    write lock.

    Raises:
        InvalidParameterError: ``resume=True`` while the collection's interrupted job was
            started with another input (resuming would index other items under its ids).
    """
    on_duplicate = keys.check_on_duplicate("ASIF.resumable_index", on_duplicate)
    chunk_size = check_int("chunk_size", "resumable_index", chunk_size, minimum=1)
    job, digest = _job_input(m, images, texts, embeddings, modality)
    n = len(job.arr) if job.arr is not None else len(job.items)
    prepare_catalog(m, collection, 0, None, None)  # validates the name; writes nothing
    if n:
        m.require_anchors("before indexing")
    start, resumed = _start_job(m, collection, n, digest, resume)
    ids: list[PointId] = [start + r for r in range(n)]
    new = skipped = 0
    show = m.progress(show_progress_bar)
    with progress_bar(total=n, desc=f"Indexing {collection}", unit="item", show=show) as bar:
        for a in range(0, n, chunk_size):
            rows = list(range(a, min(a + chunk_size, n)))
            todo = rows
            if resumed and m.store.has_collection(collection):
                have = {r.id for r in m.store.retrieve(collection, [start + r for r in rows])}
                todo = [r for r in rows if start + r not in have]
            skipped += len(rows) - len(todo)
            todo = ingest.job_rows_to_write(m, collection, job, todo, ids, on_duplicate)
            _write_job_rows(m, collection, job, todo, [ids[r] for r in todo])
            new += len(todo)
            logger.info(
                "committed rows %d..%d of %d into '%s' (ids %d..%d)",
                *(rows[0], rows[-1], n, collection, start + rows[0], start + rows[-1]),
            )
            if on_commit is not None:
                on_commit(rows[0], rows[-1] + 1, n)
            bar.update(len(rows))
    present = n - new - skipped
    info = m.fingerprint.catalogs.setdefault(collection, {"next_id": start + n})
    info["job"] = {"start": start, "n": n, "input": digest, "done": True}
    writes.write_fingerprint(m)
    return IndexJob(collection, n, start, new, skipped, resumed, ids, present)


def _write_job_rows(
    m: ModelState,
    collection: str,
    job: ingest.JobInput,
    todo: list[int],
    ids: list[PointId],
) -> None:
    """Write some rows of a job under the given ids."""
    if not todo:
        return
    items = job.items
    if job.arr is not None:
        index_embeddings(
            m,
            collection,
            job.arr[todo],
            job.modality,
            payloads=[{"row": r} for r in todo],
            ids=ids,
            show_progress_bar=False,
            caption_embeddings=None,
            on_duplicate="replace",
        )
        return
    by_id = dict(zip(todo, ids, strict=True))
    ims = [r for r in todo if items[r][0] == "image"]
    txs = [r for r in todo if items[r][0] == "text"]
    index(
        m,
        collection,
        images=[items[r][1] for r in ims],
        texts=[items[r][1] for r in txs],
        payloads=[{"row": r} for r in ims + txs],
        ids=[by_id[r] for r in ims + txs],
        show_progress_bar=False,
        captions=None,
        on_duplicate="replace",
    )


def _job_input(
    m: ModelState,
    images: Sequence[str],
    texts: Sequence[str],
    embeddings: Any,
    modality: Modality | None,
) -> tuple[ingest.JobInput, str]:
    """A job's input, checked, and its digest."""
    if embeddings is not None:
        if images or texts:
            raise InvalidParameterError(
                "resumable_index takes 'embeddings' or 'images' / 'texts', not both."
            )
        m.layout.anchors(modality)  # validates it
        arr = m.check_embeddings("embeddings", embeddings, modality)  # type: ignore[arg-type]
        digest = _digest([str(modality).encode(), str(arr.shape).encode(), arr.tobytes()])
        return ingest.JobInput(arr, [], modality), digest
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or is_blank(t):
            raise InvalidInputError(f"Text {i} must be a non-empty str. Got {t!r:.60}.")
    items = [("image", str(x)) for x in images] + [("text", t) for t in texts]
    return ingest.JobInput(None, items, None), _digest([json.dumps(items).encode()])


def _start_job(
    m: ModelState, collection: str, n: int, digest: str, resume: bool
) -> tuple[int, bool]:
    """Find the interrupted job on this input (``resume``), or reserve ids for a new one.

    Returns:
        ``(first id, resumed)``.
    """
    fp = m.fingerprint
    info = fp.catalogs.get(collection) or {}
    job = info.get("job") if isinstance(info.get("job"), dict) else None
    same = job is not None and job.get("input") == digest and job.get("n") == n
    unfinished = job is not None and not job.get("done", False)
    if resume and same:
        return int(job["start"]), True  # type: ignore[index]
    if resume and unfinished:
        raise InvalidParameterError(
            f"The interrupted index job of '{collection}' was started with another "
            f"input ({job['n']} items, digest {job['input']}; this input: {n} items, "  # type: ignore[index]
            f"digest {digest}). Resume it with the same input, or index without "
            "--resume to start a new job."
        )
    if unfinished:
        logger.warning(
            "An earlier index job into '%s' did not finish; this run starts a new one "
            "(pass resume=True / --resume with that job's input to finish it instead).",
            collection,
        )
    start = int(info.get("next_id", 0))
    info = fp.catalogs.setdefault(collection, {"next_id": 0})
    info["next_id"] = max(int(info.get("next_id", 0)), start + n)
    info["job"] = {"start": start, "n": n, "input": digest, "done": False}
    writes.write_fingerprint(m)
    return start, False
