"""Shared fixtures: every backend the machine can run, through one parametrizer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from asif_qdrant.store import ClientStore, EdgeStore, Store

#: Every backend, in one parametrization: the embedded engine, qdrant-client's local mode, and a
#: real Qdrant server (``QDRANT_URL``, else a testcontainers ``QdrantContainer`` when a Docker
#: daemon answers, else skipped at once with the reason).
BACKENDS = ["edge", "client-local", pytest.param("server", marks=pytest.mark.server)]


def make_store(kind: str, tmp_path: Path) -> Store:
    """A fresh, empty store of the given kind (the same ``tmp_path`` reopens the same data).

    ``"server"``: the Qdrant server at ``$QDRANT_URL`` (``$QDRANT_API_KEY``, ``$QDRANT_GRPC_PORT``),
    else one ``QdrantContainer`` (image ``QDRANT_IMAGE``, as in docker/compose.yaml) started once
    per session when a Docker daemon answers, else ``pytest.skip`` with how to enable it. Each
    ``tmp_path`` gets its own collection prefix on the server; they are deleted at exit.
    """
    if kind == "edge":
        return EdgeStore(tmp_path / "edge")
    if kind == "client-local":
        from qdrant_client import QdrantClient

        return ClientStore(QdrantClient(path=str(tmp_path / "local")), close_client=True)
    if kind != "server":
        raise ValueError(kind)

    import atexit
    import hashlib
    import uuid

    state: dict = make_store.__dict__.setdefault("_server", {})
    if not state:
        url = os.environ.get("QDRANT_URL")
        api_key = os.environ.get("QDRANT_API_KEY") or None
        grpc_port = int(os.environ.get("QDRANT_GRPC_PORT", "6334"))
        if not url:
            try:
                import docker

                docker.from_env().ping()
            except Exception as e:  # no Docker SDK, no daemon, no permission
                state["skip"] = (
                    "no Qdrant server: set QDRANT_URL=http://localhost:6333 or start a Docker "
                    f"daemon (docker.from_env().ping() failed: {type(e).__name__})"
                )
            else:
                from asif_qdrant.store.client import QDRANT_IMAGE

                try:
                    from testcontainers.community.qdrant import QdrantContainer
                except ImportError:
                    state["skip"] = (
                        "no Qdrant server: Docker answers but testcontainers is not installed "
                        "(pip install testcontainers), or set QDRANT_URL=http://localhost:6333"
                    )
                else:
                    try:
                        container = QdrantContainer(image=QDRANT_IMAGE).start()
                    except Exception as e:  # a daemon that cannot pull or run it: say so once
                        state["fail"] = f"Docker answers, but {QDRANT_IMAGE} did not start: {e}"
                    else:
                        atexit.register(container.stop)
                        host = container.get_container_host_ip()
                        url = f"http://{host}:{container.exposed_rest_port}"
                        grpc_port, api_key = int(container.exposed_grpc_port), None
        if url:
            state.update(url=url, api_key=api_key, grpc_port=grpc_port, prefixes=set())
            state["session"] = uuid.uuid4().hex[:6]

            def _drop_test_collections() -> None:
                store = ClientStore.from_url(
                    url, api_key=api_key, grpc_port=grpc_port, check_compatibility=False
                )
                with store:
                    for name in store.client.get_collections().collections:
                        if any(name.name.startswith(p) for p in state["prefixes"]):
                            store.client.delete_collection(name.name)

            atexit.register(_drop_test_collections)
    if "skip" in state:
        pytest.skip(state["skip"])
    if "fail" in state:
        pytest.fail(state["fail"])
    digest = hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    prefix = f"asif_test_{state['session']}_{digest}_"
    state["prefixes"].add(prefix)
    return ClientStore.from_url(
        state["url"],
        api_key=state["api_key"],
        grpc_port=state["grpc_port"],
        check_compatibility=False,
        collection_prefix=prefix,
    )


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
