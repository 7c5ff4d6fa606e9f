"""Crash-safe rewrites of a model's collections: a write-ahead marker, a staging copy, a swap.

Qdrant cannot rename a collection, so a rewrite (a purge that makes deleted points leave the
disk, a catalog migration that adds a named vector) drops the collection and writes it again.
:func:`rewrite` does it so that a SIGKILL at any point leaves either the old or the new
collection, and the next open (:func:`resume`) finishes or rolls back:

==========  ==========================================================  =========================
phase       written before it (fingerprint ``pending_rewrite``)         next open
==========  ==========================================================  =========================
``copy``    the marker: collection, staging name, point count, spec    **rolled back**: the
            (then every point copied to ``<name>.<suffix>``)            original was never
                                                                        touched; staging dropped
``swap``    the staging copy holds exactly the counted points           **finished** from the
            (then: original dropped, re-created, refilled, verified,    staging copy, which is
            staging dropped, marker cleared)                            dropped only after
==========  ==========================================================  =========================

The tests kill a child process at each named point with :func:`crashpoint` (the environment
variable ``ASIF_QDRANT_KILL_AT`` names the point; unset, it does nothing).

Example:
    >>> import tempfile, numpy as np
    >>> from asif_qdrant import ASIF
    >>> with ASIF(path=tempfile.mkdtemp(), k=2, image_encoder="precomputed/image",
    ...           text_encoder="precomputed/text") as asif:
    ...     _ = asif.add_anchor_embeddings(np.eye(3), np.eye(3))
    ...     rewrite(asif.state, asif.layout.image_anchors, suffix="compacting")
    ...     asif.store.count(asif.layout.image_anchors), asif.fingerprint.pending_rewrite
    (3, None)
"""

from __future__ import annotations

import os
import signal
from typing import Any

from asif_qdrant.errors import InvalidParameterError, ModelDamagedError, StoreError
from asif_qdrant.retriever import writes
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import CollectionSpec, Store

__all__ = [
    "KILL_ENV",
    "copy_points",
    "crashpoint",
    "finish_import",
    "import_staging",
    "resume",
    "rewrite",
    "swap_marker",
]

#: Environment variable naming the point at which :func:`crashpoint` kills the process.
KILL_ENV = "ASIF_QDRANT_KILL_AT"

_PAGE = 512


_HITS: dict[str, int] = {}


def crashpoint(name: str) -> None:
    """SIGKILL this process at the point ``$ASIF_QDRANT_KILL_AT`` names (crash tests).

    The variable holds ``name`` (the first time the point is reached) or ``name#n`` (the
    n-th time); unset, this does nothing.
    """
    wanted = os.environ.get(KILL_ENV)
    if not wanted or not wanted.startswith(name):
        return
    _HITS[name] = hits = _HITS.get(name, 0) + 1
    if wanted in (name, f"{name}#{hits}"):
        os.kill(os.getpid(), signal.SIGKILL)


def copy_points(store: Store, src: str, dst: str, expected: int, *, point: str = "") -> None:
    """Copy every point of ``src`` into ``dst`` and check that ``dst`` then holds ``expected``.

    Raises:
        StoreError: If the count differs (nothing is dropped: the caller decides).
    """
    batch = []
    for rec in store.scroll(src, with_vectors=True, batch_size=_PAGE):
        batch.append(rec)
        if len(batch) == _PAGE:
            writes.upsert(store, dst, batch)
            batch = []
            crashpoint(point)
    if batch:
        writes.upsert(store, dst, batch)
    crashpoint(point)
    held = store.count(dst)
    if held != expected:
        raise StoreError(
            f"Copying '{src}' into '{dst}' left {held} points; {expected} were expected. "
            "Nothing was dropped."
        )


def rewrite(m: ModelState, name: str, *, suffix: str, spec: CollectionSpec | None = None) -> None:
    """Rewrite a collection of the model from its live points (under ``spec``, default its own).

    Crash-safe (see the module docstring); does nothing when the collection does not exist.
    """
    store, fp = m.store, m.fingerprint
    if name == m.layout.meta:
        raise InvalidParameterError(
            f"The collection '{name}' holds the model's fingerprint (and the rewrite marker): "
            "it cannot be rewritten. Rewrite an anchor collection or a catalog."
        )
    if not store.has_collection(name):
        return
    old = store.collection_spec(name)
    staging = f"{name}.{suffix}"[:255]
    marker = {
        "collection": name,
        "staging": staging,
        "count": store.count(name),
        "spec": (spec or old).as_dict(),
        "phase": "copy",
    }
    fp.pending_rewrite = marker
    writes.write_fingerprint(m)
    crashpoint("rewrite:marked")
    writes.drop_collection(store, staging)
    writes.create_collection(store, staging, old)
    try:
        copy_points(store, name, staging, marker["count"], point="rewrite:copying")
    except BaseException:
        writes.drop_collection(store, staging)
        fp.pending_rewrite = None
        writes.write_fingerprint(m)
        raise
    fp.pending_rewrite = {**marker, "phase": "swap"}
    writes.write_fingerprint(m)
    crashpoint("rewrite:staged")
    _swap(m, fp.pending_rewrite)


def _swap(m: ModelState, marker: dict[str, Any]) -> None:
    """Phase ``swap``: re-create the collection from its verified staging copy."""
    store, name, staging = m.store, marker["collection"], marker["staging"]
    writes.drop_collection(store, name)
    crashpoint("rewrite:dropped")
    writes.create_collection(store, name, CollectionSpec.from_dict(marker["spec"]))
    copy_points(store, staging, name, int(marker["count"]), point="rewrite:restoring")
    writes.drop_collection(store, staging)
    crashpoint("rewrite:staging-dropped")
    m.fingerprint.pending_rewrite = None
    writes.write_fingerprint(m)


def resume(m: ModelState, *, apply: bool) -> str | None:
    """Roll back or finish a rewrite that a killed process left (see the module docstring).

    Args:
        m: The model (its fingerprint read).
        apply: Do it (else only describe what would be done).

    Returns:
        One line saying what was (or would be) done; None when no rewrite was in flight.

    Raises:
        ModelDamagedError: If neither the collection nor its staging copy is complete.
    """
    marker = m.fingerprint.pending_rewrite
    if not marker:
        return None
    store, name, staging = m.store, marker["collection"], marker["staging"]
    count = int(marker["count"])
    if marker.get("phase") != "swap":
        if apply:
            writes.drop_collection(store, staging)
            m.fingerprint.pending_rewrite = None
            writes.write_fingerprint(m)
        return f"a rewrite of '{name}' was interrupted while copying: rolled back (original intact)"
    if store.has_collection(staging) and store.count(staging) == count:
        if apply:
            _swap(m, marker)
        return f"a rewrite of '{name}' was interrupted after its copy: finished from '{staging}'"
    if store.has_collection(name) and store.count(name) == count:
        if apply:
            writes.drop_collection(store, staging)
            m.fingerprint.pending_rewrite = None
            writes.write_fingerprint(m)
        return f"a rewrite of '{name}' was interrupted at its very end: marker cleared"
    problem = (
        f"a rewrite of '{name}' was interrupted, and neither '{name}' nor its staging copy "
        f"'{staging}' holds its {count} points"
    )
    raise ModelDamagedError(
        f"The ASIF model '{m.name}' is damaged: {problem}. Nothing was changed; restore the "
        "folder from a backup or an export ('asif-qdrant import --overwrite').",
        (problem,),
    )


# -- staged imports (asif_qdrant.transfer writes them; an open finishes or drops them) ---------
def import_staging(collection: str, model: str) -> str:
    """The staging copy of ``collection`` while the model ``model`` is imported."""
    return f"{collection}.importing-{model}"[:255]


def swap_marker(model: str) -> str:
    """The (empty) collection that exists while an import swaps its staging copies in."""
    return f"{model}_meta.swapping"[:255]


def finish_import(m: ModelState, *, apply: bool) -> str | None:
    """Finish an import killed during its swap, or drop one killed before it.

    The swap begins only once every staging copy is complete and verified, and creates
    :func:`swap_marker` first; while it exists, the staging copies are swapped in again
    (the fingerprint last) and the fingerprint is read anew. Staging copies without the
    marker are an import killed before its swap, which never touched the model: dropped.

    Returns:
        What was (or would be) done; None when no import was left behind.
    """
    store, suffix = m.store, f".importing-{m.name}"
    staged = sorted(
        (c for c in store.list_collections() if c.endswith(suffix)),
        key=lambda c: c == import_staging(m.layout.meta, m.name),
    )
    marker = swap_marker(m.name)
    if not store.has_collection(marker):
        if staged and apply:
            for coll in staged:
                writes.drop_collection(store, coll)
        return f"dropped {staged} (an import killed before its swap)" if staged else None
    if apply:
        for coll in staged:
            target = coll[: -len(suffix)]
            writes.drop_collection(store, target)
            writes.create_collection(store, target, store.collection_spec(coll))
            copy_points(store, coll, target, store.count(coll))
        for coll in staged:
            writes.drop_collection(store, coll)
        writes.drop_collection(store, marker)
        stored = m.read_fingerprint()
        if stored is not None:
            m.fingerprint = stored
    return f"finished an import killed during its swap ({len(staged)} collections)"
