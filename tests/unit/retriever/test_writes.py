"""The one write door checks everything a write carries before its first byte (issue #19).

Each test does what a case of the issue did with precomputed embeddings and the public API,
then reopens the model and asserts its data intact, or the typed error:

1. a payload nested 127+ levels deep (the model could never be opened again);
2. an anchor payload key ``id`` (listed as the anchor's id, deleting the wrong pair), and a
   catalog payload ``{"modality": "text"}`` on an image item (hidden from image searches);
4. one bad payload at position 600 of a 600-pair batch (512 image anchors without their text
   pair, ``next_anchor_id`` below the largest id);
5. an anchor row holding 1e39 (finite in float64, inf in float32: a NaN anchor).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asif_qdrant import ASIF
from asif_qdrant.errors import ASIFError, InvalidInputError, InvalidPayloadError
from asif_qdrant.retriever import writes
from asif_qdrant.retriever.writes import MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH, check_payload
from tests.helpers import precomputed_asif

DI, DT = 6, 5


def _open(path: Path) -> ASIF:
    return precomputed_asif(path=str(path), k=4, p=8.0)


def _pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, DI)), rng.normal(size=(n, DT))


def _nested(levels: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        payload = {"x": payload}
    return payload


def _state(asif: ASIF) -> dict[str, Any]:
    """What must not change: both anchor collections' ids, the fingerprint, the catalog."""
    ids_i, emb_i = asif.anchor_embeddings("image")
    ids_t, emb_t = asif.anchor_embeddings("text")
    return {
        "image": (ids_i, emb_i.copy()),
        "text": (ids_t, emb_t.copy()),
        "anchors": asif.list_anchors(),
    }


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    for modality in ("image", "text"):
        assert a[modality][0] == b[modality][0]
        np.testing.assert_array_equal(a[modality][1], b[modality][1])  # stored bits, no math
    assert a["anchors"] == b["anchors"]


def test_case1_deep_payload_is_refused_and_the_model_still_opens(tmp_path: Path) -> None:
    img, txt = _pairs(8)
    with _open(tmp_path) as asif:
        asif.add_anchor_embeddings(img, txt)
        asif.index_embeddings("items", img[:3], "image")
        before = _state(asif)
        with pytest.raises(InvalidPayloadError, match=rf"payloads\[0\].*{MAX_PAYLOAD_DEPTH}"):
            asif.add_anchor_embeddings(img[:1], txt[:1], payloads=[_nested(127)])
        with pytest.raises(InvalidPayloadError, match=r"payloads\[1\]"):
            asif.index_embeddings("items", img[:2], "image", payloads=[{}, _nested(127)])
    with _open(tmp_path) as asif:  # it opens again (the engine's WAL holds nothing deep)
        _assert_same(before, _state(asif))
        assert asif.fingerprint.next_anchor_id == 8
        ok = _nested(MAX_PAYLOAD_DEPTH)
        # the same embeddings again, on purpose (the default would skip them as present)
        (aid,) = asif.add_anchor_embeddings(img[:1], txt[:1], payloads=[ok], on_duplicate="add")
    with _open(tmp_path) as asif:
        listed = asif.list_anchors()[-1]
        assert {k: v for k, v in listed.items() if k != "asif_key"} == {**ok, "id": aid}


def test_case2_anchor_payload_key_id_is_refused(tmp_path: Path) -> None:
    img, txt = _pairs(4)
    with _open(tmp_path) as asif:
        asif.add_anchor_embeddings(img[:3], txt[:3], payloads=[{"n": i} for i in range(3)])
        before = _state(asif)
        with pytest.raises(InvalidPayloadError, match=r"payloads\[0\] holds the key 'id'"):
            asif.add_anchor_embeddings(img[3:], txt[3:], payloads=[{"id": 0}])
        _assert_same(before, _state(asif))
        assert [a["id"] for a in asif.list_anchors()] == [0, 1, 2]
        asif.delete_anchors([1])
        assert [(a["id"], a["n"]) for a in asif.list_anchors()] == [(0, 0), (2, 2)]


def test_case2_catalog_payload_cannot_hide_an_image_item(tmp_path: Path) -> None:
    img, txt = _pairs(6)
    with _open(tmp_path) as asif:
        asif.add_anchor_embeddings(img, txt)
        with pytest.raises(InvalidPayloadError, match=r"payloads\[0\] holds the key 'modality'"):
            asif.index_embeddings("items", img[:1], "image", payloads=[{"modality": "text"}])
        # The item's own modality, as a search returns it, may be written back.
        asif.index_embeddings("echo", img[:1], "image", payloads=[{"modality": "image"}])
        (pid,) = asif.index_embeddings("items", img[:1], "image", payloads=[{"kind": "text"}])
        hits = asif.search_embeddings("items", img[:1], "image", item_modality="image")
        assert [h.id for h in hits[0]] == [pid]
        payload = {k: v for k, v in hits[0][0].payload.items() if k != "asif_key"}
        assert payload == {"modality": "image", "kind": "text"}


def test_case4_one_bad_payload_leaves_the_batch_unwritten(tmp_path: Path) -> None:
    img, txt = _pairs(700)
    with _open(tmp_path) as asif:
        asif.add_anchor_embeddings(img[:100], txt[:100])
        asif.index_embeddings("items", img[600:], "image")
        before = _state(asif)
        vectors = {h.id: h.score for h in asif.search_embeddings("items", img[:1], "image")[0]}
        payloads: list[dict[str, Any]] = [{"row": i} for i in range(600)]
        payloads[599] = {"row": {1, 2}}  # a set: not JSON
        with pytest.raises(InvalidPayloadError, match=r"payloads\[599\].*JSON"):
            asif.add_anchor_embeddings(img[100:700], txt[100:700], payloads=payloads)
    with _open(tmp_path) as asif:
        _assert_same(before, _state(asif))
        assert asif.fingerprint.next_anchor_id == 100
        again = {h.id: h.score for h in asif.search_embeddings("items", img[:1], "image")[0]}
        assert again == vectors  # same stored vectors, same engine: same scores
        ids = asif.add_anchor_embeddings(img[100:110], txt[100:110])
        assert ids == list(range(100, 110))


@pytest.mark.parametrize("value", [1e39, -1e39, float("inf")])
def test_case5_values_beyond_float32_are_refused_naming_the_row(
    tmp_path: Path, value: float
) -> None:
    img, txt = _pairs(6)
    with _open(tmp_path) as asif:
        asif.add_anchor_embeddings(img[:4], txt[:4])
        before = _state(asif)
        bad = img[4:].copy()
        bad[1, 2] = value
        with pytest.raises(InvalidInputError, match=r"Row 1 "):
            asif.add_anchor_embeddings(bad, txt[4:])
        with pytest.raises(InvalidInputError, match=r"Row 1 "):
            asif.index_embeddings("items", bad, "image")
        _assert_same(before, _state(asif))
        asif.index_embeddings("items", img[:2], "image")
        assert asif.search_embeddings("items", img[:1], "image")[0]  # image queries still work


def test_payload_rules() -> None:
    assert check_payload({"a": [1, {"b": None}], "c": "é"}, "p") == {
        "a": [1, {"b": None}],
        "c": "é",
    }
    for bad, rule in [
        ([1], "must be a dict"),
        ({1: "a"}, "str keys"),
        ({"x": float("nan")}, "JSON"),
        ({"x": float("inf")}, "JSON"),
        ({"x": np.float32(1)}, "JSON"),
        ({"x": object()}, "JSON"),
        ({"x": "a" * MAX_PAYLOAD_BYTES}, "bytes as JSON"),
        (_nested(MAX_PAYLOAD_DEPTH + 1), "levels deep"),
        ({"x": [[[]] * 2] * 2} | {"y": json.loads("[" * 40 + "]" * 40)}, "levels deep"),
    ]:
        with pytest.raises(InvalidPayloadError, match=rule):
            check_payload(bad, "payloads[7]")
    assert issubclass(InvalidPayloadError, ASIFError)
    assert writes.check_payloads(None) is None
