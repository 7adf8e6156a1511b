"""The report as one self-contained HTML page: inline CSS, inline SVG charts, and a few lines
of inline script that only sort tables. Nothing is fetched, so the file works offline."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from . import quantities as q
from . import svg
from ..io.tables import html_table
from .columns import Column, accuracy_column, cells, event_columns, layer_cost_columns, summary_columns
from .data import ModelResults, ReportData
from .svg import esc
from .units import MISSING, count, frequency, is_missing, memory_size, number, per_second, rate, text

HOW_TO_READ = (
    "Each configuration is one point of the design space: a hardware description (datapath, number "
    "formats, compute array, memory levels) with a calibration method, run on a model's test set; when a "
    "configuration was run more than once, its latest run is shown. Accuracy is top-1 on the test set "
    "(for embedding models, the mean cosine of the embeddings to FP32's). Each column names its unit and "
    "its basis: per batch is the whole test set of a run (its inferences), per inference is the batch "
    "value divided by the inferences. Energy, cycles and time come from the simulator's cost model: "
    "array cycles in SCALE-Sim's closed forms "
    "(and vector-unit cycles for the other layers), a "
    "time per layer with the array's folds double-buffered against the memory traffic (each fold takes "
    "the longer of its compute and its slowest memory level; the first fold's reads and the last fold's "
    "writes add; layers one after another), and energy "
    "= MACs × pJ per MAC + bytes × pJ per byte at each memory level. Throughput is the inferences "
    "divided by the batch time; records without an inference count show the batch time instead. SQNR is the "
    "signal-to-quantization-noise ratio of a layer's output against the FP32 forward pass; higher is "
    "better, and 6 dB is about one bit. A configuration is Pareto-optimal when no other is at least as "
    "accurate for at most the energy. Green cells hold the best value of a column; click a column header "
    "to sort; hover over a chart mark for its exact value; – means no value."
)


def render_html(data: ReportData, title: str) -> str:
    models = "".join(_model_section(m) for m in data.models)
    contents = "".join(f'<li><a href="#{_slug(m.model)}">{esc(m.model)}</a></li>' for m in data.models)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}</title><style>{CSS}</style></head><body><main>'
            f'<header><h1>{esc(title)}</h1><p class="meta">{esc(_provenance(data))}</p>'
            f'<nav><ul>{contents}<li><a href="#hardware">Hardware</a></li>'
            f'<li><a href="#formats">Number formats</a></li></ul></nav></header>'
            f'<section id="how-to-read"><h2>How to read this report</h2><p>{esc(HOW_TO_READ)}</p></section>'
            f'{models}{_hardware_section(data)}{_formats_section(data)}'
            f'</main><script>{SORT_SCRIPT}</script></body></html>\n')


def _provenance(data: ReportData) -> str:
    times = [t for m in data.models for t in m.summary["time_utc"].dropna()]
    span = f"runs from {min(times)} to {max(times)}" if times else "run times not recorded"
    return f"Dataset {data.dataset} · {data.runs} runs shown · {span}"


def _slug(model: str) -> str:
    return "model-" + (re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "unnamed")


# --- tables ---------------------------------------------------------------------------------------

def table(rows: pd.DataFrame, columns: list[Column], cls: str = "sortable") -> str:
    shown = cells(rows, columns)
    return (f'<div class="table-wrap">'
            f'{html_table(columns, [[v for v, _ in row] for row in shown], cls, _cell(columns, shown))}</div>')


def _cell(columns: list[Column], shown):
    """Decorates a cell: best of its column, warning (a non-zero alarm count), its sort key."""
    def decorate(i: int, j: int, value) -> tuple[list[str], dict]:
        column = columns[j]
        classes = ["best"] if shown[i][j][1] else []
        if column.alarm and not is_missing(value) and value > 0:
            classes.append("warn")
        # JSON spells infinities as JavaScript's parseFloat reads them (Python's repr does not)
        sort_key = "" if is_missing(value) else (json.dumps(float(value)) if column.numeric else str(value))
        return classes, {"data-v": sort_key}
    return decorate


# --- one model ------------------------------------------------------------------------------------

def _model_section(m: ModelResults) -> str:
    slug = _slug(m.model)
    summary = m.summary.assign(rank=np.arange(1, len(m.summary) + 1))
    batch = summary["inferences"].dropna()
    batch_note = (f"The test batch is {count(batch.iloc[0])} inferences." if len(batch) and batch.nunique() == 1
                  else "")
    return (f'<section class="model" id="{slug}"><h2>Model: {esc(m.model)}</h2>'
            f'<h3 id="{slug}-summary">Summary</h3>'
            f'<p class="note">{len(summary)} configurations. {esc(batch_note)} ★ marks the Pareto-optimal ones.</p>'
            f'{table(summary, summary_columns(m), cls="sortable summary")}'
            f'<h3 id="{slug}-pareto">Accuracy versus energy</h3>{_pareto_figure(m, slug)}'
            f'<h3 id="{slug}-sqnr">Per-layer SQNR</h3>{_sqnr_figure(m, slug)}'
            f'<h3 id="{slug}-cost">Throughput and energy breakdown</h3>{_cost_figures(m, slug)}'
            f'<h3 id="{slug}-layers">Per-layer cost</h3>{_layer_costs(m)}'
            f'<h3 id="{slug}-events">Overflow and saturation</h3>{_events(m)}'
            '</section>')


def _figure(chart: str, caption: str) -> str:
    return f'<figure>{chart}<figcaption>{esc(caption)}</figcaption></figure>'


def _pareto_figure(m: ModelResults, slug: str) -> str:
    accuracy = accuracy_column(m)
    top1 = m.accuracy_label == "top-1"
    scale, unit = (100, " %") if top1 else (1, "")
    points = [svg.Point(config, r["energy_uj"], r["accuracy"] * scale, bool(r["pareto"]),
                        f"{config}: {m.accuracy_label} {accuracy.show(r['accuracy'])}{unit}, "
                        f"{number(r['energy_uj'])} µJ{' (Pareto-optimal)' if r['pareto'] else ''}")
              for config, r in m.summary.iterrows()]
    reference = None
    if top1 and m.fp32_accuracy is not None:
        reference = (m.fp32_accuracy * 100, f"FP32 {accuracy.show(m.fp32_accuracy)} %")
    floor = focus_floor([p.y for p in points] + ([reference[0]] if reference else []))
    chart = svg.pareto_scatter(points, q.ENERGY_PER_BATCH.header, accuracy.header,
                               f"{slug}-pareto-chart", f"{m.model}: {m.accuracy_label} versus energy",
                               reference=reference, y_floor=floor)
    below = (f" Configurations far below the others (under {number(floor)}) sit on the floor of the "
             "plot as triangles, labelled with their value." if floor is not None else "")
    return _figure(chart, "Up and to the left is better. Filled points are Pareto-optimal and the line is "
                          "their frontier: no configuration below or right of it is worth choosing on these "
                          "two measures. The energy axis is logarithmic when the values span more than "
                          "two decades." + below)


def focus_floor(values: list[float]) -> float | None:
    """A lower limit for the accuracy axis that leaves out far outliers (below the best by more
    than ten times the best-to-median gap, and 5 % of the whole range), so the configurations
    that compete near the top stay apart; None when no point is that far below."""
    values = sorted(v for v in values if not is_missing(v))
    if len(values) < 3:
        return None
    best, median, worst = values[-1], values[len(values) // 2], values[0]
    floor = best - max(10 * (best - median), 0.05 * (best - worst))
    return floor if floor > worst else None


def _sqnr_figure(m: ModelResults, slug: str) -> str:
    grid = m.sqnr
    values = [[float(v) for v in row] for row in grid.to_numpy(float)]
    kept = m.kept_fp32.to_numpy().tolist()
    chart = svg.heatmap(list(grid.index), [str(c) for c in grid.columns], values, f"{slug}-sqnr-chart",
                        f"{m.model}: SQNR per layer (dB)", unit="dB", legend_label="SQNR (dB)",
                        marked=kept, mark_label="kept in FP32")
    outlined = " Outlined cells are layers the configuration kept in FP32." if m.kept_fp32.any(axis=None) else ""
    return _figure(chart, "Rows are configurations, columns the layers in model order. Brighter is "
                          "better (more signal per unit of quantization noise); a dark column shows where "
                          "precision is lost, a dark row which configuration loses it." + outlined)


def _cost_figures(m: ModelResults, slug: str) -> str:
    s = m.summary
    configs = list(s.index)
    if s["inferences_per_s"].notna().any():
        values, unit = s["inferences_per_s"], q.THROUGHPUT.header
        best = values.idxmax()
    else:                     # no batch size recorded: the batch time is what can be compared
        values, unit = s["seconds"] * 1e6, q.TIME_PER_BATCH.header
        best = values.idxmin() if values.notna().any() else None
    throughput = svg.bars(configs, [float(v) for v in values], unit, f"{slug}-throughput-chart",
                          f"{m.model}: throughput", best=None if best is None else configs.index(best))
    terms = m.energy_terms
    series = [(_term_name(t), [float(v) for v in terms[t]]) for t in terms.columns]
    energy = svg.stacked_bars(configs, series, q.ENERGY_PER_BATCH.header, f"{slug}-energy-chart",
                              f"{m.model}: energy by term")
    return (_figure(throughput, "Throughput of one array (folds double-buffered), layers run back to back; the best is "
                                "highlighted.")
            + _figure(energy, "Energy by term: the MACs and the bytes moved at each memory level. The "
                              "number at the end of each bar is the total."))


def _layer_costs(m: ModelResults) -> str:
    """Each configuration's layers: the mapper's choice, cycles, bound, utilization, time, bytes
    per memory level and energy terms, one folded table per configuration."""
    if not m.layer_costs:
        return '<p class="note">No per-layer cost in these records.</p>'
    columns = layer_cost_columns(m)
    parts = ['<p class="note">Per layer, per batch: the dataflow and DRAM-level tiling the mapper chose '
             '(tile M×K×N held by the scratchpads between refills and its loop order, outermost first, '
             'or untiled), array cycles, what bounds the time (compute or a memory level), MAC utilization '
             'of the array, the double-buffered time, the bytes moved at each memory level and the '
             'energy terms. Open a configuration to see its layers.</p>']
    for config, layers in m.layer_costs.items():
        parts.append(f'<details class="layers"><summary>{esc(config)}</summary>'
                     f'{table(layers, columns, cls="sortable layers")}</details>')
    return "".join(parts)


def _term_name(term: str) -> str:
    return "MAC" if term == "mac" else term


def _events(m: ModelResults) -> str:
    s = m.summary
    quiet = s[["overflow", "saturated", "nan_count"]].fillna(0).to_numpy().sum() == 0
    note = ("No configuration overflowed or saturated an accumulator, and no output was NaN." if quiet
            else "Overflow counts accumulator additions that wrapped (integer) or overflowed to Inf/NaN "
                 "(float); saturated counts additions clamped at the accumulator's limit. Non-zero counts "
                 "are shown in red.")
    return f'<p class="note">{esc(note)}</p>' + table(s, event_columns(m))


# --- definitions ----------------------------------------------------------------------------------

def _hardware_section(data: ReportData) -> str:
    cards = "".join(_hardware_card(hw) for hw in sorted(data.hardware, key=lambda h: (h["name"], h["config_hash"])))
    parts = ['<section id="hardware"><h2>Hardware definitions</h2>',
             f'<div class="cards">{cards}</div>' if cards else ""]
    if data.unresolved:
        parts.append('<p class="note">No stored description for these runs (the dataset has no '
                     'hardware description stored with them); '
                     'only their names are known.</p>')
        columns = [Column(k, lambda r, k=k: r[k], text, numeric=False) for k in ("hardware", "datapath", "config_hash")]
        parts.append(table(pd.DataFrame(data.unresolved), columns, cls="sortable definitions"))
    return "".join(parts) + "</section>"


def _hardware_card(h: dict) -> str:
    """One stored description, as it ran: its settings and the facts the plan resolved when its
    records were written (an older dataset without them shows its settings only)."""
    d, a, e, r = h["datapath"], h["array"], h.get("energy") or {}, h.get("resolved") or {}
    about = r.get("datapath_description")
    kernel = (r.get("plan") or {}).get("weight GEMM", {}).get("kernel")
    facts = [("datapath", f'{r.get("datapath", d.get("kernel") or d.get("preset"))}' + (f": {about}" if about else "")),
             ("weights × activations → outputs", _formats(d)),
             ("vector unit", d.get("vector_format")), ("accumulator", _accumulator(d, r)),
             ("quantization", _quantization(h, r)), ("weight GEMM kernel", kernel),
             ("array", f'{a["rows"]}×{a["cols"]} {a["dataflow"]} at {frequency(a["clock_hz"])}'),
             ("peak", per_second(a["rows"] * a["cols"] * a["clock_hz"], "MAC/s")),
             ("energy per MAC", _mac_energy(h, r)), ("energy source", e.get("source")),
             ("area per MAC", _mac_area(h, r)),
             ("config hash", h.get("config_hash"))]
    rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(text(v))}</td></tr>' for k, v in facts)
    levels = pd.DataFrame(h.get("memory") or [])
    memory = table(levels, _memory_columns(), cls="memory") if len(levels) else ""
    simplified = h.get("simplifications") or []
    simplifications = ('<p class="simplified-head">Simplifications</p><ul class="simplifications">'
                       + "".join(f"<li>{esc(x)}</li>" for x in simplified) + "</ul>") if simplified else ""
    return (f'<article class="card" id="hardware-{esc(h.get("config_hash", ""))}"><h3>{esc(h["name"])}</h3>'
            f'<p class="note">{esc(h.get("description", ""))}</p><table class="facts">{rows}</table>'
            f'{simplifications}{memory}</article>')


def _formats(d: dict) -> str:
    """The operand and output formats as stored (operands are tables since the one datapath
    description; older datasets stored names)."""
    name = lambda v: v.get("format") if isinstance(v, dict) else v
    return f'{name(d.get("weights"))} × {name(d.get("activations"))} → {d.get("output") or d.get("outputs")}'


def _accumulator(d: dict, resolved: dict) -> str:
    """How the datapath summed products, as stored."""
    return resolved.get("accumulator") or MISSING


def _quantization(h, resolved: dict) -> str:
    return resolved.get("quantization") or MISSING


def _mac_energy(h, resolved: dict) -> str:
    e = h.get("energy") or {}
    if not e:
        return MISSING
    scaled = f' × {number(e["calibration"])}' if e.get("calibration", 1) != 1 else ""
    how = " (derived from the formats)" if "mac_pj" in e and e["mac_pj"] is None else ""
    return f'{number(resolved.get("mac_pj", e.get("mac_pj")))} pJ{scaled} at {e.get("node_nm", "?")} nm{how}'


def _mac_area(h, resolved: dict) -> str:
    area = resolved.get("mac_area_um2")
    if area is None:
        return MISSING
    node = (h.get("energy") or {}).get("node_nm", "?")
    return f"{number(area)} µm² at {node} nm (derived from the formats; 45 nm areas × (node / 45)²)"


def _memory_columns() -> list[Column]:
    return [Column("memory level", lambda r: r["name"], str, numeric=False),
            Column("size", lambda r: r["size_bytes"], memory_size),
            Column("bandwidth", lambda r: r["bandwidth_bytes_per_s"], rate),
            Column("energy (pJ/byte)", lambda r: r["energy_pj_per_byte"]),
            Column("source", lambda r: r.get("source"), text, numeric=False)]


def _formats_section(data: ReportData) -> str:
    head = '<section id="formats"><h2>Number formats</h2>'
    if not data.formats:
        return head + '<p class="note">No hardware description is at hand, so the formats are unknown.</p></section>'

    def field(key):
        return lambda r: r.get(key)

    columns = [Column("format", lambda r: r["name"], str, numeric=False),
               Column("used for", lambda r: r["used_as"], str, numeric=False),
               Column("kind", lambda r: r.get("kind"), text, numeric=False),
               Column("bits", field("bits"), count), Column("exponent bits", field("e"), count),
               Column("mantissa bits", field("m"), count), Column("bias", field("bias"), count),
               Column("specials", lambda r: r.get("specials"), text, numeric=False),
               Column("max", field("max")), Column("min normal", field("min_normal")),
               Column("min subnormal", field("min_subnormal")), Column("epsilon", field("epsilon"))]
    note = ('<p class="note">Derived from each format\'s definition (qsim.format(name).describe()). '
            'Specials: ieee has Inf and NaN; fn has NaN only; fnuz has one NaN and no negative zero; '
            'none has neither. Integer formats list their largest code as max.</p>')
    return head + note + table(pd.DataFrame(data.formats), columns, cls="sortable definitions") + "</section>"


CSS = """
:root { --ink: #1d2433; --muted: #5b6475; --line: #d9dde5; --accent: #0072B2; --best: #e3f2e6;
        --warn: #b3261e; --panel: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1440px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 22px; margin: 40px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 17px; margin: 28px 0 8px; }
p { max-width: 78ch; }
.meta, .note, figcaption { color: var(--muted); font-size: 13.5px; }
nav ul { list-style: none; padding: 0; margin: 8px 0 0; display: flex; flex-wrap: wrap; gap: 6px 18px; }
nav a, a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
#how-to-read p { background: var(--panel); padding: 12px 16px; border-left: 3px solid var(--accent); }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; text-align: left; white-space: nowrap; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
tbody tr:hover { background: #f0f4fa; }
td.best { background: var(--best); font-weight: 600; }
table.summary { font-size: 12.5px; }
table.summary th, table.summary td { padding: 4px 6px; }
table.summary td.text { white-space: normal; overflow-wrap: anywhere; max-width: 24ch; }
table.summary td.text:last-child { min-width: 14ch; }
table.summary th { white-space: normal; vertical-align: bottom; }
table.summary th.num { min-width: 6ch; }
.simplified-head { font-size: 13px; font-weight: 600; margin: 4px 0 0; }
ul.simplifications { font-size: 13px; color: var(--muted); margin: 2px 0 8px; padding-left: 20px; }
details.layers summary { cursor: pointer; color: var(--accent); margin: 4px 0; }
table.layers { font-size: 12.5px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 4px 16px 8px; }
.card h3 { margin: 12px 0 2px; }
.card .note { margin: 0 0 8px; }
table.facts th { background: none; width: 34%; white-space: normal; font-weight: 500; color: var(--muted); }
table.facts { width: 100%; margin-bottom: 8px; }
table.memory td.text:last-child { color: var(--muted); font-size: 12.5px; }
.sortable th { cursor: pointer; user-select: none; }
.sortable th[aria-sort="ascending"]::after { content: " ▲"; font-size: 10px; }
.sortable th[aria-sort="descending"]::after { content: " ▼"; font-size: 10px; }
td.warn { color: var(--warn); font-weight: 600; }
figure { margin: 8px 0 24px; overflow-x: auto; }
figcaption { max-width: 78ch; margin-top: 4px; }
svg.chart { display: block; max-width: none; font-family: inherit; }
svg text { font-size: 12px; fill: var(--ink); }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .axis-label { font-size: 12.5px; font-weight: 600; }
svg .axis { stroke: #8a93a3; }
svg .grid { stroke: #eceef2; }
svg .frontier { fill: none; stroke: var(--accent); stroke-width: 2; }
svg .point.optimal { fill: var(--accent); stroke: #fff; stroke-width: 1.5; }
svg .point.dominated { fill: #fff; stroke: #8a93a3; stroke-width: 1.5; }
svg .point-label { font-size: 11px; }
svg .leader { stroke: #b5bcc8; stroke-width: 0.8; }
svg .point-label.dominated { fill: var(--muted); }
svg .floor { stroke: #c4c9d2; stroke-dasharray: 2 3; }
svg .point-label.optimal { font-weight: 600; }
svg .reference { stroke: #8a93a3; stroke-dasharray: 5 4; }
svg .reference-label { fill: var(--muted); font-size: 11px; }
svg .bar { fill: #a9c4de; }
svg .bar.best { fill: var(--accent); }
svg .cell-value { font-size: 11px; }
svg .note { fill: var(--muted); }
"""

# Click a header to sort its table; numbers by value (data-v), missing values always last.
SORT_SCRIPT = """
(function () {
  function key(cell) { return cell.getAttribute("data-v"); }
  document.querySelectorAll("table.sortable th").forEach(function (th, _, all) {
    th.addEventListener("click", function () {
      var table = th.closest("table"), body = table.tBodies[0];
      var column = Array.prototype.indexOf.call(th.parentNode.children, th);
      var numeric = th.classList.contains("num");
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[column]), y = key(b.cells[column]);
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
})();
"""
