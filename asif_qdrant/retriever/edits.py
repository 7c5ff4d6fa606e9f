"""Editing the anchor set: add or delete anchor pairs, and bring every catalog up to date.

An edit writes the anchors of both modalities, then the fingerprint (count, version, next
id), then the catalogs (:mod:`asif_qdrant.retriever.recompute` re-computes exactly the items
it affects; :mod:`asif_qdrant.retriever.crossgap` the CSA and caption vectors). A
write-ahead marker in the fingerprint makes an interrupted edit repairable on the next open
(:mod:`asif_qdrant.retriever.integrity`).

Example:
    >>> import tempfile, numpy as np
    >>> from asif_qdrant.store import EdgeStore
    >>> from asif_qdrant.retriever.layout import Layout
    >>> rng = np.random.default_rng(0)
    >>> with EdgeStore(tempfile.mkdtemp()) as store:
    ...     m = ModelState(store, Layout("demo"), show_progress_bar=False)
    ...     m.open("precomputed/image", "precomputed/text", k=2, p=None)
    ...     ids = add_anchor_embeddings(m, rng.random((3, 8)), rng.random((3, 4)))
    ...     delete_anchors(m, [ids[0]]), m.fingerprint.anchor_count, m.last_edit.operation
    (1, 2, 'delete')
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from asif_qdrant.errors import AnchorSetError, InvalidInputError, check_int, is_blank
from asif_qdrant.relative import l2_normalize
from asif_qdrant.retriever import journal, keys, writes
from asif_qdrant.retriever.anchors import sync_anchor_indexes
from asif_qdrant.retriever.crossgap import after_edit
from asif_qdrant.retriever.keys import IngestResult
from asif_qdrant.retriever.recompute import EditReport, update_catalogs
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import CollectionSpec, Record
from asif_qdrant.types import ImageInput

__all__ = [
    "AnchorPlan",
    "add_anchor_embeddings",
    "add_anchors",
    "anchor_units",
    "apply_anchor_plan",
    "check_pairs",
    "delete_anchors",
    "finish_edit",
    "plan_anchor_adds",
    "write_anchor_pairs",
]


def check_pairs(
    n_images: int, n_captions: int, payloads: Sequence[Mapping[str, Any]] | None
) -> None:
    """Anchor pairs need one caption (and one payload, if any) per image."""
    if n_images != n_captions:
        raise InvalidInputError(
            f"Anchor pairs need one caption per image. Got {n_images} images and "
            f"{n_captions} captions."
        )
    if payloads is not None and len(payloads) != n_images:
        raise InvalidInputError(
            f"'payloads' must have one entry per pair ({n_images}). Got {len(payloads)}."
        )


def add_anchors(
    m: ModelState,
    images: Sequence[ImageInput],
    captions: Sequence[str],
    payloads: Sequence[Mapping[str, Any]] | None = None,
    source: str | None = None,
    on_duplicate: str = "skip",
) -> IngestResult:
    """Embed raw image-caption pairs and add them as anchors (see ``ASIF.add_anchors``)."""
    on_duplicate = keys.check_on_duplicate("ASIF.add_anchors", on_duplicate)
    images, captions = list(images), list(captions)
    check_pairs(len(images), len(captions), payloads)
    payloads = writes.check_payloads(payloads, reserved=writes.ANCHOR_RESERVED_KEYS)
    for i, c in enumerate(captions):
        if not isinstance(c, str):
            raise InvalidInputError(
                f"Caption {i} must be a str. Got {type(c).__name__} ({c!r:.60})."
            )
        if is_blank(c):
            raise InvalidInputError(
                f"Caption {i} is empty (or only whitespace): an anchor pair needs a caption."
            )
    refs = [keys.image_ref_key(x) for x in images]  # each file read once: hash and key
    pair_keys = [keys.anchor_key(key, c) for (_, key), c in zip(refs, captions, strict=True)]
    plan = plan_anchor_adds(m, pair_keys, on_duplicate)
    todo = plan.todo
    base = [
        {
            "caption": captions[j],
            **refs[j][0],
            **({"source": source} if source is not None else {}),
        }
        for j in todo
    ]
    if payloads is not None:
        base = [{**dict(payloads[j]), **b} for b, j in zip(base, todo, strict=True)]
    if todo:
        img = m.encode([images[j] for j in todo], "image")
        txt = m.encode([captions[j] for j in todo], "text")
    else:
        img = txt = np.zeros((0, 1), np.float32)
    return apply_anchor_plan(m, plan, img, txt, base, pair_keys)


def add_anchor_embeddings(
    m: ModelState,
    image_embeddings: Any,
    text_embeddings: Any,
    payloads: Sequence[Mapping[str, Any]] | None = None,
    on_duplicate: str = "skip",
) -> IngestResult:
    """Add anchor pairs from precomputed embeddings (see ``ASIF.add_anchor_embeddings``).

    A pair's key is that of its payload's ``image`` file and ``caption`` when both are
    given, else the sha256 of its two float32 rows (:mod:`asif_qdrant.retriever.keys`).
    """
    on_duplicate = keys.check_on_duplicate("ASIF.add_anchor_embeddings", on_duplicate)
    img = m.check_embeddings("image_embeddings", image_embeddings, "image")
    txt = m.check_embeddings("text_embeddings", text_embeddings, "text")
    check_pairs(len(img), len(txt), payloads)
    payloads = writes.check_payloads(payloads, reserved=writes.ANCHOR_RESERVED_KEYS)
    portable = [keys.portable_payload_and_key(x) for x in payloads or [{}] * len(img)]
    pl = [p for p, _ in portable]
    pair_keys = []
    for j, (p, image_key) in enumerate(portable):
        if image_key is not None and isinstance(p.get("caption"), str):
            pair_keys.append(keys.anchor_key(image_key, p["caption"]))
        else:
            pair_keys.append(keys.embedding_key(img[j], txt[j]))
    plan = plan_anchor_adds(m, pair_keys, on_duplicate)
    return apply_anchor_plan(
        m, plan, img[plan.todo], txt[plan.todo], [pl[j] for j in plan.todo], pair_keys
    )


@dataclass
class AnchorPlan:
    """Which of a batch of anchor pairs to write, and which are already stored.

    Attributes:
        todo: Positions in the batch to write (as new pairs).
        present: Position -> id of the stored pair with the same key (not written again).
        replace: Ids of stored pairs to delete first (``on_duplicate="replace"``).
        same_as: Position -> earlier position in the batch with the same key.
    """

    todo: list[int]
    present: dict[int, int] = field(default_factory=dict)
    replace: list[int] = field(default_factory=list)
    same_as: dict[int, int] = field(default_factory=dict)


def plan_anchor_adds(m: ModelState, pair_keys: Sequence[str], on_duplicate: str) -> AnchorPlan:
    """Look the batch's keys up among the stored pairs and decide what ``on_duplicate`` asks."""
    if on_duplicate == "add":
        return AnchorPlan(list(range(len(pair_keys))))
    stored: dict[str, int] = {}
    if m.store.has_collection(m.layout.text_anchors):
        for rec in m.store.find_by_payload(m.layout.text_anchors, keys.KEY_FIELD, pair_keys):
            stored.setdefault(str(rec.payload[keys.KEY_FIELD]), int(rec.id))
    plan = AnchorPlan([])
    first: dict[str, int] = {}
    for j, key in enumerate(pair_keys):
        if key in first:
            plan.same_as[j] = first[key]
            continue
        first[key] = j
        if key in stored and on_duplicate == "skip":
            plan.present[j] = stored[key]
            continue
        if key in stored:
            plan.replace.append(stored[key])
        plan.todo.append(j)
    return plan


def apply_anchor_plan(
    m: ModelState,
    plan: AnchorPlan,
    img: np.ndarray,
    txt: np.ndarray,
    payloads: list[dict[str, Any]],
    pair_keys: Sequence[str],
) -> IngestResult:
    """Write the planned pairs (deleting those they replace first); the report by position."""
    if plan.replace:
        delete_anchors(m, plan.replace)
    pl = [{**p, keys.KEY_FIELD: pair_keys[j]} for p, j in zip(payloads, plan.todo, strict=True)]
    new = write_anchor_pairs(m, img, txt, pl)
    ids: dict[int, int] = {**plan.present, **dict(zip(plan.todo, new, strict=True))}
    for j, earlier in plan.same_as.items():
        ids[j] = ids[earlier]
    n = len(pair_keys)
    return IngestResult(
        [ids[j] for j in range(n)],
        added=len(new) - len(plan.replace),
        already_present=len(plan.present) + len(plan.same_as),
        replaced=len(plan.replace),
    )


def write_anchor_pairs(
    m: ModelState,
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    payloads: Sequence[Mapping[str, Any]],
) -> list[int]:
    """Write new anchor pairs (checked embeddings) and bring every catalog up to date."""
    t0 = time.perf_counter()
    img, txt = image_embeddings, text_embeddings
    fp = m.fingerprint
    n = len(img)
    if n == 0:
        return []
    if fp.image_dim is None:
        fp.image_dim = img.shape[1]
    if fp.text_dim is None:
        fp.text_dim = txt.shape[1]
    ids = list(range(fp.next_anchor_id, fp.next_anchor_id + n))
    if ids[-1] >= 2**32:
        raise AnchorSetError("Anchor ids must fit in 32 bits (Qdrant sparse indices).")
    for modality, dim in (("image", fp.image_dim), ("text", fp.text_dim)):
        coll, vn = m.layout.anchors(modality)
        if not m.store.has_collection(coll):
            writes.create_collection(m.store, coll, CollectionSpec(dense={vn: dim}, on_disk=True))
            writes.create_payload_index(m.store, coll, keys.KEY_FIELD)
    pl = [dict(x) for x in payloads]
    img, txt = l2_normalize(img), l2_normalize(txt)
    batches = []
    for modality, unit in (("image", img), ("text", txt)):
        coll, vn = m.layout.anchors(modality)
        records = [Record(i, pl[j], dense={vn: unit[j]}) for j, i in enumerate(ids)]
        writes.check_records(coll, records)  # both batches, before the first byte: all or none
        batches.append((coll, records))
    # Write-ahead marker: a kill before finish_edit's first fingerprint write (which clears
    # it) is completed or rolled back on the next open (asif_qdrant.retriever.integrity).
    fp.pending_edit = {"operation": "add", "ids": [ids[0], ids[-1] + 1]}
    writes.write_fingerprint(m)
    for coll, records in batches:
        writes.upsert(m.store, coll, records)
    fp.next_anchor_id = ids[-1] + 1
    fp.pending_edit = None
    finish_edit(m, "add", n, t0, new_units={"image": img, "text": txt})
    return ids


def delete_anchors(m: ModelState, ids: Iterable[int], *, purge: bool = False) -> int:
    """Delete anchor pairs by id, everywhere (see ``ASIF.delete_anchors``)."""
    t0 = time.perf_counter()
    ids = list(dict.fromkeys(check_int("ids", "ASIF.delete_anchors", i, minimum=0) for i in ids))
    if not ids:
        return 0
    layout = m.layout
    present = []
    if m.store.has_collection(layout.image_anchors):
        present = [int(r.id) for r in m.store.retrieve(layout.image_anchors, ids)]
    unknown = sorted(set(ids) - set(present))
    if unknown:
        raise AnchorSetError(
            f"Cannot delete anchors {unknown[:20]}{' ...' if len(unknown) > 20 else ''}: "
            f"they are not anchors of the model '{m.name}' (deleted already, or never "
            "added). Nothing was deleted; list the anchors with list_anchors()."
        )
    # Write-ahead marker (cleared by finish_edit's first fingerprint write): a kill before
    # then is completed on the next open (asif_qdrant.retriever.integrity).
    units = anchor_units(m, present) if m.fingerprint.catalog_nnz is not None else None
    m.fingerprint.pending_edit = {"operation": "delete", "ids": present}
    writes.write_fingerprint(m)
    writes.delete_points(m.store, layout.image_anchors, present)
    writes.delete_points(m.store, layout.text_anchors, present)
    m.fingerprint.pending_edit = None
    report = finish_edit(m, "delete", len(present), t0, deleted=present, deleted_units=units)
    if purge:
        touched = [c.collection for c in report.catalogs if c.items_touched]
        for coll in [layout.image_anchors, layout.text_anchors, *touched]:
            journal.rewrite(m, coll, suffix="compacting")
    return len(present)


def anchor_units(m: ModelState, ids: Sequence[int]) -> dict[str, np.ndarray]:
    """The stored unit embeddings of some anchors, by modality (in the order of ``ids``)."""
    out = {}
    for modality in ("image", "text"):
        coll, vn = m.layout.anchors(modality)
        by_id = {int(r.id): r.dense[vn] for r in m.store.retrieve(coll, ids, with_vectors=[vn])}
        rows = [np.asarray(by_id[i], np.float32) for i in ids if i in by_id]
        if rows:
            out[modality] = np.stack(rows)
    return out


def finish_edit(
    m: ModelState,
    operation: Literal["add", "delete"],
    pairs: int,
    t0: float,
    *,
    new_units: dict[str, np.ndarray] | None = None,
    deleted: Sequence[int] | None = None,
    deleted_units: dict[str, np.ndarray] | None = None,
) -> EditReport:
    """Bump the version, update every catalog, record and return the report.

    ``deleted_units``: the deleted anchors' unit embeddings by modality (read before the
    delete), which catalogs of pruned item vectors need to find the affected items.
    """
    fp = m.fingerprint
    previous = fp.anchor_version
    sync_anchor_indexes(m, previous, new_units=new_units, deleted=deleted)
    fp.anchor_count = m.store.count(m.layout.image_anchors)
    fp.anchor_version += 1
    # Written first: if the catalog update is interrupted, the catalogs stay marked with
    # the old version (searches warn) and the next edit re-computes them in full.
    writes.write_fingerprint(m)
    writes.drop_label_caches(m)
    progress = m.progress()
    # CSA refit and caption vectors first, while catalogs still record their version.
    after_edit(
        m, previous_version=previous, new_units=new_units, deleted=deleted, progress=progress
    )
    edits = update_catalogs(
        m,
        previous_version=previous,
        new_units=new_units,
        deleted=deleted,
        progress=progress,
        deleted_units=deleted_units,
    )
    report = EditReport(
        operation, pairs, fp.anchor_count, fp.anchor_version, time.perf_counter() - t0, edits
    )
    fp.last_edit = {k: v for k, v in report.as_dict().items() if k != "catalogs"}
    writes.write_fingerprint(m)
    m.last_edit = report
    return report
