"""Pictures for people: a contact sheet of queries and their top hits.

matplotlib is imported inside :func:`contact_sheet`, so ``import asif_qdrant`` stays light. The
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
from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, Union

from .errors import ImageDecodeError, InvalidInputError, InvalidParameterError, check_real

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

__all__ = ["ImageLike", "contact_sheet"]

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

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> img = Image.new("RGBA", (32, 32), (255, 0, 0, 128))
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "figs" / "sheet.png"
        >>> contact_sheet([("red", [(img, "A red square.", 0.5)])], out, thumb_size=1.5).exists()
        True
    """
    size = check_real("thumb_size", "contact_sheet", thumb_size, greater_than=0)
    out = Path(out_path).expanduser()
    if out.suffix.lower() != ".png":
        raise InvalidParameterError(
            "The 'out_path' parameter of contact_sheet must be a path ending in '.png'. "
            f"Got {str(out_path)!r} instead."
        )
    checked = _check_rows(rows)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.transforms import offset_copy

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

    fig = Figure(figsize=(fig_w, fig_h), dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)

    def box(x: float, y_top: float, w: float, h: float) -> list[float]:
        """Axes rectangle from inches (y measured from the top) to figure fractions."""
        return [x / fig_w, 1 - (y_top + h) / fig_h, w / fig_w, h / fig_h]

    if title:
        title_artist = fig.text(
            0.5,
            1 - (margin + title_h / 2) / fig_h,
            "",
            ha="center",
            va="center",
            fontsize=13,
            fontweight="bold",
            color=_TEXT_COLOR,
        )
        chars = int(fig_w * 72 / (13 * 0.55))
        _fit_text(title_artist, title, chars, 1, (fig_w - 2 * margin) * _DPI)

    for r, (query, hits) in enumerate(checked):
        y_top = margin + title_h + r * (row_h + row_gap)

        label_ax = fig.add_axes(box(margin, y_top, label_w - 0.15, size))
        label_ax.set_axis_off()
        query_artist = label_ax.text(
            0.0,
            0.5,
            "",
            ha="left",
            va="center",
            fontsize=_QUERY_PT,
            fontweight="bold",
            color=_TEXT_COLOR,
            transform=label_ax.transAxes,
            linespacing=1.2,
        )
        _fit_text(query_artist, query, query_chars, query_lines, (label_w - 0.2) * _DPI)
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
            caption_artist = ax.text(
                0.5,
                0.0,
                "",
                ha="center",
                va="top",
                fontsize=_CAPTION_PT,
                color=_TEXT_COLOR,
                linespacing=1.15,
                transform=offset_copy(
                    ax.transAxes, fig=fig, y=-(below + _SCORE_PT * 1.35), units="points"
                ),
            )
            _fit_text(caption_artist, caption, caption_chars, _CAPTION_LINES, size * _DPI)

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=_DPI, facecolor="white")
    return out
