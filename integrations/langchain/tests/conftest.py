"""Shared test setup of the LangChain adapter.

The repository root goes on ``sys.path`` so that the conftest.py files below can import the
repository's ``tests`` package (its small encoders, helpers and shared fixtures).

langchain-tests' standard suites define ``async def`` tests without a marker (the partner
packages run them with pytest-asyncio's ``asyncio_mode = "auto"``). The repository's pytest
configuration keeps pytest-asyncio in its default strict mode, so this hook marks the coroutine
tests collected under this folder with ``pytest.mark.asyncio`` (and nothing else).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import pytest

# The repository's tests package (small test encoders, shared helpers and fixtures) is
# imported by the unit and integration conftest.py files below this folder.
# This folder too, for the standard-suite mixins the unit and integration tests share.
for _folder in (Path(__file__).resolve().parents[3], Path(__file__).resolve().parent):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

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
