"""Small SVG charts as strings: a scatter plot with a Pareto frontier, a heatmap, stacked and
plain horizontal bars. No library and no script: each chart is static markup, and every mark
carries an SVG <title> so the browser shows its exact value on hover.

All text goes through esc(); all numbers through units.number().
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from .units import compact, is_missing, number

CHAR_WIDTH = 6.8            # px per character at the 12 px chart font, for layout estimates
# Okabe & Ito's colour-blind-safe qualitative palette
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
# viridis at ten evenly spaced stops: perceptually uniform, readable in grey
VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
           "#b5de2b", "#fde725")
MISSING_FILL = "#e4e4e4"
MARK_STROKE = "#D55E00"      # vermilion: stands out on every viridis colour


def esc(text) -> str:
    return escape(str(text), quote=True)


# --- scales and ticks -------------------------------------------------------------------------

@dataclass(frozen=True)
class Scale:
    """Maps the domain [lo, hi] onto pixels [start, end], linearly or by log10."""
    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, v: float) -> float:
        f = math.log10 if self.log else float
        a, b = f(self.lo), f(self.hi)
        t = (f(v) - a) / (b - a) if b != a else 0.5
        return self.start + t * (self.end - self.start)

    def ticks(self) -> list[float]:
        return log_ticks(self.lo, self.hi) if self.log else nice_ticks(self.lo, self.hi)


def nice_step(span: float, count: int) -> float:
    """The 1, 2 or 5 times a power of ten nearest above span / count."""
    raw = span / count if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9)
    n = math.floor(hi / step + 1e-9) - first + 1
    return [round((first + i) * step, 12) for i in range(max(n, 0))]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten inside [lo, hi], with 2x and 5x added when there are too few."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    ticks = [10.0 ** d for d in decades if lo <= 10.0 ** d <= hi]
    if len(ticks) < 3:
        ticks = sorted(m * 10.0 ** d for d in decades for m in (1, 2, 5) if lo <= m * 10.0 ** d <= hi)
    return ticks


def spans_decades(values, decades: float = 2) -> bool:
    """Whether the positive values spread over more than `decades` powers of ten (use a log axis)."""
    positive = [v for v in values if not is_missing(v) and v > 0 and math.isfinite(v)]
    return len(positive) > 1 and max(positive) / min(positive) > 10 ** decades


def padded(lo: float, hi: float, log: bool, fraction: float = 0.08) -> tuple[float, float]:
    """A domain a little wider than the data, so no mark sits on an axis."""
    if log:
        factor = (hi / lo) ** fraction if hi > lo else 2.0
        return lo / factor, hi * factor
    span = hi - lo or abs(hi) or 1.0
    return lo - fraction * span, hi + fraction * span


# --- markup helpers -------------------------------------------------------------------------------

def _svg(chart_id: str, width: float, height: float, title: str, body: list[str]) -> str:
    return (f'<svg id="{esc(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" role="img">'
            f'<title>{esc(title)}</title>' + "".join(body) + "</svg>")


def _text(x: float, y: float, text, anchor: str = "start", cls: str = "", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}{extra}>{esc(text)}</text>'


def _fit(label: str, max_chars: int) -> str:
    return label if len(label) <= max_chars else label[:max_chars - 1] + "…"


def _text_width(text: str) -> float:
    return len(text) * CHAR_WIDTH


def _x_axis(scale: Scale, y: float, top: float, label: str) -> list[str]:
    out = [f'<line class="axis" x1="{scale.start:.1f}" y1="{y:.1f}" x2="{scale.end:.1f}" y2="{y:.1f}"/>']
    for t in scale.ticks():
        x = scale(t)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{y:.1f}"/>')
        out.append(_text(x, y + 16, compact(t), "middle", "tick"))
    out.append(_text((scale.start + scale.end) / 2, y + 36, label, "middle", "axis-label"))
    return out


def _y_axis(scale: Scale, x: float, right: float, label: str) -> list[str]:
    out = [f'<line class="axis" x1="{x:.1f}" y1="{scale.start:.1f}" x2="{x:.1f}" y2="{scale.end:.1f}"/>']
    for t in scale.ticks():
        y = scale(t)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}"/>')
        out.append(_text(x - 6, y + 4, compact(t), "end", "tick"))
    middle = (scale.start + scale.end) / 2
    out.append(_text(16, middle, label, "middle", "axis-label", f' transform="rotate(-90 16 {middle:.1f})"'))
    return out


# --- scatter with Pareto frontier ---------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    optimal: bool = False
    tooltip: str = ""
    below_floor: bool = False       # drawn on the floor of the y axis, not at its value


def pareto_scatter(points: list[Point], x_label: str, y_label: str, chart_id: str, title: str,
                   reference: tuple[float, str] | None = None, log_x: bool | None = None,
                   y_floor: float | None = None, width: float = 900, height: float = 480) -> str:
    """Points with the optimal ones highlighted and joined by the frontier's staircase (lower x
    is better, higher y is better). A log x axis when the x values span more than two decades.
    Points below y_floor sit on the floor as downward triangles labelled with their value, so
    one far outlier does not squash the rest into a line."""
    shown = [p for p in points if not (is_missing(p.x) or is_missing(p.y))]
    if not shown:
        return _svg(chart_id, width, 60, title, [_text(12, 30, "no points with both values", cls="note")])
    log_x = spans_decades([p.x for p in shown]) if log_x is None else log_x
    if log_x and min(p.x for p in shown) <= 0:
        log_x = False
    floor = y_floor if y_floor is not None and any(p.y < y_floor for p in shown) else None
    y_values = [p.y for p in shown if floor is None or p.y >= floor] + ([reference[0]] if reference else [])
    y_lo = floor if floor is not None else min(y_values)
    left, right, top, bottom = 76, width - 24, 16, height - 52
    xs = Scale(*padded(min(p.x for p in shown), max(p.x for p in shown), log_x), left, right, log_x)
    ys = Scale(*padded(y_lo, max(y_values), False), bottom, top)
    body = _x_axis(xs, bottom, top, x_label) + _y_axis(ys, left, right, y_label)
    lines = []            # boxes around the lines and their labels: point labels keep off them
    if reference:
        y = ys(reference[0])
        body.append(f'<line class="reference" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
        body.append(_text(right - 4, y - 5, reference[1], "end", "reference-label"))
        lines += [(left, y - 2, right, y + 2), (right - 4 - _text_width(reference[1]), y - 15, right, y - 2)]
    if floor is not None:
        y = ys(floor)
        body.append(f'<line class="floor" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
        note = f"▼ below {number(floor)}"
        body.append(_text(left + 4, y + 14, note, cls="reference-label"))
        lines += [(left, y - 2, right, y + 2), (left, y + 3, left + 8 + _text_width(note), y + 17)]
    placed = [_clamped(p, floor) for p in shown]
    steps = _staircase(sorted((p for p in placed if p.optimal), key=lambda p: p.x), xs, ys)
    if steps:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in steps)
        body.append(f'<polyline class="frontier" points="{path}"><title>Pareto frontier</title></polyline>')
    # labels keep off the frontier's segments as well as the marks
    lines += [(min(a[0], b[0]) - 2, min(a[1], b[1]) - 2, max(a[0], b[0]) + 2, max(a[1], b[1]) + 2)
              for a, b in zip(steps, steps[1:])]
    body += _points(placed, xs, ys, (left, top, right, bottom), lines)
    return _svg(chart_id, width, height, title, body)


def _clamped(p: Point, floor: float | None) -> Point:
    """The point raised to the floor, its label carrying its true value."""
    if floor is None or p.y >= floor:
        return p
    return Point(f"{p.label} ({number(p.y)})", p.x, floor, p.optimal, p.tooltip or p.label, below_floor=True)


def _staircase(optimal: list[Point], xs: Scale, ys: Scale) -> list[tuple[float, float]]:
    """The frontier through the optimal points (by rising x) in pixels: from each point, across
    to the next one's x, then up to it; everything below and right of it is dominated."""
    steps = []
    for p in optimal:
        if steps:
            steps.append((xs(p.x), steps[-1][1]))
        steps.append((xs(p.x), ys(p.y)))
    return steps


def _points(points: list[Point], xs: Scale, ys: Scale, area: tuple, taken: list) -> list[str]:
    at = [(p, xs(p.x), ys(p.y)) for p in points]
    taken = taken + [(x - 7, y - 7, x + 7, y + 7) for _, x, y in at]       # labels keep off every mark
    marks, labels, unlabelled = [], [], 0
    # optimal points are drawn last (on top) and choose their label positions first
    for p, x, y in sorted(at, key=lambda a: a[0].optimal, reverse=True):
        label = _fit(p.label, 40)
        cls = "optimal" if p.optimal else "dominated"
        spot = _place_label(x, y, label, taken, area)
        if spot is None:               # no free room anywhere: the mark's tooltip names it
            unlabelled += 1
        else:
            lx, ly, anchor, leader = spot
            if leader:
                labels.append(f'<line class="leader" x1="{x:.1f}" y1="{y:.1f}" x2="{lx:.1f}" y2="{ly - 4:.1f}"/>')
            labels.append(_text(lx, ly, label, anchor, f"point-label {cls}"))
        tip = f"<title>{esc(p.tooltip or p.label)}</title>"
        if p.below_floor:
            marks.append(f'<path class="point {cls}" d="M{x - 6:.1f},{y - 5:.1f} h12 l-6,10 z">{tip}</path>')
        else:
            marks.append(f'<circle class="point {cls}" cx="{x:.1f}" cy="{y:.1f}" r="{6 if p.optimal else 5}">{tip}</circle>')
    if unlabelled:
        labels.append(_text(area[0] + 4, area[1] + 12, f"{unlabelled} point(s) unlabelled for lack of room: "
                            "hover over a mark for its name", cls="reference-label"))
    return list(reversed(marks)) + labels


# vertical offsets tried for a label, nearest first; beyond the first three rows a leader line
# joins the label to its mark
_NEAR = 39


def _place_label(x: float, y: float, label: str, taken: list, area: tuple):
    """Right of the point, else left, nudged up or down, then farther away with a leader line:
    the first spot inside the plot that overlaps no mark, line or label already there. None
    when there is none (labels never overlap)."""
    left, top, right, bottom = area
    w, h = _text_width(label), 13       # 11 px labels, bold when optimal: the 12 px estimate bounds both
    reach = int(bottom - top)
    for dy in (d for step in range(0, reach, 13) for d in ((step,) if step == 0 else (-step, step))):
        for anchor, x0 in (("start", x + 9), ("end", x - 9)):
            edge = x0 if anchor == "start" else x0 - w
            box = (edge, y + dy - 9, edge + w, y + dy - 9 + h)
            if box[0] >= left and box[2] <= right and box[1] >= top + 16 and box[3] <= bottom \
                    and not any(_overlap(box, other) for other in taken):
                taken.append(box)
                return x0, y + dy + 3, anchor, abs(dy) > _NEAR
    return None


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# --- heatmap ----------------------------------------------------------------------------------

def colour(t: float, stops=VIRIDIS) -> str:
    """The colour at t in [0, 1] along the stops, interpolated in RGB."""
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    a, b = _rgb(stops[i]), _rgb(stops[i + 1])
    mixed = (round(u + (t - i) * (v - u)) for u, v in zip(a, b))
    return "#" + "".join(f"{c:02x}" for c in mixed)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def _ink(fill: str) -> str:
    """Black or white, whichever reads better on the fill."""
    r, g, b = _rgb(fill)
    return "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def heatmap(rows: list[str], columns: list[str], values: list[list[float]], chart_id: str, title: str,
            unit: str = "dB", legend_label: str = "", marked: list[list[bool]] | None = None,
            mark_label: str = "marked") -> str:
    """One cell per (row, column) coloured by value, with the value written in the cell when it
    fits and always in the cell's <title>. Missing values are grey; +inf takes the top colour.
    Cells that are True in `marked` are outlined, and mark_label goes into their title and the legend."""
    marked = marked or [[False] * len(columns) for _ in rows]
    finite = [v for row in values for v in row if not is_missing(v) and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    row_chars = min(max((len(r) for r in rows), default=4), 36)
    left = 12 + row_chars * CHAR_WIDTH
    cell_w = max(38.0, min(72.0, 720 / max(len(columns), 1)))
    cell_h = 26.0
    col_chars = min(max((len(c) for c in columns), default=4), 24)
    slanted = col_chars * CHAR_WIDTH > cell_w - 4
    top = 14 + (col_chars * CHAR_WIDTH * 0.72 if slanted else 18)
    width = left + cell_w * len(columns) + 40
    grid_bottom = top + cell_h * len(rows)
    height = grid_bottom + 72
    body = []
    for j, name in enumerate(columns):
        cx = left + (j + 0.5) * cell_w
        turn = f' transform="rotate(-40 {cx:.1f} {top - 8:.1f})"' if slanted else ""
        body.append(_text(cx, top - 8, _fit(name, 24), "start" if slanted else "middle", "column-label", turn))
    for i, name in enumerate(rows):
        y = top + i * cell_h
        body.append(_text(left - 8, y + cell_h / 2 + 4, _fit(name, 36), "end", "row-label"))
        for j, v in enumerate(values[i]):
            mark = mark_label if marked[i][j] else ""
            body.append(_cell(left + j * cell_w, y, cell_w, cell_h, v, lo, hi, f"{name} · {columns[j]}", unit, mark))
    legend_mark = mark_label if any(map(any, marked)) else ""
    body += _colour_legend(chart_id, left, grid_bottom + 30, lo, hi, legend_label or unit, legend_mark)
    legend_width = 400 + _text_width(legend_mark) if legend_mark else 360
    return _svg(chart_id, max(width, left + legend_width), height, title, body)


def _cell(x, y, w, h, v, lo, hi, where: str, unit: str, mark: str = "") -> str:
    """A heatmap cell; with a mark (its description), outlined."""
    if is_missing(v):
        fill, text = MISSING_FILL, "–"
    else:
        fill = colour(1.0 if v == math.inf else (v - lo) / (hi - lo))
        text = number(v, 3)
    shown = text if len(text) * CHAR_WIDTH <= w - 4 else ""
    tip = (f"{where}: {text} {unit}" if text != "–" else f"{where}: no value") + (f" ({mark})" if mark else "")
    label = _text(x + w / 2, y + h / 2 + 4, shown, "middle", "cell-value", f' style="fill:{_ink(fill)}"')
    outline = _outline(x + 1.5, y + 1.5, w - 4, h - 4) if mark else ""
    return (f'<g class="{"cell marked" if mark else "cell"}"><rect x="{x:.1f}" y="{y:.1f}" width="{w - 1:.1f}" '
            f'height="{h - 1:.1f}" fill="{fill}"><title>{esc(tip)}</title></rect>{outline}'
            + (label if shown else "") + "</g>")


def _outline(x: float, y: float, w: float, h: float) -> str:
    # drawn over the fill, and transparent to the pointer so the cell's title still shows
    return (f'<rect class="mark" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="none" '
            f'stroke="{MARK_STROKE}" stroke-width="2.5" pointer-events="none"/>')


def _colour_legend(chart_id: str, x: float, y: float, lo: float, hi: float, label: str,
                   mark_label: str = "") -> list[str]:
    width = 260
    gradient = f"{chart_id}-scale"
    stops = "".join(f'<stop offset="{i / (len(VIRIDIS) - 1):.3f}" stop-color="{c}"/>' for i, c in enumerate(VIRIDIS))
    out = [f'<defs><linearGradient id="{esc(gradient)}">{stops}</linearGradient></defs>',
           f'<rect class="legend-scale" x="{x:.1f}" y="{y:.1f}" width="{width}" height="12" fill="url(#{esc(gradient)})"/>']
    scale = Scale(lo, hi, x, x + width)
    for t in nice_ticks(lo, hi, 4):
        out.append(f'<line class="axis" x1="{scale(t):.1f}" y1="{y + 12:.1f}" x2="{scale(t):.1f}" y2="{y + 16:.1f}"/>')
        out.append(_text(scale(t), y + 28, number(t), "middle", "tick"))
    out.append(_text(x, y - 6, label, cls="axis-label"))
    out.append(f'<rect x="{x + width + 24:.1f}" y="{y:.1f}" width="12" height="12" fill="{MISSING_FILL}"/>')
    out.append(_text(x + width + 41, y + 10, "no value", cls="tick"))
    if mark_label:
        out.append(_outline(x + width + 112, y, 12, 12))
        out.append(_text(x + width + 129, y + 10, mark_label, cls="tick"))
    return out


# --- horizontal bars --------------------------------------------------------------------------

def stacked_bars(categories: list[str], series: list[tuple[str, list[float]]], unit: str, chart_id: str,
                 title: str, width: float = 760) -> str:
    """One horizontal bar per category, split into the series (e.g. energy terms), with the
    total at the end of the bar and a legend above."""
    totals = [sum(v for _, values in series if not is_missing(v := values[i]) and v > 0)
              for i in range(len(categories))]
    left, _, bar_h = _bar_layout(categories)
    right = width - 90
    scale = _zero_based(max(totals, default=0), left, right)
    body, top = _legend([name for name, _ in series], left, right, 14)
    bottom = top + bar_h * len(categories)
    body += _x_axis(scale, bottom, top, unit)
    for i, category in enumerate(categories):
        y, x = top + i * bar_h + 4, left
        body.append(_text(left - 8, y + (bar_h - 8) / 2 + 4, _fit(category, 36), "end", "row-label"))
        for k, (name, values) in enumerate(series):
            v = values[i]
            if is_missing(v) or v <= 0:
                continue
            w = scale(v) - left
            share = v / totals[i] * 100
            body.append(f'<rect class="segment" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{bar_h - 8:.1f}" '
                        f'fill="{PALETTE[k % len(PALETTE)]}"><title>{esc(category)} · {esc(name)}: '
                        f'{number(v)} {esc(unit)} ({share:.0f}%)</title></rect>')
            x += w
        body.append(_text(x + 6, y + (bar_h - 8) / 2 + 4, compact(totals[i]), cls="bar-value"))
    return _svg(chart_id, width, bottom + 46, title, body)


def bars(categories: list[str], values: list[float], unit: str, chart_id: str, title: str,
         best: int | None = None, width: float = 760) -> str:
    """Horizontal bars with their values; the bar at index `best` is drawn in the accent colour."""
    left, top, bar_h = _bar_layout(categories, legend=False)
    right = width - 90
    finite = [v for v in values if not is_missing(v) and math.isfinite(v)]
    scale = _zero_based(max(finite, default=0), left, right)
    bottom = top + bar_h * len(categories)
    body = _x_axis(scale, bottom, top, unit)
    for i, (category, v) in enumerate(zip(categories, values)):
        y = top + i * bar_h + 4
        body.append(_text(left - 8, y + (bar_h - 8) / 2 + 4, _fit(category, 36), "end", "row-label"))
        if is_missing(v) or not math.isfinite(v):
            body.append(_text(left + 6, y + (bar_h - 8) / 2 + 4, "–", cls="bar-value"))
            continue
        cls = "bar best" if i == best else "bar"
        body.append(f'<rect class="{cls}" x="{left:.1f}" y="{y:.1f}" width="{scale(v) - left:.1f}" '
                    f'height="{bar_h - 8:.1f}"><title>{esc(category)}: {number(v)} {esc(unit)}</title></rect>')
        body.append(_text(scale(v) + 6, y + (bar_h - 8) / 2 + 4, compact(v), cls="bar-value"))
    return _svg(chart_id, width, bottom + 46, title, body)


def _zero_based(hi: float, left: float, right: float) -> Scale:
    """0 to the first nice tick at or above hi, so the axis ends on a labelled tick."""
    hi = hi if hi > 0 else 1.0
    step = nice_step(hi, 5)
    return Scale(0, math.ceil(hi / step - 1e-9) * step, left, right)


def _bar_layout(categories: list[str], legend: bool = True) -> tuple[float, float, float]:
    """Left edge of the bars (after the longest label), top of the first bar, bar pitch."""
    chars = min(max((len(c) for c in categories), default=4), 36)
    return 16 + chars * CHAR_WIDTH, 40.0 if legend else 10.0, 30.0


def _legend(names: list[str], left: float, right: float, y: float) -> tuple[list[str], float]:
    """Colour keys in rows from left to right; returns the markup and the y below it."""
    out, x = [], left
    for k, name in enumerate(names):
        item = 17 + _text_width(name) + 18
        if x + item > right and x > left:
            x, y = left, y + 20
        out.append(f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{PALETTE[k % len(PALETTE)]}"/>')
        out.append(_text(x + 17, y, name, cls="legend-label"))
        x += item
    return out, y + 26
