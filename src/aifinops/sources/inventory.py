"""GPU node inventory: which nodes exist, their GPUs, how they are priced and who owns them.

The inventory is what turns GPU time into money when no bill covers a node (on-prem, reserved) and what
joins the fleet to the ledger (``resource_id`` is the FOCUS ResourceId of the instance). A file's columns
are the ``gpu_nodes`` names, matched ignoring case; any other column is kept as a label. A node's row is
replaced by the node's row in a newer file (restatement key ``node``), so re-exporting the inventory
updates it instead of doubling it.

Preset ``alibaba-openb-nodes`` reads the node lists of Alibaba's cluster-trace-gpu-v2023 (sn, cpu_milli,
memory_mib, gpu, model) as on-prem nodes. CPU-only nodes (gpu 0, no model) load with gpu_count 0.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from ..model.checks import ERROR, Check, sql_ident, sql_str
from ..model.gpu import GPU_NODE_COLUMNS
from .base import FileRead, Source, SourceError, SourceFile, sources, typed_ref
from .workloads_csv import csv_header, map_sql, parquet_names, relation_sql, shown

PRICING_CATEGORIES = ("on-demand", "spot", "reserved", "on-prem")
NUMBERS = ("gpu_count", "cpu_cores", "memory_mib", "hourly_price")

#: canonical column -> SQL expression over the file's columns, and the file columns kept as labels
PRESETS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "alibaba-openb-nodes": (
        {"node": "sn", "gpu_count": "gpu", "gpu_model": "model", "pricing_category": "'on-prem'",
         "cpu_cores": "cpu_milli", "memory_mib": "memory_mib"},
        ("cpu_milli", "memory_mib"),
    ),
}


@sources.register("inventory")
class InventorySource(Source):
    """GPU nodes from a CSV/CSV.gz/Parquet file named like ``gpu_nodes`` (or a preset).

    Example: ``aifinops ingest inventory nodes.csv``
    """

    target: ClassVar[str] = "gpu_nodes"
    restatement_key: ClassVar[tuple[str, ...]] = ("node",)
    key_noun: ClassVar[str] = "node(s)"

    class Options(Source.Options):
        preset: Literal["alibaba-openb-nodes"] | None = None
        delimiter: str = ","

    def describe_key(self, values: tuple[Any, ...]) -> str:
        return f"node {values[0]}"

    def read(self, file: SourceFile) -> FileRead:
        delimiter = self.options.delimiter
        names = parquet_names(file) if file.format == "parquet" else csv_header(file, delimiter)
        # Text everywhere (no numeric columns): numbers are cast below and checked, never sniffed.
        relation = relation_sql(file, names, delimiter, set())
        texts = file.format != "parquet"

        def ref(name: str) -> str:
            ident = "s." + sql_ident(name)
            return f"NULLIF(CAST({ident} AS VARCHAR), '')" if not texts else ident

        if self.options.preset:
            columns, label_cols = PRESETS[self.options.preset]
            need = [e for e in (*columns.values(), *label_cols) if not e.startswith("'")]
            missing = [n for n in need if n.lower() not in {h.lower() for h in names}]
            if missing:
                raise SourceError(f"{file.path}: not a {self.options.preset} file: no column(s) {', '.join(missing)} "
                                  f"(header: {', '.join(names[:8])})")
            raw = {c: e if e.startswith("'") else ref(e) for c, e in columns.items()}
            labels = {n: ref(n) for n in label_cols}
            json_labels = None
        else:
            canonical = {c.lower(): c for c in GPU_NODE_COLUMNS}
            raw, labels = {}, {}
            for n in names:
                if n.lower() in canonical:
                    raw[canonical[n.lower()]] = ref(n)
                else:
                    labels[n] = ref(n)
            json_labels = raw.pop("labels", None)
            if "node" not in raw:
                raise SourceError(f"{file.path}: not an inventory file: no column 'node' "
                                  f"(header: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''})")
        typed: dict[str, str] = {}
        for col, sql_type in GPU_NODE_COLUMNS.items():
            v = raw.get(col)
            if col == "labels":
                extra = map_sql(labels)
                typed[col] = extra if json_labels is None else \
                    f"map_concat(coalesce(TRY(CAST(CAST({json_labels} AS JSON) AS MAP(VARCHAR, VARCHAR))), MAP{{}}), " \
                    f"coalesce({extra}, MAP{{}}))"
            elif v is None:
                typed[col] = f"CAST(NULL AS {sql_type})"
            elif col == "cpu_cores" and self.options.preset == "alibaba-openb-nodes":
                typed[col] = f"TRY_CAST({v} AS DOUBLE) / 1000.0"  # the trace counts milli-cores
            elif col in NUMBERS:
                typed[col] = f"TRY_CAST({v} AS {sql_type})"
            elif col == "pricing_category":
                typed[col] = f"lower(trim(CAST({v} AS VARCHAR)))"
            else:
                typed[col] = f"CAST({v} AS VARCHAR)"
        if json_labels is not None:
            raw["labels"] = json_labels
        refs = {c: typed_ref(i) for i, c in enumerate(typed)}
        return FileRead(file=file, relation_sql=relation, raw=raw, typed=typed, extra_columns={},
                        checks=inventory_checks(raw, refs), is_csv=file.format != "parquet")


def inventory_checks(raw: dict[str, str], typed: dict[str, str]) -> list[Check]:
    """Errors that quarantine a node: no name, a count or price that is not a number or is negative, a
    pricing category the cost model does not know (it decides whether a bill or the price covers it)."""
    checks = [Check("not-null", "node", ERROR, f"{raw['node']} IS NULL", sql_str("node must not be empty"))]
    for col in NUMBERS:
        if col in raw:
            checks.append(Check("number", col, ERROR, f"{raw[col]} IS NOT NULL AND {typed[col]} IS NULL",
                                f"'not a number: ' || {shown(raw[col])}"))
            checks.append(Check("non-negative", col, ERROR, f"{typed[col]} < 0",
                                f"'{col} must not be negative: ' || {shown(raw[col])}"))
    if "pricing_category" in raw:
        allowed = ", ".join(sql_str(c) for c in PRICING_CATEGORIES)
        checks.append(Check("allowed-value", "pricing_category", ERROR,
                            f"{typed['pricing_category']} NOT IN ({allowed})",
                            f"'not one of {', '.join(PRICING_CATEGORIES)}: ' || {shown(raw['pricing_category'])}"))
    return checks
