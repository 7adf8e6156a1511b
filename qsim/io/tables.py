"""The one table writer: the same columns and rows as aligned console text, Markdown or HTML.

A column is data: its header (with unit and basis, see qsim.report.quantities), its text
(`show`: a value to a string; a missing value shows as –) and its alignment (numeric columns
align right). Anything with those three attributes is a column (qsim.report.columns.Column
is one); rows hold raw values, one per column.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable

from ..report.units import MISSING, is_missing


def text(v) -> str:
    """Any value as text; a missing one as –."""
    return MISSING if is_missing(v) else str(v)


@dataclass(frozen=True)
class Column:
    header: str
    show: Callable[[object], str] = text      # the value's text
    numeric: bool = False                     # aligned right

    @property
    def align(self) -> str:
        return "right" if self.numeric else "left"


def columns(*headers: str, numeric: tuple[str, ...] = ()) -> list[Column]:
    """Plain columns by header; the headers in `numeric` align right."""
    return [Column(h, numeric=h in numeric) for h in headers]


def _texts(cols, rows) -> list[list[str]]:
    return [[c.show(v) for c, v in zip(cols, row, strict=True)] for row in rows]


def text_table(cols, rows) -> str:
    """Aligned plain text for a terminal: the headers, a rule of dashes, the rows."""
    body = _texts(cols, rows)
    widths = [max([len(c.header), *(len(r[j]) for r in body)]) for j, c in enumerate(cols)]

    def line(cells):
        return "  ".join(t.rjust(w) if c.numeric else t.ljust(w)
                         for c, t, w in zip(cols, cells, widths)).rstrip()

    return "\n".join([line([c.header for c in cols]), line(["-" * w for w in widths]), *map(line, body)])


def _md_cell(t: str) -> str:
    """A cell's text that Markdown shows as it is: & and < as entities (no HTML tag or entity
    slips in), | escaped (no column break), one line."""
    return t.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|").replace("\n", " ")


def markdown_table(cols, rows, strong: Callable[[int, int], bool] | None = None) -> str:
    """A Markdown table; numeric columns right-aligned. strong(row, column): set that cell in bold."""
    body = _texts(cols, rows)
    if strong is not None:
        body = [[f"**{t}**" if strong(i, j) else t for j, t in enumerate(r)] for i, r in enumerate(body)]

    def line(cells):
        return "| " + " | ".join(_md_cell(t) for t in cells) + " |"

    rule = "|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|"
    return "\n".join([line([c.header for c in cols]), rule, *map(line, body)])


def html_table(cols, rows, cls: str | None = None,
               cell: Callable[[int, int, object], tuple[list[str], dict]] | None = None) -> str:
    """An HTML table (header cells scope="col"), every text escaped; each cell has the class num
    or text. cell(row, column, value) -> (more classes, attributes) decorates a cell."""
    def attrs(classes, extra):
        pairs = [("class", " ".join(classes)), *extra.items()]
        return "".join(f' {k}="{html.escape(str(v))}"' for k, v in pairs)

    kind = ["num" if c.numeric else "text" for c in cols]
    head = "".join(f'<th scope="col"{attrs([kind[j]], {})}>{html.escape(c.header)}</th>' for j, c in enumerate(cols))
    body = []
    for i, row in enumerate(rows):
        tds = []
        for j, (c, v) in enumerate(zip(cols, row, strict=True)):
            more, extra = cell(i, j, v) if cell is not None else ([], {})
            tds.append(f"<td{attrs([kind[j], *more], extra)}>{html.escape(c.show(v))}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    opening = "<table>" if cls is None else f'<table class="{html.escape(cls)}">'
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
