"""Paired collections stay paired: find and repair an interrupted anchor edit when a model opens.

An anchor edit writes several things one after the other: the image-anchor collection, the
text-anchor collection, then the fingerprint (anchor count, version, next id) and the
catalogs (:mod:`asif_qdrant.retriever.edits`). A process killed between two of these writes leaves
them disagreeing. :func:`check_integrity` runs on every open (``ASIF.__init__``) and puts
them back in agreement. What it does, case by case:

=====================================================  =====================================
Found                                                  Done
=====================================================  =====================================
marker ``add``, every id of the range in both          **completed**: the pairs are adopted
anchor collections (killed after both writes)          (count, version, next id; catalogs
                                                       updated as the edit would have)
marker ``add``, some ids missing on either side        **rolled back**: the ids written are
(killed between or during the two writes)              deleted from both; the store is as
                                                       before the call, which never returned
marker ``delete`` (killed during the deletes)          **completed**: the ids are deleted from
                                                       both sides, catalogs updated
no marker, counts equal the fingerprint's              nothing (the cheap path: two counts)
no marker, counts differ (a store written by an        ids are compared: one-sided ids are
older version, or edited outside the library)          **damage** (see below); ids in both
                                                       beyond ``next_anchor_id`` are adopted;
                                                       a count that still differs
                                                       re-computes every catalog in full
no marker, ``next_anchor_id`` not above the largest    ``next_anchor_id`` **re-derived** from
anchor id (a damaged or hand-edited fingerprint)       the largest id (nothing deleted)
a rewrite marker (a purge or migration killed)         rolled back or finished from its
                                                       staging copy (:mod:`.journal`)
a catalog at an older anchor version (killed during    **re-computed** in full from its items'
the catalog updates of an edit)                        stored embeddings (``ASIF.reindex``)
an index job not finished (``asif-qdrant index``       reported; ``asif-qdrant index --resume``
killed mid-way)                                        finishes it
=====================================================  =====================================

Damage that no interrupted edit explains is never repaired by deleting: an anchor collection
missing (its spec file removed), ids in one anchor collection only without a marker, anchors
without a fingerprint, or a catalog of this model that no fingerprint lists. The open refuses
with :class:`~asif_qdrant.errors.ModelDamagedError` and changes nothing;
``asif-qdrant repair --check-only`` (:func:`repair_model`) reports it; ``asif-qdrant repair``
fixes what it can prove (registers the catalog and re-computes it in full) and
``--drop-unpaired`` deletes one-sided ids only when asked.

The marker is the fingerprint's ``pending_edit``, written before the first anchor write of
an edit and cleared by the same fingerprint write that records it, so it is set exactly
while an edit's anchor writes may be half done. Without a marker the check costs two exact
counts; ids are read only when a count disagrees.

Repairs write to the store, so they run on their own only where this process is the store's
only user: the embedded engine (its folder is locked to one process) and qdrant-client's
local mode. With a server, another process may be in the middle of an edit right now: the
check only reports (``applied=False``) and logs a warning; call
``asif.check_integrity(repair=True)`` when no other process edits the model.

Example:
    >>> import tempfile, numpy as np
    >>> from asif_qdrant import ASIF
    >>> from asif_qdrant.store import Record
    >>> from asif_qdrant.retriever.writes import write_fingerprint
    >>> rng = np.random.default_rng(0)
    >>> path = tempfile.mkdtemp()
    >>> with ASIF(path=path, k=2, image_encoder="precomputed/image",
    ...           text_encoder="precomputed/text") as asif:
    ...     _ = asif.add_anchor_embeddings(rng.random((3, 8)), rng.random((3, 4)))
    ...     # what a kill between the two anchor writes leaves behind:
    ...     asif.fingerprint.pending_edit = {"operation": "add", "ids": [3, 4]}
    ...     write_fingerprint(asif.state)
    ...     asif.store.upsert(asif.layout.image_anchors, [Record(3, {}, dense={
    ...         "image": np.ones(8, np.float32) / 8 ** 0.5})])
    >>> with ASIF(path=path) as asif:
    ...     asif.integrity.rolled_back, asif.anchor_count, asif.integrity.summary()
    ((3,), 3, 'rolled back an interrupted add: deleted anchors [3] (their pair was lost)')
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from asif_qdrant.errors import ModelDamagedError
from asif_qdrant.retriever import journal, writes
from asif_qdrant.retriever.catalogs import reindex
from asif_qdrant.retriever.edits import finish_edit
from asif_qdrant.retriever.layout import SPARSE, Layout, model_fingerprints
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import Store

__all__ = ["IntegrityReport", "check_integrity", "exclusive_store", "repair_model"]

logger = logging.getLogger(__name__)

_CHUNK = 1024


@dataclass(frozen=True)
class IntegrityReport:
    """What :func:`check_integrity` found and did.

    Attributes:
        checked: How far the check went: ``"counts"`` (the counts agreed), ``"marker"``
            (an edit was in flight: its ids were read) or ``"ids"`` (counts disagreed: every
            anchor id was read).
        interrupted: The edit the write-ahead marker named (``"add"`` / ``"delete"``), else
            None.
        rolled_back: Anchor ids deleted because their pair was lost (an interrupted add).
        completed_deletes: Anchor ids whose interrupted delete was completed.
        adopted: Anchor ids present in both collections that the fingerprint did not count
            yet (an add killed after both writes): now counted, catalogs updated.
        recounted: The anchor count disagreed with no id to blame (anchors deleted outside
            the library): the count was corrected and every catalog re-computed.
        recomputed_catalogs: Catalogs re-computed in full because an earlier edit was killed
            while it updated them (or because of ``recounted``).
        unfinished_jobs: Catalogs with an ``asif-qdrant index`` job that did not finish
            (``asif-qdrant index --resume`` completes it).
        applied: False when the problems were only reported (a shared store, or
            ``repair=False``).
        renumbered: ``(stored, derived)`` when the fingerprint's ``next_anchor_id`` was not
            above the largest stored anchor id (a damaged or hand-edited fingerprint): the
            next id is re-derived from the largest id, so no add overwrites a pair.
        rewrite: What was done with a collection rewrite (purge, migration) or an import
            that a killed process left (:mod:`asif_qdrant.retriever.journal`).
        unregistered_catalogs: Catalog collections of this model's shape that no
            fingerprint lists (a catalog created by a killed run): a repair registers them
            and re-computes them in full; an open refuses until then.
        damage: Problems no interrupted edit explains (a missing anchor collection, ids in
            one anchor collection only): nothing is deleted; an open refuses with
            :class:`~asif_qdrant.errors.ModelDamagedError`.
    """

    checked: Literal["counts", "marker", "ids"] = "counts"
    interrupted: str | None = None
    rolled_back: tuple[int, ...] = ()
    completed_deletes: tuple[int, ...] = ()
    adopted: tuple[int, ...] = ()
    recounted: bool = False
    recomputed_catalogs: tuple[str, ...] = ()
    unfinished_jobs: tuple[str, ...] = ()
    applied: bool = True
    renumbered: tuple[int, int] | None = None
    rewrite: str | None = None
    unregistered_catalogs: tuple[str, ...] = ()
    damage: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether nothing needed repair (unfinished index jobs aside)."""
        return not (
            self.interrupted
            or self.rolled_back
            or self.completed_deletes
            or self.adopted
            or self.recounted
            or self.recomputed_catalogs
            or self.renumbered
            or self.rewrite
            or self.unregistered_catalogs
            or self.damage
        )

    @property
    def repaired(self) -> bool:
        """Whether something was repaired."""
        return self.applied and not self.ok

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form (for ``--json``)."""
        return {**asdict(self), "ok": self.ok, "repaired": self.repaired}

    def summary(self) -> str:
        """One line per finding ("" when the store was consistent)."""
        verb = (lambda done, todo: done) if self.applied else (lambda done, todo: todo)
        lines = []
        if self.rolled_back:
            lines.append(
                verb("rolled back", "to roll back")
                + f" an interrupted add: {verb('deleted', 'delete')} anchors "
                + f"{_ids(self.rolled_back)} (their pair was lost)"
            )
        if self.completed_deletes:
            lines.append(
                verb("completed", "to complete")
                + f" an interrupted delete of anchors {_ids(self.completed_deletes)}"
            )
        if self.adopted:
            lines.append(
                verb("completed", "to complete")
                + f" an interrupted add: anchors {_ids(self.adopted)} "
                + verb("adopted", "to adopt")
            )
        if self.interrupted and not (self.rolled_back or self.completed_deletes or self.adopted):
            lines.append(
                f"an interrupted {self.interrupted} had written nothing yet: marker "
                + verb("cleared", "to clear")
            )
        if self.recounted:
            lines.append(
                "the anchor count disagreed with the stored anchors: "
                + verb("recounted", "to recount")
            )
        if self.recomputed_catalogs:
            lines.append(
                f"catalogs {list(self.recomputed_catalogs)} "
                + verb("re-computed in full", "to re-compute in full")
                + " (an edit was interrupted while it updated them)"
            )
        if self.renumbered:
            lines.append(
                f"next_anchor_id {self.renumbered[0]} was not above the largest anchor id: "
                + verb("re-derived", "to re-derive")
                + f" as {self.renumbered[1]}"
            )
        if self.rewrite:
            lines.append(self.rewrite)
        if self.unregistered_catalogs:
            lines.append(
                f"catalogs {list(self.unregistered_catalogs)} are not in the fingerprint (a "
                "killed index run?): "
                + verb("registered and re-computed in full", "run 'asif-qdrant repair'")
            )
        lines.extend(f"DAMAGE: {d}" for d in self.damage)
        if self.unfinished_jobs:
            lines.append(
                f"index jobs not finished in {list(self.unfinished_jobs)}: run "
                "'asif-qdrant index ... --resume' with the same input"
            )
        return "\n".join(lines)


def _ids(ids: Sequence[int]) -> str:
    shown = list(ids[:20])
    return f"{shown}{' ...' if len(ids) > 20 else ''}"


def exclusive_store(store: Store) -> bool:
    """Whether no other process can use ``store`` now (so a repair cannot race an edit).

    True for the embedded engine (each collection's folder is locked to one process) and
    qdrant-client's local mode (also locked); False for a server, or any other store.

    Example:
        >>> import tempfile
        >>> from asif_qdrant.store import EdgeStore
        >>> with EdgeStore(tempfile.mkdtemp()) as store:
        ...     exclusive_store(store)
        True
    """
    if store.kind == "edge":
        return True
    return getattr(store, "transport", None) == "local"


def _present(store: Store, collection: str, ids: Sequence[int]) -> set[int]:
    if not ids or not store.has_collection(collection):
        return set()
    out: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        out |= {int(r.id) for r in store.retrieve(collection, list(ids[start : start + _CHUNK]))}
    return out


def _all_ids(store: Store, collection: str) -> set[int]:
    if not store.has_collection(collection):
        return set()
    return {int(r.id) for r in store.scroll(collection, batch_size=_CHUNK)}


def _count(store: Store, collection: str) -> int:
    return store.count(collection) if store.has_collection(collection) else 0


def _delete(store: Store, collections: Iterable[str], ids: Sequence[int]) -> None:
    if not ids:
        return
    for coll in collections:
        if store.has_collection(coll):
            for start in range(0, len(ids), _CHUNK):
                writes.delete_points(store, coll, list(ids[start : start + _CHUNK]))


def _units(m: ModelState, ids: Sequence[int]) -> dict[str, np.ndarray]:
    out = {}
    for modality in ("image", "text"):
        coll, vn = m.layout.anchors(modality)
        recs = m.store.retrieve(coll, list(ids), with_vectors=[vn])
        out[modality] = np.stack([r.dense[vn] for r in recs]).astype(np.float32)
    return out


def check_integrity(
    m: ModelState,
    *,
    repair: bool | None = None,
    explicit: bool = False,
    drop_unpaired: bool = False,
) -> IntegrityReport:
    """Find (and repair) what an interrupted edit left behind; see the module docstring.

    Args:
        m: The model (its fingerprint already read).
        repair: True: repair; False: only report; None: repair when the store is exclusive
            to this process (:func:`exclusive_store`).
        explicit: A repair asked for by the user (``asif-qdrant repair``,
            ``ASIF.check_integrity``), not the check of an open: it may also register
            unregistered catalogs (and re-compute them in full).
        drop_unpaired: Delete anchor ids found in one anchor collection only, which no
            interrupted edit explains (``asif-qdrant repair --drop-unpaired``). Without it
            they are damage: reported, never deleted.

    Returns:
        What was found and done. A repair is also logged as a warning.

    Raises:
        ModelDamagedError: If ``repair`` is not False and the model has damage that
            cannot be proven harmless to repair (nothing is changed then).
    """
    store, fp = m.store, m.fingerprint
    if repair is None:
        repair = exclusive_store(store)
    imported = journal.finish_import(m, apply=repair)
    rewrite = journal.resume(m, apply=repair)
    if imported:
        rewrite = f"{imported}\n{rewrite}" if rewrite else imported
    found = _diagnose(m, drop_unpaired=drop_unpaired)
    unregistered = tuple(_unregistered_catalogs(m))
    found = dataclasses.replace(found, rewrite=rewrite, unregistered_catalogs=unregistered)
    refused = found.damage or (unregistered and not explicit)
    if refused and repair:
        _refuse(m, found)
    recomputed = _repair(m, found) if repair else _stale_catalogs(m)
    jobs = sorted(
        name
        for name, info in fp.catalogs.items()
        if isinstance(info.get("job"), dict) and not info["job"].get("done", False)
    )
    report = dataclasses.replace(
        found, recomputed_catalogs=tuple(recomputed), unfinished_jobs=tuple(jobs), applied=repair
    )
    _log(m, report)
    return report


def repair_model(
    store: Store, name: str, *, check_only: bool = False, drop_unpaired: bool = False
) -> IntegrityReport:
    """Check (and repair) the model ``name`` in ``store`` without opening it for use.

    What ``asif-qdrant repair`` runs: unlike an open, damage is reported (``--check-only``)
    rather than raised, and a repair may register catalogs the fingerprint lacks.

    Raises:
        ModelDamagedError: A repair was asked for and damage remains that it cannot prove
            harmless to fix (see :func:`check_integrity`).
    """
    m = ModelState(store, Layout(name), show_progress_bar=False)
    m.open(None, None, k=None, p=None)
    return check_integrity(m, repair=not check_only, explicit=True, drop_unpaired=drop_unpaired)


def _refuse(m: ModelState, found: IntegrityReport) -> None:
    problems = list(found.damage)
    if found.unregistered_catalogs:
        problems.append(
            f"catalogs {list(found.unregistered_catalogs)} are not in the fingerprint (a "
            "killed index run?): later anchor edits would leave them stale"
        )
    raise ModelDamagedError(
        f"The ASIF model '{m.name}' ({m.store.describe()}) is damaged; nothing was changed:\n"
        + "\n".join(f"- {p}" for p in problems)
        + "\nRun 'asif-qdrant repair --check-only' for the full report; 'asif-qdrant repair' "
        "fixes what it can prove (registers and re-computes catalogs; '--drop-unpaired' "
        "deletes anchors whose pair is gone). A missing anchor collection comes back when "
        "its files are restored.",
        tuple(problems),
    )


def _missing_anchor_collections(m: ModelState) -> list[str]:
    """Anchor collections missing while the model has anchors (on either side)."""
    store, fp = m.store, m.fingerprint
    img, txt = m.layout.image_anchors, m.layout.text_anchors
    if not (fp.anchor_count or _count(store, img) or _count(store, txt)):
        return []
    return [
        f"the anchor collection '{c}' is missing (on the embedded engine: its spec file "
        f"collections/{c}.json or its folder) while the model has {fp.anchor_count} anchor "
        "pairs; the other modality's anchors are kept"
        for c in (img, txt)
        if not store.has_collection(c)
    ]


def _diagnose(m: ModelState, *, drop_unpaired: bool = False) -> IntegrityReport:
    """What an interrupted edit left: the marker's ids, or (no marker) the ids that disagree."""
    store, fp = m.store, m.fingerprint
    img, txt = m.layout.image_anchors, m.layout.text_anchors
    missing = _missing_anchor_collections(m)
    if missing:
        return IntegrityReport("counts", damage=tuple(missing))
    marker = fp.pending_edit
    if marker:
        interrupted = str(marker.get("operation"))
        if interrupted != "add":
            deletes = tuple(sorted(int(x) for x in marker.get("ids", [])))
            return IntegrityReport("marker", interrupted, completed_deletes=deletes)
        first, end = (int(x) for x in marker["ids"])
        ids = list(range(first, end))
        in_img, in_txt = _present(store, img, ids), _present(store, txt, ids)
        if len(in_img) == len(in_txt) == len(ids):
            return IntegrityReport("marker", interrupted, adopted=tuple(ids))
        return IntegrityReport("marker", interrupted, rolled_back=tuple(sorted(in_img | in_txt)))
    in_img = _all_ids(store, img)
    if _count(store, img) == _count(store, txt) == fp.anchor_count:
        top = max(in_img, default=-1)
        if top >= fp.next_anchor_id:
            return IntegrityReport("ids", renumbered=(fp.next_anchor_id, top + 1))
        return IntegrityReport("counts")
    in_txt = _all_ids(store, txt)
    one_sided = in_img ^ in_txt
    if one_sided and not drop_unpaired:
        only_img, only_txt = sorted(in_img - in_txt), sorted(in_txt - in_img)
        return IntegrityReport(
            "ids",
            damage=(
                f"anchor ids in one anchor collection only, which no interrupted edit "
                f"explains: image-only {_ids(only_img)}, text-only {_ids(only_txt)}",
            ),
        )
    deletes = sorted(i for i in one_sided if i < fp.next_anchor_id)
    adopted = sorted(i for i in in_img & in_txt if i >= fp.next_anchor_id)
    paired = fp.anchor_count - len(deletes) + len(adopted)
    return IntegrityReport(
        "ids",
        rolled_back=tuple(sorted(i for i in one_sided if i >= fp.next_anchor_id)),
        completed_deletes=tuple(deletes),
        adopted=tuple(adopted),
        recounted=len(in_img & in_txt) != paired,
    )


_STAGING = (".compacting", ".migrating", ".swapping")


def _unregistered_catalogs(m: ModelState) -> list[str]:
    """Collections shaped like this model's catalogs that no model's fingerprint lists."""
    fp, store = m.fingerprint, m.store
    if fp.image_dim is None or fp.text_dim is None:
        return []
    listed: set[str] = set(fp.catalogs)
    layouts = [m.layout]
    for name, other in model_fingerprints(store).items():
        listed |= set(other.catalogs)
        layouts.append(Layout(name))
    out = []
    for coll in store.list_collections():
        if (
            coll in listed
            or coll.endswith(_STAGING)
            or ".importing-" in coll
            or any(lay.is_model_collection(coll) for lay in layouts)
        ):
            continue
        spec = store.collection_spec(coll)
        if (
            SPARSE in spec.sparse
            and spec.dense.get("image") == fp.image_dim
            and spec.dense.get("text") == fp.text_dim
        ):
            out.append(coll)
    return sorted(out)


def _stale_catalogs(m: ModelState) -> list[str]:
    """Catalogs left at an older anchor version (an edit was killed while it updated them)."""
    fp = m.fingerprint
    return sorted(
        name
        for name, info in fp.catalogs.items()
        if info.get("anchor_version") not in (None, fp.anchor_version)
        and m.store.has_collection(name)
    )


def _repair(m: ModelState, found: IntegrityReport) -> list[str]:
    """Roll back, complete or adopt what :func:`_diagnose` found; returns the catalogs redone."""
    store, fp = m.store, m.fingerprint
    t0 = time.perf_counter()
    if found.renumbered or found.unregistered_catalogs:
        if found.renumbered:
            fp.next_anchor_id = max(fp.next_anchor_id, found.renumbered[1])
        for name in found.unregistered_catalogs:  # re-computed in full below (stale)
            ints = [int(r.id) for r in store.scroll(name) if isinstance(r.id, int)]
            fp.catalogs[name] = {"next_id": max(ints, default=-1) + 1, "anchor_version": -1}
        writes.write_fingerprint(m)
    adopted, deletes = list(found.adopted), list(found.completed_deletes)
    _delete(store, (m.layout.image_anchors, m.layout.text_anchors), [*found.rolled_back, *deletes])
    recomputed: list[str] = []
    if adopted or deletes or found.recounted:
        if adopted:
            fp.next_anchor_id = max(fp.next_anchor_id, adopted[-1] + 1)
        if found.recounted:  # deleted ids unknown: make every catalog re-compute in full
            for info in fp.catalogs.values():
                info["anchor_version"] = -1
            recomputed = sorted(c for c in fp.catalogs if store.has_collection(c))
        fp.pending_edit = None  # cleared by the edit's first fingerprint write
        finish_edit(
            m,
            "delete" if deletes else "add",
            len(adopted) + len(deletes),
            t0,
            new_units=_units(m, adopted) if adopted else None,
            deleted=deletes or None,
        )
    elif fp.pending_edit:
        fp.pending_edit = None
        writes.write_fingerprint(m)
    stale = _stale_catalogs(m)
    for name in stale:
        reindex(m, name)
    return sorted(set(recomputed) | set(stale))


def _log(m: ModelState, report: IntegrityReport) -> None:
    text = report.summary()
    if not text:
        return
    where = f"The ASIF model '{m.name}' ({m.store.describe()})"
    if report.ok:
        logger.warning("%s: %s", where, text)
    elif report.applied:
        logger.warning("%s was repaired on open:\n%s", where, text)
    else:
        logger.warning(
            "%s needs a repair (not applied: another process may be editing it):\n%s\n"
            "When no other process edits it, run "
            "asif.check_integrity(repair=True) (or 'asif-qdrant repair').",
            where,
            text,
        )
