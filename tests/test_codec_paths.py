"""The codecs' specialised paths against their general ones and against scalar rules.

- float32 round-to-nearest-even (cython_src/_encode.h qs_encode_f32_rne_fast, FP16 through the
  CPU's conversion in _half.h, E8M0 through qs_encode_scale_f32_rne) against the general
  float64 encoders, on every exponent, both signs and the mantissa bits around each rounding
  point (and, marked slow, on every float32);
- the exponent-only scale encoder (E8M0) against the rule written out in Python;
- decoding 8-bit codes with the table in registers (cython_src/_lookup.h) against the table,
  at lengths off its 16-lane grid;
- chunks that start on the input's cache lines: an array's results do not depend on where it
  starts in memory, nor on the thread count.
"""

import math

import numpy as np
import pytest

import qsim
from qsim.codec import packed, value_table

# Every built-in float format (and custom ones) a float32 fast path serves.
FAST_FORMATS = [f for f in qsim.builtin_formats() + [qsim.format(n) for n in ("e3m4", "e5m3fnuz", "e2m5fn")]
                if isinstance(f, qsim.FloatFormat) and packed(f)["magic_bits"]] + [qsim.format("e8m0")]


def test_the_fast_path_serves_the_formats_it_is_for():
    assert {"bf16", "fp16", "e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "fp4_e2m1", "e8m0"} <= {f.name for f in FAST_FORMATS}


def saturations(fmt):
    return (True, False) if (fmt.has_inf or fmt.has_nan) else (True,)


def float32_around_rounding_points(fmt) -> np.ndarray:
    """Every exponent field and sign, with every pattern of the mantissa bits fmt keeps and
    the dropped bits at 0, 1, just below, on and just above the half-way point, and all ones
    (NaNs among them whose payload lies in the dropped bits only)."""
    assert fmt.mantissa_bits <= 10, "every pattern of the kept bits: at most 2**10 of them"
    dropped = 23 - fmt.mantissa_bits
    kept = np.arange(1 << fmt.mantissa_bits, dtype=np.uint32) << np.uint32(dropped)
    half = 1 << (dropped - 1)
    low = np.array([0, 1, half - 1, half, half + 1, (1 << dropped) - 1], np.uint32)
    mant = (kept[:, None] | low[None, :]).ravel()
    exps = np.arange(256, dtype=np.uint32) << np.uint32(23)
    bits = (exps[:, None] | mant[None, :]).ravel()
    bits = np.concatenate([bits, bits | np.uint32(1 << 31)])
    x = bits.view(np.float32)
    return x if fmt.has_nan else x[~np.isnan(x)]


@pytest.mark.parametrize("fmt", FAST_FORMATS, ids=lambda f: f.name)
def test_float32_fast_path_is_the_general_encoder(fmt):
    x = float32_around_rounding_points(fmt)
    with np.errstate(invalid="ignore"):  # signalling NaNs come out quiet, with the bits the codes keep
        wide = x.astype(np.float64)
    for sat in saturations(fmt):
        got = qsim.encode(x, fmt, saturate=sat)
        want = qsim.encode(wide, fmt, saturate=sat)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{fmt.name} saturate={sat}: {bad.size} differ, e.g. "
                               f"0x{x[bad[:1]].view(np.uint32)[0]:08x} -> 0x{got[bad[0]]:x}, "
                               f"general encoder 0x{want[bad[0]]:x}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bf16", "fp16", "e4m3", "e5m2", "e8m0"])
def test_float32_fast_path_on_every_float32(name):
    fmt = qsim.format(name)
    chunk = 1 << 24
    for start in range(0, 1 << 32, chunk):
        x = np.arange(start, start + chunk, dtype=np.uint64).astype(np.uint32).view(np.float32)
        got = qsim.encode(x, fmt)
        with np.errstate(invalid="ignore"):          # signalling NaNs come out quiet
            want = qsim.encode(x.astype(np.float64), fmt)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, f"{name}: 0x{x[bad[:1]].view(np.uint32)[0]:08x} -> 0x{got[bad[0]]:x}, want 0x{want[bad[0]]:x}"


# -- E8M0 -----------------------------------------------------------------------------------
def e8m0_rule(x: float, rounding: str, saturate: bool) -> int:
    """E8M0 written out: the code is the exponent + 127 of x rounded to a power of two; the
    even code wins a tie under "rne"; no code for negatives, zero or NaN (0xFF); below 2**-127
    clamps to code 0; past 2**127 saturates to 0xFE or gives 0xFF, as Inf does."""
    if math.isnan(x) or x <= 0 or math.copysign(1.0, x) < 0:
        return 0xFF
    if math.isinf(x):
        return 0xFE if saturate else 0xFF
    m, e = math.frexp(x)                  # x = m * 2**e, 0.5 <= m < 1
    lower = e - 1 + 127                   # code of the power of two at or below x
    frac = 2 * m - 1                      # where x lies between it and the next, in [0, 1)
    up = {"rtz": False, "down": False, "up": frac > 0, "rna": frac >= 0.5,
          "rne": frac > 0.5 or (frac == 0.5 and lower % 2 == 1)}[rounding]
    code = max(lower + up, 0)
    return code if code <= 0xFE else (0xFE if saturate else 0xFF)


def e8m0_inputs(dtype) -> np.ndarray:
    """Every float32 exponent (float64: every exponent float32's E8M0 range reaches, and the
    far ends), both signs, mantissas on and around the half-way point, zeros, Infs and NaNs."""
    m = np.array([1.0, 1.0 + 2.0**-23, 1.5 - 2.0**-23, 1.5, 1.5 + 2.0**-23, 2 - 2.0**-23])
    e = np.arange(-160, 140) if dtype == np.float64 else np.arange(-149, 128)
    x = (m[None, :] * np.exp2(e.astype(np.float64))[:, None]).ravel()
    x = np.concatenate([x, -x, [0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-1074, 1.7e308]])
    with np.errstate(over="ignore"):
        return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("rounding", ["rne", "rtz", "rna", "up", "down"])
def test_e8m0_encoder_follows_the_rule(dtype, rounding):
    x = e8m0_inputs(dtype)
    for sat in (True, False):
        got = qsim.encode(x, "e8m0", rounding=rounding, saturate=sat)
        want = [e8m0_rule(v, rounding, sat) for v in x.tolist()]
        bad = [(v, g, w) for v, g, w in zip(x.tolist(), got.tolist(), want) if g != w]
        assert not bad, f"{rounding} saturate={sat}: (x, got, rule) {bad[:5]}"


def test_e8m0_stochastic_picks_a_neighbour_and_ignores_threads():
    x = e8m0_inputs(np.float32)
    x = np.tile(x[np.isfinite(x) & (x > 0)], 20)            # several chunks for the threads
    got = qsim.encode(x, "e8m0", rounding="stochastic", seed=9, num_threads=1)
    lo = np.array([e8m0_rule(v, "down", True) for v in x.tolist()])
    hi = np.array([e8m0_rule(v, "up", True) for v in x.tolist()])
    assert np.all((got == lo) | (got == hi))
    np.testing.assert_array_equal(qsim.encode(x, "e8m0", rounding="stochastic", seed=9, num_threads=3), got)


# -- decoding through the table in registers --------------------------------------------------
# E5M2 decodes through the CPU's half conversion (F16C) instead, where it has one.
EIGHT_BIT_OR_LESS = [f for f in qsim.builtin_formats()
                     if isinstance(f, qsim.FloatFormat) and f.storage_bits <= 8 and not qsim.codec._is_float16_prefix(f)]


@pytest.mark.parametrize("fmt", EIGHT_BIT_OR_LESS, ids=lambda f: f.name)
@pytest.mark.parametrize("n", [1, 15, 17, 100_003])
def test_register_table_decode_is_the_table(fmt, n):
    codes = np.random.default_rng(n).integers(0, fmt.n_codes, n + 3).astype(np.uint8)
    codes[:min(n, fmt.n_codes)] = np.arange(min(n, fmt.n_codes))          # every code, where n allows
    table = value_table(fmt, "<f4") if qsim.codec.fits_float32(fmt) else None
    if table is None:
        pytest.skip(f"{fmt.name} decodes to float64")
    out = np.full(n + 5, 7.0, np.float32)
    got = qsim.decode(codes[3:], fmt, out=out[5:])                          # both off a cache line
    np.testing.assert_array_equal(got.view(np.uint32), table[codes[3:]].view(np.uint32))
    assert np.all(out[:5] == 7.0)


# -- chunks on cache lines ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt,rounding", [("e4m3", "rne"), ("bf16", "rne"), ("e5m2", "stochastic"),
                                          ("e8m0", "rne"), ("e3m4", "rtz")])
def test_results_do_not_depend_on_where_the_array_starts(fmt, rounding):
    n = 3 * 16384 + 77                                     # several chunks and a partial one
    base = np.abs(np.random.default_rng(4).standard_normal(n + 16) * 30).astype(np.float32)
    seed = 2 if rounding == "stochastic" else None
    for start in (0, 1, 5, 12, 15):
        x = base[start:start + n]
        want = qsim.encode(np.array(x), fmt, rounding=rounding, seed=seed, num_threads=1)
        for threads in (1, 2, 3):
            np.testing.assert_array_equal(qsim.encode(x, fmt, rounding=rounding, seed=seed, num_threads=threads), want)
        values = qsim.decode(want, fmt)
        for threads in (1, 3):
            out = np.empty(n + 16, values.dtype)[start:start + n]
            qsim.decode(want, fmt, num_threads=threads, out=out)
            np.testing.assert_array_equal(out.view(np.uint8), values.view(np.uint8))
