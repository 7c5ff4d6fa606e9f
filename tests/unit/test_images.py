from __future__ import annotations

import gc
import io
import pathlib
import re
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from asif_qdrant.errors import ImageDecodeError, InvalidInputError
from asif_qdrant.images import load_image


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def rgb_array() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


@pytest.fixture
def png_path(tmp_path: pathlib.Path, rgb_array: np.ndarray) -> pathlib.Path:
    path = tmp_path / "img.png"
    Image.fromarray(rgb_array).save(path)
    return path


def _assert_rgb(im: Image.Image, expected: np.ndarray) -> None:
    assert isinstance(im, Image.Image)
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), expected)


# ---------------------------------------------------------------- every input kind


def test_path_str(png_path: pathlib.Path, rgb_array: np.ndarray) -> None:
    _assert_rgb(load_image(str(png_path)), rgb_array)


def test_pathlib_path(png_path: pathlib.Path, rgb_array: np.ndarray) -> None:
    _assert_rgb(load_image(png_path), rgb_array)


def test_bytes(png_path: pathlib.Path, rgb_array: np.ndarray) -> None:
    data = png_path.read_bytes()
    _assert_rgb(load_image(data), rgb_array)
    _assert_rgb(load_image(bytearray(data)), rgb_array)
    _assert_rgb(load_image(memoryview(data)), rgb_array)


def test_pil_rgb(rgb_array: np.ndarray) -> None:
    _assert_rgb(load_image(Image.fromarray(rgb_array)), rgb_array)


def test_files_are_closed(png_path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(png_path.read_bytes()[:40])
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always", ResourceWarning)
        load_image(png_path)
        with pytest.raises(ImageDecodeError):
            load_image(bad)
        gc.collect()
    assert not [w for w in log if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_array_gray_uint8(shape: tuple[int, ...]) -> None:
    a = np.arange(35, dtype=np.uint8).reshape(shape)
    g = a.reshape(5, 7)
    _assert_rgb(load_image(a), np.stack([g, g, g], axis=-1))


def test_array_rgb_uint8(rgb_array: np.ndarray) -> None:
    _assert_rgb(load_image(rgb_array), rgb_array)
    _assert_rgb(load_image(rgb_array[:, ::-1]), rgb_array[:, ::-1])  # non-contiguous view


def test_array_rgba_uint8_composited_on_white() -> None:
    a = np.zeros((2, 2, 4), dtype=np.uint8)
    a[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    a[0, 1] = (255, 0, 0, 255)  # opaque red stays red
    a[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid gray
    a[1, 1] = (0, 0, 255, 255)
    out = np.asarray(load_image(a))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (255, 0, 0)
    assert tuple(out[1, 0]) == (127, 127, 127)
    assert tuple(out[1, 1]) == (0, 0, 255)


@pytest.mark.parametrize("channels", [None, 1, 3, 4])
def test_array_uint16_scaled_not_clipped(channels: int | None) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 0, 1, 128, 255 in 8 bits
    a = values if channels is None else np.repeat(values[..., None], channels, axis=-1)
    if channels == 4:
        a[..., 3] = 65535  # opaque
    out = np.asarray(load_image(a))
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
    assert (out[..., 0] == out[..., 2]).all() if channels != 3 else True


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_array_float_unit_range(dtype: type) -> None:
    a = np.array([[0.0, 0.5, 1.0]], dtype=dtype)
    out = np.asarray(load_image(a))
    np.testing.assert_array_equal(out[0, :, 1], [0, 128, 255])
    rgba = np.zeros((1, 1, 4), dtype=dtype)
    rgba[0, 0] = (1.0, 0.0, 0.0, 0.0)
    assert tuple(np.asarray(load_image(rgba))[0, 0]) == (255, 255, 255)


# ---------------------------------------------------------------- PIL modes


def test_pil_rgba_transparent_red_becomes_white() -> None:
    im = Image.new("RGBA", (3, 2), (255, 0, 0, 0))
    im.putpixel((1, 1), (255, 0, 0, 255))
    out = np.asarray(load_image(im))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[1, 1]) == (255, 0, 0)


def test_pil_rgba_equals_array_rgba() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(6, 4, 4), dtype=np.uint8)
    via_pil = np.asarray(load_image(Image.fromarray(a, mode="RGBA")))
    via_bytes = np.asarray(load_image(_png_bytes(Image.fromarray(a, mode="RGBA"))))
    np.testing.assert_array_equal(via_pil, np.asarray(load_image(a)))
    np.testing.assert_array_equal(via_bytes, via_pil)


def test_pil_la_composited_on_white() -> None:
    im = Image.new("LA", (2, 1), (0, 0))
    im.putpixel((1, 0), (10, 255))
    out = np.asarray(load_image(im))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (10, 10, 10)


def test_pil_palette_with_transparency() -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putpixel((0, 0), 0)  # red, transparent
    im.putpixel((1, 0), 1)  # blue, opaque
    im.info["transparency"] = 0
    out = np.asarray(load_image(_png_bytes(im)))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (0, 0, 255)


def test_pil_grayscale_l() -> None:
    out = np.asarray(load_image(Image.new("L", (2, 2), 77)))
    assert (out == 77).all()


def test_pil_16bit_grayscale_scaled(tmp_path: pathlib.Path) -> None:
    a = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    im = Image.fromarray(a)
    assert im.mode == "I;16"
    path = tmp_path / "gray16.png"
    im.save(path)
    for x in (im, path, path.read_bytes()):
        out = np.asarray(load_image(x))
        np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])


def test_pil_mode_i_read_as_16bit() -> None:
    im = Image.fromarray(np.array([[0, 32896, 65535, 70000]], dtype=np.int32), mode="I")
    out = np.asarray(load_image(im))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255, 255])


def test_pil_mode_f_unit_range() -> None:
    im = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    np.testing.assert_array_equal(np.asarray(load_image(im))[0, :, 0], [0, 128, 255])
    bad = Image.fromarray(np.array([[0.0, 200.0]], dtype=np.float32), mode="F")
    with pytest.raises(InvalidInputError, match=r"values range from 0 to 200.*\[0, 1\]"):
        load_image(bad)


@pytest.mark.parametrize("mode", ["1", "P", "CMYK", "YCbCr", "RGBX"])
def test_pil_other_modes(mode: str) -> None:
    out = load_image(Image.new("RGB", (3, 3), (0, 0, 0)).convert(mode))
    assert out.mode == "RGB" and out.size == (3, 3)


# ---------------------------------------------------------------- errors


def test_missing_path(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageDecodeError, match=re.escape(f"{str(missing)!r}: no such file")):
        load_image(missing)


def test_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ImageDecodeError, match="it is a directory"):
        load_image(str(tmp_path))


def test_zero_byte_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match=r"empty\.png'.*the file is empty \(0 bytes\)"):
        load_image(path)


def test_empty_bytes() -> None:
    with pytest.raises(ImageDecodeError, match=r"\(0 bytes\).*the byte string is empty"):
        load_image(b"")


def test_truncated_png(png_path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    data = png_path.read_bytes()
    cut = data[: len(data) // 2]
    path = tmp_path / "truncated.png"
    path.write_bytes(cut)
    with pytest.raises(ImageDecodeError, match=r"truncated\.png'.*corrupt or truncated"):
        load_image(path)
    with pytest.raises(
        ImageDecodeError, match=rf"image bytes \({len(cut)} bytes\).*corrupt or truncated"
    ):
        load_image(cut)


def test_text_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an image\n")
    with pytest.raises(ImageDecodeError, match=r"notes\.txt' \(13 bytes\): not an image format"):
        load_image(path)


def test_decompression_bomb_via_lowered_limit(
    png_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 35 pixels: above the limit (warning range) and above twice the limit (error range).
    for limit in (30, 10):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(ImageDecodeError, match=rf"too large.*MAX_IMAGE_PIXELS = {limit}"):
            load_image(png_path)


def test_decompression_bomb_header() -> None:
    # A PNG whose header claims 100000 x 100000 pixels; no pixel data is ever allocated.
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    with pytest.raises(ImageDecodeError, match="too large to decode safely"):
        load_image(data)


@pytest.mark.parametrize(
    "shape", [(4,), (2, 3, 2), (2, 3, 5), (0, 3, 3), (2, 2, 2, 3), ()], ids=str
)
def test_wrong_array_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(
        InvalidInputError, match=re.escape(f"of shape {shape}") + r".*Allowed shapes: \(H, W\)"
    ):
        load_image(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_, np.complex64, object])
def test_wrong_array_dtype(dtype: type) -> None:
    a = np.zeros((2, 2, 3), dtype=dtype)
    with pytest.raises(
        InvalidInputError, match=rf"dtype {np.dtype(dtype)}.*Allowed dtypes: uint8, uint16"
    ):
        load_image(a)


def test_float_array_out_of_range_and_nan() -> None:
    with pytest.raises(InvalidInputError, match=r"from 0 to 255.*Divide by 255"):
        load_image(np.array([[0.0, 255.0]], dtype=np.float32))
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        load_image(np.array([[np.nan, 0.5]]))


@pytest.mark.parametrize("value", [3, 1.5, None, [1, 2, 3]], ids=repr)
def test_wrong_type(value: object) -> None:
    with pytest.raises(
        InvalidInputError,
        match=rf"type {type(value).__name__} .*Expected a file path \(str or os.PathLike\)",
    ):
        load_image(value)  # type: ignore[arg-type]


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        load_image(b"xx")
