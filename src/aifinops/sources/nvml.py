"""GPU samples written by ``aifinops agent`` (NVML through nvidia-ml-py), as Parquet files.

The agent writes the canonical ``gpu_samples`` columns with their canonical types and units (see
model/gpu.py), so reading is a typed copy plus the rules below; any Parquet file with at least ``ts`` and
``gpu`` columns named like ``GPU_SAMPLE_COLUMNS`` loads (other producers can write them too). Columns the
file lacks are NULL; columns that are not canonical are ignored (a note says which).
"""

from __future__ import annotations

import pyarrow.parquet as pq

from ..model.checks import ERROR, Check, sql_ident, sql_str
from ..model.gpu import GPU_SAMPLE_COLUMNS
from .base import FileRead, SampleSource, SourceError, SourceFile, sources, typed_ref

REQUIRED = ("ts", "gpu")
RATIOS = ("sm_active", "gr_engine_active", "gpu_util")
NON_NEGATIVE = ("fb_used_mib", "fb_free_mib", "power_w", "energy_j")



def nvml_checks(raw: dict[str, str], typed: dict[str, str]) -> list[Check]:
    """The rules of a GPU sample file, listed once:

    - ``not-null`` (error): ``ts`` or ``gpu`` missing, or a value that does not cast to its column's type
      (the row cannot be placed in time or on a GPU);
    - ``ratio`` (error): an activity outside [0, 1] (a percentage written unscaled would triple-count);
    - ``non-negative`` (error): negative memory, power or energy.
    """
    checks = [Check("not-null", c, ERROR, f"{typed[c]} IS NULL", sql_str(f"{c} must not be null"))
              for c in REQUIRED]
    for c in raw:
        if c not in REQUIRED:
            checks.append(Check("type", c, ERROR, f"{raw[c]} IS NOT NULL AND {typed[c]} IS NULL",
                                f"'not a {GPU_SAMPLE_COLUMNS[c]}: ' || left(CAST({raw[c]} AS VARCHAR), 80)"))
    for c in RATIOS:
        if c in raw:
            checks.append(Check("ratio", c, ERROR, f"{typed[c]} < 0 OR {typed[c]} > 1",
                                f"'{c} outside 0..1: ' || CAST({typed[c]} AS VARCHAR)"))
    for c in NON_NEGATIVE:
        if c in raw:
            checks.append(Check("non-negative", c, ERROR, f"{typed[c]} < 0",
                                f"'{c} is negative: ' || CAST({typed[c]} AS VARCHAR)"))
    return checks


@sources.register("nvml")
class NvmlSource(SampleSource):
    """GPU samples recorded by `aifinops agent` (NVML: utilization, memory, power, energy, MIG) as Parquet.

    Example: ``aifinops ingest nvml /var/lib/aifinops/agent/``
    """


    def read(self, file: SourceFile) -> FileRead:
        if file.format != "parquet":
            raise SourceError(f"{file.path}: the nvml source reads the agent's Parquet files; for nvidia-smi CSV "
                              "use `ingest nvidia-smi`")
        try:
            names = list(pq.read_schema(file.path).names)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise SourceError(f"{file.path}: not a readable Parquet file ({exc})") from None
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise SourceError(f"{file.path}: not a GPU sample file: missing column(s) {', '.join(missing)} "
                              f"(columns: {', '.join(names[:8])})")
        present = [c for c in GPU_SAMPLE_COLUMNS if c in names and c != "source"]
        raw = {c: f"s.{sql_ident(c)}" for c in present}
        typed = {}
        for c, t in GPU_SAMPLE_COLUMNS.items():
            if c == "source":
                typed[c] = "'nvml'"
            elif c in raw:
                typed[c] = f"TRY_CAST({raw[c]} AS {t})"
            else:
                typed[c] = f"CAST(NULL AS {t})"
        ignored = [n for n in names if n not in GPU_SAMPLE_COLUMNS]
        notes = [f"{file.path.name}: ignored column(s) {', '.join(ignored)}"] if ignored else []
        path = sql_str(str(file.path))
        return FileRead(
            file=file, relation_sql=f"read_parquet({path}, file_row_number = true)", raw=raw, typed=typed,
            extra_columns={}, checks=nvml_checks(raw, {c: typed_ref(i) for i, c in enumerate(typed)}),
            is_csv=False, notes=notes,
        )
