"""Simulation records as a Parquet dataset: one file per run in a directory, written to a
temporary name and renamed, so a dataset never holds a half-written file and runs append by
adding files. The column meanings and units travel in each file's metadata (SCHEMA).
"""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_atomic, write_text_atomic

MODEL_ROW = "__model__"              # the "layer" of a run's whole-model record
RECORD_FILES = ("part-*.parquet", "model=*/part-*.parquet")

SCHEMA = {
    "run_id": "identifier of the run (one simulate call)",
    "time_utc": "start of the run, ISO 8601 UTC",
    "qsim_version": "qsim version that produced the row",
    "config_hash": "hash of the resolved hardware description",
    "seed": "random seed of the run",
    "calibration": "calibration method of the tensor ranges",
    "model": "workload name", "hardware": "hardware preset or file", "datapath": "resolved GEMM datapath",
    "layer": "layer name, or __model__ for the whole-model row", "op": "layer type",
    "unit": "where the layer ran: gemm (the datapath), vector (the vector unit), fp32 (kept in full precision)",
    "M": "GEMM rows of the layer's first product", "K": "its inner dimension", "N": "its columns (output features)",
    "sqnr_db": "signal to quantization noise ratio of the layer output against FP32, dB",
    "mse": "mean squared error against FP32", "max_abs_err": "largest absolute error against FP32",
    "cosine": "cosine similarity to the FP32 output", "nan_count": "NaN outputs",
    "overflow": "accumulator additions that wrapped, or overflowed to Inf/NaN",
    "saturated": "accumulator additions that saturated",
    "macs": "multiply-accumulates", "cycles": "compute cycles: array (SCALE-Sim closed forms) or vector unit (one element per column per cycle)",
    "seconds": "roofline time: max(compute, bytes / bandwidth per memory level), s",
    "bound": "what limits the time: compute or a memory level", "utilization": "MACs / (cycles x array size)",
    "bytes_<level>": "bytes moved at that memory level (format-aware, MX scales included)",
    "energy_mac_pj": "MAC energy x calibration, pJ", "energy_<level>_pj": "memory energy at that level, pJ",
    "energy_total_pj": "sum of the energy terms, pJ",
    "samples": "inferences in the run: test inputs (model row)",
    "top1": "top-1 accuracy (model row)", "agreement_fp32": "fraction of predictions equal to FP32's (model row)",
    "fp32_top1": "top-1 accuracy of the FP32 forward pass (model row)",
    "cosine_mean": "mean cosine of the sentence embeddings to FP32's (MiniLM model row)",
    "cosine_min": "smallest cosine of a sentence embedding to FP32's (MiniLM model row)",
    "nn_agreement": "fraction of sentences whose nearest neighbour matches FP32's (MiniLM model row)",
}


def write_records(records: list[dict], out_dir, hardware=None) -> Path:
    """Write one run's records as out_dir/part-<run_id>.parquet, atomically; with the run's
    Hardware, also its description as out_dir/hardware/<config_hash>.json (for reports)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not records:
        raise ValueError("no records to write")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(pd.DataFrame(records), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"qsim.schema": json.dumps(SCHEMA).encode()})
    if hardware is not None:
        from dataclasses import asdict
        write_text_atomic(out / "hardware" / f"{records[0]['config_hash']}.json", json.dumps(asdict(hardware), indent=1))
    return write_atomic(out / f"part-{records[0]['run_id']}.parquet", lambda tmp: pq.write_table(table, tmp))


def read_records(directory, order=None):
    """Every record file of a dataset directory (RECORD_FILES: flat, or partitioned by model as
    a sweep writes them) as one DataFrame, in name order or sorted by the key `order`; a column
    missing from a file is NaN in its rows. FileNotFoundError if the directory holds no records."""
    import pandas as pd
    import pyarrow.parquet as pq
    directory = Path(directory)
    files = [f for pattern in RECORD_FILES for f in sorted(directory.glob(pattern))]
    if not files:
        raise FileNotFoundError(f"no qsim records ({' or '.join(RECORD_FILES)}) in {directory}")
    if order is not None:
        files.sort(key=order)
    # file by file, without partition discovery: the model column is in the records, not the path
    return pd.concat([pq.read_table(f, partitioning=None).to_pandas() for f in files], ignore_index=True)
