"""Reading the anchors, and relative vectors: what every input becomes.

Each embedding finds its ``k`` nearest anchors of its own modality (cosine), through an
in-memory anchor index kept in step with edits (``anchor_search="auto"`` and the other
methods of :mod:`asif_qdrant.anchor_index`) or through exact search by the Qdrant engine
(``"qdrant"``). Either way the candidates go through the one recipe,
:func:`asif_qdrant.relative.relative_from_topk`: ties at the k-th place are kept in id order
(the lower id wins), so a result never depends on the order in which a search returned ties.

Example:
    >>> check_anchor_search("auto"), check_anchor_search("exact")
    ('auto', 'exact')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant.anchor_index import (
    METHODS,
    ExactIndex,
    choose_method,
    make_index,
    relative_search,
)
from asif_qdrant.errors import InvalidInputError, InvalidParameterError, is_blank
from asif_qdrant.relative import Power, Spread, l2_normalize, relative_from_topk, sparse_rows
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import PointId
from asif_qdrant.types import ImageInput, Modality, SparseVector

__all__ = [
    "anchor_cache_files",
    "anchor_embeddings",
    "anchor_index",
    "anchor_payloads",
    "check_anchor_search",
    "classify_kp",
    "close_anchor_indexes",
    "drop_anchor_cache",
    "embed_images",
    "embed_texts",
    "encode_queries",
    "kp_key",
    "list_anchors",
    "query_vectors",
    "relative",
    "relative_from_embeddings",
    "sync_anchor_indexes",
]

logger = logging.getLogger("asif_qdrant.model")


def check_anchor_search(value: Any) -> str:
    """Validate the ``anchor_search`` parameter of ``ASIF``."""
    allowed = ("auto", "qdrant", *(m for m in METHODS if not m.startswith("qdrant-")))
    if value not in allowed:
        raise InvalidParameterError(
            "The 'anchor_search' parameter of ASIF must be one of "
            f"{', '.join(map(repr, allowed))}. Got {value!r:.100} instead."
        )
    return str(value)


# -- reading ------------------------------------------------------------------------------------
def list_anchors(m: ModelState, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The anchor pairs' ids and payloads, in id order."""
    if not m.store.has_collection(m.layout.text_anchors):
        return []
    out = []
    for rec in m.store.scroll(m.layout.text_anchors):
        out.append({**rec.payload, "id": rec.id})  # the pair's id wins over any payload key
        if limit is not None and len(out) >= limit:
            break
    return out


def anchor_embeddings(m: ModelState, modality: Modality) -> tuple[list[int], np.ndarray]:
    """The stored anchor embeddings of one modality: ``(ids, (n, d) array)``."""
    coll, vn = m.layout.anchors(modality)
    recs = list(m.store.scroll(coll, with_vectors=[vn]))
    if not recs:
        return [], np.zeros((0, m.dim(modality) or 0), np.float32)
    return [int(r.id) for r in recs], np.stack([r.dense[vn] for r in recs])


def anchor_payloads(m: ModelState, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The stored payloads (caption, image, ...) of anchors, by id."""
    ids = [int(i) for i in ids]
    if not ids or not m.store.has_collection(m.layout.text_anchors):
        return {}
    return {int(r.id): r.payload for r in m.store.retrieve(m.layout.text_anchors, ids)}


# -- the anchor cache: one memory-mapped copy of the anchors -----------------------------------
#: Folder of the anchor caches, inside an embedded store's folder (beside ``collections/``).
CACHE_FOLDER = "anchor_cache"
#: Version of the cache files' layout.
CACHE_FORMAT = 1


def anchor_cache_files(m: ModelState, modality: Modality) -> tuple[Path, Path, Path] | None:
    """The anchor cache of ``modality``: ``(rows .npy, ids .npy, tag .json)``.

    None on a store without a folder of its own (a Qdrant server): no cache there.
    """
    folder = getattr(m.store, "path", None)
    if m.store.kind != "edge" or not isinstance(folder, Path):
        return None
    base = folder / CACHE_FOLDER / f"{m.name}_{modality}"
    return Path(f"{base}.rows.npy"), Path(f"{base}.ids.npy"), Path(f"{base}.json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def _collection_stamp(m: ModelState, modality: Modality) -> list[int]:
    """The anchor collection's spec file identity: a re-created collection has another."""
    coll, _ = m.layout.anchors(modality)
    st = (m.store.path / "collections" / f"{coll}.json").stat()  # type: ignore[attr-defined]
    return [st.st_ino, st.st_mtime_ns]


def _cache_tag(m: ModelState, modality: Modality, n: int) -> dict[str, Any]:
    fp = m.fingerprint
    return {
        "format": CACHE_FORMAT,
        "anchor_version": fp.anchor_version,
        "count": n,
        "dim": m.dim(modality),
        "collection": _collection_stamp(m, modality),
    }


def drop_anchor_cache(m: ModelState, modality: Modality) -> None:
    """Delete the cache files of ``modality`` (the tag first: a half-deleted cache is unused)."""
    m.anchor_rows.pop(modality, None)
    files = anchor_cache_files(m, modality)
    for f in reversed(files or ()):
        with contextlib.suppress(OSError):
            f.unlink(missing_ok=True)


def _write_cache(m: ModelState, modality: Modality, ids: np.ndarray, rows: np.ndarray) -> None:
    """Write the stored anchors as the cache (temporary names, renamed; the tag last)."""
    files = anchor_cache_files(m, modality)
    if files is None:
        return
    drop_anchor_cache(m, modality)
    rows_f, ids_f, tag_f = files
    try:
        rows_f.parent.mkdir(exist_ok=True)
        tag = _cache_tag(m, modality, len(ids))
        for f, arr in ((rows_f, rows), (ids_f, ids)):
            tmp = f.with_name(f.name + ".tmp")
            with tmp.open("wb") as out:
                np.save(out, arr)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, f)
            tag[f"sha256_{f.name.split('.')[-2]}"] = _sha256(f)
        tmp = tag_f.with_name(tag_f.name + ".tmp")
        tmp.write_text(json.dumps(tag))
        os.replace(tmp, tag_f)
    except OSError as e:  # a read-only folder, a full disk: work without the cache
        logger.warning("Cannot write the anchor cache %s: %s", rows_f, e)
        drop_anchor_cache(m, modality)


def _read_cache(m: ModelState, modality: Modality) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached ``(ids, rows memory-mapped)`` when current and whole, else None.

    Current: written at this anchor version, for this anchor collection (not one re-created
    since), with no edit pending; whole: both files hash as when written. Anything else
    deletes the cache (it is rebuilt from the store).
    """
    files = anchor_cache_files(m, modality)
    fp = m.fingerprint
    if files is None or not files[2].exists():
        return None
    rows_f, ids_f, tag_f = files
    try:
        tag = json.loads(tag_f.read_text())
        want = _cache_tag(m, modality, fp.anchor_count)
        current = fp.pending_edit is None and all(tag.get(k) == v for k, v in want.items())
        if current and (
            tag.get("sha256_rows") != _sha256(rows_f) or tag.get("sha256_ids") != _sha256(ids_f)
        ):
            logger.warning("The anchor cache %s is damaged: rebuilding it.", rows_f)
            current = False
        if current:
            ids = np.load(ids_f)
            rows = np.load(rows_f, mmap_mode="c")
            if rows.shape == (fp.anchor_count, m.dim(modality)) and ids.shape == rows.shape[:1]:
                return ids, rows
    except (OSError, ValueError) as e:
        logger.warning("Cannot read the anchor cache %s (%s): rebuilding it.", rows_f, e)
    drop_anchor_cache(m, modality)
    return None


def _cached_anchors(m: ModelState, modality: Modality) -> tuple[np.ndarray, np.ndarray]:
    """The anchors ``(ids, rows)``: from the cache, else read from the store (and cached)."""
    found = _read_cache(m, modality)
    if found is None:
        ids_list, emb = anchor_embeddings(m, modality)
        ids = np.asarray(ids_list, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        ids, emb = ids[order], np.ascontiguousarray(emb[order], dtype=np.float32)
        if not len(ids):
            return ids, emb
        _write_cache(m, modality, ids, emb)
        found = _read_cache(m, modality)
        if found is None:  # no cache here (a server) or it could not be written
            return ids, emb
    ids, rows = found
    m.anchor_rows[modality] = (m.fingerprint.anchor_version, ids, rows)
    return ids, rows


# -- the in-memory anchor indexes ---------------------------------------------------------------
def anchor_index(m: ModelState, modality: Modality) -> Any:
    """The in-memory anchor index of ``modality`` at the current anchor version.

    ``None`` with ``anchor_search="qdrant"`` (the engine searches its collections). On the
    embedded engine the anchors come from the anchor cache (a memory-mapped ``.npy`` beside
    the collections, written on the first build and rebuilt when stale): the ``exact`` index
    scans those mapped rows in place, so the process holds one copy of them.
    """
    if m.anchor_search == "qdrant":
        return None
    version = m.fingerprint.anchor_version
    with m.anchor_index_lock:
        cached = m.anchor_indexes.get(modality)
        if cached is not None and cached[0] == version:
            return cached[1]
        ids, emb = _cached_anchors(m, modality)
        method = m.anchor_search
        if method == "auto":
            method = choose_method(len(ids), device=m.device)
        options = {"device": m.device} if method == "torch" else {}
        index = make_index(method, **options)
        if len(ids) and isinstance(emb, np.memmap):
            # The stored rows are unit vectors already: the exact index scans them in place;
            # an index with its own layout (ivf) copies them once, and the mapping is then
            # released, so that either way the process holds one copy of the anchors.
            index.build_unit(ids, emb)
            if not isinstance(index, ExactIndex):
                m.anchor_rows.pop(modality, None)
            del emb
        elif len(ids):
            index.build(ids, emb)
        if cached is not None:
            cached[1].close()
        m.anchor_indexes[modality] = (version, index)
        logger.debug("Built the %s anchor index of %s: %r", modality, m.name, index)
        return index


def sync_anchor_indexes(
    m: ModelState,
    version: int,
    *,
    new_units: dict[str, np.ndarray] | None,
    deleted: Sequence[int] | None,
) -> None:
    """Apply an anchor edit to the in-memory indexes that are at ``version``.

    An index at another version (or an edit it cannot follow) is dropped and rebuilt from
    the stored anchors on next use. The anchor caches are deleted (stale from now on).
    """
    with m.anchor_index_lock:
        for modality in ("image", "text"):
            drop_anchor_cache(m, modality)  # type: ignore[arg-type]
        for modality, (at, index) in list(m.anchor_indexes.items()):
            if at != version:
                index.close()
                del m.anchor_indexes[modality]
                continue
            if new_units is not None:
                rows = new_units[modality]
                end = m.fingerprint.next_anchor_id
                index.add(np.arange(end - len(rows), end, dtype=np.int64), rows)
            if deleted is not None:
                index.delete(np.asarray(list(deleted), dtype=np.int64))
            m.anchor_indexes[modality] = (version + 1, index)


def close_anchor_indexes(m: ModelState) -> None:
    """Release the in-memory anchor indexes."""
    with m.anchor_index_lock:
        for _, index in m.anchor_indexes.values():
            index.close()
        m.anchor_indexes.clear()
        m.anchor_rows.clear()


# -- relative vectors ---------------------------------------------------------------------------
def relative(
    m: ModelState,
    unit: np.ndarray,
    modality: Modality,
    kp: tuple[int, Power] | None = None,
) -> tuple[list[SparseVector], np.ndarray]:
    """Sparse vectors of unit embeddings, and each one's boundary (k-th similarity, >= 0).

    The boundary is the similarity of the k-th kept anchor clamped at 0, or 0 when fewer
    than k anchors exist: an anchor below it cannot change the vector
    (:mod:`asif_qdrant.retriever.edits`). ``kp``: another ``(k, p)`` than the model's (zero-shot
    classification's own, :func:`classify_kp`); the vectors stored in catalogs always use the
    model's.
    """
    k, p = kp or (m.fingerprint.k, m.fingerprint.p)
    coll, vn = m.layout.anchors(modality)
    if len(unit) == 0:
        return [], np.zeros(0, np.float32)
    index = anchor_index(m, modality)
    if index is not None:

        def rescore(ids: np.ndarray, query: np.ndarray) -> np.ndarray:
            return _exact_sims(m, modality, ids, query)

        return relative_search(index, unit, k, p, rescore=rescore)
    out: list[SparseVector] = []
    boundary = np.zeros(len(unit), np.float32)
    for row, hits in enumerate(m.store.query_dense(coll, vn, unit, limit=k + 1)):
        if len(hits) > k and hits[k][1] >= hits[k - 1][1]:
            hits = _widen_tie(m, coll, vn, unit[row], hits, k)
        ids = np.array([[h[0] for h in hits]], dtype=np.int64)
        sims = np.array([[h[1] for h in hits]], dtype=np.float64)
        kept, weights, b = relative_from_topk(ids, sims, k, p)
        out += sparse_rows(kept, weights)
        boundary[row] = b[0]
    return out, boundary


def _exact_sims(m: ModelState, modality: Modality, ids: np.ndarray, query: np.ndarray) -> Any:
    """float64 cosines of one unit query with some stored anchors (each row on its own).

    The rows come from the anchor cache when it is current (the same float32 numbers as the
    store's), else from the store.
    """
    q = np.asarray(query, np.float64)
    cache = m.anchor_rows.get(modality)
    if cache is not None and cache[0] == m.fingerprint.anchor_version:
        _, cids, rows = cache
        want = np.asarray(ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(cids, want), len(cids) - 1)
        if len(cids) and (cids[pos] == want).all():
            # One dot product per row, as from the store below: a matrix product rounds a
            # row's sum differently with its place in the matrix, and equal anchors must tie.
            return np.array([float(np.dot(np.asarray(r, np.float64), q)) for r in rows[pos]])
    coll, vn = m.layout.anchors(modality)
    recs = m.store.retrieve(coll, [int(i) for i in ids], with_vectors=[vn])
    vec = {int(r.id): np.asarray(r.dense[vn], np.float64) for r in recs}
    return np.array([float(np.dot(vec[int(i)], q)) for i in ids])


def _widen_tie(
    m: ModelState,
    coll: str,
    vn: str,
    row: np.ndarray,
    hits: list[tuple[PointId, float]],
    k: int,
) -> list[tuple[PointId, float]]:
    """Every anchor tied with the k-th one: ask the engine for more until the group ends."""
    limit = len(hits)
    while len(hits) == limit and hits[-1][1] >= hits[k - 1][1]:
        limit *= 2
        (hits,) = m.store.query_dense(coll, vn, row[None, :], limit=limit)
    return hits


def classify_kp(m: ModelState) -> tuple[int, Power]:
    """The ``(k, p)`` of zero-shot classification (``ASIF(classify_k=, classify_p=, ...)``).

    ``k``: ``classify_k``, else the model's. ``p``: ``classify_p`` when set, else
    :class:`~asif_qdrant.relative.Spread` of ``classify_spread`` (the default), else the
    model's ``p``.
    """
    fp = m.fingerprint
    k = fp.classify_k or fp.k
    if fp.classify_p is not None:
        return (k, fp.classify_p)
    if fp.classify_spread is not None:
        return (k, Spread(fp.classify_spread))
    return (k, fp.p)


def kp_key(kp: tuple[int, Power]) -> list[Any]:
    """A JSON form of ``(k, p)`` for cache keys: ``[k, p]`` or ``[k, {"spread": fraction}]``.

    Example:
        >>> kp_key((800, 8.0)), kp_key((800, Spread(0.3)))
        ([800, 8.0], [800, {'spread': 0.3}])
    """
    k, p = kp
    return [k, {"spread": p.fraction} if isinstance(p, Spread) else p]


def relative_from_embeddings(
    m: ModelState, embeddings: Any, modality: Modality, kp: tuple[int, Power] | None = None
) -> list[SparseVector]:
    """Relative vectors of precomputed embeddings (see ``ASIF.relative_from_embeddings``)."""
    emb = m.check_embeddings("embeddings", embeddings, modality)
    m.require_anchors()
    return relative(m, l2_normalize(emb), modality, kp)[0]


def embed_images(
    m: ModelState,
    images: Sequence[ImageInput],
    show_progress_bar: bool | None = None,
    kp: tuple[int, Power] | None = None,
) -> list[SparseVector]:
    """Sparse relative vectors of images (with the model's ``(k, p)`` unless ``kp``)."""
    emb = m.encode(list(images), "image", show_progress_bar)
    return relative_from_embeddings(m, emb, "image", kp)


def check_texts(texts: Sequence[str], owner: str = "embed_texts") -> list[str]:
    """A list of non-empty texts (one bare str is refused)."""
    if isinstance(texts, str):
        raise InvalidInputError(f"{owner} takes a list of texts. Got one str: wrap it in a list.")
    texts = list(texts)
    for i, t in enumerate(texts):
        if isinstance(t, str) and is_blank(t):
            raise InvalidInputError(
                f"Text {i} is empty (or only whitespace): an empty query matches nothing."
            )
    return texts


def embed_texts(
    m: ModelState,
    texts: Sequence[str],
    show_progress_bar: bool | None = None,
    kp: tuple[int, Power] | None = None,
) -> list[SparseVector]:
    """Sparse relative vectors of texts (with the model's ``(k, p)`` unless ``kp``)."""
    emb = m.encode(check_texts(texts), "text", show_progress_bar)
    return relative_from_embeddings(m, emb, "text", kp)


def encode_queries(m: ModelState, queries: list[Any], modality: Modality) -> np.ndarray:
    """Unit embeddings of raw queries of one modality."""
    if modality == "text":
        check_texts(queries)
    return l2_normalize(m.encode(queries, modality, show_progress_bar=False))


def query_vectors(m: ModelState, queries: list[Any]) -> list[SparseVector]:
    """Relative vectors of mixed queries: texts (str), images, or sparse vectors as they are."""
    out: list[SparseVector | None] = [None] * len(queries)
    texts = [(i, q) for i, q in enumerate(queries) if isinstance(q, str)]
    images = [(i, q) for i, q in enumerate(queries) if not isinstance(q, (str, SparseVector))]
    for i, q in enumerate(queries):
        if isinstance(q, SparseVector):
            out[i] = q
    if texts:
        for (i, _), v in zip(texts, embed_texts(m, [q for _, q in texts]), strict=True):
            out[i] = v
    if images:
        for (i, _), v in zip(images, embed_images(m, [q for _, q in images]), strict=True):
            out[i] = v
    return [v for v in out if v is not None]
