"""Run the service with uvicorn: in the foreground (``asif-qdrant serve``) or in a thread.

Example:
    >>> import tempfile, httpx
    >>> from asif_qdrant import ASIF
    >>> from asif_qdrant.service import create_app
    >>> with ASIF(path=tempfile.mkdtemp(), image_encoder="precomputed/image",
    ...           text_encoder="precomputed/text", k=2) as asif:
    ...     with serve_in_thread(create_app(asif, warm_up=False)) as url:
    ...         httpx.get(f"{url}/health").json()
    {'status': 'ok'}
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from asif_qdrant.service.problems import ServiceError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HEADLESS_CHROMIUM_ARGS",
    "is_loopback",
    "serve",
    "serve_in_thread",
]

#: The default address: this machine only.
DEFAULT_HOST = "127.0.0.1"
#: The default port.
DEFAULT_PORT = 8000
#: Chromium's flags for viewing the page on a machine without a display, sandbox or network
#: (the browser test and ``scripts/serve_screenshot.py``).
HEADLESS_CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(app: Any, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **config: Any) -> None:
    """Serve ``app`` with uvicorn until interrupted (``config``: more ``uvicorn.Config``)."""
    config.setdefault("log_level", "info")
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, **config)).run()


@contextmanager
def serve_in_thread(
    app: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    wait_ready: float | None = 60.0,
    **config: Any,
) -> Iterator[str]:
    """Serve ``app`` in a daemon thread on ``host`` (port 0: a free one); yield its base URL.

    Args:
        app: The ASGI app.
        host: The address to bind.
        port: The port; 0 picks a free one.
        wait_ready: When the app is a service (:func:`create_app`), wait up to this many
            seconds for its encoders to load (``/ready``); None: do not wait.
        **config: More ``uvicorn.Config`` settings (default: ``log_level="warning"``).
    """
    # proto=IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on the accepted sockets only
    # when the listening socket names its protocol; without it every response waits ~40 ms
    # for the client's delayed ACK (Nagle), which made a 12 ms search take 60 ms over HTTP.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config.setdefault("log_level", "warning")
    server = uvicorn.Server(uvicorn.Config(app, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ServiceError(500, "The server did not start (see its log).")
            time.sleep(0.01)
        svc = getattr(getattr(app, "state", None), "service", None)
        if svc is not None and wait_ready is not None and not svc.ready.wait(wait_ready):
            raise ServiceError(503, f"The service was not ready within {wait_ready} s.")
        bound = sock.getsockname()
        name = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        yield f"http://{name}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
