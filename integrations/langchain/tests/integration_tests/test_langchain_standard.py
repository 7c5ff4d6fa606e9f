"""langchain-tests' standard suites on the real stamp model: embeddings and retriever."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asif_qdrant import ASIF
from asif_suites import ASIFEmbeddingsSuite
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests

from langchain_asif_qdrant import ASIFRetriever

pytestmark = pytest.mark.integration


class TestASIFEmbeddingsStandardIntegration(ASIFEmbeddingsSuite, EmbeddingsIntegrationTests):
    """The standard integration suite for ASIFEmbeddings (real encoders, real stamps)."""

    @pytest.fixture(autouse=True)
    def _use_model(self, stamp_asif: ASIF) -> None:
        self._asif = stamp_asif


class _RetrieverSuite(RetrieversIntegrationTests):
    """The standard retriever suite; subclasses pick the backend."""

    kind = "edge"

    @pytest.fixture(autouse=True)
    def _catalog(self, catalog_model: Callable[[str], ASIF]) -> None:
        self._asif = catalog_model(self.kind)

    @property
    def retriever_constructor(self) -> type[ASIFRetriever]:
        return ASIFRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"asif": self._asif, "collection_name": "catalog"}

    @property
    def retriever_query_example(self) -> str:
        return "A fire truck."


class TestASIFRetrieverStandardEdge(_RetrieverSuite):
    """On the embedded Qdrant engine."""

    kind = "edge"


class TestASIFRetrieverStandardClientLocal(_RetrieverSuite):
    """On qdrant-client's local mode."""

    kind = "client-local"
