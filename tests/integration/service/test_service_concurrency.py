"""Edits while searching: concurrent HTTP searches see the model before or after each edit."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np

QUERY = {"query": "A red apple.", "limit": 8}


def _result(response: httpx.Response) -> tuple[list[int], np.ndarray]:
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    return [h["id"] for h in hits], np.array([h["score"] for h in hits])


def _same(a: tuple[list[int], np.ndarray], b: tuple[list[int], np.ndarray]) -> bool:
    return a[0] == b[0] and np.allclose(a[1], b[1], rtol=1e-5, atol=1e-6)


def test_searches_never_see_half_an_edit(served):
    c = served.client
    spare = served.spare[1]
    image = Path(spare.image).read_bytes()
    files = [("images", ("a.png", image, "image/png"))]
    caption = {"captions": ["A red apple on a red plate."]}
    before = _result(c.post("/api/catalogs/stamps/search", json=QUERY))
    (first,) = c.post("/api/anchors", files=files, data=caption).json()["ids"]
    after = _result(c.post("/api/catalogs/stamps/search", json=QUERY))
    c.delete("/api/anchors", params={"ids": [first]})
    assert _same(_result(c.post("/api/catalogs/stamps/search", json=QUERY)), before)
    assert not _same(before, after)  # the edit changes this query's result

    seen: list[tuple[list[int], np.ndarray]] = []
    errors: list[str] = []
    stop = threading.Event()

    def searcher() -> None:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            while not stop.is_set():
                r = client.post("/api/catalogs/stamps/search", json=QUERY)
                if r.status_code != 200:
                    errors.append(r.text)
                else:
                    seen.append(_result(r))

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(4):  # add the pair, then delete it again, while the searches run
            (new,) = c.post("/api/anchors", files=files, data=caption).json()["ids"]
            assert c.delete("/api/anchors", params={"ids": [new]}).json()["deleted"] == 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert len(seen) > 20
    assert all(_same(r, before) or _same(r, after) for r in seen)
    assert _same(_result(c.post("/api/catalogs/stamps/search", json=QUERY)), before)
