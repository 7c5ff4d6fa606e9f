"""Bad requests: each gets its documented 4xx, a JSON error naming the field, and no change."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.integration.service.conftest import API_KEY


def _png(size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _bomb() -> bytes:
    """A small PNG (about 60 kB) that decodes to 8000 x 6000 = 48 million pixels."""
    return _png((8000, 6000), "1")


def _image(data: bytes) -> dict[str, Any]:
    return {"files": {"image": ("q.png", data, "image/png")}}


SEARCH = "/api/catalogs/stamps/search"
IMAGE_SEARCH = "/api/catalogs/stamps/search/image"

#: (name, method, path, request keywords, status, field the error names)
BAD: list[tuple[str, str, str, dict[str, Any], int, str | None]] = [
    ("oversized upload", "POST", IMAGE_SEARCH, _image(b"\x89PNG" + b"0" * 2_000_000), 413, "image"),
    ("oversized body", "POST", IMAGE_SEARCH, _image(b"0" * 18_000_000), 413, "body"),
    ("not an image", "POST", IMAGE_SEARCH, _image(b"just some text, not a picture"), 415, "image"),
    ("empty upload", "POST", IMAGE_SEARCH, _image(b""), 422, "image"),
    ("decompression bomb", "POST", IMAGE_SEARCH, {"lazy": "bomb"}, 413, "image"),
    (
        "unknown collection",
        "POST",
        "/api/catalogs/nope/search",
        {"json": {"query": "x"}},
        404,
        "collection",
    ),
    (
        "bad collection name",
        "POST",
        "/api/catalogs/bad%20name!/search",
        {"json": {"query": "x"}},
        422,
        "collection",
    ),
    (
        "bad filter value",
        "POST",
        SEARCH,
        {"json": {"query": "x", "filter": {"a": {"b": 1}}}},
        422,
        "filter.a",
    ),
    (
        "filter not JSON",
        "POST",
        IMAGE_SEARCH,
        {**_image(_png()), "data": {"filter": "{nope"}},
        422,
        "filter",
    ),
    ("limit 0", "POST", SEARCH, {"json": {"query": "x", "limit": 0}}, 422, "limit"),
    ("limit huge", "POST", SEARCH, {"json": {"query": "x", "limit": 10**9}}, 422, "limit"),
    ("empty query", "POST", SEARCH, {"json": {"query": "   "}}, 422, "query"),
    ("unknown method", "POST", SEARCH, {"json": {"query": "x", "method": "magic"}}, 422, "method"),
    (
        "NaN min_score",
        "POST",
        SEARCH,
        {
            "content": b'{"query": "x", "min_score": NaN}',
            "headers": {"content-type": "application/json"},
        },
        422,
        "min_score",
    ),
    ("unknown field", "POST", SEARCH, {"json": {"query": "x", "limt": 3}}, 422, "limt"),
    (
        "CSA on a model without",
        "POST",
        SEARCH,
        {"json": {"query": "x", "method": "csa"}},
        422,
        None,
    ),
    (
        "explain unknown item",
        "POST",
        "/api/catalogs/stamps/explain",
        {"json": {"query": "x", "item_id": 999}},
        422,
        "item",
    ),
    (
        "item id not a point id",
        "POST",
        "/api/catalogs/stamps/explain",
        {"json": {"query": "x", "item_id": "../../etc/passwd"}},
        422,
        "item_id",
    ),
    (
        "path traversal, anchor image",
        "GET",
        "/api/images/anchors/..%2F..%2Fetc%2Fpasswd",
        {},
        404,
        None,
    ),
    (
        "path traversal, item image",
        "GET",
        "/api/images/catalogs/stamps/%2E%2E%2F%2E%2E%2Fetc",
        {},
        404,
        None,
    ),
    ("path traversal, static", "GET", "/static/..%2F..%2F..%2Fetc%2Fpasswd", {}, 404, None),
    ("point id '..'", "GET", "/api/images/catalogs/stamps/%2E%2E", {}, 422, "id"),
    ("point id a path", "GET", "/api/images/anchors/etc%5Cpasswd", {}, 422, "id"),
    ("image of an unknown item", "GET", "/api/images/catalogs/stamps/999", {}, 404, "id"),
    (
        "image of another collection",
        "GET",
        "/api/images/catalogs/asif_image_anchors/0",
        {},
        404,
        "id",
    ),
    ("delete unknown anchor", "DELETE", "/api/anchors", {"params": {"ids": [999]}}, 404, "ids"),
    ("delete no anchor", "DELETE", "/api/anchors", {}, 422, "ids"),
    (
        "captions do not match",
        "POST",
        "/api/anchors",
        {"files": [("images", ("a.png", _png(), "image/png"))], "data": {"captions": ["a", "b"]}},
        422,
        "captions",
    ),
    (
        "one label",
        "POST",
        "/api/classify",
        {**_image(_png()), "data": {"labels": "cat"}},
        422,
        "labels",
    ),
    (
        "payload sets the image path",
        "POST",
        "/api/catalogs/stamps/items",
        {"json": {"texts": ["x"], "payloads": [{"image": "/etc/passwd"}]}},
        422,
        "payloads",
    ),
    (
        "index into the model itself",
        "POST",
        "/api/catalogs/asif_meta/items",
        {"json": {"texts": ["x"]}},
        422,
        "collection",
    ),
    ("negative offset", "GET", "/api/anchors", {"params": {"offset": -1}}, 422, "offset"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "field"),
    [pytest.param(*row[1:], id=row[0]) for row in BAD],
)
def test_bad_input_is_a_4xx_that_changes_nothing(served, method, path, kwargs, status, field):
    before = served.snapshot()
    if kwargs.get("lazy") == "bomb":
        kwargs = _image(_bomb())
    response = served.client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "field"}
    assert body["message"] and "Traceback" not in body["message"]
    if field is not None:
        assert body["field"] == field, body
    assert served.snapshot() == before


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [({}, 401, "MissingAPIKey"), ({"X-API-Key": API_KEY[:-1] + "x"}, 403, "WrongAPIKey")],
    ids=["missing key", "wrong key"],
)
def test_api_key_refused(served, headers, status, error):
    before = served.snapshot()
    with httpx.Client(base_url=served.keyed_url) as c:
        for method, path in [
            ("GET", "/api/model"),
            ("GET", "/health"),
            ("GET", "/openapi.json"),
            ("DELETE", "/api/anchors?ids=0"),
            ("GET", "/api/images/anchors/0"),
        ]:
            response = c.request(method, path, headers=headers)
            assert response.status_code == status
            assert response.json()["error"] == error
            assert response.json()["field"] == "X-API-Key"
            assert API_KEY not in response.text
    assert served.snapshot() == before
