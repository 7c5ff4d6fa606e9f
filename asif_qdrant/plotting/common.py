"""What both figures share: matplotlib, the figure, fitted text, thumbnails, the PNG.

The lazy matplotlib import, the figure and its boxes, text fitted to a width, image loading
and thumbnails, and saving the PNG.

matplotlib is imported only by :func:`import_matplotlib`, when a figure is drawn, so importing
this module stays light and works without it.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, Union

from ..errors import ImageDecodeError, InvalidInputError, InvalidParameterError, check_real

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

__all__ = [
    "CAPTION_PT",
    "CORRECT_COLOR",
    "DPI",
    "MUTED_COLOR",
    "NEUTRAL_COLOR",
    "PLOT_EXTRA",
    "QUERY_PT",
    "SCORE_PT",
    "TEXT_COLOR",
    "THUMB_PIXELS_PER_INCH",
    "WRONG_COLOR",
    "Box",
    "ImageLike",
    "check_png_args",
    "draw_moved_placeholder",
    "figure",
    "fit_choice",
    "fit_text",
    "fitted_text",
    "import_matplotlib",
    "moved_image",
    "save_png",
    "shorten",
    "square_thumbnail",
    "text_width_px",
    "to_rgb",
]

logger = logging.getLogger("asif_qdrant.plotting")

#: How to install what drawing needs (matplotlib), named by the error raised without it.
PLOT_EXTRA = "pip install 'asif-qdrant[plot]'"

#: An image for a contact sheet: a file path, a PIL image, or an (H, W[, C]) uint8 array.
ImageLike: TypeAlias = Union[str, "os.PathLike[str]", "PILImage", "np.ndarray"]

#: ``box(x, y_top, w, h)``: a rectangle in inches (y from the top) as ``add_axes`` fractions.
Box: TypeAlias = Callable[[float, float, float, float], list[float]]

CORRECT_COLOR = "#2e7d32"  # green
WRONG_COLOR = "#c62828"  # red
NEUTRAL_COLOR = "#b0b0b0"
TEXT_COLOR = "#222222"
MUTED_COLOR = "#555555"

# Layout constants, in inches / points.
DPI = 130
CAPTION_PT = 8.0
SCORE_PT = 8.0
QUERY_PT = 10.0
THUMB_PIXELS_PER_INCH = 160  # resolution of the thumbnails drawn in the figure


def import_matplotlib(owner: str) -> tuple[Any, Any, Any]:
    """The matplotlib names drawing needs, imported on first use.

    Args:
        owner: Who draws (named by the error).

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


def to_rgb(image: Any) -> PILImage:
    """Open an image as RGB, transparency composited on white.

    Uses :func:`asif_qdrant.images.load_image` (the loader the encoders use, so a sheet shows
    the pixels that were encoded) and falls back to a small local loader without it.

    Args:
        image: A file path, a PIL image or a uint8 / [0, 1]-float array.

    Returns:
        The RGB image.
    """
    try:
        from ..images import load_image
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


def square_thumbnail(image: Any, pixels: int) -> Any:
    """The image scaled to fit a white ``pixels`` x ``pixels`` square, centred.

    Args:
        image: What :func:`to_rgb` opens.
        pixels: The side of the square.

    Returns:
        The thumbnail, a (pixels, pixels, 3) uint8 numpy array.
    """
    import numpy as np
    from PIL import Image

    rgb = to_rgb(image)
    inner = max(1, round(pixels * 0.92))  # a white margin so frames never cover the image
    rgb.thumbnail((inner, inner), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (pixels, pixels), (255, 255, 255))
    canvas.paste(rgb, ((pixels - rgb.width) // 2, (pixels - rgb.height) // 2))
    return np.asarray(canvas)


def shorten(text: str, width: int, max_lines: int) -> str:
    """Wrap ``text`` to ``width`` characters, keeping at most ``max_lines`` lines (with …).

    Args:
        text: The text (its whitespace is collapsed).
        width: Characters per line (at least 4 are used).
        max_lines: The most lines kept; the last one kept ends in "…" when lines were cut.

    Returns:
        The wrapped text, lines joined by newlines.

    Example:
        >>> print(shorten("one two three four five", 9, 2))
        one two
        three…
    """
    text = " ".join(str(text).split())
    if not text:
        return ""
    lines = textwrap.wrap(text, width=max(width, 4), break_long_words=True)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        lines[-1] = (last if len(last) < width else last[: width - 1].rstrip()) + "…"
    return "\n".join(lines)


def fit_text(artist: Any, text: str, width: int, max_lines: int, max_px: float) -> None:
    """Set ``artist``'s text to ``text`` wrapped so that its rendered width is <= ``max_px``.

    Args:
        artist: A matplotlib text of a figure with a canvas.
        text: The text.
        width: Characters per line to start from (lowered until the text fits, down to 4).
        max_lines: The most lines (see :func:`shorten`).
        max_px: The widest the rendered text may be, in pixels.
    """
    renderer = artist.figure.canvas.get_renderer()
    while True:
        artist.set_text(shorten(text, width, max_lines))
        if width <= 4 or artist.get_window_extent(renderer).width <= max_px:
            return
        width -= 1


def fitted_text(
    owner: Any,
    xy: tuple[float, float],
    text: str,
    fit: tuple[int, int, float],
    *,
    ha: str = "center",
    va: str = "center",
    **style: Any,
) -> None:
    """A text of a figure or axes at ``xy``, fitted as :func:`fit_text` does.

    Args:
        owner: The figure or axes.
        xy: Where, in ``owner``'s coordinates (or those of the ``transform`` in ``style``).
        text: The text.
        fit: ``(characters per line, lines, maximum width in pixels)``.
        ha: Horizontal alignment.
        va: Vertical alignment.
        **style: The other keyword arguments of ``owner.text`` (font, colour, transform...).
    """
    artist = owner.text(*xy, "", ha=ha, va=va, **style)
    fit_text(artist, text, *fit)


def fit_choice(artist: Any, choices: Sequence[str], max_px: float) -> None:
    """Set ``artist``'s text to the first of ``choices`` that fits in ``max_px`` (else the last).

    Args:
        artist: A matplotlib text of a figure with a canvas.
        choices: The texts, longest first.
        max_px: The widest the rendered text may be, in pixels.
    """
    renderer = artist.figure.canvas.get_renderer()
    for choice in choices:
        artist.set_text(choice)
        if artist.get_window_extent(renderer).width <= max_px:
            return


def check_png_args(
    out_path: str | os.PathLike[str], thumb_size: float, owner: str
) -> tuple[Path, float]:
    """Check a figure's ``thumb_size`` (> 0) and ``out_path`` (ends in ``.png``).

    Args:
        out_path: Where the PNG goes.
        thumb_size: The side of a thumbnail, in inches.
        owner: Who asks (named by the errors).

    Returns:
        ``(out_path as a Path, user folder expanded; thumb_size as a float)``.

    Raises:
        InvalidParameterError: If ``thumb_size`` is not positive or ``out_path`` does not end
            in ``.png``.
    """
    size = check_real("thumb_size", owner, thumb_size, greater_than=0)
    out = Path(out_path).expanduser()
    if out.suffix.lower() != ".png":
        raise InvalidParameterError(
            f"The 'out_path' parameter of {owner} must be a path ending in '.png'. "
            f"Got {str(out_path)!r} instead."
        )
    return out, size


def figure(fig_w: float, fig_h: float) -> tuple[Any, Box]:
    """A white Agg figure of ``fig_w`` x ``fig_h`` inches, and its ``box`` function.

    ``box(x, y_top, w, h)`` turns a rectangle in inches (y measured from the top) into the
    figure fractions ``add_axes`` wants.

    Args:
        fig_w: The width, in inches.
        fig_h: The height, in inches.

    Returns:
        ``(figure, box)``.
    """
    FigureCanvasAgg, Figure, _ = import_matplotlib("asif_qdrant.plotting")
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)

    def box(x: float, y_top: float, w: float, h: float) -> list[float]:
        return [x / fig_w, 1 - (y_top + h) / fig_h, w / fig_w, h / fig_h]

    return fig, box


def save_png(fig: Any, out: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the figure as a PNG (parent folders created), with optional text metadata.

    Args:
        fig: The figure.
        out: The PNG's path.
        metadata: PNG text chunks to add.

    Returns:
        ``out``.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"metadata": metadata} if metadata else {}
    fig.savefig(out, format="png", dpi=DPI, facecolor="white", **extra)
    return out


def moved_image(image: Any) -> str | None:
    """The resolved path of an image reference whose file is gone (moved or deleted), else None.

    A relative path (a model that stored one) resolves against the working folder. Each
    missing file is logged as a warning naming it.

    Example:
        >>> moved_image("/nowhere/x.png"), moved_image(None)
        ('/nowhere/x.png', None)
    """
    if not isinstance(image, (str, os.PathLike)):
        return None
    path = Path(image).expanduser().resolve()
    if path.is_file():
        return None
    logger.warning("image moved: %s (no file there; drawn as a placeholder)", path)
    return str(path)


def draw_moved_placeholder(ax: Any, path: str, pixels: int) -> None:
    """Fill ``ax`` with a grey square saying ``image moved: <path>``."""
    import numpy as np

    ax.imshow(np.full((pixels, pixels, 3), 236, np.uint8), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    fit = (22, 6, text_width_px(ax))
    style = {"fontsize": CAPTION_PT, "color": WRONG_COLOR, "transform": ax.transAxes}
    fitted_text(ax, (0.5, 0.5), f"image moved: {path}", fit, **style)


def text_width_px(ax: Any) -> float:
    """The widest a text inside ``ax`` may be, in pixels: 90% of the axes' width."""
    return ax.get_position().width * ax.figure.get_figwidth() * DPI * 0.9
