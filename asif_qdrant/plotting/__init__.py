"""Pictures for people: a contact sheet of queries and their top hits.

matplotlib is an optional dependency (``pip install 'asif-qdrant[plot]'``), imported only when a
figure is drawn, so ``import asif_qdrant`` (and this module) stay light and work without it;
drawing without it raises an :class:`ImportError` that says how to install it. The
figure is drawn with the Agg canvas directly (no ``pyplot``, no global backend switch), so it
works headless and from threads.

The package: :mod:`~asif_qdrant.plotting.common` (what both figures share),
:mod:`~asif_qdrant.plotting.contact` (:func:`contact_sheet`) and
:mod:`~asif_qdrant.plotting.explain` (:func:`explain_figure`).

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

from .common import PLOT_EXTRA, ImageLike
from .contact import contact_sheet
from .explain import explain_figure

__all__ = ["PLOT_EXTRA", "ImageLike", "contact_sheet", "explain_figure"]
