"""Every ASIF score traced back to the anchor pairs behind it.

An ASIF score is the dot product of two sparse vectors over anchor ids, so it is exactly the
sum, over the anchors non-zero in both, of (query weight x item weight). Each of those
anchors is an image-caption pair a person can look at (paper, Fig. 6/7): the explanation of a
match lists them with both weights and their contribution, largest first, and the
contributions sum to the score. A query and an item that share no anchor score 0: that is
how ASIF knows when it does not know.

The same decomposition explains a zero-shot classification (why label A beat label B: the
per-anchor difference of the two contributions) and ranks anchors by how much they pushed
images of a labeled set towards wrong labels (:func:`audit_anchors`).

Example:
    >>> import numpy as np
    >>> from asif_qdrant.types import SparseVector
    >>> q = SparseVector(np.array([1, 2, 3]), np.array([0.8, 0.6, 0.0]))
    >>> item = SparseVector(np.array([2, 1, 9]), np.array([0.6, 0.6, 0.5]))
    >>> e = explain_vectors(q, item, {1: {"caption": "A cat."}, 2: {"caption": "A dog."}})
    >>> [(a.id, a.caption, round(a.contribution, 2)) for a in e.anchors]
    [(1, 'A cat.', 0.48), (2, 'A dog.', 0.36)]
    >>> round(e.score, 2), round(q.dot(item), 2)
    (0.84, 0.84)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from asif_qdrant.errors import CollectionNotFoundError, InvalidInputError, InvalidParameterError
from asif_qdrant.retriever.anchors import (
    anchor_payloads,
    classify_kp,
    embed_images,
    query_vectors,
)
from asif_qdrant.retriever.keys import stored_image
from asif_qdrant.retriever.layout import SPARSE
from asif_qdrant.retriever.state import ModelState
from asif_qdrant.retriever.zeroshot import (
    DEFAULT_TEMPLATE_STRATEGY,
    check_labels,
    check_strategy,
    prompt_vectors,
)
from asif_qdrant.types import SparseVector

if TYPE_CHECKING:
    from asif_qdrant.store.base import PointId

__all__ = [
    "AnchorContribution",
    "AnchorMargin",
    "AuditReport",
    "AuditRow",
    "Explanation",
    "LabelExplanation",
    "audit_anchors",
    "describe_input",
    "explain_label",
    "explain_match",
    "explain_vectors",
    "roc_auc",
]


# -- value types ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AnchorContribution:
    """One anchor pair shared by a query and an item.

    Attributes:
        id: The anchor id.
        caption: The anchor's caption.
        image: A reference to the anchor's image (its path or URL), when it was given as one.
        query_weight: The anchor's weight in the query's sparse vector.
        item_weight: Its weight in the item's sparse vector.
        contribution: ``query_weight * item_weight``: its share of the score.
    """

    id: int
    caption: str | None
    image: str | None
    query_weight: float
    item_weight: float
    contribution: float

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-serialisable)."""
        return {
            "id": self.id,
            "caption": self.caption,
            "image": self.image,
            "query_weight": self.query_weight,
            "item_weight": self.item_weight,
            "contribution": self.contribution,
        }


@dataclass(frozen=True)
class Explanation:
    """Why an item scores what it scores for a query.

    Attributes:
        score: The ASIF score, the sum of the contributions (the search score, up to the
            engine's float32 rounding).
        anchors: Every shared anchor, largest contribution first.
        query_anchors: Anchors with a positive weight in the query's vector.
        item_anchors: Anchors with a positive weight in the item's vector.
        query: The query, in words (its text, or a reference to its image).
        item: The item, in words (its caption or text, else its image reference).
        item_id: The catalog item's id (None when explaining two inputs).
        collection: The catalog (None when explaining two inputs).
        query_image: The query's image reference or object, for pictures.
        item_image: The item's image reference, for pictures.
    """

    score: float
    anchors: tuple[AnchorContribution, ...]
    query_anchors: int
    item_anchors: int
    query: str = ""
    item: str = ""
    item_id: PointId | None = None
    collection: str | None = None
    query_image: Any = field(default=None, repr=False, compare=False)
    item_image: Any = field(default=None, repr=False, compare=False)

    @property
    def shared(self) -> int:
        """How many anchors the query and the item share (0: "no match")."""
        return len(self.anchors)

    def top(self, n: int) -> tuple[AnchorContribution, ...]:
        """The ``n`` anchors contributing most."""
        return self.anchors[:n]

    def as_dict(self, top: int | None = None) -> dict[str, Any]:
        """Plain-Python form; ``top`` keeps only the largest contributions."""
        shown = self.anchors if top is None else self.anchors[:top]
        return {
            "query": self.query,
            "item": self.item,
            "item_id": self.item_id,
            "collection": self.collection,
            "score": self.score,
            "shared_anchors": self.shared,
            "query_anchors": self.query_anchors,
            "item_anchors": self.item_anchors,
            "anchors": [a.as_dict() for a in shown],
            "rest": float(sum(a.contribution for a in self.anchors[len(shown) :])),
        }

    def table(self, top: int = 10) -> str:
        """A text table of the largest contributions, for people."""
        head = (
            f"query: {_clip(self.query, 90)}\n"
            f"item:  {_clip(self.item, 90)}"
            + (f"  (id {self.item_id} in '{self.collection}')" if self.item_id is not None else "")
            + f"\nscore {self.score:.6f} = sum over {self.shared} shared anchors "
            f"(query has {self.query_anchors}, item has {self.item_anchors})"
        )
        if not self.anchors:
            return head + "\nno shared anchor: no match"
        rows = [
            f"{'#':>3} {'anchor':>7} {'query w':>8} {'item w':>8} {'contrib':>9} "
            f"{'share':>6}  caption"
        ]
        for r, a in enumerate(self.anchors[:top], 1):
            share = a.contribution / self.score if self.score else 0.0
            rows.append(
                f"{r:>3} {a.id:>7} {a.query_weight:8.4f} {a.item_weight:8.4f} "
                f"{a.contribution:9.6f} {share:6.1%}  {_clip(a.caption or '', 60)}"
            )
        rest = self.anchors[top:]
        if rest:
            rows.append(
                f"    ({len(rest)} more anchors contribute {sum(a.contribution for a in rest):.6f})"
            )
        return head + "\n" + "\n".join(rows)


@dataclass(frozen=True)
class AnchorMargin:
    """One anchor's part in "label A beat label B" for one image.

    Attributes:
        id: The anchor id.
        caption: Its caption.
        image: Its image reference.
        image_weight: Its weight in the image's vector.
        label_contribution: Its contribution to the score of label A (best prompt).
        versus_contribution: Its contribution to the score of label B (best prompt).
        difference: ``label_contribution - versus_contribution``.
    """

    id: int
    caption: str | None
    image: str | None
    image_weight: float
    label_contribution: float
    versus_contribution: float
    difference: float

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return {
            "id": self.id,
            "caption": self.caption,
            "image": self.image,
            "image_weight": self.image_weight,
            "label_contribution": self.label_contribution,
            "versus_contribution": self.versus_contribution,
            "difference": self.difference,
        }


@dataclass(frozen=True)
class LabelExplanation:
    """Why an image got label A rather than label B (zero-shot classification).

    Attributes:
        label: Label A (default: the predicted one).
        versus: Label B (default: the runner-up), or None with a single label.
        scores: Every label's score (its best prompt, as :meth:`ASIF.classify` scores it).
        explanation: The image against label A's best prompt.
        versus_explanation: The image against label B's best prompt.
        margins: Per anchor, the difference of the two contributions, largest first; they
            sum to ``scores[label] - scores[versus]``.
    """

    label: str
    versus: str | None
    scores: dict[str, float]
    explanation: Explanation
    versus_explanation: Explanation | None
    margins: tuple[AnchorMargin, ...]

    @property
    def margin(self) -> float:
        """``score(label) - score(versus)``, the sum of the per-anchor differences."""
        return float(sum(m.difference for m in self.margins))

    def as_dict(self, top: int | None = None) -> dict[str, Any]:
        """Plain-Python form."""
        shown = self.margins if top is None else self.margins[:top]
        return {
            "label": self.label,
            "versus": self.versus,
            "scores": self.scores,
            "margin": self.margin,
            "label_prompt": self.explanation.item,
            "versus_prompt": self.versus_explanation.item if self.versus_explanation else None,
            "anchors": [m.as_dict() for m in shown],
            "explanation": self.explanation.as_dict(top),
        }

    def table(self, top: int = 10) -> str:
        """A text table: the anchors that made A beat B, largest difference first."""
        head = (
            f"image: {_clip(self.explanation.query, 90)}\n"
            f"'{self.label}' ({self.scores[self.label]:.6f}, prompt "
            f"{_clip(self.explanation.item, 50)!r})"
        )
        if self.versus is None or self.versus_explanation is None:
            return head + "\n" + self.explanation.table(top)
        head += (
            f" beat '{self.versus}' ({self.scores[self.versus]:.6f}, prompt "
            f"{_clip(self.versus_explanation.item, 50)!r}) by {self.margin:.6f}"
        )
        rows = [
            f"{'#':>3} {'anchor':>7} {'image w':>8} {'for A':>9} {'for B':>9} {'A - B':>9}  caption"
        ]
        for r, m in enumerate(self.margins[:top], 1):
            rows.append(
                f"{r:>3} {m.id:>7} {m.image_weight:8.4f} {m.label_contribution:9.6f} "
                f"{m.versus_contribution:9.6f} {m.difference:9.6f}  {_clip(m.caption or '', 50)}"
            )
        return head + "\n" + "\n".join(rows)


@dataclass(frozen=True)
class AuditRow:
    """How much one anchor pushed a labeled set's images towards wrong labels.

    Attributes:
        id: The anchor id.
        caption: Its caption.
        image: Its image reference.
        harm: How much score it pushed towards wrong labels (>= 0): its contributions to
            ``score(predicted) - score(true)`` of the wrong predictions that favour the
            wrong label, and to ``score(true) - score(runner-up)`` of the right ones that
            favour the runner-up.
        help: How much score it pushed towards the true labels (>= 0): the contributions
            of the other sign.
        net: ``harm - help`` (the sum of its contributions to the wrong predictions' margins
            minus those to the right ones'); the ranking key.
        wrong: Wrong predictions it pushed towards the wrong label.
    """

    id: int
    caption: str | None
    image: str | None
    harm: float
    help: float
    net: float
    wrong: int

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return {
            "id": self.id,
            "caption": self.caption,
            "image": self.image,
            "harm": self.harm,
            "help": self.help,
            "net": self.net,
            "wrong": self.wrong,
        }


@dataclass(frozen=True)
class AuditReport:
    """Anchors ranked by their responsibility for wrong zero-shot predictions.

    Attributes:
        accuracy: Top-1 accuracy on the labeled set.
        n: Images in the set.
        wrong: Wrong predictions.
        labels: The class names.
        predicted: The predicted label per image.
        anchors: Anchors with a positive ``net``, most harmful first.
    """

    accuracy: float
    n: int
    wrong: int
    labels: tuple[str, ...]
    predicted: tuple[str, ...]
    anchors: tuple[AuditRow, ...]

    def as_dict(self, top: int | None = None) -> dict[str, Any]:
        """Plain-Python form (without the per-image predictions)."""
        shown = self.anchors if top is None else self.anchors[:top]
        return {
            "accuracy": self.accuracy,
            "n": self.n,
            "wrong": self.wrong,
            "labels": list(self.labels),
            "anchors": [a.as_dict() for a in shown],
        }

    def table(self, top: int = 10) -> str:
        """A text table of the most harmful anchors."""
        head = (
            f"accuracy {self.accuracy:.3f} on {self.n} labeled images ({self.wrong} wrong); "
            f"{len(self.anchors)} anchors pushed more towards wrong labels than right ones\n"
            "harm: score an anchor pushed towards wrong labels; help: score it pushed towards "
            "the true labels;\nnet = harm - help (most harmful first); wrong: wrong "
            "predictions it pushed"
        )
        rows = [f"{'#':>3} {'anchor':>7} {'net':>9} {'harm':>9} {'help':>9} {'wrong':>5}  caption"]
        for r, a in enumerate(self.anchors[:top], 1):
            rows.append(
                f"{r:>3} {a.id:>7} {a.net:9.5f} {a.harm:9.5f} {a.help:9.5f} {a.wrong:>5}  "
                f"{_clip(a.caption or '', 50)}"
            )
        return head + "\n" + "\n".join(rows)


# -- pure decomposition ----------------------------------------------------------------------
def explain_vectors(
    query_vector: SparseVector,
    item_vector: SparseVector,
    anchors: Mapping[int, Mapping[str, Any]] | None = None,
    **meta: Any,
) -> Explanation:
    """Decompose ``query_vector . item_vector`` into per-anchor contributions.

    Args:
        query_vector: The query's sparse vector.
        item_vector: The item's sparse vector.
        anchors: Anchor payloads by id (``caption``, ``image``), for the captions.
        **meta: Further :class:`Explanation` fields (``query``, ``item``, ``item_id``, ...).

    Returns:
        The explanation; its ``score`` is the dot product (computed in float64).

    Example:
        >>> import numpy as np
        >>> a = SparseVector(np.array([5, 7]), np.array([0.6, 0.8]))
        >>> b = SparseVector(np.array([8]), np.array([1.0]))
        >>> e = explain_vectors(a, b)
        >>> e.score, e.shared
        (0.0, 0)
    """
    query, item = query_vector, item_vector
    anchors = anchors or {}
    qpos = query.values > 0
    ipos = item.values > 0
    qi, qv = query.indices[qpos].astype(np.int64), query.values[qpos].astype(np.float64)
    ii, iv = item.indices[ipos].astype(np.int64), item.values[ipos].astype(np.float64)
    common, ia, ib = np.intersect1d(qi, ii, assume_unique=True, return_indices=True)
    contrib = qv[ia] * iv[ib]
    order = np.lexsort((common, -contrib))
    rows = []
    for j in order:
        aid = int(common[j])
        payload = anchors.get(aid, {})
        rows.append(
            AnchorContribution(
                id=aid,
                caption=_opt_str(payload.get("caption")),
                image=stored_image(payload, f"anchor {aid}"),
                query_weight=float(qv[ia[j]]),
                item_weight=float(iv[ib[j]]),
                contribution=float(contrib[j]),
            )
        )
    return Explanation(
        score=float(contrib.sum()) if len(contrib) else 0.0,
        anchors=tuple(rows),
        query_anchors=int(qpos.sum()),
        item_anchors=int(ipos.sum()),
        **meta,
    )


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half).

    Example:
        >>> roc_auc([0.9, 0.8, 0.3], [0.1, 0.3])
        0.9166666666666666
    """
    pos = np.asarray(positive, np.float64)
    neg = np.asarray(negative, np.float64)
    if pos.size == 0 or neg.size == 0:
        raise InvalidInputError(
            f"roc_auc needs at least one positive and one negative score. Got {pos.size} and "
            f"{neg.size}."
        )
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


# -- with a model ----------------------------------------------------------------------------
def describe_input(x: Any) -> tuple[str, Any]:
    """A query or item in words, and its image (reference or object) when it is an image.

    Example:
        >>> from pathlib import Path
        >>> describe_input("a red car"), describe_input(Path("x.png"))
        (('a red car', None), ('x.png', 'x.png'))
    """
    if isinstance(x, str):
        return x, None
    if isinstance(x, SparseVector):
        return f"<sparse vector over {len(x)} anchors>", None
    if isinstance(x, os.PathLike):
        return str(x), str(x)
    if isinstance(x, bytes):
        return f"<image: {len(x)} bytes>", x
    shape = getattr(x, "shape", None) or getattr(x, "size", None)
    return f"<image {shape}>" if shape is not None else "<image>", x


def _item_text(payload: Mapping[str, Any]) -> str:
    for key in ("caption", "text", "image", "title", "name"):
        if payload.get(key):
            return str(payload[key])
    return ""


def explain_match(
    m: ModelState,
    query: Any,
    item: Any,
    collection: str | None = None,
) -> Explanation:
    """Explain the ASIF score of ``item`` for ``query`` (see :meth:`ASIF.explain`)."""
    (qvec,) = query_vectors(m, [query])
    qtext, qimage = describe_input(query)
    if collection is not None:
        if not m.store.has_collection(collection):
            raise CollectionNotFoundError(
                f"The catalog collection '{collection}' does not exist: index items into it "
                "with ASIF.index() first."
            )
        recs = m.store.retrieve(collection, [item], with_vectors=[SPARSE])
        if not recs:
            raise InvalidParameterError(
                f"The 'item' parameter of ASIF.explain must be the id of an item of "
                f"'{collection}'. Got {item!r}, which is not in it."
            )
        rec = recs[0]
        ivec = rec.sparse.get(SPARSE, SparseVector(np.zeros(0), np.zeros(0)))
        itext = _item_text(rec.payload)
        iimage = stored_image(rec.payload, f"item {rec.id!r} of '{collection}'")
        meta: dict[str, Any] = {"item_id": rec.id, "collection": collection}
    else:
        (ivec,) = query_vectors(m, [item])
        itext, iimage = describe_input(item)
        meta = {}
    shared = np.intersect1d(qvec.indices, ivec.indices)
    return explain_vectors(
        qvec,
        ivec,
        anchor_payloads(m, shared.tolist()),
        query=qtext,
        item=itext,
        query_image=qimage,
        item_image=iimage,
        **meta,
    )


def _best_prompts(
    image: SparseVector, prompts: list[tuple[int, str, SparseVector]], n_labels: int
) -> tuple[np.ndarray, list[int]]:
    """Per label: the best prompt's score and its position in ``prompts`` (max over templates)."""
    scores = np.zeros(n_labels)
    best = [-1] * n_labels
    for pos, (j, _, vec) in enumerate(prompts):
        s = image.dot(vec)
        if best[j] < 0 or s > scores[j]:
            scores[j], best[j] = s, pos
    return scores, best


def explain_label(
    m: ModelState,
    image: Any,
    labels: Sequence[str],
    templates: Sequence[str] | None = None,
    template_strategy: str | None = None,
    label: str | None = None,
    versus: str | None = None,
) -> LabelExplanation:
    """Why ``image`` got ``label`` rather than ``versus`` (see :meth:`ASIF.explain_label`)."""
    labels, templates = check_labels(labels, templates, m.fingerprint.templates)
    strategy = check_strategy("ASIF.explain_label", template_strategy or DEFAULT_TEMPLATE_STRATEGY)
    for name, value in (("label", label), ("versus", versus)):
        if value is not None and value not in labels:
            raise InvalidParameterError(
                f"The '{name}' parameter of ASIF.explain_label must be one of the labels "
                f"{labels!r:.200}. Got {value!r} instead."
            )
    if isinstance(image, SparseVector):
        ivec = image
    else:
        (ivec,) = embed_images(m, [image], kp=classify_kp(m))
    prompts = prompt_vectors(m, labels, templates, strategy)
    scores, best = _best_prompts(ivec, prompts, len(labels))
    order = [int(j) for j in np.argsort(-scores, kind="stable")]
    a = labels.index(label) if label is not None else order[0]
    if versus is not None:
        b: int | None = labels.index(versus)
    else:
        others = [j for j in order if j != a]
        b = others[0] if others else None
    qtext, qimage = describe_input(image)
    ids = set(ivec.indices.tolist())
    payloads = anchor_payloads(
        m,
        sorted(
            ids
            & (
                set(prompts[best[a]][2].indices.tolist())
                | (set(prompts[best[b]][2].indices.tolist()) if b is not None else set())
            )
        ),
    )

    def versus_prompt(j: int) -> Explanation:
        _, prompt, vec = prompts[best[j]]
        return explain_vectors(ivec, vec, payloads, query=qtext, item=prompt, query_image=qimage)

    ea = versus_prompt(a)
    eb = versus_prompt(b) if b is not None else None
    margins: tuple[AnchorMargin, ...] = ()
    if eb is not None:
        ca = {x.id: x for x in ea.anchors}
        cb = {x.id: x for x in eb.anchors}
        weights = ivec.to_dict_weights()
        rows = []
        for aid in set(ca) | set(cb):
            pa = ca[aid].contribution if aid in ca else 0.0
            pb = cb[aid].contribution if aid in cb else 0.0
            src = ca.get(aid) or cb[aid]
            rows.append(AnchorMargin(aid, src.caption, src.image, weights[aid], pa, pb, pa - pb))
        margins = tuple(sorted(rows, key=lambda m: (-m.difference, m.id)))
    return LabelExplanation(
        label=labels[a],
        versus=labels[b] if b is not None else None,
        scores={lab: float(s) for lab, s in zip(labels, scores, strict=True)},
        explanation=ea,
        versus_explanation=eb,
        margins=margins,
    )


def audit_anchors(
    m: ModelState,
    images: Sequence[Any],
    truth: Sequence[str],
    labels: Sequence[str],
    templates: Sequence[str] | None = None,
    template_strategy: str | None = None,
) -> AuditReport:
    """Rank anchors by how much they pushed labeled images to wrong labels.

    For a wrong prediction (predicted ``P``, true ``T``) the margin
    ``score(P) - score(T) = sum_a w_image(a) (w_P(a) - w_T(a))`` is split over anchors: each
    anchor's term. For a right prediction the margin over the runner-up ``R`` is split the
    same way. A term that favours a wrong label (or the runner-up) adds its size to the
    anchor's **harm**, one that favours the true label to its **help**: both are positive
    amounts. Anchors are ranked by ``net = harm - help`` (the wrong margins' terms minus the
    right margins'; only positive ones are listed): deleting them should fix wrong
    predictions without breaking right ones, as the paper's broken-sample example suggests.

    Args:
        m: The model.
        images: Images (or their sparse vectors).
        truth: The true label of each image (one of ``labels``).
        labels: The class names, in the prompts' words.
        templates: Prompt templates (default: the model's, else ``("a photo of {a} {}.",)``).
        template_strategy: How templates combine, as in :meth:`ASIF.classify`.

    Returns:
        The report.
    """
    labels, templates = check_labels(labels, templates, m.fingerprint.templates)
    strategy = check_strategy("ASIF.audit_anchors", template_strategy or DEFAULT_TEMPLATE_STRATEGY)
    items = list(images)
    truth = list(truth)
    if len(items) != len(truth):
        raise InvalidInputError(
            f"audit needs one true label per image. Got {len(items)} images and "
            f"{len(truth)} labels."
        )
    bad = [t for t in truth if t not in labels]
    if bad:
        raise InvalidInputError(
            f"Every true label must be one of the labels {labels!r:.200}. Got {bad[0]!r}."
        )
    if items and all(isinstance(x, SparseVector) for x in items):
        vecs: list[SparseVector] = list(items)
    else:
        vecs = embed_images(m, items, kp=classify_kp(m))
    prompts = prompt_vectors(m, labels, templates, strategy)
    harm: dict[int, float] = {}
    helped: dict[int, float] = {}
    wrong_count: dict[int, int] = {}
    predicted = []
    n_wrong = 0
    for vec, true in zip(vecs, truth, strict=True):
        scores, best = _best_prompts(vec, prompts, len(labels))
        order = [int(j) for j in np.argsort(-scores, kind="stable")]
        p, t = order[0], labels.index(true)
        predicted.append(labels[p])
        if p != t:  # d > 0: towards the wrong label P; d < 0: towards the true one
            n_wrong += 1
            diff = _per_anchor_difference(vec, prompts[best[p]][2], prompts[best[t]][2])
            for aid, d in diff.items():
                side = harm if d > 0 else helped
                side[aid] = side.get(aid, 0.0) + abs(d)
                if d > 0:
                    wrong_count[aid] = wrong_count.get(aid, 0) + 1
        elif len(order) > 1:  # d > 0: towards the true label; d < 0: towards the runner-up
            diff = _per_anchor_difference(vec, prompts[best[t]][2], prompts[best[order[1]]][2])
            for aid, d in diff.items():
                side = helped if d > 0 else harm
                side[aid] = side.get(aid, 0.0) + abs(d)
    net = {a: harm.get(a, 0.0) - helped.get(a, 0.0) for a in set(harm) | set(helped)}
    ranked = sorted((a for a, v in net.items() if v > 0), key=lambda a: (-net[a], a))
    payloads = anchor_payloads(m, ranked)
    rows = tuple(
        AuditRow(
            id=a,
            caption=_opt_str(payloads.get(a, {}).get("caption")),
            image=_opt_str(payloads.get(a, {}).get("image")),
            harm=harm.get(a, 0.0),
            help=helped.get(a, 0.0),
            net=net[a],
            wrong=wrong_count.get(a, 0),
        )
        for a in ranked
    )
    n = len(vecs)
    return AuditReport(
        accuracy=(n - n_wrong) / n if n else 0.0,
        n=n,
        wrong=n_wrong,
        labels=tuple(labels),
        predicted=tuple(predicted),
        anchors=rows,
    )


def _per_anchor_difference(
    image: SparseVector, a: SparseVector, b: SparseVector
) -> dict[int, float]:
    """``w_image(x) * (w_a(x) - w_b(x))`` for every anchor ``x`` of the image."""
    wa, wb = a.to_dict_weights(), b.to_dict_weights()
    out = {}
    for aid, w in image.to_dict_weights().items():
        d = w * (wa.get(aid, 0.0) - wb.get(aid, 0.0))
        if d != 0:
            out[aid] = d
    return out


def _opt_str(x: Any) -> str | None:
    return None if x is None else str(x)


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
