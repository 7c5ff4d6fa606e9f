"""``asif-qdrant serve``: the retrieval service and its search page (docs/SERVE.md).

One process owns the model, loads the encoders once and answers over HTTP
(:mod:`asif_qdrant.service`). It needs the extra ``asif-qdrant[serve]``.

Example:
    >>> from click.testing import CliRunner
    >>> "--api-key-env" in CliRunner().invoke(serve, ["--help"]).output
    True
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

import click

from asif_qdrant.cli.common import FOLDER_PATH, ModelOptions, model_options, number_option

__all__ = ["SERVE_EXTRA", "serve"]

#: What installs the service's dependencies.
SERVE_EXTRA = "pip install 'asif-qdrant[serve]'"


def _require_extra() -> None:
    missing = [
        m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise click.UsageError(
            f"`asif-qdrant serve` needs {', '.join(missing)} (python-multipart for 'multipart'): "
            f"install the extra with {SERVE_EXTRA}."
        )


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise click.UsageError(
            f"--api-key-env names the variable ${variable}, which is unset or empty: export "
            "the key in it (the key itself is never given on the command line)."
        )
    return key


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--api-key-env",
    metavar="VAR",
    default=None,
    help="Require the API key in this environment variable as the X-API-Key header of "
    "every request [default: no key].",
)
@number_option(
    "--max-upload-mb",
    click.FloatRange(min=0.001),
    10.0,
    "The most megabytes (MiB) per uploaded image.",
)
@number_option(
    "--max-image-pixels",
    click.IntRange(min=1),
    40_000_000,
    "The most pixels per uploaded image (decompression bombs are refused).",
)
@click.option(
    "--upload-dir",
    type=FOLDER_PATH,
    default=None,
    help="Keep uploaded anchor and item images here so the page can show them "
    "[default: the folder FOLDER-uploads beside an embedded model FOLDER; none on a server].",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Refuse edits (anchors add / delete, indexing): a replica beside the one service "
    "that edits a model on a Qdrant server (docs/SERVE.md).",
)
@model_options
def serve(
    host: str,
    port: int,
    api_key_env: str | None,
    max_upload_mb: float,
    max_image_pixels: int,
    upload_dir: Path | None,
    read_only: bool,
    model: ModelOptions,
) -> None:
    """Serve the model over HTTP: search, explain, classify, edit, and a search page at /.

    The model stays open (and its embedded folder locked) until the server stops (Ctrl+C).
    Several processes can serve one model on a Qdrant server (--url): docs/SERVE.md.
    """
    _require_extra()
    key = _api_key(api_key_env)
    from asif_qdrant.service import create_app
    from asif_qdrant.service.server import is_loopback
    from asif_qdrant.service.server import serve as run_server

    if not is_loopback(host) and key is None:
        click.echo(
            f"warning: serving on {host} without an API key: anyone who reaches it can edit "
            "the model (use --api-key-env).",
            err=True,
        )
    if upload_dir is None and model.url is None and model.path is not None:
        upload_dir = Path(model.path).parent / f"{Path(model.path).name}-uploads"
    with model.open() as asif:
        app = create_app(
            asif,
            api_key=key,
            max_upload_bytes=int(max_upload_mb * 1024 * 1024),
            max_image_pixels=max_image_pixels,
            upload_dir=upload_dir,
            read_only=read_only,
        )
        click.echo(
            f"serving the model '{asif.name}' on http://{host}:{port}/ (docs: /docs)", err=True
        )
        # uvicorn re-raises Ctrl+C once it has shut down cleanly: that is a normal stop
        with contextlib.suppress(KeyboardInterrupt):
            run_server(app, host=host, port=port)
    click.echo("stopped; the model is closed", err=True)
