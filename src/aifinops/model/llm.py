"""The inference model: canonical columns of LLM requests, price catalogs and business outcomes.

Conventions every LLM source follows, so that pricing never guesses:

- time is UTC, stored as naive ``TIMESTAMP``; ``ts`` is when the request started;
- tokens follow the OpenTelemetry GenAI semantic conventions: ``input_tokens`` counts *all* input tokens,
  cache reads and cache writes included (``cache_read_tokens`` and ``cache_write_tokens`` are parts of it);
  ``output_tokens`` counts all output tokens, reasoning included (``reasoning_tokens`` is a part of it).
  A source whose format counts otherwise (Anthropic's API counts cache tokens apart from input) converts;
- ``provider`` is OTel's ``gen_ai.provider.name`` (``openai``, ``anthropic``, ``aws.bedrock``,
  ``azure.ai.openai``, ``gcp.vertex_ai``, ...); a self-hosted model names its own (``self-hosted`` unless the
  source says otherwise);
- one request is one row, identified by (``source``, ``request_id``): the same request again (a retried
  export, overlapping files) supersedes the older row, as GPU samples do. An aggregated export (OpenAI's
  usage buckets) gives one row for ``requests`` requests, its tokens summed;
- ``source_cost`` is what the source itself says the request cost (LiteLLM's spend), kept beside the
  price aifinops computes so that the two can be compared, never instead of it.

Prices are USD per 1M tokens (``*_per_mtok``) in exact decimals. A price row applies to a model in a
``tier`` (standard, batch, priority, flex), from ``valid_from`` to ``valid_to`` (NULL: open), to requests
whose input tokens exceed ``above_tokens`` (0 for the base price; catalogs price long contexts higher).
"""

from __future__ import annotations

LLM_REQUEST_COLUMNS: dict[str, str] = {
    "request_id": "VARCHAR",  # span id, LiteLLM request_id, or the file's own id column
    "source": "VARCHAR",  # otel | litellm | csv | ...
    "ts": "TIMESTAMP",
    "duration_ms": "DOUBLE",
    "requests": "BIGINT",  # requests this row stands for: 1, or more in an aggregated export (OpenAI usage)
    "provider": "VARCHAR",  # gen_ai.provider.name (older gen_ai.system)
    "operation": "VARCHAR",  # gen_ai.operation.name: chat, text_completion, embeddings, ...
    "request_model": "VARCHAR",  # gen_ai.request.model
    "response_model": "VARCHAR",  # gen_ai.response.model (the dated version actually served)
    "input_tokens": "BIGINT",  # all input tokens, cache reads and writes included
    "output_tokens": "BIGINT",  # all output tokens, reasoning included
    "cache_read_tokens": "BIGINT",  # part of input_tokens
    "cache_write_tokens": "BIGINT",  # part of input_tokens
    "reasoning_tokens": "BIGINT",  # part of output_tokens
    "tier": "VARCHAR",  # service tier: standard | batch | priority | flex
    "conversation_id": "VARCHAR",  # gen_ai.conversation.id
    "service": "VARCHAR",  # resource service.name
    "environment": "VARCHAR",  # resource deployment.environment(.name)
    "team": "VARCHAR",
    "feature": "VARCHAR",
    "user_id": "VARCHAR",
    "tenant": "VARCHAR",
    "api_key": "VARCHAR",  # key alias or hash (LiteLLM), never the secret
    "status": "VARCHAR",  # ok | error | cached (served from a response cache: no provider charge, costs $0)
    "error_type": "VARCHAR",
    "source_cost": "DECIMAL(38, 12)",  # the source's own cost of the request (USD), when it gives one
    "trace_id": "VARCHAR",
    "attributes": "MAP(VARCHAR, VARCHAR)",  # every other attribute, tag or metadata field, as text
}

#: Prompt fingerprints (added in schema 7; sources fill them when the prompt content is in their input, and
#: drop the content): sha256 hex of the whole prompt (every input message, in order, as canonical JSON) and
#: of its reusable prefix (the system prompt / instructions and the tool definitions: what provider prompt
#: caching would reuse), with the prefix's size in tokens (exact when the source counts it, else its
#: characters / 4, the providers' rule of thumb).
PROMPT_COLUMNS: dict[str, str] = {"prompt_hash": "VARCHAR", "prefix_hash": "VARCHAR", "prefix_tokens": "BIGINT"}

#: What makes a request one observation.
REQUEST_KEY = ("source", "request_id")

LLM_PRICE_COLUMNS: dict[str, str] = {
    "catalog": "VARCHAR",  # litellm | genai-prices | contract | override
    "provider": "VARCHAR",  # canonical provider (as LLM_REQUEST_COLUMNS.provider)
    "model": "VARCHAR",  # the model as the catalog names it
    "model_key": "VARCHAR",  # normalised for matching: see analysis.llm_prices.model_key_sql
    "mode": "VARCHAR",  # chat | completion | embedding | ...
    "tier": "VARCHAR",  # standard | batch | priority | flex
    "above_tokens": "BIGINT",  # applies to requests with more input tokens than this (0: base price)
    "valid_from": "TIMESTAMP",  # NULL: since ever
    "valid_to": "TIMESTAMP",  # NULL: still in force
    "input_per_mtok": "DECIMAL(38, 12)",
    "output_per_mtok": "DECIMAL(38, 12)",
    "cache_read_per_mtok": "DECIMAL(38, 12)",  # NULL: cache reads cost the input price
    "cache_write_per_mtok": "DECIMAL(38, 12)",  # NULL: cache writes cost the input price
    "currency": "VARCHAR",
    "snapshot": "VARCHAR",  # which delivery of the catalog (version, date), for the audit trail
}

OUTCOME_COLUMNS: dict[str, str] = {
    "ts": "TIMESTAMP",
    "metric": "VARCHAR",  # tickets_resolved, conversions, revenue, ...
    "value": "DECIMAL(38, 12)",
    "unit": "VARCHAR",  # count, USD, ... (revenue in a currency makes gross margin possible)
    "feature": "VARCHAR",
    "model": "VARCHAR",
    "team": "VARCHAR",
    "tenant": "VARCHAR",
    "user_id": "VARCHAR",
    "attributes": "MAP(VARCHAR, VARCHAR)",
}

TIERS = ("standard", "batch", "priority", "flex")

#: Provider names of catalogs and older instrumentations -> OTel ``gen_ai.provider.name``. Anything not
#: listed is kept lower-cased as it is.
PROVIDER_ALIASES: dict[str, str] = {
    # OTel's older gen_ai.system values
    "az.ai.openai": "azure.ai.openai", "az.ai.inference": "azure.ai.inference", "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini", "xai": "x_ai", "mistral": "mistral_ai", "watsonx": "ibm.watsonx.ai",
    # LiteLLM's litellm_provider
    "azure": "azure.ai.openai", "azure_ai": "azure.ai.inference", "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock", "bedrock_mantle": "aws.bedrock", "sagemaker": "aws.sagemaker",
    "vertex_ai-language-models": "gcp.vertex_ai", "vertex_ai-anthropic_models": "gcp.vertex_ai",
    "vertex_ai-mistral_models": "gcp.vertex_ai", "vertex_ai-llama_models": "gcp.vertex_ai",
    "vertex_ai-ai21_models": "gcp.vertex_ai", "vertex_ai-deepseek_models": "gcp.vertex_ai",
    "cohere_chat": "cohere", "text-completion-openai": "openai", "together_ai": "together",
    "fireworks_ai": "fireworks", "hosted_vllm": "vllm",
    # genai-prices provider ids
    "aws": "aws.bedrock", "google": "gcp.gemini", "x-ai": "x_ai",
}


def provider_sql(expr: str) -> str:
    """SQL: the canonical provider of a provider name (``PROVIDER_ALIASES``), lower-cased; NULL stays NULL."""
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in PROVIDER_ALIASES.items())
    low = f"lower(trim({expr}))"
    return f"(CASE {low} {cases} ELSE nullif({low}, '') END)"


def model_key_sql(expr: str) -> str:
    """SQL: the name a model is matched by, the same for a request and a catalog. Lower-cased; a route or
    provider prefix up to the last ``/`` dropped (``openai/gpt-4o``, ``models/gemini-1.5-pro``); Bedrock's
    region and vendor prefixes dropped (``us.anthropic.``) and its ``-v2:0`` / ``:0`` version suffix; Vertex's
    ``@20240620`` and a ``-latest`` suffix dropped. A dated version (``gpt-4o-2024-08-06``) keeps its date:
    a catalog that prices it on its own is right for it; ``base_key_sql`` drops the date as a fallback."""
    k = f"lower(trim({expr}))"
    k = f"regexp_replace({k}, '^.*/', '')"
    k = f"regexp_replace({k}, '^(us|eu|apac|global|us-gov)\\.', '')"
    k = f"regexp_replace({k}, '^(anthropic|meta|amazon|cohere|mistral|ai21|deepseek|qwen|openai|writer)\\.', '')"
    k = f"regexp_replace({k}, '(-v[0-9]+)?:[0-9]+$', '')"
    k = f"regexp_replace({k}, '@.*$', '')"
    return f"nullif(regexp_replace({k}, '-latest$', ''), '')"


def base_key_sql(expr: str) -> str:
    """SQL: ``model_key_sql`` without a trailing date (``-2024-08-06``, ``-20241022``, ``-0613``), the fallback
    for a dated version no catalog prices on its own."""
    return (f"regexp_replace({model_key_sql(expr)}, "
            "'-(20[0-9]{2}-[0-9]{2}-[0-9]{2}|20[0-9]{6}|[01][0-9][0-3][0-9])$', '')")
