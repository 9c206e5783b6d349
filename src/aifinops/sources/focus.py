"""FOCUS billing data (1.0, 1.1, 1.2; 1.3 tolerated) from CSV, CSV.gz and Parquet, normalised to 1.2.

Values are read as text and cast with the spec's types, never with sniffed ones: on large files
DuckDB's sniffer guesses from the first rows (an account id sniffed as BIGINT fails two million rows
later on an OCI id). Columns 1.2 defines but the file lacks are null; non-FOCUS columns are kept as
``x_`` columns; FOCUS 1.3 columns keep their own names.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from ..model import focus
from ..model.checks import allowed_value_sql, focus_checks, sql_ident, sql_str
from .base import (
    FileRead,
    Source,
    SourceError,
    SourceFile,
    csv_first_line,
    csv_stream,
    sources,
    typed_ref,
)

_DELIMITERS = (",", ";", "\t", "|")




def _csv_header(file: SourceFile) -> tuple[list[str], str]:
    """First line of a CSV(.gz) -> (column names, delimiter). Rejects encodings DuckDB cannot read."""
    line = csv_first_line(file)
    best: tuple[int, list[str], str] | None = None
    for delim in _DELIMITERS:
        names = [n.strip() for n in next(csv.reader(io.StringIO(line), delimiter=delim))]
        score = len({n.lower() for n in names} & _KNOWN_LOWER)
        if best is None or score > best[0]:
            best = (score, names, delim)
    assert best is not None
    return best[1], best[2]


_KNOWN_LOWER = {c.lower() for c in focus.column_names()}


def header_of(file: SourceFile) -> tuple[list[str], str | None]:
    """Column names (and the CSV delimiter) of a file, without reading its rows."""
    if file.format == "parquet":
        try:
            return list(pq.read_schema(file.path).names), None
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise SourceError(f"{file.path}: not a readable Parquet file ({exc})") from None
    return _csv_header(file)


def _parquet_types(file: SourceFile) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in pq.read_schema(file.path)}


@sources.register("focus")
class FocusSource(Source):
    """FOCUS cost and usage data from any provider.

    Example: ``aifinops ingest focus exports/2026-10/``
    """

    target: ClassVar[str] = "focus_charges"
    restatement_key: ClassVar[tuple[str, ...]] = focus.RESTATEMENT_KEY
    restatement_end: ClassVar[str | None] = "ChargePeriodEnd"
    key_noun: ClassVar[str] = "billing period(s)"
    reconciled: ClassVar[tuple[str, ...]] = focus.RECONCILED_COSTS

    def describe_key(self, values: tuple[Any, ...]) -> str:
        provider, account, period = values
        return f"{provider} account {account} period {period:%Y-%m}"

    def read(self, file: SourceFile) -> FileRead:
        names, delim = header_of(file)
        counts = Counter(n.lower() for n in names)
        dupes = sorted({n for n in names if counts[n.lower()] > 1})
        if dupes:
            raise SourceError(f"{file.path}: duplicated column(s) in the header: {', '.join(dupes)}")
        if any(not n for n in names):
            raise SourceError(f"{file.path}: the header has an empty column name")
        canonical = {c.lower(): c for c in focus.column_names()}
        mapping: dict[str, str] = {}  # canonical -> name in file
        extras: dict[str, str] = {}
        for name in names:
            if name.lower() in canonical:
                mapping[canonical[name.lower()]] = name
            elif name in focus.FOCUS_1_3_COLUMNS:
                extras[name] = name
            else:
                extras[name if name.startswith("x_") else f"x_{name}"] = name
        version = focus.detect_version(names)
        for new, old in focus.RENAMED_IN_1_3.items():
            if old not in mapping and new in extras:
                mapping[old] = extras[new]
        required = focus.mandatory(min(version, "1.2"))
        missing = [c for c in required if c not in mapping]
        if missing:
            shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
            hint = ""
            if len(names) == 1:
                hint = " The header has a single column: is the delimiter something other than , ; tab or |?"
            raise SourceError(
                f"{file.path}: not a FOCUS {version} file: missing required column(s) {', '.join(missing)}"
                f" (header: {shown}).{hint}"
            )
        path = sql_str(str(file.path))
        if file.format == "parquet":
            relation = f"read_parquet({path}, file_row_number = true)"
        else:
            relation = (
                f"read_csv({path}, header = true, all_varchar = true, delim = {sql_str(delim or ',')},"
                " quote = '\"', escape = '\"', nullstr = ['NULL', ''], strict_mode = true,"
                " store_rejects = true, rejects_limit = 0, null_padding = false,"
                f" compression = '{'gzip' if file.format == 'csv.gz' else 'none'}',"
                " parallel = false)"
            )
        # Raw values are referenced through the stage alias ``s`` the ingest engine reads them from.
        # An empty string is a missing value in Parquet too, as it is in CSV (nullstr above).
        types = _parquet_types(file) if file.format == "parquet" else {}
        texts = {n for n, t in types.items() if pa.types.is_string(t) or pa.types.is_large_string(t)}

        def ref(src: str) -> str:
            ident = "s." + sql_ident(src)
            return f"NULLIF({ident}, '')" if src in texts else ident

        raw = {col: ref(src) for col, src in mapping.items()}
        typed = {c.id: _typed(c, raw.get(c.id), types.get(mapping.get(c.id, ""))) for c in focus.columns()}
        for col, src in extras.items():
            raw[col] = ref(src)
            typed[col] = f"CAST({raw[col]} AS VARCHAR)"
        stream = csv_stream(file, names, delim or ",") if file.format != "parquet" else None
        notes = []
        if delim not in (None, ","):
            notes.append(f"{file.path.name}: read with delimiter {delim!r}")
        return FileRead(
            file=file, relation_sql=relation, raw=raw, typed=typed,
            extra_columns={col: "VARCHAR" for col in extras},
            checks=focus_checks(raw, {c: typed_ref(i) for i, c in enumerate(typed)}),
            version=version, is_csv=file.format != "parquet", notes=notes, stream=stream,
        )


def _typed(col: focus.FocusColumn, raw: str | None, source_type: pa.DataType | None = None) -> str:
    """SQL giving the 1.2-typed value of ``col`` from its raw expression (NULL when the file lacks it).

    A Parquet column already of the right type is taken as it is: parsing is the costly part of a load."""
    if raw is None:
        return "CAST(NULL AS MAP(VARCHAR, VARCHAR))" if col.id == "Tags" else f"CAST(NULL AS {col.sql_type})"
    if col.id == "Tags":
        # A JSON object -> MAP(VARCHAR, VARCHAR): booleans and numbers become text, nested values JSON text.
        # A Parquet column that is already a MAP (or a STRUCT) goes through JSON too: its VARCHAR form
        # ({k=v}) is not JSON, so it must not be cast to text first.
        # TRY: a row whose Tags break a rule still passes through the insert (on its way to quarantine).
        return f"TRY(CAST(CAST({raw} AS JSON) AS MAP(VARCHAR, VARCHAR)))"
    if col.data_type == "Date/Time":
        if source_type is not None and pa.types.is_timestamp(source_type) and source_type.tz is None:
            return raw  # a zone-less Parquet timestamp is UTC, as the store's are
        # Zone-less text is UTC (the session time zone); offsets are converted to UTC.
        return f"CAST(TRY_CAST({raw} AS TIMESTAMPTZ) AS TIMESTAMP)"
    if col.data_type == "Decimal":
        if source_type is not None and pa.types.is_decimal(source_type) and source_type.scale == 12 \
                and source_type.precision <= 38:
            return f"CAST({raw} AS {focus.DECIMAL_SQL})"  # widening only: cannot fail
        return f"TRY_CAST({raw} AS {focus.DECIMAL_SQL})"
    if col.allowed_values:
        return allowed_value_sql(col, raw)
    return f"CAST({raw} AS VARCHAR)"
