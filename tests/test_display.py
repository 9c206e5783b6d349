"""How values look in tables and the HTML summary: the column name says money or ratio."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from aifinops.interfaces.display import cell


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("gpuCost", Decimal("1234.5"), "1,234.50"),
    ("costPerRequest", Decimal("0.002001"), "0.002001"),  # a unit cost: cents would read 0.00
    ("cost", Decimal("0.5"), "0.5"),
    ("gpuCostInefficiency", Decimal("48751.08"), "48,751.08"),  # money, though its name holds "efficiency"
    ("inefficiencyCost", 48751.083, "48,751.08"),
    ("gpuEfficiency", 0.4363, "43.6%"),
    ("share", Decimal("0.25"), "25.0%"),
    ("coverage", 0.5, "50.0%"),
    ("shareBelow5", 1.0, "100.0%"),
    ("allocatedGpuHours", 41413.2, "41,413"),
    ("gpuHours", 2.5, "2.50"),
    ("energyKwh", 0.04, "0.04"),
    ("rows", 1234567, "1,234,567"),
    ("day", datetime(2026, 10, 1), "2026-10-01"),
    ("bucket", datetime(2026, 10, 1, 13, 0), "2026-10-01 13:00"),
    ("overcommitted", False, "no"),
    ("anything", None, ""),
])
def test_cell(name: str, value: object, shown: str) -> None:
    assert cell(name, value) == shown
