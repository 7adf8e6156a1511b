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


# -- matrix units (qsim/datapaths/matrix_units.py), with Fractions ----------------------------------
def _exponent(x: Fraction) -> int:
    """floor(log2 |x|) of a nonzero Fraction."""
    x = abs(x)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    return e - 1 if Fraction(2) ** e > x else e


def _trunc(x: Fraction, q: int) -> Fraction:
    """x toward zero to a multiple of 2^q."""
    n = abs(x) / Fraction(2) ** q
    n = Fraction(n.numerator // n.denominator) * Fraction(2) ** q
    return n if x >= 0 else -n


def _floor(x: Fraction, q: int) -> Fraction:
    return Fraction(math.floor(x / Fraction(2) ** q)) * Fraction(2) ** q


def _round_output(x: Fraction, output: str):
    """x rounded to the unit's output (a Fraction, or +-inf)."""
    mbits, emin, emax, rne = {"rz-fp32": (23, -126, 127, False), "rz-e8m13": (13, -126, 127, False),
                              "rne-fp16": (10, -14, 15, True), "rne-fp32": (23, -126, 127, True)}[output]
    if x == 0:
        return Fraction(0)
    q = max(_exponent(x), emin) - mbits
    n = abs(x) / Fraction(2) ** q
    r = n.numerator // n.denominator
    rem = n - r
    if rne and (rem > Fraction(1, 2) or (rem == Fraction(1, 2) and r % 2)):
        r += 1
    v = r * Fraction(2) ** q
    if v >= Fraction(2) ** (emax + 1):
        return math.inf if x > 0 else -math.inf
    return v if x > 0 else -v


def unit_step(products, c, arithmetic, c_emin: int):
    """One step of a matrix unit: products as (value, exponent) pairs of Fractions and ints
    (the exponent: the sum of the factors' max(e, emin), plus the scales'), and the addend c
    (a Fraction, +-inf or nan). `group`: the products of each group are summed exactly,
    their exponent the group's largest. Returns a Fraction, +-inf or nan."""
    ar = arithmetic
    if isinstance(c, float):                  # Inf or NaN addend
        return c
    if ar.group:
        grouped = []
        for i in range(0, len(products), ar.group):
            g = [p for p in products[i:i + ar.group] if p[0] != 0]
            if g:
                grouped.append((sum(v for v, _ in g), max(x for _, x in g)))
        products = grouped
    terms = [(v, x) for v, x in products if v != 0 or ar.group]
    cx = max(_exponent(c), c_emin) if c != 0 else None
    if ar.second_fraction_bits:
        e1 = max((x for _, x in terms), default=None)
        s = sum((_trunc(v, e1 - ar.fraction_bits) for v, _ in terms), Fraction(0))
        if e1 is None and cx is None:
            return Fraction(0)
        e2 = max(x for x in (e1, cx, ar.lowest_exponent) if x is not None)
        total = _trunc(s, e2 - ar.second_fraction_bits) + (_floor(c, e2 - ar.fraction_bits) if c != 0 else 0)
        return _round_output(total, ar.output)
    exps = [x for _, x in terms] + ([cx] if cx is not None else [])
    if not exps:
        return Fraction(0)
    q = max(exps + [ar.lowest_exponent]) - ar.fraction_bits
    total = sum((_trunc(v, q) for v, _ in terms), Fraction(0)) + _trunc(c, q)
    return _round_output(total, ar.output)


def unit_dot(a_vals, b_vals, c, arithmetic, emins, k: int, scales=None, block: int = 0, c_emin: int = -126,
             out_emin: int = -126, promote_every: int = 0):
    """D of one output: a_vals, b_vals (Fractions or float Inf/NaN) along K, c, the instruction
    k; emins (a's, b's, scale's emin and mantissa bits are folded in by the caller as exponent
    functions); scales: per block (sa, sb) Fractions. A chain of steps, each one's result the
    next one's addend; promote_every: partial sums (from zero) added into an FP32 total."""
    ea, eb, es = emins
    step = min(arithmetic.step, k)
    total, acc, first = c, (Fraction(0) if promote_every else c), True
    for k0 in range(0, len(a_vals), step):
        prods, special = [], None
        for t in range(k0, k0 + step):
            x, y = a_vals[t], b_vals[t]
            if isinstance(x, float) or isinstance(y, float):      # Inf or NaN factor
                if x != x or y != y or x == 0 or y == 0:
                    special = math.nan
                else:
                    s = math.copysign(1, x) * math.copysign(1, y)
                    special = math.nan if special is not None and special != s * math.inf else s * math.inf
                continue
            v, xe = x * y, ea(x) + eb(y)
            if scales is not None and v != 0:
                sa, sb = scales[t // block]
                if isinstance(sa, float) or isinstance(sb, float):
                    special = math.nan
                    continue
                v, xe = v * sa * sb, xe + es(sa) + es(sb)
            prods.append((v, xe))
        if special is not None or isinstance(acc, float):
            vals = [v for v in (special, acc) if isinstance(v, float)]
            acc = math.nan if any(v != v for v in vals) or (math.inf in vals and -math.inf in vals) else vals[0]
        else:
            acc = unit_step(prods, acc, arithmetic, c_emin if (first and not promote_every) else out_emin)
        first = False
        if promote_every and ((k0 + step) % promote_every == 0 or k0 + step >= len(a_vals)):
            total = _fp32_add(total, acc)
            acc = Fraction(0)
    return total if promote_every else acc


def _fp32_add(x, y):
    """x + y in IEEE FP32 (round to nearest even), x and y FP32 values, Inf or NaN."""
    if isinstance(x, float) or isinstance(y, float):
        return float(x) + float(y)
    return _round_output(x + y, "rne-fp32")
