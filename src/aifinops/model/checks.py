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
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier (column names come from files and may hold anything)."""
    return '"' + name.replace('"', '""') + '"'


def _shown(raw: str) -> str:
    """The offending value, quoted and shortened, inside a reason."""
    return f"'''' || left(CAST({raw} AS VARCHAR), 80) || ''''"


def allowed_value_sql(col: focus.FocusColumn, v: str) -> str:
    """The value in the spec's spelling when it matches an allowed value ignoring case."""
    whens = " ".join(f"WHEN {sql_str(a.lower())} THEN {sql_str(a)}" for a in col.allowed_values)
    return f"CASE lower(CAST({v} AS VARCHAR)) {whens} ELSE CAST({v} AS VARCHAR) END"


def focus_checks(raw: dict[str, str], typed: dict[str, str]) -> list[Check]:
    """The FOCUS 1.2 row rules for the columns present.

    ``raw`` maps a column to the SQL of its value as read; ``typed`` to the SQL of its value already cast
    to the spec's type (NULL when the cast failed). Rules compare the two instead of parsing again: each
    timestamp and number is parsed once per row, whatever the number of rules that look at it."""
    checks: list[Check] = []
    for col in focus.columns():
        if col.id not in raw:
            continue
        v, t = raw[col.id], typed[col.id]
        if not col.nullable:
            sev = ERROR if col.id in KEY_COLUMNS else WARNING
            checks.append(Check("not-null", col.id, sev, f"{v} IS NULL", sql_str(f"{col.id} must not be null")))
        if col.data_type == "Decimal":
            checks.append(Check(
                "decimal", col.id, ERROR, f"{v} IS NOT NULL AND {t} IS NULL",
                f"'not a decimal number: ' || {_shown(v)}"))
        elif col.data_type == "Date/Time":
            checks.append(Check(
                # 'infinity' parses as a timestamp; no charge happens there.
                "datetime", col.id, ERROR, f"{v} IS NOT NULL AND NOT coalesce(isfinite({t}), false)",
                f"'not an ISO 8601 date/time: ' || {_shown(v)}"))
        elif col.id == "Tags":
            # The typed value is NULL when the text is not JSON, not an object, or repeats a key (a MAP
            # cannot); the reason, computed only for such rows, says which.
            checks.append(Check(
                "json-object", col.id, ERROR, f"{v} IS NOT NULL AND {t} IS NULL",
                f"CASE WHEN coalesce(json_type(TRY_CAST({v} AS JSON)) = 'OBJECT', false) "
                f"THEN 'a tag key appears more than once: ' ELSE 'not a JSON object of tags: ' END || {_shown(v)}"))
        elif col.data_type == "JSON":
            checks.append(Check(
                "json", col.id, WARNING, f"{v} IS NOT NULL AND NOT coalesce(json_valid({v}), false)",
                f"'not valid JSON: ' || {_shown(v)}"))
        if col.allowed_values:
            # The typed value is the spec's spelling when the text matches an allowed value ignoring case
            # (see allowed_value_sql): 'Usage-based' (Oracle's export) loads as 'Usage-Based', with a warning.
            values = ", ".join(sql_str(a) for a in col.allowed_values)
            checks.append(Check(
                "allowed-value", col.id, ERROR, f"{t} IS NOT NULL AND {t} NOT IN ({values})",
                f"'not an allowed {col.id}: ' || {_shown(v)}"))
            checks.append(Check(
                "allowed-value-case", col.id, WARNING, f"{t} IN ({values}) AND {t} <> CAST({v} AS VARCHAR)",
                f"'allowed {col.id} in the wrong letter case: ' || {_shown(v)}"))
    codes = ", ".join(sql_str(c) for c in sorted(focus.currency_codes()))
    if "BillingCurrency" in raw:
        v = raw["BillingCurrency"]
        checks.append(Check(
            "currency", "BillingCurrency", ERROR, f"{v} IS NOT NULL AND {v} NOT IN ({codes})",
            f"'not an ISO 4217 currency code: ' || {_shown(v)}"))
    for start, end in (("ChargePeriodStart", "ChargePeriodEnd"), ("BillingPeriodStart", "BillingPeriodEnd")):
        if start in raw and end in raw:
            checks.append(Check(
                "period-order", start, ERROR, f"{typed[start]} >= {typed[end]}",
                f"'{start} ' || {_shown(raw[start])} || ' is not before {end} ' || {_shown(raw[end])}"))
    return checks
