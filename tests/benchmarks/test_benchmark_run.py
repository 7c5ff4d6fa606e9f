"""The benchmark script itself (benchmarks/run.py), in its seconds-long smoke version."""

from __future__ import annotations

from asif_qdrant.anchor_index import IVF_MIN_ANCHORS, choose_method
from benchmarks.indexes import METHODS
from benchmarks.run import PATHS, smoke

DEFAULTS = sorted({choose_method(10, device="cpu"), choose_method(IVF_MIN_ANCHORS, device="cpu")})


def test_paths_are_the_baseline_and_every_index():
    assert ["baseline", *METHODS] == PATHS


def test_smoke_benchmark_default_paths_meet_the_bar():
    """A seconds-long run of the benchmark: the default paths' recall and cosine bars.

    Speed is printed, not asserted (the CPU is shared); the full benchmark is
    ``python -m benchmarks.run``.
    """
    rows = smoke(n=30_000, d=384, m=32)
    paths = {r["path"]: r for r in rows}
    assert set(paths) >= {"baseline", *DEFAULTS}
    for method in DEFAULTS:
        assert paths[method]["recall_mean"] >= 0.99, paths[method]
        assert paths[method]["cosine_mean"] >= 0.999, paths[method]
    print({r["path"]: round(r["qps"], 1) for r in rows})
