"""What golden gemm and conv share: integer layers (formats, scales, zero points, bias,
accumulator overflow), float operand formats, the hardware's output conversion y_out, and
LayerOp, their common base."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from ...codec import code_dtype
from ...datapaths import convert_output
from ...datapaths.integer import _int_fmt, _output_format
from ...formats import FloatFormat, IntFormat, format as get_format
from ...quant.intquant import container_dtype
from ..show import show_array_value
from .base import FLOAT_OPERAND, INT_OPERAND, GoldenOp, accumulator_overflow, is_int_path, not_for, pick
from .values import f32, log_uniform, middle, pow2, random_zero


def _int_formats(cfg, hw) -> tuple[IntFormat, IntFormat, IntFormat]:
    a = _int_fmt(pick(cfg.format, hw and hw.datapath.activations.format, "uint8"), "", "format")
    b = _int_fmt(pick(cfg.weight_format, hw and hw.datapath.weights.format, "int8"), "", "weight_format")
    y = _output_format(pick(cfg.output_format, hw and hw.datapath.output), a)
    return a, b, y


def _bias(rng, path, n: int, sa, sb, tie: bool = False) -> np.ndarray:
    """An int32 bias (scale sa * sb), or a float one for the PyTorch datapaths."""
    if path.bias == "float":
        if tie:                                   # half multiples of the product scale: ties
            return f32(rng.integers(-40, 41, n) * 0.5 * np.float32(sa) * np.min(np.asarray(sb, np.float32)))
        return f32(rng.normal(0, 2, n))
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


class IntLayer:
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
            sa, sb, sy = pow2(rng, -3, 0), pow2(rng, -3, 0, n), pow2(rng, 0, 2)
        else:
            sa, sb, sy = log_uniform(rng, -3, -1), log_uniform(rng, -3, -1, n), log_uniform(rng, -2, 0)
        p = {"a_scale": f32(sa), "a_zero": random_zero(rng, af), "b_scale": f32(sb),
             "b_zero": random_zero(rng, bf, n, narrow=True), "y_scale": f32(sy), "y_zero": random_zero(rng, yf)}
        if self.cfg.bias:
            p["bias"] = _bias(rng, self.path, n_out, sa, sb, tie)
        return p

    def near_zero(self, shape, zero, fmt: IntFormat) -> np.ndarray:
        return np.clip(self.rng.integers(-4, 5, shape) + int(zero), fmt.qmin, fmt.qmax).astype(container_dtype(fmt))

    def small_weights(self, shape) -> np.ndarray:
        """Weights near the middle of their range, where the weight zero points lie."""
        return self.near_zero(shape, middle(self.bf), self.bf)

    def overflow(self) -> tuple[int, int, int, int, int] | None:
        """(K, margin, activation code, positive and negative weight codes) of dot products in
        which every nonzero weight column leaves the accumulator's range; None if K is too long."""
        ext, pos, neg = _extremes(self.af, self.bf)
        sized = _overflow_k(self.path.accumulator.bits, abs(ext), min(abs(w) for w in (pos, neg) if w))
        return None if sized is None else (*sized, ext, pos, neg)

    def overflow_params(self, n_out: int) -> dict:
        """Zero points and bias 0, and an output scale at which the accumulator's range shows."""
        sa, sb = f32(0.01), f32(0.02)
        p = self.params(n_out, False, scales=(sa, sb, f32(sa * sb * 2.0 ** (self.path.accumulator.bits - 1) / 100)))
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


def _float_only(name: str | None, what: str, path_name: str) -> str | None:
    if name is not None and not isinstance(get_format(name), FloatFormat):
        raise ValueError(f"{what} {name} on the float datapath {path_name}: golden float GEMM/conv "
                         "take float operand formats only")
    return name


def float_formats(cfg, path, hw):
    a = pick(cfg.format, _float_only(hw and hw.datapath.activations.format, "activations", path.name), path.a_format)
    b = pick(cfg.weight_format, _float_only(hw and hw.datapath.weights.format, "weights", path.name), path.b_format, a)
    if a is None:
        raise ValueError(f"datapath {path.name} takes any input format: pass format= (--format)")
    for name in (a, b):
        _float_only(name, "format", path.name)
        if get_format(name).storage_bits > 16:
            raise ValueError(f"golden float GEMM/conv take operand formats of at most 16 bits, got {name}")
    return get_format(a), get_format(b)


# the hardware's output conversion of float GEMM/conv: y_out beside the FP32 accumulator y
OUTPUT_CONVERSION = {"scale": 1.0, "rounding": "rne", "saturate": None}


def _output_format_of(hw) -> FloatFormat | None:
    """The format a float hardware description converts the FP32 accumulator to (its
    datapath.output), or None when there is no conversion: no hardware description (a plain
    datapath preset), or output = fp32."""
    if hw is None or hw.datapath.kind != "float":
        return None
    fmt = get_format(hw.datapath.output)
    if fmt == get_format("fp32"):
        return None
    if not isinstance(fmt, FloatFormat):
        raise ValueError(f"hardware {hw.name}: datapath.output = {fmt.name} on a float datapath; golden float "
                         "GEMM/conv convert the FP32 accumulator to a float output format only")
    return fmt


def mx_operands(cfg, hw) -> tuple[FloatFormat, FloatFormat, int]:
    """Element formats and block size of golden MX products: format= / weight_format= /
    block_size= as given, else the hardware's block formats (OCP MX: E8M0 scales, 1-D blocks)."""
    a_op, b_op = (hw.datapath.activations, hw.datapath.weights) if hw else (None, None)
    for op in (a_op, b_op):
        if op is not None and op.block is not None and (op.block.scale_format != "e8m0" or len(op.block.block) > 1):
            raise ValueError(f"hardware {hw.name}: golden block products model OCP MX formats (E8M0 scales, blocks "
                             f"along K); {op.block.name} has {op.block.scale_format} scales in blocks of "
                             f"{'x'.join(map(str, op.block.block))}")
    a = pick(cfg.format, a_op and a_op.element_format)
    if a is None:
        raise ValueError("MX block products need an element format: pass format= (--format) or a hardware "
                         "description with block formats")
    b = pick(cfg.weight_format, b_op and b_op.element_format, a)
    block = cfg.block_size or (a_op.block.block[-1] if a_op else 32)
    return get_format(a), get_format(b), int(block)


def converted_output(cases, formats, info, hw):
    """Add the output y_out to float GEMM/conv cases when the hardware converts its outputs:
    codes of convert_output(y, datapath.output, scale=1.0, rounding="rne", saturate=None),
    i.e. encode(float32(y * 1.0)) with the format's default overflow. y stays the FP32
    accumulator values."""
    fmt = _output_format_of(hw)
    if fmt is None:
        return cases, formats, info
    for case in cases:
        case.expected["y_out"] = convert_output(case.expected["y"], fmt, **OUTPUT_CONVERSION).astype(code_dtype(fmt))
    conversion = {"format": fmt.name, **OUTPUT_CONVERSION,
                  "saturate_resolved": bool(fmt.default_saturate), "from": f"hardware {hw.name} datapath.output"}
    info = {**info, "y_out": f"{fmt.name} codes of y converted as the hardware's output: convert_output(y, "
                             f"{fmt.name}, scale=1.0, rounding='rne', saturate=None) = encode(float32(y * 1.0))",
            "output_conversion": conversion}
    return cases, {**formats, "y_out": fmt.name}, info


class LayerOp(GoldenOp):
    """gemm and conv: integer cases on an integer datapath, float ones (with y_out where the
    hardware converts its outputs) on a float datapath."""
    needs_datapath = True

    def format_rules(self, path) -> dict:
        if is_int_path(path):
            return {"format": INT_OPERAND, "weight_format": INT_OPERAND, "output_format": INT_OPERAND}
        outputs = not_for(f"float GEMM/conv write the FP32 accumulator y, and y_out in the format of a hardware "
                          f"description's datapath.output; the float datapath {path.name} takes no output format")
        return {"format": FLOAT_OPERAND, "weight_format": FLOAT_OPERAND, "output_format": outputs}

    def cases(self, cfg, path, hw, rng):
        if is_int_path(path):
            return self.int_cases(cfg, path, hw, rng)
        return converted_output(*self.float_cases(cfg, path, hw, rng), hw)

    @abstractmethod
    def int_cases(self, cfg, path, hw, rng):
        """Cases on an integer datapath."""

    @abstractmethod
    def float_cases(self, cfg, path, hw, rng):
        """Cases on a float datapath (before the hardware's output conversion)."""

    def overflow_mode(self, cfg, path):
        return accumulator_overflow(path) if is_int_path(path) else None


def channel_scalars(golden, case, channel: int) -> dict[str, str]:
    """A layer's scalar inputs and the per-channel entries of one output channel."""
    out = {}
    for name, arr in case.inputs.items():
        if arr.ndim == 0:
            out[name] = show_array_value(golden, name, arr[()])
        elif name in ("b_scale", "b_zero", "w_scale", "w_zero", "bias") and arr.ndim == 1:
            out[f"{name}[{channel}]"] = show_array_value(golden, name, arr[channel])
    return out
