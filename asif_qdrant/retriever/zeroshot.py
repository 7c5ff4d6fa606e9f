"""Zero-shot classification: each label's prompts, stored once, scored against each image.

Each label's prompts become relative vectors, stored in a cached label collection (named
from the labels, templates, strategy and anchor version; edits drop the caches); each
image's sparse vector queries it. With several templates ``template_strategy`` says how
they combine: ``"mean-embedding"`` (the default: the mean of the prompts' text embeddings,
then one relative vector per label; the best on average in docs/RESULTS.md),
``"mean-relative"`` (the mean of the prompts' relative vectors, re-normalised) or ``"max"``
(each label scores its single best prompt, as the ASIF reference does).

Templates: ``{}`` (or ``{label}``) is where the label goes, as is; ``{a}`` is the article the
label needs (:func:`article`: "a", "an", or nothing when the label brings its own determiner,
as "an animal" or "the moon"; with nothing, the space after ``{a}`` goes too). The default
``"a photo of {a} {}."`` reads "a photo of an apple.", "a photo of an animal.". Templates
without ``{a}`` are used exactly as written. A model can keep its own default templates
(``ASIF(templates=...)``, stored in its fingerprint); :func:`prompt` builds every prompt.

Example:
    >>> v = mean_sparse([SparseVector([1, 2], [1.0, 0.0]), SparseVector([2], [1.0])])
    >>> v.indices.tolist(), [round(float(x), 4) for x in v.values]
    ([1, 2], [0.7071, 0.7071])
    >>> from asif_qdrant import ASIF
    >>> import tempfile, numpy as np
    >>> class Letters:  # a toy text encoder: letter counts
    ...     name, dim = "toy/letters", 3
    ...     def embed(self, batch, *, batch_size=32, show_progress_bar=None):
    ...         return np.array([[t.count(c) + 0.1 for c in "abc"] for t in batch])
    >>> rng = np.random.default_rng(0)
    >>> with ASIF(path=tempfile.mkdtemp(), k=4, image_encoder="precomputed/image",
    ...           text_encoder=Letters(), show_progress_bar=False) as asif:
    ...     _ = asif.add_anchor_embeddings(rng.random((9, 8)), rng.random((9, 3)))
    ...     vecs = asif.relative_from_embeddings(rng.random((2, 8)), "image")
    ...     scores = asif.classify_scores(vecs, ["a", "b", "c"], templates=["{}"])
    ...     labels = asif.classify(vecs, ["a", "b", "c"], templates=["{}"])
    ...     scores.shape, [["a", "b", "c"][j] for j in scores.argmax(axis=1)] == labels
    ((2, 3), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from asif_qdrant.errors import (
    InvalidInputError,
    InvalidParameterError,
    check_int,
    check_real,
    is_blank,
)
from asif_qdrant.fusion import rrf_scores
from asif_qdrant.relative import l2_normalize
from asif_qdrant.retriever import writes
from asif_qdrant.retriever.anchors import (
    classify_kp,
    embed_images,
    embed_texts,
    kp_key,
    relative,
)
from asif_qdrant.retriever.anchors import relative_from_embeddings as relative_of
from asif_qdrant.retriever.crossgap import csa_model
from asif_qdrant.retriever.layout import SPARSE
from asif_qdrant.retriever.search import shared_anchors
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.store.base import CollectionSpec, PointId, Record
from asif_qdrant.types import METHODS, ImageInput, SparseVector

__all__ = [
    "DEFAULT_TEMPLATES",
    "DEFAULT_TEMPLATE_STRATEGY",
    "DETERMINERS",
    "TEMPLATE_STRATEGIES",
    "TemplateStrategy",
    "article",
    "check_labels",
    "check_strategy",
    "check_templates",
    "classify",
    "init_classify_kp",
    "init_templates",
    "label_collection",
    "mean_sparse",
    "prompt",
    "prompt_vectors",
]

#: The prompt template used by ``ASIF.classify`` unless the call or the model gives others.
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of {a} {}.",)
#: First words after which ``{a}`` adds no article (compared in lower case); a first word
#: starting with a digit ("3 cats") counts too.
DETERMINERS: frozenset[str] = frozenset(
    {
        *("a", "an", "the", "this", "that", "these", "those", "some", "any", "no", "each"),
        *("every", "another", "my", "your", "his", "her", "its", "our", "their"),
        *("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    }
)
#: Words starting with a vowel letter but a consonant sound take "a" ("a unicorn", "a
#: European", "a user"); matched as prefixes of the first word, in lower case.
_A_BEFORE = ("eu", "ewe", "one", "uni", "use", "usu", "uten", "uti", "uku")
#: ... except these un- words ("an unidentified object", "an uninvited guest").
_AN_DESPITE = ("unid", "unim", "unin")
#: Words starting with a silent h take "an" ("an hour", "an honest man", "an heir").
_AN_BEFORE = ("hour", "honest", "honor", "honour", "heir")
#: Letters whose spoken name starts with a vowel sound: an acronym starting with one
#: takes "an" ("an MRI", "an SUV"; but "a DVD", "a UFO").
_AN_LETTERS = frozenset("AEFHILMNORSX")
#: How several prompt templates of one label combine (see the module docstring).
TemplateStrategy = Literal["max", "mean-relative", "mean-embedding"]
TEMPLATE_STRATEGIES: tuple[str, ...] = ("max", "mean-relative", "mean-embedding")
#: The default strategy: the best on average in the evaluation (docs/RESULTS.md).
DEFAULT_TEMPLATE_STRATEGY: TemplateStrategy = "mean-embedding"


def mean_sparse(vectors: Sequence[SparseVector]) -> SparseVector:
    """The mean of sparse vectors, re-normalised to unit length (ids in decreasing weight)."""
    weights: dict[int, float] = {}
    for v in vectors:
        for i, w in zip(v.indices.tolist(), v.values.tolist(), strict=True):
            weights[i] = weights.get(i, 0.0) + w / len(vectors)
    ids = sorted(weights, key=lambda i: (-weights[i], i))
    values = np.array([weights[i] for i in ids], dtype=np.float64)
    norm = float(np.linalg.norm(values))
    if norm > 0:
        values = values / norm
    return SparseVector(indices=np.array(ids, dtype=np.uint64), values=values)


def check_strategy(owner: str, strategy: Any) -> TemplateStrategy:
    """Validate ``template_strategy``."""
    if strategy not in TEMPLATE_STRATEGIES:
        raise InvalidParameterError(
            f"The 'template_strategy' parameter of {owner} must be one of "
            f"{', '.join(repr(s) for s in TEMPLATE_STRATEGIES)}. Got {strategy!r:.100} instead."
        )
    return strategy  # type: ignore[no-any-return]


def check_labels(
    labels: Sequence[str], templates: Sequence[str] | None, stored: Sequence[str] | None = None
) -> tuple[list, list]:
    """Validated ``(labels, templates)``.

    Templates default to the model's ``stored`` ones, else :data:`DEFAULT_TEMPLATES`.
    """
    labels = list(labels)
    if (
        len(labels) < 1
        or len(set(labels)) != len(labels)
        or not all(isinstance(x, str) for x in labels)
    ):
        raise InvalidParameterError(
            "The 'labels' parameter of ASIF.classify must be a non-empty list of distinct "
            f"str. Got {labels!r:.200} instead."
        )
    return labels, check_templates("ASIF.classify", templates or stored or DEFAULT_TEMPLATES)


def check_templates(owner: str, templates: Sequence[str]) -> list[str]:
    """The templates as a list, each checked to hold ``{}`` or ``{label}``."""
    for t in templates:
        if not isinstance(t, str) or ("{}" not in t and "{label}" not in t):
            raise InvalidParameterError(
                f"Each template of {owner} must be a str containing '{{}}' (or "
                f"'{{label}}') where the label goes, and optionally '{{a}}' for its "
                f"article. Got {t!r:.100} instead."
            )
    return list(templates)


def init_templates(m: ModelState, templates: Sequence[str] | None) -> None:
    """Store the model's own default templates in its fingerprint (``[]``: back to none).

    ``None`` keeps the stored ones. Written now when the model exists, else with its first
    anchors.
    """
    if templates is None:
        return
    new = check_templates("ASIF", templates) or None
    if new == m.fingerprint.templates:
        return
    m.fingerprint.templates = new
    if m.store.has_collection(m.layout.meta):
        writes.write_fingerprint(m)


def init_classify_kp(
    m: ModelState, k: int | None, p: float | None, spread: float | None = None
) -> None:
    """Store zero-shot classification's own ``k``, ``p`` or spread (validated by ``ASIF``).

    ``None`` keeps the stored value; the model's own ``k`` is stored as None (the same
    vectors). A ``p`` is stored as given (it replaces the spread rule: ``p`` equal to the
    model's gives the paper's classification); a ``spread`` replaces a stored ``p``. Written
    now when the model exists, else with its first anchors.
    """
    fp = m.fingerprint
    new_k = fp.classify_k if k is None else (None if k == fp.k else k)
    new_p, new_spread = fp.classify_p, fp.classify_spread
    if p is not None:
        new_p = float(p)
    if spread is not None:
        new_p, new_spread = None, float(spread)
    if (new_k, new_p, new_spread) == (fp.classify_k, fp.classify_p, fp.classify_spread):
        return
    fp.classify_k, fp.classify_p, fp.classify_spread = new_k, new_p, new_spread
    if m.store.has_collection(m.layout.meta):
        writes.write_fingerprint(m)


def article(label: str) -> str:
    """The article ``{a}`` puts before ``label``: ``"a"``, ``"an"`` or ``""`` (none).

    None when the label's first word is a determiner (:data:`DETERMINERS`) or a number;
    otherwise "an" before a vowel sound, "a" before a consonant sound, judged from the first
    letters: a vowel letter, except the prefixes that sound like "you" ("a unicorn", "a
    European"); a consonant, except a silent h ("an hour"); an acronym (a first word in
    capitals) by its first letter's name ("an MRI", "a DVD"). Plurals and mass
    nouns are not recognised ("a photo of a food."): give such labels their own determiner
    ("some food") or use a template without ``{a}``.

    Examples:
        >>> [article(x) for x in ["apple", "banana", "an animal", "A vehicle", "The Moon"]]
        ['an', 'a', '', '', '']
        >>> [article(x) for x in ["hour", "unicorn", "umbrella", "European car", "MRI scan"]]
        ['an', 'a', 'an', 'a', 'an']
        >>> [article(x) for x in ["DVD", "3 cats", "some food", "", "honest man", "X-ray"]]
        ['a', '', '', '', 'an', 'an']
    """
    words = label.split()
    if not words:
        return ""
    first = words[0]
    low = first.lower()
    if low in DETERMINERS or first[0].isdigit():
        return ""
    letters = "".join(c for c in first.split("-")[0] if c.isalpha())
    if letters.isupper():
        return "an" if letters[0] in _AN_LETTERS else "a"
    if low.startswith(_AN_BEFORE):
        return "an"
    if low.startswith(_A_BEFORE) and not low.startswith(_AN_DESPITE):
        return "a"
    return "an" if low[:1] in set("aeiou") else "a"


def prompt(template: str, label: str) -> str:
    """The prompt of ``label`` in ``template``: ``{}`` / ``{label}`` the label, ``{a}`` its article.

    Examples:
        >>> prompt("a photo of {a} {}.", "an animal"), prompt("a photo of {a} {}.", "owl")
        ('a photo of an animal.', 'a photo of an owl.')
        >>> prompt("a picture of {}.", "an animal"), prompt("{label}!", "cat")
        ('a picture of an animal.', 'cat!')
    """
    art = article(label)
    if not art:
        template = template.replace("{a} ", "").replace("{a}", "")
    return template.replace("{label}", "{}").format(label, a=art)


def _prompts(labels: list[str], templates: list[str]) -> list[str]:
    return [prompt(t, label) for label in labels for t in templates]


def label_collection(
    m: ModelState, labels: list[str], templates: list[str], strategy: TemplateStrategy = "max"
) -> str:
    """The cached collection of label prompt vectors (built on first use).

    One point per prompt for ``max``, one per label (its templates combined) otherwise.
    """
    key_parts: list[Any] = [labels, templates, m.fingerprint.anchor_version]
    kp = classify_kp(m)
    if kp != (m.fingerprint.k, m.fingerprint.p):
        key_parts.append(kp_key(kp))  # the model's own (k, p) keep the keys of earlier caches
    if strategy != "max" and len(templates) > 1:
        key_parts.append(strategy)
    else:
        strategy = "max"  # one template: every strategy is the same vector
    coll = m.layout.labels(key_parts)
    n_points = len(labels) * (len(templates) if strategy == "max" else 1)
    if m.store.has_collection(coll) and m.store.count(coll) == n_points:
        return coll
    writes.drop_collection(m.store, coll)
    texts = _prompts(labels, templates)
    points: list[tuple[dict[str, Any], SparseVector]]
    if strategy == "max":
        vecs = embed_texts(m, texts, kp=kp)
        points = [
            (
                {
                    "label": labels[i // len(templates)],
                    "label_index": i // len(templates),
                    "prompt": text,
                },
                v,
            )
            for i, (text, v) in enumerate(zip(texts, vecs, strict=True))
        ]
    else:
        for i, t in enumerate(texts):
            if is_blank(t):
                raise InvalidInputError(f"Prompt {i} is empty (or only whitespace).")
        n_t = len(templates)
        if strategy == "mean-embedding":
            emb = l2_normalize(m.encode(texts, "text"))
            vecs = relative_of(m, emb.reshape(len(labels), n_t, -1).mean(axis=1), "text", kp)
        else:
            each = embed_texts(m, texts, kp=kp)
            vecs = [mean_sparse(each[j * n_t : (j + 1) * n_t]) for j in range(len(labels))]
        points = [
            (
                {
                    "label": label,
                    "label_index": j,
                    "prompt": " | ".join(texts[j * n_t : (j + 1) * n_t]),
                    "strategy": strategy,
                },
                v,
            )
            for j, (label, v) in enumerate(zip(labels, vecs, strict=True))
        ]
    writes.create_collection(m.store, coll, CollectionSpec(sparse=(SPARSE,)))
    writes.upsert(
        m.store,
        coll,
        [Record(i, payload, sparse={SPARSE: v}) for i, (payload, v) in enumerate(points)],
    )
    return coll


def prompt_vectors(
    m: ModelState, labels: list[str], templates: list[str], strategy: TemplateStrategy = "max"
) -> list[tuple[int, str, SparseVector]]:
    """``(label_index, prompt, vector)`` of every label prompt vector, via the cache."""
    coll = label_collection(m, labels, templates, strategy)
    out = []
    for rec in m.store.scroll(coll, with_vectors=[SPARSE]):
        vec = rec.sparse.get(SPARSE, SparseVector(np.zeros(0), np.zeros(0)))
        out.append((int(rec.payload["label_index"]), str(rec.payload["prompt"]), vec))
    return out


def classify(
    m: ModelState,
    images: Sequence[ImageInput] | Sequence[SparseVector],
    labels: Sequence[str],
    templates: Sequence[str] | None,
    template_strategy: Any,
    min_score: float | None,
    min_shared_anchors: int | None,
    unknown_label: str,
    method: Any,
) -> tuple[list[str], np.ndarray]:
    """Predicted labels and the ``(n_images, n_labels)`` scores (see ``ASIF.classify``)."""
    labels_, templates_ = check_labels(labels, templates, m.fingerprint.templates)
    strategy = check_strategy("ASIF.classify", template_strategy)
    owner = "ASIF.classify"
    floor = None if min_score is None else check_real("min_score", owner, min_score)
    shared = (
        None
        if min_shared_anchors is None
        else check_int("min_shared_anchors", owner, min_shared_anchors, minimum=0)
    )
    if not isinstance(unknown_label, str):
        raise InvalidParameterError(
            "The 'unknown_label' parameter of ASIF.classify must be a str. Got "
            f"{unknown_label!r:.100} instead."
        )
    if method != "asif":
        scores = _csa_scores(m, list(images), labels_, templates_, strategy, method, shared)
        win = [int(j) for j in np.argmax(scores, axis=1)] if len(scores) else []
        pred = [
            unknown_label if floor is not None and scores[row, j] < floor else labels_[j]
            for row, j in enumerate(win)
        ]
        return pred, scores
    vecs, scores, best_prompt, coll = _asif_scores(m, images, labels_, templates_, strategy)
    winners = [int(j) for j in np.argmax(scores, axis=1)] if len(vecs) else []
    predicted = [labels_[j] for j in winners]
    if floor is not None:
        predicted = [
            unknown_label if scores[row, j] < floor else lab
            for row, (j, lab) in enumerate(zip(winners, predicted, strict=True))
        ]
    if shared is not None:
        prompt_ids = list({p: None for bp in best_prompt for p in bp.values()})
        stored = {
            r.id: r.sparse.get(SPARSE)
            for r in m.store.retrieve(coll, prompt_ids, with_vectors=[SPARSE])
        }
        predicted = [
            unknown_label
            if shared_anchors(vec, stored.get(best_prompt[row].get(j, -1))) < shared
            else lab
            for row, (vec, j, lab) in enumerate(zip(vecs, winners, predicted, strict=True))
        ]
    return predicted, scores


def _asif_scores(
    m: ModelState,
    images: Sequence[Any],
    labels: list[str],
    templates: list[str],
    strategy: TemplateStrategy,
) -> tuple[list[SparseVector], np.ndarray, list[dict[int, PointId]], str]:
    """Each image's vector, label scores, best prompt per label, and the label collection."""
    coll = label_collection(m, labels, templates, strategy)
    items = list(images)
    if all(isinstance(x, SparseVector) for x in items):
        vecs: list[SparseVector] = list(items)
    else:
        vecs = embed_images(m, items, kp=classify_kp(m))
    n_prompts = m.store.count(coll)
    res = m.store.query_sparse(coll, SPARSE, vecs, n_prompts, with_payload=True)
    scores = np.zeros((len(vecs), len(labels)), dtype=np.float32)
    best_prompt: list[dict[int, PointId]] = [{} for _ in vecs]
    for row, hits in enumerate(res):
        for h in hits:
            j = int(h.payload["label_index"])
            if j not in best_prompt[row] or h.score > scores[row, j]:
                scores[row, j] = h.score
                best_prompt[row][j] = h.id
    return vecs, scores, best_prompt, coll


def _csa_scores(
    m: ModelState,
    images: list[Any],
    labels: list[str],
    templates: list[str],
    strategy: TemplateStrategy,
    method: Any,
    shared: int | None,
) -> np.ndarray:
    """Label scores with ``method="csa"`` or ``"hybrid"``."""
    if method not in METHODS:
        raise InvalidParameterError(
            "The 'method' parameter of ASIF.classify must be one of "
            f"{', '.join(repr(x) for x in METHODS)}. Got {method!r:.100} instead."
        )
    if shared is not None:
        raise InvalidParameterError(
            "'min_shared_anchors' of ASIF.classify works with method='asif' only. Got "
            f"method={method!r}."
        )
    if any(isinstance(x, SparseVector) for x in images):
        raise InvalidInputError(
            f"ASIF.classify with method={method!r} needs the images themselves (their "
            "embeddings are projected by CSA), not sparse vectors."
        )
    model = csa_model(m)
    assert model is not None
    unit = l2_normalize(m.encode(images, "image"))
    prompts = _prompts(labels, templates)
    emb = l2_normalize(m.encode(prompts, "text")).reshape(len(labels), len(templates), -1)
    q = model.query_vectors(unit, "image").astype(np.float64)
    if strategy == "max" or len(templates) == 1:
        each = model.transform(emb.reshape(len(prompts), -1), "text").astype(np.float64)
        scores = (q @ each.T).reshape(len(unit), len(labels), len(templates)).max(axis=2)
    else:
        if strategy == "mean-embedding":
            lab = model.transform(emb.mean(axis=1), "text")
        else:  # mean-relative: the mean of the prompts' CSA vectors
            t = model.transform(emb.reshape(len(prompts), -1), "text")
            lab = l2_normalize(t.reshape(len(labels), len(templates), -1).mean(axis=1))
        scores = q @ lab.astype(np.float64).T
    if method == "hybrid":
        vecs = relative(m, unit, "image", classify_kp(m))[0]
        asif_scores = _asif_scores(m, vecs, labels, templates, strategy)[1]
        # Ranks from 0 = best; ties broken by the label order, deterministically.
        scores = rrf_scores(asif_scores, scores)
    return scores.astype(np.float32)
