"""What ``search`` and ``classify`` ask of the model, and how they print it (a stand-in model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from asif_qdrant import CollectionNotFoundError, Hit
from asif_qdrant.cli import main
from asif_qdrant.cli.common import ModelOptions


class StandIn:
    """The part of ASIF the commands use; records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def search(self, collection: str, query: Any, options: Any = None, **fields: Any) -> list:
        self.calls.append(("search", (collection, query), fields))
        if collection == "missing":
            raise CollectionNotFoundError("The collection 'missing' does not exist.")
        return [Hit(7, 0.5, {"caption": "a red car"}), Hit("x", 0.25, {"text": "a bus"})]

    def classify_scores(self, images: list, labels: list, **kwargs: Any) -> np.ndarray:
        self.calls.append(("classify_scores", (images, labels), kwargs))
        return np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]], dtype=np.float32)[: len(images)]


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    stand_in = StandIn()
    opened: list[ModelOptions] = []

    def fake_open(self: ModelOptions, **settings: Any) -> StandIn:
        opened.append(self)
        return stand_in

    monkeypatch.setattr(ModelOptions, "open", fake_open)
    stand_in.opened = opened  # type: ignore[attr-defined]
    return stand_in


@pytest.mark.parametrize("flag", ["--item-modality", "--modality"])
def test_search_filters_catalog_items_by_modality(model: StandIn, flag: str) -> None:
    out = CliRunner().invoke(main, ["search", "cat", "red car", flag, "image", "--json", "-q"])
    assert out.exit_code == 0, out.output
    ((_, args, fields),) = model.calls
    assert args == ("cat", "red car") and fields["item_modality"] == "image"
    assert fields["limit"] == 10 and fields["method"] == "asif"
    assert json.loads(out.stdout)["hits"][1] == {
        "id": "x",
        "score": 0.25,
        "payload": {"text": "a bus"},
    }
    opened = model.opened[0]  # type: ignore[attr-defined]
    assert (opened.name, opened.as_json, opened.quiet, opened.path) == ("asif", True, True, None)


def test_search_text_output_and_errors(model: StandIn) -> None:
    out = CliRunner().invoke(main, ["search", "cat", "red car", "--name", "m"])
    assert out.exit_code == 0
    assert out.output.splitlines() == ["  0.5000       7  a red car", "  0.2500       x  a bus"]
    assert model.calls[0][2]["item_modality"] is None
    out = CliRunner().invoke(main, ["search", "missing", "red car", "--json"])
    assert out.exit_code == 1
    assert json.loads(out.stdout) == {
        "error": "CollectionNotFoundError",
        "message": "The collection 'missing' does not exist.",
    }
    out = CliRunner().invoke(main, ["search", "missing", "red car"])
    assert out.exit_code == 1 and "Error: CollectionNotFoundError: The collection" in out.output
    out = CliRunner().invoke(main, ["search", "cat"])
    assert out.exit_code == 2 and "Give a text QUERY or --image PATH" in out.output


def test_classify_predicts_the_best_scored_label(model: StandIn, tmp_path: Path) -> None:
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    for image in images:
        image.write_bytes(b"not read by the stand-in")
    args = ["classify", *map(str, images), "--labels", "cat, dog,,bird", "--json"]
    out = CliRunner().invoke(main, [*args, "--template", "a {}.", "--method", "hybrid"])
    assert out.exit_code == 0, out.output
    ((_, (paths, labels), kwargs),) = model.calls
    assert paths == [str(x) for x in images] and labels == ["cat", "dog", "bird"]
    assert kwargs == {
        "templates": ["a {}."],
        "template_strategy": "mean-embedding",
        "method": "hybrid",
    }
    rows = json.loads(out.stdout)["predictions"]
    assert [r["label"] for r in rows] == ["dog", "cat"]
    assert rows[1]["scores"] == pytest.approx({"cat": 0.5, "dog": 0.1, "bird": 0.4})
