"""Uploaded images: read within the size limit, checked for pixels before decoding, kept.

An upload is read in chunks and refused (413) once it passes ``max_bytes``; its header is
then read by Pillow, without decoding the pixels, and refused when it is not an image (415)
or has more than ``max_pixels`` pixels (413: a decompression bomb never reaches the decoder).
Images that become anchors or catalog items are kept under the service's upload folder by
the hash of their content, so that the service can show them later (by point id, never by
a path a client gives).

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (3, 2)).save(buf, format="PNG")
    >>> check_image(buf.getvalue(), "image", max_pixels=6)
    'PNG'
    >>> check_image(buf.getvalue(), "image", max_pixels=5)
    Traceback (most recent call last):
    ...
    asif_qdrant.service.problems.ServiceError: The uploaded image 'image' has 3 x 2 = 6 \
pixels; this service accepts at most 5 (--max-image-pixels).
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import warnings
from pathlib import Path

from fastapi import UploadFile
from PIL import Image

from asif_qdrant.service.problems import ServiceError

__all__ = ["CHUNK", "check_image", "image_media_type", "keep_upload", "read_upload"]

#: Bytes read from an upload at a time.
CHUNK = 1 << 16


async def read_upload(upload: UploadFile, field: str, *, max_bytes: int, max_pixels: int) -> bytes:
    """The bytes of an uploaded image, checked (size, format, pixels); else a ServiceError."""
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise ServiceError(
                413,
                f"The uploaded file '{field}' is larger than {max_bytes} bytes, the most this "
                "service accepts per file (--max-upload-mb).",
                field,
                "PayloadTooLarge",
            )
        parts.append(chunk)
    data = b"".join(parts)
    if not data:
        raise ServiceError(422, f"The uploaded file '{field}' is empty.", field, "EmptyUpload")
    check_image(data, field, max_pixels=max_pixels)
    return data


def check_image(data: bytes, field: str, *, max_pixels: int) -> str:
    """The image format of ``data`` (read from its header only), if within ``max_pixels``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                fmt = str(im.format)
    except Image.DecompressionBombError:
        width, height, fmt = max_pixels + 1, 1, ""
    except Exception as e:  # not an image Pillow knows, or a broken header
        raise ServiceError(
            415,
            f"The uploaded file '{field}' is not an image Pillow can read ({type(e).__name__}). "
            "Upload a PNG, JPEG, GIF, BMP, TIFF or WebP file.",
            field,
            "UnsupportedImage",
        ) from e
    if width * height > max_pixels:
        raise ServiceError(
            413,
            f"The uploaded image '{field}' has {width} x {height} = {width * height} pixels; "
            f"this service accepts at most {max_pixels} (--max-image-pixels).",
            field,
            "TooManyPixels",
        )
    return fmt


def keep_upload(data: bytes, folder: Path) -> Path:
    """Store ``data`` under ``folder`` by its SHA-256 (same bytes, same file); its path."""
    fmt = check_image(data, "image", max_pixels=Image.MAX_IMAGE_PIXELS or 10**12)
    suffix = Image.registered_extensions()
    ext = next((e for e, f in suffix.items() if f == fmt), ".img")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()}{ext}"
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path.absolute()


def image_media_type(path: Path) -> str | None:
    """The media type of an image file by its content (None when it is no image)."""
    try:
        with Image.open(path) as im:
            fmt = im.format
    except Exception:
        return None
    mime = Image.MIME.get(str(fmt)) if fmt else None
    return mime or mimetypes.guess_type(path.name)[0]
