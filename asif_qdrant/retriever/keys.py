"""Stable keys of what is ingested, canonical point ids, and portable image references.

An anchor pair or a catalog item gets a *key* that names its content, stored in its payload
under :data:`KEY_FIELD`, so adding the same thing again is found and reported instead of
stored twice (``on_duplicate``):

* an image: ``image:<sha256 of its bytes>`` (a file's bytes, the given bytes, or a PIL image's
  / array's pixels with their mode and shape);
* a text: ``text:<sha256 of its UTF-8>``;
* an anchor pair: ``pair:<sha256 of the image key and the caption>``;
* precomputed embeddings (no bytes): the payload's ``image`` path (its file's bytes when it
  still exists) or ``text``; else ``embedding:<sha256 of the float32 row(s)>``, so only the
  very same numbers are the same item.

Catalog items given the user's own ids are keyed by the id itself (one canonical form per id
kind: :func:`canonical_id`). Image paths are stored resolved and absolute, next to the file's
content hash (:data:`IMAGE_HASH_FIELD`), so :func:`image_status` can tell later whether the
file has moved or changed.

Example:
    >>> canonical_id("6F9619FF8B86D011B42D00C04FC964FF")
    '6f9619ff-8b86-d011-b42d-00c04fc964ff'
    >>> text_key("a cat") == text_key("a cat") != text_key("a cat.")
    True
    >>> IngestResult([3, 4], added=1, already_present=1).summary()
    '1 added, 1 already present'
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from asif_qdrant.errors import InvalidInputError, check_one_of
from asif_qdrant.store.base import PointId

__all__ = [
    "IMAGE_HASH_FIELD",
    "KEY_FIELD",
    "ON_DUPLICATE",
    "IngestResult",
    "OnDuplicate",
    "anchor_key",
    "canonical_id",
    "canonical_ids",
    "check_on_duplicate",
    "embedding_key",
    "file_sha256",
    "image_key",
    "image_ref",
    "image_ref_key",
    "image_status",
    "portable_payload",
    "portable_payload_and_key",
    "stored_image",
    "text_key",
]

logger = logging.getLogger("asif_qdrant.model")

#: The payload field holding an anchor pair's or a catalog item's key.
KEY_FIELD = "asif_key"
#: The payload field holding the sha256 of a stored image path's file.
IMAGE_HASH_FIELD = "image_sha256"
#: What adding something already present does.
OnDuplicate = Literal["skip", "replace", "add"]
ON_DUPLICATE: tuple[str, ...] = ("skip", "replace", "add")
_UINT64 = 2**64


class IngestResult(list):  # type: ignore[type-arg]
    """The ids of one ingestion call, in input order, with what was done.

    A plain list of ids (an item already present has its stored id), plus the counts.

    Attributes:
        added: Items (or anchor pairs) written new.
        already_present: Items found already stored and left alone (``on_duplicate="skip"``).
        replaced: Items found already stored and written again (``"replace"``).

    Example:
        >>> r = IngestResult([0, 1, 7], added=2, already_present=1)
        >>> r == [0, 1, 7], r.as_dict()["already_present"]
        (True, 1)
    """

    def __init__(
        self,
        ids: Sequence[PointId] = (),
        *,
        added: int = 0,
        already_present: int = 0,
        replaced: int = 0,
    ) -> None:
        super().__init__(ids)
        self.added = added
        self.already_present = already_present
        self.replaced = replaced

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-serialisable)."""
        return {
            "added": self.added,
            "already_present": self.already_present,
            "replaced": self.replaced,
            "ids": list(self),
        }

    def summary(self) -> str:
        """One line for people: ``'12 added, 30 already present'``."""
        parts = [f"{self.added} added"]
        if self.already_present:
            parts.append(f"{self.already_present} already present")
        if self.replaced:
            parts.append(f"{self.replaced} replaced")
        return ", ".join(parts)


def check_on_duplicate(owner: str, value: Any) -> str:
    """Validate ``on_duplicate``: ``"skip"``, ``"replace"`` or ``"add"``."""
    return check_one_of(owner, "on_duplicate", value, ON_DUPLICATE)


# -- ids -----------------------------------------------------------------------------------------
def canonical_id(value: Any) -> PointId:
    """One canonical form per point-id kind: an unsigned 64-bit int, or a lower-case UUID.

    ``bool`` is refused (``True`` would silently be point 1); numpy integers become ``int``; a
    UUID in any form Python reads (upper case, no dashes, ``urn:uuid:``, braces, a
    :class:`uuid.UUID`) becomes its lower-case dashed form, so two spellings are one id.

    Raises:
        InvalidInputError: Anything else (negative or too large ints, other strings, floats).

    Example:
        >>> canonical_id("urn:uuid:6F9619FF-8B86-D011-B42D-00C04FC964FF"), canonical_id(7)
        ('6f9619ff-8b86-d011-b42d-00c04fc964ff', 7)
    """
    allowed = "an int in 0..2**64-1 or a UUID (a str or uuid.UUID)"
    if isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"A point id must be {allowed}. Got the bool {value!r}.")
    if isinstance(value, (int, np.integer)):
        if not 0 <= int(value) < _UINT64:
            raise InvalidInputError(f"A point id must be {allowed}. Got {int(value)}.")
        return int(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            pass
    raise InvalidInputError(f"A point id must be {allowed}. Got {value!r:.80}.")


def canonical_ids(ids: Sequence[Any], n: int) -> list[PointId]:
    """``n`` distinct point ids in canonical form (distinct *after* canonicalising)."""
    ids = list(ids)
    if len(ids) != n:
        raise InvalidInputError(f"'ids' must have one entry per item ({n}). Got {len(ids)}.")
    out = [canonical_id(x) for x in ids]
    seen: dict[PointId, int] = {}
    for j, pid in enumerate(out):
        if pid in seen:
            raise InvalidInputError(
                f"'ids' must be distinct. Ids {seen[pid]} ({ids[seen[pid]]!r:.60}) and {j} "
                f"({ids[j]!r:.60}) are the same point id {pid!r}."
            )
        seen[pid] = j
    return out


# -- content keys --------------------------------------------------------------------------------
def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str | None:
    """The sha256 of a file's bytes, or ``None`` when it cannot be read."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def image_key(x: Any) -> str:
    """The key of one image input: the sha256 of its bytes (a path: of the file's bytes).

    Example:
        >>> image_key(b"abc") == "image:" + hashlib.sha256(b"abc").hexdigest()
        True
    """
    if isinstance(x, (str, os.PathLike)):
        digest = file_sha256(x)
        return f"image:{digest}" if digest else f"image-path:{Path(x).resolve()}"
    if isinstance(x, (bytes, bytearray, memoryview)):
        return f"image:{_sha(bytes(x))}"
    if isinstance(x, np.ndarray):
        arr = np.ascontiguousarray(x)
        return f"image:{_sha(str((arr.shape, arr.dtype.str)).encode(), arr.tobytes())}"
    if hasattr(x, "tobytes") and hasattr(x, "mode") and hasattr(x, "size"):  # a PIL image
        return f"image:{_sha(str((x.mode, x.size)).encode(), x.tobytes())}"
    raise InvalidInputError(f"Cannot key an image input of type {type(x).__name__}.")


def text_key(text: str) -> str:
    """The key of one text: the sha256 of its UTF-8 bytes."""
    return f"text:{_sha(text.encode('utf-8'))}"


def anchor_key(image_key_: str, caption: str) -> str:
    """The key of an anchor pair: the sha256 of its image's key and its caption."""
    digest = _sha(image_key_.encode(), b"\0", caption.encode("utf-8"))
    return f"pair:{digest}"


def embedding_key(*rows: np.ndarray) -> str:
    """The key of precomputed embedding row(s): the sha256 of their float32 bytes."""
    return "embedding:" + _sha(*(np.asarray(r, np.float32).tobytes() for r in rows))


# -- image references ----------------------------------------------------------------------------
def image_ref(x: Any) -> dict[str, str]:
    """The payload fields that reference an image input: resolved path and content hash.

    A path is stored resolved and absolute with the sha256 of its file; bytes, PIL images
    and arrays have no path (``{}``).
    """
    if not isinstance(x, (str, os.PathLike)):
        return {}
    path = Path(x).expanduser().resolve()
    digest = file_sha256(path)
    return {"image": str(path), **({IMAGE_HASH_FIELD: digest} if digest else {})}


def image_ref_key(x: Any) -> tuple[dict[str, str], str]:
    """:func:`image_ref` and :func:`image_key` of one image input, reading a file once.

    Example:
        >>> image_ref_key(b"abc") == ({}, image_key(b"abc"))
        True
    """
    ref = image_ref(x)
    if IMAGE_HASH_FIELD in ref:
        return ref, f"image:{ref[IMAGE_HASH_FIELD]}"
    return ref, image_key(ref.get("image", x))


def portable_payload_and_key(payload: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """:func:`portable_payload` and the key of its ``image`` path (None: no str ``image``).

    The file is read once, for both the stored hash and the key.
    """
    out = dict(payload)
    raw = out.get("image")
    if not isinstance(raw, str):
        return out, None
    if not raw:
        return out, image_key(raw)
    ref, key = image_ref_key(raw)
    out.update(ref)
    return out, key


def portable_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload whose ``image`` path (a str) is stored resolved, with its file's hash."""
    return portable_payload_and_key(payload)[0]


def image_status(payload: Mapping[str, Any]) -> tuple[str | None, str]:
    """Where a stored image reference points now: ``(path, status)``.

    ``status`` is ``"ok"``, ``"moved"`` (no file there: moved or deleted), ``"changed"`` (the
    file's bytes differ from the stored hash) or ``"none"`` (no image path stored). A
    relative path (models built before paths were stored absolute) resolves against the
    working folder.
    """
    raw = payload.get("image")
    if not isinstance(raw, str) or not raw:
        return None, "none"
    path = str(Path(raw).expanduser().resolve())
    if not Path(path).is_file():
        return path, "moved"
    stored = payload.get(IMAGE_HASH_FIELD)
    if isinstance(stored, str) and file_sha256(path) != stored:
        return path, "changed"
    return path, "ok"


def stored_image(payload: Mapping[str, Any], what: str) -> str | None:
    """The stored image path of ``what`` (an anchor, an item), resolved; warns if moved/changed.

    A warning names the path when its file is gone (``image moved: <path>``) or its bytes
    differ from the hash stored with it (``image changed: <path>``).
    """
    path, status = image_status(payload)
    if status == "moved":
        logger.warning("image moved: %s (the image of %s; no file there any more)", path, what)
    elif status == "changed":
        logger.warning("image changed: %s (the image of %s differs from when stored)", path, what)
    return path
