"""Row rules as SQL predicates, so validation runs vectorised inside the engine.

A rule's ``violation`` is a SQL boolean over the raw (untyped) columns that is true when the row breaks
it; ``reason`` is a SQL string expression that explains the breach with the offending value.
Errors quarantine the row. Warnings load it and are counted per rule and file; strict ingest
treats them as errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import focus

ERROR = "error"
WARNING = "warning"

#: Columns without which a row cannot be attributed, reconciled or restated: null is an error.
KEY_COLUMNS = frozenset(
    {"BilledCost", "EffectiveCost", "ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart",
     "BillingPeriodEnd", "BillingCurrency", "ChargeCategory", "ProviderName", "BillingAccountId"}
)


@dataclass(frozen=True)
class Check:
    rule: str
    column: str
    severity: str
    violation: str
    reason: str


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _shown(raw: str) -> str:
    """The offending value, quoted and shortened, inside a reason."""
    return f"'''' || left(CAST({raw} AS VARCHAR), 80) || ''''"


def allowed_value_sql(col: focus.FocusColumn, v: str) -> str:
    """The value in the spec's spelling when it matches an allowed value ignoring case."""
    whens = " ".join(f"WHEN {sql_str(a.lower())} THEN {sql_str(a)}" for a in col.allowed_values)
    return f"CASE lower(CAST({v} AS VARCHAR)) {whens} ELSE CAST({v} AS VARCHAR) END"


def focus_checks(raw: dict[str, str]) -> list[Check]:
    """The FOCUS 1.2 row rules for the columns present (``raw``: column -> raw SQL expression)."""
    checks: list[Check] = []
    for col in focus.columns():
        if col.id not in raw:
            continue
        v = raw[col.id]
        if not col.nullable:
            sev = ERROR if col.id in KEY_COLUMNS else WARNING
            checks.append(Check("not-null", col.id, sev, f"{v} IS NULL", sql_str(f"{col.id} must not be null")))
        if col.data_type == "Decimal":
            checks.append(Check(
                "decimal", col.id, ERROR, f"{v} IS NOT NULL AND TRY_CAST({v} AS {focus.DECIMAL_SQL}) IS NULL",
                f"'not a decimal number: ' || {_shown(v)}"))
        elif col.data_type == "Date/Time":
            checks.append(Check(
                # 'infinity' parses as a timestamp; no charge happens there.
                "datetime", col.id, ERROR,
                f"{v} IS NOT NULL AND NOT coalesce(isfinite(TRY_CAST({v} AS TIMESTAMPTZ)), false)",
                f"'not an ISO 8601 date/time: ' || {_shown(v)}"))
        elif col.id == "Tags":
            checks.append(Check(
                "json-object", col.id, ERROR,
                # TRY_CAST, not json_valid(v) AND json_type(v): AND does not short-circuit, and json_type
                # raises on malformed JSON instead of letting the row be quarantined.
                f"{v} IS NOT NULL AND NOT coalesce(json_type(TRY_CAST({v} AS JSON)) = 'OBJECT', false)",
                f"'not a JSON object of tags: ' || {_shown(v)}"))
            # A repeated key is valid JSON but cannot become a MAP: without this the cast fails the batch.
            keys = f"json_keys(TRY_CAST({v} AS JSON))"
            checks.append(Check(
                "json-object-keys", col.id, ERROR,
                f"{v} IS NOT NULL AND len({keys}) <> len(list_distinct({keys}))",
                f"'a tag key appears more than once: ' || {_shown(v)}"))
        elif col.data_type == "JSON":
            checks.append(Check(
                "json", col.id, WARNING, f"{v} IS NOT NULL AND NOT coalesce(json_valid({v}), false)",
                f"'not valid JSON: ' || {_shown(v)}"))
        if col.allowed_values:
            values = ", ".join(sql_str(a) for a in col.allowed_values)
            lowered = ", ".join(sql_str(a.lower()) for a in col.allowed_values)
            checks.append(Check(
                "allowed-value", col.id, ERROR, f"{v} IS NOT NULL AND lower({v}) NOT IN ({lowered})",
                f"'not an allowed {col.id}: ' || {_shown(v)}"))
            # 'Usage-based' for 'Usage-Based' (Oracle's export does this): loaded with the spec's
            # spelling (see allowed_value_sql) and counted as a warning.
            checks.append(Check(
                "allowed-value-case", col.id, WARNING,
                f"{v} IS NOT NULL AND {v} NOT IN ({values}) AND lower({v}) IN ({lowered})",
                f"'allowed {col.id} in the wrong letter case: ' || {_shown(v)}"))
    codes = ", ".join(sql_str(c) for c in sorted(focus.currency_codes()))
    if "BillingCurrency" in raw:
        v = raw["BillingCurrency"]
        checks.append(Check(
            "currency", "BillingCurrency", ERROR, f"{v} IS NOT NULL AND {v} NOT IN ({codes})",
            f"'not an ISO 4217 currency code: ' || {_shown(v)}"))
    for start, end in (("ChargePeriodStart", "ChargePeriodEnd"), ("BillingPeriodStart", "BillingPeriodEnd")):
        if start in raw and end in raw:
            s, e = (f"TRY_CAST({raw[c]} AS TIMESTAMPTZ)" for c in (start, end))
            checks.append(Check(
                "period-order", start, ERROR, f"{s} >= {e}",
                f"'{start} ' || {_shown(raw[start])} || ' is not before {end} ' || {_shown(raw[end])}"))
    return checks
