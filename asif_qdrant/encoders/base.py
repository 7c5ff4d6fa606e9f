"""The one small Protocol every encoder implements, and the input checks they share.

An encoder turns a batch of inputs of one modality into an ``(n, dim)`` ``float32`` array of
L2-normalised embeddings. Nothing else in the library depends on timm or
sentence-transformers: any object with these three members can be passed to
:class:`asif_qdrant.ASIF`.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.encoders.base import Encoder
    >>> class Lengths:
    ...     name, dim = "lengths", 2
    ...     def embed(self, batch, *, batch_size=32, show_progress_bar=None):
    ...         x = np.array([[len(t), 1.0] for t in batch], dtype=np.float32)
    ...         return x / np.linalg.norm(x, axis=1, keepdims=True)
    >>> isinstance(Lengths(), Encoder)
    True
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from asif_qdrant.errors import InvalidInputError, InvalidParameterError

__all__ = [
    "VISION_BACKENDS",
    "Encoder",
    "as_list",
    "check_device_and_name",
    "text_only_imports",
    "vision_backends_hidden",
]

#: transformers' optional vision back-ends: it imports them whenever they are installed, so a
#: text encoder would pay for them (about 1 s) without ever using them.
VISION_BACKENDS = ("timm", "torchvision")

_TEXT_ONLY = {"on": False}


def text_only_imports(enabled: bool = True) -> None:
    """Import sentence-transformers without transformers' vision back-ends (process-wide).

    When on, the first import of sentence-transformers (by a text encoder) hides
    :data:`VISION_BACKENDS` from transformers, which then records them as unavailable for the
    rest of the process: its own image processors and timm wrappers stop working, while the
    library's timm image encoder, which imports timm itself, is unaffected. The command line
    turns it on (a text search then never imports timm or torchvision); the library leaves it
    off, so a program that also uses transformers for images is not changed behind its back.
    """
    _TEXT_ONLY["on"] = enabled


@contextlib.contextmanager
def vision_backends_hidden() -> Iterator[None]:
    """While inside, with :func:`text_only_imports` on: :data:`VISION_BACKENDS` cannot be imported.

    Only when transformers is not imported yet (it probes once) and the back-ends neither;
    they become importable again on exit.
    """
    hide = [
        name
        for name in VISION_BACKENDS
        if _TEXT_ONLY["on"] and "transformers" not in sys.modules and name not in sys.modules
    ]
    for name in hide:
        sys.modules[name] = None  # type: ignore[assignment]  # importlib: "not installed"
    try:
        yield
    finally:
        for name in hide:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


@runtime_checkable
class Encoder(Protocol):
    """A frozen encoder of one modality.

    Attributes:
        name: A stable identifier (stored in the model's fingerprint, and used to load the
            encoder again when a store is reopened).
        dim: The embedding dimension.
    """

    name: str
    dim: int

    def embed(
        self, batch: Sequence[Any], *, batch_size: int = 32, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """Embed a batch of inputs.

        Args:
            batch: The inputs (images or texts).
            batch_size: How many inputs go through the model at once.
            show_progress_bar: Show a progress bar; ``None`` follows the logger level.

        Returns:
            A ``float32`` array of shape ``(len(batch), dim)`` with L2-normalised rows.
        """
        ...


def as_list(batch: Any, owner: str, what: str) -> list[Any]:
    """A batch as a list; one bare input (a str, bytes, an image) is an error, not a batch.

    Example:
        >>> as_list(("a", "b"), "Enc.embed", "str")
        ['a', 'b']
        >>> as_list("a", "Enc.embed", "str")
        Traceback (most recent call last):
        ...
        asif_qdrant.errors.InvalidInputError: Enc.embed expects a sequence of str; got a single str. Wrap it in a list: embed([x]).
    """  # noqa: E501
    from PIL import Image

    single = (str, bytes, bytearray, memoryview, os.PathLike, Image.Image)
    if isinstance(batch, single):
        raise InvalidInputError(
            f"{owner} expects a sequence of {what}; got a single {type(batch).__name__}. "
            "Wrap it in a list: embed([x])."
        )
    if isinstance(batch, np.ndarray) and batch.ndim < 3:
        raise InvalidInputError(
            f"{owner} expects a sequence of {what}; got one numpy array of shape "
            f"{batch.shape}. Wrap it in a list: embed([x])."
        )
    try:
        return list(batch)
    except TypeError as e:
        raise InvalidInputError(
            f"{owner} expects a sequence of {what}; got {type(batch).__name__}, which is not "
            "iterable."
        ) from e


def check_device_and_name(
    owner: str, device: Any, name: Any, *, device_types: tuple[type, ...] = (str,)
) -> None:
    """Check an encoder's ``device`` (one of ``device_types`` or None) and ``name`` (str or None).

    Example:
        >>> check_device_and_name("Enc", "cpu", None)
        >>> check_device_and_name("Enc", None, 3)
        Traceback (most recent call last):
        ...
        asif_qdrant.errors.InvalidParameterError: The 'name' parameter of Enc must be a str or None. Got 3 instead.
    """  # noqa: E501
    for param, value, types, expected in (
        ("device", device, device_types, "a str such as 'cpu' or 'cuda', or None"),
        ("name", name, (str,), "a str or None"),
    ):
        if value is not None and not isinstance(value, types):
            raise InvalidParameterError(
                f"The '{param}' parameter of {owner} must be {expected}. Got {value!r} instead."
            )
