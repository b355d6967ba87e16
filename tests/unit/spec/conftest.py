"""Spec tests always use a private spec cache (the fixture lives in tests/unit/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_spec_cache(spec_cache) -> None:
    """Apply ``spec_cache`` to every spec test."""
