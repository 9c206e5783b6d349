"""`aifinops report`: the review pack of a period beside the previous one, as Markdown and self-contained HTML.

The hand-built ledger (``ledger``), every amount EffectiveCost in USD::

    charge            start (UTC)          team        service   provider       amount   period
    c0                2026-08-31 23:00     b           Storage   AWS              5.00   before 2026-09 (not counted)
    c1                2026-09-30 23:00     a           Compute   AWS             80.00   2026-09 (its last hour)
    c2                2026-09-10           b           Storage   AWS             40.00   2026-09
    c3                2026-10-01 00:00     a           Compute   AWS            100.00   2026-10 (its first instant)
    c4                2026-10-04           a           Storage   Google Cloud    50.25   2026-10
    c5                2026-10-10           b           Storage   AWS             30.00   2026-10
    c6                2026-10-20           (untagged)  Support   AWS              9.99   2026-10
    c7                2026-11-02           a           Compute   AWS            999.00   after 2026-10 (not counted)

    2026-10: 100.00 + 50.25 + 30.00 + 9.99 = 190.24;  2026-09: 80.00 + 40.00 = 120.00
    change +70.24 = +58.5% (70.24 / 120 = 0.58533)
    team a 150.25 vs 80.00: +70.25, +87.8%;  team b 30.00 vs 40.00: -10.00, -25.0%;  (untagged) 9.99 vs 0: n/a
    AWS 139.99 vs 120.00: +19.99, +16.7%;  Google Cloud 50.25 vs 0
    Storage 80.25 vs 40.00: +40.25, +100.6%;  Compute 100.00 vs 80.00: +20.00, +25.0%
    weeks of the period: days 1-7 150.25 vs 0, 8-14 30.00 vs 40.00, 15-21 9.99 vs 0, 29-31 0 vs 80.00 (Sep 30)
    tag coverage of team: 180.25 / 190.24 = 94.7% vs 120 / 120 = 100.0%: -5.3 pp; untagged 9.99
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner
from waste_fixtures import add_charge

from aifinops.analysis import costs as costs_mod
from aifinops.analysis import gpu_allocation
from aifinops.analysis.windows import WindowError, parse_window
from aifinops.config import Settings
from aifinops.interfaces.cli.app import app
from aifinops.interfaces.cli.report import out_path, register
from aifinops.interfaces.review import build_review, render
from aifinops.interfaces.review_period import review_period, value_text
from aifinops.store.connection import Store

if not any(c.name == "report" for c in app.registered_commands):  # until app.py registers it
    register(app)
runner = CliRunner()
H = timedelta(hours=1)
CHARGES = [  # (start, team, service, provider, amount)
    (datetime(2026, 8, 31, 23), "b", "Storage", "AWS", "5.00"),
    (datetime(2026, 9, 30, 23), "a", "Compute", "AWS", "80.00"),
    (datetime(2026, 9, 10), "b", "Storage", "AWS", "40.00"),
    (datetime(2026, 10, 1), "a", "Compute", "AWS", "100.00"),
    (datetime(2026, 10, 4), "a", "Storage", "Google Cloud", "50.25"),
    (datetime(2026, 10, 10), "b", "Storage", "AWS", "30.00"),
    (datetime(2026, 10, 20), None, "Support", "AWS", "9.99"),
    (datetime(2026, 11, 2), "a", "Compute", "AWS", "999.00"),
]


def _ledger(path: Path, extra: list[tuple[datetime, str, str]] = ()) -> Path:
    with Store(path) as store:
        for start, team, service, provider, amount in CHARGES:
            add_charge(store.con, start, start + H, amount, ServiceName=service, ProviderName=provider,
                       Tags={"team": team} if team else {}, ChargeFrequency="Usage-Based")
        for start, amount, currency in extra:
            add_charge(store.con, start, start + H, amount, ServiceName="Compute", BillingCurrency=currency,
                       Tags={"team": "a"})
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return _ledger(tmp_path / "ledger.duckdb")


def cli(db: Path, *args: str, config: Path | None = None) -> str:
    pre = ["--db", str(db)] + (["--config", str(config)] if config else [])
    res = runner.invoke(app, [*pre, "report", *args])
    assert res.exit_code == 0, res.output
    return res.output


def md_table(md: str, heading: str, nth: int = 0) -> list[dict[str, str]]:
    """The ``nth`` pipe table after the heading line ``heading``, as dicts by header."""
    section = md.split(f"\n{heading}\n", 1)[1]
    tables = re.findall(r"((?:^\|.*\|\n)+)", section, re.M)
    lines = tables[nth].strip().splitlines()
    head = [c.strip() for c in lines[0].strip("|").split(" | ")]
    return [dict(zip(head, (c.strip() for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1])), strict=True))
            for ln in lines[2:]]


# -- periods and values ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "label", "previous", "next_", "prev_start", "next_end"), [
    ("2026-10", "2026-10", "2026-09", "2026-11", datetime(2026, 9, 1), datetime(2026, 12, 1)),
    ("2026-01", "2026-01", "2025-12", "2026-02", datetime(2025, 12, 1), datetime(2026, 3, 1)),
    ("2026-Q3", "2026-Q3", "2026-Q2", "2026-Q4", datetime(2026, 4, 1), datetime(2027, 1, 1)),
    ("2026", "2026", "2025", "2027", datetime(2025, 1, 1), datetime(2028, 1, 1)),
    ("2026-10-01..2026-10-14", "2026-10-01..2026-10-14", "2026-09-17..2026-09-30", "2026-10-15..2026-10-28",
     datetime(2026, 9, 17), datetime(2026, 10, 29)),
    ("7d", "2026-10-25..2026-10-31", "2026-10-18..2026-10-24", "2026-11-01..2026-11-07", datetime(2026, 10, 18),
     datetime(2026, 11, 8)),
])
def test_the_previous_and_next_periods(text: str, label: str, previous: str, next_: str, prev_start: datetime,
                                       next_end: datetime) -> None:
    p = review_period(text, datetime(2026, 11, 1))
    assert (p.label, p.previous_label, p.next_label) == (label, previous, next_)
    assert (p.previous.start, p.previous.end, p.next.start, p.next.end) == (prev_start, p.window.start, p.window.end,
                                                                            next_end)


def test_a_review_needs_a_period() -> None:
    with pytest.raises(WindowError, match="one period"):
        review_period("all", None)


@pytest.mark.parametrize(("name", "value", "text"), [
    ("cost", Decimal("1234.5"), "1,234.50"), ("cost", Decimal("0.5"), "0.50"), ("change", Decimal("70.24"), "+70.24"),
    ("change", Decimal("-0.000001"), "0.00"), ("changePct", 0.585333, "+58.5%"), ("changePct", None, "n/a"),
    ("changePoints", -0.0525, "-5.2 pp"), ("share", 0.94749, "94.7%"), ("costPer1kTokens", Decimal("0.0019403"),
                                                                        "0.001940"),
    ("costPerGpuHour", 6.7634, "6.76"), ("outcomes", Decimal("94652.000"), "94,652"), ("grossMargin", 0.646, "64.6%"),
    ("revenue", Decimal("32265"), "32,265.00"), ("requests", 8277225, "8,277,225"),
])
def test_values_read_as_people_write_them(name: str, value: object, text: str) -> None:
    assert value_text(name, value) == text


def test_out_path() -> None:
    assert out_path("2026-10", "html") == Path("report-2026-10.html")
    assert out_path("2026-10-01..2026-10-14", "md") == Path("report-2026-10-01_to_2026-10-14.md")


# -- a ledger only ------------------------------------------------------------------------------------------------


def test_markdown_numbers_are_exact(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    assert f"wrote {out}" in cli(ledger, "--period", "2026-10", "--format", "md", "--out", str(out)).replace("\n", "")
    md = out.read_text()
    assert "- **spend 2026-10**: 190.24 USD (+70.24 (+58.5%) vs 2026-09)" in md
    assert "Spend in 2026-10 was **190.24 USD**, +70.24 (+58.5%) against 120.00 in 2026-09." in md
    assert md_table(md, "### By team (tag:team)") == [
        {"team": "a", "2026-10": "150.25", "2026-09": "80.00", "change": "+70.25", "change %": "+87.8%"},
        {"team": "b", "2026-10": "30.00", "2026-09": "40.00", "change": "-10.00", "change %": "-25.0%"},
        {"team": "(untagged)", "2026-10": "9.99", "2026-09": "0.00", "change": "+9.99", "change %": "n/a"}]
    assert md_table(md, "### By provider") == [
        {"provider": "AWS", "2026-10": "139.99", "2026-09": "120.00", "change": "+19.99", "change %": "+16.7%"},
        {"provider": "Google Cloud", "2026-10": "50.25", "2026-09": "0.00", "change": "+50.25", "change %": "n/a"}]
    services = {r["service"]: (r["2026-10"], r["change %"]) for r in md_table(md, "### Top services")}
    assert services == {"Compute": ("100.00", "+25.0%"), "Storage": ("80.25", "+100.6%"), "Support": ("9.99", "n/a")}
    weeks = [(r["days of the period"], r["2026-10"], r["2026-09"]) for r in md_table(md, "### By week of the period")]
    assert weeks == [("1-7", "150.25", "0.00"), ("8-14", "30.00", "40.00"), ("15-21", "9.99", "0.00"),
                     ("22-28", "0.00", "0.00"), ("29-31", "0.00", "80.00")]
    team = md_table(md, "### Tag coverage")[0]
    assert (team["tag key"], team["coverage 2026-10"], team["coverage 2026-09"], team["change"],
            team["untagged 2026-10"]) == ("team", "94.7%", "100.0%", "-5.3 pp", "9.99")
    # the parts without data say so in one line
    assert "_no LLM requests in 2026-10 or 2026-09 (aifinops ingest otel / litellm / llm-usage)_" in md
    assert md.count("_no GPU cost in these periods") == 2  # unit costs, and idle
    assert "_no budgets configured" in md
    assert "the waste rules run over" in md  # nothing recorded: the rules ran over the period, read-only
    assert "Forecast of 2026-11" in md and "_no forecast" not in md


def test_html_is_self_contained_and_holds_the_chart_data(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    cli(ledger, "--period", "2026-10", "--out", str(out))
    html = out.read_text()
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|src=|https?://", html, re.I)
    assert html.count('<svg class="chart"') >= 5  # trend, team, layer, services, forecast
    # the team chart: this period's bar and the previous period's beside it, with their values
    assert '<rect class="bar" ' in html and 'data-label="a" data-value="150.25"' in html
    assert 'data-label="a" data-period="2026-09" data-value="80.00"' in html
    assert 'data-label="2026-10 1" data-value="100.00"' in html  # the daily trend: day 1 of October
    assert 'data-label="2026-09 30" data-value="80.00"' in html  # ... beside day 30 of September
    assert "<b>190.24 USD</b>" in html


def test_several_currencies_are_never_added(tmp_path: Path) -> None:
    db = _ledger(tmp_path / "eur.duckdb", [(datetime(2026, 10, 5), "70.00", "EUR")])
    with Store(db, read_only=True) as store:
        review = build_review(store.con, "2026-10", Settings())
    sp = review["spend"]
    assert sp["currency"] is None and sp["currencies"] == ["EUR", "USD"]
    assert {(r["BillingCurrency"], r["cost"]) for r in sp["totals"]["rows"]} == {("EUR", Decimal("70.00")),
                                                                                 ("USD", Decimal("190.24"))}
    assert {(r["team"], r["BillingCurrency"], r["cost"]) for r in sp["byTeam"]["rows"]} >= {
        ("a", "EUR", Decimal("70.00")), ("a", "USD", Decimal("150.25"))}
    md = render(review, "md")
    assert "several billing currencies (EUR, USD)" in md and "190.24" in md


def test_text_from_the_data_is_escaped(tmp_path: Path) -> None:
    """Tag values are data: HTML gets them escaped, Markdown gets its marks escaped (no bold, no broken cell)."""
    db = tmp_path / "x.duckdb"
    with Store(db) as store:
        for day, team in ((datetime(2026, 9, 3), "<script>alert(1)</script>"), (datetime(2026, 10, 3), "a|b __x__")):
            add_charge(store.con, day, day + H, "1.00", ServiceName="S", Tags={"team": team})
    with Store(db, read_only=True) as store:
        review = build_review(store.con, "2026-10", Settings())
    html, md = render(review, "html"), render(review, "md")
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert r"| a\|b \_\_x\_\_ | 1.00 | 0.00 |" in md and "<script" not in md


def test_default_period_and_out_file(ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    output = cli(ledger, "--format", "md")  # the ledger ends 2026-11-02 01:00: its month is 2026-11
    assert "report-2026-11.md" in output and (tmp_path / "report-2026-11.md").exists()
    res = runner.invoke(app, ["--db", str(ledger), "report", "--period", "2026-13"])
    assert res.exit_code == 1 and "error" in res.output
    res = runner.invoke(app, ["--db", str(ledger), "report", "--format", "pdf"])
    assert res.exit_code == 1 and "unknown format 'pdf'" in res.output


# -- the demo store: every part present ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aifinops.demo.run import run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out, days=30)
    return out


def test_demo_report_has_every_part(demo: Path, tmp_path: Path) -> None:
    db, config = demo / "aifinops.duckdb", demo / "aifinops.yaml"
    cli(db, "--period", "2026-10", "--format", "md", "--out", str(tmp_path / "r.md"), config=config)
    md = (tmp_path / "r.md").read_text()
    empty = [line for line in md.splitlines() if line.startswith("_no ")]
    assert empty == [], empty
    w = parse_window("2026-10", None)
    with Store(db, read_only=True) as store:
        t = store.ibis().table("focus_charges")
        total = costs_mod.cost_by(t, [], w).to_pyarrow().to_pylist()[0]["cost"]
        saving = store.con.execute("SELECT sum(achievable_saving) FROM findings WHERE active AND status <> "
                                   "'dismissed'").fetchall()[0][0]
        fleet = gpu_allocation.aggregate(store.con, w, [], settings=Settings(), share_idle="none")[0]
    assert f"**{total:,.2f} USD**" in md  # the same money as `aifinops costs --window 2026-10`
    assert f"save **{saving:,.2f} a month**" in md  # the recorded findings, reconciled
    idle = fleet["gpuCostUnallocated"] + fleet["gpuCostAllocatedIdle"]
    assert f"Idle GPUs cost **{idle:,.2f}**" in md  # by team adds up to the fleet's idle
    assert len(md_table(md, "### Budget status at the end of 2026-10")) == 5
    models = md_table(md, "### Inference")
    assert models and all(r["per 1K tokens 2026-10"] for r in models[:5])
    assert md_table(md, "### Cost per outcome")
    assert md_table(md, "### Forecast of 2026-11")[-1]["layer"] == "(total)"
    assert len(md_table(md, "## 6. Top recommendations")) == 10


def test_demo_html_opens_offline_with_charts(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    cli(demo / "aifinops.duckdb", "--period", "2026-10", "--out", str(out), config=demo / "aifinops.yaml")
    html = out.read_text()
    assert not re.search(r"<script|<link|https?://", html, re.I)
    for chart in ("daily spend", "spend by team", "cost per 1K tokens by model", "idle GPU cost by kind",
                  "budgets: spent vs amount", "usage-based spend per day"):
        assert f'aria-label="{chart}' in html, chart
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("no Chromium to open the page with")
    from playwright.sync_api import sync_playwright

    asked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.route("**/*", lambda route: (asked.append(route.request.url), route.abort()
                                          if not route.request.url.startswith("file:") else route.continue_()))
        page.goto(out.as_uri())
        sizes = page.evaluate("[...document.querySelectorAll('svg.chart')].map(s => [s.getBoundingClientRect().height, "
                              "s.querySelectorAll('rect.bar, circle, polygon').length])")
        browser.close()
    assert [u for u in asked if not u.startswith("file:")] == []
    assert len(sizes) >= 8 and all(h > 50 and marks > 0 for h, marks in sizes), sizes
