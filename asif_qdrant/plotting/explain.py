"""The explanation figure: the anchor pairs behind a score or a label's margin (paper, Fig. 6/7)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ImageDecodeError, InvalidInputError, InvalidParameterError
from .common import (
    CAPTION_PT,
    DPI,
    MUTED_COLOR,
    NEUTRAL_COLOR,
    QUERY_PT,
    SCORE_PT,
    TEXT_COLOR,
    THUMB_PIXELS_PER_INCH,
    Box,
    check_png_args,
    draw_moved_placeholder,
    figure,
    fit_choice,
    fit_text,
    fitted_text,
    import_matplotlib,
    moved_image,
    save_png,
    shorten,
    text_width_px,
    to_rgb,
)

__all__ = ["explain_figure"]

_BAR_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
_REST_COLOR = "#c8c8c8"
_PANEL_KEY = "asif:panels"


@dataclass(frozen=True)
class _ExplainLayout:
    """The figure's geometry in inches: title, the top row (query, item, bars), the anchors."""

    size: float
    margin: float
    gap: float
    panel: float
    title_h: float
    label_h: float
    top_h: float
    fig_w: float
    fig_h: float

    @classmethod
    def of(cls, n_rows: int, size: float) -> _ExplainLayout:
        """The layout for ``n_rows`` anchor pairs shown, thumbnails ``size`` wide."""
        n = max(1, n_rows)
        margin, gap = 0.25, 0.18
        panel = 2.3  # query and item panels
        anchors_w = n * size + (n - 1) * gap
        bars_w = max(4.6, anchors_w - 2 * (panel + gap) - 0.4)
        title_h = 0.95
        label_h = 0.3
        top_h = label_h + panel + 0.3  # the item's caption under its panel
        text_h = 0.75
        bottom_h = label_h + size + text_h if n_rows else 0.0
        return cls(
            size=size,
            margin=margin,
            gap=gap,
            panel=panel,
            title_h=title_h,
            label_h=label_h,
            top_h=top_h,
            fig_w=2 * margin + max(anchors_w, 2 * (panel + gap) + 0.4 + bars_w),
            fig_h=2 * margin + title_h + top_h + (0.35 + bottom_h if n_rows else 0.0),
        )

    @property
    def y0(self) -> float:
        """The top of the top row (below the title)."""
        return self.margin + self.title_h


class _Panels:
    """The figure's panels, in pixels: what the PNG's ``asif:panels`` metadata lists."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def record(self, kind: str, x: float, y_top: float, w: float, h: float) -> None:
        """Add the panel ``kind`` at ``(x, y_top)`` (inches from the top left), ``w`` x ``h``."""
        self.items.append(
            {
                "kind": kind,
                "box": [
                    round(x * DPI),
                    round(y_top * DPI),
                    round((x + w) * DPI),
                    round((y_top + h) * DPI),
                ],
            }
        )


def explain_figure(
    explanation: Any,
    out_path: str | os.PathLike[str],
    *,
    top: int = 6,
    title: str | None = None,
    thumb_size: float = 1.7,
) -> Path:
    """Draw why an item matches a query: the anchor pairs behind the score (paper, Fig. 6/7).

    The top row shows the query and the matched item side by side, and a bar chart that
    splits the score into the contributions of the anchor pairs both share (the largest
    ``top`` ones, and one grey bar for all the others): the bars add up to the score. The
    bottom row shows those anchor pairs, each with its image, its caption and
    ``query weight x item weight = contribution``; a bar and its anchor share a colour.

    Works for an :class:`~asif_qdrant.explain.Explanation` (a search match) and for a
    :class:`~asif_qdrant.explain.LabelExplanation` (why label A beat label B: the bars are
    the per-anchor differences, and may be negative).

    The PNG carries its layout as text metadata ``asif:panels``: a JSON list of
    ``{"kind": "query" | "item" | "bars" | "anchor", "box": [x0, y0, x1, y1]}`` in pixels
    (origin top left), so a program can find each panel.

    Args:
        explanation: What to draw.
        out_path: Where to write the PNG (must end in ``.png``); parent folders are created.
        top: How many anchor pairs to show (>= 1).
        title: A title; default: one that states the score and the number of shared anchors.
        thumb_size: The side of each anchor thumbnail, in inches.

    Returns:
        The path of the written PNG.

    Raises:
        ImportError: If matplotlib is not installed (:data:`PLOT_EXTRA` installs it).

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> from asif_qdrant.retriever.explain import explain_vectors
        >>> from asif_qdrant.types import SparseVector
        >>> q = SparseVector(np.array([1, 2]), np.array([0.8, 0.6]))
        >>> item = SparseVector(np.array([1, 2]), np.array([0.6, 0.8]))
        >>> anchors = {1: {"caption": "A red square."}, 2: {"caption": "A blue one."}}
        >>> e = explain_vectors(q, item, anchors, query="red", item="a red thing")
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "why.png"
        >>> Image.open(explain_figure(e, out, top=2)).format
        'PNG'
    """
    top = int(top)
    if top < 1:
        raise InvalidParameterError(
            f"The 'top' parameter of explain_figure must be an int >= 1. Got {top!r} instead."
        )
    out, size = check_png_args(out_path, thumb_size, "explain_figure")
    spec = _explain_spec(explanation, top, title)

    import_matplotlib("explain_figure")  # without matplotlib: the error that names the extra, now

    layout = _ExplainLayout.of(len(spec["rows"]), size)
    fig, box = figure(layout.fig_w, layout.fig_h)
    panels = _Panels()
    _draw_titles(fig, layout, spec)
    _draw_query_and_item(fig, box, layout, spec, panels)
    colors = _draw_bars(fig, box, layout, spec, panels)
    if spec["rows"]:
        _draw_anchors(fig, box, layout, spec, colors, panels)
    return save_png(fig, out, {_PANEL_KEY: json.dumps(panels.items)})


def _draw_titles(fig: Any, layout: _ExplainLayout, spec: dict[str, Any]) -> None:
    """The subtitle (what the figure shows), then the title above it."""
    margin, title_h, fig_w, fig_h = layout.margin, layout.title_h, layout.fig_w, layout.fig_h
    fitted_text(
        fig,
        (0.5, 1 - (margin + title_h - 0.2) / fig_h),
        spec["subtitle"],
        (int(fig_w * 72 / (9 * 0.5)), 2, (fig_w - 2 * margin) * DPI),
        fontsize=9,
        style="italic",
        color=MUTED_COLOR,
    )
    fitted_text(
        fig,
        (0.5, 1 - (margin + (title_h - 0.35) / 2) / fig_h),
        spec["title"],
        (int(fig_w * 72 / (12 * 0.55)), 1, (fig_w - 2 * margin) * DPI),
        fontsize=12,
        fontweight="bold",
        color=TEXT_COLOR,
        linespacing=1.3,
    )


def _draw_query_and_item(
    fig: Any, box: Box, layout: _ExplainLayout, spec: dict[str, Any], panels: _Panels
) -> None:
    """The query and item panels, side by side, each under its heading."""
    y0, panel, label_h = layout.y0, layout.panel, layout.label_h
    pixels = max(16, round(panel * THUMB_PIXELS_PER_INCH))
    for j, (kind, heading, obj, text) in enumerate(
        (
            ("query", spec["query_heading"], spec["query_image"], spec["query_text"]),
            ("item", spec["item_heading"], spec["item_image"], spec["item_text"]),
        )
    ):
        x = layout.margin + j * (panel + layout.gap)
        fig.text(
            (x + panel / 2) / layout.fig_w,
            1 - (y0 + label_h / 2) / layout.fig_h,
            heading,
            ha="center",
            va="center",
            fontsize=10,
            fontweight="bold",
            color=MUTED_COLOR,
        )
        ax = fig.add_axes(box(x, y0 + label_h, panel, panel))
        _draw_panel(ax, obj, text, pixels)
        panels.record(kind, x, y0 + label_h, panel, panel)
        if obj is not None and text:
            fitted_text(
                ax,
                (0.5, -0.03),
                Path(text).name if isinstance(obj, str) and text == obj else text,
                (40, 1, panel * DPI),
                va="top",
                fontsize=CAPTION_PT + 1,
                color=TEXT_COLOR,
                transform=ax.transAxes,
            )


def _bar_data(spec: dict[str, Any]) -> tuple[list[float], list[str], list[str]]:
    """The bars' values, labels and colours: one per shown anchor, and the rest in grey."""
    rows = spec["rows"]
    values = [r["value"] for r in rows]
    labels = [f"#{i + 1} {shorten(r['caption'], 24, 1)}" for i, r in enumerate(rows)]
    colors = [_BAR_COLORS[i % len(_BAR_COLORS)] for i in range(len(rows))]
    if spec["rest_count"]:
        values.append(spec["rest"])
        labels.append(f"{spec['rest_count']} other anchors")
        colors.append(_REST_COLOR)
    return values, labels, colors


def _draw_bars(
    fig: Any, box: Box, layout: _ExplainLayout, spec: dict[str, Any], panels: _Panels
) -> list[str]:
    """The bar chart right of the item: what each anchor pair adds. Returns the bar colours."""
    y0, label_h, panel = layout.y0, layout.label_h, layout.panel
    bx = layout.margin + 2 * (panel + layout.gap) + 0.35
    bw = layout.fig_w - layout.margin - bx
    bar_ax = fig.add_axes(box(bx + 1.9, y0 + label_h, bw - 1.9, panel - 0.35))
    panels.record("bars", bx, y0 + label_h, bw, panel)
    fitted_text(
        fig,
        ((bx + bw / 2) / layout.fig_w, 1 - (y0 + label_h / 2) / layout.fig_h),
        spec["bars_heading"],
        (int(bw * 72 / (10 * 0.55)), 1, bw * DPI),
        fontsize=10,
        fontweight="bold",
        color=MUTED_COLOR,
    )
    values, labels, colors = _bar_data(spec)
    ypos = list(range(len(values)))[::-1]
    if values:
        _draw_bar_values(bar_ax, ypos, values, colors)
    bar_ax.set_yticks(ypos)
    bar_ax.set_yticklabels(labels, fontsize=8)
    bar_ax.axvline(0, color=MUTED_COLOR, linewidth=0.8)
    bar_ax.tick_params(axis="x", labelsize=7)
    xlabel = bar_ax.set_xlabel("", fontsize=8, color=MUTED_COLOR)
    fit_text(xlabel, spec["bars_xlabel"], 90, 2, (bw - 1.9) * DPI)
    for side in ("top", "right"):
        bar_ax.spines[side].set_visible(False)
    if not values:
        bar_ax.text(
            0.5,
            0.5,
            "no shared anchor: no match",
            ha="center",
            va="center",
            fontsize=10,
            style="italic",
            color=MUTED_COLOR,
            transform=bar_ax.transAxes,
        )
    return colors


def _draw_bar_values(bar_ax: Any, ypos: list[int], values: list[float], colors: list[str]) -> None:
    """The bars themselves, each with its value at its end, and room for those values."""
    bar_ax.barh(ypos, values, color=colors, height=0.7)
    span = max(abs(v) for v in values) or 1.0
    for yv, v in zip(ypos, values, strict=True):
        bar_ax.text(
            v + (0.02 * span if v >= 0 else -0.02 * span),
            yv,
            _num(v),
            va="center",
            ha="left" if v >= 0 else "right",
            fontsize=8,
            color=TEXT_COLOR,
        )
    lo = min(0.0, min(values))
    hi = max(0.0, max(values))
    pad = 0.22 * (hi - lo or 1.0)
    bar_ax.set_xlim(lo - (pad if lo < 0 else 0), hi + pad)


def _draw_anchors(
    fig: Any,
    box: Box,
    layout: _ExplainLayout,
    spec: dict[str, Any],
    colors: list[str],
    panels: _Panels,
) -> None:
    """The anchor pairs behind the bars: image, framed in its bar's colour, detail, caption."""
    margin, label_h, size = layout.margin, layout.label_h, layout.size
    ya = layout.y0 + layout.top_h + 0.35
    fig.text(
        margin / layout.fig_w,
        1 - (ya + label_h / 2) / layout.fig_h,
        spec["anchors_heading"],
        ha="left",
        va="center",
        fontsize=10,
        fontweight="bold",
        color=MUTED_COLOR,
    )
    thumb_px = max(16, round(size * THUMB_PIXELS_PER_INCH))
    caption_chars = max(8, int(size * 72 / (CAPTION_PT * 0.56)))
    for i, r in enumerate(spec["rows"]):
        x = margin + i * (size + layout.gap)
        ax = fig.add_axes(box(x, ya + label_h, size, size))
        _draw_panel(ax, r["image"], "(no image)", thumb_px)
        for spine in ax.spines.values():
            spine.set_edgecolor(colors[i])
            spine.set_linewidth(3.0)
        panels.record("anchor", x, ya + label_h, size, size)
        head = ax.text(
            0.5,
            -0.04,
            "",
            ha="center",
            va="top",
            fontsize=SCORE_PT,
            fontweight="bold",
            color=colors[i],
            transform=ax.transAxes,
        )
        choices = [f"#{i + 1}  {r['detail']}", f"#{i + 1}  {_num(r['value'])}"]
        fit_choice(head, choices, size * DPI)
        fitted_text(
            ax,
            (0.5, -0.04 - (SCORE_PT * 1.45 / 72) / size),
            r["caption"] or "(no caption)",
            (caption_chars, 3, size * DPI),
            va="top",
            fontsize=CAPTION_PT,
            color=TEXT_COLOR,
            linespacing=1.15,
            transform=ax.transAxes,
        )


def _num(v: float, digits: int = 3) -> str:
    """A short number: fixed point, or scientific when it would print as zero.

    Example:
        >>> _num(0.3121), _num(0.000262), _num(0.0), _num(0.456, 2)
        ('0.312', '2.6e-04', '0', '0.46')
    """
    if v == 0:
        return "0"
    if abs(v) >= 10**-digits:
        return f"{v:.{digits}f}"
    return f"{v:.1e}"


def _filled_thumbnail(image: Any, pixels: int) -> Any:
    """Like ``square_thumbnail``, but cropped to the content and scaled up to fill the square.

    Stamps and cut-outs often sit small in a wide transparent canvas; scaled to the square
    they can be recognised at a glance.
    """
    import numpy as np
    from PIL import Image

    rgb = to_rgb(image)
    arr = np.asarray(rgb)
    content = np.argwhere((arr < 245).any(axis=-1))
    if content.size:
        (y0, x0), (y1, x1) = content.min(axis=0), content.max(axis=0) + 1
        rgb = rgb.crop((int(x0), int(y0), int(x1), int(y1)))
    inner = max(1, round(pixels * 0.9))
    scale = inner / max(rgb.width, rgb.height)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (pixels, pixels), (255, 255, 255))
    canvas.paste(rgb, ((pixels - rgb.width) // 2, (pixels - rgb.height) // 2))
    return np.asarray(canvas)


def _draw_panel(ax: Any, image: Any, text: str, pixels: int) -> None:
    """An image thumbnail, or (no image) the text in a framed box."""
    ax.set_xticks([])
    ax.set_yticks([])
    moved = moved_image(image)
    if moved is not None:
        draw_moved_placeholder(ax, moved, pixels)
        return
    thumb = None
    if image is not None:
        try:
            thumb = _filled_thumbnail(image, pixels)
        except (ImageDecodeError, InvalidInputError, OSError):
            thumb = None
    if thumb is not None:
        ax.imshow(thumb, interpolation="antialiased")
        for spine in ax.spines.values():
            spine.set_edgecolor(NEUTRAL_COLOR)
            spine.set_linewidth(0.8)
        return
    ax.set_facecolor("#f4f4f4")
    for spine in ax.spines.values():
        spine.set_edgecolor(NEUTRAL_COLOR)
        spine.set_linewidth(0.8)
    artist = ax.text(
        0.5,
        0.5,
        "",
        ha="center",
        va="center",
        fontsize=QUERY_PT,
        color=TEXT_COLOR,
        style="italic",
        transform=ax.transAxes,
        linespacing=1.25,
    )
    width_px = text_width_px(ax)
    if "\n" in text:  # paragraphs (label A / label B): each wrapped on its own
        artist.set_text("\n\n".join(shorten(part, 24, 3) for part in text.split("\n")))
        return
    fit_text(artist, f"“{text}”" if text and not text.startswith("(") else text, 22, 7, width_px)


#: The fixed texts of the two explanation figures: a match's score, and a label's margin.
_SCORE_TEXTS = {
    "query_heading": "QUERY",
    "subtitle": "Query and item are each described by their similarity to the same anchor "
    "pairs (image + caption); a pair shared by both adds query weight × item weight to "
    "the score.",
    "bars_heading": "what each shared anchor pair adds to the score",
    "bars_xlabel": "query weight × item weight; the bars add up to the score",
    "anchors_heading": "the anchor pairs behind the score (query weight × item weight)",
}
_MARGIN_TEXTS = {
    "query_heading": "IMAGE",
    "item_heading": "LABEL A vs LABEL B (best prompts)",
    "subtitle": "The image and both label prompts are described by their similarity to "
    "the same anchor pairs (image + caption); each pair adds image weight × (A weight "
    "− B weight) to the margin.",
    "bars_heading": "what each anchor pair adds to the margin A − B",
    "bars_xlabel": "image weight × (A weight − B weight); the bars add up to the margin",
    "anchors_heading": "anchor pairs that decided it (contribution to A − to B)",
}


def _anchor_bars(
    anchors: Sequence[Any], top: int, value: Callable[[Any], float], detail: Callable[[Any], str]
) -> dict[str, Any]:
    """The bars of an explanation figure: the ``top`` anchor pairs, then the sum of the rest."""
    shown, rest = anchors[:top], anchors[top:]
    return {
        "rows": [
            {"image": a.image, "caption": a.caption or "", "value": value(a), "detail": detail(a)}
            for a in shown
        ],
        "rest": float(sum(value(a) for a in rest)),
        "rest_count": len(rest),
    }


def _explain_spec(explanation: Any, top: int, title: str | None) -> dict[str, Any]:
    """What to draw, from an Explanation or a LabelExplanation."""
    from asif_qdrant.retriever.explain import Explanation, LabelExplanation

    if isinstance(explanation, LabelExplanation):
        e = explanation.explanation
        versus = explanation.versus
        scores = explanation.scores
        if versus is None:
            return _explain_spec(e, top, title)
        versus_item = explanation.versus_explanation.item if explanation.versus_explanation else ""
        return {
            **_MARGIN_TEXTS,
            "title": title
            or (
                f"Why '{explanation.label}' ({scores[explanation.label]:.3f}) beat '{versus}' "
                f"({scores[versus]:.3f}): the anchor pairs behind the margin "
                f"{explanation.margin:.3f}"
            ),
            "query_image": e.query_image,
            "query_text": e.query,
            "item_image": None,
            "item_text": f"A: “{e.item}”\nB: “{versus_item}”",
            **_anchor_bars(
                explanation.margins,
                top,
                lambda m: m.difference,
                lambda m: f"{_num(m.label_contribution)} − {_num(m.versus_contribution)}",
            ),
        }
    if not isinstance(explanation, Explanation):
        raise InvalidInputError(
            "explain_figure draws an Explanation (ASIF.explain) or a LabelExplanation "
            f"(ASIF.explain_label). Got {type(explanation).__name__} instead."
        )
    bars = _anchor_bars(
        explanation.anchors,
        top,
        lambda a: a.contribution,
        lambda a: f"{_num(a.query_weight, 2)} × {_num(a.item_weight, 2)} = {_num(a.contribution)}",
    )
    shown = bars["rows"]
    share = sum(r["value"] for r in shown) / explanation.score if explanation.score else 0.0
    default_title = (
        f"Why this match? score {explanation.score:.3f} = sum over the "
        f"{explanation.shared} anchor pairs shared by query and item"
        + (f" (top {len(shown)}: {share:.0%} of it)" if shown else "")
        if explanation.shared
        else "No match: the query and the item share no anchor pair (score 0)"
    )
    return {
        **_SCORE_TEXTS,
        "title": title or default_title,
        "query_image": explanation.query_image,
        "query_text": explanation.query,
        "item_heading": "MATCHED ITEM" if explanation.shared else "ITEM",
        "item_image": explanation.item_image,
        "item_text": explanation.item,
        **bars,
    }
