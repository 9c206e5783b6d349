"""What the sources of rows found by column name share (``outcomes``, ``run-metrics``): a CSV(.gz), Parquet or
JSON file whose columns are matched to canonical ones by a table of aliases, ignoring case, with a ``columns``
mapping (canonical column -> SQL expression over the file's columns) for the others, and every column not read
into a canonical one kept as an attribute.

A source declares its ``aliases``, its ``required`` columns and how a file of it is named in messages
(``noun``: "an outcomes file"; ``json_what``: what its JSON holds), builds its ``Options`` with
``mapping_options(aliases)`` and types the columns ``map_columns`` found."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, field_validator

from ..model.checks import Check, sql_ident
from .base import ArrowStream, Source, SourceError, SourceFile, csv_stream, expand
from .json_rows import json_relation, read_json_rows, record_check, table_format
from .workloads_csv import bind_check, csv_header, map_sql, parquet_names, parse_origin, relation_sql


def mapping_options(aliases: dict[str, tuple[str, ...]]) -> type[Source.Options]:
    """The options of a source whose columns ``aliases`` names: ``columns``, ``time_unit``, ``time_origin``,
    ``delimiter``; a ``columns`` key that is not a canonical column is an error that lists the mappable ones."""

    class Options(Source.Options):
        #: canonical column -> SQL expression over the file's columns, over the name matching
        columns: dict[str, str] = Field(default_factory=dict)
        time_unit: Literal["iso", "s", "ms"] = "iso"
        #: when numeric times count from; default the Unix epoch
        time_origin: str | None = None
        delimiter: str = ","

        @field_validator("columns", mode="before")
        @classmethod
        def _from_text(cls, value: Any) -> Any:
            """``--option columns={metric: "'conversions'"}`` arrives as text (YAML)."""
            if isinstance(value, str):
                try:
                    return yaml.safe_load(value)
                except yaml.YAMLError as exc:
                    raise ValueError(f"not a YAML/JSON mapping: {exc}") from None
            return value

        @field_validator("columns")
        @classmethod
        def _known(cls, value: dict[str, str]) -> dict[str, str]:
            bad = sorted(set(value) - set(aliases))
            if bad:
                raise ValueError(f"{', '.join(bad)} cannot be mapped (mappable: {', '.join(aliases)})")
            return value

    return Options


@dataclass
class Mapped:
    """One file's columns matched: the relation to read, the raw text of each canonical column found
    (``raw``), the columns left for attributes (``others``), and the checks and stream of its format."""

    relation: str
    raw: dict[str, str]
    others: list[str]
    checks: list[Check]
    stream: ArrowStream | None


class MappedRowsSource(Source):
    aliases: ClassVar[dict[str, tuple[str, ...]]]
    required: ClassVar[tuple[str, ...]]
    noun: ClassVar[str]  # "an outcomes file", in "not an outcomes file: no ... column"
    json_what: ClassVar[str]  # "a JSON export of outcome rows"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.origin = parse_origin(self.options.time_origin or "1970-01-01T00:00:00Z")

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        return expand(paths, classify=table_format, what=".csv, .csv.gz, .parquet, .json or .jsonl")

    def map_columns(self, file: SourceFile) -> Mapped:
        """Match the file's columns (see the module docstring); a file without a required column is rejected,
        naming the column, the names it looked for and the file's columns."""
        delimiter, checks, stream, empty = self.options.delimiter, [], None, False
        if file.format == "json":
            rows = read_json_rows(file, self.json_what)
            names, relation, checks, empty = rows.keys, json_relation(rows, rows.keys), [record_check()], rows.empty
        elif file.format == "parquet":
            names, relation = parquet_names(file), relation_sql(file, [], delimiter, set())
        else:
            names = csv_header(file, delimiter)
            relation, stream = relation_sql(file, names, delimiter, set()), csv_stream(file, names, delimiter)
        columns = self.options.columns
        by_lower = {n.lower(): n for n in names}
        found = {c: next((by_lower[a] for a in alts if a in by_lower), None) for c, alts in self.aliases.items()}
        exprs = {c: sql_ident(n) for c, n in found.items() if n} | dict(columns)
        missing = [c for c in self.required if c not in exprs]
        if missing and not empty:
            shown_names = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            raise SourceError(f"{file.path}: not {self.noun}: no {' / '.join(self.aliases[missing[0]])} column for "
                              f"{missing[0]}{' (and ' + ', '.join(missing[1:]) + ')' if missing[1:] else ''} "
                              f"(columns: {shown_names or 'none'}); map it with --option columns={{{missing[0]}: ...}}")
        # columns read into a canonical one (by name or named in a mapping expression) are not attributes
        used = {n for c, n in found.items() if n and c not in columns}
        used |= {n for n in names for e in columns.values()
                 if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", e, re.IGNORECASE)}
        bind_check(file, relation, names, set(), exprs)
        raw = {c: f"nullif(trim(CAST(({e}) AS VARCHAR)), '')" for c, e in exprs.items()}
        return Mapped(relation, raw, [n for n in names if n not in used], checks, stream)

    @staticmethod
    def attributes(others: list[str]) -> str:
        """Every column not read into a canonical one, as text; an ``attributes`` column holding a JSON
        object contributes its keys instead (its own keys first, a column of the same name wins)."""
        entries = {n: f"s.{sql_ident(n)}" for n in others if n.lower() != "attributes"}
        columns = map_sql(entries) if entries else "CAST(MAP {} AS MAP(VARCHAR, VARCHAR))"
        nested = next((n for n in others if n.lower() == "attributes"), None)
        if nested is None:
            return columns
        obj = f"TRY(CAST(CAST(s.{sql_ident(nested)} AS JSON) AS MAP(VARCHAR, VARCHAR)))"
        return f"map_concat(coalesce({obj}, CAST(MAP {{}} AS MAP(VARCHAR, VARCHAR))), {columns})"
