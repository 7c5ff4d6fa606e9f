"""Concurrent use of one :class:`~asif_qdrant.ASIF` object from several threads.

Every public method of ``ASIF`` carries one decorator line, :func:`locked`, that takes the
object's :class:`ReadWriteLock`:

* ``"read"``: searches, embeddings, explanations, listing. Any number run at once.
* ``"write"``: anchor edits (add, delete), indexing, re-indexing, ``close``. One at a time,
  and no reader runs meanwhile. A reader therefore sees the model entirely before or
  entirely after an edit, never half of one: an edit (anchor writes, fingerprint, every
  catalog re-computation) happens while no reader holds the lock.
* ``"cache"``: a reader that may also fill a cache in the store (zero-shot classification
  stores its prompt vectors in a label collection). It runs beside plain readers but one
  at a time with other ``"cache"`` calls, so that two of them never build the same cache
  collection at once.

Writers go first: once a writer waits, new readers wait behind it (a stream of searches
cannot starve an edit). Both locks are re-entrant within a thread: a writer may call
readers and writers (``add_anchors`` calls ``add_anchor_embeddings``), a reader may call
readers (``search`` calls ``search_batch``). A reader that calls a writer is a programming
error and raises ``RuntimeError`` at once instead of dead-locking.

The lock lives in one process. What holds across processes is in docs/RELIABILITY.md.

Example:
    >>> lock = ReadWriteLock()
    >>> with lock.read(), lock.read():  # re-entrant
    ...     lock.readers
    1
    >>> with lock.write(), lock.read():  # a writer may read
    ...     lock.writer_active
    True
    >>> with lock.read():
    ...     try:
    ...         with lock.write():
    ...             pass
    ...     except RuntimeError as e:
    ...         print(str(e)[:40])
    A thread holding the read lock cannot ta
"""

from __future__ import annotations

import functools
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

__all__ = ["LockMode", "ReadWriteLock", "locked"]

F = TypeVar("F", bound=Callable[..., Any])
LockMode = Literal["read", "write", "cache"]

#: The attribute of the decorated object that holds its lock (created in ``ASIF.__init__``).
LOCK_ATTRIBUTE = "_rw_lock"


class ReadWriteLock:
    """Many readers or one writer, writers first, re-entrant per thread.

    Attributes:
        cache_lock: A re-entrant mutex that ``"cache"`` calls hold besides the read lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers: dict[int, int] = {}  # thread id -> depth
        self._writer: int | None = None
        self._writer_depth = 0
        self._writers_waiting = 0
        self.cache_lock = threading.RLock()

    @property
    def readers(self) -> int:
        """Threads holding the read lock now."""
        with self._cond:
            return len(self._readers)

    @property
    def writer_active(self) -> bool:
        """Whether a thread holds the write lock now."""
        with self._cond:
            return self._writer is not None

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the read lock (shared) for the ``with`` block."""
        me = threading.get_ident()
        with self._cond:
            if self._writer == me or me in self._readers:
                pass  # re-entrant: never wait on ourselves
            else:
                while self._writer is not None or self._writers_waiting:
                    self._cond.wait()
            self._readers[me] = self._readers.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                depth = self._readers[me] - 1
                if depth:
                    self._readers[me] = depth
                else:
                    del self._readers[me]
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the write lock (exclusive) for the ``with`` block."""
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._writer_depth += 1
            else:
                if me in self._readers:
                    raise RuntimeError(
                        "A thread holding the read lock cannot take the write lock (it would "
                        "wait for itself): call the editing method outside the reading one."
                    )
                self._writers_waiting += 1
                try:
                    while self._writer is not None or self._readers:
                        self._cond.wait()
                finally:
                    self._writers_waiting -= 1
                self._writer = me
                self._writer_depth = 1
        try:
            yield
        finally:
            with self._cond:
                self._writer_depth -= 1
                if not self._writer_depth:
                    self._writer = None
                    self._cond.notify_all()


def _run_locked(mode: LockMode, fn: Callable[..., Any], obj: Any, args: Any, kw: Any) -> Any:
    lock: ReadWriteLock | None = getattr(obj, LOCK_ATTRIBUTE, None)
    if lock is None:  # an object built without __init__ (or while it runs)
        return fn(obj, *args, **kw)
    if mode == "write":
        with lock.write():
            return fn(obj, *args, **kw)
    if mode == "cache":
        with lock.read(), lock.cache_lock:
            return fn(obj, *args, **kw)
    with lock.read():
        return fn(obj, *args, **kw)


def locked(mode: LockMode) -> Callable[[F], F]:
    """Decorate a method so that it runs under its object's lock in ``mode``.

    The object's lock is its ``_rw_lock`` attribute; without one the method runs unlocked.
    The wrapper keeps the method's name, docstring and signature, and belongs to the
    method's module (so that doctest still finds and runs the method's example).

    Example:
        >>> class Box:
        ...     def __init__(self):
        ...         self._rw_lock = ReadWriteLock()
        ...         self.value = 0
        ...     @locked("write")
        ...     def bump(self):
        ...         "Add one."
        ...         self.value += 1
        ...         return self.value
        >>> Box().bump(), Box.bump.__doc__
        (1, 'Add one.')
    """
    if mode not in ("read", "write", "cache"):
        raise ValueError(f"mode must be 'read', 'write' or 'cache'. Got {mode!r} instead.")

    def decorate(fn: F) -> F:
        run = _run_locked

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            return run(mode, fn, self, args, kwargs)

        # The same code, with the method's module globals: doctest collects a class's
        # methods only when they belong to its module. The body uses closure variables only.
        func = types.FunctionType(
            wrapper.__code__, fn.__globals__, fn.__name__, None, wrapper.__closure__
        )
        func = functools.update_wrapper(func, fn)
        func.__lock_mode__ = mode  # type: ignore[attr-defined]
        return func  # type: ignore[return-value]

    return decorate
