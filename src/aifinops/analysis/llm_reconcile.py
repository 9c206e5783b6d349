"""Does the usage add up to the bill? API spend priced from usage beside the model providers' charges in the
FOCUS ledger for the same window.

Ledger side: charges of the ``ai-services`` layer (``data/layers.yaml``) whose ``ChargePeriodStart`` falls
in the window, each given a provider by ``data/llm_providers.yaml`` (Amazon Bedrock -> aws.bedrock, Azure
OpenAI -> azure.ai.openai, Vertex AI -> gcp.vertex_ai, ...), summed as ``EffectiveCost``. Usage side: the
priced requests of each provider (``unit_costs`` by provider). For each provider:

- ``coverage`` = usage cost / ledger cost: how much of the bill the telemetry explains (1.0 is all of it;
  above 1, usage priced at list price exceeds a discounted bill);
- ``unexplained`` = ledger - usage: spend nobody's requests account for (uninstrumented callers,
  provisioned throughput, fine-tuning and storage lines, or prices that differ from the catalog).

Providers with usage but no ledger line (a provider billed elsewhere) and with ledger spend but no usage
appear too, so nothing is hidden by the join.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .layers import LayerRule, layer_expr, load_provider_rules
from .windows import Window


def ledger_by_provider(t: Any, window: Window, layer_rules: list[LayerRule],
                       provider_rules: list[LayerRule] | None = None) -> dict[str, Decimal]:
    """AI-services spend of the ledger table ``t`` (ibis) in ``window`` by model provider."""
    t = t.filter((t.ChargePeriodStart >= window.start) & (t.ChargePeriodStart < window.end))
    t = t.mutate(_layer=layer_expr(t, layer_rules))
    t = t.filter(t._layer == "ai-services")
    t = t.mutate(_provider=layer_expr(t, provider_rules or load_provider_rules()))
    rows = t.group_by("_provider").aggregate(cost=t.EffectiveCost.sum()).to_pyarrow().to_pylist()
    return {r["_provider"]: Decimal(r["cost"] or 0) for r in rows}


def reconcile(usage: list[dict[str, Any]], ledger: dict[str, Decimal]) -> list[dict[str, Any]]:
    """Rows of ``unit_costs(..., by=["provider"])`` and the ledger's spend per provider -> one row per provider
    on either side, with coverage and unexplained spend."""
    by_provider = {r["provider"]: r for r in usage}
    out = []
    for provider in sorted(set(by_provider) | set(ledger), key=lambda p: (p is None, str(p))):
        u = by_provider.get(provider, {})
        cost = u.get("cost") or Decimal(0)
        billed = ledger.get(provider) if provider is not None else None
        out.append({
            "provider": provider, "requests": u.get("requests", 0), "usageCost": cost,
            "unpricedRequests": u.get("unpricedRequests", 0), "ledgerCost": billed,
            "coverage": float(cost / billed) if billed else None,
            "unexplained": billed - cost if billed is not None else None,
        })
    return sorted(out, key=lambda r: -(r["ledgerCost"] or r["usageCost"] or 0))
