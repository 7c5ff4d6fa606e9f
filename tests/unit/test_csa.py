"""CSA math (asif_qdrant.csa) against direct numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest

from asif_qdrant.csa import CSA, default_sim_dim, fit_csa
from asif_qdrant.errors import InvalidInputError, InvalidParameterError


def _pairs(n: int = 400, d1: int = 10, d2: int = 7, latent: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, latent))
    x1 = z @ rng.normal(size=(latent, d1)) + 0.3 * rng.normal(size=(n, d1)) + 2.0
    x2 = z @ rng.normal(size=(latent, d2)) + 0.3 * rng.normal(size=(n, d2)) - 1.0
    return x1, x2


def _eps(x: np.ndarray, ridge: float) -> float:
    z = x - x.mean(axis=0)
    return ridge * float(np.trace(z.T @ z / len(x))) / x.shape[1]


def test_cross_covariance_of_projected_anchors_is_diag_rho() -> None:
    x1, x2 = _pairs()
    csa = fit_csa(x1, x2, sim_dim=7, ridge=1e-2)
    p1 = (x1 - csa.mean_image) @ csa.proj_image.T
    p2 = (x2 - csa.mean_text) @ csa.proj_text.T
    cross = p1.T @ p2 / len(x1)
    np.testing.assert_allclose(cross, np.diag(csa.rho), atol=1e-10)
    assert np.all(np.diff(csa.rho) <= 0) and np.all((csa.rho >= 0) & (csa.rho <= 1))


def test_projections_are_whitened_up_to_the_ridge() -> None:
    x1, x2 = _pairs()
    ridge = 1e-2
    csa = fit_csa(x1, x2, sim_dim=7, ridge=ridge)
    for x, proj, mean in ((x1, csa.proj_image, csa.mean_image), (x2, csa.proj_text, csa.mean_text)):
        p = (x - mean) @ proj.T
        cov = p.T @ p / len(x)
        # Exactly: A C A^T = I - eps A A^T (the ridge is the only departure from identity).
        np.testing.assert_allclose(cov, np.eye(7) - _eps(x, ridge) * proj @ proj.T, atol=1e-10)
    # With a tiny ridge the projections are decorrelated with unit variance.
    tiny = fit_csa(x1, x2, sim_dim=7, ridge=1e-8)
    for x, proj, mean in (
        (x1, tiny.proj_image, tiny.mean_image),
        (x2, tiny.proj_text, tiny.mean_text),
    ):
        p = (x - mean) @ proj.T
        np.testing.assert_allclose(p.T @ p / len(x), np.eye(7), atol=1e-6)


def test_canonical_correlations_of_projected_anchors_equal_rho() -> None:
    x1, x2 = _pairs(n=2000)
    csa = fit_csa(x1, x2, sim_dim=7, ridge=1e-9)
    p1 = (x1 - csa.mean_image) @ csa.proj_image.T
    p2 = (x2 - csa.mean_text) @ csa.proj_text.T
    corr = [np.corrcoef(p1[:, j], p2[:, j])[0, 1] for j in range(7)]
    np.testing.assert_allclose(corr, csa.rho, atol=1e-6)
    assert csa.rho[0] > 0.9 and csa.rho[-1] < 0.2  # 4 shared latent dims, 3 noise dims


def test_rho_matches_the_classical_cca_eigenproblem() -> None:
    # Direct formula: rho^2 are the eigenvalues of C11^-1 C12 C22^-1 C21 (Hotelling).
    x1, x2 = _pairs(n=1500)
    csa = fit_csa(x1, x2, sim_dim=7, ridge=1e-10)
    z1, z2 = x1 - x1.mean(0), x2 - x2.mean(0)
    c11, c22, c12 = z1.T @ z1, z2.T @ z2, z1.T @ z2
    m = np.linalg.solve(c11, c12) @ np.linalg.solve(c22, c12.T)
    eig = np.sort(np.linalg.eigvals(m).real)[::-1][:7]
    np.testing.assert_allclose(csa.rho**2, eig, atol=1e-7)


def test_svd_identity_against_matrix_square_roots() -> None:
    # S1 C12 S2 = U diag(rho) V^T with S = (C + eps I)^(-1/2) built by a direct numpy route.
    x1, x2 = _pairs(n=300, d1=6, d2=5)
    ridge = 0.05
    csa = fit_csa(x1, x2, sim_dim=5, ridge=ridge)
    z1, z2 = x1 - x1.mean(0), x2 - x2.mean(0)
    n = len(x1)

    def inv_sqrt(c: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(c)
        return v @ np.diag(w**-0.5) @ v.T

    s1 = inv_sqrt(z1.T @ z1 / n + _eps(x1, ridge) * np.eye(6))
    s2 = inv_sqrt(z2.T @ z2 / n + _eps(x2, ridge) * np.eye(5))
    np.testing.assert_allclose(
        s1 @ s1 @ (z1.T @ z1 / n + _eps(x1, ridge) * np.eye(6)), np.eye(6), atol=1e-9
    )
    m = s1 @ (z1.T @ z2 / n) @ s2
    np.testing.assert_allclose(np.linalg.svd(m, compute_uv=False), csa.rho, atol=1e-10)
    # A = U^T S1, B = V^T S2: A^T rho B reproduces S1 (S1 M S2) S2 restricted to kept dims.
    u = csa.proj_image @ np.linalg.inv(s1)  # rows = U^T
    v = csa.proj_text @ np.linalg.inv(s2)  # rows = V^T
    np.testing.assert_allclose(u.T @ np.diag(csa.rho) @ v, m, atol=1e-9)
    np.testing.assert_allclose(u @ u.T, np.eye(5), atol=1e-9)


def test_truncation_keeps_the_leading_directions() -> None:
    x1, x2 = _pairs()
    full = fit_csa(x1, x2, sim_dim=7)
    small = fit_csa(x1, x2, sim_dim=3)
    np.testing.assert_allclose(small.rho, full.rho[:3], atol=1e-12)
    # Directions are defined up to a joint sign per component.
    sign = np.sign(np.sum(small.proj_image * full.proj_image[:3], axis=1))
    np.testing.assert_allclose(small.proj_image, sign[:, None] * full.proj_image[:3], atol=1e-8)
    np.testing.assert_allclose(small.proj_text, sign[:, None] * full.proj_text[:3], atol=1e-8)


def test_transform_and_similarity_follow_the_formula() -> None:
    x1, x2 = _pairs()
    csa = fit_csa(x1, x2, sim_dim=4)
    a = csa.transform(x1[:5], "image")
    b = csa.transform(x2[:6], "text")
    assert a.shape == (5, 4) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    raw = (x1[:5] - csa.mean_image) @ csa.proj_image.T
    np.testing.assert_allclose(a, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    expect = (a.astype(np.float64) * csa.rho) @ b.T.astype(np.float64)
    np.testing.assert_allclose(csa.similarity(x1[:5], "image", x2[:6], "text"), expect, atol=1e-6)
    plain = csa.similarity(x1[:5], "image", x2[:6], "text", weighted=False)
    np.testing.assert_allclose(plain, a.astype(np.float64) @ b.T, atol=1e-6)
    np.testing.assert_allclose(csa.query_vectors(x1[:5], "image") @ b.T, expect, atol=1e-5)
    # Paired anchors score higher than unpaired ones, on average.
    s = csa.similarity(x1[:50], "image", x2[:50], "text")
    assert np.mean(np.diag(s)) > np.mean(s) + 0.3
    # A single vector is accepted as one row.
    assert csa.transform(x1[0], "image").shape == (1, 4)


def test_relative_ridge_is_scale_invariant() -> None:
    x1, x2 = _pairs()
    a = fit_csa(x1, x2, sim_dim=5)
    b = fit_csa(1000.0 * x1, 0.001 * x2, sim_dim=5)
    np.testing.assert_allclose(a.rho, b.rho, atol=1e-9)
    np.testing.assert_allclose(
        a.similarity(x1[:4], "image", x2[:4], "text"),
        b.similarity(1000.0 * x1[:4], "image", 0.001 * x2[:4], "text"),
        atol=1e-5,
    )


def test_more_dims_than_anchors_is_regularised() -> None:
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=(20, 64)), rng.normal(size=(20, 48))
    csa = fit_csa(x1, x2)
    assert csa.sim_dim == 10 == default_sim_dim(20, 64, 48)
    assert np.all(np.isfinite(csa.proj_image)) and np.all(csa.rho < 1.0)
    assert fit_csa(x1, x2, sim_dim=20).sim_dim == 20


def test_dataclass_shapes() -> None:
    x1, x2 = _pairs()
    csa = fit_csa(x1, x2, sim_dim=2)
    assert isinstance(csa, CSA)
    assert csa.mean_image.shape == (10,) and csa.mean_text.shape == (7,)
    assert csa.proj_image.shape == (2, 10) and csa.proj_text.shape == (2, 7)
    assert csa.dim("image") == 10 and csa.dim("text") == 7
    with pytest.raises(AttributeError):
        csa.rho = np.zeros(2)  # type: ignore[misc]


@pytest.mark.parametrize("sim_dim", [0, -1, 8, 1.5, True, "3"])
def test_bad_sim_dim(sim_dim: object) -> None:
    x1, x2 = _pairs()
    with pytest.raises(
        InvalidParameterError, match=r"'sim_dim' parameter of fit_csa must be an int in 1\.\.7"
    ):
        fit_csa(x1, x2, sim_dim=sim_dim)  # type: ignore[arg-type]


@pytest.mark.parametrize("ridge", [0, -1e-3, float("nan"), "1"])
def test_bad_ridge(ridge: object) -> None:
    x1, x2 = _pairs()
    with pytest.raises(InvalidParameterError, match="'ridge' parameter of fit_csa"):
        fit_csa(x1, x2, ridge=ridge)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    x1, x2 = _pairs()
    with pytest.raises(InvalidInputError, match="same number of rows"):
        fit_csa(x1, x2[:-1])
    with pytest.raises(InvalidInputError, match="at least 2 anchor pairs"):
        fit_csa(x1[:1], x2[:1])
    bad = x1.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InvalidInputError, match="Row 3"):
        fit_csa(bad, x2)
    with pytest.raises(InvalidInputError, match="2-D"):
        fit_csa(x1[0], x2[0])
    csa = fit_csa(x1, x2, sim_dim=2)
    with pytest.raises(InvalidInputError, match="dim 10"):
        csa.transform(x2, "image")
    with pytest.raises(InvalidParameterError, match="'image' or 'text'"):
        csa.transform(x1, "audio")  # type: ignore[arg-type]
