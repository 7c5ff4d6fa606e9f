"""One exception tree for the whole library, and the validators that raise it.

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
import re
import unicodedata
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "ASIFError",
    "AnchorSetError",
    "CollectionNotFoundError",
    "EncoderLoadError",
    "FingerprintMismatchError",
    "ImageDecodeError",
    "InvalidInputError",
    "InvalidParameterError",
    "InvalidPayloadError",
    "ModelDamagedError",
    "ModelNotFoundError",
    "StoreError",
    "StoreLockedError",
    "check_int",
    "check_matrix",
    "check_one_of",
    "check_real",
    "is_blank",
    "redact_credentials",
]


_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s@'\"]*@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:api[-_]?key|apikey|key|token|password|secret)=)[^&\s'\"]*"
)


def redact_credentials(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``.

    The one redaction helper: a user name and password (``http://user:pass@host``) and
    secret query parameters (``?api-key=...``). Every :class:`ASIFError` message goes
    through it, and so do the store's messages and reprs.

    Example:
        >>> redact_credentials("cannot reach http://me:s3cr/et@db:6333/x?api-key=k3y&a=1")
        'cannot reach http://***@db:6333/x?api-key=***&a=1'
    """
    text = _URL_USERINFO.sub(r"\1***@", text)
    return _SECRET_PARAM.sub(r"\1***", text)


def is_blank(text: str) -> bool:
    r"""Whether ``text`` shows nothing: only whitespace, zero-width and control characters.

    ``str.strip`` keeps a zero-width space (U+200B), which an encoder still turns into a
    confident embedding; such a query or caption says nothing and is refused.

    Example:
        >>> is_blank(" \u200b\t\ufeff"), is_blank("a\u200b")
        (True, False)
    """
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs") for ch in text)


class ASIFError(Exception):
    """Base class of every error raised by asif-qdrant.

    Its message never shows the credentials of a URL (:func:`redact_credentials`).
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*(redact_credentials(a) if isinstance(a, str) else a for a in args))


class InvalidParameterError(ASIFError, ValueError, TypeError):
    """A hyperparameter or argument has a value or type that is not allowed.

    The message follows one template: "The 'x' parameter of Y must be <allowed>. Got <value>
    instead."
    """


class InvalidInputError(ASIFError, ValueError):
    """Input data (images, texts, embeddings) cannot be used as given."""


class ImageDecodeError(InvalidInputError):
    """An image input could not be opened or decoded."""


class InvalidPayloadError(InvalidInputError):
    """A payload cannot be stored: not JSON, too deep or large, or it uses a reserved key.

    The message names the row and the rule (``asif_qdrant.retriever.writes.check_payload``).
    """


class AnchorSetError(ASIFError, ValueError):
    """The anchor set cannot serve the request (for example, it is empty)."""


class CollectionNotFoundError(ASIFError, LookupError):
    """A Qdrant collection that the operation needs does not exist."""


class ModelNotFoundError(CollectionNotFoundError):
    """No ASIF model of that name in the store (the error names the models that are there)."""


class FingerprintMismatchError(ASIFError):
    """A store was opened with encoders or settings other than the ones it was built with."""


class StoreError(ASIFError):
    """The Qdrant backend failed; the original exception is chained as ``__cause__``."""


class EncoderLoadError(ASIFError):
    """An encoder could not be loaded (unknown name, missing weights, no network)."""


class StoreLockedError(StoreError):
    """An embedded store folder is held by another open store (this or another process).

    Attributes:
        holder_pid: The process id recorded by the holder, or None when it could not be read.
    """

    def __init__(self, message: str, holder_pid: int | None = None) -> None:
        super().__init__(message)
        self.holder_pid = holder_pid


class ModelDamagedError(ASIFError):
    """A model's collections disagree in a way no interrupted edit explains.

    Nothing was changed: ``asif-qdrant repair --check-only`` reports what is wrong and
    ``asif-qdrant repair`` fixes what it can prove.

    Attributes:
        problems: One line per problem found.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


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


def check_one_of(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """Validate a choice among ``allowed``; the message names the parameter and the choices.

    Example:
        >>> check_one_of("ASIF.search", "method", "csa", ("asif", "csa", "hybrid"))
        'csa'
    """
    if not isinstance(value, str) or value not in allowed:
        choices = (
            f"{allowed[0]!r} or {allowed[1]!r}"
            if len(allowed) == 2
            else "one of " + ", ".join(repr(a) for a in allowed)
        )
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be {choices}. Got {value!r:.100} instead."
        )
    return value


def check_matrix(
    x: Any,
    what: str,
    *,
    owner: str | None = None,
    dim: int | None = None,
    dim_text: str | None = None,
    dtype: Any = None,
    allow_1d: bool = False,
    nonzero_rows: bool = False,
) -> np.ndarray:
    """Validate a 2-D matrix of finite real numbers: the one input checker of the library.

    Args:
        x: The input (anything ``numpy.asarray`` takes).
        what: Its name in the message, e.g. ``"embeddings"``.
        owner: The function it was given to (named in the message when set).
        dim: The width it must have (not checked when ``None`` or when there are no rows).
        dim_text: How the message names the width (default ``"dim {dim}"``), e.g.
            ``"the image dim 8 of this model"``.
        dtype: Return a C-contiguous copy of this dtype (default: the array as it is).
        allow_1d: Take a 1-D array as one row (only with ``dim``).
        nonzero_rows: Refuse all-zero rows (they have no direction).

    Returns:
        The validated array.

    Raises:
        InvalidInputError: If it is not 2-D, not real, of another width, or not finite.

    Example:
        >>> check_matrix([[1, 2]], "queries", dim=2, dtype=np.float32).dtype
        dtype('float32')
        >>> check_matrix([[1.0, float("nan")]], "queries")
        Traceback (most recent call last):
        ...
        asif_qdrant.errors.InvalidInputError: 'queries' must contain only finite values. \
Row 0 holds NaN or inf.
    """
    given = f" given to {owner}" if owner else ""
    real = f"'{what}'{given} must be a 2-D numeric array of real numbers (rows, dim)"
    try:
        arr = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise InvalidInputError(f"{real}. Got {type(x).__name__}.") from e
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise InvalidInputError(f"{real}. Got dtype {arr.dtype}.")
    if arr.ndim == 1 and allow_1d and dim is not None:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidInputError(
            f"'{what}'{given} must be a 2-D array of shape (rows, dim). Got shape {arr.shape}."
        )
    if dim is not None and arr.shape[0] and arr.shape[1] != dim:
        raise InvalidInputError(
            f"'{what}'{given} must have {dim_text or f'dim {dim}'}. Got shape {arr.shape}."
        )
    # Cheap test first (a row sum is not finite when a value is not), exact test if it fails.
    if not np.isfinite(arr.sum(axis=1, dtype=np.float64)).all() and not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise InvalidInputError(
            f"'{what}'{given} must contain only finite values. Row {row} holds NaN or inf."
        )
    if dtype is not None:
        # Finite in float64 is not finite in float32 (1e39): check the values as stored.
        with np.errstate(over="ignore"):
            cast = np.ascontiguousarray(arr, dtype=dtype)
        if np.issubdtype(cast.dtype, np.floating) and not np.isfinite(cast).all():
            row = int(np.argwhere(~np.isfinite(cast))[0][0])
            raise InvalidInputError(
                f"'{what}'{given} must contain only values that fit in {cast.dtype} "
                f"(|x| <= {float(np.finfo(cast.dtype).max):.4g}). Row {row} holds a value "
                "beyond that range."
            )
        arr = cast
    if nonzero_rows and arr.size:
        zero = np.flatnonzero(~arr.any(axis=1))
        if zero.size:
            raise InvalidInputError(
                f"'{what}'{given} row {int(zero[0])} is all zeros: it has no direction."
            )
    return arr
