"""Wall time of one cold ``asif-qdrant`` command (a fresh process each run), main vs this tree.

Each run is ``python -m asif_qdrant ...`` in a new process with ``PYTHONPATH`` set to the tree
under test, on a copy of the demo model (``--model``, default ``./asif-demo/model``, made by
``asif-qdrant demo``) so neither tree's engine lock or writes touch the other. The commands:
``info``, a text search and an image search (model ``tuxpaint``, catalog ``stamps``). Each is
run ``--repeat`` times, the two trees in turn; the median is reported.

    python benchmarks/cli_wall.py --before /work/main --after . --model /work/main/asif-demo/model

prints a Markdown table (seconds) and writes ``benchmarks/results_cli_wall.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGE = "/usr/share/tuxpaint/stamps/food/pizza.png"
COMMANDS = {
    "info": ["info"],
    "text search": ["search", "stamps", "a red apple", "--name", "tuxpaint", "--limit", "3"],
    "image search": ["search", "stamps", "--image", IMAGE, "--name", "tuxpaint", "--limit", "3"],
}


def wall(tree: Path, model: Path, args: list[str]) -> float:
    """Seconds of one cold run of ``asif-qdrant ARGS --path MODEL -q`` with ``tree``'s code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(tree / p) for p in ("", "evaluation"))
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "asif_qdrant", *args, "--path", str(model), "-q"],
        env=env,
        check=True,
        capture_output=True,
        cwd=tempfile.gettempdir(),
    )
    return time.perf_counter() - t0


def main() -> None:
    """Measure and print the table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", type=Path, required=True, help="Tree of the old code (main).")
    ap.add_argument("--after", type=Path, default=Path("."), help="Tree of the new code.")
    ap.add_argument("--model", type=Path, default=Path("asif-demo/model"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results_cli_wall.json"))
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    runs: dict[str, dict[str, list[float]]] = {n: {t: [] for t in trees} for n in COMMANDS}
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for label in trees:
            models[label] = Path(tmp) / label
            shutil.copytree(args.model, models[label])
        # Interleaved (before, after, before, ...), so a busy machine slows both alike.
        for _ in range(args.repeat):
            for name, command in COMMANDS.items():
                for label, tree in trees.items():
                    runs[name][label].append(wall(tree, models[label], command))
    results = {n: {t: statistics.median(r) for t, r in by.items()} for n, by in runs.items()}
    print(f"runs (s): {json.dumps(runs)}; load average {os.getloadavg()}", file=sys.stderr)
    print("| command | before (s) | after (s) |\n|---|---|---|")
    for name, r in results.items():
        print(f"| `{' '.join(COMMANDS[name])}` | {r['before']:.2f} | {r['after']:.2f} |")
    args.out.write_text(
        json.dumps({"commands": COMMANDS, "median_seconds": results, "runs": runs}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
