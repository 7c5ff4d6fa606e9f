"""The one progress-bar switch of the package: ``show_progress_bar`` -> shown or not.

As in sentence-transformers, ``show_progress_bar=None`` follows the logger level: bars are
shown when the package logs at INFO or DEBUG, hidden otherwise (the default WARNING level).
Every long loop of the package (encoding, indexing, edits, transfers) goes through
:func:`progress_bar`.

Example:
    >>> import logging
    >>> show_progress(True), show_progress(False)
    (True, False)
    >>> with progress_bar(total=3, desc="Demo", unit="item", show=False) as bar:
    ...     bar.disable
    True
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from asif_qdrant.errors import InvalidParameterError

__all__ = ["progress_bar", "show_progress"]

_LOGGER = logging.getLogger("asif_qdrant")


def show_progress(
    show_progress_bar: bool | None,
    log: logging.Logger | None = None,
    owner: str = "asif_qdrant",
) -> bool:
    """Resolve ``show_progress_bar``: a bool as given, ``None`` from the logger level.

    Args:
        show_progress_bar: ``True``, ``False`` or ``None`` (follow ``log``'s level).
        log: The logger whose effective level decides for ``None`` (default: the package's).
        owner: The function named in the error message.

    Returns:
        Whether to show a progress bar.

    Raises:
        InvalidParameterError: If ``show_progress_bar`` is not a bool or ``None``.

    Example:
        >>> show_progress(None, logging.getLogger("asif_qdrant.demo"))
        False
    """
    if show_progress_bar is None:
        return (log or _LOGGER).getEffectiveLevel() <= logging.INFO
    if not isinstance(show_progress_bar, (bool, np.bool_)):
        raise InvalidParameterError(
            f"The 'show_progress_bar' parameter of {owner} must be a bool or None. "
            f"Got {show_progress_bar!r} instead."
        )
    return bool(show_progress_bar)


def progress_bar(
    iterable: Any = None, *, total: int | None = None, desc: str, unit: str, show: bool
) -> tqdm:
    """A ``tqdm.auto`` bar with the package's conventions (named, counted in ``unit``).

    Args:
        iterable: What to iterate over (optional; else ``update`` it by hand).
        total: The number of units.
        desc: What is being done, e.g. ``"Indexing pets"`` (never a bare "Batches").
        unit: What is counted: ``"item"``, ``"image"``, ``"point"``...
        show: Whether to show it (:func:`show_progress`).

    Returns:
        The bar (a context manager).
    """
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not show)
