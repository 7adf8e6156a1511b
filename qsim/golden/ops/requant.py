"""requant (alias requantize): int32/int64 accumulators to output codes by an integer
datapath's requantization (ties, saturation, multipliers above one and below 2^-31,
per-channel scales)."""

from __future__ import annotations

import numpy as np

from ...datapaths.integer import _output_format, requantize_accumulator
from ...formats import format as get_format
from ...quant.intquant import container_dtype
from ..store import Case
from .base import INT_OPERAND, GoldenOp, accumulator_overflow, is_int_path, not_for, pick
from .values import f32, log_uniform, pow2, random_zero


def _requant_cases(cfg, path, hw, rng):
    yf = _output_format(pick(cfg.output_format, hw and hw.datapath.output, "int8"), get_format("int8"))
    acc = path.accumulator
    adt = np.int32 if acc.bits <= 32 else np.int64
    lo_acc, hi_acc = np.iinfo(adt).min, np.iinfo(adt).max
    zy = random_zero(rng, yf)
    shift = 5                                       # m = 2^-5 below: ties at odd multiples of 16
    ties = np.arange(-41, 42, 2) * (1 << (shift - 1))
    pow2_scales = (f32(2.0 ** -2), f32(2.0 ** -3), f32(1.0))
    edge_hi = (yf.qmax - int(zy)) << shift
    edge_lo = (yf.qmin - int(zy)) << shift
    edges = np.array([edge_hi - 16, edge_hi - 1, edge_hi, edge_hi + 15, edge_hi + 16, edge_hi + 17,
                      edge_lo + 16, edge_lo, edge_lo - 16, edge_lo - 17, lo_acc, hi_acc, lo_acc + 1, 0, 1, -1])
    n = cfg.random
    groups = [
        ("ties", "directed", "acc * 2^-5 exactly on .5, positive and negative", np.concatenate([ties, ties + 1, ties - 1]), pow2_scales),
        ("saturation", "directed", "around the clamp bounds, the accumulator's extremes", edges, pow2_scales),
        ("multiplier-above-one", "directed", "m = 4: the left-shift path", np.arange(-40, 41), (f32(2.0), f32(2.0), f32(1.0))),
        ("tiny-multiplier", "directed", "m below 2^-31 (flushes to zero in Q31 fixed point)",
         np.array([lo_acc, -1000, 0, 1000, hi_acc]), (f32(2.0 ** -20), f32(2.0 ** -20), f32(1.0))),
        ("random", "random", f"{n} seeded accumulators, arbitrary scales",
         rng.integers(-(1 << 20), 1 << 20, n), (log_uniform(rng, -3, -1), log_uniform(rng, -3, -1), log_uniform(rng, -3, -1))),
    ]
    cases = []
    for name, kind, desc, values, (sx, sw, sy) in groups:
        a = np.clip(values, lo_acc, hi_acc).astype(adt).reshape(-1, 1)
        y, _ = requantize_accumulator(a.astype(np.int64), None, None, sx, sw, sy, int(zy), yf.qmin, yf.qmax, path, yf)
        inputs = {"acc": a, "x_scale": sx, "w_scale": sw, "y_scale": sy, "y_zero": zy}
        cases.append(Case(name, kind, desc, inputs, {"y": y.astype(container_dtype(yf))}))
    # per-channel: one column per weight scale
    cols = np.stack([ties, ties + 1, -ties], axis=1).astype(adt)
    sw = pow2(rng, -4, -2, 3)
    y, _ = requantize_accumulator(cols.astype(np.int64), None, None, f32(0.5), sw, f32(1.0), int(zy),
                                  yf.qmin, yf.qmax, path, yf)
    cases.append(Case("per-channel", "directed", "per-column power-of-two weight scales: ties in every column",
                      {"acc": cols, "x_scale": f32(0.5), "w_scale": sw, "y_scale": f32(1.0), "y_zero": zy},
                      {"y": y.astype(container_dtype(yf))}))
    return cases, {"acc": None, "y_zero": yf.name, "y": yf.name}, {"y_format": yf.name}


class Requant(GoldenOp):
    name = "requant"
    aliases = ("requantize",)
    default_random = 256
    needs_datapath = True

    def format_rules(self, path) -> dict:
        only = not_for("requant takes --output-format only (accumulators are its inputs)")
        return {"format": only, "weight_format": only, "output_format": INT_OPERAND}

    def fill(self, cfg, path, hw):
        if not is_int_path(path):
            raise ValueError(f"requant needs an integer datapath, {path.name} is floating point")
        return cfg

    def cases(self, cfg, path, hw, rng):
        return _requant_cases(cfg, path, hw, rng)

    def overflow_mode(self, cfg, path):
        return accumulator_overflow(path)
