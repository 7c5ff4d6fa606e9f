"""How the service says no: JSON errors that name the field, API keys, request size limits.

Every error leaves the service as ``{"error": kind, "message": ..., "field": ...}`` with a
4xx status (:class:`~asif_qdrant.service.schemas.ErrorOut`): an
:class:`~asif_qdrant.errors.ASIFError` raised by the model maps by its class
(:data:`STATUS`), a request that does not fit the schema is a 422 naming the first bad field,
and anything unexpected is a 500 whose body says only its kind (the traceback goes to the
server's log, never to the client).

Example:
    >>> from asif_qdrant.errors import CollectionNotFoundError, InvalidParameterError
    >>> status_of(CollectionNotFoundError("no such catalog"))
    404
    >>> field_of(InvalidParameterError("The 'limit' parameter of ASIF.search must be ..."))
    'limit'
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from asif_qdrant.errors import (
    AnchorSetError,
    ASIFError,
    CollectionNotFoundError,
    EncoderLoadError,
    FingerprintMismatchError,
    ImageDecodeError,
    InvalidInputError,
    InvalidParameterError,
    StoreError,
)

__all__ = [
    "API_KEY_HEADER",
    "PUBLIC_PATHS",
    "STATUS",
    "ApiKeyMiddleware",
    "BodyLimitMiddleware",
    "ServiceError",
    "error_body",
    "field_of",
    "install_error_handlers",
    "status_of",
]

log = logging.getLogger(__name__)

#: The header that carries the API key.
API_KEY_HEADER = "X-API-Key"
#: Paths served without the key: the search page's own files (they hold no data).
PUBLIC_PATHS = ("/", "/static/")

#: The HTTP status of each kind of model error (the first matching class wins).
STATUS: tuple[tuple[type[ASIFError], int], ...] = (
    (CollectionNotFoundError, 404),  # ModelNotFoundError too
    (ImageDecodeError, 415),
    (FingerprintMismatchError, 409),
    (StoreError, 409),
    (EncoderLoadError, 409),
    (AnchorSetError, 422),
    (InvalidParameterError, 422),
    (InvalidInputError, 422),
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServiceError(ASIFError):
    """A request the service refuses: its HTTP status and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.kind = kind or type(self).__name__


def status_of(exc: ASIFError) -> int:
    """The HTTP status of a model error (400 for a kind not in :data:`STATUS`)."""
    if isinstance(exc, ServiceError):
        return exc.status
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 400)


_PARAM = re.compile(r"[Tt]he '([A-Za-z_]+)' parameter")


def field_of(exc: BaseException, default: str | None = None) -> str | None:
    """The field an error names (``The 'x' parameter ...``), else ``default``."""
    if isinstance(exc, ServiceError) and exc.field:
        return exc.field
    found = _PARAM.search(str(exc))
    return found.group(1) if found else default


def error_body(kind: str, message: str, field: str | None) -> dict[str, Any]:
    """The JSON body of every error (:class:`~asif_qdrant.service.schemas.ErrorOut`)."""
    return {"error": kind, "message": message, "field": field}


_UNION_TAGS = frozenset({"str", "int", "bool", "float", "uuid", "list", "dict", "none"})


def _validation_field(loc: tuple[Any, ...]) -> str:
    """``("body", "filter", "a", "constrained-str")`` -> ``"filter.a"``: the field, no tags."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    kept: list[str] = []
    for p in parts:
        if kept and (p in _UNION_TAGS or "-" in p or "[" in p):
            break
        kept.append(p)
    return ".".join(kept)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error a JSON :class:`ErrorOut` with a 4xx status (500 only if unexpected)."""

    @app.exception_handler(ASIFError)
    async def model_error(request: Request, exc: ASIFError) -> JSONResponse:
        kind = exc.kind if isinstance(exc, ServiceError) else type(exc).__name__
        body = error_body(kind, str(exc), field_of(exc, getattr(exc, "field", None)))
        return JSONResponse(body, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _validation_field(tuple(first.get("loc", ())))
        more = f" ({len(errors) - 1} more problems)" if len(errors) > 1 else ""
        message = f"{field}: {first.get('msg', 'invalid')}{more}."
        return JSONResponse(error_body("RequestValidationError", message, field), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return JSONResponse(
            error_body(kind, str(exc.detail), None), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        message = f"Internal error ({type(exc).__name__}); the server's log has the details."
        return JSONResponse(error_body("InternalError", message, None), 500)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class ApiKeyMiddleware:
    """Require :data:`API_KEY_HEADER` equal to ``api_key`` on every path but the page's files.

    The comparison is constant-time (:func:`hmac.compare_digest`); the key is never logged.
    """

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        path = scope.get("path", "")
        public = path == "/" or path.startswith(PUBLIC_PATHS[1])
        if scope["type"] != "http" or public:
            return await self.app(scope, receive, send)
        wanted = API_KEY_HEADER.lower().encode()
        given = next((v for k, v in scope.get("headers", []) if k == wanted), None)
        if given is None:
            msg = f"This service needs an API key: send it in the {API_KEY_HEADER} header."
            return await _send_json(send, 401, error_body("MissingAPIKey", msg, API_KEY_HEADER))
        if not hmac.compare_digest(given, self.key):
            msg = f"The API key in the {API_KEY_HEADER} header is not this service's key."
            return await _send_json(send, 403, error_body("WrongAPIKey", msg, API_KEY_HEADER))
        return await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse a request body over ``max_bytes`` with a 413 before reading it all."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: int | None) -> dict[str, Any]:
        got = f"{size} bytes" if size is not None else "more"
        msg = (
            f"The request body is too large: at most {self.max_bytes} bytes in all are "
            f"accepted (each uploaded file at most the service's --max-upload-mb). Got {got}."
        )
        return error_body("PayloadTooLarge", msg, "body")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _send_json(send, 413, self._too_large(int(length)))
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise ServiceError(413, self._too_large(None)["message"], "body", "PayloadTooLarge")
            return message

        return await self.app(scope, counted, send)
