"""benchmarks/scale.py at toy sizes: every step runs and reports what it promises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.scale import main

pytest.importorskip("pyarrow")


def test_every_step_reports_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16)).astype(np.float32)
    np.save(tmp_path / "a.npy", a / np.linalg.norm(a, axis=1, keepdims=True))
    np.save(tmp_path / "q.npy", a[:8])
    data = ["--data", str(tmp_path / "a.npy")]

    def run(*args: str) -> dict:
        main([*args, *data])
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    built = run("build", "--path", str(tmp_path / "m"), "--n", "200", "--chunk", "64")
    assert built["anchors"] == 200
    q = run("query", "--path", str(tmp_path / "m"), "--queries", str(tmp_path / "q.npy"))
    assert q["anchors"] == 200 and q["text_anchor_matrix_mib"] > 0 and q["peak_rss_mib"] > 0
    assert q["index"].startswith("ExactIndex")
    again = run("query", "--path", str(tmp_path / "m"), "--queries", str(tmp_path / "q.npy"))
    assert again["anchors"] == 200  # the second open reads the anchor cache
    idx = run("index", "--path", str(tmp_path / "m"), "--n", "200", "--items", "100")
    assert idx["items"] == 100 and idx["split_s"]["relative"] > 0
    imp = run(
        "import",
        "--path",
        str(tmp_path / "i"),
        "--work",
        str(tmp_path),
        "--n",
        "150",
        "--chunk",
        "64",
    )
    assert imp["anchors"] == 150 and imp["pairs"] == 150
