"""``asif-qdrant export``, ``import`` and ``migrate``: move a model between stores and files.

A store is an embedded folder (``--path``, default ``$ASIF_QDRANT_PATH`` or ``./asif-data``) or
a Qdrant server (``--url``, default ``$QDRANT_URL``; the API key comes from
``$QDRANT_API_KEY`` only, never from the command line, where other users could read it).

Example:
    >>> from click.testing import CliRunner
    >>> from asif_qdrant.cli import main
    >>> result = CliRunner().invoke(main, ["migrate", "--help"])
    >>> "--to-url" in result.output and "--shards" in result.output
    True
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from asif_qdrant.cli import _emit, main
from asif_qdrant.errors import ASIFError

__all__ = ["export_cmd", "import_cmd", "migrate_cmd"]


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ASIFError as e:
            if kwargs.get("as_json"):
                click.echo(json.dumps({"error": type(e).__name__, "message": str(e)}))
                sys.exit(1)
            raise click.ClickException(f"{type(e).__name__}: {e}") from e

    return wrapper


def _output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")(fn)
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(fn)


def _source_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--url", default=None, help="Qdrant server URL instead of --path [default: $QDRANT_URL]."
    )(fn)
    return click.option(
        "--path",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of the embedded engine [default: $ASIF_QDRANT_PATH or ./asif-data].",
    )(fn)


def _server_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options of a destination server (ignored for an embedded destination)."""
    options = [
        click.option(
            "--grpc/--rest",
            "prefer_grpc",
            default=True,
            show_default=True,
            help="Prefer gRPC (falls back to REST when the gRPC port does not answer).",
        ),
        click.option("--grpc-port", type=int, default=6334, show_default=True),
        click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds."),
        click.option(
            "--parallel", type=int, default=4, show_default=True, help="Uploads in flight."
        ),
        click.option("--shards", type=int, default=None, help="Shards per collection."),
        click.option("--replicas", type=int, default=None, help="Replication factor."),
        click.option(
            "--write-consistency", type=int, default=None, help="Write consistency factor."
        ),
        click.option(
            "--on-disk", is_flag=True, help="Keep vectors, payloads and sparse index on disk."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _open_store(
    path: Path | None,
    url: str | None,
    *,
    must_exist: bool = False,
    server: dict[str, Any] | None = None,
) -> Any:
    """An embedded store at ``path`` or a server store at ``url`` (or the env defaults)."""
    from asif_qdrant.store import ClientStore, EdgeStore
    from asif_qdrant.store.client import CollectionOptions

    url = url or (None if path else os.environ.get("QDRANT_URL"))
    if url:
        s = dict(server or {})
        on_disk = s.pop("on_disk", False) or None
        options = CollectionOptions(
            shard_number=s.pop("shards", None),
            replication_factor=s.pop("replicas", None),
            write_consistency_factor=s.pop("write_consistency", None),
            on_disk_payload=on_disk,
            on_disk_vectors=on_disk,
            on_disk_sparse_index=on_disk,
        )
        return ClientStore.from_url(
            url,
            api_key=os.environ.get("QDRANT_API_KEY") or None,
            collection_options=options,
            **s,
        )
    folder = path or Path(os.environ.get("ASIF_QDRANT_PATH", "asif-data"))
    if must_exist and not folder.is_dir():
        raise click.UsageError(f"There is no embedded store at {folder}: give --path or --url.")
    return EdgeStore(folder)


def _summary(verb: str, report: Any, where: str) -> str:
    lines = [
        f"{verb} the model '{report.model}' ({report.points} points in "
        f"{len(report.collections)} collections, {report.seconds:.1f} s) {where}"
    ]
    lines += [f"  {name}: {n}" for name, n in report.collections.items()]
    return "\n".join(lines)


@main.command("export")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (.tar; .tar.gz or .tgz to compress).",
)
@click.option("--name", default="asif", show_default=True, help="Name of the ASIF model.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Points per batch.")
@_source_options
@_output_options
@_handle_errors
def export_cmd(
    out: Path,
    name: str,
    batch_size: int,
    path: Path | None,
    url: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write a model (anchors, fingerprint, catalogs) to one file."""
    from asif_qdrant.transfer import export_model

    with _open_store(path, url, must_exist=True) as store:
        report = export_model(store, name, out, batch_size=batch_size, show_progress_bar=not quiet)
    _emit(
        as_json,
        report.as_dict(),
        _summary("exported", report, f"to {out} ({report.bytes} bytes)"),
    )


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="The model's name here [default: its exported name].")
@click.option("--overwrite", is_flag=True, help="Replace collections of the same names.")
@_source_options
@_server_options
@_output_options
@_handle_errors
def import_cmd(
    file: Path,
    name: str | None,
    overwrite: bool,
    path: Path | None,
    url: str | None,
    as_json: bool,
    quiet: bool,
    **server: Any,
) -> None:
    """Read a model written by 'asif-qdrant export' into a store."""
    from asif_qdrant.transfer import import_model

    with _open_store(path, url, server=server) as store:
        report = import_model(
            file, store, name=name, overwrite=overwrite, show_progress_bar=not quiet
        )
        where = store.describe()
    _emit(as_json, report.as_dict(), _summary("imported", report, f"into {where}"))


@main.command("migrate")
@click.option("--name", default="asif", show_default=True, help="Name of the ASIF model.")
@click.option(
    "--to-path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Copy into this embedded folder.",
)
@click.option("--to-url", default=None, help="Copy into the Qdrant server at this URL.")
@click.option("--to-name", default=None, help="The model's name there [default: --name].")
@click.option("--overwrite", is_flag=True, help="Replace collections of the same names.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Points per batch.")
@_source_options
@_server_options
@_output_options
@_handle_errors
def migrate_cmd(
    name: str,
    to_path: Path | None,
    to_url: str | None,
    to_name: str | None,
    overwrite: bool,
    batch_size: int,
    path: Path | None,
    url: str | None,
    as_json: bool,
    quiet: bool,
    **server: Any,
) -> None:
    """Copy a model from one store to another (e.g. an embedded folder to a server).

    The source is --path or --url (a server's API key: $QDRANT_API_KEY, used for both ends);
    the destination is --to-path or --to-url, whose collections get the server options.
    """
    from asif_qdrant.transfer import copy_model

    if (to_path is None) == (to_url is None):
        raise click.UsageError("Give exactly one of --to-path or --to-url.")
    with _open_store(path, url, must_exist=True) as src:
        dest_store = _open_store(to_path, to_url, server=server)
        with dest_store as dest:
            report = copy_model(
                src,
                name,
                dest,
                dest_name=to_name,
                overwrite=overwrite,
                batch_size=batch_size,
                show_progress_bar=not quiet,
            )
            where = dest.describe()
    _emit(as_json, report.as_dict(), _summary("copied", report, f"into {where}"))
