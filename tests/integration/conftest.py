"""Session-scoped real offline encoders, shared by every integration test."""

from __future__ import annotations

import pathlib

import pytest

# The offline encoders, as session fixtures of this folder (shared with the LangChain tests).
from tests.helpers import TUXPAINT_STAMPS, image_encoder, require_stamps, text_encoder

__all__ = ["image_encoder", "stamp_paths", "text_encoder"]

KOALA_STAMP = TUXPAINT_STAMPS / "animals" / "marsupials" / "koala.png"
#: A handful of real RGBA stamps (cut-out photos), the koala first.
STAMP_PATHS = [
    KOALA_STAMP,
    TUXPAINT_STAMPS / "animals" / "birds" / "duck.png",
    TUXPAINT_STAMPS / "food" / "pizza.png",
    TUXPAINT_STAMPS / "vehicles" / "emergency" / "firetruck.png",
]


@pytest.fixture(scope="session")
def stamp_paths() -> list[pathlib.Path]:
    """A few real Tux Paint stamp PNGs (RGBA)."""
    require_stamps(STAMP_PATHS)
    return list(STAMP_PATHS)
