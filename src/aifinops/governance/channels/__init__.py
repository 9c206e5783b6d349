"""Alert channels: one file per channel type in this package, each registering itself with ``@channel(type)``.

A channel turns an ``Alert`` into one message on its medium and says what the other end answered (``"200"``,
``"250"``), or raises ``ChannelError``. It never retries, sleeps or records: ``governance.alerts.deliver`` does,
the same way for every channel. A new channel type is one new module here (and its name in
``ChannelSettings.type``); modules starting with ``_`` hold shared helpers and are not scanned.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import httpx

from ...config import ChannelSettings
from ...registry import Registry

if TYPE_CHECKING:
    from ..alerts import Alert

__all__ = ["Channel", "ChannelError", "channel", "channels", "expand_env", "post_json", "safe_url", "to_json"]


class ChannelError(Exception):
    """A message that did not get through. The text names the channel, where it went and what happened.

    ``status`` is what the other end answered (HTTP status, SMTP reply code) when it answered at all; ``retry``
    is False when sending the same thing again soon cannot help (a 4xx other than 429, bad settings), so
    ``deliver`` does not spend this run's attempts on it (a later run still tries: settings get fixed)."""

    def __init__(self, message: str, *, status: str | None = None, retry: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retry = retry


class Channel:
    """One configured place alerts go (``alerts.channels.<name>`` in aifinops.yaml)."""

    type: ClassVar[str]
    kind: ClassVar[str]  # the same name, set by the registry

    def __init__(self, name: str, cfg: ChannelSettings) -> None:
        self.name = name
        self.cfg = cfg

    @property
    def target(self) -> str:
        """Where messages go, safe to print and record (no secrets)."""
        return safe_url(self.cfg.url or "")

    def send(self, alert: Alert, event: str) -> str:
        """Deliver ``alert`` (``event``: new | update); the answer's status text, or ``ChannelError``."""
        raise NotImplementedError


channels: Registry[Channel] = Registry("aifinops.alert_channels", builtins=("aifinops.governance.channels.*",))


def channel(name: str) -> Callable[[type[Channel]], type[Channel]]:
    """Register a channel class under ``name`` and set its ``type`` (the value of ``ChannelSettings.type``)."""
    register = channels.register(name)

    def deco(cls: type[Channel]) -> type[Channel]:
        cls.type = name
        return register(cls)

    return deco


def to_json(v: Any) -> Any:
    """``json.dumps`` default: details are meant to be JSON already; money and times may still slip in."""
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    return str(v)


def safe_url(url: str) -> str:
    """The URL without what may be a secret: credentials, the query and every path segment after the first
    (a Slack webhook's path *is* its token), so errors and logs can show where a message went."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return url.split("?", 1)[0][:40]
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    segments = [s for s in parts.path.split("/") if s]
    path = "/" + segments[0] + ("/…" if len(segments) > 1 else "") if segments else ""
    return f"{parts.scheme}://{host}{path}"


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(name: str, what: str, value: str) -> str:
    """``value`` with every ``${VAR}`` replaced from the environment; an unset variable is a ChannelError naming
    it (a secret such as a token lives in the environment, never in aifinops.yaml)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise ChannelError(f"channel {name}: {what} uses ${{{m.group(1)}}}, which is not set in the environment",
                               retry=False)
        return os.environ[m.group(1)]

    return _ENV.sub(sub, value)


def post_json(name: str, url: str, body: dict[str, Any], headers: dict[str, str], timeout: float) -> str:
    """POST ``body`` as JSON; the HTTP status on 2xx. A transport error, 429 or 5xx is a ChannelError worth
    retrying; any other answer is a ChannelError that is not (the request itself is wrong)."""
    where = safe_url(url)
    data = json.dumps(body, default=to_json).encode()
    try:
        resp = httpx.post(url, content=data, headers={"Content-Type": "application/json", **headers},
                          timeout=timeout)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:  # before TransportError, its base
        raise ChannelError(f"channel {name}: POST {where}: {exc}", retry=False) from None
    except httpx.TransportError as exc:  # refused, reset, timed out: maybe transient
        raise ChannelError(f"channel {name}: POST {where}: {type(exc).__name__}: {exc}") from None
    status = str(resp.status_code)
    if resp.is_success:
        return status
    said = " ".join(resp.text.split())[:200]
    retry = resp.status_code == 429 or resp.status_code >= 500
    raise ChannelError(f"channel {name}: POST {where} answered HTTP {status} {resp.reason_phrase}"
                       + (f": {said}" if said else ""), status=status, retry=retry)
