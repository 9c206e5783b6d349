"""Cost layers (compute-gpu, compute-cpu, storage, data-movement, ai-services, other) from data rules.

The rules are data (``data/layers.yaml``) so users extend them without code: their own file's rules are
tried first. Each rule becomes one branch of an ibis ``cases`` expression, so the classification runs
in the engine on any backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import ibis
import yaml

OTHER = "other"
LAYERS = ("compute-gpu", "compute-cpu", "storage", "data-movement", "ai-services", OTHER)


class LayerRuleError(ValueError):
    pass


@dataclass(frozen=True)
class LayerRule:
    layer: str
    any: dict[str, str]
    all: dict[str, str]
    why: str = ""


def _parse(doc: Any, where: str, key: str = "layers", name: str = "layer") -> list[LayerRule]:
    """Rules from a YAML document: a ``key`` list of {``name``, any:, all:, why} items."""
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise LayerRuleError(f"{where}: expected a mapping with a `{key}:` list")
    rules = []
    for i, item in enumerate(doc[key], 1):
        if not isinstance(item, dict) or name not in item or not (item.get("any") or item.get("all")):
            raise LayerRuleError(f"{where}: rule {i} needs `{name}` and `any:` or `all:` column patterns")
        for key in ("any", "all"):
            if not isinstance(item.get(key, {}), dict):
                raise LayerRuleError(f"{where}: rule {i}: `{key}` must map column names to patterns")
        rules.append(LayerRule(str(item[name]), dict(item.get("any", {})), dict(item.get("all", {})),
                               str(item.get("why", ""))))
    return rules


def load_rules(user_file: Path | None = None) -> list[LayerRule]:
    """User rules (if any) first, then the built-in ones."""
    builtin = yaml.safe_load(resources.files("aifinops.analysis").joinpath("data/layers.yaml").read_text())
    rules = _parse(builtin, "built-in layers.yaml")
    if user_file is not None:
        try:
            doc = yaml.safe_load(Path(user_file).read_text())
        except FileNotFoundError:
            raise LayerRuleError(f"{user_file}: layer rules file not found") from None
        except yaml.YAMLError as exc:
            raise LayerRuleError(f"{user_file}: not valid YAML: {exc}") from None
        rules = _parse(doc, str(user_file)) + rules
    return rules


def load_provider_rules() -> list[LayerRule]:
    """Which ledger charges are which model provider's API spend (``data/llm_providers.yaml``); each rule's
    ``layer`` field holds the provider."""
    doc = yaml.safe_load(resources.files("aifinops.analysis").joinpath("data/llm_providers.yaml").read_text())
    return _parse(doc, "built-in llm_providers.yaml", key="providers", name="provider")


def _match(t: ibis.Table, column: str, pattern: str) -> ibis.BooleanValue | None:
    if column not in t.columns:
        return None
    return t[column].cast("string").re_search(f"(?i){pattern}").fill_null(False)


def layer_expr(t: ibis.Table, rules: list[LayerRule]) -> ibis.StringValue:
    """An expression giving each charge's layer: the first matching rule wins."""
    branches = []
    for rule in rules:
        anys = [m for c, p in rule.any.items() if (m := _match(t, c, p)) is not None]
        alls = [m for c, p in rule.all.items() if (m := _match(t, c, p)) is not None]
        if len(alls) < len(rule.all) or (rule.any and not anys):
            continue  # the rule needs columns this table lacks
        cond = ibis.or_(*anys) if anys else ibis.literal(True)
        if alls:
            cond = cond & ibis.and_(*alls)
        branches.append((cond, rule.layer))
    if not branches:
        return ibis.literal(OTHER)
    return ibis.cases(*branches, else_=OTHER)
