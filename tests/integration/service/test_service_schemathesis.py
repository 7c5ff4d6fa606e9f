"""schemathesis against the live /openapi.json: no 5xx, every response fits the schema.

It runs on a model of its own (it adds and deletes anchors, and indexes items, at random).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (pinned)")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from asif_qdrant.service import create_app, serve_in_thread  # noqa: E402
from tests.integration.service.conftest import build_model  # noqa: E402

#: Examples per operation: bounded, so that the whole run takes seconds.
EXAMPLES = 5


@pytest.fixture(scope="module")
def fuzzed_url(stamps: list[Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzzed")
    asif = build_model(stamps, root)
    with serve_in_thread(create_app(asif, upload_dir=root / "uploads")) as url:
        yield url
    asif.close()


@pytest.fixture
def api_schema(fuzzed_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
