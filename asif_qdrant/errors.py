"""One exception tree for the whole library.

Every error raised on purpose by ``asif_qdrant`` derives from :class:`ASIFError`, so callers
can catch them all with one ``except``. Errors about arguments also derive from
:class:`ValueError` (or :class:`LookupError`) so that code written against the standard
exceptions keeps working, as scikit-learn does with ``InvalidParameterError``.

Example:
    >>> from asif_qdrant.errors import ASIFError, InvalidParameterError, check_int
    >>> try:
    ...     check_int("k", "ASIF", 0, minimum=1)
    ... except InvalidParameterError as e:
    ...     print(e)
    The 'k' parameter of ASIF must be an int >= 1. Got 0 instead.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

__all__ = [
    "ASIFError",
    "AnchorSetError",
    "CollectionNotFoundError",
    "EncoderLoadError",
    "FingerprintMismatchError",
    "ImageDecodeError",
    "InvalidInputError",
    "InvalidParameterError",
    "StoreError",
    "check_int",
    "check_real",
]


class ASIFError(Exception):
    """Base class of every error raised by asif-qdrant."""


class InvalidParameterError(ASIFError, ValueError, TypeError):
    """A hyperparameter or argument has a value or type that is not allowed.

    The message follows one template: "The 'x' parameter of Y must be <allowed>. Got <value>
    instead."
    """


class InvalidInputError(ASIFError, ValueError):
    """Input data (images, texts, embeddings) cannot be used as given."""


class ImageDecodeError(InvalidInputError):
    """An image input could not be opened or decoded."""


class AnchorSetError(ASIFError, ValueError):
    """The anchor set cannot serve the request (for example, it is empty)."""


class CollectionNotFoundError(ASIFError, LookupError):
    """A Qdrant collection that the operation needs does not exist."""


class FingerprintMismatchError(ASIFError):
    """A store was opened with encoders or settings other than the ones it was built with."""


class StoreError(ASIFError):
    """The Qdrant backend failed; the original exception is chained as ``__cause__``."""


class EncoderLoadError(ASIFError):
    """An encoder could not be loaded (unknown name, missing weights, no network)."""


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def check_int(name: str, owner: str, value: Any, *, minimum: int | None = None) -> int:
    """Validate an integer parameter and return it as a plain ``int``.

    Args:
        name: The parameter's name, used in the message.
        owner: The function or class the parameter belongs to, used in the message.
        value: The value to check. ``bool`` is refused even though it is an ``int``.
        minimum: The smallest allowed value, if any.

    Returns:
        The value as ``int``.

    Raises:
        InvalidParameterError: If the value is not an integer or is below ``minimum``.

    Example:
        >>> check_int("k", "ASIF", 800, minimum=1)
        800
    """
    allowed = "an int" + (f" >= {minimum}" if minimum is not None else "")
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be {allowed}. Got {_fmt(value)} instead."
        )
    if minimum is not None and value < minimum:
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be {allowed}. Got {_fmt(value)} instead."
        )
    return int(value)


def check_real(name: str, owner: str, value: Any, *, greater_than: float | None = None) -> float:
    """Validate a finite real parameter and return it as a plain ``float``.

    Args:
        name: The parameter's name, used in the message.
        owner: The function or class the parameter belongs to, used in the message.
        value: The value to check.
        greater_than: The value must be strictly greater than this, if given.

    Returns:
        The value as ``float``.

    Raises:
        InvalidParameterError: If the value is not a finite real number or is too small.

    Example:
        >>> check_real("p", "ASIF", 8, greater_than=0)
        8.0
    """
    allowed = "a finite float" + (f" > {greater_than:g}" if greater_than is not None else "")
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be {allowed}. Got {_fmt(value)} instead."
        )
    if greater_than is not None and not value > greater_than:
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be {allowed}. Got {_fmt(value)} instead."
        )
    return float(value)
