"""Seconds to refit CSA and rewrite a catalog's ``csa`` vectors after an anchor edit.

5,000 random anchor pairs (d_img 1280, d_txt 384), ``csa_dim=256``, a catalog of 10,000 image
items on the embedded engine (docs/METHODS.md, "Cost of a refit")::

    python -m benchmarks.csa_refit
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from asif_qdrant import ASIF
from asif_qdrant.retriever.crossgap import csa_model, refresh_csa

__all__ = ["main"]


def main() -> int:
    """Print the fit, rewrite and whole-edit seconds."""
    rng = np.random.default_rng(0)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ASIF(
            path=tmp,
            k=800,
            csa_dim=256,
            image_encoder="precomputed/image",
            text_encoder="precomputed/text",
            show_progress_bar=False,
        ) as asif,
    ):
        asif.add_anchor_embeddings(rng.normal(size=(5000, 1280)), rng.normal(size=(5000, 384)))
        asif.index_embeddings("cat", rng.normal(size=(10000, 1280)), "image")
        asif.state.csa_cache = None  # force a refit
        t = time.perf_counter()
        csa_model(asif.state)
        print(f"read back + fit CSA: {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        refresh_csa(asif.state, "cat")
        print(f"rewrite 10,000 csa vectors: {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        asif.add_anchor_embeddings(rng.normal(size=(10, 1280)), rng.normal(size=(10, 384)))
        assert asif.last_edit is not None
        print(
            f"whole edit of 10 pairs: {time.perf_counter() - t:.2f} s; {asif.last_edit.summary()}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
