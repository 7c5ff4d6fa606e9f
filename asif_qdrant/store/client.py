"""The client backend: any ``qdrant_client.QdrantClient`` (a server, a cluster, or local mode).

Against a server, :meth:`ClientStore.from_url` builds the client: gRPC when the server's gRPC
port answers (REST otherwise), an optional API key, a timeout, retries with exponential
backoff on transient failures (connection errors, timeouts, HTTP 5xx, 429 honouring
``Retry-After``; never on other 4xx errors), batched uploads spread over ``parallel``
threads, and collection options for a cluster (:class:`CollectionOptions`). Every write waits
until the server has applied it (``wait=True``), so a written point is searchable as soon as
the call returns.

qdrant-client's local mode (``QdrantClient(":memory:")`` or ``path=...``) is a pure-Python
emulation that scores sparse vectors in a Python loop: fine for small tests, far too slow for
real catalogs.

What talking to a server needs besides the store (the retry policy, the collection options,
the API-key hygiene, which failures are transient) lives in :mod:`asif_qdrant.store.remote`;
``QDRANT_IMAGE``, :class:`RetriesExhaustedError`, :class:`RetryPolicy` and
:class:`CollectionOptions` are importable from here too.

Example:
    >>> import numpy as np
    >>> from qdrant_client import QdrantClient
    >>> from asif_qdrant.store import ClientStore, CollectionSpec, Record
    >>> store = ClientStore(QdrantClient(":memory:"))
    >>> store.create_collection("demo", CollectionSpec(dense={"v": 2}))
    >>> store.upsert("demo", [Record(1, {"t": "x"}, dense={"v": np.array([1.0, 0.0])})])
    >>> store.query_dense("demo", "v", np.array([[1.0, 0.0]]), limit=1)
    [[(1, 1.0)]]
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from asif_qdrant.errors import (
    CollectionNotFoundError,
    InvalidParameterError,
    StoreError,
    check_int,
    check_real,
)
from asif_qdrant.store import wire
from asif_qdrant.store.base import (
    CollectionSpec,
    DenseSearch,
    FusionSearch,
    PointId,
    Record,
    ScoredPoint,
    SparseSearch,
    Store,
    check_collection_name,
)
from asif_qdrant.store.remote import (
    QDRANT_IMAGE,
    READ_CONSISTENCIES,
    WRITE_ORDERINGS,
    CollectionOptions,
    ReadConsistency,
    RetriesExhaustedError,
    RetryPolicy,
    Secret,
    WriteOrdering,
    public_url,
    qdrant_filter,
    rest_uri,
    short_message,
    transient_failure,
)
from asif_qdrant.types import SparseVector

__all__ = [
    "QDRANT_IMAGE",
    "ClientStore",
    "CollectionOptions",
    "RetriesExhaustedError",
    "RetryPolicy",
]

logger = logging.getLogger(__name__)

_E = TypeVar("_E", bound=Exception)
#: The keyword arguments of ClientStore that ClientStore.from_url passes on.
_STORE_OPTIONS = (
    "collection_options",
    "retry",
    "batch_size",
    "write_ordering",
    "read_consistency",
    "collection_prefix",
)


class ClientStore(Store):
    """Collections stored through a ``qdrant_client.QdrantClient``.

    Args:
        client: The client. The store does not close it unless ``close_client`` is True.
        close_client: Close the client in :meth:`close`.
        collection_options: Shards, replicas and on-disk storage of new collections.
        retry: Retries on transient failures (default :class:`RetryPolicy`).
        batch_size: Points per upsert request.
        parallel: Upsert requests in flight at once against a server (threads; local mode
            always uses 1).
        write_ordering: ``"weak"`` (the server's default), ``"medium"`` or ``"strong"``.
        read_consistency: Replicas a read asks on a cluster: an int, ``"majority"``,
            ``"quorum"`` or ``"all"`` (``None``: the server's default, one replica).
        collection_prefix: Prepended to every collection name on the server, to share one
            server between several users or test runs (``list_collections`` shows only the
            store's own collections, without the prefix).

    Raises:
        InvalidParameterError: On a bad argument.
    """

    kind = "client"

    def __init__(
        self,
        client: Any,
        *,
        close_client: bool = False,
        collection_options: CollectionOptions | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int = 256,
        parallel: int = 1,
        write_ordering: WriteOrdering | None = None,
        read_consistency: ReadConsistency | None = None,
        collection_prefix: str = "",
    ) -> None:
        from qdrant_client import QdrantClient

        if not isinstance(client, QdrantClient):
            raise InvalidParameterError(
                "The 'client' parameter of ClientStore must be a qdrant_client.QdrantClient. "
                f"Got {type(client).__name__} instead."
            )
        for param, value, cls in (
            ("collection_options", collection_options, CollectionOptions),
            ("retry", retry, RetryPolicy),
        ):
            if value is not None and not isinstance(value, cls):
                raise InvalidParameterError(
                    f"The '{param}' parameter of ClientStore must be a {cls.__name__} or None. "
                    f"Got {type(value).__name__} instead."
                )
        if write_ordering is not None and write_ordering not in WRITE_ORDERINGS:
            raise InvalidParameterError(
                "The 'write_ordering' parameter of ClientStore must be one of "
                f"{list(WRITE_ORDERINGS)} or None. Got {write_ordering!r} instead."
            )
        if read_consistency is not None and not (
            read_consistency in READ_CONSISTENCIES
            or (
                isinstance(read_consistency, int)
                and not isinstance(read_consistency, bool)
                and read_consistency >= 1
            )
        ):
            raise InvalidParameterError(
                "The 'read_consistency' parameter of ClientStore must be an int >= 1, one of "
                f"{list(READ_CONSISTENCIES)} or None. Got {read_consistency!r} instead."
            )
        if collection_prefix:
            check_collection_name(collection_prefix)
        self.client = client
        self.collection_options = collection_options or CollectionOptions()
        self.retry = retry or RetryPolicy()
        self.batch_size = check_int("batch_size", "ClientStore", batch_size, minimum=1)
        self.parallel = check_int("parallel", "ClientStore", parallel, minimum=1)
        self.write_ordering = write_ordering
        self.read_consistency = read_consistency
        self.collection_prefix = collection_prefix
        self._close_client = close_client
        self._closed = False
        uri = rest_uri(client)
        self._remote = uri is not None
        self._url = None if uri is None else public_url(uri)
        options = client.init_options
        self._grpc = self._remote and bool(options.get("prefer_grpc", False))
        self._api_key = Secret(options.get("api_key"))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        prefer_grpc: bool = True,
        grpc_port: int = 6334,
        timeout: float = 30.0,
        check_compatibility: bool = True,
        parallel: int = 4,
        **options: Any,
    ) -> ClientStore:
        """A store on the Qdrant server (or cluster node) at ``url``.

        With ``prefer_grpc`` the store asks the server's gRPC port once (listing the
        collections); when that port does not answer it logs a warning and speaks REST.

        Args:
            url: The server's REST URL, e.g. ``http://localhost:6333``.
            api_key: The server's API key (never logged, shown or put in error messages).
            prefer_grpc: Use gRPC (port ``grpc_port``) when it answers; False: REST only.
            grpc_port: The server's gRPC port.
            timeout: Seconds per request.
            check_compatibility: Let qdrant-client compare its version with the server's.
            parallel: Upsert requests in flight at once (see :class:`ClientStore`, where the
                default is 1).
            **options: The other keyword arguments of :class:`ClientStore`:
                ``collection_options``, ``retry``, ``batch_size``, ``write_ordering``,
                ``read_consistency``, ``collection_prefix``.

        Returns:
            The store; closing it closes its client.

        Raises:
            InvalidParameterError: On a bad argument.
            TypeError: On a keyword argument that is not one of these.
        """
        from qdrant_client import QdrantClient

        unknown = sorted(set(options) - set(_STORE_OPTIONS))
        if unknown:
            raise TypeError(
                f"ClientStore.from_url() got unexpected keyword arguments: {', '.join(unknown)}"
            )

        if not isinstance(url, str) or not url.strip():
            raise InvalidParameterError(
                "The 'url' parameter of ClientStore.from_url must be a non-empty str such as "
                f"'http://localhost:6333'. Got {url!r} instead."
            )
        if api_key is not None and not isinstance(api_key, str):
            raise InvalidParameterError(
                "The 'api_key' parameter of ClientStore.from_url must be a str or None. "
                f"Got a {type(api_key).__name__} instead."
            )
        check_int("grpc_port", "ClientStore.from_url", grpc_port, minimum=1)
        check_real("timeout", "ClientStore.from_url", timeout, greater_than=0)
        secret = Secret(api_key)

        def build(grpc: bool) -> Any:
            with warnings.catch_warnings():
                # The key over kwargs http is the user's choice (e.g. a local container).
                warnings.filterwarnings("ignore", message="Api key is used with an insecure")
                try:
                    return QdrantClient(
                        url=url,
                        api_key=api_key or None,
                        prefer_grpc=grpc,
                        grpc_port=grpc_port,
                        timeout=math.ceil(timeout),
                        check_compatibility=check_compatibility,
                    )
                except Exception as e:
                    raise InvalidParameterError(
                        "The 'url' parameter of ClientStore.from_url must be a Qdrant URL such "
                        f"as 'http://localhost:6333'. Got {public_url(url)!r} instead "
                        f"({secret.redact(short_message(e))})."
                    ) from None

        client = build(prefer_grpc)
        if prefer_grpc:
            try:
                client.get_collections()
            except Exception as e:
                transient, _ = transient_failure(e)
                if transient:
                    logger.warning(
                        "The gRPC port %d of the Qdrant server at %s does not answer (%s); "
                        "using REST.",
                        grpc_port,
                        public_url(url),
                        secret.redact(short_message(e)),
                    )
                    client.close()
                    client = build(False)
        return cls(client, close_client=True, parallel=parallel, **options)

    # -- helpers -------------------------------------------------------------------------
    @property
    def transport(self) -> Literal["grpc", "rest", "local"]:
        """How the store talks to Qdrant."""
        if not self._remote:
            return "local"
        return "grpc" if self._grpc else "rest"

    @property
    def url(self) -> str | None:
        """The server's REST URL without credentials (None in local mode)."""
        return self._url

    def qdrant_name(self, name: str) -> str:
        """The collection's name on the server (with :attr:`collection_prefix`)."""
        return self.collection_prefix + check_collection_name(name)

    def _retrying(
        self, what: str, name: str | None, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Call ``fn``, retrying transient failures; RetriesExhaustedError when they persist.

        Other failures are raised as they are (see :meth:`_call`).
        """
        where = f" in collection '{name}'" if name is not None else ""
        for attempt in range(self.retry.max_retries + 1):
            if self._closed:
                raise StoreError("The store is closed.")
            try:
                with warnings.catch_warnings():
                    # Local mode warns that search params are ignored: it is always exact.
                    warnings.filterwarnings("ignore", message="Local mode performs exact")
                    return fn(*args, **kwargs)
            except Exception as e:
                transient, retry_after = transient_failure(e)
                if not transient:
                    raise
                reason = self._api_key.redact(short_message(e))
                too_long = retry_after is not None and retry_after > self.retry.max_retry_after
                if attempt < self.retry.max_retries and not too_long:
                    wait = self.retry.delay(attempt, retry_after=retry_after)
                    logger.info(
                        "Qdrant failed to %s%s (%s); retry %d of %d in %.2f s",
                        what,
                        where,
                        reason,
                        attempt + 1,
                        self.retry.max_retries,
                        wait,
                    )
                    time.sleep(wait)
                    continue
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                why = (
                    f"the server asks to retry after {retry_after:g} s, more than "
                    f"max_retry_after={self.retry.max_retry_after:g} s"
                    if too_long
                    else "the failure persisted"
                )
                failure = self._chain(
                    RetriesExhaustedError(
                        f"Qdrant failed to {what}{where} after {tries} ({why}): {reason}",
                        attempts=attempt + 1,
                    ),
                    e,
                )
            raise failure  # outside the except block: no implicit context to leak
        raise AssertionError("unreachable")  # pragma: no cover

    def _chain(self, err: _E, cause: BaseException) -> _E:
        """Chain ``cause`` to ``err`` unless its text holds the API key (then drop it)."""
        if self._api_key and self._api_key.redact(str(cause)) != str(cause):
            err.__cause__ = None
        else:
            err.__cause__ = cause
        err.__suppress_context__ = True
        return err

    def _call(self, name: str | None, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` with retries; every failure becomes a StoreError naming the collection."""
        try:
            return self._retrying(what, name, fn, *args, **kwargs)
        except (CollectionNotFoundError, StoreError):
            raise
        except Exception as e:
            missing = (
                name is not None
                and fn != self.client.collection_exists  # (bound methods: == not is)
                and "not found" in str(e).lower()
            )
            cause = e
            where = f" in collection '{name}'" if name is not None else ""
            failure: Exception = self._chain(
                StoreError(
                    f"Qdrant failed to {what}{where}: {self._api_key.redact(short_message(e))}"
                ),
                e,
            )
        if missing and not self.has_collection(name):  # type: ignore[arg-type]
            failure = self._chain(
                CollectionNotFoundError(f"Collection '{name}' does not exist."),
                cause,
            )
        raise failure

    def _read_kwargs(self) -> dict[str, Any]:
        from qdrant_client import models

        rc = self.read_consistency
        if rc is None:
            return {}
        # The gRPC conversion wants the enum, not its string.
        return {"consistency": rc if isinstance(rc, int) else models.ReadConsistencyType(rc)}

    def _write_kwargs(self) -> dict[str, Any]:
        from qdrant_client import models

        out: dict[str, Any] = {"wait": True}
        if self.write_ordering is not None:
            out["ordering"] = models.WriteOrdering(self.write_ordering)
        return out

    def _read(self, name: str, what: str, fn: Any, **kwargs: Any) -> Any:
        """A read of collection ``name`` with the store's read consistency (see :meth:`_call`)."""
        return self._call(
            name, what, fn, collection_name=self.qdrant_name(name), **kwargs, **self._read_kwargs()
        )

    def _write(self, name: str, what: str, fn: Any, **kwargs: Any) -> None:
        """A write to collection ``name`` that waits until applied, with the store's ordering."""
        self._call(
            name, what, fn, collection_name=self.qdrant_name(name), **kwargs, **self._write_kwargs()
        )

    # -- collections ---------------------------------------------------------------------
    def has_collection(self, name: str) -> bool:  # noqa: D102
        full = self.qdrant_name(name)
        return bool(self._call(name, "check the collection", self.client.collection_exists, full))

    def create_collection(self, name: str, spec: CollectionSpec) -> None:  # noqa: D102
        from qdrant_client import models

        if self.has_collection(name):
            raise StoreError(f"Collection '{name}' already exists.")
        opts = self.collection_options
        full = self.qdrant_name(name)
        sparse_index = (
            None
            if opts.on_disk_sparse_index is None
            else models.SparseIndexParams(on_disk=opts.on_disk_sparse_index)
        )
        extra = {
            k: v
            for k, v in (
                ("shard_number", opts.shard_number),
                ("replication_factor", opts.replication_factor),
                ("write_consistency_factor", opts.write_consistency_factor),
                ("on_disk_payload", opts.on_disk_payload),
            )
            if v is not None
        }
        on_disk = opts.on_disk_vectors
        if spec.on_disk and on_disk is None:
            on_disk = True
            extra.setdefault("on_disk_payload", True)
        tries = 0

        def create() -> None:
            nonlocal tries
            tries += 1
            # A retried create whose first try reached the server finds the collection.
            if tries > 1 and self.client.collection_exists(full):
                return
            self.client.create_collection(
                collection_name=full,
                vectors_config={
                    vn: models.VectorParams(
                        size=int(dim), distance=models.Distance.DOT, on_disk=on_disk
                    )
                    for vn, dim in spec.dense.items()
                },
                sparse_vectors_config={
                    vn: models.SparseVectorParams(modifier=models.Modifier.NONE, index=sparse_index)
                    for vn in spec.sparse
                },
                **extra,
            )

        self._call(name, "create the collection", create)

    def collection_spec(self, name: str) -> CollectionSpec:  # noqa: D102
        if not self.has_collection(name):
            raise CollectionNotFoundError(f"Collection '{name}' does not exist.")
        info = self._call(
            name, "read the collection", self.client.get_collection, self.qdrant_name(name)
        )
        vectors = info.config.params.vectors or {}
        if not isinstance(vectors, dict):  # a single unnamed vector: not one of ours
            vectors = {"": vectors}
        sparse = info.config.params.sparse_vectors or {}
        return CollectionSpec(
            dense={vn: int(p.size) for vn, p in vectors.items()}, sparse=tuple(sorted(sparse))
        )

    def delete_collection(self, name: str) -> None:  # noqa: D102
        if self.has_collection(name):
            self._call(
                name, "delete the collection", self.client.delete_collection, self.qdrant_name(name)
            )

    def list_collections(self) -> list[str]:  # noqa: D102
        res = self._call(None, "list the collections", self.client.get_collections)
        p = self.collection_prefix
        return sorted(c.name[len(p) :] for c in res.collections if c.name.startswith(p))

    # -- points --------------------------------------------------------------------------
    def upsert(self, name: str, records: Sequence[Record]) -> None:
        """Insert or replace points; durable and searchable when this returns.

        Points go in requests of :attr:`batch_size`; against a server, up to :attr:`parallel`
        requests are in flight at once. Each request waits until the server applied it.
        """
        from qdrant_client import models

        batches = list(wire.chunks(records, self.batch_size))

        def send(batch: Sequence[Record]) -> None:
            points = [
                models.PointStruct(
                    id=r.id, vector=wire.point_vectors(r, models.SparseVector), payload=r.payload
                )
                for r in batch
            ]
            self._write(name, "upsert points", self.client.upsert, points=points)

        workers = min(self.parallel, len(batches)) if self._remote else 1
        # Parallel requests may land in any order: only when no id repeats across them.
        if workers > 1 and len({r.id for r in records}) == len(records):
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="asif-upsert") as ex:
                for _ in ex.map(send, batches):
                    pass
        else:
            for batch in batches:
                send(batch)

    def delete(self, name: str, ids: Sequence[PointId]) -> None:  # noqa: D102
        from qdrant_client import models

        selector = models.PointIdsList(points=list(ids))
        self._write(name, "delete points", self.client.delete, points_selector=selector)

    def update_vectors(self, name: str, records: Sequence[Record]) -> None:  # noqa: D102
        from qdrant_client import models

        for batch in wire.chunks(wire.keep_existing(self, name, records), self.batch_size):
            points = [
                models.PointVectors(id=r.id, vector=wire.point_vectors(r, models.SparseVector))
                for r in batch
            ]
            self._write(name, "update vectors", self.client.update_vectors, points=points)

    def retrieve(  # noqa: D102
        self, name: str, ids: Sequence[PointId], *, with_vectors: bool | Sequence[str] = False
    ) -> list[Record]:
        found = self._read(
            name,
            "retrieve points",
            self.client.retrieve,
            ids=list(ids),
            with_payload=True,
            with_vectors=wire.vector_selector(with_vectors),
        )
        return wire.records_in_order(ids, found)

    def scroll(  # noqa: D102
        self, name: str, *, with_vectors: bool | Sequence[str] = False, batch_size: int = 256
    ) -> Iterator[Record]:
        wv = wire.vector_selector(with_vectors)

        def page(offset: PointId | None) -> Any:
            return self._read(
                name,
                "scroll",
                self.client.scroll,
                limit=batch_size,
                offset=offset,
                with_payload=True,
                with_vectors=wv,
            )

        yield from wire.scroll_records(page)

    def find_by_payload(  # noqa: D102
        self, name: str, key: str, values: Sequence[Any]
    ) -> list[Record]:
        values = list(dict.fromkeys(values))
        out: list[Record] = []
        for batch in wire.chunks(values, self.batch_size):
            condition = qdrant_filter({key: list(batch)})

            def page(offset: PointId | None, flt: Any = condition) -> Any:
                return self._read(
                    name,
                    "scroll",
                    self.client.scroll,
                    scroll_filter=flt,
                    limit=256,
                    offset=offset,
                    with_payload=True,
                    with_vectors=False,
                )

            out.extend(wire.scroll_records(page))
        return out

    def create_payload_index(self, name: str, key: str) -> None:  # noqa: D102
        if self.transport == "local":
            return  # local mode has no payload indexes (it scans)
        self._write(
            name,
            "create a payload index",
            self.client.create_payload_index,
            field_name=key,
            field_schema="keyword",
        )

    def count(self, name: str) -> int:  # noqa: D102
        res = self._call(
            name,
            "count points",
            self.client.count,
            collection_name=self.qdrant_name(name),
            exact=True,
        )
        return int(res.count)

    # -- queries -------------------------------------------------------------------------
    def _run_dense(self, name: str, search: DenseSearch) -> list[list[tuple[PointId, float]]]:
        from qdrant_client import models

        reqs = [
            models.QueryRequest(
                query=row.tolist(),
                using=search.vector_name,
                limit=search.limit,
                params=models.SearchParams(exact=True),
                score_threshold=search.threshold,
            )
            for row in search.rows
        ]
        res = self._read(
            name,
            "query dense vectors" + ("" if search.threshold is None else " above a score"),
            self.client.query_batch_points,
            requests=reqs,
        )
        return [wire.id_scores(r.points) for r in res]

    def _run_sparse(self, name: str, search: SparseSearch) -> list[ScoredPoint]:
        from qdrant_client import models

        res = self._read(
            name,
            "query sparse vectors",
            self.client.query_points,
            query=models.SparseVector(indices=search.indices, values=search.values),
            using=search.vector_name,
            limit=search.limit,
            query_filter=qdrant_filter(search.filter),
            with_payload=search.with_payload,
            prefetch=None
            if search.prefetch is None
            else models.Prefetch(
                query=models.SparseVector(indices=search.prefetch[0], values=search.prefetch[1]),
                using=search.vector_name,
                limit=search.prefetch[2],
                filter=qdrant_filter(search.filter),
            ),
        )
        return wire.scored_points(res.points)

    def _run_fusion(self, name: str, search: FusionSearch) -> list[ScoredPoint]:
        from qdrant_client import models

        flt = qdrant_filter(search.filter)
        stages = [
            models.Prefetch(
                query=wire.query_vector(p.query, models.SparseVector),
                using=p.vector_name,
                limit=int(p.limit),
                filter=flt,
                params=None
                if isinstance(p.query, SparseVector)
                else models.SearchParams(exact=True),
            )
            for p in search.prefetches
        ]
        kwargs: dict[str, Any] = {}
        if search.fusion is None:
            (stage,) = stages
            kwargs = {"query": stage.query, "using": stage.using, "search_params": stage.params}
        elif search.fusion == "dbsf":
            kwargs = {"prefetch": stages, "query": models.FusionQuery(fusion=models.Fusion.DBSF)}
        elif search.rrf_k == 2:  # Qdrant's default k: the kwargs form, understood by older servers
            kwargs = {"prefetch": stages, "query": models.FusionQuery(fusion=models.Fusion.RRF)}
        else:
            kwargs = {"prefetch": stages, "query": models.RrfQuery(rrf=models.Rrf(k=search.rrf_k))}
        res = self._read(
            name,
            "run a fusion query",
            self.client.query_points,
            **kwargs,
            limit=search.limit,
            query_filter=flt,
            with_payload=search.with_payload,
        )
        return wire.scored_points(res.points)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:  # noqa: D102
        if not self._closed and self._close_client:
            self.client.close()
        self._closed = True

    def describe(self) -> str:  # noqa: D102
        if self.transport == "local":
            return "qdrant-client local mode (pure-Python emulation; for small tests)"
        return f"Qdrant server at {self.url} via {self.transport} (qdrant-client)"

    def __repr__(self) -> str:
        return (
            f"ClientStore(transport={self.transport!r}, url={self.url!r}, "
            f"api_key={self._api_key!r}, collection_prefix={self.collection_prefix!r}, "
            f"parallel={self.parallel}, batch_size={self.batch_size})"
        )
