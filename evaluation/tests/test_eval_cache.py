"""The embedding cache: keyed by (encoder, content hash), persistent, lazy about models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from asif_qdrant.encoders.base import Encoder
from asif_qdrant.errors import InvalidInputError, InvalidParameterError
from PIL import Image

from asif_qdrant_evaluation.cache import CachedEncoder, EmbeddingCache, content_hash
from tests.conftest import ColorImageEncoder, HashTextEncoder


class Counting:
    """Wraps an encoder and counts how many inputs it really encoded."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.dim = inner.dim  # type: ignore[attr-defined]
        self.calls: list[int] = []

    def embed(self, batch, *, batch_size=32, show_progress_bar=None):  # type: ignore[no-untyped-def]
        self.calls.append(len(batch))
        return self.inner.embed(batch)  # type: ignore[attr-defined]


def _png(path: Path, color: str) -> Path:
    Image.new("RGB", (8, 8), color).save(path)
    return path


def test_content_hash_follows_content_not_name(tmp_path: Path) -> None:
    a = _png(tmp_path / "a.png", "red")
    b = _png(tmp_path / "b.png", "red")  # same pixels, same encoder settings: same bytes
    c = _png(tmp_path / "c.png", "blue")
    assert content_hash(a, "image") == content_hash(str(b), "image")
    assert content_hash(a, "image") == content_hash(a.read_bytes(), "image")
    assert content_hash(a, "image") != content_hash(c, "image")
    x = np.zeros((2, 3), np.uint8)
    assert content_hash(x, "image") != content_hash(x.astype(np.float32), "image")  # dtype
    assert content_hash(x, "image") != content_hash(x.reshape(3, 2), "image")  # shape
    assert content_hash("A cat.", "text") != content_hash("A cat", "text")
    with pytest.raises(InvalidInputError, match="Cannot read the image file"):
        content_hash(tmp_path / "missing.png", "image")
    with pytest.raises(InvalidInputError, match="hashes image files"):
        content_hash(Image.new("RGB", (2, 2)), "image")


def test_cache_roundtrip_and_persistence(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    vecs = np.arange(6, dtype=np.float32).reshape(2, 3)
    cache.put("enc-a", ["k1", "k2"], vecs)
    got = cache.get("enc-a", ["k2", "missing", "k1"])
    assert got[1] is None
    np.testing.assert_array_equal(got[0], vecs[1])
    np.testing.assert_array_equal(got[2], vecs[0])
    assert cache.get("enc-b", ["k1"]) == [None]  # keyed by encoder name too
    assert cache.count("enc-a") == 2 and cache.count() == 2 and cache.dim("enc-a") == 3
    cache.close()
    reopened = EmbeddingCache(tmp_path)
    np.testing.assert_array_equal(reopened.get("enc-a", ["k1"])[0], vecs[0])
    with pytest.raises(InvalidInputError, match="one vector row per key"):
        reopened.put("enc-a", ["k1"], vecs)


def test_cached_encoder_encodes_only_misses_and_loads_lazily(tmp_path: Path) -> None:
    inner = Counting(HashTextEncoder())
    loads: list[int] = []

    def loader() -> Counting:
        loads.append(1)
        return inner

    cache = EmbeddingCache(tmp_path)
    enc = CachedEncoder(inner.name, "text", cache, loader=loader, dim=inner.dim)
    assert isinstance(enc, Encoder) and loads == []  # the Protocol check loads nothing
    first = enc.embed(["a cat", "a dog", "a cat"])
    assert inner.calls == [2] and loads == [1]  # the duplicate is encoded once
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_allclose(first, HashTextEncoder().embed(["a cat", "a dog", "a cat"]))
    again = enc.embed(["a dog", "a cow"])
    assert inner.calls == [2, 1] and enc.hits == 1 and enc.misses == 3
    np.testing.assert_array_equal(again[0], first[1])
    # A new process (new cache object, new encoder) finds everything: no model is loaded.
    loads.clear()
    enc2 = CachedEncoder(inner.name, "text", EmbeddingCache(tmp_path), loader=loader)
    out = enc2.embed(["a cow", "a cat"])
    assert loads == [] and enc2.misses == 0 and enc2.dim == inner.dim
    assert out.shape == (2, inner.dim)
    assert enc2.embed([]).shape == (0, inner.dim)


def test_cached_image_encoder_on_files_and_arrays(tmp_path: Path) -> None:
    inner = Counting(ColorImageEncoder())
    enc = CachedEncoder(inner.name, "image", EmbeddingCache(tmp_path), loader=lambda: inner)
    red = _png(tmp_path / "red.png", "red")
    arr = np.full((8, 8, 3), 40, np.uint8)
    enc.embed([red, arr])
    moved = tmp_path / "sub"
    moved.mkdir()
    copy = moved / "renamed.png"
    copy.write_bytes(red.read_bytes())
    enc.embed([copy, arr.copy()])  # same contents: both hits
    assert inner.calls == [2]


def test_cached_encoder_checks_modality(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="'modality' parameter of CachedEncoder"):
        CachedEncoder("x", "audio", EmbeddingCache(tmp_path), loader=HashTextEncoder)  # type: ignore[arg-type]
