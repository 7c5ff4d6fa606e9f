"""What the asif-qdrant wheel holds: the library only, typed, with matplotlib as an extra.

The wheel is built offline (``pip wheel --no-deps --no-build-isolation``, seconds) from a copy
of the files the build reads (pyproject.toml, README.md, asif_qdrant/), so that the build
leaves nothing in the checkout and no stale ``build/`` folder can add files to it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "asif_qdrant", src / "asif_qdrant", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--no-index", "-q", "-w", str(out)],
        cwd=src,
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("asif_qdrant-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_the_library_only(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "asif_qdrant/py.typed" in names
    assert "asif_qdrant/__init__.py" in names and "asif_qdrant/anchor_index/ivf.py" in names
    for name in names:
        assert not name.startswith(("asif_qdrant/evaluation", "asif_qdrant_evaluation")), name
        assert not name.startswith(("benchmarks/", "evaluation/", "tests/")), name
        assert "benchmarks" not in name and "cli_evaluate" not in name, name
        assert name not in (
            "asif_qdrant/anchor_index/quantized.py",
            "asif_qdrant/anchor_index/qdrant_index.py",
        ), name
    tops = {n.split("/")[0] for n in names}
    assert tops == {"asif_qdrant", next(t for t in tops if t.endswith(".dist-info"))}, tops


def test_matplotlib_is_the_plot_extra(wheel: zipfile.ZipFile) -> None:
    meta_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(wheel.read(meta_name).decode())
    assert "plot" in meta.get_all("Provides-Extra")
    requires = meta.get_all("Requires-Dist")
    matplotlib = [r for r in requires if r.lower().startswith("matplotlib")]
    assert matplotlib, requires
    for req in matplotlib:  # only under the extra
        assert req.replace(" ", "").endswith('extra=="plot"'), req


def test_the_service_and_its_page_ship_under_the_serve_extra(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    for page in ("index.html", "app.js", "style.css"):
        assert f"asif_qdrant/service/static/{page}" in names, names
    meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(wheel.read(meta_name).decode())
    assert "serve" in meta.get_all("Provides-Extra")
    requires = meta.get_all("Requires-Dist")
    for package in ("fastapi", "uvicorn", "python-multipart"):
        reqs = [r for r in requires if r.lower().startswith(package)]
        assert reqs and all(r.replace(" ", "").endswith('extra=="serve"') for r in reqs), requires
