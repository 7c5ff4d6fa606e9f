"""What langchain-tests' standard embeddings suites ask of ASIFEmbeddings, for both suites.

The unit suite runs on the colour model and the integration suite on the stamp model; each
test class sets ``self._asif`` from its own model fixture (an autouse fixture).
"""

from __future__ import annotations

from typing import Any

from asif_qdrant import ASIF

from langchain_asif_qdrant import ASIFEmbeddings


class ASIFEmbeddingsSuite:
    """Mixin: the class under test and its constructor arguments."""

    _asif: ASIF

    @property
    def embeddings_class(self) -> type[ASIFEmbeddings]:
        return ASIFEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"asif": self._asif}
