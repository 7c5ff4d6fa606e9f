"""Run evaluation tasks and write the report: Markdown (``RESULTS.md``) and JSON (``results.json``).

The report records every figure, the encoders, k, p, the anchor pools and their sizes, the
test sets, the machine (with its load average, since the CPU may be shared), and the wall
time of each task and of the whole run.

Example:
    >>> from asif_qdrant_evaluation.runner import machine_info
    >>> sorted(machine_info())[:3]
    ['cpu', 'cpus', 'gpu']
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from asif_qdrant.errors import EncoderLoadError, InvalidParameterError

from asif_qdrant_evaluation.assets import Assets, MissingDataError
from asif_qdrant_evaluation.cache import EmbeddingCache, default_cache_dir
from asif_qdrant_evaluation.config import EvalConfig
from asif_qdrant_evaluation.encoders import ENCODERS
from asif_qdrant_evaluation.methods import METHODS
from asif_qdrant_evaluation.tasks import TASKS, EvalContext, TaskResult

__all__ = ["FULL_COMMAND", "TASK_COMMAND", "Report", "machine_info", "run_evaluation"]

logger = logging.getLogger(__name__)

#: The one command that reproduces docs/RESULTS.md from a fresh clone.
FULL_COMMAND = "bash scripts/evaluate.sh"
#: The command that measures one task (``{task}`` is replaced by its name).
TASK_COMMAND = "python -m asif_qdrant_evaluation --task {task}"


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on.

    Returns:
        Architecture, CPU model and count, GPU (``"none"``, or present but not used: the
        encoders run on the CPU), load average, and the versions of Python and the libraries
        that compute the numbers.
    """
    # The evaluation runs its encoders on the CPU; a GPU, if any, is only reported. Checked
    # without importing torch (seconds), which a fully cached run never needs.
    gpus = sorted(Path("/proc/driver/nvidia/gpus").glob("*"))
    gpu = f"{len(gpus)} NVIDIA GPU(s), not used" if gpus else "none"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpus": _cpus(),
        "gpu": gpu,
        "load_average_1_5_15": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "versions": {
            d: _version(d)
            for d in ("torch", "timm", "sentence-transformers", "numpy", "qdrant-edge-py")
        },
    }


def machine_line(info: dict[str, Any]) -> str:
    """``x86_64, 2 CPU cores (model), no GPU``.

    Example:
        >>> machine_line({"machine": "x86_64", "cpus": 2, "cpu": "X", "gpu": "none"})
        'x86_64, 2 CPU cores (X), no GPU'
    """
    gpu = "no GPU" if info.get("gpu") == "none" else str(info.get("gpu"))
    return f"{info['machine']}, {info['cpus']} CPU cores ({info['cpu']}), {gpu}"


@dataclass
class Report:
    """The outcome of :func:`run_evaluation`.

    Attributes:
        config: The settings used.
        results: One result per task, in run order.
        machine: :func:`machine_info` at the start (``load_average_end`` added at the end).
        started: ISO start time (UTC).
        seconds: Wall time of the whole run.
        data: Pools and test sets used, with sizes.
        encoders: Per encoder: name, cache hits, inputs encoded, encoding seconds.
        command: The command that reproduces the whole report.
        task_command: The command for one task, with ``{task}`` where its name goes.
    """

    config: EvalConfig
    results: list[TaskResult]
    machine: dict[str, Any]
    started: str
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)
    encoders: dict[str, Any] = field(default_factory=dict)
    command: str = FULL_COMMAND
    task_command: str = TASK_COMMAND

    def result(self, name: str) -> TaskResult:
        """The result of task ``name``."""
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """Every figure, JSON-ready."""
        return {
            "started": self.started,
            "seconds": round(self.seconds, 1),
            "command": self.command,
            "machine": self.machine,
            "config": self.config.as_dict(),
            "data": self.data,
            "encoders": self.encoders,
            "methods": {
                name: {"title": cls.title, "description": cls.description}
                for name, cls in METHODS.items()
                if name in self.config.methods
            },
            "tasks": {r.name: r.as_dict() for r in self.results},
        }

    def to_json(self) -> str:
        """The report as JSON (NaN written as ``null``)."""
        return json.dumps(_no_nan(self.as_dict()), indent=1, ensure_ascii=False)

    def to_markdown(self) -> str:
        """The report as Markdown: header, then one section per task."""
        cfg = self.config
        m = self.machine
        img, txt = ENCODERS[cfg.image_encoder], ENCODERS[cfg.text_encoder]
        lines = [
            "# Measured quality of asif-qdrant",
            "",
            "Generated by `asif-qdrant-evaluate` (package `asif_qdrant_evaluation`, folder "
            "`evaluation/`); do not edit by hand. Every number below was measured by the "
            "command shown with it, on the machine named here.",
            "",
            f"- **Reproduce everything:** `{self.command}`"
            + (
                " (installs the data, then runs every task; a second run reads the embeddings "
                "from the cache and takes far less)."
                if self.command == FULL_COMMAND
                else "."
            ),
            f"- **Machine:** {machine_line(m)}; Python {m['python']}, "
            + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
            + f". Load average at start {m['load_average_1_5_15']}, at end "
            f"{m.get('load_average_end', 'n/a')} (the CPU is shared with other jobs: wall times "
            "are as measured under that load).",
            f"- **Run:** started {self.started}, wall time {self.seconds:.0f} s"
            + (" (smoke version, `--quick`)" if cfg.quick else "")
            + ".",
            f"- **Encoders:** {img.title} (`{img.name}`, {img.dim}-d) + {txt.title} "
            f"(`{txt.name}`, {txt.dim}-d), except in the encoder comparison.",
            f"- **k = {cfg.k}, p = {cfg.p:g}** unless a table says otherwise"
            + (
                f"; zero-shot classification with the library's default spread rule "
                f"(classify_spread = {cfg.classify_spread:g}: each image and prompt vector's p "
                f"makes its weights spread over {cfg.classify_spread:g} of its k anchors) in "
                "the method comparisons (library and numpy recipe; `numpy-noclamp` and `dense` "
                "keep their own p), p in the k/p sweeps."
                if cfg.classify_spread is not None
                else "."
            ),
        ]
        for line in self.data.get("lines", []):
            lines.append(f"- {line}")
        if self.encoders:
            parts = [
                f"{v['name']}: {v['encoded']} encoded in {v['encode_seconds']:.0f} s, "
                f"{v['cache_hits']} from the cache"
                for v in self.encoders.values()
            ]
            lines.append("- **Embeddings (this run):** " + "; ".join(parts) + ".")
        highlights = _highlights(self.results)
        if highlights:
            lines += ["", "Headline numbers (library path; details below):", ""]
            lines += [f"- {h}" for h in highlights]
        methods = [METHODS[n] for n in cfg.methods if n in METHODS]
        lines += ["", "Methods compared:", ""]
        lines += [f"- **{c.title}** (`{c.name}`): {c.description}." for c in methods]
        lines += [
            "",
            "Contents: " + ", ".join(f"[{r.title}](#{_anchor(r.title)})" for r in self.results),
            "",
        ]
        for r in self.results:
            lines += [f"## {r.title}", ""]
            cmd = self.task_command.replace("{task}", r.name)
            if r.skipped:
                lines += [f"Not measured: {r.skipped}", "", f"Command: `{cmd}`", ""]
                continue
            lines += [
                f"Command: `{cmd}` (or `{self.command}` for everything); machine: "
                f"{machine_line(m)}; wall time of this task: {r.seconds:.0f} s.",
                "",
            ]
            if r.summary:
                lines += [r.summary, ""]
            for t in r.tables:
                lines += [t.markdown(), ""]
            for plot in r.plots:
                lines += [f"![{r.title}]({plot})", ""]
            for note in r.notes:
                lines += [f"- {note}"]
            if r.notes:
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``RESULTS.md`` and ``results.json`` into ``out_dir`` (plots are already there)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, js = out / "RESULTS.md", out / "results.json"
        md.write_text(self.to_markdown(), encoding="utf-8")
        js.write_text(self.to_json() + "\n", encoding="utf-8")
        paths = {"markdown": md, "json": js}
        for r in self.results:
            for plot in r.plots:
                paths[plot] = out / plot
        return paths


def _highlights(results: Sequence[TaskResult]) -> list[str]:
    """One line per task with its headline numbers (library path), when the task ran."""
    by = {r.name: r for r in results if not r.skipped}
    out: list[str] = []
    try:
        if "retrieval" in by:
            f = by["retrieval"].figures
            pools = [
                k for k in f if k not in ("chance", "library_equals_numpy", "library_vs_numpy")
            ]
            label = pools[-1]
            lib = f[label]["asif"]
            ch = f["chance"]
            out.append(
                f"Tux Paint caption retrieval (anchors {label}): image->text R@1 "
                f"{lib['image->text']['R@1']:.3f}, text->image R@1 "
                f"{lib['text->image']['R@1']:.3f} (chance {ch['text->image']['R@1']:.3f}); "
                f"R@10 {lib['image->text']['R@10']:.3f} / {lib['text->image']['R@10']:.3f} "
                f"(chance {ch['text->image']['R@10']:.3f})."
            )
        if "zeroshot" in by:
            f = by["zeroshot"].figures
            mean = f["library_mean_accuracy_per_strategy"]
            out.append(
                "Prompt templates: best strategy **"
                + f["best_strategy"]
                + "** (mean accuracy over the zero-shot rows: "
                + ", ".join(f"{s} {v:.3f}" for s, v in mean.items())
                + f"); the library's default is **{f.get('library_default_strategy', 'max')}**."
            )
        if "image" in by:
            f = by["image"].figures
            parts = []
            for level, b in f["best"].items():
                who = (
                    "raw encoder cosine"
                    if b["method"] == "raw"
                    else f"{METHODS[b['method']].title}, {b['variant']}, pool {b['pool']}"
                )
                parts.append(
                    f"same {level}: best mAP {b['mAP']:.3f} ({who}; raw cosine {b['raw_mAP']:.3f})"
                )
            out.append("Image->image search: " + "; ".join(parts) + ".")
        if "csa" in by:
            f = by["csa"].figures
            won: dict[str, list[str]] = {}
            for col, whos in f["winners"].items():
                for who in whos:
                    won.setdefault(who, []).append(col)
            out.append(
                "ASIF vs CSA vs hybrid: "
                + "; ".join(
                    f"{who} best on {len(cols)} of {len(f['winners'])}" for who, cols in won.items()
                )
                + " (see the comparison section)."
            )
        if "adjust" in by:
            f = by["adjust"].figures["asif"]
            out.append(
                f"Adjusting in seconds: Fashion-MNIST accuracy {f['before']:.3f} -> "
                f"{f['after_mean']:.3f} ± {f['after_std']:.3f} after adding "
                f"{by['adjust'].figures['pairs_added']} labelled pairs; the Qdrant edit took "
                f"{sum(f['edit_seconds']) / len(f['edit_seconds']):.2f} s."
            )
        if "kp" in by:
            f = by["kp"].figures
            parts = []
            for key, grid in f["grids"].items():
                if "R@5" in key:
                    continue
                g = [[float("nan") if x is None else x for x in row] for row in grid]
                best = max(
                    ((v, i, j) for i, row in enumerate(g) for j, v in enumerate(row) if v == v),
                    default=None,
                    key=lambda t: t[0],
                )
                if best:
                    parts.append(f"{key} best at k={f['k'][best[1]]}, p={f['p'][best[2]]:g}")
            out.append("k and p: " + "; ".join(parts) + ".")
        if "encoders" in by:
            f = by["encoders"].figures
            rows = {
                k: v for k, v in f.items() if isinstance(v, dict) and "fashion-mnist accuracy" in v
            }
            if rows:
                best = max(
                    rows,
                    key=lambda k: rows[k]["text->image"]["R@1"] + rows[k]["image->text"]["R@1"],
                )
                out.append(f"Encoders: best retrieval with {best}.")
    except (KeyError, IndexError, ZeroDivisionError, TypeError):  # pragma: no cover
        logger.warning("could not summarise every task", exc_info=True)
    return out


def _anchor(title: str) -> str:
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return keep.replace(" ", "-")


def _no_nan(x: Any) -> Any:
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {str(k): _no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_nan(v) for v in x]
    if hasattr(x, "tolist"):
        return _no_nan(x.tolist())
    return x


def _data_summary(ctx: EvalContext) -> dict[str, Any]:
    cfg = ctx.config
    out: dict[str, Any] = {"available": ctx.available, "lines": []}
    names = ctx.pool_names()
    missing = [n for n in cfg.pools if n not in names]
    if names:
        pool = ctx.pool(names)
        counts = pool.counts()
        out["pool"] = {"names": list(names), "size": len(pool), "per_source": counts}
        limits = {
            "openclipart": cfg.openclipart_limit,
            "emoji": cfg.emoji_limit,
            "tuxpaint": cfg.tuxpaint_limit,
        }
        desc = ", ".join(
            f"{n} {counts.get(n, 0):,}"
            + (f" (capped at {limits[n]:,}, spread evenly)" if limits.get(n) else "")
            for n in names
        )
        out["lines"].append(f"**Anchor pool:** {len(pool):,} pairs: {desc}.")
    if missing:
        out["lines"].append(f"**Pools not installed, left out:** {', '.join(missing)}.")
    if ctx.has("tuxpaint"):
        out["tuxpaint_test"] = len(ctx.tux())
        out["lines"].append(
            f"**Tux Paint test pairs:** {len(ctx.tux())} stamps (one per distinct caption"
            + (f", {cfg.tuxpaint_limit} spread evenly" if cfg.tuxpaint_limit else "")
            + f"), {cfg.folds} folds stratified by category."
        )
    if ctx.has("fashion-mnist"):
        out["fashion_test"] = len(ctx.fashion())
        sub = (
            f"{cfg.fashion_per_class} per class drawn at random (seed {cfg.seed}) from the 10,000"
            if cfg.fashion_per_class
            else "all 10,000"
        )
        out["lines"].append(
            f"**Fashion-MNIST test images:** {len(ctx.fashion()):,} ({sub}; subsampled to keep "
            "the run within minutes on 2 CPU cores)."
        )
    return out


def run_evaluation(
    config: EvalConfig | None = None,
    tasks: Sequence[str] | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    show_progress_bar: bool = True,
    command: str = FULL_COMMAND,
    task_command: str = TASK_COMMAND,
    encoders: Mapping[str, Any] | None = None,
) -> Report:
    """Run evaluation tasks and (optionally) write the report.

    Args:
        config: The settings (default :class:`EvalConfig`).
        tasks: Task names, in order (default: every registered task).
        out_dir: Where ``RESULTS.md``, ``results.json`` and the plots go; nothing is written
            when ``None`` (plots are then not drawn).
        cache_dir: The embedding cache folder (default ``$ASIF_QDRANT_CACHE`` or
            ``~/.cache/asif-qdrant``).
        data_dir: The folder holding emoji and mpnet (default ``$ASIF_QDRANT_EVAL_DATA`` or
            ``~/.cache/asif-qdrant/eval-data``).
        show_progress_bar: Progress bars while encoding and over folds.
        command: The command shown as reproducing the whole report.
        task_command: The command shown for one task (``{task}`` is replaced).
        encoders: Already loaded encoders by short name (``{"lite0": encoder}``), used
            when an input is not cached (instead of loading them again).

    Returns:
        The report.

    Raises:
        InvalidParameterError: On an unknown task name.
    """
    config = config or EvalConfig()
    not_run = {m: METHODS[m].unavailable() for m in config.methods}
    not_run = {m: why for m, why in not_run.items() if why}
    if not_run and len(not_run) < len(config.methods):
        config = config.replace(methods=tuple(m for m in config.methods if m not in not_run))
    names = list(tasks) if tasks else list(TASKS)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise InvalidParameterError(
            f"Unknown task(s) {', '.join(map(repr, unknown))}; the tasks are {', '.join(TASKS)}."
        )
    started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info()
    t_start = time.perf_counter()
    assets = Assets(data_dir=Path(data_dir)) if data_dir else Assets()
    cache = EmbeddingCache(cache_dir or default_cache_dir())
    results: list[TaskResult] = []
    with tempfile.TemporaryDirectory(prefix="asif-eval-") as tmp:
        ctx = EvalContext(
            config,
            assets,
            cache,
            Path(tmp),
            show_progress_bar=show_progress_bar,
            encoders=encoders,
        )
        if out_dir is not None:
            ctx.out_dir = Path(out_dir)
            ctx.out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            task = TASKS[name]
            missing = [n for n in task.needs if not ctx.has(n)]
            if missing:
                results.append(
                    TaskResult(name, task.title, skipped=f"not installed: {', '.join(missing)}.")
                )
                continue
            logger.info("evaluation task %s", name)
            t0 = time.perf_counter()
            try:
                result = task.measure(ctx)
            except (MissingDataError, EncoderLoadError) as e:
                result = TaskResult(name, task.title, skipped=f"{type(e).__name__}: {e}")
            result.seconds = time.perf_counter() - t0
            results.append(result)
        data = _data_summary(ctx)
        if not_run:
            data["methods_not_run"] = not_run
            data["lines"].append(
                "**Methods not run:** "
                + "; ".join(f"`{m}` ({why})" for m, why in not_run.items())
                + "."
            )
        encoders = ctx.encoders_used()
    cache.close()
    machine["load_average_end"] = (
        [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    )
    report = Report(
        config=config,
        results=results,
        machine=machine,
        started=started,
        seconds=time.perf_counter() - t_start,
        data=data,
        encoders=encoders,
        command=command,
        task_command=task_command,
    )
    if out_dir is not None:
        report.write(out_dir)
    return report
