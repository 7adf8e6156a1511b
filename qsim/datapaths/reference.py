"""Slow scalar reference for the integer datapath, written from the rules in
docs/design/requant.md with Python integers (and Python doubles rounded to float32
through struct, one correctly rounded operation at a time). Tests hold the array code to it.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction


# -- accumulators ------------------------------------------------------------------------------
def dot_terms(a_row, b_col, pairs: bool = False) -> list[int]:
    """The terms an accumulator adds: products, or fbgemm's int16-saturated product pairs."""
    products = [int(x) * int(y) for x, y in zip(a_row, b_col)]
    if not pairs:
        return products
    if len(products) % 2:
        products.append(0)
    return [max(-32768, min(32767, products[i] + products[i + 1])) for i in range(0, len(products), 2)]


def accumulate(terms: list[int], bits: int, overflow: str, order: str) -> tuple[int, int]:
    """(result, number of additions that left the range) of summing terms from 0."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    events = 0

    def add(x: int, y: int) -> int:
        nonlocal events
        s = x + y
        if lo <= s <= hi:
            return s
        events += 1
        if overflow == "saturate":
            return lo if s < lo else hi
        return (s - lo) % (1 << bits) + lo

    if order == "pairwise":
        level = list(terms)
        while len(level) > 1:
            nxt = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        return (add(0, level[0]) if level else 0), events
    acc = 0
    for t in (reversed(terms) if order == "reversed" else terms):
        acc = add(acc, t)
    return acc, events


# -- requantization ------------------------------------------------------------------------------
def f32(x: float) -> float:
    """x rounded to float32 (round half to even), as a Python float."""
    return struct.unpack("f", struct.pack("f", x))[0]


def multiplier(sx: float, sw: float, sy: float) -> float:
    return float(f32(sx)) * float(f32(sw)) / float(f32(sy))


def quantize_multiplier(m: float, single_rounding: bool = False) -> tuple[int, int]:
    if m == 0:
        return 0, 0
    f, e = math.frexp(m)
    q = math.floor(f * 2 ** 31 + 0.5)
    if q == 1 << 31:
        q, e = q // 2, e + 1
    if e < -31:
        return 0, 0
    if single_rounding and e > 30:
        return (1 << 31) - 1, 30
    return q, e


def _to_int32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def _div_trunc(x: int, d: int) -> int:
    q = abs(x) // d
    return q if x >= 0 else -q


def gemmlowp(acc: int, m: float) -> int:
    q, shift = quantize_multiplier(m)
    x = _to_int32(acc * 2 ** max(shift, 0))
    if x == q == -(1 << 31):
        high = (1 << 31) - 1
    else:
        ab = x * q
        high = _div_trunc(ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30)), 1 << 31)
    right = max(-shift, 0)
    if right == 0:
        return high
    quotient, rem = divmod(abs(high), 1 << right)       # half away from zero
    rounded = quotient + (2 * rem >= (1 << right))
    return rounded if high >= 0 else -rounded


def tflite_single(acc: int, m: float) -> int:
    q, shift = quantize_multiplier(m, single_rounding=True)
    return math.floor(Fraction(acc * q, 2 ** (31 - shift)) + Fraction(1, 2))     # half up


def ruy_x86(acc: int, m: float) -> int:
    q, shift = quantize_multiplier(m)
    high = math.floor(Fraction(_to_int32(acc * 2 ** max(shift, 0)) * q, 2 ** 31) + Fraction(1, 2))
    return math.floor(Fraction(high, 2 ** max(-shift, 0)) + Fraction(1, 2))        # half up again


def reference_double(acc: int, m: float) -> int:
    v = float(acc) * m
    r = int(math.copysign(math.floor(abs(v) + 0.5), v))
    return r if -(1 << 31) <= r < (1 << 31) else -(1 << 31)      # x86 cvttsd2si out of range


def xnnpack(acc: int, sx: float, sw: float, sy: float, zero: int, lo: int, hi: int) -> int:
    scale = f32(f32(f32(sx) * f32(sw)) / f32(sy))
    v = min(f32(f32(float(acc)) * scale), float(hi - zero))
    r = _to_int32(cvtps2dq(v) + zero)
    return max(max(-128, min(127, r)), lo)


def float32_rne(acc: int, sx: float, sw: float, sy: float) -> int:
    scale = f32(f32(f32(sx) * f32(sw)) / f32(sy))
    return round(f32(f32(float(acc)) * scale))          # Python round: half to even


def shift_round(x: int, n: int, rounding: str) -> int:
    q, r = divmod(x, 1 << n)          # floor division, r >= 0
    half = (1 << n) / 2
    if r == 0:
        return q
    return {
        "down": q, "up": q + 1, "rtz": q + (x < 0),
        "half_up": q + (r >= half), "rna": q + (r > half or (r == half and x >= 0)),
        "rne": q + (r > half or (r == half and q % 2 == 1)),
    }[rounding]


def fma_f32(a: float, b: float, c: float) -> float:
    """float32(a * b + c) with one rounding, through exact rationals."""
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    near = f32(float(exact))
    candidates = [near, float(np_nextafter32(near, -1)), float(np_nextafter32(near, 1))]
    errors = [abs(Fraction(v) - exact) for v in candidates]
    best = min(errors)
    ties = [v for v, e in zip(candidates, errors) if e == best]
    if len(ties) > 1:
        ties = [v for v in ties if struct.unpack("I", struct.pack("f", v))[0] % 2 == 0]
    return ties[0]


def np_nextafter32(x: float, direction: int) -> float:
    bits = struct.unpack("I", struct.pack("f", x))[0]
    if x == 0:
        return struct.unpack("f", struct.pack("I", 1 if direction > 0 else 0x80000001))[0]
    step = 1 if (x > 0) == (direction > 0) else -1
    return struct.unpack("f", struct.pack("I", bits + step))[0]


def cvtps2dq(v: float) -> int:
    if v != v or abs(v) >= 2 ** 31:
        return -(1 << 31)
    return round(v)


def fbgemm(acc: int, sx: float, sw: float, sy: float, bias: float | None, per_channel: bool) -> int:
    atw = f32(f32(sx) * f32(sw))
    xf = f32(float(acc))
    if bias is not None:
        if per_channel:
            xf = f32(xf + f32(f32(bias) / atw))
        else:
            xf = fma_f32(f32(bias), f32(1.0 / atw), xf)
    return cvtps2dq(f32(xf * f32(atw / f32(sy))))


def qnnpack(acc: int, sx: float, sw: float, sy: float, bias: float | None) -> int:
    if bias is not None:
        q = f32(f32(bias) * f32(1.0 / f32(f32(sw) * f32(sx))))
        acc = _to_int32(acc + max(-(1 << 31), min((1 << 31) - 1, round(q))))
    scale = f32(f32(f32(sw) * f32(sx)) * f32(1.0 / f32(sy)))
    return cvtps2dq(f32(f32(float(acc)) * scale))


# -- floating-point accumulation (exact rationals) ------------------------------------------
def round_into(v: Fraction, fmt, rounding: str = "rne", saturate: bool = False):
    """The finite rational v rounded into a float format: a Fraction, or +-inf / nan."""
    from ..formats import format as get_format
    from ..reference import encode_exact, ref_decode
    fmt = get_format(fmt)
    return ref_decode(encode_exact(v < 0, abs(v), fmt, rounding, saturate), fmt)


def float_sum(products, fmt, rounding: str = "rne", saturate: bool = False, order: str = "sequential"):
    """Products (Fractions) summed with every add rounded into fmt."""
    if order == "pairwise":
        level = [round_into(Fraction(p), fmt, rounding, saturate) for p in products]
        while len(level) > 1:
            nxt = [round_into(level[i] + level[i + 1], fmt, rounding, saturate) for i in range(0, len(level) - 1, 2)]
            level = nxt + ([level[-1]] if len(level) % 2 else [])
        return level[0] if level else Fraction(0)
    acc = Fraction(0)
    for p in (reversed(products) if order == "reversed" else products):
        acc = round_into(acc + p, fmt, rounding, saturate)
    return acc


def _floor_log2(v: Fraction) -> int:
    v = abs(v)
    e = v.numerator.bit_length() - v.denominator.bit_length()
    return e if Fraction(2) ** e <= v else e - 1


def fused_sum(products, group: int, bits: int, align: str, fmt, rounding: str, saturate: bool = False,
              promote_every: int = 0):
    """The fused multi-term unit: each group of products and the running sum aligned to the
    largest exponent among them, `bits` bits kept (truncated toward zero or rounded half even),
    summed exactly, rounded into fmt once; every promote_every products the partial sum joins
    an FP32 round-to-nearest-even accumulator."""
    acc, total, k = Fraction(0), Fraction(0), 0
    products = [Fraction(p) for p in products]
    while k < len(products):
        g = min(group, len(products) - k)
        if promote_every:
            g = min(g, promote_every - k % promote_every)
        terms = [acc] + products[k:k + g]
        nonzero = [t for t in terms if t != 0]
        if nonzero:
            lsb = max(_floor_log2(t) for t in nonzero) - bits + 1
            unit = Fraction(2) ** lsb
            kept = 0
            for t in terms:
                q = t / unit
                if align == "truncate":
                    kept += int(q)                      # int() truncates toward zero
                else:
                    kept += round(q)                    # Fraction round: half to even
            acc = round_into(kept * unit, fmt, rounding, saturate)
        k += g
        if promote_every and (k % promote_every == 0 or k == len(products)):
            total = round_into(total + acc, "fp32", "rne")
            acc = Fraction(0)
    return total if promote_every else acc
