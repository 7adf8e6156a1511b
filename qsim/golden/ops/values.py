"""Small value generators shared by the golden ops: seeded integers and zero points, float32
arrays, powers of two, sampled code ranges, convolution geometry."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ...codec import decode, encode, fits_float32
from ...formats import FloatFormat, IntFormat
from ...quant.intquant import container_dtype


def ints(rng, fmt: IntFormat, shape, lo=None, hi=None) -> np.ndarray:
    lo = fmt.qmin if lo is None else max(lo, fmt.qmin)
    hi = fmt.qmax if hi is None else min(hi, fmt.qmax)
    return np.asarray(rng.integers(lo, hi + 1, shape)).astype(container_dtype(fmt))


def middle(fmt: IntFormat) -> int:
    return 0 if fmt.signed else (fmt.qmax + 1) // 2


def random_zero(rng, fmt: IntFormat, n=None, narrow=False) -> np.ndarray:
    """A zero point: anywhere in range for activations; near the middle (narrow) for weights."""
    if narrow:
        return ints(rng, fmt, n if n else (), middle(fmt) - 3, middle(fmt) + 3)
    return ints(rng, fmt, n if n else ())


def f32(v) -> np.ndarray:
    return np.asarray(v, np.float32)


def pow2(rng, lo: int, hi: int, n=None) -> np.ndarray:
    return f32(2.0 ** rng.integers(lo, hi + 1, n))


def log_uniform(rng, lo: float, hi: float, n=None) -> np.ndarray:
    return f32(10 ** rng.uniform(lo, hi, n))


def both_signs(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return np.concatenate([v, -v])


def exact_float(fmt, code: int) -> float:
    v = fmt.exact_value(code)
    return float(v) if isinstance(v, Fraction) else v


def input_dtype(fmt) -> np.dtype:
    """float32 inputs where every value of the format and its midpoints are float32s."""
    ok = isinstance(fmt, IntFormat) or (fits_float32(fmt) and fmt.storage_bits < 32)
    return np.dtype(np.float32 if ok else np.float64)


def cast(v, dtype) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(v, np.float64).astype(dtype)


def sample(lo: int, hi: int, rng, limit: int, keep_ends: int = 8) -> np.ndarray:
    """At most about `limit` integers of [lo, hi), ascending, always with the first and last few."""
    if hi - lo <= limit:
        return np.arange(lo, hi, dtype=np.int64)
    inner = rng.integers(lo + keep_ends, hi - keep_ends, limit - 2 * keep_ends, dtype=np.int64)
    ends = np.concatenate([np.arange(lo, lo + keep_ends), np.arange(hi - keep_ends, hi)])
    return np.unique(np.concatenate([ends, inner]))


def finite_codes(fmt: FloatFormat) -> np.ndarray:
    codes = np.arange(fmt.n_codes)
    return codes[np.isfinite(decode(codes, fmt, dtype=np.float64))]


def saturated_codes(fmt, values) -> np.ndarray:
    return encode(np.asarray(values, np.float64), fmt, saturate=True)


def geometry(stride, padding, dilation, groups) -> dict:
    return {"stride": np.asarray(stride, np.int32), "padding": np.asarray(padding, np.int32),
            "dilation": np.asarray(dilation, np.int32), "groups": np.asarray(groups, np.int32)}
