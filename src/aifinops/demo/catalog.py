"""What the synthetic AI company can buy: services, instance types, prices and its non-VM meters.

Data only, kept apart from the code that expands it. Prices are public US list prices in USD
(on-demand per hour, per GB-month, per GB, per 1000 tokens), rounded to at most 6 decimals so that
every cost is an exact product.
"""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal as D

PROVIDERS = {  # code -> (ProviderName, PublisherName and InvoiceIssuerName)
    "aws": ("AWS", "Amazon Web Services, Inc."),
    "gcp": ("Google Cloud", "Google Cloud"),
    "azure": ("Microsoft", "Microsoft"),
}
REGIONS = {
    "us-east-1": "US East (N. Virginia)", "us-west-2": "US West (Oregon)",
    "us-central1": "Iowa", "eastus": "East US", "eastus2": "East US 2",
}
# type -> (provider, GPU model, GPUs, vCPUs, memory GiB, on-demand $/h)
INSTANCE_TYPES: dict[str, tuple[str, str | None, int, int, int, D]] = {
    "p5.48xlarge": ("aws", "H100-80GB", 8, 192, 2048, D("98.32")),
    "p4d.24xlarge": ("aws", "A100-40GB", 8, 96, 1152, D("32.7726")),
    "g5.12xlarge": ("aws", "A10G", 4, 48, 192, D("5.672")),
    "g6e.xlarge": ("aws", "L40S", 1, 4, 32, D("1.861")),
    "m7i.8xlarge": ("aws", None, 0, 32, 128, D("1.6128")),
    "c7i.16xlarge": ("aws", None, 0, 64, 128, D("2.856")),
    "r7i.8xlarge": ("aws", None, 0, 32, 256, D("2.1168")),
    "a3-highgpu-8g": ("gcp", "H100-80GB", 8, 208, 1872, D("88.25")),
    "a2-highgpu-1g": ("gcp", "A100-40GB", 1, 12, 85, D("3.6735")),
    "g2-standard-8": ("gcp", "L4", 1, 8, 32, D("0.8536")),
    "n2-standard-32": ("gcp", None, 0, 32, 128, D("1.5539")),
    "Standard_ND96asr_v4": ("azure", "A100-40GB", 8, 96, 900, D("27.197")),
    "Standard_NC24ads_A100_v4": ("azure", "A100-80GB", 1, 24, 220, D("3.673")),
    "Standard_D32s_v5": ("azure", None, 0, 32, 128, D("1.536")),
    "ml.p4d.24xlarge": ("aws", "A100-40GB", 8, 96, 1152, D("37.688")),  # SageMaker training
    "ml.g5.xlarge": ("aws", "A10G", 1, 4, 16, D("1.408")),  # SageMaker notebook
}
SERIES = {"Standard_ND96asr_v4": "NDasrA100v4", "Standard_NC24ads_A100_v4": "NCadsA100v4",
          "Standard_D32s_v5": "Dsv5"}
SERVICES = {  # ServiceName -> (ServiceCategory, ServiceSubcategory): one pair per name, as FOCUS requires
    "Amazon Elastic Compute Cloud": ("Compute", "Virtual Machines"),
    "Compute Engine": ("Compute", "Virtual Machines"),
    "Virtual Machines": ("Compute", "Virtual Machines"),
    "Amazon Elastic Kubernetes Service": ("Compute", "Containers"),
    "Kubernetes Engine": ("Compute", "Containers"),
    "Azure Kubernetes Service": ("Compute", "Containers"),
    "Amazon Simple Storage Service": ("Storage", "Object Storage"),
    "Cloud Storage": ("Storage", "Object Storage"),
    "Storage Accounts": ("Storage", "Object Storage"),
    "Amazon Elastic Block Store": ("Storage", "Block Storage"),
    "Managed Disks": ("Storage", "Block Storage"),
    "Amazon FSx": ("Storage", "File Storage"),
    "AWS Data Transfer": ("Networking", "Network Connectivity"),
    "Networking": ("Networking", "Network Connectivity"),
    "Bandwidth": ("Networking", "Network Connectivity"),
    "Amazon Bedrock": ("AI and Machine Learning", "Generative AI"),
    "Azure OpenAI Service": ("AI and Machine Learning", "Generative AI"),
    "Vertex AI": ("AI and Machine Learning", "Generative AI"),
    "Amazon SageMaker": ("AI and Machine Learning", "Machine Learning"),
    "Amazon Relational Database Service": ("Databases", "Relational Databases"),
    "BigQuery": ("Databases", "Data Warehouses"),
    "Amazon CloudWatch": ("Management and Governance", "Observability"),
    "AWS Support (Business)": ("Management and Governance", "Support"),
}
VM_SERVICE = {"aws": "Amazon Elastic Compute Cloud", "gcp": "Compute Engine", "azure": "Virtual Machines"}

_TEAM = {  # tag sets shared by several meters
    "lake": (("team", "data-eng"), ("project", "lakehouse"), ("env", "prod")),
    "llm": (("team", "ml-platform"), ("project", "llm-finetune"), ("env", "prod")),
    "copilot": (("team", "genai-apps"), ("project", "support-copilot"), ("env", "prod")),
}
# account, service, region, resource name, TB at start, TB/day growth ("train": 4 TB per training day),
# $/GB-month, storage class, tags
S3 = "Amazon Simple Storage Service"
BUCKETS = (
    ("aws-data", S3, "us-east-1", "helix-training-datasets", 620, 1.2, D("0.021"),
     "Standard", _TEAM["lake"]),
    ("aws-ml-prod", S3, "us-east-1", "helix-llm-checkpoints", 180, "train",
     D("0.022"), "Standard", _TEAM["llm"]),
    ("aws-shared", S3, "us-east-1", "helix-logs-archive", 90, 0.3, D("0.023"),
     "Standard", None),
    ("aws-research", S3, "us-west-2", "quanta-research-data", 60, 0.2, D("0.023"),
     "Standard", (("Team", "research"), ("Project", "distill-7b"))),
    ("aws-ml-prod", "Amazon FSx", "us-east-1", "fs-0c7d3e9a1b5f24680", 120, 0.0, D("0.145"), "Persistent SSD",
     _TEAM["llm"]),
    ("gcp-data", "Cloud Storage", "us-central1", "helix-feature-store", 310, 0.8, D("0.020"), "Standard",
     (("team", "data-eng"), ("project", "feature-store"), ("env", "prod"))),
    ("gcp-recsys-prod", "Cloud Storage", "us-central1", "helix-recsys-models", 45, 0.1, D("0.020"),
     "Standard", (("team", "recsys"), ("project", "home-feed-ranking"), ("env", "prod"))),
    ("az-genai-prod", "Storage Accounts", "eastus", "helixgenaidocs", 85, 0.15, D("0.0184"), "Hot",
     (("team", "genai-apps"), ("project", "support-copilot"), ("env", "production"))),
)
# account, service, region, meter, TB/day, $/GB; untagged, as data transfer is in practice
TRANSFERS = (
    ("aws-ml-prod", "AWS Data Transfer", "us-east-1", "Data Transfer Out to Internet", 2.5, D("0.05")),
    ("aws-data", "AWS Data Transfer", "us-east-1", "Inter-Region Data Transfer Out to US West (Oregon)", 18,
     D("0.02")),
    ("aws-search-prod", "AWS Data Transfer", "us-west-2", "Inter-AZ Data Transfer", 15, D("0.01")),
    ("gcp-data", "Networking", "us-central1",
     "Network Internet Egress from Northern America to Northern America", 1.5, D("0.08")),
    ("gcp-recsys-prod", "Networking", "us-central1", "Network Inter Zone Data Transfer Out", 12, D("0.01")),
    ("az-genai-prod", "Bandwidth", "eastus", "Standard Data Transfer Out", 0.6, D("0.087")),
)
# account, service, region, resource, resource type, meter, unit, quantity per day, price, tags
FLAT_DAILY = (
    ("aws-ml-prod", "Amazon Elastic Kubernetes Service", "us-east-1", "eks-ml-prod", "Cluster",
     "Amazon EKS cluster usage", "Hours", 24, D("0.10"), None),
    ("aws-ml-staging", "Amazon Elastic Kubernetes Service", "us-east-1", "eks-ml-staging", "Cluster",
     "Amazon EKS cluster usage", "Hours", 24, D("0.10"), None),
    ("aws-search-prod", "Amazon Elastic Kubernetes Service", "us-west-2", "eks-search-prod", "Cluster",
     "Amazon EKS cluster usage", "Hours", 24, D("0.10"), None),
    ("gcp-recsys-prod", "Kubernetes Engine", "us-central1", "gke-recsys-prod", "Cluster",
     "Regional Kubernetes Clusters", "Hours", 24, D("0.10"), None),
    ("az-genai-prod", "Azure Kubernetes Service", "eastus", "aks-genai-prod", "Managed Cluster",
     "Standard Uptime SLA", "Hours", 24, D("0.10"), None),
    ("aws-shared", "Amazon Relational Database Service", "us-east-1", "helix-app-db", "DB Instance",
     "PostgreSQL db.r6g.4xlarge Multi-AZ", "Hours", 24, D("3.614"), _TEAM["copilot"]),
    ("aws-shared", "Amazon CloudWatch", "us-east-1", None, None, "Logs data ingestion", "GB", 280, D("0.50"),
     None),
    ("gcp-data", "BigQuery", "us-central1", None, None, "Analysis (on-demand)", "TiB", 30, D("6.25"),
     (("team", "data-eng"), ("project", "lakehouse"))),
)
TAX_RATES = {"aws-research": D("0.1025"), "az-genai-prod": D("0.0625"), "az-genai-dev": D("0.0625")}
# AWS Business Support: share of each month's AWS charges, by tier (upper bound in USD, rate)
SUPPORT_TIERS = ((10_000, D("0.10")), (80_000, D("0.07")), (250_000, D("0.05")), (10**12, D("0.03")))
BEDROCK_CREDIT_PER_MONTH = D("10000")
SLA_CREDIT = D("3150")


def hash_id(*parts: object) -> str:
    """A stable hex digest: identifiers that must not move with the seed."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


def sku_id(provider: str, *key: object) -> str:
    """A SKU id in the provider's style; it depends on what is sold, never on who buys it or how."""
    h = hash_id(provider, *key)
    if provider == "aws":
        return base64.b32encode(bytes.fromhex(h[:20])).decode()[:16]
    if provider == "gcp":
        return f"{h[:4]}-{h[4:8]}-{h[8:12]}".upper()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def price_id(sku: str, variant: str) -> str:
    """A SKU price id: one per SKU and pricing (on demand, spot, a commitment)."""
    h = hash_id(sku, variant).upper()
    return f"{sku}/{h[:6]}" if "-" in sku else f"{sku}.{h[:10]}.{h[10:20]}"


def instance_details(itype: str) -> str:
    """SkuPriceDetails of an instance SKU: FOCUS-defined keys, plus the GPU model as ``x_GpuModel``."""
    _, gpu, gpus, vcpus, mem, _ = INSTANCE_TYPES[itype]
    bare = itype.removeprefix("ml.")
    series = SERIES.get(itype) or (bare.split(".")[0].capitalize() if "." in bare
                                   else bare.split("-")[0].upper())
    d: dict[str, object] = {"InstanceType": itype, "InstanceSeries": series, "CoreCount": vcpus,
                            "MemorySize": mem, "OperatingSystem": "Linux"}
    return json.dumps({**d, "GpuCount": gpus, "x_GpuModel": gpu} if gpus else d)
