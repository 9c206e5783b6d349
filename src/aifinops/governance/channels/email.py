"""E-mail over SMTP (smtplib): one multipart message, text/plain and text/html with the same content, to the
channel's recipients. STARTTLS when ``starttls`` is set, a login when ``username`` is set, the password read from
the environment variable ``password_env`` names (never from aifinops.yaml)."""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from . import Channel, ChannelError, channel
from ._render import html, subject, text

if TYPE_CHECKING:
    from ..alerts import Alert

PREFIX = "[aifinops] "


def build(alert: Alert, event: str, sender: str, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = PREFIX + subject(alert, event)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["X-Aifinops-Alert"] = alert.key
    msg.set_content(text(alert, event))
    msg.add_alternative(html(alert, event), subtype="html")
    return msg


@channel("email")
class EmailChannel(Channel):
    """Send the alert by SMTP; the server's 250 is delivered. A 4xx reply or no connection is retried; a 5xx
    reply (a refused recipient or login) is not."""

    @property
    def target(self) -> str:
        return f"smtp://{self.cfg.host}:{self.cfg.port}"

    def _password(self) -> str:
        env = self.cfg.password_env
        if not env:
            raise ChannelError(f"channel {self.name}: username is set but password_env is not (the name of the "
                               "environment variable holding the SMTP password)", retry=False)
        if env not in os.environ:
            raise ChannelError(f"channel {self.name}: password_env {env} is not set in the environment",
                               retry=False)
        return os.environ[env]

    def send(self, alert: Alert, event: str) -> str:
        cfg = self.cfg
        where = f"channel {self.name}: SMTP {cfg.host}:{cfg.port}"
        password = self._password() if cfg.username else None
        msg = build(alert, event, cfg.sender or "", cfg.to)
        try:
            with smtplib.SMTP(cfg.host or "", cfg.port, timeout=cfg.timeout) as smtp:
                if cfg.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username and password is not None:
                    smtp.login(cfg.username, password)
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            said = "; ".join(f"{rcpt}: {code} {_text(m)}" for rcpt, (code, m) in exc.recipients.items())
            codes = {code for code, _ in exc.recipients.values()}
            raise ChannelError(f"{where}: every recipient refused ({said})", status=str(min(codes)),
                               retry=all(400 <= c < 500 for c in codes)) from None
        except smtplib.SMTPResponseException as exc:
            raise ChannelError(f"{where}: {exc.smtp_code} {_text(exc.smtp_error)}", status=str(exc.smtp_code),
                               retry=400 <= exc.smtp_code < 500) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, TLS, dropped connection
            raise ChannelError(f"{where}: {type(exc).__name__}: {exc}") from None
        # send_message raises unless the server accepted the data with 250; some recipients may still be refused
        if refused:
            return "250; refused " + ", ".join(f"{rcpt} {code}" for rcpt, (code, _) in refused.items())
        return "250"


def _text(m: bytes | str) -> str:
    return (m.decode(errors="replace") if isinstance(m, bytes) else m).strip()
