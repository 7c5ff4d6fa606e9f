"""Integration fixtures: a small ASIF model of real Tux Paint stamps, real offline encoders.

Anchors: every 14th captioned stamp (about 38 pairs), leaving out the catalog and query stamps
and the ``symbols`` folder (letters and signs). Their embeddings are computed once per session
with the offline EfficientNet-Lite0 and all-MiniLM-L6-v2 encoders; each backend's model is
built from them, and every query or catalog item is encoded for real.

Catalog: four stamps (koala, duck, pizza, fire truck) and their four captions. The tests assert
only queries that this small model answers with a wide margin between first and second: the
text "A fire truck." finds the fire truck; the fire truck image finds its caption; a photo of a
European bear (not in the catalog) finds the koala. (Weaker ones, e.g. "A duck." or "A quarter
of pizza.", flip with 38 anchors and are not used.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asif_qdrant import ASIF
from asif_qdrant.encoders.base import Encoder
from asif_qdrant.store import ClientStore

# The offline encoders, as session fixtures of this folder (shared with the repository's tests).
from tests.helpers import TUXPAINT_STAMPS, image_encoder, require_stamps, text_encoder

# Not a doctest module: importing this non-package conftest by its file name would clash with
# the repository's other conftest.py files under --doctest-modules ("import file mismatch").
collect_ignore = ["conftest.py"]
__all__ = ["image_encoder", "text_encoder"]

STAMPS = TUXPAINT_STAMPS
CATALOG = {
    "koala": "animals/marsupials/koala.png",
    "duck": "animals/birds/duck.png",
    "pizza": "food/pizza.png",
    "firetruck": "vehicles/emergency/firetruck.png",
}
QUERY_IMAGES = {
    "european_bear": "animals/mammals/bears/european-bear.png",
    "fire_engine": "vehicles/emergency/cartoon/fire_engine.png",
}
ANCHOR_EVERY = 14


@dataclass(frozen=True)
class StampData:
    """The anchor embeddings and the catalog of the small stamp model."""

    image_embeddings: np.ndarray
    text_embeddings: np.ndarray
    anchor_payloads: list[dict[str, Any]]
    catalog: dict[str, Path]
    captions: dict[str, str]
    queries: dict[str, Path]
    catalog_image_embeddings: np.ndarray
    catalog_text_embeddings: np.ndarray


@pytest.fixture(scope="session")
def stamps(image_encoder: Encoder, text_encoder: Encoder) -> StampData:
    """Anchor embeddings of real stamps (computed once), the catalog and the query images."""
    needed = [STAMPS / rel for rel in [*CATALOG.values(), *QUERY_IMAGES.values()]]
    require_stamps(needed)
    from asif_qdrant.loaders import load_tuxpaint_stamps

    pairs = load_tuxpaint_stamps(STAMPS)
    skip = {str(p.resolve()) for p in needed}
    kept = [p for p in pairs if p.image not in skip and "/symbols/" not in p.image]
    anchors = kept[::ANCHOR_EVERY]
    by_image = {p.image: p for p in pairs}
    catalog = {name: (STAMPS / rel).resolve() for name, rel in CATALOG.items()}
    captions = {name: by_image[str(path)].caption for name, path in catalog.items()}
    return StampData(
        image_embeddings=image_encoder.embed([a.image for a in anchors]),
        text_embeddings=text_encoder.embed([a.caption for a in anchors]),
        anchor_payloads=[{"caption": a.caption, "image": a.image} for a in anchors],
        catalog=catalog,
        captions=captions,
        queries={name: (STAMPS / rel).resolve() for name, rel in QUERY_IMAGES.items()},
        catalog_image_embeddings=image_encoder.embed(list(catalog.values())),
        catalog_text_embeddings=text_encoder.embed(list(captions.values())),
    )


def backends() -> list[str]:
    """The embedded engine and qdrant-client's local mode; a server when QDRANT_URL is set."""
    return ["edge", "client-local"] + (["server"] if os.environ.get("QDRANT_URL") else [])


def qdrant_locations() -> list[str]:
    """Where QdrantVectorStore tests run: local mode, and QDRANT_URL when it is set."""
    return [":memory:"] + ([os.environ["QDRANT_URL"]] if os.environ.get("QDRANT_URL") else [])


@pytest.fixture(params=qdrant_locations())
def location(request: pytest.FixtureRequest) -> str:
    """Each QdrantVectorStore location in turn (``:memory:``, then QDRANT_URL if set)."""
    return str(request.param)


@pytest.fixture(scope="session")
def make_stamp_asif(
    stamps: StampData, image_encoder: Encoder, text_encoder: Encoder
) -> Callable[[str, Path], ASIF]:
    """Build the stamp model on a backend ("edge", "client-local" or "server")."""

    def make(kind: str, tmp_path: Path, *, name: str = "asif") -> ASIF:
        encoders = {"image_encoder": image_encoder, "text_encoder": text_encoder}
        if kind == "edge":
            asif = ASIF(path=tmp_path / "edge", name=name, **encoders)
        else:
            from qdrant_client import QdrantClient

            client = (
                QdrantClient(url=os.environ["QDRANT_URL"])
                if kind == "server"
                else QdrantClient(path=str(tmp_path / "local"))
            )
            asif = ASIF(store=ClientStore(client, close_client=True), name=name, **encoders)
        if asif.anchor_count == 0:
            asif.add_anchor_embeddings(
                stamps.image_embeddings, stamps.text_embeddings, payloads=stamps.anchor_payloads
            )
        return asif

    return make


@pytest.fixture(params=backends())
def stamp_asif_any(
    request: pytest.FixtureRequest, tmp_path: Path, make_stamp_asif: Callable[..., ASIF]
) -> Iterator[ASIF]:
    """A fresh stamp model on each backend in turn (a unique name on a shared server)."""
    kind = str(request.param)
    name = f"lc_{uuid.uuid4().hex[:10]}" if kind == "server" else "asif"
    asif = make_stamp_asif(kind, tmp_path, name=name)
    try:
        yield asif
    finally:
        if kind == "server":
            for coll in asif.store.list_collections():
                if coll.startswith(name) or coll.startswith(f"{name}_"):
                    asif.store.delete_collection(coll)
        asif.close()


@pytest.fixture(scope="session")
def stamp_asif(
    tmp_path_factory: pytest.TempPathFactory, make_stamp_asif: Callable[..., ASIF]
) -> Iterator[ASIF]:
    """One stamp model on the embedded engine for the whole session (not edited)."""
    asif = make_stamp_asif("edge", tmp_path_factory.mktemp("stamp_asif"))
    try:
        yield asif
    finally:
        asif.close()


@pytest.fixture(scope="session")
def catalog_model(
    tmp_path_factory: pytest.TempPathFactory,
    make_stamp_asif: Callable[..., ASIF],
    stamps: StampData,
) -> Iterator[Callable[[str], ASIF]]:
    """The stamp model with the catalog indexed in the collection "catalog", per backend.

    Built once per backend and session from the precomputed catalog embeddings (payloads as
    ``ASIF.index`` writes them); read-only for the tests that use it.
    """
    built: dict[str, ASIF] = {}

    def get(kind: str) -> ASIF:
        if kind not in built:
            name = f"lc_{uuid.uuid4().hex[:10]}" if kind == "server" else "asif"
            asif = make_stamp_asif(kind, tmp_path_factory.mktemp(f"catalog_{kind}"), name=name)
            asif.index_embeddings(
                "catalog",
                stamps.catalog_image_embeddings,
                "image",
                payloads=[{"image": str(p), "name": n} for n, p in stamps.catalog.items()],
            )
            asif.index_embeddings(
                "catalog",
                stamps.catalog_text_embeddings,
                "text",
                payloads=[{"text": stamps.captions[n], "name": n} for n in stamps.catalog],
            )
            built[kind] = asif
        return built[kind]

    yield get
    for kind, asif in built.items():
        if kind == "server":
            for coll in asif.store.list_collections():
                if coll.startswith(asif.name) or coll == "catalog":
                    asif.store.delete_collection(coll)
        asif.close()
