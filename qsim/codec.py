"""encode, decode and quantize: array-wide conversions between real values and format codes.

The arithmetic is in the compiled kernels (cython_src/_floatcodec.pyx, _intcodec.pyx); this
layer checks arguments, picks the kernel and shapes the result.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._kernels import _floatcodec, _intcodec
from ._threads import resolve_threads
from .arrays import contiguous, float_input
from .formats import FloatFormat, IntFormat, format as get_format
from .formats.spec import SPECIALS
from .rounding import check_seed, rounding_code

_F32_MAX = float(np.finfo(np.float32).max)


# -- inputs ---------------------------------------------------------------------------
def code_dtype(fmt) -> np.dtype:
    bits = fmt.storage_bits
    return np.dtype(np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.uint32)


def _resolve_saturate(fmt, saturate) -> bool:
    if saturate is None:
        return fmt.default_saturate
    if not isinstance(saturate, (bool, np.bool_)):
        raise TypeError(f"saturate must be True, False or None, got {saturate!r}")
    if not saturate and not (fmt.has_inf or fmt.has_nan):
        raise ValueError(f"{fmt.name} has no Inf or NaN code to overflow to; use saturate=True")
    return bool(saturate)


def _check_codable(arr: np.ndarray, fmt: FloatFormat) -> None:
    """Refuse values the format has no code for, rather than give some other code."""
    if not fmt.has_nan and arr.size and np.isnan(arr).any():
        raise ValueError(f"{fmt.name} has no NaN code and x contains NaN")
    # an unsigned format with a zero keeps no sign bit: -1 would come out as +1 (scale formats
    # without a zero, E8M0, give their NaN code for negative values instead)
    if not fmt.signed and fmt.has_zero and arr.size and (arr < 0).any():
        raise ValueError(f"{fmt.name} is unsigned and x contains negative values; "
                         "clip them first, e.g. np.maximum(x, 0)")


# -- the packed format the kernels read --------------------------------------------------
@lru_cache(maxsize=None)
def packed(fmt: FloatFormat) -> dict:
    """The format as the encoder reads it (qs_fmt in cython_src/_encode.h): every policy
    becomes a code, so the element function selects between numbers only."""
    overflow = fmt.inf_code if fmt.has_inf else fmt.nan_code
    fnuz = fmt.specials == "fnuz"
    signed_code = (lambda c: c) if fnuz else (lambda c: c | fmt.sign_bit)  # fnuz NaN is unsigned
    return {
        "mbits": fmt.mantissa_bits, "bias": fmt.bias,
        "flush_below": -(1 << 30) if fmt.subnormals else 1,
        "max_code": fmt.max_code_magnitude, "sign_bit": fmt.sign_bit,
        "negzero": 0 if not fmt.has_negative_zero else fmt.sign_bit,
        "ovf_pos": overflow or 0, "ovf_neg": signed_code(overflow or 0),
        "nan_pos": fmt.nan_code or 0, "nan_neg": signed_code(fmt.nan_code or 0),
        "payload_mask": ((1 << fmt.mantissa_bits) - 1) if fmt.specials == "ieee" else 0,
        **_rne_fast_fields(fmt),
        "half": int((fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, fmt.specials, fmt.subnormals, fmt.signed)
                    == (5, 10, 15, "ieee", True, True)),
    }


def _rne_fast_fields(fmt: FloatFormat) -> dict:
    """Constants of the float32 round-to-nearest-even fast path (cython_src/_encode.h), or
    magic_bits 0 where it is not exact: the target's normal range must lie inside float32's,
    and its subnormal spacing must be coarse enough that float32 subnormals round to zero."""
    shares_float32_grid = fmt.exponent_bits == 8 and fmt.bias == 127
    ok = (fmt.has_zero and fmt.subnormals and fmt.mantissa_bits <= 22 and fmt.emax <= 127
          and (shares_float32_grid or fmt.emin - fmt.mantissa_bits >= -125))
    if not ok:
        return {"rne_add": 0, "min_normal_bits": 0, "magic_bits": 0}
    dropped = 23 - fmt.mantissa_bits
    return {
        "rne_add": ((1 << (dropped - 1)) - 1 - ((127 - fmt.bias) << 23)) % (1 << 32),
        "min_normal_bits": 0 if shares_float32_grid else (fmt.emin + 127) << 23,
        "magic_bits": (fmt.emin - fmt.mantissa_bits + 23 + 127) << 23,
    }


def fits_float32(fmt: FloatFormat) -> bool:
    """Whether every value of the format is exactly a float32: the finest spacing, 2**(emin-M),
    and the largest value must be within float32's."""
    return fmt.mantissa_bits <= 23 and fmt.emin - fmt.mantissa_bits >= -149 and fmt.max <= _F32_MAX


@lru_cache(maxsize=None)
def value_params(fmt: FloatFormat) -> dict:
    """The format as the arithmetic decoder reads it (value_fmt_t in cython_src/_floatcodec.pyx)."""
    return {"mbits": fmt.mantissa_bits, "bias": fmt.bias, "specials": SPECIALS.index(fmt.specials),
            "subnormals": fmt.subnormals, "has_zero": fmt.has_zero, "sign_bit": fmt.sign_bit,
            "magnitude_mask": fmt.magnitude_mask}


def values_of(codes: np.ndarray, fmt: FloatFormat, dtype, num_threads: int = 1,
              out: np.ndarray | None = None) -> np.ndarray:
    """Value of each code, computed (exact in float64; NaN codes give the positive quiet NaN):
    the table builder, and the decoder of formats too wide for a table."""
    codes = contiguous(codes, np.uint32)
    if out is None:
        out = np.empty(codes.shape, dtype)
    _floatcodec.decode_values(codes.reshape(-1), out.reshape(-1), value_params(fmt), num_threads)
    return out


@lru_cache(maxsize=None)
def value_table(fmt: FloatFormat, dtype: str) -> np.ndarray:
    table = values_of(np.arange(fmt.n_codes), fmt, np.dtype(dtype))
    table.setflags(write=False)
    return table


def value_dtype(fmt: FloatFormat) -> np.dtype:
    return np.dtype(np.float32 if fits_float32(fmt) else np.float64)


def _is_float32_prefix(fmt: FloatFormat) -> bool:
    """BF16 and FP32: the code is the top bits of a float32, so decoding is a shift."""
    return (fmt.exponent_bits == 8 and fmt.bias == 127 and fmt.specials == "ieee"
            and fmt.subnormals and fmt.signed and fmt.mantissa_bits in (7, 23))


def _is_float16_prefix(fmt: FloatFormat) -> bool:
    """FP16 and E5M2: the code is the top bits of an IEEE half, so the CPU's F16C decodes it."""
    return (_floatcodec.HAVE_F16C and fmt.exponent_bits == 5 and fmt.bias == 15
            and fmt.specials == "ieee" and fmt.subnormals and fmt.signed
            and fmt.storage_bits in (8, 16))


# -- public API -----------------------------------------------------------------------
def encode(x, fmt, rounding: str = "rne", saturate: bool | None = None, seed: int | None = None,
           num_threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Codes (uint8, uint16 or uint32 bit patterns) of x in `fmt`, same shape as x.

    rounding: "rne" (default), "rtz", "rna" (half away from zero), "up", "down", "stochastic"
    (needs `seed`; bit-identical for a seed at any thread count).
    saturate: overflow and +-Inf give +-max (True) or Inf/NaN per the format (False). Default:
    True for formats without an Inf code (E4M3, FNUZ, MX types), False for IEEE-style ones.
    Integer formats: x is rounded and clamped to the integer range (see quantize_int for scale
    and zero point); codes are two's complement in the low bits.
    out: a C-contiguous, writeable array of x's shape and the codes' dtype (code_dtype) to
    encode into; it is returned.
    """
    fmt = get_format(fmt)
    mode = rounding_code(rounding)
    seed = check_seed(rounding, seed)
    threads = resolve_threads(num_threads, np.size(x))
    if out is not None:
        check_out(out, np.shape(x), (code_dtype(fmt),), "x")
    if isinstance(fmt, IntFormat):
        if saturate is False:
            raise ValueError(f"{fmt.name}: integer encoding always saturates to [{fmt.qmin}, {fmt.qmax}]")
        from .quant.intquant import quantize_int
        q = quantize_int(x, fmt, 1.0, 0, rounding=rounding, seed=seed, num_threads=threads)
        # the two's complement container viewed as unsigned, masked to the format's bits
        return np.bitwise_and(q.view(code_dtype(fmt)), fmt.n_codes - 1, out=out)
    sat = _resolve_saturate(fmt, saturate)
    arr = float_input(x)
    _check_codable(arr, fmt)
    if out is None:
        out = np.empty(arr.shape, code_dtype(fmt))
    _floatcodec.encode(arr.reshape(-1), out.reshape(-1), packed(fmt), mode, sat, seed, threads,
                       not fmt.has_zero)
    return out


def decode(codes, fmt, dtype=None, num_threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Exact values of codes in `fmt`.

    Float formats give float32 when every value of the format is a float32, else float64
    (or pass dtype=np.float64). Integer formats give the smallest signed/unsigned numpy
    integer type that holds them, or dtype (float32 or float64: both hold them exactly).
    out: a C-contiguous, writeable float32 or float64 array of the codes' shape to decode
    into (its dtype is the result's); it is returned, and repeated decodes allocate nothing.
    """
    fmt = get_format(fmt)
    out_dtype = None if dtype is None else _value_dtype_argument(dtype)
    threads = resolve_threads(num_threads, np.size(codes))
    arr = np.asarray(codes)
    if arr.dtype.kind not in "ui":
        raise TypeError(f"codes must be an unsigned or signed integer array, got dtype {arr.dtype}")
    if out is not None:
        out_dtype = check_out(out, arr.shape, (out_dtype,) if out_dtype else _VALUE_DTYPES, "codes")
    if arr.size and (arr.dtype.itemsize * 8 > fmt.storage_bits or arr.dtype.kind == "i"):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= fmt.n_codes:
            raise ValueError(f"codes out of range for {fmt.name}: found {lo if lo < 0 else hi}, "
                             f"valid codes are 0..{fmt.n_codes - 1}")
    shape = arr.shape
    arr = contiguous(arr, code_dtype(fmt)).reshape(-1)
    if isinstance(fmt, IntFormat):
        if out_dtype is None:
            out_dtype = np.dtype(f"{'i' if fmt.signed else 'u'}{1 if fmt.bits <= 8 else 2}")
        out = np.empty(shape, out_dtype) if out is None else out
        _intcodec.decode(arr, out.reshape(-1), fmt.bits, fmt.signed, threads)
        return out
    if out_dtype is None:
        out_dtype = value_dtype(fmt)
    if out_dtype == np.float32 and not fits_float32(fmt):
        raise ValueError(f"{fmt.name} has values float32 cannot hold exactly; use dtype=np.float64")
    out = np.empty(shape, out_dtype) if out is None else out
    flat = out.reshape(-1)
    if _is_float32_prefix(fmt):
        bits = flat.view(np.uint32) if out_dtype == np.float32 else flat
        _floatcodec.widen(arr, bits, 32 - fmt.storage_bits, threads)
    elif fmt.storage_bits > 16:
        values_of(arr, fmt, out_dtype, threads, flat)
    elif _is_float16_prefix(fmt) and out_dtype == np.float32:
        _floatcodec.half_prefix(arr, flat, threads)
    else:
        _floatcodec.gather(arr, value_table(fmt, out_dtype.str), flat, threads)
    return out


_VALUE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_out(out, shape: tuple, dtypes: tuple, what: str) -> np.dtype:
    """out's dtype, after checking that out can take a result of `shape` and one of `dtypes`
    (`what` names the input whose shape it must have)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.dtype not in dtypes:
        names = " or ".join(str(np.dtype(d)) for d in dtypes)
        raise TypeError(f"out must have dtype {names}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape} but {what} has shape {tuple(shape)}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    return out.dtype


def _value_dtype_argument(dtype) -> np.dtype:
    try:
        out = np.dtype(dtype)
    except TypeError:
        out = None
    if out not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {repr(dtype) if out is None else out}")
    return out


def quantize(x, fmt, rounding: str = "rne", saturate: bool | None = None, seed: int | None = None,
             num_threads: int | None = None) -> np.ndarray:
    """Fake quantization: decode(encode(x, ...)) in one pass, returned in x's precision
    (float64 stays float64; float16/bfloat16/float32 give float32; float64 where a format's
    values do not fit float32)."""
    fmt = get_format(fmt)
    if isinstance(fmt, IntFormat):
        arr = float_input(x)
        return decode(encode(arr, fmt, rounding, saturate, seed, num_threads), fmt).astype(arr.dtype)
    mode = rounding_code(rounding)
    seed = check_seed(rounding, seed)
    threads = resolve_threads(num_threads, np.size(x))
    sat = _resolve_saturate(fmt, saturate)
    arr = float_input(x)
    if arr.dtype == np.float32 and not fits_float32(fmt):
        arr = arr.astype(np.float64)
    if fmt.storage_bits > 16 or not fmt.has_zero:
        return decode(encode(arr, fmt, rounding, saturate, seed, threads), fmt, arr.dtype, threads)
    _check_codable(arr, fmt)
    out = np.empty_like(arr)
    _floatcodec.quantize(arr.reshape(-1), out.reshape(-1), value_table(fmt, arr.dtype.str),
                         packed(fmt), mode, sat, seed, threads)
    return out
