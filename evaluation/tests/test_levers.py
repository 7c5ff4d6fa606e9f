"""The levers task's recipes against direct formulas: centring, label-free k/p, "no match"."""

from __future__ import annotations

import numpy as np

from asif_qdrant_evaluation.levers import Side, anchor_mean, calibrate, centre, select_kp


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def relative(q: np.ndarray, a: np.ndarray, k: int, p: float) -> np.ndarray:
    """The ASIF recipe written out: cosine, top k, clamp, power, L2-normalise (dense)."""
    s = unit(q) @ unit(a).T
    out = np.zeros_like(s)
    for i, row in enumerate(s):
        top = np.argsort(-row, kind="stable")[:k]
        w = np.clip(row[top], 0, None) ** p
        out[i, top] = w / np.linalg.norm(w) if w.any() else 0.0
    return out


def test_centring_subtracts_the_mean_unit_anchor() -> None:
    rng = np.random.default_rng(0)
    a, q = rng.normal(size=(30, 5)) + 2.0, rng.normal(size=(4, 5)) + 2.0
    mu = unit(a).mean(axis=0)
    np.testing.assert_allclose(anchor_mean(a), mu)
    np.testing.assert_allclose(centre(q, mu), unit(unit(q) - mu))
    np.testing.assert_allclose(centre(q, None), unit(q))
    side = Side(a, True)
    got = side.top(q).dense(7, 3.0)
    want = relative(unit(unit(q) - mu), unit(unit(a) - mu), 7, 3.0)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_label_free_selection_equals_a_direct_search() -> None:
    rng = np.random.default_rng(1)
    img, txt = rng.normal(size=(60, 6)), rng.normal(size=(60, 4))
    txt[:, :2] += img[:, :2]  # the two sides share something
    grid = [(5, 1.0), (10, 4.0), (40, 8.0)]
    best, curve = select_kp(img, txt, False, splits=2, seed=3, grid=grid)
    want = dict.fromkeys(grid, 0.0)
    perm_rng = np.random.default_rng(3)
    for _ in range(2):
        perm = perm_rng.permutation(60)
        h, a = perm[:12], perm[12:]
        for k, p in grid:
            s = relative(img[h], img[a], k, p) @ relative(txt[h], txt[a], k, p).T
            for scores in (s, s.T):  # each row's target is its own index
                gt = (scores > np.diag(scores)[:, None] + 1e-6).sum(axis=1)
                eq = (np.abs(scores - np.diag(scores)[:, None]) <= 1e-6).sum(axis=1)
                want[(k, p)] += float(np.mean((gt == 0) / eq)) / 4
    for g in grid:
        assert abs(curve[g] - want[g]) < 1e-9, (g, curve[g], want[g])
    assert best == max(grid, key=lambda g: (round(want[g], 9), -g[0], -g[1]))


def test_calibration_is_the_leave_one_out_best_cosine() -> None:
    rng = np.random.default_rng(2)
    t = rng.normal(size=(25, 5))
    s = unit(t) @ unit(t).T
    np.fill_diagonal(s, -np.inf)
    np.testing.assert_allclose(calibrate(t), np.sort(s.max(axis=1)))
