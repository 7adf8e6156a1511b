"""Where format definitions stop, and bad input at the codec and integer-quantization entry
points.

FloatFormat accepts a bias only where every value of the layout is a float64 (what decode and
quantize give back): the largest exponent at most 1023, the finest step 2**(emin - M) at least
2**-1074. On both sides of that boundary, and at the biases where the float32 encoder used to
go wrong, every accepted definition must encode float32 and float64 inputs exactly as the
scalar reference (qsim.reference) does and decode every code to its exact value; every
refused definition must say which biases are allowed and why.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import qsim
from qsim.reference import overflow_point, ref_decode, ref_encode_float, ref_encode_int

MODES = ("rne", "rtz", "rna", "up", "down")
DTYPES = (np.float32, np.float64)

# (exponent_bits, mantissa_bits, specials, subnormals, signed): one corner of the encoder each.
LAYOUTS = [
    (4, 3, "fn", True, True),       # E4M3-like: NaN only
    (5, 2, "ieee", True, True),     # E5M2-like: Inf
    (4, 3, "fnuz", True, True),     # a single NaN, no -0
    (2, 1, "none", True, True),     # FP4-like: no specials
    (3, 0, "fn", True, True),       # no mantissa: a tie goes by the exponent's parity
    (1, 2, "none", True, True),     # one exponent bit
    (8, 3, "ieee", False, True),    # flush to zero
    (4, 3, "fn", True, False),      # unsigned
    (11, 20, "ieee", True, True),   # float64's exponent width
    (9, 22, "ieee", True, True),    # 32 bits: the float32 encoder's code arithmetic is full
    (9, 23, "none", True, False),   # unsigned 32 bits: no spare bit above the largest code
    (5, 26, "ieee", True, True),    # a wider mantissa than float32's
]
LAYOUT_IDS = [f"e{e}m{m}{spec}{'' if sub else '_ftz'}{'' if signed else '_unsigned'}"
              for e, m, spec, sub, signed in LAYOUTS]


def float64_bias_range(e: int, m: int, specials: str) -> tuple[int, int]:
    """The biases for which every value is a float64, from the layout rules: IEEE reserves
    the all-ones exponent field, "fn" only the all-ones code (the whole field when there is
    no mantissa); emax = largest finite field - bias <= 1023 and
    emin - m = 1 - bias - m >= -1074."""
    all_ones = (1 << e) - 1
    largest_field = all_ones - 1 if specials == "ieee" or (specials == "fn" and m == 0) else all_ones
    return largest_field - 1023, 1075 - m


def layout_biases(e, m, specials):
    """Accepted biases at and next to both limits, the usual one, and the ones past which the
    float32 encoder used to give a zero input a nonzero code (151 and up)."""
    lo, hi = float64_bias_range(e, m, specials)
    usual = (1 << (e - 1)) - 1
    return sorted({b for b in (lo, lo + 1, hi - 1, hi, usual, 0, 150, 151, 300, -150) if lo <= b <= hi})


ACCEPTED = [(layout, bias) for layout in LAYOUTS for bias in layout_biases(*layout[:3])]
REFUSED = [(layout, bias) for layout in LAYOUTS
           for bias in (float64_bias_range(*layout[:3])[0] - 1, float64_bias_range(*layout[:3])[1] + 1,
                        2**31, -2**31, 10**30)]


def make(layout, bias) -> qsim.FloatFormat:
    e, m, specials, subnormals, signed = layout
    return qsim.FloatFormat(f"e{e}m{m}b{bias}", e, m, bias, specials, subnormals=subnormals, signed=signed)


def to_float(v: Fraction) -> float:
    """Nearest float64 (inf past the range), so that points past the format's edges stay usable."""
    try:
        return float(v)
    except OverflowError:
        return math.inf


def boundary_inputs(fmt: qsim.FloatFormat, dtype) -> np.ndarray:
    """Inputs in dtype where encoding can go wrong: the format's subnormals and the ties
    between them, the step into the normals, ties at 1 and below max, the overflow tie and
    point, dtype's own subnormals and extremes, each nudged one ulp either way, both signs
    (for signed formats), zeros, Inf and NaN."""
    step = Fraction(2) ** (fmt.emin - fmt.mantissa_bits)
    top = fmt.max
    ulp_top = overflow_point(fmt) - top
    points = [step, 2 * step, 3 * step, step / 2, 3 * step / 2,
              fmt.min_normal, fmt.min_normal - step, fmt.min_normal - step / 2,
              fmt.min_normal * (1 + fmt.epsilon / 2), 1 + fmt.epsilon / 2, Fraction(1),
              top, top - ulp_top / 2, top + ulp_top / 2, overflow_point(fmt), 2 * top]
    info = np.finfo(dtype)
    points += [Fraction(float(info.smallest_subnormal)), 3 * Fraction(float(info.smallest_subnormal)),
               Fraction(float(info.tiny)), Fraction(float(info.max))]
    with np.errstate(over="ignore", under="ignore"):
        xs = np.array([to_float(p) for p in points], np.float64).astype(dtype)
        xs = np.concatenate([xs, np.nextafter(xs, dtype(0)), np.nextafter(xs, dtype(np.inf))])
    xs = xs[np.isfinite(xs)]
    if fmt.signed:
        xs = np.concatenate([xs, -xs])
    specials = [0.0, -0.0, np.inf] + ([-np.inf] if fmt.signed else []) + ([np.nan, -np.nan] if fmt.has_nan else [])
    return np.concatenate([xs, np.array(specials, dtype)])


def same_code(got: int, want: int, fmt) -> bool:
    return fmt.is_nan_code(got) if fmt.is_nan_code(want) else got == want


def saturate_options(fmt):
    return (True, False) if (fmt.has_inf or fmt.has_nan) else (True,)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout, bias", ACCEPTED, ids=[f"{LAYOUT_IDS[LAYOUTS.index(l)]}-b{b}" for l, b in ACCEPTED])
def test_every_accepted_bias_encodes_like_the_reference(layout, bias, dtype):
    fmt = make(layout, bias)
    xs = boundary_inputs(fmt, dtype)
    bad = []
    for rounding in MODES:
        for saturate in saturate_options(fmt):
            got = qsim.encode(xs, fmt, rounding=rounding, saturate=saturate)
            for x, g in zip(xs.tolist(), got.tolist()):
                want = ref_encode_float(x, fmt, rounding, saturate)
                if not same_code(g, want, fmt):
                    bad.append(f"{rounding} saturate={saturate} x={x!r}: kernel 0x{g:x}, reference 0x{want:x}")
    # stochastic rounding picks one of the two neighbours
    got = qsim.encode(xs, fmt, rounding="stochastic", seed=5)
    for x, g in zip(xs.tolist(), got.tolist()):
        away = "down" if math.copysign(1.0, x) < 0 else "up"
        allowed = {ref_encode_float(x, fmt, r, fmt.default_saturate) for r in ("rtz", away)}
        if not any(same_code(g, a, fmt) for a in allowed):
            bad.append(f"stochastic x={x!r}: kernel 0x{g:x}, neighbours {sorted(allowed)}")
    assert not bad, f"{fmt} from {np.dtype(dtype).name}:\n" + "\n".join(bad[:12])


def is_value_of(v: float, code: int, fmt) -> bool:
    """Whether v is exactly the value of code, the sign of a zero included."""
    want = ref_decode(code, fmt)
    if isinstance(want, float):                 # NaN or +-Inf
        return v == want or (math.isnan(want) and math.isnan(v))
    return (math.isfinite(v) and Fraction(v) == want
            and (want != 0 or (math.copysign(1, v) < 0) == bool(code & fmt.sign_bit)))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout, bias", ACCEPTED, ids=[f"{LAYOUT_IDS[LAYOUTS.index(l)]}-b{b}" for l, b in ACCEPTED])
def test_every_accepted_bias_quantizes_to_the_exact_values(layout, bias, dtype):
    """quantize (one pass, or encode + decode for wide formats) gives the value of the
    reference's code, in float64 or in float32 where all values fit."""
    fmt = make(layout, bias)
    xs = boundary_inputs(fmt, dtype)
    for rounding in ("rne", "down"):
        got = qsim.quantize(xs, fmt, rounding=rounding)
        bad = [f"{rounding} x={x!r}: quantize {v!r}, reference code 0x{c:x}"
               for x, v in zip(xs.tolist(), got.tolist())
               if not is_value_of(v, c := ref_encode_float(x, fmt, rounding, fmt.default_saturate), fmt)]
        assert not bad, f"{fmt} from {np.dtype(dtype).name}:\n" + "\n".join(bad[:12])


def codes_to_check(fmt) -> np.ndarray:
    """Every code of a small format; near every edge of a wide one."""
    if fmt.storage_bits <= 12:
        return np.arange(fmt.n_codes)
    m = fmt.mantissa_bits
    mags = list(range(6)) + [(1 << m) + d for d in range(-3, 3)] + [(1 << m) * 3 + 1] + \
        [fmt.max_code_magnitude + d for d in range(-3, 1)] + [fmt.magnitude_mask - d for d in range(3)]
    mags = sorted({c for c in mags if 0 <= c <= fmt.magnitude_mask})
    return np.array(mags + [c | fmt.sign_bit for c in mags if fmt.sign_bit])


@pytest.mark.parametrize("layout, bias", ACCEPTED, ids=[f"{LAYOUT_IDS[LAYOUTS.index(l)]}-b{b}" for l, b in ACCEPTED])
def test_every_accepted_bias_decodes_to_the_exact_values(layout, bias):
    fmt = make(layout, bias)
    codes = codes_to_check(fmt)
    got = qsim.decode(codes.astype(np.uint32), fmt, dtype=np.float64)
    default = qsim.decode(codes.astype(np.uint32), fmt)
    np.testing.assert_array_equal(default.astype(np.float64), got)    # float32, where used, is exact
    bad = [f"code 0x{code:x}: decode {v!r}, exact {ref_decode(code, fmt)!r}"
           for code, v in zip(codes.tolist(), got.tolist()) if not is_value_of(v, code, fmt)]
    assert not bad, f"{fmt}:\n" + "\n".join(bad[:12])


@pytest.mark.parametrize("layout, bias", REFUSED, ids=[f"{LAYOUT_IDS[LAYOUTS.index(l)]}-b{b}" for l, b in REFUSED])
def test_every_refused_bias_says_the_allowed_range_and_why(layout, bias):
    lo, hi = float64_bias_range(*layout[:3])
    with pytest.raises(ValueError) as info:
        make(layout, bias)
    msg = str(info.value)
    assert msg.startswith(f"e{layout[0]}m{layout[1]}b{bias}: bias must be in {lo}..{hi} "), msg
    assert f"got {bias}" in msg and "float64" in msg and "1023" in msg and "2**-1074" in msg


def test_scale_formats_without_zero_have_the_same_limit():
    """E8M0-like: the all-zero exponent field is a binade, so the smallest value is 2**-bias;
    the largest finite field is 254 (255 is NaN), so the largest value is 2**(254 - bias)."""
    def scale(bias):
        return qsim.FloatFormat("s", 8, 0, bias, "fn", subnormals=False, signed=False, has_zero=False)
    low, high = np.array([0, 1], np.uint8), np.array([254], np.uint8)
    assert qsim.decode(low, scale(1074), dtype=np.float64).tolist() == [2.0**-1074, 2.0**-1073]
    assert qsim.decode(high, scale(-769), dtype=np.float64).tolist() == [2.0**1023]
    assert qsim.encode(np.array([2.0**-1074, 2.0**1023]), scale(1074)).tolist() == [0, 254]
    for bias in (1075, -770):
        with pytest.raises(ValueError, match=r"bias must be in -769\.\.1074"):
            scale(bias)


def test_custom_minifloat_name_past_float64():
    # e11m20fn: bias 1023 and a finite all-ones exponent field give values up to 2**1025
    with pytest.raises(ValueError, match=r"e11m20fn: bias must be in 1024\.\.1055"):
        qsim.format("e11m20fn")
    assert qsim.format("e11m20fnuz").bias == 1024


# -- the cases that were wrong, by hand ----------------------------------------------------
def test_zero_encodes_to_zero_at_bias_151():
    """The reported case: zero's exponent, as the float32 encoder worked it out, was a normal
    one in a format reaching below float32's subnormals."""
    fmt = qsim.FloatFormat("b151", 4, 3, 151)
    for dtype in DTYPES:
        assert qsim.encode(np.array([0.0, -0.0], dtype), fmt).tolist() == [0x00, 0x80]
        assert qsim.quantize(np.array([0.0], dtype), fmt).tolist() == [0.0]


def test_a_bias_past_32_bits_is_a_clear_error_not_an_overflow():
    with pytest.raises(ValueError, match="bias must be in"):
        qsim.FloatFormat("b", 4, 3, 2**31)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_float32_max_overflows_a_tiny_32_bit_format(dtype):
    """e9m22 with bias 1053 tops out near 2**-542: float32's largest values overflow it. The
    float32 encoder's 32-bit code arithmetic used to wrap around to a small finite code."""
    fmt = qsim.FloatFormat("tiny", 9, 22, 1053)
    x = np.array([3e38, -3e38, 1.0], dtype)
    assert qsim.encode(x, fmt, saturate=False).tolist() == [fmt.inf_code, fmt.inf_code | fmt.sign_bit, fmt.inf_code]
    assert qsim.encode(x, fmt, saturate=True).tolist() == [fmt.max_code_magnitude,
                                                          fmt.max_code_magnitude | fmt.sign_bit,
                                                          fmt.max_code_magnitude]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_float32_input_overflows_an_unsigned_32_bit_format(dtype):
    """Unsigned e9m23 with no specials uses all 32 bits, all ones being its largest value
    (2**(511 - 1000) * (2 - 2**-23)): nothing above it is left for the float32 encoder's
    32-bit code arithmetic to see an overflow in, so 1.0 came out as code 0."""
    fmt = qsim.FloatFormat("u32", 9, 23, 1000, "none", signed=False)
    x = np.array([1.0, 3e38, 0.0], dtype)
    assert qsim.encode(x, fmt).tolist() == [0xFFFFFFFF, 0xFFFFFFFF, 0]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_ties_without_mantissa_bits_go_to_the_even_code(dtype):
    """e3m0fn with bias 0 holds 0, 2, 4, ..., 64 as codes 0..6. 3 is a tie of 2 (code 1) and
    4 (code 2); 6 a tie of 4 (code 2) and 8 (code 3); 96 a tie of 64 (code 6) and the overflow."""
    fmt = qsim.FloatFormat("e3m0b0", 3, 0, 0, "fn")
    x = np.array([3.0, 6.0, 12.0, 96.0, -3.0], dtype)
    assert qsim.encode(x, fmt, saturate=False).tolist() == [2, 2, 4, 6, 0x8 | 2]
    assert qsim.encode(x, fmt, rounding="rna", saturate=False).tolist() == [2, 3, 4, 7, 0x8 | 2]


def test_e8m0_rne_ties_go_to_the_even_code():
    """E8M0 codes are exponents alone: under "rne" 3 (between 2 = code 128 and 4 = code 129)
    goes to the even code 128, as gfloat does; "rna" rounds it up, as ml_dtypes and torch do."""
    x = np.array([3.0, 6.0, 12.0, 1.5], np.float32)
    assert qsim.encode(x, "e8m0", rounding="rne").tolist() == [128, 130, 130, 128]
    assert qsim.encode(x, "e8m0", rounding="rna").tolist() == [129, 130, 131, 128]


def test_float32_input_to_a_wider_mantissa_in_mx_blocks():
    """An element type with more mantissa bits than float32 (e5m26): float32 input must give
    the float64 input's codes in plain encoding; as an MX element (block formats take elements
    of at most 16 bits) it is refused by name rather than encoded wrongly."""
    fmt = qsim.FloatFormat("e5m26", 5, 26, 15)
    x32 = np.array([1.0, 1.5, 3.0, 0.1, -2.5e-5], np.float32)
    x64 = x32.astype(np.float64)
    want = [ref_encode_float(v, fmt) for v in x64.tolist()]
    assert qsim.encode(x32, fmt).tolist() == want
    for x in (x32, x64):
        with pytest.raises(ValueError, match="element e5m26 must be a signed float format of at most 16 bits"):
            qsim.mx_quantize(x, fmt, block_size=4)


def test_unsigned_format_refuses_negative_values():
    """An unsigned format has no sign bit: -1 used to come out as the code of +1."""
    fmt = qsim.FloatFormat("ue4m3", 4, 3, 7, "fn", signed=False)
    for call in (qsim.encode, qsim.quantize):
        for x in ([-1.0], [2.0, -1e-30], [-np.inf]):
            with pytest.raises(ValueError, match="ue4m3 is unsigned and x contains negative values"):
                call(np.array(x, np.float32), fmt)
    assert qsim.encode(np.array([-0.0, 1.0, np.nan]), fmt).tolist() == [0, 0x38, 0x7F]
    with pytest.raises(ValueError, match="unsigned"):
        ref_encode_float(-1.0, fmt)


# -- definition field types -------------------------------------------------------------------
@pytest.mark.parametrize("fields, problem", [
    (dict(exponent_bits=4.0, mantissa_bits=3, bias=7), "exponent_bits must be an int"),
    (dict(exponent_bits=4, mantissa_bits=3.5, bias=7), "mantissa_bits must be an int"),
    (dict(exponent_bits=4, mantissa_bits=3, bias=7.5), "bias must be an int"),
    (dict(exponent_bits=4, mantissa_bits=3, bias=True), "bias must be an int"),
    (dict(exponent_bits=4, mantissa_bits=3, bias="7"), "bias must be an int"),
    (dict(exponent_bits=4, mantissa_bits=3, bias=7, subnormals="no"), "subnormals must be True or False"),
    (dict(exponent_bits=4, mantissa_bits=3, bias=7, signed=0), "signed must be True or False"),
])
def test_float_format_field_types(fields, problem):
    with pytest.raises(TypeError, match=problem):
        qsim.FloatFormat("bad", **fields)


def test_format_fields_of_numpy_types_are_plain_values():
    a = qsim.FloatFormat("x", np.int64(4), np.int32(3), np.int16(7), "fn", subnormals=np.bool_(True))
    assert a == qsim.FloatFormat("x", 4, 3, 7, "fn") and type(a.bias) is int
    assert qsim.IntFormat("i", np.int8(8)) == qsim.IntFormat("i", 8)


@pytest.mark.parametrize("args, problem", [
    (("bad", 8.0), "bits must be an int"), (("bad", 8, "yes"), "signed must be True or False"),
    ((None, 8), "name must be a non-empty str"), (("", 8), "name must be a non-empty str"),
])
def test_int_format_field_types(args, problem):
    with pytest.raises(TypeError, match=problem):
        qsim.IntFormat(*args)


# -- unknown names --------------------------------------------------------------------------------
def test_unknown_format_message_is_clean():
    with pytest.raises(KeyError) as info:
        qsim.format("e4m3x")
    msg = str(info.value)
    assert msg.startswith("unknown format 'e4m3x'; known: bf16, e4m3, "), msg
    assert "fp4_e2m1" in msg and "int2..int16" in msg and "e<E>m<M>" in msg


def test_unknown_format_message_lists_user_formats(monkeypatch):
    from qsim.formats import registry
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))    # the registration ends with the test
    qsim.register_format(qsim.IntFormat("acc12_limits_test", 12))
    with pytest.raises(KeyError) as info:
        qsim.format("nope")
    assert "acc12_limits_test" in str(info.value)


# -- byte order ----------------------------------------------------------------------------------
X = np.array([1.0, -0.3, 2.5e-3, 448.0, 7.0, 0.0], np.float64)
BYTE_ORDER_CALLS = {
    "encode": lambda x: qsim.encode(x, "e4m3"),
    "encode_fp32": lambda x: qsim.encode(x, "fp32"),
    "encode_int": lambda x: qsim.encode(x, "int8"),
    "encode_e8m0": lambda x: qsim.encode(np.abs(x) + 1, "e8m0"),
    "encode_stochastic": lambda x: qsim.encode(x, "e5m2", rounding="stochastic", seed=3),
    "quantize": lambda x: qsim.quantize(x, "e4m3"),
    "quantize_bf16": lambda x: qsim.quantize(x, "bf16"),
    "quantize_int8": lambda x: qsim.quantize(x, "int8"),
    "quantize_int": lambda x: qsim.quantize_int(x, "int8", 0.05, 3),
    "mx_quantize": lambda x: qsim.mx_quantize(x, "fp4_e2m1", block_size=4).elements,
    "mx_quantize_scales": lambda x: qsim.mx_quantize(x, "fp4_e2m1", block_size=4).scales,
}


@pytest.mark.parametrize("dtype", ["f2", "f4", "f8"])
@pytest.mark.parametrize("call", list(BYTE_ORDER_CALLS))
def test_non_native_byte_order_input(call, dtype):
    native = X.astype("=" + dtype)
    swapped = native.astype(native.dtype.newbyteorder())
    assert swapped.dtype.byteorder != native.dtype.byteorder and np.array_equal(swapped, native)
    got, want = BYTE_ORDER_CALLS[call](swapped), BYTE_ORDER_CALLS[call](native)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


CODES = {"e4m3": [0x38, 0xB8, 0x7F], "bf16": [0x3F80, 0xBF80], "fp16": [0x3C00, 0x7C00],
         "fp32": [0x3F800000, 0x80000000], "int8": [5, 0xFB], "uint16": [1, 65535]}


@pytest.mark.parametrize("fmt, code_dtype", [(f, d) for f in CODES for d in ("u2", "u4", "i4", "u8")
                                             if max(CODES[f]) < np.iinfo(d).max])
def test_non_native_byte_order_codes(fmt, code_dtype):
    codes = CODES[fmt]
    native = np.array(codes, "=" + code_dtype)
    swapped = native.astype(native.dtype.newbyteorder())
    np.testing.assert_array_equal(qsim.decode(swapped, fmt), qsim.decode(native, fmt))


def test_non_native_byte_order_mx_decode():
    mx = qsim.mx_quantize(X, "e4m3", block_size=4)
    got = qsim.mx_decode(mx.elements.astype(">u2"), mx.scales.astype(">u2"), "e4m3", block_size=4)
    np.testing.assert_array_equal(got, mx.decode())


def test_non_native_byte_order_integer_parameters():
    x = np.array([[1.0, -2.0], [0.5, 3.0]], ">f4")
    scale, zp = np.array([0.1, 0.2], ">f8"), np.array([1, -2], ">i4")
    want = qsim.quantize_int(x.astype("<f4"), "int8", scale.astype("<f8"), zp.astype("<i4"), axis=0)
    np.testing.assert_array_equal(qsim.quantize_int(x, "int8", scale, zp, axis=0), want)
    back = qsim.dequantize_int(want.astype(">i2"), scale, zp, axis=0)
    np.testing.assert_array_equal(back, qsim.dequantize_int(want, scale.astype("<f8"), zp.astype("<i4"), axis=0))


# -- integer quantization parameters ------------------------------------------------------------
Q = np.array([[-3, 0, 5], [7, 1, -1]], np.int8)


@pytest.mark.parametrize("fmt", ["int8", qsim.format("int4"), "uint8"])
def test_dequantize_with_the_format_where_the_scale_goes(fmt):
    name = fmt if isinstance(fmt, str) else fmt.name
    with pytest.raises(TypeError) as info:
        qsim.dequantize_int(Q, fmt, 0.5)
    msg = str(info.value)
    assert msg.startswith(f"dequantize_int: scale must be a number or an array, got the format {name!r}; "
                          f"pass it as fmt={name!r}"), msg
    assert "dequantize_int(q, scale, zero_point=0" in msg


def test_dequantize_with_the_format_where_the_zero_point_goes():
    with pytest.raises(TypeError, match="zero_point must be a number or an array, got the format 'int8'"):
        qsim.dequantize_int(Q, 0.5, "int8")


def test_quantize_with_the_format_where_the_scale_goes():
    with pytest.raises(TypeError, match=r"quantize_int: scale must be a number or an array, got the format "
                                        r"'int8'\. The call is quantize_int\(x, fmt, scale"):
        qsim.quantize_int(np.ones(3), "int8", "int8")


BAD_SCALES = {"zero": 0.0, "negative": -0.5, "nan": np.nan, "inf": np.inf, "-inf": -np.inf,
              "one_zero_channel": np.array([0.5, 0.0])}


@pytest.mark.parametrize("kind", list(BAD_SCALES))
@pytest.mark.parametrize("entry", ["quantize_int", "dequantize_int"])
def test_scale_checks_are_shared(entry, kind):
    scale = BAD_SCALES[kind]
    axis = 0 if np.ndim(scale) else None
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        if entry == "quantize_int":
            qsim.quantize_int(Q.astype(np.float32), "int8", scale, 0, axis=axis)
        else:
            qsim.dequantize_int(Q, scale, 0, axis=axis)


@pytest.mark.parametrize("entry", ["quantize_int", "dequantize_int"])
def test_zero_point_checks_are_shared(entry):
    def call(zp, fmt="int8"):
        if entry == "quantize_int":
            return qsim.quantize_int(Q.astype(np.float32), fmt, 0.5, zp)
        return qsim.dequantize_int(Q, 0.5, zp, fmt=fmt)
    with pytest.raises(ValueError, match="zero_point must hold integers"):
        call(0.5)           # dequantize_int used to truncate it to 0
    with pytest.raises(ValueError, match="zero_point must lie in"):
        call(300)
    with pytest.raises(TypeError, match="zero_point must be integer"):
        call("0")


@pytest.mark.parametrize("scale", ["0.5", np.array([1 + 2j]), np.array([True]), np.array(["x"], object)],
                         ids=["str", "complex", "bool", "object"])
def test_scale_of_the_wrong_type(scale):
    for call in (lambda: qsim.quantize_int(np.ones(1), "int8", scale),
                 lambda: qsim.dequantize_int(np.ones(1, np.int8), scale)):
        with pytest.raises(TypeError, match="scale must be a real number or array"):
            call()


def test_scale_as_an_exact_python_number():
    """A Fraction (as the exact references use) is a number, as it was before the shared check."""
    x = np.array([0.3, -1.2])
    np.testing.assert_array_equal(qsim.quantize_int(x, "int8", Fraction(1, 10)), qsim.quantize_int(x, "int8", 0.1))
    np.testing.assert_array_equal(qsim.dequantize_int(Q, Fraction(1, 4)), qsim.dequantize_int(Q, 0.25))


def test_scale_overflowing_float32():
    """1e300 is inf in float32: inf / inf is NaN, which has no integer code."""
    with pytest.raises(ValueError, match="scale overflows to inf in float32"):
        qsim.quantize_int(np.array([np.inf, 1.0], np.float32), "int8", 1e300)
    with pytest.raises(ValueError, match="scale overflows to inf in float32"):
        qsim.dequantize_int(Q, 1e300)
    with pytest.raises(ValueError, match="scale underflows to 0 in float32"):
        qsim.dequantize_int(Q, 1e-300)
    assert qsim.dequantize_int(Q, 1e300, dtype=np.float64)[0, 2] == 5e300


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, bool, np.complex64, object])
def test_dequantize_to_a_non_float_dtype(dtype):
    with pytest.raises(TypeError, match="dtype must be a float type"):
        qsim.dequantize_int(Q, 0.5, dtype=dtype)


@pytest.mark.parametrize("axis, group_size", [(1, 2), (0, 2), (1, 3), (1, 4), (-1, 2)])
def test_groups_that_do_not_divide_the_axis(axis, group_size):
    """The last group is shorter (ONNX blocked quantization): every element uses its own
    group's scale and zero point, checked one element at a time against the reference."""
    x = np.array([[0.3, -1.7, 2.2], [5.1, -0.05, 0.9]], np.float32)
    ax = axis % x.ndim
    n_groups = -(-x.shape[ax] // group_size)
    pshape = tuple(n_groups if d == ax else n for d, n in enumerate(x.shape))
    scale = (np.arange(np.prod(pshape)).reshape(pshape) + 1) * 0.1
    zp = np.arange(np.prod(pshape)).reshape(pshape) % 5 - 2
    q = qsim.quantize_int(x, "int4", scale, zp, axis=axis, group_size=group_size)
    back = qsim.dequantize_int(q, scale, zp, axis=axis, group_size=group_size)
    for idx in np.ndindex(x.shape):
        p = tuple(i // group_size if d == ax else i for d, i in enumerate(idx))
        want = ref_encode_int(float(x[idx]), "int4", float(np.float32(scale[p])), int(zp[p]), dtype="float32")
        assert q[idx] == want, idx
        assert back[idx] == np.float32(want - zp[p]) * np.float32(scale[p]), idx


def test_dequantize_zero_point_beyond_float32_precision():
    """1 - (2**24 + 3) = -(2**24 + 2) is a float32; subtracting in float32 rounded the zero
    point first and gave -(2**24 + 4)."""
    assert qsim.dequantize_int(np.array([1], np.int8), 1.0, 2**24 + 3).tolist() == [-(2**24 + 2)]


@pytest.mark.parametrize("zp", [1e30, 2**40, -2**31 - 1])
def test_dequantize_zero_point_must_be_an_int32(zp):
    with pytest.raises(ValueError, match=r"zero_point must lie in \[-2147483648, 2147483647\] \(int32\)"):
        qsim.dequantize_int(Q, 0.5, zp)


def test_dequantize_codes_past_int64_arithmetic():
    """2**64 - 1 as uint64 used to become -1 in int64."""
    with pytest.raises(ValueError, match="q holds values beyond"):
        qsim.dequantize_int(np.array([2**64 - 1], np.uint64), 0.5)
    assert qsim.dequantize_int(np.array([2**40], np.uint64), 0.5, dtype=np.float64).tolist() == [2.0**39]


# -- other arguments ---------------------------------------------------------------------------------
def test_decode_dtype_that_is_not_a_type():
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got 'foo'"):
        qsim.decode(np.zeros(3, np.uint8), "e4m3", dtype="foo")


@pytest.mark.parametrize("fmt", ["int4", "uint8", "int16"])
def test_decode_integer_codes_to_a_float_dtype(fmt):
    """dtype used to be ignored for integer formats."""
    f = qsim.format(fmt)
    codes = np.arange(f.n_codes, dtype=np.uint16)
    for dtype in (np.float32, np.float64):
        got = qsim.decode(codes, f, dtype=dtype)
        assert got.dtype == dtype
        assert got.tolist() == [f.exact_value(c) for c in codes.tolist()]


def test_custom_minifloat_name_with_a_huge_exponent_width():
    with pytest.raises(ValueError, match="a minifloat has 1..11 exponent bits"):
        qsim.format("e" + "9" * 30 + "m1")


@pytest.mark.parametrize("fmt", ["e4m3", "int8"])
def test_exact_value_of_a_non_integer_code(fmt):
    """int(1.5) gave the value of code 1."""
    with pytest.raises(TypeError, match="a code is an int"):
        qsim.format(fmt).exact_value(1.5)
    assert qsim.format(fmt).exact_value(np.uint8(1)) == qsim.format(fmt).exact_value(1)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_mx_blocks_of_an_element_type_without_mantissa_bits(dtype):
    """An element type with no mantissa bits rounds ties to the even exponent, which the
    element codec models (test above) and the block kernels do not: as an MX element it is
    refused by name, never encoded with ties going up."""
    elem = qsim.FloatFormat("e3m0", 3, 0, 3, "fn")
    row = (np.array([1.5, 3.0, 6.0, 0.75, -1.5, -3.0, 12.0, 0.375]) * 2.0**-40).astype(dtype)
    with pytest.raises(ValueError, match="element e3m0 has no mantissa bits"):
        qsim.mx_quantize(row, elem, block_size=8)


@pytest.mark.parametrize("axis, group_size", [(0, None), (1, None), (1, 2), (0, 3)])
def test_dequantize_strided_codes(axis, group_size):
    """Reversed, transposed and strided codes give the contiguous codes' values."""
    q = np.arange(-20, 20, dtype=np.int8).reshape(5, 8)[::-1, ::2].T     # (4, 5), negative strides
    assert not q.flags.c_contiguous
    n = q.shape[axis] if group_size is None else -(-q.shape[axis] // group_size)
    pshape = (n,) if group_size is None else tuple(n if d == axis else m for d, m in enumerate(q.shape))
    scale, zp = np.linspace(0.5, 2, np.prod(pshape)).reshape(pshape), np.arange(np.prod(pshape)).reshape(pshape) - 2
    got = qsim.dequantize_int(q, scale, zp, axis=axis, group_size=group_size)
    np.testing.assert_array_equal(got, qsim.dequantize_int(np.ascontiguousarray(q), scale, zp, axis=axis,
                                                           group_size=group_size))
    for idx in np.ndindex(q.shape):
        p = (idx[axis],) if group_size is None else tuple(i // group_size if d == axis else i
                                                          for d, i in enumerate(idx))
        assert got[idx] == np.float32(int(q[idx]) - int(zp[p])) * np.float32(scale[p])


@pytest.mark.parametrize("axis", [2, -3])
def test_dequantize_axis_out_of_range(axis):
    with pytest.raises(ValueError, match="out of range for an array of 2 dimensions"):
        qsim.dequantize_int(Q, np.ones(2), axis=axis)
