"""Ledgers for forecast tests, written straight into a store in one statement each, so every test states its
numbers: a list of costs, one charge per period from ``start``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import numpy as np

#: Sunday 2026-11-01: the demo's ledger ends here, and the tests' ledgers do too
END = datetime(2026, 11, 1)
#: weekdays 200, weekends 50 (a Monday-first pattern; 2026-08-03 is a Monday)
WEEK = [200.0, 200.0, 200.0, 200.0, 200.0, 50.0, 50.0]


def charges(con: duckdb.DuckDBPyConnection, start: datetime, costs: Sequence[float], service: str,
            hours: float = 24, tags: dict[str, str] | None = None) -> None:
    """One usage charge of ``costs[i]`` dollars per period of ``hours`` from ``start``."""
    con.execute(
        """INSERT INTO focus_charges ("ChargePeriodStart", "ChargePeriodEnd", "BilledCost", "EffectiveCost",
               "ListCost", "ContractedCost", "BillingCurrency", "ChargeCategory", "ProviderName",
               "BillingAccountId", "BillingPeriodStart", "ServiceName", "Tags", _batch_id, _file, _row)
           SELECT $start + to_microseconds(CAST(i * $us AS BIGINT)),
                  $start + to_microseconds(CAST((i + 1) * $us AS BIGINT)), c, c, c, c, 'USD', 'Usage', 'AWS',
                  'acct-1', date_trunc('month', $start + to_microseconds(CAST(i * $us AS BIGINT))), $service,
                  $tags, 1, 't', i
           FROM (SELECT unnest($costs) AS c, generate_subscripts($costs, 1) - 1 AS i)""",
        {"start": start, "us": hours * 3600e6, "costs": [str(c) for c in costs], "service": service,
         "tags": tags or {}})


def days_before(end: datetime, n: int) -> datetime:
    return end - timedelta(days=n)


def weekly(n_weeks: int) -> list[float]:
    return list(np.tile(WEEK, n_weeks))
