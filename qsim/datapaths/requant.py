"""Requantization: an int32 accumulator back to an 8-bit output, as each real kernel does it.

Every method computes y = clamp(round(acc * m) + y_zero, lo, hi) with m = sx * sw / sy, but
in its own arithmetic: fixed point (gemmlowp, TFLite, ruy) or float32 (MLAS, XNNPACK, fbgemm,
qnnpack), with its own rounding of ties and its own order of float operations. Random data
rarely shows the differences; ties (power-of-two scales) do. See docs/design/requant.md.
"""

from __future__ import annotations

import numpy as np

from .._kernels import _requant
from .._threads import resolve_threads

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

SHIFT_ROUNDINGS = ("down", "rtz", "up", "half_up", "rne", "rna")


# -- multiplier derivation -----------------------------------------------------------------
def real_multiplier(input_scale, weight_scale, output_scale) -> np.ndarray:
    """m = sx * sw / sy in double from the float32 scales, as TFLite/gemmlowp derive it."""
    return np.float64(np.float32(input_scale)) * np.asarray(weight_scale, np.float32).astype(np.float64) \
        / np.float64(np.float32(output_scale))


def float32_multiplier(input_scale, weight_scale, output_scale) -> np.ndarray:
    """m = float32(float32(sx * sw) / sy), each operation in float32 (MLAS, XNNPACK)."""
    product = np.float32(input_scale) * np.asarray(weight_scale, np.float32)
    return (product / np.float32(output_scale)).astype(np.float32)


def quantize_multiplier(m, single_rounding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """TFLite QuantizeMultiplier: m = q * 2^(shift - 31) with q a Q0.31 int32 in [2^30, 2^31).

    frexp(m) = f * 2^e, q = round_half_away(f * 2^31); q == 2^31 becomes 2^30 with e + 1.
    Multipliers below 2^-32 flush to q = 0. single_rounding caps the shift at 30 (with
    q = 2^31 - 1), as TFLITE_SINGLE_ROUNDING builds do. Returns int64 arrays (q, shift);
    shift > 0 means a left shift.
    """
    m = np.asarray(m, np.float64)
    if m.size and not (np.all(np.isfinite(m)) and np.all(m >= 0)):
        raise ValueError("multiplier must be finite and >= 0")
    f, e = np.frexp(m)
    q = np.floor(f * 2.0 ** 31 + 0.5).astype(np.int64)       # f >= 0: half away from zero
    e = e.astype(np.int64)
    carry = q == 1 << 31
    q, e = np.where(carry, q // 2, q), np.where(carry, e + 1, e)
    tiny = (e < -31) | (m == 0)
    q, e = np.where(tiny, 0, q), np.where(tiny, 0, e)
    if single_rounding:
        big = e > 30
        q, e = np.where(big, INT32_MAX, q), np.where(big, 30, e)
    return q, e


# -- fixed-point building blocks ---------------------------------------------------------------
def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def shift_round(x, n, rounding: str) -> np.ndarray:
    """x / 2^n for n >= 0 rounded as named: "down" (plain arithmetic shift), "rtz", "up",
    "half_up" (add 2^(n-1), shift), "rne", "rna"."""
    x, n = np.asarray(x, np.int64), np.asarray(n, np.int64)
    if rounding not in SHIFT_ROUNDINGS:
        raise ValueError(f"unknown shift rounding {rounding!r}; choose one of {SHIFT_ROUNDINGS}")
    if np.any(n < 0) or np.any(n > 62):
        raise ValueError("shift must be within 0..62")
    floor = x >> n
    rem = x - (floor << n)                      # in [0, 2^n)
    half = np.where(n > 0, np.int64(1) << np.maximum(n - 1, 0), 1)   # n = 0: nothing to round
    exact = rem == 0
    if rounding == "down":
        return floor
    if rounding == "up":
        return floor + ~exact
    if rounding == "rtz":
        return floor + ((x < 0) & ~exact)
    above, tie = rem > half, (rem == half) & (n > 0)
    if rounding == "half_up":
        return floor + (above | tie)
    if rounding == "rna":
        return floor + (above | (tie & (x >= 0)))
    return floor + (above | (tie & (floor & 1 == 1)))      # rne


# -- the methods -----------------------------------------------------------------------------
# Each method maps (acc, scales, zero, lo, hi, float_bias, container) to output codes.
def _fixed_point(rounded):
    """A fixed-point method from its rounding of acc * m: the zero point joins in int32."""
    def method(acc, scales, zero, lo, hi, float_bias, container):
        return np.clip(_wrap32(rounded(acc, scales) + zero), lo, hi)
    method.__doc__ = rounded.__doc__
    return method


def _pytorch(rounded):
    """A PyTorch method (float bias) from its rounding of acc * m: CVTPS2DQ, then the clamp."""
    def method(acc, scales, zero, lo, hi, float_bias, container):
        return np.clip(rounded(acc, scales, float_bias) + zero, lo, hi)
    method.__doc__ = rounded.__doc__
    return method


def _gemmlowp(acc, scales, zero, lo, hi, float_bias, container):
    """gemmlowp / TFLite MultiplyByQuantizedMultiplier (compiled, cython_src/_requant.pyx): the
    int32 left shift for m >= 1, SaturatingRoundingDoublingHighMul, RoundingDivideByPOT; the
    zero point added in int32, then the clamp."""
    q, shift = quantize_multiplier(real_multiplier(*scales))
    n = acc.shape[-1] if acc.ndim else 1
    rows = np.ascontiguousarray(acc.reshape(-1, n))
    out = np.empty(rows.shape, np.int64)
    shift = np.broadcast_to(shift, (n,)).astype(np.int64)
    _requant.gemmlowp(rows, np.ascontiguousarray(np.broadcast_to(q, (n,)), np.int64), np.maximum(shift, 0),
                      np.maximum(-shift, 0), zero, lo, hi, out, resolve_threads(None, out.size))
    return out.reshape(acc.shape)


def _tflite_single(acc, scales):
    """TFLite single rounding: (acc * q + 2^(30 - s)) >> (31 - s), ties toward +inf."""
    q, shift = quantize_multiplier(real_multiplier(*scales), single_rounding=True)
    total = 31 - shift
    return (acc * q + (np.int64(1) << (total - 1))) >> total


def _ruy_x86(acc, scales):
    """LiteRT's optimized x86 path (ruy). Per tensor it derives m from float32(sx * sw)."""
    sx, sw, sy = scales
    if np.ndim(sw) == 0:
        m = np.float64(np.float32(sx) * np.float32(sw)) / np.float64(np.float32(sy))
    else:
        m = real_multiplier(*scales)
    q, shift = quantize_multiplier(m)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    high = (_wrap32(acc << left) * q + (1 << 30)) >> 31            # half up
    return shift_round(high, right, "half_up")


def _reference_double(acc, scales):
    """LiteRT reference kernel: (int32) std::round(double(acc) * m); an out-of-range double to
    int32 cast gives INT32_MIN on x86, and the zero point is then added in int32."""
    v = acc.astype(np.float64) * real_multiplier(*scales)
    r = np.sign(v) * np.floor(np.abs(v) + 0.5)                        # std::round: half away
    return np.where((r >= 2.0 ** 31) | (r < -2.0 ** 31), INT32_MIN, r).astype(np.int64)


def _float32_rne(acc, scales, zero, lo, hi, float_bias, container):
    """MLAS: round_half_even(clamp(float32(acc) * scale, lo - zero, hi - zero)) + zero in
    float32, scale = float32(float32(sx * sw) / sy)."""
    v = acc.astype(np.float32) * float32_multiplier(*scales)
    v = np.clip(v, np.float32(lo - zero), np.float32(hi - zero))
    return np.rint(v).astype(np.int64) + zero


def fma_float32(a, b, c) -> np.ndarray:
    """float32(a * b + c) rounded once, as a fused multiply-add: a * b is exact in double; the
    double sum is rounded to odd (TwoSum gives its error), and rounding a round-to-odd double
    to float32 is then correctly rounded (53 >= 24 + 2 bits)."""
    p = np.asarray(a, np.float32).astype(np.float64) * np.asarray(b, np.float32).astype(np.float64)
    c = np.asarray(c, np.float32).astype(np.float64)
    s = p + c
    bp = s - p
    err = (p - (s - bp)) + (c - bp)
    inexact = err != 0
    toward_zero = inexact & (np.sign(err) != np.sign(s))
    s = np.where(toward_zero, np.nextafter(s, 0), s)
    odd = s.view(np.int64) | inexact.astype(np.int64)
    return odd.view(np.float64).astype(np.float32)


def _cvtps2dq(v: np.ndarray) -> np.ndarray:
    """x86 CVTPS2DQ: round half to even; NaN or out of int32 range gives INT32_MIN."""
    ok = np.isfinite(v) & (np.abs(v) < np.float32(2.0 ** 31))
    return np.where(ok, np.rint(np.where(ok, v, 0)), INT32_MIN).astype(np.int64)


def _fbgemm(acc, scales, float_bias):
    """fbgemm requantizeOutputProcessing: the float bias joins float32(acc) before scaling;
    per tensor through an FMA with a reciprocal computed in double, per channel by a float32
    division and a separate add."""
    sx, sw, sy = scales
    atw = np.float32(sx) * np.asarray(sw, np.float32)
    xf = acc.astype(np.float32)
    if float_bias is not None:
        bias = np.asarray(float_bias, np.float32)
        if atw.ndim == 0:
            xf = fma_float32(bias, np.float32(1.0 / np.float64(atw)), xf)
        else:
            xf = xf + bias / atw
    return _cvtps2dq(xf * (atw / np.float32(sy)))


def qnnpack_bias(float_bias, x_scale, w_scale) -> np.ndarray:
    """PyTorch qnnpack's int32 bias: rne(bias * float32(1 / float32(double(sw) * double(sx))))."""
    bias_scale = (np.asarray(w_scale, np.float32).astype(np.float64) * np.float64(np.float32(x_scale))).astype(np.float32)
    q = np.rint(np.asarray(float_bias, np.float32) * (np.float32(1) / bias_scale))
    return np.where(np.isnan(q), INT32_MIN, np.clip(np.nan_to_num(q), INT32_MIN, INT32_MAX)).astype(np.int64)


def _qnnpack(acc, scales, float_bias):
    """PyTorch qnnpack q8gemm: bias quantized (qnnpack_bias) and added in the wrapping int32
    accumulator; scale (float32(sw) * float32(sx)) * (1 / float32(sy)) in float32."""
    sx, sw, sy = scales
    if float_bias is not None:
        acc = _wrap32(acc + qnnpack_bias(float_bias, sx, sw))
    scale = (np.asarray(sw, np.float32) * np.float32(sx)) * (np.float32(1) / np.float32(sy))
    return _cvtps2dq(acc.astype(np.float32) * scale)


def _xnnpack(acc, scales, zero, lo, hi, float_bias, container):
    """XNNPACK fully connected: only the upper bound is applied in float before CVTPS2DQ; the
    zero point is added in int32, then saturation to the output type, then the lower bound."""
    v = np.minimum(acc.astype(np.float32) * float32_multiplier(*scales), np.float32(hi - zero))
    r = _wrap32(_cvtps2dq(v) + zero)
    return np.maximum(np.clip(r, *container), lo)


METHODS = {
    "gemmlowp": _gemmlowp,
    "tflite-single": _fixed_point(_tflite_single),
    "ruy-x86": _fixed_point(_ruy_x86),
    "reference-double": _fixed_point(_reference_double),
    "float32": _float32_rne,
    "xnnpack": _xnnpack,
    # PyTorch's kernels take a float bias; the others an int32 bias already in acc
    "fbgemm": _pytorch(_fbgemm),
    "qnnpack": _pytorch(_qnnpack),
}
FLOAT_BIAS_METHODS = ("fbgemm", "qnnpack")


def requantize(acc, input_scale, weight_scale, output_scale, output_zero: int, lo: int, hi: int,
               method: str, float_bias=None, container: tuple[int, int] = (-128, 127)) -> np.ndarray:
    """acc (int64, per-channel weight scales along the last axis) -> clamp(round(acc * m) + zero).

    Methods: "gemmlowp" (double rounding, ties away), "tflite-single" (one rounding, ties up),
    "ruy-x86" (two half-up roundings), "reference-double" (std::round(double(acc) * m)),
    "float32" (MLAS: rne(clamp(float32(acc) * float32(float32(sx * sw) / sy)))), "xnnpack"
    (the same product, XNNPACK's clamping and int8 saturation order),
    "fbgemm" and "qnnpack" (PyTorch; these take `float_bias`, the others an int32 bias already
    in acc). container: the output type's range, where XNNPACK saturates before its lower bound.
    """
    if method not in METHODS:
        raise ValueError(f"unknown requantization {method!r}; choose one of {tuple(METHODS)}")
    acc = np.asarray(acc, np.int64)
    scales = (input_scale, weight_scale, output_scale)
    if float_bias is not None and method not in FLOAT_BIAS_METHODS:
        raise ValueError(f"requantization {method!r} takes an int32 bias in the accumulator, not a float bias")
    return METHODS[method](acc, scales, output_zero, lo, hi, float_bias, container)


def requantize_shift(acc, shift, output_zero: int, lo: int, hi: int, rounding: str = "half_up") -> np.ndarray:
    """Power-of-two requantization (many NPUs): clamp(round(acc / 2^shift) + zero, lo, hi)."""
    return np.clip(shift_round(acc, shift, rounding) + output_zero, lo, hi)
