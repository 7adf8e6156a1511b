"""Datasets for the report tests: real simulator runs (simulated once per test process), a
sweep-style layout, and small hand-made runs whose expected results are known."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

from qsim.hardware import load_hardware
from qsim.io import write_records
from qsim.sim import simulate

MLP_PRESETS = ("edge-npu-int8", "edge-npu-int8-acc16", "h100-fp8", "tpu-bf16", "mxfp4", "int4-weight-only")
CNN_PRESETS = ("edge-npu-int8", "h100-fp8")


@functools.cache
def simulated_runs() -> tuple[tuple[dict, ...], ...]:
    runs = [simulate("digits-mlp", hw) for hw in MLP_PRESETS] + [simulate("digits-cnn", hw) for hw in CNN_PRESETS]
    return tuple(tuple(r) for r in runs)


def write_simulated(directory: Path) -> Path:
    """The simulated runs as `qsim simulate` writes them: DIR/part-<run_id>.parquet."""
    for records in simulated_runs():
        write_records(list(records), directory, hardware=load_hardware(records[0]["hardware"]))
    return directory


def write_sweep_layout(directory: Path) -> Path:
    """The digits-mlp runs as a sweep writes them: labelled configurations, with each hardware
    description stored in its file's metadata."""
    for records in simulated_runs()[:3]:
        first = records[0]
        label = f"{first['hardware']} sweep-{first['calibration']}"
        rows = [dict(r, config=label, point_id=f"p{first['run_id']}") for r in records]
        hw = replace(load_hardware(first["hardware"]), description=f"stored description of {first['hardware']}")
        write_records(rows, directory, hardware=hw)
    return directory


def toy_run(run_id: str, hardware: str, top1: float | None, energy_pj: float, time_utc: str = "2025-01-01T00:00:00Z",
            layers=(("fc1", 30.0), ("relu", 31.0), ("fc2", 20.0)), with_bytes: bool = True, fp32_layers=(),
            **model_fields) -> list[dict]:
    """A hand-made run of the model "toy": Linear layers of 10 samples, energy split evenly;
    the layers named in fp32_layers ran in FP32."""
    base = dict(run_id=run_id, time_utc=time_utc, qsim_version="test", config_hash=f"hash-{hardware}", seed=0,
                model="toy", hardware=hardware, datapath="toy-path", calibration="max")
    rows = []
    for name, sqnr in layers:
        linear = name.startswith("fc")
        unit = "fp32" if name in fp32_layers else "gemm" if linear else "vector"
        row = dict(base, layer=name, op="Linear" if linear else "ReLU", unit=unit, M=10.0 if linear else None,
                   sqnr_db=sqnr, overflow=0, saturated=3 if name == "fc2" else 0, nan_count=0,
                   macs=100, cycles=50, seconds=1e-6, energy_mac_pj=energy_pj / len(layers) / 2,
                   energy_sram_pj=energy_pj / len(layers) / 2, energy_total_pj=energy_pj / len(layers))
        if with_bytes:
            row["bytes_sram"] = 1000.0
        rows.append(row)
    accuracy = {"top1": top1} if top1 is not None else {}
    rows.append(dict(base, layer="__model__", op="model", cycles=50 * len(layers), seconds=1e-6 * len(layers),
                     energy_total_pj=energy_pj, overflow=0, saturated=3, **accuracy, **model_fields))
    return rows


def write_toy(directory: Path, runs: list[list[dict]]) -> Path:
    for rows in runs:
        write_records(rows, directory)
    return directory
