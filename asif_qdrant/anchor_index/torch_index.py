"""Exact top-k with torch: a ``float32`` anchor matrix on a device (CUDA when present).

On a GPU the whole product and ``torch.topk`` run on the device: a million anchors fit in
1.5 GB of GPU memory and a batch is a single matmul. On a CPU it works too (blocked), but the
numpy :class:`~asif_qdrant.anchor_index.ExactIndex` is usually faster there. TF32 is not used,
so the similarities are ``float32`` dot products.

Example:
    >>> import numpy as np
    >>> from asif_qdrant.anchor_index import TorchIndex
    >>> index = TorchIndex(device="cpu").build([4, 5, 6], np.eye(3))
    >>> ids, sims = index.topk(np.array([[0.0, 0.0, 1.0]]), k=1)
    >>> ids.tolist(), index.device
    ([[6]], 'cpu')
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from asif_qdrant.anchor_index.base import AnchorIndex
from asif_qdrant.errors import InvalidInputError, InvalidParameterError

__all__ = ["TorchIndex", "cuda_available", "streaming_topk"]

_Q_CHUNK = 1024
#: Files whose absence means torch can see no GPU (NVIDIA's driver, AMD's ROCm kernel driver).
_GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")


def _torch() -> Any:
    import torch

    return torch


def cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device (never raises).

    Example:
        >>> isinstance(cuda_available(), bool)
        True
    """
    if "torch" not in sys.modules and not any(os.path.exists(p) for p in _GPU_DRIVER_FILES):
        return False  # no GPU driver: skip importing torch (seconds) just to hear "no"
    try:
        return bool(_torch().cuda.is_available())
    except Exception:  # torch missing or broken
        return False


def streaming_topk(blocks: Iterable[tuple[int, Any]], k: int) -> tuple[Any, Any]:
    """The ``k`` best scores of each row over blocks of columns, merged as they come (torch).

    Args:
        blocks: ``(first column, scores)`` pairs: ``(m, width)`` score tensors of consecutive
            column ranges, in any order.
        k: Scores kept per row (at most the number of columns seen).

    Returns:
        ``(values, columns)``: ``(m, k)`` tensors, best first.

    Example:
        >>> import torch
        >>> s = torch.tensor([[0.125, 0.875, 0.25, 0.75]])
        >>> values, cols = streaming_topk([(0, s[:, :2]), (2, s[:, 2:])], 2)
        >>> cols.tolist(), values.tolist()
        ([[1, 3]], [[0.875, 0.75]])
    """
    torch = _torch()
    best_s: Any = None
    best_r: Any = None
    for start, sims in blocks:
        top = torch.topk(sims, min(k, sims.shape[1]), dim=1)
        rows = top.indices + start
        if best_s is None:
            best_s, best_r = top.values, rows
        else:
            cat_s = torch.cat([best_s, top.values], dim=1)
            keep = torch.topk(cat_s, k, dim=1)
            best_r = torch.gather(torch.cat([best_r, rows], dim=1), 1, keep.indices)
            best_s = keep.values
    return best_s, best_r


class TorchIndex(AnchorIndex):
    """Exact cosine top-k with torch on ``device`` (default: CUDA if available, else CPU).

    Args:
        device: A torch device string; ``None`` picks ``"cuda"`` when available.
        block_rows: Anchor rows per product on the CPU (bounds the temporary memory).
    """

    method = "torch"
    exact = True

    def __init__(self, *, device: str | None = None, block_rows: int = 262144) -> None:
        super().__init__()
        torch = _torch()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            torch.empty(1, device=self.device)
        except Exception as e:
            raise InvalidParameterError(
                f"The 'device' parameter of TorchIndex must be a usable torch device. "
                f"Got {device!r}: {e}"
            ) from e
        self.block_rows = block_rows
        self._vecs: Any = None
        self._ids = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    def _build(self, ids: np.ndarray, emb: np.ndarray) -> None:
        torch = _torch()
        self._vecs = torch.from_numpy(emb).to(self.device)
        self._ids = ids.copy()

    def _add(self, ids: np.ndarray, emb: np.ndarray) -> None:
        torch = _torch()
        if np.isin(ids, self._ids).any():
            dup = int(ids[np.isin(ids, self._ids)][0])
            raise InvalidInputError(f"Anchor id {dup} is already in the index; ids must be new.")
        self._vecs = torch.cat([self._vecs, torch.from_numpy(emb).to(self.device)])
        self._ids = np.concatenate([self._ids, ids])

    def _delete(self, ids: np.ndarray) -> int:
        torch = _torch()
        hit = np.isin(self._ids, ids)
        if not hit.any():
            return 0
        keep = torch.from_numpy(np.flatnonzero(~hit)).to(self.device)
        self._vecs = self._vecs.index_select(0, keep)
        self._ids = self._ids[~hit]
        return int(hit.sum())

    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        torch = _torch()
        out_r = np.empty((len(q), kk), dtype=np.int64)
        out_s = np.empty((len(q), kk), dtype=np.float32)
        n = len(self._ids)
        on_gpu = self.device != "cpu"
        block = n if on_gpu else self.block_rows
        with torch.no_grad():
            for q0 in range(0, len(q), _Q_CHUNK):
                qt = torch.from_numpy(q[q0 : q0 + _Q_CHUNK]).to(self.device)
                best_s, best_r = streaming_topk(
                    ((a0, qt @ self._vecs[a0 : a0 + block].T) for a0 in range(0, n, block)), kk
                )
                out_r[q0 : q0 + len(qt)] = best_r.cpu().numpy()
                out_s[q0 : q0 + len(qt)] = best_s.cpu().numpy()
        return self._ids[out_r], out_s

    def synchronize(self) -> None:
        """Wait for queued device work (for timing)."""
        if self.device != "cpu":
            _torch().cuda.synchronize()

    def memory_bytes(self) -> int:
        """Bytes of the anchor matrix (on the device)."""
        if self._vecs is None:
            return 0
        return int(self._vecs.numel() * self._vecs.element_size())

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {**super().describe(), "device": self.device}
