"""Prometheus ``/metrics``: the store's numbers as gauges and counters for Grafana.

``collect(con, settings)`` answers one scrape: a fresh ``CollectorRegistry`` holding one collector that yields
the families computed for this scrape, in the text exposition format. ``make_asgi`` serves it as
``GET /metrics`` with a ttl cache and a ``Memo``.

Choices, and why:

- **Windows end where the ledger ends**, not at the wall clock: bills arrive a day or more late, and a window
  ending now would show a quiet last day that is only missing data. ``day`` is the day holding that end, up
  to it; ``month`` the month to date; ``24h`` (GPU) the 24 hours before it. With no ledger, the latest end of
  the other data anchors them (``aifinops_window_end_timestamp_seconds`` says where they end).
- **One family per dimension** (``aifinops_team_cost_usd{team}``, ``aifinops_model_cost_usd{model}``,
  ``aifinops_layer_cost_usd{layer}``), not one ``aifinops_cost_usd{dimension, value}``: summing any family over
  its label gives the window's spend (``aifinops_cost_usd``), where a ``dimension`` label would make every
  ``sum()`` count each dollar three times; and Grafana's legends read ``{{team}}``.
- **Bounded cardinality**: every label whose values come from data (team, model, layer, node pool, LLM
  model, finding rule, anomaly metric) keeps its top N values by the family's money and folds the rest into
  one ``other`` series, in SQL (``capped_sql``), so the series of a family still add up to its total. A real
  value named ``other`` (the ``other`` cost layer) is folded in too, so labels stay unique. Ratios of the
  ``other`` series are computed from its summed parts. Budgets are not folded: there is one per budget in
  aifinops.yaml, and folding would hide the very budget someone configured to watch.
- **Sections fail alone**: a section that raises is logged and exposes its families without samples, with
  ``aifinops_scrape_section_success{section} 0``, so one broken analysis does not blank the dashboard.
- **Speed**: the month-to-date GPU allocation is most of a scrape (on the demo store at the end of its month,
  2 cores: about 0.5 s of 0.7 s). It runs once, for both GPU windows and the self-hosted models' serving cost,
  while the ledger and budgets run beside it on a second cursor; and a ``Memo`` keeps these data sections
  until the next ingest, so the scrapes between two loads only read findings, anomalies and freshness (35 ms).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import ibis
import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from .. import __version__
from ..analysis.costs import in_window
from ..analysis.gpu_allocation import COST_COLUMNS, Costing, allocation_sql, options_for
from ..analysis.layers import layer_expr, load_rules
from ..analysis.llm_costs import SelfHosted
from ..analysis.unit_costs import unit_costs_sql
from ..analysis.windows import Window
from ..analysis.workload_costs import COSTS, SERVING_OWNERS, serving_costs
from ..config import AllocationSettings, Settings
from ..governance import budgets as budgets_mod
from ..model.checks import sql_str
from ..store.schema import SCHEMA_VERSION

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
OTHER = "other"
UNTAGGED = "(untagged)"
NONE = "(none)"
#: the FOCUS tag naming the model a charge is for (``aifinops_model_cost_usd``)
MODEL_TAG = "model"
TICK = timedelta(microseconds=1)
_ALLOC = "_aifinops_metrics_alloc"  # this scrape's GPU allocation rows (a temp table, dropped at the end)
log = logging.getLogger(__name__)

#: source table -> SQL of where its data ends (``aifinops_data_end_timestamp_seconds``)
DATA_ENDS = {
    "focus_charges": 'SELECT max("ChargePeriodEnd") FROM focus_charges',
    "gpu_samples": "SELECT max(ts) FROM gpu_samples WHERE NOT _superseded",
    "workloads": "SELECT max(coalesce(end_ts, start_ts)) FROM workloads",
    "llm_requests": "SELECT max(ts) FROM llm_requests WHERE NOT _superseded",
    "outcomes": "SELECT max(ts) FROM outcomes WHERE NOT _superseded",
    "run_metrics": "SELECT max(coalesce(ts, end_ts, start_ts)) FROM run_metrics WHERE NOT _superseded",
}
_DAY = ("day: the day holding the end of the ledger, up to that end; month: the month to date. Windows end where "
        "the ledger ends, not at the wall clock: bills arrive late")
_GPU = ("24h: the hours starting in the 24 h before the end of the ledger; month: the month to date (bills arrive "
        "late: windows end where the ledger ends). From the hourly GPU allocation, idle its own line")


def capped_sql(relation: str, key: str, measures: Sequence[str], rank: str, top: int,
               partition: Sequence[str] = (), labels: Sequence[str] = ()) -> str:
    """SQL over ``relation`` (columns ``partition``, ``key``, ``labels``, ``measures``): per partition, the ``top``
    values of ``key`` by ``sum(rank)`` keep their name, the rest (and a value literally named ``other``) become
    one ``other`` row; measures are summed, so every partition's total is kept. Ordered largest first, ``other``
    last; an ``rn`` column gives the rank."""
    part = list(partition)
    p_list = "".join(f"{c}, " for c in part)
    g_part = "".join(f"g.{c}, " for c in part)
    over = f"PARTITION BY {', '.join(part)} " if part else ""
    on = " AND ".join([f"r.{c} IS NOT DISTINCT FROM g.{c}" for c in part] + [f"r.{key} = g.{key}"])
    g_labels = "".join(f"g.{c}, " for c in labels)
    sums = ", ".join(f"sum(g.{m}) AS {m}" for m in measures)
    order = ", ".join([*part, "rn", key, *labels])
    return f"""WITH g AS ({relation}),
k AS (SELECT {p_list}{key}, sum({rank}) AS v FROM g WHERE {key} <> '{OTHER}' GROUP BY ALL),
r AS (SELECT *, row_number() OVER ({over}ORDER BY v DESC NULLS LAST, {key}) AS rn FROM k)
SELECT {g_part}CASE WHEN r.rn <= {int(top)} THEN g.{key} ELSE '{OTHER}' END AS {key}, {g_labels}{sums},
       min(coalesce(r.rn, {int(top) + 1})) AS rn
FROM g LEFT JOIN r ON {on}
GROUP BY ALL ORDER BY {order}"""


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    used = {k: v for k, v in (params or {}).items() if f"${k}" in sql}
    cur = con.execute(sql, used)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _f(v: float | Decimal | None) -> float:
    return float(v) if v is not None else 0.0


def _epoch(t: datetime) -> float:
    return t.replace(tzinfo=UTC).timestamp()


@dataclass
class Windows:
    """Where this scrape's windows start; they all end at ``end``."""

    end: datetime
    day: datetime
    month: datetime
    last24h: datetime

    @classmethod
    def at(cls, end: datetime) -> Windows:
        at = end - TICK  # data ending 2026-11-01 00:00 is October's
        return cls(end, datetime(at.year, at.month, at.day), datetime(at.year, at.month, 1), end - timedelta(days=1))


@dataclass
class _Scrape:
    """The families of some sections, each section timed and isolated (one thread per _Scrape)."""

    families: dict[str, list[Metric]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    ok: dict[str, bool] = field(default_factory=dict)
    current: str = "meta"

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
        fam = GaugeMetricFamily(name, doc, labels=list(labels))
        self.families.setdefault(self.current, []).append(fam)
        return fam

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
        fam = CounterMetricFamily(name, doc, labels=list(labels))
        self.families.setdefault(self.current, []).append(fam)
        return fam

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        self.current = name
        start = time.perf_counter()
        try:
            yield
            self.ok[name] = True
        except Exception:
            log.exception("metrics section %s failed", name)
            self.ok[name] = False
        finally:
            self.seconds[name] = time.perf_counter() - start


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


# -- sections ------------------------------------------------------------------------------------------------

def _meta(s: _Scrape, con: duckdb.DuckDBPyConnection, ends: dict[str, datetime], w: Windows) -> None:
    bounds = s.gauge("aifinops_window_start_timestamp_seconds", "Where each window starts (Unix time)", ["window"])
    for name, t in (("day", w.day), ("month", w.month), ("24h", w.last24h)):
        bounds.add_metric([name], _epoch(t))
    s.gauge("aifinops_window_end_timestamp_seconds",
            "Where every window ends, the end of the ledger unless told (Unix time)").add_metric([], _epoch(w.end))
    info = s.gauge("aifinops_build_info", "aifinops version and store schema (always 1)",
                   ["version", "schema_version", "duckdb"])
    info.add_metric([__version__, str(SCHEMA_VERSION), duckdb.__version__], 1)
    fresh = s.gauge("aifinops_data_end_timestamp_seconds",
                    "Where each source table's data ends (Unix time): how fresh the numbers are", ["table"])
    for table, end in ends.items():
        fresh.add_metric([table], _epoch(end))
    last = s.gauge("aifinops_ingest_last_batch_timestamp_seconds", "When the last batch of each source finished "
                   "loading (Unix time)", ["source"])
    batches = s.counter("aifinops_ingest_batches", "Batches ingested, by source", ["source"])
    loaded = s.counter("aifinops_ingest_rows", "Rows loaded by ingest, by source (quarantined rows excluded)",
                       ["source"])
    quarantined = s.counter("aifinops_ingest_rows_quarantined", "Rows ingest quarantined, by source", ["source"])
    deliveries = s.counter("aifinops_alert_deliveries", "Alert delivery attempts, by channel and result",
                           ["channel", "result"])
    rows = _rows(con, "SELECT source_kind, count(*) AS n, sum(rows_loaded) AS loaded, sum(rows_quarantined) AS q, "
                      "max(epoch(started_at) + seconds) AS at FROM batches GROUP BY 1 ORDER BY 1")
    sent = _rows(con, "SELECT channel, CASE WHEN ok THEN 'ok' ELSE 'failed' END AS result, count(*) AS n "
                      "FROM alert_deliveries GROUP BY ALL ORDER BY ALL")
    for r in rows:
        last.add_metric([r["source_kind"]], _f(r["at"]))
        batches.add_metric([r["source_kind"]], r["n"])
        loaded.add_metric([r["source_kind"]], _f(r["loaded"]))
        quarantined.add_metric([r["source_kind"]], _f(r["q"]))
    for r in sent:
        deliveries.add_metric([r["channel"], r["result"]], r["n"])


def _ledger(s: _Scrape, con: duckdb.DuckDBPyConnection, settings: Settings, w: Windows, top: int) -> None:
    total = s.gauge("aifinops_cost_usd", f"EffectiveCost of the ledger's charges starting in the window ({_DAY})",
                    ["window"])
    dims = {
        "team": s.gauge("aifinops_team_cost_usd", "EffectiveCost by owning team (the first of waste.owner_labels "
                        f"among the charge's tags, else {UNTAGGED}); top N teams plus other ({_DAY})",
                        ["window", "team"]),
        "model": s.gauge("aifinops_model_cost_usd", f"EffectiveCost by the charge's '{MODEL_TAG}' tag (else "
                         f"{UNTAGGED}); top N models plus other ({_DAY})", ["window", "model"]),
        "layer": s.gauge("aifinops_layer_cost_usd", "EffectiveCost by cost layer (compute-gpu, storage, ...: "
                         f"layers.yaml); top N plus other ({_DAY})", ["window", "layer"]),
    }
    t = ibis.duckdb.from_connection(con).table("focus_charges")
    t = in_window(t, Window(w.month, w.end))
    charges = str(ibis.to_sql(t.select(start=t.ChargePeriodStart, cost=t.EffectiveCost, tags=t.Tags,
                                       layer=layer_expr(t, load_rules(settings.layers_file))), dialect="duckdb"))

    def tag(keys: list[str]) -> str:
        parts = [f"nullif(trim(tags[{sql_str(k)}]), '')" for k in keys]
        return f"coalesce({', '.join([*parts, sql_str(UNTAGGED)])})"

    long = f"""WITH c AS ({charges}),
    grp AS (SELECT start >= $day AS today, {tag(settings.waste.owner_labels)} AS team, {tag([MODEL_TAG])} AS model,
                   layer, sum(cost) AS cost FROM c GROUP BY ALL),
    win AS (SELECT 'month' AS win, * FROM grp UNION ALL SELECT 'day', * FROM grp WHERE today)
    SELECT win, 'team' AS dim, team AS val, cost FROM win UNION ALL SELECT win, 'model', model, cost FROM win
    UNION ALL SELECT win, 'layer', layer, cost FROM win"""
    rows = _rows(con, capped_sql(long, "val", ["cost"], "cost", top, partition=["win", "dim"]), {"day": w.day})
    [totals] = _rows(con, f"SELECT coalesce(sum(cost) FILTER (WHERE start >= $day), 0) AS day, "
                          f"coalesce(sum(cost), 0) AS month FROM ({charges})", {"day": w.day})
    for name, value in totals.items():
        total.add_metric([name], _f(value))
    for r in rows:
        dims[r["dim"]].add_metric([r["win"], r["val"]], _f(r["cost"]))


def _neutral(settings: Settings) -> AllocationSettings:
    """Allocation options for node pool economics: idle its own line and nothing spread across pools, so a
    pool's cost is its nodes' cost (allocated + idle), whatever sharing the allocation settings ask for."""
    return options_for(settings, share_idle="none", share_namespaces=[], share_labels={})


def _gpu(s: _Scrape, con: duckdb.DuckDBPyConnection, settings: Settings, w: Windows, top: int) -> None:
    cost = s.gauge("aifinops_gpu_cost_usd", f"What a node pool's GPU nodes cost: allocated + idle ({_GPU})",
                   ["window", "node_pool"])
    idle = s.gauge("aifinops_gpu_idle_cost_usd", "Idle GPU cost by node pool: kind=unallocated (no workload held "
                   "the GPUs), kind=allocated (held below allocation.idle_threshold activity); top N pools by "
                   f"cost plus other ({_GPU})", ["window", "node_pool", "kind"])
    hours = s.gauge("aifinops_gpu_hours", f"GPU-hours by node pool, held by workloads or not ({_GPU})",
                    ["window", "node_pool", "state"])
    eff = s.gauge("aifinops_gpu_efficiency_ratio", "Used / held GPU-hours over the hours with telemetry (SM "
                  f"activity first); no sample for a pool without telemetry ({_GPU})", ["window", "node_pool"])
    opts = _neutral(settings)
    start = min(w.month, w.last24h)
    # only the columns read below: energy, carbon and cost by use are then never computed
    costs = ", ".join(f'"{c}"' for c in COST_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_ALLOC} AS SELECT bucket, kind, node_pool, workload_id, "
                f'"gpuHours", activity, {costs} FROM ({allocation_sql(Costing.from_settings(settings), opts)})',
                {"start": start, "end": w.end})
    total = " + ".join(f'"{c}"' for c in COST_COLUMNS)
    held, seen = "kind <> 'idle'", "kind <> 'idle' AND activity IS NOT NULL"
    pools = f"""SELECT w.win, coalesce(a.node_pool, '{NONE}') AS val, sum({total}) AS cost,
      coalesce(sum({total}) FILTER (WHERE kind = 'idle'), 0) AS idle_unallocated,
      coalesce(sum("gpuCost") FILTER (WHERE {seen} AND activity < $threshold), 0) AS idle_allocated,
      coalesce(sum("gpuHours") FILTER (WHERE {held}), 0) AS hours_allocated,
      coalesce(sum("gpuHours") FILTER (WHERE kind = 'idle'), 0) AS hours_unallocated,
      sum("gpuHours" * activity) FILTER (WHERE {seen}) AS used_hours,
      sum("gpuHours") FILTER (WHERE {seen}) AS seen_hours
    FROM {_ALLOC} a JOIN (VALUES ('24h', $h24::TIMESTAMP), ('month', $month::TIMESTAMP)) w(win, start)
      ON a.bucket >= w.start GROUP BY ALL"""
    measures = ["cost", "idle_unallocated", "idle_allocated", "hours_allocated", "hours_unallocated", "used_hours",
                "seen_hours"]
    rows = _rows(con, capped_sql(pools, "val", measures, "cost", top, partition=["win"]),
                 {"h24": w.last24h, "month": w.month, "threshold": opts.idle_threshold})
    for r in rows:
        labels = [r["win"], r["val"]]
        cost.add_metric(labels, _f(r["cost"]))
        idle.add_metric([*labels, "unallocated"], _f(r["idle_unallocated"]))
        idle.add_metric([*labels, "allocated"], _f(r["idle_allocated"]))
        hours.add_metric([*labels, "allocated"], _f(r["hours_allocated"]))
        hours.add_metric([*labels, "unallocated"], _f(r["hours_unallocated"]))
        if r["seen_hours"]:
            eff.add_metric(labels, _f(r["used_hours"]) / _f(r["seen_hours"]))


def served(con: duckdb.DuckDBPyConnection, settings: Settings, w: Windows, alloc: bool) -> dict[str, list[SelfHosted]]:
    """Per window (day, month): each self-hosted model's serving GPU cost, as ``workload_costs.serving_costs``
    computes it. When the allocation settings share nothing (the default) it is read from this scrape's
    allocation rows (``alloc``) instead of allocating the month again."""
    windows = {"day": Window(w.day, w.end), "month": Window(w.month, w.end)}
    if not alloc or options_for(settings) != _neutral(settings):
        return {name: serving_costs(con, win, settings) for name, win in windows.items()}
    label = sql_str(settings.llm.serving_label)
    owners = ", ".join(sql_str(o) for o in SERVING_OWNERS)
    rows = con.execute(f"""
WITH per AS (
  SELECT w.win, a.workload_id, sum({COSTS}) AS cost, sum("gpuHours") AS gpu_hours
  FROM {_ALLOC} a JOIN (VALUES ('day', $day::TIMESTAMP), ('month', $month::TIMESTAMP)) w(win, start)
    ON a.bucket >= w.start WHERE a.kind <> 'idle' GROUP BY ALL
), latest AS (SELECT * FROM workloads QUALIFY row_number() OVER (PARTITION BY workload_id ORDER BY _batch_id DESC) = 1)
SELECT p.win, l.labels[{label}] AS model, sum(p.cost), sum(p.gpu_hours), count(*)
FROM per p JOIN latest l ON l.workload_id = p.workload_id
WHERE l.labels[{label}] IS NOT NULL AND coalesce(l.source, '') <> 'slurm'
  AND (l.owner_kind IS NULL OR lower(l.owner_kind) IN ({owners}))
GROUP BY ALL ORDER BY 1, 2""", {"day": w.day, "month": w.month}).fetchall()
    out: dict[str, list[SelfHosted]] = {"day": [], "month": []}
    for win, model, c, h, n in rows:
        out[win].append(SelfHosted(model, Decimal(c or 0), float(h or 0), n))
    return out


def _llm(s: _Scrape, con: duckdb.DuckDBPyConnection, settings: Settings, w: Windows, top: int, alloc: bool) -> None:
    doc = f"by model (the response model, else the request model); top N models by cost plus other ({_DAY})"
    cost = s.gauge("aifinops_llm_cost_usd", "Cost of LLM requests at the price in force (self-hosted models: their "
                   f"serving GPUs' cost spread over their tokens), {doc}", ["window", "model"])
    tokens = s.gauge("aifinops_llm_tokens", f"Input + output tokens of LLM requests, {doc}", ["window", "model"])
    unpriced = s.gauge("aifinops_llm_unpriced_tokens", f"Tokens of requests no price covers (not costed at 0), {doc}",
                       ["window", "model"])
    requests = s.gauge("aifinops_llm_requests", f"LLM requests, {doc}", ["window", "model"])
    per_1k = s.gauge("aifinops_llm_cost_per_1k_tokens_usd", f"Cost per 1,000 priced tokens, {doc}",
                     ["window", "model"])
    serving = served(con, settings, w, alloc)
    for name, start in (("day", w.day), ("month", w.month)):
        sql = unit_costs_sql(con, ["model"], "window", settings.llm, serving[name])
        rel = (f"SELECT coalesce(k0, '{NONE}') AS val, requests, input_tokens + output_tokens AS tokens, "
               f"unpriced_tokens, cost FROM ({sql})")
        for r in _rows(con, capped_sql(rel, "val", ["requests", "tokens", "unpriced_tokens", "cost"], "cost", top),
                       {"start": start, "end": w.end}):
            labels = [name, r["val"]]
            cost.add_metric(labels, _f(r["cost"]))
            tokens.add_metric(labels, _f(r["tokens"]))
            unpriced.add_metric(labels, _f(r["unpriced_tokens"]))
            requests.add_metric(labels, _f(r["requests"]))
            if (priced := _f(r["tokens"]) - _f(r["unpriced_tokens"])) > 0:
                per_1k.add_metric(labels, _f(r["cost"]) * 1000 / priced)


def _budgets(s: _Scrape, con: duckdb.DuckDBPyConnection, settings: Settings, w: Windows) -> None:
    doc = "of the budget's period holding the end of the ledger (budgets: in aifinops.yaml; one series per budget)"
    amount = s.gauge("aifinops_budget_amount_usd", f"Amount {doc}", ["budget"])
    spent = s.gauge("aifinops_budget_spent_usd", f"EffectiveCost spent in the scope so far, {doc}", ["budget"])
    forecast = s.gauge("aifinops_budget_forecast_usd", f"Forecast spend at period end (mean), {doc}", ["budget"])
    spent_r = s.gauge("aifinops_budget_spent_ratio", f"Spent / amount, {doc}", ["budget"])
    forecast_r = s.gauge("aifinops_budget_forecast_ratio", f"Forecast at period end / amount, {doc}", ["budget"])
    for b in budgets_mod.status(con, settings, at=w.end - TICK):
        a = float(b.amount)
        amount.add_metric([b.name], a)
        spent.add_metric([b.name], float(b.spent))
        forecast.add_metric([b.name], b.forecast["mean"])
        spent_r.add_metric([b.name], float(b.spent) / a)
        forecast_r.add_metric([b.name], b.forecast["mean"] / a)


def _findings(s: _Scrape, con: duckdb.DuckDBPyConnection, top: int) -> None:
    count = s.gauge("aifinops_findings_open", "Open waste findings (found by the latest run of their rule, not "
                    "accepted or dismissed), by rule; top N rules by saving plus other", ["rule"])
    saving = s.gauge("aifinops_findings_open_monthly_saving_usd", "Monthly achievable saving of the open findings, "
                     "by rule; top N rules by saving plus other", ["rule"])
    rel = ("SELECT rule AS val, count(*) AS n, coalesce(sum(achievable_saving), 0) AS saving FROM findings "
           "WHERE status = 'open' AND active GROUP BY 1")
    for r in _rows(con, capped_sql(rel, "val", ["n", "saving"], "saving", top)):
        count.add_metric([r["val"]], r["n"])
        saving.add_metric([r["val"]], _f(r["saving"]))


def _anomalies(s: _Scrape, con: duckdb.DuckDBPyConnection, top: int) -> None:
    labels = ["metric", "severity", "direction"]
    count = s.gauge("aifinops_anomalies_open", "Open anomalies (reported by the latest scan, no feedback yet), by "
                    "metric, severity and direction; top N metrics by impact plus other", labels)
    impact = s.gauge("aifinops_anomalies_open_impact_usd", "Dollar impact of the open anomalies (actual - expected; "
                     "negative for drops), by metric, severity and direction", labels)
    rel = (f"SELECT metric AS val, coalesce(severity, '{NONE}') AS severity, coalesce(direction, '{NONE}') AS "
           "direction, count(*) AS n, coalesce(sum(impact_cost), 0) AS impact, coalesce(sum(abs(impact_cost)), 0) "
           "AS size FROM anomalies WHERE status = 'open' AND active GROUP BY ALL")
    for r in _rows(con, capped_sql(rel, "val", ["n", "impact", "size"], "size", top,
                                   labels=["severity", "direction"])):
        key = [r["val"], r["severity"], r["direction"]]
        count.add_metric(key, r["n"])
        impact.add_metric(key, _f(r["impact"]))


# -- the scrape ----------------------------------------------------------------------------------------------

def data_ends(con: duckdb.DuckDBPyConnection) -> dict[str, datetime]:
    """Where each source table's data ends (tables without data are left out)."""
    row = con.execute("SELECT " + ", ".join(f"({sql})" for sql in DATA_ENDS.values())).fetchone() or ()
    return {t: v for t, v in zip(DATA_ENDS, row, strict=True) if v is not None}


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


SECTIONS = ("meta", "ledger", "gpu", "llm", "budgets", "findings", "anomalies")
#: sections computed from the store's data alone, which a ``Memo`` may reuse while that data is unchanged
DATA_SECTIONS = ("ledger", "gpu", "llm", "budgets")
#: what changes when data is loaded: every ingest adds a batch, and the tables' row counts move
_FINGERPRINT = ("SELECT (SELECT count(*) FROM batches), (SELECT max(batch_id) FROM batches), "
                "(SELECT sum(rows_replaced) FROM batches), " + ", ".join(
                    f"(SELECT count(*) FROM {t})" for t in ("focus_charges", "gpu_samples", "workloads", "gpu_nodes",
                                                           "llm_requests", "llm_prices", "outcomes")))


@dataclass
class Memo:
    """The data sections of the last scrape (ledger, GPU, LLM, budgets) and what they were computed from. A scrape
    of the same data (no batch loaded since, same row counts), settings and windows reuses them: the month's GPU
    allocation runs once per ingest, not once per scrape. Findings, anomalies and the rest are read every time.
    One memo per endpoint; not for concurrent use (``MetricsEndpoint`` holds its lock around it)."""

    key: tuple[object, ...] | None = None
    data: _Scrape | None = None


def _merge(*parts: _Scrape) -> _Scrape:
    out = _Scrape()
    for p in parts:
        out.families.update(p.families)
        out.seconds.update(p.seconds)
        out.ok.update(p.ok)
    return out


def anchor(ends: dict[str, datetime], now: datetime | None = None) -> datetime:
    """Where the windows end: ``now`` if given, else the end of the ledger (bills arrive late), else the latest
    end of the other data, else the wall clock."""
    if now is not None:
        return _naive(now)
    return ends.get("focus_charges") or max(ends.values(), default=datetime.now(UTC).replace(tzinfo=None))


def _key(con: duckdb.DuckDBPyConnection, settings: Settings, w: Windows, top: int) -> tuple[object, ...]:
    layers = settings.layers_file
    stamp = layers.stat().st_mtime_ns if layers is not None and layers.exists() else None
    return (con.execute(_FINGERPRINT).fetchone(), w, top, settings.model_dump_json(), stamp)


def _data(con: duckdb.DuckDBPyConnection, settings: Settings, w: Windows, top: int) -> _Scrape:
    """The data sections: the GPU allocation and the LLM costs that read it on ``con``; the ledger and budgets
    beside them on a second cursor of the same database (the allocation query alone does not keep two cores busy:
    side by side, the demo's scrape takes 0.7 s instead of 1.0 s)."""
    main, side = _Scrape(), _Scrape()

    def beside(cur: duckdb.DuckDBPyConnection) -> None:
        with side.section("ledger"):
            _ledger(side, cur, settings, w, top)
        with side.section("budgets"):
            _budgets(side, cur, settings, w)

    cur = con.cursor()
    try:
        with ThreadPoolExecutor(1) as pool:
            other = pool.submit(beside, cur)
            try:
                with main.section("gpu"):
                    _gpu(main, con, settings, w, top)
                with main.section("llm"):
                    _llm(main, con, settings, w, top, main.ok["gpu"])
            finally:
                con.execute(f"DROP TABLE IF EXISTS temp.{_ALLOC}")
            other.result()
    finally:
        cur.close()
    return _merge(main, side)


def collect(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime | None = None, top: int = 10,
            memo: Memo | None = None) -> bytes:
    """Every metric as Prometheus text. ``now``: where the windows end (default: see ``anchor``); ``top``: values
    kept per label before ``other``; ``memo``: reuse the data sections while the store's data is unchanged."""
    if top < 1:
        raise ValueError("top must be at least 1")
    started = time.perf_counter()
    ends = data_ends(con)
    w = Windows.at(anchor(ends, now))
    meta, fresh = _Scrape(), _Scrape()
    with meta.section("meta"):
        _meta(meta, con, ends, w)
    key = _key(con, settings, w, top) if memo is not None else None
    if memo is not None and memo.data is not None and memo.key == key:
        data, reused = memo.data, True
    else:
        data, reused = _data(con, settings, w, top), False
        if memo is not None and all(data.ok.values()):  # a failed section is tried again next time
            memo.key, memo.data = key, data
    with fresh.section("findings"):
        _findings(fresh, con, top)
    with fresh.section("anomalies"):
        _anomalies(fresh, con, top)
    every = _merge(meta, data, fresh)
    stats = _Scrape(current="scrape")
    ok = stats.gauge("aifinops_scrape_section_success", "Whether each section of the scrape succeeded (0: see the "
                     "server log; its families have no samples)", ["section"])
    took = stats.gauge("aifinops_scrape_section_duration_seconds", "Seconds each section took when it was computed",
                       ["section"])
    cached = stats.gauge("aifinops_scrape_section_cached", "1: the section's numbers were reused from an earlier "
                         "scrape of the same data (no ingest since)", ["section"])
    for name in SECTIONS:
        ok.add_metric([name], 1 if every.ok[name] else 0)
        took.add_metric([name], every.seconds[name])
        cached.add_metric([name], 1 if reused and name in DATA_SECTIONS else 0)
    stats.gauge("aifinops_scrape_duration_seconds", "Seconds this scrape took to compute").add_metric(
        [], time.perf_counter() - started)
    families = [f for name in SECTIONS for f in every.families.get(name, [])]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families + stats.families["scrape"]))
    return generate_latest(registry)


# -- serving -------------------------------------------------------------------------------------------------

class MetricsEndpoint:
    """An ASGI app answering GET/HEAD with ``collect()``, computed at most once per ``ttl`` seconds: scrapes
    inside the ttl get the same body, and concurrent scrapes of a stale cache wait for one computation. Its
    ``Memo`` keeps the data sections between computations until the next ingest."""

    def __init__(self, open_cursor: Callable[[], duckdb.DuckDBPyConnection], settings: Settings, ttl: float = 15.0,
                 top: int = 10, authorize: Callable[[Request], bool] | None = None) -> None:
        self.open_cursor, self.settings, self.ttl, self.top, self.authorize = open_cursor, settings, ttl, top, authorize
        self._lock = threading.Lock()
        self._body: bytes | None = None
        self._at = 0.0
        self._memo = Memo()

    def body(self) -> bytes:
        """The cached exposition, recomputed when older than the ttl."""
        with self._lock:
            if self._body is None or time.monotonic() - self._at >= self.ttl:
                self._body = collect(self.open_cursor(), self.settings, top=self.top, memo=self._memo)
                self._at = time.monotonic()
            return self._body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # served on its own (tests, a side port): nothing to start
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        request = Request(scope, receive)
        response: Response
        if request.method not in ("GET", "HEAD"):
            response = PlainTextResponse("use GET\n", status_code=405, headers={"Allow": "GET, HEAD"})
        elif self.authorize is not None and not await run_in_threadpool(self.authorize, request):
            response = PlainTextResponse("a token that may read every team's numbers is needed\n", status_code=401,
                                         headers={"WWW-Authenticate": "Bearer"})
        else:
            try:
                response = Response(await run_in_threadpool(self.body), media_type=CONTENT_TYPE)
            except Exception as exc:  # Prometheus marks the target down (up == 0) and keeps the message
                log.exception("metrics scrape failed")
                response = PlainTextResponse(f"scrape failed: {exc}\n", status_code=500)
        await response(scope, receive, send)


def make_asgi(open_cursor: Callable[[], duckdb.DuckDBPyConnection], settings: Settings, ttl: float = 15.0, *,
              top: int = 10, authorize: Callable[[Request], bool] | None = None) -> MetricsEndpoint:
    """``GET /metrics`` as one line: ``app.add_route("/metrics", make_asgi(db.cursor, settings))``.
    ``open_cursor`` gives a read cursor of the store (it is not closed: a per-thread cursor can be reused);
    ``authorize(request)``, when given, must return True for the scrape to be answered (401 otherwise)."""
    return MetricsEndpoint(open_cursor, settings, ttl, top, authorize)
