"""Unit-test fixtures: a small ASIF model of coloured squares, on each backend.

The encoders are the repository's small deterministic test encoders (``HashTextEncoder``:
hashed character trigrams; ``ColorImageEncoder``: a 4x4 thumbnail's colours) from
``tests/conftest.py``: real computations on real images and texts, no model weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asif_qdrant import ASIF
from PIL import Image

from tests.conftest import ColorImageEncoder, HashTextEncoder

# Not a doctest module: importing this non-package conftest by its file name would clash with
# the repository's other conftest.py files under --doctest-modules ("import file mismatch").
collect_ignore = ["conftest.py"]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
}
#: The catalog: six colours (of the eight anchors), in a paler shade.
CATALOG = ["red", "green", "blue", "yellow", "magenta", "cyan"]


@dataclass(frozen=True)
class ColorData:
    """Anchor squares with captions, and catalog squares of other shades."""

    anchor_images: list[Path]
    anchor_captions: list[str]
    catalog: dict[str, Path]


@pytest.fixture(scope="session")
def color_data(tmp_path_factory: pytest.TempPathFactory) -> ColorData:
    root = tmp_path_factory.mktemp("colors")
    images, captions, catalog = [], [], {}
    for name, rgb in COLORS.items():
        path = root / f"anchor_{name}.png"
        Image.new("RGB", (16, 16), rgb).save(path)
        images.append(path)
        captions.append(f"A {name} square.")
    for name in CATALOG:
        path = root / f"item_{name}.png"
        shade = tuple(int(c * 0.85 + 20) for c in COLORS[name])
        Image.new("RGB", (16, 16), shade).save(path)
        catalog[name] = path
    return ColorData(images, captions, catalog)


def open_color_asif(kind: str, tmp_path: Path, **kwargs: Any) -> ASIF:
    """Open (or create) a colour model in ``tmp_path`` on the given backend.

    ``kind`` is "edge" (the embedded engine) or "client-local" (qdrant-client's local mode,
    whose client is closed with the model).
    """
    encoders = {"image_encoder": ColorImageEncoder(), "text_encoder": HashTextEncoder()}
    if kind == "edge":
        return ASIF(path=tmp_path / "edge", **encoders, **kwargs)
    from asif_qdrant.store import ClientStore
    from qdrant_client import QdrantClient

    store = ClientStore(QdrantClient(path=str(tmp_path / "local")), close_client=True)
    return ASIF(store=store, **encoders, **kwargs)


def build_color_asif(kind: str, tmp_path: Path, data: ColorData, *, k: int = 4) -> ASIF:
    """A new model with the eight colour anchors on the given backend."""
    asif = open_color_asif(kind, tmp_path, k=k)
    asif.add_anchors(data.anchor_images, data.anchor_captions)
    return asif


@pytest.fixture(scope="session")
def color_models() -> tuple[Any, Any]:
    """The two helpers above, for tests that build and reopen models themselves."""
    return build_color_asif, open_color_asif


@pytest.fixture(params=["edge", "client-local"])
def asif_any(
    request: pytest.FixtureRequest, tmp_path: Path, color_data: ColorData
) -> Iterator[ASIF]:
    """The colour model on each backend in turn (embedded engine, qdrant-client local)."""
    asif = build_color_asif(str(request.param), tmp_path, color_data)
    try:
        yield asif
    finally:
        asif.close()


@pytest.fixture(scope="session")
def color_asif(tmp_path_factory: pytest.TempPathFactory, color_data: ColorData) -> Iterator[ASIF]:
    """One colour model on the embedded engine, shared by the whole session (read-only)."""
    asif = build_color_asif("edge", tmp_path_factory.mktemp("color_asif"), color_data)
    try:
        yield asif
    finally:
        asif.close()


@pytest.fixture
def asif(tmp_path: Path, color_data: ColorData) -> Iterator[ASIF]:
    """A fresh colour model on the embedded engine (tests that edit it)."""
    model = build_color_asif("edge", tmp_path, color_data)
    try:
        yield model
    finally:
        model.close()
