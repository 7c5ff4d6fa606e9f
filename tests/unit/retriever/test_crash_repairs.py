"""Issue 19, cases 6-11: repairs that never delete, crash-safe purges and imports, one owner.

Each test does what the case did on the old code and asserts the data is intact (or the typed
error). Kills are real SIGKILLs of a child process (``tests/crash_ops.py``): at a named point
(``ASIF_QDRANT_KILL_AT``) or after a random delay.
"""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import ASIF
from asif_qdrant.errors import InvalidInputError, ModelDamagedError, StoreLockedError
from asif_qdrant.retriever.integrity import repair_model
from asif_qdrant.retriever.writes import write_fingerprint
from asif_qdrant.store import EdgeStore
from asif_qdrant.transfer import export_model, import_model
from tests import crash_ops
from tests.crash_ops import (
    DI,
    DT,
    REWRITE_POINTS,
    build,
    check_model,
    random_rows,
    run_killed,
    spawn,
)
from tests.helpers import precomputed_asif


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "db"
    build(path)
    return path


# -- case 6: a missing spec file is damage, not garbage
def test_missing_collection_file_refuses_and_deletes_nothing(model: Path) -> None:
    spec = model / "collections" / "asif_text_anchors.json"
    saved = spec.read_bytes()
    spec.unlink()
    with pytest.raises(ModelDamagedError, match="asif_text_anchors' is missing"):
        ASIF(path=model)
    with EdgeStore(model) as store:
        assert store.count("asif_image_anchors") == 40  # the other modality is kept
        report = repair_model(store, "asif", check_only=True)
        assert report.damage and not report.applied
        with pytest.raises(ModelDamagedError):
            repair_model(store, "asif")  # nothing provable to do: refused, not deleted
        assert store.count("asif_image_anchors") == 40
    spec.write_bytes(saved)  # restoring the file brings everything back
    assert check_model(model)["anchors"] == list(range(40))


# -- case 7: purge (and every rewrite) survives a SIGKILL at any phase
@pytest.mark.parametrize(
    "point",
    [
        *REWRITE_POINTS,
        "rewrite:dropped#3",  # the catalog's rewrite (after both anchor collections)
    ],
)
def test_purge_killed_at_each_phase_loses_nothing(model: Path, point: str) -> None:
    with ASIF(path=model) as asif:
        ids, _ = asif.anchor_embeddings("image")
    assert run_killed(model, "purge", "5", kill_at=point) == -signal.SIGKILL
    state = check_model(model)
    # The delete was recorded before the purge began: 3 pairs gone, every other one kept.
    assert len(state["anchors"]) == len(ids) - 3 and set(state["anchors"]) < set(ids)
    assert state["catalogs"] == {"items": 60}
    assert state["integrity"].rewrite  # the open finished or rolled back the rewrite


def test_purge_killed_at_random_times(model: Path) -> None:
    rng = np.random.default_rng(int(os.environ.get("ASIF_CRASH_SEED", "3")))
    total = 40
    for round_ in range(3):
        code = crash_ops.kill_after(model, "purge", str(round_), float(rng.uniform(0.5, 3.0)))
        state = check_model(model)
        total -= 3 if code == 0 or len(state["anchors"]) < total else 0
        assert len(state["anchors"]) == total
        assert state["catalogs"] == {"items": 60}


# -- case 8: staged imports
def _export(model: Path, out: Path) -> None:
    with EdgeStore(model) as store:
        export_model(store, "asif", out, show_progress_bar=False)


def test_truncated_import_with_overwrite_keeps_the_model(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.tar"
    _export(model, out)
    data = out.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    with EdgeStore(model) as store, pytest.raises(InvalidInputError):
        import_model(cut, store, overwrite=True, show_progress_bar=False)
    assert check_model(model)["anchors"] == list(range(40))  # nothing deleted first


def test_tar_cut_before_meta_is_not_adopted(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.tar"
    _export(model, out)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        last_data = max(i for i, n in enumerate(names) if "asif_text_anchors" in n)
        offset = tar.getmembers()[last_data + 1].offset
    cut = tmp_path / "cut.tar"
    cut.write_bytes(out.read_bytes()[:offset])
    fresh = tmp_path / "fresh"
    with EdgeStore(fresh) as store:
        with pytest.raises(InvalidInputError):
            import_model(cut, store, show_progress_bar=False)
        assert store.list_collections() == []  # staging dropped, nothing adopted


def test_crafted_catalog_name_cannot_overwrite_another_model(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with precomputed_asif(path=path, k=3, name="prod") as prod:
        prod.add_anchor_embeddings(random_rows(1, 10, DI), random_rows(2, 10, DT))
    other = tmp_path / "other"
    with precomputed_asif(path=other, k=3) as asif:
        asif.add_anchor_embeddings(random_rows(3, 10, DI), random_rows(4, 10, DT))
        asif.index_embeddings("prod_image_anchors", random_rows(5, 4, DI), "image")
    out = tmp_path / "crafted.tar"
    _export(other, out)
    with EdgeStore(path) as store:
        with pytest.raises(InvalidInputError, match="prod_image_anchors"):
            import_model(out, store, overwrite=True, show_progress_bar=False)
        assert store.count("prod_image_anchors") == 10
        assert not [c for c in store.list_collections() if c.endswith(".importing")]


def test_import_into_a_held_folder_fails(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.tar"
    _export(model, out)
    holder = spawn(model, "hold")
    try:
        assert holder.stdout.readline().strip() == "ready"
        importer = spawn(model, "import", str(out))
        _, err = importer.communicate(timeout=120)
        assert importer.returncode == 1 and "StoreLockedError" in err and str(holder.pid) in err
    finally:
        holder.kill()
        holder.communicate()
    assert check_model(model)["anchors"] == list(range(40))


@pytest.mark.parametrize("point", ["import:swapping", "import:restoring#2"])
def test_import_killed_during_swap_is_finished_on_open(
    model: Path, tmp_path: Path, point: str
) -> None:
    """Killed when the fingerprint is gone, or half-way through copying the anchors back."""
    with ASIF(path=model, show_progress_bar=False) as asif:
        crash_ops.run_op(asif, "add", "7")  # the model now differs from the export
    out = tmp_path / "m.tar"
    _export(model, out)
    with ASIF(path=model, show_progress_bar=False) as asif:
        crash_ops.run_op(asif, "add", "8")
    assert run_killed(model, "import", str(out), kill_at=point) == -signal.SIGKILL
    state = check_model(model)
    assert "finished an import" in state["integrity"].rewrite
    assert state["anchors"] == list(range(46))  # the exported model, complete


def test_import_killed_before_swap_leaves_the_model(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.tar"
    _export(model, out)
    with ASIF(path=model, show_progress_bar=False) as asif:
        crash_ops.run_op(asif, "add", "8")
    assert run_killed(model, "import", str(out), kill_at="import:staged#2") == -signal.SIGKILL
    state = check_model(model)
    assert "before its swap" in state["integrity"].rewrite
    assert state["anchors"] == list(range(46))  # untouched: the import never swapped


def test_expanded_size_is_bounded(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.tar.gz"
    _export(model, out)
    with EdgeStore(tmp_path / "dest") as store:
        with pytest.raises(InvalidInputError, match="max_member_bytes"):
            import_model(out, store, max_member_bytes=2000, show_progress_bar=False)
        assert store.list_collections() == []


def test_altered_file_fails_its_checksum(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.tar"
    _export(model, out)
    with tarfile.open(out) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    altered = tmp_path / "altered.tar"
    with tarfile.open(altered, "w") as tar:
        for m, data in members:
            if m.name == "end.json":
                end = json.loads(data)
                part = next(iter(end["sha256"]))
                end["sha256"][part] = "0" * 64
                data = json.dumps(end).encode()
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    with EdgeStore(tmp_path / "dest") as store:
        with pytest.raises(InvalidInputError, match="checksum"):
            import_model(altered, store, show_progress_bar=False)
        assert store.list_collections() == []


# -- case 9: one owner per folder
def test_second_opener_gets_a_typed_error_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    holder = spawn(path, "hold")
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match=f"process {holder.pid}") as e:
            precomputed_asif(path=path, k=3)
        assert e.value.holder_pid == holder.pid
    finally:
        holder.kill()
        holder.communicate()
    with precomputed_asif(path=path, k=3) as asif:  # free again once the holder is gone
        asif.add_anchor_embeddings(random_rows(1, 4, DI), random_rows(2, 4, DT))
        with pytest.raises(StoreLockedError, match="this process"):
            ASIF(path=path)


# -- case 10: the fingerprint is cross-checked
def test_next_anchor_id_below_stored_ids_is_re_derived(model: Path) -> None:
    with ASIF(path=model) as asif:
        asif.fingerprint.next_anchor_id = 0
        write_fingerprint(asif.state)
    with ASIF(path=model) as asif:
        assert asif.integrity.renumbered == (0, 40)
        assert "re-derived as 40" in asif.integrity.summary()
        new = asif.add_anchor_embeddings(random_rows(9, 2, DI), random_rows(10, 2, DT))
        assert new == [40, 41]
    assert check_model(model)["anchors"] == list(range(42))


def test_missing_meta_file_is_not_a_new_model(model: Path) -> None:
    meta = model / "collections" / "asif_meta.json"
    saved = meta.read_bytes()
    meta.unlink()
    with pytest.raises(ModelDamagedError, match=r"fingerprint .* is missing"):
        ASIF(path=model)
    meta.write_bytes(saved)
    with ASIF(path=model) as asif:
        assert asif.k == 5 and "items" in asif.fingerprint.catalogs


# -- case 11: a catalog the fingerprint does not list
def test_killed_index_leaves_a_registered_catalog(model: Path) -> None:
    # A run into a new catalog, killed after its first chunk was written.
    assert run_killed(model, "index", "3:fresh", kill_at="index:written") == -signal.SIGKILL
    with ASIF(path=model, show_progress_bar=False) as asif:
        assert "fresh" in asif.fingerprint.catalogs and asif.store.count("fresh") == 40
    with ASIF(path=model, show_progress_bar=False) as asif:
        crash_ops.run_op(asif, "add", "20")
    assert check_model(model)["catalogs"]["fresh"] == 40


def test_unregistered_catalog_is_refused_then_repaired(model: Path) -> None:
    with ASIF(path=model, show_progress_bar=False) as asif:
        del asif.fingerprint.catalogs["items"]  # what a killed run of an older version left
        write_fingerprint(asif.state)
    with pytest.raises(ModelDamagedError, match="not in the fingerprint"):
        ASIF(path=model)
    with EdgeStore(model) as store:
        report = repair_model(store, "asif")
        assert report.unregistered_catalogs == ("items",)
        assert "items" in report.recomputed_catalogs
    with ASIF(path=model, show_progress_bar=False) as asif:
        crash_ops.run_op(asif, "add", "30")  # the catalog follows the edit again
    assert check_model(model)["catalogs"] == {"items": 60}
