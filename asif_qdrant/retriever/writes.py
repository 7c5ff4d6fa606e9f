"""The one door for writes: every call of the package that changes a store passes here.

Anchor pairs, catalog items, edits and their repairs, label caches, model imports: the
modules that decide *what* to write (:mod:`~asif_qdrant.retriever.edits`,
:mod:`~asif_qdrant.retriever.catalogs`, :mod:`~asif_qdrant.retriever.crossgap`,
:mod:`~asif_qdrant.retriever.zeroshot`, :mod:`~asif_qdrant.retriever.integrity`,
:mod:`asif_qdrant.transfer`) hand their records to the functions below, which are the only
callers of the store's writing methods (``create_collection``, ``create_payload_index``,
``delete_collection``, ``upsert``, ``update_vectors``, ``delete``). A test asserts it
(``tests/unit/retriever/test_writes.py``), so that a check added here sees every byte
before it is written.

Example:
    >>> import tempfile, numpy as np
    >>> from asif_qdrant.store import CollectionSpec, EdgeStore, Record
    >>> with EdgeStore(tempfile.mkdtemp()) as store:
    ...     create_collection(store, "c", CollectionSpec(dense={"v": 2}))
    ...     upsert(store, "c", [Record(1, {"a": 1}, dense={"v": np.ones(2, np.float32)})])
    ...     rewrite_collection(store, "c", suffix="compacting")
    ...     store.count("c")
    1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from asif_qdrant.retriever.layout import META_VECTOR
from asif_qdrant.store.base import CollectionSpec, PointId, Record, Store

if TYPE_CHECKING:
    from asif_qdrant.retriever.state import ModelState

__all__ = [
    "create_collection",
    "create_payload_index",
    "delete_points",
    "drop_collection",
    "drop_label_caches",
    "rewrite_collection",
    "update_vectors",
    "upsert",
    "write_fingerprint",
]


def create_collection(store: Store, name: str, spec: CollectionSpec) -> None:
    """Create a collection."""
    store.create_collection(name, spec)


def create_payload_index(store: Store, name: str, key: str) -> None:
    """Index a keyword payload field of a collection (where the backend supports it)."""
    store.create_payload_index(name, key)


def drop_collection(store: Store, name: str) -> None:
    """Delete a collection (nothing when it does not exist)."""
    store.delete_collection(name)


def upsert(store: Store, collection: str, records: Sequence[Record]) -> None:
    """Insert or replace whole points."""
    store.upsert(collection, records)


def update_vectors(store: Store, collection: str, records: Sequence[Record]) -> None:
    """Replace some named vectors of existing points (payload and other vectors kept)."""
    store.update_vectors(collection, records)


def delete_points(store: Store, collection: str, ids: Sequence[PointId]) -> None:
    """Delete points by id."""
    store.delete(collection, ids)


def write_fingerprint(m: ModelState) -> None:
    """Store the model's fingerprint (creating its meta collection on first use)."""
    meta = m.layout.meta
    if not m.store.has_collection(meta):
        create_collection(m.store, meta, CollectionSpec(dense={META_VECTOR: 1}))
    upsert(
        m.store,
        meta,
        [Record(0, m.fingerprint.as_payload(), dense={META_VECTOR: np.ones(1, np.float32)})],
    )


def drop_label_caches(m: ModelState) -> None:
    """Delete every cached label collection of the model (they follow the anchors)."""
    for coll in m.store.list_collections():
        if coll.startswith(m.layout.labels_prefix):
            drop_collection(m.store, coll)


def rewrite_collection(
    store: Store, name: str, *, suffix: str, spec: CollectionSpec | None = None
) -> None:
    """Rewrite a collection from its live points (under ``spec``, default its own).

    The points go through a temporary copy ``<name>.<suffix>`` first, so an interruption
    loses nothing. Used to make deleted points leave the disk (Qdrant keeps them in its
    write-ahead log until it vacuums) and to add named vectors (Qdrant cannot add one to a
    collection).
    """
    if not store.has_collection(name):
        return
    old = store.collection_spec(name)
    records = list(store.scroll(name, with_vectors=True))
    tmp = f"{name}.{suffix}"[:255]
    drop_collection(store, tmp)
    create_collection(store, tmp, old)
    upsert(store, tmp, records)
    drop_collection(store, name)
    create_collection(store, name, spec or old)
    upsert(store, name, records)
    drop_collection(store, tmp)
