"""Idempotent ingestion: content keys, on_duplicate, canonical ids, portable image references."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asif_qdrant import InvalidInputError, InvalidParameterError
from asif_qdrant.retriever.keys import (
    IMAGE_HASH_FIELD,
    KEY_FIELD,
    IngestResult,
    anchor_key,
    canonical_id,
    canonical_ids,
    file_sha256,
    image_key,
    image_status,
    stored_image,
    text_key,
)
from tests.helpers import COLORS, color_asif, precomputed_asif, swatch


def write_swatches(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j, rgb in enumerate(list(COLORS.values())[:n]):
        path = folder / f"{j}.png"
        Image.fromarray(swatch(rgb, seed=j)).save(path)
        paths.append(path)
    return paths


# -- keys and ids ---------------------------------------------------------------------------------
def test_keys_name_the_content_not_the_input_kind(tmp_path: Path) -> None:
    (path,) = write_swatches(tmp_path, 1)
    data = path.read_bytes()
    assert image_key(path) == image_key(str(path)) == image_key(data) == image_key(bytearray(data))
    assert image_key(path).removeprefix("image:") == file_sha256(path)
    assert text_key("a cat") != text_key("a cat.")
    assert anchor_key(image_key(data), "a red one") != anchor_key(image_key(data), "a blue one")
    arr = swatch((1, 2, 3))
    assert image_key(arr) == image_key(arr.copy()) != image_key(arr.T.copy())


def test_uuids_have_one_canonical_form_and_bools_are_refused() -> None:
    u = uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
    spellings = [u, str(u).upper(), u.hex, f"urn:uuid:{u}", f"{{{u}}}", u.hex.upper()]
    assert {canonical_id(s) for s in spellings} == {str(u)}
    assert canonical_id(np.int64(7)) == 7 and type(canonical_id(np.uint8(7))) is int
    for bad in (True, False, np.bool_(True), -1, 2**64, 1.0, "7", "not-a-uuid", None):
        with pytest.raises(InvalidInputError, match="A point id must be"):
            canonical_id(bad)
    with pytest.raises(InvalidInputError, match="are the same point id"):
        canonical_ids([str(u).upper(), f"urn:uuid:{u}"], 2)


# -- anchors ---------------------------------------------------------------------------------------
def test_adding_the_same_anchor_pairs_again_is_a_reported_no_op(tmp_path: Path) -> None:
    paths = write_swatches(tmp_path / "img", 6)
    captions = [f"a {c} square" for c in list(COLORS)[:6]]
    with color_asif(path=str(tmp_path / "db"), k=3) as asif:
        first = asif.add_anchors(paths, captions)
        assert isinstance(first, IngestResult) and (first.added, first.already_present) == (6, 0)
        again = asif.add_anchors(paths, captions)
        assert again == first and again.summary() == "0 added, 6 already present"
        assert asif.anchor_count == 6 and asif.fingerprint.anchor_version == 1  # no edit at all
        # The same image with another caption is another pair; a pair twice in one call once.
        mixed = asif.add_anchors([paths[0], paths[1], paths[1]], ["new", captions[1], captions[1]])
        assert (mixed.added, mixed.already_present) == (1, 2)
        assert mixed[1:] == [first[1], first[1]] and asif.anchor_count == 7
        stored = asif.list_anchors()
        assert len({a[KEY_FIELD] for a in stored}) == 7
        assert stored[0]["image"] == str(paths[0].resolve())
        assert stored[0][IMAGE_HASH_FIELD] == file_sha256(paths[0])


def test_anchor_on_duplicate_replace_and_add(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(5, 8)), rng.normal(size=(5, 4))
    with precomputed_asif(path=str(tmp_path / "db"), k=2) as asif:
        first = asif.add_anchor_embeddings(img, txt)  # no paths: keyed by the numbers
        replaced = asif.add_anchor_embeddings(img[:2], txt[:2], on_duplicate="replace")
        assert (replaced.added, replaced.replaced) == (0, 2) and asif.anchor_count == 5
        assert set(replaced).isdisjoint(first)  # anchor ids are never reused
        added = asif.add_anchor_embeddings(img[:2], txt[:2], on_duplicate="add")
        assert added.added == 2 and asif.anchor_count == 7
        with pytest.raises(InvalidParameterError, match="'on_duplicate' parameter"):
            asif.add_anchor_embeddings(img, txt, on_duplicate="merge")  # type: ignore[arg-type]


# -- catalogs --------------------------------------------------------------------------------------
def test_indexing_the_same_items_again_skips_replaces_or_adds(tmp_path: Path) -> None:
    paths = write_swatches(tmp_path / "img", 4)
    with color_asif(path=str(tmp_path / "db"), k=3) as asif:
        asif.add_anchors(paths, [f"c{j}" for j in range(4)])
        first = asif.index("cat", images=paths[:3], texts=["a red one", "a bus"])
        assert first == [0, 1, 2, 3, 4] and first.added == 5
        again = asif.index("cat", images=[p.read_bytes() for p in paths], texts=["a bus"])
        assert (again.added, again.already_present) == (1, 4)
        assert again == [0, 1, 2, 5, 4] and asif.store.count("cat") == 6
        replaced = asif.index("cat", texts=["a bus"], on_duplicate="replace")
        assert replaced == [4] and replaced.replaced == 1 and asif.store.count("cat") == 6
        added = asif.index("cat", texts=["a bus"], on_duplicate="add")
        assert added == [6] and asif.store.count("cat") == 7
        (rec,) = asif.store.retrieve("cat", [0])
        assert rec.payload["image"] == str(paths[0].resolve())
        assert rec.payload[IMAGE_HASH_FIELD] == file_sha256(paths[0])


def test_default_ids_never_collide_with_explicit_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with precomputed_asif(path=str(tmp_path / "db"), k=2) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(4, 8)), rng.normal(size=(4, 4)))
        emb = rng.normal(size=(3, 8))
        # issue 19, case 3: explicit ids, then the same call without ids
        assert asif.index_embeddings("c", emb, "image", ids=[0, 1, 2]) == [0, 1, 2]
        skipped = asif.index_embeddings("c", emb, "image")
        assert skipped == [0, 1, 2] and skipped.already_present == 3
        added = asif.index_embeddings("c", emb, "image", on_duplicate="add")
        assert added == [3, 4, 5] and asif.store.count("c") == 6
        high = asif.index_embeddings("c", rng.normal(size=(1, 8)), "image", ids=[40])
        assert high == [40]
        assert asif.index_embeddings("c", rng.normal(size=(2, 8)), "image") == [41, 42]
        # a later open keeps the next default id past the explicit one
    with precomputed_asif(path=str(tmp_path / "db")) as asif:
        assert asif.index_embeddings("c", rng.normal(size=(1, 8)), "image") == [43]


def test_user_ids_are_canonical_and_upserted_by_id(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    u = uuid.uuid4()
    with precomputed_asif(path=str(tmp_path / "db"), k=2) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(4, 8)), rng.normal(size=(4, 4)))
        a, b = rng.normal(size=(1, 8)), rng.normal(size=(1, 8))
        assert asif.index_embeddings("c", a, "image", ids=[str(u).upper()]) == [str(u)]
        same = asif.index_embeddings("c", b, "image", ids=[f"urn:uuid:{u}"])
        assert same == [str(u)] and same.already_present == 1 and asif.store.count("c") == 1
        replaced = asif.index_embeddings("c", b, "image", ids=[u.hex], on_duplicate="replace")
        assert replaced.replaced == 1 and asif.store.count("c") == 1
        (rec,) = asif.store.retrieve("c", [str(u)], with_vectors=["image"])
        np.testing.assert_allclose(rec.dense["image"], b[0] / np.linalg.norm(b), atol=1e-6)
        with pytest.raises(InvalidInputError, match="Got the bool True"):
            asif.index_embeddings("c", a, "image", ids=[True])
        assert asif.store.count("c") == 1


def test_resumable_index_skips_items_indexed_by_an_earlier_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with precomputed_asif(path=str(tmp_path / "db"), k=2) as asif:
        asif.add_anchor_embeddings(rng.normal(size=(4, 8)), rng.normal(size=(4, 4)))
        emb = rng.normal(size=(5, 8))
        first = asif.resumable_index("c", embeddings=emb, modality="image", chunk_size=2)
        again = asif.resumable_index("c", embeddings=emb, modality="image", chunk_size=2)
        assert (again.new, again.already_present) == (0, 5) and again.ids == first.ids
        assert asif.store.count("c") == 5


# -- portable image references ---------------------------------------------------------------------
def test_moved_images_are_warned_about_and_drawn_as_a_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("matplotlib")
    from asif_qdrant.plotting import contact_sheet, explain_figure

    monkeypatch.chdir(tmp_path)
    paths = write_swatches(tmp_path / "catalog", 4)
    relative = [Path("catalog") / p.name for p in paths]
    with color_asif(path=str(tmp_path / "db"), k=3) as asif:
        asif.add_anchors(paths, [f"c{j}" for j in range(4)])
        (item,) = asif.index("cat", images=relative[:1])
        stored = asif.store.retrieve("cat", [item])[0].payload["image"]
        assert stored == str(paths[0].resolve())  # resolved and absolute
        (tmp_path / "catalog").rename(tmp_path / "moved")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        with caplog.at_level(logging.WARNING):
            why = asif.explain("c0", item, "cat")
        assert f"image moved: {stored}" in caplog.text
        assert why.item_image == stored
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert explain_figure(why, tmp_path / "why.png").exists()
            sheet = contact_sheet([("c0", [(stored, "c0", 0.5)])], tmp_path / "sheet.png")
        assert sheet.exists() and f"image moved: {stored}" in caplog.text


def test_old_relative_paths_resolve_against_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    (path,) = write_swatches(tmp_path / "img", 1)
    old = {"image": "img/0.png"}  # as models stored it before paths were absolute
    assert image_status(old) == (str(path.resolve()), "ok")
    changed = {"image": str(path), IMAGE_HASH_FIELD: "0" * 64}
    assert image_status(changed)[1] == "changed"
    monkeypatch.chdir(tmp_path / "img")
    with caplog.at_level(logging.WARNING):
        assert stored_image(old, "anchor 3") == str(tmp_path / "img" / "img" / "0.png")
    assert "image moved:" in caplog.text and "anchor 3" in caplog.text
    assert image_status({"caption": "x"}) == (None, "none")
