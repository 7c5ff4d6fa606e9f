from __future__ import annotations

import langchain_asif_qdrant
from langchain_asif_qdrant import embeddings, retrievers, service, vectorstores

EXPECTED_ALL = [
    "ASIFEmbeddings",
    "ASIFQdrantVectorStore",
    "ASIFRetriever",
    "ASIFServiceRetriever",
    "ASIFSparseEmbeddings",
    "DEFAULT_MAX_DIM",
    "MODALITY_KEY",
    "__version__",
]


def test_all_imports() -> None:
    assert sorted(langchain_asif_qdrant.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert getattr(langchain_asif_qdrant, name) is not None


def test_module_all_names_exist() -> None:
    for module in (embeddings, retrievers, service, vectorstores):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def test_version_matches_pyproject() -> None:
    from importlib.metadata import version

    assert langchain_asif_qdrant.__version__ == version("langchain-asif-qdrant")
