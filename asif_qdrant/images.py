"""Turn any supported image input into one RGB :class:`PIL.Image.Image`.

Every image that reaches an encoder goes through :func:`load_image`, so all input kinds (a
path, the encoded bytes, a PIL image, a numpy array) of the same picture give the same
pixels. Transparent images are composited on white; 16-bit and float images are scaled to
8 bits, never clipped. This module imports neither torch nor any model library.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.images import load_image
    >>> rgba = np.zeros((2, 3, 4), dtype=np.uint8)  # fully transparent black
    >>> img = load_image(rgba)
    >>> img.mode, img.size, img.getpixel((0, 0))
    ('RGB', (3, 2), (255, 255, 255))
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import numpy as np
from PIL import Image

from asif_qdrant.errors import ImageDecodeError, InvalidInputError
from asif_qdrant.types import ImageInput

__all__ = ["load_image"]

_ALLOWED_INPUTS = (
    "a file path (str or os.PathLike), the encoded file bytes, a PIL.Image.Image or a numpy "
    "array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
)
_ALLOWED_SHAPES = "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) with H, W >= 1"
_ALLOWED_DTYPES = "uint8, uint16 or a float dtype with values in [0, 1]"
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def load_image(x: ImageInput) -> Image.Image:
    """Load one image input as an RGB PIL image.

    Transparent pixels (RGBA, LA, palette or RGB images with a transparency entry, and
    ``(H, W, 4)`` arrays) are composited on white. 16-bit images (PIL modes ``I;16`` and ``I``,
    ``uint16`` arrays) are scaled from ``0..65535`` to ``0..255``; float images (PIL mode ``F``,
    float arrays) must hold values in ``[0, 1]`` and are scaled to ``0..255``. Files are opened
    with the ``PIL.Image.MAX_IMAGE_PIXELS`` guard turned into an error, and closed before
    returning.

    Args:
        x: A file path (``str`` or ``os.PathLike``), the encoded file bytes (``bytes``,
            ``bytearray`` or ``memoryview``), a :class:`PIL.Image.Image` in any mode, or a numpy
            array of shape ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` with dtype
            ``uint8``, ``uint16`` or float (values in ``[0, 1]``).

    Returns:
        A new RGB image (or ``x`` itself when it already is a loaded RGB PIL image).

    Raises:
        ImageDecodeError: If a file or byte string cannot be read or decoded (missing file,
            empty file, truncated or non-image data, decompression bomb), or a PIL image
            cannot be converted.
        InvalidInputError: If ``x`` has an unsupported type, or an array has an unsupported
            shape, dtype or value range.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO()
        >>> Image.new("LA", (4, 2), (0, 0)).save(buf, format="PNG")
        >>> load_image(buf.getvalue()).getpixel((0, 0))
        (255, 255, 255)
        >>> load_image(np.full((2, 2), 65535, dtype=np.uint16)).getpixel((1, 1))
        (255, 255, 255)
    """
    if isinstance(x, Image.Image):
        return _from_pil(x, "the PIL image")
    if isinstance(x, np.ndarray):
        return _from_array(x, "the numpy array")
    if isinstance(x, (str, os.PathLike)):
        return _from_path(x)
    if isinstance(x, (bytes, bytearray, memoryview)):
        data = bytes(x)
        source = f"the image bytes ({len(data)} bytes)"
        if not data:
            raise ImageDecodeError(
                f"Cannot decode {source}: the byte string is empty. Pass the full content of "
                "an image file (PNG, JPEG, ...)."
            )
        return _decode(io.BytesIO(data), source)
    raise InvalidInputError(
        f"Cannot load an image from a value of type {type(x).__name__} ({_short_repr(x)}). "
        f"Expected {_ALLOWED_INPUTS}."
    )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _from_path(path: str | os.PathLike[str]) -> Image.Image:
    try:
        fspath = os.fspath(path)
    except TypeError as e:  # os.PathLike returning bytes
        raise InvalidInputError(
            f"Cannot load an image from the path {path!r}: {e}. Expected {_ALLOWED_INPUTS}."
        ) from e
    if isinstance(fspath, bytes):
        fspath = os.fsdecode(fspath)
    source = f"the image file {fspath!r}"
    if not os.path.exists(fspath):
        raise ImageDecodeError(
            f"Cannot open {source}: no such file. Pass the path of an existing image file "
            "(PNG, JPEG, ...)."
        )
    if os.path.isdir(fspath):
        raise ImageDecodeError(
            f"Cannot open {source}: it is a directory. Pass the path of an image file."
        )
    try:
        size = os.path.getsize(fspath)
    except OSError as e:
        raise ImageDecodeError(f"Cannot open {source}: {e}.") from e
    if size == 0:
        raise ImageDecodeError(
            f"Cannot decode {source}: the file is empty (0 bytes). Pass a complete image file."
        )
    try:
        fp = open(fspath, "rb")  # noqa: SIM115 (closed below, whatever happens)
    except OSError as e:
        raise ImageDecodeError(f"Cannot open {source}: {e}.") from e
    with fp:
        return _decode(fp, f"{source} ({size} bytes)")


def _decode(fp: io.IOBase, source: str) -> Image.Image:
    """Open, fully decode and convert an encoded image; ``fp`` stays owned by the caller."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                im.load()
                return _from_pil(im, source, copy=True)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageDecodeError(
            f"Cannot decode {source}: it is too large to decode safely ({e}). The limit is "
            f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} pixels; raise it only if "
            "you trust the file."
        ) from e
    except Image.UnidentifiedImageError as e:
        raise ImageDecodeError(
            f"Cannot decode {source}: not an image format that Pillow can read. Pass a PNG, "
            "JPEG, GIF, BMP, TIFF or WebP file."
        ) from e
    except (ImageDecodeError, InvalidInputError):
        raise
    except Exception as e:  # truncated or corrupt data: OSError, SyntaxError, ValueError, ...
        raise ImageDecodeError(
            f"Cannot decode {source}: the data is corrupt or truncated "
            f"({type(e).__name__}: {e}). Pass a complete image file."
        ) from e


def _from_pil(im: Image.Image, source: str, *, copy: bool = False) -> Image.Image:
    try:
        im.load()
        mode = im.mode
        if mode == "RGB" and "transparency" not in im.info:
            return im.copy() if copy else im
        if mode in _ALPHA_MODES or "transparency" in im.info:
            return _from_array(np.asarray(im.convert("RGBA")), source)
        if mode.startswith("I;16"):
            return _from_array(np.asarray(im).astype(np.uint16, copy=False), source)
        if mode == "I":
            # 32-bit integer images come from 16-bit files (PNG, TIFF): read them as 16-bit.
            return _from_array(np.clip(np.asarray(im), 0, 65535).astype(np.uint16), source)
        if mode == "F":
            return _from_array(np.asarray(im), source)
        return im.convert("RGB")
    except (ImageDecodeError, InvalidInputError):
        raise
    except Exception as e:
        raise ImageDecodeError(
            f"Cannot convert {source} (mode {im.mode!r}, size {im.size}) to RGB "
            f"({type(e).__name__}: {e})."
        ) from e


def _from_array(a: np.ndarray, source: str) -> Image.Image:
    shape_ok = (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))) and min(
        a.shape[:2], default=0
    ) >= 1
    if not shape_ok:
        raise InvalidInputError(
            f"Cannot load an image from {source} of shape {a.shape} (dtype {a.dtype}). "
            f"Allowed shapes: {_ALLOWED_SHAPES}."
        )
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]

    if a.dtype == np.uint8:
        if a.ndim == 2 or a.shape[2] == 3:
            return Image.fromarray(np.ascontiguousarray(a)).convert("RGB")
        unit = a.astype(np.float32) / np.float32(255)
    elif a.dtype == np.uint16:
        unit = a.astype(np.float32) / np.float32(65535)
    elif np.issubdtype(a.dtype, np.floating):
        unit = a.astype(np.float32)
        if not np.isfinite(unit).all():
            raise InvalidInputError(
                f"Cannot load an image from {source} of shape {a.shape} (dtype {a.dtype}): it "
                "contains NaN or infinite values. Float images must hold values in [0, 1]."
            )
        lo, hi = float(unit.min()), float(unit.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise InvalidInputError(
                f"Cannot load an image from {source} of shape {a.shape} (dtype {a.dtype}): "
                f"values range from {lo:g} to {hi:g}, but float images must hold values in "
                "[0, 1]. Divide by 255 (or 65535), or pass a uint8 array."
            )
        unit = np.clip(unit, 0.0, 1.0)
    else:
        raise InvalidInputError(
            f"Cannot load an image from {source} of shape {a.shape} with dtype {a.dtype}. "
            f"Allowed dtypes: {_ALLOWED_DTYPES}."
        )

    if unit.ndim == 3 and unit.shape[2] == 4:
        alpha = unit[:, :, 3:4]
        unit = unit[:, :, :3] * alpha + (np.float32(1) - alpha)
    out = np.rint(unit * np.float32(255)).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(out)).convert("RGB")
