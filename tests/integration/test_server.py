"""Against a real Qdrant server: options the server applies, waited parallel uploads, moving models.

Runs where a server is reachable: ``QDRANT_URL`` (with ``QDRANT_API_KEY`` / ``QDRANT_GRPC_PORT``
if needed), or a Docker daemon, for which tests/conftest.py starts one ``QdrantContainer`` per
session. Elsewhere every test here is skipped at once with that reason. Each test works in its
own collection prefix, deleted at the end of the session, so a shared server is left as found.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import ASIF
from asif_qdrant.errors import StoreError
from asif_qdrant.store import ClientStore, CollectionSpec, EdgeStore, Record
from asif_qdrant.store.client import QDRANT_IMAGE, RetriesExhaustedError
from asif_qdrant.transfer import copy_model, export_model, import_model
from asif_qdrant.types import SparseVector
from tests.conftest import make_store
from tests.helpers import all_collection_options
from tests.unit.test_transfer import answers, assert_same_answers, build, dump, open_model

pytestmark = [pytest.mark.integration, pytest.mark.server]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ClientStore]:
    store = make_store("server", tmp_path)  # skips here when no server is reachable
    assert isinstance(store, ClientStore)
    try:
        yield store
    finally:
        store.close()


def sibling(server: ClientStore, **kwargs) -> ClientStore:
    """Another store on the same client and prefix, with other options."""
    return ClientStore(server.client, collection_prefix=server.collection_prefix, **kwargs)


def test_transport_is_grpc_when_its_port_answers(server: ClientStore) -> None:
    if not os.environ.get("QDRANT_URL"):  # the test container maps its gRPC port
        assert server.transport == "grpc"
    assert server.transport in ("grpc", "rest")
    assert server.describe().startswith("Qdrant server at http")


def test_collection_options_are_applied_by_the_server(server: ClientStore) -> None:
    store = sibling(server, collection_options=all_collection_options(shards=2, replicas=1))
    store.create_collection("c", CollectionSpec(dense={"image": 8}, sparse=("asif",)))
    params = server.client.get_collection(store.qdrant_name("c")).config.params
    assert params.shard_number == 2 and params.on_disk_payload is True
    assert params.vectors["image"].on_disk is True
    assert params.sparse_vectors["asif"].index.on_disk is True
    assert store.collection_spec("c") == CollectionSpec(dense={"image": 8}, sparse=("asif",))


def test_parallel_upload_is_searchable_when_it_returns(server: ClientStore) -> None:
    rng = np.random.default_rng(0)
    n, dim = 3000, 32
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store = sibling(server, batch_size=200, parallel=4)
    store.create_collection("c", CollectionSpec(dense={"image": dim}, sparse=("asif",)))
    recs = [
        Record(
            i,
            {"i": i},
            dense={"image": x[i]},
            sparse={"asif": SparseVector(np.array([i, n + i % 10]), np.array([0.8, 0.6]))},
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    store.upsert("c", recs)
    seconds = time.perf_counter() - t0
    assert store.count("c") == n  # no sleep: wait=True on every request
    probe = list(range(0, n, 97))
    hits = store.query_dense("c", "image", x[probe], limit=1)
    assert [h[0][0] for h in hits] == probe
    np.testing.assert_allclose([h[0][1] for h in hits], 1.0, atol=1e-5)
    (sparse_hits,) = store.query_sparse("c", "asif", [SparseVector([123], [1.0])], limit=3)
    assert [h.id for h in sparse_hits] == [123]
    got = store.retrieve("c", [5], with_vectors=True)[0]
    np.testing.assert_array_equal(got.dense["image"], x[5])  # float32 bits survive
    print(f"{n} points x {dim} dims uploaded in {seconds:.2f} s ({store.transport})")


def test_model_moves_edge_to_server_to_edge_with_identical_answers(
    server: ClientStore, tmp_path: Path
) -> None:
    asif = build(EdgeStore(tmp_path / "edge-a"))
    want, points = answers(asif), dump(asif.store)
    copy_model(asif.store, "asif", server, show_progress_bar=False)
    asif.close()
    assert dump(server) == points
    assert_same_answers(answers(open_model(server)), want)
    out = tmp_path / "from-server.tar"
    export_model(server, "asif", out, show_progress_bar=False)
    edge_b = EdgeStore(tmp_path / "edge-b")
    import_model(out, edge_b, show_progress_bar=False)
    assert dump(edge_b) == points
    assert_same_answers(answers(open_model(edge_b)), want)
    edge_b.close()


def test_real_encoders_give_the_same_answers_on_the_server(
    server: ClientStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Asked for here, after `server`: session fixtures would otherwise load the encoders
    # before the server leg gets the chance to skip.
    image_encoder = request.getfixturevalue("image_encoder")
    text_encoder = request.getfixturevalue("text_encoder")
    stamp_paths = request.getfixturevalue("stamp_paths")
    captions = [p.stem.replace("_", " ") for p in stamp_paths]
    with ASIF(
        path=tmp_path / "edge", k=3, image_encoder=image_encoder, text_encoder=text_encoder
    ) as asif:
        asif.add_anchors(stamp_paths, [f"a picture of a {c}" for c in captions])
        asif.index("stamps", images=stamp_paths)
        want = asif.search_batch("stamps", captions, limit=4)
        copy_model(asif.store, "asif", server, show_progress_bar=False)
    on_server = ASIF(store=server, image_encoder=image_encoder, text_encoder=text_encoder)
    got = on_server.search_batch("stamps", captions, limit=4)
    for g, w in zip(got, want, strict=True):
        assert [h.id for h in g] == [h.id for h in w]
        np.testing.assert_allclose([h.score for h in g], [h.score for h in w], rtol=1e-5)


def test_api_key_server_accepts_the_key_and_refuses_a_wrong_one_at_once() -> None:
    if os.environ.get("QDRANT_URL"):
        pytest.skip("needs a Docker daemon to start a server with an API key (QDRANT_URL is set)")
    docker = pytest.importorskip("docker", reason="the Docker SDK (pip install docker)")
    try:
        docker.from_env().ping()
    except Exception as e:
        pytest.skip(f"no Docker daemon ({type(e).__name__}): start one to run this test")
    from testcontainers.community.qdrant import QdrantContainer

    key = "test-key-0f9e8d7c"
    with QdrantContainer(image=QDRANT_IMAGE, api_key=key) as container:
        url = f"http://{container.get_container_host_ip()}:{container.exposed_rest_port}"
        port = int(container.exposed_grpc_port)
        good = ClientStore.from_url(url, api_key=key, grpc_port=port, check_compatibility=False)
        good.create_collection("c", CollectionSpec(dense={"image": 2}))
        assert good.transport == "grpc" and good.count("c") == 0
        assert key not in repr(good)
        good.close()
        bad = ClientStore.from_url(
            url, api_key="wrong-" + key, grpc_port=port, check_compatibility=False
        )
        t0 = time.perf_counter()
        with pytest.raises(StoreError) as err:
            bad.count("c")
        assert not isinstance(err.value, RetriesExhaustedError)  # 401 is not retried
        assert time.perf_counter() - t0 < 5
        assert key not in str(err.value)
        bad.close()
