"""Helpers of ``asif-qdrant anchors``: reading a labeled set for ``anchors audit``."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from PIL import Image

from asif_qdrant.cli.anchors import load_labeled


def test_labeled_set_loaders(tmp_path: Path) -> None:
    for label in ("cats", "dogs"):
        (tmp_path / "set" / label / "deep").mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "set" / label / "deep" / f"{label}.png")
    (tmp_path / "set" / "notes.txt").write_text("not a label folder")
    rows = load_labeled(tmp_path / "set", None)
    assert [(Path(p).name, lab) for p, lab in rows] == [("cats.png", "cats"), ("dogs.png", "dogs")]
    csv_file = tmp_path / "set.csv"
    csv_file.write_text("image,label\nset/cats/deep/cats.png,cats\n/abs/x.png,dogs\n")
    rows = load_labeled(None, csv_file)
    assert rows == [(str(tmp_path / "set/cats/deep/cats.png"), "cats"), ("/abs/x.png", "dogs")]
    (tmp_path / "bad.csv").write_text("path,class\nx.png,a\n")
    with pytest.raises(click.UsageError, match="'image' and 'label' columns"):
        load_labeled(None, tmp_path / "bad.csv")
    with pytest.raises(click.UsageError, match="exactly one"):
        load_labeled(None, None)
