"""The report's summary as Markdown: one table per model, best values in bold, for pull
requests and terminals; the charts are in the HTML page."""

from __future__ import annotations

from .data import ModelResults, ReportData
from .units import MISSING, count, fixed, is_missing, number

# (header, summary column, text, better)
SQNR_AND_ENERGY = [("worst layer SQNR (dB)", "min_sqnr_db", lambda v: fixed(v, 1), "max"),
                   ("energy, batch (µJ)", "energy_uj", number, "min"),
                   ("cycles", "cycles", count, "min")]
PER_INFERENCE = [("time / inference (µs)", "time_per_inference_us", number, "min"),
                 ("throughput (inferences/s)", "inferences_per_s", number, "max")]
PER_BATCH = [("time, batch (µs)", "batch_us", number, "min")]          # when the sample count is unknown
TRAFFIC_AND_EVENTS = [("data moved (kB)", "bytes_total", lambda v: number(v / 1e3) if not is_missing(v) else MISSING,
                       "min"),
                      ("overflow", "overflow", count, None),
                      ("saturated", "saturated", count, None)]


def render_markdown(data: ReportData, title: str, html_name: str | None = None) -> str:
    lines = [f"# {title}", "", f"Dataset `{data.dataset}`, {data.runs} runs shown."]
    if html_name:
        lines.append(f"Charts, per-layer SQNR and the hardware definitions: [{html_name}]({html_name}).")
    for m in data.models:
        note = "★ Pareto-optimal in accuracy versus energy; **bold** is the best of a column."
        if m.fp32_accuracy is not None:
            note = f"FP32 top-1 on the same test set: {fixed(m.fp32_accuracy * 100, 2)} %. " + note
        lines += ["", f"## {m.model}", "", *_table(m), "", note]
    names = sorted({hw["name"] for hw in data.hardware} | {hw["hardware"] for hw in data.unresolved})
    lines += ["", "Hardware: " + ", ".join(f"`{n}`" for n in names) + "."]
    return "\n".join(lines) + "\n"


def _table(m: ModelResults) -> list[str]:
    s = m.summary.assign(batch_us=m.summary["seconds"] * 1e6)
    top1 = m.accuracy_label == "top-1"
    accuracy = ("top-1 (%)" if top1 else "mean cosine", "accuracy",
                (lambda v: fixed(v * 100, 2)) if top1 else (lambda v: fixed(v, 5)), "max")
    timing = PER_INFERENCE if s["inferences"].notna().any() else PER_BATCH
    columns = [accuracy] + SQNR_AND_ENERGY + timing + TRAFFIC_AND_EVENTS
    header = ["configuration", "Pareto"] + [c[0] for c in columns]
    best = {key: _best(s[key], better) for _, key, _, better in columns}
    rows = []
    for config, r in s.iterrows():
        cells = [_escape(config), "★" if r["pareto"] else ""]
        for _, key, show, _ in columns:
            text = show(r[key])
            cells.append(f"**{text}**" if best[key] is not None and r[key] == best[key] else text)
        rows.append(cells)
    return [_row(header), "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|",
            *map(_row, rows)]


def _best(values, better):
    values = values.dropna()
    if better is None or values.nunique() < 2:
        return None
    return values.max() if better == "max" else values.min()


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")
