"""An on-disk embedding cache keyed by (encoder name, content hash), and an encoder that uses it.

Encoding thousands of images on a CPU takes minutes; every sweep of the evaluation reuses the
same embeddings. :class:`EmbeddingCache` keeps one ``float32`` vector per (encoder name,
content hash) in a SQLite file. The content hash is the SHA-256 of the image file's bytes (so
a renamed or moved file still hits, and an edited one misses), of an array's dtype, shape and
bytes, or of a text's UTF-8 bytes.

:class:`CachedEncoder` wraps an encoder (loaded lazily, only when something is missing) and
implements the :class:`~asif_qdrant.encoders.Encoder` Protocol, so it can be handed to
:class:`~asif_qdrant.ASIF` itself: the prompts that ``ASIF.classify`` encodes come from the
cache too.

Example:
    >>> import tempfile, numpy as np
    >>> from asif_qdrant_evaluation.cache import CachedEncoder, EmbeddingCache
    >>> class Lengths:  # a tiny text encoder
    ...     name, dim, calls = "lengths", 2, 0
    ...     def embed(self, batch, *, batch_size=32, show_progress_bar=None):
    ...         Lengths.calls += len(batch)
    ...         x = np.array([[len(t), 1.0] for t in batch], dtype=np.float32)
    ...         return x / np.linalg.norm(x, axis=1, keepdims=True)
    >>> cache = EmbeddingCache(tempfile.mkdtemp())
    >>> enc = CachedEncoder("lengths", "text", cache, loader=Lengths, dim=2)
    >>> a = enc.embed(["a cat", "a dog"])
    >>> b = enc.embed(["a dog", "a cat", "a cow"])  # two hits, one miss
    >>> Lengths.calls, bool(np.array_equal(a[0], b[1]))
    (3, True)
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from asif_qdrant.errors import InvalidInputError, InvalidParameterError
from asif_qdrant.progress import progress_bar

__all__ = [
    "CachedEncoder",
    "EmbeddingCache",
    "content_hash",
    "default_cache_dir",
    "user_cache_dir",
]

Modality = Literal["image", "text"]
_BATCH = 500  # keys per SQL statement (SQLite allows 999 parameters on old builds)
_CHUNK = 256  # inputs encoded (and stored) at a time


def user_cache_dir(env: str, *parts: str) -> Path:
    """``$env`` when set, else ``$XDG_CACHE_HOME/asif-qdrant/<parts>`` (``~/.cache`` by default).

    Example:
        >>> user_cache_dir("NO_SUCH_VARIABLE_SET", "x").parts[-2:]
        ('asif-qdrant', 'x')
    """
    given = os.environ.get(env)
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "asif-qdrant", *parts)


def default_cache_dir() -> Path:
    """``$ASIF_QDRANT_CACHE`` or ``$XDG_CACHE_HOME/asif-qdrant`` (default ``~/.cache/asif-qdrant``).

    Example:
        >>> default_cache_dir().name in ("asif-qdrant", os.environ.get("ASIF_QDRANT_CACHE", ""))
        True
    """
    return user_cache_dir("ASIF_QDRANT_CACHE")


def content_hash(item: Any, modality: Modality) -> str:
    """The cache key of one input: a SHA-256 hex digest of its content.

    Args:
        item: A text (``str``) for the text modality; for images a file path (``str`` or
            ``os.PathLike``: the file's bytes are hashed), encoded bytes, or a numpy array
            (dtype, shape and bytes are hashed).
        modality: ``"image"`` or ``"text"``.

    Returns:
        A hex digest prefixed with the kind of content (``bytes:``, ``array:`` or
        ``text:``); a file and its bytes hash the same.

    Raises:
        InvalidInputError: For inputs that cannot be hashed (a PIL image, a missing file).

    Example:
        >>> content_hash("a cat", "text")[:12]
        'text:51e4674'
        >>> a = np.zeros((2, 2), np.uint8)
        >>> content_hash(a, "image") == content_hash(a.copy(), "image")
        True
    """
    h = hashlib.sha256()
    if modality == "text":
        if not isinstance(item, str):
            raise InvalidInputError(f"A text must be a str. Got {type(item).__name__}.")
        h.update(item.encode("utf-8"))
        return "text:" + h.hexdigest()[:56]
    if isinstance(item, (str, os.PathLike)):
        try:
            with open(item, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError as e:
            raise InvalidInputError(f"Cannot read the image file {item}: {e}.") from e
        return "bytes:" + h.hexdigest()[:56]
    if isinstance(item, (bytes, bytearray, memoryview)):
        h.update(bytes(item))
        return "bytes:" + h.hexdigest()[:56]
    if isinstance(item, np.ndarray):
        arr = np.ascontiguousarray(item)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
        return "array:" + h.hexdigest()[:56]
    raise InvalidInputError(
        "The embedding cache hashes image files (paths), encoded bytes and numpy arrays. "
        f"Got {type(item).__name__}."
    )


class EmbeddingCache:
    """Embeddings on disk, one ``float32`` vector per (encoder name, content hash).

    Args:
        directory: The cache folder (created if missing); the data is ``embeddings.sqlite``.

    Example:
        >>> import tempfile
        >>> cache = EmbeddingCache(tempfile.mkdtemp())
        >>> cache.put("enc", ["k1"], np.ones((1, 3), np.float32))
        >>> cache.get("enc", ["k1", "k2"])[0].tolist(), cache.get("enc", ["k2"])[0]
        ([1.0, 1.0, 1.0], None)
        >>> cache.count("enc")
        1
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "embeddings.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS emb (encoder TEXT NOT NULL, key TEXT NOT NULL, "
                "dim INTEGER NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (encoder, key))"
            )

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r})"

    def get(self, encoder: str, keys: Sequence[str]) -> list[np.ndarray | None]:
        """The cached vectors of ``keys`` (``None`` where missing), in order."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), _BATCH):
                chunk = unique[start : start + _BATCH]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, dim, vec FROM emb WHERE encoder = ? AND key IN ({marks})",
                    [encoder, *chunk],
                ).fetchall()
                for key, dim, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.size == dim:
                        found[key] = vec
        return [found.get(k) for k in keys]

    def put(self, encoder: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors`` (one row per key) under ``encoder``."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(keys):
            raise InvalidInputError(
                f"put needs one vector row per key ({len(keys)}). Got shape {vecs.shape}."
            )
        rows = [
            (encoder, k, int(v.size), np.ascontiguousarray(v).tobytes())
            for k, v in zip(keys, vecs, strict=True)
        ]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?)", rows)

    def count(self, encoder: str | None = None) -> int:
        """How many vectors are cached (for one encoder, or in all)."""
        with self._lock:
            if encoder is None:
                return int(self._db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])
            return int(
                self._db.execute(
                    "SELECT COUNT(*) FROM emb WHERE encoder = ?", [encoder]
                ).fetchone()[0]
            )

    def dim(self, encoder: str) -> int | None:
        """The dimension of ``encoder``'s cached vectors, if any is cached."""
        with self._lock:
            row = self._db.execute("SELECT dim FROM emb WHERE encoder = ? LIMIT 1", [encoder])
            got = row.fetchone()
        return None if got is None else int(got[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class CachedEncoder:
    """An :class:`~asif_qdrant.encoders.Encoder` that looks every input up in a cache first.

    The wrapped encoder is built by ``loader()`` the first time an input is missing, so a
    fully cached run never loads a model.

    Args:
        name: The encoder's canonical name (the cache key and what ASIF's fingerprint records).
        modality: ``"image"`` or ``"text"``.
        cache: The embedding cache.
        loader: Builds the real encoder (called at most once).
        dim: The embedding dimension, when known without loading the model (vectors already
            in the cache take precedence).
        batch_size: Batch size of the real encoder.
        show_progress_bar: Progress bars while encoding missing inputs.

    Attributes:
        hits: Inputs answered from the cache so far.
        misses: Inputs encoded so far.
        encode_seconds: Wall time spent encoding misses (model loading included).
    """

    def __init__(
        self,
        name: str,
        modality: Modality,
        cache: EmbeddingCache,
        *,
        loader: Callable[[], Any],
        dim: int | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> None:
        if modality not in ("image", "text"):
            raise InvalidParameterError(
                "The 'modality' parameter of CachedEncoder must be 'image' or 'text'. "
                f"Got {modality!r} instead."
            )
        self.name = name
        self.modality: Modality = modality
        self.cache = cache
        self._loader = loader
        self._dim: int | None = None
        self._known_dim = dim
        self._inner: Any = None
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.hits = 0
        self.misses = 0
        self.encode_seconds = 0.0

    def __repr__(self) -> str:
        return f"CachedEncoder({self.name!r}, {self.modality!r}, {self.cache!r})"

    @property
    def inner(self) -> Any:
        """The real encoder (loaded on first access, unless :meth:`use` gave one)."""
        if self._inner is None:
            self._inner = self._loader()
        return self._inner

    def use(self, encoder: Any) -> None:
        """Encode misses with this already loaded encoder (of the same name) instead of loading.

        Raises:
            InvalidParameterError: If the encoder's ``name`` is another one.
        """
        if encoder.name != self.name:
            raise InvalidParameterError(
                f"The encoder given for {self.name!r} is {encoder.name!r}; expected {self.name!r}."
            )
        self._inner = encoder
        self._dim = int(encoder.dim)

    @property
    def dim(self) -> int:
        """The embedding dimension: of the cached vectors, else as given, else the model's."""
        if self._dim is None:
            self._dim = self.cache.dim(self.name) or self._known_dim or int(self.inner.dim)
        return self._dim

    def keys(self, batch: Sequence[Any]) -> list[str]:
        """The cache keys of ``batch``."""
        return [content_hash(x, self.modality) for x in batch]

    def embed(
        self,
        batch: Sequence[Any],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
    ) -> np.ndarray:
        """Embeddings of ``batch``: cached ones read back, missing ones encoded and stored."""
        import time

        batch = list(batch)
        keys = self.keys(batch)
        got = self.cache.get(self.name, keys)
        missing = [i for i, v in enumerate(got) if v is None]
        self.hits += len(batch) - len(missing)
        if missing:
            # Identical inputs in one batch are encoded once.
            first: dict[str, int] = {}
            for i in missing:
                first.setdefault(keys[i], i)
            todo = list(first.values())
            spb = self.show_progress_bar if show_progress_bar is None else show_progress_bar
            by_key: dict[str, np.ndarray] = {}
            # Stored chunk by chunk: an interrupted run keeps what it encoded.
            with progress_bar(
                total=len(todo),
                desc=f"Encoding ({self.name})",
                unit=self.modality,
                show=bool(spb) and len(todo) > _CHUNK,
            ) as bar:
                for start in range(0, len(todo), _CHUNK):
                    part = todo[start : start + _CHUNK]
                    t0 = time.perf_counter()
                    emb = np.asarray(
                        self.inner.embed(
                            [batch[i] for i in part],
                            batch_size=batch_size or self.batch_size,
                            show_progress_bar=bool(spb) and len(todo) <= _CHUNK,
                        ),
                        dtype=np.float32,
                    )
                    self.encode_seconds += time.perf_counter() - t0
                    self.misses += len(part)
                    self.cache.put(self.name, [keys[i] for i in part], emb)
                    by_key.update({keys[i]: emb[j] for j, i in enumerate(part)})
                    bar.update(len(part))
            for i in missing:
                got[i] = by_key[keys[i]]
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        out = np.stack([np.asarray(v, dtype=np.float32) for v in got])  # type: ignore[arg-type]
        if self._dim is None:
            self._dim = out.shape[1]
        return out
