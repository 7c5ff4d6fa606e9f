"""The one small Protocol every encoder implements.

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

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Encoder"]


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
        self,
        batch: Sequence[Any],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
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
