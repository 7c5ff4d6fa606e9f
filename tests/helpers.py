"""Setup shared by the tests: small ASIF models, colour swatches, clustered embeddings.

Fixtures live in tests/conftest.py; these are plain functions, imported where needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from asif_qdrant import ASIF
from tests.conftest import ColorImageEncoder, HashTextEncoder

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
