r"""Load image-caption pairs: anchor sets and catalogs.

Every loader returns a list of :class:`Pair` (an absolute image path, a caption, where it came
from and free-form metadata), sorted or ordered deterministically. Nothing here imports torch
or talks to Qdrant: the pairs are plain data, ready to be encoded and stored.

* :func:`load_folder`: images with a same-name ``.txt`` caption file beside them.
* :func:`load_csv` and :func:`load_jsonl`: a table of image paths and captions; image paths
  must stay inside a root folder.
* :func:`load_tuxpaint_stamps`: Debian's ``tuxpaint-stamps-default`` (785 captioned photos).
* :func:`split_pairs`: a deterministic split into anchors and held-out pairs, stratified by
  category.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from asif_qdrant.loaders import load_folder, split_pairs
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["cat", "dog"]:
    ...     Image.new("RGB", (8, 8)).save(root / f"{name}.png")
    ...     _ = (root / f"{name}.txt").write_text(f"A {name}.\n")
    >>> pairs = load_folder(root)
    >>> [p.caption for p in pairs]
    ['A cat.', 'A dog.']
    >>> anchors, held_out = split_pairs(pairs, test_fraction=0.5, seed=0)
    >>> len(anchors), len(held_out)
    (1, 1)
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, TextIO

from .errors import InvalidInputError, InvalidParameterError, check_int

__all__ = [
    "DEFAULT_IMAGE_EXTENSIONS",
    "TUXPAINT_STAMPS_DIR",
    "Pair",
    "inside_root",
    "load_csv",
    "load_folder",
    "load_jsonl",
    "load_tuxpaint_stamps",
    "split_pairs",
]

logger = logging.getLogger(__name__)

#: Image file name endings that :func:`load_folder` looks for by default (case-insensitive).
DEFAULT_IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
#: Where Debian's ``tuxpaint-stamps-default`` installs the stamps.
TUXPAINT_STAMPS_DIR = "/usr/share/tuxpaint/stamps"

# A translated caption line in a Tux Paint stamp description, e.g. "es.utf8=Una rana."
_TRANSLATION_LINE = re.compile(r"^[A-Za-z]{2,3}(?:_[A-Za-z]{2})?(?:@\w+)?\.utf-?8=", re.ASCII)


@dataclass(frozen=True)
class Pair:
    """One image with its caption.

    Attributes:
        image: Absolute path of the image file.
        caption: The caption, one line of text.
        source: Where the pair came from: ``"tuxpaint"``, or the folder / CSV / JSONL path.
        metadata: Anything else known about the pair, e.g. ``{"category": "animals",
            "relpath": "animals/marsupials/koala.png"}``. :func:`split_pairs` stratifies by
            its ``"category"`` key.

    Example:
        >>> pair = Pair("/tmp/koala.png", "A koala.", "tuxpaint", {"category": "animals"})
        >>> pair.payload()["caption"], pair.payload()["category"]
        ('A koala.', 'animals')
    """

    image: str
    caption: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A private copy, so that mutating the caller's dict later cannot change the pair.
        object.__setattr__(self, "metadata", dict(self.metadata))

    def __hash__(self) -> int:
        # ``metadata`` is a dict (unhashable); equal pairs still hash equal.
        return hash((self.image, self.caption, self.source))

    def payload(self) -> dict[str, Any]:
        """The pair as a flat Qdrant payload.

        Returns:
            The metadata plus ``image``, ``caption`` and ``source``. These three always hold
            the pair's own fields: a metadata key with one of these names is overridden.
        """
        return {
            **self.metadata,
            "image": self.image,
            "caption": self.caption,
            "source": self.source,
        }


# --------------------------------------------------------------------------------------------
# Folder of images with same-name .txt captions
# --------------------------------------------------------------------------------------------


def _read_caption(txt: Path, *, skip_translations: bool = False) -> str:
    """The first non-empty line of a caption file, stripped ('' if there is none)."""
    try:
        text = txt.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"Caption file {txt} is not valid UTF-8: {e}.") from e
    except OSError as e:
        raise InvalidInputError(f"Cannot read caption file {txt}: {e}.") from e
    for line in text.splitlines():
        line = line.strip()
        if not line or (skip_translations and _TRANSLATION_LINE.match(line)):
            continue
        return line
    return ""


def _walk_files(root: Path, *, recursive: bool) -> Iterator[Path]:
    """Every regular file under ``root`` (symlinked folders are not followed)."""
    if not recursive:
        yield from (p for p in root.iterdir() if p.is_file())
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file():
                yield path


def inside_root(path: Path, root: Path, where: str) -> Path:
    """``path`` resolved (symlinks followed), refused unless it stays inside ``root``.

    The one rule of every loader: no file is read from outside the loader's root folder,
    whether a table names it (``..``, an absolute path) or a symlink leads there.

    Args:
        path: The file (absolute, or relative to ``root``).
        root: The resolved root folder.
        where: Names the file in the message (a table row and its image path).

    Raises:
        InvalidInputError: If the resolved path is outside ``root``.

    Example:
        >>> inside_root(Path("/etc/passwd"), Path("/tmp"), "row 2: the image path")
        Traceback (most recent call last):
        ...
        asif_qdrant.errors.InvalidInputError: row 2: the image path resolves to /etc/passwd, \
outside the root folder /tmp; refusing to read it. Pass root=... to allow another folder.
    """
    resolved = (path if path.is_absolute() else root / path).resolve()
    if not resolved.is_relative_to(root):
        raise InvalidInputError(
            f"{where} resolves to {resolved}, outside the root folder "
            f"{root}; refusing to read it. Pass root=... to allow another folder."
        )
    return resolved


def _captioned_images(
    root: Path, exts: tuple[str, ...], *, recursive: bool, skip_translations: bool = False
) -> Iterator[tuple[Path, Path, str | None]]:
    """``(image, path relative to root, caption)`` per image file ending in one of ``exts``.

    The caption is that of the same-name ``.txt`` file (``""`` when it is empty), or None
    when there is no such file. A symlinked image or caption file that leads outside
    ``root`` is refused (:func:`inside_root`).
    """
    for path in _walk_files(root, recursive=recursive):
        if path.suffix.lower() not in exts:
            continue
        txt = path.with_suffix(".txt")
        inside_root(path, root, f"In {root}, the image {path.relative_to(root)}")
        if txt.is_file():
            inside_root(txt, root, f"In {root}, the caption file {txt.relative_to(root)}")
        try:
            caption = (
                _read_caption(txt, skip_translations=skip_translations) if txt.is_file() else None
            )
        except InvalidInputError as e:
            raise InvalidInputError(f"The caption of the image {path}: {e}") from e
        yield path, path.relative_to(root), caption


def _first_few(names: list[str], shown: int = 5) -> str:
    """The first ``shown`` of ``names``, comma-separated, with how many more there are."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _sorted_pairs(found: list[tuple[str, Pair]]) -> list[Pair]:
    """The pairs, sorted by their key (a relative path)."""
    found.sort(key=lambda item: item[0])
    return [pair for _, pair in found]


def _normalize_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = (extensions,)
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if not exts or any(e == "." for e in exts):
        raise InvalidParameterError(
            "The 'extensions' parameter of load_folder must be a non-empty sequence of file "
            f"endings such as '.png'. Got {tuple(extensions)!r} instead."
        )
    return exts


def load_folder(
    root: str | os.PathLike[str],
    *,
    extensions: Sequence[str] = DEFAULT_IMAGE_EXTENSIONS,
    recursive: bool = True,
) -> list[Pair]:
    r"""Load every image that has a same-name ``.txt`` caption file beside it.

    ``photos/cat.png`` pairs with ``photos/cat.txt``; the caption is the file's first
    non-empty line, stripped. Images without a caption file (or with an empty one) are skipped
    and counted in one logged warning.

    Args:
        root: The folder to scan.
        extensions: Image file endings to look for, case-insensitive.
        recursive: Also scan subfolders (symlinked folders are not followed).

    Returns:
        The pairs, sorted by path relative to ``root``. ``source`` is the root folder;
        ``metadata`` holds ``relpath`` (POSIX, relative to ``root``) and, for images in a
        subfolder, ``category``: the name of the top-level subfolder.

    Raises:
        InvalidInputError: If ``root`` is not a folder, if no captioned image is found, or if
            a caption file cannot be read as UTF-8.
        InvalidParameterError: If ``extensions`` is empty.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "animals").mkdir()
        >>> Image.new("RGB", (8, 8)).save(root / "animals" / "cat.png")
        >>> _ = (root / "animals" / "cat.txt").write_text("\n  A cat.  \nsecond line\n")
        >>> Image.new("RGB", (8, 8)).save(root / "uncaptioned.png")
        >>> [pair] = load_folder(root)
        >>> pair.caption, pair.metadata
        ('A cat.', {'relpath': 'animals/cat.png', 'category': 'animals'})
    """
    exts = _normalize_extensions(extensions)
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        what = "is not a folder" if root_path.exists() else "does not exist"
        raise InvalidInputError(f"Cannot load image-caption pairs: {root_path} {what}.")
    root_path = root_path.resolve()

    found: list[tuple[str, Pair]] = []
    no_caption: list[str] = []
    empty_caption: list[str] = []
    for path, rel, caption in _captioned_images(root_path, exts, recursive=recursive):
        if caption is None:
            no_caption.append(f"{rel.as_posix()} (no {path.with_suffix('.txt').name})")
            continue
        if not caption:
            empty_caption.append(f"{rel.as_posix()} ({path.with_suffix('.txt').name} is empty)")
            continue
        metadata: dict[str, Any] = {"relpath": rel.as_posix()}
        if len(rel.parts) > 1:
            metadata["category"] = rel.parts[0]
        found.append((rel.as_posix(), Pair(str(path), caption, str(root_path), metadata)))

    uncaptioned = _first_few(no_caption + empty_caption)
    if uncaptioned and found:
        logger.warning(
            "load_folder(%s): skipped %d image(s) without a same-name .txt caption file and "
            "%d with an empty one: %s.",
            root_path,
            len(no_caption),
            len(empty_caption),
            uncaptioned,
        )
    if not found:
        raise InvalidInputError(
            f"No image-caption pairs found in {root_path}: looked for images ending in "
            f"{', '.join(exts)} {'(recursively) ' if recursive else ''}with a same-name .txt "
            "caption file beside them (e.g. cat.png + cat.txt)."
            + (f" Images without a caption: {uncaptioned}." if uncaptioned else "")
        )
    return _sorted_pairs(found)


# --------------------------------------------------------------------------------------------
# CSV / JSONL tables
# --------------------------------------------------------------------------------------------


def _resolve_root(file: Path, root: str | os.PathLike[str] | None, owner: str) -> Path:
    if not file.is_file():
        what = "is not a file" if file.exists() else "does not exist"
        raise InvalidInputError(f"{owner}: {file} {what}.")
    root_path = file.parent if root is None else Path(root).expanduser()
    if not root_path.is_dir():
        what = "is not a folder" if root_path.exists() else "does not exist"
        raise InvalidInputError(f"{owner}: the root folder {root_path} {what}.")
    return root_path.resolve()


def _make_pair(
    *,
    where: str,
    raw_image: Any,
    raw_caption: Any,
    image_name: str,
    caption_name: str,
    root: Path,
    source: str,
    extra: dict[str, Any],
) -> Pair:
    """Validate one table row and build its pair; ``where`` names the row in messages."""
    if not isinstance(raw_image, str) or not raw_image.strip():
        raise InvalidInputError(
            f"{where}: the image path {image_name!r} must be a non-empty string. "
            f"Got {raw_image!r} instead."
        )
    if not isinstance(raw_caption, str) or not raw_caption.strip():
        raise InvalidInputError(
            f"{where}: the caption {caption_name!r} must be a non-empty string. "
            f"Got {raw_caption!r} instead."
        )
    raw = raw_image.strip()
    resolved = inside_root(Path(raw).expanduser(), root, f"{where}: the image path {raw!r}")
    if not resolved.is_file():
        raise InvalidInputError(f"{where}: the image file {raw!r} does not exist ({resolved}).")
    metadata = dict(extra)
    metadata.setdefault("relpath", resolved.relative_to(root).as_posix())
    return Pair(str(resolved), " ".join(raw_caption.split()), source, metadata)


def _read_table(
    file: Path,
    root: str | os.PathLike[str] | None,
    owner: str,
    columns: tuple[str, str],
    rows: Callable[[TextIO], Iterator[tuple[str, dict[str, Any], dict[str, Any]]]],
    *,
    empty: str,
    newline: str | None = None,
) -> list[Pair]:
    """The pairs of a table file (CSV or JSONL): one per ``(where, row, extra)`` of ``rows``.

    ``columns`` names the image and caption fields of a row; ``extra`` becomes the pair's
    metadata. ``empty`` is the error message when the file holds no rows.
    """
    root_path = _resolve_root(file, root, owner)
    source = str(file.resolve())
    image_name, caption_name = columns
    pairs: list[Pair] = []
    try:
        with file.open(encoding="utf-8-sig", newline=newline) as handle:
            for where, row, extra in rows(handle):
                pair = _make_pair(
                    where=where,
                    raw_image=row[image_name],
                    raw_caption=row[caption_name],
                    image_name=image_name,
                    caption_name=caption_name,
                    root=root_path,
                    source=source,
                    extra=extra,
                )
                pairs.append(pair)
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{file} is not valid UTF-8: {e}.") from e
    if not pairs:
        raise InvalidInputError(empty)
    return pairs


def load_csv(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    image_column: str = "image",
    caption_column: str = "caption",
) -> list[Pair]:
    r"""Load pairs from a CSV file with a header row.

    Relative image paths resolve against ``root``. A path that ends up outside ``root``
    (through ``..``, an absolute path or a symlink) is refused. Captions are stripped and runs
    of whitespace (newlines included) become one space.

    Args:
        path: The CSV file (UTF-8, an optional BOM is fine).
        root: The folder that image paths are relative to and must stay inside. Default: the
            CSV file's folder.
        image_column: The column holding image paths.
        caption_column: The column holding captions.

    Returns:
        One pair per data row, in file order. ``source`` is the CSV path; ``metadata`` holds
        every other column (as strings) and ``relpath``, the image path relative to ``root``.

    Raises:
        InvalidInputError: If the file or root is missing, a column is missing, or a row
            (named by its number: the first data row is row 1) has an empty image path or
            caption, an image outside ``root``, a missing image file or too many fields; also
            if the file holds no data rows.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 8)).save(root / "cat.png")
        >>> text = "image,caption,category\ncat.png,A cat.,animals\n"
        >>> _ = (root / "pairs.csv").write_text(text)
        >>> [pair] = load_csv(root / "pairs.csv")
        >>> pair.caption, pair.metadata
        ('A cat.', {'category': 'animals', 'relpath': 'cat.png'})
    """
    file = Path(path).expanduser()
    columns = (image_column, caption_column)

    def rows(handle: TextIO) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        reader = csv.DictReader(handle)
        header = reader.fieldnames
        if not header:
            raise InvalidInputError(f"{file}: the CSV file is empty (no header row).")
        for column, role in zip(columns, ("image_column", "caption_column"), strict=True):
            if column not in header:
                raise InvalidInputError(
                    f"{file}: no {column!r} column ({role}). Columns found: "
                    f"{', '.join(map(repr, header))}."
                )
        for number, row in enumerate(reader, start=1):
            where = f"{file}, row {number} (line {reader.line_num})"
            if None in row:
                raise InvalidInputError(
                    f"{where}: the row has more fields than the header ({len(header)})."
                )
            extra = {k: v for k, v in row.items() if k not in columns and v is not None}
            yield where, row, extra

    try:
        return _read_table(
            file,
            root,
            "load_csv",
            columns,
            rows,
            empty=f"{file}: the CSV file has a header but no data rows.",
            newline="",
        )
    except csv.Error as e:
        raise InvalidInputError(f"{file} is not a valid CSV file: {e}.") from e


def load_jsonl(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    image_key: str = "image",
    caption_key: str = "caption",
) -> list[Pair]:
    r"""Load pairs from a JSON Lines file: one JSON object per line.

    Blank lines are skipped. Relative image paths resolve against ``root``; a path that ends up
    outside ``root`` (through ``..``, an absolute path or a symlink) is refused. Captions are
    stripped and runs of whitespace become one space.

    Args:
        path: The JSONL file (UTF-8).
        root: The folder that image paths are relative to and must stay inside. Default: the
            file's folder.
        image_key: The key holding image paths.
        caption_key: The key holding captions.

    Returns:
        One pair per object, in file order. ``source`` is the file path; ``metadata`` holds
        every other key (JSON values as parsed) and ``relpath``.

    Raises:
        InvalidInputError: If the file or root is missing, or a row (named by its number and
            line) is not a JSON object, lacks a key, has an empty image path or caption, points
            outside ``root`` or at a missing file; also if the file holds no objects.

    Example (the file in a subfolder, image paths relative to its parent, a blank line):
        >>> import json, tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 8)).save(root / "cat.png")
        >>> (root / "lists").mkdir()
        >>> row = {"image": "cat.png", "caption": " A\n cat. ", "tags": ["pet"]}
        >>> _ = (root / "lists" / "pairs.jsonl").write_text(json.dumps(row) + "\n\n")
        >>> [pair] = load_jsonl(root / "lists" / "pairs.jsonl", root=root)
        >>> pair.caption, pair.metadata
        ('A cat.', {'tags': ['pet'], 'relpath': 'cat.png'})
    """
    file = Path(path).expanduser()
    columns = (image_key, caption_key)

    def rows(handle: TextIO) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        number = 0
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            number += 1
            where = f"{file}, row {number} (line {line_no})"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidInputError(f"{where}: not valid JSON: {e}.") from e
            if not isinstance(obj, dict):
                raise InvalidInputError(
                    f"{where}: expected a JSON object, got {type(obj).__name__}."
                )
            for key, role in zip(columns, ("image_key", "caption_key"), strict=True):
                if key not in obj:
                    raise InvalidInputError(
                        f"{where}: no {key!r} key ({role}). Keys found: "
                        f"{', '.join(map(repr, obj)) or 'none'}."
                    )
            yield where, obj, {k: v for k, v in obj.items() if k not in columns}

    return _read_table(
        file,
        root,
        "load_jsonl",
        columns,
        rows,
        empty=f"{file}: the JSONL file holds no JSON objects.",
    )


# --------------------------------------------------------------------------------------------
# Tux Paint stamps
# --------------------------------------------------------------------------------------------


def load_tuxpaint_stamps(
    root: str | os.PathLike[str] = TUXPAINT_STAMPS_DIR, *, include_svg: bool = False
) -> list[Pair]:
    """Load the Tux Paint stamps: cut-out photos and drawings with a one-line English caption.

    Debian's ``tuxpaint-stamps-default`` installs them under ``/usr/share/tuxpaint/stamps``,
    one folder per category (``animals/marsupials/koala.png`` + ``koala.txt``). Each ``.txt``
    holds the English caption on its first line ("A koala.") and translations after it
    (``es.utf8=Un koala.``); only the English caption is used. Images without a ``.txt``
    (mirrored variants such as ``*_mirror.png``, a few Tux cartoons) are skipped. The installed
    package (2024.10) gives 785 PNG pairs in 16 categories.

    Args:
        root: The stamps folder.
        include_svg: Also load the SVG stamps (248 more, 83 of them the same stamp as a PNG).
            Note that PIL cannot open SVG files: render them first.

    Returns:
        The pairs, sorted by relative path. ``source`` is ``"tuxpaint"``; ``metadata`` holds
        ``category`` (top-level folder, e.g. ``"animals"``), ``subcategory`` (the folder path
        below it, ``""`` when the stamp sits directly in the category folder), ``relpath`` and
        ``format`` (``"png"`` or ``"svg"``).

    Raises:
        InvalidInputError: If the folder does not exist or holds no captioned stamps.

    Example:
        >>> pairs = load_tuxpaint_stamps()
        >>> koala = next(p for p in pairs if p.image.endswith("koala.png"))
        >>> koala.caption, koala.metadata["category"]
        ('A koala.', 'animals')
    """
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise InvalidInputError(
            f"Tux Paint stamps not found: {root_path} is not a folder. Install them with "
            "`apt-get install tuxpaint-stamps-default` (Debian/Ubuntu), or pass root=... "
            "pointing at an unpacked stamps folder."
        )
    root_path = root_path.resolve()
    exts = (".png", ".svg") if include_svg else (".png",)
    found: list[tuple[str, Pair]] = []
    skipped = 0
    for path, rel, caption in _captioned_images(
        root_path, exts, recursive=True, skip_translations=True
    ):
        if not caption:
            skipped += 1
            continue
        metadata: dict[str, Any] = {
            "category": rel.parts[0] if len(rel.parts) > 1 else "",
            "subcategory": "/".join(rel.parts[1:-1]),
            "relpath": rel.as_posix(),
            "format": path.suffix.lower().lstrip("."),
        }
        found.append((rel.as_posix(), Pair(str(path), caption, "tuxpaint", metadata)))
    if skipped:
        logger.info("load_tuxpaint_stamps: skipped %d stamp(s) without a caption.", skipped)
    if not found:
        raise InvalidInputError(
            f"No captioned Tux Paint stamps found in {root_path} (looked for "
            f"{' and '.join(exts)} files with a same-name .txt). Install them with "
            "`apt-get install tuxpaint-stamps-default`."
        )
    return _sorted_pairs(found)


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------


def _group_key(pair: Pair) -> Any:
    value = pair.metadata.get("category")
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _held_out_counts(sizes: list[int], fraction: float, rng: random.Random) -> list[int]:
    """How many pairs to hold out per group: each in [1, n - 1], totalling ~ sum * fraction.

    Largest-remainder apportionment; ties are broken by ``rng``. Groups of one pair get 0.
    """
    counts = [0] * len(sizes)
    eligible = [g for g, n in enumerate(sizes) if n >= 2]
    if not eligible:
        return counts
    quota = {g: sizes[g] * fraction for g in eligible}
    for g in eligible:
        counts[g] = min(max(math.floor(quota[g]), 1), sizes[g] - 1)
    tiebreak = {g: rng.random() for g in eligible}
    target = math.floor(sum(sizes[g] for g in eligible) * fraction + 0.5)
    # Clamp the target to what the per-group bounds allow.
    target = min(max(target, len(eligible)), sum(sizes[g] - 1 for g in eligible))
    missing = target - sum(counts)
    if missing > 0:  # give one more to the groups furthest below their quota
        grow = [g for g in eligible if counts[g] < sizes[g] - 1]
        grow.sort(key=lambda g: (counts[g] - quota[g], tiebreak[g]))
        while missing > 0:
            for g in grow:
                if missing and counts[g] < sizes[g] - 1:
                    counts[g] += 1
                    missing -= 1
    elif missing < 0:  # take one back from the groups furthest above their quota
        shrink = [g for g in eligible if counts[g] > 1]
        shrink.sort(key=lambda g: (quota[g] - counts[g], tiebreak[g]))
        while missing < 0:
            for g in shrink:
                if missing and counts[g] > 1:
                    counts[g] -= 1
                    missing += 1
    return counts


def split_pairs(
    pairs: Sequence[Pair], *, test_fraction: float = 0.5, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """Split pairs into anchors and held-out pairs, deterministically and stratified.

    Pairs are grouped by ``metadata["category"]`` (pairs without one form their own group).
    Every group of ``n >= 2`` pairs keeps at least one pair on each side, so each such category
    appears in both lists; a group of a single pair goes to the anchors. Within those bounds the
    held-out share of each group is as close to ``test_fraction`` as possible, and the held-out
    total is ``round(m * test_fraction)``, ``m`` being the number of pairs in groups of two or
    more (largest-remainder rounding). Which pairs are held out is drawn with
    ``random.Random(seed)``; both lists keep the input order.

    Args:
        pairs: The pairs to split.
        test_fraction: The share to hold out, in the open interval (0, 1).
        seed: The random seed; the same pairs and seed always give the same split.

    Returns:
        ``(anchors, held_out)``: disjoint lists whose union is the input.

    Raises:
        InvalidParameterError: If ``test_fraction`` is not in (0, 1) or ``seed`` is not an int.

    Example:
        >>> pairs = [Pair(f"/img/{i}.png", f"caption {i}", "demo", {"category": i % 2})
        ...          for i in range(6)]
        >>> anchors, held_out = split_pairs(pairs, test_fraction=0.5, seed=0)
        >>> len(anchors), len(held_out)
        (3, 3)
        >>> sorted({p.metadata["category"] for p in held_out})
        [0, 1]
    """
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, Real)
        or not 0 < test_fraction < 1
    ):
        raise InvalidParameterError(
            "The 'test_fraction' parameter of split_pairs must be a float in the open interval "
            f"(0, 1). Got {test_fraction!r} instead."
        )
    fraction = float(test_fraction)
    seed = check_int("seed", "split_pairs", seed)
    pairs = list(pairs)

    # Groups in order of first appearance: deterministic for a given input order.
    groups: dict[Any, list[int]] = {}
    for index, pair in enumerate(pairs):
        groups.setdefault(_group_key(pair), []).append(index)
    members = list(groups.values())

    rng = random.Random(seed)
    counts = _held_out_counts([len(m) for m in members], fraction, rng)
    held: set[int] = set()
    for group, n_test in zip(members, counts, strict=True):
        if n_test:
            held.update(rng.sample(group, n_test))

    anchors = [pair for i, pair in enumerate(pairs) if i not in held]
    held_out = [pair for i, pair in enumerate(pairs) if i in held]
    return anchors, held_out
