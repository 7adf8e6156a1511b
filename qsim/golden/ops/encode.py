"""encode (alias quantize): float inputs to codes of a number format (QuantizeLinear with a
scale and, for integer formats, a zero point)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...codec import decode, encode
from ...formats import FloatFormat, IntFormat, format as get_format
from ...quant.intquant import container_dtype, quantize_int
from ..store import Case
from .base import GoldenOp, not_for
from .values import both_signs, cast, exact_float, f32, input_dtype, sample


def _adjacent_pairs(fmt: FloatFormat, rng, limit: int = 256):
    """(lo, hi) values of adjacent non-negative finite codes (codes ascend with value)."""
    codes = sample(0, fmt.max_code_magnitude, rng, limit)
    lo = decode(codes.astype(np.uint32), fmt, dtype=np.float64)
    hi = decode((codes + 1).astype(np.uint32), fmt, dtype=np.float64)
    return lo, hi


def _encode_float_values(fmt: FloatFormat, rng, n_random: int, dtype) -> list[tuple]:
    lo, hi = _adjacent_pairs(fmt, rng)
    mid = cast(both_signs((lo + hi) / 2), dtype)
    near = np.concatenate([np.nextafter(mid, dtype.type(np.inf)), np.nextafter(mid, dtype.type(-np.inf))])
    top = float(fmt.max)
    ulp_top = top - exact_float(fmt, fmt.max_code_magnitude - 1)
    tie = top + ulp_top / 2
    big = float(np.finfo(dtype).max)
    tie_d = cast([tie], dtype)
    overflow = [top, exact_float(fmt, fmt.max_code_magnitude - 1), tie,
                float(np.nextafter(tie_d, dtype.type(0))[0]), float(np.nextafter(tie_d, dtype.type(np.inf))[0]),
                top + ulp_top, 2 * top, 1e30, big]
    specials = [0.0, np.inf] + ([np.nan] if fmt.has_nan else [])
    cases = [
        ("ties", "exact midpoints between adjacent codes (round-to-nearest ties), both signs", mid),
        ("near-ties", "one input ulp above and below each midpoint", near),
        ("overflow", f"max {top:g}, the overflow tie {tie:g}, its neighbours, max + ulp, beyond, both signs",
         both_signs(overflow)),
        ("specials", "+-0, +-Inf" + (", +-NaN" if fmt.has_nan else ""), both_signs(specials)),
    ]
    tiny = float(fmt.min_normal)
    if fmt.min_subnormal is not None:
        s = float(fmt.min_subnormal)
        sub = [s, s / 2, s / 4, 0.75 * s, 1.5 * s, 2.5 * s, tiny - s, tiny - s / 2, tiny, tiny + s / 2,
               float(np.finfo(dtype).smallest_subnormal)]
        cases.append(("subnormals", "smallest subnormal, half of it (tie with 0), ties between subnormals, "
                      "the largest subnormal and the tie rounding into the normal range", both_signs(sub)))
    else:
        cases.append(("underflow", "around the smallest value (no subnormals)",
                      both_signs([tiny, tiny / 2, 0.75 * tiny, 0.25 * tiny, 1.5 * tiny, 1.25 * tiny])))
    cases.append(("random", f"{n_random} seeded values, log-uniform over the format's range, both signs",
                  _random_float_values(fmt, rng, n_random)))
    return [(name, "random" if name == "random" else "directed", desc, cast(v, dtype)) for name, desc, v in cases]


def _random_float_values(fmt: FloatFormat, rng, n: int) -> np.ndarray:
    lo_exp = fmt.emin - fmt.mantissa_bits - 2
    exp = rng.integers(lo_exp, fmt.emax + 3, n)
    v = np.ldexp(rng.uniform(1, 2, n), exp) * rng.choice([-1.0, 1.0], n)
    k = n // 8                                       # some uniform over +-max: mostly large values
    v[:k] = rng.uniform(-float(fmt.max), float(fmt.max), k)
    return v


def _encode_int_values(fmt: IntFormat, zero: int, rng, n_random: int) -> list[tuple]:
    ks = sample(fmt.qmin - zero - 2, fmt.qmax - zero + 2, rng, 512, 16).astype(np.float64)
    ties = f32(ks + 0.5)
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    up, down = fmt.qmax - zero, fmt.qmin - zero
    steps = np.array([0.49, 0.5, 0.51, 1.0, 2.0, 1000.0])
    f32max = float(np.finfo(np.float32).max)
    overflow = np.concatenate([up + steps, down - steps, [1e30, -1e30, f32max, -f32max, np.inf, -np.inf]])
    spread = (fmt.qmax - fmt.qmin) / 4
    return [
        ("ties", "directed", "k + 0.5 around the whole range (positive and negative ties)", ties),
        ("near-ties", "directed", "one float32 ulp either side of each tie", near),
        ("overflow", "directed", "half a step inside and outside the range, far out, +-Inf", f32(overflow)),
        ("specials", "directed", "+-0 (NaN has no integer code)", f32([0.0, -0.0])),
        ("random", "random", f"{n_random} seeded normal values around the range", f32(rng.normal(0, spread, n_random))),
    ]


def _encode_cases(cfg, rng) -> tuple[list[Case], dict, dict]:
    fmt = get_format(cfg.format)
    n = cfg.random
    if isinstance(fmt, IntFormat):
        scale = f32(1.0 if cfg.scale is None else cfg.scale)
        zero = np.asarray(cfg.zero_point, container_dtype(fmt))
        cases = []
        for name, kind, desc, v in _encode_int_values(fmt, int(zero), rng, n):
            x = f32(v * scale)
            y = quantize_int(x, fmt, scale, zero, rounding=cfg.rounding, seed=cfg.rounding_seed)
            cases.append(Case(name, kind, desc, {"x": x, "scale": scale, "zero_point": zero}, {"y": y}))
        return cases, {"x": None, "scale": None, "zero_point": fmt.name, "y": fmt.name}, {}
    dtype = input_dtype(fmt)
    scale = None if cfg.scale is None else np.asarray(cfg.scale, dtype)
    cases = []
    for name, kind, desc, v in _encode_float_values(fmt, rng, n, dtype):
        x = v if scale is None else cast(v.astype(np.float64) * float(scale), dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = x if scale is None else (x / scale).astype(dtype)       # ONNX: a division in the input type
        y = encode(scaled, fmt, rounding=cfg.rounding, saturate=cfg.saturate, seed=cfg.rounding_seed)
        inputs = {"x": x} if scale is None else {"x": x, "scale": scale}
        cases.append(Case(name, kind, desc, inputs, {"y": y}))
    return cases, {"x": None, "scale": None, "y": fmt.name}, {}


class Encode(GoldenOp):
    name = "encode"
    aliases = ("quantize",)
    default_random = 256

    def format_rules(self, path) -> dict:
        only = not_for("encode takes --format only")
        return {"format": None, "weight_format": only, "output_format": only}

    def fill(self, cfg, path, hw):
        cfg = self.format_from_datapath(cfg, path, hw)
        fmt = get_format(cfg.format)
        if isinstance(fmt, IntFormat):
            if cfg.saturate is False:
                raise ValueError(f"{fmt.name}: integer encoding always saturates")
            if not fmt.qmin <= cfg.zero_point <= fmt.qmax:
                raise ValueError(f"zero_point {cfg.zero_point} is outside [{fmt.qmin}, {fmt.qmax}] of {fmt.name}")
            return cfg
        # encode itself refuses saturate=False where there is no Inf/NaN
        return replace(cfg, saturate=fmt.default_saturate if cfg.saturate is None else bool(cfg.saturate))

    def cases(self, cfg, path, hw, rng):
        return _encode_cases(cfg, rng)

    def overflow_mode(self, cfg, path):
        fmt = get_format(cfg.format)
        if isinstance(fmt, IntFormat) or cfg.saturate:
            return "saturate to +-max"
        return "overflow to Inf" if fmt.has_inf else "overflow to NaN"
