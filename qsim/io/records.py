"""Simulation records as a Parquet dataset that pandas, Polars and DuckDB open as it is.

Layout: a dataset directory holds its record files and nothing else, one file per run
(`qsim simulate`, `qsim compare`) or sweep point:

    DIR/part-<run_id or point_id>.parquet

because the readers skip different things (pyarrow 26, Polars 2.1, DuckDB 2.0): pyarrow
(pandas.read_parquet) skips names that start with "_" or ".", DuckDB reads only *.parquet
files (hidden ones too), and Polars skips nothing and refuses a directory whose files differ
in extension. So

    pandas.read_parquet(DIR)     polars.read_parquet(DIR) (or scan_parquet)
    duckdb.sql("select * from read_parquet('DIR')")    (DuckDB takes a directory as it is)

all read every row. What belongs to a file's run travels in the file's Parquet metadata:
qsim.schema (SCHEMA: each column's meaning and unit), qsim.hardware (the resolved hardware
description, by config hash) and, for a sweep point, qsim.sweep. A command's human-readable
result goes beside the directory (`beside`), never into it.

Every file of a dataset has the same columns with the same types: all of SCHEMA's, and a
bytes_<level> and energy_<level>_pj pair for each memory level any run of the dataset has
(null where a run has no such level). The readers take one file's schema for all (pyarrow
drops the other files' extra columns silently; Polars and DuckDB refuse), so a run with a new
memory level adds its columns to the files already there (each rewritten atomically). Write
into a dataset from one process at a time.

Each file is written to a hidden temporary name and renamed, so a dataset never holds a
half-written file (Polars refuses a directory while a write is in progress, or after a writer
was killed, until the hidden .tmp file is gone).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .parquet import read_metadata, write_parquet

MODEL_ROW = "__model__"              # the "layer" of a run's whole-model record
RECORD_FILES = "part-*.parquet"


@dataclass(frozen=True)
class Column:
    type: str                        # "string", "int64" or "float64" (nullable, as Parquet columns are)
    description: str


def _text(description):
    return Column("string", description)


def _int(description):
    return Column("int64", description)


def _float(description):
    return Column("float64", description)


# Every column a record file holds, in file order; <level> stands for each memory level's name.
SCHEMA = {
    "run_id": _text("identifier of the run (one simulate call)"),
    "time_utc": _text("start of the run, ISO 8601 UTC"),
    "qsim_version": _text("qsim version that produced the row"),
    "config_hash": _text("hash of the resolved hardware description"),
    "seed": _int("random seed of the run"),
    "model": _text("workload name"),
    "hardware": _text("hardware preset or file"),
    "datapath": _text("resolved GEMM datapath"),
    "calibration": _text("calibration method of the tensor ranges"),
    "config": _text("sweep points: short label of the point (hardware, overrides, calibration)"),
    "point_id": _text("sweep points: hash of the point's canonical description (model, hardware, overrides, "
                      "calibration, seed, fp32_layers)"),
    "overrides": _text("sweep points: the point's hardware overrides, JSON (dotted key: value)"),
    "fp32_layers": _text("sweep points: layers the point keeps in FP32, comma-separated"),
    "layer": _text("layer name, or __model__ for the whole-model row"),
    "op": _text("layer type"),
    "unit": _text("where the layer ran: gemm (the datapath), vector (the vector unit), fp32 (kept in full precision)"),
    "M": _int("GEMM rows of the layer's first product"),
    "K": _int("its inner dimension"),
    "N": _int("its columns (output features)"),
    "sqnr_db": _float("signal to quantization noise ratio of the layer output against FP32, dB"),
    "mse": _float("mean squared error against FP32"),
    "max_abs_err": _float("largest absolute error against FP32"),
    "cosine": _float("cosine similarity to the FP32 output"),
    "nan_count": _int("NaN outputs"),
    "overflow": _int("accumulator additions that wrapped, or overflowed to Inf/NaN"),
    "saturated": _int("accumulator additions that saturated"),
    "macs": _int("multiply-accumulates"),
    "cycles": _int("compute cycles: array (SCALE-Sim closed forms) or vector unit (one element per column per cycle)"),
    "seconds": _float("roofline time: max(compute, bytes / bandwidth per memory level), s, for the whole batch"),
    "bound": _text("what limits the time: compute or a memory level"),
    "utilization": _float("MACs / (cycles x array size)"),
    "dataflow": _text("the dataflow of the layer's first GEMM (the array's, or the mapper's choice)"),
    "tile_M": _int("rows of that GEMM's DRAM-level tile (the mapper's tiling; all of M when untiled)"),
    "tile_K": _int("extent of K of that GEMM's DRAM-level tile (all of K when untiled)"),
    "tile_N": _int("columns of that GEMM's DRAM-level tile (all of N when untiled)"),
    "loop_order": _text("that GEMM's DRAM tile loops, outermost first (e.g. nmk), or untiled"),
    "bytes_<level>": _float("bytes moved at that memory level (format-aware, MX scales included)"),
    "energy_mac_pj": _float("MAC energy x calibration, pJ"),
    "energy_<level>_pj": _float("memory energy at that level, pJ"),
    "energy_total_pj": _float("sum of the energy terms, pJ, for the whole batch"),
    "samples": _int("inferences in the run: test inputs, the batch (model row)"),
    "batch": _int("inferences the hardware takes at a time, the cost taken per batch and repeated samples / batch times (model row)"),
    "top1": _float("top-1 accuracy (model row)"),
    "agreement_fp32": _float("fraction of predictions (LLMs: next tokens) equal to FP32's (model row)"),
    "fp32_top1": _float("top-1 accuracy of the FP32 forward pass (model row)"),
    "cosine_mean": _float("mean cosine of the sentence embeddings to FP32's (MiniLM model row)"),
    "cosine_min": _float("smallest cosine of a sentence embedding to FP32's (MiniLM model row)"),
    "nn_agreement": _float("fraction of sentences whose nearest neighbour matches FP32's (MiniLM model row)"),
    "phase": _text("decoder LLMs: prefill (the prompts, as run), decode (the generated tokens' cost, summed over "
                   "the steps), prefill+decode (model row)"),
    "tokens": _int("decoder LLMs: tokens the row's cost covers (batch x prompt length, or batch x generated tokens)"),
    "perplexity": _float("decoder LLMs: perplexity of the prompts' next tokens (model row)"),
    "fp32_perplexity": _float("decoder LLMs: the same of the FP32 forward pass (model row)"),
    "kl_divergence": _float("decoder LLMs: mean KL(FP32 || model) of the next-token distributions, nats (model row)"),
}
_LEVEL_PATTERNS = {key: re.compile(re.escape(key).replace(re.escape("<level>"), "(.+)"))
                   for key in SCHEMA if "<level>" in key}


def schema_entry(column: str) -> str | None:
    """The SCHEMA key that describes column (itself, or a <level> pattern it matches); None if
    SCHEMA has none."""
    if column in SCHEMA:
        return column
    return next((key for key, pattern in _LEVEL_PATTERNS.items() if pattern.fullmatch(column)), None)


def _levels(columns) -> list[str]:
    """The memory levels that per-level columns name, in order of appearance."""
    levels = {}
    for column in columns:
        if column not in SCHEMA:
            for pattern in _LEVEL_PATTERNS.values():
                if m := pattern.fullmatch(column):
                    levels.setdefault(m[1], None)
    return list(levels)


def _arrow_schema(levels: list[str]):
    """SCHEMA's columns in order, each <level> column once per level."""
    import pyarrow as pa
    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    fields = []
    for key, column in SCHEMA.items():
        names = [key.replace("<level>", lv) for lv in levels] if "<level>" in key else [key]
        fields += [pa.field(name, types[column.type]) for name in names]
    return pa.schema(fields)


def record_files(directory) -> list[Path]:
    """The record files of a dataset directory, in name order."""
    return sorted(Path(directory).glob(RECORD_FILES))


def beside(dataset_dir, suffix: str) -> Path:
    """Where a command puts a result about a dataset: next to the directory, named after it
    (reports/compare -> reports/compare.md), since the directory holds only records."""
    path = Path(os.path.abspath(dataset_dir))
    return path.with_name(path.name + suffix)


def check_dataset_dir(directory, argument: str = "--out") -> Path:
    """ValueError naming argument unless directory can be a dataset: missing (its nearest
    existing parent a writable directory), or a directory that holds only record files
    (and hidden temporaries of an interrupted write). Writes nothing."""
    path = Path(directory)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{argument} {path}: not a directory")
        others = sorted(p.name for p in path.iterdir() if not p.name.startswith(".") and not p.match(RECORD_FILES))
        if others:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            raise ValueError(f"{argument} {path}: holds files that are not qsim records ({shown}); a dataset directory "
                             f"holds only {RECORD_FILES} files, so that pandas, Polars and DuckDB can open it: "
                             f"choose another directory")
        return path
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{argument} {path}: cannot be created ({parent} is not a writable directory)")
    return path


def write_records(records: list[dict], out_dir, hardware=None, name: str | None = None,
                  metadata: dict | None = None) -> Path:
    """Write one run's records as out_dir/<name> (default part-<run_id>.parquet), atomically,
    with the dataset's columns (see the module docstring). hardware: the run's Hardware,
    stored in the file's metadata (for reports); metadata: more qsim.<key> entries (JSON).

    ValueError if a record has a column SCHEMA does not describe."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not records:
        raise ValueError("no records to write")
    columns = list(dict.fromkeys(k for r in records for k in r))
    unknown = [c for c in columns if schema_entry(c) is None]
    if unknown:
        raise ValueError(f"record columns {unknown} are not in qsim.io.SCHEMA; describe them there first")
    out = Path(out_dir)
    path = out / (name or f"part-{records[0]['run_id']}.parquet")
    others = [f for f in record_files(out) if f != path]
    dataset_columns = pq.read_schema(others[0]).names if others else []     # every file has them all
    known = _levels(dataset_columns)
    schema = _arrow_schema(known + [lv for lv in _levels(columns) if lv not in known])
    entries = {"schema": {k: asdict(c) for k, c in SCHEMA.items()}, **(metadata or {})}
    if hardware is not None:
        entries["hardware"] = {records[0]["config_hash"]: asdict(hardware)}
    arrays = [_column([r.get(field.name) for r in records], field) for field in schema]
    table = pa.Table.from_arrays(arrays, schema=schema)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(path, table, entries)
    if others and schema.names != dataset_columns:
        _conform(others, schema)
    return path


def _column(values: list, field):
    """values as an Arrow array of field's type; a float that is not a whole number in an
    integer column is an error, never truncated."""
    import pyarrow as pa
    try:
        return pa.array(values).cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"record column {field.name!r} must hold {field.type} values: {e}") from None


def _conform(files: list[Path], schema) -> None:
    """Give each file schema's columns (new ones null), keeping its rows and metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    for f in files:
        table = pq.read_table(f)
        if table.schema.names == schema.names:
            continue
        extra = set(table.schema.names) - set(schema.names)
        if extra:
            raise ValueError(f"{f}: columns {sorted(extra)} are not qsim record columns; is this a qsim dataset?")
        arrays = [table[n].cast(field.type) if n in table.schema.names else pa.nulls(len(table), field.type)
                  for n, field in zip(schema.names, schema)]
        conformed = pa.Table.from_arrays(arrays, schema=schema.with_metadata(table.schema.metadata))
        write_parquet(f, conformed)


def file_metadata(path) -> dict:
    """The qsim.<key> entries of a record file's metadata, decoded: {"schema": ..., "hardware":
    ..., "sweep": ...} as far as the file has them."""
    return read_metadata(path)


def read_hardware(directory) -> dict[str, dict]:
    """The hardware descriptions stored with a dataset's runs, by config hash."""
    found = {}
    for f in record_files(directory):
        found.update(file_metadata(f).get("hardware", {}))
    return found


def read_records(directory, order=None):
    """Every record file of a dataset directory as one DataFrame, in name order or sorted by
    the key `order` (a function of the file's path). FileNotFoundError if it holds no records."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    directory = Path(directory)
    files = record_files(directory)
    if not files:
        older = (" (its model=*/ folders hold records in an older qsim's layout: run the sweep again, into a new "
                 "directory)" if any(directory.glob("model=*/part-*.parquet")) else "")
        raise FileNotFoundError(f"no qsim records ({RECORD_FILES}) in {directory}{older}")
    if order is not None:
        files.sort(key=order)
    # file by file, without partition discovery; "permissive" reads datasets of older qsim
    # versions too, whose files differ in their columns
    tables = [pq.read_table(f, partitioning=None) for f in files]
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()
