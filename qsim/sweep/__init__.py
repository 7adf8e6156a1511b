"""Sweeps: a TOML grid of models, hardware variants and calibrations, run in parallel (local
processes or a Dask cluster) into a resumable, partitioned Parquet dataset; and per-layer
sensitivity analysis with partial quantization."""

from .run import PointsFailed, SweepSummary, compute_point, read_sweep, run_sweep
from .sensitivity import Sensitivity, layer_sensitivity, write_sensitivity
from .spec import Point, Sweep, SweepError, load_sweep, make_point, parse_sweep

__all__ = ["Sweep", "Point", "SweepError", "load_sweep", "parse_sweep", "make_point", "run_sweep", "read_sweep",
           "compute_point", "SweepSummary", "PointsFailed", "layer_sensitivity", "Sensitivity",
           "write_sensitivity"]
