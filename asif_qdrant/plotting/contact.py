"""The contact sheet: queries and their top hits as a grid of thumbnails."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .common import (
    CAPTION_PT,
    CORRECT_COLOR,
    DPI,
    MUTED_COLOR,
    NEUTRAL_COLOR,
    QUERY_PT,
    SCORE_PT,
    TEXT_COLOR,
    THUMB_PIXELS_PER_INCH,
    WRONG_COLOR,
    Box,
    check_png_args,
    draw_moved_placeholder,
    figure,
    fit_choice,
    fitted_text,
    import_matplotlib,
    moved_image,
    save_png,
    square_thumbnail,
)

__all__ = ["contact_sheet"]

_CAPTION_LINES = 2
_QUERY_MAX_LINES = 8

#: A checked hit: ``(image, caption, score, correct)``.
_Hit = tuple[Any, str, float, "bool | None"]


def _check_rows(rows: Any) -> list[tuple[str, list[_Hit]]]:
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
        checked.append((str(query), [_check_hit(r, h, hit) for h, hit in enumerate(hits)]))
    return checked


def _check_hit(r: int, h: int, hit: Any) -> _Hit:
    """Validate hit ``h`` of row ``r`` and normalise it to a 4-tuple."""
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
    return (image, str(caption), float(score), correct)


@dataclass(frozen=True)
class _SheetLayout:
    """The sheet's geometry in inches, and how much text fits where."""

    size: float
    margin: float
    label_w: float
    col_gap: float
    row_gap: float
    row_h: float
    title_h: float
    fig_w: float
    fig_h: float
    caption_chars: int
    query_chars: int
    query_lines: int
    pixels: int

    @classmethod
    def of(cls, n_rows: int, n_cols: int, size: float, title: str | None) -> _SheetLayout:
        """The layout of ``n_rows`` rows of at most ``n_cols`` hits, thumbnails ``size`` wide."""
        line_in = CAPTION_PT * 1.25 / 72
        margin = 0.2
        label_w = max(1.8, 1.1 * size)
        col_gap = max(0.12, 0.1 * size)
        text_h = 0.06 + line_in * (1 + _CAPTION_LINES) + 0.06  # score line + caption lines
        row_gap = 0.18
        row_h = size + text_h
        title_h = 0.55 if title else 0.0
        return cls(
            size=size,
            margin=margin,
            label_w=label_w,
            col_gap=col_gap,
            row_gap=row_gap,
            row_h=row_h,
            title_h=title_h,
            fig_w=2 * margin + label_w + n_cols * size + (n_cols - 1) * col_gap,
            fig_h=2 * margin + title_h + n_rows * row_h + (n_rows - 1) * row_gap,
            # Characters that fit on a line (average glyph width ~0.55 em in DejaVu Sans).
            caption_chars=max(8, int(size * 72 / (CAPTION_PT * 0.56))),
            query_chars=max(10, int((label_w - 0.15) * 72 / (QUERY_PT * 0.58))),
            query_lines=max(1, min(_QUERY_MAX_LINES, int(size * 72 / (QUERY_PT * 1.3)))),
            pixels=max(16, round(size * THUMB_PIXELS_PER_INCH)),
        )


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
    out, size = check_png_args(out_path, thumb_size, "contact_sheet")
    checked = _check_rows(rows)

    import_matplotlib("contact_sheet")

    n_cols = max(1, max(len(hits) for _, hits in checked))
    layout = _SheetLayout.of(len(checked), n_cols, size, title)
    fig, box = figure(layout.fig_w, layout.fig_h)

    if title:
        fitted_text(
            fig,
            (0.5, 1 - (layout.margin + layout.title_h / 2) / layout.fig_h),
            title,
            (int(layout.fig_w * 72 / (13 * 0.55)), 1, (layout.fig_w - 2 * layout.margin) * DPI),
            fontsize=13,
            fontweight="bold",
            color=TEXT_COLOR,
        )

    for r, (query, hits) in enumerate(checked):
        y_top = layout.margin + layout.title_h + r * (layout.row_h + layout.row_gap)
        _draw_query(fig, box, layout, y_top, query, bool(hits))
        for c, hit in enumerate(hits):
            x = layout.margin + layout.label_w + c * (size + layout.col_gap)
            _draw_hit(fig, box(x, y_top, size, size), layout, c, hit)

    return save_png(fig, out)


def _draw_query(
    fig: Any, box: Box, layout: _SheetLayout, y_top: float, query: str, has_hits: bool
) -> None:
    """The query text at the left of a row (and "(no hits)" after it when it has none)."""
    label_w = layout.label_w
    label_ax = fig.add_axes(box(layout.margin, y_top, label_w - 0.15, layout.size))
    label_ax.set_axis_off()
    fitted_text(
        label_ax,
        (0.0, 0.5),
        query,
        (layout.query_chars, layout.query_lines, (label_w - 0.2) * DPI),
        ha="left",
        fontsize=QUERY_PT,
        fontweight="bold",
        color=TEXT_COLOR,
        transform=label_ax.transAxes,
        linespacing=1.2,
    )
    if not has_hits:
        label_ax.text(
            (label_w + 0.1) / (label_w - 0.15),
            0.5,
            "(no hits)",
            ha="left",
            va="center",
            fontsize=CAPTION_PT,
            style="italic",
            color=MUTED_COLOR,
            transform=label_ax.transAxes,
        )


def _draw_hit(fig: Any, rect: list[float], layout: _SheetLayout, c: int, hit: _Hit) -> None:
    """Hit ``c`` of a row in ``rect``: its framed thumbnail, rank and score, and caption."""
    _, _, offset_copy = import_matplotlib("contact_sheet")
    image, caption, score, correct = hit
    size = layout.size
    ax = fig.add_axes(rect)
    moved = moved_image(image)
    if moved is not None:
        draw_moved_placeholder(ax, moved, layout.pixels)
    else:
        ax.imshow(square_thumbnail(image, layout.pixels), interpolation="antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    if correct is None:
        color, width, mark = NEUTRAL_COLOR, 0.8, ""
    else:
        color = CORRECT_COLOR if correct else WRONG_COLOR
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
        fontsize=SCORE_PT,
        fontweight="bold",
        color=color if correct is not None else MUTED_COLOR,
        transform=offset_copy(ax.transAxes, fig=fig, y=-below, units="points"),
    )
    fit_choice(
        score_artist,
        [
            f"#{c + 1}   score {score:.3f}{mark}",
            f"#{c + 1}  {score:.3f}{mark[1:]}",
            f"{score:.3f}{mark[1:]}",
        ],
        size * DPI,
    )
    fitted_text(
        ax,
        (0.5, 0.0),
        caption,
        (layout.caption_chars, _CAPTION_LINES, size * DPI),
        va="top",
        fontsize=CAPTION_PT,
        color=TEXT_COLOR,
        linespacing=1.15,
        transform=offset_copy(ax.transAxes, fig=fig, y=-(below + SCORE_PT * 1.35), units="points"),
    )
