"""Shared fixtures: every backend the machine can run, through one parametrizer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from asif_qdrant.store import ClientStore, EdgeStore, Store

BACKENDS = ["edge", "client-local"]


def make_store(kind: str, tmp_path: Path) -> Store:
    """A fresh, empty store of the given kind."""
    if kind == "edge":
        return EdgeStore(tmp_path / "edge")
    if kind == "client-local":
        from qdrant_client import QdrantClient

        return ClientStore(QdrantClient(path=str(tmp_path / "local")), close_client=True)
    if kind == "server":
        from qdrant_client import QdrantClient

        url = os.environ.get("QDRANT_URL")
        if not url:
            pytest.skip("no Qdrant server: set QDRANT_URL=http://host:6333 to run this leg")
        return ClientStore(QdrantClient(url=url), close_client=True)
    raise ValueError(kind)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of each backend in turn."""
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on each backend in turn."""
    s = make_store(backend, tmp_path)
    try:
        yield s
    finally:
        s.close()


class HashTextEncoder:
    """A small deterministic text encoder for unit tests: hashed character trigrams."""

    name = "test/hash-text"

    def __init__(self, dim: int = 64, name: str | None = None) -> None:
        self.dim = dim
        if name:
            self.name = name

    def embed(self, batch, *, batch_size=32, show_progress_bar=None):
        import hashlib

        import numpy as np

        out = np.zeros((len(batch), self.dim), np.float32)
        for row, text in enumerate(batch):
            padded = f"  {text.lower()}  "
            for i in range(len(padded) - 2):
                h = hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest()
                out[row, int.from_bytes(h, "little") % self.dim] += 1.0
            out[row] += 1e-3  # no all-zero rows
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class ColorImageEncoder:
    """A small deterministic image encoder for unit tests: a 4x4 thumbnail's colours."""

    name = "test/color-image"
    dim = 48

    def embed(self, batch, *, batch_size=32, show_progress_bar=None):
        import numpy as np

        from asif_qdrant.images import load_image

        rows = []
        for x in batch:
            img = load_image(x).resize((4, 4))
            v = np.asarray(img, dtype=np.float32).reshape(-1) / 255.0 - 0.5
            rows.append(v + 1e-3)
        out = np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@pytest.fixture
def text_encoder_small() -> HashTextEncoder:
    return HashTextEncoder()


@pytest.fixture
def image_encoder_small() -> ColorImageEncoder:
    return ColorImageEncoder()
