"""Inline SVG charts for self-contained HTML: no script and no network, so a report opens from disk, prints, and
survives mail clients that strip JavaScript. Every mark carries its label and value (``data-label``,
``data-value`` and a ``<title>`` tooltip), so the chart's numbers stay in the file and can be checked."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH = 760
CURRENT, PREVIOUS, ACCENT = "#4a6fd8", "#b9c5ec", "#d8664a"
Number = float | Decimal | int


def _money(v: Number) -> str:
    return f"{float(v):,.2f}"


def _tick(v: float) -> str:
    """An axis label: 1.2k, 35k, 1.4M (axis ticks are a scale, not amounts)."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:,.1f}M"
    if a >= 1e3:
        return f"{v / 1e3:,.0f}k" if a >= 1e4 else f"{v / 1e3:,.1f}k"
    return f"{v:,.0f}" if a >= 10 else f"{v:,.2f}"


def _nice(top: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above ``top``: an axis maximum with round ticks."""
    if top <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(top))
    return next(m * scale for m in (1, 2, 2.5, 5, 10) if top <= m * scale * (1 + 1e-12))


def _svg(height: int, title: str, body: list[str]) -> Markup:
    return Markup(f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
                  f'width="100%" aria-label="{escape(title)}"><title>{escape(title)}</title>{"".join(body)}</svg>')


def bar_chart(rows: Sequence[tuple[str, Number, Number | None]], title: str, current: str,
              previous: str | None = None, fmt: Callable[[Number], str] = _money) -> Markup:
    """Horizontal bars, one per (label, value, previous value): this period solid, the previous period as a thin
    light bar under it. Negative values (credits) extend left of the zero line. ``fmt`` writes a value (money with
    cents by default; unit costs need more digits)."""
    values = [float(v) for _, v, p in rows] + [float(p) for _, _, p in rows if p is not None]
    lo, hi = min([0.0, *values]), max([0.0, *values])
    label_w, value_w, row_h = 190, 110, 30 if previous else 22
    span = (hi - lo) or 1.0
    plot = WIDTH - label_w - value_w
    zero = label_w + plot * (-lo / span)

    def x(v: float) -> float:
        return label_w + plot * ((v - lo) / span)

    legend_h = 22 if previous else 0
    body = []
    if previous:
        body.append(f'<rect x="{label_w}" y="4" width="12" height="10" fill="{CURRENT}"/>'
                    f'<text x="{label_w + 16}" y="13" class="legend">{escape(current)}</text>'
                    f'<rect x="{label_w + 110}" y="4" width="12" height="10" fill="{PREVIOUS}"/>'
                    f'<text x="{label_w + 126}" y="13" class="legend">{escape(previous)}</text>')
    for i, (label, value, prev) in enumerate(rows):
        y = legend_h + i * row_h + 4
        v = float(value)
        body.append(f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end">{escape(label[:30])}</text>')
        body.append(f'<rect class="bar" x="{min(x(v), zero):.1f}" y="{y}" width="{abs(x(v) - zero):.1f}" height="14" '
                    f'fill="{CURRENT if v >= 0 else ACCENT}" data-label="{escape(label)}" data-value="{fmt(v)}">'
                    f'<title>{escape(label)} ({escape(current)}): {fmt(v)}</title></rect>')
        body.append(f'<text x="{label_w + plot + 6}" y="{y + 12}">{fmt(v)}</text>')
        if previous and prev is not None:
            p = float(prev)
            body.append(f'<rect class="bar previous" x="{min(x(p), zero):.1f}" y="{y + 16}" '
                        f'width="{abs(x(p) - zero):.1f}" height="6" fill="{PREVIOUS}" data-label="{escape(label)}" '
                        f'data-period="{escape(previous)}" data-value="{fmt(p)}"><title>{escape(label)} '
                        f'({escape(previous)}): {fmt(p)}</title></rect>')
    height = legend_h + len(rows) * row_h + 8
    body.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{legend_h}" y2="{height - 4}" class="axis"/>')
    return _svg(height, title, body)


@dataclass
class Line:
    """One series of a line chart; ``None`` is a gap (a day the series does not cover)."""

    name: str
    values: Sequence[Number | None]
    color: str = CURRENT
    dashed: bool = False


@dataclass
class Band:
    """A shaded interval (a forecast's 80% or 95% bounds) over the x positions where both bounds are known."""

    name: str
    lo: Sequence[Number | None]
    hi: Sequence[Number | None]
    opacity: float = 0.2
    color: str = CURRENT


@dataclass
class LineChart:
    title: str
    x: Sequence[str]
    lines: list[Line] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)


def line_chart(chart: LineChart) -> Markup:
    """Lines over categorical x positions (days), with shaded bands below them and a y axis from 0 (or the
    lowest value when it is negative)."""
    height, left, right, top, bottom = 260, 64, 16, 28, 34
    values = [float(v) for ln in chart.lines for v in ln.values if v is not None]
    values += [float(v) for b in chart.bands for v in (*b.lo, *b.hi) if v is not None]
    lo = min([0.0, *values])
    hi = _nice(max([0.0, *values]))
    n = max(len(chart.x), 1)
    plot_w, plot_h = WIDTH - left - right, height - top - bottom

    def px(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / ((hi - lo) or 1.0))

    body = []
    for k in range(5):  # gridlines and y ticks
        v = lo + (hi - lo) * k / 4
        body.append(f'<line x1="{left}" x2="{WIDTH - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" class="grid"/>'
                    f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end" class="tick">{_tick(v)}</text>')
    step = max(1, -(-n // 8))
    for i in range(0, n, step):
        body.append(f'<text x="{px(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" class="tick">'
                    f'{escape(chart.x[i])}</text>')
    for b in chart.bands:
        pts = [(i, float(a), float(z)) for i, (a, z) in enumerate(zip(b.lo, b.hi, strict=True))
               if a is not None and z is not None]
        if pts:
            upper = " ".join(f"{px(i):.1f},{py(z):.1f}" for i, _, z in pts)
            lower = " ".join(f"{px(i):.1f},{py(a):.1f}" for i, a, _ in reversed(pts))
            body.append(f'<polygon class="band" points="{upper} {lower}" fill="{b.color}" fill-opacity="{b.opacity}" '
                        f'data-label="{escape(b.name)}"><title>{escape(b.name)}</title></polygon>')
    legend_x = left
    for ln in chart.lines:
        runs: list[list[tuple[int, float]]] = [[]]
        for i, v in enumerate(ln.values):
            if v is None:
                runs.append([])
            else:
                runs[-1].append((i, float(v)))
        dash = ' stroke-dasharray="5 4"' if ln.dashed else ""
        for run in (r for r in runs if r):
            pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in run)
            body.append(f'<polyline points="{pts}" fill="none" stroke="{ln.color}" stroke-width="2"{dash}/>')
        for i, v in enumerate(ln.values):  # the points themselves: hover text and the data in the file
            if v is not None:
                body.append(f'<circle cx="{px(i):.1f}" cy="{py(float(v)):.1f}" r="2.2" fill="{ln.color}" '
                            f'data-label="{escape(ln.name)} {escape(chart.x[i])}" data-value="{_money(v)}">'
                            f'<title>{escape(ln.name)} {escape(chart.x[i])}: {_money(v)}</title></circle>')
        body.append(f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="12" y2="12" stroke="{ln.color}" '
                    f'stroke-width="2"{dash}/><text x="{legend_x + 22}" y="16" class="legend">{escape(ln.name)}</text>')
        legend_x += 30 + 7 * len(ln.name)
    for b in chart.bands:
        body.append(f'<rect x="{legend_x}" y="6" width="14" height="10" fill="{b.color}" fill-opacity="{b.opacity}"/>'
                    f'<text x="{legend_x + 18}" y="16" class="legend">{escape(b.name)}</text>')
        legend_x += 26 + 7 * len(b.name)
    return _svg(height, chart.title, body)
