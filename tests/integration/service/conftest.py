"""One served model for the service tests: real stamps, small test encoders, a real server.

The model has 24 Tux Paint stamps as anchor pairs and a catalog ``stamps`` of 16 others,
encoded by the small deterministic encoders of tests/conftest.py (a second to build), and
is served by uvicorn in a thread on a free 127.0.0.1 port. Without FastAPI every test here
is skipped at once, with how to install it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_MISSING = [
    m for m in ("fastapi", "uvicorn", "multipart", "httpx") if not importlib.util.find_spec(m)
]
if _MISSING:
    pytest.skip(
        f"the service needs {', '.join(_MISSING)}: pip install 'asif-qdrant[serve]' httpx "
        "(scripts/setup.sh installs them)",
        allow_module_level=True,
    )

import httpx  # noqa: E402

from asif_qdrant import ASIF  # noqa: E402
from asif_qdrant.loaders import load_tuxpaint_stamps  # noqa: E402
from asif_qdrant.service import create_app, serve_in_thread  # noqa: E402
from tests.helpers import TUXPAINT_STAMPS, color_asif  # noqa: E402

#: Anchor pairs and catalog items of the served model.
N_ANCHORS, N_ITEMS = 24, 16
#: The API key of the keyed server.
API_KEY = "test-key-0123456789"


@dataclass
class Served:
    """A running service: its URL, its model, a client, and the stamps it was built from."""

    url: str
    asif: ASIF
    client: httpx.Client
    anchors: list[Any]
    items: list[Any]
    spare: list[Any]
    keyed_url: str

    def snapshot(self) -> dict[str, Any]:
        """What an edit would change: anchor count and version, catalog sizes."""
        info = self.client.get("/api/model").json()
        return {k: info[k] for k in ("anchor_count", "anchor_version", "catalogs")}


@pytest.fixture(scope="session")
def stamps() -> list[Any]:
    """Every 20th captioned Tux Paint stamp (skips when the stamps are not installed)."""
    if not TUXPAINT_STAMPS.is_dir():
        pytest.skip("Tux Paint stamps not installed: apt-get install tuxpaint-stamps-default")
    return load_tuxpaint_stamps()[::20]


def build_model(stamps: list[Any], root: Path) -> ASIF:
    """The served model: the first stamps as anchors, the next ones as the catalog ``stamps``."""
    anchors, items = stamps[:N_ANCHORS], stamps[N_ANCHORS : N_ANCHORS + N_ITEMS]
    asif = color_asif(path=root / "model", k=8)
    asif.add_anchors([Path(p.image) for p in anchors], [p.caption for p in anchors])
    asif.index(
        "stamps",
        images=[Path(p.image) for p in items],
        payloads=[{"caption": p.caption, "category": p.metadata["category"]} for p in items],
    )
    return asif


@pytest.fixture(scope="session")
def served(stamps: list[Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The model served on a free loopback port (and a second server that needs a key)."""
    anchors, items, spare = stamps[:N_ANCHORS], stamps[N_ANCHORS : N_ANCHORS + N_ITEMS], stamps[-4:]
    root = tmp_path_factory.mktemp("service")
    asif = build_model(stamps, root)
    app = create_app(asif, upload_dir=root / "uploads", max_upload_bytes=2_000_000)
    keyed = create_app(asif, api_key=API_KEY, warm_up=False)
    with ExitStack() as stack:
        stack.callback(asif.close)
        url = stack.enter_context(serve_in_thread(app))
        keyed_url = stack.enter_context(serve_in_thread(keyed))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        yield Served(url, asif, client, anchors, items, spare, keyed_url)
