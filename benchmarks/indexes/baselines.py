"""The two honest brute-force baselines every benchmark compares against, in the same run.

Both hold the anchors normalised ONCE (at :meth:`build`, as every index here does) and scan
all of them on every call; neither is approximate. They are what a user would run instead of
this library:

* ``"official"`` (:class:`OfficialIndex`): the recipe of the official ASIF code
  (Norelli et al., *ASIF: Coupled Data Turns Unimodal Models to Multimodal Without
  Training*, NeurIPS 2023; https://github.com/noranta4/ASIF, ``relreps.py`` at commit
  ``c5378b1``). ``relreps.relative_represent(y, basis, non_zeros)`` takes
  ``torch.einsum('ik, jk -> ij', y, basis)`` then ``torch.topk(in_prods, non_zeros, dim=1)``;
  ``relreps.zero_shot_classification`` calls it on chunks of ``dic_size = 100_000`` anchors
  and after each chunk keeps ``torch.topk`` of the running top-k and the chunk's top-k (the
  anchors were normalised once, by ``relreps.MemoryTensor(normalized=True)``). Here the
  anchor chunk is fixed at :data:`OFFICIAL_CHUNK` = 100,000 rows (the official default
  ``dic_size``; its query chunking by GPU memory never splits a batch of 64 queries), the
  merge is :func:`asif_qdrant.anchor_index.torch_index.streaming_topk` (the same two
  ``topk`` steps), on the CPU unless ``device`` says otherwise.
* ``"numpy"`` (:class:`NumpyIndex`): the plain numpy recipe: ``q @ A.T`` (BLAS ``sgemm``),
  ``np.argpartition`` for the ``k`` best of each row, ``np.argsort`` of those ``k``. Queries
  are processed in chunks only so that one similarity block stays under
  :data:`NUMPY_BLOCK_BYTES` (at 1M anchors: 64 queries per block, so a batch of 64 is one
  product).

Example:
    >>> import numpy as np
    >>> from benchmarks.indexes import NumpyIndex, OfficialIndex
    >>> x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    >>> [index.build([7, 8, 9], x).topk([[0.1, 1.0]], k=2)[0].tolist()
    ...  for index in (OfficialIndex(chunk=2), NumpyIndex())]
    [[[9, 8]], [[9, 8]]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from asif_qdrant.anchor_index.exact import RowStoreIndex
from asif_qdrant.anchor_index.torch_index import streaming_topk
from asif_qdrant.errors import check_int

__all__ = ["NUMPY_BLOCK_BYTES", "OFFICIAL_CHUNK", "NumpyIndex", "OfficialIndex"]

#: Anchor rows per ``einsum`` + ``topk`` step of the official recipe (its ``dic_size``).
OFFICIAL_CHUNK = 100_000
#: Largest similarity block (queries x anchors, float32) of the numpy recipe.
NUMPY_BLOCK_BYTES = 256 * 1024**2


class OfficialIndex(RowStoreIndex):
    """The official ASIF code's recipe: per anchor chunk ``einsum`` + ``topk``, then merged.

    Args:
        chunk: Anchor rows per step (default :data:`OFFICIAL_CHUNK`, the official
            ``dic_size``).
        device: torch device of the anchors and the products (default ``"cpu"``).
    """

    method = "official"
    exact = True

    def __init__(self, *, chunk: int = OFFICIAL_CHUNK, device: str | None = None) -> None:
        super().__init__()
        self.chunk = check_int("chunk", "OfficialIndex", chunk, minimum=1)
        self.device = device or "cpu"
        self._tensor: Any = None
        self._version = -1

    def _anchors(self) -> Any:
        """The unit anchor rows as a torch tensor on the device (shared memory on the CPU)."""
        import torch

        assert self.rows is not None
        if self._version != self.rows.version:
            self._tensor = torch.from_numpy(self.rows.vecs).to(self.device)
            self._version = self.rows.version
        return self._tensor

    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        assert self.rows is not None
        basis = self._anchors()
        with torch.no_grad():
            y = torch.from_numpy(q).to(self.device)
            blocks = (
                (s, torch.einsum("ik, jk -> ij", y, basis[s : s + self.chunk]))
                for s in range(0, len(basis), self.chunk)
            )
            values, rows = streaming_topk(blocks, kk)
        sims = values.cpu().numpy()
        return self.rows.ids[rows.cpu().numpy()], sims

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "chunk": self.chunk, "device": self.device}


class NumpyIndex(RowStoreIndex):
    """Plain numpy: ``q @ A.T`` + ``argpartition`` + ``argsort`` of the ``k`` kept."""

    method = "numpy"
    exact = True

    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.rows is not None
        mat = self.rows.vecs
        n = len(mat)
        step = max(1, NUMPY_BLOCK_BYTES // (4 * n))
        out_r = np.empty((len(q), kk), dtype=np.int64)
        out_s = np.empty((len(q), kk), dtype=np.float32)
        for q0 in range(0, len(q), step):
            sims = q[q0 : q0 + step] @ mat.T
            if kk < n:
                part = np.argpartition(sims, n - kk, axis=1)[:, n - kk :]
            else:
                part = np.broadcast_to(np.arange(n), sims.shape)
            top = np.take_along_axis(sims, part, axis=1)
            order = np.argsort(-top, axis=1, kind="stable")
            out_r[q0 : q0 + step] = np.take_along_axis(part, order, axis=1)
            out_s[q0 : q0 + step] = np.take_along_axis(top, order, axis=1)
        return self.rows.ids[out_r], out_s
