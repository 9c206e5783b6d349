"""Generic webhook: the alert as one JSON document POSTed to a URL, for anything that takes JSON (an incident
tool, a queue's HTTP endpoint, a script). Extra headers (``Authorization: Bearer ${TOKEN}``) come from the
channel's settings, their ``${VAR}`` parts from the environment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import Channel, channel, expand_env, post_json

if TYPE_CHECKING:
    from ..alerts import Alert


def payload(alert: Alert, event: str, sent_at: datetime) -> dict[str, Any]:
    """The JSON document: every field of the alert, the event (new | update) and when it was sent (UTC)."""
    return {"key": alert.key, "kind": alert.kind, "event": event, "subject": alert.subject, "owner": alert.owner,
            "severity": alert.severity, "impact_cost": alert.impact_cost, "link": alert.link,
            "details": alert.details, "resolved": alert.resolved,
            "sent_at": sent_at.isoformat(timespec="seconds").replace("+00:00", "Z")}


@channel("webhook")
class WebhookChannel(Channel):
    """POST the alert as JSON; 2xx is delivered, 429/5xx/no answer is retried, other 4xx is refused."""

    def send(self, alert: Alert, event: str) -> str:
        headers = {k: expand_env(self.name, f"header {k}", v) for k, v in self.cfg.headers.items()}
        body = payload(alert, event, datetime.now(UTC))
        return post_json(self.name, self.cfg.url or "", body, headers, self.cfg.timeout)
