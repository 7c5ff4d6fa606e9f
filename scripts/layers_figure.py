"""Draw docs/layers.png: the package's layers, read from the import contracts in pyproject.toml.

The picture is made from the same contracts that ``lint-imports`` checks, so it cannot drift
from what CI enforces. Run from the repository root::

    python scripts/layers_figure.py          # writes docs/layers.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

ROOT = Path(__file__).resolve().parents[1]
COLORS = ("#dbe9f6", "#e3f1df", "#fdf0d5", "#f4dede", "#e9e1f3", "#ececec")


def contracts() -> tuple[list[list[str]], list[list[str]]]:
    """The package's layers and the retriever's, top first, each a list of sibling modules."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layered = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    split = [
        [[m.strip() for m in layer.replace(":", "|").split("|")] for layer in c] for c in layered
    ]
    return split[0], split[1]


def short(module: str) -> str:
    """``asif_qdrant.retriever.search`` -> ``search``; ``asif_qdrant.cli`` -> ``cli``."""
    return module.removeprefix("asif_qdrant.").removeprefix("retriever.")


def draw(out: Path) -> Path:
    """Draw both contracts side by side, arrows meaning "may import"."""
    package, retriever = contracts()
    fig = Figure(figsize=(14, 7.5), dpi=110, facecolor="white")
    FigureCanvasAgg(fig)
    for col, (title, layers) in enumerate(
        (("asif_qdrant: the package's layers", package), ("asif_qdrant.retriever", retriever))
    ):
        ax = fig.add_axes((0.02 + 0.5 * col, 0.04, 0.46, 0.9))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, len(layers))
        ax.axis("off")
        ax.set_title(title, fontsize=13, loc="left")
        for row, modules in enumerate(layers):
            y = len(layers) - row - 1
            width = 1 / len(modules)
            for j, module in enumerate(modules):
                box = FancyBboxPatch(
                    (j * width + 0.01, y + 0.15),
                    width - 0.02,
                    0.7,
                    boxstyle="round,pad=0.0,rounding_size=0.08",
                    facecolor=COLORS[row % len(COLORS)],
                    edgecolor="#555555",
                )
                ax.add_patch(box)
                size = 9 if len(modules) > 3 else 10
                ax.text(
                    j * width + width / 2,
                    y + 0.5,
                    short(module),
                    ha="center",
                    va="center",
                    fontsize=size,
                )
            if row < len(layers) - 1:
                ax.annotate(
                    "",
                    xy=(0.5, y + 0.02),
                    xytext=(0.5, y + 0.16),
                    arrowprops={"arrowstyle": "->", "color": "#777777"},
                )
    fig.text(
        0.02,
        0.005,
        "Each layer may import only the layers below it; boxes in one row do not import each "
        "other. Drawn from the contracts that lint-imports checks (pyproject.toml).",
        fontsize=10,
        color="#444444",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", facecolor="white")
    return out


if __name__ == "__main__":
    path = draw(ROOT / "docs" / "layers.png" if len(sys.argv) < 2 else Path(sys.argv[1]))
    print(path)
