"""ClientStore against a server: retries, API key hygiene, parallel uploads, cluster options.

No Qdrant server runs here, so the transport is exercised against tiny REST and gRPC servers on
127.0.0.1 that speak the few Qdrant endpoints these tests need (and fail on cue). The store and
qdrant-client under test are the real ones; the real-server leg is tests/integration/test_server.py
and the ``server`` parameter of the contract suite.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from qdrant_client import QdrantClient

from asif_qdrant.errors import InvalidParameterError, StoreError
from asif_qdrant.store import CollectionSpec, Record
from asif_qdrant.store.client import (
    ClientStore,
    CollectionOptions,
    RetriesExhaustedError,
    RetryPolicy,
)
from asif_qdrant.types import SparseVector
from tests.helpers import all_collection_options

SECRET = "s3cr3t-api-key-5f1e9c"
SPEC = CollectionSpec(dense={"image": 4}, sparse=("asif",))
FAST = RetryPolicy(max_retries=3, initial_backoff=0.05, multiplier=2.0, jitter=0.0)


class FakeQdrant(ThreadingHTTPServer):
    """A few Qdrant REST endpoints, with scripted failures served first."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[dict[str, Any]] = []
        self.collections: dict[str, dict[str, Any]] = {}
        self.points: dict[str, dict[Any, Any]] = {}
        self.require_key: str | None = None
        self.echo_key_in_errors = False
        self.create_then_fail = False
        self.in_flight = 0
        self.max_in_flight = 0
        self.upsert_delay = 0.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def calls(self, method: str, suffix: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"].endswith(suffix)]


class _Handler(BaseHTTPRequestHandler):
    server: FakeQdrant

    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _ok(self, result: Any) -> None:
        self._send(200, {"result": result, "status": "ok", "time": 0.0})

    def _handle(self, method: str) -> None:
        srv = self.server
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        with srv.lock:
            srv.requests.append(
                {
                    "method": method,
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
            scripted = srv.script.pop(0) if srv.script else None
        key = self.headers.get("api-key")
        if srv.require_key is not None and key != srv.require_key:
            return self._send(401, {"status": {"error": "Must provide an API key"}})
        if srv.echo_key_in_errors and scripted is not None:
            status, headers, _ = scripted
            scripted = (status, headers, json.dumps({"status": {"error": f"bad key {key}"}}))
        segs = parts.path.strip("/").split("/")
        if scripted is not None:
            status, headers, payload = scripted
            if srv.create_then_fail and method == "PUT" and len(segs) == 2:
                srv.collections[segs[1]] = body  # applied, but the answer is lost
            return self._send(
                status, payload if isinstance(payload, bytes) else payload.encode(), headers
            )
        if segs == ["collections"] and method == "GET":
            return self._ok({"collections": [{"name": n} for n in sorted(srv.collections)]})
        if len(segs) >= 2 and segs[0] == "collections":
            name = segs[1]
            if segs[2:] == ["exists"]:
                return self._ok({"exists": name in srv.collections})
            if len(segs) == 2 and method == "PUT":
                srv.collections[name] = body
                srv.points[name] = {}
                return self._ok(True)
            if name not in srv.collections:
                msg = f"Not found: Collection `{name}` doesn't exist!"
                return self._send(404, {"status": {"error": msg}})
            if segs[2:] == ["points", "count"]:
                return self._ok({"count": len(srv.points[name])})
            if segs[2:] == ["points", "scroll"]:
                return self._ok({"points": [], "next_page_offset": None})
            if segs[2:] == ["points"] and method == "PUT":
                with srv.lock:
                    srv.in_flight += 1
                    srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
                time.sleep(srv.upsert_delay)
                with srv.lock:
                    for p in body["points"]:
                        srv.points[name][p["id"]] = p
                    srv.in_flight -= 1
                return self._ok({"operation_id": 1, "status": "completed"})
        return self._send(404, {"status": {"error": f"Not found: {parts.path}"}})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


@pytest.fixture
def fake() -> Iterator[FakeQdrant]:
    srv = FakeQdrant()
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rest_store(fake: FakeQdrant, **kwargs: Any) -> ClientStore:
    kwargs.setdefault("retry", FAST)
    return ClientStore.from_url(
        fake.url, prefer_grpc=False, check_compatibility=False, timeout=5, **kwargs
    )


def fail(status: int, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, headers or {}, json.dumps({"status": {"error": f"scripted {status}"}}).encode()


# -- retries ------------------------------------------------------------------------------------
def test_transient_503_is_retried_with_exponential_backoff(fake: FakeQdrant, caplog) -> None:
    fake.collections["c"], fake.points["c"] = {}, {1: {}, 2: {}}
    fake.script = [fail(503), fail(503)]
    store = rest_store(fake)
    caplog.set_level(logging.INFO, logger="asif_qdrant.store.client")
    t0 = time.perf_counter()
    assert store.count("c") == 2
    elapsed = time.perf_counter() - t0
    assert len(fake.calls("POST", "/points/count")) == 3
    # Waits of 0.05 s then 0.10 s (jitter 0).
    assert 0.15 <= elapsed < 2.0
    waits = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(waits) == 2
    assert "retry 1 of 3 in 0.05 s" in waits[0] and "retry 2 of 3 in 0.10 s" in waits[1]
    assert "count points in collection 'c'" in waits[0] and "503" in waits[0]
    store.close()


def test_persistent_5xx_ends_in_a_typed_store_error(fake: FakeQdrant) -> None:
    fake.collections["c"], fake.points["c"] = {}, {}
    fake.script = [fail(502)] * 10
    store = rest_store(fake)
    t0 = time.perf_counter()
    with pytest.raises(RetriesExhaustedError) as err:
        store.count("c")
    elapsed = time.perf_counter() - t0
    assert isinstance(err.value, StoreError)
    assert err.value.attempts == 4
    assert len(fake.calls("POST", "/points/count")) == 4
    assert 0.35 <= elapsed < 3.0  # 0.05 + 0.10 + 0.20
    msg = str(err.value)
    assert "count points in collection 'c' after 4 attempts" in msg and "502" in msg
    assert err.value.__cause__ is not None  # the qdrant-client error stays chained
    store.close()


def test_client_errors_are_not_retried(fake: FakeQdrant) -> None:
    fake.collections["c"], fake.points["c"] = {}, {}
    fake.script = [fail(400)]
    store = rest_store(fake)
    with pytest.raises(StoreError) as err:
        store.count("c")
    assert not isinstance(err.value, RetriesExhaustedError)
    assert len(fake.calls("POST", "/points/count")) == 1
    assert "count points in collection 'c'" in str(err.value) and "400" in str(err.value)
    store.close()


def test_429_honours_retry_after(fake: FakeQdrant) -> None:
    fake.collections["c"], fake.points["c"] = {}, {7: {}}
    fake.script = [fail(429, {"Retry-After": "1"})]
    store = rest_store(fake)
    t0 = time.perf_counter()
    assert store.count("c") == 1
    assert time.perf_counter() - t0 >= 1.0  # not the 0.05 s backoff
    assert len(fake.calls("POST", "/points/count")) == 2
    # A Retry-After beyond max_retry_after ends the retries at once, and says why.
    fake.script = [fail(429, {"Retry-After": "120"})]
    with pytest.raises(RetriesExhaustedError, match="retry after 120 s, more than"):
        store.count("c")
    assert len(fake.calls("POST", "/points/count")) == 3
    store.close()


def test_connection_refused_is_retried_then_reported() -> None:
    store = ClientStore.from_url(
        f"http://127.0.0.1:{free_port()}",
        prefer_grpc=False,
        check_compatibility=False,
        retry=RetryPolicy(max_retries=2, initial_backoff=0.05, jitter=0.0),
    )
    t0 = time.perf_counter()
    with pytest.raises(RetriesExhaustedError, match="after 3 attempts") as err:
        store.has_collection("c")
    assert time.perf_counter() - t0 >= 0.15
    assert "refused" in str(err.value).lower()
    store.close()


def test_retried_create_whose_first_try_landed_does_not_fail(fake: FakeQdrant) -> None:
    fake.script = [(200, {}, json.dumps({"result": {"exists": False}}).encode()), fail(503)]
    fake.create_then_fail = True
    store = rest_store(fake)
    store.create_collection("c", CollectionSpec(dense={"image": 4}))
    assert len(fake.calls("PUT", "/collections/c")) == 1
    assert "c" in fake.collections
    store.close()


def test_grpc_is_preferred_and_falls_back_to_rest(fake: FakeQdrant, caplog) -> None:
    fake.collections["c"], fake.points["c"] = {}, {1: {}}
    dead = free_port()
    with caplog.at_level(logging.WARNING, logger="asif_qdrant.store.client"):
        store = ClientStore.from_url(
            fake.url, grpc_port=dead, check_compatibility=False, retry=FAST
        )
    assert store.transport == "rest"
    assert f"gRPC port {dead}" in caplog.text and "using REST" in caplog.text
    assert store.count("c") == 1
    assert store.describe() == f"Qdrant server at {fake.url} via rest (qdrant-client)"
    store.close()
    rest_only = rest_store(fake)
    assert rest_only.transport == "rest"
    rest_only.close()


# -- API key -------------------------------------------------------------------------------------
def test_api_key_is_sent_but_never_shown(fake: FakeQdrant, caplog) -> None:
    fake.require_key = SECRET
    fake.echo_key_in_errors = True  # a hostile or buggy server echoing the key back
    fake.collections["c"], fake.points["c"] = {}, {}
    caplog.set_level(logging.DEBUG)
    store = rest_store(fake, api_key=SECRET)
    assert store.count("c") == 0
    assert all(r["headers"].get("api-key") == SECRET for r in fake.requests)
    for text in (repr(store), str(store), store.describe(), repr(store.__dict__)):
        assert SECRET not in text
    assert "api_key='***'" in repr(store)
    # Retried failures (logged) and a final error whose server text holds the key.
    fake.script = [fail(503)] * 10
    with pytest.raises(RetriesExhaustedError) as err:
        store.count("c")
    fake.script = [fail(400)]
    with pytest.raises(StoreError) as err400:
        store.count("c")
    for e in (err.value, err400.value):
        shown = "".join(traceback.format_exception(e))
        assert SECRET not in shown and "***" in str(e)
        assert e.__cause__ is None  # the cause quoted the key: hidden
    assert "retry 1 of 3" in caplog.text and "***" in caplog.text
    assert SECRET not in caplog.text
    store.close()
    # A wrong key is a client error: not retried, and the key is not quoted.
    fake.echo_key_in_errors = False
    wrong = rest_store(fake, api_key="wrong-" + SECRET)
    n = len(fake.requests)
    with pytest.raises(StoreError) as bad:
        wrong.count("c")
    assert len(fake.requests) == n + 1 and "401" in str(bad.value)
    assert SECRET not in str(bad.value)
    wrong.close()


def test_api_key_of_a_given_client_is_hidden_too(fake: FakeQdrant) -> None:
    with pytest.warns(UserWarning, match="insecure"):
        client = QdrantClient(url=fake.url, api_key=SECRET, check_compatibility=False)
    store = ClientStore(client, close_client=True)
    assert SECRET not in repr(store) and "api_key='***'" in repr(store)
    store.close()


# -- uploads -------------------------------------------------------------------------------------
def records(n: int, start: int = 0) -> list[Record]:
    rng = np.random.default_rng(start)
    return [
        Record(
            i,
            {"n": i},
            dense={"image": rng.normal(size=4).astype(np.float32)},
            sparse={"asif": SparseVector(np.array([i % 7, 100 + i]), np.array([0.6, 0.8]))},
        )
        for i in range(start, start + n)
    ]


def test_parallel_batched_upsert_waits_and_sends_every_point_once(fake: FakeQdrant) -> None:
    fake.collections["c"], fake.points["c"] = {}, {}
    fake.upsert_delay = 0.05
    store = rest_store(fake, batch_size=10, parallel=4, write_ordering="strong")
    recs = records(95)
    store.upsert("c", recs)
    calls = fake.calls("PUT", "/collections/c/points")
    assert len(calls) == 10
    assert fake.max_in_flight > 1
    assert all(c["query"]["wait"] == ["true"] for c in calls)
    assert all(c["query"]["ordering"] == ["strong"] for c in calls)
    sent = [p["id"] for c in calls for p in c["body"]["points"]]
    assert sorted(sent) == list(range(95))
    got = fake.points["c"][17]
    np.testing.assert_array_equal(np.float32(got["vector"]["image"]), recs[17].dense["image"])
    assert got["vector"]["asif"]["indices"] == [3, 117]
    np.testing.assert_array_equal(
        np.float32(got["vector"]["asif"]["values"]), np.float32([0.6, 0.8])
    )
    store.close()


def test_repeated_ids_are_sent_in_order(fake: FakeQdrant) -> None:
    fake.collections["c"], fake.points["c"] = {}, {}
    fake.upsert_delay = 0.02
    store = rest_store(fake, batch_size=5, parallel=4)
    recs = [*records(20), Record(3, {"n": "last"}, dense={"image": np.ones(4, np.float32)})]
    store.upsert("c", recs)
    assert fake.max_in_flight == 1
    assert fake.points["c"][3]["payload"] == {"n": "last"}
    store.close()


def test_read_consistency_is_sent(fake: FakeQdrant) -> None:
    fake.collections["c"], fake.points["c"] = {}, {}
    store = rest_store(fake, read_consistency="majority")
    assert list(store.scroll("c")) == []
    (call,) = fake.calls("POST", "/points/scroll")
    assert call["query"]["consistency"] == ["majority"]
    store.close()


# -- collection options --------------------------------------------------------------------------
def test_cluster_collection_options_reach_the_server(fake: FakeQdrant) -> None:
    store = rest_store(fake, collection_options=all_collection_options(shards=6, replicas=2))
    store.create_collection("c", CollectionSpec(dense={"image": 4}, sparse=("asif",)))
    body = fake.collections["c"]
    assert body["shard_number"] == 6 and body["replication_factor"] == 2
    assert body["write_consistency_factor"] == 2 and body["on_disk_payload"] is True
    assert body["vectors"] == {"image": {"size": 4, "distance": "Dot", "on_disk": True}}
    assert body["sparse_vectors"] == {"asif": {"index": {"on_disk": True}, "modifier": "none"}}
    store.close()
    # Defaults send none of them: the server's defaults apply.
    plain = rest_store(fake)
    plain.create_collection("d", CollectionSpec(dense={"image": 4}, sparse=("asif",)))
    body = fake.collections["d"]
    assert not {"shard_number", "replication_factor", "on_disk_payload"} & set(body)
    assert body["vectors"] == {"image": {"size": 4, "distance": "Dot"}}
    plain.close()


def test_on_disk_vectors_in_local_mode(tmp_path) -> None:
    store = ClientStore(
        QdrantClient(path=str(tmp_path)),
        close_client=True,
        collection_options=CollectionOptions(on_disk_vectors=True, shard_number=2),
    )
    store.create_collection("c", SPEC)
    info = store.client.get_collection("c")
    assert info.config.params.vectors["image"].on_disk is True
    store.upsert("c", records(3))
    assert store.count("c") == 3
    store.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shard_number": 0}, "The 'shard_number' parameter of CollectionOptions must be an int >= 1. Got 0 instead."),  # noqa: E501
        ({"on_disk_payload": "yes"}, "The 'on_disk_payload' parameter of CollectionOptions must be a bool or None. Got 'yes' instead."),  # noqa: E501
        ({"replication_factor": 2, "write_consistency_factor": 3}, "must be an int <= replication_factor (2). Got 3 instead."),  # noqa: E501
    ],
)  # fmt: skip
def test_collection_options_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidParameterError) as err:
        CollectionOptions(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parallel": 0}, "The 'parallel' parameter of ClientStore must be an int >= 1. Got 0"),
        ({"write_ordering": "fast"}, "'write_ordering' parameter of ClientStore must be one of"),
        ({"read_consistency": "most"}, "'read_consistency' parameter of ClientStore must be an"),
        ({"collection_prefix": "a/b"}, "collection name must be"),
        ({"retry": 3}, "The 'retry' parameter of ClientStore must be a RetryPolicy or None"),
    ],
)
def test_client_store_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message.replace("(", r"\(")):
        ClientStore(QdrantClient(":memory:"), **kwargs)


def test_retry_policy_validation_and_delays() -> None:
    with pytest.raises(InvalidParameterError, match="'jitter' parameter of RetryPolicy"):
        RetryPolicy(jitter=1.5)
    with pytest.raises(InvalidParameterError, match="'max_retries' parameter of RetryPolicy"):
        RetryPolicy(max_retries=-1)
    p = RetryPolicy(initial_backoff=1.0, multiplier=3.0, max_backoff=5.0, jitter=0.2)
    for n, base in enumerate([1.0, 3.0, 5.0, 5.0]):
        d = p.delay(n)
        assert base * 0.8 <= d <= base * 1.2


def test_url_is_validated_and_credentials_are_not_shown() -> None:
    with pytest.raises(InvalidParameterError, match=r"'url' parameter of ClientStore\.from_url"):
        ClientStore.from_url("", prefer_grpc=False)
    store = ClientStore.from_url(
        f"http://user:pw@127.0.0.1:{free_port()}/?x=1", prefer_grpc=False, check_compatibility=False
    )
    assert "pw" not in repr(store) and "user" not in store.describe()
    store.close()


# -- collection prefix ---------------------------------------------------------------------------
def test_collection_prefix_isolates_stores_on_one_server(tmp_path) -> None:
    client = QdrantClient(path=str(tmp_path))
    a = ClientStore(client, collection_prefix="a_")
    b = ClientStore(client, collection_prefix="b_")
    a.create_collection("c", SPEC)
    assert a.has_collection("c") and not b.has_collection("c")
    b.create_collection("c", SPEC)
    a.upsert("c", records(2))
    assert (a.count("c"), b.count("c")) == (2, 0)
    assert a.list_collections() == ["c"] == b.list_collections()
    assert sorted(c.name for c in client.get_collections().collections) == ["a_c", "b_c"]
    assert a.qdrant_name("c") == "a_c"
    client.close()


# -- edits: the native overrides agree with the generic ones of Store ----------------------------
def test_query_dense_above_and_update_vectors_match_the_generic_versions(tmp_path) -> None:
    from asif_qdrant.store.base import Store

    store = ClientStore(QdrantClient(path=str(tmp_path)), close_client=True)
    store.create_collection("c", SPEC)
    recs = records(40)
    for r in recs:
        r.dense["image"] /= np.linalg.norm(r.dense["image"])
    store.upsert("c", [*recs, Record(99, {"no": "image"}, sparse=recs[0].sparse)])
    q = np.stack([recs[3].dense["image"], -recs[7].dense["image"]])
    native = store.query_dense_above("c", "image", q, 0.3)
    assert native == Store.query_dense_above(store, "c", "image", q, 0.3)
    assert native[0][0][0] == 3 and all(s > 0.3 for _, s in native[0])
    assert 99 not in {i for row in native for i, _ in row}

    new = np.ones(4, np.float32) / 2
    sv = SparseVector(np.array([5]), np.array([1.0]))
    store.update_vectors("c", [Record(1, {"ignored": True}, dense={"image": new}), Record(12345)])
    store.update_vectors("c", [Record(2, sparse={"asif": sv})])
    one, two = store.retrieve("c", [1, 2], with_vectors=True)
    assert one.payload == {"n": 1}  # kept; the record's payload is ignored
    np.testing.assert_array_equal(one.dense["image"], new)
    assert one.sparse["asif"].to_dict_weights() == recs[1].sparse["asif"].to_dict_weights()
    np.testing.assert_array_equal(two.dense["image"], recs[2].dense["image"])
    assert two.sparse["asif"].to_dict_weights() == {5: 1.0}
    assert store.count("c") == 41  # the unknown id 12345 was skipped, not created
    store.close()


# -- the same over gRPC (the default transport against a server) ---------------------------------
class FakeQdrantGrpc:
    """A few Qdrant gRPC methods on 127.0.0.1, with scripted failures served first."""

    def __init__(self) -> None:
        import grpc
        from qdrant_client import grpc as qg
        from qdrant_client.grpc import collections_service_pb2_grpc as cs
        from qdrant_client.grpc import points_service_pb2_grpc as ps

        fake = self
        self.script: list[tuple[Any, str | None]] = []  # (grpc.StatusCode, retry-after)
        self.requests: list[tuple[str, Any, dict[str, str]]] = []
        self.collections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

        def serve(method: str, request: Any, context: Any) -> None:
            fake.requests.append((method, request, dict(context.invocation_metadata())))
            if fake.script:
                code, retry_after = fake.script.pop(0)
                if retry_after is not None:
                    context.set_trailing_metadata((("retry-after", retry_after),))
                context.abort(code, f"scripted {code.name}")

        class Collections(cs.CollectionsServicer):
            def List(self, request, context):
                serve("List", request, context)
                names = [qg.CollectionDescription(name=n) for n in sorted(fake.collections)]
                return qg.ListCollectionsResponse(collections=names, time=0.0)

            def CollectionExists(self, request, context):
                serve("CollectionExists", request, context)
                exists = request.collection_name in fake.collections
                return qg.CollectionExistsResponse(
                    result=qg.CollectionExists(exists=exists), time=0.0
                )

            def Create(self, request, context):
                serve("Create", request, context)
                fake.collections[request.collection_name] = request
                fake.counts[request.collection_name] = 0
                return qg.CollectionOperationResponse(result=True, time=0.0)

        class Points(ps.PointsServicer):
            def Count(self, request, context):
                serve("Count", request, context)
                n = fake.counts.get(request.collection_name, 0)
                return qg.CountResponse(result=qg.CountResult(count=n), time=0.0)

            def Upsert(self, request, context):
                serve("Upsert", request, context)
                fake.counts[request.collection_name] += len(request.points)
                done = qg.UpdateResult(operation_id=1, status=qg.UpdateStatus.Completed)
                return qg.PointsOperationResponse(result=done, time=0.0)

            def Scroll(self, request, context):
                serve("Scroll", request, context)
                return qg.ScrollResponse(result=[], time=0.0)

        from concurrent.futures import ThreadPoolExecutor as Pool

        self.server = grpc.server(Pool(max_workers=8))
        cs.add_CollectionsServicer_to_server(Collections(), self.server)
        ps.add_PointsServicer_to_server(Points(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def calls(self, method: str) -> list[tuple[str, Any, dict[str, str]]]:
        return [r for r in self.requests if r[0] == method]


@pytest.fixture
def fake_grpc(fake: FakeQdrant) -> Iterator[FakeQdrantGrpc]:
    srv = FakeQdrantGrpc()
    try:
        yield srv
    finally:
        srv.server.stop(None)


def grpc_store(fake: FakeQdrant, fake_grpc: FakeQdrantGrpc, **kwargs: Any) -> ClientStore:
    kwargs.setdefault("retry", FAST)
    return ClientStore.from_url(
        fake.url, grpc_port=fake_grpc.port, check_compatibility=False, timeout=5, **kwargs
    )


def test_grpc_is_used_when_its_port_answers(fake: FakeQdrant, fake_grpc: FakeQdrantGrpc) -> None:
    store = grpc_store(fake, fake_grpc)
    assert store.transport == "grpc"
    assert fake_grpc.calls("List") and not fake.requests  # the probe went over gRPC
    store.create_collection("c", SPEC)
    assert store.count("c") == 0 and not fake.requests  # REST never used
    store.close()


def test_grpc_transient_codes_are_retried_others_are_not(
    fake: FakeQdrant, fake_grpc: FakeQdrantGrpc
) -> None:
    import grpc

    fake_grpc.collections["c"], fake_grpc.counts["c"] = object(), 3
    store = grpc_store(fake, fake_grpc)
    fake_grpc.script = [
        (grpc.StatusCode.UNAVAILABLE, None),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None),
    ]
    assert store.count("c") == 3
    assert len(fake_grpc.calls("Count")) == 3
    fake_grpc.script = [(grpc.StatusCode.RESOURCE_EXHAUSTED, "1")]
    t0 = time.perf_counter()
    assert store.count("c") == 3
    assert time.perf_counter() - t0 >= 1.0  # the server's retry-after, not the 0.05 s backoff
    fake_grpc.script = [(grpc.StatusCode.INVALID_ARGUMENT, None)] * 3
    n = len(fake_grpc.calls("Count"))
    with pytest.raises(StoreError, match="count points in collection 'c'") as err:
        store.count("c")
    assert not isinstance(err.value, RetriesExhaustedError)
    assert len(fake_grpc.calls("Count")) == n + 1
    fake_grpc.script = [(grpc.StatusCode.UNAVAILABLE, None)] * 10
    with pytest.raises(RetriesExhaustedError, match="after 4 attempts"):
        store.count("c")
    store.close()


def test_grpc_requests_carry_key_wait_ordering_consistency_and_options(
    fake: FakeQdrant, fake_grpc: FakeQdrantGrpc
) -> None:
    from qdrant_client import grpc as qg

    opts = CollectionOptions(shard_number=3, replication_factor=2, write_consistency_factor=2)
    store = grpc_store(
        fake,
        fake_grpc,
        api_key=SECRET,
        collection_options=opts,
        batch_size=10,
        parallel=3,
        write_ordering="strong",
        read_consistency="majority",
    )
    store.create_collection("c", SPEC)
    created = fake_grpc.collections["c"]
    assert (created.shard_number, created.replication_factor) == (3, 2)
    assert created.write_consistency_factor == 2
    store.upsert("c", records(35))
    assert store.count("c") == 35
    upserts = [r for _, r, _ in fake_grpc.calls("Upsert")]
    assert len(upserts) == 4 and all(u.wait for u in upserts)
    assert all(u.ordering.type == qg.WriteOrderingType.Strong for u in upserts)
    assert list(store.scroll("c")) == []
    (_, scroll, _), *_ = fake_grpc.calls("Scroll")
    assert scroll.read_consistency.type == qg.ReadConsistencyType.Majority
    assert all(meta.get("api-key") == SECRET for _, _, meta in fake_grpc.requests)
    assert SECRET not in repr(store)
    store.close()
