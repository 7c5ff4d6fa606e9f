"""The one place that names an ASIF model's collections and vectors, and specs its catalogs.

Collections of a model named ``name``:

* ``{name}_image_anchors`` and ``{name}_text_anchors``: the anchor embeddings (dense named
  vectors ``image`` / ``text``), paired by point id, with ``caption`` and ``source`` payload;
* ``{name}_meta``: the fingerprint (one point, dense vector ``_``);
* ``{name}_labels_<hash>``: cached prompt vectors of zero-shot classification;
* catalog collections, named by the user: the sparse vector ``asif`` (the score is the ASIF
  dot product), the item's own embedding (dense ``image`` or ``text``), the same with the
  item's k-th similarity appended (``image_kth`` / ``text_kth``, used by anchor edits), and,
  beyond plain ASIF, ``csa`` and the caption vectors ``caption`` / ``caption_kth`` /
  ``asif_caption`` (:mod:`asif_qdrant.retriever.crossgap`).

Example:
    >>> layout = Layout("pets")
    >>> layout.anchors("text"), layout.meta
    (('pets_text_anchors', 'text'), 'pets_meta')
    >>> layout.is_model_collection("pets_labels_0123"), layout.is_model_collection("photos")
    (True, False)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asif_qdrant.errors import FingerprintMismatchError, InvalidParameterError
from asif_qdrant.retriever.fingerprint import Fingerprint
from asif_qdrant.store.base import CollectionSpec, Store, check_collection_name
from asif_qdrant.types import Modality

__all__ = [
    "CAPTION_KTH",
    "CAPTION_SPARSE",
    "CAPTION_VECTOR",
    "CSA_VECTOR",
    "META_VECTOR",
    "MODEL_ROLES",
    "SPARSE",
    "Layout",
    "catalog_spec",
    "extra_spec",
    "kth_name",
    "kth_vectors",
    "model_fingerprints",
    "model_names",
    "probe_vectors",
]

#: The sparse ASIF vector of catalog items and label prompts.
SPARSE = "asif"
#: The dense CSA vector of catalog items (models built with ``csa_dim``).
CSA_VECTOR = "csa"
#: The caption embedding of image items indexed with a caption.
CAPTION_VECTOR = "caption"
#: The caption embedding with its boundary appended (keeps caption vectors exact on edits).
CAPTION_KTH = "caption_kth"
#: The caption's sparse ASIF vector (``search(..., target="caption")``).
CAPTION_SPARSE = "asif_caption"
#: The one-dimensional dense vector of the fingerprint point.
META_VECTOR = "_"
#: The model's own collections besides its catalogs, as ``{name}_{role}``.
MODEL_ROLES: tuple[str, ...] = ("image_anchors", "text_anchors", "meta")


def kth_name(modality: str) -> str:
    """Name of the dense vector ``[e, -boundary]`` of a catalog item of ``modality``.

    Example:
        >>> kth_name("image")
        'image_kth'
    """
    return f"{modality}_kth"


def kth_vectors(unit: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """``[e, -t]`` rows: an item's unit embedding with its boundary ``t`` appended, negated.

    Example:
        >>> kth_vectors(np.array([[0.6, 0.8]]), np.array([0.5])).tolist()
        [[0.6000000238418579, 0.800000011920929, -0.5]]
    """
    unit = np.asarray(unit, dtype=np.float32)
    return np.concatenate([unit, -np.asarray(boundary, np.float32).reshape(-1, 1)], axis=1)


def probe_vectors(unit_anchors: np.ndarray) -> np.ndarray:
    """``[a, 1]`` rows: a new anchor's query against the ``*_kth`` vectors (score ``a.e - t``).

    Example:
        >>> probe_vectors(np.array([[1.0, 0.0]])).tolist()
        [[1.0, 0.0, 1.0]]
    """
    unit_anchors = np.asarray(unit_anchors, dtype=np.float32)
    return np.concatenate([unit_anchors, np.ones((len(unit_anchors), 1), np.float32)], axis=1)


@dataclass(frozen=True)
class Layout:
    """The collection names of the model ``name``.

    Attributes:
        name: The model's name (the prefix of all its collections).
        image_anchors: The image-anchor collection.
        text_anchors: The text-anchor collection.
        meta: The collection holding the fingerprint.
        labels_prefix: The prefix of the cached label collections.
    """

    name: str
    image_anchors: str = field(init=False)
    text_anchors: str = field(init=False)
    meta: str = field(init=False)
    labels_prefix: str = field(init=False)

    def __post_init__(self) -> None:
        check_collection_name(self.name)
        suffixes = {**{role: role for role in MODEL_ROLES}, "labels_prefix": "labels_"}
        for attr, suffix in suffixes.items():
            object.__setattr__(self, attr, f"{self.name}_{suffix}")

    def role(self, role: str) -> str:
        """The collection of one of :data:`MODEL_ROLES`."""
        return f"{self.name}_{role}"

    def anchors(self, modality: Any) -> tuple[str, Modality]:
        """``(collection, vector name)`` of the anchors of ``modality`` (validated)."""
        if modality == "image":
            return self.image_anchors, "image"
        if modality == "text":
            return self.text_anchors, "text"
        raise InvalidParameterError(
            f"The 'modality' parameter must be 'image' or 'text'. Got {modality!r} instead."
        )

    def labels(self, key: Any) -> str:
        """The label collection cached under ``key`` (any JSON-serialisable value)."""
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
        return f"{self.labels_prefix}{digest}"

    def is_model_collection(self, collection: str) -> bool:
        """Whether ``collection`` belongs to the model itself (not a catalog)."""
        return collection in (
            self.meta,
            self.image_anchors,
            self.text_anchors,
        ) or collection.startswith(self.labels_prefix)


def model_fingerprints(store: Store) -> dict[str, Fingerprint]:
    """The ASIF models in ``store`` and their fingerprints, by name (sorted).

    A model is a ``{name}_meta`` collection holding a fingerprint; a store where no model
    was ever built (or only an empty ``_meta`` collection) gives ``{}``.
    """
    suffix = f"_{MODEL_ROLES[-1]}"
    found = {}
    for collection in sorted(store.list_collections()):
        name = collection[: -len(suffix)]
        if not collection.endswith(suffix) or not name:
            continue
        records = store.retrieve(collection, [0])
        try:
            if records:
                found[name] = Fingerprint.from_payload(records[0].payload)
        except FingerprintMismatchError:
            continue  # another library's collection that happens to end in _meta
    return found


def model_names(store: Store) -> list[str]:
    """The names of the ASIF models in ``store``, sorted (see :func:`model_fingerprints`).

    Example:
        >>> from asif_qdrant.store import EdgeStore
        >>> import tempfile
        >>> with EdgeStore(tempfile.mkdtemp()) as store:
        ...     model_names(store)
        []
    """
    return list(model_fingerprints(store))


def extra_spec(fp: Fingerprint) -> tuple[dict[str, int], tuple[str, ...]]:
    """The dense and sparse vectors a catalog has beyond the ASIF layout (CSA, captions)."""
    if fp.text_dim is None:
        raise InvalidParameterError("A catalog needs the text dim: add anchor pairs first.")
    dense = {CAPTION_VECTOR: fp.text_dim, CAPTION_KTH: fp.text_dim + 1}
    if fp.csa_dim is not None:
        dense[CSA_VECTOR] = int(fp.csa_dim)
    return dense, (CAPTION_SPARSE,)


def catalog_spec(fp: Fingerprint) -> CollectionSpec:
    """The spec of a new catalog of a model with this fingerprint (anchors exist)."""
    if fp.image_dim is None or fp.text_dim is None:
        raise InvalidParameterError("A catalog needs both encoder dims: add anchor pairs first.")
    extra_dense, extra_sparse = extra_spec(fp)
    return CollectionSpec(
        dense={
            "image": fp.image_dim,
            "text": fp.text_dim,
            kth_name("image"): fp.image_dim + 1,
            kth_name("text"): fp.text_dim + 1,
            **extra_dense,
        },
        sparse=(SPARSE, *extra_sparse),
    )
