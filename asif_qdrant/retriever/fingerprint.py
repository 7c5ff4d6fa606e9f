"""The model's fingerprint: what an ASIF model was built with, stored beside its collections.

It names the two encoders (and their dims), ``k``, ``p``, and the anchor set's count and
version. Opening a model with other encoders than the stored ones is refused: the stored
anchor embeddings would not be comparable with the new ones, and every answer would be wrong
without any error.

Example:
    >>> fp = Fingerprint(image_encoder="timm/x", image_dim=8, text_encoder="st/y", text_dim=4)
    >>> try:
    ...     fp.check_encoder("text", "st/z", 4, store="asif")
    ... except FingerprintMismatchError as e:
    ...     print(str(e)[:89])
    The ASIF model 'asif' was built with the text encoder 'st/y' (dim 4), but was opened with
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from asif_qdrant.errors import FingerprintMismatchError

__all__ = ["DEFAULT_CLASSIFY_SPREAD", "FORMAT_VERSION", "Fingerprint"]

#: Version of the stored layout; bumped when the collections change incompatibly.
FORMAT_VERSION = 1
#: Zero-shot classification's default: each image and prompt vector gets the ``p`` at which
#: its weights spread over 30% of its kept anchors (docs/RESULTS.md, "Better answers").
DEFAULT_CLASSIFY_SPREAD = 0.3


@dataclass
class Fingerprint:
    """What an ASIF model was built with.

    Attributes:
        image_encoder: The image encoder's name.
        image_dim: Its embedding dim (None until the first anchors are added).
        text_encoder: The text encoder's name.
        text_dim: Its embedding dim (None until the first anchors are added).
        k: Anchors kept per relative vector.
        p: Exponent of the relative weights.
        anchor_count: Anchor pairs stored.
        anchor_version: Bumped on every edit of the anchor set.
        next_anchor_id: The next anchor id to hand out (ids are never reused).
        catalogs: Per catalog collection: the anchor version it was indexed with, next id.
        last_edit: Summary of the last anchor edit (operation, pairs, catalog items
            re-indexed and in total, seconds, version), or None before the first edit.
        pending_edit: The write-ahead marker of an anchor edit in flight:
            ``{"operation": "add", "ids": [first, end]}`` (the id range being added) or
            ``{"operation": "delete", "ids": [...]}``. Written before the first anchor
            write, cleared by the fingerprint write that records the edit; found set when
            a model is opened, it says which edit was interrupted
            (:mod:`asif_qdrant.integrity` completes or rolls it back). Stores written
            before this field load with None.
        pending_rewrite: The write-ahead marker of a collection rewrite in flight (a purge,
            a catalog migration): the collection, its staging copy, its point count, the
            new spec and the phase (``"copy"``: the original is intact; ``"swap"``: the
            staging copy is complete and verified). Found set on open, the rewrite is rolled
            back or finished (:mod:`asif_qdrant.retriever.journal`).
        csa_dim: Canonical dimensions of the CSA vectors (dense ``csa``) stored in the
            catalogs, or None when the model has no CSA (:mod:`asif_qdrant.csa`).
        csa_ridge: The relative ridge of the CSA fit.
        catalog_nnz: Non-zeros each catalog item stores: the largest weights of its k-sparse
            vector (:func:`asif_qdrant.retriever.recompute.prune`), or None: all of them.
            Stores written before this field load with None.
        templates: The model's own zero-shot prompt templates, used when a call gives none
            (``ASIF(templates=...)``); None: :data:`~asif_qdrant.retriever.zeroshot.
            DEFAULT_TEMPLATES`. Stores written before this field load with None.
        classify_k: The ``k`` of zero-shot classification's image and prompt vectors
            (``ASIF(classify_k=...)``; made at classification time, never stored in a
            catalog), or None: ``k``. Stores written before this field load with None.
        classify_p: A fixed ``p`` for zero-shot classification, or None: the spread rule
            (``classify_spread``), else ``p``. Stores written before ``classify_spread``
            existed load it as None, and so get the spread rule.
        classify_spread: The default ``p`` rule of zero-shot classification: a ``p`` per
            vector, at which its weights spread over this fraction of its kept anchors
            (:class:`asif_qdrant.relative.Spread`), or None: ``p``. Stores written before
            this field load with :data:`DEFAULT_CLASSIFY_SPREAD`.
        format: Layout version.
    """

    image_encoder: str
    text_encoder: str
    image_dim: int | None = None
    text_dim: int | None = None
    k: int = 800
    p: float = 8.0
    anchor_count: int = 0
    anchor_version: int = 0
    next_anchor_id: int = 0
    catalogs: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_edit: dict[str, Any] | None = None
    pending_edit: dict[str, Any] | None = None
    pending_rewrite: dict[str, Any] | None = None
    csa_dim: int | None = None
    csa_ridge: float = 0.1
    templates: list[str] | None = None
    catalog_nnz: int | None = None
    classify_k: int | None = None
    classify_p: float | None = None
    classify_spread: float | None = DEFAULT_CLASSIFY_SPREAD
    format: int = FORMAT_VERSION
    library: str = "asif-qdrant"

    def as_payload(self) -> dict[str, Any]:
        """Plain-Python form, stored as a Qdrant payload."""
        return asdict(self)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Fingerprint:
        """Inverse of :meth:`as_payload` (unknown keys are ignored, missing ones default).

        Raises:
            FingerprintMismatchError: If ``data`` is not an asif-qdrant fingerprint (no
                encoder names, or another library's).
        """
        if (
            not isinstance(data, dict)
            or not {"image_encoder", "text_encoder"} <= set(data)
            or data.get("library", "asif-qdrant") != "asif-qdrant"
        ):
            raise FingerprintMismatchError(
                "The meta collection holds something that is not an asif-qdrant model "
                f"fingerprint (keys {sorted(data)[:8] if isinstance(data, dict) else data!r}). "
                "Open the model under another name, or use another path."
            )
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def check_encoder(
        self,
        modality: Literal["image", "text"],
        name: str,
        dim: int | None,
        *,
        store: str,
    ) -> None:
        """Raise FingerprintMismatchError if ``name`` / ``dim`` differ from the stored ones."""
        stored_name = self.image_encoder if modality == "image" else self.text_encoder
        stored_dim = self.image_dim if modality == "image" else self.text_dim
        same_dim = stored_dim is None or dim is None or stored_dim == dim
        if stored_name == name and same_dim:
            return
        opened_dim = "" if dim is None else f" (dim {dim})"
        raise FingerprintMismatchError(
            f"The ASIF model '{store}' was built with the {modality} encoder '{stored_name}' "
            f"(dim {stored_dim}), but was opened with the {modality} encoder '{name}'"
            f"{opened_dim}. Open it with {modality}_encoder='{stored_name}' (or leave "
            f"{modality}_encoder unset to use the stored one), or build a new model under "
            "another name or path."
        )

    def check_setting(self, setting: str, value: float | None, *, store: str) -> None:
        """Raise FingerprintMismatchError if ``k``, ``p`` or ``catalog_nnz`` is given, differs."""
        stored = getattr(self, setting)
        if value is None or stored == value:
            return
        raise FingerprintMismatchError(
            f"The ASIF model '{store}' was built with {setting}={stored!r}, but was opened with "
            f"{setting}={value!r}. Stored catalog vectors depend on it: open the model without "
            f"'{setting}' (or with {setting}={stored!r}), or build a new model under another "
            "name or path."
        )
