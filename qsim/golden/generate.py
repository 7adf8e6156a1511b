"""Golden cases per operation: directed edge cases and seeded random ones, with the expected
outputs computed by qsim's own kernels (proven bit-exact against real runtimes in tests/).

Operations (OPS): encode (alias quantize), decode, gemm, conv, requant, mx. Every case holds
its inputs and parameters as arrays; `make_golden(**golden.config)` regenerates the same set.
Float gemm/conv on a hardware description that converts its outputs (datapath.outputs not
fp32) carry y_out, the converted codes, beside y, the FP32 accumulator values.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from fractions import Fraction

import numpy as np

from ..codec import code_dtype, decode, encode, fits_float32
from ..datapaths import (IntDatapath, convert_output, float_conv, float_matmul, mx_matmul, qlinear_conv,
                         qlinear_matmul)
from ..datapaths.integer import _int_fmt, _output_format, requantize_accumulator
from ..formats import FloatFormat, IntFormat, builtin_formats, format as get_format
from ..hardware import hardware_presets, load_hardware
from ..plan import datapath_preset, datapath_presets
from ..plan import resolve_datapath as plan_datapath
from ..quant.intquant import container_dtype, quantize_int
from ..quant.mx import MXArray, mx_quantize
from ..rounding import rounding_code
from .store import Case, Golden, write_golden

OPS = ("encode", "decode", "gemm", "conv", "requant", "mx")
_ALIASES = {"quantize": "encode", "matmul": "gemm", "requantize": "requant", "mx_quantize": "mx"}
DEFAULT_RANDOM = {"encode": 256, "decode": 1024, "gemm": 6, "conv": 4, "requant": 256, "mx": 8}


# -- configuration ----------------------------------------------------------------------------
def canonical_op(op: str) -> str:
    key = _ALIASES.get(op, op) if isinstance(op, str) else op
    if key not in OPS:
        raise ValueError(f"unknown golden op {op!r}; choose one of {', '.join(OPS)} "
                         f"(aliases: {', '.join(_ALIASES)})")
    return key


def resolve_datapath(spec):
    """(datapath, hardware or None) from a datapath preset name, a hardware preset name or a
    hardware .toml path; a hardware description resolves as the simulator's plan does
    (qsim.plan.resolve_datapath)."""
    if spec is None:
        return None, None
    name = str(spec)
    if name in datapath_presets():
        return datapath_preset(name), None
    if name.endswith(".toml") or name in hardware_presets():
        hw = load_hardware(name)
        return plan_datapath(hw), hw
    raise ValueError(f"unknown datapath {name!r}: give a datapath preset ({', '.join(datapath_presets())}), "
                     f"a hardware preset ({', '.join(hardware_presets())}) or a .toml file")


def _is_int_path(path) -> bool:
    return isinstance(path, IntDatapath)


def _describe(obj):
    return asdict(obj) if is_dataclass(obj) else obj


def _pick(*names):
    """The first format name given, canonical; None if none is."""
    for n in names:
        if n is not None:
            return get_format(n).name
    return None


# -- format options ------------------------------------------------------------------------------
def _option(key: str) -> str:
    return f"{key} (--{key.replace('_', '-')})"


def _named_format(key: str, name):
    """The canonical name of a format option's value; an unknown name is reported with the option."""
    if name is None:
        return None
    try:
        return get_format(name).name
    except KeyError as e:
        raise KeyError(f"{_option(key)}: {e.args[0]}") from None
    except ValueError as e:
        raise ValueError(f"{_option(key)}: {e}") from None


def _small_int(f) -> bool:
    return isinstance(f, IntFormat) and f.bits <= 8


def _small_signed_float(f) -> bool:
    """Operands of golden float GEMM/conv and MX elements: signed, with a zero, codes enumerable."""
    return isinstance(f, FloatFormat) and f.signed and f.has_zero and f.storage_bits <= 16


# what a format option must be: (description, test); the built-in formats that pass are listed
_INT_OPERAND = ("an integer format of 2 to 8 bits", _small_int)
_FLOAT_OPERAND = ("a signed float format of at most 16 bits with a zero (or a custom e<E>m<M>[fn|fnuz] of "
                  "at most 16 bits)", _small_signed_float)


def _must_be(rule) -> str:
    description, test = rule
    return f"{description}: {', '.join(f.name for f in builtin_formats() if test(f))}"


def _not_for(reason: str):
    return (reason, None)                        # a rule that no format passes: the option does not apply


def _format_rules(op: str, path) -> dict:
    """What each format option must be for this op and datapath: None (any format), or
    (description, test), with test None where the option does not apply."""
    if op in ("encode", "decode"):
        only = _not_for(f"{op} takes --format only")
        return {"format": None, "weight_format": only, "output_format": only}
    if op == "mx":
        only = _not_for("mx takes --format (the element format) only")
        return {"format": _FLOAT_OPERAND, "weight_format": only, "output_format": only}
    if op == "requant":
        only = _not_for("requant takes --output-format only (accumulators are its inputs)")
        return {"format": only, "weight_format": only, "output_format": _INT_OPERAND}
    if _is_int_path(path):
        return {"format": _INT_OPERAND, "weight_format": _INT_OPERAND, "output_format": _INT_OPERAND}
    outputs = _not_for(f"float GEMM/conv write the FP32 accumulator y, and y_out in the format of a hardware "
                       f"description's datapath.outputs; the float datapath {path.name} takes no output format")
    if path.block_size:
        def fixed(name):
            return (f"the element format of the MX datapath {path.name}", lambda f: f == get_format(name))
        return {"format": fixed(path.a_format), "weight_format": fixed(path.b_format), "output_format": outputs}
    return {"format": _FLOAT_OPERAND, "weight_format": _FLOAT_OPERAND, "output_format": outputs}


def _check_format_options(op: str, cfg: dict, path) -> None:
    """Refuse a format option the op cannot take, naming the option and what it must be."""
    for key, rule in _format_rules(op, path).items():
        name = cfg[key]
        if name is None or rule is None:
            continue
        where = f"{_option(key)} {name} for {op}" + ("" if cfg["datapath"] is None else f" on {cfg['datapath']}")
        if rule[1] is None:
            raise ValueError(f"{where}: the option does not apply ({rule[0]})")
        if not rule[1](get_format(name)):
            raise ValueError(f"{where}: it must be {_must_be(rule)}")


def _float_only(name: str | None, what: str, path_name: str) -> str | None:
    if name is not None and not isinstance(get_format(name), FloatFormat):
        raise ValueError(f"{what} {name} on the float datapath {path_name}: golden float GEMM/conv "
                         "take float operand formats only")
    return name


# -- small helpers ------------------------------------------------------------------------------
def _ints(rng, fmt: IntFormat, shape, lo=None, hi=None) -> np.ndarray:
    lo = fmt.qmin if lo is None else max(lo, fmt.qmin)
    hi = fmt.qmax if hi is None else min(hi, fmt.qmax)
    return np.asarray(rng.integers(lo, hi + 1, shape)).astype(container_dtype(fmt))


def _middle(fmt: IntFormat) -> int:
    return 0 if fmt.signed else (fmt.qmax + 1) // 2


def _zero(rng, fmt: IntFormat, n=None, narrow=False) -> np.ndarray:
    """A zero point: anywhere in range for activations; near the middle (narrow) for weights."""
    if narrow:
        return _ints(rng, fmt, n if n else (), _middle(fmt) - 3, _middle(fmt) + 3)
    return _ints(rng, fmt, n if n else ())


def _f32(v) -> np.ndarray:
    return np.asarray(v, np.float32)


def _pow2(rng, lo: int, hi: int, n=None) -> np.ndarray:
    return _f32(2.0 ** rng.integers(lo, hi + 1, n))


def _log_uniform(rng, lo: float, hi: float, n=None) -> np.ndarray:
    return _f32(10 ** rng.uniform(lo, hi, n))


def _both_signs(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return np.concatenate([v, -v])


def _value(fmt, code: int) -> float:
    v = fmt.exact_value(code)
    return float(v) if isinstance(v, Fraction) else v


def _input_dtype(fmt) -> np.dtype:
    """float32 inputs where every value of the format and its midpoints are float32s."""
    ok = isinstance(fmt, IntFormat) or (fits_float32(fmt) and fmt.storage_bits < 32)
    return np.dtype(np.float32 if ok else np.float64)


def _cast(v, dtype) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(v, np.float64).astype(dtype)


def _sample(lo: int, hi: int, rng, limit: int, keep_ends: int = 8) -> np.ndarray:
    """At most about `limit` integers of [lo, hi), ascending, always with the first and last few."""
    if hi - lo <= limit:
        return np.arange(lo, hi, dtype=np.int64)
    middle = rng.integers(lo + keep_ends, hi - keep_ends, limit - 2 * keep_ends, dtype=np.int64)
    ends = np.concatenate([np.arange(lo, lo + keep_ends), np.arange(hi - keep_ends, hi)])
    return np.unique(np.concatenate([ends, middle]))


# -- encode -----------------------------------------------------------------------------------------
def _adjacent_pairs(fmt: FloatFormat, rng, limit: int = 256):
    """(lo, hi) values of adjacent non-negative finite codes (codes ascend with value)."""
    codes = _sample(0, fmt.max_code_magnitude, rng, limit)
    lo = decode(codes.astype(np.uint32), fmt, dtype=np.float64)
    hi = decode((codes + 1).astype(np.uint32), fmt, dtype=np.float64)
    return lo, hi


def _encode_float_values(fmt: FloatFormat, rng, n_random: int, dtype) -> list[tuple]:
    lo, hi = _adjacent_pairs(fmt, rng)
    mid = _cast(_both_signs((lo + hi) / 2), dtype)
    near = np.concatenate([np.nextafter(mid, dtype.type(np.inf)), np.nextafter(mid, dtype.type(-np.inf))])
    top = float(fmt.max)
    ulp_top = top - _value(fmt, fmt.max_code_magnitude - 1)
    tie = top + ulp_top / 2
    big = float(np.finfo(dtype).max)
    tie_d = _cast([tie], dtype)
    overflow = [top, _value(fmt, fmt.max_code_magnitude - 1), tie,
                float(np.nextafter(tie_d, dtype.type(0))[0]), float(np.nextafter(tie_d, dtype.type(np.inf))[0]),
                top + ulp_top, 2 * top, 1e30, big]
    specials = [0.0, np.inf] + ([np.nan] if fmt.has_nan else [])
    cases = [
        ("ties", "exact midpoints between adjacent codes (round-to-nearest ties), both signs", mid),
        ("near-ties", "one input ulp above and below each midpoint", near),
        ("overflow", f"max {top:g}, the overflow tie {tie:g}, its neighbours, max + ulp, beyond, both signs",
         _both_signs(overflow)),
        ("specials", "+-0, +-Inf" + (", +-NaN" if fmt.has_nan else ""), _both_signs(specials)),
    ]
    tiny = float(fmt.min_normal)
    if fmt.min_subnormal is not None:
        s = float(fmt.min_subnormal)
        sub = [s, s / 2, s / 4, 0.75 * s, 1.5 * s, 2.5 * s, tiny - s, tiny - s / 2, tiny, tiny + s / 2,
               float(np.finfo(dtype).smallest_subnormal)]
        cases.append(("subnormals", "smallest subnormal, half of it (tie with 0), ties between subnormals, "
                      "the largest subnormal and the tie rounding into the normal range", _both_signs(sub)))
    else:
        cases.append(("underflow", "around the smallest value (no subnormals)",
                      _both_signs([tiny, tiny / 2, 0.75 * tiny, 0.25 * tiny, 1.5 * tiny, 1.25 * tiny])))
    cases.append(("random", f"{n_random} seeded values, log-uniform over the format's range, both signs",
                  _random_float_values(fmt, rng, n_random)))
    return [(name, "random" if name == "random" else "directed", desc, _cast(v, dtype)) for name, desc, v in cases]


def _random_float_values(fmt: FloatFormat, rng, n: int) -> np.ndarray:
    lo_exp = fmt.emin - fmt.mantissa_bits - 2
    exp = rng.integers(lo_exp, fmt.emax + 3, n)
    v = np.ldexp(rng.uniform(1, 2, n), exp) * rng.choice([-1.0, 1.0], n)
    k = n // 8                                       # some uniform over +-max: mostly large values
    v[:k] = rng.uniform(-float(fmt.max), float(fmt.max), k)
    return v


def _encode_int_values(fmt: IntFormat, zero: int, rng, n_random: int) -> list[tuple]:
    ks = _sample(fmt.qmin - zero - 2, fmt.qmax - zero + 2, rng, 512, 16).astype(np.float64)
    ties = _f32(ks + 0.5)
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    up, down = fmt.qmax - zero, fmt.qmin - zero
    steps = np.array([0.49, 0.5, 0.51, 1.0, 2.0, 1000.0])
    f32max = float(np.finfo(np.float32).max)
    overflow = np.concatenate([up + steps, down - steps, [1e30, -1e30, f32max, -f32max, np.inf, -np.inf]])
    spread = (fmt.qmax - fmt.qmin) / 4
    return [
        ("ties", "directed", "k + 0.5 around the whole range (positive and negative ties)", ties),
        ("near-ties", "directed", "one float32 ulp either side of each tie", near),
        ("overflow", "directed", "half a step inside and outside the range, far out, +-Inf", _f32(overflow)),
        ("specials", "directed", "+-0 (NaN has no integer code)", _f32([0.0, -0.0])),
        ("random", "random", f"{n_random} seeded normal values around the range", _f32(rng.normal(0, spread, n_random))),
    ]


def _encode_cases(cfg, rng) -> tuple[list[Case], dict, dict]:
    fmt = get_format(cfg["format"])
    n = cfg["random"]
    if isinstance(fmt, IntFormat):
        scale = _f32(1.0 if cfg["scale"] is None else cfg["scale"])
        zero = np.asarray(cfg["zero_point"], container_dtype(fmt))
        cases = []
        for name, kind, desc, v in _encode_int_values(fmt, int(zero), rng, n):
            x = _f32(v * scale)
            y = quantize_int(x, fmt, scale, zero, rounding=cfg["rounding"], seed=cfg["rounding_seed"])
            cases.append(Case(name, kind, desc, {"x": x, "scale": scale, "zero_point": zero}, {"y": y}))
        return cases, {"x": None, "scale": None, "zero_point": fmt.name, "y": fmt.name}, {}
    dtype = _input_dtype(fmt)
    scale = None if cfg["scale"] is None else np.asarray(cfg["scale"], dtype)
    cases = []
    for name, kind, desc, v in _encode_float_values(fmt, rng, n, dtype):
        x = v if scale is None else _cast(v.astype(np.float64) * float(scale), dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = x if scale is None else (x / scale).astype(dtype)       # ONNX: a division in the input type
        y = encode(scaled, fmt, rounding=cfg["rounding"], saturate=cfg["saturate"], seed=cfg["rounding_seed"])
        inputs = {"x": x} if scale is None else {"x": x, "scale": scale}
        cases.append(Case(name, kind, desc, inputs, {"y": y}))
    return cases, {"x": None, "scale": None, "y": fmt.name}, {}


# -- decode -----------------------------------------------------------------------------------------
def _decode_cases(cfg, rng) -> tuple[list[Case], dict, dict]:
    fmt = get_format(cfg["format"])
    if isinstance(fmt, IntFormat):
        out_dtype = container_dtype(fmt)
        out_fmt = f"{'' if fmt.signed else 'u'}int{out_dtype.itemsize * 8}"
    elif fits_float32(fmt):
        out_fmt = "fp32"
    else:
        raise ValueError(f"golden decode writes float32 outputs; {fmt.name} has values float32 cannot hold")
    cdt = code_dtype(fmt)
    groups = []
    if fmt.storage_bits <= 16:
        groups.append(("all-codes", "directed", f"every one of the {fmt.n_codes} codes", np.arange(fmt.n_codes)))
    else:
        sign, inf = fmt.sign_bit, fmt.inf_code or fmt.magnitude_mask
        special = [0, sign, 1, sign | 1, fmt.max_code_magnitude, sign | fmt.max_code_magnitude, inf, sign | inf,
                   inf + 1, fmt.magnitude_mask, fmt.n_codes - 1, 1 << fmt.mantissa_bits, (1 << fmt.mantissa_bits) - 1]
        groups.append(("specials", "directed", "zeros, smallest subnormal, max, Inf, NaN payloads, the "
                       "normal/subnormal boundary", np.array(special)))
        groups.append(("random", "random", f"{cfg['random']} seeded codes",
                       rng.integers(0, fmt.n_codes, cfg["random"], dtype=np.uint64)))
    cases = []
    for name, kind, desc, codes in groups:
        codes = codes.astype(cdt)
        y = decode(codes, fmt) if isinstance(fmt, IntFormat) else decode(codes, fmt, dtype=np.float32)
        cases.append(Case(name, kind, desc, {"codes": codes}, {"y": y}))
    return cases, {"codes": fmt.name, "y": out_fmt}, {}


# -- integer GEMM and convolution -------------------------------------------------------------------
def _int_formats(cfg, hw) -> tuple[IntFormat, IntFormat, IntFormat]:
    a = _int_fmt(_pick(cfg["format"], hw and hw.datapath.activations, "uint8"), "", "format")
    b = _int_fmt(_pick(cfg["weight_format"], hw and hw.datapath.weights, "int8"), "", "weight_format")
    y = _output_format(_pick(cfg["output_format"], hw and hw.datapath.outputs), a)
    return a, b, y


def _bias(rng, path, n: int, sa, sb, tie: bool = False) -> np.ndarray:
    """An int32 bias (scale sa * sb), or a float one for the PyTorch datapaths."""
    if path.bias == "float":
        if tie:                                   # half multiples of the product scale: ties
            return _f32(rng.integers(-40, 41, n) * 0.5 * np.float32(sa) * np.min(np.asarray(sb, np.float32)))
        return _f32(rng.normal(0, 2, n))
    return rng.integers(-40, 41, n).astype(np.int32) if tie else rng.integers(-4096, 4097, n).astype(np.int32)


def _overflow_k(bits: int, a_mag: int, b_mag: int) -> tuple[int, int] | None:
    """A dot-product length whose sum of extreme products passes the accumulator's range, and
    the margin (products beyond the range)."""
    base = (1 << (bits - 1)) // max(1, a_mag * b_mag)
    margin = max(2, base // 64)
    return (base + margin, margin) if base + margin <= 300_000 else None


def _extremes(af: IntFormat, bf: IntFormat):
    """The activation code farthest from 0, and weight codes giving the largest positive and
    negative products with it."""
    a = af.qmin if af.signed and -af.qmin > af.qmax and bf.signed else af.qmax   # unsigned weights: a > 0
    pos = bf.qmax if a > 0 else bf.qmin
    neg = (bf.qmin if a > 0 else bf.qmax) if bf.signed else 0
    return a, pos, neg


class _IntLayer:
    """Case builder shared by integer GEMM and convolution: formats, scales, zero points, bias."""

    def __init__(self, cfg, path, hw, rng):
        self.cfg, self.path, self.rng = cfg, path, rng
        self.af, self.bf, self.yf = _int_formats(cfg, hw)

    def params(self, n_out: int, per_channel: bool, tie: bool = False, scales=None) -> dict:
        rng, af, bf, yf = self.rng, self.af, self.bf, self.yf
        n = n_out if per_channel else None
        if scales is not None:
            sa, sb, sy = scales
        elif tie:       # power-of-two scales: the multiplier is exact and acc * m lands on .5
            sa, sb, sy = _pow2(rng, -3, 0), _pow2(rng, -3, 0, n), _pow2(rng, 0, 2)
        else:
            sa, sb, sy = _log_uniform(rng, -3, -1), _log_uniform(rng, -3, -1, n), _log_uniform(rng, -2, 0)
        p = {"a_scale": _f32(sa), "a_zero": _zero(rng, af), "b_scale": _f32(sb),
             "b_zero": _zero(rng, bf, n, narrow=True), "y_scale": _f32(sy), "y_zero": _zero(rng, yf)}
        if self.cfg["bias"]:
            p["bias"] = _bias(rng, self.path, n_out, sa, sb, tie)
        return p

    def near_zero(self, shape, zero, fmt: IntFormat) -> np.ndarray:
        return np.clip(self.rng.integers(-4, 5, shape) + int(zero), fmt.qmin, fmt.qmax).astype(container_dtype(fmt))

    def small_weights(self, shape) -> np.ndarray:
        """Weights near the middle of their range, where the weight zero points lie."""
        return self.near_zero(shape, _middle(self.bf), self.bf)

    def overflow(self) -> tuple[int, int, int, int, int] | None:
        """(K, margin, activation code, positive and negative weight codes) of dot products in
        which every nonzero weight column leaves the accumulator's range; None if K is too long."""
        ext, pos, neg = _extremes(self.af, self.bf)
        sized = _overflow_k(self.path.accumulator.bits, abs(ext), min(abs(w) for w in (pos, neg) if w))
        return None if sized is None else (*sized, ext, pos, neg)

    def overflow_params(self, n_out: int) -> dict:
        """Zero points and bias 0, and an output scale at which the accumulator's range shows."""
        sa, sb = _f32(0.01), _f32(0.02)
        p = self.params(n_out, False, scales=(sa, sb, _f32(sa * sb * 2.0 ** (self.path.accumulator.bits - 1) / 100)))
        for key in ("a_zero", "b_zero", "bias"):
            if key in p:
                p[key] = np.zeros_like(p[key])
        return p

    def overflow_effect(self) -> str:
        acc = self.path.accumulator
        return f"the int{acc.bits} accumulator {'wraps' if acc.overflow == 'wrap' else 'saturates'}"

    def formats(self) -> dict:
        return {"a": self.af.name, "a_zero": self.af.name, "b": self.bf.name, "b_zero": self.bf.name,
                "y_zero": self.yf.name, "y": self.yf.name}


def _gemm_int_cases(cfg, path, hw, rng):
    layer = _IntLayer(cfg, path, hw, rng)
    af, bf = layer.af, layer.bf
    raw = []

    def add(name, kind, desc, a, b, p):
        raw.append((name, kind, desc, {"a": a, "b": b, **p}))

    p = layer.params(5, False)
    add("zero-points", "directed", "nonzero activation and weight zero points, per-tensor scales",
        _ints(rng, af, (3, 17)), _ints(rng, bf, (17, 5)), p)
    p = layer.params(6, True)
    add("per-channel", "directed", "per-column weight scales and zero points",
        _ints(rng, af, (4, 33)), _ints(rng, bf, (33, 6)), p)
    p = layer.params(7, False, tie=True)
    a = layer.near_zero((5, 9), p["a_zero"], af)
    add("requant-ties", "directed", "power-of-two scales and small values: acc * m lands on exact .5 ties",
        a, layer.small_weights((9, 7)), p)
    p = layer.params(4, True, tie=True)
    add("requant-ties-per-channel", "directed", "ties with per-column power-of-two weight scales",
        layer.near_zero((6, 11), p["a_zero"], af), layer.small_weights((11, 4)), p)
    p = layer.params(4, False)
    p["y_scale"] = _f32(p["a_scale"] * p["b_scale"] * 4)
    add("output-saturation", "directed", "a small output scale: results clamp at both ends of the output range",
        _ints(rng, af, (3, 40)), _ints(rng, bf, (40, 4)), p)
    overflow = layer.overflow()
    if overflow is not None:
        k, margin, ext, pos, neg = overflow
        a = np.full((2, k), ext, container_dtype(af))
        a[1, k - margin // 2:] = 0                             # a second row, still out of range
        # columns: largest positive products, largest negative ones, a quarter of them (in range)
        control = np.where(np.arange(k) < k // 4, pos, 0)
        b = np.stack([np.full(k, pos), np.full(k, neg), control], axis=1).astype(container_dtype(bf))
        add("accumulator-overflow", "directed", f"K={k} extreme products: {layer.overflow_effect()}", a, b,
            layer.overflow_params(3))
    for i in range(cfg["random"]):
        m, k, n = (int(v) for v in rng.integers(1, [7, 200, 9]))
        per_channel = bool(rng.integers(0, 2))
        add(f"random-{i:03d}", "random", f"seeded {m}x{k} @ {k}x{n}, {'per-channel' if per_channel else 'per-tensor'}",
            _ints(rng, af, (m, k)), _ints(rng, bf, (k, n)), layer.params(n, per_channel))
    cases = []
    for name, kind, desc, x in raw:
        y = qlinear_matmul(x["a"], x["a_scale"], x["a_zero"], x["b"], x["b_scale"], x["b_zero"], x["y_scale"],
                           x["y_zero"], x.get("bias"), datapath=path, a_format=af, b_format=bf, y_format=layer.yf)
        cases.append(Case(name, kind, desc, x, {"y": y}))
    info = {"a_format": af.name, "b_format": bf.name, "y_format": layer.yf.name}
    return cases, layer.formats(), info


def _geometry(stride, padding, dilation, groups) -> dict:
    return {"stride": np.asarray(stride, np.int32), "padding": np.asarray(padding, np.int32),
            "dilation": np.asarray(dilation, np.int32), "groups": np.asarray(groups, np.int32)}


def _conv_int_cases(cfg, path, hw, rng):
    layer = _IntLayer(cfg, path, hw, rng)
    af, bf = layer.af, layer.bf
    raw = []

    def add(name, kind, desc, x, w, geometry, per_channel=False, tie=False):
        p = layer.params(w.shape[0], per_channel, tie)
        if tie:
            x = layer.near_zero(x.shape, p["a_zero"], af)
        raw.append((name, kind, desc, {"x": x, "w": w, **p, **geometry}))

    add("padding-zero-point", "directed", "3x3 kernel, padding 1 holding a nonzero input zero point",
        _ints(rng, af, (1, 3, 5, 5)), _ints(rng, bf, (4, 3, 3, 3)), _geometry((1, 1), (1, 1, 1, 1), (1, 1), 1))
    add("stride", "directed", "strides (2, 3) with asymmetric padding",
        _ints(rng, af, (1, 2, 7, 8)), _ints(rng, bf, (3, 2, 3, 2)), _geometry((2, 3), (0, 1, 1, 0), (1, 1), 1))
    add("dilation", "directed", "dilation 2, padding 2",
        _ints(rng, af, (1, 2, 7, 7)), _ints(rng, bf, (2, 2, 3, 3)), _geometry((1, 1), (2, 2, 2, 2), (2, 2), 1))
    add("depthwise", "directed", "groups = channels, per-channel weight scales",
        _ints(rng, af, (1, 4, 5, 5)), _ints(rng, bf, (4, 1, 3, 3)), _geometry((1, 1), (1, 1, 1, 1), (1, 1), 4), True)
    add("per-channel", "directed", "per-output-channel weight scales and zero points, batch 2",
        _ints(rng, af, (2, 3, 4, 4)), _ints(rng, bf, (5, 3, 2, 2)), _geometry((1, 1), (0, 0, 0, 0), (1, 1), 1), True)
    add("requant-ties", "directed", "power-of-two scales and small values: exact .5 ties",
        _ints(rng, af, (1, 2, 5, 5)), layer.small_weights((3, 2, 2, 2)),
        _geometry((1, 1), (0, 0, 0, 0), (1, 1), 1), tie=True)
    add("conv1d", "directed", "1-D convolution, stride 2",
        _ints(rng, af, (1, 3, 9)), _ints(rng, bf, (2, 3, 3)), _geometry((2,), (1, 1), (1,), 1))
    overflow = layer.overflow()
    if overflow is not None:
        k, _, ext, pos, neg = overflow
        x = np.full((1, k, 1, 1), ext, container_dtype(af))
        w = np.stack([np.full(k, pos), np.full(k, neg)]).reshape(2, k, 1, 1).astype(container_dtype(bf))
        raw.append(("accumulator-overflow", "directed", f"1x1 kernel over {k} channels of extreme products: "
                    f"{layer.overflow_effect()}",
                    {"x": x, "w": w, **layer.overflow_params(2), **_geometry((1, 1), (0, 0, 0, 0), (1, 1), 1)}))
    for i in range(cfg["random"]):
        c, groups = int(rng.integers(1, 4)) * 2, int(rng.choice([1, 2]))
        c_out = groups * int(rng.integers(1, 3))
        ks, stride, dil = rng.integers(1, 4, 2), rng.integers(1, 3, 2), rng.integers(1, 3, 2)
        size = tuple(int(v) for v in rng.integers(3, 7, 2) + dil * ks)
        add(f"random-{i:03d}", "random", f"seeded conv x(1,{c},{size[0]},{size[1]}) w({c_out},{c // groups},"
            f"{ks[0]},{ks[1]}) stride {tuple(stride)} dilation {tuple(dil)} groups {groups}",
            _ints(rng, af, (1, c) + size), _ints(rng, bf, (c_out, c // groups) + tuple(int(v) for v in ks)),
            _geometry(stride, rng.integers(0, 2, 4), dil, groups), bool(rng.integers(0, 2)))
    cases = []
    for name, kind, desc, x in raw:
        y = qlinear_conv(x["x"], x["a_scale"], x["a_zero"], x["w"], x["b_scale"], x["b_zero"], x["y_scale"],
                         x["y_zero"], x.get("bias"), stride=tuple(x["stride"].tolist()),
                         padding=tuple(x["padding"].tolist()), dilation=tuple(x["dilation"].tolist()),
                         groups=int(x["groups"]), datapath=path, x_format=af, w_format=bf, y_format=layer.yf)
        renamed = {_CONV_NAMES.get(k, k): v for k, v in x.items()}
        cases.append(Case(name, kind, desc, renamed, {"y": y}))
    formats = {_CONV_NAMES.get(k, k): v for k, v in layer.formats().items() if k not in ("a", "b")}
    formats.update(x=af.name, w=bf.name)
    return cases, formats, {"x_format": af.name, "w_format": bf.name, "y_format": layer.yf.name}


_CONV_NAMES = {"a_scale": "x_scale", "a_zero": "x_zero", "b_scale": "w_scale", "b_zero": "w_zero"}


# -- floating-point GEMM and convolution --------------------------------------------------------------
def _float_formats(cfg, path, hw):
    a = _pick(cfg["format"], _float_only(hw and hw.datapath.activations, "activations", path.name), path.a_format)
    b = _pick(cfg["weight_format"], _float_only(hw and hw.datapath.weights, "weights", path.name), path.b_format, a)
    if a is None:
        raise ValueError(f"datapath {path.name} takes any input format: pass format= (--format)")
    for name in (a, b):
        _float_only(name, "format", path.name)
        if get_format(name).storage_bits > 16:
            raise ValueError(f"golden float GEMM/conv take operand formats of at most 16 bits, got {name}")
    return get_format(a), get_format(b)


def _finite_codes(fmt: FloatFormat) -> np.ndarray:
    codes = np.arange(fmt.n_codes)
    return codes[np.isfinite(decode(codes, fmt, dtype=np.float64))]


def _saturated_codes(fmt, values) -> np.ndarray:
    return encode(np.asarray(values, np.float64), fmt, saturate=True)


def _float_operands(fa, fb, rng) -> list[tuple]:
    """Directed (name, description, a values, b values) for float GEMM."""
    ma, mb, ta, tb = float(fa.max), float(fb.max), float(fa.min_normal), float(fb.min_normal)
    k = 64
    cancel_a = np.array([[ma, -ma] + [ta] * 6, [ta] * 6 + [ma, -ma], [ma, ta, -ma, ta, ta, ta, ta, ta]])
    out = [("cancellation", "large terms cancelling around small ones (absorption, order of adds)",
            cancel_a, np.ones((8, 2)))]
    big = np.full((2, k), ma)
    big[1, 1::2] = -ma / 2
    out.append(("large-sums", f"{k} products of the largest values: FP32 rounding of big partial sums, "
                "overflow to Inf where the range allows", big, np.full((k, 3), mb)))
    if fa.min_subnormal is not None and fb.min_subnormal is not None:
        sa, sb = float(fa.min_subnormal), float(fb.min_subnormal)
        out.append(("subnormals", "products of subnormals (underflow in the accumulator)",
                    np.array([[sa, sa, ta, 3 * sa]]), np.array([[sb, tb], [sb, sb], [tb, sb], [sb, 1.0]])))
    specials = []
    if fa.has_nan:
        specials.append(np.nan)
    if fa.has_inf:
        specials += [np.inf, -np.inf]
    if specials:
        a = np.zeros((len(specials), 4))
        a[:, 0] = specials
        a[:, 1] = 1.0
        b = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
        if fa.has_inf:
            a[-1, 1] = np.inf                  # Inf + -Inf -> NaN
        out.append(("specials", "NaN and Inf operands, Inf * 0, Inf - Inf", a, b))
    return out


def _gemm_float_cases(cfg, path, hw, rng):
    if path.block_size:
        return _gemm_mx_cases(cfg, path, rng)
    fa, fb = _float_formats(cfg, path, hw)
    ca, cb = _finite_codes(fa), _finite_codes(fb)
    raw = [(n, "directed", d, _saturated_codes(fa, a), _saturated_codes(fb, b)) for n, d, a, b in _float_operands(fa, fb, rng)]
    for i in range(cfg["random"]):
        m, k, n = (int(v) for v in rng.integers(1, [6, 300, 6]))
        raw.append((f"random-{i:03d}", "random", f"seeded finite codes {m}x{k} @ {k}x{n}",
                    rng.choice(ca, (m, k)).astype(code_dtype(fa)), rng.choice(cb, (k, n)).astype(code_dtype(fb))))
    cases = [Case(n, kind, d, {"a": a, "b": b},
                  {"y": float_matmul(a, b, fa, fb, path.accumulator).astype(np.float32)}) for n, kind, d, a, b in raw]
    return cases, {"a": fa.name, "b": fb.name, "y": "fp32"}, {"a_format": fa.name, "b_format": fb.name,
                                                             "y": "FP32 accumulator values"}


def _conv_float_cases(cfg, path, hw, rng):
    if path.block_size:
        raise ValueError(f"golden conv does not model MX datapaths ({path.name}); use op gemm or mx")
    fa, fb = _float_formats(cfg, path, hw)
    ca, cb = _finite_codes(fa), _finite_codes(fb)

    def codes(fmt, pool, shape):
        return rng.choice(pool, shape).astype(code_dtype(fmt))

    raw = [("padding", "directed", "3x3 kernel, padding 1 (padded taps are +0)", codes(fa, ca, (1, 2, 4, 4)),
            codes(fb, cb, (3, 2, 3, 3)), _geometry((1, 1), (1, 1, 1, 1), (1, 1), 1)),
           ("stride", "directed", "strides (2, 2), asymmetric padding", codes(fa, ca, (1, 2, 7, 6)),
            codes(fb, cb, (2, 2, 3, 2)), _geometry((2, 2), (0, 1, 1, 0), (1, 1), 1)),
           ("large", "directed", "largest values: FP32 rounding (and overflow where the range allows)",
            _saturated_codes(fa, np.full((1, 4, 3, 3), float(fa.max))), _saturated_codes(fb, np.full((2, 4, 3, 3), float(fb.max))),
            _geometry((1, 1), (0, 0, 0, 0), (1, 1), 1))]
    for i in range(cfg["random"]):
        c, k = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        raw.append((f"random-{i:03d}", "random", f"seeded conv of finite codes, {c} channels, {k}x{k} kernel",
                    codes(fa, ca, (1, c, k + 3, k + 2)), codes(fb, cb, (2, c, k, k)),
                    _geometry((1, 1), (0, 0, 0, 0), (1, 1), 1)))
    cases = []
    for name, kind, desc, x, w, g in raw:
        y = float_conv(x, w, fa, fb, tuple(g["stride"].tolist()), tuple(g["padding"].tolist()),
                       tuple(g["dilation"].tolist()), int(g["groups"]), path.accumulator)
        cases.append(Case(name, kind, desc, {"x": x, "w": w, **g}, {"y": y.astype(np.float32)}))
    return cases, {"x": fa.name, "w": fb.name, "y": "fp32"}, {"x_format": fa.name, "w_format": fb.name,
                                                             "y": "FP32 accumulator values"}


# the hardware's output conversion of float GEMM/conv: y_out beside the FP32 accumulator y
OUTPUT_CONVERSION = {"scale": 1.0, "rounding": "rne", "saturate": None}


def _output_format_of(hw) -> FloatFormat | None:
    """The format a float hardware description converts the FP32 accumulator to (its
    datapath.outputs), or None when there is no conversion: no hardware description (a plain
    datapath preset), or outputs = fp32."""
    if hw is None or hw.datapath.kind != "float":
        return None
    fmt = get_format(hw.datapath.outputs)
    if fmt == get_format("fp32"):
        return None
    if not isinstance(fmt, FloatFormat):
        raise ValueError(f"hardware {hw.name}: datapath.outputs = {fmt.name} on a float datapath; golden float "
                         "GEMM/conv convert the FP32 accumulator to a float output format only")
    return fmt


def _converted_output(cases, formats, info, hw):
    """Add the output y_out to float GEMM/conv cases when the hardware converts its outputs:
    codes of convert_output(y, datapath.outputs, scale=1.0, rounding="rne", saturate=None),
    i.e. encode(float32(y * 1.0)) with the format's default overflow. y stays the FP32
    accumulator values."""
    fmt = _output_format_of(hw)
    if fmt is None:
        return cases, formats, info
    for case in cases:
        case.expected["y_out"] = convert_output(case.expected["y"], fmt, **OUTPUT_CONVERSION).astype(code_dtype(fmt))
    conversion = {"format": fmt.name, **OUTPUT_CONVERSION,
                  "saturate_resolved": bool(fmt.default_saturate), "from": f"hardware {hw.name} datapath.outputs"}
    info = {**info, "y_out": f"{fmt.name} codes of y converted as the hardware's output: convert_output(y, "
                             f"{fmt.name}, scale=1.0, rounding='rne', saturate=None) = encode(float32(y * 1.0))",
            "output_conversion": conversion}
    return cases, {**formats, "y_out": fmt.name}, info


# -- MX -------------------------------------------------------------------------------------------------
def _mx_element(cfg, path, hw) -> tuple[FloatFormat, int]:
    mx_path = path if getattr(path, "block_size", 0) else None
    name = _pick(cfg["format"], mx_path and mx_path.a_format, hw and hw.datapath.activations)
    if name is None:
        raise ValueError("mx needs an element format: pass format= (--format), or an MX datapath")
    if cfg["format"] is None and not _FLOAT_OPERAND[1](get_format(name)):     # format= is checked with the options
        source = f"the MX datapath {mx_path.name}" if mx_path else f"hardware {hw.name} datapath.activations"
        raise ValueError(f"mx: the element format {name} from {source} is not an MX element format; pass format= "
                         f"(--format): it must be {_must_be(_FLOAT_OPERAND)}")
    block = cfg["block_size"] or (mx_path.block_size if mx_path else 0) or (hw.quantization.mx_block if hw else 32)
    return get_format(name), int(block)


def _mx_rows(elem: FloatFormat, block: int, rng, n_random: int) -> list[tuple]:
    top = float(elem.max)
    scale_e = 2.0 ** rng.integers(-4, 5, 1)[0]
    emax_pow = 2.0 ** elem.emax
    grid = np.unique(np.abs(decode(_finite_codes(elem), elem, dtype=np.float64)))
    mids = (grid[:-1] + grid[1:]) / 2
    ties = np.concatenate([[emax_pow], mids[np.linspace(0, mids.size - 1, block - 1).astype(int)]]) * scale_e
    ties[1::2] *= -1                             # ties[0] = 2^emax * scale_e fixes the block scale at scale_e
    f32 = np.finfo(np.float32)
    rows = [
        ("ties", "element midpoints in a block whose amax fixes the scale: round-to-nearest-even ties", ties),
        ("clamp", "amax just below the next power of two: the largest elements clamp to +-max (floor rule)",
         np.linspace(-1.99, 1.99, block) * emax_pow * 2.0 ** 3),
        ("zero-block", "an all-zero block", np.zeros(block)),
        ("nan-block", "a NaN in the block", np.where(np.arange(block) == 3, np.nan, 1.5)),
        ("inf-block", "+Inf and -Inf in blocks", np.where(np.arange(block) == 0, np.inf, -2.0)),
        ("max-exponent", "float32's largest values (shared exponent 127 - emax)", np.full(block, f32.max) *
         np.resize([1, -1, 0.5], block)),
        ("min-exponent", "tiny values: the shared exponent clamps at -127, elements underflow",
         np.ldexp(np.resize([1.0, 1.5, -1.0, 1.75], block), -140)),
        ("subnormal-elements", "a block spanning more binades than the element type: subnormal elements",
         np.ldexp(1.0, -np.arange(block) % 20) * top),
    ]
    out = [(n, "directed", d, np.asarray(v, np.float64)[None, :]) for n, d, v in rows]
    partial = rng.normal(0, 1, (2, block + block // 4 + 1))
    out.append(("partial-block", "directed", "a row length that is not a multiple of the block size", partial))
    n_rows = max(1, n_random // block)
    x = rng.normal(0, 1, (n_rows, 2 * block)) * 2.0 ** rng.integers(-20, 20, (n_rows, 1))
    out.append(("random", "random", f"{n_rows} seeded rows of 2 blocks at random magnitudes", x))
    return out


def _mx_cases(cfg, path, hw, rng):
    elem, block = _mx_element(cfg, path, hw)
    cases = []
    for name, kind, desc, x in _mx_rows(elem, block, rng, cfg["random"]):
        x = _cast(x, np.float32)
        q = mx_quantize(x, elem, axis=-1, block_size=block, scale_rule=cfg["scale_rule"], rounding=cfg["rounding"],
                        seed=cfg["rounding_seed"])
        cases.append(Case(name, kind, desc, {"x": x}, {"elements": q.elements, "scales": q.scales}))
    info = {"element_format": elem.name, "block_size": block, "axis": -1, "zero_block": "min",
            "nonfinite_block": "nan"}
    return cases, {"x": None, "elements": elem.name, "scales": "e8m0"}, info


def _gemm_mx_cases(cfg, path, rng):
    fa, fb, bs = get_format(path.a_format), get_format(path.b_format), path.block_size

    def operands(m, k, n, spread=0):
        x = rng.normal(0, 1, (m, k)) * 2.0 ** rng.integers(-spread, spread + 1, (m, 1))
        qa = mx_quantize(_cast(x, np.float32), fa, axis=1, block_size=bs)
        qb = mx_quantize(_cast(rng.normal(0, 1, (k, n)), np.float32), fb, axis=0, block_size=bs)
        return [qa.elements, qa.scales.copy(), qb.elements, qb.scales.copy()]

    raw = [("partial-block", "directed", "K not a multiple of the block size", operands(2, bs + 8, 3))]
    # block scale codes set by hand: (a row, block, code) and (block, b column, code)
    for name, desc, a_set, b_set in [
            ("nan-scale", "a NaN block scale (0xFF) in a", (0, 0, 255), None),
            ("max-scale", "scales 2^127 in both operands of one block: FP32 overflow", (1, 1, 254), (1, 1, 254)),
            ("min-scale", "scales 2^-127 in both operands of one block: FP32 underflow", (2, 0, 0), (0, 0, 0))]:
        a, a_s, b, b_s = operands(3, 2 * bs, 2)
        a_s[a_set[0], a_set[1]] = a_set[2]
        if b_set:
            b_s[b_set[0], b_set[1]] = b_set[2]
        raw.append((name, "directed", desc, [a, a_s, b, b_s]))
    for i in range(cfg["random"]):
        m, k, n = (int(v) for v in rng.integers(1, [5, 4 * bs, 5]))
        raw.append((f"random-{i:03d}", "random", f"seeded MX operands {m}x{k} @ {k}x{n}", operands(m, k, n, 8)))
    cases = []
    for name, kind, desc, (a, a_s, b, b_s) in raw:
        y = mx_matmul(MXArray(a, a_s, fa, 1, bs), MXArray(b, b_s, fb, 0, bs)).astype(np.float32)
        cases.append(Case(name, kind, desc, {"a": a, "a_scales": a_s, "b": b, "b_scales": b_s}, {"y": y}))
    formats = {"a": fa.name, "a_scales": "e8m0", "b": fb.name, "b_scales": "e8m0", "y": "fp32"}
    return cases, formats, {"a_format": fa.name, "b_format": fb.name, "block_size": bs, "y": "FP32 accumulator values"}


# -- requantization ----------------------------------------------------------------------------------
def _requant_cases(cfg, path, hw, rng):
    yf = _output_format(_pick(cfg["output_format"], hw and hw.datapath.outputs, "int8"), get_format("int8"))
    acc = path.accumulator
    adt = np.int32 if acc.bits <= 32 else np.int64
    lo_acc, hi_acc = np.iinfo(adt).min, np.iinfo(adt).max
    zy = _zero(rng, yf)
    shift = 5                                       # m = 2^-5 below: ties at odd multiples of 16
    ties = np.arange(-41, 42, 2) * (1 << (shift - 1))
    pow2 = (_f32(2.0 ** -2), _f32(2.0 ** -3), _f32(1.0))
    edge_hi = (yf.qmax - int(zy)) << shift
    edge_lo = (yf.qmin - int(zy)) << shift
    edges = np.array([edge_hi - 16, edge_hi - 1, edge_hi, edge_hi + 15, edge_hi + 16, edge_hi + 17,
                      edge_lo + 16, edge_lo, edge_lo - 16, edge_lo - 17, lo_acc, hi_acc, lo_acc + 1, 0, 1, -1])
    n = cfg["random"]
    groups = [
        ("ties", "directed", "acc * 2^-5 exactly on .5, positive and negative", np.concatenate([ties, ties + 1, ties - 1]), pow2),
        ("saturation", "directed", "around the clamp bounds, the accumulator's extremes", edges, pow2),
        ("multiplier-above-one", "directed", "m = 4: the left-shift path", np.arange(-40, 41), (_f32(2.0), _f32(2.0), _f32(1.0))),
        ("tiny-multiplier", "directed", "m below 2^-31 (flushes to zero in Q31 fixed point)",
         np.array([lo_acc, -1000, 0, 1000, hi_acc]), (_f32(2.0 ** -20), _f32(2.0 ** -20), _f32(1.0))),
        ("random", "random", f"{n} seeded accumulators, arbitrary scales",
         rng.integers(-(1 << 20), 1 << 20, n), (_log_uniform(rng, -3, -1), _log_uniform(rng, -3, -1), _log_uniform(rng, -3, -1))),
    ]
    cases = []
    for name, kind, desc, values, (sx, sw, sy) in groups:
        a = np.clip(values, lo_acc, hi_acc).astype(adt).reshape(-1, 1)
        y, _ = requantize_accumulator(a.astype(np.int64), None, None, sx, sw, sy, int(zy), yf.qmin, yf.qmax, path, yf)
        inputs = {"acc": a, "x_scale": sx, "w_scale": sw, "y_scale": sy, "y_zero": zy}
        cases.append(Case(name, kind, desc, inputs, {"y": y.astype(container_dtype(yf))}))
    # per-channel: one column per weight scale
    cols = np.stack([ties, ties + 1, -ties], axis=1).astype(adt)
    sw = _pow2(rng, -4, -2, 3)
    y, _ = requantize_accumulator(cols.astype(np.int64), None, None, _f32(0.5), sw, _f32(1.0), int(zy),
                                  yf.qmin, yf.qmax, path, yf)
    cases.append(Case("per-channel", "directed", "per-column power-of-two weight scales: ties in every column",
                      {"acc": cols, "x_scale": _f32(0.5), "w_scale": sw, "y_scale": _f32(1.0), "y_zero": zy},
                      {"y": y.astype(container_dtype(yf))}))
    return cases, {"acc": None, "y_zero": yf.name, "y": yf.name}, {"y_format": yf.name}


# -- entry points ---------------------------------------------------------------------------------------
def _config(op, datapath, format, weight_format, output_format, rounding, saturate, seed, random, scale,
            zero_point, bias, block_size, scale_rule) -> dict:
    stochastic = rounding_code(rounding) == rounding_code("stochastic")      # also refuses unknown modes
    _check_int("seed", seed, 0)
    random = DEFAULT_RANDOM[op] if random is None else random
    _check_int("random", random, 0)
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be finite and > 0, got {scale!r}")
    if scale_rule not in ("floor", "rceil"):
        raise ValueError(f"scale_rule must be 'floor' or 'rceil', got {scale_rule!r}")
    if block_size is not None:
        _check_int("block_size", block_size, 1)
    return {"op": op, "datapath": None if datapath is None else str(datapath),
            "format": _named_format("format", format), "weight_format": _named_format("weight_format", weight_format),
            "output_format": _named_format("output_format", output_format),
            "rounding": rounding, "saturate": saturate, "seed": seed, "rounding_seed": seed if stochastic else None,
            "random": random, "scale": None if scale is None else float(scale), "zero_point": int(zero_point),
            "bias": bool(bias), "block_size": block_size, "scale_rule": scale_rule}


def _check_int(name: str, value, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a {'non-negative' if least == 0 else 'positive'} int, got {value!r}")


def make_golden(op: str, *, datapath=None, format=None, weight_format=None, output_format=None,  # noqa: A002
                rounding: str = "rne", saturate: bool | None = None, seed: int = 0, random: int | None = None,
                scale: float | None = None, zero_point: int = 0, bias: bool = True, block_size: int | None = None,
                scale_rule: str = "floor", rounding_seed=None) -> Golden:
    """A golden set in memory. op: encode (quantize), decode, gemm, conv, requant, mx.

    datapath: a datapath preset, hardware preset or .toml (gemm, conv, requant; optional for
    the others, where it supplies the format). format: the element format (encode, decode,
    mx) or the activation format (gemm, conv); weight_format, output_format for the integer
    layers. rounding, saturate: encode and mx. scale, zero_point: encode (zero_point for
    integer formats). bias: include a bias in gemm/conv (int32, or float for the PyTorch
    datapaths). random: random values (encode, decode, requant, mx) or cases (gemm, conv).
    Float gemm/conv give y, the FP32 accumulator values; on a hardware description (preset
    or .toml) whose datapath.outputs is not fp32 also y_out, the codes of
    convert_output(y, outputs, scale=1.0, rounding="rne", saturate=None).
    rounding_seed is derived (the seed, for stochastic rounding); it is accepted so that
    make_golden(**golden.config) regenerates a stored set.
    """
    op = canonical_op(op)
    cfg = _config(op, datapath, format, weight_format, output_format, rounding, saturate, seed, random, scale,
                  zero_point, bias, block_size, scale_rule)
    path, hw = resolve_datapath(datapath)
    _complete(op, cfg, path, hw)
    cases, formats, info = _cases(op, cfg, path, hw, np.random.default_rng(cfg["seed"]))
    info = {**info, "datapath": _describe(path), "hardware": hw.name if hw else None,
            "overflow": _overflow_mode(op, cfg, path)}
    return Golden(op, cfg, info, formats, list(cases[0].expected), cases)


def _complete(op: str, cfg: dict, path, hw) -> None:
    """Fill in what the datapath or the format decides (format, saturate), and refuse what
    the op cannot take."""
    if op in ("encode", "decode") and cfg["format"] is None:
        cfg["format"] = _pick(hw and hw.datapath.activations, getattr(path, "a_format", None))
        if cfg["format"] is None:
            raise ValueError(f"{op} needs a format (--format)")
    if op == "encode":
        fmt = get_format(cfg["format"])
        if isinstance(fmt, IntFormat):
            if cfg["saturate"] is False:
                raise ValueError(f"{fmt.name}: integer encoding always saturates")
            if not fmt.qmin <= cfg["zero_point"] <= fmt.qmax:
                raise ValueError(f"zero_point {cfg['zero_point']} is outside [{fmt.qmin}, {fmt.qmax}] of {fmt.name}")
        else:                 # encode itself refuses saturate=False where there is no Inf/NaN
            cfg["saturate"] = fmt.default_saturate if cfg["saturate"] is None else bool(cfg["saturate"])
    if op in ("gemm", "conv", "requant") and path is None:
        raise ValueError(f"{op} needs a datapath (--datapath): a datapath preset, hardware preset or .toml")
    if op == "requant" and not _is_int_path(path):
        raise ValueError(f"requant needs an integer datapath, {path.name} is floating point")
    _check_format_options(op, cfg, path)


def _cases(op: str, cfg: dict, path, hw, rng) -> tuple[list[Case], dict, dict]:
    """The cases of one op, the format of each array, and the facts the op resolved."""
    if op == "encode":
        return _encode_cases(cfg, rng)
    if op == "decode":
        return _decode_cases(cfg, rng)
    if op == "mx":
        return _mx_cases(cfg, path, hw, rng)
    if op == "requant":
        return _requant_cases(cfg, path, hw, rng)
    if _is_int_path(path):
        return (_gemm_int_cases if op == "gemm" else _conv_int_cases)(cfg, path, hw, rng)
    return _converted_output(*(_gemm_float_cases if op == "gemm" else _conv_float_cases)(cfg, path, hw, rng), hw)


def _overflow_mode(op: str, cfg: dict, path) -> str | None:
    if op in ("gemm", "conv", "requant") and _is_int_path(path):
        return f"accumulator int{path.accumulator.bits} {path.accumulator.overflow}; output clamps"
    if op == "encode":
        fmt = get_format(cfg["format"])
        if isinstance(fmt, IntFormat) or cfg["saturate"]:
            return "saturate to +-max"
        return "overflow to Inf" if fmt.has_inf else "overflow to NaN"
    if op == "mx":
        return "elements clamp to +-max; NaN/Inf blocks get a NaN scale"
    return None


def generate(op: str, out_dir, **config):
    """make_golden(op, **config) written to out_dir (atomically); returns the Golden."""
    golden = make_golden(op, **config)
    write_golden(golden, out_dir)
    return golden
