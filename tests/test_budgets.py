"""Budget arithmetic by hand: spend, percent, threshold crossings, forecast at period end, exhaustion, alerts.

The base ledger is $100 a day of usage from Thursday 2026-10-01, tagged team=search. Against a $2,000 monthly
budget with thresholds 50/80/100%: the cumulative spend is 100 x day, so 50% ($1,000) is crossed on day 10,
80% ($1,600) on day 16 and 100% (exhaustion) on day 20. At the end of day 12 spend is $1,200 and a flat $100 a day
for the 19 days left makes the forecast 1,200 + 1,900 = $3,100, reaching $2,000 on day 20.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from waste_fixtures import add_charge

from aifinops.config import BudgetSettings, ConfigError, Settings, load_settings
from aifinops.governance.alerts import upsert
from aifinops.governance.budgets import BudgetStatus, alerts_for, period_of, status
from aifinops.store.connection import Store

OCT = datetime(2026, 10, 1)
TICK = timedelta(microseconds=1)


def _days(store: Store, start: datetime, n: int, cost: str | float, **cols: Any) -> None:
    for d in range(n):
        t = start + timedelta(days=d)
        add_charge(store.con, t, t + timedelta(days=1), str(cost), ChargeFrequency="Usage-Based", **cols)


def _search(store: Store, n: int = 20) -> None:
    _days(store, OCT, n, 100, ServiceName="Amazon EC2", Tags={"team": "search"})


def _end_of(day: int, month: int = 10) -> datetime:
    return datetime(2026, month, day) + timedelta(days=1) - TICK


def _one(store: Store, at: datetime | None = None, **budget: Any) -> BudgetStatus:
    b = BudgetSettings(**{"name": "search", "amount": 2000, "scope": {"tag:team": "search"}, **budget})
    [s] = status(store.con, Settings(budgets=[b]), at)
    return s


def _states(s: BudgetStatus) -> list[tuple[str, float, str, date | None]]:
    return [(t.basis, t.pct, t.state, t.on) for t in s.thresholds]


def test_spend_percent_crossings_and_exhaustion_by_hand(store: Store) -> None:
    _search(store)
    _days(store, OCT, 20, 999, ServiceName="Amazon EC2", Tags={"team": "ads"})  # out of scope
    s = _one(store)  # default: the end of the ledger (2026-10-21 00:00) less a tick
    assert s.at == _end_of(20) and s.label == "2026-10"
    assert (s.period.start, s.period.end) == (OCT, datetime(2026, 11, 1))
    assert s.spent == Decimal(2000) and s.percent == 100.0
    assert _states(s) == [("actual", 50.0, "crossed", date(2026, 10, 10)),
                          ("actual", 80.0, "crossed", date(2026, 10, 16)),
                          ("actual", 100.0, "crossed", date(2026, 10, 20)),
                          ("forecast", 100.0, "crossed", date(2026, 10, 20))]
    assert [t.amount for t in s.thresholds] == [Decimal(1000), Decimal(1600), Decimal(2000), Decimal(2000)]
    assert s.exhaustion == date(2026, 10, 20)
    assert s.over and not _one(store, _end_of(2), forecast_thresholds=[200]).over  # $200 spent, $3,100 forecast


def test_mid_month_the_forecast_reaches_the_amount_on_day_20(store: Store) -> None:
    _search(store)
    s = _one(store, _end_of(12), forecast_thresholds=[100, 150, 160])
    assert s.spent == Decimal(1200)
    # flat history: the seasonal naive forecast, $100 a day exactly, no spread
    assert s.model == "seasonal naive" and s.history_days == 12
    assert s.forecast == {"mean": 3100.0, "lo80": 3100.0, "hi80": 3100.0, "lo95": 3100.0, "hi95": 3100.0}
    assert s.exhaustion == date(2026, 10, 20)
    assert _states(s) == [("actual", 50.0, "crossed", date(2026, 10, 10)), ("actual", 80.0, "ok", None),
                          ("actual", 100.0, "ok", None), ("forecast", 100.0, "forecast to cross", date(2026, 10, 20)),
                          ("forecast", 150.0, "forecast to cross", date(2026, 10, 30)),  # 1,200 + 18 x 100
                          ("forecast", 160.0, "ok", None)]  # 3,200 > 3,100


def test_a_past_at_reads_no_later_data(store: Store) -> None:
    """The status at the end of day 12 is the same whether the ledger ends on day 12 or day 20."""
    _search(store, 12)
    early = _one(store)
    _search(store, 20)  # 20 more days on top: days 1-12 now cost 200 but at=day 12 ignores days 13-20
    late = _one(store, _end_of(12))
    assert early.at == late.at == _end_of(12)
    assert (early.spent, late.spent) == (Decimal(1200), Decimal(2400))
    assert early.forecast["mean"] == 3100.0 and late.forecast["mean"] == 2400.0 + 19 * 200


@pytest.mark.parametrize(("period", "label", "start", "end", "spent"), [
    ("month", "2026-11", datetime(2026, 11, 1), datetime(2026, 12, 1), 1000),  # Nov 1-10
    ("quarter", "2026-Q4", OCT, datetime(2027, 1, 1), 4100),  # Oct 1 - Nov 10: 41 days
    ("year", "2026", datetime(2026, 1, 1), datetime(2027, 1, 1), 7100),  # Sep 1 - Nov 10: 71 days
    ("2026-09-15..2026-10-14", "2026-09-15..2026-10-14", datetime(2026, 9, 15), datetime(2026, 10, 15), 3000),
])
def test_period_boundaries(store: Store, period: str, label: str, start: datetime, end: datetime,
                           spent: int) -> None:
    """$100 a day from Sep 1 to Nov 10; the status at the end of Nov 10."""
    _days(store, datetime(2026, 9, 1), 71, 100, ServiceName="Amazon EC2", Tags={"team": "search"})
    s = _one(store, period=period, amount=100000)
    assert (s.label, s.period.start, s.period.end, s.spent) == (label, start, end, Decimal(spent))
    remaining = (end - datetime(2026, 11, 11)).days
    assert s.forecast["mean"] == spent + 100 * max(remaining, 0)


def test_data_ending_at_midnight_of_the_first_is_the_month_before(store: Store) -> None:
    """31 days of October: the ledger ends 2026-11-01 00:00, so the default status is October's, and it is over:
    the forecast is what was spent, with no interval."""
    _search(store, 31)
    s = _one(store, amount=5000)
    assert s.label == "2026-10" and s.spent == Decimal(3100) and s.model == "none"
    assert s.forecast == dict.fromkeys(("mean", "lo80", "hi80", "lo95", "hi95"), 3100.0)
    assert s.exhaustion is None


def test_a_period_that_is_over(store: Store) -> None:
    _days(store, datetime(2026, 9, 1), 50, 100, Tags={"team": "search"})  # Sep 1 - Oct 20
    s = _one(store, period="2026-09-01..2026-09-30", amount=2500, forecast_thresholds=[100, 125])
    assert (s.period.end, s.spent, s.model) == (OCT, Decimal(3000), "none")
    assert s.forecast == dict.fromkeys(("mean", "lo80", "hi80", "lo95", "hi95"), 3000.0)
    # 2,500 reached on Sep 25; 125% = 3,125 never: the forecast is the 3,000 spent
    assert s.exhaustion == date(2026, 9, 25)
    assert _states(s)[-2:] == [("forecast", 100.0, "crossed", date(2026, 9, 25)), ("forecast", 125.0, "ok", None)]


@pytest.mark.parametrize(("scope", "per_day"), [
    ({"tag:team": "search"}, 110),  # EC2 + S3
    ({"ServiceName": ["Amazon EC2", "Amazon Bedrock"]}, 150),  # search's EC2 + ads' Bedrock
    ({"servicename": ["Amazon EC2", "Amazon Bedrock"], "tag:team": "search"}, 100),  # AND: search's EC2 only
    ({"tag:team": "(untagged)"}, 1),  # Lambda carries no team tag
    ({}, 161),  # everything
])
def test_scope_by_tag_and_by_service_list(store: Store, scope: dict[str, Any], per_day: int) -> None:
    _days(store, OCT, 10, 100, ServiceName="Amazon EC2", Tags={"team": "search"})
    _days(store, OCT, 10, 10, ServiceName="Amazon S3", Tags={"team": "search"})
    _days(store, OCT, 10, 50, ServiceName="Amazon Bedrock", Tags={"team": "ads"})
    _days(store, OCT, 10, 1, ServiceName="AWS Lambda")
    s = _one(store, scope=scope, amount=100000)
    assert s.spent == Decimal(10 * per_day)
    assert s.forecast["mean"] == pytest.approx(31 * per_day, abs=1e-9)  # flat: 10 days spent + 21 forecast


def test_a_credit_lowers_spend_and_moves_the_crossing(store: Store) -> None:
    """A -$150.50 one-time credit on day 5: day 10 is at 849.50, day 11 at 949.50, day 12 at 1,049.50 >= 1,000."""
    _search(store)
    add_charge(store.con, datetime(2026, 10, 5), datetime(2026, 10, 6), "-150.50", ChargeCategory="Credit",
               ChargeFrequency="One-Time", Tags={"team": "search"})
    s = _one(store)
    assert s.spent == Decimal("1849.50")
    assert _states(s)[:3] == [("actual", 50.0, "crossed", date(2026, 10, 12)), ("actual", 80.0, "crossed",
                                                                                   date(2026, 10, 18)),
                              ("actual", 100.0, "ok", None)]


def test_a_crossing_undone_by_a_credit_counts_from_when_spend_is_back_above(store: Store) -> None:
    """Day 10 reaches $1,000; a -$300 credit on day 11 takes it to $800; days 12 and 13 bring it to $1,000."""
    _search(store)
    add_charge(store.con, datetime(2026, 10, 11), datetime(2026, 10, 12), "-300", ChargeCategory="Credit",
               ChargeFrequency="One-Time", Tags={"team": "search"})
    assert _states(_one(store, _end_of(12)))[0] == ("actual", 50.0, "ok", None)  # 900
    assert _states(_one(store, _end_of(13)))[0] == ("actual", 50.0, "crossed", date(2026, 10, 13))


def test_a_monthly_fee_counts_in_spend_but_is_not_forecast(store: Store) -> None:
    """A $500 recurring fee for October (its charge period is the month) plus $100 a day for 20 days. The ledger
    ends 2026-11-01 (the fee), so the status is October's; usage is known to Oct 21. Spend 2,500; forecast
    2,500 + 11 days x 100 = 3,600 (the fee is not forecast again); 500 + 100 x day reaches 2,000 on day 15."""
    _search(store)
    add_charge(store.con, OCT, datetime(2026, 11, 1), "500", ChargeFrequency="Recurring", ChargeCategory="Usage",
               Tags={"team": "search"})
    s = _one(store)
    assert s.at == _end_of(31) and s.spent == Decimal(2500)
    assert s.forecast["mean"] == 3600.0 and s.exhaustion == date(2026, 10, 15)


def test_a_partly_observed_day_forecasts_only_its_rest(store: Store) -> None:
    """$5 an hour from Oct 1 to Oct 10 12:00: spent 9 x 120 + 12 x 5 = 1,140; the forecast adds half of Oct 10
    and 21 whole days at the $120 a day of the 9 complete days: 31 x 120 = 3,720 in all."""
    for h in range(9 * 24 + 12):
        t = OCT + timedelta(hours=h)
        add_charge(store.con, t, t + timedelta(hours=1), "5", Tags={"team": "search"})
    s = _one(store, amount=10000)
    assert s.at == datetime(2026, 10, 10, 12) - TICK and s.spent == Decimal(1140) and s.history_days == 9
    assert s.forecast["mean"] == pytest.approx(3720.0, abs=1e-9)


def test_the_forecast_of_a_noisy_flat_series_is_spent_plus_100_a_day(store: Store) -> None:
    """$97 and $103 on alternate days for 90 days from Aug 1 (mean $100); a quarterly $10,000 budget at the end of
    Oct 10: spent = 10 days x 100 = 1,000 (Oct 1 is day 61: 103, 97, ...); 82 days left -> about 9,200."""
    _days(store, datetime(2026, 8, 1), 90, 0, Tags={"team": "search"})  # rows replaced below by their costs
    store.con.execute("UPDATE focus_charges SET \"EffectiveCost\" = CASE WHEN datediff('day', DATE '2026-08-01', "
                      "\"ChargePeriodStart\") % 2 = 1 THEN 103 ELSE 97 END")
    s = _one(store, _end_of(10), period="quarter", amount=10000)
    assert s.spent == Decimal(1000) and s.model == "mstl" and s.history_days == 71
    fc = s.forecast
    assert fc["mean"] == pytest.approx(1000 + 82 * 100, rel=0.005)
    assert fc["lo95"] < fc["lo80"] < fc["mean"] < fc["hi80"] < fc["hi95"]
    assert fc["lo95"] <= 9200 <= fc["hi95"]


def test_period_of_custom_and_calendar_periods() -> None:
    b = BudgetSettings(name="x", amount=1, period="quarter")
    assert period_of(b, datetime(2026, 12, 31, 23, 59))[0].start == OCT
    b = BudgetSettings(name="x", amount=1, period="2026-10-01T12:00..2026-10-02T12:00")
    w, label = period_of(b, datetime(2030, 1, 1))
    assert (w.start, w.end, label) == (datetime(2026, 10, 1, 12), datetime(2026, 10, 2, 12), b.period)


# -- alerts ---------------------------------------------------------------------------------------------------


def _settings(**alerts: Any) -> Settings:
    return Settings(
        alerts={"channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}}, "owners":
                {"search": "@search-oncall"}, **alerts},
        budgets=[BudgetSettings(name="search", amount=2000, scope={"tag:team": "search"}, owner="search",
                                channels=["hook"], actual_thresholds=[12.5, 50, 80, 100])])


def test_alerts_for_crossed_thresholds(store: Store) -> None:
    """End of day 16: spent 1,600. Crossed: 12.5% ($250, day 3), 50% (day 10), 80% (day 16); forecast
    1,600 + 15 x 100 = 3,100 reaches 100%."""
    _search(store)
    settings = _settings()
    found = alerts_for(status(store.con, settings, _end_of(16)), settings)
    assert [(a.key, a.severity, a.impact_cost) for a in found] == [
        ("budget:search:2026-10-01:actual:12.5", "low", 1350.0),
        ("budget:search:2026-10-01:actual:50", "low", 600.0),
        ("budget:search:2026-10-01:actual:80", "medium", 0.0),
        ("budget:search:2026-10-01:forecast:100", "high", 1100.0)]
    a = found[1]
    assert a.subject == "Budget search: spent $1,600 (80% of $2,000) crossed 50% on 2026-10-10 (2026-10)"
    assert found[3].subject == ("Budget search: forecast $3,100 (95%: $3,100-$3,100) exceeds 100% of $2,000 "
                                "(2026-10)")
    assert (a.kind, a.owner, a.channels, a.link) == ("budget", "@search-oncall", ["hook"],
                                                     "aifinops budgets status --at 2026-10-16")
    assert a.details["budget"] == {
        "name": "search", "period": "2026-10", "period_start": "2026-10-01T00:00:00",
        "period_end": "2026-11-01T00:00:00", "scope": "tag:team=search", "amount": 2000.0, "spent": 1600.0,
        "spent_share": 0.8, "as_of": "2026-10-16T23:59:59", "exhaustion_date": "2026-10-20"}
    assert a.details["threshold"] == {"basis": "actual", "level": "50%", "amount": 1000.0, "state": "crossed",
                                      "date": "2026-10-10"}
    assert a.details["forecast"]["spend"] == 3100.0


def test_the_same_crossing_keeps_its_key_and_alerts_once(store: Store) -> None:
    _search(store)
    settings = _settings(link_base="https://finops.example.com/")
    first = alerts_for(status(store.con, settings, _end_of(16)), settings)
    again = alerts_for(status(store.con, settings, _end_of(16)), settings)
    assert [a.key for a in again] == [a.key for a in first] and [a.subject for a in again] == [a.subject for a in first]
    later = alerts_for(status(store.con, settings, _end_of(18)), settings)
    assert [a.key for a in later] == [a.key for a in first]  # same crossings, grown impacts
    assert [a.impact_cost for a in later] == [1550.0, 800.0, 200.0, 1100.0]
    assert first[0].link == "https://finops.example.com/budgets/search"
    upsert(store.con, first, datetime(2026, 10, 17))
    upsert(store.con, later, datetime(2026, 10, 19))
    rows = store.con.execute("SELECT alert_key, impact_cost FROM alerts ORDER BY alert_key").fetchall()
    assert rows == [(a.key, a.impact_cost) for a in sorted(later, key=lambda a: a.key)]
    # November is another period: new keys
    _days(store, datetime(2026, 11, 1), 12, 100, Tags={"team": "search"})
    nov = alerts_for(status(store.con, settings, datetime(2026, 11, 12, 23)), settings)
    assert {a.key.split(":")[2] for a in nov} == {"2026-11-01"}


def test_no_alert_below_every_threshold(store: Store) -> None:
    _search(store, 2)  # $200 by day 2; forecast 200 + 29 x 100 = 3,100 -> only the forecast alert
    settings = _settings()
    s = status(store.con, settings)
    assert [a.key for a in alerts_for(s, settings)] == ["budget:search:2026-10-01:forecast:100"]
    settings.budgets[0].forecast_thresholds = [200]
    assert alerts_for(status(store.con, settings), settings) == []


# -- configuration ----------------------------------------------------------------------------------------------


def _load(tmp_path: Path, text: str) -> Settings:
    f = tmp_path / "aifinops.yaml"
    f.write_text(text)
    return load_settings(f, environ={})


def test_an_unknown_dimension_names_the_budget_and_the_line(tmp_path: Path) -> None:
    text = "budgets:\n  - name: search\n    amount: 100\n    scope:\n      tag:team: search\n      colour: red\n"
    with pytest.raises(ConfigError, match=r"line 6: budgets\.0\.scope\.colour: budget 'search': unknown dimension "
                                          r"'colour' in scope: use a FOCUS column"):
        _load(tmp_path, text)
    with pytest.raises(ConfigError, match=r"budget 'gpu': unknown dimension 'ServiceNme' in scope \(did you mean "
                                          r"ServiceName\?\)"):
        _load(tmp_path, "budgets:\n  - name: gpu\n    amount: 1\n    scope: {ServiceNme: x}\n")
    with pytest.raises(ConfigError, match=r"line 4: budgets\.0\.scope\.tag:team: budget 'a': scope tag:team lists no"):
        _load(tmp_path, "budgets:\n  - name: a\n    scope:\n      tag:team: []\n    amount: 1\n")


@pytest.mark.parametrize(("text", "message"), [
    ("budgets:\n  - name: a\n    amount: -5\n", r"line 3: budgets\.0\.amount: Input should be greater than 0"),
    ("budgets:\n  - name: a\n    amount: 5\n    period: 2026-10-09..2026-10-01\n",
     r"line 4: budgets\.0\.period: .*ends before it starts"),
    ("budgets:\n  - name: a\n    amount: 5\n    period: weekly\n", r"line 4: .*period must be month"),
    ("budgets:\n  - name: a\n    amount: [5\n", r"line 4: not valid YAML"),
    ("budgets:\n  - name: a\n    amount: 5\n    actual_thresholds: [50, 0]\n", r"line 4: .*must be positive"),
])
def test_bad_budget_settings_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


def test_scope_values_that_yaml_reads_as_numbers_are_text(tmp_path: Path) -> None:
    s = _load(tmp_path, "budgets:\n  - name: a\n    amount: 5\n    scope:\n      BillingAccountId: 123456789012\n"
                        "      layer: [GPU compute, 7]\n")
    assert s.budgets[0].scope == {"BillingAccountId": "123456789012", "layer": ["GPU compute", "7"]}


def test_usage_billed_by_the_month_does_not_end_the_forecast(store: Store) -> None:
    """A usage charge covering all of October ($300, starting Oct 1) beside $100 a day for 20 days: usage is
    known to Oct 21 (a charge counts for at most its first day), not to Nov 1, so the 11 days left are forecast."""
    _search(store)
    add_charge(store.con, OCT, datetime(2026, 11, 1), "300", ChargeFrequency="Usage-Based", Tags={"team": "search"})
    s = _one(store, _end_of(20), amount=5000)
    assert s.spent == Decimal(2300) and s.model != "none" and s.history_days == 20
    assert s.forecast["mean"] == pytest.approx(2300 + 11 * 100, rel=0.05)
