"""The benchmark script itself (benchmarks/run.py), in its seconds-long smoke version."""

from __future__ import annotations

import doctest

import benchmarks.bandwidth
import benchmarks.run
from asif_qdrant.anchor_index import exact_topk
from benchmarks.indexes import BASELINE_METHODS, METHODS
from benchmarks.run import OLD_BASELINE, PATHS, default_methods, smoke
from benchmarks.synthetic import clustered_embeddings
from tests.floats import assert_topk_match, dot_rounding


def test_paths_are_both_baselines_the_old_one_and_every_index():
    assert PATHS[:3] == ["official", "numpy", OLD_BASELINE]
    assert set(PATHS) == {OLD_BASELINE, *METHODS}
    assert len(PATHS) == len(set(PATHS))


def test_smoke_benchmark_baselines_are_exact_and_default_paths_meet_the_bar():
    """A seconds-long run of the benchmark: both honest baselines return the exact top-k (up
    to float32 near-ties), the default paths meet their recall and cosine bars.

    Speed is printed, not asserted (the CPU is shared); the full benchmark is
    ``python -m benchmarks.run``.
    """
    n, d, m = 30_000, 384, 32
    rows = smoke(n=n, d=d, m=m, keep=True)
    paths = {r["path"]: r for r in rows}
    assert set(paths) == {*BASELINE_METHODS, *default_methods(), OLD_BASELINE}
    anchors, queries = clustered_embeddings(n, d, n_queries=m, seed=3)  # smoke's data
    truth_ids, truth_sims = exact_topk(queries, anchors, 800)
    for method in BASELINE_METHODS:
        r = paths[method]
        assert_topk_match(truth_ids, truth_sims, r["ids"], r["sims"], tol=2 * dot_rounding(d))
        assert r["recall_mean"] >= 0.999 and r["cosine_mean"] >= 0.99999, r["path"]
    for method in default_methods():
        assert paths[method]["recall_mean"] >= 0.99, paths[method]["path"]
        assert paths[method]["cosine_mean"] >= 0.999, paths[method]["path"]
    assert max(paths[b]["x_baseline"] for b in BASELINE_METHODS) == 1.0
    print({r["path"]: (round(r["qps"], 1), round(r["x_baseline"], 2)) for r in rows})


def test_doctests():
    """best_baselines picks the faster baseline per batch size; the bandwidth limit."""
    for module in (benchmarks.run, benchmarks.bandwidth):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, (module.__name__, result)
