"""Slack-compatible incoming webhook (also Mattermost, Rocket.Chat, and Teams workflows that take Slack's
format): a ``text`` fallback line for notifications, and Block Kit ``blocks``: a header with the subject, the
owner, impact and severity, the details as fields and small tables, and the evidence link. Slack answers 200
``ok``; its errors (``invalid_payload``, ``no_service``) come as 4xx with the reason as the body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import Channel, channel, post_json
from ._render import fixed, money, split, subject, text_table

if TYPE_CHECKING:
    from ..alerts import Alert

# Block Kit limits: a header's text, a section's fields and a field's text, a section's text, blocks per message.
HEADER_CHARS, FIELDS, FIELD_CHARS, SECTION_CHARS, BLOCKS = 150, 10, 2000, 3000, 50


def _esc(s: str) -> str:
    """Slack's mrkdwn escapes exactly these three."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fields(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Sections of up to 10 ``*label*\\nvalue`` fields each."""
    items = [{"type": "mrkdwn", "text": f"*{_esc(k)}*\n{_esc(v)}"[:FIELD_CHARS]} for k, v in pairs]
    return [{"type": "section", "fields": items[i:i + FIELDS]} for i in range(0, len(items), FIELDS)]


def _evidence(link: str) -> str:
    if link.startswith(("http://", "https://")):
        return f"Evidence: <{link}|{_esc(link)}>"
    return f"Evidence: `{_esc(link)}`"


def message(alert: Alert, event: str) -> dict[str, Any]:
    """The incoming-webhook payload."""
    fields, tables = split(alert.details)
    title = subject(alert, event)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:HEADER_CHARS], "emoji": False}},
        *_fields(fixed(alert)),
        *_fields(fields),
    ]
    for name, cols, rows, more in tables:
        body = f"*{_esc(name)}*\n```{_esc(text_table(cols, rows, more))}```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:SECTION_CHARS]}})
    blocks = blocks[:BLOCKS - 1]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _evidence(alert.link)}]})
    fallback = (f"{title}: impact {money(alert.impact_cost)}, severity {alert.severity}, "
                f"owner {alert.owner or 'unknown'}. {_evidence(alert.link)}")
    return {"text": fallback, "blocks": blocks}


@channel("slack")
class SlackChannel(Channel):
    """POST a Slack incoming-webhook message; 2xx is delivered."""

    def send(self, alert: Alert, event: str) -> str:
        return post_json(self.name, self.cfg.url or "", message(alert, event), {}, self.cfg.timeout)
