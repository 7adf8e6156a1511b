"""Integer quantization with a scale and zero point, per tensor, per channel or per group.

q = clamp(round(x / scale) + zero_point, qmin, qmax), the division in x's precision (a true
float32 division for float32 input, as ONNX QuantizeLinear does); x = (q - zero_point) * scale.
PyTorch multiplies by a float32 reciprocal instead, and where the zero point joins depends on
the kernel: QUANTIZE_RULES names each arithmetic and where torch uses it.
"""

from __future__ import annotations

import numpy as np

from .._kernels import _intcodec, _torchquant
from .._threads import resolve_threads
from ..arrays import float_input
from ..formats import FloatFormat, IntFormat, format as get_format
from ..rounding import check_seed, rounding_code
from .granularity import plan_rows


def _int_format(fmt) -> IntFormat:
    fmt = get_format(fmt)
    if not isinstance(fmt, IntFormat):
        raise TypeError(f"{fmt.name} is not an integer format; use qsim.encode for float formats")
    return fmt


def container_dtype(fmt: IntFormat) -> np.dtype:
    if fmt.bits <= 8:
        return np.dtype(np.int8 if fmt.signed else np.uint8)
    return np.dtype(np.int16 if fmt.signed else np.uint16)


# rule -> what it computes (inv = float32(1 / float32(scale)), rounding half to even) and who does
QUANTIZE_RULES = {
    "divide": "round(x / scale) + zero_point: ONNX QuantizeLinear (qsim's default)",
    "reciprocal": "round(float32(x * inv)) + zero_point in int32: ATen's vectorized quantize "
                  "(quantized add, cat, pooling)",
    "reciprocal_add": "round(float32(float32(x * inv) + zero_point)): fbgemm's scalar Quantize "
                      "(torch.quantize_per_channel, qint32, the scalar tails of ATen kernels)",
    "reciprocal_fma": "round(fma(x, inv, zero_point)): fbgemm's AVX2 Quantize (torch.quantize_per_tensor "
                      "to 8 bits, dynamic activations in fbgemm and qnnpack)",
}
_RULE_CODES = {"reciprocal": 0, "reciprocal_add": 1, "reciprocal_fma": 2}     # cython_src/_torchquant.pyx

_CALLS = {
    "quantize_int": "quantize_int(x, fmt, scale, zero_point=0, axis=None, group_size=None, ...)",
    "dequantize_int": "dequantize_int(q, scale, zero_point=0, axis=None, group_size=None, fmt=None, "
                      "dtype=np.float32)",
}


def _refuse_a_format(value, name: str, call: str) -> None:
    """A format where a number goes: dequantize_int(q, "int8", scale) mirrors quantize_int's
    argument order, and numpy's own message about it says nothing useful."""
    if isinstance(value, (FloatFormat, IntFormat)):
        label = value.name
    elif isinstance(value, str):
        try:
            label = get_format(value).name
        except (KeyError, ValueError):
            return                      # not a format: the type checks below report it
    else:
        return
    hint = f"; pass it as fmt={label!r}" if call == "dequantize_int" else ""
    raise TypeError(f"{call}: {name} must be a number or an array, got the format {label!r}{hint}. "
                    f"The call is {_CALLS[call]}")


def scale_and_zero_point(scale, zero_point, want: tuple, fmt: IntFormat | None, call: str):
    """The scale (float64) and zero point (int64), each of shape `want` (() per tensor): the
    one check quantize_int and dequantize_int share. The scale must be finite and > 0, the
    zero point an integer, within fmt's range when fmt is known."""
    for name, value in (("scale", scale), ("zero_point", zero_point)):
        _refuse_a_format(value, name, call)
    s = np.asarray(scale)
    if s.dtype.kind == "O":         # Python numbers numpy keeps as objects (Fraction, Decimal)
        try:
            s = s.astype(np.float64)
        except (TypeError, ValueError):
            pass                    # left as objects: refused just below
    if s.dtype.kind not in "fiu":
        raise TypeError(f"scale must be a real number or array, got dtype {s.dtype}")
    s = s.astype(np.float64)
    z = np.asarray(zero_point)
    if z.ndim == 0 and want:       # one zero point for every channel or group
        z = np.broadcast_to(z, want)
    for name, p in (("scale", s), ("zero_point", z)):
        if p.shape != want and not (p.size == 1 and want == ()):
            raise ValueError(f"{name} must have shape {want} for this granularity, got {p.shape}")
    if z.dtype.kind == "f":
        if not np.all(np.isfinite(z)) or np.any(z != np.round(z)):
            raise ValueError("zero_point must hold integers")
    elif z.dtype.kind not in "ui":
        raise TypeError(f"zero_point must be integer, got dtype {z.dtype}")
    if s.size and not (np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ValueError("scale must be finite and > 0")
    # checked before the cast to int64, which would wrap a huge value into range
    if fmt is not None:
        lo, hi, where = fmt.qmin, fmt.qmax, f"for {fmt.name}"
    else:
        lo, hi, where = -2**31, 2**31 - 1, "(int32)"
    if z.size and (z.min() < lo or z.max() > hi):
        raise ValueError(f"zero_point must lie in [{lo}, {hi}] {where}")
    return s.reshape(want), z.astype(np.int64).reshape(want)


def scale_in(s: np.ndarray, dtype) -> np.ndarray:
    """The scale in the precision the arithmetic runs in, where it must stay finite and > 0."""
    with np.errstate(over="ignore"):
        cast = np.require(s, dtype=dtype, requirements="C")   # (ascontiguousarray makes 0-d 1-d)
    if cast.size and not np.all(cast > 0):
        raise ValueError(f"scale underflows to 0 in {np.dtype(dtype).name}")
    if cast.size and not np.all(np.isfinite(cast)):
        raise ValueError(f"scale overflows to inf in {np.dtype(dtype).name}")
    return cast


def quantize_int(x, fmt, scale, zero_point=0, axis: int | None = None, group_size: int | None = None,
                 rounding: str = "rne", seed: int | None = None, num_threads: int | None = None,
                 rule: str = "divide") -> np.ndarray:
    """Integer codes of x, in int8/uint8 (up to 8 bits) or int16/uint16.

    Per tensor: scalar scale and zero point. Per channel: `axis`, parameters of shape
    (x.shape[axis],). Per group: `axis` and `group_size`, parameters shaped like x with the
    axis dimension replaced by ceil(x.shape[axis] / group_size) (as ONNX blocked quantization).
    scale is cast to x's precision. +-Inf clamps to the range; NaN is an error.
    rule: the arithmetic (QUANTIZE_RULES). The reciprocal rules are PyTorch's: they compute in
    float32 (x and scale rounded to float32 first) and round half to even only.
    """

    fmt = _int_format(fmt)
    if rule not in QUANTIZE_RULES:
        raise ValueError(f"unknown quantize rule {rule!r}; choose one of {', '.join(QUANTIZE_RULES)}")
    if rule != "divide" and rounding != "rne":
        raise ValueError(f"rule {rule!r} rounds half to even (rounding='rne'), got rounding={rounding!r}")
    mode = rounding_code(rounding)
    seed = check_seed(rounding, seed)
    arr = float_input(x)
    if rule != "divide":
        arr = arr.astype(np.float32, copy=False)
    threads = resolve_threads(num_threads, arr.size)
    if arr.size and np.isnan(arr).any():
        raise ValueError("x contains NaN, which has no integer code")
    rows = plan_rows(arr.shape, axis, group_size)
    s, z = scale_and_zero_point(scale, zero_point, rows.n_params, fmt, "quantize_int")
    s_rows = scale_in(rows.params_to_rows(s), arr.dtype)
    z_rows = np.ascontiguousarray(rows.params_to_rows(z), dtype=np.int32)
    xr = rows.to_rows(arr)
    out = np.empty(xr.shape, container_dtype(fmt))
    if rule == "divide":
        _intcodec.quantize_rows(xr, s_rows, z_rows, out, fmt.qmin, fmt.qmax, mode, seed, threads)
    else:
        _quantize_reciprocal(xr, s_rows, z_rows, rule, fmt, out, threads)
    return rows.from_rows(out)


def _quantize_reciprocal(xr: np.ndarray, s_rows: np.ndarray, z_rows: np.ndarray, rule: str, fmt: IntFormat,
                         out: np.ndarray, threads: int) -> None:
    """PyTorch's quantize arithmetics (QUANTIZE_RULES) on rows of float32 x, one scale and zero
    point per row (compiled, cython_src/_torchquant.pyx)."""
    inv = np.float32(1) / s_rows.astype(np.float32)
    _torchquant.quantize_rows(xr, inv, z_rows, out, fmt.qmin, fmt.qmax, _RULE_CODES[rule], threads)


def quantize_uint8_per_tensor(x: np.ndarray, scale: np.float32, zero_point: int, rule: str,
                              num_threads: int | None = None) -> np.ndarray:
    """quantize_int(x, "uint8", scale, zero_point, rule=rule) for float32 x free of NaN and a
    checked scale and zero point: the run-time path of dynamic quantization, without the checks.
    Rows of the last axis are the kernel's rows, so threads can share the work."""
    x = np.asarray(x, np.float32)
    rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1))
    out = np.empty(rows.shape, np.uint8)
    n = rows.shape[0]
    _quantize_reciprocal(rows, np.full(n, scale, np.float32), np.full(n, zero_point, np.int32), rule,
                         _int_format("uint8"), out, resolve_threads(num_threads, rows.size))
    return out.reshape(x.shape)


def dequantize_int(q, scale, zero_point=0, axis: int | None = None, group_size: int | None = None,
                   fmt=None, dtype=np.float32) -> np.ndarray:
    """(q - zero_point) * scale, computed in `dtype` (float32 by default, as real runtimes do).
    scale and zero_point are shaped as for quantize_int; `fmt`, if given, checks q's range."""
    qa = np.asarray(q)
    if qa.dtype.kind not in "ui":
        raise TypeError(f"q must be an integer array, got dtype {qa.dtype}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a float type (float16, float32 or float64), got {dtype}")
    f = None if fmt is None else _int_format(fmt)
    rows = plan_rows(qa.shape, axis, group_size)
    s, z = scale_and_zero_point(scale, zero_point, rows.n_params, f, "dequantize_int")
    if f is not None and qa.size and (qa.min() < f.qmin or qa.max() > f.qmax):
        raise ValueError(f"q holds values outside [{f.qmin}, {f.qmax}] of {f.name}")
    if qa.itemsize == 8 and qa.size and (qa.max() > 2**62 or qa.min() < -2**62):
        raise ValueError("q holds values beyond +-2**62: q - zero_point would not be exact in int64")
    s = scale_in(s, dtype)
    # q - zero_point is exact in float32 when both are within 16 bits: no int64 detour
    small = qa.itemsize <= 2 and dtype.itemsize >= 4 and (not z.size or np.abs(z).max() <= 1 << 16)
    wide = dtype if small else np.int64
    if rows.axis is not None:       # scale and zero point along the axis, repeated per group
        if rows.group_size is not None:
            s, z = (np.repeat(p, rows.group_size, axis=rows.axis).take(range(qa.shape[rows.axis]), axis=rows.axis)
                    for p in (s, z))
        else:
            bshape = [1] * qa.ndim
            bshape[rows.axis] = -1
            s, z = s.reshape(bshape), z.reshape(bshape)
    return ((qa.astype(wide) - z.astype(wide)).astype(dtype) * s).astype(dtype)
