"""``asif-qdrant evaluate``: run the quality evaluation and write RESULTS.md + results.json.

Registered on :data:`asif_qdrant.cli.main` on import (one line at the end of ``cli.py``).

Example:
    >>> from click.testing import CliRunner
    >>> from asif_qdrant_evaluation.cli import evaluate
    >>> result = CliRunner().invoke(evaluate, ["--list"])
    >>> "retrieval" in result.output and "numpy" in result.output
    True
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from asif_qdrant.cli import main
from asif_qdrant.errors import ASIFError

from asif_qdrant_evaluation.config import EvalConfig
from asif_qdrant_evaluation.encoders import ENCODERS
from asif_qdrant_evaluation.methods import METHODS
from asif_qdrant_evaluation.tasks import TASKS

__all__ = ["evaluate"]

_IMAGE = [s for s, e in ENCODERS.items() if e.modality == "image"]
_TEXT = [s for s, e in ENCODERS.items() if e.modality == "text"]
# Options that do not change the numbers (left out of the per-task command in the report).
_NOT_SETTINGS = {"tasks", "as_json", "quiet", "report_command", "list_tasks", "cache_dir"}


def _task_command(ctx: click.Context) -> str:
    """``python -m asif_qdrant evaluate --task {task} ...`` with the non-default options."""
    parts = ["python -m asif_qdrant evaluate --task {task}"]
    for param in ctx.command.params:
        name = param.name or ""
        if name in _NOT_SETTINGS or not isinstance(param, click.Option):
            continue
        value = ctx.params.get(name)
        flag = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        if param.is_flag:
            if value:
                parts.append(flag)
            continue
        if value in (None, ()) or value == param.default:
            continue
        if isinstance(value, (tuple, list)):
            parts += [f"{flag} {shlex.quote(str(v))}" for v in value]
        else:
            text = value.as_posix() if isinstance(value, Path) else str(value)
            parts.append(f"{flag} {shlex.quote(text)}")
    return " ".join(parts)


@main.command()
@click.option(
    "--task",
    "tasks",
    multiple=True,
    type=click.Choice(list(TASKS)),
    help="Run only this task (repeatable) [default: every task].",
)
@click.option("--list", "list_tasks", is_flag=True, help="List tasks, methods and data; exit.")
@click.option("--quick", is_flag=True, help="Smoke version: 60 stamps, 100 Fashion-MNIST images.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default="asif-eval",
    show_default=True,
    help="Folder for RESULTS.md, results.json and the plots.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Embedding cache [default: $ASIF_QDRANT_CACHE or ~/.cache/asif-qdrant].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Emoji and mpnet [default: $ASIF_QDRANT_EVAL_DATA or ~/.cache/asif-qdrant/eval-data].",
)
@click.option("--image-encoder", type=click.Choice(_IMAGE), default="lite0", show_default=True)
@click.option("--text-encoder", type=click.Choice(_TEXT), default="minilm", show_default=True)
@click.option("--k", type=int, default=800, show_default=True, help="Anchors per relative vector.")
@click.option("--p", type=float, default=8.0, show_default=True, help="Exponent of the weights.")
@click.option(
    "--pool",
    "pools",
    multiple=True,
    type=click.Choice(["tuxpaint", "openclipart", "emoji"]),
    help="Anchor pool to mix in (repeatable) [default: all three; --quick: tuxpaint].",
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(list(METHODS)),
    help="Method to compare (repeatable) [default: all of them].",
)
@click.option(
    "--csa-dim",
    type=int,
    default=None,
    help="CSA dims kept [default: min(image dim, text dim, anchors // 2)].",
)
@click.option(
    "--csa-ridge", type=float, default=0.1, show_default=True, help="CSA's relative ridge."
)
@click.option("--rrf-k", type=int, default=2, show_default=True, help="RRF constant of the hybrid.")
@click.option("--folds", type=int, default=None, help="Tux Paint folds [default: 5; --quick: 3].")
@click.option(
    "--fashion-per-class",
    type=int,
    default=None,
    help="Fashion-MNIST test images per class [default: 200; --quick: 10].",
)
@click.option(
    "--tuxpaint-limit",
    type=int,
    default=None,
    help="Use only this many Tux Paint stamps [default: all; --quick: 60].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every draw.")
@click.option("--report-command", default=None, hidden=True, help="Command shown in the report.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_context
def evaluate(
    ctx: click.Context,
    tasks: Sequence[str],
    list_tasks: bool,
    quick: bool,
    out: Path,
    cache_dir: Path | None,
    data_dir: Path | None,
    image_encoder: str,
    text_encoder: str,
    k: int,
    p: float,
    pools: Sequence[str],
    methods: Sequence[str],
    csa_dim: int | None,
    csa_ridge: float,
    rrf_k: int,
    folds: int | None,
    fashion_per_class: int | None,
    tuxpaint_limit: int | None,
    seed: int,
    report_command: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Measure retrieval and zero-shot quality on offline data; write RESULTS.md + JSON.

    Tasks: retrieval (Tux Paint recall@k), image (image->image mAP, intra-modal and through
    the captions), zeroshot (Tux Paint categories, Fashion-MNIST, prompt-template
    strategies), adjust (accuracy before/after adding anchors), scaling (vs number of
    anchors, PNG), kp (k/p heatmap, PNG), encoders (Lite0/Lite2 x MiniLM/mpnet), csa (ASIF
    vs CSA vs hybrid). Embeddings are cached, so a second run is fast.
    `bash scripts/evaluate.sh` installs the data and runs everything.
    """
    from asif_qdrant_evaluation.assets import Assets

    if list_tasks:
        assets = Assets(data_dir=data_dir) if data_dir else Assets()
        data = {
            "tasks": {n: t.description for n, t in TASKS.items()},
            "methods": {n: c.description for n, c in METHODS.items()},
            "available": assets.available(),
        }
        text = "\n".join(
            ["tasks:"]
            + [f"  {n:<10} {d}" for n, d in data["tasks"].items()]
            + ["methods:"]
            + [f"  {n:<14} {d}" for n, d in data["methods"].items()]
            + ["data and encoders:"]
            + [
                f"  {n:<14} {'installed' if ok else 'missing'}"
                for n, ok in data["available"].items()
            ]
        )
        click.echo(json.dumps(data, indent=2) if as_json else text)
        return
    overrides: dict[str, Any] = {
        "image_encoder": image_encoder,
        "text_encoder": text_encoder,
        "k": k,
        "p": p,
        "seed": seed,
        "csa_dim": csa_dim,
        "csa_ridge": csa_ridge,
        "rrf_k": rrf_k,
    }
    if pools:
        overrides["pools"] = tuple(pools)
    if methods:
        overrides["methods"] = tuple(methods)
    if folds is not None:
        overrides["folds"] = folds
    if fashion_per_class is not None:
        overrides["fashion_per_class"] = fashion_per_class
    if tuxpaint_limit is not None:
        overrides["tuxpaint_limit"] = tuxpaint_limit
    from asif_qdrant_evaluation.runner import FULL_COMMAND, run_evaluation

    try:
        config = EvalConfig.smoke(**overrides) if quick else EvalConfig(**overrides)
        report = run_evaluation(
            config,
            list(tasks) or None,
            out_dir=out,
            cache_dir=cache_dir,
            data_dir=data_dir,
            show_progress_bar=not quiet and not as_json,
            command=report_command
            or (
                FULL_COMMAND
                if not tasks and not quick
                else " ".join(
                    _task_command(ctx)
                    .replace("--task {task}", " ".join(f"--task {t}" for t in tasks))
                    .split()
                )
            ),
            task_command=_task_command(ctx),
        )
    except ASIFError as e:
        if as_json:
            click.echo(json.dumps({"error": type(e).__name__, "message": str(e)}))
            sys.exit(1)
        raise click.ClickException(f"{type(e).__name__}: {e}") from e
    if as_json:
        click.echo(report.to_json())
        return
    lines = []
    for r in report.results:
        lines.append(f"== {r.title} ({r.seconds:.0f} s)")
        if r.skipped:
            lines.append(f"   not measured: {r.skipped}")
        for t in r.tables:
            lines += [t.markdown(), ""]
    lines.append(f"wrote {out / 'RESULTS.md'} and {out / 'results.json'} in {report.seconds:.0f} s")
    click.echo("\n".join(lines))
