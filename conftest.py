"""Collection rules for the whole checkout (pytest's rootdir conftest).

The service package (:mod:`asif_qdrant.service`) needs the extra ``asif-qdrant[serve]``;
without it, its doctests are not collected (its tests in tests/integration/service skip
themselves, saying what to install).
"""

from __future__ import annotations

import importlib.util

collect_ignore_glob = (
    []
    if all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn", "multipart"))
    else ["asif_qdrant/service/*"]
)
