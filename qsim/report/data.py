"""From a dataset of simulation records to the tables a report shows: one summary row per
(model, configuration), the per-layer SQNR grid and the layers kept in FP32, the energy terms,
and the hardware and format definitions that were used.

A configuration is the sweep's `config` label when the records carry one, else
"<hardware> (<calibration>)". When several runs share a configuration, the latest (by
time_utc) stands for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import MODEL_ROW, read_hardware, read_records

# datapath keys that name a format, and how the report calls each role
# where a stored datapath names a format, and the role it plays ("outputs": datasets from before
# the one datapath description, whose operands were names rather than tables)
FORMAT_ROLES = {"weights": "weights", "activations": "activations", "output": "outputs", "outputs": "outputs",
                "vector_format": "vector"}


@dataclass
class ModelResults:
    """Everything the report shows for one model, configurations in the same order throughout."""
    model: str
    summary: pd.DataFrame          # one row per configuration (index: configuration)
    sqnr: pd.DataFrame             # configurations x layers in model order, dB
    kept_fp32: pd.DataFrame        # the same grid: True where the layer ran in FP32 (partial quantization)
    energy_terms: pd.DataFrame     # configurations x terms (mac, then memory levels), µJ
    memory_levels: list[str]
    accuracy_label: str            # "top-1" or "mean cosine"
    fp32_accuracy: float | None    # the FP32 forward pass on the same test set, when recorded
    layer_events: pd.DataFrame     # layers with overflow or saturation: configuration, layer, counts
    layer_costs: dict = field(default_factory=dict)   # configuration -> its layers' cost columns, model order


@dataclass
class ReportData:
    dataset: Path
    runs: int
    models: list[ModelResults]
    hardware: list[dict]                        # hardware descriptions, as stored with the dataset
    unresolved: list[dict] = field(default_factory=list)   # runs whose description is not at hand
    formats: list[dict] = field(default_factory=list)      # Format.describe() plus "used_as"


def load_report_data(dataset_dir) -> ReportData:
    """Read and shape a dataset directory; FileNotFoundError or ValueError naming the path."""
    path = Path(dataset_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {path}")
    frame = read_records(path)
    if "layer" not in frame or not (frame["layer"] == MODEL_ROW).any():
        raise ValueError(f"{path}: no model rows (layer == {MODEL_ROW!r}); is this a qsim simulate dataset?")
    frame = _with_configuration(frame)
    frame = _latest_runs(frame)
    models = [_model_results(name, rows) for name, rows in frame.groupby("model", sort=True)]
    hardware, unresolved = _hardware_definitions(path, frame)
    return ReportData(path, frame["run_id"].nunique(), models, hardware, unresolved, _formats_used(hardware))


def _with_configuration(frame: pd.DataFrame) -> pd.DataFrame:
    fallback = frame["hardware"].astype(str) + " (" + frame["calibration"].fillna("?").astype(str) + ")"
    if "config" not in frame:
        return frame.assign(configuration=fallback)
    labelled = frame["config"].fillna("").astype(str).str.strip() != ""
    return frame.assign(configuration=frame["config"].astype(str).where(labelled, fallback))


def _latest_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the latest run of each (model, configuration); rows keep their order within a run."""
    runs = frame[frame["layer"] == MODEL_ROW].sort_values("time_utc", kind="stable")
    keep = runs.drop_duplicates(["model", "configuration"], keep="last")["run_id"]
    return frame[frame["run_id"].isin(keep)]


def _model_results(model: str, rows: pd.DataFrame) -> ModelResults:
    runs = {config: group for config, group in rows.groupby("configuration", sort=True)}
    model_rows = rows[rows["layer"] == MODEL_ROW].set_index("configuration").loc[list(runs)]
    layer_rows = rows[rows["layer"] != MODEL_ROW]
    levels = _suffixes(rows, r"bytes_(.+)")
    terms = _suffixes(rows, r"energy_(.+)_pj", exclude="total")
    sqnr = _sqnr_grid(layer_rows, list(runs))
    kept_fp32 = _kept_fp32(layer_rows, sqnr)
    summary = _summary(model_rows, runs, levels, kept_fp32)
    accuracy_label = "top-1" if summary["accuracy_is_top1"].all() else "mean cosine"
    return ModelResults(model=model, summary=summary, sqnr=sqnr, kept_fp32=kept_fp32,
                        energy_terms=_energy_terms(layer_rows, list(runs), terms, summary),
                        memory_levels=levels, accuracy_label=accuracy_label,
                        fp32_accuracy=_fp32_accuracy(model_rows), layer_events=_layer_events(layer_rows),
                        layer_costs={c: _layer_costs(group, levels, terms) for c, group in runs.items()})


LAYER_COST_COLUMNS = ("layer", "op", "unit", "dataflow", "tile_M", "tile_K", "tile_N", "loop_order", "cycles", "bound",
                      "utilization", "seconds")


def _layer_costs(run: pd.DataFrame, levels: list[str], terms: list[str]) -> pd.DataFrame:
    """One run's layers with their cost columns: the mapper's choice, cycles, bound, utilization,
    time, bytes per memory level and energy terms (absent columns: NaN)."""
    layers = _layers(run)
    names = [*LAYER_COST_COLUMNS, *(f"bytes_{lv}" for lv in levels), *(f"energy_{t}_pj" for t in terms),
             "energy_total_pj"]
    return pd.DataFrame({n: _column(layers, n).to_numpy() for n in names})


def _suffixes(rows: pd.DataFrame, pattern: str, exclude: str = "") -> list[str]:
    """The <name> of every column matching pattern that has a value in these rows (the frame
    holds the columns of every model's hardware, e.g. memory levels)."""
    found = [(m[1], m[0]) for m in (re.fullmatch(pattern, c) for c in rows.columns) if m]
    return [name for name, column in found if name != exclude and rows[column].notna().any()]


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(np.nan, index=frame.index)


def _summary(model_rows: pd.DataFrame, runs: dict, levels: list[str], kept_fp32: pd.DataFrame) -> pd.DataFrame:
    top1 = _column(model_rows, "top1")
    s = pd.DataFrame(index=model_rows.index)
    for name in ("hardware", "datapath", "calibration", "run_id", "time_utc", "config_hash"):
        s[name] = _column(model_rows, name)
    s["fp32_layers"] = [", ".join(kept_fp32.columns[kept_fp32.loc[c]]) for c in s.index]
    s["accuracy"] = top1.where(top1.notna(), _column(model_rows, "cosine_mean"))
    s["accuracy_is_top1"] = top1.notna()
    s["agreement_fp32"] = _column(model_rows, "agreement_fp32")
    s["nn_agreement"] = _column(model_rows, "nn_agreement")
    s["min_sqnr_db"] = [_layer_min(runs[c], "sqnr_db") for c in s.index]
    s["energy_uj"] = _column(model_rows, "energy_total_pj") / 1e6
    s["cycles"] = _column(model_rows, "cycles")
    s["seconds"] = _column(model_rows, "seconds")
    s["inferences"] = [_inferences(runs[c], pd.notna(top1[c])) for c in s.index]
    s["inferences_per_s"] = s["inferences"] / s["seconds"].where(s["seconds"] > 0)
    s["time_per_inference_us"] = s["seconds"] / s["inferences"] * 1e6
    s["energy_per_inference_uj"] = s["energy_uj"] / s["inferences"]
    for level in levels:
        s[f"bytes_{level}"] = [_layer_sum(runs[c], f"bytes_{level}") for c in s.index]
    s["bytes_total"] = s[[f"bytes_{lv}" for lv in levels]].sum(axis=1, min_count=1) if levels else np.nan
    for name in ("overflow", "saturated"):
        s[name] = _column(model_rows, name)
    s["nan_count"] = [_layer_sum(runs[c], "nan_count") for c in s.index]
    s["pareto"] = pareto_optimal(s["energy_uj"].to_numpy(float), s["accuracy"].to_numpy(float))
    return s


def _layers(run: pd.DataFrame) -> pd.DataFrame:
    return run[run["layer"] != MODEL_ROW]


def _layer_min(run: pd.DataFrame, column: str) -> float:
    values = _column(_layers(run), column).astype(float)
    return float(values.min()) if values.notna().any() else np.nan


def _layer_sum(run: pd.DataFrame, column: str) -> float:
    values = _column(_layers(run), column).astype(float)
    return float(values.sum()) if values.notna().any() else np.nan


def _inferences(run: pd.DataFrame, classifier: bool) -> float:
    """Inferences in the run: the model row's `samples`; in records without it, a classifier's
    first Linear layer has one row (M) per sample (an embedding model's has one per token)."""
    samples = _column(run, "samples").dropna()
    if len(samples):
        return float(samples.iloc[0])
    if not classifier:
        return np.nan
    rows = _column(run, "M")[run["op"] == "Linear"].dropna()
    return float(rows.iloc[0]) if len(rows) else np.nan


def _fp32_accuracy(model_rows: pd.DataFrame) -> float | None:
    values = _column(model_rows, "fp32_top1").dropna()
    return float(values.iloc[0]) if len(values) else None


def pareto_optimal(energy: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """True where no other point has energy <= and accuracy >= with one of them strictly better.
    Points with a missing value are never optimal."""
    ok = ~(np.isnan(energy) | np.isnan(accuracy))
    optimal = np.zeros(len(energy), dtype=bool)
    for i in np.flatnonzero(ok):
        no_worse = ok & (energy <= energy[i]) & (accuracy >= accuracy[i])
        better = (energy < energy[i]) | (accuracy > accuracy[i])
        optimal[i] = not (no_worse & better).any()
    return optimal


def _sqnr_grid(layer_rows: pd.DataFrame, configs: list[str]) -> pd.DataFrame:
    order = list(dict.fromkeys(layer_rows["layer"]))      # model order, as the simulator wrote it
    grid = layer_rows.pivot_table(index="configuration", columns="layer", values="sqnr_db",
                                  aggfunc="first", dropna=False)
    return grid.reindex(index=configs, columns=order).astype(float)


def _kept_fp32(layer_rows: pd.DataFrame, sqnr: pd.DataFrame) -> pd.DataFrame:
    """The SQNR grid's shape, True where the records say the layer ran in FP32 (unit "fp32")."""
    kept = pd.DataFrame(False, index=sqnr.index, columns=sqnr.columns)
    fp32 = layer_rows[_column(layer_rows, "unit") == "fp32"]
    for config, layer in zip(fp32["configuration"], fp32["layer"]):
        kept.loc[config, layer] = True
    return kept


def _energy_terms(layer_rows: pd.DataFrame, configs: list[str], terms: list[str], summary) -> pd.DataFrame:
    if not terms:               # records without a breakdown: the total is the only term
        return summary[["energy_uj"]].rename(columns={"energy_uj": "total"})
    columns = [f"energy_{t}_pj" for t in terms]
    sums = layer_rows.groupby("configuration")[columns].sum(min_count=1).reindex(configs) / 1e6
    return sums.set_axis(terms, axis=1)


def _layer_events(layer_rows: pd.DataFrame) -> pd.DataFrame:
    columns = ["configuration", "layer", "overflow", "saturated", "nan_count"]
    events = layer_rows.reindex(columns=columns)
    hit = events[["overflow", "saturated", "nan_count"]].fillna(0).sum(axis=1) > 0
    return events[hit].reset_index(drop=True)


def _hardware_definitions(path: Path, frame: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Descriptions stored in the record files' metadata (as they ran: never looked up again in
    today's presets); runs without one are named only."""
    runs = frame[frame["layer"] == MODEL_ROW].drop_duplicates("config_hash")
    stored = read_hardware(path)
    found, missing = [], []
    for _, run in runs.iterrows():
        hw = stored.get(run["config_hash"])
        if hw is None:
            missing.append({"hardware": run["hardware"], "datapath": run["datapath"],
                            "config_hash": run["config_hash"]})
        else:
            found.append(dict(hw, config_hash=run["config_hash"]))
    return found, missing


def _formats_used(hardware: list[dict]) -> list[dict]:
    from .. import format as get_format
    from ..formats.block import block_format
    used: dict[str, list] = {}
    for hw in hardware:
        for key, role in FORMAT_ROLES.items():
            name = hw.get("datapath", {}).get(key)
            name = name.get("format") if isinstance(name, dict) else name
            if name and role not in used.setdefault(name, []):
                used[name].append(role)
    rows = []
    for name, roles in sorted(used.items()):
        described = {"name": name}          # a format this qsim does not know: its name only
        for lookup in (get_format, block_format):
            try:
                described = lookup(name).describe()
                break
            except (KeyError, ValueError):
                pass
        rows.append(dict(described, used_as=", ".join(dict.fromkeys(r for r in FORMAT_ROLES.values() if r in roles))))
    return rows
