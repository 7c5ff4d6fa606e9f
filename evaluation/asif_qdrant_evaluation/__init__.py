"""Measured quality: an evaluation harness on real offline data (``asif-qdrant-evaluate``).

Tasks (:data:`TASKS`) measure methods (:data:`METHODS`) on anchor pools and test sets that
install offline, and :func:`run_evaluation` writes a Markdown + JSON report with every figure,
the encoders, k, p, the pools and their sizes, the machine and the wall time. Embeddings are
cached on disk by (encoder name, content hash), so a second run is fast.

Submodules: ``metrics`` (recall@k, mean rank, accuracy, average precision), ``cache`` (the
embedding cache), ``data`` (pools and test sets), ``encoders`` (the compared encoders),
``methods`` (library path, numpy recipe, CSA, hybrid, baselines; :func:`register_method`),
``context`` (what a task works with), ``ranks`` (per-query ranks and the library == numpy
check), ``registry`` (results and :func:`register_task`), ``tasks`` (the tasks), ``runner``,
``plots`` and ``cli`` (``asif-qdrant-evaluate``). Importing this package does not import torch.

Example:
    >>> from asif_qdrant_evaluation import TASKS, METHODS, EvalConfig
    >>> "retrieval" in TASKS and "asif" in METHODS and EvalConfig().p == 8.0
    True
"""

from __future__ import annotations

from asif_qdrant_evaluation.cache import CachedEncoder, EmbeddingCache, content_hash
from asif_qdrant_evaluation.config import EvalConfig
from asif_qdrant_evaluation.methods import (
    METHODS,
    STRATEGIES,
    AnchorSet,
    FittedMethod,
    Method,
    MethodContext,
    PromptSet,
    register_method,
)
from asif_qdrant_evaluation.metrics import (
    accuracy,
    average_precision,
    chance_mean_rank,
    chance_recall,
    majority_accuracy,
    mean_average_precision,
    mean_rank,
    precision_at_k,
    rank_counts,
    recall_at_k,
    recalls,
)
from asif_qdrant_evaluation.runner import Report, run_evaluation
from asif_qdrant_evaluation.tasks import TASKS, EvalContext, Table, TaskResult, register_task

__all__ = [
    "METHODS",
    "STRATEGIES",
    "TASKS",
    "AnchorSet",
    "CachedEncoder",
    "EmbeddingCache",
    "EvalConfig",
    "EvalContext",
    "FittedMethod",
    "Method",
    "MethodContext",
    "PromptSet",
    "Report",
    "Table",
    "TaskResult",
    "accuracy",
    "average_precision",
    "chance_mean_rank",
    "chance_recall",
    "content_hash",
    "majority_accuracy",
    "mean_average_precision",
    "mean_rank",
    "precision_at_k",
    "rank_counts",
    "recall_at_k",
    "recalls",
    "register_method",
    "register_task",
    "run_evaluation",
]
