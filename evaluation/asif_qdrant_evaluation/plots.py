"""The evaluation's plots: metrics against the number of anchors, and k/p heatmaps.

matplotlib is imported inside the functions and figures are drawn on the Agg canvas directly
(no ``pyplot``), so this works headless and never changes a global backend.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from asif_qdrant_evaluation.plots import kp_heatmap, scaling_plot
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> series = {"accuracy": {"anchors": [10, 100], "mean": [0.2, 0.5], "std": [0.05, 0.0]}}
    >>> Image.open(scaling_plot(series, out / "s.png", chance={"accuracy": 0.1})).format
    'PNG'
    >>> Image.open(kp_heatmap({"acc": np.array([[0.1, 0.2], [0.3, 0.4]])}, [5, 50], [1, 8],
    ...                       out / "h.png")).format
    'PNG'
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["kp_heatmap", "scaling_plot"]

_DPI = 120
#: Prefix of a second method's metrics in :func:`scaling_plot` (drawn dashed).
_SECOND = "CSA "


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=_DPI, bbox_inches="tight")
    return out


def scaling_plot(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike[str],
    *,
    chance: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Plot metrics against the number of anchors (log x axis), with ±1 std bands.

    Metrics whose name ends in ``accuracy`` go in the left panel, recall metrics in the
    right one; chance levels are dotted lines of the same colour. A metric named
    ``"CSA <metric>"`` is drawn dashed in the colour of ``<metric>``.

    Args:
        series: ``{metric: {"anchors": [...], "mean": [...], "std": [...]}}``.
        path: The PNG file to write.
        chance: Chance level per metric.
        title: The figure's title.

    Returns:
        The written path.
    """
    groups = {
        "zero-shot accuracy": [k for k in series if k.endswith("accuracy")],
        "retrieval recall": [k for k in series if not k.endswith("accuracy")],
    }
    groups = {g: ks for g, ks in groups.items() if ks}
    fig = _figure(5.2 * max(1, len(groups)), 4.2)
    colors = [
        "#1f77b4",
        "#d62728",
        "#2ca02c",
        "#9467bd",
        "#ff7f0e",
        "#8c564b",
        "#e377c2",
        "#17becf",
    ]
    for i, (group, keys) in enumerate(groups.items()):
        ax = fig.add_subplot(1, len(groups), i + 1)
        base = [k for k in keys if not k.startswith(_SECOND)]
        for key in keys:
            s = series[key]
            x = np.asarray(s["anchors"], dtype=float)
            m = np.asarray(s["mean"], dtype=float)
            sd = np.asarray(s.get("std", [0.0] * len(m)), dtype=float)
            # A second method's curve ("CSA ...") is dashed, in its metric's colour.
            second = key.startswith(_SECOND) and key[len(_SECOND) :] in base
            j = base.index(key[len(_SECOND) :]) if second else keys.index(key)
            color = colors[j % len(colors)]
            style = "s--" if second else "o-"
            ax.plot(x, m, style, color=color, label=key, linewidth=1.6, markersize=4)
            ax.fill_between(x, m - sd, m + sd, color=color, alpha=0.15, linewidth=0)
            if chance and key in chance and not math.isnan(chance[key]):
                ax.axhline(chance[key], color=color, linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("number of anchor pairs")
        ax.set_ylabel(group)
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"{group} (dotted: chance)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def kp_heatmap(
    grids: Mapping[str, np.ndarray],
    ks: Sequence[int],
    ps: Sequence[float],
    path: str | os.PathLike[str],
    *,
    title: str = "",
) -> Path:
    """One heatmap per metric over ``k`` (rows) and ``p`` (columns), values written in cells.

    Args:
        grids: ``{metric: (len(ks), len(ps)) array}``.
        ks: The k values (rows).
        ps: The p values (columns).
        path: The PNG file to write.
        title: The figure's title.

    Returns:
        The written path.
    """
    from matplotlib.patches import Rectangle

    n = max(1, len(grids))
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = _figure(5.6 * cols, (0.42 * len(ks) + 1.2) * rows + 0.3)
    for i, (name, grid) in enumerate(grids.items()):
        g = np.asarray(grid, dtype=float)
        ax = fig.add_subplot(rows, cols, i + 1)
        im = ax.imshow(g, cmap="viridis", aspect="auto", origin="upper")
        ax.set_xticks(range(len(ps)), [f"{p:g}" for p in ps])
        ax.set_yticks(range(len(ks)), [str(k) for k in ks])
        ax.set_xlabel("p")
        ax.set_ylabel("k")
        ax.set_title(name, fontsize=9)
        finite = g[np.isfinite(g)]
        mid = float(finite.mean()) if finite.size else 0.0
        for r in range(g.shape[0]):
            for c in range(g.shape[1]):
                if np.isfinite(g[r, c]):
                    ax.text(
                        c,
                        r,
                        f"{g[r, c]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="black" if g[r, c] > mid else "white",
                    )
        if finite.size:
            best = np.unravel_index(np.nanargmax(g), g.shape)
            ax.add_patch(
                Rectangle(
                    (best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5
                )
            )
        fig.colorbar(im, ax=ax, shrink=0.9)
    if title:
        fig.suptitle(title + " (red: best cell)", fontsize=9)
    return _save(fig, path)
