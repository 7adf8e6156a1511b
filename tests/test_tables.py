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
