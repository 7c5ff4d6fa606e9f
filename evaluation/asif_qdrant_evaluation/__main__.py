"""``python -m asif_qdrant_evaluation``: the ``asif-qdrant-evaluate`` command."""

from asif_qdrant_evaluation.cli import evaluate

if __name__ == "__main__":  # pragma: no cover
    evaluate(prog_name="python -m asif_qdrant_evaluation")
