"""Every endpoint of the service, over HTTP, against the real served model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import swatch


def _png(rgb: tuple[int, int, int] = (200, 40, 40), size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(swatch(rgb, size=size)).save(buf, format="PNG")
    return buf.getvalue()


def test_health_ready_and_model(served):
    c = served.client
    assert c.get("/health").json() == {"status": "ok"}
    ready = c.get("/ready").json()
    assert ready["ready"] is True
    assert ready["encoders"] == {"text": "loaded", "image": "loaded"}
    info = c.get("/api/model").json()
    assert info["anchor_count"] == served.asif.anchor_count
    assert info["catalogs"]["stamps"] == len(served.items)
    assert info["k"] == 8
    assert c.get("/openapi.json").json()["info"]["title"] == "asif-qdrant"
    assert "swagger" in c.get("/docs").text.lower()


def test_text_search_matches_the_model(served):
    c = served.client
    body = {"query": "A red apple.", "limit": 5}
    got = c.post("/api/catalogs/stamps/search", json=body).json()
    want = served.asif.search("stamps", "A red apple.", limit=5)
    assert [h["id"] for h in got["hits"]] == [h.id for h in want]
    np.testing.assert_allclose(
        [h["score"] for h in got["hits"]], [h.score for h in want], rtol=1e-5
    )
    hit = got["hits"][0]
    assert hit["image_url"] == f"/api/images/catalogs/stamps/{hit['id']}"
    image = c.get(hit["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == Path(hit["payload"]["image"]).read_bytes()


def test_search_options_filter_min_score_modality(served):
    c = served.client
    category = served.items[0].metadata["category"]
    body = {"query": "An animal.", "limit": 16, "filter": {"category": category}}
    hits = c.post("/api/catalogs/stamps/search", json=body).json()["hits"]
    assert hits and all(h["payload"]["category"] == category for h in hits)
    everything = c.post("/api/catalogs/stamps/search", json={"query": "An animal.", "limit": 16})
    floor = everything.json()["hits"][1]["score"]
    body = {"query": "An animal.", "limit": 16, "min_score": floor}
    assert len(c.post("/api/catalogs/stamps/search", json=body).json()["hits"]) == 2
    body = {"query": "An animal.", "item_modality": "text"}
    assert c.post("/api/catalogs/stamps/search", json=body).json()["hits"] == []


def test_batch_search(served):
    queries = ["A red apple.", "A blue car."]
    got = served.client.post(
        "/api/catalogs/stamps/search/batch", json={"queries": queries, "limit": 3}
    ).json()
    want = served.asif.search_batch("stamps", queries, limit=3)
    assert [[h["id"] for h in r] for r in got["results"]] == [[h.id for h in r] for r in want]


def test_image_search_and_explain_image(served):
    c = served.client
    query = Path(served.items[3].image).read_bytes()
    got = c.post(
        "/api/catalogs/stamps/search/image",
        files={"image": ("q.png", query, "image/png")},
        data={"limit": "3"},
    ).json()
    assert got["hits"][0]["id"] == 3  # an item finds itself
    assert got["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    why = c.post(
        "/api/catalogs/stamps/explain/image",
        files={"image": ("q.png", query, "image/png")},
        data={"item_id": "3", "top": "4"},
    ).json()
    assert why["score"] == pytest.approx(got["hits"][0]["score"], abs=1e-4)
    assert len(why["anchors"]) == min(4, why["shared_anchors"])


def test_explain_json_and_png(served):
    c = served.client
    hit = c.post("/api/catalogs/stamps/search", json={"query": "A koala."}).json()["hits"][0]
    body = {"query": "A koala.", "item_id": hit["id"], "top": 3}
    why = c.post("/api/catalogs/stamps/explain", json=body).json()
    assert why["score"] == pytest.approx(hit["score"], abs=1e-4)
    assert sum(a["contribution"] for a in why["anchors"]) + why["rest"] == pytest.approx(
        why["score"], abs=1e-4
    )
    anchor = why["anchors"][0]
    image = c.get(anchor["image_url"])
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    png = c.post("/api/catalogs/stamps/explain.png", json=body)
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).format == "PNG"


def test_classify(served):
    got = served.client.post(
        "/api/classify",
        files={"image": ("q.png", _png((220, 30, 30)), "image/png")},
        data={"labels": "red, green,blue"},
    ).json()
    scores = served.asif.classify_scores([_png((220, 30, 30))], ["red", "green", "blue"])[0]
    assert got["label"] == ["red", "green", "blue"][int(np.argmax(scores))]
    assert list(got["scores"]) == ["red", "green", "blue"]
    np.testing.assert_allclose(list(got["scores"].values()), scores, rtol=1e-5, atol=1e-6)


def test_anchors_list_add_delete(served):
    c = served.client
    page = c.get("/api/anchors", params={"offset": 2, "limit": 3}).json()
    assert page["total"] == served.asif.anchor_count
    assert [a["id"] for a in page["anchors"]] == [2, 3, 4]
    assert page["anchors"][0]["caption"] == served.anchors[2].caption
    before = served.snapshot()
    spare = served.spare[0]
    added = c.post(
        "/api/anchors",
        files=[("images", ("a.png", Path(spare.image).read_bytes(), "image/png"))],
        data={"captions": [spare.caption]},
    ).json()
    (new_id,) = added["ids"]
    assert added["anchor_count"] == before["anchor_count"] + 1
    assert added["last_edit"]["operation"] == "add"
    kept = c.get(f"/api/images/anchors/{new_id}")  # the upload was kept: it has an image
    assert kept.status_code == 200 and kept.content == Path(spare.image).read_bytes()
    gone = c.delete("/api/anchors", params={"ids": [new_id]}).json()
    assert gone["deleted"] == 1 and gone["anchor_count"] == before["anchor_count"]


def test_index_texts_and_images(served):
    c = served.client
    got = c.post(
        "/api/catalogs/notes/items",
        json={"texts": ["A red apple.", "A blue car."], "payloads": [{"n": 1}, {"n": 2}]},
    ).json()
    assert got == {
        "collection": "notes",
        "ids": [0, 1],
        "items": 2,
        "added": 2,
        "already_present": 0,
        "replaced": 0,
    }
    again = c.post("/api/catalogs/notes/items", json={"texts": ["A red apple."]}).json()
    assert (again["ids"], again["added"], again["already_present"]) == ([0], 0, 1)
    hits = c.post("/api/catalogs/notes/search", json={"query": "A red apple.", "limit": 1})
    payload = hits.json()["hits"][0]["payload"]
    assert payload.pop("asif_key").startswith("text:")  # the content key that finds duplicates
    assert payload == {"modality": "text", "text": "A red apple.", "n": 1}
    got = c.post(
        "/api/catalogs/pictures/items/images",
        files=[("images", ("x.png", _png((30, 200, 40)), "image/png"))],
        data={"payloads": '[{"color": "green"}]'},
    ).json()
    assert got["items"] == 1
    hit = c.post(
        "/api/catalogs/pictures/search/image",
        files={"image": ("q.png", _png((30, 200, 40)), "image/png")},
    ).json()["hits"][0]
    assert hit["payload"]["color"] == "green"
    assert c.get(hit["image_url"]).headers["content-type"] == "image/png"


def test_page_and_static_files(served):
    c = served.client
    page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="query"' in page.text
    assert c.get("/static/app.js").headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    assert c.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_api_key(served):
    import httpx

    from tests.integration.service.conftest import API_KEY

    with httpx.Client(base_url=served.keyed_url) as c:
        assert c.get("/").status_code == 200  # the page itself holds no data
        ok = c.get("/api/model", headers={"X-API-Key": API_KEY})
        assert ok.status_code == 200
        assert c.get("/openapi.json", headers={"X-API-Key": API_KEY}).status_code == 200


def test_read_only_replica_refuses_edits(served):
    import httpx

    from asif_qdrant.service import create_app, serve_in_thread

    before = served.snapshot()
    with (
        serve_in_thread(create_app(served.asif, read_only=True, warm_up=False)) as url,
        httpx.Client(base_url=url) as c,
    ):
        assert c.post("/api/catalogs/stamps/search", json={"query": "A cat."}).status_code == 200
        for response in (
            c.delete("/api/anchors", params={"ids": [0]}),
            c.post("/api/catalogs/stamps/items", json={"texts": ["x"]}),
            c.post(
                "/api/anchors",
                files=[("images", ("a.png", _png(), "image/png"))],
                data={"captions": ["A red square."]},
            ),
        ):
            assert response.status_code == 403 and response.json()["error"] == "ReadOnly"
    assert served.snapshot() == before


def test_the_example_client_runs_against_the_service(served, monkeypatch, capsys):
    import runpy

    pytest.importorskip("langchain_asif_qdrant", reason="pip install -e integrations/langchain")
    example = Path(__file__).resolve().parents[3] / "examples" / "serve_client.py"
    for args in (["A red apple."], ["--image", served.items[2].image]):
        monkeypatch.setattr("sys.argv", ["serve_client.py", "--url", served.url, *args])
        runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "model 'asif'" in out and "langchain:" in out and "zero-shot:" in out
