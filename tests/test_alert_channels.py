"""Alert channels against real servers on loopback: the webhook's JSON exactly (with headers from the
environment), Slack's text and blocks, e-mail's subject, recipients and both parts through aiosmtpd (with a
login), and every kind of failure as a ChannelError that says which channel, where and what happened, and
whether retrying can help."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alert_servers import HttpRecorder, Smtp, closed_port

from aifinops.config import ChannelSettings
from aifinops.governance.alerts import Alert
from aifinops.governance.channels import ChannelError, channels, safe_url
from aifinops.governance.channels._render import split, text, value

LINK = "aifinops anomalies --by ServiceName --window 2026-10-01..2026-10-08"


@pytest.fixture
def alert() -> Alert:
    return Alert(
        key="anomaly:ab12", kind="anomaly",
        subject="Cost anomaly: ServiceName=Amazon EC2 +$31,512 (+412%) since 2026-10-05",
        owner="@ml-platform", severity="high", impact_cost=31512.0, link=LINK, channels=["hook"],
        details={"series": "Amazon EC2", "actual": 39160.0, "expected": 7648.0, "percent": 4.12,
                 "root_causes": [{"value": "BoxUsage:p5.48xlarge", "impact": 29000.0, "contribution": 0.92},
                                 {"value": "EBS:VolumeUsage.gp3", "impact": 2512.0, "contribution": 0.08}]})


def make(kind: str, name: str = "hook", **cfg: object) -> object:
    return channels.get(kind)(name, ChannelSettings(type=kind, **cfg))


ROOT_CAUSES = ("Value                     Impact  Contribution\n"
               "--------------------  ----------  ------------\n"
               "BoxUsage:p5.48xlarge  $29,000.00           92%\n"
               "EBS:VolumeUsage.gp3    $2,512.00            8%")


def test_builtin_channel_types_register_themselves() -> None:
    assert channels.names() == ["email", "slack", "webhook"]
    assert [(n, cls.type, cls.kind) for n, cls in channels] == [
        ("email", "email", "email"), ("slack", "slack", "slack"), ("webhook", "webhook", "webhook")]
    with pytest.raises(KeyError, match="unknown alert_channel 'pager'"):
        channels.get("pager")


def test_webhook_posts_the_alert_as_json_with_headers_from_the_environment(
        http: HttpRecorder, alert: Alert, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "tok-123")
    ch = make("webhook", url=http.url, headers={"Authorization": "Bearer ${HOOK_TOKEN}", "X-Team": "finops"})
    before = datetime.now(UTC).replace(microsecond=0)
    assert ch.send(alert, "update") == "200"
    after = datetime.now(UTC)
    [req] = http.requests
    assert (req.method, req.path) == ("POST", "/hooks/T0001/B0001/secret")
    assert (req.headers["authorization"], req.headers["x-team"], req.headers["content-type"]) == (
        "Bearer tok-123", "finops", "application/json")
    body = req.json
    sent_at = datetime.fromisoformat(body.pop("sent_at"))
    assert before <= sent_at <= after
    assert body == {
        "key": "anomaly:ab12", "kind": "anomaly", "event": "update",
        "subject": "Cost anomaly: ServiceName=Amazon EC2 +$31,512 (+412%) since 2026-10-05",
        "owner": "@ml-platform", "severity": "high", "impact_cost": 31512.0, "link": LINK,
        "details": {"series": "Amazon EC2", "actual": 39160.0, "expected": 7648.0, "percent": 4.12,
                    "root_causes": [{"value": "BoxUsage:p5.48xlarge", "impact": 29000.0, "contribution": 0.92},
                                    {"value": "EBS:VolumeUsage.gp3", "impact": 2512.0, "contribution": 0.08}]},
        "resolved": False}


def test_webhook_header_naming_an_unset_variable_is_an_error_that_names_it(
        http: HttpRecorder, alert: Alert, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    ch = make("webhook", url=http.url, headers={"Authorization": "Bearer ${HOOK_TOKEN}"})
    with pytest.raises(ChannelError) as err:
        ch.send(alert, "new")
    assert str(err.value) == ("channel hook: header Authorization uses ${HOOK_TOKEN}, which is not set in the "
                              "environment")
    assert (err.value.retry, err.value.status, http.requests) == (False, None, [])


@pytest.mark.parametrize(("status", "retry"), [(500, True), (503, True), (429, True), (404, False), (400, False)])
def test_webhook_failures_say_where_and_whether_to_retry(http: HttpRecorder, alert: Alert, status: int,
                                                         retry: bool) -> None:
    http.script = [(status, "no  such\nhook")]
    with pytest.raises(ChannelError) as err:
        make("webhook", url=http.url).send(alert, "new")
    port = http.server.server_address[1]
    assert str(err.value).startswith(f"channel hook: POST http://127.0.0.1:{port}/hooks/… answered HTTP {status} ")
    assert str(err.value).endswith(": no such hook") and "secret" not in str(err.value)
    assert (err.value.status, err.value.retry) == (str(status), retry)


def test_connection_refused_is_a_channel_error_worth_retrying(alert: Alert) -> None:
    port = closed_port()
    with pytest.raises(ChannelError) as err:
        make("slack", url=f"http://127.0.0.1:{port}/x").send(alert, "new")
    assert str(err.value).startswith(f"channel hook: POST http://127.0.0.1:{port}/x: ConnectError: ")
    assert (err.value.status, err.value.retry) == (None, True)


def test_slack_message_has_a_fallback_text_and_blocks(http: HttpRecorder, alert: Alert) -> None:
    assert make("slack", url=http.url).send(alert, "new") == "200"
    msg = http.requests[0].json
    assert msg["text"] == ("Cost anomaly: ServiceName=Amazon EC2 +$31,512 (+412%) since 2026-10-05: impact $31,512.00, "
                           f"severity high, owner @ml-platform. Evidence: `{LINK}`")
    assert msg["blocks"] == [
        {"type": "header", "text": {"type": "plain_text", "emoji": False,
                                    "text": "Cost anomaly: ServiceName=Amazon EC2 +$31,512 (+412%) since 2026-10-05"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Owner*\n@ml-platform"},
                                       {"type": "mrkdwn", "text": "*Impact*\n$31,512.00"},
                                       {"type": "mrkdwn", "text": "*Severity*\nhigh"}]},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Series*\nAmazon EC2"},
                                       {"type": "mrkdwn", "text": "*Actual*\n39,160"},
                                       {"type": "mrkdwn", "text": "*Expected*\n7,648"},
                                       {"type": "mrkdwn", "text": "*Percent*\n+412%"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Root causes*\n```{ROOT_CAUSES}```"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Evidence: `{LINK}`"}]}]


def test_slack_links_a_dashboard_url_and_escapes_mrkdwn(http: HttpRecorder, alert: Alert) -> None:
    alert.link = "https://finops.example.com/anomalies/ab12"
    alert.details = {"budget": {"name": "R&D <gpu>", "amount": 50000, "spent": 41000.5}}
    make("slack", url=http.url).send(alert, "update")
    blocks = http.requests[0].json["blocks"]
    assert blocks[0]["text"]["text"].endswith("since 2026-10-05 (update)")
    assert [f["text"] for f in blocks[2]["fields"]] == ["*Budget name*\nR&amp;D &lt;gpu&gt;",
                                                        "*Budget amount*\n$50,000.00", "*Budget spent*\n$41,000.50"]
    assert blocks[-1]["elements"][0]["text"] == ("Evidence: <https://finops.example.com/anomalies/ab12|"
                                                 "https://finops.example.com/anomalies/ab12>")


def test_email_is_one_multipart_message_with_a_login(smtp: Smtp, alert: Alert,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    ch = make("email", name="mail", host="127.0.0.1", port=smtp.port, sender="aifinops@example.com",
              to=["finops@example.com", "ml-lead@example.com"], username="alerts", password_env="SMTP_PASSWORD")
    assert ch.send(alert, "new") == "250"
    [mail] = smtp.box.mails
    assert smtp.box.logins == ["alerts"]
    assert (mail.sender, mail.recipients) == ("aifinops@example.com", ["finops@example.com", "ml-lead@example.com"])
    msg = mail.message
    assert msg["Subject"] == "[aifinops] Cost anomaly: ServiceName=Amazon EC2 +$31,512 (+412%) since 2026-10-05"
    assert (msg["From"], msg["To"], msg["X-Aifinops-Alert"]) == (
        "aifinops@example.com", "finops@example.com, ml-lead@example.com", "anomaly:ab12")
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg.get_body(("plain",)).get_content() == (
        "Cost anomaly: ServiceName=Amazon EC2 +$31,512 (+412%) since 2026-10-05\n\n"
        "Owner     @ml-platform\nImpact    $31,512.00\nSeverity  high\nSeries    Amazon EC2\nActual    39,160\n"
        f"Expected  7,648\nPercent   +412%\n\nRoot causes:\n{ROOT_CAUSES}\n\nEvidence: {LINK}\n\nalert anomaly:ab12\n")
    page = msg.get_body(("html",)).get_content()
    assert "<h2>Cost anomaly: ServiceName=Amazon EC2 +$31,512 (+412%) since 2026-10-05</h2>" in page
    assert "<h3>Root causes</h3>" in page and ">BoxUsage:p5.48xlarge</td>" in page and ">92%</td>" in page
    assert f"<code>{LINK}</code>" in page


def test_email_update_subject_and_partly_refused_recipients(smtp: Smtp, alert: Alert) -> None:
    smtp.box.refuse = {"gone@example.com"}
    ch = make("email", name="mail", host="127.0.0.1", port=smtp.port, sender="aifinops@example.com",
              to=["finops@example.com", "gone@example.com"])
    assert ch.send(alert, "update") == "250; refused gone@example.com 550"
    [mail] = smtp.box.mails
    assert mail.recipients == ["finops@example.com"]
    assert mail.message["Subject"].endswith("since 2026-10-05 (update)")


def test_email_failures_are_channel_errors(smtp: Smtp, alert: Alert, monkeypatch: pytest.MonkeyPatch) -> None:
    smtp.box.refuse = {"gone@example.com"}
    cfg = {"host": "127.0.0.1", "port": smtp.port, "sender": "aifinops@example.com", "to": ["gone@example.com"]}
    with pytest.raises(ChannelError) as err:
        make("email", name="mail", **cfg).send(alert, "new")
    assert str(err.value) == (f"channel mail: SMTP 127.0.0.1:{smtp.port}: every recipient refused "
                              "(gone@example.com: 550 5.1.1 no such user)")
    assert (err.value.status, err.value.retry) == ("550", False)
    monkeypatch.setenv("SMTP_PASSWORD", "wrong")
    with pytest.raises(ChannelError) as err:
        make("email", name="mail", **{**cfg, "to": ["a@example.com"]}, username="alerts",
             password_env="SMTP_PASSWORD").send(alert, "new")
    assert (err.value.status, err.value.retry) == ("535", False)
    monkeypatch.delenv("SMTP_PASSWORD")
    with pytest.raises(ChannelError, match="password_env SMTP_PASSWORD is not set in the environment"):
        make("email", name="mail", **cfg, username="alerts", password_env="SMTP_PASSWORD").send(alert, "new")
    port = closed_port()
    with pytest.raises(ChannelError) as err:
        make("email", name="mail", **{**cfg, "port": port}).send(alert, "new")
    assert str(err.value).startswith(f"channel mail: SMTP 127.0.0.1:{port}: ConnectionRefusedError: ")
    assert (err.value.status, err.value.retry) == (None, True)
    assert smtp.box.mails == []


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/services/…"),
    ("https://user:pw@example.com:8443/hook?token=abc", "https://example.com:8443/hook"),
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
])
def test_safe_url_hides_what_may_be_a_secret(url: str, shown: str) -> None:
    assert safe_url(url) == shown


@pytest.mark.parametrize(("key", "v", "shown"), [
    ("impact_cost", -1234.5, "-$1,234.50"), ("contribution", 0.625, "62%"), ("percent", -0.5, "-50%"),
    ("requests", 12000, "12,000"), ("tokens", 0.5, "0.50"), ("ok", True, "yes"), ("end", None, "–"),
    ("models", ["a", "b"], "a, b"), ("budget amount", 100, "$100.00"),
])
def test_values_read_as_money_ratios_or_numbers(key: str, v: object, shown: str) -> None:
    assert value(key, v) == shown


def test_details_render_generically(alert: Alert) -> None:
    fields, tables = split({"a": {"b": 1, "c": [{"x": 1}] * 12}, "ServiceName": "EC2"})
    assert fields == [("A b", "1"), ("ServiceName", "EC2")]
    assert tables == [("A c", ["X"], [["1"]] * 10, 2)]
    alert.details, alert.owner = {}, None
    assert text(alert, "new").splitlines()[2:5] == ["Owner     unknown", "Impact    $31,512.00", "Severity  high"]
