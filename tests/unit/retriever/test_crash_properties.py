"""Property test (issue 19): random edits, purges, index and import runs, random SIGKILLs.

Each step runs one operation in a child process (``tests/crash_ops.py``) that is left to
finish, killed at a named point (``ASIF_QDRANT_KILL_AT``) or killed after a random delay.
After every step the model is reopened and :func:`tests.crash_ops.check_model` checks: both
anchor collections hold the same ids, the fingerprint counts them (and its next id is above
them), no staging copy is left, and every catalog vector equals a fresh re-computation.

The default run is small (2 examples of 2 steps, under a minute); a longer one::

    ASIF_CRASH_EXAMPLES=25 ASIF_CRASH_STEPS=8 python -m pytest \
        tests/unit/retriever/test_crash_properties.py -q
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asif_qdrant.store import EdgeStore
from asif_qdrant.transfer import export_model
from tests.crash_ops import REWRITE_POINTS, build, check_model, kill_after, run_killed

EXAMPLES = int(os.environ.get("ASIF_CRASH_EXAMPLES", "2"))
STEPS = int(os.environ.get("ASIF_CRASH_STEPS", "2"))

#: The named kill points each operation passes.
POINTS = {
    "purge": [
        *REWRITE_POINTS,
        "rewrite:dropped#2",
        "rewrite:restoring#3",
    ],
    "index": ["index:written"],
    "import": ["import:staged#2", "import:swapping", "import:restoring#2"],
    "add": [],
    "delete": [],
}

step = st.tuples(
    st.sampled_from(sorted(POINTS)),
    st.integers(0, 1000),
    st.one_of(st.none(), st.floats(0.3, 2.5), st.integers(0, 7)),
)


def _run_step(path: Path, export: Path, op: str, seed: int, kill: float | int | None) -> None:
    arg = str(export) if op == "import" else str(seed)
    if isinstance(kill, float):
        kill_after(path, op, arg, kill)
    elif isinstance(kill, int) and POINTS[op]:
        run_killed(path, op, arg, kill_at=POINTS[op][kill % len(POINTS[op])])
    else:
        run_killed(path, op, arg)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=EXAMPLES <= 2,
)
@given(steps=st.lists(step, min_size=STEPS, max_size=STEPS))
def test_random_operations_and_kills_keep_the_model_consistent(
    steps: list[tuple[str, int, float | int | None]],
) -> None:
    path = Path(tempfile.mkdtemp(prefix="asif-crash-")) / "db"
    build(path, anchors=24, items=30, k=4)
    export = path.parent / "model.tar"
    with EdgeStore(path) as store:
        export_model(store, "asif", export, show_progress_bar=False)
    for op, seed, kill in steps:
        _run_step(path, export, op, seed, kill)
        check_model(path)
