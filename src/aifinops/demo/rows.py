"""Blocks of FOCUS 1.2 rows in exact fixed point, turned into one Arrow table.

Money is carried as int64: unit prices and quantities in 1e-6, costs (quantity x price) in 1e-12.
Each cost is therefore the exact product of its factors, and the decimals written are exactly those
numbers: no float ever reaches a money column.
"""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pyarrow as pa

from aifinops.demo import catalog as cat
from aifinops.demo.fleet import Account, Scenario
from aifinops.model.focus import columns

NULL = np.iinfo(np.int64).min  # null in the fixed-point int64 arrays
U = 1_000_000  # 1e-6 fixed point for quantities and unit prices; a cost (qty x price) is in 1e-12
COSTS = frozenset({"BilledCost", "ContractedCost", "EffectiveCost", "ListCost",
                   "PricingCurrencyEffectiveCost"})
HOUR, DAY = np.timedelta64(1, "h"), np.timedelta64(1, "D")
I64, TS = np.int64, "datetime64[us]"


def micro(x: Decimal | float | int) -> int:
    """A price or quantity in 1e-6 fixed point (exact up to 6 decimals)."""
    return int(Decimal(str(x)).scaleb(6).to_integral_value())


def tags_json(pairs: object) -> str | None:
    return json.dumps(dict(pairs)) if pairs else None  # type: ignore[call-overload]


def arr(*values: object, dtype: object = I64) -> np.ndarray:
    return np.array(values, dtype=dtype)


class Rows:
    """Collects row blocks; a block's value is a scalar (same for all its rows) or an array."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.t0 = np.datetime64(sc.start, "us")
        self.accounts = {a.key: a for a in sc.accounts}
        self.blocks: list[tuple[int, dict[str, object]]] = []

    def add(self, acct: Account | str, service: str, region: str | None, start: np.ndarray, end: np.ndarray,
            **cols: object) -> None:
        """One block of rows: ``cols`` are FOCUS columns; account, service and derived columns are filled."""
        a = self.accounts[acct] if isinstance(acct, str) else acct
        provider, issuer = cat.PROVIDERS[a.provider]
        if "BillingPeriodStart" not in cols:  # a charge is billed in the calendar month it starts in
            month = start.astype("datetime64[M]")
            cols.update(BillingPeriodStart=month.astype(TS), BillingPeriodEnd=(month + 1).astype(TS))
        bps = np.asarray(cols["BillingPeriodStart"])
        months = np.unique(bps)
        invoices = np.array([self._invoice(a, m) for m in months], object)
        cols.setdefault("PublisherName", issuer)
        cols.update(
            ChargePeriodStart=start, ChargePeriodEnd=end, ProviderName=provider, InvoiceIssuerName=issuer,
            InvoiceId=invoices[np.searchsorted(months, bps)],
            BillingAccountId=a.billing_id, BillingAccountName=a.billing_name,
            BillingAccountType=a.billing_type, SubAccountId=a.id, SubAccountName=a.name,
            SubAccountType=a.type,
            BillingCurrency="USD", PricingCurrency="USD", ServiceName=service,
            ServiceCategory=cat.SERVICES[service][0], ServiceSubcategory=cat.SERVICES[service][1],
            RegionId=region, RegionName=cat.REGIONS.get(region or ""),
            PricingCurrencyListUnitPrice=cols.get("ListUnitPrice"),
            PricingCurrencyContractedUnitPrice=cols.get("ContractedUnitPrice"),
            PricingCurrencyEffectiveCost=cols["EffectiveCost"])
        self.blocks.append((len(start), cols))

    @staticmethod
    def _invoice(a: Account, month: np.datetime64) -> str:
        n = int(cat.hash_id(a.billing_id, month)[:12], 16)
        return {"aws": f"{n % 10**10:010d}", "gcp": f"5{n % 10**9:09d}",
                "azure": f"G{n % 10**9:09d}"}[a.provider]

    def column(self, name: str, dtype: object, null: object) -> np.ndarray:
        return np.concatenate([fill(c.get(name), n, dtype, null) for n, c in self.blocks])

    def table(self) -> pa.Table:
        arrays = []
        for col in columns():
            if col.data_type == "Decimal":
                arrays.append(_decimal(self.column(col.id, I64, NULL), 12 if col.id in COSTS else 6))
            elif col.data_type == "Date/Time":
                arrays.append(pa.array(self.column(col.id, "datetime64[us]", None)))
            else:
                arrays.append(self.strings(col.id))
        return pa.Table.from_arrays(arrays, names=[c.id for c in columns()])

    def strings(self, name: str) -> pa.Array:
        """A text column through a dictionary: most blocks hold one value, so no per-row Python objects."""
        values: list[object] = []
        indices = []
        for n, c in self.blocks:
            v = c.get(name)
            if isinstance(v, np.ndarray):
                indices.append(len(values) + np.arange(n, dtype=np.int32))
                values.extend(v.tolist())
            else:
                indices.append(np.full(n, len(values), np.int32))
                values.append(v)
        dictionary = pa.array(values, type=pa.string())
        return pa.DictionaryArray.from_arrays(np.concatenate(indices), dictionary).cast(pa.string())


def fill(value: object, n: int, dtype: object, null: object) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return np.broadcast_to(value, (n,)).astype(dtype)
    return np.full(n, null if value is None else value, dtype=dtype)


def _decimal(v: np.ndarray, scale: int) -> pa.Array:
    """int64 fixed point at ``scale`` -> decimal128(38, 12), writing the 128-bit words directly (exact)."""
    valid = v != NULL
    words = np.zeros((len(v), 2), I64)
    words[:, 0] = np.where(valid, v, 0)
    words[:, 1] = np.where(words[:, 0] < 0, -1, 0)  # sign extension of the high word
    bitmap = pa.array(valid).buffers()[1]
    arr = pa.Array.from_buffers(pa.decimal128(38, scale), len(v), [bitmap, pa.py_buffer(words.tobytes())])
    return arr.cast(pa.decimal128(38, 12))


def priced(qty: np.ndarray, list_u: object, contracted_u: object = None, effective: object = None,
            billed: object = None, consumed: object = "qty") -> dict[str, object]:
    """Cost columns from a quantity and unit prices in 1e-6; each cost is their exact product."""
    contracted_u = list_u if contracted_u is None else contracted_u
    contracted = qty * np.asarray(contracted_u, I64)
    effective = contracted if effective is None else effective
    return {"PricingQuantity": qty, "ConsumedQuantity": qty if isinstance(consumed, str) else consumed,
            "ListUnitPrice": list_u, "ContractedUnitPrice": contracted_u,
            "ListCost": qty * np.asarray(list_u, I64), "ContractedCost": contracted,
            "EffectiveCost": effective, "BilledCost": effective if billed is None else billed}
