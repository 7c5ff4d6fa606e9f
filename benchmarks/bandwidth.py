"""The machine's memory read bandwidth, and the query rate it allows a full scan.

A path that reads the whole ``float32`` anchor matrix for every query can answer at most
``bandwidth / (4 n d)`` queries per second at batch 1, however clever its arithmetic. This
measures the bandwidth the way such a path reads (streaming, every thread the libraries use):

* ``gemv``: ``A @ x`` with BLAS (one pass over ``A``, memory-bound), default threads;
* ``torch_sum``: ``torch.sum(A)`` (multi-threaded streaming reduction);
* ``numpy_sum``: ``A.sum()`` (numpy, one thread);
* ``copy``: ``np.copyto`` into a second buffer (read + write: ``2 * bytes`` counted).

The read bandwidth is the best of the three reads; the copy is reported beside it.

Usage::

    python -m benchmarks.bandwidth --gib 1.5        # a fresh 1.5 GiB array
    python -m benchmarks.bandwidth --npy /tmp/proto/a.npy

Example:
    >>> r = measure(np.ones((1024, 256), np.float32), repeats=2)
    >>> sorted(r) == sorted([*READS, "copy", "bytes", "read_gbs", "best_read"])
    True
    >>> round(limit_qps(35.0, 1_000_000, 384), 1)
    22.8
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

__all__ = ["READS", "limit_qps", "measure"]

#: The streaming reads measured (GB/s each; the best is the read bandwidth).
READS = ("gemv", "torch_sum", "numpy_sum")


def _best_gbs(fn: Any, nbytes: int, repeats: int) -> float:
    fn()  # warm-up (page faults, thread pools)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return nbytes / best / 1e9


def measure(mat: np.ndarray, *, repeats: int = 5) -> dict[str, Any]:
    """GB/s (1e9 bytes) of each streaming read of ``mat`` and of a copy (best of repeats).

    Args:
        mat: A C-contiguous ``float32`` matrix, larger than the caches to mean anything
            (1 GiB or more).
        repeats: Timed passes per measure (the fastest counts).
    """
    import torch

    mat = np.ascontiguousarray(mat, dtype=np.float32)
    nbytes = int(mat.nbytes)
    x = np.ones(mat.shape[1], np.float32)
    t = torch.from_numpy(mat)
    out: dict[str, Any] = {"bytes": nbytes}
    out["gemv"] = _best_gbs(lambda: mat @ x, nbytes, repeats)
    out["torch_sum"] = _best_gbs(lambda: torch.sum(t), nbytes, repeats)
    out["numpy_sum"] = _best_gbs(lambda: mat.sum(), nbytes, repeats)
    dst = np.empty_like(mat)
    out["copy"] = _best_gbs(lambda: np.copyto(dst, mat), 2 * nbytes, repeats)
    best = max(READS, key=lambda k: out[k])
    out["best_read"] = best
    out["read_gbs"] = out[best]
    return out


def limit_qps(read_gbs: float, n: int, d: int) -> float:
    """Batch-1 queries/s of a path that must read the whole ``(n, d)`` float32 matrix."""
    return read_gbs * 1e9 / (4.0 * n * d)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: prints one JSON object."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bandwidth", description=__doc__)
    ap.add_argument("--gib", type=float, default=1.5, help="size of a fresh array (GiB)")
    ap.add_argument("--npy", default=None, help="read this float32 .npy instead (loaded)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.npy:
        mat = np.load(args.npy)
    else:
        rows = int(args.gib * 1024**3 / (4 * 384))
        mat = np.full((rows, 384), 0.5, np.float32)
    print(json.dumps(measure(mat, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
