"""Helpers shared by tests (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import csv
from pathlib import Path

from aifinops.model import focus

GOLDEN = Path(__file__).parent / "golden"


def write_focus_csv(path: Path, rows: list[dict[str, str | None]]) -> Path:
    """A FOCUS 1.2 CSV with every column; cells not given are NULL. Used for hand-computed cases."""
    base = {
        "BillingAccountId": "acct-1", "BillingAccountName": "Acme", "BillingCurrency": "USD",
        "BillingPeriodStart": "2026-10-01T00:00:00Z", "BillingPeriodEnd": "2026-11-01T00:00:00Z",
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "ProviderName": "AWS",
        "PublisherName": "AWS", "InvoiceIssuerName": "AWS", "ServiceCategory": "Compute",
        "ServiceName": "Amazon Elastic Compute Cloud", "ListCost": "0", "ContractedCost": "0",
    }
    names = focus.column_names()
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for r in rows:
            merged = {**base, **r}
            w.writerow([merged.get(n) if merged.get(n) is not None else "NULL" for n in names])
    return path
