"""Argument checks shared by the adapter's classes: the model, texts, image paths, metadata.

Each check raises :class:`~asif_qdrant.errors.InvalidInputError` (or
:class:`~asif_qdrant.errors.InvalidParameterError` for the model) with a message that names
the method it guards (``owner``).

Example:
    >>> check_texts("Demo.add_texts", ("a", "b"))
    ['a', 'b']
    >>> check_uris("Demo.add_images", ["https://example.com/cat.png"])
    Traceback (most recent call last):
    ...
    asif_qdrant.errors.InvalidInputError: Demo.add_images: image 0 is a web URL ('https://example.com/cat.png'); only local files are read. Download it first.
"""  # noqa: E501

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from asif_qdrant import ASIF
from asif_qdrant.errors import InvalidInputError, InvalidParameterError

__all__ = [
    "ImageURI",
    "Metadatas",
    "PointIds",
    "check_asif",
    "check_metadatas",
    "check_query",
    "check_texts",
    "check_uris",
]

#: An image given by its file path.
ImageURI = str | os.PathLike[str]
#: One metadata mapping per item, or None.
Metadatas = Sequence[Mapping[str, Any]] | None
#: Point ids (ints or UUID strings), or None for the default ids.
PointIds = Sequence[int | str] | None


def check_asif(owner: str, asif: Any) -> ASIF:
    """The ``asif`` argument, if it is an :class:`asif_qdrant.ASIF` model."""
    if not isinstance(asif, ASIF):
        raise InvalidParameterError(
            f"The 'asif' parameter of {owner} must be an asif_qdrant.ASIF model. "
            f"Got {type(asif).__name__} instead."
        )
    return asif


def check_texts(owner: str, texts: Any) -> list[str]:
    """A list of texts as a list of str (one bare str is refused: wrap it in a list)."""
    if isinstance(texts, str):
        raise InvalidInputError(f"{owner} takes a list of texts. Got one str: wrap it in a list.")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInputError(
                f"{owner}: text {i} must be a str. Got {type(t).__name__} ({t!r:.60})."
            )
    return texts


def check_query(owner: str, text: Any) -> str:
    """One query text."""
    if not isinstance(text, str):
        raise InvalidInputError(
            f"{owner} takes one str. Got {type(text).__name__} ({text!r:.60}); embed images "
            "with embed_image([...])."
        )
    return text


def check_uris(owner: str, uris: Any) -> list[ImageURI]:
    """A list of local image file paths (one bare path, or a web URL, is refused)."""
    if isinstance(uris, (str, os.PathLike)):
        raise InvalidInputError(
            f"{owner} takes a list of image paths. Got one path ({str(uris)!r:.80}): wrap it "
            "in a list."
        )
    uris = list(uris)
    for i, u in enumerate(uris):
        if not isinstance(u, (str, os.PathLike)):
            raise InvalidInputError(
                f"{owner}: image {i} must be a file path (str or os.PathLike). Got "
                f"{type(u).__name__}."
            )
        if isinstance(u, str) and u.split(":", 1)[0].lower() in ("http", "https"):
            raise InvalidInputError(
                f"{owner}: image {i} is a web URL ({u!r:.80}); only local files are read. "
                "Download it first."
            )
    return uris


def check_metadatas(metadatas: Sequence[Any] | None, n: int) -> None:
    """``metadatas``, when given, has one entry per item (``n``)."""
    if metadatas is not None and len(metadatas) != n:
        raise InvalidInputError(
            f"'metadatas' must have one entry per item ({n}). Got {len(metadatas)}."
        )
