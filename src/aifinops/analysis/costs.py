"""Spend grouped by any FOCUS column, tag key, cost layer or time grain, over a window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import ibis

from .layers import LayerRule, layer_expr
from .windows import Window

COST_COLUMNS = {"effective": "EffectiveCost", "billed": "BilledCost", "list": "ListCost",
                "contracted": "ContractedCost"}
TIME_GRAINS = {"hour": "h", "day": "D", "week": "W", "month": "M"}
UNTAGGED = "(untagged)"
NONE = "(none)"


class DimensionError(ValueError):
    pass


@dataclass(frozen=True)
class Dimension:
    """One grouping key as the user wrote it: ``ServiceName``, ``tag:team``, ``layer`` or ``month``."""

    spec: str

    @property
    def label(self) -> str:
        return self.spec


def parse_by(text: str) -> list[Dimension]:
    return [Dimension(p.strip()) for p in text.split(",") if p.strip()]


def resolve_column(t: ibis.Table, name: str) -> str:
    """A column of ``t`` by case-insensitive name, or a clear error listing what exists."""
    for col in t.columns:
        if col.lower() == name.lower() and not col.startswith("_"):
            return col
    known = ", ".join(c for c in t.columns if not c.startswith("_"))
    raise DimensionError(f"unknown dimension {name!r}: use a FOCUS column ({known}), tag:KEY, layer, "
                         f"or a time grain ({', '.join(TIME_GRAINS)})")


def dimension_value(t: ibis.Table, dim: Dimension, rules: list[LayerRule]) -> ibis.Value:
    spec = dim.spec
    if spec.lower().startswith("tag:"):
        key = spec[4:]
        if not key:
            raise DimensionError("tag: needs a key, e.g. tag:team")
        return t.Tags.get(key).fill_null(UNTAGGED)
    if spec.lower() == "layer":
        return layer_expr(t, rules)
    if spec.lower() in TIME_GRAINS:
        return t.ChargePeriodStart.truncate(TIME_GRAINS[spec.lower()])
    col = resolve_column(t, spec)
    value = t[col]
    return value.cast("string").fill_null(NONE) if value.type().is_string() else value


def in_window(t: ibis.Table, window: Window) -> ibis.Table:
    """Charges that start inside the window (a charge is counted once, in the period it starts)."""
    return t.filter((t.ChargePeriodStart >= window.start) & (t.ChargePeriodStart < window.end))


def data_end(t: ibis.Table) -> datetime | None:
    """The end of the data: the latest ChargePeriodEnd in the table."""
    value = t.ChargePeriodEnd.max().to_pyarrow().as_py()
    return value


def cost_by(t: ibis.Table, by: list[Dimension], window: Window, cost: str = "effective",
            rules: list[LayerRule] | None = None) -> ibis.Table:
    """Sum of the chosen cost per group, largest first. Groups by BillingCurrency too when the window
    holds more than one currency, because adding dollars to euros gives a number that means nothing."""
    if cost not in COST_COLUMNS:
        raise DimensionError(f"unknown cost {cost!r}: use {', '.join(COST_COLUMNS)}")
    t = in_window(t, window)
    groups = {d.label: dimension_value(t, d, rules or []) for d in by}
    if "BillingCurrency" not in groups and t.BillingCurrency.nunique().to_pyarrow().as_py() > 1:
        groups["BillingCurrency"] = t.BillingCurrency
    column = t[COST_COLUMNS[cost]]
    # An empty window sums to 0, not NULL: "no spend" is a number.
    metric = column.sum().fill_null(ibis.literal(0).cast(column.type())).name("cost")
    rows = t.count().name("charges")
    if not groups:
        return t.aggregate(cost=metric, charges=rows)
    return t.group_by(**groups).aggregate(cost=metric, charges=rows).order_by(ibis.desc("cost"))
