"""A seeded, realistic FOCUS 1.2 bill for the synthetic AI company of :mod:`aifinops.demo.fleet`.

Rows are built in blocks (one VM, one bucket, one meter) with numpy. Money is carried as int64 fixed
point (unit prices and quantities in 1e-6, costs in 1e-12) and written as exact decimals, so
ListCost is exactly ListUnitPrice x PricingQuantity on every priced row and totals reconcile to the
cent in the store.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aifinops.demo import catalog as cat
from aifinops.demo.fleet import Account, ApiModel, Commitment, Instance, Scenario, build_scenario
from aifinops.demo.rows import DAY, HOUR, I64, TS, Rows, U, arr, fill, micro, priced, tags_json

__all__ = ["Scenario", "api_token_volumes", "build_scenario", "generate_bill", "write_bill"]

RESEARCH = (("Team", "research"), ("Project", "distill-7b"))  # the acquired lab capitalises keys


def _spot_price(price_u: int, hours: int, rng: np.random.Generator) -> np.ndarray:
    """Spot price per hour: 30-42% of on-demand, drifting every 6 hours, rounded to $0.0001."""
    steps = np.clip(0.35 + np.cumsum(rng.normal(0, 0.008, hours // 6 + 1)), 0.30, 0.42)
    return (np.round(price_u * np.repeat(steps, 6)[:hours] / 100) * 100).astype(I64)


def _vm_description(inst: Instance, pricing: str) -> str:
    t, p = inst.instance_type, inst.provider
    gpus = f" ({inst.gpu_count}x NVIDIA {inst.gpu_model})" if inst.gpu_count else ""
    if p == "aws":
        return {"Standard": f"${inst.hourly_price} per On Demand Linux {t} Instance Hour",
                "Dynamic": f"Spot Linux {t} Instance Hour",
                "Committed": f"USD 0.0 hourly fee per Linux/UNIX (Amazon VPC), {t} instance"}[pricing]
    if p == "gcp":
        prefix = {"Standard": "", "Dynamic": "Spot Preemptible ", "Committed": "Commitment v1: "}[pricing]
        return f"{prefix}{t} instance{gpus} running in Americas"
    return f"{t}{gpus}{' Spot' if pricing == 'Dynamic' else ''} Linux - {cat.REGIONS[inst.region]}"


def _vm_rows(bill: Rows, inst: Instance, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Hourly usage of one VM: on demand, spot, or covered by its commitment from the purchase on."""
    sc, p = bill.sc, inst.provider
    price_u, service = micro(inst.hourly_price), cat.VM_SERVICE[p]
    sku = cat.sku_id(p, service, inst.region, inst.instance_type)
    base = dict(AvailabilityZone=inst.zone, ResourceId=inst.resource_id, ResourceName=inst.name,
                ResourceType="Virtual Machine" if p == "azure" else "Instance", SkuId=sku,
                SkuMeter="Compute Usage", SkuPriceDetails=cat.instance_details(inst.instance_type),
                PricingUnit="Hours", ConsumedUnit="Hours", Tags=tags_json(inst.tags), ChargeCategory="Usage",
                ChargeFrequency="Usage-Based")
    if inst.cluster == "slurm-llm":  # the training cluster runs in an On-Demand Capacity Reservation
        base.update(CapacityReservationStatus="Used", CapacityReservationId=(
            f"arn:aws:ec2:{inst.region}:{bill.accounts[inst.account].id}:capacity-reservation/cr-0"
            f"{cat.hash_id(inst.cluster)[:16]}"))
    commit = next((c for c in sc.commitments if c.id == inst.commitment), None)
    covered = np.zeros(len(mask), bool)
    if commit:
        covered[max(0, sc.hour_index(commit.start)):] = True
    for pricing, sel in (("Standard", mask & ~covered), ("Committed", mask & covered)):
        idx = np.flatnonzero(sel)
        if not len(idx):
            continue
        start, qty = bill.t0 + idx * HOUR, np.full(len(idx), U, I64)
        cols = {**base, "PricingCategory": pricing, "ChargeDescription": _vm_description(inst, pricing)}
        if inst.pricing == "Dynamic":
            spot = _spot_price(price_u, len(mask), rng)[idx]
            cols.update(priced(qty, price_u, spot), PricingCategory="Dynamic",
                        SkuPriceId=cat.price_id(sku, "spot"),
                        ChargeDescription=_vm_description(inst, "Dynamic"))
        elif pricing == "Standard":
            cols.update(priced(qty, price_u), SkuPriceId=cat.price_id(sku, "ondemand"))
        else:
            assert commit is not None
            rate = micro(commit.hourly_rate)
            cols.update(priced(qty, price_u, effective=qty * rate, billed=np.zeros(len(idx), I64)),
                        **_commitment_cols(commit), CommitmentDiscountStatus="Used",
                        CommitmentDiscountQuantity=np.full(len(idx), commit.units_per_hour * U, I64),
                        SkuPriceId=cat.price_id(sku, commit.id))
        bill.add(inst.account, service, inst.region, start, start + HOUR, **cols)


def _commitment_cols(c: Commitment) -> dict[str, object]:
    return {"CommitmentDiscountId": c.id, "CommitmentDiscountName": c.name, "CommitmentDiscountType": c.type,
            "CommitmentDiscountCategory": "Usage", "CommitmentDiscountUnit": c.unit}


def _commitment_rows(bill: Rows, masks: dict[str, np.ndarray]) -> None:
    """Each commitment's purchase (upfront once, or monthly) and the unused remainder, hour by hour."""
    sc = bill.sc
    for c in sc.commitments:
        covered = [i for i in sc.instances if i.commitment == c.id]
        service, region = cat.VM_SERVICE[c.provider], covered[0].region
        sku = cat.sku_id(c.provider, service, region, c.instance_type)
        rate, first = micro(c.hourly_rate), max(0, sc.hour_index(c.start))
        fixed = dict(**_commitment_cols(c), ResourceId=c.id, ResourceName=c.name, ResourceType=c.type,
                     SkuId=sku, SkuMeter="Compute Usage", SkuPriceId=cat.price_id(sku, c.id),
                     PricingUnit="Hours", SkuPriceDetails=cat.instance_details(c.instance_type))
        purchases = []  # (start, end, instance-hours)
        if c.upfront and first > 0:  # bought inside the window: one purchase for the 1-year term
            day = bill.t0 + (first // 24) * DAY
            purchases.append((day, day + DAY, c.count * 8760, "One-Time",
                              f"Sign up charge for subscription: 1yr All Upfront {c.instance_type} Linux "
                              f"Reserved Instance x{c.count}"))
        elif not c.upfront:  # billed monthly for the hours of the month
            purchases += [(lo, hi, c.count * int((hi - lo) // HOUR), "Recurring",
                           f"Commitment v1: {c.instance_type} GPU in Americas for 1 Year")
                          for _, lo, hi in _months(sc)]
        for lo, hi, hours, freq, desc in purchases:
            qty = arr(hours * U)
            bill.add(c.account, service, region, arr(lo, dtype=TS), arr(hi, dtype=TS), **fixed,
                     **priced(qty, rate, effective=arr(0), billed=qty * rate, consumed=None),
                     ChargeCategory="Purchase", ChargeFrequency=freq, PricingCategory="Standard",
                     CommitmentDiscountQuantity=arr(hours * c.units_per_hour * U), ChargeDescription=desc)
        running = sum(masks[i.name].astype(I64) for i in covered)
        unused = np.where(np.arange(len(running)) >= first, c.count - running, 0)
        idx = np.flatnonzero(unused > 0)
        if len(idx):
            start = bill.t0 + idx * HOUR
            bill.add(c.account, service, region, start, start + HOUR, **fixed,
                     **priced(unused[idx] * U, rate, billed=np.zeros(len(idx), I64), consumed=None),
                     ChargeCategory="Usage", ChargeFrequency="Usage-Based", PricingCategory="Committed",
                     CommitmentDiscountStatus="Unused",
                     CommitmentDiscountQuantity=unused[idx] * c.units_per_hour * U,
                     ChargeDescription=f"Unused {c.type} hours ({c.instance_type})")


def _months(sc: Scenario) -> list[tuple[np.datetime64, np.datetime64, np.datetime64]]:
    """(month start, clipped start, clipped end) of each calendar month the window touches."""
    lo = np.datetime64(sc.start, "us")
    hi = lo + sc.days * DAY
    out = []
    for m in np.arange(lo.astype("datetime64[M]"), (hi - 1).astype("datetime64[M]") + 1):
        ms, me = m.astype(TS), (m + 1).astype(TS)
        out.append((ms, max(ms, lo), min(me, hi)))
    return out


def _daily(bill: Rows, acct: str, service: str, region: str | None, qty: np.ndarray, price: Decimal, *,
           unit: str, meter: str, desc: str, resource: tuple | None = None, tags: object = None,
           consumed: np.ndarray | None = None, consumed_unit: str | None = None, details: str | None = None,
           ) -> None:
    """Daily usage rows of one meter; ``qty`` holds one 1e-6 quantity per day, zero days are skipped."""
    idx = np.flatnonzero(qty > 0)
    rid, rname, rtype = resource or (None, None, None)
    sku = cat.sku_id(bill.accounts[acct].provider, service, region, meter, unit)
    start = bill.t0 + idx * DAY
    bill.add(acct, service, region, start, start + DAY,
             **priced(qty[idx], micro(price), consumed="qty" if consumed is None else consumed[idx]),
             ChargeCategory="Usage", ChargeFrequency="Usage-Based", PricingCategory="Standard",
             PricingUnit=unit, ConsumedUnit=consumed_unit or unit, SkuId=sku, SkuMeter=meter,
             SkuPriceId=cat.price_id(sku, "ondemand"),
             SkuPriceDetails=details, ChargeDescription=desc, ResourceName=rname, ResourceType=rtype,
             ResourceId=rid[idx] if isinstance(rid, np.ndarray) else rid, Tags=tags_json(tags))


def _gb_months(gb: np.ndarray, sc: Scenario) -> np.ndarray:
    """GB stored for a day as GB-Months, the unit storage is priced in."""
    month = (np.datetime64(sc.start, "D") + np.arange(sc.days)).astype("datetime64[M]")
    days_in_month = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(I64)
    return np.round(gb * U / days_in_month).astype(I64)


def _storage_rows(bill: Rows, masks: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Buckets that grow (checkpoints during training runs) and the volumes of the AWS and Azure VMs."""
    sc = bill.sc
    training = masks["llm-train-p5-00"].reshape(sc.days, 24).sum(1) >= 12
    for acct, service, region, name, tb0, growth, price, klass, tags in cat.BUCKETS:
        a = bill.accounts[acct]
        per_day = training * 4.0 if growth == "train" else np.full(sc.days, float(growth))
        gb = np.round((tb0 + np.cumsum(per_day) * rng.uniform(0.8, 1.2)) * 1000, 3)
        rid, rtype = {
            cat.S3: (f"arn:aws:s3:::{name}", "Bucket"),
            "Amazon FSx": (f"arn:aws:fsx:{region}:{a.id}:file-system/{name}", "File System"),
            "Cloud Storage": (f"//storage.googleapis.com/projects/_/buckets/{name}", "Bucket"),
            "Storage Accounts": (f"{a.id}/resourceGroups/rg-{a.name}/providers/Microsoft.Storage/"
                                 f"storageAccounts/{name}", "Storage Account")}[service]
        _daily(bill, acct, service, region, _gb_months(gb, sc), price, unit="GB-Months",
               meter=f"{klass} Storage", desc=f"${price} per GB-Month of {klass} storage", tags=tags,
               details=json.dumps({"StorageClass": klass}),
               resource=(rid, None if service == "Amazon FSx" else name, rtype))
    for inst in sc.instances:  # volumes outlive stopped VMs, and go with terminated clusters
        if inst.provider == "gcp":
            continue
        keep = inst.role in ("inference", "dev", "k8s")
        alive = np.ones(sc.days, bool) if keep else masks[inst.name].reshape(sc.days, 24).any(1)
        gb = alive * (2000.0 if inst.gpu_count >= 8 else 1000.0 if inst.gpu_count else 200.0)
        vol = cat.hash_id(inst.resource_id)[:16]
        if inst.provider == "aws":
            service, price, kind = "Amazon Elastic Block Store", Decimal("0.08"), "General Purpose SSD (gp3)"
            acct_id = bill.accounts[inst.account].id
            res = (f"arn:aws:ec2:{inst.region}:{acct_id}:volume/vol-0{vol}", None, "Volume")
        else:
            service, price, kind = "Managed Disks", Decimal("0.132"), "Premium SSD (P30)"
            disk = f"{inst.name}_OsDisk_1_{vol}"
            rg = inst.resource_id.split("/providers/")[0]
            res = (f"{rg}/providers/Microsoft.Compute/disks/{disk}", disk, "Disk")
        _daily(bill, inst.account, service, inst.region, _gb_months(gb, sc), price, unit="GB-Months",
               meter=kind, desc=f"${price} per GB-month of {kind} provisioned storage", resource=res,
               tags=inst.tags)


def api_daily_factor(sc: Scenario, m: ApiModel) -> np.ndarray:
    """Per day of the window: an API model's volume over its base (trend, weekends, the copilot launch)."""
    days = np.arange(sc.days)
    weekday = (sc.start.weekday() + days) % 7 < 5
    since = days - (sc.spike("copilot-launch").start - sc.start).days
    surge = np.where(since < 0, 1.0, np.where(since < 7, 3.0, 2.0))
    trend = (1 + 0.3 * days / sc.days) * np.where(weekday, 1.0, 0.7)
    return trend * (surge if m.project == "support-copilot" and m.provider == "azure" else 1.0)


def api_token_volumes(sc: Scenario) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input, output) tokens per day of each of ``sc.api_models``, as the bill charges them. A stream of their
    own, so the LLM usage generator (``demo.llm_usage``) draws the very same volumes without the bill."""
    rng = np.random.default_rng([sc.seed, 6])
    out = []
    for m in sc.api_models:
        factor = api_daily_factor(sc, m)
        out.append(tuple(np.round(base * factor * rng.lognormal(0, 0.08, sc.days)).astype(I64)
                         for base in (m.daily_input_tokens, m.daily_output_tokens)))
    return out  # type: ignore[return-value]


def _usage_rows(bill: Rows, rng: np.random.Generator) -> None:
    """Data transfer, LLM tokens, SageMaker and the flat daily services."""
    sc = bill.sc
    days = np.arange(sc.days)
    weekday = (sc.start.weekday() + days) % 7 < 5
    export = sc.spike("egress-export")
    in_export = (days >= (export.start - sc.start).days) & (days < (export.end - sc.start).days)
    for acct, service, region, meter, tb, price in cat.TRANSFERS:
        gb = tb * 1000 * np.where(weekday, 1.0, 0.8) * rng.lognormal(0, 0.15, sc.days)
        if "Internet Egress" in meter:
            gb = gb + in_export * 140_000 * rng.uniform(0.9, 1.1, sc.days)
        _daily(bill, acct, service, region, np.round(gb * 1000).astype(I64) * 1000, price, unit="GB",
               meter=meter, desc=f"${price} per GB - {meter}")
    for m, volumes in zip(sc.api_models, api_token_volumes(sc), strict=True):
        rtype = {"Amazon Bedrock": "Application Inference Profile",
                 "Azure OpenAI Service": "Cognitive Services Account"}.get(m.service)
        res = (m.resource_id, m.resource_id.rsplit("/", 1)[-1], rtype) if m.resource_id else None
        for direction, tokens, price in (("Input", volumes[0], m.input_price),
                                         ("Output", volumes[1], m.output_price)):
            rng.lognormal(0, 0.08, sc.days)  # the draw tokens once took here: later meters keep their values
            _daily(bill, m.account, m.service, m.region, tokens * 1000, price, unit="1000 Tokens",
                   meter=f"{m.model} {direction} Tokens", consumed=tokens * U, consumed_unit="Tokens",
                   desc=f"{m.model} {direction.lower()} tokens (${price} per 1000 tokens)", resource=res,
                   tags=m.tags)
    acct = bill.accounts["aws-research"].id
    jobs = np.array([f"arn:aws:sagemaker:us-west-2:{acct}:training-job/distill-7b-"
                     f"{sc.start + dt.timedelta(days=int(d)):%Y%m%d}" for d in days], object)
    training = rng.choice(arr(0, 0, 0, 0, 12, 24, 48), sc.days)
    notebooks = [(f"arn:aws:sagemaker:us-west-2:{acct}:notebook-instance/quanta-nb-{i}", f"quanta-nb-{i}",
                  "Notebook Instance") for i in range(3)]  # notebooks nobody stops
    for meter, itype, hours, res, tags in (
            [("Training", "ml.p4d.24xlarge", training, (jobs, None, "Training Job"), RESEARCH)]
            + [("Notebook", "ml.g5.xlarge", np.full(sc.days, 24), nb, None) for nb in notebooks]):
        price = cat.INSTANCE_TYPES[itype][5]
        _daily(bill, "aws-research", "Amazon SageMaker", "us-west-2", hours * U, price, unit="Hours",
               meter=f"{itype} {meter}", desc=f"${price} per {itype} hour in {meter}", resource=res,
               tags=tags, details=cat.instance_details(itype))
    for acct_key, service, region, res, rtype, meter, unit, qty, price, tags in cat.FLAT_DAILY:
        q = np.full(sc.days, float(qty)) if unit == "Hours" else (
            qty * np.where(weekday, 1.0, 0.5) * rng.lognormal(0, 0.1, sc.days))
        a = bill.accounts[acct_key]
        rid = {"Amazon Elastic Kubernetes Service": f"arn:aws:eks:{region}:{a.id}:cluster/{res}",
               "Amazon Relational Database Service": f"arn:aws:rds:{region}:{a.id}:db:{res}",
               "Kubernetes Engine": f"//container.googleapis.com/projects/{a.id}/locations/{region}"
                                    f"/clusters/{res}",
               "Azure Kubernetes Service": f"{a.id}/resourceGroups/rg-{a.name}/providers/"
                                           f"Microsoft.ContainerService/managedClusters/{res}"}.get(service)
        _daily(bill, acct_key, service, region, np.round(q * 1000).astype(I64) * 1000, price, unit=unit,
               meter=meter, desc=f"${price} per {unit.rstrip('s')} - {meter}",
               resource=(rid, res, rtype) if rid else None, tags=tags)


def _sums(bill: Rows, col: str, **match: object) -> dict[tuple[str, str, np.datetime64], int]:
    """Exact sums of a cost column by (SubAccountId, ServiceName, billing month) over matching blocks."""
    out: dict[tuple[str, str, np.datetime64], int] = {}
    for n, c in bill.blocks:
        if all(c.get(k) in v if isinstance(v, tuple) else c.get(k) == v for k, v in match.items()):
            months, vals = fill(c["BillingPeriodStart"], n, "datetime64[us]", None), fill(c[col], n, I64, 0)
            for m in np.unique(months):
                key = (str(c["SubAccountId"]), str(c["ServiceName"]), m)
                out[key] = out.get(key, 0) + int(vals[months == m].sum())
    return out


def _month_span(sc: Scenario, month: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
    _, lo, hi = next(t for t in _months(sc) if t[0] == month)
    return arr(lo, dtype=TS), arr(hi, dtype=TS)


def _cents(cost: Decimal) -> int:
    """A 1e-12 cost rounded to the cent, as taxes and fees are invoiced."""
    return int(cost.scaleb(-10).to_integral_value()) * 10**10


def _credit(amount: int) -> dict[str, object]:
    a = arr(amount)
    return dict(ChargeCategory="Credit", ChargeFrequency="One-Time", ListCost=a, ContractedCost=a,
                EffectiveCost=a, BilledCost=a)


def _adjustment_rows(bill: Rows) -> None:
    """Rows computed from other rows: support fee, sales taxes, credits, and a refund of last month."""
    sc = bill.sc
    org = bill.accounts["aws-ml-prod"]
    payer = Account("aws-payer", "aws", org.billing_id, org.billing_name, org.billing_type, org.billing_id,
                    "helix-org-management", "Management Account")
    spend: dict[np.datetime64, int] = {}
    for (_, _, m), v in _sums(bill, "BilledCost", BillingAccountId=org.billing_id).items():
        spend[m] = spend.get(m, 0) + v
    sku = cat.sku_id("aws", "AWS Support (Business)")
    for m, v in sorted(spend.items()):
        usd, fee, lower = Decimal(v).scaleb(-12), Decimal(0), Decimal(0)
        for upper, rate in cat.SUPPORT_TIERS:
            fee, lower = fee + max(Decimal(0), min(usd, upper) - lower) * rate, Decimal(upper)
        bill.add(payer, "AWS Support (Business)", None, *_month_span(sc, m),
                 **priced(arr(U), micro(fee.quantize(Decimal("0.01"))), consumed=None),
                 ChargeCategory="Purchase", ChargeFrequency="Recurring", PricingCategory="Standard",
                 PricingUnit="Months", SkuId=sku,
                 SkuPriceId=cat.price_id(sku, "business"), SkuMeter="Support",
                 ChargeDescription="AWS Support (Business) monthly fee")
    for acct_key, rate in cat.TAX_RATES.items():  # per sub account, service and month, like the invoices
        a = bill.accounts[acct_key]
        sums = {col: _sums(bill, col, SubAccountId=a.id, ChargeCategory=("Usage", "Purchase"))
                for col in ("ListCost", "ContractedCost", "EffectiveCost", "BilledCost")}
        for key in sorted(sums["BilledCost"], key=str):
            tax = {col: arr(_cents(Decimal(sums[col][key]) * rate)) for col in sums}
            bill.add(a, key[1], None, *_month_span(sc, key[2]), **tax, ChargeCategory="Tax",
                     ChargeFrequency="Recurring", ChargeDescription=f"Sales tax ({rate * 100:.2f}%)")
    bedrock = _sums(bill, "BilledCost", BillingAccountId=org.billing_id, ServiceName="Amazon Bedrock")
    for m in sorted({k[2] for k in bedrock}):
        used = sum(v for k, v in bedrock.items() if k[2] == m)
        bill.add(org, "Amazon Bedrock", None, *_month_span(sc, m),
                 **_credit(-min(micro(cat.BEDROCK_CREDIT_PER_MONTH) * U, used)),
                 ChargeDescription="AWS Generative AI Accelerator promotional credit")
    day = arr(bill.t0 + (sc.days // 2) * DAY, dtype=TS)
    bill.add("gcp-recsys-prod", "Compute Engine", None, day, day + DAY, **_credit(-micro(cat.SLA_CREDIT) * U),
             ChargeDescription="SLA credit: Compute Engine GPU instance availability below 99.5%")
    inst = next(i for i in sc.instances if i.name == "summarizer-ft-nd96-00")
    run = inst.active[0] if inst.active else (sc.start, sc.start)
    lo = np.datetime64(run[0], "us") + 24 * HOUR  # a host failure, refunded the next month
    billed_in = (lo.astype("datetime64[M]") + 1).astype(TS)
    if lo + 36 * HOUR <= np.datetime64(run[1], "us") and billed_in < bill.t0 + sc.days * DAY:
        bill.add(inst.account, "Virtual Machines", inst.region, arr(lo, dtype=TS),
                 arr(lo + 36 * HOUR, dtype=TS),
                 **priced(arr(-36 * U), micro(inst.hourly_price), consumed=None), ChargeCategory="Usage",
                 ChargeClass="Correction", ChargeFrequency="Usage-Based", PricingCategory="Standard",
                 PricingUnit="Hours", ResourceId=inst.resource_id, ResourceName=inst.name,
                 ResourceType="Virtual Machine", SkuId=cat.sku_id("azure", "Virtual Machines", inst.region,
                                                            inst.instance_type),
                 SkuMeter="Compute Usage", Tags=tags_json(inst.tags),
                 ChargeDescription="Refund: 36 VM hours lost to a host hardware failure",
                 BillingPeriodStart=arr(billed_in, dtype=TS),
                 BillingPeriodEnd=arr((billed_in.astype("datetime64[M]") + 1).astype(TS), dtype=TS))


def generate_bill(scenario: Scenario) -> pa.Table:
    """The scenario's whole FOCUS 1.2 bill: the 57 columns in spec order, block by block."""
    rng = np.random.default_rng([scenario.seed, 1])  # not the fleet's stream: a new meter moves no VM
    bill = Rows(scenario)
    masks = {i.name: scenario.running(i) for i in scenario.instances}
    for inst in scenario.instances:
        _vm_rows(bill, inst, masks[inst.name], rng)
    _commitment_rows(bill, masks)
    _storage_rows(bill, masks, rng)
    _usage_rows(bill, rng)
    _adjustment_rows(bill)
    return bill.table()


def write_bill(scenario: Scenario, out_dir: Path) -> list[Path]:
    """The bill as zstd Parquet files, one per provider and billing month, like separate deliveries."""
    table = generate_bill(scenario)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    codes = {name: code for code, (name, _) in cat.PROVIDERS.items()}
    months = pc.strftime(table["BillingPeriodStart"], "%Y-%m")
    paths = []
    for provider in table["ProviderName"].unique().to_pylist():
        for month in months.unique().to_pylist():
            part = table.filter(pc.and_(pc.equal(table["ProviderName"], provider), pc.equal(months, month)))
            if part.num_rows:
                paths.append(out_dir / f"{codes[provider]}-{month}.parquet")
                pq.write_table(part, paths[-1], compression="zstd")
    return sorted(paths)
