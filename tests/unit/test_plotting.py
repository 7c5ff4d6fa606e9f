from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asif_qdrant.errors import ImageDecodeError, InvalidInputError, InvalidParameterError
from asif_qdrant.loaders import TUXPAINT_STAMPS_DIR, load_tuxpaint_stamps
from asif_qdrant.plotting import contact_sheet


@pytest.fixture
def images(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "in" / "blue.png"
    path.parent.mkdir()
    Image.new("RGB", (40, 60), "blue").save(path)
    rgba = Image.new("RGBA", (50, 30), (255, 0, 0, 0))  # fully transparent -> white
    return {"path": str(path), "pathlib": path, "rgba": rgba, "array": np.zeros((20, 20, 3))}


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.copy()


def test_contact_sheet_writes_png(tmp_path: Path, images: dict[str, object]) -> None:
    rows = [
        ("a blue rectangle", [(images["path"], "A blue rectangle.", 0.9)]),
        (
            "something transparent with a rather long query that needs wrapping " * 2,
            [
                (images["rgba"], "A transparent thing " * 10, 0.5),
                (images["pathlib"], "Blue again.", -0.25),
                (images["array"], "Black.", 0.0),
            ],
        ),
        ("no hits at all", []),
    ]
    out = tmp_path / "deep" / "er" / "sheet.png"
    result = contact_sheet(rows, str(out), title="A title")
    assert result == out
    assert out.is_file() and out.stat().st_size > 0
    im = _open(out)
    assert im.mode in ("RGB", "RGBA")
    assert im.width > 0 and im.height > 0
    # Three rows make a taller picture than one.
    single = contact_sheet(rows[:1], tmp_path / "single.png")
    assert _open(single).height < im.height


def _count_color(im: Image.Image, rgb: tuple[int, int, int], tol: int = 30) -> int:
    arr = np.asarray(im.convert("RGB")).astype(int)
    return int((np.abs(arr - np.array(rgb)).max(axis=-1) <= tol).sum())


def test_contact_sheet_highlight(tmp_path: Path, images: dict[str, object]) -> None:
    plain = contact_sheet(
        [("q", [(images["rgba"], "x", 0.1), (images["rgba"], "y", 0.2)])], tmp_path / "plain.png"
    )
    marked = contact_sheet(
        [("q", [(images["rgba"], "x", 0.1, True), (images["rgba"], "y", 0.2, False)])],
        tmp_path / "marked.png",
    )
    green, red = (0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28)
    plain_im, marked_im = _open(plain), _open(marked)
    assert plain_im.size == marked_im.size
    assert _count_color(plain_im, green) == 0 and _count_color(plain_im, red) == 0
    assert _count_color(marked_im, green) > 200
    assert _count_color(marked_im, red) > 200
    # The transparent image is composited on white: no red fill inside the thumbnails.
    assert _count_color(marked_im, (255, 0, 0), tol=10) == 0


@pytest.mark.skipif(
    not Path(TUXPAINT_STAMPS_DIR).is_dir(),
    reason="Tux Paint stamps are not installed; run `apt-get install tuxpaint-stamps-default`.",
)
def test_contact_sheet_real_stamps(tmp_path: Path) -> None:
    pairs = load_tuxpaint_stamps()[:6]
    rows = [
        (
            pairs[0].caption,
            [(p.image, p.caption, 1.0 / (i + 1), i == 0) for i, p in enumerate(pairs)],
        )
    ]
    out = contact_sheet(rows, tmp_path / "tux.png", thumb_size=1.5)
    assert _open(out).width > 6 * 1.5 * 100


def test_contact_sheet_errors(tmp_path: Path, images: dict[str, object]) -> None:
    ok = [("q", [(images["rgba"], "x", 0.1)])]
    with pytest.raises(InvalidInputError, match="non-empty sequence"):
        contact_sheet([], tmp_path / "a.png")
    with pytest.raises(InvalidInputError, match="row 0 must be a"):
        contact_sheet([("q",)], tmp_path / "a.png")  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="row 0, hit 0 must be"):
        contact_sheet([("q", [(images["rgba"], "x")])], tmp_path / "a.png")
    with pytest.raises(InvalidInputError, match="score must be a real number"):
        contact_sheet([("q", [(images["rgba"], "x", "high")])], tmp_path / "a.png")
    with pytest.raises(InvalidInputError, match="'correct' must be True, False or None"):
        contact_sheet([("q", [(images["rgba"], "x", 0.1, "yes")])], tmp_path / "a.png")
    with pytest.raises(InvalidParameterError, match="'thumb_size' parameter of contact_sheet"):
        contact_sheet(ok, tmp_path / "a.png", thumb_size=0)
    with pytest.raises(InvalidParameterError, match=re.escape("must be a path ending in '.png'")):
        contact_sheet(ok, tmp_path / "a.jpg")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ImageDecodeError, match=r"Cannot decode .*junk\.png"):
        contact_sheet([("q", [(tmp_path / "junk.png", "x", 0.1)])], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
    # A missing file is no error: a placeholder says "image moved: <path>" (test_keys.py).
    assert contact_sheet([("q", [(tmp_path / "missing.png", "x", 0.1)])], tmp_path / "a.png")


@pytest.mark.parametrize("use_images_module", [True, False])
def test_contact_sheet_with_and_without_images_module(
    tmp_path: Path,
    images: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
    use_images_module: bool,
) -> None:
    if not use_images_module:
        # Simulate a build without asif_qdrant.images: the local fallback loader is used.
        monkeypatch.setitem(sys.modules, "asif_qdrant.images", None)
    hits = [(images[k], k, 0.5, None) for k in ("path", "pathlib", "rgba", "array")]
    out = contact_sheet([("all kinds", hits)], tmp_path / "kinds.png", thumb_size=1.0)
    assert _open(out).width > 0
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ImageDecodeError, match=r"Cannot decode .*junk\.png"):
        contact_sheet([("q", [(tmp_path / "junk.png", "x", 0.1)])], tmp_path / "a.png")
    with pytest.raises(InvalidInputError):
        contact_sheet([("q", [(12345, "x", 0.1)])], tmp_path / "a.png")


def test_plotting_import_is_light() -> None:
    # matplotlib is imported only when a sheet is drawn (it may already be loaded by the
    # other tests in this process, so check in a fresh interpreter).
    import subprocess

    code = "import sys, asif_qdrant.plotting; print('matplotlib' in sys.modules)"
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo
    )
    assert out.stdout.strip() == "False"


def test_without_matplotlib_imports_work_and_drawing_names_the_extra(tmp_path: Path) -> None:
    # matplotlib is the `plot` extra: a fresh interpreter where it cannot be imported
    # (sys.modules[...] = None) still imports the package and this module, and drawing raises
    # an ImportError that says how to install it.
    import subprocess

    code = f"""
import sys
sys.modules["matplotlib"] = None
import numpy as np
import asif_qdrant, asif_qdrant.plotting
from asif_qdrant.plotting import contact_sheet
try:
    contact_sheet([("q", [(np.zeros((8, 8, 3), np.uint8), "x", 0.1)])], {str(tmp_path / "a.png")!r})
except ImportError as e:
    print("ImportError:", e)
"""
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo
    )
    assert "ImportError:" in out.stdout, out.stdout + out.stderr
    assert "pip install 'asif-qdrant[plot]'" in out.stdout
    assert not (tmp_path / "a.png").exists()
