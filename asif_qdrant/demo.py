"""The demo: an ASIF model from the Tux Paint stamps, on the embedded engine, measured.

Half of the captioned stamps (stratified by category) become anchor pairs; the other half is
a held-out catalog of images. Every held-out caption then searches the catalog (text->image):
recall@1/5/10 says how often its own image is among the top hits, against chance. The
held-out images are also classified zero-shot into the stamps' top-level categories.

Run it with ``asif-qdrant demo`` (or ``python -m asif_qdrant demo``).

The figures are tie-aware: items scoring within :data:`TIE_TOLERANCE` of a query's target
(duplicate stamps, captions such as "The letter q." and "The letter Q.") tie with it, and
the target counts at its expected place among them, as in the evaluation
(``asif_qdrant_evaluation.metrics``). The engine's order inside such a tie follows float32
rounding and storage order, so the plain hit position could move R@1 between runs of the
same code (0.173 / 0.176 once; that flip came from text batches, fixed in the text encoder).

Example:
    >>> from asif_qdrant.demo import recall_at
    >>> recall_at([0, 3, None, 1], 1), recall_at([0, 3, None, 1], 5)
    (0.25, 0.75)
    >>> recall_at([(0, 2), (1, 1)], 1)  # a two-way tie for first place counts one half
    0.25
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant.loaders import TUXPAINT_STAMPS_DIR, Pair, load_tuxpaint_stamps, split_pairs
from asif_qdrant.model import ASIF
from asif_qdrant.relative import power_label
from asif_qdrant.retriever.anchors import classify_kp

__all__ = [
    "CATEGORY_PROMPTS",
    "DEMO_CATALOG",
    "DEMO_MODEL",
    "TIE_TOLERANCE",
    "DemoResult",
    "recall_at",
    "run_demo",
    "try_it",
]

#: The name of the demo's model (``--name`` to query it).
DEMO_MODEL = "tuxpaint"
#: The demo's catalog of held-out stamps.
DEMO_CATALOG = "stamps"

#: How each Tux Paint top-level category is said in a prompt.
CATEGORY_PROMPTS = {
    "animals": "an animal",
    "clothes": "clothes",
    "food": "food",
    "hobbies": "a hobby",
    "household": "a household object",
    "medical": "a medical thing",
    "military": "a military thing",
    "naturalforces": "a force of nature",
    "people": "a person",
    "plants": "a plant",
    "seasonal": "a holiday decoration",
    "space": "outer space",
    "sports": "a sport",
    "symbols": "a symbol",
    "town": "a building in a town",
    "vehicles": "a vehicle",
}

#: Free-form queries shown in the demo beside the held-out captions.
FREE_QUERIES = ("a red car", "something to eat", "a musical instrument", "a wild cat")


#: Scores closer than this tie (float32 rounding of the engine's sparse dot products).
TIE_TOLERANCE = 1e-6


def recall_at(ranks: list[int | tuple[int, int] | None], k: int) -> float:
    """Expected fraction of queries whose target is among the first ``k`` hits.

    Args:
        ranks: Per query, the 0-based rank of its target, or ``(greater, tied)``: how many
            hits score above it and how many tie with it (itself included; the target lands
            at random among them), or None when it was not retrieved.
        k: The cut-off.
    """
    if not ranks:
        return float("nan")
    total = 0.0
    for r in ranks:
        if r is None:
            continue
        greater, tied = (r, 1) if isinstance(r, int) else r
        total += min(max((k - greater) / tied, 0.0), 1.0)
    return total / len(ranks)


@dataclass
class DemoResult:
    """What the demo measured."""

    anchors: int
    catalog: int
    k: int
    p: float
    image_encoder: str
    text_encoder: str
    recall: dict[str, float]
    chance_recall: dict[str, float]
    mean_rank: float
    zero_shot_accuracy: float
    zero_shot_chance: float
    zero_shot_majority: float
    zero_shot_classes: int
    #: Zero-shot classification's p rule: ``"spread 0.3"`` (the default) or ``"p=8"``.
    zero_shot_rule: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)
    contact_sheet: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    machine: str = ""
    model_path: str = ""
    model_name: str = DEMO_MODEL
    commands: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form (for ``--json``)."""
        return asdict(self)

    def table(self) -> str:
        """A readable text table of the figures."""
        lines = [
            f"ASIF demo on Tux Paint stamps: {self.anchors} anchor pairs, "
            f"{self.catalog} held-out images (k={self.k}, p={self.p:g})",
            f"encoders: {self.image_encoder} + {self.text_encoder}",
            "",
            f"{'text->image retrieval':<28}{'measured':>10}{'chance':>10}{'x chance':>10}",
        ]
        for key in ("R@1", "R@5", "R@10"):
            got, chance = self.recall[key], self.chance_recall[key]
            lines.append(f"{'  ' + key:<28}{got:>10.3f}{chance:>10.4f}{got / chance:>10.1f}")
        lines.append(
            f"{'  mean rank (1 = best)':<28}{self.mean_rank:>10.1f}{(self.catalog + 1) / 2:>10.1f}"
        )
        lines += [
            "",
            f"{'zero-shot classification':<28}{'measured':>10}{'chance':>10}{'majority':>10}"
            + (f"   ({self.zero_shot_rule})" if self.zero_shot_rule else ""),
            f"{f'  top-1 ({self.zero_shot_classes} classes)':<28}"
            f"{self.zero_shot_accuracy:>10.3f}{self.zero_shot_chance:>10.3f}"
            f"{self.zero_shot_majority:>10.3f}",
        ]
        if self.examples:
            lines += ["", "example text->image queries (top 3 hits: caption, score)"]
            for ex in self.examples:
                hits = "; ".join(f"{h['caption']} ({h['score']:.2f})" for h in ex["hits"][:3])
                lines.append(f"  {ex['query']!r:<34} -> {hits}")
        if self.contact_sheet:
            lines += ["", f"contact sheet: {self.contact_sheet}"]
        lines += ["", "seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())]
        lines.append(f"machine: {self.machine}")
        if self.model_path:
            lines += ["", f"the model: '{self.model_name}' in {self.model_path}; query it with"]
            lines += [f"  {c}" for c in self.commands]
            lines += [
                "for repeated queries, keep it loaded: a search page and an HTTP API at "
                "http://127.0.0.1:8000/ (needs the 'serve' extra)",
                f"  asif-qdrant serve --path {shlex.quote(str(self.model_path))} "
                f"--name {shlex.quote(self.model_name)}",
            ]
        return "\n".join(lines)


def _fresh_model_dir(out: Path) -> Path:
    """``out/model``, emptied (the demo rebuilds its model on every run); ``out`` created."""
    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    return model_dir


def run_demo(
    out_dir: str | Path = "asif-demo",
    *,
    k: int = 800,
    p: float = 8.0,
    classify_p: float | None = None,
    stamps_dir: str | Path = TUXPAINT_STAMPS_DIR,
    test_fraction: float = 0.5,
    seed: int = 0,
    limit_pairs: int | None = None,
    show_progress_bar: bool | None = True,
    image_encoder: Any = None,
    text_encoder: Any = None,
) -> DemoResult:
    """Build an ASIF model from the stamps, index the held-out ones, and measure it.

    Args:
        out_dir: Folder for the embedded store (``out_dir/model``, rebuilt on every run) and
            the contact sheet.
        k: Anchors kept per relative vector.
        p: Exponent of the relative weights.
        classify_p: A fixed ``p`` for zero-shot classification (8: the paper's); None: the
            library's default spread rule (``ASIF(classify_spread=...)``).
        stamps_dir: Where ``tuxpaint-stamps-default`` installed the stamps.
        test_fraction: Share of stamps held out as the catalog.
        seed: Seed of the split.
        limit_pairs: Use only this many stamps (evenly spaced; for quick runs and tests).
        show_progress_bar: Progress bars while encoding.
        image_encoder: Image encoder (default: offline EfficientNet-Lite0).
        text_encoder: Text encoder (default: offline all-MiniLM-L6-v2).

    Returns:
        The measured figures.
    """
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    anchors, held_out = _split_stamps(stamps_dir, limit_pairs, test_fraction, seed)
    out = Path(out_dir)
    model_dir = _fresh_model_dir(out)
    asif = ASIF(
        path=model_dir,
        name=DEMO_MODEL,
        k=k,
        p=p,
        classify_p=classify_p,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        show_progress_bar=show_progress_bar,
    )
    try:
        _ = asif.image_encoder, asif.text_encoder
        times["load encoders"] = time.perf_counter() - t0
        with _timed(times, "add anchors"):
            images, captions = [a.image for a in anchors], [a.caption for a in anchors]
            metadata = [a.metadata for a in anchors]
            # "add": the demo measures its split as it is (two stamps are the same picture
            # with the same caption, military/ and people/fireman240a.png); it starts afresh.
            asif.add_anchors(
                images, captions, payloads=metadata, source="tuxpaint", on_duplicate="add"
            )
        with _timed(times, "index catalog"):
            # Encode the held-out images once: they are indexed and classified.
            held_emb = asif.encode([h.image for h in held_out], "image")
            payloads = [{"image": h.image, "caption": h.caption, **h.metadata} for h in held_out]
            item_ids = asif.index_embeddings(
                DEMO_CATALOG, held_emb, "image", payloads=payloads, on_duplicate="add"
            )
        with _timed(times, "search"):
            recall, chance, mean_rank = _text_to_image(asif, held_out, item_ids)
        with _timed(times, "classify"):
            acc, majority, n_classes = _zero_shot(asif, held_out, held_emb)
        examples, sheet = _examples(asif, held_out, out)
        times["total"] = time.perf_counter() - t0
        return DemoResult(
            anchors=asif.anchor_count,
            catalog=len(held_out),
            k=asif.k,
            p=asif.p,
            image_encoder=asif.fingerprint.image_encoder,
            text_encoder=asif.fingerprint.text_encoder,
            recall=recall,
            chance_recall=chance,
            mean_rank=mean_rank,
            zero_shot_accuracy=acc,
            zero_shot_chance=1 / n_classes,
            zero_shot_majority=majority,
            zero_shot_classes=n_classes,
            zero_shot_rule=power_label(classify_kp(asif.state)[1]),
            examples=examples,
            contact_sheet=str(sheet),
            seconds=times,
            machine=f"{platform.machine()}, {_cpus()} CPU cores, Python "
            f"{platform.python_version()}",
            model_path=str(model_dir.absolute()),
            commands=try_it(model_dir, held_out[0], out / "explain.png"),
        )
    finally:
        asif.close()


def try_it(model_dir: Path, stamp: Pair, png: Path) -> list[str]:
    """Three commands that query the demo's model: search, classify and explain.

    Example:
        >>> stamp = Pair("/s/cat.png", "A cat.", "tuxpaint")
        >>> cmds = try_it(Path("/d/model"), stamp, Path("/d/x.png"))
        >>> cmds[0]
        "asif-qdrant search stamps 'A cat.' --path /d/model --name tuxpaint"
    """
    where = f"--path {shlex.quote(str(model_dir.absolute()))} --name {DEMO_MODEL}"
    query = shlex.quote(stamp.caption)
    return [
        f"asif-qdrant search {DEMO_CATALOG} {query} {where}",
        f"asif-qdrant classify {shlex.quote(stamp.image)} --labels 'an animal,food,a vehicle' "
        + where,
        f"asif-qdrant explain {DEMO_CATALOG} {query} {where} --png {shlex.quote(str(png))}",
    ]


@contextmanager
def _timed(times: dict[str, float], key: str) -> Iterator[None]:
    """Record the seconds the block takes under ``times[key]``."""
    t = time.perf_counter()
    yield
    times[key] = time.perf_counter() - t


def _split_stamps(
    stamps_dir: str | Path, limit_pairs: int | None, test_fraction: float, seed: int
) -> tuple[list[Pair], list[Pair]]:
    """The stamps (evenly thinned to ``limit_pairs``), split into anchors and held-out ones."""
    pairs = load_tuxpaint_stamps(stamps_dir)
    if limit_pairs is not None and limit_pairs < len(pairs):
        step = len(pairs) / limit_pairs
        pairs = [pairs[int(i * step)] for i in range(limit_pairs)]
    return split_pairs(pairs, test_fraction=test_fraction, seed=seed)


def _text_to_image(
    asif: ASIF, held_out: list[Pair], item_ids: list[Any]
) -> tuple[dict[str, float], dict[str, float], float]:
    """Each held-out caption looks for its own image among all held-out ones."""
    n = len(held_out)
    results = asif.search_batch(
        DEMO_CATALOG, [h.caption for h in held_out], limit=n, item_modality="image"
    )
    ranks: list[int | tuple[int, int] | None] = []
    mean_ranks = []
    for target, hits in zip(item_ids, results, strict=True):
        ids = [h.id for h in hits]
        if target not in ids:
            # A target sharing no anchor with its query scores 0 and is not returned: it
            # ties with the other unreturned items, so it counts at their mean (1-based) rank.
            ranks.append(None)
            mean_ranks.append((len(ids) + 1 + n) / 2)
            continue
        score = hits[ids.index(target)].score
        greater = sum(h.score > score + TIE_TOLERANCE for h in hits)
        tied = sum(abs(h.score - score) <= TIE_TOLERANCE for h in hits)
        ranks.append((greater, tied))
        mean_ranks.append(greater + (tied + 1) / 2)
    recall = {f"R@{c}": recall_at(ranks, c) for c in (1, 5, 10)}
    chance = {f"R@{c}": min(c, n) / n for c in (1, 5, 10)}
    return recall, chance, float(np.mean(mean_ranks))


def _zero_shot(asif: ASIF, held_out: list[Pair], held_emb: np.ndarray) -> tuple[float, float, int]:
    """Zero-shot classification into the top-level categories: accuracy, majority, classes."""
    truth = [h.metadata["category"] for h in held_out]
    classes = sorted(set(truth))
    prompts = [CATEGORY_PROMPTS.get(c, c) for c in classes]
    predicted = asif.classify(
        asif.relative_from_embeddings(held_emb, "image"),
        prompts,
        templates=["a picture of {}."],
    )
    to_class = dict(zip(prompts, classes, strict=True))
    acc = float(np.mean([to_class[p_] == c for p_, c in zip(predicted, truth, strict=True)]))
    majority = Counter(truth).most_common(1)[0][1] / len(held_out)
    return acc, majority, len(classes)


def _examples(asif: ASIF, held_out: list[Pair], out: Path) -> tuple[list[dict[str, Any]], Path]:
    """Example searches and a contact sheet of them, for a person to look at."""
    from asif_qdrant.plotting import contact_sheet

    n = len(held_out)
    shown = [held_out[i] for i in np.linspace(0, n - 1, num=min(4, n)).astype(int)]
    queries = [h.caption for h in shown] + list(FREE_QUERIES)
    targets = [h.image for h in shown] + [None] * len(FREE_QUERIES)
    example_hits = asif.search_batch(DEMO_CATALOG, queries, limit=5, item_modality="image")
    examples, rows = [], []
    for q, target, hits in zip(queries, targets, example_hits, strict=True):
        found = [
            {
                "caption": h.payload.get("caption"),
                "image": h.payload.get("image"),
                "score": round(h.score, 4),
            }
            for h in hits
        ]
        examples.append({"query": q, "hits": found})
        rows.append(
            (
                q,
                [
                    (
                        h.payload["image"],
                        str(h.payload.get("caption", "")),
                        h.score,
                        None if target is None else h.payload["image"] == target,
                    )
                    for h in hits
                ],
            )
        )
    sheet = contact_sheet(
        rows,
        out / "contact_sheet.png",
        title=f"ASIF text->image on held-out Tux Paint stamps (k={asif.k}, p={asif.p:g})",
    )
    return examples, sheet


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
