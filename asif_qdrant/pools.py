"""Ready-made anchor pools: the offline image-caption sets the evaluation measures, for anyone.

``asif-qdrant anchors add --pool tuxpaint,openclipart,emoji`` (or :func:`load_pool`) adds the
same 4,085 pairs as the evaluation's "tuxpaint+openclipart+emoji" pool, the best general model
that the offline data here allows (docs/RESULTS.md). Each pool, its source and licence:

==============  ===========================================================================
pool            what, where from, licence
==============  ===========================================================================
``tuxpaint``    the captioned Tux Paint stamps, one stamp per distinct caption (674): Debian
                ``tuxpaint-stamps-default``, GPL-2 (its ``copyright`` file)
``openclipart`` clip art captioned by its RDF title and keywords, junk titles filtered, one
                image per title, 1,500 spread evenly over the folders by default: Debian
                ``openclipart-png`` + ``openclipart-svg``, public domain (Creative Commons
                Public Domain Dedication, its ``copyright`` file)
``emoji``       Google's emoji PNGs captioned with their CLDR English name and keywords
                (1,911): npm ``emoji-datasource-google`` 16.0.0 (MIT, ``npm view``) and
                Debian ``unicode-cldr-core`` (Unicode-DFS-2016)
==============  ===========================================================================

Install them with ``apt-get install tuxpaint-stamps-default openclipart-png openclipart-svg
unicode-cldr-core`` and ``npm pack emoji-datasource-google@16.0.0`` unpacked into
:func:`default_emoji_dir` (``scripts/evaluate.sh`` does all of it).

Example:
    >>> sorted(POOLS)
    ['emoji', 'openclipart', 'tuxpaint']
    >>> parse_pools("tuxpaint, emoji")
    ['tuxpaint', 'emoji']
"""

from __future__ import annotations

import html
import json
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from asif_qdrant.errors import InvalidInputError, check_int
from asif_qdrant.loaders import TUXPAINT_STAMPS_DIR, Pair, load_tuxpaint_stamps

__all__ = [
    "CLDR_ANNOTATIONS",
    "OPENCLIPART_DIR",
    "OPENCLIPART_LIMIT",
    "POOLS",
    "default_emoji_dir",
    "even_subset",
    "load_emoji",
    "load_openclipart",
    "load_pool",
    "load_tuxpaint",
    "parse_pools",
]

#: Where Debian installs openclipart (``svg/`` and ``png/``).
OPENCLIPART_DIR = "/usr/share/openclipart"
#: CLDR English emoji annotations (Debian ``unicode-cldr-core``).
CLDR_ANNOTATIONS = "/usr/share/unicode/cldr/common/annotations/en.xml"
#: How many openclipart pairs the pool keeps by default (spread evenly; the evaluation's cap).
OPENCLIPART_LIMIT = 1500


def default_emoji_dir() -> Path:
    """Where ``emoji-datasource-google`` is unpacked (the evaluation's data folder).

    ``$ASIF_QDRANT_EVAL_DATA`` or ``$XDG_CACHE_HOME/asif-qdrant/eval-data`` (``~/.cache`` by
    default), then ``emoji-datasource-google``.

    Example:
        >>> default_emoji_dir().name
        'emoji-datasource-google'
    """
    given = os.environ.get("ASIF_QDRANT_EVAL_DATA")
    if given:
        return Path(given, "emoji-datasource-google")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "asif-qdrant", "eval-data", "emoji-datasource-google")


def even_subset(n: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over ``range(n)`` (all of them when ``limit`` is None).

    Example:
        >>> even_subset(10, 4)
        [0, 2, 5, 7]
    """
    if limit is None or limit >= n:
        return list(range(n))
    limit = check_int("limit", "even_subset", limit, minimum=0)
    return [i * n // limit for i in range(limit)]


def load_tuxpaint(directory: str | os.PathLike[str] = TUXPAINT_STAMPS_DIR) -> list[Pair]:
    """The Tux Paint stamps, one stamp per distinct caption (the first in path order)."""
    seen: set[str] = set()
    out = []
    for p in load_tuxpaint_stamps(directory):
        if p.caption not in seen:
            seen.add(p.caption)
            out.append(p)
    return out


# --------------------------------------------------------------------------------------------
# openclipart
# --------------------------------------------------------------------------------------------

_TITLE = re.compile(rb"<dc:title>(.*?)</dc:title>", re.S)
_SUBJECT = re.compile(rb"<dc:subject>(.*?)</dc:subject>", re.S)
_LI = re.compile(rb"<rdf:li>(.*?)</rdf:li>", re.S)
_JUNK_TITLE = re.compile(
    r"clipart by|collection|theme|iconset|icon set|hash\(|submission|sibmission|untitled|"
    r"^\W*$|^[\d\s_.-]+$",
    re.I,
)
_HEX = re.compile(r"^(0x)?[0-9a-f]{6,}$")
_GENERIC_KEYWORDS = frozenset(
    {
        "hash",
        "sign",
        "signs and symbols",
        "icon",
        "icons",
        "computer",
        "theme",
        "special",
        "signs_and_symbols",
        "action",
        "application",
        "clip",
        "art",
        "clipart",
        "image",
        "media",
        "png",
        "svg",
        "public",
        "domain",
        "externalsource",
        "unsorted",
    }
)
#: A title used by more files than this is a collection name, not a caption.
OPENCLIPART_MAX_TITLE_USES = 3


def _clean(text: str) -> str:
    text = html.unescape(text).replace("_", " ")
    return " ".join(text.split()).strip(" -")


def _openclipart_records(svg_root: Path) -> list[tuple[str, str, list[str], str]]:
    """``(relative svg path, title, keywords, category)`` of every SVG, sorted by path."""
    out = []
    for dirpath, dirnames, filenames in os.walk(svg_root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(".svg"):
                continue
            path = Path(dirpath, name)
            try:
                raw = path.read_bytes()
            except OSError:
                continue
            m = _TITLE.search(raw)
            title = _clean(m.group(1).decode("utf-8", "replace")) if m else ""
            subj = _SUBJECT.search(raw)
            keywords = []
            if subj:
                for li in _LI.findall(subj.group(1)):
                    kw = _clean(li.decode("utf-8", "replace")).lower()
                    if kw and len(kw) > 2 and kw not in _GENERIC_KEYWORDS and not _HEX.match(kw):
                        keywords.append(kw)
            rel = path.relative_to(svg_root)
            out.append(
                (rel.as_posix(), title, keywords, rel.parts[0] if len(rel.parts) > 1 else "")
            )
    return out


def _decodable(path: Path) -> bool:
    """Whether PIL will decode the image: a readable header, within the decompression guard."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except Exception:
        return False
    limit = Image.MAX_IMAGE_PIXELS
    return limit is None or w * h <= limit


def load_openclipart(
    directory: str | os.PathLike[str] = OPENCLIPART_DIR, *, limit: int | None = OPENCLIPART_LIMIT
) -> list[Pair]:
    """Openclipart images captioned by their RDF title (and up to 4 keywords).

    Args:
        directory: The openclipart root, holding ``svg/`` and ``png/``.
        limit: Keep this many, spread evenly over the sorted paths (so every folder is
            represented); ``None`` keeps all (~3k).

    Returns:
        One pair per distinct (case-insensitive) title; the image is the PNG at the same
        relative path as the SVG; ``metadata["category"]`` is the top-level folder.

    Raises:
        InvalidInputError: If the packages are not installed.
    """
    svg_root, png_root = Path(directory) / "svg", Path(directory) / "png"
    if not svg_root.is_dir() or not png_root.is_dir():
        raise InvalidInputError(
            f"openclipart is not installed ({svg_root}, {png_root}): apt-get install "
            "openclipart-svg openclipart-png."
        )
    records = _openclipart_records(svg_root)
    uses = Counter(r[1].lower() for r in records)
    seen: set[str] = set()
    out = []
    for rel, title, keywords, cat in records:
        key = title.lower()
        if not title or _JUNK_TITLE.search(title) or uses[key] > OPENCLIPART_MAX_TITLE_USES:
            continue
        if key in seen:
            continue
        png = png_root / (rel[: -len(".svg")] + ".png")
        if not png.is_file() or not _decodable(png):
            continue
        seen.add(key)
        extra = [k for k in dict.fromkeys(keywords) if k not in key][:4]
        caption = title[0].upper() + title[1:]
        if extra:
            caption += f" ({', '.join(extra)})"
        out.append(Pair(str(png), caption, "openclipart", {"category": cat}))
    return [out[i] for i in even_subset(len(out), limit)]


# --------------------------------------------------------------------------------------------
# emoji
# --------------------------------------------------------------------------------------------


def _cldr_annotations(paths: Sequence[Path]) -> dict[str, tuple[str, list[str]]]:
    """``{emoji: (name, keywords)}`` from CLDR annotation files (later files fill gaps)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for path in paths:
        if not path.is_file():
            continue
        root = ET.parse(path).getroot()
        names: dict[str, str] = {}
        keywords: dict[str, list[str]] = {}
        for node in root.iter("annotation"):
            cp, text = node.get("cp"), (node.text or "").strip()
            if not cp or not text:
                continue
            if node.get("type") == "tts":
                names[cp] = text
            else:
                keywords[cp] = [k.strip() for k in text.split("|") if k.strip()]
        for cp in set(names) | set(keywords):
            if cp not in out:
                out[cp] = (names.get(cp, ""), keywords.get(cp, []))
    return out


def load_emoji(
    directory: str | os.PathLike[str] | None = None,
    *,
    cldr_annotations: str | os.PathLike[str] = CLDR_ANNOTATIONS,
    limit: int | None = None,
) -> list[Pair]:
    """Google's emoji images captioned with their CLDR English name and keywords.

    Args:
        directory: Where ``emoji-datasource-google`` was unpacked (default:
            :func:`default_emoji_dir`).
        cldr_annotations: CLDR's ``annotations/en.xml`` (``annotationsDerived`` next to it is
            read too).
        limit: Keep this many, spread evenly over the emoji order.

    Returns:
        The pairs (64 px RGBA PNGs); ``metadata["category"]`` is the emoji group.

    Raises:
        InvalidInputError: If the emoji package is missing.
    """
    root = Path(directory) if directory is not None else default_emoji_dir()
    meta = root / "emoji.json"
    if not meta.is_file():
        raise InvalidInputError(
            f"emoji-datasource-google is not unpacked at {root}: run `npm pack "
            "emoji-datasource-google@16.0.0` and unpack it there (scripts/evaluate.sh does)."
        )
    cldr_file = Path(cldr_annotations)
    cldr = _cldr_annotations(
        [cldr_file, cldr_file.parent.parent / "annotationsDerived" / cldr_file.name]
    )
    entries = sorted(json.loads(meta.read_text("utf-8")), key=lambda e: e.get("sort_order", 0))
    out = []
    seen: set[str] = set()
    for e in entries:
        png = root / "img" / "google" / "64" / e["image"]
        if not e.get("has_img_google", True) or not png.is_file():
            continue
        chars = "".join(chr(int(h, 16)) for h in e["unified"].split("-"))
        name, keywords = cldr.get(chars) or cldr.get(chars.replace("\ufe0f", "")) or ("", [])
        if not name:
            name = (e.get("name") or e.get("short_name") or "").lower()
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        extra = [k for k in keywords if k.lower() not in name.lower()][:4]
        caption = name + (f" ({', '.join(extra)})" if extra else "")
        out.append(Pair(str(png), caption, "emoji", {"category": str(e.get("category", ""))}))
    return [out[i] for i in even_subset(len(out), limit)]


#: Pool loaders by name (each takes its default location).
POOLS: dict[str, Callable[[], list[Pair]]] = {
    "tuxpaint": load_tuxpaint,
    "openclipart": load_openclipart,
    "emoji": load_emoji,
}


def parse_pools(value: str | Sequence[str]) -> list[str]:
    """Pool names from ``"a,b"`` (or a list), validated, in order, without repeats.

    Raises:
        InvalidInputError: On an unknown name (the message lists the pools).
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = list(dict.fromkeys(p.strip() for p in parts if p.strip()))
    unknown = [n for n in names if n not in POOLS]
    if unknown or not names:
        raise InvalidInputError(
            f"Unknown anchor pool(s) {', '.join(map(repr, unknown)) or '(none given)'}; the "
            f"pools are {', '.join(sorted(POOLS))} (comma-separated, e.g. "
            "'tuxpaint,openclipart,emoji')."
        )
    return names


def load_pool(names: str | Sequence[str]) -> list[Pair]:
    """The pairs of several pools, concatenated in the given order (``metadata["pool"]`` set).

    ``load_pool("tuxpaint,openclipart,emoji")`` is the evaluation's 4,085-pair pool.
    """
    out = []
    for name in parse_pools(names):
        for p in POOLS[name]():
            out.append(Pair(p.image, p.caption, p.source, {**p.metadata, "pool": name}))
    return out
