"""The synthetic AI company behind the demo: accounts, GPU/CPU fleet, commitments, LLM APIs, spikes.

Everything random is decided here, once, from the seed, so the bill generator and the later
generators (GPU telemetry, Kubernetes workloads, LLM usage) describe the same machines and models.
The fleet is hand-written so the story the demo tells (a forgotten cluster, imperfect tags, a
commitment, spot savings, a token surge) holds for every seed and window length; the seed moves job
timings, spot episodes, volumes and identifiers. Prices live in :mod:`aifinops.demo.catalog`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from aifinops.demo.catalog import INSTANCE_TYPES

TEAMS = ("ml-platform", "search", "recsys", "genai-apps", "data-eng", "research")
MODELS = ("llama-3-70b-ft", "embed-small", "ranker-v7", "summarizer-8b", "distill-7b")
ENVS = ("prod", "staging", "dev")

Tags = tuple[tuple[str, str], ...]
Interval = tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True)
class Account:
    """A sub account (AWS account, GCP project, Azure subscription) with its billing account."""

    key: str
    provider: str
    billing_id: str
    billing_name: str
    billing_type: str
    id: str
    name: str
    type: str


@dataclass(frozen=True)
class Instance:
    """One VM. ``team``..``env`` are the truth; ``tags`` are what the bill shows (typos, gaps)."""

    name: str
    resource_id: str
    provider: str
    account: str
    region: str
    zone: str | None
    instance_type: str
    gpu_model: str | None
    gpu_count: int
    vcpus: int
    memory_gib: int
    hourly_price: Decimal
    pricing: str  # Standard | Dynamic (spot) | Committed
    commitment: str | None
    team: str | None
    project: str | None
    model: str | None
    env: str | None
    tags: Tags | None
    node_name: str
    cluster: str
    role: str  # training | inference | batch | dev | k8s
    active: tuple[Interval, ...]
    group: str = ""  # the fleet line it belongs to (an instance group or node pool), e.g. llm-serve-p4d


@dataclass(frozen=True)
class Commitment:
    """A usage commitment on one instance type; ``hourly_rate`` is the amortised price per instance-hour."""

    id: str
    name: str
    provider: str
    account: str
    type: str
    instance_type: str
    count: int
    hourly_rate: Decimal
    list_price: Decimal
    upfront: bool
    start: dt.datetime
    unit: str
    units_per_hour: int  # CommitmentDiscountUnit per instance-hour


@dataclass(frozen=True)
class ApiModel:
    """A managed LLM endpoint billed per 1000 tokens; daily volumes before trend, weekday and spikes."""

    provider: str
    account: str
    service: str
    model: str
    region: str
    input_price: Decimal  # per 1000 tokens
    output_price: Decimal
    daily_input_tokens: int
    daily_output_tokens: int
    team: str | None
    project: str | None
    tags: Tags | None
    resource_id: str | None


@dataclass(frozen=True)
class Spike:
    """An anomaly planted in the data, for the demo to find and the tests to check."""

    name: str
    start: dt.datetime
    end: dt.datetime
    description: str


@dataclass(frozen=True)
class Scenario:
    """Everything the generators decide; data covers ``[end - days, end)`` in UTC. Use build_scenario."""

    seed: int = 7
    days: int = 90
    end: dt.date = dt.date(2026, 11, 1)
    company: str = "Helix AI"
    teams: tuple[str, ...] = TEAMS
    models: tuple[str, ...] = MODELS
    envs: tuple[str, ...] = ENVS
    accounts: tuple[Account, ...] = ()
    instances: tuple[Instance, ...] = ()
    commitments: tuple[Commitment, ...] = ()
    api_models: tuple[ApiModel, ...] = ()
    spikes: tuple[Spike, ...] = ()
    tagging_miss_rate: float = 0.0  # share of instances whose tags carry no team key (computed)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.end, dt.time()) - dt.timedelta(days=self.days)

    @property
    def gpu_instances(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.gpu_count)

    def hour_index(self, t: dt.datetime) -> int:
        """Hours from the start of the window to ``t``."""
        return int((t - self.start) / dt.timedelta(hours=1))

    def running(self, inst: Instance) -> np.ndarray:
        """The instance's running hours as a boolean array over the window, one entry per hour."""
        mask = np.zeros(self.days * 24, bool)
        for a, b in inst.active:
            mask[self.hour_index(a):self.hour_index(b)] = True
        return mask

    def account(self, key: str) -> Account:
        return next(a for a in self.accounts if a.key == key)

    def spike(self, name: str) -> Spike:
        return next(s for s in self.spikes if s.name == name)


_AZ_BILLING = ("/providers/Microsoft.Billing/billingAccounts/5e98e158-2a0b-4b45-9d1e-6b2f8a4c7d31:"
               "0c4f2e1a-8b7d-4e3c-a1f0-9d8e7c6b5a43_2019-05-31/billingProfiles/K4PW-XQ2M-BG7-PGB")
_ACCOUNTS = (
    # key, provider, billing id, billing name, billing type, sub id, sub name, sub type
    ("aws-ml-prod", "aws", "381942057716", "Helix AI (AWS Org)", "Management Account",
     "502193847261", "helix-ml-prod", "Member Account"),
    ("aws-ml-staging", "aws", "381942057716", "Helix AI (AWS Org)", "Management Account",
     "614728305519", "helix-ml-staging", "Member Account"),
    ("aws-search-prod", "aws", "381942057716", "Helix AI (AWS Org)", "Management Account",
     "730482915562", "helix-search-prod", "Member Account"),
    ("aws-data", "aws", "381942057716", "Helix AI (AWS Org)", "Management Account",
     "827364519028", "helix-data-lake", "Member Account"),
    ("aws-shared", "aws", "381942057716", "Helix AI (AWS Org)", "Management Account",
     "193847562031", "helix-shared-services", "Member Account"),
    ("aws-research", "aws", "459201837465", "Quanta Labs (acquired)", "Management Account",
     "268401973528", "quanta-research-sandbox", "Member Account"),
    ("gcp-recsys-prod", "gcp", "01A2B3-C4D5E6-F7A8B9", "Helix AI GCP", "Billing Account",
     "helix-recsys-prod", "helix-recsys-prod", "Project"),
    ("gcp-recsys-dev", "gcp", "01A2B3-C4D5E6-F7A8B9", "Helix AI GCP", "Billing Account",
     "helix-recsys-dev", "helix-recsys-dev", "Project"),
    ("gcp-data", "gcp", "01A2B3-C4D5E6-F7A8B9", "Helix AI GCP", "Billing Account",
     "helix-data-platform", "helix-data-platform", "Project"),
    ("gcp-genai", "gcp", "01A2B3-C4D5E6-F7A8B9", "Helix AI GCP", "Billing Account",
     "helix-genai", "helix-genai", "Project"),
    ("az-genai-prod", "azure", _AZ_BILLING, "Helix AI - Azure", "Billing Profile",
     "/subscriptions/7c2b9e41-5d3a-4f8e-b6a2-1e9d0c8f7a65", "genai-apps-prod", "Subscription"),
    ("az-genai-dev", "azure", _AZ_BILLING, "Helix AI - Azure", "Billing Profile",
     "/subscriptions/e3a8d6f2-9b1c-4a7e-8d5f-2c6b0a9e4f17", "genai-apps-dev", "Subscription"),
)

# prefix, count, account, region, zone, type, pricing, team, project, model, env, tag styles (per
# instance, cycled), schedule, cluster, role. Tag styles: ok | none | owner | caps | typo-team |
# typo-env | k8s (provider labels only). Schedules are fractions of the window so any length works.
_FLEET = (
    ("llm-train-p5", 4, "aws-ml-prod", "us-east-1", "us-east-1d", "p5.48xlarge", "Standard", "ml-platform",
     "llm-finetune", "llama-3-70b-ft", "prod", ("ok",), ("span", .10, .33, .56, .80), "slurm-llm",
     "training"),
    ("llm-serve-p4d", 2, "aws-ml-prod", "us-east-1", "us-east-1b", "p4d.24xlarge", "Committed", "ml-platform",
     "model-serving", "llama-3-70b-ft", "prod", ("ok",), ("always",), "eks-ml-prod", "inference"),
    ("search-embed-g5", 3, "aws-search-prod", "us-west-2", "us-west-2a", "g5.12xlarge", "Standard", "search",
     "semantic-search", "embed-small", "prod", ("ok",), ("always",), "eks-search-prod", "inference"),
    ("search-backfill-g5", 2, "aws-search-prod", "us-west-2", "us-west-2b", "g5.12xlarge", "Dynamic",
     "search", "semantic-search", "embed-small", "prod", ("ok",), ("episodes", 24, 96), "eks-search-prod",
     "batch"),
    ("summarizer-g6e", 2, "aws-ml-prod", "us-east-1", "us-east-1a", "g6e.xlarge", "Standard", "genai-apps",
     "doc-summarizer", "summarizer-8b", "prod", ("ok",), ("always",), "eks-ml-prod", "inference"),
    ("summarizer-stg-g6e", 1, "aws-ml-staging", "us-east-1", "us-east-1a", "g6e.xlarge", "Standard",
     "genai-apps", "doc-summarizer", "summarizer-8b", "staging", ("ok",), ("always",), "eks-ml-staging",
     "inference"),
    ("dev-g6e", 3, "aws-ml-staging", "us-east-1", "us-east-1a", "g6e.xlarge", "Standard", "ml-platform",
     "dev-workstations", None, "dev", ("ok", "typo-team", "none"), ("weekdays", 0, 24), "devbox", "dev"),
    ("ft-sweep-p5", 2, "aws-ml-staging", "us-east-1", "us-east-1d", "p5.48xlarge", "Standard", "ml-platform",
     "llm-finetune", "llama-3-70b-ft", "staging", ("owner",), ("span", .40, .53), "slurm-sweep", "training"),
    ("rl-p4d-spot", 2, "aws-research", "us-west-2", "us-west-2c", "p4d.24xlarge", "Dynamic", "research",
     "distill-7b", "distill-7b", "dev", ("caps",), ("episodes", 36, 120), "slurm-research", "training"),
    ("research-dev-g5", 1, "aws-research", "us-west-2", "us-west-2a", "g5.12xlarge", "Standard", "research",
     None, None, "dev", ("none",), ("weekdays", 0, 24), "devbox", "dev"),
    ("recsys-train-a3", 2, "gcp-recsys-prod", "us-central1", "us-central1-a", "a3-highgpu-8g", "Committed",
     "recsys", "home-feed-ranking", "ranker-v7", "prod", ("ok",), ("always",), "gke-recsys-prod", "training"),
    ("recsys-serve-l4", 4, "gcp-recsys-prod", "us-central1", "us-central1-b", "g2-standard-8", "Standard",
     "recsys", "home-feed-ranking", "ranker-v7", "prod", ("ok",), ("always",), "gke-recsys-prod",
     "inference"),
    ("recsys-burst-l4", 2, "gcp-recsys-prod", "us-central1", "us-central1-b", "g2-standard-8", "Standard",
     "recsys", "home-feed-ranking", "ranker-v7", "prod", ("ok",), ("daily", 14, 4), "gke-recsys-prod",
     "inference"),
    ("recsys-dev-a2", 2, "gcp-recsys-dev", "us-central1", "us-central1-c", "a2-highgpu-1g", "Standard",
     "recsys", "home-feed-ranking", None, "dev", ("ok", "typo-env"), ("weekdays", 13, 23), "devbox", "dev"),
    ("feature-batch-a2", 2, "gcp-data", "us-central1", "us-central1-f", "a2-highgpu-1g", "Dynamic",
     "data-eng", "feature-store", "embed-small", "prod", ("ok",), ("daily", 2, 10), "gke-data", "batch"),
    ("summarizer-ft-nd96", 2, "az-genai-prod", "eastus", None, "Standard_ND96asr_v4", "Standard",
     "genai-apps", "doc-summarizer", "summarizer-8b", "prod", ("typo-env",), ("span", .22, .40, .66, .78),
     "azureml-ft", "training"),
    ("summarizer-nc24", 2, "az-genai-prod", "eastus", None, "Standard_NC24ads_A100_v4", "Standard",
     "genai-apps", "doc-summarizer", "summarizer-8b", "prod", ("typo-env",), ("always",), "aks-genai-prod",
     "inference"),
    ("summarizer-stg-nc24", 1, "az-genai-dev", "eastus", None, "Standard_NC24ads_A100_v4", "Standard",
     "genai-apps", "doc-summarizer", "summarizer-8b", "staging", ("ok",), ("always",), "aks-genai-dev",
     "inference"),
    ("genai-dev-nc24", 1, "az-genai-dev", "eastus", None, "Standard_NC24ads_A100_v4", "Standard",
     "genai-apps", None, None, "dev", ("ok",), ("weekdays", 0, 24), "devbox", "dev"),
    # CPU: shared Kubernetes nodes carry only provider labels, which is where unallocated cost comes from.
    ("eks-ml-prod-m7i", 6, "aws-ml-prod", "us-east-1", "us-east-1b", "m7i.8xlarge", "Standard", None, None,
     None, "prod", ("k8s",), ("always",), "eks-ml-prod", "k8s"),
    ("search-indexer-c7i", 4, "aws-search-prod", "us-west-2", "us-west-2a", "c7i.16xlarge", "Standard",
     "search", "semantic-search", None, "prod", ("ok",), ("always",), "eks-search-prod", "k8s"),
    ("etl-spark-r7i", 8, "aws-data", "us-east-1", "us-east-1c", "r7i.8xlarge", "Standard", "data-eng",
     "lakehouse", None, "prod", ("ok",), ("daily", 1, 9), "emr-lakehouse", "batch"),
    ("gke-recsys-n2", 6, "gcp-recsys-prod", "us-central1", "us-central1-b", "n2-standard-32", "Standard",
     None, None, None, "prod", ("k8s",), ("always",), "gke-recsys-prod", "k8s"),
    ("aks-genai-d32", 3, "az-genai-prod", "eastus", None, "Standard_D32s_v5", "Standard", "genai-apps",
     "support-copilot", None, "prod", ("typo-env",), ("always",), "aks-genai-prod", "k8s"),
)


def _tags(style: str, team: str | None, project: str | None, model: str | None, env: str | None,
          provider: str, cluster: str) -> Tags | None:
    """Tags as the provider reports them; styles reproduce the usual tagging mistakes."""
    if style == "none":
        return None
    if style == "owner":
        return (("owner", "jdoe"), ("purpose", "lr-sweep"))
    if style == "k8s":
        key = {"aws": "aws:eks:cluster-name", "gcp": "goog-k8s-cluster-name",
               "azure": "aks-managed-cluster-name"}[provider]
        return ((key, cluster),)
    pairs = {"team": team, "project": project, "model": model, "env": env}
    if style == "typo-team":
        pairs["team"] = (team or "").replace("-", "")
    if style == "typo-env":
        pairs["env"] = {"prod": "production", "dev": "development"}.get(env or "", env)
    items = tuple((k, v) for k, v in pairs.items() if v)
    if style == "caps":
        items = tuple((k.capitalize() if k in ("team", "project") else k, v) for k, v in items)
    return items


def _mask(rule: tuple, hours: int, first_weekday: int, rng: np.random.Generator) -> np.ndarray:
    """Hourly on/off mask for a schedule rule over the window."""
    h = np.arange(hours)
    hod, day = h % 24, h // 24
    days = hours // 24
    kind = rule[0]
    if kind == "always":
        return np.ones(hours, bool)
    if kind == "span":  # pairs of (from, to) fractions of the window; runs start at 09:00 UTC
        m = np.zeros(hours, bool)
        for a, b in zip(rule[1::2], rule[2::2], strict=True):
            m[int(a * days) * 24 + 9:int(b * days) * 24 + 9] = True
        return m
    in_hours = (hod >= rule[1]) & (hod < rule[2]) if rule[1] < rule[2] else (hod >= rule[1]) | (hod < rule[2])
    if kind == "daily":
        return in_hours
    if kind == "weekdays":
        return in_hours & ((first_weekday + day) % 7 < 5)
    # episodes: jobs of random length separated by random gaps (spot batch work, research runs)
    m = np.zeros(hours, bool)
    t = int(rng.integers(0, rule[1]))
    while t < hours:
        length = int(rng.integers(rule[1], rule[2]))
        m[t:t + length] = True
        t += length + int(rng.integers(rule[1] // 2, rule[2]))
    return m


def _intervals(mask: np.ndarray, start: dt.datetime) -> tuple[Interval, ...]:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return tuple((start + dt.timedelta(hours=int(a)), start + dt.timedelta(hours=int(b)))
                 for a, b in zip(edges[::2], edges[1::2], strict=True))


def _identity(prefix: str, i: int, acct: Account, region: str, zone: str | None, cluster: str,
              rng: np.random.Generator) -> tuple[str, str, str]:
    """(resource id, resource name, Kubernetes node name) in each provider's native format."""
    hx = rng.bytes(8).hex()
    pool_hx = hashlib.sha1(f"{cluster}/{prefix}".encode()).hexdigest()  # a node pool shares its hash
    name = f"{prefix}-{i:02d}"
    if acct.provider == "aws":
        rid = f"arn:aws:ec2:{region}:{acct.id}:instance/i-0{hx[:16]}"
        ip = "-".join(str(int(x)) for x in rng.integers(1, 255, 3))
        suffix = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
        node = f"ip-10-{ip}.{suffix}" if cluster.startswith("eks") else name
        return rid, name, node
    if acct.provider == "gcp":
        if cluster.startswith("gke"):
            name = f"{cluster}-{prefix.split('-')[-1]}-pool-{pool_hx[:8]}-{hx[:4]}"
        return f"//compute.googleapis.com/projects/{acct.id}/zones/{zone}/instances/{name}", name, name
    if cluster.startswith("aks"):
        pool = f"aks-{prefix.split('-')[-1]}pool-{int(pool_hx[:7], 16) % 10**8:08d}-vmss"
        rg = f"mc_rg-{acct.name}_{cluster}_{region}"
        rid = (f"{acct.id}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{pool}"
               f"/virtualMachines/{i}")
        return rid, f"{pool}_{i}", f"{pool}{i:06d}"
    rid = f"{acct.id}/resourceGroups/rg-{acct.name}/providers/Microsoft.Compute/virtualMachines/{name}"
    return rid, name, name


def _commitments(start: dt.datetime, days: int) -> tuple[Commitment, ...]:
    ri_rate = Decimal("19.6636")  # 1-year all-upfront RI, ~40% below on-demand
    purchase = dt.datetime.combine((start + dt.timedelta(days=round(.15 * days))).date(), dt.time())
    return (
        Commitment("arn:aws:ec2:us-east-1:502193847261:reserved-instances/7f3c9a2e-41d8-4b6a-9e0f-58c1d2a7b390",
                   "p4d.24xlarge x2 1yr All Upfront", "aws", "aws-ml-prod", "Reserved Instance",
                   "p4d.24xlarge", 2, ri_rate, INSTANCE_TYPES["p4d.24xlarge"][5], True, purchase, "Hours", 1),
        Commitment("projects/helix-recsys-prod/regions/us-central1/commitments/a3-h100-1yr",
                   "a3-h100-1yr", "gcp", "gcp-recsys-prod", "Committed Use Discount", "a3-highgpu-8g", 2,
                   Decimal("55.5975"), INSTANCE_TYPES["a3-highgpu-8g"][5], False,
                   start - dt.timedelta(days=200), "GPU-Hours", 8),
    )


def _api_models(accounts: dict[str, Account]) -> tuple[ApiModel, ...]:
    aws, az = accounts["aws-ml-prod"], accounts["az-genai-prod"]
    profile = f"arn:aws:bedrock:us-east-1:{aws.id}:application-inference-profile/q7m2x9k4p1ab"
    aoai = (f"{az.id}/resourceGroups/rg-genai-apps-prod/providers/Microsoft.CognitiveServices"
            "/accounts/helix-aoai-eus2")
    copilot = (("team", "genai-apps"), ("project", "support-copilot"), ("env", "prod"))
    az_tags = (("team", "genai-apps"), ("project", "support-copilot"), ("env", "production"))
    d = Decimal
    return (
        ApiModel("aws", "aws-ml-prod", "Amazon Bedrock", "Claude Sonnet 4.5", "us-east-1", d("0.003"),
                 d("0.015"), 90_000_000, 14_000_000, "genai-apps", "support-copilot", copilot, profile),
        ApiModel("aws", "aws-ml-prod", "Amazon Bedrock", "Claude Sonnet 4.5", "us-east-1", d("0.003"),
                 d("0.015"), 60_000_000, 9_000_000, None, None, None, None),
        ApiModel("aws", "aws-search-prod", "Amazon Bedrock", "Claude Haiku 4.5", "us-west-2", d("0.001"),
                 d("0.005"), 120_000_000, 12_000_000, None, None, None, None),
        ApiModel("aws", "aws-search-prod", "Amazon Bedrock", "Titan Text Embeddings V2", "us-west-2",
                 d("0.00002"), d("0"), 900_000_000, 0, "search", "semantic-search",
                 (("team", "search"), ("project", "semantic-search"), ("env", "prod")), None),
        ApiModel("azure", "az-genai-prod", "Azure OpenAI Service", "gpt-4.1", "eastus2", d("0.002"),
                 d("0.008"), 110_000_000, 18_000_000, "genai-apps", "support-copilot", az_tags, aoai),
        ApiModel("azure", "az-genai-prod", "Azure OpenAI Service", "gpt-4.1-mini", "eastus2", d("0.0004"),
                 d("0.0016"), 250_000_000, 30_000_000, "genai-apps", "support-copilot", az_tags, aoai),
        ApiModel("azure", "az-genai-prod", "Azure OpenAI Service", "text-embedding-3-small", "eastus2",
                 d("0.00002"), d("0"), 600_000_000, 0, "genai-apps", "support-copilot", az_tags, aoai),
        ApiModel("gcp", "gcp-genai", "Vertex AI", "Gemini 2.5 Flash", "us-central1", d("0.0003"), d("0.0025"),
                 400_000_000, 40_000_000, "recsys", "catalog-enrichment",
                 (("team", "recsys"), ("project", "catalog-enrichment"), ("env", "prod")), None),
        ApiModel("gcp", "gcp-genai", "Vertex AI", "Gemini 2.5 Pro", "us-central1", d("0.00125"), d("0.01"),
                 15_000_000, 2_500_000, None, None, None, None),
    )


def build_scenario(seed: int = 7, days: int = 90, end: dt.date = dt.date(2026, 11, 1)) -> Scenario:
    """Decide the whole company for a seed; cheap (a few ms), so every generator may call it."""
    rng = np.random.default_rng(seed)
    start = dt.datetime.combine(end, dt.time()) - dt.timedelta(days=days)
    accounts = {a[0]: Account(*a) for a in _ACCOUNTS}
    commitments = _commitments(start, days)
    hours = days * 24
    instances: list[Instance] = []
    for (prefix, count, acct_key, region, zone, itype, pricing, team, project, model, env, styles, rule,
         cluster, role) in _FLEET:
        acct = accounts[acct_key]
        _, gpu, ngpu, vcpu, mem, price = INSTANCE_TYPES[itype]
        commitment = next((c.id for c in commitments if c.instance_type == itype and c.account == acct_key),
                          None)
        for i in range(count):
            mask = _mask(rule, hours, start.weekday(), rng)
            if prefix == "llm-serve-p4d" and i == 1:  # maintenance: two idle days strand the RI
                mask[int(.55 * days) * 24:int(.57 * days) * 24] = False
            rid, name, node = _identity(prefix, i, acct, region, zone, cluster, rng)
            tags = _tags(styles[i % len(styles)], team, project, model, env, acct.provider, cluster)
            instances.append(Instance(name, rid, acct.provider, acct_key, region, zone, itype, gpu, ngpu,
                                      vcpu, mem, price, pricing, commitment, team, project, model, env, tags,
                                      node, cluster, role, _intervals(mask, start), prefix))

    def at(frac: float, hour: int = 0) -> dt.datetime:
        return start + dt.timedelta(days=int(frac * days), hours=hour)

    spikes = (
        Spike("forgotten-finetune", at(.45, 9), at(.53, 9),
              "ft-sweep-p5 (2x p5.48xlarge) kept running idle after the sweep ended; tagged only owner=jdoe"),
        Spike("copilot-launch", at(.72), at(1.0),
              "support-copilot v2 launch: its Azure OpenAI tokens x3 for a week, then x2"),
        Spike("egress-export", at(.60), at(.60) + dt.timedelta(days=3),
              "feature-store export from GCP to AWS over the internet (~420 TB egress)"),
    )
    untagged = sum(1 for i in instances if not any(k.lower() == "team" for k, _ in i.tags or ()))
    return Scenario(seed, days, end, accounts=tuple(accounts.values()), instances=tuple(instances),
                    commitments=commitments, api_models=_api_models(accounts), spikes=spikes,
                    tagging_miss_rate=untagged / len(instances))
