"""Ingest benchmark: aifinops FOCUS ingest against a bare DuckDB load of the same file.

Generates N synthetic FOCUS 1.0 rows (the 44 columns of the FOCUS sample export), cached per N as CSV.gz and zstd
Parquet in ``bench/out/``, then runs each measured step in its own subprocess:

* bare load: DuckDB ``CREATE TABLE AS`` into a fresh database file; CSV.gz read all-VARCHAR and cast to the spec
  types (DECIMAL(38, 12), UTC TIMESTAMP, VARCHAR), Parquet (already typed) copied as is;
* aifinops ingest: ``ingest(Store(db), sources.get("focus")(), [file])`` into a fresh store (the Python API: stable,
  and the same engine ``aifinops ingest focus FILE`` runs);
* costs --by: ServiceName x Tags['team'] sum of EffectiveCost over that store.

Seconds are timed in the child around the work (interpreter start-up excluded). Peak RSS is the child's own
``VmHWM`` (/proc/self/status) read just before it exits, not ``ru_maxrss`` of ``wait4``/``RUSAGE_CHILDREN``:
Linux carries the pre-exec high-water mark into a child, so each would report at least the parent's peak.

Run: ``make bench`` (``python bench/ingest.py``: 10M rows) or ``PYTHONPATH=src python bench/ingest.py --rows 1000000
[--repeat K] [--json] [--profile] [--regen] [--memory-limit 1GB] [--out DIR]``; ``--profile`` times ingest SQL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import harness  # bench/harness.py: the child-per-step runner and peak RSS

HERE = Path(__file__).resolve().parent
#: The header of the FOCUS 1.0 sample export (focus-sample-1.0/focus_sample.csv), in its order.
HEADER = ["AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
          "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription",
          "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory",
          "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType",
          "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
          "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingQuantity", "PricingUnit",
          "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
          "ServiceCategory", "Id", "ServiceName", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags"]
DECIMALS = {"BilledCost", "ConsumedQuantity", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "ListCost",
            "ListUnitPrice", "PricingQuantity"}
TIMES = {"BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"}
MONEY = "DECIMAL(38, 12)"

# Rows come in 8 blocks, one per billing account, Oracle last: OCI ids only appear in the last quarter of the
# file, so a sniffer that typed SubAccountId/BillingAccountId as BIGINT from the first rows would fail there.
ACCOUNTS = [  # ProviderName, PublisherName/InvoiceIssuerName, BillingAccountId, BillingAccountName, ResourceId prefix
    ("AWS", "Amazon Web Services, Inc.", "123456789012", "Acme Prod", "arn:aws:ec2:us-east-1:123456789012:i-"),
    ("AWS", "Amazon Web Services, Inc.", "210987654321", "Acme Research", "arn:aws:sagemaker:us-west-2:2109:ep/"),
    ("Microsoft", "Microsoft", "80000001", "Acme EA", "/subscriptions/8f1e/providers/Microsoft.Compute/vm-"),
    ("Microsoft", "Microsoft", "80000002", "Acme AI", "/subscriptions/77ab/providers/Microsoft.CognitiveServices/"),
    ("Google Cloud", "Google", "0145-A2B3C4", "Acme GCP", "//compute.googleapis.com/projects/acme/instances/"),
    ("Google Cloud", "Google", "0178-D5E6F7", "Acme Vertex", "//aiplatform.googleapis.com/projects/ml/endpoints/"),
    *[("Oracle", "Oracle", f"ocid1.tenancy.oc1..aaaaaaaa{t}", n, f"ocid1.instance.oc1.{r}.aaaaaaaa")
      for t, n, r in (("7xq3mzl2ka4bq", "Acme OCI", "iad"), ("c5pjw6n1rd8ve", "Acme OCI GPU", "phx"))],
]
#: Per provider family (account blocks in pairs): 8 services, one per SLOTS (ServiceCategory, unit), 3 regions.
SLOTS = [("Compute", "Hours"), ("Compute", "Requests"), ("Storage", "GB-Mo"), ("Networking", "GB"),
         ("AI and Machine Learning", "Tokens"), ("AI and Machine Learning", "Hours"), ("Databases", "Hours"),
         ("Databases", "Requests")]
FAMILIES = [
    "Amazon EC2|AWS Lambda|Amazon S3|Amazon CloudFront|Amazon Bedrock|Amazon SageMaker|Amazon RDS|Amazon DynamoDB",
    "Virtual Machines|Functions|Storage|Bandwidth|Azure OpenAI|Azure Machine Learning|SQL Database|Azure Cosmos DB",
    "Compute Engine|Cloud Run|Cloud Storage|Cloud CDN|Vertex AI|Cloud TPU|Cloud SQL|BigQuery",
    "Compute|Functions|Object Storage|Networking|Generative AI|Data Science|Autonomous Database|NoSQL Database",
]
SERVICES = [(name, *SLOTS[k]) for fam in FAMILIES for k, name in enumerate(fam.split("|"))]
REGIONS = [("us-east-1", "US East (N. Virginia)"), ("us-west-2", "US West (Oregon)"), ("eu-west-1", "Europe (Ireland)"),
           ("eastus", "East US"), ("westeurope", "West Europe"), ("swedencentral", "Sweden Central"),
           ("us-central1", "Iowa"), ("europe-west4", "Netherlands"), ("asia-east1", "Taiwan"),
           ("us-ashburn-1", "US East (Ashburn)"), ("us-phoenix-1", "US West (Phoenix)"), ("eu-frankfurt-1", "Germany")]
TEAMS, ENVS = ["ml-platform", "search", "ads", "data", "infra", "research", "payments", "growth"], ["prod", "qa", "dev"]
QUERY = 'SELECT "ServiceName", "Tags"[\'team\'] AS team, sum("EffectiveCost") FROM focus_charges GROUP BY ALL'


def _pick(values: list[str], idx: str) -> str:
    """SQL: the value at 0-based ``idx`` of a constant list."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + f"][{idx} + 1]"


def rows_sql(n: int, money: str) -> str:
    """A SELECT of n FOCUS rows over range(n), deterministic (hash of the row number), in HEADER order."""
    acc, svc, reg = ([list(x) for x in zip(*rows, strict=True)] for rows in (ACCOUNTS, SERVICES, REGIONS))
    used = "CASE WHEN qty IS NOT NULL THEN {} END".format  # columns of usage rows only
    cols = {
        "AvailabilityZone": f"CASE WHEN h % 2 = 0 THEN {_pick(reg[0], 'g')} || 'a' END",
        "BilledCost": "eff", "BillingAccountId": _pick(acc[2], "p"), "BillingAccountName": _pick(acc[3], "p"),
        "BillingCurrency": "'USD'", "BillingPeriodEnd": "TIMESTAMP '2024-10-01'",
        "BillingPeriodStart": "TIMESTAMP '2024-09-01'", "ChargeCategory": "cat", "ChargeClass": "NULL::VARCHAR",
        "ChargeDescription": f"CASE cat WHEN 'Usage' THEN {_pick(svc[0], 's')} || ' usage in ' || "
                             f"{_pick(reg[1], 'g')} WHEN 'Tax' THEN 'Sales tax' ELSE 'Promotional credit' END",
        "ChargeFrequency": "'Usage-Based'", "ChargePeriodEnd": "start + INTERVAL 1 HOUR", "ChargePeriodStart": "start",
        **{c: "NULL::VARCHAR" for c in HEADER if c.startswith("CommitmentDiscount")},
        "ConsumedQuantity": "qty", "ConsumedUnit": used(_pick(svc[2], "s")),
        "ContractedCost": "eff", "ContractedUnitPrice": "price", "EffectiveCost": "eff",
        "InvoiceIssuerName": _pick(acc[1], "p"), "ListCost": "list", "ListUnitPrice": "price",
        "PricingCategory": used("'Standard'"), "PricingQuantity": "qty", "PricingUnit": used(_pick(svc[2], "s")),
        "ProviderName": _pick(acc[0], "p"), "PublisherName": _pick(acc[1], "p"), "RegionId": _pick(reg[0], "g"),
        "RegionName": _pick(reg[1], "g"), "ResourceId": used(f"{_pick(acc[4], 'p')} || printf('%016x', hash(p, r))"),
        "ResourceName": used("'res-' || r"), "ResourceType": "NULL::VARCHAR",
        "ServiceCategory": _pick(svc[1], "s"), "Id": "i + 1", "ServiceName": _pick(svc[0], "s"),
        "SkuId": "upper(printf('%016x', hash(s, g)))", "SkuPriceId": "upper(printf('%016x.%010x', hash(s, g), h % 99))",
        "SubAccountId": "CASE WHEN p >= 6 THEN 'ocid1.compartment.oc1..aaaaaaaa' || printf('%013x', hash(p, sub)) "
                        "ELSE CAST(100000000000 + hash(p, sub) % 900000000000 AS VARCHAR) END",
        "SubAccountName": "'Project ' || (p * 4 + sub)",
        "Tags": "CASE WHEN h % 10 = 0 THEN NULL ELSE '{' || CASE WHEN h % 10 = 1 THEN '' ELSE "
                f"'\"team\": \"' || {_pick(TEAMS, 'CAST(h % 8 AS INT)')} || '\", ' END || "
                "'\"project\": \"proj-' || (h % 20) || '\", \"env\": \"' || "
                f"{_pick(ENVS, 'CAST(h // 10 % 3 AS INT)')} || '\"}}' END",
    }
    assert sorted(cols) == sorted(HEADER)
    select = ",\n  ".join(f'{cols[c]} AS "{c}"' for c in HEADER)
    return f"""
WITH a AS (SELECT i, CAST(i * 8 // {n} AS INT) AS p FROM range({n}) t(i)), b AS (
  SELECT i, p, hash(i, 1) AS h, p // 2 * 8 + CAST(hash(i, 2) % 8 AS INT) AS s,
    p // 2 * 3 + CAST(hash(i, 3) % 3 AS INT) AS g, CAST(hash(i, 4) % 50000 AS INT) AS r,
    CAST(hash(i, 5) % 4 AS INT) AS sub, TIMESTAMP '2024-09-01' + to_hours(CAST(i % 720 AS BIGINT)) AS start,
    CASE WHEN hash(i, 6) % 100 < 94 THEN 'Usage' WHEN hash(i, 6) % 100 < 97 THEN 'Tax' ELSE 'Credit' END AS cat,
    CAST(hash(i, 7) % 100000 + 1 AS DECIMAL(18, 0)) * 0.001 AS q,
    CAST(hash(i, 8) % 40000000 + 1 AS DECIMAL(18, 0)) * 0.0000001 AS u
  FROM a
), c AS (
  SELECT *, CASE WHEN cat = 'Usage' THEN CAST(q AS {money}) END AS qty,
    CASE WHEN cat = 'Usage' THEN CAST(u AS {money}) END AS price,
    CAST(CASE cat WHEN 'Usage' THEN q * u WHEN 'Tax' THEN q * 0.01 ELSE -q * u END AS {money}) AS list,
    CAST(CASE cat WHEN 'Usage' THEN q * u * [1.0, 0.9, 0.72][CAST(hash(i, 9) % 3 AS INT) + 1]
         WHEN 'Tax' THEN q * 0.01 ELSE -q * u END AS {money}) AS eff
  FROM b
)
SELECT {select} FROM c"""


def generate(out: Path, n: int, regen: bool) -> dict[str, Path]:
    """The CSV.gz (costs with 10 decimals, as exports write them) and Parquet (spec types) files, cached by n."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"parquet": out / f"focus_{n}.parquet", "csv.gz": out / f"focus_{n}.csv.gz"}
    for fmt, path in files.items():
        if path.exists() and not regen:
            continue
        started, tmp = time.perf_counter(), path.with_name(path.name + ".tmp")
        opts = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER, COMPRESSION gzip"
        with duckdb.connect() as con:
            con.execute(f"COPY ({rows_sql(n, MONEY if fmt == 'parquet' else 'DECIMAL(38, 10)')}) TO '{tmp}' ({opts})")
        tmp.replace(path)
        print(f"generated {path} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return files


def bare_sql(path: Path, fmt: str) -> str:
    if fmt == "parquet":
        return f"CREATE TABLE t AS SELECT * FROM read_parquet('{path}')"
    casts = ", ".join(f'CAST("{c}" AS {MONEY}) AS "{c}"' if c in DECIMALS else
                      f'CAST(CAST("{c}" AS TIMESTAMPTZ) AS TIMESTAMP) AS "{c}"' if c in TIMES else f'"{c}"'
                      for c in HEADER)
    return (f"CREATE TABLE t AS SELECT {casts} FROM read_csv('{path}', all_varchar = true, header = true, "
            "nullstr = ['NULL', ''])")


_peak_mb = harness.peak_mb


class _Timed:
    """Connection proxy that adds up the seconds of every statement (by its first words) for --profile."""

    def __init__(self, con: Any, log: dict[str, list[float]]) -> None:
        self._con, self._log = con, log

    def execute(self, sql: str, *params: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._con.execute(sql, *params)
        finally:
            self._log.setdefault(" ".join(sql.split())[:90], []).append(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def child(args: argparse.Namespace) -> dict[str, Any]:
    step, fmt, path, db = args.child[0], args.child[1], Path(args.child[2]), Path(args.child[3])
    report: dict[str, Any] = {}
    started = time.perf_counter()
    if step == "bare":
        with duckdb.connect(str(db)) as con:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(bare_sql(path, fmt))
            report["rows"] = con.execute("SELECT count(*) FROM t").fetchone()[0]
    elif step == "ingest":
        from aifinops.sources.base import sources
        from aifinops.store.connection import Store
        from aifinops.store.ingest import ingest

        st, log = Store(db, memory_limit=args.memory_limit), {}
        st.con = _Timed(st.con, log) if args.profile else st.con  # type: ignore[assignment]
        res = ingest(st, sources.get("focus")(), [path])
        st.close()
        report.update(rows=res.rows_read, quarantined=res.rows_quarantined, warnings=res.warnings,
                      statements=sorted(((sum(v), len(v), k) for k, v in log.items()), reverse=True))
    else:
        from aifinops.store.connection import Store

        st = Store(db, read_only=True, memory_limit=args.memory_limit)
        report["rows"] = st.con.execute("SELECT count(*) FROM focus_charges").fetchone()[0]
        started = time.perf_counter()
        report["groups"] = len(st.con.execute(QUERY).fetchall())
        st.close()
    report.update(seconds=time.perf_counter() - started, peak_mb=_peak_mb())
    return report


def run_step(step: str, path: Path, db: Path, fmt: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one step in a fresh child process (on a fresh database but for the query); returns its JSON report."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, fmt, str(path), str(db),
           "--memory-limit", args.memory_limit, *(["--profile"] if args.profile else [])]
    paths = [str(HERE.parent / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # the checkout's aifinops, installed or not
    for p in (db, db.with_name(db.name + ".wal")) if step != "query" else ():
        p.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{step} {fmt} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall": time.perf_counter() - started}


def summary(step: str, fmt: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(runs, key=lambda r: r["seconds"])  # the fastest run, the highest peak RSS of all
    return {**best, "step": step, "format": fmt, "rows_per_s": best["rows"] / best["seconds"],
            "peak_mb": max(r["peak_mb"] for r in runs), "all_seconds": [round(r["seconds"], 3) for r in runs]}


def show(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    names = {"bare": "bare DuckDB load", "ingest": "aifinops ingest", "query": "costs --by query"}
    table = Table(title=f"ingest benchmark, {args.rows:,} rows, {os.cpu_count()} cores, duckdb {duckdb.__version__}")
    for col in ("step", "format", "rows", "seconds", "rows/s", "peak RSS MB", "vs bare load"):
        table.add_column(col, justify="left" if col in ("step", "format") else "right", no_wrap=True)
    for r in results:
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else ""
        table.add_row(names[r["step"]], r["format"], f"{r['rows']:,}", f"{r['seconds']:.2f}",
                      f"{r['rows_per_s']:,.0f}", f"{r['peak_mb']:.0f}", ratio)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    for r in results:
        if r.get("quarantined") or r.get("warnings"):
            console.print(f"[yellow]{r['format']}: {r.get('quarantined')} quarantined, warnings {r.get('warnings')}")
        if args.profile and r.get("statements"):
            total = sum(s[0] for s in r["statements"])
            console.print(f"\n[bold]aifinops ingest {r['format']}: SQL {total:.2f}s of {r['seconds']:.2f}s")
            for secs, count, sql in r["statements"][:12]:
                console.print(f"  {secs:7.2f}s {count:3d}x  {sql}", markup=False, highlight=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--formats", default="parquet,csv.gz")
    for flag, text in (("--regen", "regenerate the data files even if cached"), ("--json", "print JSON results"),
                       ("--profile", "time each SQL statement of the aifinops ingest")):
        ap.add_argument(flag, action="store_true", help=text)
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit of the aifinops store (as the CLI)")
    ap.add_argument("--repeat", type=int, default=1, help="run the steps this many times; keep the fastest run")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # STEP FORMAT FILE DB: how run_step runs a step
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args), default=str))
        return
    files = generate(args.out, args.rows, args.regen)
    results: list[dict[str, Any]] = []
    for fmt in args.formats.split(","):
        dbs = [args.out / f"bench_{args.rows}_{fmt.replace('.', '_')}.{k}.duckdb" for k in ("bare", "store")]
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "ingest": [], "query": []}
        for _ in range(args.repeat):  # interleaved, so that a slow spell of a shared machine hits every step
            for step, db in (("bare", dbs[0]), ("ingest", dbs[1]), ("query", dbs[1])):
                runs[step].append(run_step(step, files[fmt], db, fmt, args))
        results += [summary(step, fmt, rs) for step, rs in runs.items()]
        pairs = sorted(i["seconds"] / b["seconds"] for i, b in zip(runs["ingest"], runs["bare"], strict=True))
        results[-2]["ratio"] = pairs[len(pairs) // 2]  # median of the paired (same repetition) ratios
        for db in dbs:  # the data files stay cached; the databases are large and not needed again
            db.unlink(missing_ok=True)
        print(*(f"{r['step']} {fmt} {r['all_seconds']}s {r['peak_mb']:.0f} MB;" for r in results[-3:]), file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        show(results, args)


if __name__ == "__main__":
    main()
