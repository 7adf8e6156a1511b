"""A slow, exact scalar reference for the codecs, written from the format rules
(docs/design/formats.md and qsim.formats.spec), not from the kernels.

Every value is a ``fractions.Fraction``, so there is no hidden floating-point rounding. The
tests run the compiled kernels against these functions; nothing on a hot path calls them.

The rules implemented:

- Round first, then check overflow. Rounding works on the unbounded grid: above the largest
  finite value ``max`` the next grid point is ``max + ulp(max)`` (the next code, which is
  Inf or NaN or past the end of the codes). Ties to even pick the even code.
- A rounded magnitude above ``max`` saturates to +-max (``saturate=True``) or gives Inf (or
  the NaN code, for formats without Inf). IEEE 754 section 7.4: directed rounding never
  overflows away from its direction: "rtz" gives +-max, "up" gives -max for negative values
  and "down" gives +max for positive values.
- +-Inf input: +-max when saturating, else Inf (or NaN). NaN input: a NaN code.
- Zero keeps its sign, except in FNUZ formats, which have no -0, and unsigned formats, which
  have no negative numbers at all (a negative input is an error).
- ``subnormals=False``: an input below the smallest normal becomes a signed zero before
  rounding.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from fractions import Fraction
from functools import lru_cache

from .formats import FloatFormat, IntFormat, format as get_format

ROUNDINGS = ("rne", "rtz", "rna", "up", "down", "stochastic")
E8M0_BIAS = 127
E8M0_NAN = 0xFF


def pow2(k: int) -> Fraction:
    return Fraction(2) ** k


def floor_log2(v: Fraction) -> int:
    """The e with 2**e <= v < 2**(e+1), for v > 0."""
    v = Fraction(v)
    e = v.numerator.bit_length() - v.denominator.bit_length()
    # The bit lengths give e or e+1; one comparison settles which.
    return e - 1 if pow2(e) > v else e


# -- the grid of representable magnitudes ---------------------------------------------
@lru_cache(maxsize=None)
def overflow_point(fmt: FloatFormat) -> Fraction:
    """The first grid point above max: max plus the spacing of max's binade."""
    return fmt.max + pow2(fmt.emax - fmt.mantissa_bits)


@lru_cache(maxsize=None)
def _min_normal(fmt: FloatFormat) -> Fraction:
    return fmt.min_normal


@lru_cache(maxsize=None)
def magnitude_table(fmt: FloatFormat) -> tuple[tuple[Fraction, ...], tuple[int, ...]]:
    """Every finite non-negative value of fmt in increasing order, with its code.

    Built from fmt.exact_value over all magnitude codes. In a flush-to-zero format the
    subnormal codes decode to zero and are left out (code 0 stands for zero)."""
    if fmt.storage_bits > 16:
        raise ValueError(f"{fmt.name}: the table reference is for formats of at most 16 bits")
    values, codes = [], []
    for code in range(fmt.max_code_magnitude + 1):
        if not fmt.subnormals and 0 < code < (1 << fmt.mantissa_bits):
            continue
        values.append(fmt.exact_value(code))
        codes.append(code)
    assert all(a < b for a, b in zip(values, values[1:])), "magnitudes must increase with the code"
    assert values[-1] == fmt.max
    return tuple(values), tuple(codes)


def _code_of_magnitude(v: Fraction, fmt: FloatFormat) -> int:
    """Code of a grid magnitude, computed from the bit layout (used for wide formats)."""
    M = fmt.mantissa_bits
    if v < fmt.min_normal:                      # subnormal (or zero): v = m * 2**(emin - M)
        m = v / pow2(fmt.emin - M)
        assert m.denominator == 1
        return int(m)
    e = floor_log2(v)
    m = (v / pow2(e) - 1) * (1 << M)
    assert m.denominator == 1
    return ((e + fmt.bias) << M) | int(m)


def bracket(mag: Fraction, fmt: FloatFormat, method: str | None = None):
    """(lo, lo_code, hi, hi_code): the grid points with lo <= mag <= hi (lo == hi when mag is
    on the grid). hi may be the overflow point, whose code is max_code_magnitude + 1.
    Requires 0 <= mag < overflow_point(fmt).

    method "table" searches magnitude_table; "arith" computes the binade directly (any width).
    """
    if method is None:
        method = "table" if fmt.storage_bits <= 16 else "arith"
    if method == "table":
        values, codes = magnitude_table(fmt)
        i = bisect_right(values, mag) - 1
        lo, lo_code = values[i], codes[i]
        if lo == mag:
            return lo, lo_code, lo, lo_code
        if i + 1 < len(values):
            return lo, lo_code, values[i + 1], codes[i + 1]
        return lo, lo_code, overflow_point(fmt), fmt.max_code_magnitude + 1
    # arith: the spacing is 2**(e - M) in binade e, and 2**(emin - M) below the normals.
    if not fmt.subnormals and 0 < mag < fmt.min_normal:
        raise ValueError("flush-to-zero inputs must be flushed before bracketing")
    e = fmt.emin if mag < fmt.min_normal else floor_log2(mag)
    q = pow2(e - fmt.mantissa_bits)
    lo = math.floor(mag / q) * q
    hi = lo if lo == mag else lo + q
    if not fmt.subnormals and lo < fmt.min_normal:
        lo = Fraction(0)
    return lo, _code_of_magnitude(lo, fmt), hi, _code_of_magnitude(hi, fmt)


# -- special codes ---------------------------------------------------------------------
def _sign(fmt: FloatFormat, negative: bool) -> int:
    return fmt.sign_bit if negative else 0


def nan_code(fmt: FloatFormat, negative: bool = False) -> int:
    if not fmt.has_nan:
        raise ValueError(f"{fmt.name} has no NaN code")
    if fmt.specials == "fnuz":          # the single NaN is 1000...0, no sign
        return fmt.sign_bit
    if fmt.specials == "fn":            # all ones
        return fmt.magnitude_mask | _sign(fmt, negative)
    return fmt.nan_code | _sign(fmt, negative)


def _overflow_code(fmt: FloatFormat, negative: bool) -> int:
    """Non-saturating overflow: Inf if the format has one, else NaN."""
    if fmt.has_inf:
        return fmt.inf_code | _sign(fmt, negative)
    return nan_code(fmt, negative)


def _max_code(fmt: FloatFormat, negative: bool) -> int:
    return fmt.max_code_magnitude | _sign(fmt, negative)


def _zero_code(fmt: FloatFormat, negative: bool) -> int:
    return fmt.sign_bit if (negative and fmt.has_negative_zero) else 0


# -- rounding one magnitude ------------------------------------------------------------
def _round_up_magnitude(rounding: str, negative: bool, lo_code: int, frac: Fraction,
                        rand_bits: int | None, s_bits: int | None) -> bool:
    """Whether |x|, strictly between two grid points at fraction `frac` of the way from lo to
    hi, goes to hi."""
    if rounding == "rtz":
        return False
    if rounding == "up":                # toward +inf: larger magnitude only for positives
        return not negative
    if rounding == "down":
        return negative
    if rounding == "rna":
        return frac >= Fraction(1, 2)
    if rounding == "rne":
        if frac != Fraction(1, 2):
            return frac > Fraction(1, 2)
        return lo_code % 2 == 1         # tie: go to hi when lo is odd, so the result is even
    if rounding == "stochastic":
        if rand_bits is None or s_bits is None:
            raise ValueError("stochastic rounding needs rand_bits and s_bits")
        # rem is the discarded fraction in s bits; up iff rem + random >= 2**s, so
        # P(up) = rem / 2**s.
        rem = math.floor(frac * (1 << s_bits))
        return rem + (rand_bits % (1 << s_bits)) >= (1 << s_bits)
    raise ValueError(f"unknown rounding {rounding!r}")


def encode_exact(negative: bool, mag: Fraction, fmt: FloatFormat, rounding: str = "rne",
                 saturate: bool = True, rand_bits: int | None = None,
                 s_bits: int | None = None) -> int:
    """Code of the finite real number (-1)**negative * mag (mag >= 0, exact)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}")
    mag = Fraction(mag)
    if mag < 0:
        raise ValueError("mag must be >= 0")
    if not fmt.subnormals and mag < _min_normal(fmt):
        mag = Fraction(0)               # flush the input before rounding
    if mag >= overflow_point(fmt):
        overflow = True                 # every rounding of mag on the unbounded grid is > max
    else:
        lo, lo_code, hi, hi_code = bracket(mag, fmt)
        if lo == hi:
            code = lo_code
        else:
            frac = (mag - lo) / (hi - lo)
            up = _round_up_magnitude(rounding, negative, lo_code, frac, rand_bits, s_bits)
            code = hi_code if up else lo_code
        overflow = code > fmt.max_code_magnitude
    if overflow:
        toward_zero = (rounding == "rtz" or (rounding == "up" and negative)
                       or (rounding == "down" and not negative))
        if saturate or toward_zero:
            return _max_code(fmt, negative)
        return _overflow_code(fmt, negative)
    if code == 0:
        return _zero_code(fmt, negative)
    return code | _sign(fmt, negative)


def _check_float_format(fmt, saturate: bool) -> FloatFormat:
    fmt = get_format(fmt)
    if not isinstance(fmt, FloatFormat):
        raise TypeError(f"{fmt.name} is not a float format")
    if not fmt.has_zero:
        raise ValueError(f"{fmt.name}: the reference covers formats with a zero")
    if not saturate and not (fmt.has_inf or fmt.has_nan):
        raise ValueError(f"{fmt.name} has no Inf or NaN; use saturate=True")
    return fmt


def ref_encode_float(x: float, fmt, rounding: str = "rne", saturate: bool = True,
                     rand_bits: int | None = None, s_bits: int | None = None) -> int:
    """The code of the float x in fmt.

    Stochastic rounding (rounding="stochastic") needs rand_bits (a uniform random integer)
    and s_bits: with |x| a fraction f of the way from the lower neighbour to the upper one,
    it rounds up iff floor(f * 2**s_bits) + (rand_bits mod 2**s_bits) >= 2**s_bits.
    """
    fmt = _check_float_format(fmt, saturate)
    x = float(x)
    negative = math.copysign(1.0, x) < 0
    if math.isnan(x):
        return nan_code(fmt, negative)
    if negative and x != 0 and not fmt.signed:
        raise ValueError(f"{fmt.name} is unsigned: {x!r} has no code")
    if math.isinf(x):
        return _max_code(fmt, negative) if saturate else _overflow_code(fmt, negative)
    return encode_exact(negative, abs(Fraction(x)), fmt, rounding, saturate, rand_bits, s_bits)


def ref_decode(code: int, fmt) -> Fraction | float:
    """The exact value of a code: a Fraction, or float nan / +-inf."""
    return get_format(fmt).exact_value(code)


def is_nan_value(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


# -- integers -------------------------------------------------------------------------
def round_fraction(q: Fraction, rounding: str) -> int:
    """Round an exact rational to an integer."""
    if rounding == "rne":
        return round(q)                 # Fraction.__round__ rounds half to even
    if rounding == "rtz":
        return math.trunc(q)
    if rounding == "rna":
        n = math.floor(abs(q) + Fraction(1, 2))
        return -n if q < 0 else n
    if rounding == "up":
        return math.ceil(q)
    if rounding == "down":
        return math.floor(q)
    raise ValueError(f"unknown integer rounding {rounding!r}")


def ref_encode_int(x: float, fmt, scale: float = 1.0, zero_point: int = 0,
                   rounding: str = "rne", dtype: str = "float64") -> int:
    """q = clamp(round(x / scale) + zero_point, qmin, qmax).

    The division is done in the input's precision, as the spec says (ONNX QuantizeLinear):
    dtype "float64" divides Python floats; "float32" casts x and scale to float32 and divides
    there. The rounding of that quotient is then exact.
    """
    fmt = get_format(fmt)
    if not isinstance(fmt, IntFormat):
        raise TypeError(f"{fmt.name} is not an integer format")
    if dtype == "float64":
        quotient = float(x) / float(scale)     # IEEE double division; overflow gives inf
    elif dtype == "float32":
        import numpy as np          # a true float32 division, rounded once

        with np.errstate(over="ignore"):
            quotient = float(np.float32(x) / np.float32(scale))
    else:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if math.isnan(quotient):
        raise ValueError("x / scale is NaN, which has no integer code")
    if math.isinf(quotient):
        return fmt.qmax if quotient > 0 else fmt.qmin
    q = round_fraction(Fraction(quotient), rounding) + int(zero_point)
    return min(max(q, fmt.qmin), fmt.qmax)


# -- OCP MX -----------------------------------------------------------------------------
def ref_mx_shared_exponent(block, elem_fmt, scale_rule: str = "floor",
                           zero_block: str = "min") -> int | None:
    """The shared exponent of a block of floats, or None for a NaN scale.

    "floor" (OCP MX v1.0 section 6.3): floor(log2(max|V|)) - emax_elem. "rceil": the smallest
    e with max|V| <= max_elem * 2**e. Clamped below at -127. qsim's options for what the spec
    leaves open: an all-zero block gets -127 ("min") or 0 ("one"); a block with NaN or Inf,
    or an exponent above 127, gets a NaN scale.
    """
    elem = get_format(elem_fmt)
    xs = [float(v) for v in block]
    if any(not math.isfinite(v) for v in xs):
        return None
    amax = max(abs(Fraction(v)) for v in xs)
    if amax == 0:
        return -E8M0_BIAS if zero_block == "min" else 0
    if scale_rule == "floor":
        e = floor_log2(amax) - elem.emax
    elif scale_rule == "rceil":
        e = floor_log2(amax) - floor_log2(elem.max) - 2     # too small; step up until it fits
        while amax > elem.max * pow2(e):
            e += 1
    else:
        raise ValueError(f"unknown scale_rule {scale_rule!r}")
    if e > E8M0_BIAS:
        return None
    return max(e, -E8M0_BIAS)


def ref_mx_quantize(block, elem_fmt, scale_rule: str = "floor", rounding: str = "rne",
                    zero_block: str = "min") -> tuple[int, list[int]]:
    """(E8M0 scale code, element codes) of one block: elements are V_i / 2**shared_exp,
    rounded and clamped to +-max. A NaN scale (code 0xFF) comes with element codes 0."""
    elem = _check_float_format(elem_fmt, True)
    if not elem.signed:
        raise ValueError(f"{elem.name}: MX element types are signed")
    xs = [float(v) for v in block]
    e = ref_mx_shared_exponent(xs, elem, scale_rule, zero_block)
    if e is None:
        return E8M0_NAN, [0] * len(xs)
    scale = pow2(e)
    codes = [encode_exact(math.copysign(1.0, v) < 0, abs(Fraction(v)) / scale, elem, rounding, True)
             for v in xs]
    return e + E8M0_BIAS, codes
