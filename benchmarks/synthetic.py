"""Synthetic embeddings with the structure of real ones (clustered, anisotropic, unit norm).

Uniform noise on the sphere is a poor stand-in for encoder embeddings: every pair is nearly
orthogonal and no index has anything to exploit. These embeddings have what real ones have:

* a shared mean direction (real text/image embeddings are anisotropic: mean pairwise cosine
  about 0.22-0.24, norm of the mean about 0.47-0.49 for MiniLM and EfficientNet-Lite0);
* a decaying spectrum (a random orthogonal basis with power-law scales);
* a two-level topic structure: 64 domains, about ``4 * sqrt(n)`` sub-topics with Zipf-like
  sizes and spreads that vary per sub-topic.

The default constants were tuned so that 785 samples match the statistics of the real
Tux Paint stamp embeddings (``python -m benchmarks.synthetic`` prints both side by side when
the offline encoders are installed): mean pairwise cosine, its spread, nearest-neighbour
similarities and the variance share of the top principal components.

Example:
    >>> from benchmarks.synthetic import clustered_embeddings
    >>> x, q = clustered_embeddings(1000, 32, n_queries=5, seed=0)
    >>> x.shape, q.shape, round(float((x * x).sum(1).mean()), 3)
    ((1000, 32), (5, 32), 1.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["clustered_embeddings", "embedding_stats"]

_CHUNK = 65536


def clustered_embeddings(
    n: int,
    d: int,
    *,
    n_queries: int = 0,
    seed: int = 0,
    w_mean: float = 0.45,
    w_domain: float = 0.35,
    w_topic: float = 0.55,
    w_noise: float = 0.6,
    alpha: float = 0.3,
    n_domains: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` anchors and ``n_queries`` held-out queries from the same distribution.

    Returns:
        ``(anchors, queries)``: ``float32`` unit rows, ``(n, d)`` and ``(n_queries, d)``.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.arange(1, d + 1) ** (-alpha)
    basis = (basis * (scales / np.sqrt((scales**2).sum()))).astype(np.float32)
    mu = rng.standard_normal(d).astype(np.float32)
    mu /= np.linalg.norm(mu)
    total = n + n_queries
    n_topics = max(8, round(4 * np.sqrt(total)))
    domains = rng.standard_normal((n_domains, d)).astype(np.float32) @ basis.T
    topic_domain = rng.integers(0, n_domains, n_topics)
    topics = domains[topic_domain] * w_domain + w_topic * (
        rng.standard_normal((n_topics, d)).astype(np.float32) @ basis.T
    )
    weights = 1.0 / np.arange(1, n_topics + 1) ** 0.8
    labels = rng.choice(n_topics, size=total, p=weights / weights.sum())
    spread = rng.uniform(0.6, 1.4, n_topics).astype(np.float32)
    out = np.empty((total, d), dtype=np.float32)
    for s in range(0, total, _CHUNK):
        e = min(total, s + _CHUNK)
        lab = labels[s:e]
        z = rng.standard_normal((e - s, d), dtype=np.float32) @ basis.T
        x = w_mean * mu + topics[lab] + (w_noise * spread[lab])[:, None] * z
        out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
    perm = rng.permutation(total)  # queries are a random held-out subset
    return out[np.sort(perm[n_queries:])], out[perm[:n_queries]]


def embedding_stats(x: np.ndarray) -> dict[str, float]:
    """Statistics used to compare with real embeddings (``x`` at most a few thousand rows).

    Example:
        >>> x, _ = clustered_embeddings(300, 16, seed=1)
        >>> sorted(embedding_stats(x))[:3]
        ['mean_norm', 'nn10', 'nn50']
    """
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    iu = np.triu_indices(len(x), 1)
    mu = x.mean(0)
    ev = np.linalg.eigvalsh(np.cov((x - mu).T))[::-1]
    ev = ev / ev.sum()
    np.fill_diagonal(s, -np.inf)
    srt = -np.sort(-s, axis=1)
    return {
        "pair_cos_mean": float(s[iu].mean()),
        "pair_cos_sd": float(s[iu].std()),
        "mean_norm": float(np.linalg.norm(mu)),
        "nn1": float(np.median(srt[:, 0])),
        "nn10": float(np.median(srt[:, 9])),
        "nn50": float(np.median(srt[:, 49])) if len(x) > 50 else float("nan"),
        "pc10": float(ev[:10].sum()),
        "pc50": float(ev[:50].sum()),
        "pc100": float(ev[:100].sum()),
    }


def _compare_with_real() -> None:  # pragma: no cover - needs the offline encoders
    from asif_qdrant.encoders import load_image_encoder, load_text_encoder
    from asif_qdrant.loaders import load_tuxpaint_stamps

    pairs = load_tuxpaint_stamps()
    text = load_text_encoder(device="cpu").embed([p.caption for p in pairs], batch_size=64)
    image = load_image_encoder(device="cpu").embed([p.image for p in pairs], batch_size=32)
    rows = {
        "real text (MiniLM, 785 captions)": embedding_stats(text),
        "synthetic d=384 (785 rows)": embedding_stats(clustered_embeddings(785, 384)[0]),
        "real image (EfficientNet-Lite0, 785)": embedding_stats(image),
        "synthetic d=1280 (785 rows)": embedding_stats(clustered_embeddings(785, 1280)[0]),
    }
    keys = list(next(iter(rows.values())))
    print("| embeddings | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, st in rows.items():
        print(f"| {name} | " + " | ".join(f"{st[k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":  # pragma: no cover
    _compare_with_real()
