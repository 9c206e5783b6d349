"""pydantic's genai-prices catalog (``data.json``, v2 feed: providers -> models -> prices) as ``llm_prices`` rows.

One model gives rows per (price period, context threshold):

- ``model`` is the model's ``id``; ``provider`` the provider's ``id`` through ``PROVIDER_ALIASES``
  (``aws`` -> ``aws.bedrock``, ``google`` -> ``gcp.gemini``, ``azure`` -> ``azure.ai.openai``); tier
  ``standard`` (the catalog has no batch or priority prices); ``mode`` NULL (the catalog has none);
- ``input_mtok`` / ``output_mtok`` / ``cache_read_mtok`` / ``cache_write_mtok`` (or ``cache_write_5m_mtok``)
  are already USD per 1M tokens: kept as exact decimals. ``cache_write_1h_mtok``, audio, image, per-request
  and per-search prices are not represented in ``llm_prices`` and are counted in a note;
- a tiered price ``{base, tiers: [{start, price}]}`` (the price of *all* tokens of a request whose input
  tokens cross ``start``) -> a row with ``above_tokens`` 0 at the base prices and one per tier ``start``;
- conditional prices (a list): genai-prices uses the last entry whose constraint holds at the request's
  time (a ``start_date``, UTC), else the first. That rule is evaluated between consecutive start dates and
  written as ``valid_from`` / ``valid_to``: an unconstrained first price holds from NULL (since ever) to the
  first start date. A time-of-day price (DeepSeek's 00:30-16:30 UTC) cannot be written as dates: the price
  in force for most of the day is kept (the off-peak discount is not) and counted;
- names: besides the ``id``, every literal name the model's ``match`` claims (``equals`` and ``starts_with``
  values, also inside ``or``) whose model key differs gives the same rows under that name (e.g.
  ``claude-sonnet-4.5`` for ``claude-sonnet-4-5``, ``o3-2025-04-16`` for ``o3``). As in genai-prices, the
  first model of a provider to claim a key keeps it; ``contains``, ``ends_with`` and ``regex`` clauses are
  not names. Models with no input and no output token price are skipped and counted.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any, ClassVar

from .base import SourceError, SourceFile, sources
from .price_catalog import DATA, Normalised, PriceCatalogSource, day, model_keys, mtok

#: canonical price column -> genai-prices fields that give it, first present wins
FIELDS: dict[str, tuple[str, ...]] = {
    "input_per_mtok": ("input_mtok", "input_text_mtok"),
    "output_per_mtok": ("output_mtok", "output_text_mtok"),
    "cache_read_per_mtok": ("cache_read_mtok", "cache_text_read_mtok"),
    "cache_write_per_mtok": ("cache_write_mtok", "cache_write_5m_mtok", "cache_text_write_mtok",
                             "cache_text_write_5m_mtok"),
}
_USED = {f for names in FIELDS.values() for f in names}

BUNDLED = DATA / "genai_prices" / "data_v2.json.gz"
BUNDLED_SNAPSHOT = "genai-prices 47df840 (2026-08-21)"


def _names(clause: Any) -> list[str]:
    """Literal model names a match clause claims (equals, starts_with; through or)."""
    if not isinstance(clause, dict):
        return []
    if isinstance(clause.get("equals"), str):
        return [clause["equals"]]
    if isinstance(clause.get("starts_with"), str):
        return [clause["starts_with"]]
    if isinstance(clause.get("or"), list):
        return [n for c in clause["or"] for n in _names(c)]
    return []


def _tier_rows(price: dict[str, Any], out: Normalised) -> list[dict[str, Any]]:
    """One ModelPrice -> rows of (above_tokens, prices): the base, then one per tier start of any field."""
    values: dict[str, Any] = {}
    for col, names in FIELDS.items():
        values[col] = next((price[n] for n in names if n in price), None)
    starts = sorted({int(t["start"]) for v in values.values() if isinstance(v, dict)
                     for t in v.get("tiers", []) if isinstance(t, dict) and "start" in t})
    rows = []
    for above in (0, *starts):
        row: dict[str, Any] = {"above_tokens": above}
        for col, v in values.items():
            if isinstance(v, dict):
                tiers = [t for t in v.get("tiers", []) if isinstance(t, dict) and int(t.get("start", 0)) <= above
                         and above > 0]
                v = max(tiers, key=lambda t: int(t["start"]))["price"] if tiers else v.get("base")
            row[col] = mtok(v, out)
        rows.append(row)
    return rows


def _day_fraction(constraint: dict[str, Any]) -> float:
    """The share of a day a time-of-day constraint covers (an interval may wrap midnight)."""
    def seconds(text: str) -> int:
        t = time.fromisoformat(str(text).rstrip("Z"))
        return t.hour * 3600 + t.minute * 60 + t.second
    start, end = seconds(constraint["start_time"]), seconds(constraint["end_time"])
    return ((end - start) % 86400) / 86400


def _periods(prices: Any, out: Normalised) -> list[tuple[datetime | None, datetime | None, dict[str, Any]]]:
    """``prices`` (one ModelPrice or a list of ConditionalPrice) -> (valid_from, valid_to, ModelPrice),
    by genai-prices' rule: at time t the last entry whose constraint holds, else the first."""
    if isinstance(prices, dict):
        return [(None, None, prices)]
    items = [c for c in prices if isinstance(c, dict) and isinstance(c.get("prices"), dict)]
    if not items:
        return []
    daily = [c for c in items if isinstance(c.get("constraint"), dict) and "start_time" in c["constraint"]]
    if daily:
        out.skip("model(s) with time-of-day prices (off-peak): the price in force most of the day is kept")
        main = max(daily, key=lambda c: _day_fraction(c["constraint"]))
        dated = [c for c in items if all(c is not d for d in daily) and c.get("constraint") is not None]
        if _day_fraction(main["constraint"]) >= 0.5:  # the time-of-day price is the usual one
            items = [{"prices": main["prices"]}, *dated]
        else:  # an off-peak discount: the other prices stand
            items = [c for c in items if all(c is not d for d in daily)] or [{"prices": main["prices"]}]

    def start(c: dict[str, Any]) -> datetime | None:
        con = c.get("constraint")
        return day(con["start_date"]) if isinstance(con, dict) and "start_date" in con else None

    def active(t: datetime | None) -> dict[str, Any]:
        for c in reversed(items):
            s = start(c)
            if c.get("constraint") is None or (s is not None and t is not None and t >= s):
                return c["prices"]
        return items[0]["prices"]

    bounds = sorted({s for c in items if (s := start(c)) is not None})
    edges: list[datetime | None] = [None, *bounds]
    periods: list[tuple[datetime | None, datetime | None, dict[str, Any]]] = []
    for i, t in enumerate(edges):
        p = active(t)
        end = edges[i + 1] if i + 1 < len(edges) else None
        if periods and periods[-1][2] is p:
            periods[-1] = (periods[-1][0], end, p)
        else:
            periods.append((t, end, p))
    return periods


def normalise(doc: Any) -> Normalised:
    """genai-prices' providers (parsed with Decimal floats) -> canonical rows (provider and model_key are
    canonicalised in SQL by ``price_catalog.canonical_table``)."""
    if not isinstance(doc, list) or not all(isinstance(p, dict) and "models" in p for p in doc):
        raise ValueError("not a genai-prices data file: expected a JSON list of providers with models")
    out = Normalised()
    keys = model_keys(n for p in doc for m in p["models"] if isinstance(m, dict)
                      for n in (str(m.get("id", "")), *_names(m.get("match"))))
    for provider in doc:
        pid = str(provider.get("id", ""))
        models = [m for m in provider["models"] if isinstance(m, dict) and m.get("id")]
        claimed = {keys[str(m["id"])] for m in models}
        for m in models:
            out.entries += 1
            periods = _periods(m.get("prices"), out)
            rows = [(vf, vt, r) for vf, vt, p in periods for r in _tier_rows(p, out)]
            if not any(r["input_per_mtok"] is not None or r["output_per_mtok"] is not None for _, _, r in rows):
                empty = all(not p for _, _, p in periods)
                out.skip("model(s) listed without any price (free or not known) skipped" if empty else
                         "model(s) without input or output token prices skipped (audio, image, per request)")
                continue
            out.priced += 1
            other = {k for _, _, p in periods for k in p if k not in _USED}
            if other:
                out.skip("model(s) also priced for other units (1-hour cache writes, audio, images, requests, "
                         "searches): those prices are not kept")
            names = [str(m["id"])]
            for n in _names(m.get("match")):  # a prefix such as "claude-sonnet-4@" is not a name
                if n[-1:].isalnum() and keys.get(n) and keys[n] not in claimed:
                    claimed.add(keys[n])
                    names.append(n)
            if len(names) > 1:
                out.skip("more name(s) from match clauses priced like their model", len(names) - 1)
            for name in names:
                for vf, vt, r in rows:
                    out.rows.append({"provider": pid, "model": name, "mode": None, "tier": "standard",
                                     "valid_from": vf, "valid_to": vt, **r})
    return out


@sources.register("genai-prices")
class GenaiPricesSource(PriceCatalogSource):
    """LLM prices from pydantic's genai-prices data.json, price history included (a snapshot is bundled).

    Example: ``aifinops ingest genai-prices data.json -o snapshot="genai-prices 2026-12-01"``
    """

    catalog: ClassVar[str] = "genai-prices"
    bundled_path = BUNDLED
    bundled_snapshot = BUNDLED_SNAPSHOT

    class Options(PriceCatalogSource.Options):
        #: the snapshot's label (restatement key with the catalog); default ``genai-prices sha256:<12 hex>``
        snapshot: str | None = None

    def normalise(self, doc: Any, file: SourceFile) -> Normalised:
        try:
            return normalise(doc)
        except ValueError as exc:
            raise SourceError(f"{file.path}: {exc}") from None

