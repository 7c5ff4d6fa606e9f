"""Small value types and input aliases shared by every module.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.types import SparseVector
    >>> a = SparseVector(indices=np.array([3, 7]), values=np.array([0.6, 0.8]))
    >>> b = SparseVector.from_dict({"indices": [7, 9], "values": [1.0, 0.0]})
    >>> round(a.dot(b), 6)
    0.8
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["Hit", "ImageInput", "SparseVector", "TextInput"]

#: One image: a file path, the encoded file bytes, a PIL image or an (H, W[, C]) array.
ImageInput: TypeAlias = Union[str, "os.PathLike[str]", bytes, "PILImage", np.ndarray]
#: One text.
TextInput: TypeAlias = str


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector over anchor ids: the ASIF relative representation.

    Attributes:
        indices: Anchor point ids (``uint64``), sorted by decreasing value.
        values: The weights (``float32``), L2-normalised unless every weight is 0.
    """

    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        indices = np.asarray(self.indices, dtype=np.uint64).reshape(-1)
        values = np.asarray(self.values, dtype=np.float32).reshape(-1)
        if indices.shape != values.shape:
            raise ValueError(
                f"SparseVector needs as many indices as values. Got {indices.size} indices "
                f"and {values.size} values."
            )
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return int(self.indices.size)

    def as_dict(self) -> dict[str, list[Any]]:
        """Plain-Python form (JSON-serialisable)."""
        return {"indices": self.indices.tolist(), "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SparseVector:
        """Build from ``{"indices": [...], "values": [...]}``."""
        return cls(indices=np.asarray(data["indices"]), values=np.asarray(data["values"]))

    def to_dict_weights(self) -> dict[int, float]:
        """Map of anchor id to weight."""
        return {int(i): float(v) for i, v in zip(self.indices, self.values, strict=True)}

    def dot(self, other: SparseVector) -> float:
        """Dot product with another sparse vector (the ASIF similarity)."""
        common, ia, ib = np.intersect1d(
            self.indices, other.indices, assume_unique=True, return_indices=True
        )
        if common.size == 0:
            return 0.0
        return float(
            np.dot(self.values[ia].astype(np.float64), other.values[ib].astype(np.float64))
        )


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: The catalog point id.
        score: The ASIF score: the dot product of the query's and the item's sparse vectors.
        payload: The item's payload as stored.
    """

    id: int | str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)
