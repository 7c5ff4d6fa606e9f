"""The ``ASIF`` class: two frozen encoders + anchor pairs in Qdrant = a CLIP-like retriever.

Data flows one way: encoder -> anchor query (exact search in the anchor collection of the
input's modality) -> sparse relative vector -> Qdrant (stored, or used as a sparse query).

Collections of a model named ``name``:

* ``{name}_image_anchors`` and ``{name}_text_anchors``: the anchor embeddings (dense named
  vectors ``image`` / ``text``), paired by point id, with ``caption`` and ``source`` payload;
* ``{name}_meta``: the fingerprint (encoders, dims, k, p, anchor count and version);
* ``{name}_labels_<hash>``: cached prompt vectors of zero-shot classification;
* catalog collections, named by the user: a sparse vector ``asif`` (no modifier, so the score
  is the ASIF dot product), the item's own embedding (dense ``image`` or ``text``), the same
  with the item's k-th similarity appended (``image_kth`` / ``text_kth``, used by anchor edits
  to find the items they affect, :mod:`asif_qdrant.editing`) and payload.

Adding or deleting anchors re-computes exactly the catalog items the edit affects, so catalogs
always equal a full re-index (:attr:`ASIF.last_edit` says what an edit did); :meth:`ASIF.explain`
breaks any score down into the anchor pairs behind it.

Typical use (the class docstring has an example that runs without any model)::

    from pathlib import Path
    from asif_qdrant import ASIF

    asif = ASIF(path="my-asif")                     # offline default encoders
    asif.add_anchors(["cat.png", "dog.png"], ["A cat.", "A dog."])
    asif.index("pets", images=[Path("my_cat.png")])
    hits = asif.search("pets", "a cat", limit=1)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm.auto import tqdm

from asif_qdrant.errors import (
    AnchorSetError,
    CollectionNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    check_int,
    check_real,
)
from asif_qdrant.fingerprint import Fingerprint
from asif_qdrant.locking import locked
from asif_qdrant.relative import l2_normalize, relative_weights
from asif_qdrant.store.base import (
    CollectionSpec,
    PointId,
    Record,
    Store,
    check_collection_name,
)
from asif_qdrant.types import (
    Hit,
    ImageInput,
    Method,
    Modality,
    SearchFields,
    SearchOptions,
    SparseVector,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Unpack

    from asif_qdrant.csa import CSA
    from asif_qdrant.editing import EditReport
    from asif_qdrant.encoders.base import Encoder
    from asif_qdrant.explain import AuditReport, Explanation, LabelExplanation
    from asif_qdrant.integrity import IndexJob, IntegrityReport

__all__ = [
    "ASIF",
    "DEFAULT_K",
    "DEFAULT_P",
    "DEFAULT_TEMPLATES",
    "DEFAULT_TEMPLATE_STRATEGY",
    "TEMPLATE_STRATEGIES",
    "TemplateStrategy",
]

logger = logging.getLogger(__name__)

DEFAULT_K = 800
DEFAULT_P = 8.0
#: The prompt template used by :meth:`ASIF.classify` unless others are given.
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)
#: How several prompt templates of one label combine in :meth:`ASIF.classify`: ``max`` (each
#: label scores its best template, as the ASIF reference), ``mean-relative`` (the mean of the
#: templates' relative vectors) or ``mean-embedding`` (the mean of the templates' text
#: embeddings, then one relative vector).
TemplateStrategy = Literal["max", "mean-relative", "mean-embedding"]
TEMPLATE_STRATEGIES: tuple[str, ...] = ("max", "mean-relative", "mean-embedding")
#: The default strategy: the best on average in the evaluation (docs/RESULTS.md).
DEFAULT_TEMPLATE_STRATEGY: TemplateStrategy = "mean-embedding"
SPARSE = "asif"
_CHUNK = 256
#: In the in-memory path, anchors this close to the k-th similarity are rescored exactly
#: (float32 BLAS rounding of one dot product is ~1e-7).
_TIE = 2e-6
#: Extra anchors the in-memory path asks for beyond k, to see the tie group in one call.
_TIE_EXTRA = 32


def _shared(a: SparseVector | None, b: SparseVector | None) -> int:
    """How many anchors carry a positive weight in both vectors."""
    if a is None or b is None:
        return 0
    return int(np.intersect1d(a.indices[a.values > 0], b.indices[b.values > 0]).size)


def _mean_sparse(vectors: Sequence[SparseVector]) -> SparseVector:
    """The mean of sparse vectors, re-normalised to unit length (ids in decreasing weight)."""
    weights: dict[int, float] = {}
    for v in vectors:
        for i, w in zip(v.indices.tolist(), v.values.tolist(), strict=True):
            weights[i] = weights.get(i, 0.0) + w / len(vectors)
    ids = sorted(weights, key=lambda i: (-weights[i], i))
    values = np.array([weights[i] for i in ids], dtype=np.float64)
    norm = float(np.linalg.norm(values))
    if norm > 0:
        values = values / norm
    return SparseVector(indices=np.array(ids, dtype=np.uint64), values=values)


def _check_anchor_search(value: Any) -> str:
    from asif_qdrant.anchor_index import METHODS

    allowed = ("auto", "qdrant", *(m for m in METHODS if not m.startswith("qdrant-")))
    if value not in allowed:
        raise InvalidParameterError(
            "The 'anchor_search' parameter of ASIF must be one of "
            f"{', '.join(map(repr, allowed))}. Got {value!r:.100} instead."
        )
    return str(value)


def _refresh_extra_vectors(asif: ASIF, collection: str) -> None:
    """Re-compute a catalog's CSA and caption vectors in full (part of a full re-index)."""
    from asif_qdrant.crossgap import (
        CAPTION_KTH,
        CAPTION_SPARSE,
        CSA_VECTOR,
        refresh_csa,
        update_captions,
    )

    spec = asif.store.collection_spec(collection)
    progress = _show(asif.show_progress_bar)
    if CSA_VECTOR in spec.dense and asif.fingerprint.csa_dim is not None:
        refresh_csa(asif, collection, progress=progress)
    if CAPTION_SPARSE in spec.sparse and CAPTION_KTH in spec.dense:
        update_captions(asif, collection, incremental=False)


def _show(show_progress_bar: bool | None) -> bool:
    if show_progress_bar is None:
        return logger.getEffectiveLevel() <= logging.INFO
    return bool(show_progress_bar)


class ASIF:
    """A CLIP-like retriever from two frozen unimodal encoders and anchor pairs (ASIF).

    Args:
        path: Folder of the embedded Qdrant engine (created if missing).
        client: A ``qdrant_client.QdrantClient`` (server, or local mode for small tests).
        store: Any :class:`~asif_qdrant.store.Store` (instead of ``path`` / ``client``).
        name: The model's name: prefix of its anchor and meta collections.
        image_encoder: An :class:`~asif_qdrant.encoders.Encoder` or a name that
            :func:`~asif_qdrant.encoders.load_image_encoder` resolves. Unset: the stored
            one when reopening, else the offline default (EfficientNet-Lite0).
        text_encoder: Likewise for texts (default all-MiniLM-L6-v2).
        k: Anchors kept per relative vector (>= 1). Unset: the stored value, else 800.
        p: Exponent of the relative weights (> 0). Unset: the stored value, else 8.0.
        device: Device of encoders loaded by name (``None``: CUDA when available).
        batch_size: Inputs per encoder forward pass.
        show_progress_bar: Progress bars on long work; ``None`` follows the logger level.
        anchor_search: How a new input finds its ``k`` nearest anchors.
            ``"auto"`` (default): an in-memory index built from the stored anchors on first
            use and kept in step with edits: exact numpy BLAS below 300,000 anchors on a CPU,
            the calibrated IVF two-stage search (recall@k >= 0.99, approximate) from there
            on, torch on a CUDA device (:func:`asif_qdrant.anchor_index.choose_method`).
            ``"qdrant"``: exact search in the anchor collections by the Qdrant engine (no
            copy in memory). Or one method of :data:`asif_qdrant.anchor_index.METHODS` without the
            ``qdrant-`` prefix, e.g. ``"exact"`` (always exact). Anchor edits keep catalogs
            equal to a full re-index with every exact path; docs/PERFORMANCE.md has the
            measured speed of each.
        csa_dim: Enable CSA (:mod:`asif_qdrant.csa`, docs/METHODS.md) with this many
            canonical dimensions (>= 1, at most the smaller encoder dim): catalogs store a
            dense ``csa`` vector per item and ``method="csa"`` / ``"hybrid"`` become
            available in :meth:`search` and :meth:`classify`. Stored in the fingerprint;
            unset: the stored value (None: no CSA). Enabling it on a model with catalogs
            adds the vectors to a catalog when it is next indexed into or re-indexed.
        csa_ridge: Relative ridge of the CSA fit (> 0; unset: the stored value, else 0.1).

    Raises:
        InvalidParameterError: On a bad argument (the message names it and what is allowed).
        FingerprintMismatchError: If the stored model was built with other encoders, k or p.

    Example:
        >>> import tempfile, numpy as np
        >>> from asif_qdrant import ASIF
        >>> rng = np.random.default_rng(0)
        >>> # A model built from precomputed embeddings never loads its encoders.
        >>> with ASIF(path=tempfile.mkdtemp(), k=3, image_encoder="precomputed/image",
        ...           text_encoder="precomputed/text") as asif:
        ...     ids = asif.add_anchor_embeddings(rng.random((5, 8)), rng.random((5, 4)))
        ...     vec = asif.relative_from_embeddings(rng.random((1, 8)), "image")[0]
        ...     (ids, len(vec.indices))
        ([0, 1, 2, 3, 4], 3)
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        client: Any = None,
        store: Store | None = None,
        name: str = "asif",
        image_encoder: str | Encoder | None = None,
        text_encoder: str | Encoder | None = None,
        k: int | None = None,
        p: float | None = None,
        device: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        anchor_search: str = "auto",
        csa_dim: int | None = None,
        csa_ridge: float | None = None,
    ) -> None:
        given = [x is not None for x in (path, client, store)]
        if sum(given) != 1:
            raise InvalidParameterError(
                "ASIF needs exactly one of 'path' (a folder for the embedded Qdrant engine), "
                "'client' (a qdrant_client.QdrantClient) or 'store'. Got "
                f"{sum(given)} of them."
            )
        self.name = check_collection_name(name)
        self.k_arg = None if k is None else check_int("k", "ASIF", k, minimum=1)
        self.p_arg = None if p is None else check_real("p", "ASIF", p, greater_than=0)
        self.batch_size = check_int("batch_size", "ASIF", batch_size, minimum=1)
        self.device = device
        self.show_progress_bar = show_progress_bar
        self.anchor_search = _check_anchor_search(anchor_search)
        # Per modality: (anchor version, in-memory anchor index); built on first use.
        self._anchor_indexes: dict[str, tuple[int, Any]] = {}
        self._anchor_index_lock = threading.Lock()
        #: What the last anchor edit of this object did (an ``EditReport``), else None.
        self.last_edit: EditReport | None = None
        self._kth_ready: dict[str, bool] = {}
        self._pending_next_id: dict[str, int | None] = {}
        # (anchor version, fitted CSA or None below 2 anchors); refitted after edits.
        self._csa_cache: tuple[int, Any] | None = None
        csa_dim = None if csa_dim is None else check_int("csa_dim", "ASIF", csa_dim, minimum=1)
        csa_ridge = (
            None
            if csa_ridge is None
            else check_real("csa_ridge", "ASIF", csa_ridge, greater_than=0)
        )
        from asif_qdrant.locking import ReadWriteLock

        #: Edits are exclusive, reads shared (:mod:`asif_qdrant.locking`).
        self._rw_lock = ReadWriteLock()
        if store is not None:
            if not isinstance(store, Store):
                raise InvalidParameterError(
                    "The 'store' parameter of ASIF must be an asif_qdrant.store.Store. "
                    f"Got {type(store).__name__} instead."
                )
            self.store = store
        elif client is not None:
            from asif_qdrant.store.client import ClientStore

            self.store = ClientStore(client)
        else:
            from asif_qdrant.store.edge import EdgeStore

            self.store = EdgeStore(path)  # type: ignore[arg-type]

        try:
            self._open(image_encoder, text_encoder)
            self._init_csa(csa_dim, csa_ridge)
        except BaseException:
            if store is None:  # we opened it: release it (an embedded folder is locked)
                self.store.close()
            raise

    def _open(
        self, image_encoder: str | Encoder | None, text_encoder: str | Encoder | None
    ) -> None:
        stored = self._read_fingerprint()
        self._image_encoder: Encoder | None = None
        self._text_encoder: Encoder | None = None
        image_name = self._resolve_encoder("image", image_encoder, stored)
        text_name = self._resolve_encoder("text", text_encoder, stored)
        if stored is None:
            self.fingerprint = Fingerprint(
                image_encoder=image_name,
                text_encoder=text_name,
                image_dim=self._image_encoder.dim if self._image_encoder else None,
                text_dim=self._text_encoder.dim if self._text_encoder else None,
                k=self.k_arg if self.k_arg is not None else DEFAULT_K,
                p=self.p_arg if self.p_arg is not None else DEFAULT_P,
            )
        else:
            stored.check_setting("k", self.k_arg, store=self.name)
            stored.check_setting("p", self.p_arg, store=self.name)
            self.fingerprint = stored
        from asif_qdrant.integrity import check_integrity

        #: What the open-time check found and repaired (:mod:`asif_qdrant.integrity`).
        self.integrity = check_integrity(self)

    # -- names -----------------------------------------------------------------------------
    @property
    def image_anchor_collection(self) -> str:
        """Name of the image-anchor collection."""
        return f"{self.name}_image_anchors"

    @property
    def text_anchor_collection(self) -> str:
        """Name of the text-anchor collection."""
        return f"{self.name}_text_anchors"

    @property
    def meta_collection(self) -> str:
        """Name of the collection holding the fingerprint."""
        return f"{self.name}_meta"

    @property
    def k(self) -> int:
        """Anchors kept per relative vector."""
        return self.fingerprint.k

    @property
    def p(self) -> float:
        """Exponent of the relative weights."""
        return self.fingerprint.p

    @property
    def anchor_count(self) -> int:
        """Number of anchor pairs."""
        return self.fingerprint.anchor_count

    def __repr__(self) -> str:
        fp = self.fingerprint
        return (
            f"ASIF(name={self.name!r}, anchors={fp.anchor_count}, k={fp.k}, p={fp.p}, "
            f"image_encoder={fp.image_encoder!r}, text_encoder={fp.text_encoder!r}, "
            f"store={self.store.describe()!r})"
        )

    # -- fingerprint and encoders -----------------------------------------------------------
    def _read_fingerprint(self) -> Fingerprint | None:
        if not self.store.has_collection(self.meta_collection):
            return None
        recs = self.store.retrieve(self.meta_collection, [0])
        if not recs:
            return None
        return Fingerprint.from_payload(recs[0].payload)

    def _write_fingerprint(self) -> None:
        if not self.store.has_collection(self.meta_collection):
            self.store.create_collection(self.meta_collection, CollectionSpec(dense={"_": 1}))
        self.store.upsert(
            self.meta_collection,
            [Record(0, self.fingerprint.as_payload(), dense={"_": np.ones(1, np.float32)})],
        )

    def _resolve_encoder(
        self, modality: Modality, spec: str | Encoder | None, stored: Fingerprint | None
    ) -> str:
        """The encoder's name for the fingerprint; loads it now only when it must be checked.

        A name equal to the stored one, or any name for a new model, is loaded lazily on
        first use (a model used only with precomputed embeddings never loads one).
        """
        from asif_qdrant.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER

        stored_name = None
        if stored is not None:
            stored_name = stored.image_encoder if modality == "image" else stored.text_encoder
        if spec is None:
            if stored_name is not None:
                return stored_name
            return DEFAULT_IMAGE_ENCODER if modality == "image" else DEFAULT_TEXT_ENCODER
        if isinstance(spec, str) and (stored is None or spec == stored_name):
            return spec
        encoder = self._load_encoder(modality, spec)
        if stored is not None:
            stored.check_encoder(modality, encoder.name, encoder.dim, store=self.name)
        if modality == "image":
            self._image_encoder = encoder
        else:
            self._text_encoder = encoder
        return encoder.name

    def _load_encoder(self, modality: Modality, spec: str | Encoder) -> Encoder:
        from asif_qdrant.encoders import load_image_encoder, load_text_encoder

        load = load_image_encoder if modality == "image" else load_text_encoder
        return load(spec, device=self.device)

    def _encoder(self, modality: Modality) -> Encoder:
        current = self._image_encoder if modality == "image" else self._text_encoder
        if current is not None:
            return current
        fp = self.fingerprint
        enc = self._load_encoder(
            modality, fp.image_encoder if modality == "image" else fp.text_encoder
        )
        if fp.anchor_count == 0 and fp.anchor_version == 0:
            # A new model: record the loaded encoder's canonical name and dim.
            setattr(fp, f"{modality}_encoder", enc.name)
            setattr(fp, f"{modality}_dim", enc.dim)
        fp.check_encoder(modality, enc.name, enc.dim, store=self.name)
        if modality == "image":
            self._image_encoder = enc
        else:
            self._text_encoder = enc
        return enc

    @property
    def image_encoder(self) -> Encoder:
        """The image encoder (loaded on first use)."""
        return self._encoder("image")

    @property
    def text_encoder(self) -> Encoder:
        """The text encoder (loaded on first use)."""
        return self._encoder("text")

    @locked("read")
    def encode(
        self, inputs: Sequence[Any], modality: Modality, *, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """Embed raw inputs with the encoder of their modality (L2-normalised rows)."""
        encoder = self.image_encoder if modality == "image" else self.text_encoder
        spb = self.show_progress_bar if show_progress_bar is None else show_progress_bar
        return encoder.embed(list(inputs), batch_size=self.batch_size, show_progress_bar=spb)

    # -- anchors ----------------------------------------------------------------------------
    @locked("write")
    def add_anchors(
        self,
        images: Sequence[ImageInput],
        captions: Sequence[str],
        *,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        source: str | None = None,
    ) -> list[int]:
        """Embed raw image-caption pairs and add them as anchors.

        Args:
            images: The anchor images (paths, bytes, PIL images, arrays).
            captions: One caption per image.
            payloads: Extra payload per pair (stored in both anchor collections).
            source: Stored as the ``source`` payload of every pair.

        Returns:
            The new anchor ids (the point ids in both anchor collections).
        """
        images, captions = list(images), list(captions)
        self._check_pairs(len(images), len(captions), payloads)
        for i, c in enumerate(captions):
            if not isinstance(c, str):
                raise InvalidInputError(
                    f"Caption {i} must be a str. Got {type(c).__name__} ({c!r:.60})."
                )
            if not c.strip():
                raise InvalidInputError(
                    f"Caption {i} is empty (or only whitespace): an anchor pair needs a caption."
                )
        img = self.encode(images, "image")
        txt = self.encode(captions, "text")
        base = [
            {
                "caption": c,
                **({"image": str(x)} if isinstance(x, (str, os.PathLike)) else {}),
                **({"source": source} if source is not None else {}),
            }
            for x, c in zip(images, captions, strict=True)
        ]
        if payloads is not None:
            base = [{**dict(extra), **b} for b, extra in zip(base, payloads, strict=True)]
        return self.add_anchor_embeddings(img, txt, payloads=base)

    @locked("write")
    def add_anchor_embeddings(
        self,
        image_embeddings: np.ndarray,
        text_embeddings: np.ndarray,
        *,
        payloads: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[int]:
        """Add anchor pairs from precomputed embeddings.

        Every catalog of the model is brought up to date in the same call: exactly the items
        for which a new anchor reaches their k-th similarity are re-computed from their
        stored embedding (see :mod:`asif_qdrant.editing`). What was done (items re-computed
        per catalog, seconds) is in :attr:`last_edit`.

        Args:
            image_embeddings: ``(n, d_image)`` embeddings of the anchor images.
            text_embeddings: ``(n, d_text)`` embeddings of their captions.
            payloads: Payload per pair (for example ``{"caption": ...}``).

        Returns:
            The new anchor ids. Ids are never reused, also after deletions.
        """
        t0 = time.perf_counter()
        img = self._check_embeddings("image_embeddings", image_embeddings, "image")
        txt = self._check_embeddings("text_embeddings", text_embeddings, "text")
        self._check_pairs(len(img), len(txt), payloads)
        fp = self.fingerprint
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
        for coll, vn, dim in (
            (self.image_anchor_collection, "image", fp.image_dim),
            (self.text_anchor_collection, "text", fp.text_dim),
        ):
            if not self.store.has_collection(coll):
                self.store.create_collection(coll, CollectionSpec(dense={vn: dim}))
        pl = [dict(x) for x in payloads] if payloads is not None else [{} for _ in range(n)]
        img, txt = l2_normalize(img), l2_normalize(txt)
        # Write-ahead marker: a kill before _finish_edit's first fingerprint write (which
        # clears it) is completed or rolled back on the next open (asif_qdrant.integrity).
        fp.pending_edit = {"operation": "add", "ids": [ids[0], ids[-1] + 1]}
        self._write_fingerprint()
        self.store.upsert(
            self.image_anchor_collection,
            [Record(i, pl[j], dense={"image": img[j]}) for j, i in enumerate(ids)],
        )
        self.store.upsert(
            self.text_anchor_collection,
            [Record(i, pl[j], dense={"text": txt[j]}) for j, i in enumerate(ids)],
        )
        fp.next_anchor_id = ids[-1] + 1
        fp.pending_edit = None
        self._finish_edit("add", n, t0, new_units={"image": img, "text": txt})
        return ids

    @locked("write")
    def delete_anchors(self, ids: Iterable[int], *, purge: bool = False) -> int:
        """Delete anchor pairs by id from both anchor collections, and from every catalog.

        The catalog items whose vectors gave a deleted anchor a positive weight (found with
        one sparse query per catalog) are re-computed from their stored embedding, so no
        stored vector keeps a deleted anchor as a dimension, and every catalog vector equals
        a full re-index. What was done is in :attr:`last_edit`.

        Args:
            ids: Anchor ids. Every id must exist: if any is unknown, nothing is deleted.
            purge: Also rewrite the anchor collections and the touched catalogs, so that the
                deleted pairs leave the engine's files on disk too (Qdrant keeps deleted
                points in its write-ahead log until it vacuums them). Costs a full rewrite.

        Returns:
            How many pairs were deleted.

        Raises:
            AnchorSetError: If an id is not an anchor of this model (nothing is deleted then).
        """
        t0 = time.perf_counter()
        ids = list(
            dict.fromkeys(check_int("ids", "ASIF.delete_anchors", i, minimum=0) for i in ids)
        )
        if not ids:
            return 0
        present = []
        if self.store.has_collection(self.image_anchor_collection):
            present = [int(r.id) for r in self.store.retrieve(self.image_anchor_collection, ids)]
        unknown = sorted(set(ids) - set(present))
        if unknown:
            raise AnchorSetError(
                f"Cannot delete anchors {unknown[:20]}{' ...' if len(unknown) > 20 else ''}: "
                f"they are not anchors of the model '{self.name}' (deleted already, or never "
                "added). Nothing was deleted; list the anchors with list_anchors()."
            )
        # Write-ahead marker (cleared by _finish_edit's first fingerprint write): a kill
        # before then is completed on the next open (asif_qdrant.integrity).
        self.fingerprint.pending_edit = {"operation": "delete", "ids": present}
        self._write_fingerprint()
        self.store.delete(self.image_anchor_collection, present)
        self.store.delete(self.text_anchor_collection, present)
        self.fingerprint.pending_edit = None
        report = self._finish_edit("delete", len(present), t0, deleted=present)
        if purge:
            from asif_qdrant.editing import compact_collection

            touched = [c.collection for c in report.catalogs if c.items_touched]
            for coll in [self.image_anchor_collection, self.text_anchor_collection, *touched]:
                compact_collection(self.store, coll)
        return len(present)

    @locked("write")
    def reindex(self, collection: str | None = None) -> EditReport:
        """Re-compute catalog vectors from the items' stored embeddings (no encoding).

        Edits keep catalogs exact on their own; this is the full re-index they are checked
        against, and the way to repair a catalog after an interrupted edit.

        Args:
            collection: One catalog; ``None``: every catalog of the model.

        Returns:
            What was done (also in :attr:`last_edit`).
        """
        from asif_qdrant.editing import CatalogEdit, EditReport, has_kth, recompute_all

        t0 = time.perf_counter()
        names = sorted(self.fingerprint.catalogs) if collection is None else [collection]
        edits = []
        for name in names:
            if collection is None and not self.store.has_collection(name):
                continue  # a catalog deleted outside the model
            if not self.store.has_collection(name):
                raise CollectionNotFoundError(
                    f"The catalog collection '{name}' does not exist. Catalogs of this model: "
                    f"{sorted(self.fingerprint.catalogs)}."
                )
            self._ensure_catalog(name)  # refuses collections that are not catalogs
            t = time.perf_counter()
            done = recompute_all(
                self,
                name,
                with_kth=has_kth(self.store, name),
                progress=_show(self.show_progress_bar),
            )
            _refresh_extra_vectors(self, name)
            self.fingerprint.catalogs.setdefault(name, {"next_id": 0})["anchor_version"] = (
                self.fingerprint.anchor_version
            )
            edits.append(
                CatalogEdit(
                    name, len(done), len(done), time.perf_counter() - t, "full", tuple(done)
                )
            )
        self._write_fingerprint()
        self.last_edit = EditReport(
            "reindex",
            0,
            self.anchor_count,
            self.fingerprint.anchor_version,
            time.perf_counter() - t0,
            tuple(edits),
        )
        return self.last_edit

    def _finish_edit(
        self,
        operation: Literal["add", "delete"],
        pairs: int,
        t0: float,
        *,
        new_units: dict[str, np.ndarray] | None = None,
        deleted: Sequence[int] | None = None,
    ) -> EditReport:
        """Bump the version, update every catalog, record and return the report."""
        from asif_qdrant.editing import EditReport, update_catalogs

        fp = self.fingerprint
        previous = fp.anchor_version
        self._sync_anchor_indexes(previous, new_units=new_units, deleted=deleted)
        fp.anchor_count = self.store.count(self.image_anchor_collection)
        fp.anchor_version += 1
        # Written first: if the catalog update is interrupted, the catalogs stay marked with
        # the old version (searches warn) and the next edit re-computes them in full.
        self._write_fingerprint()
        self._drop_label_caches()
        from asif_qdrant.crossgap import after_edit

        # CSA refit and caption vectors first, while catalogs still record their version.
        after_edit(
            self,
            previous_version=previous,
            new_units=new_units,
            deleted=deleted,
            progress=_show(self.show_progress_bar),
        )
        edits = update_catalogs(
            self,
            previous_version=previous,
            new_units=new_units,
            deleted=deleted,
            progress=_show(self.show_progress_bar),
        )
        report = EditReport(
            operation,
            pairs,
            fp.anchor_count,
            fp.anchor_version,
            time.perf_counter() - t0,
            edits,
        )
        fp.last_edit = {k: v for k, v in report.as_dict().items() if k != "catalogs"}
        self._write_fingerprint()
        self.last_edit = report
        return report

    @locked("read")
    def list_anchors(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The anchor pairs' ids and payloads, in id order."""
        if not self.store.has_collection(self.text_anchor_collection):
            return []
        out = []
        for rec in self.store.scroll(self.text_anchor_collection):
            out.append({"id": rec.id, **rec.payload})
            if limit is not None and len(out) >= limit:
                break
        return out

    @locked("read")
    def anchor_embeddings(self, modality: Modality) -> tuple[list[int], np.ndarray]:
        """Read back the stored anchor embeddings of one modality: ``(ids, (n, d) array)``."""
        coll, vn = self._anchor_collection(modality)
        recs = list(self.store.scroll(coll, with_vectors=[vn]))
        if not recs:
            return [], np.zeros((0, self._dim(modality) or 0), np.float32)
        return [int(r.id) for r in recs], np.stack([r.dense[vn] for r in recs])

    # -- relative vectors --------------------------------------------------------------------
    @locked("read")
    def embed_images(
        self, images: Sequence[ImageInput], *, show_progress_bar: bool | None = None
    ) -> list[SparseVector]:
        """Sparse relative vectors of images (over anchor ids)."""
        emb = self.encode(list(images), "image", show_progress_bar=show_progress_bar)
        return self.relative_from_embeddings(emb, "image")

    @locked("read")
    def embed_texts(
        self, texts: Sequence[str], *, show_progress_bar: bool | None = None
    ) -> list[SparseVector]:
        """Sparse relative vectors of texts (over anchor ids)."""
        if isinstance(texts, str):
            raise InvalidInputError(
                "embed_texts takes a list of texts. Got one str: wrap it in a list."
            )
        texts = list(texts)
        for i, t in enumerate(texts):
            if isinstance(t, str) and not t.strip():
                raise InvalidInputError(
                    f"Text {i} is empty (or only whitespace): an empty query matches nothing."
                )
        emb = self.encode(list(texts), "text", show_progress_bar=show_progress_bar)
        return self.relative_from_embeddings(emb, "text")

    @locked("read")
    def relative_from_embeddings(
        self, embeddings: np.ndarray, modality: Modality
    ) -> list[SparseVector]:
        """Relative vectors of precomputed embeddings, by exact search in the anchors.

        Each embedding queries the anchor collection of its own modality for its ``k``
        nearest anchors (cosine); the similarities become weights with
        :func:`~asif_qdrant.relative.relative_weights`. Anchors of weight 0 (negative
        similarity) are left out of the sparse vector. Anchors tied at the k-th place are
        kept in id order (the lower id wins), so the result does not depend on the order in
        which the engine returns ties (the same rule as :func:`~asif_qdrant.relative_topk`).
        """
        emb = self._check_embeddings("embeddings", embeddings, modality)
        if self.anchor_count == 0:
            raise AnchorSetError(
                f"The ASIF model '{self.name}' has no anchors: add anchor pairs with "
                "add_anchors() or add_anchor_embeddings() first."
            )
        return self._relative(l2_normalize(emb), modality)[0]

    def _relative(
        self, unit: np.ndarray, modality: Modality
    ) -> tuple[list[SparseVector], np.ndarray]:
        """Sparse vectors of unit embeddings, and each one's boundary (k-th similarity, >= 0).

        The boundary is the similarity of the k-th kept anchor clamped at 0, or 0 when fewer
        than k anchors exist: an anchor below it cannot change the vector
        (:mod:`asif_qdrant.editing`).
        """
        coll, vn = self._anchor_collection(modality)
        k = self.k
        out: list[SparseVector] = []
        boundary = np.zeros(len(unit), np.float32)
        if len(unit) == 0:
            return out, boundary
        index = self._anchor_index(modality)
        if index is not None:
            return self._relative_in_memory(index, unit, modality)
        results = self.store.query_dense(coll, vn, unit, limit=k + 1)
        for row, hits in enumerate(results):
            if len(hits) > k and hits[k][1] >= hits[k - 1][1]:
                hits = self._widen_tie(coll, vn, unit[row], hits)
            hits = sorted(hits, key=lambda h: (-h[1], h[0]))[:k]
            ids = np.array([h[0] for h in hits], dtype=np.uint64)
            sims = np.array([h[1] for h in hits], dtype=np.float32)
            w = relative_weights(sims, self.p) if len(sims) else sims
            keep = w > 0
            out.append(SparseVector(indices=ids[keep], values=w[keep]))
            if len(hits) == k:
                boundary[row] = max(float(sims[-1]), 0.0)
        return out, boundary

    def _relative_in_memory(
        self, index: Any, unit: np.ndarray, modality: Modality
    ) -> tuple[list[SparseVector], np.ndarray]:
        """:meth:`_relative` through an in-memory anchor index (the same tie rule).

        BLAS rounds a dot product differently with a row's place in the matrix, so equal
        anchors can get similarities a few float32 steps apart. Anchors within ``_TIE`` of
        the k-th similarity across the cut are therefore rescored one by one in float64
        from their stored vectors; equal anchors then tie exactly and the lower id wins, as
        in the engine path.
        """
        k, n = self.k, len(index)
        out: list[SparseVector] = []
        boundary = np.zeros(len(unit), np.float32)
        if n == 0:
            empty = SparseVector(np.zeros(0, np.uint64), np.zeros(0, np.float32))
            return [empty for _ in range(len(unit))], boundary
        ids, sims = index.topk(unit, min(k + _TIE_EXTRA, n))
        for row in range(len(unit)):
            rid, rs = ids[row], sims[row].astype(np.float64)
            limit = len(rs)
            # Anchors (nearly) tied with the k-th one: ask for more until the group ends.
            while limit < n and len(rs) > k and rs[-1] >= rs[k - 1] - _TIE:
                limit = min(2 * limit, n)
                found, found_sims = index.topk(unit[row : row + 1], limit)
                rid, rs = found[0], found_sims[0].astype(np.float64)
            if len(rs) > k:
                band = np.flatnonzero(np.abs(rs - rs[k - 1]) <= _TIE)
                if len(band) > 1 and band.min() < k <= band.max():
                    rs[band] = self._exact_sims(modality, rid[band], unit[row])
            order = np.lexsort((rid, -rs))[:k]
            kept_ids, kept = rid[order].astype(np.uint64), rs[order].astype(np.float32)
            w = relative_weights(kept, self.p)
            keep = w > 0
            out.append(SparseVector(indices=kept_ids[keep], values=w[keep]))
            if len(kept) == k:
                boundary[row] = max(float(kept[-1]), 0.0)
        return out, boundary

    def _exact_sims(self, modality: Modality, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        """float64 cosines of one unit query with some stored anchors (each row on its own)."""
        coll, vn = self._anchor_collection(modality)
        recs = self.store.retrieve(coll, [int(i) for i in ids], with_vectors=[vn])
        vec = {int(r.id): np.asarray(r.dense[vn], np.float64) for r in recs}
        q = np.asarray(query, np.float64)
        return np.array([float(np.dot(vec[int(i)], q)) for i in ids])

    def _anchor_index(self, modality: Modality) -> Any:
        """The in-memory anchor index of ``modality`` at the current anchor version.

        ``None`` with ``anchor_search="qdrant"`` (the engine searches its collections).
        """
        if self.anchor_search == "qdrant":
            return None
        version = self.fingerprint.anchor_version
        with self._anchor_index_lock:
            cached = self._anchor_indexes.get(modality)
            if cached is not None and cached[0] == version:
                return cached[1]
            from asif_qdrant.anchor_index import choose_method, make_index

            ids, emb = self.anchor_embeddings(modality)
            method = self.anchor_search
            if method == "auto":
                method = choose_method(len(ids), device=self.device)
            options = {"device": self.device} if method == "torch" else {}
            index = make_index(method, **options)
            if len(ids):
                index.build(np.asarray(ids, dtype=np.int64), emb)
            if cached is not None:
                cached[1].close()
            self._anchor_indexes[modality] = (version, index)
            logger.debug("Built the %s anchor index of %s: %r", modality, self.name, index)
            return index

    def _sync_anchor_indexes(
        self,
        version: int,
        *,
        new_units: dict[str, np.ndarray] | None,
        deleted: Sequence[int] | None,
    ) -> None:
        """Apply an anchor edit to the in-memory indexes that are at ``version``.

        An index at another version (or an edit it cannot follow) is dropped and rebuilt
        from the stored anchors on next use.
        """
        with self._anchor_index_lock:
            for modality, (at, index) in list(self._anchor_indexes.items()):
                if at != version:
                    index.close()
                    del self._anchor_indexes[modality]
                    continue
                if new_units is not None:
                    rows = new_units[modality]
                    end = self.fingerprint.next_anchor_id
                    index.add(np.arange(end - len(rows), end, dtype=np.int64), rows)
                if deleted is not None:
                    index.delete(np.asarray(list(deleted), dtype=np.int64))
                self._anchor_indexes[modality] = (version + 1, index)

    def _widen_tie(
        self, coll: str, vn: str, row: np.ndarray, hits: list[tuple[PointId, float]]
    ) -> list[tuple[PointId, float]]:
        """Every anchor tied with the k-th one: ask for more until the tie group ends."""
        k = self.k
        limit = len(hits)
        while len(hits) == limit and hits[-1][1] >= hits[k - 1][1]:
            limit *= 2
            (hits,) = self.store.query_dense(coll, vn, row[None, :], limit=limit)
        return hits

    # -- catalog ---------------------------------------------------------------------------
    @locked("write")
    def index(
        self,
        collection: str,
        *,
        images: Sequence[ImageInput] | None = None,
        texts: Sequence[str] | None = None,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[PointId] | None = None,
        show_progress_bar: bool | None = None,
        captions: Sequence[str | None] | None = None,
    ) -> list[PointId]:
        """Store catalog items (images and/or texts) with their ASIF sparse vectors.

        Items are the images first, then the texts; ``payloads`` and ``ids``, when given,
        follow that order. Each item's payload also records its ``modality`` and, for images
        given as paths, ``image``; for texts, ``text``. Each item also keeps its own
        embedding (dense vector ``image`` or ``text``), so that it can be re-indexed after
        anchor edits without encoding it again.

        Args:
            collection: The catalog collection (created on first use).
            images: Catalog images.
            texts: Catalog texts.
            payloads: One payload per item.
            ids: One point id per item (int or UUID string); default: consecutive ints.
            show_progress_bar: Override the model's setting.
            captions: One caption (or None) per image: stored as the image item's caption
                vectors (payload ``caption``), searched with ``search(..., target="caption")``
                (:mod:`asif_qdrant.crossgap`).

        Returns:
            The items' point ids.
        """
        if isinstance(texts, str):
            raise InvalidInputError("'texts' must be a list of str. Got one str: wrap it.")
        images, texts = list(images or []), list(texts or [])
        if captions is not None:
            if isinstance(captions, str) or len(captions) != len(images):
                raise InvalidInputError(
                    f"'captions' must be a list with one caption (or None) per image "
                    f"({len(images)}). Got {captions!r:.100}."
                )
            for i, c in enumerate(captions):
                if c is not None and (not isinstance(c, str) or not c.strip()):
                    raise InvalidInputError(
                        f"Caption {i} must be a non-empty str or None. Got {c!r:.60}."
                    )
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInputError(
                    f"Text {i} must be a str. Got {type(t).__name__} ({t!r:.60})."
                )
            if not t.strip():
                raise InvalidInputError(
                    f"Text {i} is empty (or only whitespace): there is nothing to index."
                )
        items: list[tuple[Modality, Any]] = [("image", x) for x in images]
        items += [("text", t) for t in texts]
        base: list[dict[str, Any]] = []
        for modality, x in items:
            payload: dict[str, Any] = {"modality": modality}
            if modality == "text":
                payload["text"] = x
            elif isinstance(x, (str, os.PathLike)):
                payload["image"] = str(x)
            base.append(payload)
        ids = self._prepare_catalog(collection, len(items), payloads, ids)
        if captions is not None:
            self._ensure_catalog(collection, captions=True)
            for j, c in enumerate(captions):
                if c is not None:
                    base[j]["caption"] = c
        if payloads is not None:
            base = [{**b, **dict(extra)} for b, extra in zip(base, payloads, strict=True)]
        spb = _show(self.show_progress_bar if show_progress_bar is None else show_progress_bar)
        with tqdm(
            total=len(items), desc=f"Indexing {collection}", unit="item", disable=not spb
        ) as bar:
            for start in range(0, len(items), _CHUNK):
                chunk = range(start, min(start + _CHUNK, len(items)))
                for modality in ("image", "text"):
                    pos = [j for j in chunk if items[j][0] == modality]
                    if pos:
                        emb = self.encode(
                            [items[j][1] for j in pos], modality, show_progress_bar=False
                        )
                        self._write_items(
                            collection,
                            modality,
                            emb,
                            [base[j] for j in pos],
                            [ids[j] for j in pos],
                            captions=self._encode_captions(captions, pos, modality),
                        )
                bar.update(len(chunk))
        self._finish_catalog(collection)
        return ids

    @locked("write")
    def index_embeddings(
        self,
        collection: str,
        embeddings: np.ndarray,
        modality: Modality,
        *,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[PointId] | None = None,
        show_progress_bar: bool | None = None,
        caption_embeddings: np.ndarray | None = None,
    ) -> list[PointId]:
        """Store catalog items from precomputed embeddings of one modality.

        Args:
            collection: The catalog collection (created on first use).
            embeddings: ``(n, dim)`` embeddings from this model's encoder of ``modality``.
            modality: "image" or "text".
            payloads: One payload per item.
            ids: One point id per item; default: consecutive ints.
            show_progress_bar: Override the model's setting.
            caption_embeddings: For image items: ``(n, d_text)`` embeddings of their
                captions (a row of NaN: no caption), stored as the caption vectors searched
                with ``search(..., target="caption")`` (:mod:`asif_qdrant.crossgap`).

        Returns:
            The items' point ids.
        """
        self._anchor_collection(modality)  # validates the modality
        emb = self._check_embeddings("embeddings", embeddings, modality)
        cap = self._check_caption_embeddings(caption_embeddings, len(emb), modality)
        ids = self._prepare_catalog(collection, len(emb), payloads, ids)
        if cap is not None and len(emb):
            self._ensure_catalog(collection, captions=True)
        base = [{"modality": modality, **dict(p)} for p in (payloads or [{}] * len(emb))]
        spb = _show(self.show_progress_bar if show_progress_bar is None else show_progress_bar)
        with tqdm(
            total=len(emb), desc=f"Indexing {collection}", unit="item", disable=not spb
        ) as bar:
            for start in range(0, len(emb), _CHUNK):
                end = start + _CHUNK
                self._write_items(
                    collection,
                    modality,
                    emb[start:end],
                    base[start:end],
                    ids[start:end],
                    captions=None if cap is None else cap[start:end],
                )
                bar.update(len(emb[start:end]))
        self._finish_catalog(collection)
        return ids

    @locked("write")
    def resumable_index(
        self,
        collection: str,
        *,
        images: Sequence[str] = (),
        texts: Sequence[str] = (),
        embeddings: np.ndarray | None = None,
        modality: Modality | None = None,
        resume: bool = False,
        chunk_size: int = 1000,
        on_commit: Callable[[int, int, int], None] | None = None,
        show_progress_bar: bool | None = None,
    ) -> IndexJob:
        """Index an input in chunks that each commit for good, so a killed run can resume.

        Ids are deterministic (item ``row`` gets ``start + row``); ``resume=True`` with the
        same input skips the items already stored. See
        :func:`asif_qdrant.integrity.resumable_index` for the guarantees.

        Args:
            collection: The catalog collection.
            images: Image paths.
            texts: Texts.
            embeddings: ``(n, dim)`` precomputed embeddings (instead of images / texts).
            modality: The modality of ``embeddings``.
            resume: Finish an interrupted job on the same input.
            chunk_size: Items per committed chunk (>= 1).
            on_commit: Called after each committed chunk with ``(first_row, end_row, total)``.
            show_progress_bar: A progress bar over the items (None: the model's setting).

        Returns:
            What was done (an :class:`~asif_qdrant.integrity.IndexJob`).
        """
        from asif_qdrant.integrity import resumable_index

        return resumable_index(
            self,
            collection,
            images=images,
            texts=texts,
            embeddings=embeddings,
            modality=modality,
            resume=resume,
            chunk_size=chunk_size,
            on_commit=on_commit,
            show_progress_bar=show_progress_bar,
        )

    def _prepare_catalog(
        self,
        collection: str,
        n: int,
        payloads: Sequence[Mapping[str, Any]] | None,
        ids: Sequence[PointId] | None,
    ) -> list[PointId]:
        """Validate a catalog write, create the collection, and hand out ids."""
        collection = check_collection_name(collection)
        if (
            collection == self.meta_collection
            or collection
            in (
                self.image_anchor_collection,
                self.text_anchor_collection,
            )
            or collection.startswith(f"{self.name}_labels_")
        ):
            raise InvalidParameterError(
                f"The collection '{collection}' belongs to the ASIF model itself. "
                "Index the catalog under another name."
            )
        if payloads is not None and len(payloads) != n:
            raise InvalidInputError(
                f"'payloads' must have one entry per item ({n}). Got {len(payloads)}."
            )
        if ids is not None:
            ids = list(ids)
            if len(ids) != n:
                raise InvalidInputError(
                    f"'ids' must have one entry per item ({n}). Got {len(ids)}."
                )
            if len(set(ids)) != n:
                raise InvalidInputError("'ids' must be distinct. Got duplicates.")
        if n and self.anchor_count == 0:
            raise AnchorSetError(
                f"The ASIF model '{self.name}' has no anchors: add anchor pairs before indexing."
            )
        if n == 0:
            return []
        self._ensure_catalog(collection)
        # The fingerprint records the catalog (and the ids handed out) only once the items
        # are written (_finish_catalog): a failed call leaves it as it was.
        self._pending_next_id[collection] = None
        if ids is None:
            start = int(self.fingerprint.catalogs.get(collection, {}).get("next_id", 0))
            ids = list(range(start, start + n))
            self._pending_next_id[collection] = start + n
        return list(ids)

    def _write_items(
        self,
        collection: str,
        modality: Modality,
        embeddings: np.ndarray,
        payloads: Sequence[dict[str, Any]],
        ids: Sequence[PointId],
        captions: np.ndarray | None = None,
    ) -> None:
        """Write items (``captions``: caption embeddings of image items, NaN rows: none).

        Caption embeddings ``(n, d_text)`` are stored as the caption vectors of
        :mod:`asif_qdrant.crossgap`.
        """
        from asif_qdrant.crossgap import CSA_VECTOR, caption_records, has_vector
        from asif_qdrant.editing import kth_name, kth_vectors

        unit = l2_normalize(self._check_embeddings("embeddings", embeddings, modality))
        if self.anchor_count == 0:
            raise AnchorSetError(
                f"The ASIF model '{self.name}' has no anchors: add anchor pairs before indexing."
            )
        vecs, boundary = self._relative(unit, modality)
        kth = kth_vectors(unit, boundary) if self._has_kth(collection) else None
        csa = (
            self._csa_vectors(unit, modality)
            if self.fingerprint.csa_dim is not None and has_vector(self, collection, CSA_VECTOR)
            else None
        )
        extra: dict[PointId, Record] = {}
        if captions is not None:
            has = ~np.isnan(captions).any(axis=1)
            cap_ids = [pid for pid, h in zip(ids, has, strict=True) if h]
            units = l2_normalize(
                self._check_embeddings("caption embeddings", captions[has], "text")
            )
            extra = {r.id: r for r in caption_records(self, cap_ids, units)}
        self.store.upsert(
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

    def _has_kth(self, collection: str) -> bool:
        """Whether a catalog stores the boundary vectors that incremental edits use."""
        ready = self._kth_ready.get(collection)
        if ready is None:
            from asif_qdrant.editing import has_kth

            ready = self._kth_ready[collection] = has_kth(self.store, collection)
        return ready

    def _finish_catalog(self, collection: str) -> None:
        written = collection in self._pending_next_id
        pending = self._pending_next_id.pop(collection, None)
        if written or collection in self.fingerprint.catalogs:
            info = self.fingerprint.catalogs.setdefault(collection, {"next_id": 0})
            if pending is not None:
                info["next_id"] = max(int(info.get("next_id", 0)), pending)
            # A catalog left at an older version (an interrupted edit) stays marked so: its
            # older items are still stale, and the next edit re-computes it in full.
            if info.get("anchor_version") in (None, self.fingerprint.anchor_version):
                info["anchor_version"] = self.fingerprint.anchor_version
            self._write_fingerprint()

    def _ensure_catalog(self, collection: str, *, captions: bool = False) -> None:
        from asif_qdrant.crossgap import CAPTION_SPARSE, CSA_VECTOR, extra_spec, migrate_catalog
        from asif_qdrant.editing import kth_name

        fp = self.fingerprint
        if self.store.has_collection(collection):
            spec = self.store.collection_spec(collection)
            if SPARSE not in spec.sparse:
                raise InvalidParameterError(
                    f"The collection '{collection}' exists but is not an ASIF catalog (it has "
                    f"no sparse vector '{SPARSE}'). Choose another collection name."
                )
            if (fp.csa_dim is not None and CSA_VECTOR not in spec.dense) or (
                captions and CAPTION_SPARSE not in spec.sparse
            ):
                # A catalog indexed before CSA / captions: rewritten with the new vectors.
                migrate_catalog(self, collection)
            return
        assert fp.image_dim is not None and fp.text_dim is not None  # anchors exist
        extra_dense, extra_sparse = extra_spec(self)
        self.store.create_collection(
            collection,
            CollectionSpec(
                dense={
                    "image": fp.image_dim,
                    "text": fp.text_dim,
                    kth_name("image"): fp.image_dim + 1,
                    kth_name("text"): fp.text_dim + 1,
                    **extra_dense,
                },
                sparse=(SPARSE, *extra_sparse),
            ),
        )
        self._kth_ready[collection] = True

    @locked("read")
    def search(
        self,
        collection: str,
        query: str | ImageInput | SparseVector,
        options: SearchOptions | None = None,
        **fields: Unpack[SearchFields],
    ) -> list[Hit]:
        """Search a catalog with a text, an image or a sparse vector.

        A ``str`` is always a text query; pass an image path as ``pathlib.Path`` (or the
        image itself: bytes, a PIL image, an array).

        Args:
            collection: The catalog collection.
            query: The query.
            options: A :class:`~asif_qdrant.types.SearchOptions` (default: its defaults).
            **fields: Fields of :class:`~asif_qdrant.types.SearchOptions` that override
                ``options``: ``limit`` (default 10), ``item_modality`` (only items of this
                modality), ``filter`` (exact-match payload filter), ``min_score``,
                ``min_shared_anchors`` (an empty result is the "no match" outcome),
                ``method`` ("asif", "csa" or "hybrid"; see docs/METHODS.md), ``query_via``
                ("native" or "invert"), ``target`` ("item" or "caption"), ``fusion``
                ("rrf" or "dbsf") and ``prefetch_limit``.

        Returns:
            Hits best first. A hit's score is the ASIF dot product (0 when nothing is
            shared, and such items are not returned; :meth:`explain` breaks it down), the
            weighted CSA similarity, or the fusion score for "hybrid".

        Example:
            >>> import tempfile, numpy as np
            >>> rng = np.random.default_rng(0)
            >>> with ASIF(path=tempfile.mkdtemp(), k=4, csa_dim=3,
            ...           image_encoder="precomputed/image", text_encoder="precomputed/text",
            ...           show_progress_bar=False) as asif:
            ...     _ = asif.add_anchor_embeddings(rng.random((12, 8)), rng.random((12, 4)))
            ...     _ = asif.index_embeddings("items", rng.random((5, 8)), "image",
            ...                               caption_embeddings=rng.random((5, 4)))
            ...     q = rng.random((1, 8))  # one precomputed image embedding
            ...     (csa,) = asif.search_embeddings("items", q, "image", method="csa", limit=2)
            ...     (hyb,) = asif.search_embeddings("items", q, "image", method="hybrid")
            ...     (cap,) = asif.search_embeddings("items", q, "image", target="caption")
            ...     (inv,) = asif.search_embeddings("items", q, "image", query_via="invert")
            ...     len(csa), len(hyb), len(cap) > 0, len(inv) > 0
            (2, 5, True, True)
        """
        return self.search_batch(collection, [query], options, **fields)[0]

    @locked("read")
    def search_batch(
        self,
        collection: str,
        queries: Sequence[str | ImageInput | SparseVector],
        options: SearchOptions | None = None,
        **fields: Unpack[SearchFields],
    ) -> list[list[Hit]]:
        """Like :meth:`search` for many queries (texts and images are encoded in batches)."""
        opts = self._search_options(collection, options, fields)
        queries = list(queries)
        if opts.method == "asif" and opts.query_via == "native":
            return self._search_core(collection, self._query_vectors(queries), None, opts)
        if any(isinstance(q, SparseVector) for q in queries):
            raise InvalidInputError(
                "A SparseVector query works with method='asif' and query_via='native' only: "
                "the other options need the query itself (a text or an image), or use "
                "search_embeddings() with its embedding."
            )
        mods: list[Modality] = ["text" if isinstance(q, str) else "image" for q in queries]
        units: list[np.ndarray | None] = [None] * len(queries)
        for m in ("image", "text"):
            rows = [i for i, x in enumerate(mods) if x == m]
            if rows:
                emb = self._encode_queries([queries[i] for i in rows], m)  # type: ignore[arg-type]
                for i, u in zip(rows, emb, strict=True):
                    units[i] = u
        return self._search_units(collection, units, mods, opts)  # type: ignore[arg-type]

    @staticmethod
    def _check_floors(
        owner: str, min_score: float | None, min_shared_anchors: int | None
    ) -> tuple[float | None, int | None]:
        floor = None if min_score is None else check_real("min_score", owner, min_score)
        shared = (
            None
            if min_shared_anchors is None
            else check_int("min_shared_anchors", owner, min_shared_anchors, minimum=0)
        )
        return floor, shared

    def _query_vectors(self, queries: list[Any]) -> list[SparseVector]:
        out: list[SparseVector | None] = [None] * len(queries)
        texts = [(i, q) for i, q in enumerate(queries) if isinstance(q, str)]
        images = [(i, q) for i, q in enumerate(queries) if not isinstance(q, (str, SparseVector))]
        for i, q in enumerate(queries):
            if isinstance(q, SparseVector):
                out[i] = q
        if texts:
            for (i, _), v in zip(texts, self.embed_texts([q for _, q in texts]), strict=True):
                out[i] = v
        if images:
            for (i, _), v in zip(images, self.embed_images([q for _, q in images]), strict=True):
                out[i] = v
        return [v for v in out if v is not None]

    def _warn_if_stale(self, collection: str) -> None:
        info = self.fingerprint.catalogs.get(collection)
        if info and info.get("anchor_version") not in (None, self.fingerprint.anchor_version):
            logger.warning(
                "Catalog '%s' was indexed with anchor set version %s; the anchors are now at "
                "version %s. Index its items again for exact scores.",
                collection,
                info.get("anchor_version"),
                self.fingerprint.anchor_version,
            )

    # -- zero-shot classification -----------------------------------------------------------
    @locked("cache")
    def classify(
        self,
        images: Sequence[ImageInput] | Sequence[SparseVector],
        labels: Sequence[str],
        *,
        templates: Sequence[str] | None = None,
        template_strategy: TemplateStrategy = DEFAULT_TEMPLATE_STRATEGY,
        min_score: float | None = None,
        min_shared_anchors: int | None = None,
        unknown_label: str = "unknown",
        method: Method = "asif",
    ) -> list[str]:
        """Zero-shot classification: the label whose prompts best match each image.

        Each label's prompts become relative vectors, stored once in a cached label
        collection; each image's sparse vector queries it. With one template every strategy
        gives the same answer; with several, ``template_strategy`` says how they combine:
        ``"mean-embedding"`` (the default: the mean of the prompts' text embeddings, then one
        relative vector per label; the best on average in docs/RESULTS.md),
        ``"mean-relative"`` (the mean of the prompts' relative vectors, re-normalised) or
        ``"max"`` (each label scores its single best prompt, as the ASIF reference does).

        Args:
            images: Images (or their sparse vectors from :meth:`embed_images`).
            labels: Class names, e.g. ``["cat", "dog"]``.
            templates: Prompt templates with ``{}`` for the label; default
                ``("a photo of a {}.",)``.
            template_strategy: How several templates combine (see above).
            min_score: An image whose best score is below this gets ``unknown_label``.
            min_shared_anchors: An image sharing fewer anchors with its best prompt gets
                ``unknown_label`` (``1``: only images sharing nothing with every prompt).
            unknown_label: The "does not know" outcome.
            method: ``"asif"``; ``"csa"``: the weighted CSA similarity of the image and
                each label's prompts projected with the text side (a model built with
                ``csa_dim``; the templates combine as above, in the CSA space); ``"hybrid"``:
                per image, the reciprocal rank fusion (k=2) of the labels' ASIF and CSA
                rankings. ``"csa"`` / ``"hybrid"`` need images (not sparse vectors) and
                take no ``min_shared_anchors``. See docs/METHODS.md.

        Returns:
            The predicted label per image (:meth:`classify_scores` gives the scores;
            :meth:`explain_label` says why a label won).
        """
        return self._classify(
            images,
            labels,
            templates=templates,
            template_strategy=template_strategy,
            min_score=min_score,
            min_shared_anchors=min_shared_anchors,
            unknown_label=unknown_label,
            method=method,
        )[0]

    @locked("cache")
    def classify_scores(
        self,
        images: Sequence[ImageInput] | Sequence[SparseVector],
        labels: Sequence[str],
        *,
        templates: Sequence[str] | None = None,
        template_strategy: TemplateStrategy = DEFAULT_TEMPLATE_STRATEGY,
        method: Method = "asif",
    ) -> np.ndarray:
        """The zero-shot score of every label for every image (what :meth:`classify` ranks).

        As scikit-learn's ``decision_function`` beside ``predict``: the argmax of a row is
        the label :meth:`classify` predicts (before its ``min_score`` /
        ``min_shared_anchors`` floors).

        Args:
            images: Images (or their sparse vectors from :meth:`embed_images`).
            labels: Class names.
            templates: Prompt templates (as in :meth:`classify`).
            template_strategy: How several templates combine (as in :meth:`classify`).
            method: ``"asif"``, ``"csa"`` or ``"hybrid"`` (as in :meth:`classify`).

        Returns:
            ``(n_images, n_labels)`` ``float32`` scores, labels in the given order.

        Example:
            >>> import tempfile, numpy as np
            >>> class Letters:  # a toy text encoder: letter counts
            ...     name, dim = "toy/letters", 3
            ...     def embed(self, batch, *, batch_size=32, show_progress_bar=None):
            ...         return np.array([[t.count(c) + 0.1 for c in "abc"] for t in batch])
            >>> rng = np.random.default_rng(0)
            >>> with ASIF(path=tempfile.mkdtemp(), k=4, image_encoder="precomputed/image",
            ...           text_encoder=Letters(), show_progress_bar=False) as asif:
            ...     _ = asif.add_anchor_embeddings(rng.random((9, 8)), rng.random((9, 3)))
            ...     vecs = asif.relative_from_embeddings(rng.random((2, 8)), "image")
            ...     scores = asif.classify_scores(vecs, ["a", "b", "c"], templates=["{}"])
            ...     labels = asif.classify(vecs, ["a", "b", "c"], templates=["{}"])
            ...     scores.shape, [["a", "b", "c"][j] for j in scores.argmax(axis=1)] == labels
            ((2, 3), True)
        """
        return self._classify(
            images,
            labels,
            templates=templates,
            template_strategy=template_strategy,
            min_score=None,
            min_shared_anchors=None,
            unknown_label="unknown",
            method=method,
        )[1]

    def _classify(
        self,
        images: Sequence[ImageInput] | Sequence[SparseVector],
        labels: Sequence[str],
        *,
        templates: Sequence[str] | None,
        template_strategy: TemplateStrategy,
        min_score: float | None,
        min_shared_anchors: int | None,
        unknown_label: str,
        method: Method,
    ) -> tuple[list[str], np.ndarray]:
        labels = list(labels)
        templates = list(templates or DEFAULT_TEMPLATES)
        self._check_labels(labels, templates)
        strategy = self._check_strategy("ASIF.classify", template_strategy)
        floor, shared = self._check_floors("ASIF.classify", min_score, min_shared_anchors)
        if not isinstance(unknown_label, str):
            raise InvalidParameterError(
                "The 'unknown_label' parameter of ASIF.classify must be a str. Got "
                f"{unknown_label!r:.100} instead."
            )
        if method != "asif":
            scores_m = self._classify_csa(list(images), labels, templates, strategy, method, shared)
            win = [int(j) for j in np.argmax(scores_m, axis=1)] if len(scores_m) else []
            pred = [
                unknown_label if floor is not None and scores_m[row, j] < floor else labels[j]
                for row, j in enumerate(win)
            ]
            return pred, scores_m
        coll = self._label_collection(labels, templates, strategy)
        items = list(images)
        if all(isinstance(x, SparseVector) for x in items):
            vecs: list[SparseVector] = list(items)  # type: ignore[arg-type]
        else:
            vecs = self.embed_images(items)  # type: ignore[arg-type]
        n_prompts = self.store.count(coll)
        res = self.store.query_sparse(coll, SPARSE, vecs, n_prompts, with_payload=True)
        scores = np.zeros((len(vecs), len(labels)), dtype=np.float32)
        best_prompt: list[dict[int, PointId]] = [{} for _ in vecs]
        for row, hits in enumerate(res):
            for h in hits:
                j = int(h.payload["label_index"])
                if j not in best_prompt[row] or h.score > scores[row, j]:
                    scores[row, j] = h.score
                    best_prompt[row][j] = h.id
        winners = [int(j) for j in np.argmax(scores, axis=1)] if len(vecs) else []
        predicted = [labels[j] for j in winners]
        if floor is not None:
            predicted = [
                unknown_label if scores[row, j] < floor else lab
                for row, (j, lab) in enumerate(zip(winners, predicted, strict=True))
            ]
        if shared is not None:
            prompt_ids = list({p: None for bp in best_prompt for p in bp.values()})
            stored = {
                r.id: r.sparse.get(SPARSE)
                for r in self.store.retrieve(coll, prompt_ids, with_vectors=[SPARSE])
            }
            predicted = [
                unknown_label
                if _shared(vec, stored.get(best_prompt[row].get(j, -1))) < shared
                else lab
                for row, (vec, j, lab) in enumerate(zip(vecs, winners, predicted, strict=True))
            ]
        return predicted, scores

    def _check_labels(self, labels: list[str], templates: list[str]) -> None:
        if (
            len(labels) < 1
            or len(set(labels)) != len(labels)
            or not all(isinstance(x, str) for x in labels)
        ):
            raise InvalidParameterError(
                "The 'labels' parameter of ASIF.classify must be a non-empty list of distinct "
                f"str. Got {labels!r:.200} instead."
            )
        for t in templates:
            if not isinstance(t, str) or ("{}" not in t and "{label}" not in t):
                raise InvalidParameterError(
                    "Each template of ASIF.classify must be a str containing '{}' (or "
                    f"'{{label}}') where the label goes. Got {t!r} instead."
                )

    # -- explanations ---------------------------------------------------------------------
    @locked("read")
    def explain(
        self,
        query: str | ImageInput | SparseVector,
        item: Any,
        collection: str | None = None,
    ) -> Explanation:
        """The anchor pairs behind a score: why ``item`` matches ``query``.

        The ASIF score is the dot product of two sparse vectors over anchor ids, so it is
        exactly the sum, over the anchors both share, of query weight x item weight. Each
        shared anchor comes with its id, caption, image reference, both weights and its
        contribution; the contributions sum to the search score.

        Args:
            query: A text, an image or a sparse vector (as for :meth:`search`).
            item: A catalog item's id when ``collection`` is given; otherwise a second input
                (text, image or sparse vector) to compare the query with.
            collection: The catalog holding ``item``.

        Returns:
            An :class:`~asif_qdrant.explain.Explanation` (``.table()``, ``.as_dict()``;
            :func:`asif_qdrant.plotting.explain_figure` draws it).

        Example:
            >>> import tempfile, numpy as np
            >>> rng = np.random.default_rng(0)
            >>> with ASIF(path=tempfile.mkdtemp(), k=4, image_encoder="precomputed/image",
            ...           text_encoder="precomputed/text", show_progress_bar=False) as asif:
            ...     _ = asif.add_anchor_embeddings(rng.random((9, 8)), rng.random((9, 4)))
            ...     _ = asif.index_embeddings("items", rng.random((3, 8)), "image")
            ...     q = asif.relative_from_embeddings(rng.random((1, 4)), "text")[0]
            ...     hit = asif.search("items", q, limit=1)[0]
            ...     why = asif.explain(q, hit.id, "items")
            ...     abs(why.score - hit.score) < 1e-5, why.shared <= 4
            (True, True)
        """
        from asif_qdrant.explain import explain_match

        return explain_match(self, query, item, collection)

    @locked("cache")
    def explain_label(
        self,
        image: ImageInput | SparseVector,
        labels: Sequence[str],
        *,
        templates: Sequence[str] | None = None,
        template_strategy: TemplateStrategy = DEFAULT_TEMPLATE_STRATEGY,
        label: str | None = None,
        versus: str | None = None,
    ) -> LabelExplanation:
        """Why an image got ``label`` rather than ``versus`` in zero-shot classification.

        Each label scores as in :meth:`classify` (its combined prompt vector, or its best
        prompt for ``"max"``); the difference of the two scores is split over anchors
        (``w_image * (w_label - w_versus)``).

        Args:
            image: The image (or its sparse vector).
            labels: The class names.
            templates: Prompt templates (as in :meth:`classify`).
            template_strategy: How templates combine (as in :meth:`classify`).
            label: Label A; default: the predicted label.
            versus: Label B; default: the runner-up.

        Returns:
            A :class:`~asif_qdrant.explain.LabelExplanation`.
        """
        from asif_qdrant.explain import explain_label

        return explain_label(
            self,
            image,
            labels,
            templates=templates,
            template_strategy=template_strategy,
            label=label,
            versus=versus,
        )

    @locked("cache")
    def audit_anchors(
        self,
        images: Sequence[ImageInput] | Sequence[SparseVector],
        truth: Sequence[str],
        labels: Sequence[str],
        *,
        templates: Sequence[str] | None = None,
        template_strategy: TemplateStrategy = DEFAULT_TEMPLATE_STRATEGY,
    ) -> AuditReport:
        """Rank anchors by how much they push a labeled set's images towards wrong labels.

        See :func:`asif_qdrant.explain.audit_anchors`. Deleting the top ones
        (:meth:`delete_anchors`) is the paper's "remove the broken samples" edit.
        """
        from asif_qdrant.explain import audit_anchors

        return audit_anchors(
            self, images, truth, labels, templates=templates, template_strategy=template_strategy
        )

    @staticmethod
    def _check_strategy(owner: str, strategy: Any) -> TemplateStrategy:
        if strategy not in TEMPLATE_STRATEGIES:
            raise InvalidParameterError(
                f"The 'template_strategy' parameter of {owner} must be one of "
                f"{', '.join(repr(s) for s in TEMPLATE_STRATEGIES)}. Got {strategy!r:.100} instead."
            )
        return strategy  # type: ignore[no-any-return]

    def _label_collection(
        self,
        labels: list[str],
        templates: list[str],
        strategy: TemplateStrategy = "max",
    ) -> str:
        """The cached collection of label prompt vectors.

        One point per prompt for ``max``, one per label (its templates combined) otherwise.
        """
        key_parts: list[Any] = [labels, templates, self.fingerprint.anchor_version]
        if strategy != "max" and len(templates) > 1:
            key_parts.append(strategy)
        else:
            strategy = "max"  # one template: every strategy is the same vector
        key = json.dumps(key_parts)
        coll = f"{self.name}_labels_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        n_points = len(labels) * (len(templates) if strategy == "max" else 1)
        if self.store.has_collection(coll) and self.store.count(coll) == n_points:
            return coll
        self.store.delete_collection(coll)
        prompts = [
            (j, t.replace("{label}", "{}").format(label))
            for j, label in enumerate(labels)
            for t in templates
        ]
        texts = [text for _, text in prompts]
        if strategy == "max":
            vecs = self.embed_texts(texts)
            points = [
                ({"label": labels[j], "label_index": j, "prompt": text}, v)
                for (j, text), v in zip(prompts, vecs, strict=True)
            ]
        else:
            for i, t in enumerate(texts):
                if not t.strip():
                    raise InvalidInputError(f"Prompt {i} is empty (or only whitespace).")
            if strategy == "mean-embedding":
                emb = l2_normalize(self.encode(texts, "text"))
                mean = emb.reshape(len(labels), len(templates), -1).mean(axis=1)
                vecs = self.relative_from_embeddings(mean, "text")
            else:
                each = self.embed_texts(texts)
                vecs = [
                    _mean_sparse(each[j * len(templates) : (j + 1) * len(templates)])
                    for j in range(len(labels))
                ]
            points = [
                (
                    {
                        "label": label,
                        "label_index": j,
                        "prompt": " | ".join(texts[j * len(templates) : (j + 1) * len(templates)]),
                        "strategy": strategy,
                    },
                    v,
                )
                for j, (label, v) in enumerate(zip(labels, vecs, strict=True))
            ]
        self.store.create_collection(coll, CollectionSpec(sparse=(SPARSE,)))
        self.store.upsert(
            coll, [Record(i, payload, sparse={SPARSE: v}) for i, (payload, v) in enumerate(points)]
        )
        return coll

    def _drop_label_caches(self) -> None:
        prefix = f"{self.name}_labels_"
        for coll in self.store.list_collections():
            if coll.startswith(prefix):
                self.store.delete_collection(coll)

    # -- helpers -----------------------------------------------------------------------------
    def _anchor_collection(self, modality: Modality) -> tuple[str, str]:
        if modality == "image":
            return self.image_anchor_collection, "image"
        if modality == "text":
            return self.text_anchor_collection, "text"
        raise InvalidParameterError(
            f"The 'modality' parameter must be 'image' or 'text'. Got {modality!r} instead."
        )

    def _dim(self, modality: Modality) -> int | None:
        return self.fingerprint.image_dim if modality == "image" else self.fingerprint.text_dim

    def _check_embeddings(self, what: str, x: Any, modality: Modality) -> np.ndarray:
        arr = np.asarray(x)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or arr.ndim != 2:
            raise InvalidInputError(
                f"'{what}' must be a 2-D numeric array (n, dim). Got "
                f"{'shape ' + str(arr.shape) if arr.dtype != object else 'objects'} "
                f"of dtype {arr.dtype}."
            )
        if np.iscomplexobj(arr):
            raise InvalidInputError(f"'{what}' must be real. Got dtype {arr.dtype}.")
        dim = self._dim(modality)
        if dim is not None and arr.shape[1] != dim:
            raise InvalidInputError(
                f"'{what}' must have the {modality} dim {dim} of this model. Got shape {arr.shape}."
            )
        if not np.isfinite(arr).all():
            row = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise InvalidInputError(f"'{what}' must be finite. Row {row} holds NaN or inf.")
        if arr.size and (np.linalg.norm(arr, axis=1) == 0).any():
            row = int(np.flatnonzero(np.linalg.norm(arr, axis=1) == 0)[0])
            raise InvalidInputError(f"'{what}' row {row} is all zeros: it has no direction.")
        return arr.astype(np.float32, copy=False)

    @staticmethod
    def _check_pairs(
        n_images: int, n_captions: int, payloads: Sequence[Mapping[str, Any]] | None
    ) -> None:
        if n_images != n_captions:
            raise InvalidInputError(
                f"Anchor pairs need one caption per image. Got {n_images} images and "
                f"{n_captions} captions."
            )
        if payloads is not None and len(payloads) != n_images:
            raise InvalidInputError(
                f"'payloads' must have one entry per pair ({n_images}). Got {len(payloads)}."
            )

    # -- lifecycle -----------------------------------------------------------------------------
    @locked("write")
    def check_integrity(self, *, repair: bool = True) -> IntegrityReport:
        """Check that the anchor collections are paired and the catalogs current; repair.

        Opening a model already does this, repairing only when the store is this process's
        alone (the embedded engine); against a server, where another process may be editing,
        it only warns. Call this (or ``asif-qdrant repair``) once no other process is editing.

        Args:
            repair: Roll back or complete what an interrupted edit left (else only report).

        Returns:
            What was found and done (also in :attr:`integrity`); see
            :mod:`asif_qdrant.integrity`.
        """
        from asif_qdrant.integrity import check_integrity

        self.integrity = check_integrity(self, repair=repair)
        return self.integrity

    @locked("write")
    def close(self) -> None:
        """Flush and close the store (and release the in-memory anchor indexes)."""
        with self._anchor_index_lock:
            for _, index in self._anchor_indexes.values():
                index.close()
            self._anchor_indexes.clear()
        self.store.close()

    def __enter__(self) -> ASIF:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- CSA, hybrid search, crossing the gap (asif_qdrant.crossgap, docs/METHODS.md) -------
    @property
    def csa(self) -> CSA | None:
        """The CSA model fitted on the current anchors (:mod:`asif_qdrant.csa`).

        None without ``csa_dim`` or with fewer than 2 anchor pairs; refitted after every
        anchor edit.
        """
        if self.fingerprint.csa_dim is None:
            return None
        return self._csa_model(required=False)

    @locked("read")
    def search_embeddings(
        self,
        collection: str,
        embeddings: np.ndarray,
        modality: Modality,
        options: SearchOptions | None = None,
        **fields: Unpack[SearchFields],
    ) -> list[list[Hit]]:
        """:meth:`search_batch` for precomputed query embeddings of one modality.

        Args:
            collection: The catalog collection.
            embeddings: ``(n, dim)`` query embeddings from this model's encoder of
                ``modality``.
            modality: The queries' modality, "image" or "text".
            options: As in :meth:`search`.
            **fields: As in :meth:`search` (``item_modality`` filters the catalog items).

        Returns:
            One list of hits per query row.
        """
        self._anchor_collection(modality)  # validates the modality
        opts = self._search_options(collection, options, fields)
        unit = l2_normalize(self._check_embeddings("embeddings", embeddings, modality))
        return self._search_units(collection, list(unit), [modality] * len(unit), opts)

    def _init_csa(self, csa_dim: int | None, csa_ridge: float | None) -> None:
        """Record the CSA settings in the fingerprint (checked against the stored ones)."""
        fp = self.fingerprint
        changed = False
        if csa_dim is not None:
            if fp.csa_dim is None:
                fp.csa_dim, changed = csa_dim, True
            else:
                fp.check_setting("csa_dim", csa_dim, store=self.name)
        if csa_ridge is not None:
            if fp.csa_dim is not None and not changed:
                fp.check_setting("csa_ridge", csa_ridge, store=self.name)
            elif fp.csa_ridge != csa_ridge:
                fp.csa_ridge, changed = csa_ridge, True
        dims = [d for d in (fp.image_dim, fp.text_dim) if d is not None]
        if fp.csa_dim is not None and dims and fp.csa_dim > min(dims):
            raise InvalidParameterError(
                f"The 'csa_dim' parameter of ASIF must be an int in 1..{min(dims)} (the smaller "
                f"encoder dim). Got {fp.csa_dim} instead."
            )
        if changed and self.store.has_collection(self.meta_collection):
            self._write_fingerprint()

    def _csa_model(self, *, required: bool = True) -> CSA | None:
        """The CSA fitted on the stored anchors, cached per anchor version.

        Padded to ``csa_dim`` directions when the anchors allow fewer.
        """
        from asif_qdrant.csa import fit_csa

        fp = self.fingerprint
        if fp.csa_dim is None:
            raise InvalidParameterError(
                f"The ASIF model '{self.name}' has no CSA: open it with csa_dim=<int> (for "
                "example 256) to store CSA vectors in its catalogs and use method='csa' or "
                "'hybrid'."
            )
        cached = self._csa_cache
        if cached is None or cached[0] != fp.anchor_version:
            ids_i, img = self.anchor_embeddings("image")
            ids_t, txt = self.anchor_embeddings("text")
            model = None
            if len(ids_i) >= 2 and ids_i == ids_t:
                dim = min(fp.csa_dim, img.shape[1], txt.shape[1], len(ids_i))
                model = fit_csa(img, txt, sim_dim=dim, ridge=fp.csa_ridge).padded(fp.csa_dim)
            elif ids_i != ids_t:
                raise AnchorSetError(
                    f"The image and text anchor collections of '{self.name}' hold different "
                    "ids: the model was interrupted mid-edit; reopen it to repair it."
                )
            cached = self._csa_cache = (fp.anchor_version, model)
        if cached[1] is None and required:
            raise AnchorSetError(
                f"CSA needs at least 2 anchor pairs; the model '{self.name}' has "
                f"{self.anchor_count}."
            )
        return cached[1]  # type: ignore[no-any-return]

    def _csa_vectors(self, unit: np.ndarray, modality: Modality) -> np.ndarray:
        """Stored CSA vectors ``transform(e)`` of unit embeddings (zeros without a fit)."""
        model = self._csa_model(required=False)
        if model is None:
            return np.zeros((len(unit), int(self.fingerprint.csa_dim or 0)), np.float32)
        return model.transform(unit, modality)

    def _check_caption_embeddings(
        self, x: np.ndarray | None, n: int, modality: Modality
    ) -> np.ndarray | None:
        if x is None:
            return None
        if modality != "image":
            raise InvalidParameterError(
                "'caption_embeddings' belong to image items: use them with modality='image'. "
                f"Got modality={modality!r}."
            )
        arr = np.asarray(x, dtype=np.float32)
        dim = self._dim("text")
        if arr.ndim != 2 or arr.shape[0] != n or (dim is not None and arr.shape[1] != dim):
            raise InvalidInputError(
                f"'caption_embeddings' must have shape ({n}, {dim}): one text embedding per "
                f"image (a row of NaN: no caption). Got shape {arr.shape}."
            )
        return arr

    def _encode_captions(
        self, captions: Sequence[str | None] | None, pos: Sequence[int], modality: Modality
    ) -> np.ndarray | None:
        """Caption embeddings of the image items at ``pos`` (NaN rows: no caption)."""
        if captions is None or modality != "image":
            return None
        texts = [(row, captions[j]) for row, j in enumerate(pos) if captions[j] is not None]
        dim = int(self._dim("text") or self.text_encoder.dim)
        out = np.full((len(pos), dim), np.nan, np.float32)
        if texts:
            emb = self.encode([t for _, t in texts], "text", show_progress_bar=False)
            out[[row for row, _ in texts]] = emb
        return out

    def _encode_queries(self, queries: list[Any], modality: Modality) -> np.ndarray:
        """Unit embeddings of raw queries of one modality."""
        if modality == "text":
            for i, t in enumerate(queries):
                if not t.strip():
                    raise InvalidInputError(
                        f"Text {i} is empty (or only whitespace): an empty query matches nothing."
                    )
        return l2_normalize(self.encode(queries, modality, show_progress_bar=False))

    def _search_options(
        self, collection: str, options: SearchOptions | None, fields: Mapping[str, Any]
    ) -> SearchOptions:
        """Validate the options of a search, then what they need of the catalog."""
        opts = SearchOptions.merge(options, **fields)
        if not self.store.has_collection(collection):
            raise CollectionNotFoundError(
                f"The catalog collection '{collection}' does not exist: index items into it "
                "with ASIF.index() first."
            )
        if opts.method != "asif":
            self._csa_model()  # raises a clear error without CSA
        self._check_catalog_vectors(collection, opts.method, opts.target)
        self._warn_if_stale(collection)
        return opts

    def _classify_csa(
        self,
        images: list[Any],
        labels: list[str],
        templates: list[str],
        strategy: TemplateStrategy,
        method: Any,
        shared: int | None,
    ) -> np.ndarray:
        """Label scores of :meth:`classify` with ``method="csa"`` or ``"hybrid"``."""
        from asif_qdrant.crossgap import METHODS

        if method not in METHODS:
            raise InvalidParameterError(
                "The 'method' parameter of ASIF.classify must be one of "
                f"{', '.join(repr(m) for m in METHODS)}. Got {method!r:.100} instead."
            )
        if shared is not None:
            raise InvalidParameterError(
                "'min_shared_anchors' of ASIF.classify works with method='asif' only. Got "
                f"method={method!r}."
            )
        if any(isinstance(x, SparseVector) for x in images):
            raise InvalidInputError(
                f"ASIF.classify with method={method!r} needs the images themselves (their "
                "embeddings are projected by CSA), not sparse vectors."
            )
        model = self._csa_model()
        assert model is not None
        unit = l2_normalize(self.encode(images, "image"))
        prompts = [t.replace("{label}", "{}").format(lab) for lab in labels for t in templates]
        emb = l2_normalize(self.encode(prompts, "text")).reshape(len(labels), len(templates), -1)
        q = model.query_vectors(unit, "image").astype(np.float64)
        if strategy == "max" or len(templates) == 1:
            each = model.transform(emb.reshape(len(prompts), -1), "text").astype(np.float64)
            scores = (q @ each.T).reshape(len(unit), len(labels), len(templates)).max(axis=2)
        else:
            if strategy == "mean-embedding":
                lab = model.transform(emb.mean(axis=1), "text")
            else:  # mean-relative: the mean of the prompts' CSA vectors
                t = model.transform(emb.reshape(len(prompts), -1), "text")
                lab = l2_normalize(t.reshape(len(labels), len(templates), -1).mean(axis=1))
            scores = q @ lab.astype(np.float64).T
        if method == "hybrid":
            vecs = self._relative(unit, "image")[0]
            _, asif_scores = self._classify(
                vecs,
                labels,
                templates=templates,
                template_strategy=strategy,
                min_score=None,
                min_shared_anchors=None,
                unknown_label="unknown",
                method="asif",
            )
            fused = np.zeros_like(scores)
            for part in (np.asarray(asif_scores, np.float64), scores):
                # Rank 0 = best; ties broken by the label order, deterministically.
                order = np.argsort(-part, axis=1, kind="stable")
                ranks = np.empty_like(order)
                np.put_along_axis(ranks, order, np.arange(len(labels))[None, :], axis=1)
                fused += 1.0 / (2.0 + ranks)
            scores = fused
        return scores.astype(np.float32)

    def _check_catalog_vectors(self, collection: str, method: str, target: str) -> None:
        from asif_qdrant.crossgap import CAPTION_SPARSE, CSA_VECTOR

        spec = self.store.collection_spec(collection)
        if method != "asif" and CSA_VECTOR not in spec.dense:
            raise InvalidParameterError(
                f"The catalog '{collection}' has no CSA vectors (it was indexed before CSA was "
                f"enabled): run asif.reindex({collection!r}) with csa_dim set (or index into "
                "it again) to add them, then search with method='csa' or 'hybrid'."
            )
        if target == "caption" and CAPTION_SPARSE not in spec.sparse:
            raise InvalidParameterError(
                f"The catalog '{collection}' has no caption vectors: index image items with "
                "captions (index(..., captions=[...]) or index_embeddings(..., "
                "caption_embeddings=...)) to search it with target='caption'."
            )

    def _search_units(
        self,
        collection: str,
        units: list[np.ndarray],
        mods: list[Modality],
        opts: SearchOptions,
    ) -> list[list[Hit]]:
        """Search with unit query embeddings (of the given modalities)."""
        from asif_qdrant.crossgap import invert_queries

        if self.anchor_count == 0:
            raise AnchorSetError(
                f"The ASIF model '{self.name}' has no anchors: add anchor pairs with "
                "add_anchors() or add_anchor_embeddings() first."
            )
        method = opts.method
        n = len(units)
        sparse: list[SparseVector | None] = [None] * n
        dense: list[np.ndarray | None] = [None] * n
        need_sparse = method != "csa" or opts.min_shared_anchors is not None
        for m in ("image", "text"):
            rows = [i for i in range(n) if mods[i] == m]
            if not rows:
                continue
            u = np.stack([units[i] for i in rows]).astype(np.float32)
            if need_sparse:
                vecs, _ = self._relative(u, m)  # type: ignore[arg-type]
                if opts.query_via == "invert":
                    inv, other = invert_queries(self, vecs, m)  # type: ignore[arg-type]
                    vecs, _ = self._relative(inv, other)
                for i, v in zip(rows, vecs, strict=True):
                    sparse[i] = v
            if method != "asif":
                model = self._csa_model()
                assert model is not None
                q = model.query_vectors(u, m)  # type: ignore[arg-type]
                for i, row in zip(rows, q, strict=True):
                    dense[i] = row
        return self._search_core(collection, sparse, dense, opts)  # type: ignore[arg-type]

    def _search_core(
        self,
        collection: str,
        sparse: list[SparseVector] | None,
        dense: list[np.ndarray | None] | None,
        opts: SearchOptions,
    ) -> list[list[Hit]]:
        """Run prepared queries: sparse, dense CSA, or both fused; then the floors."""
        from asif_qdrant.crossgap import CAPTION_SPARSE, CSA_VECTOR
        from asif_qdrant.store.base import Prefetch

        method, limit, flt = opts.method, opts.limit, opts.payload_filter
        vn = CAPTION_SPARSE if opts.target == "caption" else SPARSE
        if method == "asif":
            assert sparse is not None
            res = self.store.query_sparse(collection, vn, sparse, limit, filter=flt)
        else:
            assert dense is not None
            res = []
            for j, q in enumerate(dense):
                assert q is not None
                if method == "csa":
                    stages = [Prefetch(CSA_VECTOR, q, limit)]
                else:
                    assert sparse is not None
                    pl = opts.candidates
                    stages = [Prefetch(SPARSE, sparse[j], pl), Prefetch(CSA_VECTOR, q, pl)]
                res.append(
                    self.store.query_fusion(
                        collection,
                        stages,
                        limit,
                        fusion=None if method == "csa" else opts.fusion,
                        filter=flt,
                    )
                )
        out = [[Hit(h.id, h.score, h.payload) for h in hits] for hits in res]
        if opts.min_score is not None:
            out = [[h for h in hits if h.score >= opts.min_score] for hits in out]
        if opts.min_shared_anchors is not None:
            assert sparse is not None
            ids = list({h.id: None for hits in out for h in hits})
            stored = {
                r.id: r.sparse.get(vn)
                for r in self.store.retrieve(collection, ids, with_vectors=[vn])
            }
            out = [
                [h for h in hits if _shared(q, stored.get(h.id)) >= opts.min_shared_anchors]
                for q, hits in zip(sparse, out, strict=True)
            ]
        return out


def default_path() -> Path:
    """Where the CLI keeps its model when ``--path`` is not given."""
    return Path(os.environ.get("ASIF_QDRANT_PATH", "asif-data"))
