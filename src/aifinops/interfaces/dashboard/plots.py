"""Plotly figures as plain JSON (``data`` + ``layout``), built from rows the page also shows as tables.

No plotly Python objects: the figure is a small dict the browser's plotly.js draws (served from the installed
plotly package, so it works offline). A point may carry the URL of the rows behind it in ``customdata``; the
page's script follows it on click.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from .blocks import Chart, Row

PALETTE = ("#4a6fd8", "#d8664a", "#3aa17e", "#c9a227", "#8a5cc7", "#4ab3c9", "#c94a8a", "#7f8c8d", "#a3c94a",
           "#d89c4a")
LAYOUT: dict[str, Any] = {"margin": {"l": 60, "r": 20, "t": 30, "b": 70}, "height": 360,
                          "font": {"family": "system-ui, sans-serif", "size": 12},
                          "legend": {"orientation": "h", "y": -0.28}, "paper_bgcolor": "rgba(0,0,0,0)",
                          "plot_bgcolor": "rgba(0,0,0,0)"}


def num(v: Any) -> float | None:
    if v is None:
        return None
    return float(v) if isinstance(v, Decimal | int | float) else None


def _layout(**kw: Any) -> dict[str, Any]:
    out = {**LAYOUT, **kw}
    return out


def bars(id: str, title: str, rows: Sequence[Row], x: str, ys: Sequence[tuple[str, str]],
         link: Callable[[Row], str | None] | None = None, stacked: bool = False, horizontal: bool = False,
         money: bool = True, note: str = "") -> Chart:
    """One bar trace per (column, name) of ``ys`` over the labels of column ``x``."""
    labels = [str(r.get(x)) for r in rows]
    data = []
    for i, (col, name) in enumerate(ys):
        values = [num(r.get(col)) for r in rows]
        trace: dict[str, Any] = {"type": "bar", "name": name, "marker": {"color": PALETTE[i % len(PALETTE)]},
                                 "x": values if horizontal else labels, "y": labels if horizontal else values}
        if horizontal:
            trace["orientation"] = "h"
        if link:
            trace["customdata"] = [link(r) for r in rows]
        data.append(trace)
    axis = {"tickprefix": "$"} if money else {}
    layout = _layout(barmode="stack" if stacked else "group", showlegend=len(ys) > 1)
    if horizontal:
        layout.update(xaxis=axis, yaxis={"automargin": True, "autorange": "reversed"},
                      height=max(240, 28 * len(rows) + 90))
    else:
        layout.update(yaxis=axis, xaxis={"automargin": True})
    return Chart(id, title, {"data": data, "layout": layout}, note)


def grouped(id: str, title: str, rows: Sequence[Row], x: str, series: str, y: str,
            link: Callable[[Row], str | None] | None = None, stacked: bool = True, note: str = "") -> Chart:
    """Bars of ``y`` over ``x``, one trace per value of ``series`` (spend by layer, one colour per provider)."""
    xs = list(dict.fromkeys(str(r.get(x)) for r in rows))
    names = list(dict.fromkeys(str(r.get(series)) for r in rows))
    cells = {(str(r.get(x)), str(r.get(series))): r for r in rows}
    data = []
    for i, name in enumerate(names):
        pts = [cells.get((v, name)) for v in xs]
        trace: dict[str, Any] = {"type": "bar", "name": name, "x": xs, "y": [num(p.get(y)) if p else None for p in pts],
                                 "marker": {"color": PALETTE[i % len(PALETTE)]}}
        if link:
            trace["customdata"] = [link(p) if p else None for p in pts]
        data.append(trace)
    layout = _layout(barmode="stack" if stacked else "group", yaxis={"tickprefix": "$"}, xaxis={"automargin": True})
    return Chart(id, title, {"data": data, "layout": layout}, note)


def lines(id: str, title: str, x: Sequence[Any], series: Sequence[tuple[str, Sequence[Any]]],
          bands: Sequence[tuple[str, Sequence[Any], Sequence[Any], Sequence[Any]]] = (),
          links: Sequence[str | None] | None = None, money: bool = True, note: str = "") -> Chart:
    """Lines over ``x``; ``bands`` are (name, x, low, high) intervals drawn as shaded areas under them."""
    data: list[dict[str, Any]] = []
    for name, bx, lo, hi in bands:
        xs = [str(v) for v in bx]
        data.append({"type": "scatter", "mode": "lines", "name": name, "x": xs + xs[::-1],
                     "y": [num(v) for v in hi] + [num(v) for v in lo][::-1], "fill": "toself",
                     "fillcolor": "rgba(74,111,216,0.15)", "line": {"width": 0}, "hoverinfo": "skip"})
    for i, (name, ys) in enumerate(series):
        xs = [str(v) for v in x] if len(ys) == len(x) else [str(v) for v in x[-len(ys):]]
        trace: dict[str, Any] = {"type": "scatter", "mode": "lines+markers", "name": name, "x": xs,
                                 "y": [num(v) for v in ys], "line": {"color": PALETTE[i % len(PALETTE)]},
                                 "marker": {"size": 4}}
        if links and i == 0:
            trace["customdata"] = list(links)
        data.append(trace)
    layout = _layout(yaxis={"tickprefix": "$"} if money else {}, xaxis={"automargin": True})
    return Chart(id, title, {"data": data, "layout": layout}, note)


def heatmap(id: str, title: str, x: Sequence[Any], y: Sequence[str], z: Sequence[Sequence[float | None]],
            zlabel: str = "activity", note: str = "") -> Chart:
    """A ``y`` x ``x`` grid of ratios in [0, 1] (utilisation); None is no telemetry (drawn blank)."""
    data = [{"type": "heatmap", "x": [str(v) for v in x], "y": list(y), "z": [list(row) for row in z],
             "zmin": 0, "zmax": 1, "colorscale": "Viridis", "hoverongaps": False,
             "colorbar": {"title": {"text": zlabel}, "tickformat": ".0%"},
             "hovertemplate": "%{y}<br>%{x}<br>" + zlabel + " %{z:.1%}<extra></extra>"}]
    layout = _layout(height=max(300, 16 * len(y) + 120), yaxis={"automargin": True, "autorange": "reversed"})
    return Chart(id, title, {"data": data, "layout": layout}, note)


def scatter(id: str, title: str, groups: Sequence[tuple[str, Sequence[Row]]], x: str, y: str, label: str,
            xtitle: str, ytitle: str, link: Callable[[Row], str | None] | None = None, note: str = "") -> Chart:
    """One marker trace per group: ``x`` against ``y``, each point named by ``label``."""
    data = []
    for i, (name, rows) in enumerate(groups):
        trace: dict[str, Any] = {"type": "scatter", "mode": "markers", "name": name,
                                 "x": [num(r.get(x)) for r in rows], "y": [num(r.get(y)) for r in rows],
                                 "text": [str(r.get(label)) for r in rows], "marker": {"size": 10,
                                                                                       "color": PALETTE[i % 10]},
                                 "hovertemplate": "%{text}<br>" + xtitle + " %{x:$,.2f}<br>" + ytitle +
                                                  " %{y}<extra></extra>"}
        if link:
            trace["customdata"] = [link(r) for r in rows]
        data.append(trace)
    layout = _layout(xaxis={"title": {"text": xtitle}, "tickprefix": "$"}, yaxis={"title": {"text": ytitle}})
    return Chart(id, title, {"data": data, "layout": layout}, note)
