"""Per-query ranks collected over folds, the metrics from them, and library == numpy checks.

:class:`Ranks` (retrieval and classification: greater/tied counts per query) and
:class:`ImageRanks` (image->image: AP, P@1, P@10 per relevance level); :func:`identity_note`
says how each library method agrees with its numpy version (:data:`LIBRARY_PAIRS`).

Example:
    >>> import numpy as np
    >>> r = Ranks()
    >>> r.add(np.array([[0.9, 0.1], [0.2, 0.8]]), [0, 1])
    >>> r.retrieval()["R@1"], r.accuracy()
    (1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asif_qdrant_evaluation.metrics import (
    SCORE_ROUNDING,
    SCORE_TOLERANCE,
    accuracy_from_counts,
    average_precision,
    mean_rank_from_counts,
    precision_at_k,
    rank_counts,
    recall_from_counts,
    tolerance_edge,
)

__all__ = [
    "LIBRARY_PAIRS",
    "RECALL_KS",
    "ImageRanks",
    "Ranks",
    "identity_figures",
    "identity_note",
    "library_pairs",
    "pair_key",
]

RECALL_KS = (1, 5, 10)


def _agreement(
    differs: np.ndarray | None,
    a: dict[Any, float],
    b: dict[Any, float],
    near_ties: np.ndarray | None = None,
) -> dict:
    """Queries compared, how many differ, and the largest difference of a figure (NaN skipped).

    A query whose ranks differ only where rounding may move a score across the tie tolerance
    (``near_ties``, :func:`~asif_qdrant_evaluation.metrics.tolerance_edge` on either side)
    is counted in ``near_ties``, not in ``differing``.
    """
    n = 0 if differs is None else len(differs)
    diff = max(abs(a[k] - b[k]) for k in a if a[k] == a[k])
    excused = np.zeros(n, bool) if near_ties is None or not n else differs & near_ties
    return {
        "queries": n,
        "differing": int((differs & ~excused).sum()) if n else 0,
        "near_ties": int(excused.sum()),
        "max_diff": float(diff),
    }


class Ranks:
    """Per-query (greater, tied) counts collected over folds, and the metrics from them."""

    def __init__(self) -> None:
        self.greater: list[np.ndarray] = []
        self.tied: list[np.ndarray] = []
        self.edge: list[np.ndarray] = []
        self.catalog_sizes: list[int] = []

    def add(self, scores: np.ndarray, targets: Sequence[int] | np.ndarray) -> None:
        """Count, per query (row), the items scoring above and tied with its target."""
        g, t = rank_counts(scores, targets, tolerance=SCORE_TOLERANCE)
        self.greater.append(g)
        self.tied.append(t)
        self.edge.append(tolerance_edge(scores, targets))
        self.catalog_sizes += [scores.shape[1]] * len(g)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(greater, tied)`` of every query so far."""
        return np.concatenate(self.greater), np.concatenate(self.tied)

    def retrieval(self) -> dict[str, float]:
        """Expected recall at each of :data:`RECALL_KS` and mean rank (ties at random)."""
        g, t = self.arrays()
        out = {f"R@{k}": recall_from_counts(g, t, k) for k in RECALL_KS}
        out["mean_rank"] = mean_rank_from_counts(g, t)
        return out

    def accuracy(self) -> float:
        """Expected top-1 accuracy (a tie for first place of ``t`` items counts ``1/t``)."""
        return accuracy_from_counts(*self.arrays())

    def chance_retrieval(self) -> dict[str, float]:
        """What random rankings of the same catalogs would score."""
        n = np.asarray(self.catalog_sizes, dtype=np.float64)
        out = {f"R@{k}": float(np.mean(np.minimum(k, n) / n)) for k in RECALL_KS}
        out["mean_rank"] = float(np.mean((n + 1) / 2))
        return out

    def same_as(self, other: Ranks) -> bool:
        """Whether every query ranks its target the same in both."""
        return self.agreement(other)["differing"] == 0

    def agreement(self, other: Ranks) -> dict[str, Any]:
        """How far two methods' per-query ranks agree: queries, differing, max figure diff."""
        g1, t1 = self.arrays()
        g2, t2 = other.arrays()
        a, b = self.retrieval(), other.retrieval()
        a["accuracy"], b["accuracy"] = self.accuracy(), other.accuracy()
        del a["mean_rank"]
        edge = np.concatenate(self.edge) | np.concatenate(other.edge)
        return _agreement((g1 != g2) | (t1 != t2), a, b, edge)


@dataclass
class ImageRanks:
    """Per-query AP, P@1 and P@10 per relevance level, collected over folds."""

    values: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)

    def add(self, scores: np.ndarray, relevant: dict[str, np.ndarray], valid: np.ndarray) -> None:
        """Score the queries (rows) against the ``relevant`` items of every level."""
        for level, rel in relevant.items():
            d = self.values.setdefault(level, {"AP": [], "P@1": [], "P@10": []})
            kw = {"valid": valid, "tolerance": SCORE_TOLERANCE}
            d["AP"].append(average_precision(scores, rel, **kw))
            d["P@1"].append(precision_at_k(scores, rel, 1, **kw))
            d["P@10"].append(precision_at_k(scores, rel, 10, **kw))

    def arrays(self, level: str, metric: str) -> np.ndarray:
        """Per-query values of ``metric`` (AP, P@1, P@10) at ``level`` (NaN: no relevant)."""
        return np.concatenate(self.values[level][metric])

    def summary(self) -> dict[str, dict[str, float]]:
        """Per level: mAP, P@1, P@10 over the queries with a relevant item, and their count."""
        out: dict[str, dict[str, float]] = {}
        for level in self.values:
            out[level] = {}
            for metric in ("AP", "P@1", "P@10"):
                a = self.arrays(level, metric)
                a = a[~np.isnan(a)]
                out[level]["mAP" if metric == "AP" else metric] = (
                    float(a.mean()) if a.size else float("nan")
                )
            out[level]["queries"] = int(a.size)
        return out

    def agreement(self, other: ImageRanks) -> dict[str, Any]:
        """Queries whose AP / P@k differ (beyond 1e-9), and the largest summary difference."""
        bad = None
        for lv in self.values:
            for m in ("AP", "P@1", "P@10"):
                x, y = np.nan_to_num(self.arrays(lv, m)), np.nan_to_num(other.arrays(lv, m))
                d = np.abs(x - y) > 1e-9
                bad = d if bad is None else bad | d
        a, b = self.summary(), other.summary()
        flat = {(lv, m): a[lv][m] for lv in a for m in a[lv]}
        return _agreement(bad, flat, {(lv, m): b[lv][m] for lv in b for m in b[lv]})


def identity_figures(same: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures of the library == numpy check: per comparison, equal or not, and the detail."""
    return {
        "library_equals_numpy": {k: v["differing"] == 0 for k, v in same.items()},
        "library_vs_numpy": same,
    }


def identity_note(same: dict[str, Any]) -> str:
    """One line on how the library paths agree with their numpy versions."""
    if not same:
        return "library vs numpy: not compared (one of them was not run)."
    pairs = ", ".join(f"{a} = {b}" for a, b in LIBRARY_PAIRS.items())
    detail = {k: v for k, v in same.items() if isinstance(v, dict)}
    bad = [k for k, v in same.items() if not (v["differing"] == 0 if isinstance(v, dict) else v)]
    if not bad:
        ties = sum(v.get("near_ties", 0) for v in detail.values())
        return (
            f"library path vs its numpy version ({pairs}): every per-query rank is identical, "
            f"so every figure is identical ({len(same)} comparisons)."
            if not ties
            else f"library path vs its numpy version ({pairs}): every per-query rank is "
            f"identical ({len(same)} comparisons) but for {ties} queries with a near-tie at "
            f"the tie tolerance (a score gap within {SCORE_ROUNDING:g} of {SCORE_TOLERANCE:g}, "
            "which float32 rounding may count as tied or not)."
        )
    if len(detail) != len(same):
        return f"library vs numpy: DIFFERENT ranks in {', '.join(bad)}."
    queries = sum(same[k]["queries"] for k in bad)
    differing = sum(same[k]["differing"] for k in bad)
    worst = max(same[k]["max_diff"] for k in bad)
    return (
        f"library path vs its numpy version ({pairs}): identical per-query ranks in "
        f"{len(same) - len(bad)} of {len(same)} comparisons; in the other {len(bad)} "
        f"({', '.join(bad)}), {differing} of {queries} queries rank some item differently; "
        f"the largest difference of a reported figure is {worst:.4f}. Causes: the library "
        "computes in float32 (Qdrant) and numpy in float64, so near-ties can order otherwise "
        "(an inverted query's k-th anchor, say); CSA's trailing canonical directions "
        "(correlations near 0) are ill-conditioned, so that rounding moves CSA scores by up "
        "to ~1e-2; and one swapped rank moves a hybrid's RRF score by a whole step."
    )


#: Each library method and its numpy version, which must give the same ranks.
LIBRARY_PAIRS: dict[str, str] = {"asif": "numpy", "csa": "csa-numpy", "hybrid": "hybrid-numpy"}


def library_pairs(methods: Sequence[str]) -> list[tuple[str, str]]:
    """The (library, numpy) method pairs both present in ``methods``."""
    return [(a, b) for a, b in LIBRARY_PAIRS.items() if a in methods and b in methods]


def pair_key(lib: str, key: str) -> str:
    """The key of a comparison: ``key`` for ASIF, ``"csa: key"`` for the others."""
    return key if lib == "asif" else f"{lib}: {key}"
