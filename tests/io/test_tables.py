"""One writer per kind of output: the atomic Parquet writer (qsim.io.parquet) that simulation
records and the golden validation log share, and the table writer (qsim.io.tables) behind
every console, Markdown and HTML table."""

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qsim.io import parquet


# -- Parquet ---------------------------------------------------------------------------------------
def test_write_parquet_stores_metadata_as_qsim_json_beside_the_tables_own(tmp_path):
    table = pa.table({"a": [1, 2]}).replace_schema_metadata({b"other": b"kept"})
    path = parquet.write_parquet(tmp_path / "sub" / "t.parquet", table, {"run": {"n": 2, "x": [1.5]}})
    raw = pq.read_schema(path).metadata
    assert raw[b"other"] == b"kept" and json.loads(raw[b"qsim.run"]) == {"n": 2, "x": [1.5]}
    assert parquet.read_metadata(path) == {"run": {"n": 2, "x": [1.5]}}
    assert pq.read_table(path)["a"].to_pylist() == [1, 2]
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]          # no temporary file left


def test_write_parquet_that_fails_leaves_the_old_file(tmp_path):
    path = parquet.write_parquet(tmp_path / "t.parquet", pa.table({"a": [1]}), {"v": 1})
    with pytest.raises(AttributeError):
        parquet.write_parquet(path, "not a table")             # fails inside the write
    assert parquet.read_metadata(path) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_records_and_the_validation_log_are_written_by_write_parquet(tmp_path, monkeypatch):
    """Both writers go through the one helper (and keep their metadata keys)."""
    from qsim.golden import generate, validate
    from qsim.io import file_metadata, write_records
    written = []
    original = parquet.write_parquet

    def spy(path, table, metadata=None):
        written.append((path.name, sorted(metadata or {})))
        return original(path, table, metadata)

    for module in ("qsim.golden.validate", "qsim.io.records"):       # (qsim.golden.validate is also a function)
        monkeypatch.setattr(sys.modules[module], "write_parquet", spy)
    g = generate("decode", tmp_path / "g", format="e4m3")
    log = validate(tmp_path / "g", np.concatenate([c.expected["y"].reshape(-1) for c in g.cases])).to_parquet(
        tmp_path / "log.parquet")
    assert json.loads(pq.read_schema(log).metadata[b"qsim.validation"])["mismatches"] == 0
    rec = {"run_id": "r1", "layer": "__model__", "config_hash": "h"}
    path = write_records([rec], tmp_path / "ds", metadata={"sweep": {"point": 1}})
    assert file_metadata(path)["sweep"] == {"point": 1} and "schema" in file_metadata(path)
    assert written == [("log.parquet", ["validation"]), ("part-r1.parquet", ["schema", "sweep"])]


# -- the table writer ---------------------------------------------------------------------------------
from qsim.io.tables import Column, html_table, markdown_table, text_table  # noqa: E402
from qsim.report.units import count, fixed  # noqa: E402

COLUMNS = [Column("name"), Column("energy per batch (µJ)", lambda v: fixed(v, 1), numeric=True),
           Column("overflow", count, numeric=True)]
ROWS = [["a|b <i>&amp;", 12.345, 1234567], ["c", None, float("nan")]]


def test_markdown_escapes_pipes_tags_and_ampersands_and_aligns_numbers_right():
    lines = markdown_table(COLUMNS, ROWS).split("\n")
    assert lines[0] == "| name | energy per batch (µJ) | overflow |"
    assert lines[1] == "|---|---:|---:|"
    assert lines[2] == "| a\\|b &lt;i>&amp;amp; | 12.3 | 1,234,567 |"
    assert lines[3] == "| c | – | – |"
    assert markdown_table(COLUMNS, ROWS, strong=lambda i, j: (i, j) == (0, 2)).split("\n")[2].endswith("| **1,234,567** |")


def test_html_escapes_every_text_and_marks_alignment():
    out = html_table(COLUMNS, ROWS, cls="t", cell=lambda i, j, v: (["best"], {"data-v": "<1>"}) if (i, j) == (0, 1)
                     else ([], {}))
    assert out.startswith('<table class="t"><thead><tr><th scope="col" class="text">name</th>')
    assert '<td class="text">a|b &lt;i&gt;&amp;amp;</td>' in out
    assert '<td class="num best" data-v="&lt;1&gt;">12.3</td>' in out
    assert '<td class="num">1,234,567</td>' in out and out.count('<td class="num">–</td>') == 2
    assert "<i>" not in out


def test_text_table_aligns_text_left_numbers_right():
    lines = text_table(COLUMNS, ROWS).split("\n")
    assert lines[0] == "name          energy per batch (µJ)   overflow"
    assert lines[1] == "------------  ---------------------  ---------"
    assert lines[2] == "a|b <i>&amp;                   12.3  1,234,567"
    assert lines[3] == "c                                 –          –"


def test_a_row_with_the_wrong_number_of_cells_is_refused():
    with pytest.raises(ValueError):
        markdown_table(COLUMNS, [["only one"]])


def test_golden_markdown_report_escapes_its_cells(tmp_path):
    """A golden report's cell text (here a source name with | and <) cannot break its table."""
    from qsim.golden import make_golden, validate
    g = make_golden("decode", format="e4m3")
    result = validate(g, np.concatenate([c.expected["y"].reshape(-1) for c in g.cases]))
    result.source = "a|b<c>"
    assert "| outputs from | a\\|b&lt;c> |" in result.markdown()
    assert "a|b&lt;c&gt;" in result.html()
