"""Datasets written by `qsim simulate`, `qsim compare` and `qsim sweep`: every reader (pandas,
Polars, DuckDB) opens the output directory as it is; qsim.io.SCHEMA describes exactly the
columns written; every reported quantity names its unit and basis, and the values agree with
the records; arguments are checked before any work; a sweep directory holds one sweep; and the
command line tells a bug in qsim from a mistake in the input."""

import math
import re
import textwrap

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import qsim.cli
from peers import llm_weights
from qsim.cli import main
from qsim.hardware import HardwareError
from qsim.io import SCHEMA, check_dataset_dir, read_records, schema_entry, write_records
from qsim.report import build_report
from qsim.sim import simulate
from qsim.sweep import SweepError

SWEEP = textwrap.dedent("""
    name = "mixed"
    models = ["digits-mlp", "digits-cnn"]
    [[hardware]]
    preset = "edge-npu-int8"
    [hardware.grid]
    "datapath.accumulator.bits" = [16, 32]
    [[hardware]]
    preset = "h100-fp8"
    [[hardware]]
    preset = "tpu-bf16"
""")


def run(argv) -> None:
    assert main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Output directories of the three commands, on models and presets whose memory levels
    differ (sram/dram, l2/hbm, cmem/hbm), so the runs of one directory differ in their columns."""
    root = tmp_path_factory.mktemp("outputs")
    run(["simulate", "--model", "digits-mlp", "--hardware", "edge-npu-int8", "--out", root / "simulate"])
    run(["simulate", "--model", "digits-cnn", "--hardware", "h100-fp8", "--fp32-layers", "conv1",
         "--out", root / "simulate"])
    run(["simulate", "--model", "minilm", "--hardware", "edge-npu-int8", "--out", root / "simulate"])
    run(["simulate", "--model", llm_weights.smollm2_gguf(), "--hardware", "int8-per-token", "--prompt-tokens", "4",
         "--generate", "1", "--out", root / "simulate"])
    run(["compare", "--model", "digits-mlp", "--hardware", "edge-npu-int8,h100-fp8,mxfp4,tpu-bf16",
         "--out", root / "compare"])
    (root / "mixed.toml").write_text(SWEEP)
    run(["sweep", root / "mixed.toml", "--out", root / "sweep", "--workers", "1", "--quiet"])
    return {name: root / name for name in ("simulate", "compare", "sweep")}


def _rows_file_by_file(directory) -> list[tuple]:
    """(run_id, layer, model, bytes and energy of every level) of each row, read one file at a
    time with pyarrow: what every reader must give, whatever the files' columns."""
    rows = []
    for f in sorted(directory.glob("*.parquet")):
        rows += [_key(r) for r in pq.read_table(f).to_pylist()]
    return sorted(rows, key=repr)


def _key(row: dict) -> tuple:
    per_level = tuple(sorted((k, None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
                             for k, v in row.items() if re.fullmatch(r"bytes_.+|energy_.+_pj", k)
                             and not (v is None or (isinstance(v, float) and math.isnan(v)))))
    return row["run_id"], row["layer"], row["model"], per_level


READERS = {
    "pandas": lambda d: pd.read_parquet(d),
    "polars": lambda d: pl.read_parquet(d).to_pandas(),
    "polars-scan": lambda d: pl.scan_parquet(d).collect().to_pandas(),
    "duckdb": lambda d: duckdb.sql(f"select * from read_parquet('{d}')").df(),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("command", ["simulate", "compare", "sweep"])
def test_every_reader_opens_the_output_directory(outputs, command, reader):
    directory = outputs[command]
    frame = READERS[reader](str(directory))
    got = sorted((_key(r) for r in frame.to_dict("records")), key=repr)
    want = _rows_file_by_file(directory)
    assert len(got) == len(want) and got == want        # every row, its model and every level's numbers
    assert len(read_records(directory)) == len(want)


def test_the_llm_run_has_both_phases(outputs):
    frame = read_records(outputs["simulate"])
    llm = frame[frame.model == "SmolLM2-135M-Instruct.Q4_1"]
    assert set(llm.phase) == {"prefill", "decode", "prefill+decode"}
    model = llm[llm.layer == "__model__"].iloc[0]
    assert model.tokens == 5 and model.perplexity > 1 and model.kl_divergence >= 0


def test_output_directories_hold_only_records_and_the_report_reads_them(outputs, tmp_path):
    for command, directory in outputs.items():
        assert [f.suffix for f in directory.iterdir()] == [".parquet"] * len(list(directory.iterdir()))
        schemas = {pq.read_schema(f).remove_metadata() for f in directory.iterdir()}
        assert len(schemas) == 1, command                  # one schema: readers take any file's for all
        build_report(directory, tmp_path / f"{command}.html")
    html = (tmp_path / "sweep.html").read_text()
    assert html.count('<article class="card"') == 4          # each variant's description, from the files
    assert (outputs["compare"].parent / "compare.summary.md").exists()


def test_a_new_memory_level_widens_the_files_already_there(tmp_path):
    write_records(simulate("digits-mlp", "edge-npu-int8"), tmp_path)
    first = next(tmp_path.iterdir())
    assert "bytes_cmem" not in pq.read_schema(first).names
    write_records(simulate("digits-mlp", "tpu-bf16"), tmp_path)
    names = [pq.read_schema(f).names for f in sorted(tmp_path.iterdir())]
    assert names[0] == names[1] and {"bytes_sram", "bytes_cmem", "bytes_hbm"} <= set(names[0])
    assert pq.read_table(first).column("bytes_cmem").null_count == pq.read_metadata(first).num_rows


def test_records_outside_the_schema_are_refused(tmp_path):
    records = simulate("digits-mlp", "edge-npu-int8")
    with pytest.raises(ValueError, match="'batch_size'.*not in qsim.io.SCHEMA"):
        write_records([dict(r, batch_size=1) for r in records], tmp_path)
    with pytest.raises(ValueError, match="'macs' must hold int64"):
        write_records([dict(r, macs=1.5) for r in records], tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_directory_with_other_files_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="--out .*not qsim records \\(notes.txt\\)"):
        check_dataset_dir(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        check_dataset_dir(tmp_path / "notes.txt")


def test_a_dataset_in_the_older_partitioned_layout_is_named(tmp_path):
    (tmp_path / "model=digits-mlp").mkdir()
    write_records(simulate("digits-mlp", "edge-npu-int8"), tmp_path / "model=digits-mlp")
    with pytest.raises(FileNotFoundError, match="model=\\*/ folders hold records in an older qsim's layout"):
        read_records(tmp_path)
    with pytest.raises(ValueError, match="not qsim records \\(model=digits-mlp\\)"):
        check_dataset_dir(tmp_path)


# -- the schema ----------------------------------------------------------------------------------

def test_schema_describes_exactly_the_columns_written(outputs):
    """Integer and float presets, classifiers, the MiniLM embedding model and a decoder LLM, layers kept in
    FP32, and sweep points: every column with a value is in SCHEMA, and every SCHEMA entry has
    a column with a value."""
    written = set()
    for directory in outputs.values():
        frame = read_records(directory)
        written |= {c for c in frame.columns if frame[c].notna().any()}
    unknown = sorted(c for c in written if schema_entry(c) is None)
    assert unknown == []
    unused = sorted(set(SCHEMA) - {schema_entry(c) for c in written})
    assert unused == []
    frame = read_records(outputs["simulate"])
    assert set(frame.query("model == 'minilm'")["cosine_min"].dropna()) and set(frame["unit"]) >= {"fp32", "gemm"}


def test_the_schema_travels_with_each_file(outputs):
    import json
    f = next(outputs["sweep"].iterdir())
    stored = json.loads(pq.read_schema(f).metadata[b"qsim.schema"])
    assert set(stored) == set(SCHEMA) and stored["point_id"]["type"] == "string"


# -- units and bases -----------------------------------------------------------------------------

def _markdown_table(text: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return [c.strip() for c in lines[start].strip("|").split(" | ")], rows


def _number(text: str) -> float:
    return float(text.replace("*", "").replace(",", ""))


def _model_rows(directory) -> dict[str, dict]:
    frame = read_records(directory)
    return {r["hardware"]: r for r in frame[frame.layer == "__model__"].to_dict("records")}


def test_compare_summary_names_units_and_bases_and_they_match_the_records(tmp_path, capsys):
    run(["compare", "--model", "digits-mlp", "--hardware", "edge-npu-int8,h100-fp8", "--out", tmp_path / "c"])
    console = capsys.readouterr().out
    summary = (tmp_path / "c.summary.md").read_text()
    head, rows = _markdown_table(summary, "hardware")
    assert _markdown_table(console, "hardware") == (head, rows)            # console and file: one table
    for header in head[1:]:
        assert re.search(r"\(.+\)$", header) or header.endswith("per batch"), header   # a unit
    for header in head:
        if re.match(r"(energy|time) ", header):
            assert re.fullmatch(r"(energy|time) per (batch|inference) \((µJ|µs)\)", header), header
    models = _model_rows(tmp_path / "c")
    column = {h: i for i, h in enumerate(head)}
    for row in rows:
        model = models[row[0]]
        per_inference = model["energy_total_pj"] / 1e6 / model["samples"]
        assert _number(row[column["energy per inference (µJ)"]]) == pytest.approx(per_inference, rel=5e-3)
        assert _number(row[column["time per inference (µs)"]]) == pytest.approx(
            model["seconds"] * 1e6 / model["samples"], rel=5e-3)
        assert _number(row[column["top-1 (%)"]]) == pytest.approx(model["top1"] * 100, abs=0.005)
        assert _number(row[column["overflow per batch (additions)"]]) == model["overflow"]
    assert f"{int(models['h100-fp8']['samples'])} inferences" in summary


def test_report_tables_name_units_and_bases_and_they_match_the_records(outputs, tmp_path):
    html_path, md_path = build_report(outputs["compare"], tmp_path / "r.html")
    html, md = html_path.read_text(), md_path.read_text()
    table = re.search(r'<table class="sortable summary">.*?</table>', html, re.S)[0]
    head = [re.sub(r"<.*?>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    body = [re.findall(r'data-v="([^"]*)"', tr) for tr in re.findall(r"<tr>(<td.*?)</tr>", table)]
    column = {h: i for i, h in enumerate(head)}
    models = _model_rows(outputs["compare"])
    for cells in body:
        model = models[cells[column["configuration"]].removesuffix(" (max)")]
        batch = float(cells[column["energy per batch (µJ)"]])
        assert batch == pytest.approx(model["energy_total_pj"] / 1e6, rel=1e-12)
        assert float(cells[column["energy per inference (µJ)"]]) == pytest.approx(batch / model["samples"],
                                                                                  rel=1e-12)
        assert float(cells[column["time per inference (µs)"]]) == pytest.approx(
            model["seconds"] * 1e6 / model["samples"], rel=1e-12)
        assert float(cells[column["cycles per batch"]]) == model["cycles"]
    md_head, md_rows = _markdown_table(md, "configuration")
    assert set(md_head) <= set(re.findall(r'<th scope="col"[^>]*>(.*?)</th>', html))   # the same headers
    for row in md_rows:
        model = models[row[0].removesuffix(" (max)")]
        assert _number(row[md_head.index("time per inference (µs)")]) == pytest.approx(
            model["seconds"] * 1e6 / model["samples"], rel=5e-3)
    # the same quantity has the same header in the compare summary and in the report
    summary_head, _ = _markdown_table((outputs["compare"].parent / "compare.summary.md").read_text(), "hardware")
    assert {"time per inference (µs)", "SQNR of the worst layer (dB)", "overflow per batch (additions)"} \
        <= set(summary_head) & set(md_head)


# -- arguments checked before any work -----------------------------------------------------------

def _spec(tmp_path, text=SWEEP):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("argv, message", [
    (["compare", "--hardware", "edge-npu-int8,nosuch"], "unknown hardware 'nosuch'"),
    (["compare", "--hardware", "edge-npu-int8,,h100-fp8"], "--hardware 'edge-npu-int8,,h100-fp8': an empty name"),
    (["compare", "--hardware", "edge-npu-int8,edge-npu-int8"], "edge-npu-int8 listed twice"),
    (["compare", "--hardware", "edge-npu-int8,h100-fp8", "--set", "nonsense"], "--set takes KEY=VALUE"),
    (["compare", "--hardware", "edge-npu-int8,h100-fp8", "--set", "datapath.accumulator.bits=4"],
     "datapath.accumulator.bits = 4: accumulator bits must be an integer"),
    (["compare", "--model", "digits-mlp", "--hardware", "edge-npu-int8", "--fp32-layers", "fc1,fc9"],
     "--fp32-layers: digits-mlp has no layer 'fc9'"),
    (["simulate", "--hardware", "nope.toml"], "cannot read"),
    (["simulate", "--set", "datapath.nonsense=1"], "datapath.nonsense"),
    (["simulate", "--model", "digits-mlp", "--fp32-layers", "conv1"], "has no layer 'conv1'"),
    (["sweep", "SPEC", "--workers", "0"], "workers must be a positive integer"),
    (["sweep", "SPEC", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
    (["sweep", "BADSPEC"], "models: unknown 'resnet'"),
    (["sensitivity", "--model", "digits-mlp", "--hardware", "nosuch"], "unknown hardware 'nosuch'"),
    (["sensitivity", "--model", "digits-mlp", "--hardware", "edge-npu-int8", "--workers", "0"],
     "workers must be a positive integer"),
])
def test_bad_arguments_stop_before_anything_is_written(tmp_path, capsys, argv, message):
    spec, bad = _spec(tmp_path), tmp_path / "bad.toml"
    bad.write_text(SWEEP.replace('"digits-cnn"', '"resnet"'))
    argv = [str(spec) if a == "SPEC" else str(bad) if a == "BADSPEC" else a for a in argv]
    before = sorted(tmp_path.iterdir())
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("qsim: error:") and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == before                  # no dataset, no summary, nothing


@pytest.mark.parametrize("command", [["simulate"], ["compare", "--hardware", "edge-npu-int8"],
                                     ["sweep", "SPEC"], ["sensitivity", "--model", "digits-mlp", "--hardware",
                                                         "edge-npu-int8"]])
def test_an_output_path_that_cannot_be_a_dataset_is_refused_first(tmp_path, capsys, command):
    spec = _spec(tmp_path)
    command = [str(spec) if a == "SPEC" else a for a in command]
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("x")
    for out, message in [(tmp_path / "file", "not a directory"), (tmp_path / "mine", "not qsim records (notes.md)")]:
        before = sorted(tmp_path.rglob("*"))
        assert main([*command, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}" in err and message in err
        assert sorted(tmp_path.rglob("*")) == before


# -- one sweep per directory ---------------------------------------------------------------------

def test_a_sweep_directory_holds_one_sweep(tmp_path, capsys):
    out = tmp_path / "out"
    small = SWEEP.replace('"digits-mlp", "digits-cnn"', '"digits-mlp"').replace("[16, 32]", "[16]")
    run(["sweep", _spec(tmp_path, small), "--out", out, "--workers", "1", "--quiet"])
    files = {f: f.stat().st_mtime_ns for f in out.iterdir()}
    assert len(files) == 3
    capsys.readouterr()
    other = small.replace("[16]", "[16, 20]")
    assert main(["sweep", str(_spec(tmp_path, other)), "--out", str(out), "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds points of another sweep, 'mixed' (3 points)" in err and "resume" in err
    assert {f: f.stat().st_mtime_ns for f in out.iterdir()} == files            # nothing added
    # the same points, however the spec is written (renamed, reordered), resume
    renamed = small.replace('name = "mixed"', 'name = "renamed"').replace(
        '[[hardware]]\npreset = "h100-fp8"\n[[hardware]]\npreset = "tpu-bf16"',
        '[[hardware]]\npreset = "tpu-bf16"\n[[hardware]]\npreset = "h100-fp8"')
    assert renamed != small
    run(["sweep", _spec(tmp_path, renamed), "--out", out, "--workers", "1", "--quiet"])
    assert "3 points: 0 run, 3 already done" in capsys.readouterr().out
    # records of another command are not a sweep's either
    simulated = tmp_path / "simulated"
    run(["simulate", "--out", simulated])
    with pytest.raises(SweepError, match="already holds records that no sweep wrote"):
        from qsim.sweep import run_sweep
        run_sweep(_spec(tmp_path, small), simulated, workers=1, progress=False)


# -- a bug looks like a bug ----------------------------------------------------------------------

def _raise(error):
    def command(args):
        raise error
    return command


@pytest.mark.parametrize("error", [
    TypeError("unsupported operand type(s) for +: 'int' and 'str'"),
    AttributeError("'NoneType' object has no attribute 'name'"),
    IndexError("list index out of range"),
    KeyError("fc1"),                                                   # a missing dict key
    ModuleNotFoundError("No module named 'qsim._kernels'", name="qsim._kernels"),
    ZeroDivisionError("division by zero"),
])
def test_a_bug_prints_its_traceback_and_asks_for_a_report(monkeypatch, capsys, error):
    monkeypatch.setattr(qsim.cli, "_cmd_formats", _raise(error))
    assert main(["formats"]) == qsim.cli.EXIT_BUG != 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and type(error).__name__ in err
    assert "this is a bug in qsim" in err and "please report it" in err


@pytest.mark.parametrize("error, shown", [
    (ValueError("--set takes KEY=VALUE, got 'x'"), "--set takes KEY=VALUE, got 'x'"),
    (HardwareError("unknown hardware 'tpu-v9'"), "unknown hardware 'tpu-v9'"),
    (SweepError("spec.toml: missing key name"), "spec.toml: missing key name"),
    (FileNotFoundError("dataset directory not found: x"), "dataset directory not found: x"),
    (PermissionError(13, "Permission denied"), "[Errno 13] Permission denied"),
    (KeyError("unknown format 'e9m9'; known: e4m3"), "unknown format 'e9m9'; known: e4m3"),
    (KeyError("a_format (--a-format): unknown format 'e9m9'"), "a_format (--a-format): unknown format 'e9m9'"),
    (ModuleNotFoundError("No module named 'duckdb'", name="duckdb"), "No module named 'duckdb'"),
    (ImportError("minilm needs: pip install 'qsim[minilm]'"), "minilm needs: pip install 'qsim[minilm]'"),
])
def test_a_mistake_in_the_input_is_one_line(monkeypatch, capsys, error, shown):
    monkeypatch.setattr(qsim.cli, "_cmd_formats", _raise(error))
    assert main(["formats"]) == 2
    err = capsys.readouterr().err
    assert err == f"qsim: error: {shown}\n"


def test_real_mistakes_keep_their_one_line(capsys):
    assert main(["encode", "e4m3x", "1"]) == 2
    assert capsys.readouterr().err.startswith("qsim: error: unknown format 'e4m3x'")
    assert main(["report", "/nonexistent/dataset", "-o", "/tmp/qsim-never.html"]) == 2
    assert "dataset directory not found" in capsys.readouterr().err


def test_arrow_types_follow_the_schema(outputs):
    schema = pq.read_schema(next(outputs["compare"].iterdir()))
    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    for field in schema:
        assert field.type == types[SCHEMA[schema_entry(field.name)].type], field.name
