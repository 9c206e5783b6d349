"""How a value looks to a person, in the CLI's tables and in the HTML summary alike: money with cents,
ratios as percentages, big numbers without exponents, dates without a midnight."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

MONEY_HINTS = ("cost", "billed", "effective", "spend", "amount", "saving", "waste")
RATIO_HINTS = ("share", "efficiency", "activity", "below", "percent")  # ratios in [0, 1], shown as percentages


def cell(name: str, v: Any) -> str:
    """``v`` of column ``name`` as text; the column name says whether a number is money or a ratio."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    low = name.lower()
    money = any(h in low for h in MONEY_HINTS)  # inefficiencyCost is money, gpuEfficiency a ratio
    if isinstance(v, Decimal | float) and not money and \
            (low == "coverage" or any(h in low for h in RATIO_HINTS)):
        return f"{float(v):.1%}"
    if money and isinstance(v, Decimal | float) and v and abs(v) < 1:
        return f"{v:.4g}"  # a unit cost (per request, per 1K tokens) is small: cents would show 0.00
    if isinstance(v, Decimal):
        return f"{v:,.{2 if money else 4}f}"
    if isinstance(v, float):
        if money:
            return f"{v:,.2f}"
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M") if (v.hour or v.minute) else v.strftime("%Y-%m-%d")
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
