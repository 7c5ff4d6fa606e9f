"""Pictures for people: a contact sheet of queries and their top hits.

matplotlib is an optional dependency (``pip install 'asif-qdrant[plot]'``), imported only when a
figure is drawn, so ``import asif_qdrant`` (and this module) stay light and work without it;
drawing without it raises an :class:`ImportError` that says how to install it. The
figure is drawn with the Agg canvas directly (no ``pyplot``, no global backend switch), so it
works headless and from threads.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from asif_qdrant.plotting import contact_sheet
    >>> red, blue = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (48, 64), "blue")
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "sheet.png"
    >>> hits = [(red, "A red square.", 0.91, True), (blue, "A blue one.", 0.40, False)]
    >>> path = contact_sheet([("a red square", hits)], out, title="text -> image")
    >>> Image.open(path).format
    'PNG'
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, Union

from .errors import ImageDecodeError, InvalidInputError, InvalidParameterError, check_real

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

__all__ = ["PLOT_EXTRA", "ImageLike", "contact_sheet", "explain_figure"]

#: How to install what drawing needs (matplotlib), named by the error raised without it.
PLOT_EXTRA = "pip install 'asif-qdrant[plot]'"

#: An image for a contact sheet: a file path, a PIL image, or an (H, W[, C]) uint8 array.
ImageLike: TypeAlias = Union[str, "os.PathLike[str]", "PILImage", "np.ndarray"]

_CORRECT_COLOR = "#2e7d32"  # green
_WRONG_COLOR = "#c62828"  # red
_NEUTRAL_COLOR = "#b0b0b0"
_TEXT_COLOR = "#222222"
_MUTED_COLOR = "#555555"

# Layout constants, in inches / points.
_DPI = 130
_CAPTION_PT = 8.0
_SCORE_PT = 8.0
_QUERY_PT = 10.0
_CAPTION_LINES = 2
_QUERY_MAX_LINES = 8
_THUMB_PIXELS_PER_INCH = 160  # resolution of the thumbnails drawn in the figure


def _matplotlib(owner: str) -> tuple[Any, Any, Any]:
    """The matplotlib names drawing needs, imported on first use.

    Returns:
        ``(FigureCanvasAgg, Figure, offset_copy)``.

    Raises:
        ImportError: matplotlib is not installed (the message names :data:`PLOT_EXTRA`).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.transforms import offset_copy
    except ImportError as e:
        raise ImportError(
            f"{owner} draws with matplotlib, which is not installed; install it with "
            f"`{PLOT_EXTRA}`."
        ) from e
    return FigureCanvasAgg, Figure, offset_copy


def _to_rgb(image: Any) -> PILImage:
    """Open an image as RGB, transparency composited on white.

    Uses :func:`asif_qdrant.images.load_image` (the loader the encoders use, so a sheet shows
    the pixels that were encoded) and falls back to a small local loader without it.
    """
    try:
        from .images import load_image
    except ImportError:
        return _fallback_to_rgb(image)
    return load_image(image)


def _fallback_to_rgb(image: Any) -> PILImage:
    """A minimal ``load_image``: path, PIL image or uint8 / [0, 1]-float array to RGB."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            with Image.open(path) as opened:
                opened.load()
                pil = opened.copy()
        except FileNotFoundError as e:
            raise ImageDecodeError(
                f"Cannot open the image file {str(path)!r}: no such file."
            ) from e
        except (UnidentifiedImageError, OSError) as e:
            raise ImageDecodeError(f"Cannot decode the image file {str(path)!r}: {e}.") from e
    elif isinstance(image, Image.Image):
        pil = image
    else:
        import numpy as np

        if not isinstance(image, np.ndarray):
            raise InvalidInputError(
                "A contact-sheet image must be a file path, a PIL image or a numpy array. "
                f"Got {type(image).__name__} instead."
            )
        array = image
        if np.issubdtype(array.dtype, np.floating):
            array = np.rint(np.clip(array, 0.0, 1.0) * 255)
        try:
            pil = Image.fromarray(np.ascontiguousarray(array.astype(np.uint8)))
        except (TypeError, ValueError) as e:
            raise InvalidInputError(
                f"Cannot draw an image from an array of shape {image.shape} ({e})."
            ) from e

    if pil.mode in ("RGBA", "LA", "PA") or "transparency" in pil.info:
        rgba = pil.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return pil.convert("RGB")


def _square_thumbnail(image: Any, pixels: int) -> Any:
    """The image scaled to fit a white ``pixels`` x ``pixels`` square, centred (numpy array)."""
    import numpy as np
    from PIL import Image

    rgb = _to_rgb(image)
    inner = max(1, round(pixels * 0.92))  # a white margin so frames never cover the image
    rgb.thumbnail((inner, inner), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (pixels, pixels), (255, 255, 255))
    canvas.paste(rgb, ((pixels - rgb.width) // 2, (pixels - rgb.height) // 2))
    return np.asarray(canvas)


def _shorten(text: str, width: int, max_lines: int) -> str:
    """Wrap ``text`` to ``width`` characters, keeping at most ``max_lines`` lines (with …)."""
    text = " ".join(str(text).split())
    if not text:
        return ""
    lines = textwrap.wrap(text, width=max(width, 4), break_long_words=True)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        lines[-1] = (last if len(last) < width else last[: width - 1].rstrip()) + "…"
    return "\n".join(lines)


def _fit_text(artist: Any, text: str, width: int, max_lines: int, max_px: float) -> None:
    """Set ``artist``'s text to ``text`` wrapped so that its rendered width is <= ``max_px``."""
    renderer = artist.figure.canvas.get_renderer()
    while True:
        artist.set_text(_shorten(text, width, max_lines))
        if width <= 4 or artist.get_window_extent(renderer).width <= max_px:
            return
        width -= 1


def _fitted_text(
    owner: Any,
    xy: tuple[float, float],
    text: str,
    fit: tuple[int, int, float],
    *,
    ha: str = "center",
    va: str = "center",
    **style: Any,
) -> None:
    """A text of a figure or axes at ``xy``, fitted as :func:`_fit_text` does.

    ``fit`` is ``(characters per line, lines, maximum width in pixels)``; ``style`` holds
    the other keyword arguments of ``owner.text`` (font, colour, transform...).
    """
    artist = owner.text(*xy, "", ha=ha, va=va, **style)
    _fit_text(artist, text, *fit)


def _fit_choice(artist: Any, choices: Sequence[str], max_px: float) -> None:
    """Set ``artist``'s text to the first of ``choices`` that fits in ``max_px`` (else the last)."""
    renderer = artist.figure.canvas.get_renderer()
    for choice in choices:
        artist.set_text(choice)
        if artist.get_window_extent(renderer).width <= max_px:
            return


def _check_rows(
    rows: Any,
) -> list[tuple[str, list[tuple[Any, str, float, bool | None]]]]:
    """Validate ``rows`` and normalise every hit to a 4-tuple."""
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence) or len(rows) == 0:
        raise InvalidInputError(
            "contact_sheet needs a non-empty sequence of (query, hits) rows. "
            f"Got {type(rows).__name__} of length {len(rows) if hasattr(rows, '__len__') else '?'}."
        )
    checked = []
    for r, row in enumerate(rows):
        if not isinstance(row, (tuple, list)) or len(row) != 2:
            raise InvalidInputError(
                f"contact_sheet row {r} must be a (query, hits) pair. Got {row!r:.80} instead."
            )
        query, hits = row
        if isinstance(hits, (str, bytes)) or not isinstance(hits, Sequence):
            raise InvalidInputError(
                f"contact_sheet row {r}: hits must be a sequence of (image, caption, score"
                f"[, correct]) tuples. Got {type(hits).__name__} instead."
            )
        normalised = []
        for h, hit in enumerate(hits):
            if not isinstance(hit, (tuple, list)) or len(hit) not in (3, 4):
                raise InvalidInputError(
                    f"contact_sheet row {r}, hit {h} must be an (image, caption, score"
                    f"[, correct]) tuple. Got {hit!r:.80} instead."
                )
            image, caption, score = hit[0], hit[1], hit[2]
            correct = hit[3] if len(hit) == 4 else None
            if isinstance(score, bool) or not isinstance(score, Real):
                raise InvalidInputError(
                    f"contact_sheet row {r}, hit {h}: the score must be a real number. "
                    f"Got {score!r:.80} instead."
                )
            if correct is not None and not isinstance(correct, bool):
                raise InvalidInputError(
                    f"contact_sheet row {r}, hit {h}: 'correct' must be True, False or None. "
                    f"Got {correct!r:.80} instead."
                )
            normalised.append((image, str(caption), float(score), correct))
        checked.append((str(query), normalised))
    return checked


def _check_png_args(
    out_path: str | os.PathLike[str], thumb_size: float, owner: str
) -> tuple[Path, float]:
    """Check a figure's ``thumb_size`` (> 0) and ``out_path`` (ends in ``.png``)."""
    size = check_real("thumb_size", owner, thumb_size, greater_than=0)
    out = Path(out_path).expanduser()
    if out.suffix.lower() != ".png":
        raise InvalidParameterError(
            f"The 'out_path' parameter of {owner} must be a path ending in '.png'. "
            f"Got {str(out_path)!r} instead."
        )
    return out, size


def _figure(
    fig_w: float, fig_h: float
) -> tuple[Any, Callable[[float, float, float, float], list[float]]]:
    """A white Agg figure of ``fig_w`` x ``fig_h`` inches, and its ``box`` function.

    ``box(x, y_top, w, h)`` turns a rectangle in inches (y measured from the top) into the
    figure fractions ``add_axes`` wants.
    """
    FigureCanvasAgg, Figure, _ = _matplotlib("asif_qdrant.plotting")
    fig = Figure(figsize=(fig_w, fig_h), dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)

    def box(x: float, y_top: float, w: float, h: float) -> list[float]:
        return [x / fig_w, 1 - (y_top + h) / fig_h, w / fig_w, h / fig_h]

    return fig, box


def _save_png(fig: Any, out: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the figure as a PNG (parent folders created), with optional text metadata."""
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"metadata": metadata} if metadata else {}
    fig.savefig(out, format="png", dpi=_DPI, facecolor="white", **extra)
    return out


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[tuple[Any, ...]]]],
    out_path: str | os.PathLike[str],
    *,
    title: str | None = None,
    thumb_size: float = 2.0,
) -> Path:
    """Draw queries and their top hits as a grid of thumbnails and save it as a PNG.

    One row per query: the query text on the left, then its hits left to right, each as a
    square thumbnail (transparency composited on white) with its rank and score and a short
    caption (wrapped to two lines, cut with "…") underneath. A hit may carry a fourth element:
    ``True`` draws a green frame and a ✓, ``False`` a red frame and a ✗, ``None`` (or no
    fourth element) a thin grey frame.

    Args:
        rows: ``[(query_text, [(image, caption, score[, correct]), ...]), ...]``. ``image`` is
            a file path, a PIL image or a uint8 array. Rows may have different numbers of hits
            (including none).
        out_path: Where to write the PNG (must end in ``.png``); parent folders are created.
        title: An optional title above the grid.
        thumb_size: The side of each thumbnail, in inches.

    Returns:
        The path of the written PNG.

    Raises:
        InvalidInputError: If ``rows`` is empty or malformed.
        InvalidParameterError: If ``thumb_size`` is not positive or ``out_path`` does not end
            in ``.png``.
        ImageDecodeError: If an image cannot be opened.
        ImportError: If matplotlib is not installed (:data:`PLOT_EXTRA` installs it).

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> img = Image.new("RGBA", (32, 32), (255, 0, 0, 128))
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "figs" / "sheet.png"
        >>> contact_sheet([("red", [(img, "A red square.", 0.5)])], out, thumb_size=1.5).exists()
        True
    """
    out, size = _check_png_args(out_path, thumb_size, "contact_sheet")
    checked = _check_rows(rows)

    _, _, offset_copy = _matplotlib("contact_sheet")

    n_rows = len(checked)
    n_cols = max(1, max(len(hits) for _, hits in checked))

    # Layout in inches.
    line_in = _CAPTION_PT * 1.25 / 72
    margin = 0.2
    label_w = max(1.8, 1.1 * size)
    col_gap = max(0.12, 0.1 * size)
    text_h = 0.06 + line_in * (1 + _CAPTION_LINES) + 0.06  # score line + caption lines
    row_gap = 0.18
    row_h = size + text_h
    title_h = 0.55 if title else 0.0
    fig_w = 2 * margin + label_w + n_cols * size + (n_cols - 1) * col_gap
    fig_h = 2 * margin + title_h + n_rows * row_h + (n_rows - 1) * row_gap

    # Characters that fit on a line (average glyph width ~0.55 em in DejaVu Sans).
    caption_chars = max(8, int(size * 72 / (_CAPTION_PT * 0.56)))
    query_chars = max(10, int((label_w - 0.15) * 72 / (_QUERY_PT * 0.58)))
    query_lines = max(1, min(_QUERY_MAX_LINES, int(size * 72 / (_QUERY_PT * 1.3))))
    pixels = max(16, round(size * _THUMB_PIXELS_PER_INCH))

    fig, box = _figure(fig_w, fig_h)

    if title:
        _fitted_text(
            fig,
            (0.5, 1 - (margin + title_h / 2) / fig_h),
            title,
            (int(fig_w * 72 / (13 * 0.55)), 1, (fig_w - 2 * margin) * _DPI),
            fontsize=13,
            fontweight="bold",
            color=_TEXT_COLOR,
        )

    for r, (query, hits) in enumerate(checked):
        y_top = margin + title_h + r * (row_h + row_gap)

        label_ax = fig.add_axes(box(margin, y_top, label_w - 0.15, size))
        label_ax.set_axis_off()
        _fitted_text(
            label_ax,
            (0.0, 0.5),
            query,
            (query_chars, query_lines, (label_w - 0.2) * _DPI),
            ha="left",
            fontsize=_QUERY_PT,
            fontweight="bold",
            color=_TEXT_COLOR,
            transform=label_ax.transAxes,
            linespacing=1.2,
        )
        if not hits:
            label_ax.text(
                (label_w + 0.1) / (label_w - 0.15),
                0.5,
                "(no hits)",
                ha="left",
                va="center",
                fontsize=_CAPTION_PT,
                style="italic",
                color=_MUTED_COLOR,
                transform=label_ax.transAxes,
            )

        for c, (image, caption, score, correct) in enumerate(hits):
            x = margin + label_w + c * (size + col_gap)
            ax = fig.add_axes(box(x, y_top, size, size))
            ax.imshow(_square_thumbnail(image, pixels), interpolation="antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            if correct is None:
                color, width, mark = _NEUTRAL_COLOR, 0.8, ""
            else:
                color = _CORRECT_COLOR if correct else _WRONG_COLOR
                width, mark = 4.0, ("  ✓" if correct else "  ✗")
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(width)

            below = 4 + (width / 2 if correct is not None else 0)  # points under the frame
            score_artist = ax.text(
                0.5,
                0.0,
                "",
                ha="center",
                va="top",
                fontsize=_SCORE_PT,
                fontweight="bold",
                color=color if correct is not None else _MUTED_COLOR,
                transform=offset_copy(ax.transAxes, fig=fig, y=-below, units="points"),
            )
            _fit_choice(
                score_artist,
                [
                    f"#{c + 1}   score {score:.3f}{mark}",
                    f"#{c + 1}  {score:.3f}{mark[1:]}",
                    f"{score:.3f}{mark[1:]}",
                ],
                size * _DPI,
            )
            _fitted_text(
                ax,
                (0.5, 0.0),
                caption,
                (caption_chars, _CAPTION_LINES, size * _DPI),
                va="top",
                fontsize=_CAPTION_PT,
                color=_TEXT_COLOR,
                linespacing=1.15,
                transform=offset_copy(
                    ax.transAxes, fig=fig, y=-(below + _SCORE_PT * 1.35), units="points"
                ),
            )

    return _save_png(fig, out)


# -- explanations (paper, Fig. 6/7) ---------------------------------------------------------------
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
    import json

    top = int(top)
    if top < 1:
        raise InvalidParameterError(
            f"The 'top' parameter of explain_figure must be an int >= 1. Got {top!r} instead."
        )
    out, size = _check_png_args(out_path, thumb_size, "explain_figure")
    spec = _explain_spec(explanation, top, title)

    _matplotlib("explain_figure")  # without matplotlib: the error that names the extra, now

    rows = spec["rows"]
    n = max(1, len(rows))
    margin, gap = 0.25, 0.18
    panel = 2.3  # query and item panels
    anchors_w = n * size + (n - 1) * gap
    bars_w = max(4.6, anchors_w - 2 * (panel + gap) - 0.4)
    fig_w = 2 * margin + max(anchors_w, 2 * (panel + gap) + 0.4 + bars_w)
    title_h = 0.95
    label_h = 0.3
    top_h = label_h + panel + 0.3  # the item's caption under its panel
    text_h = 0.75
    bottom_h = label_h + size + text_h if rows else 0.0
    fig_h = 2 * margin + title_h + top_h + (0.35 + bottom_h if rows else 0.0)
    fig, box = _figure(fig_w, fig_h)
    panels: list[dict[str, Any]] = []

    def record(kind: str, x: float, y_top: float, w: float, h: float) -> None:
        panels.append(
            {
                "kind": kind,
                "box": [
                    round(x * _DPI),
                    round(y_top * _DPI),
                    round((x + w) * _DPI),
                    round((y_top + h) * _DPI),
                ],
            }
        )

    _fitted_text(
        fig,
        (0.5, 1 - (margin + title_h - 0.2) / fig_h),
        spec["subtitle"],
        (int(fig_w * 72 / (9 * 0.5)), 2, (fig_w - 2 * margin) * _DPI),
        fontsize=9,
        style="italic",
        color=_MUTED_COLOR,
    )
    _fitted_text(
        fig,
        (0.5, 1 - (margin + (title_h - 0.35) / 2) / fig_h),
        spec["title"],
        (int(fig_w * 72 / (12 * 0.55)), 1, (fig_w - 2 * margin) * _DPI),
        fontsize=12,
        fontweight="bold",
        color=_TEXT_COLOR,
        linespacing=1.3,
    )

    y0 = margin + title_h
    pixels = max(16, round(panel * _THUMB_PIXELS_PER_INCH))
    for j, (kind, heading, obj, text) in enumerate(
        (
            ("query", spec["query_heading"], spec["query_image"], spec["query_text"]),
            ("item", spec["item_heading"], spec["item_image"], spec["item_text"]),
        )
    ):
        x = margin + j * (panel + gap)
        fig.text(
            (x + panel / 2) / fig_w,
            1 - (y0 + label_h / 2) / fig_h,
            heading,
            ha="center",
            va="center",
            fontsize=10,
            fontweight="bold",
            color=_MUTED_COLOR,
        )
        ax = fig.add_axes(box(x, y0 + label_h, panel, panel))
        _draw_panel(ax, obj, text, pixels)
        record(kind, x, y0 + label_h, panel, panel)
        if obj is not None and text:
            _fitted_text(
                ax,
                (0.5, -0.03),
                Path(text).name if isinstance(obj, str) and text == obj else text,
                (40, 1, panel * _DPI),
                va="top",
                fontsize=_CAPTION_PT + 1,
                color=_TEXT_COLOR,
                transform=ax.transAxes,
            )

    # Bars: one per shown anchor (its colour), and the rest in grey.
    bx = margin + 2 * (panel + gap) + 0.35
    bw = fig_w - margin - bx
    bar_ax = fig.add_axes(box(bx + 1.9, y0 + label_h, bw - 1.9, panel - 0.35))
    record("bars", bx, y0 + label_h, bw, panel)
    _fitted_text(
        fig,
        ((bx + bw / 2) / fig_w, 1 - (y0 + label_h / 2) / fig_h),
        spec["bars_heading"],
        (int(bw * 72 / (10 * 0.55)), 1, bw * _DPI),
        fontsize=10,
        fontweight="bold",
        color=_MUTED_COLOR,
    )
    values = [r["value"] for r in rows]
    labels = [f"#{i + 1} {_shorten(r['caption'], 24, 1)}" for i, r in enumerate(rows)]
    colors = [_BAR_COLORS[i % len(_BAR_COLORS)] for i in range(len(rows))]
    if spec["rest_count"]:
        values.append(spec["rest"])
        labels.append(f"{spec['rest_count']} other anchors")
        colors.append(_REST_COLOR)
    ypos = list(range(len(values)))[::-1]
    if values:
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
                color=_TEXT_COLOR,
            )
        lo = min(0.0, min(values))
        hi = max(0.0, max(values))
        pad = 0.22 * (hi - lo or 1.0)
        bar_ax.set_xlim(lo - (pad if lo < 0 else 0), hi + pad)
    bar_ax.set_yticks(ypos)
    bar_ax.set_yticklabels(labels, fontsize=8)
    bar_ax.axvline(0, color=_MUTED_COLOR, linewidth=0.8)
    bar_ax.tick_params(axis="x", labelsize=7)
    xlabel = bar_ax.set_xlabel("", fontsize=8, color=_MUTED_COLOR)
    _fit_text(xlabel, spec["bars_xlabel"], 90, 2, (bw - 1.9) * _DPI)
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
            color=_MUTED_COLOR,
            transform=bar_ax.transAxes,
        )

    # The anchor pairs behind the bars.
    if rows:
        ya = y0 + top_h + 0.35
        fig.text(
            margin / fig_w,
            1 - (ya + label_h / 2) / fig_h,
            spec["anchors_heading"],
            ha="left",
            va="center",
            fontsize=10,
            fontweight="bold",
            color=_MUTED_COLOR,
        )
        thumb_px = max(16, round(size * _THUMB_PIXELS_PER_INCH))
        caption_chars = max(8, int(size * 72 / (_CAPTION_PT * 0.56)))
        for i, r in enumerate(rows):
            x = margin + i * (size + gap)
            ax = fig.add_axes(box(x, ya + label_h, size, size))
            _draw_panel(ax, r["image"], "(no image)", thumb_px)
            for spine in ax.spines.values():
                spine.set_edgecolor(colors[i])
                spine.set_linewidth(3.0)
            record("anchor", x, ya + label_h, size, size)
            head = ax.text(
                0.5,
                -0.04,
                "",
                ha="center",
                va="top",
                fontsize=_SCORE_PT,
                fontweight="bold",
                color=colors[i],
                transform=ax.transAxes,
            )
            choices = [f"#{i + 1}  {r['detail']}", f"#{i + 1}  {_num(r['value'])}"]
            _fit_choice(head, choices, size * _DPI)
            _fitted_text(
                ax,
                (0.5, -0.04 - (_SCORE_PT * 1.45 / 72) / size),
                r["caption"] or "(no caption)",
                (caption_chars, 3, size * _DPI),
                va="top",
                fontsize=_CAPTION_PT,
                color=_TEXT_COLOR,
                linespacing=1.15,
                transform=ax.transAxes,
            )

    return _save_png(fig, out, {_PANEL_KEY: json.dumps(panels)})


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
    """Like ``_square_thumbnail``, but cropped to the content and scaled up to fill the square.

    Stamps and cut-outs often sit small in a wide transparent canvas; scaled to the square
    they can be recognised at a glance.
    """
    import numpy as np
    from PIL import Image

    rgb = _to_rgb(image)
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
    thumb = None
    if image is not None:
        try:
            thumb = _filled_thumbnail(image, pixels)
        except (ImageDecodeError, InvalidInputError, OSError):
            thumb = None
    if thumb is not None:
        ax.imshow(thumb, interpolation="antialiased")
        for spine in ax.spines.values():
            spine.set_edgecolor(_NEUTRAL_COLOR)
            spine.set_linewidth(0.8)
        return
    ax.set_facecolor("#f4f4f4")
    for spine in ax.spines.values():
        spine.set_edgecolor(_NEUTRAL_COLOR)
        spine.set_linewidth(0.8)
    artist = ax.text(
        0.5,
        0.5,
        "",
        ha="center",
        va="center",
        fontsize=_QUERY_PT,
        color=_TEXT_COLOR,
        style="italic",
        transform=ax.transAxes,
        linespacing=1.25,
    )
    width_px = ax.get_position().width * ax.figure.get_figwidth() * _DPI * 0.9
    if "\n" in text:  # paragraphs (label A / label B): each wrapped on its own
        artist.set_text("\n\n".join(_shorten(part, 24, 3) for part in text.split("\n")))
        return
    _fit_text(artist, f"“{text}”" if text and not text.startswith("(") else text, 22, 7, width_px)


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
