"""Reduced-precision coarse scan + exact rescoring of an oversampled candidate set.

The anchors are kept twice: as ``float32`` (for the exact rescoring) and as compact codes that
a full scan reads quickly:

* ``"int8"``: per-row symmetric 8-bit codes, scanned with an int8 x int8 -> int32 product
  (``torch._int_mm``, VNNI on CPUs that have it); 4x less memory traffic than ``float32``.
* ``"bf16"``: bfloat16 copies, scanned with a bf16 product (``torch``); 2x less.
* ``"binary"``: one bit per dimension (sign of the centred value), scanned by Hamming distance
  (``numpy.bitwise_count``); 32x less, but a coarse ranking.

Each query keeps its ``oversample * k`` best coarse candidates; those are scored exactly in
``float32`` and the best ``k`` returned. Recall depends on ``oversample`` (measured in the
benchmark and asserted in the tests); the returned similarities are always exact.

Example:
    >>> import numpy as np
    >>> from benchmarks.indexes import QuantizedIndex
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 32))
    >>> index = QuantizedIndex("binary", oversample=8).build(np.arange(500), x)
    >>> ids, sims = index.topk(x[:2], k=5)
    >>> ids[:, 0].tolist()
    [0, 1]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from asif_qdrant.anchor_index import segmented_topk
from asif_qdrant.anchor_index.exact import RowStoreIndex
from asif_qdrant.anchor_index.torch_index import streaming_topk
from asif_qdrant.errors import InvalidParameterError, check_real

__all__ = ["QuantizedIndex"]

Kind = Literal["int8", "bf16", "binary"]
_BLOCK = 131072


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a dependency of the package
        raise InvalidParameterError(
            "QuantizedIndex('int8' or 'bf16') needs torch; install it or use 'binary'."
        ) from e
    return torch


class QuantizedIndex(RowStoreIndex):
    """Coarse scan over int8 / bf16 / binary codes, then exact ``float32`` rescoring.

    Args:
        kind: ``"int8"``, ``"bf16"`` or ``"binary"``.
        oversample: Candidates kept per query, as a multiple of ``k`` (>= 1).
    """

    exact = False

    def __init__(self, kind: Kind = "int8", *, oversample: float | None = None) -> None:
        super().__init__()
        if kind not in ("int8", "bf16", "binary"):
            raise InvalidParameterError(
                "The 'kind' parameter of QuantizedIndex must be 'int8', 'bf16' or 'binary'. "
                f"Got {kind!r} instead."
            )
        self.kind: Kind = kind
        self.method = f"{kind}-rescore"
        default = {"int8": 2.0, "bf16": 2.0, "binary": 16.0}[kind]
        self.oversample = check_real(
            "oversample",
            "QuantizedIndex",
            default if oversample is None else oversample,
            greater_than=0,
        )
        if self.oversample < 1:
            raise InvalidParameterError(
                f"The 'oversample' parameter of QuantizedIndex must be >= 1. "
                f"Got {oversample!r} instead."
            )
        self._codes: Any = None
        self._scales: Any = None
        self._mean: np.ndarray | None = None
        self._codes_version = -1

    def _build(self, ids: np.ndarray, emb: np.ndarray) -> None:
        super()._build(ids, emb)
        self._mean = emb.mean(axis=0).astype(np.float32) if len(emb) else None
        self._encode()

    # -- codes -----------------------------------------------------------------------------
    def _sign_bits(self, x: np.ndarray) -> np.ndarray:
        """One bit per dimension (above the anchors' mean), packed in ``uint64`` words."""
        assert self._mean is not None
        bits = np.packbits(x > self._mean, axis=1)
        pad = (-bits.shape[1]) % 8
        if pad:
            bits = np.pad(bits, ((0, 0), (0, pad)))
        return np.ascontiguousarray(bits).view(np.uint64)

    def _encode(self) -> None:
        """(Re)compute the codes of every row (after any edit, lazily)."""
        assert self.rows is not None
        x = self.rows.vecs
        if self.kind == "binary":
            self._codes = self._sign_bits(x)
        elif self.kind == "int8":
            torch = _torch()
            scale = np.abs(x).max(axis=1) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            codes = np.empty(x.shape, dtype=np.int8)
            for s in range(0, len(x), _BLOCK):
                codes[s : s + _BLOCK] = np.rint(x[s : s + _BLOCK] / scale[s : s + _BLOCK, None])
            self._codes = torch.from_numpy(codes)
            self._scales = torch.from_numpy(scale)
        else:
            torch = _torch()
            self._codes = torch.from_numpy(x).to(torch.bfloat16)
        self._codes_version = self.rows.version

    def memory_bytes(self) -> int:
        """Bytes held: the ``float32`` rows plus the codes."""
        if self.rows is None:
            return 0
        codes = self._codes
        extra = (
            codes.nbytes if isinstance(codes, np.ndarray) else codes.numel() * codes.element_size()
        )
        return self.rows.nbytes() + int(extra)

    # -- search ----------------------------------------------------------------------------
    def _coarse(self, q: np.ndarray, mm: int) -> np.ndarray:
        """Row numbers of the ``mm`` best coarse candidates of each query, ``(m, mm)``."""
        assert self.rows is not None
        n = self.rows.n
        if self.kind == "binary":
            out = np.empty((len(q), mm), dtype=np.int64)
            for i, w in enumerate(self._sign_bits(q)):
                ham = np.bitwise_count(self._codes ^ w).sum(axis=1, dtype=np.int32)
                hist = np.cumsum(np.bincount(ham))
                cut = int(np.searchsorted(hist, mm))  # smallest distance with >= mm rows
                cand = np.flatnonzero(ham <= cut)
                if len(cand) > mm:  # trim the ties at the cut-off distance
                    cand = cand[np.argsort(ham[cand], kind="stable")[:mm]]
                out[i] = cand
            return out
        torch = _torch()
        qt = torch.from_numpy(q)
        if self.kind == "int8":
            qscale = np.abs(q).max(axis=1, keepdims=True) / 127.0
            qscale = np.where(qscale > 0, qscale, 1.0)
            qt = torch.from_numpy(np.rint(q / qscale).astype(np.int8))
        else:
            qt = qt.to(torch.bfloat16)

        def block(s: int) -> Any:
            if self.kind == "int8":
                raw = torch._int_mm(qt, self._codes[s : s + _BLOCK].T)
                return raw.to(torch.float32) * self._scales[s : s + _BLOCK]
            return (qt @ self._codes[s : s + _BLOCK].T).to(torch.float32)

        _, best_r = streaming_topk(((s, block(s)) for s in range(0, n, _BLOCK)), mm)
        return best_r.numpy().astype(np.int64)

    def _topk(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.rows is not None
        if self._codes_version != self.rows.version:
            self._encode()
        n = self.rows.n
        mm = int(min(n, max(kk, round(self.oversample * kk))))
        vecs = self.rows.vecs
        out_r = np.empty((len(q), kk), dtype=np.int64)
        out_s = np.empty((len(q), kk), dtype=np.float32)
        for q0 in range(0, len(q), 64):
            qc = q[q0 : q0 + 64]
            cand = self._coarse(qc, mm)
            # exact rescoring of the candidates, one query at a time (no (m, mm, d) temporary)
            sims = np.stack([vecs[c] @ x for c, x in zip(cand, qc, strict=True)])
            g = np.repeat(np.arange(len(qc)), cand.shape[1])
            r, s, _ = segmented_topk(g, cand.ravel(), sims.ravel(), len(qc), kk)
            out_r[q0 : q0 + len(qc)] = r
            out_s[q0 : q0 + len(qc)] = s
        return self.rows.ids[out_r], out_s

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": self.kind, "oversample": self.oversample}
