"""The FOCUS 1.2 column model: names, types, nullability and allowed values, read from the spec.

The column table is extracted from the normative spec text (``tools/extract_focus_spec.py``) into
``data/focus_1_2.json`` so that the spec, not our memory of it, decides what a column is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

# Money and quantities are exact decimals: totals must reconcile to the cent whatever the grouping.
# 38 digits with 12 after the point holds any bill line (up to 10^26) and per-unit prices of 1e-12.
DECIMAL_SQL = "DECIMAL(38, 12)"
SQL_TYPES = {"Decimal": DECIMAL_SQL, "Date/Time": "TIMESTAMP", "String": "VARCHAR", "JSON": "VARCHAR"}

#: Columns a FOCUS version introduced, used to detect the version of a file from its header.
ADDED_IN_1_1 = frozenset(
    {"CapacityReservationId", "CapacityReservationStatus", "CommitmentDiscountQuantity",
     "CommitmentDiscountUnit", "ServiceSubcategory", "SkuMeter", "SkuPriceDetails"}
)
ADDED_IN_1_2 = frozenset(
    {"BillingAccountType", "SubAccountType", "InvoiceId", "PricingCurrency",
     "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice"}
)
#: Columns FOCUS 1.3 added or renamed. They are kept under their own names (typed as text) so a 1.3
#: export loads without losing anything; the 1.2 columns they shadow are filled from them.
FOCUS_1_3_COLUMNS = frozenset(
    {"ServiceProviderName", "HostProviderName", "AllocatedMethodId", "AllocatedMethodDetails",
     "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags", "ContractApplied",
     "ChargeOrigination"}
)
#: FOCUS 1.3 renames: 1.3 name -> 1.2 column it fills when the 1.2 column is absent.
RENAMED_IN_1_3 = {"ServiceProviderName": "ProviderName"}

#: Columns whose values identify a billing period's delivery: a newer file with the same key replaces it.
RESTATEMENT_KEY = ("ProviderName", "BillingAccountId", "BillingPeriodStart")
#: The two costs every batch reconciles (read = loaded + quarantined).
RECONCILED_COSTS = ("BilledCost", "EffectiveCost")


@dataclass(frozen=True)
class FocusColumn:
    id: str
    feature_level: str  # Mandatory | Recommended | Conditional
    nullable: bool
    data_type: str  # Decimal | Date/Time | String | JSON
    introduced: str
    allowed_values: tuple[str, ...]

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.data_type]

    def in_version(self, version: str) -> bool:
        """True when a dataset of ``version`` (``"1.0"``, ``"1.1"``, ``"1.2"``) defines this column."""
        if self.id in ADDED_IN_1_2:
            return version >= "1.2"
        if self.id in ADDED_IN_1_1:
            return version >= "1.1"
        return True


@cache
def columns() -> tuple[FocusColumn, ...]:
    """All FOCUS 1.2 columns in the spec's (alphabetical) order."""
    raw = json.loads(resources.files("aifinops.model").joinpath("data/focus_1_2.json").read_text())
    return tuple(
        FocusColumn(c["id"], c["feature_level"], c["nullable"], c["data_type"], c["introduced"],
                    tuple(c["allowed_values"]))
        for c in raw["columns"]
    )


@cache
def column_map() -> dict[str, FocusColumn]:
    return {c.id: c for c in columns()}


def column_names() -> list[str]:
    return [c.id for c in columns()]


def mandatory(version: str) -> list[str]:
    """Columns a dataset of ``version`` must carry; a file without one of them is not FOCUS."""
    return [c.id for c in columns() if c.feature_level == "Mandatory" and c.in_version(version)]


def detect_version(header: list[str] | set[str]) -> str:
    """FOCUS version of a file from its header: the newest version whose added columns appear."""
    names = set(header)
    if names & FOCUS_1_3_COLUMNS:
        return "1.3"
    if names & ADDED_IN_1_2:
        return "1.2"
    if names & ADDED_IN_1_1:
        return "1.1"
    return "1.0"


@cache
def currency_codes() -> frozenset[str]:
    """ISO 4217 alphabetic codes (the spec's CurrencyFormat), plus the national-currency-free codes."""
    text = resources.files("aifinops.model").joinpath("data/iso4217.txt").read_text()
    return frozenset(line.split()[0] for line in text.splitlines() if line and not line.startswith("#"))
