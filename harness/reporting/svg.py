"""Small inline SVG charts for the HTML report (pure; no plotting library, nothing fetched).

One chart type covers the report's plots: points and lines over a linear or log x axis, optional
categorical x labels, a shaded band (the baseline) and vertical markers (path switches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 680, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 36, 45
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    line: bool = True
    intervals: dict[float, tuple[float, float]] = field(default_factory=dict)  # x -> (low, high): error bars
    labels: dict[float, str] = field(default_factory=dict)  # x -> a note drawn beside the point (n=3)


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    log_x: bool = False
    x_categories: list[str] | None = None  # x = 0, 1, 2, ... named by these
    band: tuple[float, float] | None = None  # y range shaded across the chart
    band_label: str = "baseline"
    markers: list[float] = field(default_factory=list)  # x positions of vertical lines
    marker_label: str = "path switch"
    y_from_zero: bool = True
    x_bands: list[tuple[float, float]] = field(default_factory=list)  # x ranges shaded top to bottom (events)
    x_band_label: str = "event"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step) * step
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e9:
        return f"{value / 1e9:g}G"
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:.4g}"


def render(chart: Chart) -> str:
    points = [p for s in chart.series for p in s.points if all(math.isfinite(v) for v in p)]
    if not points:
        return f'<p class="empty">{escape(chart.title)}: no data in these results.</p>'
    xs = [x for x, _ in points] + chart.markers
    ys = [y for _, y in points] + (list(chart.band) if chart.band else [])
    ys += [
        bound for s in chart.series for low_high in s.intervals.values() for bound in low_high if math.isfinite(bound)
    ]
    if chart.log_x:
        xs = [x for x in xs if x > 0]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = (0.0 if chart.y_from_zero else min(ys)), max(ys)
    if y_high == y_low:
        y_high = y_low + 1
    y_high += (y_high - y_low) * 0.05
    if chart.x_categories is not None:
        x_low, x_high = -0.5, len(chart.x_categories) - 0.5
    elif x_high == x_low:
        x_low, x_high = (x_low / 2, x_high * 2) if chart.log_x else (x_low - 1, x_high + 1)
    elif chart.log_x:  # a margin, so the first and last points are not on the frame
        x_low, x_high = x_low / 1.3, x_high * 1.3
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        if chart.log_x:
            lo, hi = math.log10(x_low), math.log10(x_high)
            return LEFT + (math.log10(x) - lo) / ((hi - lo) or 1) * plot_w
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{escape(chart.title)}</title>',
        f'<text x="{LEFT}" y="20" class="chart-title" font-weight="bold">{escape(chart.title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#999"/>',
    ]
    if chart.band:
        top, bottom = sy(chart.band[1]), sy(chart.band[0])
        out.append(
            f'<rect x="{LEFT}" y="{top:.1f}" width="{plot_w}" height="{max(bottom - top, 1):.1f}" '
            f'fill="#bbb" opacity="0.4"><title>{escape(chart.band_label)}</title></rect>'
        )
    for low, high in chart.x_bands:
        left, right = sx(max(low, x_low)), sx(min(high, x_high))
        out.append(
            f'<rect x="{left:.1f}" y="{TOP}" width="{max(right - left, 1):.1f}" height="{plot_h}" '
            f'fill="#f4c7c3" opacity="0.6"><title>{escape(chart.x_band_label)}</title></rect>'
        )
    for tick in _ticks(y_low, y_high):
        y = sy(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>'
        )
    if chart.x_categories is not None:
        x_ticks = [(float(i), name) for i, name in enumerate(chart.x_categories)]
    elif chart.log_x:
        x_ticks = [
            (10.0**e, _fmt(10.0**e))
            for e in range(math.floor(math.log10(x_low)), math.ceil(math.log10(x_high)) + 1)
            if x_low <= 10.0**e <= x_high
        ] or [(x_low, _fmt(x_low)), (x_high, _fmt(x_high))]
    else:
        x_ticks = [(t, _fmt(t)) for t in _ticks(x_low, x_high)]
    for x, name in x_ticks:
        out.append(f'<text x="{sx(x):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{escape(name)}</text>')
    for x in chart.markers:
        if x_low <= x <= x_high:
            out.append(
                f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#f80" '
                f'stroke-dasharray="3,3" opacity="0.7"/>'
            )
    for i, series in enumerate(chart.series):
        colour = COLOURS[i % len(COLOURS)]
        pts = sorted(p for p in series.points if all(math.isfinite(v) for v in p) and (not chart.log_x or p[0] > 0))
        if series.line and len(pts) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for x, y in pts:
            if x in series.intervals:
                low, high = series.intervals[x]
                out.append(
                    f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{sy(low):.1f}" y2="{sy(high):.1f}" '
                    f'stroke="{colour}" stroke-width="1.2"/>'
                )
            hollow = series.labels.get(x) == "n=1"  # one measurement: drawn hollow, not like a median
            out.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{"#fff" if hollow else colour}" '
                f'stroke="{colour}"><title>{escape(series.name)}: {x:g}, {y:.4g}</title></circle>'
            )
            if x in series.labels:
                out.append(
                    f'<text x="{sx(x) + 5:.1f}" y="{sy(y) - 5:.1f}" font-size="9" fill="{colour}">'
                    f"{escape(series.labels[x])}</text>"
                )
    legend = [(COLOURS[i % len(COLOURS)], series.name, "box") for i, series in enumerate(chart.series)]
    if chart.band:
        legend.append(("#bbb", chart.band_label, "box"))
    if chart.x_bands:
        legend.append(("#f4c7c3", chart.x_band_label, "box"))
    if chart.markers:
        legend.append(("#f80", chart.marker_label, "dash"))
    if any(series.intervals for series in chart.series):
        legend.append(("#444", "bar: 95 % interval", "dash"))
    for i, (colour, name, shape) in enumerate(legend):
        ly = TOP + 14 + 16 * i
        symbol = (
            f'<rect x="{LEFT + plot_w + 10}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>'
            if shape == "box"
            else f'<line x1="{LEFT + plot_w + 10}" x2="{LEFT + plot_w + 20}" y1="{ly - 3}" y2="{ly - 3}" '
            f'stroke="{colour}" stroke-dasharray="3,2"/>'
        )
        out.append(f'{symbol}<text x="{LEFT + plot_w + 24}" y="{ly + 1}">{escape(name)}</text>')
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">{escape(chart.x_label)}</text>'
        f'<text transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
        f"{escape(chart.y_label)}</text></svg>"
    )
    return "".join(out)
