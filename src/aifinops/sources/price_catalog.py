"""What the LLM price catalog sources share: reading a catalog's JSON exactly, turning per-token prices into
per-1M-token decimals, canonical ``llm_prices`` rows as an Arrow table, and the source base class.

Prices are parsed from the JSON text as ``Decimal`` (``json.loads(..., parse_float=Decimal)``) and multiplied
by 10^6 in decimal arithmetic, so ``2.5e-06`` USD per token is exactly ``2.5`` per 1M tokens: a float would
make it ``2.4999999999999996``. A value with more than 12 decimals per 1M tokens (LiteLLM's Databricks
prices are float artefacts such as ``2.9999900000000002``) is rounded half-even to the store's 12 decimals
and counted in a note.

``provider`` and ``model_key`` are computed by DuckDB with ``model.llm.provider_sql`` and ``model_key_sql``:
the very SQL that the requests side uses, so a catalog name and a request name are normalised alike.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa

from ..model.checks import ERROR, Check, sql_str
from ..model.llm import LLM_PRICE_COLUMNS, TIERS, model_key_sql, provider_sql
from .base import ArrowStream, FileRead, Source, SourceError, SourceFile, expand, typed_ref

DATA = Path(__file__).parent / "data"
PRICE_FIELDS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")
_SCALE = Decimal("1e-12")
_MONEY = pa.decimal128(38, 12)

#: Arrow schema of the rows a normaliser emits, before provider/model_key are canonicalised.
RAW_SCHEMA = pa.schema([
    ("provider", pa.string()), ("model", pa.string()), ("mode", pa.string()), ("tier", pa.string()),
    ("above_tokens", pa.int64()), ("valid_from", pa.timestamp("us")), ("valid_to", pa.timestamp("us")),
    *((f, _MONEY) for f in PRICE_FIELDS),
])


@dataclass
class Normalised:
    """A catalog turned into rows, and what the normaliser left out or changed, for the batch notes."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    entries: int = 0  # catalog entries read (LiteLLM keys, genai-prices models)
    priced: int = 0  # entries that gave at least one row
    skipped: dict[str, int] = field(default_factory=dict)  # why an entry (or a price of it) was left out
    rounded: int = 0  # prices rounded to 12 decimals per 1M tokens

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def notes(self, name: str) -> list[str]:
        out = [f"{name}: {self.entries:,} entries, {self.priced:,} token-priced -> {len(self.rows):,} price rows"]
        if self.skipped:
            out.append(f"{name}: " + "; ".join(f"{n:,} {why}" for why, n in
                                                sorted(self.skipped.items(), key=lambda kv: -kv[1])))
        if self.rounded:
            out.append(f"{name}: {self.rounded:,} price(s) had more than 12 decimals per 1M tokens (float artefacts "
                       "in the catalog) and were rounded half-even to 12")
        return out


def per_mtok(value: Any, out: Normalised) -> Decimal | None:
    """A per-token price (a JSON number parsed as Decimal, or an int) -> USD per 1M tokens, exactly.
    None for anything that is not a number (a bool, a string, a dict)."""
    return mtok(value, out, Decimal(1_000_000))


def mtok(value: Any, out: Normalised, factor: Decimal = Decimal(1)) -> Decimal | None:
    """A price already per 1M tokens (``factor`` 1) as a Decimal with at most 12 decimals; None if not a number."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    exact = Decimal(value) * factor
    q = exact.quantize(_SCALE)
    if q != exact:
        out.rounded += 1
    return q


def load_json(file: SourceFile) -> Any:
    """The catalog's JSON (plain or gzip), every float parsed as Decimal; unreadable input is a SourceError."""
    try:
        data = file.path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{file.path}: cannot read ({exc}); a gzip file may be corrupt or truncated") from None
    if not data.strip():
        raise SourceError(f"{file.path}: the file is empty")
    try:
        return json.loads(data, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{file.path}: not JSON ({exc})") from None


def canonical_table(rows: Iterable[dict[str, Any]], catalog: str, snapshot: str) -> pa.Table:
    """Normalised rows -> ``llm_prices`` columns (``LLM_PRICE_COLUMNS`` order) plus ``_rn``: provider through
    ``provider_sql`` and ``model_key`` through ``model_key_sql``, in a scratch DuckDB, never the store."""
    raw = pa.Table.from_pylist(list(rows), schema=RAW_SCHEMA)
    con = duckdb.connect()
    try:
        con.register("raw", raw)
        cols = {
            "catalog": sql_str(catalog), "provider": provider_sql("provider"), "model": "model",
            "model_key": model_key_sql("model"), "mode": "mode", "tier": "tier", "above_tokens": "above_tokens",
            "valid_from": "valid_from", "valid_to": "valid_to", **{f: f for f in PRICE_FIELDS},
            "currency": "'USD'", "snapshot": sql_str(snapshot),
        }
        assert list(cols) == list(LLM_PRICE_COLUMNS), "canonical columns must follow LLM_PRICE_COLUMNS"
        select = ", ".join(f'CAST({e} AS {LLM_PRICE_COLUMNS[c]}) AS "{c}"' for c, e in cols.items())
        return con.sql(f"SELECT {select}, row_number() OVER () AS _rn FROM raw").to_arrow_table()
    finally:
        con.close()


def model_keys(names: Iterable[str]) -> dict[str, str | None]:
    """name -> ``model_key_sql(name)``, computed by DuckDB (for decisions a normaliser makes in Python)."""
    uniq = sorted(set(names))
    con = duckdb.connect()
    try:
        con.register("n", pa.table({"name": pa.array(uniq, pa.string())}))
        return dict(con.execute(f"SELECT name, {model_key_sql('name')} FROM n").fetchall())
    finally:
        con.close()


def day(text: Any) -> datetime | None:
    """A catalog date ``YYYY-MM-DD`` -> midnight UTC (naive, as the store keeps time); None if not a date."""
    try:
        return datetime.fromisoformat(str(text)).replace(tzinfo=None)
    except ValueError:
        return None


def json_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".json.gz"):
        return "json.gz"
    if name.endswith(".json"):
        return "json"
    return None


class PriceCatalogSource(Source):
    """Base of the price catalog sources: one JSON document (plain or .gz) -> ``llm_prices`` rows.

    Restatement key (``catalog``, ``snapshot``): ingesting the same snapshot again replaces its rows, a
    different snapshot adds its own (an older snapshot keeps pricing the times before the newer one's
    ``valid_from``). The path ``bundled`` names the snapshot bundled with aifinops."""

    target: ClassVar[str] = "llm_prices"
    restatement_key: ClassVar[tuple[str, ...]] = ("catalog", "snapshot")
    key_noun: ClassVar[str] = "catalog snapshot(s)"
    catalog: ClassVar[str]
    bundled_path: ClassVar[Path]
    bundled_snapshot: ClassVar[str]

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        """JSON or JSON.gz files; ``bundled`` is the packaged snapshot."""
        given = [self.bundled_path if str(p) == "bundled" else p for p in paths]
        return expand(given, classify=json_format, what=".json or .json.gz", named_as="json")

    def snapshot_label(self, file: SourceFile) -> str:
        """The ``snapshot`` option, else the bundled label for the bundled file, else the content's hash."""
        label: str | None = getattr(self.options, "snapshot", None)
        if label:
            return label
        if file.path.resolve() == self.bundled_path.resolve():
            return self.bundled_snapshot
        return self.default_label(file)

    def default_label(self, file: SourceFile) -> str:
        """The label of a file given without a ``snapshot`` option: the catalog and the content's hash."""
        return f"{self.catalog} sha256:{file.fingerprint[:12]}"

    def normalise(self, doc: Any, file: SourceFile) -> Normalised:
        raise NotImplementedError

    def table(self, file: SourceFile) -> tuple[pa.Table, list[str]]:
        """The file's canonical rows and the notes saying what was read, skipped and rounded."""
        doc = load_json(file)
        result = self.normalise(doc, file)
        return canonical_table(result.rows, self.catalog, self.snapshot_label(file)), result.notes(file.path.name)

    def read(self, file: SourceFile) -> FileRead:
        table, notes = self.table(file)
        raw = {c: f's."{c}"' for c in LLM_PRICE_COLUMNS}
        typed = {c: f'CAST(s."{c}" AS {t})' for c, t in LLM_PRICE_COLUMNS.items()}
        return FileRead(file=file, relation_sql="", raw=raw, typed=typed, extra_columns={},
                        checks=price_checks({c: typed_ref(i) for i, c in enumerate(typed)}), notes=notes,
                        stream=ArrowStream(open=lambda: table.to_reader()))


def price_checks(typed: dict[str, str]) -> list[Check]:
    """Rows no pricing can use are quarantined: no model or provider, a tier outside ``TIERS``, a negative
    price or token threshold, a price row without input and output prices, an empty validity interval."""
    tiers = ", ".join(sql_str(t) for t in TIERS)
    checks = [
        Check("not-null", "model_key", ERROR, f"{typed['model_key']} IS NULL", sql_str("no model name")),
        Check("not-null", "provider", ERROR, f"{typed['provider']} IS NULL", sql_str("no provider")),
        Check("allowed-value", "tier", ERROR, f"{typed['tier']} NOT IN ({tiers})",
              f"'tier not one of {', '.join(TIERS)}: ' || {typed['tier']}"),
        Check("non-negative", "above_tokens", ERROR, f"{typed['above_tokens']} < 0",
              sql_str("above_tokens must not be negative")),
        Check("priced", "input_per_mtok", ERROR,
              f"{typed['input_per_mtok']} IS NULL AND {typed['output_per_mtok']} IS NULL",
              sql_str("neither an input nor an output token price")),
        Check("interval", "valid_to", ERROR, f"{typed['valid_to']} <= {typed['valid_from']}",
              sql_str("valid_to is not after valid_from")),
    ]
    checks += [Check("non-negative", f, ERROR, f"{typed[f]} < 0", f"'negative price: ' || CAST({typed[f]} AS VARCHAR)")
               for f in PRICE_FIELDS]
    return checks
