"""storage-bloat by hand, on FOCUS lines shaped like real bills (S3 GB-Mo, EBS snapshot GB-Months billed hourly).

s3://ml-checkpoints (S3, team research), 40 daily GB-Mo lines from 2026-10-01: 1,000 GB on days 0..9, then
100 GB more each day (day i: 1,000 + 100 x (i - 9) GB; GB-Mo = GB x 24 / hours of the month), at $0.0008 per
GB-day; plus a $1 Requests line a day (not capacity).
  last day (i = 39, 2026-11-09): 4,000 GB, $3.20 -> $3.20 / 24 h x 730.5 h = $97.40 a month at the end rate.
  30 days before it (2026-10-10, i = 9): 1,000 GB -> old share 1,000 / 4,000 = 0.25 (measured; a straight
  line through the first and last days would say 4,000 - 3,000 / 39 x 30 = 1,692 GB instead).
  delete: saving = waste = 0.25 x $97.40 = $24.35 a month.

snap-ckpt (EBS snapshot, Storage), 10 days, 1,020 + 20 i GB: days 0..8 one daily line, the last day as 24
hourly lines (the span of the day's charges: 24 h). Growth 180 / 1,020 = 17.6%.
  10 days < 30 days of retention: the size 30 days back is extrapolated: 20 GB a day x 30 = 600 GB below
  the last day's 1,200 -> old share 600 / 1,200 = 0.5 (medium confidence).
  last day $0.96 ($0.0008 per GB-day) -> $0.96 / 24 x 730.5 = $29.22 a month.
  archive at 0.1: saving 0.5 x 29.22 x 0.9 = $13.149 (waste 0.5 x 29.22 = $14.61).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from waste_fixtures import T0, add_charge, findings, window

from aifinops.store.connection import Store
from aifinops.waste.engine import DATA, RuleError

D = Decimal
RULE = "storage-bloat"
PER_GB_DAY = D("0.0008")
SIZES = [D(1000 + 100 * max(i - 9, 0)) for i in range(40)]


def _gb_mo(gb: Decimal, start: datetime, hours: float) -> str:
    """GB held for ``hours`` as GB-months of the charge's month (what AWS bills)."""
    month_hours = 24 * calendar.monthrange(start.year, start.month)[1]
    return str((gb * D(repr(hours)) / month_hours).quantize(D("1e-12")))


def _daily(store: Store, rid: str, sizes: list[Decimal], start: datetime = T0, **columns: object) -> None:
    for i, gb in enumerate(sizes):
        day = start + timedelta(days=i)
        add_charge(store.con, day, day + timedelta(days=1), gb * PER_GB_DAY, ResourceId=rid,
                   ConsumedQuantity=_gb_mo(gb, day, 24), ConsumedUnit="GB-Mo", **columns)


S3 = {"ServiceName": "Amazon Simple Storage Service", "ServiceCategory": "Storage", "Tags": {"team": "research"}}
SNAP = {"ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Storage", "ConsumedUnit": "GB-Months",
        "ChargeDescription": "$0.05 per GB-Month of snapshot data stored - US West (Oregon)"}


def _s3(store: Store, sizes: list[Decimal] | None = None, rid: str = "arn:aws:s3:::ml-checkpoints") -> None:
    sizes = sizes if sizes is not None else SIZES
    _daily(store, rid, sizes, **S3)
    for i in range(len(sizes)):
        day = T0 + timedelta(days=i)
        add_charge(store.con, day, day + timedelta(days=1), "1", ResourceId=rid, ConsumedQuantity="1000",
                   ConsumedUnit="Requests", **S3)


def _snapshot(store: Store) -> None:
    rid = "arn:aws:ec2:us-west-2:123:snapshot/snap-ckpt"
    sizes = [D(1020 + 20 * i) for i in range(10)]
    cols = {k: v for k, v in SNAP.items() if k != "ConsumedUnit"}
    for i, gb in enumerate(sizes[:-1]):
        day = T0 + timedelta(days=i)
        add_charge(store.con, day, day + timedelta(days=1), gb * PER_GB_DAY, ResourceId=rid,
                   ConsumedQuantity=_gb_mo(gb, day, 24), ConsumedUnit="GB-Months", **cols)
    last = T0 + timedelta(days=9)
    for hour in range(24):
        t = last + timedelta(hours=hour)
        add_charge(store.con, t, t + timedelta(hours=1), sizes[-1] * PER_GB_DAY / 24, ResourceId=rid,
                   ConsumedQuantity=_gb_mo(sizes[-1], t, 1), ConsumedUnit="GB-Months", **cols)


def test_old_checkpoints_priced_at_the_end_rate(store: Store) -> None:
    _s3(store)
    [f] = findings(store.con, window(24 * 40), RULE).findings
    assert f.scope == "arn:aws:s3:::ml-checkpoints" and f.scope_kind == "resource" and f.owner == "research"
    assert f.monthly_cost == D("97.4") and f.pool == "resource:arn:aws:s3:::ml-checkpoints"
    assert f.pool_cost == D("97.4")
    assert f.monthly_saving == pytest.approx(D("24.35"), abs=D("1e-9"))
    assert f.monthly_waste == f.monthly_saving
    ev = f.evidence
    assert ev["stored_gb_first"] == 1000.0 and ev["stored_gb_last"] == pytest.approx(4000, abs=1e-6)
    assert ev["old_gb"] == pytest.approx(1000, abs=1e-6) and ev["old_share_method"] == "measured"
    assert ev["days"] == 40 and ev["largest_daily_drop_pct"] == 0
    assert ev["storage_cost_in_window"] == sum(SIZES) * PER_GB_DAY == D("69.2")  # not the requests
    assert f.confidence == "high"
    assert "S3 Lifecycle rule (Expiration after 30 days)" in f.recommendation
    assert "older than 30 days" in f.recommendation


def test_short_window_extrapolates_and_archive_keeps_a_tenth(store: Store) -> None:
    _snapshot(store)
    [f] = findings(store.con, window(24 * 10), RULE, action="archive").findings
    assert f.monthly_cost == D("29.22")
    assert f.monthly_waste == pytest.approx(D("14.61"), abs=D("1e-9"))
    assert f.monthly_saving == pytest.approx(D("13.149"), abs=D("1e-9"))
    assert f.evidence["old_share_method"] == "linear" and f.evidence["old_share"] == pytest.approx(0.5)
    assert f.confidence == "medium"
    assert "Data Lifecycle Manager" in f.recommendation and "archives snapshots older than 30 days" in \
        f.recommendation


def test_lifecycled_slow_or_unrelated_storage_is_silent(store: Store) -> None:
    """A checkpoint bucket whose size fell 5% one day (a lifecycle runs), one that grew only 5%, and a
    growing bucket of web assets (not checkpoints or artifacts) are not bloat."""
    pruned = [D(100 * (i + 1)) for i in range(40)]
    pruned[20] = pruned[19] * D("0.95")
    _s3(store, pruned, rid="arn:aws:s3:::team-artifacts")
    _s3(store, [D(1000 + i) for i in range(40)], rid="arn:aws:s3:::old-backups")
    _s3(store, rid="arn:aws:s3:::web-assets")
    assert findings(store.con, window(24 * 40), RULE).findings == []


def test_skipped_without_data(store: Store) -> None:
    result = findings(store.con, window(24), RULE)
    assert result.findings == [] and [s.reason for s in result.skipped] == [DATA["focus_charges"][1]]


def test_thresholds_change_the_outcome(store: Store) -> None:
    """Allowing daily drops up to 10% makes the pruned bucket bloat again; 10 days of retention count the bytes of
    day 29 (3,000 of 4,000 GB) as old; a 5,000% growth minimum silences the rest; a ratio with delete is an error."""
    pruned = [D(100 * (i + 1)) for i in range(40)]
    pruned[20] = pruned[19] * D("0.95")
    _s3(store, pruned, rid="arn:aws:s3:::team-artifacts")
    w = window(24 * 40)
    [f] = findings(store.con, w, RULE, max_drop_pct=10).findings
    assert f.scope == "arn:aws:s3:::team-artifacts"
    [g] = findings(store.con, w, RULE, max_drop_pct=10, retention_days=10).findings
    assert g.monthly_saving == pytest.approx(D("97.4") * D("0.75"), abs=D("1e-9"))
    assert findings(store.con, w, RULE, max_drop_pct=10, min_growth_pct=5000).findings == []
    with pytest.raises(RuleError, match="archive_price_ratio"):
        findings(store.con, w, RULE, archive_price_ratio=0.2)
