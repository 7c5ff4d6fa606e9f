"""Interleaved timing of numpy baseline, ivf and ivf-pca on ONE IVFPCAIndex (same lists).

Under a loaded CPU, timings of paths measured minutes apart are not comparable; this takes
the best of several interleaved repetitions. ``ivf`` is the same index searched without its
reduced stage (``candidates`` set to n): same lists, same calibrated nprobe.

    python scripts/fastpath_interleave.py --n 1000000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from asif_qdrant.anchor_index import IVFPCAIndex, relative_search
from scripts.fastpath_probe import K, P, baseline


def main() -> None:
    """Run it (see the module docstring)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--anchors", default="/tmp/proto/a.npy")
    ap.add_argument("--queries", default="/tmp/proto/q.npy")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--single", type=int, default=16)
    args = ap.parse_args()
    a = np.load(args.anchors, mmap_mode="r")[: args.n]
    q = np.array(np.load(args.queries)[:64])
    index = IVFPCAIndex().build(np.arange(args.n), a)
    auto = None

    def path(name: str):
        def run(x: np.ndarray) -> object:
            if name == "numpy-baseline":
                return baseline(a, x, K)
            index.candidates = None if name == "ivf-pca" else args.n
            return relative_search(index, x, K, P)

        return run

    names = ["numpy-baseline", "ivf", "ivf-pca"]
    for name in names[1:]:
        path(name)(q[:2])  # calibration
    auto = index.calibration
    best: dict[str, dict[str, float]] = {n: {"b1": 0.0, "b64": 0.0, "load": []} for n in names}
    for _ in range(args.reps):
        for name in names:
            f = path(name)
            t = time.perf_counter()
            for i in range(args.single):
                f(q[i : i + 1])
            best[name]["b1"] = max(best[name]["b1"], args.single / (time.perf_counter() - t))
            t = time.perf_counter()
            f(q)
            best[name]["b64"] = max(best[name]["b64"], 64 / (time.perf_counter() - t))
            best[name]["load"].append(round(os.getloadavg()[0], 1))
        print(json.dumps(best), flush=True)
    print(json.dumps({"calibration": {str(k): v for k, v in auto.items()}}))


if __name__ == "__main__":
    main()
