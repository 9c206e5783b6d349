"""Tag coverage: how much spend carries each key, which resources carry none, which values are typos."""

from __future__ import annotations

import ibis
import pyarrow as pa

from .costs import in_window
from .windows import Window


def _has(t: ibis.Table, key: str) -> ibis.BooleanValue:
    value = t.Tags.get(key)
    return (value.notnull() & (value.strip() != "")).fill_null(False)


def coverage(t: ibis.Table, keys: list[str], window: Window) -> ibis.Table:
    """Per key (and ``(all keys)``): EffectiveCost carrying it, total, and the share.

    Only charges with a positive EffectiveCost count: credits and refunds are not resources anyone
    tags, and netting them in would let a share exceed 100%."""
    t = in_window(t, window)
    t = t.filter(t.EffectiveCost > 0)
    aggs = {}
    for i, key in enumerate(keys):
        aggs[f"k{i}"] = t.EffectiveCost.sum(where=_has(t, key))
    aggs["all"] = t.EffectiveCost.sum(where=ibis.and_(*[_has(t, k) for k in keys]))
    aggs["total"] = t.EffectiveCost.sum()
    row = t.aggregate(**aggs).to_pyarrow().to_pylist()[0]
    total = row["total"] or 0
    names = [*keys, "(all keys)"]
    values = [row[f"k{i}"] for i in range(len(keys))] + [row["all"]]
    return ibis.memtable(pa.table({
        "key": names,
        "tagged_cost": pa.array([v or 0 for v in values], pa.decimal128(38, 12)),
        "total_cost": pa.array([total] * len(names), pa.decimal128(38, 12)),
        "share": [float((v or 0) / total) if total else 0.0 for v in values],
    }))


def untagged_resources(t: ibis.Table, keys: list[str], window: Window, limit: int = 10) -> ibis.Table:
    """The resources with the most spend that miss at least one of ``keys``."""
    t = in_window(t, window)
    missing = ibis.array([ibis.ifelse(_has(t, k), ibis.null("string"), ibis.literal(k)) for k in keys])
    t = t.mutate(_missing=missing.filter(lambda x: x.notnull()))
    t = t.filter((t._missing.length() > 0) & t.ResourceId.notnull())
    return (
        t.group_by("ResourceId")
        .aggregate(
            cost=t.EffectiveCost.sum(),
            ServiceName=t.ServiceName.arbitrary(),
            SubAccountId=t.SubAccountId.arbitrary(),
            missing_keys=t._missing.first(),
        )
        .order_by(ibis.desc("cost"))
        .limit(limit)
    )


#: Values people spell differently but mean the same; compared after normalising.
SYNONYMS = {"production": "prod", "prd": "prod", "development": "dev", "staging": "stage", "stg": "stage",
            "testing": "test", "tst": "test", "sandbox": "sbx"}


def _norm(v: ibis.StringValue) -> ibis.StringValue:
    n = v.lower().re_replace(r"[^a-z0-9]", "")
    return ibis.cases(*[(n == a, b) for a, b in SYNONYMS.items()], else_=n)


def typo_pairs(t: ibis.Table, window: Window, keys: list[str] | None = None) -> ibis.Table:
    """Tag keys and values that look like typos of each other (``ml-platform`` vs ``mlplatform``,
    ``team`` vs ``Team``, ``prod`` vs ``production``): the same once lower-cased without punctuation and
    common synonyms, or one edit apart."""
    t = in_window(t, window).filter(t.Tags.notnull())
    pairs = t.select(cost=t.EffectiveCost, key=t.Tags.keys().unnest())
    kv = t.select(cost=t.EffectiveCost, tags=t.Tags).mutate(key=ibis._.tags.keys().unnest())
    kv = kv.mutate(value=kv.tags.get(kv.key)).drop("tags")
    key_costs = pairs.group_by("key").aggregate(cost=pairs.cost.sum())
    value_costs = kv.filter(kv.value.notnull()).group_by(["key", "value"]).aggregate(cost=kv.cost.sum())
    if keys:
        lowered = [k.lower() for k in keys]
        value_costs = value_costs.filter(value_costs.key.lower().isin(lowered))

    def similar(a: ibis.StringValue, b: ibis.StringValue) -> ibis.BooleanValue:
        close = (a.length() >= 4) & (b.length() >= 4) & (a.levenshtein(b) <= 1)
        return (_norm(a) == _norm(b)) | close

    def match(a: ibis.StringValue, b: ibis.StringValue) -> ibis.StringValue:
        return ibis.ifelse(_norm(a) == _norm(b), "same when normalised", "one edit apart")

    k1, k2 = key_costs.view(), key_costs.view()
    key_pairs = k1.join(k2, [k1.key < k2.key, similar(k1.key, k2.key)]).select(
        kind=ibis.literal("key"), key=k1.key, a=k1.key, a_cost=k1.cost, b=k2.key, b_cost=k2.cost,
        match=match(k1.key, k2.key))
    v1, v2 = value_costs.view(), value_costs.view()
    value_pairs = v1.join(
        v2, [v1.key.lower() == v2.key.lower(), v1.value < v2.value, similar(v1.value, v2.value)]
    ).select(kind=ibis.literal("value"), key=v1.key, a=v1.value, a_cost=v1.cost, b=v2.value, b_cost=v2.cost,
             match=match(v1.value, v2.value))
    out = key_pairs.union(value_pairs)
    return out.order_by([ibis.desc(out.a_cost + out.b_cost)])
