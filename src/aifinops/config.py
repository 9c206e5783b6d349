"""Settings: ``aifinops.yaml``, then environment variables, then CLI flags (each overrides the last).

One pydantic model holds every setting so that a typo in the file is an error that names the key,
not a silently ignored option.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

CONFIG_FILE = "aifinops.yaml"
ENV_PREFIX = "AIFINOPS_"


class ConfigError(Exception):
    """A configuration file or value that cannot be used; the message says which and why."""


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Quarantine rows that break spec rules which do not affect money (e.g. a null ContractedCost)
    #: instead of loading them with a warning.
    strict: bool = False
    #: Accept a restatement whose data ends earlier than what is already loaded for the same key.
    allow_older: bool = False


class AllocationSettings(BaseModel):
    """How GPU node cost is split and shared (``allocation:`` in aifinops.yaml; CLI flags override)."""

    model_config = ConfigDict(extra="forbid")
    #: activity below which a held GPU counts as allocated-idle
    idle_threshold: float = Field(0.05, ge=0, le=1)
    #: OpenCost's shareIdle: none (idle its own line), weighted, even, or owner (the node pool's owner)
    share_idle: Literal["none", "weighted", "even", "owner"] = "none"
    #: OpenCost's shareNamespaces / shareLabels: workloads whose cost is spread over all the others
    share_namespaces: list[str] = Field(default_factory=list)
    share_labels: dict[str, str] = Field(default_factory=dict)
    #: OpenCost's shareSplit: spread shared cost weighted by each workload's cost, or evenly
    share_split: Literal["weighted", "even"] = "weighted"
    #: Share of a GPU node's cost that pays for its CPUs and its memory, allocated by CPU and memory
    #: requests. Default 0: on GPU instances CPU and memory come with the GPUs (they cannot be bought
    #: without them), so the whole instance is GPU cost.
    cpu_share: Decimal = Field(Decimal(0), ge=0, le=1)
    memory_share: Decimal = Field(Decimal(0), ge=0, le=1)

    @model_validator(mode="after")
    def _shares_fit(self) -> AllocationSettings:
        if self.cpu_share + self.memory_share > 1:
            raise ValueError("cpu_share + memory_share must not exceed 1 (the rest is the GPUs' share)")
        return self


class TcoRule(BaseModel):
    """What an owned (on-prem) GPU node costs per hour: purchase price spread over its life, plus power at
    the wall (times PUE), plus an overhead share for space, network, support and staff:
    ``(node_price / (years x 8766 h) + power_kw x kwh_price x pue) x (1 + overhead_pct / 100)``."""

    model_config = ConfigDict(extra="forbid")
    #: GPU model substring (case-insensitive; the longest matching rule wins), e.g. H100
    match: str
    #: only nodes of this pool (optional)
    node_pool: str | None = None
    #: purchase price of one node, GPUs included
    node_price: Decimal = Field(ge=0)
    years: float = Field(4.0, gt=0)
    #: average draw of the node in kW; default: its GPUs at their TDP (``gpu_tdp_w``)
    power_kw: float | None = Field(None, ge=0)
    kwh_price: Decimal = Field(Decimal(0), ge=0)
    pue: float = Field(1.0, ge=1)
    overhead_pct: float = Field(0.0, ge=0)


class CarbonSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: grid carbon intensity in g CO2e per kWh by the inventory's region, e.g. ``{us-east-1: 384}``
    g_per_kwh: dict[str, float] = Field(default_factory=dict)
    #: for regions the table does not name (none: carbon unknown there)
    default_g_per_kwh: float | None = None


class LlmPrice(BaseModel):
    """A price of your own for a model (``llm.prices`` in aifinops.yaml), USD per 1M tokens: ``contract`` for a
    negotiated rate (beats every catalog), ``override`` to correct anything (beats contracts too)."""

    model_config = ConfigDict(extra="forbid")
    #: the model as requests or catalogs name it (matched by model key: prefixes, Bedrock ids, dates)
    model: str = Field(min_length=1)
    #: only requests of this provider (any name PROVIDER_ALIASES knows); none: every provider
    provider: str | None = None
    kind: Literal["override", "contract"]
    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    #: none: cache reads / writes cost the input price
    cache_read_per_mtok: Decimal | None = Field(None, ge=0)
    cache_write_per_mtok: Decimal | None = Field(None, ge=0)
    tier: Literal["standard", "batch", "priority", "flex"] = "standard"
    #: applies to requests with more input tokens than this (0: the base price)
    above_tokens: int = Field(0, ge=0)
    #: in force from / until (naive times are UTC); none: open
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    @model_validator(mode="after")
    def _interval(self) -> LlmPrice:
        if self.valid_from and self.valid_to and _utc(self.valid_to) <= _utc(self.valid_from):
            raise ValueError("valid_to must be after valid_from")
        return self


def _utc(t: datetime) -> datetime:
    """A settings time as the store keeps time: naive UTC."""
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


class LlmSettings(BaseModel):
    """How LLM requests are priced (``llm:`` in aifinops.yaml): see analysis/llm_prices.py for the rule."""

    model_config = ConfigDict(extra="forbid")
    #: price catalogs in order of preference (a catalog not listed comes after these)
    catalogs: list[str] = Field(default_factory=lambda: ["litellm", "genai-prices"])
    #: your contracted rates and overrides
    prices: list[LlmPrice] = Field(default_factory=list)
    #: a name requests use -> the model it serves (e.g. a private deployment name), applied before matching
    aliases: dict[str, str] = Field(default_factory=dict)
    #: the workload label naming the model a serving workload serves (self-hosted cost per token)
    serving_label: str = "model"
    #: API models a self-hosted model's tokens are priced at for comparison (unit-costs --self-hosted);
    #: ``provider/model`` prices at that provider (your contract and override rates for it apply)
    compare_with: list[str] = Field(
        default_factory=lambda: ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3-5-haiku"])
    #: workload labels naming a training run, experiment and model version (unit-costs --by run ...)
    training_labels: dict[str, str] = Field(
        default_factory=lambda: {"run": "run", "experiment": "experiment", "model_version": "model_version"})

    @field_validator("catalogs", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        return [c.strip() for c in v.split(",") if c.strip()] if isinstance(v, str) else v


class WasteSettings(BaseModel):
    """How waste is detected (``waste:`` in aifinops.yaml): each rule's thresholds by rule id (every rule
    validates its own, see ``aifinops recommend rules``), rules turned off, and who owns a workload."""

    model_config = ConfigDict(extra="forbid")
    #: thresholds by rule id, e.g. ``{underused-gpu: {max_activity: 0.2}}``
    rules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: rule ids not to run
    disabled: list[str] = Field(default_factory=list)
    #: workload labels (and FOCUS tag keys) naming the owning team, first found wins
    owner_labels: list[str] = Field(default_factory=lambda: ["team", "owner"])
    #: hours of the month that window amounts are scaled to (365.25 x 24 / 12)
    month_hours: float = Field(730.5, gt=0)


class AnomalyScan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: cost (ledger), gpu_hours, gpu_cost, tokens, requests, llm_cost (see ``aifinops anomalies --metric``)
    metric: str = "cost"
    #: the series: a dimension of the metric (``aifinops anomalies --by``)
    by: str = "ServiceName"
    #: the finer dimension whose values explain an anomaly
    child: str | None = None
    grain: Literal["day", "hour"] = "day"
    #: which changes alert: up (increases, as AWS Cost Anomaly Detection), down, or both
    direction: Literal["up", "down", "both"] = "up"


class AnomalySettings(BaseModel):
    """How anomalies are detected and watched (``anomalies:`` in aifinops.yaml; CLI flags override)."""

    model_config = ConfigDict(extra="forbid")
    #: the scans ``aifinops watch`` and ``anomalies --all`` run: metric, dimension, child, grain each
    scans: list[AnomalyScan] = Field(default_factory=lambda: [AnomalyScan()])
    #: past seasons the expected value is the median of
    seasons: int = Field(4, ge=2)
    #: bounds = expected +- z x robust scale
    z: float = Field(3.0, gt=0)
    #: $ impact below which nothing alerts (usage metrics: their dollar impact)
    min_impact: float = Field(50.0, ge=0)
    #: relative change the impact must also reach (0.2 = 20%)
    min_change: float = Field(0.2, ge=0)
    #: window the scans report anomalies in (history before it feeds the baseline)
    window: str = "30d"


class ChannelSettings(BaseModel):
    """One place alerts go. ``webhook``: JSON POST of the alert; ``slack``: a Slack-compatible incoming webhook
    (also Mattermost, Rocket.Chat, Teams workflows); ``email``: SMTP."""

    model_config = ConfigDict(extra="forbid")
    #: a channel type: webhook, slack, email, or one a plugin registers (``aifinops.alert_channels``)
    type: str
    #: webhook / slack: the URL to POST to
    url: str | None = None
    #: webhook: extra HTTP headers (e.g. an Authorization header); values ``${ENV}`` are read from the environment
    headers: dict[str, str] = Field(default_factory=dict)
    #: email: SMTP server
    host: str | None = None
    port: int = Field(25, gt=0, lt=65536)
    starttls: bool = False
    username: str | None = None
    #: name of the environment variable holding the SMTP password (never the password itself)
    password_env: str | None = None
    sender: str | None = None
    to: list[str] = Field(default_factory=list)
    #: seconds per attempt
    timeout: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> ChannelSettings:
        from .governance.channels import channels  # the registry: a new channel type is one new file

        if self.type not in channels.names():
            raise ValueError(f"unknown channel type {self.type!r}: use {', '.join(channels.names())}")
        if self.type in ("webhook", "slack") and not self.url:
            raise ValueError(f"a {self.type} channel needs a url")
        if self.type == "email" and not (self.host and self.sender and self.to):
            raise ValueError("an email channel needs host, sender and to")
        return self


class AlertSettings(BaseModel):
    """Where alerts go and how often (``alerts:`` in aifinops.yaml)."""

    model_config = ConfigDict(extra="forbid")
    #: channels by name; budgets and the anomaly route refer to these names
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    #: channels every anomaly alert goes to
    anomaly_channels: list[str] = Field(default_factory=list)
    #: the least severity of anomaly that is sent
    min_severity: Literal["low", "medium", "high"] = "medium"
    #: who owns what: a team (or any series value) -> contact, used when an alert names its owner
    owners: dict[str, str] = Field(default_factory=dict)
    #: an alert already sent is sent again (as an update) when its impact grew by this share
    update_growth: float = Field(0.25, ge=0)
    #: the dashboard's base URL for evidence links; none: the link is the CLI command
    link_base: str | None = None
    #: delivery attempts per alert and channel before it is marked failed (later runs retry failed ones)
    max_attempts: int = Field(5, ge=1)
    #: first retry delay in seconds; doubles each attempt (exponential backoff)
    backoff: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _known_channels(self) -> AlertSettings:
        unknown = [c for c in self.anomaly_channels if c not in self.channels]
        if unknown:
            raise ValueError(f"anomaly_channels names unknown channel(s) {', '.join(unknown)}; "
                             f"defined: {', '.join(self.channels) or 'none'}")
        return self


class BudgetSettings(BaseModel):
    """A budget: a scope of spend, an amount per period, thresholds on actual and on forecast spend, an owner and
    the channels its alerts go to (``budgets:`` in aifinops.yaml, a list)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    #: which charges count: dimension -> value or list of values (``ServiceName``, ``tag:team``, ``layer``, any
    #: FOCUS column); all must match. Empty: all spend.
    scope: dict[str, str | list[str]] = Field(default_factory=dict)
    amount: Decimal = Field(gt=0)
    #: month, quarter, year, or a custom window START..END (``budgets status`` shows the period holding the date)
    period: str = "month"
    #: % of the amount at which actual spend alerts
    actual_thresholds: list[float] = Field(default_factory=lambda: [50.0, 80.0, 100.0])
    #: % of the amount at which the forecast at period end alerts
    forecast_thresholds: list[float] = Field(default_factory=lambda: [100.0])
    owner: str | None = None
    channels: list[str] = Field(default_factory=list)

    @field_validator("scope", mode="before")
    @classmethod
    def _scope_text(cls, v: Any) -> Any:
        """YAML reads ``BillingAccountId: 123456789012`` as a number; scope values are compared as text."""
        if not isinstance(v, dict):
            return v

        def text(x: Any) -> Any:
            return str(x) if isinstance(x, int | float) and not isinstance(x, bool) else x

        return {k: [text(x) for x in val] if isinstance(val, list) else text(val) for k, val in v.items()}

    @field_validator("scope")
    @classmethod
    def _scope_dimensions(cls, v: dict[str, str | list[str]], info: ValidationInfo) -> dict[str, str | list[str]]:
        """Each key must be a dimension ``costs --by`` knows (a FOCUS column, ``tag:KEY`` or ``layer``): a typo
        would otherwise match no charge and report a budget with nothing spent. The error is raised at the key,
        so that load_settings names the key's line, and it names the budget."""
        import difflib

        from pydantic_core import InitErrorDetails, PydanticCustomError

        from .model.focus import column_names

        columns = {c.lower(): c for c in column_names()}
        budget = info.data.get("name", "?")
        errors: list[InitErrorDetails] = []
        for key, values in v.items():
            low = key.lower()
            if low == "layer" or (low.startswith("tag:") and key[4:].strip()) or low in columns:
                if isinstance(values, list) and not values:
                    msg = f"budget {budget!r}: scope {key} lists no values (it would match nothing)"
                    errors.append(InitErrorDetails(type=PydanticCustomError("empty_scope", "{msg}", {"msg": msg}),
                                                   loc=(key,), input=values))
                continue
            close = difflib.get_close_matches(key, [*columns.values(), "layer"], n=1, cutoff=0.75)
            msg = (f"budget {budget!r}: unknown dimension {key!r} in scope"
                   f"{f' (did you mean {close[0]}?)' if close else ''}: use a FOCUS column (e.g. ServiceName, "
                   "RegionId, SubAccountId), tag:KEY or layer")
            errors.append(InitErrorDetails(type=PydanticCustomError("unknown_dimension", "{msg}", {"msg": msg}),
                                           loc=(key,), input=key))
        if errors:
            raise ValidationError.from_exception_data("BudgetSettings.scope", errors)
        return v

    @field_validator("period")
    @classmethod
    def _period(cls, v: str) -> str:
        if v not in ("month", "quarter", "year") and ".." not in v:
            raise ValueError("period must be month, quarter, year or START..END")
        if ".." in v:
            from .analysis.windows import WindowError, parse_window  # lazily: analysis imports this module

            try:
                parse_window(v, None)
            except WindowError as exc:
                raise ValueError(f"period {v!r}: {exc}") from None
        return v

    @field_validator("actual_thresholds", "forecast_thresholds")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(x <= 0 for x in v):
            raise ValueError("thresholds are percentages of the amount and must be positive")
        return sorted(v)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    db: Path = Path("aifinops.duckdb")
    #: DuckDB memory limit; it spills to disk beyond this, which keeps ingest memory bounded.
    memory_limit: str = "1GB"
    threads: int | None = None
    #: Tag keys every charge should carry; used by tag coverage and the demo.
    tag_keys: list[str] = Field(default_factory=lambda: ["team", "project", "env", "model"])
    #: Extra cost-layer rules (YAML), tried before the built-in ones.
    layers_file: Path | None = None
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    #: Options of each source by kind, e.g. ``sources: {workloads-csv: {preset: alibaba-openb}}``;
    #: each source validates its own (see the source's Options).
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: $ per GPU-hour by GPU model (a substring of the model name, longest match wins), for nodes that no
    #: bill and no inventory hourly_price covers (on-prem, other clouds), e.g. ``{H100: 2.49, A100: 1.29}``.
    gpu_prices: dict[str, Decimal] = Field(default_factory=dict)
    allocation: AllocationSettings = Field(default_factory=AllocationSettings)
    #: on-prem TCO rules, for nodes that no bill and no inventory hourly_price covers (before gpu_prices)
    onprem_tco: list[TcoRule] = Field(default_factory=list)
    #: GPU board power (W) by model substring; extends and overrides the bundled table (model/data/gpu_tdp.csv)
    gpu_tdp_w: dict[str, float] = Field(default_factory=dict)
    carbon: CarbonSettings = Field(default_factory=CarbonSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    waste: WasteSettings = Field(default_factory=WasteSettings)
    anomalies: AnomalySettings = Field(default_factory=AnomalySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    budgets: list[BudgetSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _budgets_fit(self) -> Settings:
        names = [b.name for b in self.budgets]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"budget names must be unique: {', '.join(dup)}")
        for i, b in enumerate(self.budgets):
            if unknown := [c for c in b.channels if c not in self.alerts.channels]:
                raise ValueError(f"budgets.{i} ({b.name}) names unknown channel(s) {', '.join(unknown)}")
        return self


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``AIFINOPS_DB=x`` -> ``{"db": "x"}``; ``AIFINOPS_INGEST__STRICT=1`` -> ``{"ingest": {"strict": "1"}}``."""
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if path[-1] == "tag_keys":
            node[path[-1]] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            node[path[-1]] = value
    return out


def yaml_lines(text: str) -> dict[tuple[Any, ...], int]:
    """The 1-based line of every key and list item of a YAML document, by its path (``("budgets", 0,
    "amount")``), so that a validation error can say where in the file the bad value is."""
    out: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        out.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                out[(*path, k.value)] = k.start_mark.line + 1
                walk(v, (*path, k.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out
    if root is not None:
        walk(root, ())
    return out


def where_in_yaml(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> str:
    """``line N: `` of the deepest part of ``loc`` the file has (pydantic adds model names to some paths)."""
    path: tuple[Any, ...] = ()
    for p in loc:
        if (*path, p) in lines or not (isinstance(p, str) and p[:1].isupper()):
            path = (*path, p)
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return f"line {lines[path[:n]]}: "
    return ""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    config_path: Path | None = None,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build settings from file < environment < flags. Flags whose value is None are not given."""
    environ = dict(os.environ) if environ is None else environ
    path = config_path or (Path(environ[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in environ else None)
    data: dict[str, Any] = {}
    if path is None and Path(CONFIG_FILE).exists():
        path = Path(CONFIG_FILE)
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{path}: {where}not valid YAML: {problem}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        data = loaded
        lines = yaml_lines(Path(path).read_text())
    else:
        lines = {}
    data = _merge(data, _env_overrides(environ))
    data = _merge(data, {k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        where = f"{path}" if path else "settings"
        problems = "; ".join(f"{where_in_yaml(e['loc'], lines)}{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None
