"""The one door for writes: every call of the package that changes a store passes here.

Anchor pairs, catalog items, edits and their repairs, label caches, model imports: the
modules that decide *what* to write (:mod:`~asif_qdrant.retriever.edits`,
:mod:`~asif_qdrant.retriever.catalogs`, :mod:`~asif_qdrant.retriever.crossgap`,
:mod:`~asif_qdrant.retriever.zeroshot`, :mod:`~asif_qdrant.retriever.integrity`,
:mod:`asif_qdrant.transfer`) hand their records to the functions below, which are the only
callers of the store's writing methods (``create_collection``, ``create_payload_index``,
``delete_collection``, ``upsert``, ``update_vectors``, ``delete``). A test asserts it
(``tests/unit/retriever/test_writes.py``), so that a check added here sees every byte
before it is written. Crash-safe rewrites of whole collections (a staging copy and a
write-ahead marker) are in :mod:`asif_qdrant.retriever.journal`, built on these.

Every record is checked here before anything is written (:func:`check_records`): payloads
are JSON objects with string keys, at most :data:`MAX_PAYLOAD_DEPTH` levels deep and
:data:`MAX_PAYLOAD_BYTES` long as JSON, without NaN or inf; vectors are finite in float32.
Callers that write several collections in one operation (an anchor edit writes both anchor
collections) check all their records first, so a batch is written whole or not at all.
:func:`check_payloads` also refuses the keys the library keeps for itself
(:data:`ANCHOR_RESERVED_KEYS`, :data:`CATALOG_RESERVED_KEYS`).

Example:
    >>> import tempfile, numpy as np
    >>> from asif_qdrant.store import CollectionSpec, EdgeStore, Record
    >>> with EdgeStore(tempfile.mkdtemp()) as store:
    ...     create_collection(store, "c", CollectionSpec(dense={"v": 2}))
    ...     upsert(store, "c", [Record(1, {"a": 1}, dense={"v": np.ones(2, np.float32)})])
    ...     store.count("c")
    1
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from asif_qdrant.errors import InvalidInputError, InvalidPayloadError
from asif_qdrant.retriever.layout import META_VECTOR
from asif_qdrant.store.base import CollectionSpec, PointId, Record, Store

if TYPE_CHECKING:
    from asif_qdrant.retriever.state import ModelState

__all__ = [
    "ANCHOR_RESERVED_KEYS",
    "CATALOG_RESERVED_KEYS",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_DEPTH",
    "check_payload",
    "check_payloads",
    "check_records",
    "create_collection",
    "create_payload_index",
    "delete_points",
    "drop_collection",
    "drop_label_caches",
    "update_vectors",
    "upsert",
    "write_fingerprint",
]


#: How deep a payload may nest dicts and lists (the payload itself is level 1). Qdrant's
#: write-ahead log cannot be read back past about 127 levels: the model would never open again.
MAX_PAYLOAD_DEPTH = 32
#: The largest payload, in bytes of its JSON form.
MAX_PAYLOAD_BYTES = 1 << 20
#: Keys an anchor payload may not hold: ``list_anchors`` shows the pair's id under ``id``.
ANCHOR_RESERVED_KEYS: frozenset[str] = frozenset({"id"})
#: Keys a user payload of a catalog item may not hold: the library stores the item's
#: ``modality`` there and filters searches by it (``SearchOptions.item_modality``).
CATALOG_RESERVED_KEYS: frozenset[str] = frozenset({"modality"})


def _depth(payload: Mapping[str, Any]) -> int:
    """How deep dicts and lists nest in ``payload`` (iterative: no recursion limit)."""
    deepest, stack = 0, [(payload, 1)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_PAYLOAD_DEPTH:
            return level
        children = value.values() if isinstance(value, Mapping) else value
        stack.extend((c, level + 1) for c in children if isinstance(c, (Mapping, list, tuple)))
    return deepest


def check_payload(payload: Any, where: str, *, reserved: Collection[str] = ()) -> dict[str, Any]:
    """Validate one payload and return it as a plain dict.

    Args:
        payload: The payload (a mapping of str keys to JSON values).
        where: Names the payload in messages, e.g. ``"payloads[3]"``.
        reserved: Top-level keys it may not hold (kept by the library).

    Returns:
        A shallow copy as a ``dict``.

    Raises:
        InvalidPayloadError: If it is not a mapping with str keys, holds a reserved key, nests
            deeper than :data:`MAX_PAYLOAD_DEPTH`, is not JSON (NaN and inf included) or is
            longer than :data:`MAX_PAYLOAD_BYTES` as JSON.

    Example:
        >>> check_payload({"a": [1, 2]}, "payloads[0]")
        {'a': [1, 2]}
        >>> check_payload({"id": 3}, "payloads[0]", reserved={"id"})
        Traceback (most recent call last):
        ...
        asif_qdrant.errors.InvalidPayloadError: payloads[0] holds the key 'id', which the \
library keeps for itself (reserved: 'id'). Rename that key.
    """
    if not isinstance(payload, Mapping):
        raise InvalidPayloadError(
            f"{where} must be a dict of JSON values. Got {type(payload).__name__}."
        )
    bad = [k for k in payload if not isinstance(k, str)]
    if bad:
        raise InvalidPayloadError(f"{where} must have str keys. Got the key {bad[0]!r:.60}.")
    taken = sorted(set(payload) & set(reserved))
    if taken:
        raise InvalidPayloadError(
            f"{where} holds the key {taken[0]!r}, which the library keeps for itself "
            f"(reserved: {', '.join(map(repr, sorted(reserved)))}). Rename that key."
        )
    depth = _depth(payload)
    if depth > MAX_PAYLOAD_DEPTH:
        raise InvalidPayloadError(
            f"{where} nests dicts and lists more than {MAX_PAYLOAD_DEPTH} levels deep. Flatten it."
        )
    try:
        size = len(json.dumps(payload, allow_nan=False, ensure_ascii=False).encode())
    except (TypeError, ValueError) as e:
        raise InvalidPayloadError(
            f"{where} must hold only JSON values (str, int, finite float, bool, None, lists "
            f"and dicts of them): {e}."
        ) from None
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidPayloadError(
            f"{where} is {size} bytes as JSON; at most {MAX_PAYLOAD_BYTES} are allowed."
        )
    return dict(payload)


def check_payloads(
    payloads: Sequence[Any] | None, what: str = "payloads", *, reserved: Collection[str] = ()
) -> list[dict[str, Any]] | None:
    """Validate every payload of a batch (:func:`check_payload`), naming the bad row."""
    if payloads is None:
        return None
    return [check_payload(p, f"{what}[{i}]", reserved=reserved) for i, p in enumerate(payloads)]


def _finite32(values: Any) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.asarray(values, dtype=np.float32)).all())


def check_records(collection: str, records: Sequence[Record]) -> None:
    """Check every record of a write before its first byte: payloads and finite vectors.

    Raises:
        InvalidPayloadError: If a payload breaks a rule of :func:`check_payload`.
        InvalidInputError: If a vector holds NaN or inf once stored as float32.
    """
    for j, r in enumerate(records):
        where = f"The point {r.id!r} (row {j}) written to '{collection}'"
        check_payload(r.payload, f"{where}: its payload")
        for name, v in r.dense.items():
            if not _finite32(v):
                raise InvalidInputError(
                    f"{where}: its vector '{name}' holds NaN or inf in float32 "
                    f"(|x| must be <= {float(np.finfo(np.float32).max):.4g})."
                )
        for name, sv in r.sparse.items():
            if not _finite32(sv.values):
                raise InvalidInputError(
                    f"{where}: its sparse vector '{name}' holds NaN or inf in float32."
                )


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
    """Insert or replace whole points (all checked first, :func:`check_records`)."""
    check_records(collection, records)
    store.upsert(collection, records)


def update_vectors(store: Store, collection: str, records: Sequence[Record]) -> None:
    """Replace some named vectors of existing points (payload and other vectors kept)."""
    check_records(collection, records)
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
