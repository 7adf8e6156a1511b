"""`qsim report`: the command-line entry of the report. qsim.cli adds it with register()."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `report` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "report", help="write a self-contained HTML report (and a Markdown summary) of a dataset",
        description="Read the simulation records in DATASET and write one HTML file that works offline:\n"
                    "a summary table per configuration, accuracy versus energy with the Pareto frontier,\n"
                    "a per-layer SQNR heatmap, throughput and energy breakdown, overflow and saturation\n"
                    "counts, and the hardware and format definitions. A Markdown summary of the tables\n"
                    "goes next to it (PATH with .md) unless --markdown says where.",
        epilog="Example:\n"
               "  qsim compare --model digits-cnn --out reports/digits-cnn\n"
               "  qsim report reports/digits-cnn -o reports/digits-cnn.html\n"
               "  (writes reports/digits-cnn.html and reports/digits-cnn.md)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", metavar="DATASET", help="dataset directory of part-*.parquet records "
                                                  "(qsim simulate, compare, sweep, sensitivity)")
    p.add_argument("-o", "--output", required=True, metavar="PATH.html", help="the HTML file to write")
    p.add_argument("--markdown", metavar="PATH", help="the Markdown summary to write (default: PATH.html as .md)")
    p.add_argument("--title", help="page title (default: 'qsim report: <dataset directory name>')")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from . import build_report
    html, md = build_report(args.dataset, args.output, args.markdown, args.title)
    print(f"report: {html}\nsummary: {md}")
    return 0
