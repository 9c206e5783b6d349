"""What-if scenarios over a forecast (``aifinops forecast --scenario scenarios.yaml``).

A file is a list of named scenarios, each a list of drivers. A driver has an optional ``start`` (a date or a
time, UTC; default: where the forecast starts) and an optional ``scope`` ({dimension: value or [values]}: the
series of the forecast's dimension it applies to; default all). Four kinds:

- ``growth: {pct: 20}`` -- user growth: the in-scope forecast times (1 + pct/100), ramped linearly from
  ``start`` (x1) to the period end (x(1 + pct/100)); ``ramp: false`` makes it a step at ``start``;
- ``price_change: {pct: -10}`` -- in-scope spend times (1 + pct/100) from ``start`` (a step; money metrics only);
- ``new_feature: {requests_per_day, input_tokens, output_tokens, model, provider}`` -- adds requests/day x
  (input x input price + output x output price) from ``start``, priced by the store's price catalogs and
  ``llm.prices`` (``analysis.llm_prices``, the rule ``aifinops prices show`` explains) at ``start``, or at an
  explicit ``input_per_mtok`` / ``output_per_mtok``; on ``tokens`` it adds the tokens, on ``requests`` the
  requests;
- ``training_run: {gpus, days, gpu_type, price_per_gpu_hour}`` -- adds gpus x 24 h x days x price, spread evenly
  over the run's days from ``start`` (the part after the period end is not in the period); the price defaults
  to ``gpu_prices`` in aifinops.yaml (the longest name contained in ``gpu_type``), else the bundled GPU market
  snapshot's median on-demand $/GPU-hour (``waste/gpu_market.py``); on ``gpu_hours`` it adds the GPU-hours.

**Arithmetic per forecast period** (each period's part that is still ahead, [a, b)): a ramp's factor is its
average over [a, b) (exact for a linear ramp: the integral of the ramp over the part, over its length); a step's
is 1 + pct/100 x the share of [a, b) after ``start``; added spend is its rate x the overlap of [a, b) with the
driver's time. Factors of several drivers multiply; added amounts add. Growth and price changes scale the base
forecast, mean and bounds alike; spend a driver adds is known, so it shifts the interval without widening it.
Added spend lands on the series its scope names (the forecast's dimension, one value that is a series), else on
a series of its own named after the driver, e.g. ``(scenario) new_feature: gpt-4o-mini``; it counts in the
total either way. A driver whose scope is on another dimension than the forecast's cannot say which part of a
series it touches: growth and price changes are then skipped, and the notes say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, model_validator

from ..config import Settings, where_in_yaml, yaml_lines
from ..waste.gpu_market import GpuMarket
from . import llm_prices
from .forecast import ForecastError
from .projection import Band, Projection

KINDS = ("growth", "price_change", "new_feature", "training_run")
#: metric -> the unit a driver that adds something adds in it (money metrics not listed: dollars, if the unit
#: is USD)
ADDS = {"new_feature": {"tokens": "tokens", "requests": "requests", "gpu_cost": None, "gpu_hours": None},
        "training_run": {"gpu_hours": "GPU-hours", "llm_cost": None, "tokens": None, "requests": None}}
BASE = "base"


class ScenarioError(ForecastError):
    """A scenario file that cannot be used; the message names the file and the line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Growth(_Strict):
    #: % more usage at the period end (negative: fewer users)
    pct: float = Field(ge=-100)
    #: linear from start to the period end; false: the whole change from start
    ramp: bool = True


class PriceChange(_Strict):
    pct: float = Field(ge=-100)


class NewFeature(_Strict):
    requests_per_day: float = Field(gt=0)
    #: tokens per request
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    model: str = Field(min_length=1)
    provider: str | None = None
    #: USD per 1M tokens; both or neither (neither: the price catalogs')
    input_per_mtok: Decimal | None = Field(None, ge=0)
    output_per_mtok: Decimal | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _both_prices(self) -> NewFeature:
        if (self.input_per_mtok is None) != (self.output_per_mtok is None):
            raise ValueError("give both input_per_mtok and output_per_mtok, or neither (the catalogs' price)")
        return self


class TrainingRun(_Strict):
    gpus: int = Field(gt=0)
    days: float = Field(gt=0)
    gpu_type: str = Field(min_length=1)
    price_per_gpu_hour: Decimal | None = Field(None, ge=0)


class Driver(_Strict):
    #: from when (UTC); none: where the forecast starts
    start: datetime | date | None = None
    #: {dimension: value or [values]} of the forecast's dimension; none: every series
    scope: dict[str, str | int | float | list[str | int | float]] = Field(default_factory=dict)
    growth: Growth | None = None
    price_change: PriceChange | None = None
    new_feature: NewFeature | None = None
    training_run: TrainingRun | None = None
    _line: int | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k not in ("start", "scope", *KINDS)]
            if unknown:
                raise ValueError(f"unknown driver {unknown[0]!r}: use {', '.join(KINDS)} (with start, scope)")
            kinds = [k for k in KINDS if k in data]
            if len(kinds) != 1:
                raise ValueError(f"a driver is exactly one of {', '.join(KINDS)}; this one has "
                                 f"{' and '.join(kinds) or 'none'}")
        return data

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def params(self) -> Any:
        return getattr(self, self.kind)

    def when(self) -> datetime | None:
        """``start`` as the store keeps time: naive UTC (a date: its midnight)."""
        s = self.start
        if isinstance(s, datetime):
            return s.astimezone(UTC).replace(tzinfo=None) if s.tzinfo else s
        return datetime(s.year, s.month, s.day) if s is not None else None

    def values(self) -> dict[str, list[str]]:
        return {k: [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in self.scope.items()}

    def label(self) -> str:
        p = self.params
        if isinstance(p, NewFeature):
            return f"new_feature: {p.model}"
        if isinstance(p, TrainingRun):
            return f"training_run: {p.gpus} x {p.gpu_type}"
        return self.kind


class Scenario(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    drivers: list[Driver] = Field(min_length=1)
    _where: str = PrivateAttr("")

    def at(self, d: Driver) -> str:
        """``FILE: line N: `` of a driver, for errors found when it is applied (an unknown model)."""
        return f"{self._where}line {d._line}: " if d._line else self._where


def load_scenarios(path: Path) -> list[Scenario]:
    """The scenarios of a YAML file; every error names the file and the line."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ScenarioError(f"{path}: scenario file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ScenarioError(f"{path}: {where}not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, list):
        raise ScenarioError(f"{path}: expected a list of scenarios (- name: ..., drivers: [...])")
    lines = yaml_lines(text)
    try:
        scenarios = TypeAdapter(list[Scenario]).validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(f"{where_in_yaml(e['loc'], lines)}{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        raise ScenarioError(f"{path}: {problems}") from None
    seen: set[str] = set()
    for i, s in enumerate(scenarios):
        if s.name == BASE or s.name in seen:
            why = "is the forecast without scenarios" if s.name == BASE else "is used twice"
            raise ScenarioError(f"{path}: {where_in_yaml((i, 'name'), lines)}scenario name {s.name!r} {why}")
        seen.add(s.name)
        s._where = f"{path}: "
        for j, d in enumerate(s.drivers):
            d._line = lines.get((i, "drivers", j))
    return scenarios


# -- arithmetic over the forecast's periods ------------------------------------------------------------------

def _seconds(t: datetime) -> float:
    return float(np.datetime64(t, "us").astype(np.int64) / 1e6)


def ramp_share(a: np.ndarray, b: np.ndarray, start: float, end: float) -> np.ndarray:
    """Per period [a, b): the average over it of a ramp from 0 at ``start`` to 1 at ``end`` (0 before start)."""
    span = end - start
    if span <= 0:
        return np.zeros_like(a)

    def integral(t: np.ndarray) -> np.ndarray:  # of the ramp from -inf to t (t <= end)
        return np.clip(t - start, 0, span) ** 2 / (2 * span)

    return (integral(b) - integral(a)) / (b - a)


def step_share(a: np.ndarray, b: np.ndarray, start: float) -> np.ndarray:
    """Per period [a, b): the share of it from ``start`` on."""
    return np.clip(b - np.maximum(a, start), 0, None) / (b - a)


def overlap(a: np.ndarray, b: np.ndarray, start: float, end: float) -> np.ndarray:
    """Per period [a, b): the seconds of it inside [start, end)."""
    return np.clip(np.minimum(b, end) - np.maximum(a, start), 0, None)


# -- prices --------------------------------------------------------------------------------------------------

def feature_price(con: duckdb.DuckDBPyConnection, f: NewFeature, at: datetime,
                  settings: Settings) -> tuple[Decimal, Decimal, str]:
    """(input, output) USD per 1M tokens of a new feature's model, and where they come from. ``KeyError`` when
    no catalog or setting prices the model."""
    if f.input_per_mtok is not None and f.output_per_mtok is not None:
        return f.input_per_mtok, f.output_per_mtok, "the scenario's price"
    rows = llm_prices.candidates(con, f.model, f.provider, at, f.input_tokens, None, settings.llm)
    win = next((r for r in rows if r["rank"] == 1), None)
    if win is None or win["input_per_mtok"] is None or win["output_per_mtok"] is None:
        raise KeyError(f.model)
    return (win["input_per_mtok"], win["output_per_mtok"],
            f"{win['kind'] if win['kind'] != 'catalog' else win['catalog']} {win['provider']}/{win['model']}")


def gpu_price(t: TrainingRun, settings: Settings) -> tuple[Decimal, str]:
    """USD per GPU-hour of a training run and where it comes from: the scenario, ``gpu_prices`` (the longest
    name contained in ``gpu_type``, case-insensitive, as the GPU allocation matches them), the bundled market
    snapshot's median on-demand price. ``KeyError`` when none knows the GPU."""
    if t.price_per_gpu_hour is not None:
        return t.price_per_gpu_hour, "the scenario's price"
    hits = [k for k in settings.gpu_prices if k.upper() in t.gpu_type.upper()]
    if hits:
        k = max(hits, key=len)
        return Decimal(str(settings.gpu_prices[k])), f"gpu_prices {k} in aifinops.yaml"
    p = GpuMarket.load().median_price(t.gpu_type, "on_demand")
    if p is None:
        raise KeyError(t.gpu_type)
    n = p.source_url.count(";") + 1
    return p.usd_per_gpu_hour, f"bundled GPU market snapshot: median on-demand {p.gpu_model} of {n} offer(s)"


# -- applying a scenario -------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """A scenario applied to a projection: the forecast of what is ahead per series (the projection's series,
    then those the scenario adds), and what each driver did."""

    name: str
    description: str | None
    keys: list[str]
    rest: Band
    actual: np.ndarray
    notes: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, np.ndarray]:
        """Per series: the total at period end (actual + rest), mean and bounds."""
        return {f"total_{k}": self.actual + v for k, v in self.rest.sums().items()}


def _price(d: Decimal) -> str:
    """A price with cents and every further digit it has: 0.60, 0.075, 2.49."""
    d = d.normalize()
    return f"{d:.2f}" if -d.as_tuple().exponent <= 2 else f"{d:f}"


def _amount(v: float, unit: str) -> str:
    return f"${v:,.2f}" if unit == "USD" else f"{v:,.0f} {unit}"


def _adds(kind: str, p: Projection) -> str | None:
    """The unit ``kind`` adds in on ``p``'s metric (None: it adds nothing there)."""
    table = ADDS[kind]
    if p.metric in table:
        return table[p.metric]
    return "USD" if p.unit == "USD" else None


def _scope(d: Driver, p: Projection) -> tuple[np.ndarray | None, str]:
    """(rows in scope, or None when the scope is on another dimension; the scope in words)."""
    values = d.values()
    if not values:
        return np.ones(len(p.keys), bool), "every series"
    dims = {k.lower() for k in values}
    text = "; ".join(f"{k} = {', '.join(v)}" for k, v in values.items())
    if dims != {p.dimension.lower()}:
        return None, text
    wanted = next(iter(values.values()))
    return np.isin(np.array(p.keys, dtype=object), wanted), text


def apply(s: Scenario, p: Projection, con: duckdb.DuckDBPyConnection, settings: Settings) -> Outcome:
    """Scenario ``s`` over projection ``p`` (see the module docstring)."""
    a, b = p.spans()
    begin, period_end = _seconds(p.data_end), _seconds(p.period.end)
    factor = np.ones((len(p.keys), len(p.steps)))
    added: dict[str, np.ndarray] = {}  # landing series -> amount per step
    notes: list[str] = []
    for d in s.drivers:
        start = d.when() or p.data_end
        t0 = max(_seconds(start), begin)  # what is past is actual: a driver acts on what is ahead
        rows, scope_text = _scope(d, p)
        when = f"from {start:%Y-%m-%d %H:%M}" if start != p.data_end else "from the forecast start"
        if _seconds(start) >= period_end:
            notes.append(f"{d.label()}: starts {start:%Y-%m-%d} after the period ends; no effect")
            continue
        if d.kind in ("growth", "price_change"):
            pct = d.params.pct
            if d.kind == "price_change" and p.unit != "USD":
                notes.append(f"price_change {pct:+g}%: skipped, {p.metric} is not spend")
                continue
            if rows is None:
                notes.append(f"{d.kind} {pct:+g}%: skipped, its scope ({scope_text}) is not on the forecast's "
                             f"dimension ({p.dimension})")
                continue
            ramp = d.kind == "growth" and d.params.ramp
            share = ramp_share(a, b, _seconds(start), period_end) if ramp else step_share(a, b, t0)
            factor[rows] *= 1 + pct / 100 * share[None, :]
            how = f"ramped {when} to the period end" if ramp else when
            notes.append(f"{d.kind} {pct:+g}% {how} on {int(rows.sum())} of {len(p.keys)} series ({scope_text})")
            continue
        unit = _adds(d.kind, p)
        label = d.label()
        if isinstance(d.params, NewFeature):
            f = d.params
            try:
                pin, pout, source = feature_price(con, f, start, settings)
            except KeyError:
                raise ScenarioError(f"{s.at(d)}new_feature: no price for model {f.model!r}"
                                    f"{f' (provider {f.provider})' if f.provider else ''}; give input_per_mtok and "
                                    "output_per_mtok, or a price in aifinops.yaml (llm.prices)") from None
            per_request = {"USD": float(f.input_tokens * pin + f.output_tokens * pout) / 1e6,
                           "tokens": float(f.input_tokens + f.output_tokens), "requests": 1.0}
            what = (f"{f.requests_per_day:,.0f} requests/day x ({f.input_tokens:,} in + {f.output_tokens:,} out) "
                    f"tokens at ${_price(pin)}/${_price(pout)} per 1M ({source})")
            rate = f.requests_per_day * per_request[unit] / 86400 if unit else 0.0
            stop = float("inf")
        else:
            t = d.params
            try:
                price, source = gpu_price(t, settings)
            except KeyError:
                raise ScenarioError(f"{s.at(d)}training_run: no price for GPU type {t.gpu_type!r}; give "
                                    "price_per_gpu_hour, or gpu_prices in aifinops.yaml") from None
            per_hour = {"USD": float(price) * t.gpus, "GPU-hours": float(t.gpus)}
            what = (f"24 h x {t.days:g} days at ${_price(price)}/GPU-hour ({source}) = "
                    f"${float(price) * t.gpus * 24 * t.days:,.2f}")
            rate = per_hour[unit] / 3600 if unit else 0.0
            stop = _seconds(start) + t.days * 86400
        if unit is None:
            notes.append(f"{label}: skipped, it adds nothing to {p.metric}")
            continue
        amount = rate * overlap(a, b, t0, stop)
        target = f"(scenario) {label}"
        if rows is not None and d.values() and int(rows.sum()) == 1 and len(next(iter(d.values().values()))) == 1:
            target = p.keys[int(np.flatnonzero(rows)[0])]
        added[target] = added.get(target, 0) + amount
        notes.append(f"{label}: {what}; {_amount(float(amount.sum()), unit)} in the period {when}, on {target}")
    new = [k for k in added if k not in p.keys]
    keys = [*p.keys, *new]
    add = np.zeros((len(keys), len(p.steps)))
    for k, v in added.items():  # one row per driver's landing series
        add[keys.index(k)] += v
    rest = p.rest.scale(factor).pad(len(new)).shift(add)
    actual = np.concatenate([p.actual, np.zeros(len(new))])
    return Outcome(s.name, s.description, keys, rest, actual, notes)
