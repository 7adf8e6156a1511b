"""Integer quantization with a scale and zero point, per tensor, per channel or per group.

q = clamp(round(x / scale) + zero_point, qmin, qmax), the division in x's precision (a true
float32 division for float32 input, as ONNX QuantizeLinear does); x = (q - zero_point) * scale.
"""

from __future__ import annotations

import numpy as np

from .._kernels import _intcodec
from .._threads import resolve_threads
from ..formats import IntFormat, format as get_format
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


def _params(scale, zero_point, rows, fmt: IntFormat, dtype):
    want = rows.n_params
    s = np.asarray(scale, dtype=np.float64)
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
    zi = z.astype(np.int64)
    if zi.size and (zi.min() < fmt.qmin or zi.max() > fmt.qmax):
        raise ValueError(f"zero_point must lie in [{fmt.qmin}, {fmt.qmax}] for {fmt.name}")
    s_rows = np.ascontiguousarray(rows.params_to_rows(s.reshape(want)), dtype=dtype)
    if s_rows.size and not np.all(s_rows > 0):
        raise ValueError(f"scale underflows to 0 in {np.dtype(dtype).name}")
    z_rows = np.ascontiguousarray(rows.params_to_rows(zi.reshape(want)), dtype=np.int32)
    return s_rows, z_rows


def quantize_int(x, fmt, scale, zero_point=0, axis: int | None = None, group_size: int | None = None,
                 rounding: str = "rne", seed: int | None = None, num_threads: int | None = None) -> np.ndarray:
    """Integer codes of x, in int8/uint8 (up to 8 bits) or int16/uint16.

    Per tensor: scalar scale and zero point. Per channel: `axis`, parameters of shape
    (x.shape[axis],). Per group: `axis` and `group_size`, parameters shaped like x with the
    axis dimension replaced by ceil(x.shape[axis] / group_size) (as ONNX blocked quantization).
    scale is cast to x's precision. +-Inf clamps to the range; NaN is an error.
    """
    from ..codec import float_input

    fmt = _int_format(fmt)
    mode = rounding_code(rounding)
    seed = check_seed(rounding, seed)
    arr = float_input(x)
    threads = resolve_threads(num_threads, arr.size)
    if arr.size and np.isnan(arr).any():
        raise ValueError("x contains NaN, which has no integer code")
    rows = plan_rows(arr.shape, axis, group_size)
    s_rows, z_rows = _params(scale, zero_point, rows, fmt, arr.dtype)
    xr = rows.to_rows(arr)
    out = np.empty(xr.shape, container_dtype(fmt))
    _intcodec.quantize_rows(xr, s_rows, z_rows, out, fmt.qmin, fmt.qmax, mode, seed, threads)
    return rows.from_rows(out)


def dequantize_int(q, scale, zero_point=0, axis: int | None = None, group_size: int | None = None,
                   fmt=None, dtype=np.float32) -> np.ndarray:
    """(q - zero_point) * scale, computed in `dtype` (float32 by default, as real runtimes do)."""
    qa = np.asarray(q)
    if qa.dtype.kind not in "ui":
        raise TypeError(f"q must be an integer array, got dtype {qa.dtype}")
    if fmt is not None:
        f = _int_format(fmt)
        if qa.size and (qa.min() < f.qmin or qa.max() > f.qmax):
            raise ValueError(f"q holds values outside [{f.qmin}, {f.qmax}] of {f.name}")
    rows = plan_rows(qa.shape, axis, group_size)
    s = np.asarray(scale, dtype=dtype)
    z = np.asarray(zero_point, dtype=np.int64)
    if rows.n_params and (s.shape != rows.n_params or z.shape not in (rows.n_params, ())):
        raise ValueError(f"scale and zero_point must have shape {rows.n_params}, got {s.shape} and {z.shape}")
    # codes of up to 16 bits minus a zero point are exact in float32: no int64 detour
    wide = np.int64 if qa.itemsize > 2 or np.dtype(dtype).itemsize < 4 else dtype
    if rows.axis is None:
        return ((qa.astype(wide) - z.astype(wide)).astype(dtype) * s).astype(dtype)
    if rows.group_size is None:
        bshape = [1] * qa.ndim
        bshape[rows.axis] = -1
        s, z = s.reshape(bshape), (z.reshape(bshape) if z.ndim else z)
    else:
        s = np.repeat(s, rows.group_size, axis=rows.axis).take(range(qa.shape[rows.axis]), axis=rows.axis)
        if z.ndim:
            z = np.repeat(z, rows.group_size, axis=rows.axis).take(range(qa.shape[rows.axis]), axis=rows.axis)
    return ((qa.astype(wide) - z.astype(wide)).astype(dtype) * s).astype(dtype)
