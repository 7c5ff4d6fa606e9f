"""Concurrent use: searches and classifications in threads while anchors are added and deleted.

Every answer a reader thread gets must equal the answer of the model either entirely before
or entirely after an edit (both computed up front), never a mix. Real model on the embedded
Qdrant engine, small deterministic encoders (tests/conftest.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asif_qdrant import ASIF
from asif_qdrant.locking import ReadWriteLock, locked
from tests.conftest import ColorImageEncoder, HashTextEncoder

WORDS = [
    *("red", "green", "blue", "yellow", "purple", "orange"),
    *("black", "white", "grey", "pink", "brown", "cyan"),
]
QUERIES = ["red", "a blue sky", "green grass", "pink and grey", "black cat"]
LABELS = ["red", "green", "blue"]


def _swatch(rgb: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((8, 8, 3), rgb, np.int16) + rng.integers(-20, 21, (8, 8, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def model(tmp_path: Path):
    rng = np.random.default_rng(11)
    text, image = HashTextEncoder(), ColorImageEncoder()
    asif = ASIF(
        path=tmp_path / "db",
        k=6,
        image_encoder=image,
        text_encoder=text,
        show_progress_bar=False,
    )
    captions = [f"{a} {b}" for a in WORDS for b in WORDS[:4]]
    colors = rng.integers(0, 256, (len(captions), 3))
    asif.add_anchors([_swatch(tuple(c), i) for i, c in enumerate(colors)], captions)
    asif.index("items", texts=[f"{a} and {b} {c}" for a in WORDS for b in WORDS for c in "xy"])
    yield asif
    asif.close()


def _answers(asif: ASIF, images: list[np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in QUERIES:
        out[q] = [(h.id, round(h.score, 5)) for h in asif.search("items", q, limit=5)]
    labels = asif.classify(images, LABELS)
    scores = asif.classify_scores(images, LABELS)
    out["classify"] = (labels, np.round(scores, 5).tolist())
    return out


def test_readers_see_the_model_before_or_after_each_edit(model: ASIF) -> None:
    rng = np.random.default_rng(12)
    images = [_swatch((200, 30, 30), 1), _swatch((30, 30, 200), 2)]
    # A strong edit: 12 new pairs near the queries change most answers.
    new_txt = HashTextEncoder().embed(QUERIES * 2 + ["red", "blue"])
    new_img = ColorImageEncoder().embed(
        [_swatch(tuple(c), 5) for c in rng.integers(0, 256, (12, 3))]
    )
    before = _answers(model, images)
    ids = model.add_anchor_embeddings(new_img, new_txt)
    after = _answers(model, images)
    model.delete_anchors(ids)
    assert _answers(model, images) == before  # the states alternate: before, after, before...
    assert sum(before[q] != after[q] for q in before) >= 3

    stop = threading.Event()
    seen: dict[str, int] = {"before": 0, "after": 0}
    bad: list[Any] = []
    errors: list[BaseException] = []

    def reader(key: str) -> None:
        try:
            while not stop.is_set():
                if key == "classify":
                    # One call, so that an edit cannot fall between labels and scores.
                    scores = model.classify_scores(images, LABELS)
                    labels = [LABELS[j] for j in scores.argmax(axis=1)]  # = model.classify
                    got: Any = (labels, np.round(scores, 5).tolist())
                else:
                    got = [(h.id, round(h.score, 5)) for h in model.search("items", key, limit=5)]
                if got == before[key]:
                    seen["before"] += 1
                elif got == after[key]:
                    seen["after"] += 1
                else:
                    bad.append((key, got))
        except BaseException as e:  # a crash in a reader fails the test
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(k,)) for k in [*QUERIES, "classify"]]
    for t in threads:
        t.start()
    try:
        for _ in range(4):  # the writer: add, then delete, the same pairs
            ids = model.add_anchor_embeddings(new_img, new_txt)
            time.sleep(0.05)
            model.delete_anchors(ids)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors
    assert not bad, bad[:3]
    assert seen["before"] and seen["after"], seen  # the readers did run during the edits


def test_lock_is_exclusive_for_writers_and_shared_for_readers() -> None:
    lock = ReadWriteLock()
    inside = {"readers": 0, "writers": 0, "max_readers": 0}
    overlaps: list[str] = []
    guard = threading.Lock()

    def enter(kind: str) -> None:
        with guard:
            inside[kind] += 1
            if inside["writers"] > 1 or (inside["writers"] and inside["readers"]):
                overlaps.append(kind)
            inside["max_readers"] = max(inside["max_readers"], inside["readers"])

    def leave(kind: str) -> None:
        with guard:
            inside[kind] -= 1

    def read() -> None:
        for _ in range(200):
            with lock.read():
                enter("readers")
                time.sleep(0.0002)
                leave("readers")

    def write() -> None:
        for _ in range(50):
            with lock.write(), lock.write():  # re-entrant
                enter("writers")
                time.sleep(0.0002)
                leave("writers")

    threads = [threading.Thread(target=read) for _ in range(4)]
    threads += [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps
    assert inside["max_readers"] > 1  # readers did share the lock


def test_writer_is_not_starved_by_readers() -> None:
    lock = ReadWriteLock()
    stop = threading.Event()
    wrote = threading.Event()

    def read() -> None:
        while not stop.is_set():
            with lock.read():
                time.sleep(0.001)

    def write() -> None:
        with lock.write():
            wrote.set()

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    time.sleep(0.05)  # the readers hold the lock in turns, never all released at once
    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert wrote.wait(5), "the writer waited forever behind a stream of readers"
    finally:
        stop.set()
        writer.join(timeout=5)
        for t in readers:
            t.join(timeout=5)


def test_reader_calling_a_writer_fails_fast() -> None:
    class Model:
        def __init__(self) -> None:
            self._rw_lock = ReadWriteLock()

        @locked("read")
        def look(self) -> None:
            self.edit()

        @locked("write")
        def edit(self) -> None:
            """Edit."""

    with pytest.raises(RuntimeError, match="cannot take the write lock"):
        Model().look()
    assert Model.edit.__doc__ == "Edit." and Model.edit.__lock_mode__ == "write"
    with pytest.raises(ValueError, match="mode must be"):
        locked("sometimes")  # type: ignore[arg-type]


def test_every_public_method_of_asif_is_locked() -> None:
    public = [
        n
        for n, v in vars(ASIF).items()
        if callable(v) and not n.startswith("_") and not isinstance(v, staticmethod)
    ]
    unlocked = [n for n in public if not hasattr(getattr(ASIF, n), "__lock_mode__")]
    assert not unlocked, f"public ASIF methods without a @locked(...) line: {unlocked}"
    modes = {n: getattr(ASIF, n).__lock_mode__ for n in public}
    for name in ("add_anchors", "add_anchor_embeddings", "delete_anchors", "index", "reindex"):
        assert modes[name] == "write"
    for name in ("search", "search_batch", "embed_texts", "relative_from_embeddings"):
        assert modes[name] == "read"


def test_first_searches_of_a_reopened_catalog_in_parallel(model: ASIF) -> None:
    path = model.store.path  # type: ignore[attr-defined]
    model.close()
    errors: list[BaseException] = []
    for _ in range(5):
        with ASIF(
            path=path,
            image_encoder=ColorImageEncoder(),
            text_encoder=HashTextEncoder(),
            show_progress_bar=False,
        ) as asif:
            barrier = threading.Barrier(6)

            def first_search(asif: ASIF = asif, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                try:
                    asif.search("items", "red", limit=3)
                except BaseException as e:
                    errors.append(e)

            threads = [threading.Thread(target=first_search) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
    assert not errors, errors[:1]
