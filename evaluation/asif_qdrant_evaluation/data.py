"""The evaluation's data: anchor pools of image-caption pairs and labelled test images.

Anchor pools (all offline, see :mod:`asif_qdrant_evaluation.assets`):

* ``tuxpaint``: the captioned Tux Paint stamps (cut-out photos). A caption used by several
  stamps ("A frog.", twice) is kept for its first stamp only, so that every caption names one
  image and no anchor duplicates a test caption (674 of the 785 stamps).
* ``openclipart``: clip art whose title (and keywords) come from the SVG's RDF metadata. Junk
  titles are filtered: empty ones, collection names used by more than 3 files ("gramastar",
  1,375 times), and titles naming a collection or author ("Clipart by ...", "... theme").
  One image per distinct title; the few PNGs too large for PIL's decompression-bomb guard
  (rendered at up to 623 megapixels) are left out.
* ``emoji``: Google's emoji PNGs (npm ``emoji-datasource-google``) captioned with their CLDR
  English name and keywords ("grinning face (face, grin)").

Test sets: the Tux Paint stamps themselves (caption retrieval, and zero-shot classification
into their 16 top-level categories, in k folds so that anchors never contain a test stamp),
and the Fashion-MNIST test set (zero-shot classification into 10 classes).

Example:
    >>> from asif_qdrant_evaluation.data import PairSet, kfold_groups
    >>> pairs = PairSet("toy", ["a.png", "b.png", "c.png"], ["A.", "B.", "C."], ["x", "y", "x"])
    >>> len(pairs), pairs.subset([2, 0]).captions
    (3, ['C.', 'A.'])
    >>> sorted(kfold_groups(["x", "y", "x", "y"], folds=2, seed=0).tolist())
    [0, 0, 1, 1]
"""

from __future__ import annotations

import gzip
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from asif_qdrant.errors import InvalidInputError, check_int

from asif_qdrant_evaluation.assets import Assets, MissingDataError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "POOLS",
    "LabeledImages",
    "PairSet",
    "even_subset",
    "kfold_grouped",
    "kfold_groups",
    "load_emoji",
    "load_fashion_mnist",
    "load_openclipart",
    "load_pool",
    "load_tuxpaint",
    "stamp_folder",
    "stamp_object",
]

#: Fashion-MNIST class names as said in a prompt (index = label).
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)


@dataclass
class PairSet:
    """Image-caption pairs: a pool of anchors, or a test set of pairs.

    Attributes:
        name: What the set is (``"tuxpaint"``, ``"openclipart"``, ``"emoji"``, or a mix).
        images: One image per pair: a file path, or a numpy array.
        captions: One caption per pair.
        categories: One category per pair (Tux Paint top-level folder, emoji group, ...).
        sources: The pool each pair comes from (filled with ``name`` when not given).
    """

    name: str
    images: list[Any]
    captions: list[str]
    categories: list[str]
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = [self.name] * len(self.images)
        n = len(self.images)
        if not (len(self.captions) == len(self.categories) == len(self.sources) == n):
            raise InvalidInputError(
                f"PairSet {self.name!r} needs one caption, category and source per image "
                f"({n}). Got {len(self.captions)}, {len(self.categories)}, {len(self.sources)}."
            )

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Sequence[int] | np.ndarray) -> PairSet:
        """The pairs at ``index``, in that order."""
        idx = [int(i) for i in index]
        return PairSet(
            self.name,
            [self.images[i] for i in idx],
            [self.captions[i] for i in idx],
            [self.categories[i] for i in idx],
            [self.sources[i] for i in idx],
        )

    def counts(self) -> dict[str, int]:
        """Pairs per source pool."""
        return dict(Counter(self.sources))

    @staticmethod
    def concat(sets: Sequence[PairSet]) -> PairSet:
        """One set holding every pair of ``sets``, in order; named ``a+b+c``."""
        return PairSet(
            "+".join(s.name for s in sets),
            [x for s in sets for x in s.images],
            [x for s in sets for x in s.captions],
            [x for s in sets for x in s.categories],
            [x for s in sets for x in s.sources],
        )


@dataclass
class LabeledImages:
    """Images with class labels, for zero-shot classification.

    Attributes:
        name: The test set's name.
        images: The images (file paths or arrays).
        labels: ``int`` class index per image.
        class_names: The class names, as said in prompts.
    """

    name: str
    images: list[Any]
    labels: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.images)


def even_subset(n: int, limit: int | None) -> np.ndarray:
    """``limit`` indices spread evenly over ``range(n)`` (all of them when ``limit`` is None).

    Example:
        >>> even_subset(10, 4).tolist()
        [0, 2, 5, 7]
    """
    if limit is None or limit >= n:
        return np.arange(n)
    limit = check_int("limit", "even_subset", limit, minimum=0)
    return (np.arange(limit) * n // limit).astype(np.int64)


def kfold_groups(categories: Sequence[str], *, folds: int, seed: int = 0) -> np.ndarray:
    """Assign each item to one of ``folds`` folds, stratified by category, deterministically.

    Within each category (in sorted order) the items are shuffled with ``seed`` and dealt
    round-robin, continuing where the previous category stopped, so folds differ in size by
    at most one.

    Args:
        categories: One category per item.
        folds: Number of folds, >= 2.
        seed: Seed of the shuffle.

    Returns:
        The fold index of each item.

    Example:
        >>> kfold_groups(["a"] * 5, folds=2).tolist().count(0)
        3
    """
    folds = check_int("folds", "kfold_groups", folds, minimum=2)
    rng = np.random.default_rng(seed)
    cats = list(categories)
    out = np.zeros(len(cats), dtype=np.int64)
    nxt = 0
    for cat in sorted(set(cats)):
        idx = np.array([i for i, c in enumerate(cats) if c == cat])
        idx = idx[rng.permutation(len(idx))]
        for j, i in enumerate(idx):
            out[i] = (nxt + j) % folds
        nxt = (nxt + len(idx)) % folds
    return out


def kfold_grouped(
    categories: Sequence[str], groups: Sequence[Any], *, folds: int, seed: int = 0
) -> np.ndarray:
    """Folds that keep every group whole, balanced per category and overall, deterministically.

    Items sharing a group (not ``None``) go to the same fold; ``None`` items are groups of one.
    Within each category (sorted), the groups are shuffled with ``seed``, sorted by size
    (largest first) and each goes to the fold holding the fewest items of that category, then
    the fewest items overall, then the lowest index.

    Args:
        categories: One category per item.
        groups: One group key per item (``None``: the item alone).
        folds: Number of folds, >= 2.
        seed: Seed of the shuffle.

    Returns:
        The fold index of each item.

    Example:
        >>> f = kfold_grouped(["a"] * 4, ["x", "x", None, None], folds=2)
        >>> bool(f[0] == f[1]), sorted(f.tolist())
        (True, [0, 0, 1, 1])
    """
    folds = check_int("folds", "kfold_grouped", folds, minimum=2)
    cats, keys = list(categories), list(groups)
    if len(cats) != len(keys):
        raise InvalidInputError(
            f"kfold_grouped needs one group per item ({len(cats)}). Got {len(keys)}."
        )
    rng = np.random.default_rng(seed)
    out = np.zeros(len(cats), dtype=np.int64)
    total = np.zeros(folds, dtype=np.int64)
    for cat in sorted(set(cats)):
        members: dict[Any, list[int]] = {}
        for i, (c, g) in enumerate(zip(cats, keys, strict=True)):
            if c == cat:
                members.setdefault(("g", g) if g is not None else ("i", i), []).append(i)
        units = list(members.values())
        units = [units[j] for j in rng.permutation(len(units))]
        units.sort(key=len, reverse=True)  # stable: equal sizes keep the shuffled order
        per_cat = np.zeros(folds, dtype=np.int64)
        for unit in units:
            f = min(range(folds), key=lambda j: (per_cat[j], total[j], j))
            out[unit] = f
            per_cat[f] += len(unit)
            total[f] += len(unit)
    return out


# -------------------------------------------------------------------------------------------
# Tux Paint
# -------------------------------------------------------------------------------------------


def load_tuxpaint(assets: Assets, *, limit: int | None = None) -> PairSet:
    """The Tux Paint stamps, one stamp per distinct caption.

    Args:
        assets: Where the stamps are.
        limit: Keep this many, spread evenly over the sorted stamps (quick runs).

    Returns:
        The pairs; categories are the 16 top-level folders.
    """
    from asif_qdrant.pools import load_tuxpaint as load

    pairs = load(assets.tuxpaint_dir)
    pairs = [pairs[i] for i in even_subset(len(pairs), limit)]
    return PairSet(
        "tuxpaint",
        [p.image for p in pairs],
        [p.caption for p in pairs],
        [str(p.metadata.get("category", "")) for p in pairs],
    )


def stamp_folder(image: str | os.PathLike[str]) -> str:
    """The folder a stamp sits in (its finest sub-category, e.g. ``.../animals/birds``).

    Example:
        >>> stamp_folder("/s/food/fruit/apple_red.png")
        '/s/food/fruit'
    """
    return Path(image).parent.as_posix()


def stamp_object(image: str | os.PathLike[str], category: str) -> str | None:
    """The object a stamp shows, from its file name: variants of one object share it.

    The key is the category and the file name up to its first ``_`` or ``-``, lower-cased,
    trailing digits removed (``apple_red``, ``apple_fuji`` -> ``food/apple``;
    ``gnu-sitting``, ``gnu-stand`` -> ``animals/gnu``; ``grave-a`` ... ``grave-h``; US and
    Canadian ``001penny``). A stem shorter than 3 characters (``t_glove``, letters ``a``,
    ``A``) says nothing: ``None``.

    Example:
        >>> stamp_object("/s/food/fruit/apple_granny_smith.png", "food")
        'food/apple'
        >>> stamp_object("/s/clothes/t_glove.png", "clothes") is None
        True
    """
    stem = re.split(r"[_\-]", Path(image).stem.lower())[0].rstrip("0123456789")
    return f"{category}/{stem}" if len(stem) >= 3 else None


# -------------------------------------------------------------------------------------------
# openclipart and emoji: the library's pool loaders (asif_qdrant.pools), as PairSets
# -------------------------------------------------------------------------------------------


def _pair_set(name: str, load: Any) -> PairSet:
    try:
        pairs = load()
    except InvalidInputError as e:
        raise MissingDataError(str(e)) from e
    return PairSet(
        name,
        [p.image for p in pairs],
        [p.caption for p in pairs],
        [str(p.metadata.get("category", "")) for p in pairs],
    )


def load_openclipart(assets: Assets, *, limit: int | None = None) -> PairSet:
    """Openclipart images captioned by their RDF title (:func:`asif_qdrant.pools.load_openclipart`).

    Args:
        assets: Where ``openclipart-svg`` and ``openclipart-png`` are installed.
        limit: Keep this many, spread evenly over the sorted paths (None: all).

    Raises:
        MissingDataError: If the packages are not installed.
    """
    from asif_qdrant.pools import load_openclipart as load

    return _pair_set("openclipart", lambda: load(assets.openclipart_dir, limit=limit))


def load_emoji(assets: Assets, *, limit: int | None = None) -> PairSet:
    """Google's emoji captioned with their CLDR name and keywords (:mod:`asif_qdrant.pools`).

    Raises:
        MissingDataError: If the emoji package is missing.
    """
    from asif_qdrant.pools import load_emoji as load

    return _pair_set(
        "emoji",
        lambda: load(assets.emoji_dir, cldr_annotations=assets.cldr_annotations, limit=limit),
    )


#: Anchor pool loaders by name.
POOLS = {"tuxpaint": load_tuxpaint, "openclipart": load_openclipart, "emoji": load_emoji}


def load_pool(
    names: Sequence[str], assets: Assets, *, limits: dict[str, int | None] | None = None
) -> PairSet:
    """Several pools, concatenated in the given order.

    Args:
        names: Pool names (keys of :data:`POOLS`).
        assets: Where the data is.
        limits: Optional size cap per pool name.

    Returns:
        The concatenated pairs; ``sources`` says which pool each pair came from.

    Raises:
        InvalidInputError: On an unknown pool name.
    """
    sets = []
    for name in names:
        if name not in POOLS:
            raise InvalidInputError(
                f"Unknown anchor pool {name!r}; the pools are {', '.join(sorted(POOLS))}."
            )
        sets.append(POOLS[name](assets, limit=(limits or {}).get(name)))
    return PairSet.concat(sets)


# -------------------------------------------------------------------------------------------
# Fashion-MNIST
# -------------------------------------------------------------------------------------------


def load_fashion_mnist(
    assets: Assets,
    *,
    split: str = "test",
    per_class: int | None = None,
    seed: int = 0,
    exclude: np.ndarray | None = None,
) -> tuple[LabeledImages, np.ndarray]:
    """Fashion-MNIST images (28x28 ``uint8`` arrays) with their labels.

    Args:
        assets: Where ``dataset-fashion-mnist`` is installed.
        split: ``"test"`` (10,000 images) or ``"train"`` (60,000).
        per_class: Keep this many per class, drawn with ``seed`` (all when ``None``).
        seed: Seed of the draw.
        exclude: Indices (into the split) never to draw.

    Returns:
        ``(images, indices)``: the images, and their indices in the split's files.

    Raises:
        InvalidInputError: If the dataset is not installed or ``split`` is unknown.
    """
    if split not in ("test", "train"):
        raise InvalidInputError(f"Fashion-MNIST split must be 'test' or 'train'. Got {split!r}.")
    prefix = "t10k" if split == "test" else "train"
    img_file = assets.fashion_mnist_dir / f"{prefix}-images-idx3-ubyte.gz"
    lab_file = assets.fashion_mnist_dir / f"{prefix}-labels-idx1-ubyte.gz"
    if not img_file.is_file() or not lab_file.is_file():
        raise MissingDataError(
            f"Fashion-MNIST is not installed ({img_file}): apt-get install dataset-fashion-mnist."
        )
    with gzip.open(img_file) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(lab_file) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    allowed = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        allowed[np.asarray(exclude, dtype=np.int64)] = False
    if per_class is None:
        idx = np.flatnonzero(allowed)
    else:
        rng = np.random.default_rng(seed)
        chosen = []
        for c in range(len(FASHION_MNIST_CLASSES)):
            pool = np.flatnonzero((labels == c) & allowed)
            chosen.append(rng.choice(pool, size=min(per_class, len(pool)), replace=False))
        idx = np.sort(np.concatenate(chosen))
    return (
        LabeledImages(
            f"fashion-mnist-{split}",
            [images[i] for i in idx],
            labels[idx],
            list(FASHION_MNIST_CLASSES),
        ),
        idx,
    )
