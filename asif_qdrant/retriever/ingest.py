"""Finding what is already stored before a write: content keys looked up, ids handed out.

:mod:`asif_qdrant.retriever.keys` says what an item's key is; this module looks the keys (or
the user's ids) up in a catalog and decides, by ``on_duplicate``, which items to write and
under which ids (:func:`plan_items`), hands out default ids that never collide with explicit
ones (:func:`allocate_ids`), and does the same for the rows of a resumable index job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from asif_qdrant.retriever import keys
from asif_qdrant.retriever.keys import IngestResult
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import PointId

__all__ = [
    "JobInput",
    "allocate_ids",
    "embedding_keys",
    "job_row_keys",
    "job_rows_to_write",
    "note_explicit_ids",
    "plan_items",
]


def allocate_ids(m: ModelState, collection: str, count: int) -> list[int]:
    """``count`` fresh default ids: past the catalog's next id and every stored int id.

    The fingerprint records the new next id only once the items are written
    (:func:`asif_qdrant.retriever.catalogs.finish_catalog`): a failed call leaves it as it was.
    """
    pending = m.pending_next_id.get(collection)
    start = int(m.fingerprint.catalogs.get(collection, {}).get("next_id", 0))
    start = max(start, pending or 0)
    taken = (
        count > 0
        and m.store.has_collection(collection)
        and m.store.retrieve(collection, list(range(start, start + count)))
    )
    if taken:
        # Explicit int ids above the next id (a catalog from before they were tracked).
        stored = [r.id for r in m.store.scroll(collection) if isinstance(r.id, int)]
        start = max(start, max(stored, default=-1) + 1)
    m.pending_next_id[collection] = start + count
    return list(range(start, start + count))


def note_explicit_ids(m: ModelState, collection: str, ids: Sequence[PointId]) -> None:
    """Move the catalog's next default id past explicit int ids, so they never collide."""
    ints = [i for i in ids if isinstance(i, int)]
    pending = m.pending_next_id.get(collection)
    if ints or collection not in m.pending_next_id:
        m.pending_next_id[collection] = max([pending or 0, *(i + 1 for i in ints)])


def plan_items(
    m: ModelState,
    collection: str,
    item_keys: Sequence[str],
    ids: list[PointId] | None,
    on_duplicate: str,
) -> tuple[list[int], IngestResult]:
    """Which items to write, and every item's id: ``(positions to write, result)``.

    With the user's ids an item is present when its id is stored; without, when its key is
    (payload ``asif_key``). ``"skip"`` leaves present items alone, ``"replace"`` writes them
    again under their stored id, ``"add"`` writes them as new items (with the user's ids:
    under their id, as ``"replace"``).
    """
    n = len(item_keys)
    have = m.store.has_collection(collection) and n > 0
    if ids is not None:
        stored = {r.id for r in m.store.retrieve(collection, ids)} if have else set()
        todo = [j for j in range(n) if on_duplicate != "skip" or ids[j] not in stored]
        note_explicit_ids(m, collection, [ids[j] for j in todo])
        replaced = sum(ids[j] in stored for j in todo)
        return todo, IngestResult(
            ids, added=len(todo) - replaced, already_present=n - len(todo), replaced=replaced
        )
    found: dict[str, PointId] = {}
    if have and on_duplicate != "add":
        for rec in m.store.find_by_payload(collection, keys.KEY_FIELD, item_keys):
            found.setdefault(str(rec.payload[keys.KEY_FIELD]), rec.id)
    out: list[PointId | None] = [None] * n
    todo, same_as, first = [], {}, {}
    for j, key in enumerate(item_keys):
        if on_duplicate != "add" and key in first:
            same_as[j] = first[key]
            continue
        first[key] = j
        if key in found:
            out[j] = found[key]
            if on_duplicate == "skip":
                continue
        todo.append(j)
    new = iter(allocate_ids(m, collection, sum(out[j] is None for j in todo)))
    for j in todo:
        out[j] = next(new) if out[j] is None else out[j]
    for j, earlier in same_as.items():
        out[j] = out[earlier]
    replaced = sum(item_keys[j] in found for j in todo) if on_duplicate == "replace" else 0
    return todo, IngestResult(
        out,  # type: ignore[arg-type]
        added=len(todo) - replaced,
        already_present=n - len(todo),
        replaced=replaced,
    )


def embedding_keys(
    arr: np.ndarray,
    payloads: Sequence[Mapping[str, Any]],
    image_keys: Sequence[str | None],
    modality: str,
) -> list[str]:
    """Keys of precomputed items: their payload's ``image`` / ``text``, else their numbers.

    ``image_keys`` are the keys of the payloads' ``image`` paths, from
    :func:`~asif_qdrant.retriever.keys.portable_payload_and_key` (which read each file once).
    """
    out = []
    for row, payload, image_key in zip(arr, payloads, image_keys, strict=True):
        key = None
        if modality == "image":
            key = image_key
        elif modality == "text" and isinstance(payload.get("text"), str):
            key = keys.text_key(payload["text"])
        out.append(key or keys.embedding_key(row))
    return out


class JobInput(NamedTuple):
    """A resumable index job's input: precomputed embeddings, or (modality, item) pairs."""

    #: The embeddings (``None`` for items).
    arr: np.ndarray | None
    #: ``("image", path)`` / ``("text", text)`` pairs (empty for embeddings).
    items: list[tuple[str, Any]]
    #: The embeddings' modality (``None`` for items).
    modality: Any


def job_row_keys(job: JobInput, rows: Sequence[int]) -> list[str]:
    """The content keys of a job's rows (as :func:`index` / :func:`index_embeddings`)."""
    if job.arr is not None:
        return [keys.embedding_key(job.arr[r]) for r in rows]
    items = job.items
    return [
        keys.text_key(items[r][1]) if items[r][0] == "text" else keys.image_key(items[r][1])
        for r in rows
    ]


def job_rows_to_write(
    m: ModelState,
    collection: str,
    job: JobInput,
    rows: list[int],
    ids: list[PointId],
    on_duplicate: str,
) -> list[int]:
    """The rows to write: those whose content is not stored yet (or all, by ``on_duplicate``).

    A row already present gets its stored id in ``ids`` (and, with ``"replace"``, is written
    again under it).
    """
    if not rows or on_duplicate == "add" or not m.store.has_collection(collection):
        return rows
    row_keys = job_row_keys(job, rows)
    found: dict[str, PointId] = {}
    for rec in m.store.find_by_payload(collection, keys.KEY_FIELD, row_keys):
        found.setdefault(str(rec.payload[keys.KEY_FIELD]), rec.id)
    out = []
    for r, key in zip(rows, row_keys, strict=True):
        if key in found and found[key] != ids[r]:
            ids[r] = found[key]
            if on_duplicate == "skip":
                continue
        out.append(r)
    return out
