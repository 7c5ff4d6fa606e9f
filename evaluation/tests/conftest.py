"""Fixtures of the lab's tests, shared with the repository's tests (never copied).

The small deterministic encoders come from ``tests/conftest.py`` (imported by the tests); the
real offline encoders and the Tux Paint stamps of the smoke test are the session fixtures of
``tests/integration/conftest.py``, made visible here by importing them.
"""

from __future__ import annotations

from tests.integration.conftest import image_encoder, stamp_paths, text_encoder

__all__ = ["image_encoder", "stamp_paths", "text_encoder"]

# Not a doctest module: importing this non-package conftest by its file name would clash with
# the repository's other conftest.py files under --doctest-modules ("import file mismatch").
collect_ignore = ["conftest.py"]
