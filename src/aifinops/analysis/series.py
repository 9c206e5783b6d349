"""Time series of cost and usage per dimension value: what anomaly detection, forecasts and budgets read.

A **metric** says what is measured and where it comes from; each is one class that registers itself here:

- ``cost``: the ledger's EffectiveCost (usage-based charges), by any FOCUS column, ``tag:KEY`` or ``layer``;
- ``gpu_hours`` and ``gpu_cost``: the hourly GPU allocation (``analysis.gpu_allocation``: idle is its own
  ``__idle__`` series), by ``team``, ``namespace``, ``workload``, ``node``, ``node_pool``, ``model`` or
  ``label:KEY``;
- ``tokens``, ``requests`` and ``llm_cost``: the priced LLM requests (``analysis.llm_costs``), by ``model``,
  ``provider``, ``feature``, ``team``, ``service``, ``endpoint`` (= service), ``environment``, ``user``,
  ``tenant``, ``operation`` or ``tag:KEY`` (a request attribute).

Every metric gives, per (period, key), a value in its unit and the dollars behind it, so that an anomaly in
GPU-hours or tokens still has a dollar impact. ``llm_cost`` is the API price of requests; self-hosted models'
cost is their GPUs', which ``gpu_cost`` measures (counting it in both would count it twice).

Filters (``where``) are equality on dimension values, passed as query parameters, never pasted into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import Settings
from ..model.checks import sql_str
from ..registry import Registry
from .costs import Dimension, DimensionError, dimension_value, in_window, parse_by
from .gpu_allocation import IDLE, Costing, allocation_sql, options_for
from .layers import LayerRule
from .llm_costs import costed_sql
from .windows import Window

#: grain -> (period length, periods per season, truncation unit)
GRAINS: dict[str, tuple[timedelta, int, str]] = {"day": (timedelta(days=1), 7, "day"),
                                                 "hour": (timedelta(hours=1), 24, "hour")}
NONE = "(none)"


@dataclass
class Series:
    """keys x periods matrices of one metric by one dimension; a period without data is 0."""

    metric: str
    dimension: str
    grain: str
    unit: str
    keys: list[str]
    times: list[datetime]
    values: np.ndarray
    cost: np.ndarray

    def unit_cost(self) -> np.ndarray:
        """Dollars per unit of each series over its history (for the dollar impact of a usage change)."""
        v = self.values.sum(axis=1)
        return np.divide(self.cost.sum(axis=1), v, out=np.zeros(len(self.keys)), where=v != 0)


class Metric:
    """A measured quantity: its unit, the dimensions it can be split by, and a query for (period, keys, value,
    cost) rows."""

    name: ClassVar[str]
    unit: ClassVar[str]
    help: ClassVar[str]

    def __init__(self, con: duckdb.DuckDBPyConnection, settings: Settings | None = None,
                 rules: list[LayerRule] | None = None) -> None:
        self.con, self.settings, self.rules = con, settings or Settings(), rules or []

    def dimensions(self) -> str:
        raise NotImplementedError

    def frame(self, dims: list[str], window: Window, grain: str, where: dict[str, list[str]]) -> pa.Table:
        """Columns ``period``, ``k0`` .. ``k{n-1}`` (text), ``value``, ``cost`` (double)."""
        raise NotImplementedError

    def end(self) -> datetime | None:
        """Where the metric's data ends (exclusive): relative windows end here."""
        raise NotImplementedError


#: metrics by name; a plugin package adds one through the ``aifinops.metrics`` entry-point group
metrics: Registry[Metric] = Registry("aifinops.metrics")


def register(cls: type[Metric]) -> type[Metric]:
    return metrics.register(cls.name)(cls)


@register
class LedgerCost(Metric):
    name, unit, help = "cost", "USD", "the ledger's EffectiveCost of usage-based charges"

    def dimensions(self) -> str:
        return "a FOCUS column, tag:KEY or layer"

    def _table(self) -> Any:
        import ibis

        return ibis.duckdb.from_connection(self.con).table("focus_charges")

    def frame(self, dims: list[str], window: Window, grain: str, where: dict[str, list[str]]) -> pa.Table:
        t = in_window(self._table(), window)
        # a monthly fee or a one-time purchase lands on one day by the calendar, not by what anyone used
        t = t.filter(t.ChargeFrequency.fill_null("Usage-Based") == "Usage-Based")
        for d, values in where.items():
            t = t.filter(dimension_value(t, Dimension(d), self.rules).cast("string").fill_null(NONE).isin(values))
        unit = {"day": "D", "hour": "h"}[grain]
        keys = {f"k{i}": dimension_value(t, Dimension(d), self.rules).cast("string").fill_null(NONE)
                for i, d in enumerate(dims)}
        cost = t.EffectiveCost.sum().cast("float64")
        return t.group_by(period=t.ChargePeriodStart.truncate(unit), **keys).aggregate(value=cost, cost=cost) \
            .to_pyarrow()

    def end(self) -> datetime | None:
        return self.con.execute('SELECT max("ChargePeriodEnd") FROM focus_charges').fetchall()[0][0]


class SqlMetric(Metric):
    """A metric computed by one SQL statement over ``$start``/``$end``; dimensions are SQL expressions of it."""

    #: dimension -> SQL expression over the statement's columns
    dims: ClassVar[dict[str, str]]
    #: ``prefix:`` dimensions -> SQL of a map column (``label:KEY`` -> labels['KEY'])
    maps: ClassVar[dict[str, str]]
    value_sql: ClassVar[str]
    cost_sql: ClassVar[str]
    time_col: ClassVar[str]

    def source_sql(self) -> str:
        raise NotImplementedError

    def dimensions(self) -> str:
        return ", ".join([*self.dims, *(f"{p}:KEY" for p in self.maps)])

    def expr(self, dim: str) -> str:
        if dim in self.dims:
            return self.dims[dim]
        prefix, _, key = dim.partition(":")
        if prefix in self.maps and key:
            return self.maps[prefix].format(key=sql_str(key))
        raise DimensionError(f"unknown dimension {dim!r} for metric {self.name}: use {self.dimensions()}")

    def frame(self, dims: list[str], window: Window, grain: str, where: dict[str, list[str]]) -> pa.Table:
        keys = ", ".join(f"coalesce(CAST({self.expr(d)} AS VARCHAR), '{NONE}') AS k{i}" for i, d in enumerate(dims))
        params: dict[str, Any] = {"start": window.start, "end": window.end}
        filters = []
        for i, (d, values) in enumerate(where.items()):
            params[f"w{i}"] = [str(v) for v in values]
            filters.append(f"list_contains($w{i}, coalesce(CAST({self.expr(d)} AS VARCHAR), '{NONE}'))")
        sql = f"""SELECT date_trunc('{GRAINS[grain][2]}', {self.time_col}) AS period{', ' + keys if keys else ''},
       CAST(sum({self.value_sql}) AS DOUBLE) AS value, CAST(sum({self.cost_sql}) AS DOUBLE) AS cost
FROM ({self.source_sql()}) src
WHERE {self.time_col} >= $start AND {self.time_col} < $end{''.join(' AND ' + f for f in filters)}
GROUP BY ALL"""
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        return self.con.sql(sql, params=used).to_arrow_table()


_WORKLOAD_KEY = f"CASE WHEN kind = 'idle' THEN '{IDLE}' ELSE {{}} END"


class GpuMetric(SqlMetric):
    time_col = "bucket"
    cost_sql = '"gpuCost" + "cpuCost" + "ramCost" + "sharedCost"'
    maps: ClassVar[dict[str, str]] = {"label": _WORKLOAD_KEY.format("labels[{key}]"),
                                      "tag": _WORKLOAD_KEY.format("labels[{key}]")}

    @property
    def dims(self) -> dict[str, str]:  # type: ignore[override]
        teams = ", ".join(f"labels[{sql_str(k)}]" for k in self.settings.waste.owner_labels) or "NULL"
        model = sql_str(self.settings.llm.serving_label)
        return {"team": _WORKLOAD_KEY.format(f"coalesce({teams}, NULL::VARCHAR)"),
                "namespace": _WORKLOAD_KEY.format("namespace"), "workload": _WORKLOAD_KEY.format("name"),
                "model": _WORKLOAD_KEY.format(f"labels[{model}]"), "node": "node", "node_pool": "node_pool",
                "kind": "kind"}

    def source_sql(self) -> str:
        return allocation_sql(Costing.from_settings(self.settings), options_for(self.settings, share_idle="none"))

    def end(self) -> datetime | None:
        return self.con.execute("SELECT greatest((SELECT max(ts) FROM gpu_samples), (SELECT max(end_ts) FROM "
                                "workloads)) + INTERVAL 1 SECOND").fetchall()[0][0]


@register
class GpuHours(GpuMetric):
    name, unit, help = "gpu_hours", "GPU-hours", "GPU-hours held (idle: the __idle__ series)"
    value_sql = '"gpuHours"'


@register
class GpuCost(GpuMetric):
    name, unit, help = "gpu_cost", "USD", "the GPU fleet's allocated cost (idle: the __idle__ series)"
    value_sql = GpuMetric.cost_sql


class LlmMetric(SqlMetric):
    time_col = "ts"
    cost_sql = "coalesce(cost, 0)"
    dims: ClassVar[dict[str, str]] = {
        "model": "coalesce(priced_model, response_model, request_model)", "provider": "provider",
        "feature": "feature", "team": "team", "service": "service", "endpoint": "service",
        "environment": "environment", "user": "user_id", "tenant": "tenant", "operation": "operation",
        "api_key": "api_key", "status": "status"}
    maps: ClassVar[dict[str, str]] = {"tag": "attributes[{key}]", "attr": "attributes[{key}]"}

    def source_sql(self) -> str:
        return costed_sql(self.con, self.settings.llm, [])

    def end(self) -> datetime | None:
        return self.con.execute("SELECT max(ts) + INTERVAL 1 SECOND FROM llm_requests WHERE NOT _superseded") \
            .fetchall()[0][0]


@register
class Tokens(LlmMetric):
    name, unit, help = "tokens", "tokens", "input + output tokens of LLM requests"
    value_sql = "coalesce(input_tokens, 0) + coalesce(output_tokens, 0)"


@register
class Requests(LlmMetric):
    name, unit, help = "requests", "requests", "LLM requests"
    value_sql = "coalesce(requests, 1)"


@register
class LlmCost(LlmMetric):
    name, unit, help = "llm_cost", "USD", "the API price of LLM requests"
    value_sql = LlmMetric.cost_sql


def metric(con: duckdb.DuckDBPyConnection, name: str, settings: Settings | None = None,
           rules: list[LayerRule] | None = None) -> Metric:
    if name not in metrics.names():
        raise DimensionError(f"unknown metric {name!r}: use {', '.join(metrics.names())}")
    return metrics.get(name)(con, settings, rules)


def align(window: Window, grain: str) -> Window:
    """``window`` widened to whole periods of ``grain`` (a day starts at 00:00 UTC), so the matrix's periods are
    the ones the query truncates to."""
    step = GRAINS[grain][0]
    epoch = datetime(2000, 1, 3)  # a Monday, 00:00
    start = epoch + ((window.start - epoch) // step) * step
    end = epoch + -((epoch - window.end) // step) * step
    return Window(start, end)


def load(m: Metric, dim: str, window: Window, grain: str = "day",
         where: dict[str, list[str]] | None = None) -> Series:
    """The series of ``m`` by one dimension over ``window`` at ``grain``."""
    if grain not in GRAINS:
        raise DimensionError(f"unknown grain {grain!r}: use {', '.join(GRAINS)}")
    dims = parse_by(dim) if dim else []
    if len(dims) > 1:
        raise DimensionError(f"one dimension per series, not {dim!r}")
    window = align(window, grain)
    frame = m.frame([d.spec for d in dims], window, grain, where or {})
    return _matrix(m, dim or "total", window, grain, frame, "k0" if dims else None)


def load_children(m: Metric, dim: str, child: str, window: Window, grain: str,
                  parents: list[str]) -> tuple[Series, list[str], list[str]]:
    """The series of ``m`` by ``child`` under each of ``parents`` (values of ``dim``), in one query and one
    matrix: what root causes read for every anomaly of a scan at once. Returns the matrix (one row per parent and
    child) with each row's parent and child."""
    window = align(window, grain)
    frame = m.frame([dim, child], window, grain, {dim: parents})
    sep = "\x1f"  # the unit separator: in no dimension value
    frame = frame.append_column("pair", pc.binary_join_element_wise(frame.column("k0"), frame.column("k1"), sep))
    ser = _matrix(m, child, window, grain, frame, "pair")
    split = [k.split(sep, 1) for k in ser.keys]
    return ser, [a for a, _ in split], [b for _, b in split]


def _matrix(m: Metric, dim: str, window: Window, grain: str, frame: pa.Table, key: str | None) -> Series:
    """keys x periods matrices from a frame of (period, key, value, cost) rows, one per (key, period)."""
    step = GRAINS[grain][0]
    n = max(int((window.end - window.start) / step), 0)
    times = [window.start + i * step for i in range(n)]
    keys_col = frame.column(key).to_pylist() if key else ["total"] * frame.num_rows
    keys = sorted(set(keys_col))
    values, cost = np.zeros((len(keys), n)), np.zeros((len(keys), n))
    if frame.num_rows:
        index = {k: i for i, k in enumerate(keys)}
        rows = np.array([index[k] for k in keys_col])  # one per (key, period) of the aggregate, not per data row
        start = np.datetime64(window.start, "us")
        period = np.array(frame.column("period").to_numpy(zero_copy_only=False), dtype="datetime64[us]")
        col = ((period - start) // np.timedelta64(int(step.total_seconds()), "s")).astype(int)
        ok = (col >= 0) & (col < n)
        np.add.at(values, (rows[ok], col[ok]), np.nan_to_num(frame.column("value").to_numpy(zero_copy_only=False)
                                                             .astype(float))[ok])
        np.add.at(cost, (rows[ok], col[ok]), np.nan_to_num(frame.column("cost").to_numpy(zero_copy_only=False)
                                                           .astype(float))[ok])
    return Series(m.name, dim, grain, m.unit, keys, times, values, cost)
