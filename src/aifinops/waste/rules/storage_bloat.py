"""``storage-bloat``: checkpoints, artifacts and snapshots that pile up in storage with no lifecycle to expire
them, from the FOCUS ledger.

**Lines**: storage charges (``ServiceCategory`` = Storage, or ``storage_pattern`` in ServiceName, ResourceType,
SkuMeter or ChargeDescription: S3, Blob, Cloud Storage, EBS snapshots...) of a resource whose ResourceId,
ResourceName or tag values match ``name_pattern`` (checkpoint, ckpt, artifact, snapshot, backup,
model-registry, mlruns), and that measure capacity: ``ConsumedUnit`` GB-Mo / GB-Months / GB Hours / GB per
day (GiB, TB alike; GiB/Second-Months, IOPS-Months and request units are not capacity), or plain GB when
the line is not a transfer or request. Credits on those lines count (negative cost is legal).

**Stored size per day** (per ResourceId): the capacity bought, spread over the day's charge periods: a GB-Mo
line is GB x the hours of its month, a GB-Hours line GB x 1 h, a GB line GB x its period; summed and divided
by the hours the day's charges span. So 8 GB held for a day reads as 8 whether billed hourly or daily.

**Bloat**: over at least ``min_days`` days, the size never falls by ``max_drop_pct`` (1%) or more from one day
to the next, and grows by at least ``min_growth_pct`` (10%) from the first day to the last: nothing deletes
anything.

**Saving**: keep the last ``retention_days`` (30) of data. The bytes already stored ``retention_days`` before
the last day are older than that: old share = size then / size on the last day. When the data does not reach
back that far, the size then is extrapolated linearly from the window's growth (``size_last - GB per day x
retention_days``, at least 0). The resource's monthly cost at the end-of-window rate = the last day's cost /
the hours it spans x ``waste.month_hours``.

- waste = old share x monthly cost at the end rate;
- saving = waste x (1 - archive price ratio): deleting (``action: delete``) saves it all; archiving
  (``action: archive``) keeps paying ``archive_price_ratio`` (default 0.1) of it in an archive tier.

The pool is the resource (``resource:<ResourceId>``).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...model.checks import sql_str
from ..engine import Finding, Rule, RuleContext, rules
from .idle_dev_environment import checked_regex

#: ConsumedUnit of a capacity line: size (group 1) and the time it is integrated over (group 2; none: a level)
UNIT_RE = r"^(gigabytes?|gib|gb|terabytes?|tib|tb)[\s/-]*(?:per\s+)?(months?|mos?|hours?|hrs?|h|days?|d)?$"
#: plain-GB lines that move data rather than store it
NOT_STORED_RE = r"transfer|egress|ingress|request|retriev|operation|\bapi\b|data processed|\bout to\b|\bin from\b"
DEFAULT_ARCHIVE_RATIO = 0.1


def _lifecycle(service: str, action: str, days: int) -> str:
    """The provider's lifecycle mechanism for ``service``, worded for the action."""
    s = service.lower()
    if "snapshot" in s or "elastic compute" in s or "ebs" in s or "block" in s:
        return (f"an Amazon Data Lifecycle Manager policy (or snapshot retention) that "
                f"{'archives' if action == 'archive' else 'deletes'} snapshots older than {days} days")
    if "simple storage" in s or "s3" in s:
        return (f"an S3 Lifecycle rule ({'Transition to Glacier Deep Archive' if action == 'archive' else 'Expiration'}"
                f" after {days} days)")
    if "blob" in s or "storage account" in s or "azure" in s:
        return (f"a Blob lifecycle management rule ({'tierToArchive' if action == 'archive' else 'delete'} after "
                f"{days} days since modification)")
    if "cloud storage" in s or "gcs" in s:
        return (f"an Object Lifecycle rule ({'SetStorageClass ARCHIVE' if action == 'archive' else 'Delete'} at age "
                f"{days})")
    return f"a lifecycle rule that {'archives' if action == 'archive' else 'deletes'} data older than {days} days"


@rules.register("storage-bloat")
class StorageBloat(Rule):
    title = "Storage bloat"
    targets = "Checkpoints, artifacts and snapshots that keep growing in storage because nothing ever expires them"
    needs = ("focus_charges",)

    class Options(Rule.Options):
        #: what the resource holds, matched on ResourceId, ResourceName and tag values (case-insensitive)
        name_pattern: str = "checkpoint|ckpt|artifact|snapshot|backup|model-registry|mlruns"
        #: storage lines besides ServiceCategory = Storage: ServiceName, ResourceType, SkuMeter, ChargeDescription
        storage_pattern: str = (r"simple storage|\bs3\b|blob|cloud storage|elastic block|\bebs\b|snapshot|"
                                r"elastic file|filestore|storage account|object storage|bucket")
        #: the size must grow at least this much (%) from the first day to the last
        min_growth_pct: float = Field(10.0, ge=0)
        #: a day-over-day fall of this much (%) or more means something deletes: not bloat
        max_drop_pct: float = Field(1.0, gt=0)
        #: days of data to keep; older bytes are deleted or archived
        retention_days: int = Field(30, ge=1)
        #: delete old data, or move it to an archive tier
        action: Literal["delete", "archive"] = "delete"
        #: the archive tier's price as a share of the current one (archive only; default 0.1)
        archive_price_ratio: float | None = Field(None, ge=0, le=1)
        #: days with capacity lines needed to judge growth
        min_days: int = Field(3, ge=2)
        #: resources saving less than this ($ per month) are not reported
        min_monthly_saving: Decimal = Field(Decimal(10), ge=0)

        @field_validator("name_pattern", "storage_pattern")
        @classmethod
        def _regex(cls, v: str) -> str:
            return checked_regex(v)

        @model_validator(mode="after")
        def _ratio_with_archive(self) -> StorageBloat.Options:
            if self.action == "delete" and self.archive_price_ratio:
                raise ValueError("archive_price_ratio applies to action: archive (deleting leaves nothing to pay)")
            return self

    @property
    def ratio(self) -> float:
        o = self.options
        if o.action == "delete":
            return 0.0
        return DEFAULT_ARCHIVE_RATIO if o.archive_price_ratio is None else o.archive_price_ratio

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        names, storage = sql_str(o.name_pattern), sql_str(o.storage_pattern)
        hints = ('lower(concat_ws(\' \', "ServiceName", "ResourceType", "SkuMeter", "ChargeDescription"))')
        owner = ctx.owner_sql('"Tags"')
        rows = ctx.rows(f"""
WITH lines AS (
  SELECT "ResourceId" AS rid, "ResourceName" AS rname, "ServiceName" AS service, "SubAccountName" AS account,
         {owner} AS team, "ChargePeriodStart" AS s, "ChargePeriodEnd" AS e, "EffectiveCost" AS cost,
         CAST("ConsumedQuantity" AS DOUBLE) AS qty, lower(trim("ConsumedUnit")) AS unit,
         CAST(date_trunc('day', "ChargePeriodStart") AS TIMESTAMP) AS day,
         (epoch("ChargePeriodEnd") - epoch("ChargePeriodStart")) / 3600.0 AS period_h,
         {hints} AS hints
  FROM focus_charges
  WHERE "ChargePeriodStart" >= $start::TIMESTAMP AND "ChargePeriodStart" < $end::TIMESTAMP
    AND "ChargePeriodEnd" > "ChargePeriodStart" AND "ResourceId" IS NOT NULL
    AND ("ServiceCategory" = 'Storage' OR regexp_matches({hints}, {storage}, 'i'))
    AND regexp_matches(concat_ws(' ', "ResourceId", "ResourceName",
                                 array_to_string(map_values(coalesce("Tags", MAP {{}})), ' ')), {names}, 'i')
), capacity AS (
  SELECT *, regexp_extract(unit, $unit_re, 1) AS size, regexp_extract(unit, $unit_re, 2) AS per
  FROM lines WHERE regexp_matches(coalesce(unit, ''), $unit_re)
), gbh AS (
  -- GB x hours each line bought: a month-integrated unit over the hours of the charge's month
  SELECT *, qty * CASE WHEN size LIKE 't%' THEN (CASE WHEN size LIKE '%i%' THEN 1024 ELSE 1000 END) ELSE 1 END
             * CASE WHEN per LIKE 'm%' THEN 24 * day(last_day(s)) WHEN per LIKE 'h%' THEN 1
                    WHEN per LIKE 'd%' THEN 24 ELSE period_h END AS gb_hours
  FROM capacity WHERE per <> '' OR NOT regexp_matches(hints, $not_stored)
), daily AS (
  SELECT rid, day, sum(gb_hours) / ((epoch(max(e)) - epoch(min(s))) / 3600.0) AS gb, sum(cost) AS cost,
         (epoch(max(e)) - epoch(min(s))) / 3600.0 AS hours
  FROM gbh GROUP BY rid, day
), steps AS (
  SELECT *, (lag(gb) OVER w - gb) / nullif(lag(gb) OVER w, 0) AS drop_share
  FROM daily WINDOW w AS (PARTITION BY rid ORDER BY day)
), series AS (
  SELECT rid, count(*) AS days, min(day) AS first_day, max(day) AS last_day, arg_min(gb, day) AS first_gb,
         arg_max(gb, day) AS last_gb, arg_max(cost, day) AS last_cost, arg_max(hours, day) AS last_hours,
         greatest(coalesce(max(drop_share), 0), 0) AS max_drop, sum(cost) AS cost
  FROM steps GROUP BY rid
), judged AS (
  SELECT s.*, (s.last_gb - s.first_gb) / s.first_gb AS growth,
         s.last_day - to_days($keep) AS cutoff, date_diff('day', s.first_day, s.last_day) AS span_days
  FROM series s
  WHERE s.days >= $min_days AND s.first_gb > 0 AND (s.last_gb - s.first_gb) / s.first_gb >= $growth
    AND s.max_drop < $drop AND s.last_cost > 0
), old AS (
  SELECT j.*,
         (SELECT arg_max(d.gb, d.day) FROM daily d WHERE d.rid = j.rid AND d.day <= j.cutoff) AS measured_gb,
         greatest(j.last_gb - (j.last_gb - j.first_gb) / j.span_days * $keep, 0) AS linear_gb
  FROM judged j
), meta AS (
  SELECT rid, any_value(rname) AS rname, mode(service) AS service, mode(account) AS account, mode(team) AS team,
         mode(unit) AS unit
  FROM gbh GROUP BY rid
)
SELECT o.*, m.rname, m.service, m.account, m.team, m.unit,
       coalesce(o.measured_gb, o.linear_gb) AS old_gb, o.measured_gb IS NOT NULL AS measured
FROM old o JOIN meta m USING (rid) ORDER BY o.last_cost DESC, o.rid""",
                        {"unit_re": UNIT_RE, "not_stored": NOT_STORED_RE, "keep": o.retention_days,
                         "min_days": o.min_days, "growth": o.min_growth_pct / 100, "drop": o.max_drop_pct / 100})
        for r in rows:
            finding = self._finding(ctx, r)
            if finding.monthly_saving > 0 and finding.monthly_saving >= o.min_monthly_saving:
                yield finding

    def _finding(self, ctx: RuleContext, r: dict) -> Finding:
        o = self.options
        last_gb, old_gb = float(r["last_gb"]), float(r["old_gb"] or 0)
        share = min(max(old_gb / last_gb, 0.0), 1.0) if last_gb > 0 else 0.0
        month_hours = Decimal(str(ctx.settings.waste.month_hours))
        last_cost = Decimal(r["last_cost"])
        monthly = last_cost * month_hours / Decimal(repr(float(r["last_hours"])))
        waste = monthly * Decimal(repr(share))
        keep_paying = Decimal(repr(self.ratio))
        saving = waste * (1 - keep_paying)
        name = r["rname"] or r["rid"]
        how = "measured on the day" if r["measured"] else "extrapolated linearly from the window's growth to"
        change = (f"Add {_lifecycle(r['service'] or '', o.action, o.retention_days)} to {name}: it grew "
                  f"{float(r['growth']):.0%} in {r['days']} days ({float(r['first_gb']):,.1f} -> {last_gb:,.1f} GB) "
                  f"and never shrank; {old_gb:,.1f} GB ({share:.0%}) is older than {o.retention_days} days")
        action = ("deleted" if o.action == "delete" else
                  f"moved to an archive tier priced at {self.ratio:g} of the current one")
        return Finding(
            rule=self.kind, scope_kind="resource", scope=r["rid"], owner=r["team"],
            evidence={"resource_name": r["rname"], "service": r["service"], "sub_account": r["account"],
                      "consumed_unit": r["unit"], "days": r["days"], "first_day": r["first_day"],
                      "last_day": r["last_day"], "stored_gb_first": round(float(r["first_gb"]), 3),
                      "stored_gb_last": round(last_gb, 3), "growth_pct": round(float(r["growth"]) * 100, 2),
                      "largest_daily_drop_pct": round(float(r["max_drop"]) * 100, 3),
                      "old_gb": round(old_gb, 3), "old_share": round(share, 4),
                      "old_share_method": "measured" if r["measured"] else "linear",
                      "last_day_cost": last_cost, "monthly_cost_at_end_rate": monthly,
                      "storage_cost_in_window": Decimal(r["cost"])},
            monthly_cost=monthly, monthly_waste=waste, monthly_saving=saving, recommendation=change,
            assumptions=[f"nothing deletes: the size never fell by {o.max_drop_pct:g}% or more in a day, so bytes "
                         f"stored {o.retention_days} days before the last day are still there and older than that",
                         f"the size {o.retention_days} days before the last day is {how} "
                         f"({r['cutoff']:%Y-%m-%d})",
                         f"data older than {o.retention_days} days is not needed and is {action}",
                         "the cost is the end-of-window rate (the last day's), which grows as the data does"],
            saving_formula=(f"old share {share:.4f} ({old_gb:,.1f} / {last_gb:,.1f} GB) x ${monthly:,.2f}/month "
                            f"(last day ${last_cost:,.2f} / {float(r['last_hours']):g} h x {month_hours} h) x "
                            f"(1 - {self.ratio:g}) = ${saving:,.2f}/month"),
            confidence="high" if r["measured"] else "medium",
            pool=f"resource:{r['rid']}", pool_cost=monthly)
