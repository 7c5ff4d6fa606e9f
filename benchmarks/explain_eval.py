"""On the Tux Paint stamps: does a score floor tell real matches from noise, and does the anchor
audit find anchors whose deletion helps?

The model is the demo's (half of the 785 captioned stamps as anchor pairs, stratified by
category; the other half indexed as a catalog of images), with the offline encoders.

1. **Knowing when it does not know.** Each held-out caption searches the catalog (real
   queries); so do gibberish strings and sentences about things no stamp shows (unrelated
   queries). For the top hit of each query we take its score and the number of anchors it
   shares with the query, and report how well each separates real from unrelated queries
   (ROC AUC), and what a floor that keeps 95% of the real queries rejects. The same for
   zero-shot classification of held-out stamps against images of random noise.
2. **Audit.** The held-out stamps, labeled with their category, are split in two: anchors are
   ranked (:func:`asif_qdrant.retriever.explain.audit_anchors`) on one half; the top N are
   deleted and the accuracy is measured again on both halves (the other half is the honest measure).

Run it (a few minutes on 2 CPU cores, most of it encoding the stamps once)::

    python -m benchmarks.explain_eval                 # k=800 (the demo's)
    python -m benchmarks.explain_eval --k 50 --json

Example:
    >>> from benchmarks.explain_eval import gibberish
    >>> len(gibberish(3, seed=0)), gibberish(1, seed=0) == gibberish(1, seed=0)
    (3, True)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from asif_qdrant import ASIF
from asif_qdrant.demo import CATEGORY_PROMPTS
from asif_qdrant.loaders import load_tuxpaint_stamps, split_pairs
from asif_qdrant.retriever.explain import roc_auc

__all__ = ["UNRELATED", "gibberish", "run"]

#: Sentences about things no Tux Paint stamp shows.
UNRELATED = (
    "The quarterly revenue grew by four percent.",
    "Please reset my password and send a new link.",
    "Install the package with pip and restart the kernel.",
    "The meeting is moved to Thursday afternoon.",
    "What is the capital gains tax rate this year?",
    "The function returns null when the list is empty.",
    "Interest rates are expected to fall next quarter.",
    "Your subscription will renew automatically.",
    "The invoice is overdue by thirty days.",
    "Compile the kernel module with debugging symbols.",
    "The committee approved the annual budget.",
    "Merge the pull request after the review.",
    "The contract terminates at the end of the fiscal year.",
    "Add an index to speed up the database query.",
    "The shipment was delayed at customs.",
    "Her thesis defense is scheduled for May.",
    "The server returned a 503 error.",
    "Sign the form and return it by email.",
    "The algorithm runs in logarithmic time.",
    "The lease includes a clause about early termination.",
    "Update the firmware before the next release.",
    "The stock price dropped after the earnings call.",
    "Our refund policy changed last month.",
    "The variable is declared but never used.",
    "The tenant must give two months of notice.",
    "Backups run every night at two o'clock.",
    "The survey had a response rate of twelve percent.",
    "The password must contain at least one digit.",
    "The deadline for the grant application is Friday.",
    "Memory usage grows linearly with the batch size.",
    "The auditor flagged three expense reports.",
    "Translate the user manual into German.",
    "The API key expires after ninety days.",
    "The board will vote on the merger next week.",
    "Enable two-factor authentication for all accounts.",
    "The loan term is fifteen years at a fixed rate.",
    "The regression test failed on the nightly build.",
    "Minutes of the meeting are attached.",
    "The insurance claim was denied.",
    "Cache invalidation is one of the two hard problems.",
)


def gibberish(n: int, *, seed: int = 0) -> list[str]:
    """``n`` strings of random letters, 2-5 "words" each."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        " ".join(
            "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
            for _ in range(rng.randint(2, 5))
        )
        for _ in range(n)
    ]


def _separation(real: list[float], other: list[float]) -> dict[str, float]:
    floor = float(np.quantile(real, 0.05))  # keeps 95% of the real queries
    return {
        "auc": round(roc_auc(real, other), 4),
        "floor_keeping_95pct_real": round(floor, 6),
        "rejected_at_that_floor": round(float(np.mean(np.asarray(other) < floor)), 4),
        "real_median": round(float(np.median(real)), 6),
        "other_median": round(float(np.median(other)), 6),
    }


def _top_hits(asif: ASIF, queries: list[Any]) -> tuple[list[float], list[int]]:
    """Top-1 score and shared-anchor count per query (0 and 0 when nothing matches)."""
    scores, shared = [], []
    for q, hits in zip(queries, asif.search_batch("stamps", queries, limit=1), strict=True):
        if not hits:
            scores.append(0.0)
            shared.append(0)
            continue
        why = asif.explain(q, hits[0].id, "stamps")
        scores.append(hits[0].score)
        shared.append(why.shared)
    return scores, shared


def run(
    *,
    k: int = 800,
    seed: int = 0,
    deletions: tuple[int, ...] = (5, 10, 20, 40),
    cache: str | None = None,
    noise_images: int = 60,
) -> dict[str, Any]:
    """Build the model, measure, and return every figure."""
    t0 = time.perf_counter()
    pairs = load_tuxpaint_stamps()
    anchors, held = split_pairs(pairs, test_fraction=0.5, seed=seed)
    rng = np.random.default_rng(seed)
    noise = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(noise_images)]
    with tempfile.TemporaryDirectory(prefix="asif-explain-eval-") as folder:
        asif = ASIF(path=folder, name="tuxpaint", k=k, show_progress_bar=False)
        try:
            if cache and Path(cache).is_file():
                arrays = dict(np.load(cache))
            else:
                arrays = {
                    "ai": asif.encode([a.image for a in anchors], "image"),
                    "at": asif.encode([a.caption for a in anchors], "text"),
                    "hi": asif.encode([h.image for h in held], "image"),
                    "noise": asif.encode(noise, "image"),
                }
                if cache:
                    np.savez(cache, **arrays)
            asif.add_anchor_embeddings(
                arrays["ai"], arrays["at"], payloads=[a.payload() for a in anchors]
            )
            asif.index_embeddings(
                "stamps", arrays["hi"], "image", payloads=[h.payload() for h in held]
            )
            result: dict[str, Any] = {
                "anchors": len(anchors),
                "catalog": len(held),
                "k": k,
                "p": asif.p,
                "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPU cores, "
                f"Python {platform.python_version()}",
            }

            # 1. Search: real captions vs gibberish and unrelated sentences.
            real_q = [h.caption for h in held]
            gib_q = gibberish(200, seed=seed)
            unrel_q = list(UNRELATED)
            real_s, real_n = _top_hits(asif, real_q)
            gib_s, gib_n = _top_hits(asif, gib_q)
            unr_s, unr_n = _top_hits(asif, unrel_q)
            result["search"] = {
                "queries": {
                    "real": len(real_q),
                    "gibberish": len(gib_q),
                    "unrelated": len(unrel_q),
                },
                "score_vs_gibberish": _separation(real_s, gib_s),
                "score_vs_unrelated": _separation(real_s, unr_s),
                "shared_anchors_vs_gibberish": _separation(real_n, gib_n),
                "shared_anchors_vs_unrelated": _separation(real_n, unr_n),
                "no_match_fraction": {
                    "real": float(np.mean(np.asarray(real_s) == 0)),
                    "gibberish": float(np.mean(np.asarray(gib_s) == 0)),
                    "unrelated": float(np.mean(np.asarray(unr_s) == 0)),
                },
            }

            # Classification: held-out stamps vs random-noise images.
            truth = [h.metadata["category"] for h in held]
            classes = sorted(set(truth))
            prompts = [CATEGORY_PROMPTS.get(c, c) for c in classes]
            tmpl = ["a picture of {}."]
            held_vecs = asif.relative_from_embeddings(arrays["hi"], "image")
            noise_vecs = asif.relative_from_embeddings(arrays["noise"], "image")
            s_real = asif.classify_scores(held_vecs, prompts, templates=tmpl)
            s_noise = asif.classify_scores(noise_vecs, prompts, templates=tmpl)
            result["classify_vs_noise_images"] = {
                "images": {"real": len(held_vecs), "noise": len(noise_vecs)},
                "best_score": _separation(
                    s_real.max(axis=1).tolist(), s_noise.max(axis=1).tolist()
                ),
            }

            # 2. Audit on one half, check on the other.
            order = list(range(len(held)))
            random.Random(seed).shuffle(order)
            half = len(order) // 2
            audit_idx, check_idx = sorted(order[:half]), sorted(order[half:])
            words = dict(zip(classes, prompts, strict=True))

            def accuracy(idx: list[int]) -> float:
                vecs = asif.relative_from_embeddings(arrays["hi"][idx], "image")
                pred = asif.classify(vecs, prompts, templates=tmpl)
                return float(
                    np.mean([p == words[truth[i]] for p, i in zip(pred, idx, strict=True)])
                )

            report = asif.audit_anchors(
                [held_vecs[i] for i in audit_idx],
                [words[truth[i]] for i in audit_idx],
                prompts,
                templates=tmpl,
            )
            steps = [
                {
                    "deleted": 0,
                    "audit_half_accuracy": round(accuracy(audit_idx), 4),
                    "check_half_accuracy": round(accuracy(check_idx), 4),
                }
            ]
            done = 0
            for n in deletions:
                victims = [a.id for a in report.anchors[done:n]]
                if not victims:
                    break
                asif.delete_anchors(victims)
                done += len(victims)
                steps.append(
                    {
                        "deleted": done,
                        "audit_half_accuracy": round(accuracy(audit_idx), 4),
                        "check_half_accuracy": round(accuracy(check_idx), 4),
                        "edit_seconds": round(asif.last_edit.seconds, 3)
                        if asif.last_edit
                        else None,
                        "items_touched": asif.last_edit.items_touched if asif.last_edit else None,
                    }
                )
            result["audit"] = {
                "audit_images": len(audit_idx),
                "check_images": len(check_idx),
                "harmful_anchors": len(report.anchors),
                "top": [
                    {"id": a.id, "caption": a.caption, "net": round(a.net, 4), "wrong": a.wrong}
                    for a in report.anchors[:10]
                ],
                "steps": steps,
            }
        finally:
            asif.close()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def table(r: dict[str, Any]) -> str:
    """The figures for people."""
    s = r["search"]
    lines = [
        f"Tux Paint: {r['anchors']} anchors, {r['catalog']} catalog images, k={r['k']}, "
        f"p={r['p']:g}; machine: {r['machine']}",
        "",
        f"search: {s['queries']['real']} real captions vs {s['queries']['gibberish']} gibberish "
        f"and {s['queries']['unrelated']} unrelated sentences (top hit of each query)",
        "| feature | vs | ROC AUC | floor keeping 95% of real | rejected at that floor |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("score_vs_gibberish", ("top score", "gibberish")),
        ("score_vs_unrelated", ("top score", "unrelated")),
        ("shared_anchors_vs_gibberish", ("shared anchors", "gibberish")),
        ("shared_anchors_vs_unrelated", ("shared anchors", "unrelated")),
    ):
        x = s[key]
        lines.append(
            f"| {label[0]} | {label[1]} | {x['auc']:.3f} | {x['floor_keeping_95pct_real']:g} | "
            f"{x['rejected_at_that_floor']:.1%} |"
        )
    c = r["classify_vs_noise_images"]["best_score"]
    lines += [
        f"queries with no match at all: {s['no_match_fraction']}",
        "",
        f"classify: held-out stamps vs random-noise images, best-label score: AUC {c['auc']:.3f},"
        f" a floor keeping 95% of stamps rejects {c['rejected_at_that_floor']:.1%} of noise",
        "",
        f"audit: ranked on {r['audit']['audit_images']} images, checked on "
        f"{r['audit']['check_images']}; {r['audit']['harmful_anchors']} anchors have net harm > 0",
        "| anchors deleted | accuracy, ranked half | accuracy, held-out half |",
        "|---|---|---|",
    ]
    for st in r["audit"]["steps"]:
        lines.append(
            f"| {st['deleted']} | {st['audit_half_accuracy']:.3f} | "
            f"{st['check_half_accuracy']:.3f} |"
        )
    lines.append(
        "most harmful: "
        + "; ".join(f"{a['id']} {a['caption']!r} (net {a['net']})" for a in r["audit"]["top"][:5])
    )
    lines.append(f"seconds: {r['seconds']}")
    return "\n".join(lines)


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="an .npz to keep the embeddings in")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    result = run(k=args.k, seed=args.seed, cache=args.cache)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
