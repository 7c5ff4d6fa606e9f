"""One open ASIF model: its store, layout, fingerprint, settings, encoders and caches.

:class:`ModelState` is what every module of :mod:`asif_qdrant.retriever` works on; the
``ASIF`` facade holds one and delegates to those modules. It reads the fingerprint when the
model opens and resolves the encoders (lazily: a model used only with precomputed
embeddings never loads one); it writes nothing (writes go through
:mod:`asif_qdrant.retriever.writes`).

Example:
    >>> import tempfile
    >>> from asif_qdrant.store import EdgeStore
    >>> with EdgeStore(tempfile.mkdtemp()) as store:
    ...     m = ModelState(store, Layout("demo"))
    ...     m.open("precomputed/image", "precomputed/text", k=3, p=None)
    ...     fp = m.fingerprint
    ...     (fp.k, fp.p, fp.anchor_count, fp.text_encoder)
    (3, 8.0, 0, 'precomputed/text')
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from asif_qdrant.errors import (
    AnchorSetError,
    InvalidParameterError,
    ModelDamagedError,
    check_matrix,
)
from asif_qdrant.progress import show_progress
from asif_qdrant.retriever.fingerprint import Fingerprint
from asif_qdrant.retriever.layout import Layout
from asif_qdrant.store.base import Store
from asif_qdrant.types import Modality

if TYPE_CHECKING:
    from asif_qdrant.encoders.base import Encoder

__all__ = ["DEFAULT_K", "DEFAULT_P", "ModelState", "check_store_args", "connect"]

logger = logging.getLogger("asif_qdrant.model")

#: The paper's settings, used when a new model is created without ``k`` / ``p``.
DEFAULT_K = 800
DEFAULT_P = 8.0


def check_store_args(path: Any, client: Any, store: Any) -> None:
    """``ASIF`` takes exactly one of ``path``, ``client`` and ``store``."""
    given = sum(x is not None for x in (path, client, store))
    if given != 1:
        raise InvalidParameterError(
            "ASIF needs exactly one of 'path' (a folder for the embedded Qdrant engine), "
            f"'client' (a qdrant_client.QdrantClient) or 'store'. Got {given} of them."
        )


def connect(path: Any, client: Any, store: Any) -> tuple[Store, bool]:
    """The store ``ASIF`` works on, from exactly one of its three arguments.

    Returns:
        ``(store, owned)``: ``owned`` when this call opened it (and closing it is ours).
    """
    check_store_args(path, client, store)
    if store is not None:
        if not isinstance(store, Store):
            raise InvalidParameterError(
                "The 'store' parameter of ASIF must be an asif_qdrant.store.Store. "
                f"Got {type(store).__name__} instead."
            )
        return store, False
    if client is not None:
        from asif_qdrant.store.client import ClientStore

        return ClientStore(client), True
    from asif_qdrant.store.edge import EdgeStore

    return EdgeStore(path), True


def _pruned(catalog_nnz: int | None, k: int) -> int | None:
    """The stored ``catalog_nnz``: None (every non-zero) when it keeps all ``k``."""
    return catalog_nnz if catalog_nnz is not None and catalog_nnz < k else None


class ModelState:
    """The state of one open model (see the module docstring).

    Attributes:
        store: The Qdrant store.
        layout: The model's collection names.
        fingerprint: What the model was built with (set by :meth:`open`).
        batch_size: Inputs per encoder forward pass.
        device: Device of encoders loaded by name.
        show_progress_bar: The model's progress-bar setting (None: follow the logger).
        anchor_search: How new inputs find their nearest anchors ("auto", "qdrant", ...).
        encoders: The encoders loaded so far, by modality.
        anchor_indexes: Per modality ``(anchor version, in-memory anchor index)``.
        anchor_index_lock: Guards ``anchor_indexes``.
        anchor_rows: Per modality ``(anchor version, sorted ids, memory-mapped rows)``: the
            anchor cache the indexes were built from (:mod:`asif_qdrant.retriever.anchors`).
        csa_cache: ``(anchor version, fitted CSA or None)``.
        kth_ready: Per catalog: whether it stores the boundary vectors edits use.
        pending_next_id: Per catalog being written: the next id once the write succeeds.
        last_edit: What the last anchor edit did (an ``EditReport``), else None.
        integrity: What the open-time integrity check found (an ``IntegrityReport``).
        load_notice: Called as ``load_notice(modality, name)`` just before an encoder is
            loaded by name (the command line prints one line; None: nothing).
        load_seconds: Per modality, the seconds its encoder took to load (import included).
        calibration_cache: Per modality ``(anchor version, "no match" reference)``
            (:mod:`asif_qdrant.retriever.calibration`).
    """

    def __init__(
        self,
        store: Store,
        layout: Layout,
        *,
        batch_size: int = 32,
        device: str | None = None,
        show_progress_bar: bool | None = None,
        anchor_search: str = "auto",
    ) -> None:
        self.store = store
        self.layout = layout
        self.batch_size = batch_size
        self.device = device
        self.show_progress_bar = show_progress_bar
        self.anchor_search = anchor_search
        self.fingerprint: Fingerprint = Fingerprint(image_encoder="", text_encoder="")
        self.encoders: dict[str, Encoder] = {}
        self.anchor_indexes: dict[str, tuple[int, Any]] = {}
        self.anchor_index_lock = threading.Lock()
        self.anchor_rows: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        self.csa_cache: tuple[int, Any] | None = None
        self.kth_ready: dict[str, bool] = {}
        self.pending_next_id: dict[str, int | None] = {}
        self.last_edit: Any = None
        self.integrity: Any = None
        self.load_notice: Callable[[Modality, str], None] | None = None
        self.load_seconds: dict[str, float] = {}
        self.calibration_cache: dict[str, tuple[int, Any]] = {}

    # -- settings ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model's name."""
        return self.layout.name

    def describe(self) -> str:
        """The model in one line (``ASIF``'s repr)."""
        fp = self.fingerprint
        return (
            f"name={self.name!r}, anchors={fp.anchor_count}, k={fp.k}, p={fp.p}, "
            f"image_encoder={fp.image_encoder!r}, text_encoder={fp.text_encoder!r}, "
            f"store={self.store.describe()!r}"
        )

    def dim(self, modality: Modality) -> int | None:
        """The embedding dim of ``modality`` (None before the first anchors)."""
        return self.fingerprint.image_dim if modality == "image" else self.fingerprint.text_dim

    def progress(self, show_progress_bar: bool | None = None) -> bool:
        """Whether to show a progress bar: the call's setting, else the model's."""
        spb = self.show_progress_bar if show_progress_bar is None else show_progress_bar
        return show_progress(spb, logger, "ASIF")

    def require_anchors(
        self, hint: str = "with add_anchors() or add_anchor_embeddings() first"
    ) -> None:
        """Raise :class:`AnchorSetError` when the model has no anchors."""
        if self.fingerprint.anchor_count == 0:
            raise AnchorSetError(
                f"The ASIF model '{self.name}' has no anchors: add anchor pairs {hint}."
            )

    def check_embeddings(self, what: str, x: Any, modality: Modality) -> np.ndarray:
        """Validate embeddings of ``modality``: 2-D, real, finite, this model's dim, no zero row."""
        dim = self.dim(modality)
        return check_matrix(
            x,
            what,
            dim=dim,
            dim_text=f"the {modality} dim {dim} of this model",
            dtype=np.float32,
            nonzero_rows=True,
        )

    # -- opening -------------------------------------------------------------------------
    def read_fingerprint(self) -> Fingerprint | None:
        """The stored fingerprint, or None for a new model."""
        meta = self.layout.meta
        if not self.store.has_collection(meta):
            return None
        recs = self.store.retrieve(meta, [0])
        if not recs:
            return None
        return Fingerprint.from_payload(recs[0].payload)

    def open(
        self,
        image_encoder: str | Encoder | None,
        text_encoder: str | Encoder | None,
        *,
        k: int | None,
        p: float | None,
        catalog_nnz: int | None = None,
    ) -> None:
        """Read the fingerprint (or start one) and check the given settings against it.

        ``catalog_nnz`` at least ``k`` means every non-zero (stored as None).
        """
        from asif_qdrant.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER

        stored = self.read_fingerprint()
        if stored is None:
            self._refuse_orphan_anchors()
        defaults = {"image": DEFAULT_IMAGE_ENCODER, "text": DEFAULT_TEXT_ENCODER}
        names = {}
        for modality, spec in (("image", image_encoder), ("text", text_encoder)):
            names[modality] = self._resolve_encoder(modality, spec, stored, defaults[modality])
        if stored is None:
            self.fingerprint = Fingerprint(
                image_encoder=names["image"],
                text_encoder=names["text"],
                image_dim=self.encoders["image"].dim if "image" in self.encoders else None,
                text_dim=self.encoders["text"].dim if "text" in self.encoders else None,
                k=k if k is not None else DEFAULT_K,
                p=p if p is not None else DEFAULT_P,
            )
            self.fingerprint.catalog_nnz = _pruned(catalog_nnz, self.fingerprint.k)
        else:
            stored.check_setting("k", k, store=self.name)
            stored.check_setting("p", p, store=self.name)
            if catalog_nnz is not None and _pruned(catalog_nnz, stored.k) != stored.catalog_nnz:
                stored.check_setting("catalog_nnz", catalog_nnz, store=self.name)
            self.fingerprint = stored

    def _refuse_orphan_anchors(self) -> None:
        """Anchors without a fingerprint are damage, not a new model (k, catalogs unknown)."""
        layout, store = self.layout, self.store
        orphans = [
            c
            for c in (layout.image_anchors, layout.text_anchors)
            if store.has_collection(c) and store.count(c)
        ]
        if not orphans or store.has_collection(f"{layout.meta}.swapping"):
            return  # an import killed during its swap: the integrity check finishes it
        hint = (
            " Restore the meta collection (collections/"
            f"{layout.meta}.json and its folder on the embedded engine) or import the model "
            "from an export ('asif-qdrant import --overwrite')."
        )
        problem = (
            f"the fingerprint ('{layout.meta}') is missing but the anchor collections "
            f"{orphans} exist: k, p and the catalogs are unknown"
        )
        raise ModelDamagedError(
            f"The ASIF model '{self.name}' is damaged: {problem}. Nothing was changed "
            f"(it was not opened as a new model).{hint}",
            (problem,),
        )

    def _resolve_encoder(
        self,
        modality: Modality,
        spec: str | Encoder | None,
        stored: Fingerprint | None,
        default: str,
    ) -> str:
        """The encoder's name for the fingerprint; loads it now only when it must be checked.

        A name equal to the stored one, or any name for a new model, is loaded lazily on
        first use (a model used only with precomputed embeddings never loads one).
        """
        stored_name = None
        if stored is not None:
            stored_name = stored.image_encoder if modality == "image" else stored.text_encoder
        if spec is None:
            return stored_name if stored_name is not None else default
        if isinstance(spec, str) and (stored is None or spec == stored_name):
            return spec
        if isinstance(spec, str) and stored_name is not None:
            # Compared by canonical name, so a different encoder is refused unloaded.
            from asif_qdrant.encoders import encoder_name

            name = encoder_name(modality, spec)
            if name not in (stored_name, encoder_name(modality, stored_name)):
                stored.check_encoder(modality, name, None, store=self.name)  # type: ignore[union-attr]
            return stored_name
        encoder = self._load_encoder(modality, spec)
        if stored is not None:
            stored.check_encoder(modality, encoder.name, encoder.dim, store=self.name)
        self.encoders[modality] = encoder
        return encoder.name

    def _load_encoder(self, modality: Modality, spec: str | Encoder) -> Encoder:
        from asif_qdrant.encoders import load_image_encoder, load_text_encoder

        load = load_image_encoder if modality == "image" else load_text_encoder
        if not isinstance(spec, str):
            return load(spec, device=self.device)
        if self.load_notice is not None:
            self.load_notice(modality, spec)
        t0 = time.perf_counter()
        encoder = load(spec, device=self.device)
        self.load_seconds[modality] = time.perf_counter() - t0
        logger.info(
            "loaded the %s encoder %s in %.1f s", modality, spec, self.load_seconds[modality]
        )
        return encoder

    # -- encoders ------------------------------------------------------------------------
    def encoder(self, modality: Modality) -> Encoder:
        """The encoder of ``modality``, loaded on first use and checked against the model."""
        current = self.encoders.get(modality)
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
        self.encoders[modality] = enc
        return enc

    def encode(
        self, inputs: Sequence[Any], modality: Modality, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """Embed raw inputs with the encoder of their modality (L2-normalised rows)."""
        encoder = self.encoder(modality)
        spb = self.show_progress_bar if show_progress_bar is None else show_progress_bar
        return encoder.embed(list(inputs), batch_size=self.batch_size, show_progress_bar=spb)
