"""The retrieval service: ``asif-qdrant serve``, an HTTP API and a search page (docs/SERVE.md).

Needs the extra ``asif-qdrant[serve]`` (FastAPI, uvicorn, python-multipart).

* :func:`~asif_qdrant.service.app.create_app`: the FastAPI app over one open model.
* :func:`~asif_qdrant.service.server.serve` runs it with uvicorn;
  :func:`~asif_qdrant.service.server.serve_in_thread` runs it in a thread (tests, notebooks).
"""

from __future__ import annotations

from asif_qdrant.service.app import create_app
from asif_qdrant.service.server import serve, serve_in_thread

__all__ = ["create_app", "serve", "serve_in_thread"]
