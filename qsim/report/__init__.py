"""Reports of a simulation dataset: one self-contained HTML page (summary tables, accuracy
versus energy with its Pareto frontier, per-layer SQNR heatmap, throughput and energy
breakdown, overflow and saturation counts, hardware and format definitions) and a Markdown
summary of the same tables.

    from qsim.report import build_report
    build_report("reports/compare", "reports/compare.html")    # also writes reports/compare.md
"""

from __future__ import annotations

import os
from pathlib import Path

from ..io import write_text_atomic

__all__ = ["build_report", "load_report_data", "pareto_optimal", "ReportData", "ModelResults"]
_FROM_DATA = ("load_report_data", "pareto_optimal", "ReportData", "ModelResults")


def __getattr__(name: str):
    """The report data's names, imported on first use: qsim.report.data imports pandas (about a
    second), which the light modules of this package (units, quantities) and the CLI's parser
    do not need."""
    if name in _FROM_DATA:
        from . import data
        return getattr(data, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_report(dataset_dir, html_path, markdown_path=None, title=None) -> tuple[Path, Path]:
    """Write the HTML report of dataset_dir to html_path and its Markdown summary to
    markdown_path (default: html_path with the suffix .md); returns both paths.

    FileNotFoundError if the dataset directory or its records are missing; ValueError if the
    records hold no model rows, if both outputs would be the same file, or if one would be
    inside the dataset directory (which holds only records, so that every reader opens it).
    """
    from .data import load_report_data
    from .html import render_html
    from .markdown import render_markdown

    html_path = Path(html_path)
    md_path = Path(markdown_path) if markdown_path is not None else html_path.with_suffix(".md")
    if md_path.resolve() == html_path.resolve():
        raise ValueError(f"the HTML and Markdown outputs are the same file: {html_path}")
    for path in (html_path, md_path):
        if path.resolve().is_relative_to(Path(dataset_dir).resolve()):
            raise ValueError(f"{path} is inside the dataset directory {dataset_dir}, which holds only records "
                             f"(so that pandas, Polars and DuckDB can open it); write the report elsewhere")
    data = load_report_data(dataset_dir)
    title = title or f"qsim report: {Path(dataset_dir).resolve().name}"
    write_text_atomic(html_path, render_html(data, title))
    write_text_atomic(md_path, render_markdown(data, title, _relative(html_path, md_path)))
    return html_path, md_path


def _relative(target: Path, from_file: Path) -> str:
    """target as a link from from_file's directory."""
    return Path(os.path.relpath(target.resolve(), from_file.resolve().parent)).as_posix()


