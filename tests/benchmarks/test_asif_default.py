"""benchmarks/asif_default.py: the model's public path vs both baselines, at a small size."""

from __future__ import annotations

import json

from benchmarks import asif_default
from benchmarks.indexes import BASELINE_METHODS


def test_public_path_benchmark_runs_and_meets_the_bars(tmp_path):
    """Every anchor_search value and both baselines on one model: the exact paths give the
    exact vectors, the default meets its bars; the table and the JSON are written.

    Speed is printed, not asserted (the CPU is shared).
    """
    out = tmp_path / "r.json"
    model = tmp_path / "model"
    args = ["--sizes", "3000", "--dim", "64", "--k", "100", "--repeats", "1"]
    assert asif_default.main([*args, "--out", str(out), "--model", str(model)]) == 0
    run = json.loads(out.read_text())["runs"][0]
    rows = {r["path"]: r for r in run["rows"]}
    modes = {f"anchor_search={m}" for m in asif_default.MODES}
    assert set(rows) == {*BASELINE_METHODS, *modes}
    exact = [*BASELINE_METHODS, *(f"anchor_search={m}" for m in ("qdrant", "exact", "torch"))]
    for path in exact:
        assert rows[path]["recall_mean"] >= 0.999, rows[path]
        assert rows[path]["cosine_min"] >= 0.9999, rows[path]
    assert rows["anchor_search=auto"]["recall_mean"] >= 0.99
    assert rows["anchor_search=auto"]["cosine_mean"] >= 0.999
    assert max(rows[b]["x_baseline_batch1"] for b in BASELINE_METHODS) == 1.0
    assert "add_s" in run["setup"]
    # a second run reuses the kept model
    again = ["--modes", "auto", "--out", str(out), "--model", str(model)]
    assert asif_default.main([*args, *again]) == 0
    assert json.loads(out.read_text())["runs"][0]["setup"] == {"reused": str(model)}
    print({p: round(r["qps_batch64"], 1) for p, r in rows.items()})
