"""Requantization methods against the scalar reference, including exact ties."""

import numpy as np
import pytest

from qsim.datapaths import reference as ref
from qsim.datapaths.requant import (METHODS, SHIFT_ROUNDINGS, quantize_multiplier, real_multiplier,
                                    requantize, requantize_shift, shift_round)

SCALAR = {
    "gemmlowp": lambda acc, s: ref.gemmlowp(acc, ref.multiplier(*s)),
    "tflite-single": lambda acc, s: ref.tflite_single(acc, ref.multiplier(*s)),
    "ruy-x86": lambda acc, s: ref.ruy_x86(acc, ref.f32(ref.f32(s[0]) * ref.f32(s[1])) / ref.f32(s[2])),
    "reference-double": lambda acc, s: ref.reference_double(acc, ref.multiplier(*s)),
    "float32": lambda acc, s: ref.float32_rne(acc, *s),
    "xnnpack": lambda acc, s: ref.xnnpack(acc, *s, 0, -128, 127),
    "fbgemm": lambda acc, s: ref.fbgemm(acc, *s, bias=None, per_channel=False),
    "qnnpack": lambda acc, s: ref.qnnpack(acc, *s, bias=None),
}


def scale_cases(rng, n):
    """(sx, sw, sy) with multipliers from 2^-20 to above 1, and exact powers of two (ties)."""
    for i in range(n):
        if i % 3 == 0:                                   # m an exact power of two: .5 ties
            yield (2.0 ** rng.integers(-8, 0), 2.0 ** rng.integers(-8, 0), 2.0 ** rng.integers(-14, -1))
        else:
            yield tuple(float(np.float32(v)) for v in 10.0 ** rng.uniform(-4, 0, 3))


def accumulators(rng):
    base = rng.integers(-(1 << 20), 1 << 20, 200)
    extremes = [0, 1, -1, 2, -2, 3, -3, (1 << 24) + 1, -(1 << 24) - 3, (1 << 31) - 1, -(1 << 31), 123456789]
    return np.concatenate([base, extremes]).astype(np.int64)


@pytest.mark.parametrize("method", list(METHODS))
def test_method_matches_scalar_reference(method):
    rng = np.random.default_rng(len(method))
    accs = accumulators(rng)
    for scales in scale_cases(rng, 30):
        lo, hi = (-128, 127) if method == "xnnpack" else (-(1 << 40), 1 << 40)
        got = requantize(accs, *scales, 0, lo, hi, method)
        want = [SCALAR[method](int(a), scales) for a in accs]
        if method not in ("float32", "xnnpack"):          # the zero point joins in int32
            want = [ref._to_int32(v) for v in want]
        np.testing.assert_array_equal(got, np.array(want, np.int64), err_msg=f"scales {scales}")


@pytest.mark.parametrize("per_channel", [False, True])
def test_float_bias_methods_match_scalar_reference(per_channel):
    rng = np.random.default_rng(4)
    accs = accumulators(rng)[:80]
    for sx, sw, sy in scale_cases(rng, 12):
        bias = np.float32(rng.normal(0, 50) * sx * sw)
        w = np.full(accs.shape, sw, np.float32) if per_channel else sw
        b = np.full(accs.shape, bias, np.float32)
        fb = requantize(accs, sx, w, sy, 0, -(1 << 40), 1 << 40, "fbgemm", b)
        qn = requantize(accs, sx, w, sy, 0, -(1 << 40), 1 << 40, "qnnpack", b)
        for i, acc in enumerate(accs):
            assert fb[i] == ref.fbgemm(int(acc), sx, sw, sy, float(bias), per_channel)
            assert qn[i] == ref.qnnpack(int(acc), sx, sw, sy, float(bias))


def test_per_channel_scales_apply_along_the_last_axis():
    rng = np.random.default_rng(1)
    acc = rng.integers(-50000, 50000, (4, 3))
    sw = np.array([0.01, 0.02, 0.5], np.float32)
    for method in METHODS:
        if method == "ruy-x86":          # derives its per-tensor multiplier differently
            continue
        got = requantize(acc, 0.1, sw, 0.3, 5, -128, 127, method)
        for c in range(3):
            np.testing.assert_array_equal(got[:, c], requantize(acc[:, c], 0.1, sw[c], 0.3, 5, -128, 127, method))


def test_ties_tell_the_methods_apart():
    """m = 1/4: acc = 2 * odd lands on .5 ties; each rounding rule resolves them its own way."""
    acc = np.array([-10, -6, -2, 2, 6, 10])
    got = {m: requantize(acc, 0.25, 1.0, 1.0, 0, -128, 127, m).tolist() for m in METHODS}
    assert got["gemmlowp"] == [-3, -2, -1, 1, 2, 3]           # the shift rounds half away
    assert got["reference-double"] == [-3, -2, -1, 1, 2, 3]
    assert got["tflite-single"] == [-2, -1, 0, 1, 2, 3]       # half up
    assert got["ruy-x86"] == [-2, -1, 0, 1, 2, 3]
    assert got["float32"] == [-2, -2, 0, 0, 2, 2]             # half even


def test_gemmlowp_high_mul_rounds_negative_ties_up():
    """With m = 1/2 there is no shift: SRDHM's nudge 1 - 2^30 sends -0.5 to 0, not -1."""
    acc = np.array([-5, -3, -1, 1, 3, 5])
    assert requantize(acc, 0.5, 1.0, 1.0, 0, -128, 127, "gemmlowp").tolist() == [-2, -1, 0, 1, 2, 3]


def test_double_rounding_differs_from_single_rounding():
    """gemmlowp rounds the high product, then the shift: a value just under a tie can round twice."""
    m = 0.3
    accs = np.arange(-20000, 20000)
    double = requantize(accs, m, 1.0, 1.0, 0, -(1 << 30), 1 << 30, "gemmlowp")
    exact = np.array([ref.reference_double(int(a), float(np.float32(m))) for a in accs])
    assert (double != exact).any()


def test_quantize_multiplier_rules():
    q, e = quantize_multiplier([0.5, 1.0, 0.75, 2.0 ** -33, 0.0, 1e10])
    assert q.tolist()[:3] == [1 << 30, 1 << 30, 3 << 29] and e.tolist()[:3] == [0, 1, 0]
    assert (q[3], e[3]) == (0, 0) and (q[4], e[4]) == (0, 0)                 # flushed, zero
    q, e = quantize_multiplier(1e10, single_rounding=True)
    assert (int(q), int(e)) == ((1 << 31) - 1, 30)
    q, e = quantize_multiplier(np.nextafter(1.0, 0))          # rounds up to 2^31: carries
    assert (int(q), int(e)) == (1 << 30, 1)
    for m in (0.1, 0.3333, 1.7, 123.4):
        assert tuple(map(int, quantize_multiplier(m))) == ref.quantize_multiplier(m)
    with pytest.raises(ValueError, match="finite"):
        quantize_multiplier(float("nan"))
    with pytest.raises(ValueError, match="finite"):
        quantize_multiplier(-0.5)


@pytest.mark.parametrize("rounding", SHIFT_ROUNDINGS)
def test_shift_rounding_matches_reference(rounding):
    xs = np.arange(-70, 71)
    for n in (0, 1, 2, 3, 5):
        np.testing.assert_array_equal(shift_round(xs, n, rounding),
                                      [ref.shift_round(int(x), n, rounding) for x in xs])
    got = requantize_shift(np.array([1000, -1000]), 3, 10, -128, 127, rounding)
    assert got.tolist() == [127, -115]


def test_real_multiplier_is_double_of_float32_scales():
    m = real_multiplier(0.1, 0.2, 0.3)
    want = float(np.float32(0.1)) * float(np.float32(0.2)) / float(np.float32(0.3))
    assert m == want


def test_bad_requant_arguments():
    with pytest.raises(ValueError, match="unknown requantization"):
        requantize(np.zeros(2, np.int64), 1.0, 1.0, 1.0, 0, -128, 127, "mystery")
    with pytest.raises(ValueError, match="shift rounding"):
        shift_round(np.zeros(2), 1, "nearest")
    with pytest.raises(ValueError, match="shift"):
        shift_round(np.zeros(2), -1, "down")


def test_fma_float32_rounds_once():
    """Against exact rationals: float32(a * b + c) with a single rounding, ties to even."""
    from fractions import Fraction

    from qsim.datapaths.requant import fma_float32
    rng = np.random.default_rng(12)
    a = rng.normal(0, 1, 3000).astype(np.float32)
    b = rng.normal(0, 1, 3000).astype(np.float32)
    c = (-(a.astype(np.float64) * b) + rng.normal(0, 1e-6, 3000)).astype(np.float32)   # cancellation
    c[::3] = rng.normal(0, 1e6, 1000).astype(np.float32)
    got = fma_float32(a, b, c)
    for x, y, z, g in zip(a, b, c, got):
        exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
        want = ref.f32(float(exact))            # double first: check it is not a double-rounding case
        lo, hi = np.nextafter(np.float32(want), np.float32(-np.inf)), np.nextafter(np.float32(want), np.float32(np.inf))
        errs = {v: abs(Fraction(float(v)) - exact) for v in (np.float32(want), lo, hi)}
        best = min(errs.values())
        winners = [v for v, e in errs.items() if e == best]
        if len(winners) > 1:                    # exact tie between two floats: the even one
            winners = [v for v in winners if int(np.float32(v).view(np.uint32)) % 2 == 0]
        assert g == winners[0], (x, y, z)
