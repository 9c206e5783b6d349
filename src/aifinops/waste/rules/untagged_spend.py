"""``untagged-spend``: spend nobody owns — bill lines, GPU workloads and LLM requests without the owner
tags that attribution needs.

Three scopes, each its own finding when above ``min_monthly_cost``:

- the ledger: positive EffectiveCost missing any of ``keys`` (default ``tag_keys``), per sub-account (the
  services it falls in are evidence; credits and refunds are not resources anyone tags, as in ``aifinops tags``);
- GPU workloads: allocated cost of workloads without an owner label (``waste.owner_labels``), per namespace;
- LLM requests: cost of requests without a team, per provider and model.

Tagging saves nothing by itself, so the saving is 0 and the waste is 0: the finding's cost is the spend that
cannot be attributed, and the change is who to ask to tag what.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ...model.checks import sql_str
from ..engine import DATA, Finding, Rule, RuleContext, rules


@rules.register("untagged-spend")
class UntaggedSpend(Rule):
    title = "Untagged spend"
    targets = "Spend that carries no team, project, environment or model tag, so no one owns or explains it"

    class Options(Rule.Options):
        #: tag keys every charge should carry (default: the settings' tag_keys)
        keys: list[str] | None = None
        #: scopes below this ($ per month) are not reported
        min_monthly_cost: Decimal = Field(Decimal(100), ge=0)

    def missing(self, ctx: RuleContext) -> str | None:
        if ctx.count("focus_charges") or ctx.count("workloads") or ctx.count("llm_requests"):
            return None
        return DATA["focus_charges"][1]

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        keys = self.options.keys or ctx.settings.tag_keys
        out: list[Finding] = []
        if ctx.count("focus_charges"):
            out += self._ledger(ctx, keys)
        if ctx.count("workloads") and ctx.count("gpu_nodes"):
            out += self._workloads(ctx)
        if ctx.count("llm_requests"):
            out += self._requests(ctx)
        return [f for f in out if f.monthly_cost >= self.options.min_monthly_cost]

    def _finding(self, ctx: RuleContext, scope: str, cost: Decimal, total: Decimal, evidence: dict,
                 change: str) -> Finding:
        return Finding(
            rule=self.kind, scope_kind="resource" if scope.startswith("ledger:") else "team", scope=scope, owner=None,
            evidence={**evidence, "untagged_cost_in_window": cost, "scope_cost_in_window": total,
                      "untagged_share": float(cost / total) if total else None},
            monthly_cost=ctx.monthly(cost), monthly_waste=Decimal(0), monthly_saving=Decimal(0),
            recommendation=change, assumptions=["tagging saves nothing by itself; it makes the spend ownable"],
            saving_formula="no saving: the finding is the spend that cannot be attributed", confidence="high")

    def _ledger(self, ctx: RuleContext, keys: list[str]) -> list[Finding]:
        has = " AND ".join(f"coalesce(trim(\"Tags\"[{sql_str(k)}]), '') <> ''" for k in keys) or "true"
        missing = ", ".join(f"CASE WHEN coalesce(trim(\"Tags\"[{sql_str(k)}]), '') = '' THEN {sql_str(k)} END"
                            for k in keys)
        rows = ctx.rows(f"""
WITH c AS (
  SELECT coalesce("SubAccountName", "SubAccountId", '') AS account, coalesce("ServiceName", '') AS service,
         "ResourceId", "EffectiveCost" AS cost, NOT ({has}) AS untagged,
         list_filter([{missing}], lambda x: x IS NOT NULL) AS missing
  FROM focus_charges
  WHERE "ChargePeriodStart" >= $start::TIMESTAMP AND "ChargePeriodStart" < $end::TIMESTAMP AND "EffectiveCost" > 0
), per_service AS (
  SELECT account, service, sum(cost) FILTER (WHERE untagged) AS untagged FROM c GROUP BY ALL
)
SELECT account, sum(cost) FILTER (WHERE untagged) AS untagged, sum(cost) AS total,
       count(DISTINCT "ResourceId") FILTER (WHERE untagged) AS resources,
       list_distinct(flatten(list(missing) FILTER (WHERE untagged))) AS missing_keys,
       arg_max("ResourceId", cost) FILTER (WHERE untagged) AS largest_resource,
       (SELECT list(service ORDER BY untagged DESC)[1:5] FROM per_service p
        WHERE p.account = c.account AND p.untagged > 0) AS services
FROM c GROUP BY account HAVING sum(cost) FILTER (WHERE untagged) > 0 ORDER BY untagged DESC""")
        return [self._finding(
            ctx, f"ledger:{r['account']}", Decimal(r["untagged"]), Decimal(r["total"]),
            {"sub_account": r["account"], "services": r["services"], "resources": r["resources"],
             "missing_keys": sorted(r["missing_keys"] or []), "largest_resource": r["largest_resource"]},
            f"Tag {r['resources']} resource(s) in {r['account'] or 'the account'} with "
            f"{', '.join(sorted(r['missing_keys'] or []))} (largest: {r['largest_resource']}; mostly "
            f"{', '.join(r['services'][:2])})") for r in rows]

    def _workloads(self, ctx: RuleContext) -> list[Finding]:
        wl = ctx.workloads()
        labels = ", ".join(ctx.settings.waste.owner_labels)
        rows = ctx.rows(f"""
SELECT coalesce(namespace, '') AS namespace, sum(cost) FILTER (WHERE team IS NULL) AS untagged, sum(cost) AS total,
       count(*) FILTER (WHERE team IS NULL) AS workloads,
       arg_max(coalesce(owner_name, name), cost) FILTER (WHERE team IS NULL) AS largest
FROM {wl} GROUP BY 1 HAVING sum(cost) FILTER (WHERE team IS NULL) > 0 ORDER BY untagged DESC""")
        return [self._finding(
            ctx, f"gpu-workloads:{r['namespace']}", Decimal(r["untagged"]), Decimal(r["total"]),
            {"namespace": r["namespace"], "workloads": r["workloads"], "largest": r["largest"]},
            f"Label {r['workloads']} GPU workload(s) in namespace {r['namespace'] or '(none)'} with one of: {labels} "
            f"(largest: {r['largest']})") for r in rows]

    def _requests(self, ctx: RuleContext) -> list[Finding]:
        req = ctx.requests()
        rows = ctx.rows(f"""
SELECT coalesce(provider, '') AS provider, coalesce(priced_model, '') AS model,
       sum(cost) FILTER (WHERE team IS NULL) AS untagged, sum(cost) AS total,
       sum(coalesce(requests, 1)) FILTER (WHERE team IS NULL) AS requests,
       mode(coalesce(service, api_key)) FILTER (WHERE team IS NULL) AS caller
FROM {req} GROUP BY 1, 2 HAVING sum(cost) FILTER (WHERE team IS NULL) > 0 ORDER BY untagged DESC""")
        return [self._finding(
            ctx, f"llm:{r['provider']}/{r['model']}", Decimal(r["untagged"]), Decimal(r["total"]),
            {"provider": r["provider"], "model": r["model"], "requests": r["requests"], "top_caller": r["caller"]},
            f"Set a team on {r['requests']:,} {r['model']} request(s) (top caller: {r['caller'] or 'unknown'}): "
            "an OTel resource attribute, LiteLLM team or key metadata") for r in rows]
