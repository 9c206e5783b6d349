"""Time windows as practitioners write them: ``7d``, ``30d``, ``2026-10``, ``2026-Q3``, ``START..END``.

Relative windows end at the end of the data (the latest ChargePeriodEnd), not at "now": bills arrive
late, and a window that ends today would report a quiet last day that is only missing data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta


class WindowError(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}..{self.end:%Y-%m-%d %H:%M} UTC"

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


def _parse_point(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        raise WindowError(f"not a date or date-time: {text!r}") from None


def within(window: Window, first: datetime | None, last: datetime | None) -> Window:
    """``window`` cut to data that starts at ``first`` (from its hour) and ends at ``last`` (exclusive); a bound
    that is None does not cut. Never ends before it starts."""
    start = max(window.start, first.replace(minute=0, second=0, microsecond=0)) if first else window.start
    end = min(window.end, last) if last else window.end
    return Window(start, max(start, end))


def parse_until(text: str) -> datetime:
    """An end as people write it: a date means through that day (its next midnight), a date-time is exclusive."""
    text = text.strip()
    return _parse_point(text) + (timedelta(days=1) if len(text) == 10 else timedelta(0))


def _month_start(d: date) -> datetime:
    return datetime(d.year, d.month, 1)


def _add_months(d: datetime, n: int) -> datetime:
    y, m = divmod(d.month - 1 + n, 12)
    return datetime(d.year + y, m + 1, 1)


def parse_window(text: str, data_end: datetime | None) -> Window:
    """Parse ``text``; ``data_end`` (exclusive) anchors relative windows such as ``30d``."""
    text = text.strip()
    if m := re.fullmatch(r"(\d+)([hdw])", text):
        if data_end is None:
            raise WindowError("the store holds no charges yet, so a relative window has nothing to end at")
        n, unit = int(m.group(1)), m.group(2)
        span = {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]
        return Window(data_end - span, data_end)
    if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
        if not 1 <= int(m.group(2)) <= 12:
            raise WindowError(f"window {text!r}: there is no month {m.group(2)}")
        start = datetime(int(m.group(1)), int(m.group(2)), 1)
        return Window(start, _add_months(start, 1))
    if m := re.fullmatch(r"(\d{4})-?Q([1-4])", text, re.I):
        start = datetime(int(m.group(1)), 3 * int(m.group(2)) - 2, 1)
        return Window(start, _add_months(start, 3))
    if m := re.fullmatch(r"(\d{4})", text):
        return Window(datetime(int(text), 1, 1), datetime(int(text) + 1, 1, 1))
    if ".." in text:
        a, b = text.split("..", 1)
        start, end = _parse_point(a), _parse_point(b)
        if len(b) == 10:  # a date end is inclusive of that day, as people mean it
            end += timedelta(days=1)
        if start >= end:
            raise WindowError(f"window {text!r} ends before it starts")
        return Window(start, end)
    if text in ("all", "*"):
        return Window(datetime(1970, 1, 1), datetime(9999, 1, 1))
    raise WindowError(f"unknown window {text!r}: use 7d, 30d, 12w, 48h, 2026-10, 2026-Q3, 2026, START..END or all")
