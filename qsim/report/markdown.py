"""The report's summary as Markdown: one table per model, best values in bold, for pull
requests and terminals; the charts are in the HTML page."""

from __future__ import annotations

from urllib.parse import quote

from ..io.tables import markdown_table
from .columns import cells, event_columns, summary_columns
from .data import ModelResults, ReportData
from .units import percent


def render_markdown(data: ReportData, title: str, html_name: str | None = None) -> str:
    lines = [f"# {title}", "", f"Dataset `{data.dataset}`, {data.runs} runs shown."]
    if html_name:
        # a link target ends at a space: quote it
        lines.append(f"Charts, per-layer SQNR and the hardware definitions: [{html_name}]({quote(html_name)}).")
    for m in data.models:
        note = "★ Pareto-optimal in accuracy versus energy; **bold** is the best of a column."
        if m.fp32_accuracy is not None:
            note = f"FP32 top-1 on the same test set: {percent(m.fp32_accuracy)} %. " + note
        lines += ["", f"## {m.model}", "", *_table(m), "", note]
    names = sorted({hw["name"] for hw in data.hardware} | {hw["hardware"] for hw in data.unresolved})
    lines += ["", "Hardware: " + ", ".join(f"`{n}`" for n in names) + "."]
    return "\n".join(lines) + "\n"


def _table(m: ModelResults) -> list[str]:
    columns = [c for c in summary_columns(m) + event_columns(m) if c.brief]
    shown = cells(m.summary, columns)
    rows = [[v for v, _ in row] for row in shown]
    return markdown_table(columns, rows, strong=lambda i, j: shown[i][j][1]).split("\n")
