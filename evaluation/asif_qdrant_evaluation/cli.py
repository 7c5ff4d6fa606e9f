"""``asif-qdrant-evaluate``: run the quality evaluation and write RESULTS.md + results.json.

A standalone click command, declared twice in ``evaluation/pyproject.toml``: as the console
script ``asif-qdrant-evaluate`` and as the plugin ``evaluate`` of the entry-point group
``asif_qdrant.cli_commands``, which the ``asif-qdrant`` command line loads (so
``asif-qdrant evaluate ...`` runs it too once this package is installed). Also
``python -m asif_qdrant_evaluation``.

Example:
    >>> import json
    >>> from click.testing import CliRunner
    >>> listing = json.loads(CliRunner().invoke(evaluate, ["--list", "--json"]).output)
    >>> list(listing), "retrieval" in listing["tasks"], "numpy" in listing["methods"]
    (['tasks', 'methods', 'available'], True, True)
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from asif_qdrant.errors import ASIFError

from asif_qdrant_evaluation.config import EvalConfig
from asif_qdrant_evaluation.encoders import ENCODERS
from asif_qdrant_evaluation.methods import METHODS
from asif_qdrant_evaluation.runner import TASK_COMMAND
from asif_qdrant_evaluation.tasks import TASKS

__all__ = ["evaluate"]

_IMAGE = [s for s, e in ENCODERS.items() if e.modality == "image"]
_TEXT = [s for s, e in ENCODERS.items() if e.modality == "text"]
#: Options that set the :class:`EvalConfig` field of the same name (when given: a value that
#: is ``None`` or an empty tuple leaves the field to ``EvalConfig`` or to its smoke version).
_SETTINGS = (
    "image_encoder",
    "text_encoder",
    "k",
    "p",
    "pools",
    "methods",
    "csa_dim",
    "csa_ridge",
    "rrf_k",
    "folds",
    "fashion_per_class",
    "tuxpaint_limit",
    "seed",
)
# Options that do not change the numbers (left out of the per-task command in the report).
_NOT_SETTINGS = {"tasks", "as_json", "quiet", "report_command", "list_tasks", "cache_dir"}

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _folder(flag: str, default: str | None, help: str) -> Decorator:
    """A folder option (a :class:`~pathlib.Path`; it need not exist)."""
    return click.option(
        flag,
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=default is not None,
        help=help,
    )


def _optional_int(flag: str, help: str) -> Decorator:
    """An ``int`` option whose absence leaves the setting to :class:`EvalConfig`."""
    return click.option(flag, type=int, default=None, help=help)


def _repeatable(flag: str, dest: str, choices: Sequence[str], help: str) -> Decorator:
    """A repeatable choice option, collected into ``dest``."""
    return click.option(flag, dest, multiple=True, type=click.Choice(list(choices)), help=help)


def _task_command(ctx: click.Context) -> str:
    """:data:`~asif_qdrant_evaluation.runner.TASK_COMMAND` with the non-default options."""
    parts = [TASK_COMMAND]
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


def _listing(data_dir: Path | None) -> dict[str, Any]:
    """Tasks, methods, and which data and encoders are installed (``--list``)."""
    from asif_qdrant_evaluation.assets import Assets

    assets = Assets(data_dir=data_dir) if data_dir else Assets()
    return {
        "tasks": {n: t.description for n, t in TASKS.items()},
        "methods": {n: c.description for n, c in METHODS.items()},
        "available": assets.available(),
    }


def _listing_text(data: dict[str, Any]) -> str:
    return "\n".join(
        ["tasks:"]
        + [f"  {n:<10} {d}" for n, d in data["tasks"].items()]
        + ["methods:"]
        + [f"  {n:<14} {d}" for n, d in data["methods"].items()]
        + ["data and encoders:"]
        + [f"  {n:<14} {'installed' if ok else 'missing'}" for n, ok in data["available"].items()]
    )


@click.command()
@_repeatable("--task", "tasks", TASKS, "Run only this task (repeatable) [default: every task].")
@click.option("--list", "list_tasks", is_flag=True, help="List tasks, methods and data; exit.")
@click.option("--quick", is_flag=True, help="Smoke version: 60 stamps, 100 Fashion-MNIST images.")
@_folder("--out", "asif-eval", "Folder for RESULTS.md, results.json and the plots.")
@_folder(
    "--cache-dir", None, "Embedding cache [default: $ASIF_QDRANT_CACHE or ~/.cache/asif-qdrant]."
)
@_folder(
    "--data-dir",
    None,
    "Emoji and mpnet [default: $ASIF_QDRANT_EVAL_DATA or ~/.cache/asif-qdrant/eval-data].",
)
@click.option("--image-encoder", type=click.Choice(_IMAGE), default="lite0", show_default=True)
@click.option("--text-encoder", type=click.Choice(_TEXT), default="minilm", show_default=True)
@click.option("--k", type=int, default=800, show_default=True, help="Anchors per relative vector.")
@click.option("--p", type=float, default=8.0, show_default=True, help="Exponent of the weights.")
@_repeatable(
    "--pool",
    "pools",
    ["tuxpaint", "openclipart", "emoji"],
    "Anchor pool to mix in (repeatable) [default: all three; --quick: tuxpaint].",
)
@_repeatable(
    "--method", "methods", METHODS, "Method to compare (repeatable) [default: all of them]."
)
@_optional_int("--csa-dim", "CSA dims kept [default: min(image dim, text dim, anchors // 2)].")
@click.option(
    "--csa-ridge", type=float, default=0.1, show_default=True, help="CSA's relative ridge."
)
@click.option("--rrf-k", type=int, default=2, show_default=True, help="RRF constant of the hybrid.")
@_optional_int("--folds", "Tux Paint folds [default: 5; --quick: 3].")
@_optional_int(
    "--fashion-per-class", "Fashion-MNIST test images per class [default: 200; --quick: 10]."
)
@_optional_int(
    "--tuxpaint-limit", "Use only this many Tux Paint stamps [default: all; --quick: 60]."
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
    report_command: str | None,
    as_json: bool,
    quiet: bool,
    **settings: Any,
) -> None:
    """Measure retrieval and zero-shot quality on offline data; write RESULTS.md + JSON.

    Tasks: retrieval (Tux Paint recall@k), image (image->image mAP, intra-modal and through
    the captions), zeroshot (Tux Paint categories, Fashion-MNIST, prompt-template
    strategies), adjust (accuracy before/after adding anchors), scaling (vs number of
    anchors, PNG), kp (k/p heatmap, PNG), encoders (Lite0/Lite2 x MiniLM/mpnet), csa (ASIF
    vs CSA vs hybrid). Embeddings are cached, so a second run is fast.
    `bash scripts/evaluate.sh` installs the data and runs everything.
    """
    if list_tasks:
        data = _listing(data_dir)
        click.echo(json.dumps(data, indent=2) if as_json else _listing_text(data))
        return
    overrides = {
        name: tuple(value) if isinstance(value, (tuple, list)) else value
        for name, value in settings.items()
        if name in _SETTINGS and value not in (None, ())
    }
    from asif_qdrant_evaluation.runner import FULL_COMMAND, run_evaluation

    task_command = _task_command(ctx)
    if not report_command and (tasks or quick):
        picked = " ".join(f"--task {t}" for t in tasks)
        report_command = " ".join(task_command.replace("--task {task}", picked).split())
    try:
        config = EvalConfig.smoke(**overrides) if quick else EvalConfig(**overrides)
        report = run_evaluation(
            config,
            list(tasks) or None,
            out_dir=out,
            cache_dir=cache_dir,
            data_dir=data_dir,
            show_progress_bar=not quiet and not as_json,
            command=report_command or FULL_COMMAND,
            task_command=task_command,
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


if __name__ == "__main__":  # pragma: no cover - python -m asif_qdrant_evaluation.cli
    evaluate()
