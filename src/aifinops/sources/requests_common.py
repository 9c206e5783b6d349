"""What every LLM request source shares: the row rules of ``llm_requests`` and the SQL that reads counts.

One set of rules for LiteLLM spend logs, usage exports, CSV mappings and OTel spans, so that a request
with no model, a negative count or an impossible token split is refused the same way wherever it comes
from: each would be priced wrong (or not at all) and no later step could tell.

``request_checks(raw, typed)`` takes the column -> SQL maps a source gives the ingest engine (``raw``: the
value as read, for the columns the source reads; ``typed``: ``typed_ref`` of every canonical column). Token
counts follow the OTel semantics of ``model.llm``: cache reads and writes are parts of ``input_tokens``,
reasoning is part of ``output_tokens``, so a part larger than its total means the source counted otherwise
and the row is quarantined with both numbers rather than priced twice.
"""

from __future__ import annotations

from ..model.checks import ERROR, WARNING, Check, sql_str
from .workloads_csv import shown

#: A request with more tokens than this (per request of an aggregated row) is not a request but a bug.
MAX_TOKENS_PER_REQUEST = 100_000_000
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
COUNT_COLUMNS = (*TOKEN_COLUMNS, "requests")


def count_sql(raw: str) -> str:
    """SQL: a count (tokens, requests) from a raw value, text or number, as BIGINT; NULL when it is not a
    whole number (``12.5``, ``abc``, ``NaN``), so that a check can name the value. DuckDB's own cast of the
    text ``12.5`` to BIGINT rounds it to 13; a fractional token count is an error, never rounded."""
    d = f"TRY_CAST({raw} AS DOUBLE)"
    return f"(CASE WHEN trunc({d}) = {d} THEN TRY_CAST({raw} AS BIGINT) END)"


def _n(typed: str) -> str:
    """A count in a reason, with thousands separators (250,000,000)."""
    return f"format('{{:,}}', {typed})"


def request_checks(raw: dict[str, str], typed: dict[str, str], max_tokens: int = MAX_TOKENS_PER_REQUEST) -> list[Check]:
    """The row rules of an LLM request (errors quarantine the row, with the reason):

    - no ``request_id`` (a re-ingest could not tell the request from others), no time or not a time;
    - no model: neither ``request_model`` nor ``response_model`` names one, so it cannot be priced;
    - a count (tokens, ``requests``) that is not a whole number, or is negative;
    - more than ``max_tokens`` (default ``MAX_TOKENS_PER_REQUEST``) tokens in one request, x ``requests``
      for an aggregated row;
    - cache reads + writes above ``input_tokens``, reasoning above ``output_tokens`` (parts larger than
      their totals);
    - a ``source_cost`` that is not a number.

    A negative duration loads with a warning: it does not change what the request cost."""
    t = typed
    checks = [
        Check("not-null", "request_id", ERROR, f"nullif(trim({t['request_id']}), '') IS NULL",
              sql_str("no request id: the request cannot be told apart from others, a re-ingest would count "
                      "it twice")),
        Check("datetime", "ts", ERROR, f"NOT coalesce(isfinite({t['ts']}), false)",
              (f"CASE WHEN {raw['ts']} IS NULL THEN 'no time: the request cannot be placed in a window' "
               f"ELSE 'not a time: ' || {shown(raw['ts'])} END") if "ts" in raw
              else sql_str("no time: the request cannot be placed in a window")),
        Check("no-model", "request_model", ERROR,
              f"coalesce(nullif(trim({t['request_model']}), ''), nullif(trim({t['response_model']}), '')) IS NULL",
              sql_str("no model: neither the request nor the response names a model; the request cannot be "
                      "priced")),
    ]
    per_request = f"greatest(coalesce({t['requests']}, 1), 1)"
    for col in COUNT_COLUMNS:
        if col in raw:
            checks.append(Check("whole-number", col, ERROR, f"{raw[col]} IS NOT NULL AND {t[col]} IS NULL",
                                f"'{col} is not a whole number: ' || {shown(raw[col])}"))
        checks.append(Check("non-negative", col, ERROR, f"{t[col]} < 0", f"'{col} is negative: ' || {_n(t[col])}"))
        if col != "requests":
            limit = f"{int(max_tokens)} * {per_request}"
            checks.append(Check(
                "absurd", col, ERROR, f"{t[col]} > {limit}",
                f"'{col} ' || {_n(t[col])} || ' is more than {int(max_tokens):,} tokens per request' || "
                f"CASE WHEN {per_request} > 1 THEN ' x ' || {_n(per_request)} || ' requests' ELSE '' END || "
                "': not a real request'"))
    read, write = f"coalesce({t['cache_read_tokens']}, 0)", f"coalesce({t['cache_write_tokens']}, 0)"
    checks += [
        Check("parts", "cache_read_tokens", ERROR,
              f"{read} + {write} > {t['input_tokens']} AND {t['input_tokens']} >= 0",
              f"'cache tokens (' || {_n(read)} || ' read + ' || {_n(write)} || ' written) exceed input_tokens ' || "
              f"{_n(t['input_tokens'])} || ': cache reads and writes are parts of the input (OTel)'"),
        Check("parts", "reasoning_tokens", ERROR,
              f"{t['reasoning_tokens']} > {t['output_tokens']} AND {t['output_tokens']} >= 0",
              f"'reasoning_tokens ' || {_n(t['reasoning_tokens'])} || ' exceed output_tokens ' || "
              f"{_n(t['output_tokens'])} || ': reasoning is part of the output (OTel)'"),
        Check("negative-duration", "duration_ms", WARNING, f"{t['duration_ms']} < 0",
              f"'ends before it starts (' || CAST({t['duration_ms']} AS VARCHAR) || ' ms): loaded; the duration is "
              "not used for cost'"),
    ]
    if "source_cost" in raw:
        checks.append(Check("decimal", "source_cost", ERROR, f"{raw['source_cost']} IS NOT NULL AND "
                            f"{t['source_cost']} IS NULL", f"'not a number: ' || {shown(raw['source_cost'])}"))
    return checks
