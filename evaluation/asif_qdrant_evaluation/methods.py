"""The methods the evaluation compares, behind one small interface, in a registry.

A :class:`Method` is fitted on anchor pairs (precomputed embeddings) with ``k`` and ``p``; the
:class:`FittedMethod` then scores retrieval (queries of one modality against a catalog of
another) and zero-shot classification (images against label prompts, with a prompt-template
strategy). New methods (CSA, cross-the-gap variants) plug in with :func:`register_method` and
are then available to every task by name.

Registered here:

* ``asif``: the library path. An :class:`~asif_qdrant.ASIF` model on the embedded Qdrant
  engine, built with ``add_anchor_embeddings``; catalogs indexed with ``index_embeddings``,
  queried with ``search_batch``; zero-shot ``max`` through ``ASIF.classify``.
* ``numpy``: the paper's recipe written directly in numpy (cosine to every anchor, keep the
  top ``k``, clamp at 0, power ``p``, L2-normalise, dot product), sharing no code with the
  library. Must give identical numbers.
* ``numpy-noclamp``: the same without clamping negative similarities, as the reference code.
* ``dense``: the raw dense relative representation: every anchor, ``p = 1``, no clamp.
* ``csa-numpy``: canonical similarity analysis (CSA, ICLR 2025) written here in numpy:
  centre, whiten with a relative ridge, SVD of the whitened cross-covariance, keep
  ``sim_dim`` canonical directions, score ``sum_j rho_j a_j b_j``.
* ``hybrid-numpy``: reciprocal rank fusion (RRF) of the ``numpy`` and ``csa-numpy`` rankings
  (Qdrant's formula, :func:`asif_qdrant.fusion.rrf_scores`).
* ``csa`` and ``hybrid``: the same through the library (``ASIF(..., method=...)``), when the
  installed library offers them.

Image->image retrieval (:data:`IMAGE_VARIANTS`): every fitted method scores a query image
against catalog images ``intra``-modally, against the catalog's captions (``caption-side``,
the inter-modal variant (a) of Cross the Gap), and, for ASIF, through ``inversion`` (b): the
query's top anchors' caption embeddings averaged with its relative weights, then searched as a
text. See :meth:`FittedMethod.image_scores`.

Prompt-template strategies (:data:`STRATEGIES`): ``max`` (each label scores its best
template: the reference and ``ASIF.classify``), ``mean-relative`` (the mean of the templates'
relative vectors, re-normalised) and ``mean-embedding`` (the mean of the templates' text
embeddings, re-normalised, then one relative vector).

Example:
    >>> import numpy as np
    >>> from asif_qdrant_evaluation.methods import AnchorSet, METHODS, MethodContext
    >>> rng = np.random.default_rng(0)
    >>> anchors = AnchorSet(rng.random((20, 6)), rng.random((20, 4)))
    >>> fitted = METHODS["numpy"](MethodContext()).fit(anchors, k=5, p=8.0)
    >>> fitted.retrieval_scores(rng.random((3, 6)), "image", rng.random((7, 4)), "text").shape
    (3, 7)
"""

from __future__ import annotations

import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from asif_qdrant.errors import InvalidParameterError
from asif_qdrant.fusion import DEFAULT_RRF_K, rrf_scores
from asif_qdrant.relative import Spread
from asif_qdrant.retriever.catalogs import PRUNED_CATALOG_NNZ
from asif_qdrant.retriever.search import TWO_STAGE_CANDIDATES, TWO_STAGE_QUERY_NNZ

__all__ = [
    "IMAGE_VARIANTS",
    "METHODS",
    "STRATEGIES",
    "AnchorSet",
    "AsifLibraryMethod",
    "CsaNumpyMethod",
    "DenseRelativeMethod",
    "FittedMethod",
    "HybridNumpyMethod",
    "Method",
    "MethodContext",
    "NumpyCsa",
    "NumpyRecipeMethod",
    "PromptSet",
    "TopK",
    "check_strategy",
    "combine_templates",
    "csa_dim_for",
    "register_method",
    "rrf_scores",
]

Modality = Literal["image", "text"]
#: Prompt-template strategies of zero-shot classification.
STRATEGIES: tuple[str, ...] = ("max", "mean-relative", "mean-embedding")
#: Ways to search images with an image (see :meth:`FittedMethod.image_scores`).
IMAGE_VARIANTS: tuple[str, ...] = ("intra", "caption-side", "inversion")


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


@dataclass
class AnchorSet:
    """Anchor pairs as embeddings: row ``i`` of ``image`` and of ``text`` is one pair.

    Attributes:
        image: ``(n, d_image)`` image embeddings.
        text: ``(n, d_text)`` caption embeddings.
        captions: The captions (optional; some methods may want them).
    """

    image: np.ndarray
    text: np.ndarray
    captions: list[str] | None = None

    def __post_init__(self) -> None:
        self.image = np.asarray(self.image, dtype=np.float32)
        self.text = np.asarray(self.text, dtype=np.float32)
        if len(self.image) != len(self.text):
            raise InvalidParameterError(
                f"AnchorSet needs one text row per image row. Got {len(self.image)} and "
                f"{len(self.text)}."
            )

    def __len__(self) -> int:
        return len(self.image)

    def side(self, modality: Modality) -> np.ndarray:
        """The anchors of one modality."""
        return self.image if modality == "image" else self.text

    def subset(self, index: Sequence[int] | np.ndarray) -> AnchorSet:
        """The pairs at ``index``."""
        idx = np.asarray(index, dtype=np.int64)
        caps = None if self.captions is None else [self.captions[i] for i in idx]
        return AnchorSet(self.image[idx], self.text[idx], caps)

    def concat(self, other: AnchorSet) -> AnchorSet:
        """These pairs followed by ``other``'s."""
        caps = None
        if self.captions is not None and other.captions is not None:
            caps = self.captions + other.captions
        return AnchorSet(
            np.concatenate([self.image, other.image]), np.concatenate([self.text, other.text]), caps
        )


@dataclass
class PromptSet:
    """Zero-shot label prompts: every label in every template, embedded.

    Attributes:
        labels: The label names (distinct).
        templates: Templates with ``{}`` for the label.
        embeddings: ``(labels, templates, d_text)`` text embeddings of
            ``template.format(label)``.
    """

    labels: list[str]
    templates: list[str]
    embeddings: np.ndarray

    def prompts(self) -> list[str]:
        """The prompt texts, label-major (label 0 in every template first)."""
        return [
            t.replace("{label}", "{}").format(lab) for lab in self.labels for t in self.templates
        ]

    def first_template(self) -> PromptSet:
        """The same labels with only the first template."""
        return PromptSet(self.labels, self.templates[:1], self.embeddings[:, :1])


def check_strategy(strategy: str) -> None:
    """Raise unless ``strategy`` is one of :data:`STRATEGIES`.

    Example:
        >>> check_strategy("mean")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        asif_qdrant.errors.InvalidParameterError: The strategy must be one of ... 'mean' instead.
    """
    if strategy not in STRATEGIES:
        raise InvalidParameterError(
            f"The strategy must be one of {', '.join(STRATEGIES)}. Got {strategy!r} instead."
        )


def combine_templates(scores: np.ndarray, strategy: str = "max") -> np.ndarray:
    """Reduce ``(samples, labels, templates)`` prompt scores over templates (``max`` only).

    Example:
        >>> combine_templates(np.array([[[0.1, 0.5], [0.4, 0.2]]])).tolist()
        [[0.5, 0.4]]
    """
    if strategy != "max":
        raise InvalidParameterError(
            "combine_templates reduces scores for the 'max' strategy only; the mean "
            f"strategies combine vectors before scoring. Got {strategy!r}."
        )
    return np.asarray(scores).max(axis=2)


@dataclass
class MethodContext:
    """What methods may need besides the anchors.

    Attributes:
        image_encoder: The (cached) image encoder, for methods that run a real model.
        text_encoder: The (cached) text encoder; ``ASIF.classify`` encodes prompts with it.
        workdir: Where methods may write (embedded Qdrant folders); a temporary folder when
            ``None``.
        checks: Where methods record consistency checks (library vs own scoring).
        options: Method settings besides k and p: ``csa_dim``, ``csa_ridge``, ``rrf_k``,
            ``classify_spread`` (zero-shot classification's spread rule; unset: ``p``).
    """

    image_encoder: Any = None
    text_encoder: Any = None
    workdir: Path | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


class Method(ABC):
    """A way to score images against texts from anchor pairs.

    Subclasses set ``name``, ``title``, ``description`` and ``fitted`` (or override
    :meth:`fit`).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: Whether it is the library path (its numbers are the ones the library gives users).
    library: ClassVar[bool] = False
    #: What :meth:`fit` builds: ``fitted(method, anchors, k, p)``.
    fitted: ClassVar[Callable[..., FittedMethod]]

    def __init__(self, context: MethodContext) -> None:
        self.context = context

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the method cannot run here (``None``: it can)."""
        return None

    def fit(self, anchors: AnchorSet, *, k: int, p: float) -> FittedMethod:
        """Build the method on ``anchors`` with ``k`` and ``p``."""
        return type(self).fitted(self, anchors, k, p)


class FittedMethod(ABC):
    """A method built on one anchor set."""

    def __init__(self, method: Method, anchors: AnchorSet, k: int, p: float) -> None:
        self.method = method
        self.anchors = anchors
        self.k = k
        self.p = p
        spread = method.context.options.get("classify_spread")
        #: The ``p`` of zero-shot classification: the library's spread rule when the
        #: context sets ``classify_spread`` (``ASIF(classify_spread=...)``), else ``p``.
        self.classify_p: float | Spread = p if spread is None else Spread(float(spread))

    @abstractmethod
    def retrieval_scores(
        self,
        queries: np.ndarray,
        query_modality: Modality,
        catalog: np.ndarray,
        catalog_modality: Modality,
    ) -> np.ndarray:
        """``(queries, catalog items)`` scores, higher is better."""

    @abstractmethod
    def classification_scores(
        self, images: np.ndarray, prompts: PromptSet, strategy: str = "max"
    ) -> np.ndarray:
        """``(images, labels)`` scores of zero-shot classification."""

    #: The image->image variants this method scores (a subset of :data:`IMAGE_VARIANTS`).
    image_variants: ClassVar[tuple[str, ...]] = ("intra", "caption-side")

    def image_scores(
        self,
        queries: np.ndarray,
        catalog_images: np.ndarray,
        catalog_texts: np.ndarray,
        variant: str = "intra",
    ) -> np.ndarray:
        """``(queries, catalog items)`` scores of query images against a catalog of pairs.

        Args:
            queries: ``(m, d_image)`` query image embeddings.
            catalog_images: ``(n, d_image)`` the catalog items' image embeddings.
            catalog_texts: ``(n, d_text)`` the catalog items' caption embeddings.
            variant: ``"intra"`` (image vs image), ``"caption-side"`` (the query image vs
                the items' captions) or ``"inversion"`` (the query turned into a text through
                the anchors, vs the items' images; :meth:`invert`).
        """
        if variant not in self.image_variants:
            raise InvalidParameterError(
                f"The image->image variant of {self.method.name!r} must be one of "
                f"{', '.join(self.image_variants)}. Got {variant!r} instead."
            )
        if variant == "intra":
            return self.retrieval_scores(queries, "image", catalog_images, "image")
        if variant == "caption-side":
            return self.retrieval_scores(queries, "image", catalog_texts, "text")
        return self.retrieval_scores(self.invert(queries), "text", catalog_images, "image")

    def invert(self, images: np.ndarray) -> np.ndarray:
        """Text-side embeddings standing for ``images`` (methods with ``"inversion"``)."""
        raise InvalidParameterError(f"The method {self.method.name!r} does not invert images.")

    def add_anchors(self, image: np.ndarray, text: np.ndarray) -> Any:
        """Add anchor pairs in place; returns a token for :meth:`undo_add`.

        The default refits on the grown anchor set (what a method without edits must do).
        """
        before = self.anchors
        self._refit(before.concat(AnchorSet(image, text)))
        return before

    def undo_add(self, token: Any) -> None:
        """Remove the pairs added by :meth:`add_anchors` (the default refits)."""
        self._refit(token)

    def _refit(self, anchors: AnchorSet) -> None:
        fresh = self.method.fit(anchors, k=self.k, p=self.p)
        self.close()
        self.__dict__.update(fresh.__dict__)

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the fitted method holds (folders, stores)."""

    def __enter__(self) -> FittedMethod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Methods by name; :func:`register_method` adds to it.
METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a :class:`Method` available to every task by its ``name``.

    Example:
        >>> @register_method
        ... class Random(NumpyRecipeMethod):
        ...     name, title = "random-example", "random scores"
        >>> "random-example" in METHODS
        True
        >>> del METHODS["random-example"]
    """
    if not cls.name:
        raise InvalidParameterError(f"Method class {cls.__name__} needs a non-empty 'name'.")
    METHODS[cls.name] = cls
    return cls


# -------------------------------------------------------------------------------------------
# The direct numpy recipe
# -------------------------------------------------------------------------------------------


#: Similarities within this of a query's k-th one count as tied (float32 BLAS rounds one dot
#: product by ~1e-7, and differently with a row's place in the matrix).
TIE = 2e-6


def _exact_ties(sims: np.ndarray, q: np.ndarray, a: np.ndarray, k: int) -> None:
    """Recompute in float64, in place, the similarities tied with each query's k-th one.

    BLAS may give two equal anchors similarities a float32 step apart; recomputed one by one
    (the same arithmetic for every anchor), equal anchors tie exactly and the lower row wins,
    as in the library.
    """
    if not 0 < k < sims.shape[1]:
        return
    kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    near = np.abs(sims - kth[:, None]) <= TIE
    for row in np.flatnonzero(near.sum(axis=1) > 1):
        cols = np.flatnonzero(near[row])
        sims[row, cols] = (a[cols].astype(np.float64) * q[row].astype(np.float64)).sum(axis=1)


def spread_powers(kept: np.ndarray, fraction: float) -> np.ndarray:
    """Each row's ``p`` of the spread rule, found directly with scipy's root finder.

    The perplexity of ``w = s**p / sum(s**p)`` (``s``: a row's kept similarities, clamped at
    0) is ``fraction`` times the row's length; ``p`` is searched in ``[0.25, 64]`` and is the
    bound when the target is out of reach. The library finds the same root by bisection
    (:func:`asif_qdrant.relative.power_for_spread`); this is the direct version it is
    checked against.

    Example:
        >>> s = np.array([[0.9, 0.5, 0.4, 0.3], [0.9, 0.89, 0.88, 0.87]])
        >>> [round(float(x), 2) for x in spread_powers(s, 0.5)]
        [3.2, 64.0]
    """
    from scipy.optimize import brentq

    lo, hi = Spread.P_MIN, Spread.P_MAX
    out = np.empty(len(kept))
    for r, row in enumerate(np.clip(np.asarray(kept, np.float64), 0.0, None)):
        top = row.max() if row.size else 0.0
        if top <= 0:
            out[r] = lo
            continue
        logs = np.log(row[row > 0] / top)
        target = fraction * len(row)

        def excess(p: float, logs: np.ndarray = logs, target: float = target) -> float:
            a = p * logs  # log of the unnormalised weights (the top one is 0)
            w = np.exp(a)
            entropy = np.log(w.sum()) - (w * a).sum() / w.sum()
            return float(np.exp(entropy)) - target

        if excess(lo) <= 0:
            out[r] = lo
        elif excess(hi) >= 0:
            out[r] = hi
        else:
            out[r] = brentq(excess, lo, hi, xtol=1e-13, rtol=1e-15)
    return out


class TopK:
    """Similarities of queries to anchors, top ``K`` sorted once, re-weighted for any k <= K, p.

    Sweeps over ``k`` and ``p`` reuse it: one matrix product and one partial sort.

    Args:
        queries: ``(m, d)`` embeddings.
        anchors: ``(n, d)`` embeddings.
        max_k: The largest ``k`` that will be asked for (capped at ``n``).

    Example:
        >>> top = TopK(np.array([[1.0, 0.2]]), np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), 3)
        >>> top.dense(2, 1.0).round(3).tolist()
        [[0.981, 0.196, 0.0]]
    """

    def __init__(self, queries: np.ndarray, anchors: np.ndarray, max_k: int) -> None:
        q = _unit(queries).astype(np.float32)
        a = _unit(anchors).astype(np.float32)
        sims = q @ a.T
        _exact_ties(sims, q, a, min(max_k, sims.shape[1]))
        self._select(sims, max_k)

    @classmethod
    def from_similarities(cls, sims: np.ndarray, max_k: int) -> TopK:
        """Build from a precomputed ``(m, n)`` cosine-similarity matrix.

        Example:
            >>> TopK.from_similarities(np.array([[0.1, 0.7, 0.3]]), 2).index.tolist()
            [[1, 2]]
        """
        top = cls.__new__(cls)
        top._select(np.asarray(sims, dtype=np.float32), max_k)
        return top

    def _select(self, sims: np.ndarray, max_k: int) -> None:
        self.n = sims.shape[1]
        kk = min(max_k, self.n)
        if kk < self.n:
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            # Anchors tied at the k-th place: the lower anchor row wins (the library's rule).
            kth = np.take_along_axis(sims, part, axis=1).min(axis=1)
            for row in np.flatnonzero((sims >= kth[:, None]).sum(axis=1) > kk):
                part[row] = np.lexsort((np.arange(self.n), -sims[row]))[:kk]
        else:
            part = np.broadcast_to(np.arange(self.n), sims.shape).copy()
        vals = np.take_along_axis(sims, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        self.index = np.take_along_axis(part, order, axis=1)
        self.sims = np.take_along_axis(vals, order, axis=1).astype(np.float64)

    def dense(self, k: int, p: float | Spread, *, clamp: bool = True) -> np.ndarray:
        """``(m, n)`` relative vectors: top ``k`` kept, clamped at 0, power ``p``, unit norm.

        ``p`` a :class:`~asif_qdrant.relative.Spread`: each row's own power
        (:func:`spread_powers`; always clamped).

        The weights are computed in float64 and rounded to float32, the precision at which
        Qdrant stores sparse vectors; the returned array is float64 for exact dot products.
        """
        k = min(k, self.sims.shape[1])
        s = self.sims[:, :k]
        if isinstance(p, Spread):
            s = np.clip(s, 0.0, None)
            w = np.power(s, spread_powers(s, p.fraction)[:, None])
        else:
            w = np.power(np.clip(s, 0.0, None), p) if clamp else np.power(s, p)
        norms = np.linalg.norm(w, axis=1, keepdims=True)
        w = (w / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        out = np.zeros((len(s), self.n))
        np.put_along_axis(out, self.index[:, :k], w, axis=1)
        return out


def _scores_from_relative(
    rel: Callable[[np.ndarray, Modality], np.ndarray],
    images: np.ndarray,
    prompts: PromptSet,
    strategy: str,
) -> np.ndarray:
    """Zero-shot scores from a function giving dense relative vectors (numpy methods)."""
    check_strategy(strategy)
    n_labels, n_templates, dim = prompts.embeddings.shape
    img = rel(images, "image")
    if strategy == "mean-embedding":
        txt = rel(_unit(prompts.embeddings.mean(axis=1)), "text")
        return img @ txt.T
    txt = rel(prompts.embeddings.reshape(-1, dim), "text").reshape(n_labels, n_templates, -1)
    if strategy == "mean-relative":
        return img @ _unit(txt.mean(axis=1)).T
    return combine_templates(
        (img @ txt.reshape(n_labels * n_templates, -1).T).reshape(len(img), n_labels, n_templates)
    )


class _NumpyFitted(FittedMethod):
    image_variants = IMAGE_VARIANTS

    def __init__(self, method: Method, anchors: AnchorSet, k: int, p: float) -> None:
        super().__init__(method, anchors, k, p)
        self.clamp = bool(getattr(method, "clamp", True))

    def relative(
        self, x: np.ndarray, modality: Modality, p: float | Spread | None = None
    ) -> np.ndarray:
        """Dense relative vectors with ``p`` (default: the method's own)."""
        top = TopK(x, self.anchors.side(modality), self.k)
        return top.dense(self.k, self.p if p is None else p, clamp=self.clamp)

    def invert(self, images: np.ndarray) -> np.ndarray:
        """The relative-weighted mean of the unit caption embeddings of each image's anchors."""
        return _unit(self.relative(images, "image") @ _unit(self.anchors.text))

    def retrieval_scores(
        self,
        queries: np.ndarray,
        query_modality: Modality,
        catalog: np.ndarray,
        catalog_modality: Modality,
    ) -> np.ndarray:
        return self.relative(queries, query_modality) @ self.relative(catalog, catalog_modality).T

    def classification_scores(
        self, images: np.ndarray, prompts: PromptSet, strategy: str = "max"
    ) -> np.ndarray:
        """Zero-shot scores with the library's classification recipe (its spread rule).

        The reference without clamping (``numpy-noclamp``) and the dense baseline keep
        their own ``p``.
        """
        p = self.classify_p if self.clamp else self.p  # unclamped recipes: their own p
        return _scores_from_relative(partial(self.relative, p=p), images, prompts, strategy)


@register_method
class NumpyRecipeMethod(Method):
    """The paper's recipe, directly in numpy (clamping negatives at 0, as the library does)."""

    name = "numpy"
    title = "numpy recipe"
    description = (
        "cosine to every anchor, top k, clamp at 0, power p, L2-normalise, dot product; "
        "written directly in numpy"
    )
    clamp = True
    fitted = _NumpyFitted


@register_method
class NumpyNoClampMethod(NumpyRecipeMethod):
    """The reference code's recipe: negative similarities are not clamped before the power."""

    name = "numpy-noclamp"
    title = "reference (no clamp)"
    description = "the numpy recipe without clamping negative similarities (the reference code)"
    clamp = False


@register_method
class DenseRelativeMethod(Method):
    """Baseline: the raw dense relative representation (every anchor, p = 1, no clamp)."""

    name = "dense"
    title = "dense relative (k=n, p=1)"
    description = "cosine to every anchor, L2-normalised, no top-k, no power, no clamp"
    clamp = False

    @staticmethod
    def fitted(method: Method, anchors: AnchorSet, k: int, p: float) -> FittedMethod:
        """Keep the anchors; ``k`` and ``p`` are ignored (every anchor, p = 1)."""
        return _NumpyFitted(method, anchors, len(anchors), 1.0)


# -------------------------------------------------------------------------------------------
# CSA and hybrid, in numpy
# -------------------------------------------------------------------------------------------

#: CSA defaults when the configuration gives none (see EvalConfig.csa_dim / csa_ridge).
DEFAULT_CSA_RIDGE = 1e-3


def csa_dim_for(n: int, d_image: int, d_text: int, csa_dim: int | None = None) -> int:
    """CSA dims used: ``csa_dim`` if given, else ``min(d_image, d_text, n // 2)`` (>= 1).

    Example:
        >>> csa_dim_for(4000, 1280, 384), csa_dim_for(100, 1280, 384), csa_dim_for(9, 8, 4, 2)
        (384, 50, 2)
    """
    return int(csa_dim) if csa_dim else max(1, min(d_image, d_text, n // 2))


class NumpyCsa:
    """CSA fitted with this module's own numpy code (the reference recipe, docs/method.md).

    Centre each side on its anchor mean, whiten with ``S = (C + eps I)^(-1/2)`` where ``C`` is
    the covariance and ``eps = ridge * trace(C) / d``, take the SVD ``U diag(rho) V^T`` of the
    whitened cross-covariance ``S1 C12 S2``, keep ``sim_dim`` canonical directions ``U^T S1``
    and ``V^T S2``. Inputs are L2-normalised first (the anchors as the library stores them).

    Computed from the thin SVD ``Z = W diag(s) R^T`` of each centred side (no ``d x d``
    matrix): ``Z S = W diag(s t) R^T`` with ``t = (s^2 / n + eps)^(-1/2)``, so the whitened
    cross-covariance is ``R1 K R2^T`` with ``K = (s1 t1 W1^T W2 s2 t2) / n``; with
    ``K = P diag(rho) Q^T``, the directions are ``U^T S1 = P^T diag(t1) R1^T`` (and likewise
    for the text side). Exact, and fast when the anchors are fewer than the dims.
    """

    def __init__(self, image: np.ndarray, text: np.ndarray, sim_dim: int | None, ridge: float):
        n = len(image)
        self.mean: dict[str, np.ndarray] = {}
        white: dict[str, np.ndarray] = {}
        back: dict[str, np.ndarray] = {}
        for side, arr in (("image", _unit(image)), ("text", _unit(text))):
            self.mean[side] = arr.mean(axis=0)
            w, sv, rt = np.linalg.svd(arr - self.mean[side], full_matrices=False)
            var = sv**2 / n
            eps = ridge * max(float(var.sum()) / arr.shape[1], np.finfo(np.float64).eps)
            t = 1.0 / np.sqrt(var + eps)
            white[side] = w * (sv * t)  # Z S in the basis of the right singular vectors
            back[side] = t[:, None] * rt  # diag(t) R^T
        p, rho, qt = np.linalg.svd(white["image"].T @ white["text"] / n, full_matrices=False)
        dim = min(sim_dim or csa_dim_for(n, image.shape[1], text.shape[1]), len(rho))
        self.proj = {"image": p[:, :dim].T @ back["image"], "text": qt[:dim] @ back["text"]}
        self.rho = np.clip(rho[:dim], 0.0, 1.0)

    def project(self, x: np.ndarray, modality: Modality) -> np.ndarray:
        """``(x / |x| - mean) @ P.T``, not normalised.

        Its first ``d`` columns, normalised, are the transform of a CSA keeping ``d``.
        """
        return (_unit(x) - self.mean[modality]) @ self.proj[modality].T

    def transform(self, x: np.ndarray, modality: Modality) -> np.ndarray:
        """The canonical vectors of ``x`` (:meth:`project`, L2-normalised)."""
        return _unit(self.project(x, modality))


class _CsaFitted(FittedMethod):
    def __init__(self, method: Method, anchors: AnchorSet, k: int, p: float) -> None:
        super().__init__(method, anchors, k, p)
        opts = method.context.options
        self.sim_dim = csa_dim_for(
            len(anchors), anchors.image.shape[1], anchors.text.shape[1], opts.get("csa_dim")
        )
        self.ridge = float(opts.get("csa_ridge") or DEFAULT_CSA_RIDGE)
        self.csa = NumpyCsa(anchors.image, anchors.text, self.sim_dim, self.ridge)

    def _refit(self, anchors: AnchorSet) -> None:
        # The same dims after an edit (as a library model keeps its csa_dim).
        self.anchors = anchors
        self.csa = NumpyCsa(anchors.image, anchors.text, self.sim_dim, self.ridge)

    def vectors(self, x: np.ndarray, modality: Modality, *, query: bool = False) -> np.ndarray:
        """Canonical vectors; query side weighted by ``rho`` (their dot product is the score)."""
        t = self.csa.transform(x, modality)
        return t * self.csa.rho if query else t

    def retrieval_scores(
        self,
        queries: np.ndarray,
        query_modality: Modality,
        catalog: np.ndarray,
        catalog_modality: Modality,
    ) -> np.ndarray:
        return (
            self.vectors(queries, query_modality, query=True)
            @ self.vectors(catalog, catalog_modality).T
        )

    def classification_scores(
        self, images: np.ndarray, prompts: PromptSet, strategy: str = "max"
    ) -> np.ndarray:
        """The template strategies with canonical vectors in place of relative vectors.

        ``max``: each label's best prompt; ``mean-relative``: the mean of the prompts' unit
        canonical vectors, re-normalised; ``mean-embedding``: the mean of the prompts' unit
        embeddings, projected as it is (not re-normalised first, as ``ASIF.classify`` does).
        """
        check_strategy(strategy)
        n_labels, n_templates, dim = prompts.embeddings.shape
        q = self.vectors(images, "image", query=True)
        emb = _unit(prompts.embeddings.reshape(-1, dim))
        if strategy == "max" or n_templates == 1:
            each = self.vectors(emb, "text")
            return (q @ each.T).reshape(len(q), n_labels, n_templates).max(axis=2)
        if strategy == "mean-embedding":
            mean = emb.reshape(n_labels, n_templates, dim).mean(axis=1)
            lab = _unit((mean - self.csa.mean["text"]) @ self.csa.proj["text"].T)
        else:
            lab = _unit(self.vectors(emb, "text").reshape(n_labels, n_templates, -1).mean(axis=1))
        return q @ lab.T


@register_method
class CsaNumpyMethod(Method):
    """Canonical similarity analysis (CSA), in numpy, on the same anchor pairs."""

    name = "csa-numpy"
    title = "CSA (numpy)"
    description = (
        "canonical similarity analysis: centre, whiten (relative ridge), SVD of the whitened "
        "cross-covariance, sim_dim canonical directions, score sum_j rho_j a_j b_j; numpy"
    )
    fitted = _CsaFitted  # k and p do not apply


class _HybridFitted(FittedMethod):
    """RRF of two fitted methods' rankings (ASIF and CSA)."""

    image_variants = ("intra", "caption-side")

    def __init__(self, method: Method, anchors: AnchorSet, k: int, p: float) -> None:
        super().__init__(method, anchors, k, p)
        names: tuple[str, ...] = getattr(method, "parts", ())
        self.parts = [METHODS[name](method.context).fit(anchors, k=k, p=p) for name in names]
        self.rrf_k = int(method.context.options.get("rrf_k") or DEFAULT_RRF_K)

    def _fuse(self, mats: list[np.ndarray]) -> np.ndarray:
        return rrf_scores(*mats, k=self.rrf_k, positive=(True, False))

    def retrieval_scores(
        self,
        queries: np.ndarray,
        query_modality: Modality,
        catalog: np.ndarray,
        catalog_modality: Modality,
    ) -> np.ndarray:
        return self._fuse(
            [
                f.retrieval_scores(queries, query_modality, catalog, catalog_modality)
                for f in self.parts
            ]
        )

    def classification_scores(
        self, images: np.ndarray, prompts: PromptSet, strategy: str = "max"
    ) -> np.ndarray:
        # Every label is in both rankings (as ASIF.classify with method="hybrid" does).
        return rrf_scores(
            *[f.classification_scores(images, prompts, strategy) for f in self.parts], k=self.rrf_k
        )

    def add_anchors(self, image: np.ndarray, text: np.ndarray) -> Any:
        self.anchors = self.anchors.concat(AnchorSet(image, text))
        return [f.add_anchors(image, text) for f in self.parts]

    def undo_add(self, token: Any) -> None:
        for f, t in zip(self.parts, token, strict=True):
            f.undo_add(t)
        self.anchors = self.parts[0].anchors

    def close(self) -> None:
        for f in self.parts:
            f.close()


@register_method
class HybridNumpyMethod(Method):
    """Reciprocal rank fusion of the numpy ASIF recipe and numpy CSA rankings."""

    name = "hybrid-numpy"
    title = "hybrid ASIF+CSA (numpy)"
    description = (
        "reciprocal rank fusion (sum of 1/(rrf_k + rank), rank from 0) of the numpy recipe's "
        "ranking "
        "(items sharing an anchor with the query) and CSA's ranking (every item)"
    )
    #: The methods whose rankings are fused (each fitted on the same anchors).
    parts: ClassVar[tuple[str, str]] = ("numpy", "csa-numpy")
    fitted = _HybridFitted


# -------------------------------------------------------------------------------------------
# The library path
# -------------------------------------------------------------------------------------------


class _AsifFitted(FittedMethod):
    def __init__(self, method: Method, anchors: AnchorSet, k: int, p: float) -> None:
        super().__init__(method, anchors, k, p)
        from asif_qdrant.model import ASIF

        #: ``method=`` of the library's searches ("asif", "csa" or "hybrid").
        self.search_method = str(getattr(method, "search_method", "asif"))
        ctx = method.context
        self._dir = Path(tempfile.mkdtemp(prefix="asif-eval-", dir=ctx.workdir))
        extra: dict[str, Any] = {}
        if self.search_method != "asif":
            # The same CSA settings as the numpy version (csa-numpy).
            extra["csa_dim"] = csa_dim_for(
                len(anchors),
                anchors.image.shape[1],
                anchors.text.shape[1],
                ctx.options.get("csa_dim"),
            )
            extra["csa_ridge"] = float(ctx.options.get("csa_ridge") or DEFAULT_CSA_RIDGE)
        #: Search options of every catalog search (the pruned method's two stages).
        self.search_options: dict[str, Any] = dict(getattr(method, "search_options", {}))
        if getattr(method, "catalog_nnz", None) is not None:
            extra["catalog_nnz"] = method.catalog_nnz  # type: ignore[attr-defined]
        if isinstance(self.classify_p, Spread):
            extra["classify_spread"] = self.classify_p.fraction
        else:
            extra["classify_p"] = self.classify_p  # the paper's classification
        self.asif = ASIF(
            path=self._dir,
            name="eval",
            k=k,
            p=p,
            image_encoder=self._image_encoder(),
            text_encoder=ctx.text_encoder or "precomputed/text",
            show_progress_bar=False,
            **extra,
        )
        # "add": the lab measures the given anchor set as it is, exact duplicates included.
        self.ids = self.asif.add_anchor_embeddings(anchors.image, anchors.text, on_duplicate="add")
        self._collections = 0

    def _image_encoder(self) -> Any:
        return self.method.context.image_encoder or "precomputed/image"

    # sparse vectors -> dense rows over anchor ids
    def _dense(self, vecs: Sequence[Any]) -> np.ndarray:
        width = int(self.asif.fingerprint.next_anchor_id)
        out = np.zeros((len(vecs), width))
        for row, v in enumerate(vecs):
            out[row, v.indices.astype(np.int64)] = v.values
        return out

    def _new_collection(self) -> str:
        self._collections += 1
        return f"catalog{self._collections}"

    def _catalog(
        self, catalog: np.ndarray, modality: Modality, captions: np.ndarray | None = None
    ) -> str:
        coll = self._new_collection()
        extra = {} if captions is None else {"caption_embeddings": captions}
        self.asif.index_embeddings(
            coll, catalog, modality, ids=list(range(len(catalog))), show_progress_bar=False, **extra
        )
        return coll

    @staticmethod
    def _matrix(results: Sequence[Sequence[Any]], n: int) -> np.ndarray:
        out = np.zeros((len(results), n))
        for row, hits in enumerate(results):
            for h in hits:
                out[row, int(h.id)] = h.score
        return out

    def _search(
        self,
        coll: str,
        queries: np.ndarray,
        query_modality: Modality,
        n: int,
        catalog_modality: Modality,
        **options: Any,
    ) -> np.ndarray:
        """Scores of ``queries`` against a catalog of ``n`` items, through the library.

        A two-stage search returns its ``prefetch_limit`` best items (the rest score 0).
        """
        limit = min(n, int(self.search_options.get("prefetch_limit") or n))
        if self.search_method == "asif" and not options:
            # The plain ASIF path: the queries' sparse vectors, then search_batch.
            vecs = self.asif.relative_from_embeddings(queries, query_modality)
            results = self.asif.search_batch(
                coll, vecs, limit=limit, item_modality=catalog_modality, **self.search_options
            )
        else:
            results = self.asif.search_embeddings(
                coll,
                queries,
                query_modality,
                limit=limit,
                item_modality=catalog_modality,
                method=self.search_method,
                **{**self.search_options, **options},
            )
        return self._matrix(results, n)

    def retrieval_scores(
        self,
        queries: np.ndarray,
        query_modality: Modality,
        catalog: np.ndarray,
        catalog_modality: Modality,
    ) -> np.ndarray:
        coll = self._catalog(catalog, catalog_modality)
        out = self._search(coll, queries, query_modality, len(catalog), catalog_modality)
        self.asif.store.delete_collection(coll)
        return out

    @property
    def image_variants(self) -> tuple[str, ...]:  # type: ignore[override]
        return IMAGE_VARIANTS if self.search_method == "asif" else ("intra", "caption-side")

    def image_scores(
        self,
        queries: np.ndarray,
        catalog_images: np.ndarray,
        catalog_texts: np.ndarray,
        variant: str = "intra",
    ) -> np.ndarray:
        """The library's options: ``target="caption"`` and ``query_via="invert"`` (ASIF)."""
        if self.search_method != "asif" or variant not in ("caption-side", "inversion"):
            return super().image_scores(queries, catalog_images, catalog_texts, variant)
        n = len(catalog_images)
        if variant == "caption-side":
            # Image items indexed with their captions; the query image vs the caption vectors.
            coll = self._catalog(catalog_images, "image", captions=catalog_texts)
            out = self._search(coll, queries, "image", n, "image", target="caption")
        else:
            coll = self._catalog(catalog_images, "image")
            out = self._search(coll, queries, "image", n, "image", query_via="invert")
        self.asif.store.delete_collection(coll)
        return out

    def classification_scores(
        self, images: np.ndarray, prompts: PromptSet, strategy: str = "max"
    ) -> np.ndarray:
        check_strategy(strategy)
        img_vecs = self._classify_vectors(images, "image")
        own = self._own_scores(img_vecs, prompts, strategy)
        # ASIF.classify's scores (template_strategy= passed explicitly, whatever its default).
        scores = self.asif.classify_scores(
            img_vecs, prompts.labels, templates=prompts.templates, template_strategy=strategy
        )
        lib = np.asarray(scores, dtype=np.float64)
        self.method.context.checks.append(
            {
                "check": f"own {strategy} scoring vs ASIF.classify",
                "max_abs_diff": float(np.abs(own - lib).max()) if own.size else 0.0,
                "same_argmax": bool((own.argmax(axis=1) == lib.argmax(axis=1)).all()),
            }
        )
        return lib

    def _classify_vectors(self, x: np.ndarray, modality: Modality) -> list[Any]:
        """Sparse vectors as classification makes them (``classify_kp``: the internal API)."""
        from asif_qdrant.retriever.anchors import classify_kp, relative_from_embeddings

        state = self.asif.state
        return relative_from_embeddings(state, x, modality, classify_kp(state))

    def _own_scores(self, img_vecs: Sequence[Any], prompts: PromptSet, strategy: str) -> np.ndarray:
        """Zero-shot scores from the model's relative vectors, combined here per strategy."""
        n_labels, n_templates, dim = prompts.embeddings.shape
        if strategy == "mean-embedding":
            # Classification's own vectors (its k and p rule), which no catalog stores.
            mean = _unit(prompts.embeddings.mean(axis=1)).astype(np.float32)
            txt = self._dense(self._classify_vectors(mean, "text"))
            return self._dense(img_vecs) @ txt.T
        txt = self._dense(
            self._classify_vectors(prompts.embeddings.reshape(-1, dim), "text")
        ).reshape(n_labels, n_templates, -1)
        img = self._dense(img_vecs)
        if strategy == "mean-relative":
            # average the templates' sparse relative vectors, re-normalise
            return img @ _unit(txt.mean(axis=1)).T
        return combine_templates(
            (img @ txt.reshape(n_labels * n_templates, -1).T).reshape(
                len(img_vecs), n_labels, n_templates
            )
        )

    def add_anchors(self, image: np.ndarray, text: np.ndarray) -> Any:
        ids = self.asif.add_anchor_embeddings(image, text, on_duplicate="add")
        self.anchors = self.anchors.concat(AnchorSet(image, text))
        return ids

    def undo_add(self, token: Any) -> None:
        self.asif.delete_anchors(token)
        self.anchors = self.anchors.subset(np.arange(len(self.anchors) - len(token)))

    def close(self) -> None:
        asif = self.__dict__.pop("asif", None)
        if asif is not None:
            asif.close()
            shutil.rmtree(self._dir, ignore_errors=True)


@register_method
class AsifLibraryMethod(Method):
    """The library path: an ASIF model on the embedded Qdrant engine."""

    name = "asif"
    title = "asif-qdrant (library)"
    description = (
        "ASIF(path=...) on the embedded Qdrant engine: add_anchor_embeddings, index_embeddings, "
        "search_batch, classify"
    )
    library = True
    #: ``method=`` of the library's searches and classification.
    search_method: ClassVar[str] = "asif"
    fitted = _AsifFitted  # an ASIF model in a temporary folder, with the anchors added


@register_method
class AsifPrunedMethod(AsifLibraryMethod):
    """The library path with pruned catalog items: ``ASIF(catalog_nnz=...)``."""

    name = "asif-pruned"
    title = "asif-qdrant, pruned items (library)"
    description = (
        "the library path with ASIF(catalog_nnz=PRUNED_CATALOG_NNZ): each catalog item stores "
        "its largest weights only (asif_qdrant.retriever.catalogs), against 'asif'"
    )
    #: Non-zeros each catalog item stores.
    catalog_nnz: ClassVar[int | None] = PRUNED_CATALOG_NNZ


@register_method
class AsifTwoStageMethod(AsifLibraryMethod):
    """The library path with two-stage searches (``SearchOptions(query_nnz=...)``)."""

    name = "asif-two-stage"
    title = "asif-qdrant, two-stage search (library)"
    description = (
        "the library path searched in two stages (query_nnz=TWO_STAGE_QUERY_NNZ largest query "
        "weights find prefetch_limit=TWO_STAGE_CANDIDATES items, rescored by the full query), "
        "against 'asif'"
    )
    #: The two stages, as SearchOptions fields.
    search_options: ClassVar[dict[str, Any]] = {
        "query_nnz": TWO_STAGE_QUERY_NNZ,
        "prefetch_limit": TWO_STAGE_CANDIDATES,
    }


class _EmbeddingRows:
    """An image "encoder" whose inputs are already embeddings: it returns them, normalised.

    The CSA and hybrid library paths classify images (not sparse vectors); the evaluation
    has their embeddings, so the model's image encoder passes them through.
    """

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim

    def embed(
        self, batch: Sequence[Any], *, batch_size: int = 32, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        rows = np.stack([np.asarray(x, dtype=np.float32) for x in batch]) if len(batch) else None
        return _unit(rows).astype(np.float32) if rows is not None else np.zeros((0, self.dim))


class _AsifMethodFitted(_AsifFitted):
    """The library path of CSA or the hybrid (``method=`` on searches and classify)."""

    def __init__(self, method: Method, anchors: AnchorSet, k: int, p: float) -> None:
        ctx = method.context
        name = getattr(ctx.image_encoder, "name", None) or "precomputed/image"
        self._image_rows = _EmbeddingRows(name, anchors.image.shape[1])
        super().__init__(method, anchors, k, p)

    def _image_encoder(self) -> Any:
        return self._image_rows

    def classification_scores(
        self, images: np.ndarray, prompts: PromptSet, strategy: str = "max"
    ) -> np.ndarray:
        """``ASIF.classify(..., method=...)`` on the images (their embeddings passed through)."""
        check_strategy(strategy)
        scores = self.asif.classify_scores(
            list(np.asarray(images, dtype=np.float32)),
            prompts.labels,
            templates=prompts.templates,
            template_strategy=strategy,
            method=self.search_method,
        )
        return np.asarray(scores, dtype=np.float64)


@register_method
class CsaLibraryMethod(AsifLibraryMethod):
    """The library path of CSA: ``ASIF(..., )`` searched with ``method="csa"``."""

    name = "csa"
    title = "CSA (library)"
    description = "ASIF on the embedded Qdrant engine searched with method='csa'"
    library = True
    search_method = "csa"
    fitted = _AsifMethodFitted  # an ASIF model with CSA in a temporary folder


@register_method
class HybridLibraryMethod(CsaLibraryMethod):
    """The library path of the hybrid: ``method="hybrid"`` (Qdrant prefetch + fusion)."""

    name = "hybrid"
    title = "hybrid ASIF+CSA (library)"
    description = "ASIF on the embedded Qdrant engine searched with method='hybrid'"
    search_method = "hybrid"
