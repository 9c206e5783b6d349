"""The waste engine: rules in a registry, the shared views they query, findings, and savings that add up.

A rule (one file in ``aifinops/waste/rules/``) declares its id, title, the anti-pattern it targets, the data
it needs and its thresholds (a pydantic ``Options``; ``waste.rules.<id>`` in aifinops.yaml overrides them),
and yields ``Finding``s from SQL over the store. The engine:

1. clips the window to the data (a relative window ends where the data ends; ``all`` becomes the data's
   extent), so that "per month" means the window's amounts x ``month_hours`` / window hours;
2. skips a rule whose data is absent and says why (``Skipped``);
3. gives rules shared views built once per run (``RuleContext``): the hourly GPU allocation (idle as its own
   line), the cost and activity of every workload, the priced LLM requests;
4. reconciles savings (``reconcile``): findings that save out of the same dollars (the same ``pool``, e.g.
   scale-to-zero and a smaller GPU for one endpoint) are applied one after the other, largest first, each to
   what the ones before it left: ``achievable = saving x remaining / pool cost``; and a change to a whole node
   pool (a commitment) comes before the changes to the workloads on it, which then save on what it left. The
   total of achievable savings can always be reached by doing every change; the sum of raw savings could not.

A finding's id is a hash of its rule and scope, so the same waste found again is the same finding: its first
seen, status and dismissal reason survive (``store.findings``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import duckdb
from pydantic import BaseModel, ConfigDict, ValidationError

from ..analysis.gpu_allocation import Costing, allocation_sql, options_for
from ..analysis.llm_costs import SelfHosted, costed_sql
from ..analysis.windows import Window
from ..analysis.workload_costs import FAILED, SERVING_OWNERS, SUCCEEDED
from ..config import Settings
from ..model.checks import sql_str
from ..registry import Registry

MONEY = "DECIMAL(38, 12)"
CONFIDENCE = ("high", "medium", "low")
ZERO = Decimal(0)


class RuleError(ValueError):
    """A rule id or a rule's thresholds that cannot be used; the message names the rule and the key."""


#: Data a rule may need: name -> (SQL counting it, what to load when it is missing).
DATA: dict[str, tuple[str, str]] = {
    "gpu_nodes": ("SELECT count(*) FROM gpu_nodes WHERE gpu_count > 0",
                  "no GPU node inventory (aifinops ingest inventory / kubernetes)"),
    "workloads": ("SELECT count(*) FROM workloads WHERE gpu_share > 0",
                  "no GPU workloads (aifinops ingest kubernetes / slurm / workloads-csv)"),
    "gpu_samples": ("SELECT count(*) FROM gpu_samples WHERE NOT _superseded",
                    "no GPU telemetry (aifinops ingest dcgm / nvidia-smi / nvml)"),
    "llm_requests": ("SELECT count(*) FROM llm_requests WHERE NOT _superseded",
                     "no LLM requests (aifinops ingest otel / litellm / llm-usage)"),
    "focus_charges": ("SELECT count(*) FROM focus_charges", "no cloud bill (aifinops ingest focus)"),
    "run_metrics": ("SELECT count(*) FROM run_metrics WHERE NOT _superseded",
                    "no training-run metrics (aifinops ingest mlflow / run-metrics)"),
}


@dataclass
class Finding:
    """One piece of waste: what, where, whose, how much a month, what to change and how sure we are.

    Money is per month (the window's amounts scaled by ``RuleContext.monthly``). ``monthly_cost`` is the spend
    the finding is about, ``monthly_waste`` the part of it that buys nothing, ``monthly_saving`` what the
    recommended change would save on its own; ``achievable_saving`` is set by ``reconcile``. ``pool`` names the
    dollars the saving comes out of (``endpoint:<model>``, ``run:<run>``, ``workload:<id>``,
    ``node_pool:<pool>``, ``llm:<provider>/<model>/<feature>``, ``resource:<id>``) and ``pool_cost`` their
    monthly cost; without a pool a finding overlaps no other."""

    rule: str
    scope_kind: str
    scope: str
    owner: str | None
    evidence: dict[str, Any]
    monthly_cost: Decimal
    monthly_waste: Decimal
    monthly_saving: Decimal
    recommendation: str
    assumptions: list[str]
    saving_formula: str
    confidence: str = "medium"
    pool: str | None = None
    pool_cost: Decimal | None = None
    #: pools whose whole cost this finding's change removes (skipping a run): findings on them save nothing more
    covers: list[str] = field(default_factory=list)
    achievable_saving: Decimal = ZERO
    window: Window | None = None
    # from the store: a finding seen before keeps these
    status: str = "open"
    status_reason: str | None = None
    first_seen: datetime | None = None

    def __post_init__(self) -> None:
        if self.confidence not in CONFIDENCE:
            raise ValueError(f"{self.rule}: confidence {self.confidence!r} is not one of {CONFIDENCE}")
        self.monthly_cost, self.monthly_waste, self.monthly_saving = (
            Decimal(x or 0) for x in (self.monthly_cost, self.monthly_waste, self.monthly_saving))
        if self.pool_cost is not None:
            self.pool_cost = Decimal(self.pool_cost)

    @property
    def id(self) -> str:
        return finding_id(self.rule, self.scope_kind, self.scope)

    def record(self) -> dict[str, Any]:
        """The finding as the store keeps it (``store.findings``)."""
        return {
            "finding_id": self.id, "rule": self.rule, "scope_kind": self.scope_kind, "scope": self.scope,
            "owner": self.owner, "window_start": self.window.start if self.window else None,
            "window_end": self.window.end if self.window else None, "monthly_cost": self.monthly_cost,
            "monthly_waste": self.monthly_waste, "monthly_saving": self.monthly_saving,
            "achievable_saving": self.achievable_saving, "confidence": self.confidence,
            "recommendation": self.recommendation,
            "detail": {"evidence": self.evidence, "assumptions": self.assumptions,
                       "saving_formula": self.saving_formula, "pool": self.pool, "pool_cost": self.pool_cost,
                       "covers": self.covers}}


def finding_id(rule: str, scope_kind: str, scope: str) -> str:
    """Stable: the same rule on the same scope is the same finding, run after run."""
    return hashlib.sha256(f"{rule}\x1f{scope_kind}\x1f{scope}".encode()).hexdigest()[:12]


class Rule:
    """A waste rule. Subclasses set the class attributes, an ``Options`` model of thresholds with defaults, and
    ``find``; registering (``@rules.register("id")``) sets ``kind`` to the id."""

    kind: ClassVar[str]
    title: ClassVar[str]
    #: the anti-pattern, in a sentence a reviewer recognises
    targets: ClassVar[str]
    #: names of ``DATA`` that must hold rows, else the rule is skipped with DATA's reason
    needs: ClassVar[tuple[str, ...]] = ()

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        try:
            self.options = self.Options.model_validate(options or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise RuleError(f"waste.rules.{self.kind}: {problems}") from None

    def missing(self, ctx: RuleContext) -> str | None:
        """Why the rule cannot run on this store (None: it can). The default checks ``needs``."""
        for name in self.needs:
            if not ctx.count(name):
                return DATA[name][1]
        return None

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        raise NotImplementedError


rules: Registry[Rule] = Registry("aifinops.waste_rules", builtins=("aifinops.waste.rules.*",))


@dataclass
class Skipped:
    rule: str
    reason: str


@dataclass
class RunResult:
    window: Window
    findings: list[Finding]
    skipped: list[Skipped]
    ran: list[str]  # rule ids that ran (found something or not)
    seconds: dict[str, float] = field(default_factory=dict)  # per rule, the shared views counted where built

    @property
    def total_saving(self) -> Decimal:
        return sum((f.achievable_saving for f in self.findings if f.status != "dismissed"), ZERO)


class RuleContext:
    """What rules query: the window, settings, and views built once per run as temporary tables.

    - ``allocation()``: the hourly GPU allocation (``gpu_allocation.allocation_sql``) with idle as its own line
      (``share_idle`` none), whatever the reporting policy: waste is measured before idle is spread;
    - ``workloads()``: one row per workload holding GPUs in the window (``WORKLOAD_VIEW``);
    - ``requests()``: the priced LLM requests (``llm_costs.costed_sql``), self-hosted ones at their serving
      workloads' GPU cost.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, window: Window, settings: Settings | None = None) -> None:
        self.con = con
        self.window = window
        self.settings = settings or Settings()
        self._counts: dict[str, int] = {}
        self._built: set[str] = set()

    # -- money and time ---------------------------------------------------------------------------
    @property
    def hours(self) -> float:
        return (self.window.end - self.window.start).total_seconds() / 3600

    @property
    def month_factor(self) -> Decimal:
        """Window amounts x this = per month."""
        return Decimal(str(self.settings.waste.month_hours)) / Decimal(repr(max(self.hours, 1e-9)))

    def monthly(self, amount: Any) -> Decimal:
        """A window amount (Decimal, int or float) per month."""
        return Decimal(str(amount or 0)) * self.month_factor

    @property
    def params(self) -> dict[str, Any]:
        return {"start": self.window.start, "end": self.window.end}

    # -- queries ----------------------------------------------------------------------------------
    def count(self, data: str) -> int:
        if data not in self._counts:
            self._counts[data] = int(self.con.execute(DATA[data][0]).fetchall()[0][0])
        return self._counts[data]

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts; ``$start`` and ``$end`` are the window unless ``params`` says otherwise."""
        given = {**self.params, **(params or {})}
        used = {k: v for k, v in given.items() if f"${k}" in sql}
        cur = self.con.execute(sql, used)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def owner_sql(self, labels: str) -> str:
        """SQL: the owning team of a labels map (the first of ``waste.owner_labels`` present)."""
        keys = self.settings.waste.owner_labels
        return f"coalesce({', '.join(f'{labels}[{sql_str(k)}]' for k in keys)}, NULL::VARCHAR)" if keys \
            else "NULL::VARCHAR"

    def _build(self, name: str, sql: str) -> str:
        if name not in self._built:
            used = {k: v for k, v in self.params.items() if f"${k}" in sql}
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", used)
            self._built.add(name)
        return name

    def allocation(self) -> str:
        """Temp table: the hourly allocation rows (workload, node, hour; ``kind = 'idle'`` rows per node and
        hour), with the node's GPU model, pricing category, region and GPU count joined on."""
        opts = options_for(self.settings, share_idle="none")
        sql = f"""
SELECT a.*, n.gpu_model, n.pricing_category, n.region, n.gpu_count AS node_gpus, n.instance_type, n.provider
FROM ({allocation_sql(Costing.from_settings(self.settings), opts)}) a
LEFT JOIN (SELECT * FROM gpu_nodes
           QUALIFY row_number() OVER (PARTITION BY node ORDER BY _batch_id DESC, _row DESC) = 1) n
  ON n.node = a.node"""
        return self._build("_waste_allocation", sql)

    def workloads(self) -> str:
        """Temp table: one row per workload holding GPUs in the window (see ``WORKLOAD_VIEW``)."""
        alloc = self.allocation()
        s = self.settings
        ok, bad = (", ".join(sql_str(x) for x in group) for group in (SUCCEEDED, FAILED))
        owners = ", ".join(sql_str(o) for o in SERVING_OWNERS)
        run, model = sql_str(s.llm.training_labels.get("run", "run")), sql_str(s.llm.serving_label)
        threshold = float(s.allocation.idle_threshold)
        sql = f"""
WITH per AS (
  SELECT workload_id, sum("gpuCost" + "cpuCost" + "ramCost" + "sharedCost") AS cost, sum("gpuCost") AS gpu_cost,
         sum("gpuHours") AS gpu_hours,
         sum("gpuHours" * activity) FILTER (WHERE activity IS NOT NULL) AS used_hours,
         sum("gpuHours") FILTER (WHERE activity IS NOT NULL) AS seen_hours,
         coalesce(sum("gpuHours") FILTER (WHERE activity < {threshold}), 0) AS low_hours,
         coalesce(sum("gpuCost") FILTER (WHERE activity < {threshold}), 0) AS low_cost,
         count(DISTINCT bucket) AS hours, min(bucket) AS first_bucket, max(bucket) AS last_bucket,
         arg_max(node, "gpuHours") AS node, arg_max(node_pool, "gpuHours") AS node_pool,
         arg_max(gpu_model, "gpuHours") AS gpu_model, arg_max(pricing_category, "gpuHours") AS pricing_category,
         arg_max(region, "gpuHours") AS region, arg_max(provider, "gpuHours") AS provider,
         arg_max(instance_type, "gpuHours") AS instance_type, any_value(owner) AS node_owner
  FROM {alloc} WHERE kind NOT IN ('idle', 'shared') AND workload_id IS NOT NULL GROUP BY workload_id
), w AS (
  SELECT * FROM workloads QUALIFY row_number() OVER (PARTITION BY workload_id ORDER BY _batch_id DESC) = 1
)
SELECT p.*, w.name, w.namespace, w.kind, w.source, w.owner_kind, w.owner_name, w.phase, w.labels,
       w.annotations, w.start_ts, w.end_ts, w.gpu_count, w.gpu_share, w.gpu_resource, w.exit_code,
       p.used_hours / nullif(p.seen_hours, 0) AS activity,
       CAST(p.gpu_cost AS DOUBLE) / nullif(p.gpu_hours, 0) AS gpu_hour_price,
       {self.owner_sql("w.labels")} AS team,
       CASE WHEN lower(w.phase) IN ({bad}) THEN 'failed' WHEN lower(w.phase) IN ({ok}) THEN 'succeeded'
            ELSE 'running' END AS outcome,
       w.labels[{run}] AS run, w.labels[{model}] AS model,
       -- the unit people manage: a Deployment (its ReplicaSet's name without the pod-template-hash), a Job, a
       -- StatefulSet, else the workload itself
       coalesce(w.namespace, '') || '/' || coalesce(CASE WHEN lower(w.owner_kind) = 'replicaset'
                    AND w.labels['pod-template-hash'] IS NOT NULL
                    THEN regexp_replace(w.owner_name, '-' || w.labels['pod-template-hash'] || '$', '') END,
                  w.owner_name, w.name, p.workload_id) AS workload_group,
       w.labels[{model}] IS NOT NULL AND coalesce(w.source, '') <> 'slurm'
         AND (w.owner_kind IS NULL OR lower(w.owner_kind) IN ({owners})) AS serving,
       CASE WHEN w.labels[{run}] IS NOT NULL THEN 'run:' || w.labels[{run}]
            WHEN w.labels[{model}] IS NOT NULL AND coalesce(w.source, '') <> 'slurm'
              AND (w.owner_kind IS NULL OR lower(w.owner_kind) IN ({owners})) THEN 'endpoint:' || w.labels[{model}]
            ELSE 'workload:' || p.workload_id END AS pool
FROM per p JOIN w ON w.workload_id = p.workload_id"""
        return self._build("_waste_workloads", sql)

    def pool_costs(self) -> str:
        """Temp table: (pool, cost) of the workloads' pools in the window, for ``Finding.pool_cost``."""
        wl = self.workloads()
        return self._build("_waste_pools", f"SELECT pool, sum(cost) AS cost FROM {wl} GROUP BY pool")

    def parents(self) -> dict[str, str]:
        """Workload pool -> ``node_pool:<pool>`` of the GPUs it held most (named as idle-gpu-capacity and
        commitment-coverage name node pools), for the second level of ``reconcile``; empty when no rule built the
        workload view."""
        if "_waste_workloads" not in self._built:
            return {}
        rows = self.con.execute("SELECT pool, mode(coalesce(node_pool, gpu_model, 'default')) FROM _waste_workloads "
                                "GROUP BY pool").fetchall()
        return {pool: f"node_pool:{parent}" for pool, parent in rows}

    def served(self) -> list[SelfHosted]:
        """The self-hosted models' serving GPU cost in the window (as ``workload_costs.serving_costs``)."""
        wl = self.workloads()
        rows = self.con.execute(f"SELECT model, sum(cost), sum(gpu_hours), count(*) FROM {wl} WHERE serving "
                                "GROUP BY model ORDER BY model").fetchall()
        return [SelfHosted(m, Decimal(c or 0), float(h or 0), n) for m, c, h, n in rows]

    def llm_pools(self) -> str:
        """Temp table: (pool, cost, requests) of the priced requests' pools (``llm_pool_sql``), for
        ``Finding.pool_cost``."""
        req = self.requests()
        return self._build("_waste_llm_pools", f"SELECT {llm_pool_sql()} AS pool, sum(cost) AS cost, "
                           f"sum(coalesce(requests, 1)) AS requests FROM {req} GROUP BY 1")

    def requests(self) -> str:
        """Temp table: every LLM request of the window with its cost (``llm_costs.costed_sql``)."""
        if "_waste_requests" not in self._built:
            served = self.served() if self.count("workloads") and self.count("gpu_nodes") else []
            self._build("_waste_requests", costed_sql(self.con, self.settings.llm, served))
        return "_waste_requests"


def llm_pool_sql(alias: str = "") -> str:
    """SQL: the pool of a priced request (``llm:<provider>/<model>/<feature>``): the dollars every LLM rule's
    saving on that traffic comes out of."""
    p = f"{alias}." if alias else ""
    return (f"'llm:' || coalesce({p}provider, '') || '/' || coalesce({p}priced_model, '') || '/' || "
            f"coalesce({p}feature, '')")


def data_extent(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    """First and last (exclusive) instant of any data in the store: bills, telemetry, workloads, requests, runs."""
    row = con.execute("""
SELECT least((SELECT min("ChargePeriodStart") FROM focus_charges), (SELECT min(ts) FROM gpu_samples),
             (SELECT min(start_ts) FROM workloads), (SELECT min(ts) FROM llm_requests WHERE NOT _superseded),
             (SELECT min(coalesce(start_ts, ts)) FROM run_metrics WHERE NOT _superseded)),
       greatest((SELECT max("ChargePeriodEnd") FROM focus_charges), (SELECT max(ts) FROM gpu_samples),
                (SELECT max(coalesce(end_ts, start_ts)) FROM workloads),
                (SELECT max(ts) FROM llm_requests WHERE NOT _superseded),
                (SELECT max(coalesce(end_ts, ts)) FROM run_metrics WHERE NOT _superseded))""").fetchall()[0]
    return row[0], row[1]


def clip(window: Window, con: duckdb.DuckDBPyConnection) -> Window:
    """The window cut to the data where it overshoots it by more than a day (``all``, a window past the data),
    so that a month of findings is not diluted by days without data. A window that fits the data to within a
    day is kept as given: the last sample's time is not the end of what it measured."""
    first, last = data_extent(con)
    if first is None or last is None:
        return window
    start = first if first - window.start > timedelta(days=1) else window.start
    end = last if window.end - last > timedelta(days=1) else window.end
    return Window(start, end) if start < end else window


def make_rules(settings: Settings, only: list[str] | None = None) -> list[Rule]:
    """The rules to run with their thresholds from settings; unknown ids (in ``only``, ``waste.rules`` or
    ``waste.disabled``) are errors that list the known ones."""
    known = rules.names()
    w = settings.waste
    for where, ids in (("--rule", only or []), ("waste.rules", list(w.rules)), ("waste.disabled", w.disabled)):
        for rid in ids:
            if rid not in known:
                raise RuleError(f"{where}: unknown rule {rid!r} (known: {', '.join(known)})")
    chosen = only or [r for r in known if r not in w.disabled]
    return [rules.get(rid)(w.rules.get(rid)) for rid in chosen]


def reconcile(findings: list[Finding], parents: dict[str, str] | None = None) -> list[Finding]:
    """Set ``achievable_saving`` so that savings out of the same dollars never count twice (see the module
    docstring). Dismissed findings save nothing and take nothing from the pool.

    Two levels. First, findings of one pool compose, largest first, each on what the ones before it left.
    Second, ``parents`` maps a workload pool to the node pool its GPUs are on (``node_pool:<pool>``): a change to
    a whole node pool (a commitment) applies first, and the workload findings under it save only on what is
    left of the node pool's cost, ``achievable x (1 - node pool's own achievable / its cost)``: a run moved to
    spot after its GPUs were covered by a savings plan saves on the discounted price, not the list price.
    A finding that ``covers`` pools removes their whole cost (a retraining cycle not run): findings on those pools
    achieve nothing more."""
    by_pool: dict[str, list[Finding]] = {}
    for f in findings:
        if f.status == "dismissed":
            f.achievable_saving = ZERO
        elif f.pool is None or not f.pool_cost or f.pool_cost <= 0:
            f.achievable_saving = max(f.monthly_saving, ZERO)
        else:
            by_pool.setdefault(f.pool, []).append(f)
    for group in by_pool.values():
        group.sort(key=lambda f: (-f.monthly_saving, f.id))
        base = max(f.pool_cost or ZERO for f in group)
        remaining = base
        for f in group:
            saving = min(max(f.monthly_saving, ZERO), base)
            f.achievable_saving = (saving * remaining / base).quantize(Decimal("1e-12"))
            remaining -= f.achievable_saving
    for pool, parent in (parents or {}).items():
        own = by_pool.get(parent)
        if not own or pool not in by_pool or pool == parent:
            continue
        base = max(f.pool_cost or ZERO for f in own)
        left = max(base - sum((f.achievable_saving for f in own), ZERO), ZERO) / base
        for f in by_pool[pool]:
            f.achievable_saving = (f.achievable_saving * left).quantize(Decimal("1e-12"))
    covered = {p: f for f in findings if f.status != "dismissed" and f.achievable_saving > 0 for p in f.covers}
    for f in findings:
        coverer = covered.get(f.pool or "")
        if coverer is not None and coverer is not f:
            f.achievable_saving = ZERO
    return findings


def run(con: duckdb.DuckDBPyConnection, window: Window, settings: Settings | None = None,
        only: list[str] | None = None, known: dict[str, dict[str, Any]] | None = None) -> RunResult:
    """Run the rules over ``window`` (clipped to the data) and reconcile their savings. ``known`` is the store's
    state of findings seen before (``store.findings.states``): dismissed ones stay dismissed."""
    s = settings or Settings()
    chosen = make_rules(s, only)
    w = clip(window, con)
    ctx = RuleContext(con, w, s)
    findings: list[Finding] = []
    skipped: list[Skipped] = []
    ran: list[str] = []
    seconds: dict[str, float] = {}
    for rule in chosen:
        started = time.perf_counter()
        reason = rule.missing(ctx)
        if reason:
            skipped.append(Skipped(rule.kind, reason))
            continue
        ran.append(rule.kind)
        for f in rule.find(ctx):
            f.window = w
            findings.append(f)
        seconds[rule.kind] = time.perf_counter() - started
    for f in findings:
        state = (known or {}).get(f.id)
        if state:
            f.status, f.status_reason, f.first_seen = state["status"], state["status_reason"], state["first_seen"]
    reconcile(findings, ctx.parents())
    findings.sort(key=lambda f: (f.status == "dismissed", -f.achievable_saving, -f.monthly_saving, f.id))
    return RunResult(w, findings, skipped, ran, seconds)


#: The columns of ``RuleContext.workloads()``, for rule authors.
WORKLOAD_VIEW = """workload_id, name, namespace, workload_group (namespace/Deployment, Job, StatefulSet or
the workload's own name: the unit a finding about workloads names), kind, source, owner_kind, owner_name, phase, outcome
(succeeded | failed | running), labels, annotations, team, run, model, serving (a long-running workload serving
``model``), pool, start_ts, end_ts, gpu_count, gpu_share, gpu_resource, exit_code; in the window: cost (GPU + CPU +
memory + shared), gpu_cost, gpu_hours, used_hours, seen_hours (GPU-hours with telemetry), activity
(used / seen), low_hours and low_cost (held below allocation.idle_threshold), hours (hours it ran),
first_bucket, last_bucket; where it ran (the node it held most): node, node_pool, gpu_model, pricing_category,
region, provider, instance_type, node_owner; gpu_hour_price = gpu_cost / gpu_hours."""
