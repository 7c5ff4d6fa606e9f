"""Moving a whole ASIF model between stores: embedded engine, Qdrant server, a file.

A model named ``name`` is its two anchor collections (``{name}_image_anchors``,
``{name}_text_anchors``: vectors and payloads), its fingerprint (``{name}_meta``) and every
catalog its fingerprint lists. The zero-shot label caches (``{name}_labels_<hash>``) are left
out: :meth:`~asif_qdrant.ASIF.classify` rebuilds them on first use.

* :func:`copy_model` copies store to store (for example an :class:`~asif_qdrant.store.EdgeStore`
  folder to a :class:`~asif_qdrant.store.ClientStore` on a server, and back);
* :func:`export_model` writes one file, :func:`import_model` reads it into any store.

Points stream in batches: memory stays flat whatever the model's size. Vectors keep their exact
float32 bits and payloads round-trip through JSON. Every collection is first written to a
staging copy ``<name>.importing-<model>`` and verified; only then are the destination's collections
replaced, the fingerprint removed first and written last: an import killed during that swap
is finished by the next open (from the staging copies, which the swap drops last), and one
killed before the swap leaves the destination untouched (the next open drops its copies).

The file is an uncompressed tar (gzip-compressed when its name ends in ``.gz`` or ``.tgz``):
``manifest.json`` (format, model name, fingerprint, and each collection's role, vectors and
point count), then per collection ``data/<nnn>-<collection>/<batch>.npz`` (ids and payloads as
JSON, dense vectors as float32 matrices, sparse vectors as CSR arrays), then ``end.json``
(the counts written and each part's SHA-256, so a truncated or altered file is detected).
An import reads and verifies the whole file into staging collections before it replaces
anything (:class:`_StoreSink`).

Example:
    >>> import tempfile, numpy as np
    >>> from qdrant_client import QdrantClient
    >>> from asif_qdrant import ASIF
    >>> from asif_qdrant.store import ClientStore, EdgeStore
    >>> rng = np.random.default_rng(0)
    >>> edge = EdgeStore(tempfile.mkdtemp())
    >>> asif = ASIF(store=edge, k=3, image_encoder="precomputed/image",
    ...             text_encoder="precomputed/text")
    >>> _ = asif.add_anchor_embeddings(rng.random((6, 8)), rng.random((6, 4)))
    >>> _ = asif.index_embeddings("photos", rng.random((5, 8)), "image")
    >>> q = asif.relative_from_embeddings(rng.random((1, 4)), "text")[0]
    >>> server = ClientStore(QdrantClient(":memory:"))  # stands in for ClientStore.from_url(...)
    >>> report = copy_model(edge, "asif", server, show_progress_bar=False)
    >>> report.collections
    {'photos': 5, 'asif_image_anchors': 6, 'asif_text_anchors': 6, 'asif_meta': 1}
    >>> copied = ASIF(store=server)
    >>> [h.id for h in copied.search("photos", q)] == [h.id for h in asif.search("photos", q)]
    True
"""

from __future__ import annotations

import functools
import logging
import os
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from asif_qdrant.errors import (
    ASIFError,
    CollectionNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    StoreError,
    check_int,
)
from asif_qdrant.progress import progress_bar, show_progress
from asif_qdrant.retriever import writes
from asif_qdrant.retriever.fingerprint import Fingerprint
from asif_qdrant.retriever.journal import copy_points, crashpoint, import_staging, swap_marker
from asif_qdrant.retriever.layout import MODEL_ROLES, Layout, model_names
from asif_qdrant.store.base import CollectionSpec, Record, Store, check_collection_name
from asif_qdrant.transfer.archive import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    FileSink,
    FileSource,
    Plan,
    manifest,
)

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "TransferReport",
    "copy_model",
    "export_model",
    "import_model",
    "model_collections",
    "read_manifest",
]

logger = logging.getLogger(__name__)


@dataclass
class TransferReport:
    """What a copy, export or import moved.

    Attributes:
        model: The source model's name.
        dest_model: The model's name at the destination.
        collections: Points written per destination collection (or per collection in a file).
        points: All points written.
        seconds: Wall time.
        path: The export file, if one was written or read.
        bytes: Its size.
    """

    model: str
    dest_model: str
    collections: dict[str, int] = field(default_factory=dict)
    points: int = 0
    seconds: float = 0.0
    path: str | None = None
    bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-serialisable)."""
        return asdict(self)


def _fingerprint(store: Store, name: str) -> Fingerprint:
    meta = Layout(name).meta
    if not store.has_collection(meta):
        raise CollectionNotFoundError(
            f"There is no ASIF model named '{name}' in {store.describe()}: the collection "
            f"'{meta}' does not exist. Collections there: {store.list_collections()}."
        )
    recs = store.retrieve(meta, [0])
    if not recs:
        raise CollectionNotFoundError(
            f"The ASIF model '{name}' in {store.describe()} has no fingerprint (point 0 of "
            f"'{meta}' is missing): it was never written, or an import was interrupted."
        )
    return Fingerprint.from_payload(recs[0].payload)


def model_collections(store: Store, name: str = "asif") -> list[tuple[str, str]]:
    """The collections of a model, in the order a transfer writes them: ``(role, name)``.

    Catalogs (role ``"catalog"``) come first, then ``"image_anchors"``, ``"text_anchors"``
    and ``"meta"``. A catalog that the fingerprint lists but the store lacks is left out with
    a warning.

    Args:
        store: The store holding the model.
        name: The model's name.

    Returns:
        ``(role, collection)`` pairs.

    Raises:
        CollectionNotFoundError: If the store holds no model of that name.

    Example:
        >>> import tempfile, numpy as np
        >>> from asif_qdrant import ASIF
        >>> from asif_qdrant.store import EdgeStore
        >>> with ASIF(path=tempfile.mkdtemp(), k=2, image_encoder="precomputed/image",
        ...           text_encoder="precomputed/text") as asif:
        ...     _ = asif.add_anchor_embeddings(np.eye(3), np.eye(3))
        ...     model_collections(asif.store)
        [('image_anchors', 'asif_image_anchors'), ('text_anchors', 'asif_text_anchors'), ('meta', 'asif_meta')]
    """  # noqa: E501
    fp = _fingerprint(store, name)
    out: list[tuple[str, str]] = []
    for catalog in sorted(fp.catalogs):
        if store.has_collection(catalog):
            out.append(("catalog", catalog))
        else:
            logger.warning(
                "The fingerprint of '%s' lists the catalog '%s', which does not exist: skipped.",
                name,
                catalog,
            )
    for role in MODEL_ROLES:
        coll = Layout(name).role(role)
        if role == "meta" or store.has_collection(coll):
            out.append((role, coll))
    return out


# -- sources -------------------------------------------------------------------------------------
class _StoreSource:
    """Reads a model from a store."""

    def __init__(self, store: Store, name: str, batch_size: int) -> None:
        self.store, self.name, self.batch_size = store, name, batch_size
        fp = _fingerprint(store, name)
        plans = [
            Plan(coll, role, store.collection_spec(coll), store.count(coll))
            for role, coll in model_collections(store, name)
        ]
        self.manifest = manifest(name, fp, plans)
        self.plans = plans

    def batches(self, plan: Plan) -> Iterator[list[Record]]:
        batch: list[Record] = []
        seen = 0
        for rec in self.store.scroll(plan.name, with_vectors=True, batch_size=self.batch_size):
            batch.append(rec)
            if len(batch) == self.batch_size:
                seen += len(batch)
                yield batch
                batch = []
        seen += len(batch)
        if batch:
            yield batch
        if seen != plan.count:
            raise StoreError(
                f"The collection '{plan.name}' changed while it was read ({plan.count} points "
                f"counted, {seen} read): stop writing to the model '{self.name}' and try again."
            )


# -- sinks ---------------------------------------------------------------------------------------
class _StoreSink:
    """Writes a model into a store under ``dest_model``: staged first, then swapped in.

    Every collection is written to a staging copy ``<dest>.importing-<model>`` and its count
    checked; only once the whole source was read and verified (:meth:`commit`) are the
    destination's collections replaced, the fingerprint first removed and last written, so a
    model is never seen half-replaced: a kill during the swap is finished by the next open.
    A failure before the swap drops the staging copies and leaves the destination as it was.
    """

    def __init__(self, store: Store, dest_model: str, overwrite: bool) -> None:
        self.store, self.dest_model, self.overwrite = store, dest_model, overwrite
        self.counts: dict[str, int] = {}
        self.plans: list[Plan] = []
        per_call = getattr(store, "batch_size", 256) * getattr(store, "parallel", 1)
        self.chunk = max(256, int(per_call))

    def begin(self, plans: Sequence[Plan]) -> None:
        self.plans = list(plans)
        targets = [p.dest(self.dest_model) for p in plans]
        _check_catalog_names(self.store, self.dest_model, plans)
        existing = [t for t in targets if self.store.has_collection(t)]
        if existing and not self.overwrite:
            raise StoreError(
                f"{self.store.describe()} already holds {existing}. Pass overwrite=True "
                "(asif-qdrant import/migrate --overwrite) to replace them, or give the model "
                "another name at the destination."
            )
        for plan in plans:
            writes.drop_collection(self.store, self._staging(plan))

    def write(self, plan: Plan, batches: Iterator[list[Record]], bar: Any) -> None:
        dest = self._staging(plan)
        writes.create_collection(self.store, dest, plan.spec)
        buffer: list[Record] = []
        written = 0
        for batch in batches:
            buffer.extend(batch)
            if len(buffer) >= self.chunk:
                writes.upsert(self.store, dest, buffer)
                written += len(buffer)
                bar.update(len(buffer))
                buffer = []
        if buffer:
            writes.upsert(self.store, dest, buffer)
            written += len(buffer)
            bar.update(len(buffer))
        stored = self.store.count(dest)
        if stored != plan.count or written != plan.count:
            raise StoreError(
                f"Copying '{plan.name}' into '{dest}' wrote {written} points and the "
                f"destination holds {stored}, but the source had {plan.count}."
            )
        self.counts[plan.dest(self.dest_model)] = written
        crashpoint("import:staged")

    def commit(self) -> None:
        """Swap the verified staging copies in: fingerprint out first, back in last.

        The swap marker exists during the swap: a kill there is finished by the next open
        (:func:`~asif_qdrant.retriever.journal.finish_import`).
        """
        store, layout = self.store, Layout(self.dest_model)
        marker = swap_marker(self.dest_model)
        writes.drop_collection(store, marker)
        writes.create_collection(store, marker, CollectionSpec(dense={"_": 1}))
        writes.drop_collection(store, layout.meta)
        crashpoint("import:swapping")
        ordered = sorted(self.plans, key=lambda p: p.role == "meta")
        for plan in ordered:
            target = plan.dest(self.dest_model)
            writes.drop_collection(store, target)
            writes.create_collection(store, target, plan.spec)
            copy_points(store, self._staging(plan), target, plan.count, point="import:restoring")
        for coll in store.list_collections():
            if coll.startswith(layout.labels_prefix):
                writes.drop_collection(store, coll)
        self.abort()
        writes.drop_collection(store, marker)

    def abort(self) -> None:
        """Drop the staging copies (the destination's own collections are untouched)."""
        for plan in self.plans:
            writes.drop_collection(self.store, self._staging(plan))

    def _staging(self, plan: Plan) -> str:
        return import_staging(plan.dest(self.dest_model), self.dest_model)

    def end(self) -> None:
        pass


def _check_catalog_names(store: Store, dest_model: str, plans: Sequence[Plan]) -> None:
    """A file's catalog names must not name a model's own collections (anchors, meta, labels).

    A crafted catalog named ``prod_image_anchors`` would otherwise overwrite the anchors of
    the model ``prod``. (Catalogs shared by models keep their names, as before: with
    ``overwrite`` they are replaced.)
    """
    models = [*model_names(store), dest_model]
    for plan in plans:
        if plan.role != "catalog":
            continue
        name = check_collection_name(plan.name)
        role_like = name.endswith(tuple(f"_{r}" for r in MODEL_ROLES)) or "_labels_" in name
        owner = next((n for n in models if Layout(n).is_model_collection(name)), None)
        if role_like or owner or ".importing" in name or name.endswith(".swapping"):
            raise InvalidInputError(
                f"The export lists a catalog named '{name}', which is "
                + (f"a collection of the model '{owner}'" if owner else "a model's own name")
                + f" in {store.describe()}: refused (it would overwrite it). Nothing was written."
            )


# -- public functions ----------------------------------------------------------------------------
_F = TypeVar("_F", bound=Callable[..., Any])


def _file_errors(fn: _F) -> _F:
    """Report what a damaged or crafted export file raises deep inside as InvalidInputError.

    A missing key, a value of the wrong type, a number out of range or a tar stream cut in
    the wrong place (``KeyError``, ``TypeError``, ``OverflowError``,
    ``tarfile.StreamError``...) means the file is not a sound export; the library's own
    errors pass through unchanged.
    """

    @functools.wraps(fn)
    def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(path, *args, **kwargs)
        except ASIFError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, OverflowError, EOFError) as e:
            raise InvalidInputError(
                f"The export file {path} is damaged or not an asif-qdrant export "
                f"({type(e).__name__}: {str(e)[:200]})."
            ) from e
        except tarfile.TarError as e:
            raise InvalidInputError(f"The export file {path} is damaged: {e}") from e

    return wrapper  # type: ignore[return-value]


def _run(
    source: Any, sink: Any, report: TransferReport, desc: str, show_progress_bar: bool | None
) -> TransferReport:
    """Send every batch of ``source`` to ``sink`` (one progress bar) and fill in ``report``."""
    show = show_progress(show_progress_bar, logger)
    t0 = time.perf_counter()
    total = sum(p.count for p in source.plans)
    with progress_bar(total=total, desc=desc, unit="point", show=show) as bar:
        for plan in source.plans:
            sink.write(plan, source.batches(plan), bar)
    report.collections = dict(sink.counts)
    report.points = sum(report.collections.values())
    report.seconds = time.perf_counter() - t0
    return report


def _check_common(name: str, batch_size: int, owner: str) -> int:
    check_collection_name(name)
    return check_int("batch_size", owner, batch_size, minimum=1)


def copy_model(
    src: Store,
    name: str,
    dest: Store,
    *,
    dest_name: str | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    show_progress_bar: bool | None = None,
) -> TransferReport:
    """Copy the ASIF model ``name`` from one store to another.

    Args:
        src: The store holding the model.
        name: The model's name.
        dest: The store to copy it into (a server, a cluster, an embedded folder...).
        dest_name: The model's name in ``dest`` (default: the same). Catalogs keep their names.
        overwrite: Replace collections of the same names in ``dest`` (else an error).
        batch_size: Points per read batch.
        show_progress_bar: A progress bar; ``None`` follows the logger level.

    Returns:
        What was copied.

    Raises:
        CollectionNotFoundError: If ``src`` holds no model ``name``.
        StoreError: If ``dest`` already holds one of the collections and ``overwrite`` is
            False, or if the source changed during the copy.
    """
    batch_size = _check_common(name, batch_size, "copy_model")
    dest_name = check_collection_name(dest_name or name)
    if src is dest and dest_name == name:
        raise InvalidParameterError(
            "The 'dest' parameter of copy_model must be another store, or 'dest_name' another "
            f"name. Got the source store and the same name {name!r} instead."
        )
    source = _StoreSource(src, name, batch_size)
    sink = _StoreSink(dest, dest_name, overwrite)
    sink.begin(source.plans)
    report = TransferReport(model=name, dest_model=dest_name)
    try:
        _run(source, sink, report, f"Copying model '{name}'", show_progress_bar)
    except BaseException:
        sink.abort()
        raise
    sink.commit()
    return report


def export_model(
    src: Store,
    name: str,
    out: str | os.PathLike[str],
    *,
    batch_size: int = 256,
    show_progress_bar: bool | None = None,
) -> TransferReport:
    """Write the ASIF model ``name`` to one file (see the module docstring for its layout).

    Args:
        src: The store holding the model.
        name: The model's name.
        out: The file to write (``.tar``; ``.tar.gz`` / ``.tgz`` compress it). Written beside
            as ``<out>.partial`` and renamed when complete.
        batch_size: Points per batch in the file.
        show_progress_bar: A progress bar; ``None`` follows the logger level.

    Returns:
        What was written, with the file's path and size.

    Raises:
        CollectionNotFoundError: If ``src`` holds no model ``name``.
        StoreError: If the model changed during the export.
    """
    batch_size = _check_common(name, batch_size, "export_model")
    path = Path(out).expanduser()
    source = _StoreSource(src, name, batch_size)
    sink = FileSink(path)
    try:
        sink.begin_manifest(source.manifest, source.plans)
        report = TransferReport(model=name, dest_model=name)
        _run(source, sink, report, f"Exporting model '{name}'", show_progress_bar)
        sink.end()
    except BaseException:
        sink.abort()
        raise
    report.path, report.bytes = str(path), path.stat().st_size
    return report


@_file_errors
def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an export file: format, model name, fingerprint, collections.

    Raises:
        InvalidInputError: If the file is not an asif-qdrant export.
    """
    source = FileSource(Path(path).expanduser())
    source.close()
    return source.manifest


@_file_errors
def import_model(
    path: str | os.PathLike[str],
    dest: Store,
    *,
    name: str | None = None,
    overwrite: bool = False,
    show_progress_bar: bool | None = None,
    max_member_bytes: int = 256 * 2**20,
) -> TransferReport:
    """Read an export file into a store.

    The whole file is read and verified (counts, checksums, catalog names that cannot collide
    with another model's) into staging collections first; only then are the destination's
    collections replaced, so ``overwrite=True`` never deletes before the new model is complete.

    Args:
        path: The file written by :func:`export_model` (or ``asif-qdrant export``).
        dest: The store to write the model into.
        name: The model's name in ``dest`` (default: the exported name).
        overwrite: Replace collections of the same names in ``dest`` (else an error).
        show_progress_bar: A progress bar; ``None`` follows the logger level.
        max_member_bytes: The largest part of the file read into memory (a batch of
            points, unpacked); a larger one is refused, so a small compressed file cannot
            expand without bound.

    Returns:
        What was imported.

    Raises:
        InvalidInputError: If the file is not an export, is damaged or truncated.
        StoreError: If ``dest`` already holds one of the collections and ``overwrite`` is
            False.
    """
    p = Path(path).expanduser()
    source = FileSource(p, max_member_bytes)
    sink: _StoreSink | None = None
    try:
        model = str(source.manifest["model"])
        dest_name = check_collection_name(name or model)
        sink = _StoreSink(dest, dest_name, overwrite)
        sink.begin(source.plans)
        report = TransferReport(model=model, dest_model=dest_name, path=str(p))
        _run(source, sink, report, f"Importing model '{model}'", show_progress_bar)
        counts = source.finish()
        expected = {plan.name: plan.count for plan in source.plans}
        if counts != expected:
            raise InvalidInputError(
                f"The export file {p} is inconsistent: its manifest counts {expected} points, "
                f"its end record {counts}."
            )
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        source.close()
    sink.commit()
    report.bytes = p.stat().st_size
    return report
