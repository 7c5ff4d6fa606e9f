"""The anchor cache: one memory-mapped copy of the anchors, used only while it is current."""

from __future__ import annotations

import json
import mmap
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from asif_qdrant import ASIF
from asif_qdrant.anchor_index import ExactIndex
from asif_qdrant.retriever.anchors import anchor_cache_files, anchor_index
from tests.helpers import precomputed_asif

K = 5


def data(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(n, 12)).astype(np.float32)
    txt = rng.normal(size=(n, 8)).astype(np.float32)
    q = rng.normal(size=(7, 8)).astype(np.float32)
    return img, txt, q


def dense(vecs: list, n: int) -> np.ndarray:
    out = np.zeros((len(vecs), n))
    for row, v in enumerate(vecs):
        out[row, v.indices] = v.values
    return out


def mapped(a: object) -> bool:
    """Whether an array's memory is a memory-mapped file."""
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def engine_vectors(path: Path, q: np.ndarray, n: int) -> np.ndarray:
    with precomputed_asif(path=path, anchor_search="qdrant") as asif:
        return dense(asif.relative_from_embeddings(q, "text"), n)


def test_the_cache_is_written_then_used_and_gives_the_engine_vectors(tmp_path: Path) -> None:
    img, txt, q = data()
    with precomputed_asif(path=tmp_path, k=K) as asif:
        asif.add_anchor_embeddings(img, txt)
        first = dense(asif.relative_from_embeddings(q, "text"), 60)
        rows_f, ids_f, tag_f = anchor_cache_files(asif.state, "text")
        assert rows_f.exists() and ids_f.exists() and tag_f.exists()
    with precomputed_asif(path=tmp_path) as asif:
        index = anchor_index(asif.state, "text")
        assert isinstance(index, ExactIndex)
        assert mapped(index.rows.vecs)  # scanned in place: the one copy of the anchors
        again = dense(asif.relative_from_embeddings(q, "text"), 60)
    np.testing.assert_allclose(again, first, atol=1e-6)
    np.testing.assert_allclose(first, engine_vectors(tmp_path, q, 60), atol=1e-6)


def test_a_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    img, txt, q = data()
    with precomputed_asif(path=tmp_path, k=K) as asif:
        asif.add_anchor_embeddings(img, txt)
        want = dense(asif.relative_from_embeddings(q, "text"), 60)
        rows_f = anchor_cache_files(asif.state, "text")[0]
    raw = bytearray(rows_f.read_bytes())
    raw[-40:] = bytes(40)  # the last anchor's numbers zeroed: same size, other content
    rows_f.write_bytes(bytes(raw))
    with precomputed_asif(path=tmp_path) as asif:
        got = dense(asif.relative_from_embeddings(q, "text"), 60)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert rows_f.read_bytes() != bytes(raw)  # rewritten from the store
    rows_f.write_bytes(b"not a npy")  # truncated / garbled
    with precomputed_asif(path=tmp_path) as asif:
        got = dense(asif.relative_from_embeddings(q, "text"), 60)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_an_edit_makes_the_cache_stale_and_it_is_rebuilt(tmp_path: Path) -> None:
    img, txt, q = data()
    with precomputed_asif(path=tmp_path, k=K) as asif:
        asif.add_anchor_embeddings(img[:40], txt[:40])
        asif.relative_from_embeddings(q, "text")
        files = anchor_cache_files(asif.state, "text")
        old_tag = files[2].read_text()
        asif.delete_anchors([0, 1, 2])
        assert not files[2].exists()  # an edit deletes the cache
        asif.add_anchor_embeddings(img[40:], txt[40:])
        want = dense(asif.relative_from_embeddings(q, "text"), 60)
    # A stale cache put back (as a crash or a copy could leave it) is not used.
    files[2].write_text(old_tag)
    with precomputed_asif(path=tmp_path) as asif:
        got = dense(asif.relative_from_embeddings(q, "text"), 60)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got, engine_vectors(tmp_path, q, 60), atol=1e-6)


def test_a_model_edited_by_another_process_gives_the_same_vectors(tmp_path: Path) -> None:
    img, txt, q = data()
    with precomputed_asif(path=tmp_path, k=K) as asif:
        asif.add_anchor_embeddings(img[:40], txt[:40])
        asif.relative_from_embeddings(q, "text")  # the cache, at this version
    np.save(tmp_path / "img.npy", img[40:])
    np.save(tmp_path / "txt.npy", txt[40:])
    script = textwrap.dedent(
        f"""
        import numpy as np
        from asif_qdrant import ASIF
        with ASIF({str(tmp_path)!r}, image_encoder="precomputed/image",
                  text_encoder="precomputed/text", show_progress_bar=False,
                  anchor_search="qdrant") as asif:
            asif.add_anchor_embeddings(np.load({str(tmp_path / "img.npy")!r}),
                                       np.load({str(tmp_path / "txt.npy")!r}))
            asif.delete_anchors([3])
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    with ASIF(
        tmp_path,
        image_encoder="precomputed/image",
        text_encoder="precomputed/text",
        show_progress_bar=False,
    ) as asif:
        assert asif.anchor_count == 59
        got = dense(asif.relative_from_embeddings(q, "text"), 60)
    np.testing.assert_allclose(got, engine_vectors(tmp_path, q, 60), atol=1e-6)


def test_the_anchor_collections_keep_their_vectors_on_disk(tmp_path: Path) -> None:
    """The engine's copy of the anchors is read on demand (Memory.Cold), not held in RAM."""
    img, txt, q = data()
    with precomputed_asif(path=tmp_path, k=K) as asif:
        asif.add_anchor_embeddings(img, txt)
        colls = [asif.state.layout.anchors(m)[0] for m in ("image", "text")]
        for coll in colls:
            assert asif.state.store.collection_spec(coll).on_disk
        expected = dense(asif.relative_from_embeddings(q, "text"), 60)
    for coll in colls:
        config = json.loads((tmp_path / "collections" / coll / "edge_config.json").read_text())
        assert {v.get("memory") for v in config["vectors"].values()} == {"cold"}
        assert config["on_disk_payload"] is True
    np.testing.assert_allclose(engine_vectors(tmp_path, q, 60), expected, atol=1e-6)


def test_an_index_with_its_own_layout_copies_the_cache_once_and_lets_it_go(
    tmp_path: Path,
) -> None:
    """``ivf`` lays the rows out by list: the cache is copied once and not kept mapped."""
    img, txt, q = data(n=400)
    with precomputed_asif(path=tmp_path, k=K) as asif:
        asif.add_anchor_embeddings(img, txt)
        expected = dense(asif.relative_from_embeddings(q, "text"), 400)
    with precomputed_asif(path=tmp_path, anchor_search="ivf") as asif:
        index = anchor_index(asif.state, "text")
        assert type(index).__name__ == "IVFIndex" and len(index) == 400
        assert "text" not in asif.state.anchor_rows  # no second (mapped) copy kept
        got = dense(asif.relative_from_embeddings(q, "text"), 400)
    shared = ((got > 0) & (expected > 0)).sum(axis=1) / (expected > 0).sum(axis=1)
    assert shared.mean() >= 0.99  # ivf is approximate: its recall bar
