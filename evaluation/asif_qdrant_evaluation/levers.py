"""Better answers from the same anchors: centring, k and p, prompts, "no match".

The ``levers`` task measures, with the numpy recipe (identical to the library, see the retrieval
and zero-shot tasks) on the embeddings the other tasks cache, what each lever of issue 18 does on
every test of the evaluation:

* **centring**: subtract each modality's anchor mean (of the unit embeddings) before the cosine,
  then the usual recipe (:func:`centre`);
* **k and p**: a grid, with and without centring;
* **label-free selection of k and p**: hold out a share of the anchor pairs, use the rest as
  anchors, and pick the ``(k, p)`` that best retrieves each held-out image's own caption and
  each caption's own image (:func:`select_kp`); no label of any test set is used;
* **prompts**: template sets (the library's default, a generic ensemble, the evaluation's
  domain sets) under each strategy;
* **"no match"**: a query's best cosine to the text anchors against the same figure of held-out
  anchor captions (:func:`calibrate`): share of unrelated queries (:data:`UNRELATED`) refused vs
  share of real captions kept.

Example:
    >>> import numpy as np
    >>> a = np.array([[1.0, 0.0], [0.8, 0.6]])
    >>> mu = anchor_mean(a)
    >>> centre(a, mu).round(3).tolist()
    [[0.316, -0.949], [-0.316, 0.949]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from asif_qdrant.relative import Spread, power_label
from asif_qdrant.retriever.fingerprint import DEFAULT_CLASSIFY_SPREAD

from asif_qdrant_evaluation.context import FASHION_TEMPLATES, TUX_TEMPLATES, EvalContext
from asif_qdrant_evaluation.data import load_fashion_mnist
from asif_qdrant_evaluation.methods import PromptSet, TopK
from asif_qdrant_evaluation.ranks import Ranks
from asif_qdrant_evaluation.registry import Table, TaskResult, register_task

__all__ = [
    "GENERIC_TEMPLATES",
    "KS",
    "PS",
    "SPREADS",
    "UNRELATED",
    "Recipe",
    "anchor_mean",
    "calibrate",
    "centre",
    "select_kp",
]

#: The k and p grids of the sweeps.
KS: tuple[int, ...] = (10, 25, 50, 100, 200, 300, 400, 800)
PS: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
#: Fractions of the spread rule tried for zero-shot classification (k=800; see
#: :class:`asif_qdrant.relative.Spread`).
SPREADS: tuple[float, ...] = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5)
#: Prompt templates without any domain word (``{a}``: the label's article, see ASIF.classify).
GENERIC_TEMPLATES: tuple[str, ...] = (
    "a photo of {a} {}.",
    "a picture of {a} {}.",
    "an image of {a} {}.",
    "a drawing of {a} {}.",
    "a close-up photo of {a} {}.",
    "{a} {}.",
)
#: Queries that match nothing in the evaluation's pools: gibberish and other domains.
UNRELATED: tuple[str, ...] = (
    "an invoice for a compiler license",
    "quarterly tax return amendment form",
    "segmentation fault in the kernel scheduler",
    "the mortgage interest rate was raised by 25 basis points",
    "terms and conditions of the software license agreement",
    "asdkjh qwpoe zmxncb",
    "xqzv blorft wump",
    "lorem ipsum dolor sit amet consectetur",
    "kjhgf dsa poiuy trewq",
    "zzzz zzzz zzzz",
    "a null pointer exception in the Java virtual machine",
    "the derivative of a polynomial of degree five",
    "merge conflict in the continuous integration pipeline",
    "pharmacokinetics of intravenous antibiotics",
    "the statute of limitations for contract disputes",
    "annual shareholder meeting minutes",
    "a recursive descent parser for context-free grammars",
    "the Riemann hypothesis and the distribution of primes",
    "please reset my password and unlock my account",
    "the board approved the budget for fiscal year 2024",
    "TCP retransmission timeout after packet loss",
    "an unpaid parking ticket appeal letter",
    "blood test results show elevated cholesterol",
    "the GDPR data protection impact assessment",
    "a SQL query joining three tables with an index",
    "refund policy for digital subscriptions",
    "the philosophy of Kant's categorical imperative",
    "inflation expectations and central bank policy",
    "compile the project with optimisation level three",
    "a memorandum of understanding between two agencies",
    "qwerty uiop asdf ghjkl",
    "fhqwhgads",
    "vbnm, .;' []",
    "9f8e7d6c5b4a3",
    "ngggh rrrk tssst",
    "the invoice number is 000417 and payment is due",
    "hash collision in a distributed key-value store",
    "abstract algebra: groups, rings and fields",
    "insurance claim for water damage",
    "dependency injection container configuration",
    "a cover letter for a senior accountant position",
    "the thermodynamics of irreversible processes",
    "meeting rescheduled to next Tuesday at 3 pm",
    "the patent application was rejected for obviousness",
    "garbage collection pauses in the runtime",
    "a spreadsheet of monthly expenses",
    "the API returns HTTP status 503",
    "wxyz plonk frabjous gimble",
    "the court adjourned until further notice",
    "an audit of the accounts payable ledger",
)


def anchor_mean(anchors: np.ndarray) -> np.ndarray:
    """The mean of the unit-normalised anchor embeddings of one modality (float64)."""
    a = np.asarray(anchors, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return np.asarray(a.mean(axis=0))


def centre(x: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """``unit(unit(x) - mean)`` (float64); ``x`` unit-normalised when ``mean`` is None."""
    x = np.asarray(x, np.float64)
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    if mean is not None:
        x = x - mean
        x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return x


@dataclass(frozen=True)
class Recipe:
    """One setting of the levers: centring on or off, k, p."""

    centred: bool
    k: int
    p: float | Spread

    @property
    def label(self) -> str:
        """``"centred, k=100, p=4"``."""
        return f"{'centred' if self.centred else 'raw'}, k={self.k}, {power_label(self.p)}"


TODAY = Recipe(False, 800, 8.0)


class Side:
    """Anchors of one modality, optionally centred, and the top-k of queries against them."""

    def __init__(self, anchors: np.ndarray, centred: bool, mean: np.ndarray | None = None):
        self.mean = (anchor_mean(anchors) if mean is None else mean) if centred else None
        self.anchors = centre(anchors, self.mean)

    def top(self, queries: np.ndarray) -> TopK:
        """The sorted top ``max(KS)`` of ``queries``."""
        return TopK(centre(queries, self.mean), self.anchors, max(KS))


def _r1(scores: np.ndarray) -> float:
    r = Ranks()
    r.add(scores, np.arange(len(scores)))
    return float(r.retrieval()["R@1"])


def _acc(scores: np.ndarray, truth: np.ndarray) -> float:
    r = Ranks()
    r.add(scores, truth)
    return r.accuracy()


def _zero_shot(
    img: TopK, text: Side, prompts: PromptSet, truth: np.ndarray, grid: Sequence[tuple[int, float]]
) -> dict[tuple[int, float], dict[str, float]]:
    """Accuracy per (k, p) and strategy."""
    n_lab, n_tpl, dim = prompts.embeddings.shape
    each = text.top(prompts.embeddings.reshape(-1, dim))
    mean = text.top(prompts.embeddings.mean(axis=1))
    out = {}
    for k, p in grid:
        iv = img.dense(k, p)
        ev = each.dense(k, p).reshape(n_lab, n_tpl, -1)
        mr = ev.mean(axis=1)
        mr = mr / np.maximum(np.linalg.norm(mr, axis=1, keepdims=True), 1e-30)
        out[(k, p)] = {
            "single": _acc(iv @ ev[:, 0].T, truth),
            "max": _acc(np.einsum("md,ltd->mlt", iv, ev).max(axis=2), truth),
            "mean-relative": _acc(iv @ mr.T, truth),
            "mean-embedding": _acc(iv @ mean.dense(k, p).T, truth),
        }
    return out


def _grid() -> list[tuple[int, float]]:
    return [(k, p) for k in KS for p in PS]


def _tasks(
    ctx: EvalContext,
    names: tuple[str, ...],
    centred: bool,
    templates: str = "domain",
    grid: Sequence[tuple[int, float]] | None = None,
) -> dict[tuple[int, float], dict[str, float]]:
    """Every figure per (k, p): Tux retrieval R@1 both ways, Tux and Fashion accuracy."""
    cfg = ctx.config
    tux = ctx.tux()
    pool = ctx.anchors(names, cfg.image_encoder, cfg.text_encoder)
    img_all = ctx.embed(tux.images, cfg.image_encoder)
    txt_all = ctx.embed(tux.captions, cfg.text_encoder)
    tux_prompts, tux_truth = _prompt_set(ctx, "tux", templates)
    grid = list(grid or _grid())
    sums: dict[tuple[int, float], dict[str, float]] = {g: {} for g in grid}
    n = len(tux)
    for f in range(cfg.folds):
        test = np.flatnonzero(ctx.folds() == f)
        sub = pool.subset(ctx.fold_anchor_index(names, f))
        si, st = Side(sub.image, centred), Side(sub.text, centred)
        ti, tt = si.top(img_all[test]), st.top(txt_all[test])
        zs = _zero_shot(ti, st, tux_prompts, tux_truth[test], grid)
        w = len(test) / n
        for k, p in grid:
            iv, tv = ti.dense(k, p), tt.dense(k, p)
            s = iv @ tv.T
            acc = sums[(k, p)]
            acc["i->t R@1"] = acc.get("i->t R@1", 0.0) + w * _r1(s)
            acc["t->i R@1"] = acc.get("t->i R@1", 0.0) + w * _r1(s.T)
            for strat, v in zs[(k, p)].items():
                acc[f"tux {strat}"] = acc.get(f"tux {strat}", 0.0) + w * v
    fashion = ctx.fashion()
    si, st = Side(pool.image, centred), Side(pool.text, centred)
    f_prompts, _ = _prompt_set(ctx, "fashion", templates)
    fz = _zero_shot(
        si.top(ctx.embed(fashion.images, cfg.image_encoder)), st, f_prompts, fashion.labels, grid
    )
    for g in grid:
        for strat, v in fz[g].items():
            sums[g][f"fashion {strat}"] = v
    return sums


def _prompt_set(ctx: EvalContext, which: str, templates: str) -> tuple[PromptSet, np.ndarray]:
    from asif_qdrant.retriever.zeroshot import prompt

    text = ctx.config.text_encoder
    if which == "tux":
        base, truth = ctx.tux_prompts(text)
        labels, domain = base.labels, TUX_TEMPLATES
    else:
        fashion = ctx.fashion()
        labels, truth, domain = fashion.class_names, fashion.labels, FASHION_TEMPLATES
    tpl = {
        "domain": domain,
        "generic": GENERIC_TEMPLATES,
        "default": ("a photo of {a} {}.",),
    }[templates]
    texts = [prompt(t, lab) for lab in labels for t in tpl]
    emb = ctx.encoder(text).embed(texts)
    return PromptSet(list(labels), list(tpl), emb.reshape(len(labels), len(tpl), -1)), truth


def select_kp(
    image: np.ndarray,
    text: np.ndarray,
    centred: bool,
    *,
    held_out: float = 0.2,
    splits: int = 3,
    seed: int = 0,
    grid: Sequence[tuple[int, float]] | None = None,
) -> tuple[tuple[int, float], dict[tuple[int, float], float]]:
    """Label-free choice of (k, p): held-out anchor pairs retrieve their own partner.

    ``splits`` times, a random ``held_out`` share of the pairs is set aside; the rest are the
    anchors (centred on their own means when ``centred``); each held-out image looks for its
    own caption among the held-out captions and vice versa. The curve is the mean of the two
    R@1 over the splits; the best point (ties: the smaller k, then the smaller p) is chosen.

    Returns:
        ``((k, p), curve)``.
    """
    grid = list(grid or _grid())
    n = len(image)
    rng = np.random.default_rng(seed)
    curve = dict.fromkeys(grid, 0.0)
    for _ in range(splits):
        perm = rng.permutation(n)
        h, a = perm[: max(2, int(n * held_out))], perm[max(2, int(n * held_out)) :]
        si, st = Side(image[a], centred), Side(text[a], centred)
        ti, tt = si.top(image[h]), st.top(text[h])
        for k, p in grid:
            s = ti.dense(k, p) @ tt.dense(k, p).T
            curve[(k, p)] += (_r1(s) + _r1(s.T)) / (2 * splits)
    best = max(grid, key=lambda g: (round(curve[g], 9), -g[0], -g[1]))
    return best, curve


def calibrate(text: np.ndarray, centred: bool = False) -> np.ndarray:
    """What "a real caption" looks like: each caption anchor's best cosine to the others, sorted.

    Leave-one-out over the caption anchors (centred on their mean when ``centred``): a query
    whose best cosine to the anchors falls below the ``alpha`` quantile of these is "no
    match" at level ``alpha`` (the library's ``min_confidence``).
    """
    side = Side(text, centred)
    sims = side.anchors @ side.anchors.T
    np.fill_diagonal(sims, -np.inf)
    return np.sort(sims.max(axis=1))


#: Quantiles of the held-out captions' best cosine tried as "no match" thresholds.
ALPHAS: tuple[float, ...] = (0.01, 0.02, 0.03, 0.05, 0.1)


def _refusal(ctx: EvalContext, names: tuple[str, ...], centred: bool) -> dict[float, dict]:
    """Per alpha: share of unrelated queries refused and of Tux captions kept, fold by fold."""
    cfg = ctx.config
    pool = ctx.anchors(names, cfg.image_encoder, cfg.text_encoder)
    txt_all = ctx.embed(ctx.tux().captions, cfg.text_encoder)
    unrelated = ctx.embed(list(UNRELATED), cfg.text_encoder)
    out = {a: {"refused": 0.0, "kept": 0.0, "threshold": 0.0} for a in ALPHAS}
    n = len(ctx.tux())
    for f in range(cfg.folds):
        test = np.flatnonzero(ctx.folds() == f)
        sub = pool.subset(ctx.fold_anchor_index(names, f))
        ref = calibrate(sub.text, centred)
        side = Side(sub.text, centred)
        real = (centre(txt_all[test], side.mean) @ side.anchors.T).max(axis=1)
        null = (centre(unrelated, side.mean) @ side.anchors.T).max(axis=1)
        for a in ALPHAS:
            t = float(np.quantile(ref, a))
            out[a]["threshold"] += t / cfg.folds
            out[a]["refused"] += float((null < t).mean()) / cfg.folds
            out[a]["kept"] += float((real >= t).sum()) / n
    return out


def _adjust(ctx: EvalContext, recipes: Sequence[Recipe], strategy: str) -> dict[Recipe, tuple]:
    """Fashion-MNIST before / after adding 100 training pairs (the adjust task, numpy).

    A centred recipe keeps the pool's means frozen: the new pairs are centred on them.
    """
    from asif_qdrant_evaluation.tasks import ADJUST_CAPTION

    cfg = ctx.config
    names = ctx.pool_names()
    fashion = ctx.fashion()
    pool = ctx.anchors(names, cfg.image_encoder, cfg.text_encoder)
    test = ctx.embed(fashion.images, cfg.image_encoder)
    prompts, truth = _prompt_set(ctx, "fashion", "domain")
    train, _ = load_fashion_mnist(ctx.assets, split="train", per_class=None)
    trials = []
    for t in range(cfg.adjust_trials):
        rng = np.random.default_rng(cfg.seed + 1000 + t)
        pick = np.sort(rng.choice(len(train), size=cfg.adjust_pairs, replace=False))
        caps = [ADJUST_CAPTION.format(train.class_names[train.labels[i]]) for i in pick]
        trials.append(
            (
                ctx.embed([train.images[i] for i in pick], cfg.image_encoder),
                ctx.embed(caps, cfg.text_encoder),
            )
        )
    out = {}
    for r in recipes:
        mi = anchor_mean(pool.image) if r.centred else None
        mt = anchor_mean(pool.text) if r.centred else None
        accs = []
        for extra in [None, *trials]:
            img, txt = pool.image, pool.text
            if extra is not None:
                img, txt = np.concatenate([img, extra[0]]), np.concatenate([txt, extra[1]])
            si, st = Side(img, r.centred, mi), Side(txt, r.centred, mt)
            z = _zero_shot(si.top(test), st, prompts, truth, [(r.k, r.p)])
            accs.append(z[(r.k, r.p)][strategy])
        out[r] = (accs[0], float(np.mean(accs[1:])), float(np.std(accs[1:], ddof=1)))
    return out


@dataclass(frozen=True)
class Split:
    """A candidate with its own ``(k, p)`` for zero-shot classification and for retrieval."""

    zero_shot: Any
    retrieval: Any


#: The best fixed zero-shot setting of the k/p grid on these very tests (picked with their
#: labels, so an optimistic figure, not a held-out one): every zero-shot row better, mean
#: +0.05, retrieval untouched (k=800, p=8); its adjust gain is the figure it gives up.
SPLIT_300_5 = Split((300, 5.0), "paper")
#: The library's default since issue 18: zero-shot classification with the spread rule
#: (:data:`~asif_qdrant.retriever.fingerprint.DEFAULT_CLASSIFY_SPREAD`, chosen from
#: :data:`SPREADS` on these tests, so its figures are optimistic too), k=800; retrieval k=800,
#: p=8.
SPLIT_SPREAD = Split((800, Spread(DEFAULT_CLASSIFY_SPREAD)), "paper")

#: The candidate defaults: (name, centred, rule).
#: ``rule``: "paper" (k=800, p=8), "auto" (chosen with no label), a fixed ``(k, p)``, or a
#: :class:`Split`: one rule for zero-shot classification (image and prompt vectors are made at
#: classification time) and another for the stored vectors that retrieval compares.
CANDIDATES: tuple[tuple[str, bool, Any], ...] = (
    ("today (k=800, p=8)", False, "paper"),
    ("centred", True, "paper"),
    ("auto k, p", False, "auto"),
    ("centred + auto k, p", True, "auto"),
    ("k=200, p=6", False, (200, 6.0)),
    ("k=400, p=4", False, (400, 4.0)),
    ("centred, k=200, p=6", True, (200, 6.0)),
    ("zero-shot k=300, p=5; search k=800, p=8", False, SPLIT_300_5),
    (
        f"zero-shot spread {DEFAULT_CLASSIFY_SPREAD:g}; search k=800, p=8 (the new default)",
        False,
        SPLIT_SPREAD,
    ),
)
#: The zero-shot rows and retrieval figures compared (library default strategy).
ZERO_SHOT = ("tux mean-embedding", "fashion mean-embedding")
RETRIEVAL = ("i->t R@1", "t->i R@1")
STRATEGY_NAMES = ("single", "max", "mean-relative", "mean-embedding")


def _goals(rows: list[list[Any]]) -> list[str]:
    """Per candidate column: "yes", or the goals it misses."""
    out = []
    for j in range(2, 2 + len(CANDIDATES)):
        if j == 2:
            out.append("(today)")
            continue
        missed = []
        zs = [r for r in rows if r[1] in ZERO_SHOT]
        if rows[-2][j] < rows[-2][2] + 0.05 - 1e-9:
            missed.append("mean +0.05")
        if any(r[j] < r[2] - 1e-9 for r in zs):
            missed.append("a zero-shot row worse")
        if any(r[j] < r[2] - 1e-9 for r in rows if r[1] in RETRIEVAL):
            missed.append("R@1 below today")
        if rows[-1][j] < 0.40:
            missed.append("adjust gain < 0.40")
        out.append("yes" if not missed else "no: " + ", ".join(missed))
    return out


def _best(grid: dict[tuple[int, Any], dict[str, float]], metric: str) -> tuple[int, float]:
    """The best fixed ``(k, p)`` of ``grid`` for ``metric`` (spread points left out)."""
    fixed = [g for g in grid if not isinstance(g[1], Spread)]
    return max(fixed, key=lambda g: (round(grid[g][metric], 9), -g[0], -g[1]))


@register_task(
    "levers",
    "Better answers from the same anchors: centring, k and p, prompts, no match",
    "centring, label-free k/p selection, prompt template sets and a calibrated 'no match' "
    "threshold, each measured on every test against today's defaults (numpy recipe)",
    needs=("tuxpaint",),
)
def run_levers(ctx: EvalContext) -> TaskResult:
    """Every lever of issue 18 on every test, and the candidate defaults side by side."""
    cfg = ctx.config
    variants = ctx.pool_variants()
    grids: dict[Any, dict] = {}
    chosen: dict[Any, tuple[tuple[int, float], dict]] = {}
    for names in ctx.progress(variants, desc="levers", unit="pool"):
        pool = ctx.anchors(names, cfg.image_encoder, cfg.text_encoder)
        sub = pool.subset(ctx.fold_anchor_index(names, 0))
        for centred in (False, True):
            grids[(names, centred)] = _tasks(ctx, names, centred)
            chosen[(names, centred)] = select_kp(sub.image, sub.text, centred, seed=cfg.seed)
        # the spread rule of zero-shot classification (raw, k=800)
        grids[(names, False)].update(
            _tasks(ctx, names, False, grid=[(TODAY.k, Spread(f)) for f in SPREADS])
        )

    def kp(names: tuple[str, ...], centred: bool, rule: Any, metric: str = "") -> tuple[int, float]:
        if isinstance(rule, Split):
            return kp(names, centred, rule.retrieval if metric in RETRIEVAL else rule.zero_shot)
        if rule == "auto":
            return chosen[(names, centred)][0]
        return (TODAY.k, TODAY.p) if rule == "paper" else rule

    figures: dict[str, Any] = {"candidates": {}, "selected": {}, "grids": {}}
    # -- defaults: before vs after ------------------------------------------------------
    rows: list[list[Any]] = []
    zs_means = {c[0]: [] for c in CANDIDATES}
    for names in variants:
        label = ctx.pool_label(names)
        for metric in ZERO_SHOT + RETRIEVAL:
            row: list[Any] = [label, metric]
            for cname, centred, auto in CANDIDATES:
                v = grids[(names, centred)][kp(names, centred, auto, metric)][metric]
                row.append(v)
                if metric in ZERO_SHOT:
                    zs_means[cname].append(v)
                figures["candidates"].setdefault(cname, {})[f"{label} {metric}"] = v
            rows.append(row)
    rows.append(
        ["-", "mean of the zero-shot rows"] + [float(np.mean(zs_means[c[0]])) for c in CANDIDATES]
    )
    adjust_recipes = {c[0]: Recipe(c[1], *kp(variants[-1], c[1], c[2])) for c in CANDIDATES}
    adj = _adjust(ctx, list(adjust_recipes.values()), "max")
    rows.append(
        ["-", f"Fashion-MNIST gain after {cfg.adjust_pairs} pairs (adjust, 'max')"]
        + [adj[r][1] - adj[r][0] for r in adjust_recipes.values()]
    )
    rows.append(["-", "meets every goal of issue 18", *_goals(rows)])
    t_defaults = Table(
        "Defaults: before vs after (numpy recipe = library; zero-shot with the library's "
        "default strategy 'mean-embedding'; k, p 'auto' = chosen per pool with no label)",
        ["anchor pool (size)", "figure"] + [c[0] for c in CANDIDATES],
        rows,
        note="Goals: mean zero-shot accuracy >= today + 0.05 with no zero-shot row worse, "
        "caption R@1 both ways >= today's, adjust gain >= 0.40. A candidate becomes the "
        "default only when it meets all of them.",
    )
    # -- centring ------------------------------------------------------------------------
    rows = []
    for names in variants:
        for metric in ZERO_SHOT + RETRIEVAL:
            r = [ctx.pool_label(names), metric]
            for centred in (False, True):
                g = grids[(names, centred)]
                b = _best(g, metric)
                r += [g[(TODAY.k, TODAY.p)][metric], f"{g[b][metric]:.3f} (k={b[0]}, p={b[1]:g})"]
            rows.append(r)
    t_centre = Table(
        "Centring: each modality's anchor mean subtracted before the cosine",
        [
            "anchor pool (size)",
            "figure",
            "raw k=800 p=8",
            "raw best (k, p)",
            "centred k=800 p=8",
            "centred best (k, p)",
        ],
        rows,
    )
    # -- k and p selection ---------------------------------------------------------------
    rows = []
    for names in variants:
        for centred in (False, True):
            (k, p), curve = chosen[(names, centred)]
            g = grids[(names, centred)]
            figures["selected"][f"{ctx.pool_label(names)} {'centred' if centred else 'raw'}"] = {
                "k": k,
                "p": p,
                "curve": {f"k={a}, p={b:g}": v for (a, b), v in curve.items()},
            }
            for metric in ZERO_SHOT + RETRIEVAL:
                b = _best(g, metric)
                rows.append(
                    [
                        ctx.pool_label(names),
                        "centred" if centred else "raw",
                        f"k={k}, p={p:g}",
                        metric,
                        g[(k, p)][metric],
                        g[(TODAY.k, TODAY.p)][metric],
                        f"{g[b][metric]:.3f} (k={b[0]}, p={b[1]:g})",
                    ]
                )
    t_kp = Table(
        "k and p chosen with no label (held-out anchor pairs find their own partner, mean of "
        "both directions' R@1, 3 splits of 20%) vs the paper's k=800, p=8 vs the best of the "
        "grid for each figure (which needs the labels)",
        [
            "anchor pool (size)",
            "centring",
            "chosen",
            "figure",
            "at chosen",
            "at k=800, p=8",
            "best of the grid (k, p)",
        ],
        rows,
    )
    # -- the spread rule -------------------------------------------------------------------
    spread_recipes = [Recipe(False, TODAY.k, Spread(f)) for f in SPREADS]
    adj_spread = _adjust(ctx, spread_recipes, "max")
    rows = []
    for f, r in zip(SPREADS, spread_recipes, strict=True):
        key = (TODAY.k, Spread(f))
        vals = [grids[(n, False)][key][m] for n in variants for m in ZERO_SHOT]
        today = [grids[(n, False)][(TODAY.k, TODAY.p)][m] for n in variants for m in ZERO_SHOT]
        gain = adj_spread[r][1] - adj_spread[r][0]
        worse = sum(v < t - 1e-9 for v, t in zip(vals, today, strict=True))
        r1 = "; ".join(
            " / ".join(f"{grids[(n, False)][key][m]:.3f}" for m in RETRIEVAL) for n in variants
        )
        rows.append([f, *vals, float(np.mean(vals)), worse, gain, r1])
    figures["spread"] = rows
    t_spread = Table(
        "Zero-shot classification with the spread rule (k=800; each image and prompt vector "
        "gets the p at which its weights spread over this fraction of its k anchors: the "
        "perplexity of the weights normalised to sum 1; asif_qdrant.relative.Spread) vs "
        f"today's p=8 (mean {float(np.mean(today)):.3f}); the adjust gain with the same rule",
        ["fraction"]
        + [f"{ctx.pool_label(n)} {m}" for n in variants for m in ZERO_SHOT]
        + [
            "mean",
            "zero-shot rows worse than p=8",
            f"adjust gain ({cfg.adjust_pairs} pairs)",
            "caption R@1 i->t / t->i if search used it, per pool (p=8: "
            + "; ".join(
                " / ".join(f"{grids[(n, False)][(TODAY.k, TODAY.p)][m]:.3f}" for m in RETRIEVAL)
                for n in variants
            )
            + ")",
        ],
        rows,
        note=f"The library's default is {DEFAULT_CLASSIFY_SPREAD:g} "
        "(ASIF(classify_spread=...)); it was picked on these tests' labels, so these figures "
        "are optimistic. Search and the stored catalogs keep k=800, p=8.",
    )
    return _finish(
        ctx,
        variants,
        grids,
        chosen,
        figures,
        t_defaults,
        t_centre,
        t_kp,
        adj,
        adjust_recipes,
        t_spread,
    )


def _finish(
    ctx, variants, grids, chosen, figures, t_defaults, t_centre, t_kp, adj, recipes, t_spread
):
    """The prompt, calibration and adjust tables, and the result."""
    cfg = ctx.config
    means = {c[0]: t_defaults.rows[-3][2 + i] for i, c in enumerate(CANDIDATES)}
    meets = [c[0] for i, c in enumerate(CANDIDATES) if t_defaults.rows[-1][2 + i] == "yes"]
    best_name = max(means, key=lambda n: means[n])
    # -- prompts (with the library's default zero-shot recipe) -------------------------------
    centred = False
    k, p = SPLIT_SPREAD.zero_shot
    rows: list[list[Any]] = []
    for names in variants:
        for tpl in ("default", "generic", "domain"):
            g = _tasks(ctx, names, centred, tpl, [(k, p)])[(k, p)]
            for which in ("tux", "fashion"):
                rows.append(
                    [ctx.pool_label(names), which, tpl]
                    + [g[f"{which} {s}"] for s in STRATEGY_NAMES]
                )
    t_prompts = Table(
        f"Prompt template sets x strategies, zero-shot k={k}, {power_label(p)} (the library's "
        "default; templates 'default': the library's 'a photo of {a} {}.'; generic: 6 "
        "templates without domain words; domain: the evaluation's Tux Paint / Fashion-MNIST "
        "sets)",
        ["anchor pool (size)", "test", "templates", *STRATEGY_NAMES],
        rows,
    )
    figures["prompts"] = rows
    # -- calibration ---------------------------------------------------------------------
    rows = []
    for names in variants:
        for c in (False, True):
            for a, v in _refusal(ctx, names, c).items():
                rows.append(
                    [
                        ctx.pool_label(names),
                        "centred" if c else "raw",
                        a,
                        v["threshold"],
                        v["refused"],
                        v["kept"],
                    ]
                )
    t_cal = Table(
        f"'No match': a query is refused when its best cosine to the caption anchors is below "
        f"the alpha quantile of every caption anchor's best cosine to the others (no label); "
        f"{len(UNRELATED)} unrelated queries (gibberish, other domains) vs the held-out Tux "
        "Paint captions (fold by fold, anchors outside the fold)",
        [
            "anchor pool (size)",
            "centring",
            "alpha",
            "threshold (mean)",
            "unrelated refused",
            "captions kept",
        ],
        rows,
    )
    figures["calibration"] = rows
    t_adj = Table(
        f"Fashion-MNIST before / after adding {cfg.adjust_pairs} training pairs "
        f"({cfg.adjust_trials} trials, strategy 'max'; centred recipes keep the pool's means "
        "frozen)",
        ["recipe", "k, p", "before", "after (mean ± std)", "gain"],
        [
            [
                n,
                f"k={r.k}, {power_label(r.p)}",
                adj[r][0],
                f"{adj[r][1]:.3f} ± {adj[r][2]:.3f}",
                adj[r][1] - adj[r][0],
            ]
            for n, r in recipes.items()
        ],
    )
    figures["best_candidate"] = best_name
    return TaskResult(
        summary=(
            "What the levers of issue 18 do on every test, measured with the numpy recipe "
            "(the library's ranks, see the retrieval and zero-shot sections) on the cached "
            "embeddings. Centring subtracts each modality's mean anchor (of the unit "
            "embeddings) from anchors and queries before the cosine, then the usual recipe. "
            "'auto' k and p are chosen per pool from the anchors alone: 20% of the pairs are "
            "held out (3 random splits), the rest are the anchors, and the (k, p) of the grid "
            f"k in {list(KS)}, p in {list(PS)} that best retrieves each held-out image's own "
            "caption and back wins (Tux Paint pools: the anchors outside fold 0). Best mean "
            f"zero-shot accuracy: '{best_name}' ({means[best_name]:.3f} vs "
            f"{means[CANDIDATES[0][0]]:.3f} today). Candidates meeting every goal of issue "
            f"18: {', '.join(meets) or 'none'}"
            + (
                f". The library's defaults: search k=800, p=8 (the paper's), no centring; "
                f"zero-shot classification with the spread rule "
                f"(classify_spread={DEFAULT_CLASSIFY_SPREAD:g}, k=800)."
                if meets
                else "; so the library's defaults stay k=800, p=8, no centring."
            )
        ),
        tables=[t_defaults, t_centre, t_kp, t_spread, t_prompts, t_cal, t_adj],
        figures=figures,
    )
