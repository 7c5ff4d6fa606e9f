"""Moving a whole ASIF model: embedded -> qdrant-client -> embedded gives identical answers.

Real stores on both ends (the embedded engine and qdrant-client's local mode), the small
deterministic encoders of tests/conftest.py, a fixed set of queries.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from qdrant_client import QdrantClient

from asif_qdrant import ASIF
from asif_qdrant.cli import main
from asif_qdrant.errors import (
    ASIFError,
    CollectionNotFoundError,
    InvalidInputError,
    InvalidParameterError,
    StoreError,
)
from asif_qdrant.store import ClientStore, EdgeStore, Store
from asif_qdrant.transfer import (
    EXPORT_FORMAT,
    copy_model,
    export_model,
    import_model,
    model_collections,
    read_manifest,
)
from tests.conftest import ColorImageEncoder
from tests.helpers import color_asif, colors, precomputed_asif, swatch

COLORS = colors(8)
UUIDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(4)]
TEXT_QUERIES = ["a red square", "something blue", "green", "a bright yellow thing"]
LABELS = ["red", "green", "blue", "orange"]


IMAGE_QUERIES = [swatch(COLORS["orange"], seed=99), swatch(COLORS["blue"], seed=98)]


def open_model(store: Store, name: str = "asif") -> ASIF:
    return color_asif(store=store, name=name)


def build(store: Store) -> ASIF:
    asif = color_asif(store=store, k=6, p=4.0)
    names = [n for n in COLORS for _ in range(3)]
    asif.add_anchors(
        [swatch(COLORS[n], seed=i) for i, n in enumerate(names)],
        [f"a {n} square" for n in names],
    )
    asif.index(
        "swatches",
        images=[swatch(rgb, seed=50 + i) for i, rgb in enumerate(COLORS.values())],
        payloads=[{"color": n, "tags": ["x", n], "w": 0.5} for n in COLORS],
    )
    asif.index("notes", texts=[f"notes about {n}" for n in list(COLORS)[:4]], ids=UUIDS)
    asif.classify(IMAGE_QUERIES, LABELS)  # leaves a label cache behind
    return asif


def answers(asif: ASIF) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for coll in ("swatches", "notes"):
        hits = asif.search_batch(coll, [*TEXT_QUERIES, *IMAGE_QUERIES], limit=5)
        out[coll] = [[(str(h.id), h.score, h.payload) for h in row] for row in hits]
    labels = asif.classify(IMAGE_QUERIES, LABELS)
    scores = asif.classify_scores(IMAGE_QUERIES, LABELS)
    out["classify"] = (labels, scores)
    return out


def assert_same_answers(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Same ids, order and payloads; scores equal to float32 rounding.

    The stored data are compared bit for bit elsewhere (``dump``). Scores are not: two embedded
    stores built from identical inputs already differ in the last bit of a sparse score now
    and then (measured: 3 of 288 scores over 6 pairs of fresh builds, at most 6.8e-8 relative).
    """
    for coll in ("swatches", "notes"):
        assert len(got[coll]) == len(want[coll]) == len(TEXT_QUERIES) + len(IMAGE_QUERIES)
        for g_row, w_row in zip(got[coll], want[coll], strict=True):
            assert [(i, p) for i, _, p in g_row] == [(i, p) for i, _, p in w_row]
            g, w = [s for _, s, _ in g_row], [s for _, s, _ in w_row]
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=0)
    assert got["classify"][0] == want["classify"][0]
    np.testing.assert_allclose(got["classify"][1], want["classify"][1], rtol=1e-6, atol=0)


def dump(store: Store, name: str = "asif") -> dict[str, Any]:
    """Every point of the model, vectors as exact float32 bytes."""
    out: dict[str, Any] = {}
    for _, coll in model_collections(store, name):
        rows = {}
        for r in store.scroll(coll, with_vectors=True):
            rows[str(r.id)] = (
                r.payload,
                {k: np.asarray(v, np.float32).tobytes() for k, v in r.dense.items()},
                {
                    k: (v.indices.astype(np.uint64).tobytes(), v.values.tobytes())
                    for k, v in r.sparse.items()
                },
            )
        out[coll.removeprefix(f"{name}_")] = rows
    return out


def local_store(path: Path) -> ClientStore:
    return ClientStore(QdrantClient(path=str(path)), close_client=True)


@pytest.fixture
def original(tmp_path: Path):
    asif = build(EdgeStore(tmp_path / "edge-a"))
    yield asif, answers(asif), dump(asif.store)
    asif.close()


def test_edge_to_local_mode_to_edge_through_files_gives_identical_answers(
    original, tmp_path: Path
) -> None:
    asif, want, points = original
    f1 = tmp_path / "model.tar"
    r1 = export_model(asif.store, "asif", f1, batch_size=7, show_progress_bar=False)
    assert r1.collections == {
        "notes": 4,
        "swatches": 8,
        "asif_image_anchors": 24,
        "asif_text_anchors": 24,
        "asif_meta": 1,
    }
    assert r1.points == 61 and r1.bytes == f1.stat().st_size

    local = local_store(tmp_path / "local")
    r2 = import_model(f1, local, show_progress_bar=False)
    assert r2.collections == r1.collections and r2.dest_model == "asif"
    assert not any("_labels_" in c for c in local.list_collections())  # caches stay behind
    on_local = open_model(local)
    assert_same_answers(answers(on_local), want)
    assert dump(local) == points  # float32 bits, sparse vectors, payloads, ids

    f2 = tmp_path / "again.tar.gz"
    export_model(local, "asif", f2, show_progress_bar=False)
    on_local.close()
    edge_b = EdgeStore(tmp_path / "edge-b")
    import_model(f2, edge_b, show_progress_bar=False)
    assert dump(edge_b) == points
    final = open_model(edge_b)
    assert final.fingerprint == asif.fingerprint
    assert_same_answers(answers(final), want)
    final.close()


def test_copy_model_between_stores_gives_identical_answers(original, tmp_path: Path) -> None:
    asif, want, points = original
    local = local_store(tmp_path / "local")
    report = copy_model(asif.store, "asif", local, batch_size=5, show_progress_bar=False)
    assert report.points == 61 and report.path is None
    assert dump(local) == points
    edge_b = EdgeStore(tmp_path / "edge-b")
    copy_model(local, "asif", edge_b, show_progress_bar=False)
    local.close()
    final = open_model(edge_b)
    assert_same_answers(answers(final), want)
    final.close()


def test_export_file_layout(original, tmp_path: Path) -> None:
    asif, _, _ = original
    out = tmp_path / "m.tar"
    export_model(asif.store, "asif", out, batch_size=10, show_progress_bar=False)
    assert not (tmp_path / "m.tar.partial").exists()
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
        first = tar.extractfile("data/002-asif_image_anchors/000000.npz").read()
    assert names[0] == "manifest.json" and names[-1] == "end.json"
    assert [n for n in names if n.startswith("data/002-")] == [
        f"data/002-asif_image_anchors/{i:06d}.npz" for i in range(3)
    ]
    assert manifest["format"] == EXPORT_FORMAT and manifest["model"] == "asif"
    assert [(c["role"], c["name"], c["count"]) for c in manifest["collections"]] == [
        ("catalog", "notes", 4),
        ("catalog", "swatches", 8),
        ("image_anchors", "asif_image_anchors", 24),
        ("text_anchors", "asif_text_anchors", 24),
        ("meta", "asif_meta", 1),
    ]
    assert read_manifest(out) == manifest
    assert manifest["fingerprint"]["k"] == 6
    with np.load(io.BytesIO(first)) as z:
        mat = z["dense_0"]
        ids = json.loads(z["json"].tobytes())["ids"]
    assert mat.dtype == np.float32 and mat.shape == (10, ColorImageEncoder.dim)
    stored = asif.store.retrieve("asif_image_anchors", ids, with_vectors=True)
    np.testing.assert_array_equal(mat, np.stack([r.dense["image"] for r in stored]))


def test_existing_collections_need_overwrite_or_another_name(original, tmp_path: Path) -> None:
    asif, want, _ = original
    out = tmp_path / "m.tar"
    export_model(asif.store, "asif", out, show_progress_bar=False)
    dest = EdgeStore(tmp_path / "dest")
    import_model(out, dest, show_progress_bar=False)
    model = open_model(dest)
    model.classify(IMAGE_QUERIES, ["black", "white"])  # a label cache at the destination
    with pytest.raises(StoreError, match=r"already holds \['notes', 'swatches', 'asif_image"):
        import_model(out, dest, show_progress_bar=False)
    report = import_model(out, dest, overwrite=True, show_progress_bar=False)
    assert report.points == 61
    assert not any("_labels_" in c for c in dest.list_collections())
    assert_same_answers(answers(open_model(dest)), want)
    # Under another name, only the model's own collections are new; catalogs keep theirs.
    report = import_model(out, dest, name="copy", overwrite=True, show_progress_bar=False)
    assert set(report.collections) == {
        "notes",
        "swatches",
        "copy_image_anchors",
        "copy_text_anchors",
        "copy_meta",
    }
    assert_same_answers(answers(open_model(dest, "copy")), want)
    with pytest.raises(InvalidParameterError, match="another store, or 'dest_name' another name"):
        copy_model(dest, "copy", dest)
    dest.close()


def test_missing_model_and_damaged_files(original, tmp_path: Path) -> None:
    asif, _, _ = original
    with pytest.raises(CollectionNotFoundError, match="no ASIF model named 'other'"):
        export_model(asif.store, "other", tmp_path / "x.tar")
    assert not list(tmp_path.glob("x.tar*"))  # no partial file left behind

    not_tar = tmp_path / "junk.tar"
    not_tar.write_bytes(b"hello" * 100)
    with pytest.raises(InvalidInputError, match=r"junk\.tar"):
        import_model(not_tar, EdgeStore(tmp_path / "d1"))

    good = tmp_path / "m.tar"
    export_model(asif.store, "asif", good, show_progress_bar=False)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    dest = EdgeStore(tmp_path / "d2")
    with pytest.raises((InvalidInputError, StoreError)):
        import_model(cut, dest, show_progress_bar=False)
    # The fingerprint comes last, so the half-imported model is not taken for a whole one.
    with pytest.raises(CollectionNotFoundError):
        model_collections(dest, "asif")
    dest.close()


def test_cli_export_import_migrate(original, tmp_path: Path) -> None:
    asif, want, points = original
    src = asif.store.path
    asif.close()  # the embedded folder has one opener at a time
    runner = CliRunner()
    out = tmp_path / "cli.tar"
    res = runner.invoke(main, ["export", "--path", str(src), "--out", str(out), "--json", "-q"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["points"] == 61 and data["path"] == str(out)

    dest = tmp_path / "imported"
    res = runner.invoke(main, ["import", str(out), "--path", str(dest), "--name", "m2", "-q"])
    assert res.exit_code == 0, res.output
    assert "imported the model 'asif' (61 points in 5 collections" in res.output

    moved = tmp_path / "moved"
    args = ["migrate", "--path", str(dest), "--name", "m2", "--to-path", str(moved), "--json"]
    res = runner.invoke(main, [*args, "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["dest_model"] == "m2"
    res = runner.invoke(main, [*args, "-q"])
    assert res.exit_code == 1 and json.loads(res.output)["error"] == "StoreError"

    final_store = EdgeStore(moved)
    assert dump(final_store, "m2") == points
    assert_same_answers(answers(open_model(final_store, "m2")), want)
    final_store.close()

    res = runner.invoke(main, ["migrate", "--path", str(moved), "--to-path", str(tmp_path)])
    assert res.exit_code != 0 and "Give exactly one" not in res.output
    res = runner.invoke(main, ["migrate", "--path", str(moved)])
    assert res.exit_code == 2 and "Give exactly one of --to-path or --to-url" in res.output
    res = runner.invoke(main, ["export", "--path", str(tmp_path / "nope"), "--out", "x.tar"])
    assert res.exit_code == 2 and "no embedded store" in res.output


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.pop("fingerprint"),  # KeyError deep inside
        lambda m: m.update(collections=[{"role": "meta"}]),  # KeyError in the plans
        lambda m: m["collections"][0].update(count="many"),  # TypeError
        lambda m: m["collections"][0]["spec"].update(dense={"image": 10**30}),  # OverflowError
    ],
)
def test_a_crafted_manifest_is_an_invalid_input_error(damage, tmp_path: Path) -> None:
    """Raw KeyError / TypeError from a crafted export become InvalidInputError (#19)."""
    rng = np.random.default_rng(0)
    with precomputed_asif(path=str(tmp_path / "src"), k=2, p=8.0) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(3, 4)), rng.normal(size=(3, 3)))
        export_model(asif.store, "asif", tmp_path / "good.tar", show_progress_bar=False)
    path = tmp_path / "crafted.tar"
    with tarfile.open(tmp_path / "good.tar") as good, tarfile.open(path, "w") as tar:
        for member in good.getmembers():
            data = good.extractfile(member).read()
            if member.name == "manifest.json":
                manifest = json.loads(data)
                damage(manifest)
                data = json.dumps(manifest).encode()
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    dest = EdgeStore(tmp_path / "d")
    with pytest.raises(ASIFError, match=r"crafted\.tar|asif"):
        import_model(path, dest, show_progress_bar=False)
    dest.close()
