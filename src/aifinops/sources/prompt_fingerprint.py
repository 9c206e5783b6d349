"""Prompt fingerprints (``model.llm.PROMPT_COLUMNS``) in SQL, for the sources whose input carries the prompt:
the hashes let the waste rules find repeated prompts and shared prefixes while the content itself is dropped.

A source gives three parts of a request's prompt as JSON text (NULL: absent): the system instructions, the tool
definitions and the input messages (an array of objects with a ``role``). Then, in the ingest statement:

- each part is made canonical (``canonical_sql``): parsed and written back minified, so the same JSON with other
  white space is the same text; text that is not JSON becomes a JSON string; ``null``, ``{}``, ``[]`` and empty
  text are absent;
- ``prompt_hash`` = sha256 (hex) of ``{"system":S,"tools":T,"messages":M}`` (an absent part is ``null``);
- the prefix is what provider prompt caching reuses: the system instructions, the tools and the leading messages
  of a system role (``system``, ``developer``) — ``prefix_hash`` = sha256 of ``{"system":S,"tools":T,"messages":L}``
  with L those leading messages; NULL when the prompt has none of the three;
- ``prefix_tokens`` = the prefix parts' characters / 4, rounded half up (the providers' rule of thumb): no source
  counts the prefix's tokens.

Hashes are of what the source recorded: two instrumentations that record the same prompt in other shapes (OTel's
``parts`` messages, LiteLLM's OpenAI-style ``content``) give different hashes, which is harmless since a rule
compares requests of one provider and model. Key order inside the JSON is kept as recorded (DuckDB's ``json()``
does not sort keys); an instrumentation writes its messages the same way every time.
"""

from __future__ import annotations

#: roles of the messages that belong to the reusable prefix when they lead the conversation
SYSTEM_ROLES = ("system", "developer")
_INT_MAX = 2147483647


def canonical_sql(text: str) -> str:
    """SQL: the canonical JSON text of a prompt part given as text (see the module docstring); NULL when absent.
    ``text`` is used several times: give a column reference."""
    t = f"nullif(trim({text}), '')"
    return (f"(CASE WHEN {t} IS NULL THEN NULL "
            f"WHEN json_valid({t}) THEN nullif(nullif(nullif(CAST(json({t}) AS VARCHAR), 'null'), '{{}}'), '[]') "
            f"ELSE CAST(to_json({t}) AS VARCHAR) END)")


def leading_system_sql(messages: str) -> str:
    """SQL: the JSON array (text) of the messages of a system role that open ``messages`` (canonical JSON text
    of an array); NULL when there are none or ``messages`` is not an array."""
    roles = ", ".join(f"'{r}'" for r in SYSTEM_ROLES)
    items = f"TRY_CAST(CAST({messages} AS JSON) AS JSON[])"
    other = f"coalesce(lower(m->>'role'), '') NOT IN ({roles})"
    first_other = f"list_position(list_transform({items}, lambda m: {other}), true)"
    return f"nullif(CAST(to_json({items}[1:coalesce({first_other} - 1, {_INT_MAX})]) AS VARCHAR), '[]')"


def fingerprint_sql(system: str, tools: str, messages: str, leading: str) -> dict[str, str]:
    """SQL of ``prompt_hash``, ``prefix_hash`` and ``prefix_tokens`` from the canonical parts (``canonical_sql``)
    and the leading system messages (``leading_system_sql``). Each argument is used more than once: give column
    references of a projection where the source has one."""

    def doc(s: str, t: str, m: str) -> str:
        return (f"'{{\"system\":' || coalesce({s}, 'null') || ',\"tools\":' || coalesce({t}, 'null') || "
                f"',\"messages\":' || coalesce({m}, 'null') || '}}'")

    has_prefix = f"({system} IS NOT NULL OR {tools} IS NOT NULL OR {leading} IS NOT NULL)"
    chars = f"coalesce(length({system}), 0) + coalesce(length({tools}), 0) + coalesce(length({leading}), 0)"
    return {
        "prompt_hash": f"CASE WHEN coalesce({system}, {tools}, {messages}) IS NOT NULL "
                       f"THEN sha256({doc(system, tools, messages)}) END",
        "prefix_hash": f"CASE WHEN {has_prefix} THEN sha256({doc(system, tools, leading)}) END",
        "prefix_tokens": f"CASE WHEN {has_prefix} THEN CAST(({chars} + 2) // 4 AS BIGINT) END",
    }


def fingerprint_relation(base: str, system: str, tools: str, messages: str) -> str:
    """A table expression: ``base`` (aliased ``s`` inside) with ``_prompt_hash``, ``_prefix_hash`` and
    ``_prefix_tokens`` added, from SQL over ``s`` giving the three parts as text. Each part is made canonical
    once, in an inner projection, and the hashes read the result."""
    parts = (f"SELECT s.*, {canonical_sql(system)} AS _fp_system, {canonical_sql(tools)} AS _fp_tools, "
             f"{canonical_sql(messages)} AS _fp_messages FROM {base} s")
    with_leading = f"SELECT s.*, {leading_system_sql('s._fp_messages')} AS _fp_leading FROM ({parts}) s"
    fp = fingerprint_sql("s._fp_system", "s._fp_tools", "s._fp_messages", "s._fp_leading")
    cols = ", ".join(f"{expr} AS _{name}" for name, expr in fp.items())
    return (f"(SELECT s.* EXCLUDE (_fp_system, _fp_tools, _fp_messages, _fp_leading), {cols} "
            f"FROM ({with_leading}) s)")
