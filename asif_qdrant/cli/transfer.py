"""``asif-qdrant export``, ``import`` and ``migrate``: move a model between stores and files.

A store is an embedded folder (``--path``, default ``$ASIF_QDRANT_PATH`` or ``./asif-data``) or
a Qdrant server (``--url``, default ``$QDRANT_URL``; the API key comes from
``$QDRANT_API_KEY`` only, never from the command line, where other users could read it).

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(migrate_cmd, ["--help"])
    >>> "--to-url" in result.output and "--shards" in result.output
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from asif_qdrant.cli.common import (
    EXISTING_FILE,
    FILE_PATH,
    FOLDER_PATH,
    StoreOptions,
    api_key,
    name_option,
    require_model,
    resolve_location,
    stack,
    store_options,
)
from asif_qdrant.retriever.layout import model_names

__all__ = ["export_cmd", "import_cmd", "migrate_cmd", "open_store"]

_batch_size_option = click.option(
    "--batch-size", type=int, default=256, show_default=True, help="Points per batch."
)
_overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace collections of the same names."
)

#: Options of a destination server (ignored for an embedded destination).
_server_options = stack(
    click.option(
        "--grpc/--rest",
        "prefer_grpc",
        default=True,
        show_default=True,
        help="Prefer gRPC (falls back to REST when the gRPC port does not answer).",
    ),
    click.option("--grpc-port", type=int, default=6334, show_default=True),
    click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds."),
    click.option("--parallel", type=int, default=4, show_default=True, help="Uploads in flight."),
    click.option("--shards", type=int, default=None, help="Shards per collection."),
    click.option("--replicas", type=int, default=None, help="Replication factor."),
    click.option("--write-consistency", type=int, default=None, help="Write consistency factor."),
    click.option(
        "--on-disk", is_flag=True, help="Keep vectors, payloads and sparse index on disk."
    ),
)


def open_store(
    path: Path | None,
    url: str | None,
    *,
    must_exist: bool = False,
    server: dict[str, Any] | None = None,
) -> Any:
    """An embedded store at ``path`` or a server store at ``url`` (or the env defaults).

    Args:
        path: The embedded folder (``--path``).
        url: The server's URL (``--url``); see :func:`~asif_qdrant.cli.common.resolve_location`.
        must_exist: Refuse an embedded folder that does not exist (a source).
        server: A destination server's options (``shards``, ``replicas``,
            ``write_consistency``, ``on_disk`` and keyword arguments of
            :meth:`~asif_qdrant.store.ClientStore.from_url`); unused for a folder.

    Returns:
        A :class:`~asif_qdrant.store.ClientStore` or :class:`~asif_qdrant.store.EdgeStore`.

    Raises:
        click.UsageError: ``must_exist`` and there is no such folder.
    """
    from asif_qdrant.store import ClientStore, EdgeStore
    from asif_qdrant.store.client import CollectionOptions

    folder, url = resolve_location(path, url)
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
        return ClientStore.from_url(url, api_key=api_key(), collection_options=options, **s)
    assert folder is not None
    if must_exist and not (folder / "collections").is_dir():  # nothing is created
        raise click.UsageError(f"There is no embedded store at {folder}: give --path or --url.")
    return EdgeStore(folder)


def _summary(verb: str, report: Any, where: str) -> str:
    lines = [
        f"{verb} the model '{report.model}' ({report.points} points in "
        f"{len(report.collections)} collections, {report.seconds:.1f} s) {where}"
    ]
    lines += [f"  {name}: {n}" for name, n in report.collections.items()]
    return "\n".join(lines)


@click.command("export")
@click.option(
    "--out",
    "-o",
    required=True,
    type=FILE_PATH,
    help="File to write (.tar; .tar.gz or .tgz to compress).",
)
@name_option
@_batch_size_option
@store_options()
def export_cmd(out: Path, name: str, batch_size: int, store: StoreOptions) -> None:
    """Write a model (anchors, fingerprint, catalogs) to one file."""
    from asif_qdrant.transfer import export_model

    with open_store(store.path, store.url, must_exist=True) as source:
        require_model(name, model_names(source), store.where())
        report = export_model(
            source, name, out, batch_size=batch_size, show_progress_bar=not store.quiet
        )
    store.emit(
        report.as_dict(),
        _summary("exported", report, f"to {out} ({report.bytes} bytes)"),
    )


@click.command("import")
@click.argument("file", type=EXISTING_FILE)
@click.option("--name", default=None, help="The model's name here [default: its exported name].")
@_overwrite_option
@store_options(_server_options)
def import_cmd(
    file: Path, name: str | None, overwrite: bool, store: StoreOptions, **server: Any
) -> None:
    """Read a model written by 'asif-qdrant export' into a store."""
    from asif_qdrant.transfer import import_model

    with open_store(store.path, store.url, server=server) as dest:
        report = import_model(
            file, dest, name=name, overwrite=overwrite, show_progress_bar=not store.quiet
        )
        where = dest.describe()
    store.emit(report.as_dict(), _summary("imported", report, f"into {where}"))


@click.command("migrate")
@name_option
@click.option(
    "--to-path",
    type=FOLDER_PATH,
    default=None,
    help="Copy into this embedded folder.",
)
@click.option("--to-url", default=None, help="Copy into the Qdrant server at this URL.")
@click.option("--to-name", default=None, help="The model's name there [default: --name].")
@_overwrite_option
@_batch_size_option
@store_options(_server_options)
def migrate_cmd(
    name: str,
    to_path: Path | None,
    to_url: str | None,
    to_name: str | None,
    overwrite: bool,
    batch_size: int,
    store: StoreOptions,
    **server: Any,
) -> None:
    """Copy a model from one store to another (e.g. an embedded folder to a server).

    The source is --path or --url (a server's API key: $QDRANT_API_KEY, used for both ends);
    the destination is --to-path or --to-url, whose collections get the server options.
    """
    from asif_qdrant.transfer import copy_model

    if (to_path is None) == (to_url is None):
        raise click.UsageError("Give exactly one of --to-path or --to-url.")
    with open_store(store.path, store.url, must_exist=True) as src:
        require_model(name, model_names(src), store.where())
        dest_store = open_store(to_path, to_url, server=server)
        with dest_store as dest:
            report = copy_model(
                src,
                name,
                dest,
                dest_name=to_name,
                overwrite=overwrite,
                batch_size=batch_size,
                show_progress_bar=not store.quiet,
            )
            where = dest.describe()
    store.emit(report.as_dict(), _summary("copied", report, f"into {where}"))
