"""Canonical similarity analysis (CSA): pure numpy, no Qdrant.

CSA (ICLR 2025, UTAustin-SwarmLab/Multi-modal-Data-Alignment) aligns two frozen unimodal
encoders with a closed-form canonical correlation analysis of the anchor pairs:

1. centre each side on its anchor mean: ``Z1 = X1 - m1`` (n x d_img), ``Z2 = X2 - m2``;
2. whiten each side with a ridge: ``S1 = (C11 + eps1 I)^(-1/2)`` with ``C11 = Z1^T Z1 / n``,
   likewise ``S2``;
3. SVD of the whitened cross-covariance ``S1 C12 S2 = U diag(rho) V^T`` with
   ``C12 = Z1^T Z2 / n``;
4. canonical directions ``A = U^T S1`` and ``B = V^T S2`` (rows), keep the first ``sim_dim``;
5. a new item ``x`` is mapped to ``A (x - m1)`` (image) or ``B (x - m2)`` (text), then
   L2-normalised; the similarity of two mapped items is ``sum_j rho_j a_j b_j``.

Ridge: ``ridge`` is *relative*: ``eps = ridge * trace(C) / d``, i.e. a fraction of the mean
variance of that side, so the same value works whatever the scale of the embeddings. Both sides
get a ridge (the reference code has none on one side, which is singular when d > n); the
reference's ``U S1`` is written here as the transpose ``U^T S1``, the canonical directions.

With these definitions the projected anchors satisfy exactly
``A C12 B^T = diag(rho)`` (their cross-covariance is diagonal with the canonical correlations)
and ``A C11 A^T = I - eps1 A A^T`` (identity up to the ridge).

Example:
    >>> import numpy as np
    >>> from asif_qdrant.csa import fit_csa
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(200, 4))
    >>> img = latent @ rng.normal(size=(4, 12)) + 0.1 * rng.normal(size=(200, 12))
    >>> txt = latent @ rng.normal(size=(4, 8)) + 0.1 * rng.normal(size=(200, 8))
    >>> csa = fit_csa(img, txt, sim_dim=4)
    >>> csa.sim_dim, bool(csa.rho[0] > 0.95)
    (4, True)
    >>> s = csa.similarity(img[:3], "image", txt[:3], "text")
    >>> s.shape, [int(i) for i in s.argmax(axis=1)]
    ((3, 3), [0, 1, 2])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asif_qdrant.errors import (
    InvalidInputError,
    InvalidParameterError,
    check_int,
    check_matrix,
    check_one_of,
    check_real,
)
from asif_qdrant.relative import l2_normalize
from asif_qdrant.types import MODALITIES, Modality

__all__ = ["CSA", "Modality", "default_sim_dim", "fit_csa"]


#: Default relative ridge (a fraction of each side's mean variance): the best of a held-out sweep
#: on the evaluation's anchor pool (docs/RESULTS.md, task csa).
DEFAULT_RIDGE = 0.1


def default_sim_dim(n_anchors: int, d_image: int, d_text: int) -> int:
    """The ``sim_dim`` used when none is given: ``min(d_image, d_text, n_anchors // 2)``, >= 1.

    Half the anchor count keeps the directions whose correlations are estimated from at least
    two samples per dimension (the trailing ones of a small anchor set are noise fitted to 1).

    Example:
        >>> default_sim_dim(1000, 1280, 384), default_sim_dim(100, 1280, 384)
        (384, 50)
    """
    return max(1, min(int(d_image), int(d_text), int(n_anchors) // 2))


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    """``c^(-1/2)`` of a symmetric positive definite matrix (eigendecomposition)."""
    w, v = np.linalg.eigh(c)
    w = np.clip(w, np.finfo(np.float64).tiny, None)
    return (v / np.sqrt(w)) @ v.T


@dataclass(frozen=True, eq=False)
class CSA:
    """A fitted CSA model (see :func:`fit_csa`).

    Attributes:
        mean_image: ``(d_img,)`` mean of the image anchors.
        mean_text: ``(d_txt,)`` mean of the text anchors.
        proj_image: ``(sim_dim, d_img)``: rows are the canonical directions ``A = U^T S1``.
        proj_text: ``(sim_dim, d_txt)``: rows are the canonical directions ``B = V^T S2``.
        rho: ``(sim_dim,)`` canonical correlations, descending, in [0, 1].
    """

    mean_image: np.ndarray
    mean_text: np.ndarray
    proj_image: np.ndarray
    proj_text: np.ndarray
    rho: np.ndarray

    @property
    def sim_dim(self) -> int:
        """The number of canonical directions kept."""
        return int(self.rho.shape[0])

    def dim(self, modality: Modality) -> int:
        """The input embedding dim of one modality."""
        modality = check_one_of("CSA.dim", "modality", modality, MODALITIES)
        return int((self.proj_image if modality == "image" else self.proj_text).shape[1])

    def padded(self, sim_dim: int) -> CSA:
        """The same model with zero directions (``rho = 0``) appended up to ``sim_dim``.

        Transformed vectors and similarities are unchanged; a store whose vector size is
        fixed keeps it when the anchor set is too small for that many directions.

        Example:
            >>> import numpy as np
            >>> csa = fit_csa(np.eye(4), np.eye(4), sim_dim=2).padded(5)
            >>> csa.sim_dim, csa.rho[2:].tolist()
            (5, [0.0, 0.0, 0.0])
        """
        extra = check_int("sim_dim", "CSA.padded", sim_dim, minimum=self.sim_dim) - self.sim_dim
        if extra == 0:
            return self
        return CSA(
            mean_image=self.mean_image,
            mean_text=self.mean_text,
            proj_image=np.vstack([self.proj_image, np.zeros((extra, self.proj_image.shape[1]))]),
            proj_text=np.vstack([self.proj_text, np.zeros((extra, self.proj_text.shape[1]))]),
            rho=np.concatenate([self.rho, np.zeros(extra)]),
        )

    def project(self, x: np.ndarray, modality: Modality) -> np.ndarray:
        """``P (x - mean)`` without normalisation: ``(n, sim_dim)`` ``float64``.

        Example:
            >>> import numpy as np
            >>> csa = fit_csa(np.eye(4), np.eye(4)[::-1], sim_dim=2)
            >>> csa.project(np.eye(4), "image").shape
            (4, 2)
        """
        modality = check_one_of("CSA.project", "modality", modality, MODALITIES)
        proj, mean = (
            (self.proj_image, self.mean_image)
            if modality == "image"
            else (self.proj_text, self.mean_text)
        )
        arr = check_matrix(x, "x", dim=proj.shape[1], allow_1d=True).astype(np.float64)
        return (arr - mean) @ proj.T

    def transform(self, x: np.ndarray, modality: Modality) -> np.ndarray:
        """Map embeddings into the canonical space: L2-normalised rows of ``P (x - mean)``.

        Args:
            x: ``(n, d)`` (or ``(d,)``) embeddings of ``modality``.
            modality: ``"image"`` (uses ``proj_image``) or ``"text"`` (uses ``proj_text``).

        Returns:
            ``(n, sim_dim)`` ``float32`` unit rows (a row equal to the mean stays zero).

        Example:
            >>> import numpy as np
            >>> csa = fit_csa(np.eye(4), np.eye(4)[::-1], sim_dim=2)
            >>> t = csa.transform(np.eye(4), "text")
            >>> t.shape, [round(float(v), 4) for v in np.linalg.norm(t, axis=1)]
            ((4, 2), [1.0, 1.0, 1.0, 1.0])
        """
        return l2_normalize(self.project(x, modality))

    def weights(self, *, weighted: bool = True) -> np.ndarray:
        """The per-dimension similarity weights: ``rho`` or all ones (``float32``)."""
        return (self.rho if weighted else np.ones_like(self.rho)).astype(np.float32)

    def query_vectors(
        self, x: np.ndarray, modality: Modality, *, weighted: bool = True
    ) -> np.ndarray:
        """Query vectors ``transform(x) * rho`` (or ``* 1`` if not ``weighted``).

        Their dot product with stored :meth:`transform` rows is the CSA similarity.

        Example:
            >>> import numpy as np
            >>> csa = fit_csa(np.eye(4), np.eye(4)[::-1], sim_dim=2)
            >>> q = csa.query_vectors(np.eye(4)[:1], "image")
            >>> bool(np.allclose(q @ csa.transform(np.eye(4), "text").T,
            ...                  csa.similarity(np.eye(4)[:1], "image", np.eye(4), "text")))
            True
        """
        return (self.transform(x, modality) * self.weights(weighted=weighted)).astype(np.float32)

    def similarity(
        self,
        a: np.ndarray,
        a_modality: Modality,
        b: np.ndarray,
        b_modality: Modality,
        *,
        weighted: bool = True,
    ) -> np.ndarray:
        """CSA similarity ``sum_j rho_j a_j b_j`` of transformed rows.

        With ``weighted=False`` every ``rho_j`` is replaced by 1.

        Args:
            a: ``(n_a, d)`` embeddings of ``a_modality``.
            a_modality: ``"image"`` or ``"text"``.
            b: ``(n_b, d)`` embeddings of ``b_modality``.
            b_modality: ``"image"`` or ``"text"``.
            weighted: Weight each canonical dimension by its correlation (the CSA default);
                ``False`` gives the plain cosine in the canonical space.

        Returns:
            ``(n_a, n_b)`` ``float64`` similarities.

        Example:
            >>> import numpy as np
            >>> csa = fit_csa(np.eye(4), np.eye(4), sim_dim=3)
            >>> s = csa.similarity(np.eye(4), "image", np.eye(4), "text", weighted=False)
            >>> [round(float(v), 4) for v in np.diag(s)]
            [1.0, 1.0, 1.0, 1.0]
        """
        ta = self.transform(a, a_modality).astype(np.float64)
        tb = self.transform(b, b_modality).astype(np.float64)
        w = self.weights(weighted=weighted).astype(np.float64)
        return (ta * w) @ tb.T


def fit_csa(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    *,
    sim_dim: int | None = None,
    ridge: float = DEFAULT_RIDGE,
) -> CSA:
    """Fit CSA on paired anchor embeddings (row i of each side is the same anchor pair).

    Cost: two ``d x d`` eigendecompositions, one ``d_img x d_txt`` SVD and ``O(n d^2)`` for the
    covariances: seconds for ``d_img = 1280``, ``d_txt = 384``.

    Args:
        image_embeddings: ``(n, d_img)`` image anchor embeddings.
        text_embeddings: ``(n, d_txt)`` text anchor embeddings, the same ``n`` rows.
        sim_dim: How many canonical directions to keep, in ``1..min(d_img, d_txt, n)``.
            ``None``: :func:`default_sim_dim`, ``min(d_img, d_txt, n // 2)`` (at least 1).
        ridge: Relative ridge > 0: each side's covariance gets ``ridge * trace(C) / d`` added
            to its diagonal before whitening (``trace(C) / d`` is the mean variance).

    Returns:
        The fitted :class:`CSA`.

    Raises:
        InvalidParameterError: If ``sim_dim`` is out of range or ``ridge`` <= 0.
        InvalidInputError: If the arrays are not 2-D, finite, with the same row count >= 2.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 5))
        >>> csa = fit_csa(x, y, sim_dim=3)
        >>> csa.proj_image.shape, csa.proj_text.shape, bool(np.all(np.diff(csa.rho) <= 0))
        ((3, 6), (3, 5), True)
    """
    x1 = check_matrix(image_embeddings, "image_embeddings").astype(np.float64)
    x2 = check_matrix(text_embeddings, "text_embeddings").astype(np.float64)
    if x1.shape[0] != x2.shape[0]:
        raise InvalidInputError(
            "'image_embeddings' and 'text_embeddings' must have the same number of rows "
            f"(one per anchor pair). Got {x1.shape[0]} and {x2.shape[0]}."
        )
    n, d1 = x1.shape
    d2 = x2.shape[1]
    if n < 2:
        raise InvalidInputError(f"fit_csa needs at least 2 anchor pairs. Got {n}.")
    if d1 == 0 or d2 == 0:
        raise InvalidInputError(f"fit_csa needs embeddings of dim >= 1. Got {d1} and {d2}.")
    hi = min(d1, d2, n)
    if sim_dim is None:
        sim_dim = default_sim_dim(n, d1, d2)
    allowed = (
        f"The 'sim_dim' parameter of fit_csa must be an int in 1..{hi} "
        f"(min(d_img={d1}, d_txt={d2}, n={n}))."
    )
    try:
        sim_dim = check_int("sim_dim", "fit_csa", sim_dim, minimum=1)
    except InvalidParameterError:
        raise InvalidParameterError(f"{allowed} Got {sim_dim!r} instead.") from None
    if sim_dim > hi:
        raise InvalidParameterError(f"{allowed} Got {sim_dim} instead.")
    ridge = check_real("ridge", "fit_csa", ridge, greater_than=0)

    m1, m2 = x1.mean(axis=0), x2.mean(axis=0)
    z1, z2 = x1 - m1, x2 - m2
    c11 = z1.T @ z1 / n
    c22 = z2.T @ z2 / n
    c12 = z1.T @ z2 / n
    # A side with zero variance (all anchors equal) still gets a positive ridge.
    eps1 = ridge * max(float(np.trace(c11)) / d1, np.finfo(np.float64).eps)
    eps2 = ridge * max(float(np.trace(c22)) / d2, np.finfo(np.float64).eps)
    s1 = _inv_sqrt(c11 + eps1 * np.eye(d1))
    s2 = _inv_sqrt(c22 + eps2 * np.eye(d2))
    u, rho, vt = np.linalg.svd(s1 @ c12 @ s2, full_matrices=False)
    a = u[:, :sim_dim].T @ s1
    b = vt[:sim_dim] @ s2
    return CSA(
        mean_image=m1,
        mean_text=m2,
        proj_image=a,
        proj_text=b,
        rho=np.clip(rho[:sim_dim], 0.0, 1.0),
    )
