"""Settings: ``aifinops.yaml``, then environment variables, then CLI flags (each overrides the last).

One pydantic model holds every setting so that a typo in the file is an error that names the key,
not a silently ignored option.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        data = loaded
    data = _merge(data, _env_overrides(environ))
    data = _merge(data, {k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        where = f"{path}" if path else "settings"
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None
