"""Shared test setup of the LangChain adapter.

langchain-tests' standard suites define ``async def`` tests without a marker (the partner
packages run them with pytest-asyncio's ``asyncio_mode = "auto"``). The repository's pytest
configuration keeps pytest-asyncio in its default strict mode, so this hook marks the coroutine
tests collected under this folder with ``pytest.mark.asyncio`` (and nothing else).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

# Not a doctest module: importing this non-package conftest by its file name would clash with
# the repository's other conftest.py files under --doctest-modules ("import file mismatch").
collect_ignore = ["conftest.py"]


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> Any:
    # trylast: this wrapper runs inside pytest-asyncio's, which sees the marker afterwards.
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and item.get_closest_marker("asyncio") is None
        ):
            item.add_marker(pytest.mark.asyncio)
    return result
