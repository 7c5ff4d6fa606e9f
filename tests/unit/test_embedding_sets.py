"""clip-retrieval embedding folders, read in chunks and added as anchor pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asif_qdrant import InvalidInputError
from asif_qdrant.embedding_sets import clip_retrieval_chunks, clip_retrieval_count
from tests.helpers import precomputed_asif

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def write_folder(folder: Path, sizes: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A folder as ``clip-retrieval inference`` writes it: one shard per size."""
    rng = np.random.default_rng(seed)
    imgs, txts = [], []
    for sub in ("img_emb", "text_emb", "metadata"):
        (folder / sub).mkdir(parents=True)
    start = 0
    for i, n in enumerate(sizes):
        img = rng.normal(size=(n, 6)).astype(np.float16)  # clip-retrieval writes float16
        txt = rng.normal(size=(n, 4)).astype(np.float16)
        np.save(folder / f"img_emb/img_emb_{i}.npy", img)
        np.save(folder / f"text_emb/text_emb_{i}.npy", txt)
        table = pa.table(
            {
                "caption": [f"caption {start + j}" for j in range(n)],
                "url": [None if j == 0 else f"https://example.org/{start + j}" for j in range(n)],
            }
        )
        pq.write_table(table, folder / f"metadata/metadata_{i}.parquet")
        imgs.append(img)
        txts.append(txt)
        start += n
    return np.concatenate(imgs).astype(np.float32), np.concatenate(txts).astype(np.float32)


def test_a_clip_retrieval_folder_is_added_in_chunks(tmp_path: Path) -> None:
    img, txt = write_folder(tmp_path / "emb", [7, 5])
    assert clip_retrieval_count(tmp_path / "emb") == 12
    chunks = list(clip_retrieval_chunks(tmp_path / "emb", chunk_size=3))
    assert [len(c[0]) for c in chunks] == [3, 3, 1, 3, 2]  # chunks never cross a shard
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), img)
    np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), txt)
    payloads = [p for c in chunks for p in c[2]]
    assert payloads[0] == {"caption": "caption 0"}  # a missing url is left out
    assert payloads[8] == {"caption": "caption 8", "url": "https://example.org/8"}
    with precomputed_asif(path=tmp_path / "model", k=3) as asif:
        for i, t, p in clip_retrieval_chunks(tmp_path / "emb", chunk_size=4):
            asif.add_anchor_embeddings(i, t, payloads=p)
        anchors = asif.list_anchors()
        assert asif.anchor_count == 12
        assert [a["caption"] for a in anchors] == [f"caption {j}" for j in range(12)]
        _, stored = asif.anchor_embeddings("text")
        unit = txt / np.linalg.norm(txt, axis=1, keepdims=True)
        np.testing.assert_allclose(stored, unit, atol=1e-6)


def test_a_folder_in_another_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a clip-retrieval embeddings folder"):
        list(clip_retrieval_chunks(tmp_path))
    write_folder(tmp_path / "emb", [4])
    (tmp_path / "emb/text_emb/text_emb_0.npy").unlink()
    with pytest.raises(InvalidInputError, match="no text embeddings"):
        list(clip_retrieval_chunks(tmp_path / "emb"))
    np.save(tmp_path / "emb/text_emb/text_emb_0.npy", np.ones((3, 4), np.float32))
    with pytest.raises(InvalidInputError, match="disagrees on its size"):
        list(clip_retrieval_chunks(tmp_path / "emb"))
