"""Shared fixtures: the bundled real FOCUS sample and fresh stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from aifinops.demo import bundled_sample
from aifinops.store.connection import Store

@pytest.fixture
def sample_path() -> Path:
    return bundled_sample()


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "store.duckdb")
    yield s
    s.close()
