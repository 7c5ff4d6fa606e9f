"""What every task works with: :class:`EvalContext` (settings, data, cached encoders, methods).

Data, embeddings and the anchor pools are loaded lazily and memoised per context; prompt
templates of both label sets are here too.

Example:
    >>> from asif_qdrant_evaluation.context import TUX_TEMPLATES, FASHION_TEMPLATES
    >>> TUX_TEMPLATES[0], FASHION_TEMPLATES[0]
    ('a picture of {}.', 'a photo of a {}.')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from asif_qdrant.demo import CATEGORY_PROMPTS
from asif_qdrant.errors import InvalidInputError, InvalidParameterError
from asif_qdrant.progress import progress_bar

from asif_qdrant_evaluation.assets import Assets
from asif_qdrant_evaluation.cache import CachedEncoder, EmbeddingCache
from asif_qdrant_evaluation.config import EvalConfig
from asif_qdrant_evaluation.data import (
    LabeledImages,
    PairSet,
    kfold_groups,
    load_fashion_mnist,
    load_pool,
    load_tuxpaint,
)
from asif_qdrant_evaluation.encoders import cached_encoder
from asif_qdrant_evaluation.methods import (
    METHODS,
    AnchorSet,
    FittedMethod,
    Method,
    MethodContext,
    PromptSet,
)

__all__ = ["FASHION_TEMPLATES", "TUX_CATEGORY_PROMPTS", "TUX_TEMPLATES", "EvalContext"]

T = TypeVar("T")

#: How each Tux Paint top-level category is said in a prompt: the demo's table, shared.
TUX_CATEGORY_PROMPTS: dict[str, str] = CATEGORY_PROMPTS
#: Prompt templates for the Tux Paint categories (the first is the single-template baseline).
TUX_TEMPLATES: tuple[str, ...] = (
    "a picture of {}.",
    "a photo of {}.",
    "an image of {}.",
    "a cut-out photo of {}.",
    "a drawing of {}.",
    "a close-up photo of {}.",
)
#: Prompt templates for Fashion-MNIST (the first is the single-template baseline).
FASHION_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of the {}.",
    "a blurry photo of a {}.",
    "a photo of a {}, a type of clothing.",
)


class EvalContext:
    """Everything a task needs, loaded lazily and memoised.

    Args:
        config: The evaluation's settings.
        assets: Where the data is.
        cache: The embedding cache.
        workdir: A folder for temporary models.
        show_progress_bar: Progress bars while encoding and over folds.
        encoders: Already loaded encoders by short name (``{"lite0": encoder}``), used
            instead of loading them when an input is not in the cache.
    """

    def __init__(
        self,
        config: EvalConfig,
        assets: Assets,
        cache: EmbeddingCache,
        workdir: Path,
        *,
        show_progress_bar: bool = True,
        encoders: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self._loaded = dict(encoders or {})
        self.assets = assets
        self.cache = cache
        self.workdir = Path(workdir)
        self.out_dir: Path | None = None
        self.show_progress_bar = show_progress_bar
        #: Which assets (datasets, pools, encoders) are installed (:meth:`Assets.available`).
        self.available: dict[str, bool] = assets.available()
        self._encoders: dict[str, CachedEncoder] = {}
        self._memo: dict[Any, Any] = {}
        self.checks: list[dict[str, Any]] = []

    def memo(self, key: Any, make: Callable[[], T]) -> T:
        """``make()``, computed once per context and ``key``."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]  # type: ignore[no-any-return]

    # -- availability --------------------------------------------------------------------
    def has(self, what: str) -> bool:
        """Whether an asset (dataset, pool or encoder) is available."""
        return bool(self.available.get(what, False))

    def pool_names(self) -> tuple[str, ...]:
        """The configured pools that are installed, ``tuxpaint`` first."""
        names = [n for n in self.config.pools if self.has(n)]
        names.sort(key=lambda n: n != "tuxpaint")
        return tuple(names)

    def pool_variants(self) -> list[tuple[str, ...]]:
        """Pools the comparisons report: Tux Paint alone, and the configured mix."""
        full = self.pool_names()
        out = []
        if "tuxpaint" in full:
            out.append(("tuxpaint",))
        if full and full not in out:
            out.append(full)
        return out

    # -- encoders and embeddings ---------------------------------------------------------
    def encoder(self, short: str) -> CachedEncoder:
        """The cached encoder of a short name."""
        if short not in self._encoders:
            enc = cached_encoder(
                short, self.cache, self.assets, show_progress_bar=self.show_progress_bar
            )
            if short in self._loaded:
                enc.use(self._loaded[short])
            self._encoders[short] = enc
        return self._encoders[short]

    def embed(self, items: Sequence[Any], short: str) -> np.ndarray:
        """Embeddings of ``items`` by encoder ``short`` (from the cache when possible)."""
        key = ("embed", short, id(items), len(items))
        if key in self._memo:
            return self._memo[key][1]  # type: ignore[no-any-return]
        out = self.encoder(short).embed(list(items))
        self._memo[key] = (items, out)  # keep items alive so that id() stays unique
        return out

    def encoders_used(self) -> dict[str, dict[str, Any]]:
        """Per encoder used: name, cache hits, encoded inputs and encoding seconds."""
        return {
            short: {
                "name": enc.name,
                "cache_hits": enc.hits,
                "encoded": enc.misses,
                "encode_seconds": round(enc.encode_seconds, 2),
            }
            for short, enc in self._encoders.items()
        }

    # -- data ----------------------------------------------------------------------------
    def tux(self) -> PairSet:
        """The Tux Paint test pairs (one stamp per caption)."""
        limit = self.config.tuxpaint_limit
        return self.memo("tux", lambda: load_tuxpaint(self.assets, limit=limit))

    def folds(self) -> np.ndarray:
        """Fold index of each Tux Paint pair (stratified by category)."""
        cfg = self.config
        return self.memo(
            "folds", lambda: kfold_groups(self.tux().categories, folds=cfg.folds, seed=cfg.seed)
        )

    def pool(self, names: tuple[str, ...]) -> PairSet:
        """Anchor pool made of ``names`` (Tux Paint first, with the same pairs as :meth:`tux`)."""

        def load() -> PairSet:
            cfg = self.config
            limits = {
                "tuxpaint": cfg.tuxpaint_limit,
                "openclipart": cfg.openclipart_limit,
                "emoji": cfg.emoji_limit,
            }
            pool = load_pool(list(names), self.assets, limits=limits)
            if "tuxpaint" in names and pool.captions[: len(self.tux())] != self.tux().captions:
                raise InvalidInputError("The pool's Tux Paint pairs differ from the test pairs.")
            return pool

        return self.memo(("pool", names), load)

    def pool_label(self, names: tuple[str, ...]) -> str:
        """``"tuxpaint+emoji (2,585)"``: the pool's name and size."""
        return f"{'+'.join(names)} ({len(self.pool(names)):,})"

    def fold_anchor_index(self, names: tuple[str, ...], fold: int | None) -> np.ndarray:
        """Pool rows usable as anchors when Tux Paint fold ``fold`` is the test set."""
        pool = self.pool(names)
        keep = np.ones(len(pool), dtype=bool)
        if fold is not None and "tuxpaint" in names:
            keep[: len(self.tux())] = self.folds() != fold
        return np.flatnonzero(keep)

    def anchors(self, names: tuple[str, ...], image: str, text: str) -> AnchorSet:
        """The pool's anchor embeddings by the two encoders."""
        pool = self.pool(names)
        return AnchorSet(
            self.embed(pool.images, image), self.embed(pool.captions, text), pool.captions
        )

    def fashion(self) -> LabeledImages:
        """The Fashion-MNIST test images used (``fashion_per_class`` per class)."""
        cfg = self.config
        return self.memo(
            "fashion",
            lambda: load_fashion_mnist(
                self.assets, split="test", per_class=cfg.fashion_per_class, seed=cfg.seed
            )[0],
        )

    def prompts(self, labels: Sequence[str], templates: Sequence[str], text: str) -> PromptSet:
        """Label prompts embedded by the text encoder ``text``."""
        texts = [t.format(lab) for lab in labels for t in templates]
        emb = self.encoder(text).embed(texts)
        return PromptSet(
            list(labels), list(templates), emb.reshape(len(labels), len(templates), -1)
        )

    def tux_prompts(self, text: str) -> tuple[PromptSet, np.ndarray]:
        """Prompts of the Tux Paint categories, and each stamp's category index."""
        tux = self.tux()
        classes = sorted(set(tux.categories))
        labels = [TUX_CATEGORY_PROMPTS.get(c, c) for c in classes]
        truth = np.array([classes.index(c) for c in tux.categories])
        return self.prompts(labels, TUX_TEMPLATES, text), truth

    # -- methods -------------------------------------------------------------------------
    def method(self, name: str, image: str, text: str) -> Method:
        """A method, wired to the cached encoders ``image`` and ``text``."""
        if name not in METHODS:
            raise InvalidParameterError(
                f"Unknown method {name!r}; the methods are {', '.join(METHODS)}."
            )
        return METHODS[name](
            MethodContext(
                image_encoder=self.encoder(image),
                text_encoder=self.encoder(text),
                workdir=self.workdir,
                checks=self.checks,
                options={
                    "csa_dim": self.config.csa_dim,
                    "csa_ridge": self.config.csa_ridge,
                    "rrf_k": self.config.rrf_k,
                    "classify_spread": self.config.classify_spread,
                },
            )
        )

    def fit(self, method: Method, anchors: AnchorSet) -> FittedMethod:
        """``method`` fitted on ``anchors`` with the configured ``k`` and ``p``."""
        return method.fit(anchors, k=self.config.k, p=self.config.p)

    def progress(self, iterable: Iterable[T], *, desc: str, unit: str = "fold") -> Iterable[T]:
        """``iterable`` with a progress bar when progress bars are on."""
        return progress_bar(iterable, desc=desc, unit=unit, show=self.show_progress_bar)
