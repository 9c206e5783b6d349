"""LiteLLM's model price catalog (``model_prices_and_context_window.json``) as ``llm_prices`` rows.

One entry (a key such as ``gpt-4o``, ``azure/eu/gpt-4o``, ``us.anthropic.claude-...-v2:0``) gives one row
per (tier, context threshold) it prices:

- ``model`` is the key as LiteLLM writes it; ``provider`` is ``litellm_provider`` through
  ``PROVIDER_ALIASES`` (``bedrock_converse`` -> ``aws.bedrock``); ``mode`` is the entry's ``mode``;
- ``input_cost_per_token`` / ``output_cost_per_token`` / ``cache_read_input_token_cost`` /
  ``cache_creation_input_token_cost`` -> ``input`` / ``output`` / ``cache_read`` / ``cache_write_per_mtok``
  (x 10^6, exact decimals); ``input_cost_per_token_cache_hit`` (DeepSeek) is the cache read price when no
  ``cache_read_input_token_cost`` is given;
- a ``_batches`` / ``_priority`` / ``_flex`` suffix -> tier ``batch`` / ``priority`` / ``flex``; other
  suffixes (``_ultrafast``, ``_balanced``, ``_decisions``) are not tiers requests carry: left out, counted;
- ``_above_<N>k_tokens`` -> ``above_tokens`` N x 1000 (LiteLLM applies it to requests with more input
  tokens than that); ``tiered_pricing`` ranges ``[lo, hi]`` -> a row with ``above_tokens`` lo;
- a price the entry does not state for a tier or context threshold is the nearest one it does state: the
  same tier below the threshold, then the standard tier at the threshold, then the standard tier below it
  (LiteLLM prices that way). A cache price it never states stays NULL: cache tokens cost the input price.

LiteLLM carries no effective dates: ``valid_from`` is the ``snapshot_date`` option (NULL: since ever),
``valid_to`` NULL. Only token-priced entries give rows: an entry priced per image, second, character, query
or pixel (its token prices absent, or all zero beside non-zero other prices) is skipped and counted, and so
is ``sample_spec``. Prices not represented in ``llm_prices`` are counted in notes too: 1-hour and 12-hour
cache writes (the 5-minute price is kept), reasoning-token prices, off-peak windows (the standard price is
kept, as for genai-prices' time-of-day prices).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from .base import SourceError, SourceFile, sources
from .price_catalog import DATA, Normalised, PriceCatalogSource, per_mtok

#: LiteLLM key stem -> canonical price column
FIELDS: dict[str, str] = {
    "input_cost_per_token": "input_per_mtok",
    "output_cost_per_token": "output_per_mtok",
    "cache_read_input_token_cost": "cache_read_per_mtok",
    "cache_creation_input_token_cost": "cache_write_per_mtok",
}
#: LiteLLM key suffix -> tier
TIER_SUFFIXES: dict[str, str] = {"batches": "batch", "priority": "priority", "flex": "flex"}
_KEY = re.compile(r"^(" + "|".join(FIELDS) + r")(?:_above_(\d+)k_tokens)?(?:_([a-z]+))?$")
#: prices of token kinds llm_prices does not separate (counted, not kept)
_NOT_KEPT = {
    "cache_creation_input_token_cost_above_1hr": "1-hour cache write price(s) not kept (the 5-minute price is)",
    "cache_creation_input_token_cost_above_12hr": "12-hour cache write price(s) not kept (the 5-minute price is)",
    "output_cost_per_reasoning_token": "reasoning-token price(s) not kept (reasoning tokens are output tokens)",
    "off_peak_pricing": "off-peak price window(s) not kept (the standard price is)",
}

BUNDLED = DATA / "litellm_prices" / "model_prices_and_context_window.json.gz"
BUNDLED_SNAPSHOT = "litellm 1.109.1 (2026-11-22)"

Stated = dict[tuple[str, int], dict[str, Decimal]]


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | Decimal)


def _stated(entry: dict[str, Any], out: Normalised) -> Stated:
    """(tier, above_tokens) -> the prices the entry states there, per 1M tokens."""
    stated: Stated = {}
    for key, value in entry.items():
        m = _KEY.match(key)
        if not m or not _number(value):
            continue
        suffix = m[3]
        tier = TIER_SUFFIXES.get(suffix) if suffix else "standard"
        if tier is None:
            out.skip(f"price(s) of LiteLLM tier '{suffix}' not kept (not standard, batch, priority or flex)")
            continue
        price = per_mtok(value, out)
        if price is not None:
            stated.setdefault((tier, int(m[2]) * 1000 if m[2] else 0), {})[FIELDS[m[1]]] = price
    base = stated.get(("standard", 0), {})
    if "cache_read_per_mtok" not in base and _number(entry.get("input_cost_per_token_cache_hit")):
        stated.setdefault(("standard", 0), base)["cache_read_per_mtok"] = per_mtok(
            entry["input_cost_per_token_cache_hit"], out)
    for band in entry.get("tiered_pricing") or []:
        rng = band.get("range") if isinstance(band, dict) else None
        if not isinstance(rng, list) or not rng or not _number(rng[0]):
            continue
        prices = {FIELDS[k]: per_mtok(v, out) for k, v in band.items() if k in FIELDS and _number(v)}
        if prices:
            stated.setdefault(("standard", int(rng[0])), {}).update(prices)
    return stated


def _token_priced(entry: dict[str, Any], stated: Stated) -> bool:
    """Token prices that mean something: one above zero, or all zero and nothing else priced (a free model)."""
    if not stated:
        return False
    if any(v > 0 for prices in stated.values() for v in prices.values()):
        return True
    return not any("cost" in k and _number(v) and v > 0 for k, v in entry.items())


def _price(stated: Stated, tier: str, above: int, f: str) -> Decimal | None:
    """The price of ``f`` at (tier, above): as stated, else the nearest stated (see the module docstring)."""
    for key in ((tier, above), (tier, 0), ("standard", above), ("standard", 0)):
        if f in stated.get(key, {}):
            return stated[key][f]
    return None


def normalise(doc: Any, valid_from: datetime | None = None) -> Normalised:
    """LiteLLM's catalog (parsed with Decimal floats) -> canonical rows (provider and model_key not yet
    canonicalised: ``price_catalog.canonical_table`` does that in SQL)."""
    if not isinstance(doc, dict):
        raise ValueError("not a LiteLLM price catalog: expected a JSON object of model entries")
    out = Normalised()
    for model, entry in doc.items():
        if model == "sample_spec" or not isinstance(entry, dict):
            out.skip("entry(ies) skipped: sample_spec or not an object")
            continue
        out.entries += 1
        for key, why in _NOT_KEPT.items():
            if key in entry:
                out.skip(why)
        stated = _stated(entry, out)
        if not _token_priced(entry, stated):
            out.skip("entry(ies) without token prices skipped (priced per image, second, character, query, ...)")
            continue
        provider = entry.get("litellm_provider")
        if not isinstance(provider, str) or not provider.strip():
            out.skip("entry(ies) without litellm_provider skipped")
            continue
        out.priced += 1
        mode = entry.get("mode") if isinstance(entry.get("mode"), str) else None
        for tier, above in sorted(stated, key=lambda k: (k[0] != "standard", k)):
            row: dict[str, Any] = {"provider": provider, "model": model, "mode": mode, "tier": tier,
                                   "above_tokens": above, "valid_from": valid_from, "valid_to": None}
            row.update({f: _price(stated, tier, above, f) for f in FIELDS.values()})
            out.rows.append(row)
    return out


@sources.register("litellm-prices")
class LitellmPricesSource(PriceCatalogSource):
    """LLM prices from LiteLLM's model_prices_and_context_window.json (a snapshot of it is bundled).

    Example: ``aifinops ingest litellm-prices model_prices_and_context_window.json -o snapshot_date=2026-12-01``
    """

    catalog: ClassVar[str] = "litellm"
    bundled_path = BUNDLED
    bundled_snapshot = BUNDLED_SNAPSHOT

    class Options(PriceCatalogSource.Options):
        #: the day this snapshot's prices took effect (UTC): its rows' valid_from. None: since ever
        snapshot_date: date | None = None
        #: the snapshot's label (restatement key with the catalog); default ``litellm <snapshot_date>`` or
        #: ``litellm sha256:<first 12 hex digits of the file>``
        snapshot: str | None = None

    def default_label(self, file: SourceFile) -> str:
        d: date | None = self.options.snapshot_date  # type: ignore[attr-defined]
        return f"litellm {d.isoformat()}" if d is not None else super().default_label(file)

    def normalise(self, doc: Any, file: SourceFile) -> Normalised:
        d: date | None = self.options.snapshot_date  # type: ignore[attr-defined]
        try:
            return normalise(doc, datetime(d.year, d.month, d.day) if d else None)
        except ValueError as exc:
            raise SourceError(f"{file.path}: {exc}") from None
