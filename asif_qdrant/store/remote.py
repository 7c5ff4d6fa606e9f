"""What :class:`~asif_qdrant.store.client.ClientStore` needs to talk to a Qdrant server.

The server image the tests pin, the retry policy and its error, the collection options of a
cluster, the API-key hygiene (a secret that never shows itself, URLs without credentials,
short error texts), which failures of qdrant-client are transient (and the server's
``Retry-After``), and the payload filter in qdrant-client's terms. The store itself lives in
:mod:`asif_qdrant.store.client`, which re-exports the public names users import from there.

Example:
    >>> secret = Secret("k3y")
    >>> secret, secret.redact("bad key k3y")
    ('***', 'bad key ***')
    >>> public_url("http://user:pw@localhost:6333/?api-key=k3y")
    'http://localhost:6333/'
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from asif_qdrant.errors import InvalidParameterError, StoreError, check_int, check_real
from asif_qdrant.store.base import PayloadFilter, filter_conditions

__all__ = [
    "QDRANT_IMAGE",
    "READ_CONSISTENCIES",
    "WRITE_ORDERINGS",
    "CollectionOptions",
    "ReadConsistency",
    "RetriesExhaustedError",
    "RetryPolicy",
    "Secret",
    "WriteOrdering",
    "parse_retry_after",
    "public_url",
    "qdrant_filter",
    "rest_uri",
    "short_message",
    "transient_failure",
]

#: The Qdrant server image the server leg of the tests and ``docker/compose.yaml`` use.
QDRANT_IMAGE = "qdrant/qdrant:v1.19.1"

WriteOrdering = Literal["weak", "medium", "strong"]
ReadConsistency = int | Literal["all", "majority", "quorum"]
#: The write orderings a server accepts.
WRITE_ORDERINGS = ("weak", "medium", "strong")
#: The named read consistencies a cluster accepts (besides an int).
READ_CONSISTENCIES = ("all", "majority", "quorum")


class RetriesExhaustedError(StoreError):
    """A transient server failure outlasted every retry.

    Attributes:
        attempts: How many times the operation was tried.
    """

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`ClientStore` retries transient failures.

    A failure is transient when it is a connection error or timeout, an HTTP 5xx, an HTTP 429
    or a gRPC ``UNAVAILABLE`` / ``DEADLINE_EXCEEDED`` / ``RESOURCE_EXHAUSTED`` / ``ABORTED``.
    Other errors (a 400 for a wrong vector size, a 401 for a wrong API key, a 404) are raised
    at once. Retry ``n`` (0-based) waits ``min(max_backoff, initial_backoff * multiplier**n)``
    seconds, spread by +/- ``jitter`` (a fraction); a ``Retry-After`` from the server is
    honoured when it is longer, and ends the retries when it exceeds ``max_retry_after``.

    Attributes:
        max_retries: Retries after the first try (0 disables retrying).
        initial_backoff: Seconds before the first retry.
        multiplier: Growth of the wait per retry.
        max_backoff: Longest wait between two tries, in seconds.
        jitter: Random spread of each wait, as a fraction in [0, 1).
        max_retry_after: Longest ``Retry-After`` the store waits for, in seconds.

    Example:
        >>> policy = RetryPolicy(initial_backoff=0.5, multiplier=2.0, max_backoff=3.0, jitter=0)
        >>> [policy.delay(n) for n in range(4)]
        [0.5, 1.0, 2.0, 3.0]
        >>> policy.delay(0, retry_after=5.0)
        5.0
    """

    max_retries: int = 5
    initial_backoff: float = 0.2
    multiplier: float = 2.0
    max_backoff: float = 10.0
    jitter: float = 0.1
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        check_int("max_retries", "RetryPolicy", self.max_retries, minimum=0)
        for name in ("initial_backoff", "multiplier", "max_backoff", "max_retry_after"):
            check_real(name, "RetryPolicy", getattr(self, name), greater_than=0)
        jitter = check_real("jitter", "RetryPolicy", self.jitter)
        if not 0 <= jitter < 1:
            raise InvalidParameterError(
                "The 'jitter' parameter of RetryPolicy must be a float in [0, 1). "
                f"Got {self.jitter!r} instead."
            )

    def delay(self, retry: int, *, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier**retry)
        if self.jitter:
            base *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return max(base, retry_after or 0.0)


@dataclass(frozen=True)
class CollectionOptions:
    """How :class:`ClientStore` creates collections on a server or cluster.

    ``None`` leaves the server's default. Local mode accepts and ignores the cluster options.

    Attributes:
        shard_number: Shards per collection (spread over the cluster's nodes).
        replication_factor: Copies of each shard.
        write_consistency_factor: Replicas that must apply a write before it is acknowledged
            (at most ``replication_factor``). With ``replication_factor``, a written point
            is searchable on every replica as soon as the write returns.
        on_disk_payload: Keep payloads on disk instead of in RAM.
        on_disk_vectors: Keep the original dense vectors on disk (memory-mapped).
        on_disk_sparse_index: Keep the sparse (ASIF) inverted index on disk.

    Example:
        >>> CollectionOptions(shard_number=6, replication_factor=2).as_dict()["shard_number"]
        6
        >>> CollectionOptions(replication_factor=1, write_consistency_factor=2)
        Traceback (most recent call last):
        ...
        asif_qdrant.errors.InvalidParameterError: The 'write_consistency_factor' parameter of CollectionOptions must be an int <= replication_factor (1). Got 2 instead.
    """  # noqa: E501

    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    on_disk_payload: bool | None = None
    on_disk_vectors: bool | None = None
    on_disk_sparse_index: bool | None = None

    def __post_init__(self) -> None:
        for name in ("shard_number", "replication_factor", "write_consistency_factor"):
            value = getattr(self, name)
            if value is not None:
                check_int(name, "CollectionOptions", value, minimum=1)
        for name in ("on_disk_payload", "on_disk_vectors", "on_disk_sparse_index"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise InvalidParameterError(
                    f"The '{name}' parameter of CollectionOptions must be a bool or None. "
                    f"Got {value!r} instead."
                )
        rf, wcf = self.replication_factor, self.write_consistency_factor
        if rf is not None and wcf is not None and wcf > rf:
            raise InvalidParameterError(
                "The 'write_consistency_factor' parameter of CollectionOptions must be an int "
                f"<= replication_factor ({rf}). Got {wcf} instead."
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return asdict(self)


class Secret:
    """Holds the API key; its repr and str never show it.

    Args:
        value: The key (``None`` or ``""``: no key).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def __repr__(self) -> str:
        return "'***'" if self._value else "None"

    __str__ = __repr__

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by ``***``."""
        return text.replace(self._value, "***") if self._value else text

    def __bool__(self) -> bool:
        return self._value is not None


def public_url(url: str) -> str:
    """The URL without user name, password or query (they may hold credentials)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:  # a bad port ("host:abc"), or brackets out of place
        return "<unparsable url>"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def rest_uri(client: Any) -> str | None:
    """The REST base URI of a client that talks to a server; None in local mode.

    qdrant-client has no public "local mode" flag; its public ``http`` property (the REST API
    client) raises NotImplementedError in local mode, and that client's ``host`` is the URI
    qdrant-client built from ``url`` / ``host`` / ``port`` / ``https`` / ``prefix``.
    """
    try:
        api = client.http
    except NotImplementedError:
        return None
    return str(api.client.host)


def transient_failure(exc: BaseException) -> tuple[bool, float | None]:
    """Whether a qdrant-client failure is worth retrying, and the server's Retry-After.

    Args:
        exc: The failure qdrant-client raised.

    Returns:
        ``(retry, retry_after)``: True for a connection error or timeout, an HTTP 5xx or
        429, or a retryable gRPC status; the seconds the server asks to wait, or None.
    """
    import httpx
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, ResourceExhaustedResponse):  # 429 (REST) or RESOURCE_EXHAUSTED (gRPC)
        return True, float(exc.retry_after_s)
    if isinstance(exc, UnexpectedResponse):
        code = exc.status_code or 0
        if code == 429 or 500 <= code < 600:
            return True, parse_retry_after(exc.headers)
        return False, None
    if isinstance(exc, ResponseHandlingException):
        return isinstance(exc.source, (httpx.TransportError, OSError)), None
    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True, None
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpcio is a dependency of qdrant-client
        return False, None
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        retryable = {
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.ABORTED,
        }
        return exc.code() in retryable, None
    return False, None


def parse_retry_after(headers: Any) -> float | None:
    """The seconds of a ``Retry-After`` header (None when absent or an HTTP date)."""
    value = (headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, the backoff applies
        return None


def short_message(exc: BaseException) -> str:
    """The failure's text on one line, at most 300 characters (its type when it has none)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def qdrant_filter(flt: PayloadFilter | None) -> Any:
    """The payload filter as a ``qdrant_client.models.Filter`` (None when it has no condition)."""
    conditions = filter_conditions(flt)
    if not conditions:
        return None
    from qdrant_client import models

    return models.Filter(
        must=[
            models.FieldCondition(
                key=key, match=models.MatchAny(any=v) if many else models.MatchValue(value=v)
            )
            for key, v, many in conditions
        ]
    )
