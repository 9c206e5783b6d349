from __future__ import annotations

from datetime import datetime

import pytest

from aifinops.analysis.windows import WindowError, parse_window

END = datetime(2026, 11, 1)


@pytest.mark.parametrize(("text", "start", "end"), [
    ("30d", datetime(2026, 10, 2), END),
    ("7d", datetime(2026, 10, 25), END),
    ("48h", datetime(2026, 10, 30), END),
    ("2w", datetime(2026, 10, 18), END),
    ("2026-10", datetime(2026, 10, 1), datetime(2026, 11, 1)),
    ("2026-12", datetime(2026, 12, 1), datetime(2027, 1, 1)),
    ("2026-Q3", datetime(2026, 7, 1), datetime(2026, 10, 1)),
    ("2026", datetime(2026, 1, 1), datetime(2027, 1, 1)),
    ("2026-10-01..2026-10-15", datetime(2026, 10, 1), datetime(2026, 10, 16)),
    ("2026-10-01T06:00..2026-10-01T18:00", datetime(2026, 10, 1, 6), datetime(2026, 10, 1, 18)),
])
def test_windows(text: str, start: datetime, end: datetime) -> None:
    w = parse_window(text, END)
    assert (w.start, w.end) == (start, end)


@pytest.mark.parametrize("text", ["30x", "2026-13-01..x", "2026-10-05..2026-10-01", "yesterday"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(WindowError):
        parse_window(text, END)


def test_relative_window_needs_data() -> None:
    with pytest.raises(WindowError, match="no charges"):
        parse_window("30d", None)
