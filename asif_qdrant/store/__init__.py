"""All Qdrant I/O: one interface (:class:`Store`), an embedded and a client backend."""

from __future__ import annotations

from asif_qdrant.store.base import CollectionSpec, PayloadFilter, Record, ScoredPoint, Store
from asif_qdrant.store.client import ClientStore
from asif_qdrant.store.edge import EdgeStore

__all__ = [
    "ClientStore",
    "CollectionSpec",
    "EdgeStore",
    "PayloadFilter",
    "Record",
    "ScoredPoint",
    "Store",
]
