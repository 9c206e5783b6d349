"""The demo: bundled real data and a synthetic AI company, used by ``aifinops demo`` and the tests."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_sample() -> Path:
    """The FinOps Foundation's FOCUS 1.0 sample (1,000 real rows, CC BY 4.0) shipped in the package."""
    return Path(str(resources.files("aifinops.demo").joinpath("data/focus-sample-1.0/focus_sample.csv.gz")))
