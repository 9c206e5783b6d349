"""The GPU market as the waste rules see it: what a GPU-hour costs by provider, instance and pricing model,
and how much work one GPU type does relative to another.

Two bundled tables, dated snapshots sourced in ``data/SOURCE.txt`` (prices change: a snapshot is not a quote):

- ``data/gpu_prices.csv``: one row per (provider, instance type, region, pricing model) with $/hour and
  $/GPU-hour; pricing models ``on_demand``, ``spot``, ``capacity_block``;
- ``data/gpu_throughput.csv``: per GPU type, its memory and two throughput ratios against the H100 SXM
  (``training`` = dense tensor TFLOPS ratio, ``inference`` = memory-bandwidth ratio), each row with its basis.

A rule's options override both (they beat the tables, always): ``prices: {H100: {on_demand: 4.0, spot: 1.6}}``
($ per GPU-hour, any provider and region) and ``throughput: {L4: 0.12}`` (both ratios) or
``{L4: {training: 0.12, inference: 0.09, memory_gb: 24}}``.

**Matching a GPU name to a table key.** Inventories and telemetry name one GPU many ways (dcgm-exporter's
``modelName="NVIDIA H100 80GB HBM3"``, nvidia-smi's ``NVIDIA A100-SXM4-40GB``, the Kubernetes label
``NVIDIA-A100-SXM4-80GB``, ``Tesla T4``, GKE's ``nvidia-tesla-t4``, Alibaba's ``V100M16``, or just ``H100``).
Substring matching gets these wrong (``L4`` is in ``L40S``; ``A100`` says nothing of 40 or 80 GB), so a name
is normalised into three parts, and keys are parsed the same way:

1. tokens: the upper-cased name split on anything not a letter or digit; vendor words (NVIDIA, TESLA, AMD,
   INSTINCT, ...) dropped;
2. memory: a token ``<n>GB`` / ``<n>G`` (or the ``M<n>`` suffix Alibaba writes, ``V100M16``); form factor:
   ``SXM``/``SXM2..5``/``MEGA`` -> SXM, ``PCIE`` -> PCIE, ``NVL`` -> NVL; other tokens (``HBM3``) are ignored;
3. family: the first token that is a key's family (``T4``, ``L40S``, ``A100``...), compared whole; failing
   that, the longest family a token starts with (``V100M16`` -> V100, ``H100SXM5`` -> H100, the rest of
   the token read as memory or form).

A key matches when its family is the name's and neither its memory nor its form factor contradicts the name's.
Of the matching keys the one agreeing on the most parts wins, then the one asserting the fewest parts the name
does not state (plain ``A100`` -> ``A100-40GB``, the original part; plain ``V100`` -> ``V100``, not
``V100-32GB``), then the first in table order (``NVIDIA H100 80GB HBM3`` -> ``H100-SXM-80GB``: NVIDIA names
its PCIe cards "PCIe" and leaves the SXM part unnamed). User override keys are matched first, by the same rule,
so ``H100`` in ``prices`` covers every H100. A name that matches nothing (``NVIDIA H100 NVL``: no NVL row) has
no price and no throughput; the rules say so instead of guessing.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

PricingModel = Literal["on_demand", "spot", "capacity_block"]
PRICING_MODELS: tuple[str, ...] = ("on_demand", "spot", "capacity_block")
ThroughputKind = Literal["training", "inference"]

#: pydantic-friendly option types, for the rules' Options
PriceOverrides = dict[str, dict[PricingModel, Decimal]]
ThroughputOverrides = dict[str, float | dict[Literal["training", "inference", "memory_gb"], float]]

OVERRIDE = "override"
_VENDOR = {"NVIDIA", "TESLA", "AMD", "INSTINCT", "GEFORCE", "QUADRO", "RADEON", "GPU", "DATACENTER"}
_MEMORY = re.compile(r"^(\d+)G(?:B)?$")
_FORMS = {"SXM": "SXM", "MEGA": "SXM", "PCIE": "PCIE", "NVL": "NVL"}
_PROVIDER_ALIASES = {"amazon": "aws", "amazon web services": "aws", "ec2": "aws", "lambda labs": "lambda",
                     "lambda cloud": "lambda", "lambdalabs": "lambda", "google cloud": "gcp", "google": "gcp",
                     "microsoft azure": "azure"}


# -- matching names to keys ------------------------------------------------------------------------------

@dataclass(frozen=True)
class GpuName:
    """A GPU name reduced to what identifies a part: family, memory (GB) and form factor."""

    family: str | None
    memory_gb: int | None = None
    form: str | None = None


def _form(token: str) -> str | None:
    if re.fullmatch(r"SXM\d*", token):
        return "SXM"
    return _FORMS.get(token)


def _tail(rest: str) -> tuple[int | None, str | None]:
    """Memory and form in what follows a family inside one token (``M16``, ``SXM5``, ``80GB``)."""
    if m := re.fullmatch(r"M(\d+)", rest):
        return int(m.group(1)), None
    if m := _MEMORY.match(rest):
        return int(m.group(1)), None
    return None, _form(rest)


def parse(name: str | None, families: Iterable[str] | None = None) -> GpuName:
    """The parts of a GPU name (see the module docstring). Without ``families`` the first token that is not a
    vendor word, a memory size or a form factor is the family: that is how table keys are read."""
    tokens = [t for t in re.findall(r"[A-Z0-9]+", (name or "").upper()) if t not in _VENDOR]
    memory = next((int(m.group(1)) for t in tokens if (m := _MEMORY.match(t))), None)
    form = next((f for t in tokens if (f := _form(t))), None)
    rest = [t for t in tokens if not _MEMORY.match(t) and not _form(t)]
    if families is None:
        return GpuName(rest[0] if rest else None, memory, form)
    known = set(families)
    family = next((t for t in rest if t in known), None)
    if family is None:
        for t in rest:
            prefix = max((f for f in known if t.startswith(f)), key=len, default=None)
            if prefix:
                family = prefix
                mem, frm = _tail(t[len(prefix):])
                memory, form = memory or mem, form or frm
                break
    return GpuName(family, memory, form)


def match(name: str | None, keys: Iterable[str]) -> str | None:
    """The key of ``keys`` that names the same GPU as ``name`` (None: none does); see the module docstring."""
    ordered = list(dict.fromkeys(keys))
    parsed = {k: parse(k) for k in ordered}
    seen = parse(name, {p.family for p in parsed.values() if p.family})
    if seen.family is None:
        return None
    best: tuple[tuple[int, int, int], str] | None = None
    for i, k in enumerate(ordered):
        p = parsed[k]
        if p.family != seen.family:
            continue
        agree = unstated = 0
        for mine, theirs in ((p.memory_gb, seen.memory_gb), (p.form, seen.form)):
            if mine is None:
                continue
            if theirs is None:
                unstated += 1
            elif mine != theirs:
                break
            else:
                agree += 1
        else:
            score = (agree, -unstated, -i)
            if best is None or score > best[0]:
                best = (score, k)
    return best[1] if best else None


def provider_key(provider: str | None) -> str | None:
    """A provider name as the price table writes it (``AWS``, ``Amazon Web Services`` -> ``aws``)."""
    p = (provider or "").strip().lower()
    return _PROVIDER_ALIASES.get(p, p) or None


def region_key(region: str | None) -> str | None:
    """A region without the zone the spot rows add (``us-east-1 (use1-az3)`` -> ``us-east-1``)."""
    r = (region or "").split("(")[0].strip().lower()
    return r or None


# -- the tables ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Price:
    """One row of the price table, or a user override (provider ``override``, no instance or region)."""

    provider: str
    instance_type: str | None
    gpu_model: str
    gpu_count: int
    region: str | None
    pricing_model: str
    usd_per_hour: Decimal | None
    usd_per_gpu_hour: Decimal
    price_date: str | None
    source_url: str

    @property
    def region_key(self) -> str | None:
        return region_key(self.region)

    def cite(self) -> dict[str, Any]:
        """The row as evidence: enough to find it again in the table or at its source."""
        return {"provider": self.provider, "instance_type": self.instance_type, "gpu_model": self.gpu_model,
                "gpu_count": self.gpu_count, "region": self.region, "pricing_model": self.pricing_model,
                "usd_per_gpu_hour": self.usd_per_gpu_hour, "price_date": self.price_date or None,
                "source": self.source_url}


@dataclass(frozen=True)
class Throughput:
    """One GPU type's memory and throughput ratios (H100 SXM = 1.0), with the basis of each."""

    gpu_model: str
    memory_gb: float | None
    training: float | None
    inference: float | None
    basis: str
    source_url: str


@dataclass(frozen=True)
class SpotRatio:
    """Spot / on-demand price for one GPU type, and the table rows (or overrides) it comes from."""

    ratio: Decimal
    basis: str  # instance | provider median | median over providers | override
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def discount(self) -> Decimal:
        return 1 - self.ratio

    def describe(self) -> list[str]:
        """The rows as one line each, for evidence: what was divided by what, and where."""
        out = []
        for r in self.rows:
            if "spot_usd_per_hour" in r:
                out.append(f"{r['provider']} {r['instance_type']} {r['region'] or ''}: spot ${r['spot_usd_per_hour']}/h"
                           f" / on-demand ${r['on_demand_usd_per_hour']}/h = {r['ratio']:.4f}")
            else:
                out.append(f"{r['pricing_model']} ${r['usd_per_gpu_hour']:.4f}/GPU-h ({r['source']})")
        return out

    def sources(self) -> list[str]:
        return sorted({r["source"] for r in self.rows if r.get("source")})


def _dec(text: str | None) -> Decimal | None:
    return Decimal(text) if text not in (None, "") else None


def _float(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files(__package__).joinpath(f"data/{name}").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@lru_cache(maxsize=1)
def bundled_prices() -> tuple[Price, ...]:
    """The bundled price table (``data/gpu_prices.csv``)."""
    return tuple(Price(provider=r["provider"], instance_type=r["instance_type"] or None, gpu_model=r["gpu_model"],
                       gpu_count=int(r["gpu_count"] or 1), region=r["region"] or None,
                       pricing_model=r["pricing_model"], usd_per_hour=_dec(r["usd_per_hour"]),
                       usd_per_gpu_hour=Decimal(r["usd_per_gpu_hour"]), price_date=r["price_date"] or None,
                       source_url=r["source_url"]) for r in _read("gpu_prices.csv"))


@lru_cache(maxsize=1)
def bundled_throughput() -> tuple[Throughput, ...]:
    """The bundled throughput table (``data/gpu_throughput.csv``)."""
    return tuple(Throughput(gpu_model=r["gpu_model"], memory_gb=_float(r["memory_gb"]),
                            training=_float(r["training"]), inference=_float(r["inference"]), basis=r["basis"],
                            source_url=r["source_url"]) for r in _read("gpu_throughput.csv"))


class GpuMarket:
    """The price and throughput tables with a rule's overrides applied, and the look-ups rules need."""

    def __init__(self, prices: Iterable[Price], throughput: Iterable[Throughput],
                 price_overrides: Mapping[str, Mapping[str, Decimal]] | None = None,
                 throughput_overrides: Mapping[str, float | Mapping[str, float]] | None = None) -> None:
        self.prices = list(prices)
        self.specs = {t.gpu_model: t for t in throughput}
        self.price_overrides = {k: {pm: Decimal(str(v)) for pm, v in d.items()}
                                for k, d in (price_overrides or {}).items()}
        self.throughput_overrides = {k: ({"training": float(v), "inference": float(v)} if isinstance(v, int | float)
                                         else {n: float(x) for n, x in v.items()})
                                     for k, v in (throughput_overrides or {}).items()}
        self.keys = list(dict.fromkeys([p.gpu_model for p in self.prices] + list(self.specs)))

    @classmethod
    def load(cls, prices: Mapping[str, Mapping[str, Decimal]] | None = None,
             throughput: Mapping[str, float | Mapping[str, float]] | None = None) -> GpuMarket:
        """The bundled tables with these overrides (a rule's ``prices`` and ``throughput`` options)."""
        return cls(bundled_prices(), bundled_throughput(), prices, throughput)

    # -- keys --------------------------------------------------------------------------------------------
    def key(self, gpu_model: str | None) -> str | None:
        """The table key of an inventory / telemetry GPU name (None: the tables do not know it)."""
        return match(gpu_model, self.keys)

    def _override_key(self, gpu_model: str | None, table: Mapping[str, Any]) -> str | None:
        return match(gpu_model, table) if table else None

    # -- prices ------------------------------------------------------------------------------------------
    def override(self, gpu_model: str | None, pricing_model: str) -> Price | None:
        """The user's price for this GPU and pricing model, as a row (None: none given)."""
        k = self._override_key(gpu_model, self.price_overrides)
        if k is None or pricing_model not in self.price_overrides[k]:
            return None
        return Price(OVERRIDE, None, k, 1, None, pricing_model, None, self.price_overrides[k][pricing_model], None,
                     f"option prices.{k}.{pricing_model}")

    def rows(self, gpu_model: str | None, pricing_model: str) -> list[Price]:
        """Table rows of this GPU (any name of it) and pricing model, in table order."""
        k = self.key(gpu_model)
        return [p for p in self.prices if p.gpu_model == k and p.pricing_model == pricing_model] if k else []

    def offers(self, pricing_model: str) -> list[Price]:
        """Every way to buy a GPU-hour under ``pricing_model``: the table's rows, where an override replaces the
        rows of every table type it names (``H100`` names both H100 rows) with one row at its price; an override
        that names no table type is an offer of its own type."""
        out: list[Price] = []
        used: set[str] = set()
        for t in self.keys:
            if o := self.override(t, pricing_model):
                out.append(replace(o, gpu_model=t))
                used.add(o.gpu_model)
        for k, d in self.price_overrides.items():
            if pricing_model in d and k not in used:
                out.append(Price(OVERRIDE, None, k, 1, None, pricing_model, None, d[pricing_model], None,
                                 f"option prices.{k}.{pricing_model}"))
        covered = {o.gpu_model for o in out}
        return out + [p for p in self.prices if p.pricing_model == pricing_model and p.gpu_model not in covered]

    def median_price(self, gpu_model: str | None, pricing_model: str, provider: str | None = None) -> Price | None:
        """A GPU's typical $/GPU-hour: the override, else the median over the provider's rows (all rows when
        the provider has none), reported as a row whose source lists the rows."""
        if o := self.override(gpu_model, pricing_model):
            return o
        rows = self.rows(gpu_model, pricing_model)
        mine = [r for r in rows if r.provider == provider_key(provider)]
        use = mine or rows
        if not use:
            return None
        med = statistics.median(r.usd_per_gpu_hour for r in use)
        return Price(use[0].provider if mine else "median", None, use[0].gpu_model, 1, None, pricing_model, None,
                     med, None, "median of " + "; ".join(f"{r.provider} {r.instance_type} {r.region or ''}".strip()
                                                         for r in use))

    def spot_ratio(self, gpu_model: str | None, provider: str | None = None,
                   instance_type: str | None = None) -> SpotRatio | None:
        """Spot / on-demand for this GPU: the instance's own pair of rows when the table has it, else the
        median of the provider's pairs, else the median over providers of each provider's median. An override
        price (spot, on-demand or both) replaces the table's price of that kind (the other from the table)."""
        spot_o, od_o = self.override(gpu_model, "spot"), self.override(gpu_model, "on_demand")
        if spot_o or od_o:
            spot = spot_o or self.median_price(gpu_model, "spot", provider)
            od = od_o or self.median_price(gpu_model, "on_demand", provider)
            if spot is None or od is None or od.usd_per_gpu_hour <= 0:
                return None
            return SpotRatio(spot.usd_per_gpu_hour / od.usd_per_gpu_hour, OVERRIDE, [spot.cite(), od.cite()])
        pairs = self._pairs(gpu_model)
        if not pairs:
            return None
        prov, inst = provider_key(provider), (instance_type or "").strip().lower()
        exact = [p for p in pairs if p[0].provider == prov and (p[0].instance_type or "").lower() == inst]
        if exact:
            return self._ratio(exact[:1], "instance")
        mine = [p for p in pairs if p[0].provider == prov]
        if mine:
            return self._ratio(mine, "provider median")
        by_provider: dict[str, list[tuple[Price, Price]]] = {}
        for p in pairs:
            by_provider.setdefault(p[0].provider, []).append(p)
        medians = [statistics.median((s.usd_per_hour or 0) / (o.usd_per_hour or 1) for o, s in group)
                   for group in by_provider.values()]
        return SpotRatio(Decimal(statistics.median(medians)), "median over providers",
                         [self._pair_cite(o, s) for o, s in pairs])

    def _pairs(self, gpu_model: str | None) -> list[tuple[Price, Price]]:
        """(on-demand, spot) rows of the same provider, instance type and region."""
        od = self.rows(gpu_model, "on_demand")
        spot = self.rows(gpu_model, "spot")
        out = []
        for o in od:
            for s in spot:
                if (s.provider, s.instance_type, s.region_key) == (o.provider, o.instance_type, o.region_key) \
                        and o.usd_per_hour and s.usd_per_hour:
                    out.append((o, s))
                    break
        return out

    @staticmethod
    def _pair_cite(o: Price, s: Price) -> dict[str, Any]:
        return {"provider": o.provider, "instance_type": o.instance_type, "gpu_model": o.gpu_model,
                "region": o.region, "spot_region": s.region, "on_demand_usd_per_hour": o.usd_per_hour,
                "spot_usd_per_hour": s.usd_per_hour, "ratio": (s.usd_per_hour or 0) / (o.usd_per_hour or 1),
                "price_date": o.price_date or None, "source": o.source_url}

    def _ratio(self, pairs: list[tuple[Price, Price]], basis: str) -> SpotRatio:
        ratios = [(s.usd_per_hour or 0) / (o.usd_per_hour or 1) for o, s in pairs]
        return SpotRatio(Decimal(statistics.median(ratios)), basis, [self._pair_cite(o, s) for o, s in pairs])

    # -- throughput and memory -----------------------------------------------------------------------------
    def spec(self, gpu_model: str | None) -> Throughput | None:
        """The GPU's throughput row, with the user's ratios and memory over the table's."""
        k = self._override_key(gpu_model, self.throughput_overrides)
        base = self.specs.get(self.key(gpu_model) or "") if gpu_model else None
        if k is None:
            return base
        o = self.throughput_overrides[k]
        return Throughput(
            gpu_model=base.gpu_model if base else k,
            memory_gb=o.get("memory_gb", base.memory_gb if base else None),
            training=o.get("training", base.training if base else None),
            inference=o.get("inference", base.inference if base else None),
            basis=f"option throughput.{k}" + (f" over the table ({base.basis})" if base else ""),
            source_url=f"option throughput.{k}" if not base else f"option throughput.{k}; {base.source_url}")

    def throughput(self, gpu_model: str | None, kind: str) -> float | None:
        s = self.spec(gpu_model)
        value = getattr(s, kind) if s else None
        return value if value and value > 0 else None
