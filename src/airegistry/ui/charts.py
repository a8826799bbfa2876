"""Histograms and line charts as geometry for server-rendered SVG.

Charts are drawn on the server: a histogram is a few dozen rectangles, so SVG markup is
smaller than any charting library, needs no JavaScript (the Content-Security-Policy
allows none inline, and pages work with scripts off), prints, and is escaped by the same
templates as everything else. This module only computes coordinates and labels; the
``chart`` and ``line_chart`` macros in ``templates/_macros.html`` draw them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 480, 180
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 34


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    label: str  # the bin's range, for the tooltip


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    label: str  # "step 3: 5.71", for the tooltip


@dataclass(frozen=True)
class Line:
    """One series: an SVG polyline, markers where there are few points, its last value."""

    name: str
    points: str
    dots: list[Dot]
    index: int  # its colour (``series-N`` in the stylesheet)
    count: int
    last: float


@dataclass
class Chart:
    title: str
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    total: int = 0
    x_label: str = ""

    @property
    def base(self) -> float:
        return self.height - BOTTOM

    @property
    def left(self) -> int:
        return LEFT

    @property
    def right(self) -> int:
        return self.width - RIGHT


def _nice_step(span: float, target: int) -> float:
    """A round bin width (1, 2 or 5 times a power of ten) giving about ``target`` bins."""
    if span <= 0:
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def _fmt(value: float, integer: bool) -> str:
    if integer:
        n = round(value)
        return f"{n / 1000:g}k" if n >= 10_000 else str(n)
    return f"{value:g}"


def histogram(values: Sequence[float], *, title: str, lo: float | None = None,
              hi: float | None = None, bins: int = 20, integer: bool = False,
              x_label: str = "") -> Chart:
    """Counts of ``values`` in equal-width bins over [lo, hi] (the last bin includes hi)."""
    if not values:
        return Chart(title, x_label=x_label)
    lo = min(values) if lo is None else lo
    hi = max(values) if hi is None else hi
    if integer:
        lo = math.floor(lo)
        step = max(1.0, math.ceil(_nice_step(hi - lo + 1, bins)))
        count = max(1, math.ceil((hi - lo + 1) / step))
    else:
        step = (hi - lo) / bins if hi > lo else 1.0
        count = bins if hi > lo else 1
    counts = [0] * count
    for v in values:
        counts[min(count - 1, max(0, int((v - lo) // step)))] += 1
    return from_counts(counts, lo=lo, step=step, title=title, integer=integer, x_label=x_label)


def from_counts(counts: Sequence[int], *, lo: float, step: float, title: str,
                integer: bool = False, x_label: str = "") -> Chart:
    """The chart of bins already counted: bin ``i`` covers [lo + i*step, lo + (i+1)*step)."""
    chart = Chart(title, total=sum(counts), x_label=x_label)
    count = len(counts)
    if not count:
        return chart
    plot_w = chart.right - LEFT
    plot_h = chart.base - TOP
    peak = max(counts)
    bar_w = plot_w / count
    for i, n in enumerate(counts):
        h = plot_h * n / peak if peak else 0
        start = lo + i * step
        if integer:
            end = start + step - 1
            label = f"{_fmt(start, True)}–{_fmt(end, True)}" if step > 1 else _fmt(start, True)
        else:
            label = f"{start:.2f}–{start + step:.2f}"
        chart.bars.append(Bar(LEFT + i * bar_w + 0.5, chart.base - h, max(bar_w - 1, 0.5), h, n, label))
    tick_every = max(1, math.ceil(count / 5))
    for i in range(0, count + 1, tick_every):
        chart.x_ticks.append(Tick(LEFT + i * bar_w, _fmt(lo + i * step, integer)))
    for value in sorted({0, peak // 2, peak}):
        frac = value / peak if peak else 0
        chart.y_ticks.append(Tick(chart.base - plot_h * frac, f"{value:,}"))
    return chart


#: Points drawn per series at most (every k-th is kept, and the last); a marker per point
#: only up to ``DOTS_UP_TO`` points.
MAX_POINTS = 500
DOTS_UP_TO = 60


def _value(value: float) -> str:
    return f"{value:.4g}"


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str,
               x_label: str = "step") -> Chart:
    """Each named series of (x, y) points as a polyline over shared axes.

    Points whose coordinates are not finite numbers are left out (TRL logs NaN for a
    metric it could not compute); a series left empty is not drawn.
    """
    clean = {name: sorted((float(x), float(y)) for x, y in points
                          if math.isfinite(x) and math.isfinite(y))
             for name, points in series.items()}
    clean = {name: points for name, points in clean.items() if points}
    chart = Chart(title, x_label=x_label, total=max((len(p) for p in clean.values()), default=0))
    if not clean:
        return chart
    xs = [x for points in clean.values() for x, _ in points]
    ys = [y for points in clean.values() for _, y in points]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_step = _nice_step(max(ys) - min(ys) or abs(max(ys)) or 1.0, 4)
    y_lo, y_hi = math.floor(min(ys) / y_step) * y_step, math.ceil(max(ys) / y_step) * y_step
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - y_step, y_hi + y_step
    plot_w, plot_h = chart.right - LEFT, chart.base - TOP

    def px(x: float) -> float:
        return LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return chart.base - (y - y_lo) / (y_hi - y_lo) * plot_h

    for index, (name, points) in enumerate(clean.items()):
        drawn = points
        if len(points) > MAX_POINTS:
            stride = math.ceil(len(points) / MAX_POINTS)
            drawn = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
        dots = [Dot(px(x), py(y), f"{x_label} {x:g}: {_value(y)}") for x, y in drawn] \
            if len(drawn) <= DOTS_UP_TO else []
        chart.lines.append(Line(
            name=name, points=" ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in drawn), dots=dots,
            index=index % 6, count=len(points), last=points[-1][1],
        ))
    ticks = round((y_hi - y_lo) / y_step)
    for i in range(ticks + 1):
        value = y_lo + i * y_step
        chart.y_ticks.append(Tick(py(value), _value(0.0 if abs(value) < y_step / 1e6 else value)))
    x_step = max(1.0, _nice_step(x_hi - x_lo, 5)) if all(x.is_integer() for x in xs) else \
        _nice_step(x_hi - x_lo, 5)
    start = math.ceil(x_lo / x_step) * x_step
    i = 0
    while start + i * x_step <= x_hi + 1e-9:
        value = start + i * x_step
        chart.x_ticks.append(Tick(px(value), f"{value:g}"))
        i += 1
    return chart
