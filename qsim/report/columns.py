"""The columns of the report's per-model tables: header (a quantity's name, unit and basis, from
.quantities), value, text, and which way is better. The HTML page shows every column; the
Markdown summary the brief ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from . import quantities as q
from .data import ModelResults
from .units import count, fixed, is_missing, kilobytes, number, percent, text


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[pd.Series], object]      # the raw value from a table row
    show: Callable[[object], str] = number    # its text
    better: str | None = None                 # "max" or "min": the best value is highlighted
    numeric: bool = True
    alarm: bool = False                       # a non-zero value is a warning
    brief: bool = False                       # also in the Markdown summary

    def best(self, values: list):
        """The best of values, if this column has a direction and the values differ at all."""
        if self.better is None:
            return None
        numbers = [float(v) for v in values if not is_missing(v)]
        if len(set(numbers)) < 2:
            return None
        return max(numbers) if self.better == "max" else min(numbers)


def cells(rows: pd.DataFrame, columns: list[Column]) -> list[list[tuple[object, bool]]]:
    """Each row's value in each column, and whether it is the column's best."""
    values = [[c.value(r) for c in columns] for _, r in rows.iterrows()]
    best = [c.best([row[j] for row in values]) for j, c in enumerate(columns)]
    return [[(v, best[j] is not None and v == best[j]) for j, v in enumerate(row)] for row in values]


def accuracy_column(m: ModelResults) -> Column:
    if m.accuracy_label == "top-1":
        return Column(q.TOP1.header, lambda r: r["accuracy"], percent, "max", brief=True)
    return Column(q.MEAN_COSINE.header, lambda r: r["accuracy"], lambda v: fixed(v, 5), "max", brief=True)


def summary_columns(m: ModelResults) -> list[Column]:
    """One row per configuration (rows: m.summary with a "rank" column)."""
    s = m.summary
    columns = [Column("#", lambda r: r["rank"], count),
               Column("configuration", lambda r: r.name, str, numeric=False, brief=True),
               Column("Pareto", lambda r: "★" if r["pareto"] else "", str, numeric=False, brief=True)]
    if not _labels_are_names(s):      # sweep labels: hardware and calibration are worth their columns
        columns += [Column("hardware", lambda r: r["hardware"], text, numeric=False),
                    Column("calibration", lambda r: r["calibration"], text, numeric=False)]
    columns.append(Column("datapath", lambda r: r["datapath"], text, numeric=False))
    if (s["fp32_layers"] != "").any():
        columns.append(Column("kept in FP32", lambda r: r["fp32_layers"], str, numeric=False, brief=True))
    columns.append(accuracy_column(m))
    if s["agreement_fp32"].notna().any():
        columns.append(Column(q.AGREEMENT_FP32.header, lambda r: r["agreement_fp32"], percent, "max"))
    if s["nn_agreement"].notna().any():
        columns.append(Column(q.NN_AGREEMENT.header, lambda r: r["nn_agreement"], percent, "max"))
    columns += [Column(q.WORST_SQNR.header, lambda r: r["min_sqnr_db"], lambda v: fixed(v, 1), "max", brief=True),
                Column(q.ENERGY_PER_BATCH.header, lambda r: r["energy_uj"], better="min", brief=True)]
    per_inference = s["inferences"].notna().any()    # else only the batch can be compared
    if per_inference:
        columns.append(Column(q.ENERGY_PER_INFERENCE.header, lambda r: r["energy_per_inference_uj"], better="min"))
    columns.append(Column(q.CYCLES_PER_BATCH.header, lambda r: r["cycles"], count, "min", brief=True))
    if per_inference:
        columns += [Column(q.TIME_PER_INFERENCE.header, lambda r: r["time_per_inference_us"], better="min",
                           brief=True),
                    Column(q.THROUGHPUT.header, lambda r: r["inferences_per_s"], better="max", brief=True)]
    else:
        columns.append(Column(q.TIME_PER_BATCH.header, lambda r: r["seconds"] * 1e6, better="min", brief=True))
    return columns + [
        Column(q.DATA_PER_BATCH.header, lambda r: r["bytes_total"], kilobytes, "min", brief=True),
        Column(q.DATA_BY_LEVEL.header, lambda r: _by_level(r, m.memory_levels), str, numeric=False)]


def event_columns(m: ModelResults) -> list[Column]:
    """Overflow, saturation and NaN counts per configuration (rows: m.summary)."""
    return [Column("configuration", lambda r: r.name, str, numeric=False),
            Column(q.OVERFLOW.header, lambda r: r["overflow"], count, alarm=True, brief=True),
            Column(q.SATURATED.header, lambda r: r["saturated"], count, alarm=True, brief=True),
            Column(q.NAN_OUTPUTS.header, lambda r: r["nan_count"], count, alarm=True),
            Column("layers affected", lambda r: _affected_layers(m, r.name), str, numeric=False)]


def layer_cost_columns(m: ModelResults) -> list[Column]:
    """One row per layer of one configuration (rows: m.layer_costs[configuration])."""
    def tile(r):
        dims = [r.get(f"tile_{d}") for d in "MKN"]
        if any(is_missing(v) for v in dims):
            return ""
        order = r.get("loop_order")
        return "×".join(str(int(v)) for v in dims) + ("" if is_missing(order) else f" {order}")
    columns = [Column("layer", lambda r: r["layer"], text, numeric=False),
               Column("op", lambda r: r["op"], text, numeric=False),
               Column("dataflow (mapper)", lambda r: r["dataflow"], text, numeric=False),
               Column("DRAM tile M×K×N, loops", tile, text, numeric=False),
               Column(q.LAYER_CYCLES.header, lambda r: r["cycles"], count, "min"),
               Column("bound", lambda r: r["bound"], text, numeric=False),
               Column(q.UTILIZATION.header, lambda r: r["utilization"], percent, "max"),
               Column(q.LAYER_TIME.header, lambda r: r["seconds"] * 1e6, number, "min")]
    columns += [Column(f"{level} (kB)", lambda r, lv=level: r[f"bytes_{lv}"], kilobytes, "min")
                for level in m.memory_levels]
    terms = [c.removeprefix("energy_").removesuffix("_pj") for c in next(iter(m.layer_costs.values())).columns
             if c.startswith("energy_") and c != "energy_total_pj"] if m.layer_costs else []
    columns += [Column(f"{'MAC' if t == 'mac' else t} energy (nJ)", lambda r, t=t: r[f"energy_{t}_pj"] / 1e3,
                       number, "min") for t in terms]
    columns.append(Column("energy (nJ)", lambda r: r["energy_total_pj"] / 1e3, number, "min"))
    return columns


def _by_level(row: pd.Series, levels: list[str]) -> str:
    """The traffic of each level this configuration has (hardware differ in their levels)."""
    return " · ".join(f"{lv} {kilobytes(row[f'bytes_{lv}'])}" for lv in levels if not is_missing(row[f"bytes_{lv}"]))


def _labels_are_names(s: pd.DataFrame) -> bool:
    """Whether every configuration is just "<hardware> (<calibration>)"."""
    return all(config == f"{r['hardware']} ({r['calibration']})" for config, r in s.iterrows())


def _affected_layers(m: ModelResults, config: str) -> str:
    events = m.layer_events[m.layer_events["configuration"] == config]
    parts = []
    for _, e in events.iterrows():
        what = [f"{count(e[k])} {label}" for k, label in
                (("overflow", "overflow"), ("saturated", "saturated"), ("nan_count", "NaN"))
                if not is_missing(e[k]) and e[k] > 0]
        parts.append(f"{e['layer']} ({', '.join(what)})")
    return "; ".join(parts)
