"""The bad-input corpus: each case raises its typed error and leaves the stored data unchanged.

Every case runs against a small real model on the embedded engine (small deterministic encoders,
real Qdrant Edge). After the failing call, every collection of the store is read back and
compared with a snapshot taken before it.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from asif_qdrant import (
    ASIF,
    AnchorSetError,
    CollectionNotFoundError,
    FingerprintMismatchError,
    ImageDecodeError,
    InvalidInputError,
    InvalidParameterError,
    SparseVector,
    StoreError,
)
from asif_qdrant.store import CollectionSpec, EdgeStore
from tests.conftest import ColorImageEncoder, HashTextEncoder

COLORS = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 220, 30), (140, 30, 160)]
NAMES = ["red", "green", "blue", "yellow", "purple"]


def swatch(rgb, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((8, 8, 3), rgb, np.int16) + rng.integers(-10, 11, (8, 8, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png() -> bytes:
    """A tiny PNG whose header claims 30000 x 30000 pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 30001 * 4)  # a few rows; the header is what counts
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
def model(tmp_path: Path):
    asif = ASIF(
        path=tmp_path / "db", k=3, image_encoder=ColorImageEncoder(), text_encoder=HashTextEncoder()
    )
    asif.add_anchors([swatch(c, i) for i, c in enumerate(COLORS)], NAMES, source="swatches")
    asif.index(
        "catalog", images=[swatch(c, 10 + i) for i, c in enumerate(COLORS)], texts=["red", "blue"]
    )
    yield asif
    asif.close()


def snapshot(asif: ASIF) -> dict[str, Any]:
    """Every point of every collection: ids, payloads, vectors."""
    out: dict[str, Any] = {}
    for name in asif.store.list_collections():
        out[name] = [
            (
                r.id,
                r.payload,
                {k: v.tolist() for k, v in r.dense.items()},
                {k: v.as_dict() for k, v in r.sparse.items()},
            )
            for r in asif.store.scroll(name, with_vectors=True)
        ]
    return out


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "files"
    d.mkdir()
    good = Image.fromarray(swatch(COLORS[0]))
    paths = {
        "corrupt": d / "corrupt.png",
        "truncated": d / "truncated.png",
        "empty": d / "empty.png",
        "text": d / "notes.png",
        "bomb": d / "bomb.png",
        "missing": d / "missing.png",
        "gray": d / "gray.png",
        "gray16": d / "gray16.png",
        "rgba": d / "rgba.png",
    }
    paths["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    paths["truncated"].write_bytes(png_bytes(good)[:40])
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("this is not an image\n")
    paths["bomb"].write_bytes(bomb_png())
    Image.fromarray(swatch(COLORS[1])).convert("L").save(paths["gray"])
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(paths["gray16"])
    rgba = np.dstack([swatch(COLORS[2]), np.full((8, 8), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(paths["rgba"])
    return paths


# (case id, callable(model, files), expected error type, message fragment)
Case = tuple[str, Callable[[ASIF, dict[str, Path]], Any], type[Exception], str]

CASES: list[Case] = [
    (
        "corrupt image",
        lambda a, f: a.add_anchors([f["corrupt"]], ["x"]),
        ImageDecodeError,
        "corrupt.png",
    ),
    (
        "truncated image",
        lambda a, f: a.add_anchors([f["truncated"]], ["x"]),
        ImageDecodeError,
        "truncated.png",
    ),
    (
        "zero-byte file",
        lambda a, f: a.add_anchors([f["empty"]], ["x"]),
        ImageDecodeError,
        "empty.png",
    ),
    (
        "non-image file",
        lambda a, f: a.add_anchors([f["text"]], ["x"]),
        ImageDecodeError,
        "notes.png",
    ),
    (
        "decompression bomb",
        lambda a, f: a.add_anchors([f["bomb"]], ["x"]),
        ImageDecodeError,
        "bomb.png",
    ),
    (
        "missing file",
        lambda a, f: a.add_anchors([f["missing"]], ["x"]),
        ImageDecodeError,
        "missing.png",
    ),
    (
        "bad bytes as a query",
        lambda a, f: a.search("catalog", b"not an image"),
        ImageDecodeError,
        "",
    ),
    (
        "corrupt image in index",
        lambda a, f: a.index("catalog", images=[f["corrupt"]]),
        ImageDecodeError,
        "corrupt.png",
    ),
    (
        "a good image then a bad one",
        lambda a, f: a.add_anchors([f["gray"], f["corrupt"]], ["a", "b"]),
        ImageDecodeError,
        "corrupt.png",
    ),
    ("wrong image type", lambda a, f: a.add_anchors([12345], ["x"]), InvalidInputError, "int"),
    (
        "wrong array shape",
        lambda a, f: a.add_anchors([np.zeros((2, 2, 2, 2), np.uint8)], ["x"]),
        InvalidInputError,
        "shape",
    ),
    (
        "empty caption",
        lambda a, f: a.add_anchors([swatch(COLORS[0])], [""]),
        InvalidInputError,
        "empty",
    ),
    (
        "whitespace-only caption",
        lambda a, f: a.add_anchors([swatch(COLORS[0])], ["  \n\t"]),
        InvalidInputError,
        "empty",
    ),
    (
        "non-str caption",
        lambda a, f: a.add_anchors([swatch(COLORS[0])], [None]),
        InvalidInputError,
        "Caption 0 must be a str",
    ),
    ("empty text query", lambda a, f: a.search("catalog", ""), InvalidInputError, "empty"),
    (
        "whitespace text item",
        lambda a, f: a.index("catalog", texts=["ok", " "]),
        InvalidInputError,
        "empty",
    ),
    (
        "one str as texts",
        lambda a, f: a.index("catalog", texts="red"),
        InvalidInputError,
        "list of str",
    ),
    (
        "NaN embedding",
        lambda a, f: a.add_anchor_embeddings(np.full((1, 48), np.nan), np.ones((1, 64))),
        InvalidInputError,
        "NaN or inf",
    ),
    (
        "inf embedding",
        lambda a, f: a.index_embeddings("catalog", np.full((1, 48), np.inf), "image"),
        InvalidInputError,
        "NaN or inf",
    ),
    (
        "wrong-dimension embedding",
        lambda a, f: a.add_anchor_embeddings(np.ones((1, 47)), np.ones((1, 64))),
        InvalidInputError,
        "dim 48",
    ),
    (
        "wrong-dtype embedding",
        lambda a, f: a.add_anchor_embeddings(np.array([["a"] * 48]), np.ones((1, 64))),
        InvalidInputError,
        "numeric",
    ),
    (
        "complex embedding",
        lambda a, f: a.add_anchor_embeddings(np.ones((1, 48), complex), np.ones((1, 64))),
        InvalidInputError,
        "real",
    ),
    (
        "1-D embedding",
        lambda a, f: a.relative_from_embeddings(np.ones(48), "image"),
        InvalidInputError,
        "2-D",
    ),
    (
        "mismatched pair counts",
        lambda a, f: a.add_anchors([swatch(COLORS[0])] * 2, ["x"]),
        InvalidInputError,
        "2 images and 1 captions",
    ),
    (
        "mismatched payloads",
        lambda a, f: a.index("catalog", texts=["a"], payloads=[{}, {}]),
        InvalidInputError,
        "payloads",
    ),
    (
        "duplicate ids",
        lambda a, f: a.index("catalog", texts=["a", "b"], ids=[7, 7]),
        InvalidInputError,
        "distinct",
    ),
    ("unknown ids on delete", lambda a, f: a.delete_anchors([0, 999]), AnchorSetError, "999"),
    ("negative id on delete", lambda a, f: a.delete_anchors([-1]), InvalidParameterError, "ids"),
    ("limit < 1", lambda a, f: a.search("catalog", "red", limit=0), InvalidParameterError, "limit"),
    (
        "unknown modality",
        lambda a, f: a.search("catalog", "red", item_modality="audio"),
        InvalidParameterError,
        "modality",
    ),
    ("missing catalog", lambda a, f: a.search("nope", "red"), CollectionNotFoundError, "nope"),
    (
        "foreign collection as catalog",
        lambda a, f: (
            a.store.create_collection("foreign", CollectionSpec(dense={"v": 2})),
            a.index("foreign", texts=["red"]),
        ),
        InvalidParameterError,
        "not an ASIF catalog",
    ),
    (
        "model collection as catalog",
        lambda a, f: a.index("asif_text_anchors", texts=["red"]),
        InvalidParameterError,
        "belongs to the ASIF model",
    ),
    (
        "bad collection name",
        lambda a, f: a.index("../x", texts=["red"]),
        InvalidParameterError,
        "collection name",
    ),
    (
        "no labels",
        lambda a, f: a.classify([swatch(COLORS[0])], []),
        InvalidParameterError,
        "labels",
    ),
    (
        "template without slot",
        lambda a, f: a.classify([swatch(COLORS[0])], ["a"], templates=["x"]),
        InvalidParameterError,
        "template",
    ),
    (
        "bad filter value",
        lambda a, f: a.search("catalog", "red", filter={"x": 1.5}),
        InvalidParameterError,
        "filter value",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_typed_error_and_changes_nothing(
    model: ASIF, files, case, call, error, fragment
) -> None:
    before = snapshot(model)
    fp_before = model.fingerprint.as_payload()
    with pytest.raises(error) as info:
        call(model, files)
    assert fragment in str(info.value), str(info.value)
    after = snapshot(model)
    if case == "foreign collection as catalog":
        del after["foreign"]  # created by the case itself, outside the model
    assert after == before
    assert model.fingerprint.as_payload() == fp_before


def test_corpus_has_at_least_30_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("kind", ["gray", "gray16", "rgba"])
def test_unusual_but_valid_images_are_accepted(model: ASIF, files, kind: str) -> None:
    (vec,) = model.embed_images([files[kind]])
    assert len(vec) >= 1 and np.isfinite(vec.values).all()


def test_long_text_is_accepted(model: ASIF) -> None:
    (vec,) = model.embed_texts(["red " * 250_000])  # 1 MB
    assert len(vec) >= 1


def test_hyperparameter_errors(tmp_path: Path) -> None:
    for kwargs, fragment in [({"k": 0}, "'k'"), ({"p": 0}, "'p'"), ({"p": -1.0}, "'p'")]:
        with pytest.raises(InvalidParameterError, match=fragment):
            ASIF(path=tmp_path / "x", **kwargs)


def test_k_larger_than_anchor_count_is_fine(model: ASIF) -> None:
    (vec,) = model.embed_texts(["red"])
    assert len(vec) <= model.anchor_count


def test_empty_anchor_set(tmp_path: Path) -> None:
    asif = ASIF(path=tmp_path, image_encoder=ColorImageEncoder(), text_encoder=HashTextEncoder())
    with pytest.raises(AnchorSetError, match="no anchors"):
        asif.embed_texts(["red"])
    with pytest.raises(AnchorSetError, match="no anchors"):
        asif.index("c", texts=["red"])
    asif.close()


def test_foreign_meta_collection_is_refused(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.create_collection("asif_meta", CollectionSpec(dense={"_": 1}))
    from asif_qdrant.store import Record

    store.upsert("asif_meta", [Record(0, {"something": "else"}, dense={"_": np.ones(1)})])
    with pytest.raises(FingerprintMismatchError, match="not an asif-qdrant model"):
        ASIF(store=store)
    store.close()


def test_fingerprint_mismatch(tmp_path: Path, model: ASIF) -> None:
    path = model.store.path  # type: ignore[attr-defined]
    model.close()
    with pytest.raises(FingerprintMismatchError, match="test/hash-text"):
        ASIF(path=path, text_encoder=HashTextEncoder(name="test/another"))


def test_server_that_is_down(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    client = QdrantClient(url="http://127.0.0.1:9", timeout=1)  # discard port: nothing listens
    with pytest.raises(StoreError):
        asif = ASIF(
            client=client, image_encoder=ColorImageEncoder(), text_encoder=HashTextEncoder()
        )
        asif.add_anchor_embeddings(np.ones((1, 48)), np.ones((1, 64)))


def test_sparse_query_without_overlap_scores_nothing(model: ASIF) -> None:
    far = SparseVector(indices=np.array([10_000]), values=np.array([1.0]))
    assert model.search("catalog", far) == []
