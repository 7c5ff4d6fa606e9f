"""The ``ASIF`` class: two frozen encoders + anchor pairs in Qdrant = a CLIP-like retriever.

``ASIF`` is a facade, like ``qdrant_client.QdrantClient``: each public method validates its
arguments and delegates to one module of :mod:`asif_qdrant.retriever`, where the work is
done on the open model's :class:`~asif_qdrant.retriever.state.ModelState`. Data flows one way:
encoder -> anchor search (the nearest anchors of the input's modality) -> sparse relative
vector -> Qdrant (stored, or used as a sparse query). docs/design.md draws the layers.

The class docstring has an example that runs without any model; README.md one with the
offline encoders.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from asif_qdrant.errors import InvalidParameterError, check_int, check_real
from asif_qdrant.locking import ReadWriteLock, locked
from asif_qdrant.relative import Spread, check_power, l2_normalize
from asif_qdrant.retriever import anchors, catalogs, crossgap, edits, explain, search, zeroshot
from asif_qdrant.retriever.calibration import confidence_of_embeddings, query_confidence
from asif_qdrant.retriever.integrity import IntegrityReport, check_integrity
from asif_qdrant.retriever.keys import IngestResult, OnDuplicate
from asif_qdrant.retriever.layout import Layout
from asif_qdrant.retriever.state import DEFAULT_K, DEFAULT_P, ModelState, check_store_args, connect
from asif_qdrant.retriever.zeroshot import (
    DEFAULT_TEMPLATE_STRATEGY,
    DEFAULT_TEMPLATES,
    TEMPLATE_STRATEGIES,
    TemplateStrategy,
)
from asif_qdrant.store.base import PointId, Store
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
    from typing_extensions import Unpack

    from asif_qdrant.csa import CSA
    from asif_qdrant.encoders.base import Encoder
    from asif_qdrant.retriever.catalogs import IndexJob
    from asif_qdrant.retriever.explain import AuditReport, Explanation, LabelExplanation
    from asif_qdrant.retriever.fingerprint import Fingerprint
    from asif_qdrant.retriever.recompute import EditReport

__all__ = [
    "ASIF",
    "DEFAULT_K",
    "DEFAULT_P",
    "DEFAULT_TEMPLATES",
    "DEFAULT_TEMPLATE_STRATEGY",
    "TEMPLATE_STRATEGIES",
    "TemplateStrategy",
    "default_path",
]


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
        anchor_search: How a new input finds its ``k`` nearest anchors: ``"auto"`` (an
            in-memory index kept in step with edits, exact: BLAS on a CPU, torch on CUDA;
            :mod:`asif_qdrant.anchor_index`), ``"ivf"`` / ``"ivf-pca"`` (calibrated,
            approximate, about 2x faster at 1M anchors),
            ``"qdrant"`` (exact search by the engine, no copy in memory) or a method of
            :data:`asif_qdrant.anchor_index.METHODS` (``"exact"``...). docs/PERFORMANCE.md.
        csa_dim: Enable CSA (docs/METHODS.md) with this many canonical dimensions (at most
            the smaller encoder dim): catalogs store a dense ``csa`` vector per item and
            ``method="csa"`` / ``"hybrid"`` become available. Stored in the fingerprint.
        csa_ridge: Relative ridge of the CSA fit (> 0; unset: the stored value, else 0.1).
        templates: The model's own zero-shot prompt templates (``{}`` the label, ``{a}`` its
            article), stored with it and used by classify / explain_label / audit_anchors when
            a call gives none. Unset: the stored ones, else ``("a photo of {a} {}.",)``.
        catalog_nnz: Non-zeros each catalog item stores (>= 1): the largest weights of its
            k-sparse vector; fewer make a smaller, faster catalog whose scores are the part
            of the full dot product those weights carry. Unset: the stored value, else all
            k. Stored in the fingerprint; edits stay exact. docs/PERFORMANCE.md.
        classify_k: The ``k`` of zero-shot classification (classify, classify_scores,
            explain_label, audit_anchors), whose image and prompt vectors are made at
            classification time, so it may differ from the catalogs' ``k`` (>= 1). Unset: the
            stored value, else ``k``. Stored with the model. Sparse vectors passed to
            classify are used as they are.
        classify_p: A fixed ``p`` for zero-shot classification (> 0) instead of the spread
            rule; ``classify_p=8`` with the default ``k`` is the paper's classification.
            Stored with the model.
        classify_spread: Zero-shot classification's ``p`` rule, the default: each image and
            prompt vector gets the ``p`` at which its weights spread over this fraction of
            its kept anchors (in (0, 1]; :class:`asif_qdrant.relative.Spread`). Unset: the
            stored value, else 0.3 (``DEFAULT_CLASSIFY_SPREAD``), which lifted every
            zero-shot row of the evaluation (mean 0.332 -> 0.395 over ``p=8``) with search
            untouched and still gains 41 points from 100 added Fashion-MNIST pairs
            (docs/RESULTS.md, "Better answers"; 0.3 was picked on those tests). Replaces a
            stored ``classify_p``; give one of the two.

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
        templates: Sequence[str] | None = None,
        catalog_nnz: int | None = None,
        classify_k: int | None = None,
        classify_p: float | None = None,
        classify_spread: float | None = None,
    ) -> None:
        check_store_args(path, client, store)
        layout = Layout(name)
        k = None if k is None else check_int("k", "ASIF", k, minimum=1)
        p = None if p is None else check_real("p", "ASIF", p, greater_than=0)
        batch_size = check_int("batch_size", "ASIF", batch_size, minimum=1)
        if catalog_nnz is not None:
            catalog_nnz = check_int("catalog_nnz", "ASIF", catalog_nnz, minimum=1)
        anchor_search = anchors.check_anchor_search(anchor_search)
        if classify_k is not None:
            classify_k = check_int("classify_k", "ASIF", classify_k, minimum=1)
        if classify_p is not None:
            classify_p = check_real("classify_p", "ASIF", classify_p, greater_than=0)
        if classify_spread is not None:
            classify_spread = check_power("classify_spread", "ASIF", Spread(classify_spread))
            classify_spread = classify_spread.fraction
            if classify_p is not None:
                raise InvalidParameterError(
                    "ASIF takes classify_p (a fixed p) or classify_spread (a p per vector), "
                    f"not both; got classify_p={classify_p!r}, "
                    f"classify_spread={classify_spread!r}."
                )
        csa_dim = None if csa_dim is None else check_int("csa_dim", "ASIF", csa_dim, minimum=1)
        if csa_ridge is not None:
            csa_ridge = check_real("csa_ridge", "ASIF", csa_ridge, greater_than=0)
        #: Edits are exclusive, reads shared (:mod:`asif_qdrant.locking`).
        self._rw_lock = ReadWriteLock()
        opened, owned = connect(path, client, store)
        self._state = ModelState(
            opened,
            layout,
            batch_size=batch_size,
            device=device,
            show_progress_bar=show_progress_bar,
            anchor_search=anchor_search,
        )
        try:
            self._state.open(image_encoder, text_encoder, k=k, p=p, catalog_nnz=catalog_nnz)
            self._state.integrity = check_integrity(self._state)
            crossgap.init_csa(self._state, csa_dim, csa_ridge)
            zeroshot.init_templates(self._state, templates)
            zeroshot.init_classify_kp(self._state, classify_k, classify_p, classify_spread)
        except BaseException:
            if owned:  # we opened it: release it (an embedded folder is locked)
                opened.close()
            raise

    # -- what the model is -------------------------------------------------------------------
    @property
    def state(self) -> ModelState:
        """The model's internals (documented internal API: :mod:`asif_qdrant.retriever`)."""
        return self._state

    @property
    def store(self) -> Store:
        """The Qdrant store holding the model."""
        return self._state.store

    @property
    def name(self) -> str:
        """The model's name (prefix of its collections)."""
        return self._state.name

    @property
    def fingerprint(self) -> Fingerprint:
        """What the model was built with (encoders, k, p, anchor set version, catalogs)."""
        return self._state.fingerprint

    @property
    def layout(self) -> Layout:
        """The model's collection names (``layout.image_anchors``, ``.text_anchors``, ``.meta``)."""
        return self._state.layout

    @property
    def k(self) -> int:
        """Anchors kept per relative vector."""
        return self._state.fingerprint.k

    @property
    def p(self) -> float:
        """Exponent of the relative weights."""
        return self._state.fingerprint.p

    @property
    def anchor_count(self) -> int:
        """Number of anchor pairs."""
        return self._state.fingerprint.anchor_count

    @property
    def last_edit(self) -> EditReport | None:
        """What the last anchor edit (or re-index) of this object did, else None."""
        return self._state.last_edit  # type: ignore[no-any-return]

    @property
    def integrity(self) -> IntegrityReport:
        """What the last integrity check (the one on open, or :meth:`check_integrity`) found."""
        return self._state.integrity  # type: ignore[no-any-return]

    @property
    def image_encoder(self) -> Encoder:
        """The image encoder (loaded on first use)."""
        return self._state.encoder("image")

    @property
    def text_encoder(self) -> Encoder:
        """The text encoder (loaded on first use)."""
        return self._state.encoder("text")

    @property
    def csa(self) -> CSA | None:
        """The CSA model fitted on the current anchors (:mod:`asif_qdrant.csa`).

        None without ``csa_dim`` or with fewer than 2 anchor pairs; refitted after every
        anchor edit.
        """
        if self._state.fingerprint.csa_dim is None:
            return None
        return crossgap.csa_model(self._state, required=False)

    def __repr__(self) -> str:
        return f"ASIF({self._state.describe()})"

    @locked("read")
    def encode(
        self, inputs: Sequence[Any], modality: Modality, *, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """Embed raw inputs with the encoder of their modality (L2-normalised rows)."""
        return self._state.encode(inputs, modality, show_progress_bar)

    # -- anchors -------------------------------------------------------------------------------
    @locked("write")
    def add_anchors(
        self,
        images: Sequence[ImageInput],
        captions: Sequence[str],
        *,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        source: str | None = None,
        on_duplicate: OnDuplicate = "skip",
    ) -> IngestResult:
        """Embed raw image-caption pairs and add them as anchors.

        A pair's key is the sha256 of its image's bytes and its caption (stored as payload
        ``asif_key``); an image path is stored resolved and absolute, with its file's hash.

        Args:
            images: The anchor images (paths, bytes, PIL images, arrays).
            captions: One caption per image.
            payloads: Extra payload per pair (stored in both anchor collections).
            source: Stored as the ``source`` payload of every pair.
            on_duplicate: A pair whose key is already stored: ``"skip"`` it (default),
                ``"replace"`` it (the old pair is deleted, the new one added), or ``"add"``
                it again.

        Returns:
            The anchor id of every pair, in input order (a skipped pair: its stored id), with
            the counts ``added``, ``already_present`` and ``replaced``.
        """
        args = (payloads, source, on_duplicate)
        return edits.add_anchors(self._state, images, captions, *args)

    @locked("write")
    def add_anchor_embeddings(
        self,
        image_embeddings: np.ndarray,
        text_embeddings: np.ndarray,
        *,
        payloads: Sequence[Mapping[str, Any]] | None = None,
        on_duplicate: OnDuplicate = "skip",
    ) -> IngestResult:
        """Add anchor pairs from precomputed embeddings.

        Every catalog is brought up to date in the same call: exactly the items a new anchor
        affects are re-computed (:mod:`asif_qdrant.retriever.recompute`; :attr:`last_edit`).

        Args:
            image_embeddings: ``(n, d_image)`` embeddings of the anchor images.
            text_embeddings: ``(n, d_text)`` embeddings of their captions.
            payloads: Payload per pair (for example ``{"caption": ...}``).
            on_duplicate: As in :meth:`add_anchors`. A pair's key is that of its payload's
                ``image`` file and ``caption`` when both are given, else the sha256 of its two
                float32 rows.

        Returns:
            The anchor ids, as in :meth:`add_anchors`. Ids are never reused, also after
            deletions.
        """
        args = (payloads, on_duplicate)
        return edits.add_anchor_embeddings(self._state, image_embeddings, text_embeddings, *args)

    @locked("write")
    def delete_anchors(self, ids: Iterable[int], *, purge: bool = False) -> int:
        """Delete anchor pairs by id from both anchor collections, and from every catalog.

        The items that gave a deleted anchor weight are re-computed, so every catalog vector
        equals a full re-index (:attr:`last_edit` says what was done).

        Args:
            ids: Anchor ids. Every id must exist: if any is unknown, nothing is deleted.
            purge: Also rewrite the anchor collections and the touched catalogs, so that the
                deleted pairs leave the engine's files on disk too (a full rewrite).

        Returns:
            How many pairs were deleted.

        Raises:
            AnchorSetError: If an id is not an anchor of this model (nothing is deleted then).
        """
        return edits.delete_anchors(self._state, ids, purge=purge)

    @locked("write")
    def reindex(self, collection: str | None = None) -> EditReport:
        """Re-compute catalog vectors from the items' stored embeddings (no encoding).

        The full re-index that edits are checked against; it also repairs a stale catalog.

        Args:
            collection: One catalog; ``None``: every catalog of the model.

        Returns:
            What was done (also in :attr:`last_edit`).
        """
        return catalogs.reindex(self._state, collection)

    @locked("read")
    def list_anchors(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The anchor pairs' ids and payloads, in id order."""
        return anchors.list_anchors(self._state, limit=limit)

    @locked("read")
    def anchor_embeddings(self, modality: Modality) -> tuple[list[int], np.ndarray]:
        """Read back the stored anchor embeddings of one modality: ``(ids, (n, d) array)``."""
        return anchors.anchor_embeddings(self._state, modality)

    # -- relative vectors ----------------------------------------------------------------------
    @locked("read")
    def embed_images(
        self, images: Sequence[ImageInput], *, show_progress_bar: bool | None = None
    ) -> list[SparseVector]:
        """Sparse relative vectors of images (over anchor ids)."""
        return anchors.embed_images(self._state, images, show_progress_bar)

    @locked("read")
    def embed_texts(
        self, texts: Sequence[str], *, show_progress_bar: bool | None = None
    ) -> list[SparseVector]:
        """Sparse relative vectors of texts (over anchor ids)."""
        return anchors.embed_texts(self._state, texts, show_progress_bar)

    @locked("read")
    def relative_from_embeddings(
        self, embeddings: np.ndarray, modality: Modality
    ) -> list[SparseVector]:
        """Relative vectors of precomputed embeddings of ``modality``.

        The ``k`` nearest anchors of the same modality, weighed by the recipe of
        :func:`~asif_qdrant.relative_topk` (ties at the k-th place: the lower id wins);
        anchors of weight 0 are left out.
        """
        return anchors.relative_from_embeddings(self._state, embeddings, modality)

    # -- catalogs ------------------------------------------------------------------------------
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
        on_duplicate: OnDuplicate = "skip",
    ) -> IngestResult:
        """Store catalog items (images, then texts) with their ASIF sparse vectors.

        Each payload also records the item's ``modality`` and its ``image`` path or ``text``;
        each item keeps its embedding, so that edits never encode it again.

        Args:
            collection: The catalog collection (created on first use).
            images: Catalog images.
            texts: Catalog texts.
            payloads: One payload per item.
            ids: One point id per item (an int in 0..2**64-1 or a UUID, any spelling:
                stored lower-case with dashes; bool refused); items are upserted by them.
                Default: consecutive ints past every id stored, so never one of yours.
            show_progress_bar: Override the model's setting.
            captions: One caption (or None) per image: stored as the image item's caption
                vectors (payload ``caption``), searched with ``search(..., target="caption")``.
            on_duplicate: An item already stored (the same id; without ids, the same content
                key: the sha256 of the image bytes or text, payload ``asif_key``): ``"skip"``
                it (default), ``"replace"`` it, or ``"add"`` it again as a new item.

        Returns:
            The items' point ids in input order (a skipped item: its stored id), with the
            counts ``added``, ``already_present`` and ``replaced``.
        """
        args = (images, texts, payloads, ids, show_progress_bar, captions, on_duplicate)
        return catalogs.index(self._state, collection, *args)

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
        on_duplicate: OnDuplicate = "skip",
    ) -> IngestResult:
        """Store catalog items from precomputed embeddings of one modality.

        ``embeddings`` are ``(n, dim)`` embeddings of ``modality`` from this model's encoder;
        ``caption_embeddings`` (image items only) ``(n, d_text)`` embeddings of their
        captions (a row of NaN: no caption). An item's key is its payload's ``image`` file
        or ``text`` when given, else the sha256 of its float32 row. The rest is as in
        :meth:`index`.
        """
        args = (payloads, ids, show_progress_bar, caption_embeddings, on_duplicate)
        return catalogs.index_embeddings(self._state, collection, embeddings, modality, *args)

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
        on_duplicate: OnDuplicate = "skip",
    ) -> IndexJob:
        """Index an input in chunks that each commit for good, so a killed run can resume.

        The input is image paths and texts (as :meth:`index`), or ``embeddings`` of one
        ``modality`` (as :meth:`index_embeddings`). Ids are deterministic (item ``row`` gets
        ``start + row``); ``resume=True`` with the same input skips the items already
        stored. After each chunk of ``chunk_size`` items is committed, ``on_commit(first_row,
        end_row, total)`` is called. Items already in the catalog (same content key, as in
        :meth:`index`) are left alone by ``on_duplicate="skip"`` and counted in
        ``already_present``. The guarantees, and an example, are those of
        :func:`asif_qdrant.retriever.catalogs.resumable_index`.
        """
        args = (images, texts, embeddings, modality, resume, chunk_size, on_commit)
        return catalogs.resumable_index(
            self._state, collection, *args, show_progress_bar, on_duplicate
        )

    # -- search ----------------------------------------------------------------------------------
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
            :mod:`asif_qdrant.retriever.search` has an example of each method.
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
        opts = search.search_options(self._state, collection, options, fields)
        return search.search_batch(self._state, collection, queries, opts)

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

        ``embeddings`` are ``(n, dim)`` query embeddings of ``modality`` ("image" or "text");
        ``options`` and ``fields`` are as in :meth:`search` (``item_modality`` filters the
        catalog items). Returns one list of hits per query row.
        """
        m = self._state
        m.layout.anchors(modality)  # validates the modality
        opts = search.search_options(m, collection, options, fields)
        unit = l2_normalize(m.check_embeddings("embeddings", embeddings, modality))
        return search.search_embeddings(m, collection, list(unit), [modality] * len(unit), opts)

    @locked("read")
    def confidence(self, queries: Sequence[str | ImageInput]) -> np.ndarray:
        """How much each query looks like the anchors: a calibrated "no match" score in [0, 1].

        The share of the anchors' own (leave-one-out) best cosines at or below the query's
        best cosine to the anchors of its modality; ``search(..., min_confidence=c)`` refuses
        queries below ``c`` (see :mod:`asif_qdrant.retriever.calibration`).
        """
        return query_confidence(self._state, queries)

    @locked("read")
    def confidence_of_embeddings(self, embeddings: np.ndarray, modality: Modality) -> np.ndarray:
        """:meth:`confidence` of precomputed ``(n, dim)`` query embeddings of ``modality``."""
        return confidence_of_embeddings(self._state, embeddings, modality)

    # -- zero-shot classification ----------------------------------------------------------------
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

        Args:
            images: Images (or their sparse vectors from :meth:`embed_images`).
            labels: Class names, e.g. ``["cat", "dog"]``.
            templates: Prompt templates with ``{}`` for the label (``{a}``: its article);
                default: the model's (``ASIF(templates=...)``), else ``("a photo of {a} {}.",)``.
            template_strategy: How several templates combine: ``"mean-embedding"`` (the
                default, the best on average in docs/RESULTS.md), ``"mean-relative"`` or
                ``"max"`` (each label scores its best prompt, as the ASIF reference does).
            min_score: An image whose best score is below this gets ``unknown_label``.
            min_shared_anchors: An image sharing fewer anchors with its best prompt gets
                ``unknown_label`` (``1``: only images sharing nothing with every prompt).
            unknown_label: The "does not know" outcome.
            method: ``"asif"``, ``"csa"`` (a model built with ``csa_dim``) or ``"hybrid"``
                (the RRF of both rankings); the last two need images, not sparse vectors.

        Returns:
            The predicted label per image (:meth:`classify_scores` gives the scores;
            :meth:`explain_label` says why a label won).
        """
        floors = (min_score, min_shared_anchors, unknown_label)
        m = self._state
        return zeroshot.classify(m, images, labels, templates, template_strategy, *floors, method)[
            0
        ]

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
            ``(n_images, n_labels)`` ``float32`` scores, labels in the given order
            (:mod:`asif_qdrant.retriever.zeroshot` has an example).
        """
        m, strategy = self._state, template_strategy
        return zeroshot.classify(m, images, labels, templates, strategy, None, None, "", method)[1]

    # -- explanations --------------------------------------------------------------------------
    @locked("read")
    def explain(
        self,
        query: str | ImageInput | SparseVector,
        item: Any,
        collection: str | None = None,
    ) -> Explanation:
        """The anchor pairs behind a score: why ``item`` matches ``query``.

        The score is a dot product over anchor ids: the shared anchors' contributions (query
        weight x item weight) sum to it, each with its caption, image and both weights.

        Args:
            query: A text, an image or a sparse vector (as for :meth:`search`).
            item: A catalog item's id when ``collection`` is given; otherwise a second input
                (text, image or sparse vector) to compare the query with.
            collection: The catalog holding ``item``.

        Returns:
            An :class:`~asif_qdrant.retriever.explain.Explanation` (``.table()``,
            ``.as_dict()``; :func:`asif_qdrant.plotting.explain_figure` draws it).

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
        return explain.explain_match(self._state, query, item, collection)

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

        The difference of the two labels' scores (as :meth:`classify` scores them) is split
        over anchors: ``w_image * (w_label - w_versus)``. ``labels``, ``templates`` and
        ``template_strategy`` are as in :meth:`classify`; ``label`` defaults to the
        predicted label, ``versus`` to the runner-up.

        Returns:
            A :class:`~asif_qdrant.retriever.explain.LabelExplanation`.
        """
        args = (templates, template_strategy, label, versus)
        return explain.explain_label(self._state, image, labels, *args)

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

        See :func:`asif_qdrant.retriever.explain.audit_anchors`. Deleting the top ones
        (:meth:`delete_anchors`) is the paper's "remove the broken samples" edit.
        """
        args = (templates, template_strategy)
        return explain.audit_anchors(self._state, images, truth, labels, *args)

    # -- lifecycle -----------------------------------------------------------------------------
    @locked("write")
    def check_integrity(
        self, *, repair: bool = True, drop_unpaired: bool = False
    ) -> IntegrityReport:
        """Check that the anchor collections are paired and the catalogs current; repair.

        Opening a model does this too, but repairs only a store this process holds alone
        (the embedded engine); on a server, call this once no other process is editing.

        Args:
            repair: Roll back or complete what an interrupted edit left, register catalogs
                the fingerprint lacks (else only report).
            drop_unpaired: Also delete anchors whose pair is gone (no edit explains them).

        Returns:
            What was found and done (also in :attr:`integrity`); see
            :mod:`asif_qdrant.retriever.integrity`.
        """
        self._state.integrity = check_integrity(
            self._state, repair=repair, explicit=True, drop_unpaired=drop_unpaired
        )
        return self._state.integrity  # type: ignore[no-any-return]

    @locked("write")
    def close(self) -> None:
        """Flush and close the store (and release the in-memory anchor indexes)."""
        anchors.close_anchor_indexes(self._state)
        self._state.store.close()

    def __enter__(self) -> ASIF:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_path() -> Path:
    """Where the CLI keeps its model when ``--path`` is not given."""
    return Path(os.environ.get("ASIF_QDRANT_PATH", "asif-data"))
