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

Prompt-template strategies (:data:`STRATEGIES`): ``max`` (each label scores its best
template: the reference and ``ASIF.classify``), ``mean-relative`` (the mean of the templates'
relative vectors, re-normalised) and ``mean-embedding`` (the mean of the templates' text
embeddings, re-normalised, then one relative vector).

Example:
    >>> import numpy as np
    >>> from asif_qdrant.evaluation.methods import AnchorSet, METHODS, MethodContext
    >>> rng = np.random.default_rng(0)
    >>> anchors = AnchorSet(rng.random((20, 6)), rng.random((20, 4)))
    >>> fitted = METHODS["numpy"](MethodContext()).fit(anchors, k=5, p=8.0)
    >>> fitted.retrieval_scores(rng.random((3, 6)), "image", rng.random((7, 4)), "text").shape
    (3, 7)
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from asif_qdrant.errors import InvalidParameterError

__all__ = [
    "METHODS",
    "STRATEGIES",
    "AnchorSet",
    "AsifLibraryMethod",
    "DenseRelativeMethod",
    "FittedMethod",
    "Method",
    "MethodContext",
    "NumpyRecipeMethod",
    "PromptSet",
    "TopK",
    "combine_templates",
    "register_method",
]

Modality = Literal["image", "text"]
#: Prompt-template strategies of zero-shot classification.
STRATEGIES: tuple[str, ...] = ("max", "mean-relative", "mean-embedding")


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
    """

    image_encoder: Any = None
    text_encoder: Any = None
    workdir: Path | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)


class Method(ABC):
    """A way to score images against texts from anchor pairs.

    Subclasses set ``name``, ``title`` and ``description`` and implement :meth:`fit`.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: Whether it is the library path (its numbers are the ones the library gives users).
    library: ClassVar[bool] = False

    def __init__(self, context: MethodContext) -> None:
        self.context = context

    @abstractmethod
    def fit(self, anchors: AnchorSet, *, k: int, p: float) -> FittedMethod:
        """Build the method on ``anchors`` with ``k`` and ``p``."""


class FittedMethod(ABC):
    """A method built on one anchor set."""

    def __init__(self, method: Method, anchors: AnchorSet, k: int, p: float) -> None:
        self.method = method
        self.anchors = anchors
        self.k = k
        self.p = p

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
        self._select(q @ a.T, max_k)

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

    def dense(self, k: int, p: float, *, clamp: bool = True) -> np.ndarray:
        """``(m, n)`` relative vectors: top ``k`` kept, clamped at 0, power ``p``, unit norm.

        The weights are computed in float64 and rounded to float32, the precision at which
        Qdrant stores sparse vectors; the returned array is float64 for exact dot products.
        """
        k = min(k, self.sims.shape[1])
        s = self.sims[:, :k]
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
    if strategy not in STRATEGIES:
        raise InvalidParameterError(
            f"The strategy must be one of {', '.join(STRATEGIES)}. Got {strategy!r} instead."
        )
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
    clamp: bool = True
    dense_k: bool = False  # keep every anchor (the dense baseline)

    def relative(self, x: np.ndarray, modality: Modality) -> np.ndarray:
        k = len(self.anchors) if self.dense_k else self.k
        return TopK(x, self.anchors.side(modality), k).dense(k, self.p, clamp=self.clamp)

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
        return _scores_from_relative(self.relative, images, prompts, strategy)


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

    def fit(self, anchors: AnchorSet, *, k: int, p: float) -> FittedMethod:
        """Keep the anchors; relative vectors are computed per query."""
        fitted = _NumpyFitted(self, anchors, k, p)
        fitted.clamp = self.clamp
        return fitted


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

    def fit(self, anchors: AnchorSet, *, k: int, p: float) -> FittedMethod:
        """Keep the anchors; ``k`` and ``p`` are ignored (every anchor, p = 1)."""
        fitted = _NumpyFitted(self, anchors, len(anchors), 1.0)
        fitted.clamp = False
        fitted.dense_k = True
        return fitted


# -------------------------------------------------------------------------------------------
# The library path
# -------------------------------------------------------------------------------------------


class _AsifFitted(FittedMethod):
    def __init__(self, method: Method, anchors: AnchorSet, k: int, p: float) -> None:
        super().__init__(method, anchors, k, p)
        from asif_qdrant.model import ASIF

        ctx = method.context
        self._dir = Path(tempfile.mkdtemp(prefix="asif-eval-", dir=ctx.workdir))
        self.asif = ASIF(
            path=self._dir,
            name="eval",
            k=k,
            p=p,
            image_encoder=ctx.image_encoder or "precomputed/image",
            text_encoder=ctx.text_encoder or "precomputed/text",
            show_progress_bar=False,
        )
        self.ids = self.asif.add_anchor_embeddings(anchors.image, anchors.text)
        self._collections = 0

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

    def retrieval_scores(
        self,
        queries: np.ndarray,
        query_modality: Modality,
        catalog: np.ndarray,
        catalog_modality: Modality,
    ) -> np.ndarray:
        coll = self._new_collection()
        n = len(catalog)
        self.asif.index_embeddings(
            coll, catalog, catalog_modality, ids=list(range(n)), show_progress_bar=False
        )
        vecs = self.asif.relative_from_embeddings(queries, query_modality)
        results = self.asif.search_batch(coll, vecs, limit=n, modality=catalog_modality)
        out = np.zeros((len(queries), n))
        for row, hits in enumerate(results):
            for h in hits:
                out[row, int(h.id)] = h.score
        self.asif.store.delete_collection(coll)
        return out

    def classification_scores(
        self, images: np.ndarray, prompts: PromptSet, strategy: str = "max"
    ) -> np.ndarray:
        if strategy not in STRATEGIES:
            raise InvalidParameterError(
                f"The strategy must be one of {', '.join(STRATEGIES)}. Got {strategy!r} instead."
            )
        img_vecs = self.asif.relative_from_embeddings(images, "image")
        own = self._own_scores(img_vecs, prompts, strategy)
        supports = "template_strategy" in inspect.signature(self.asif.classify).parameters
        if strategy != "max" and not supports:
            return own
        # ASIF.classify itself: always for 'max'; for every strategy once it takes
        # template_strategy= (passed explicitly, whatever its default is).
        kwargs = {"template_strategy": strategy} if supports else {}
        _, scores = self.asif.classify(
            img_vecs, prompts.labels, templates=prompts.templates, return_scores=True, **kwargs
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

    def _own_scores(self, img_vecs: Sequence[Any], prompts: PromptSet, strategy: str) -> np.ndarray:
        """Zero-shot scores from the model's relative vectors, combined here per strategy."""
        n_labels, n_templates, dim = prompts.embeddings.shape
        if strategy == "mean-embedding":
            # The mean prompt embedding is indexed as a catalog and queried: all in Qdrant.
            coll = self._new_collection()
            mean = _unit(prompts.embeddings.mean(axis=1)).astype(np.float32)
            self.asif.index_embeddings(
                coll, mean, "text", ids=list(range(n_labels)), show_progress_bar=False
            )
            results = self.asif.search_batch(coll, img_vecs, limit=n_labels)
            out = np.zeros((len(img_vecs), n_labels))
            for row, hits in enumerate(results):
                for h in hits:
                    out[row, int(h.id)] = h.score
            self.asif.store.delete_collection(coll)
            return out
        txt = self._dense(
            self.asif.relative_from_embeddings(prompts.embeddings.reshape(-1, dim), "text")
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
        ids = self.asif.add_anchor_embeddings(image, text)
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

    def fit(self, anchors: AnchorSet, *, k: int, p: float) -> FittedMethod:
        """Build an ASIF model in a temporary folder and add the anchors."""
        return _AsifFitted(self, anchors, k, p)
