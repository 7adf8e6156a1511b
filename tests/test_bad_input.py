"""Bad input gets a clear exception (its type and a message that says what is wrong), and
edge-case input (empty, 0-d, non-contiguous) gives the same results as the plain case."""

import numpy as np
import pytest

import qsim

FLOAT_FORMATS = ["e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "bf16", "fp16", "fp32",
                 "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "e8m0", "e3m4"]
INT_FORMATS = ["int2", "int4", "int8", "uint8", "int8_narrow", "int16", "uint16"]
ALL_FORMATS = FLOAT_FORMATS + INT_FORMATS

CODE_DTYPE = {"bf16": np.uint16, "fp16": np.uint16, "fp32": np.uint32, "int16": np.uint16, "uint16": np.uint16}
VALUE_DTYPE = {"int2": np.int8, "int4": np.int8, "int8": np.int8, "uint8": np.uint8, "int8_narrow": np.int8,
               "int16": np.int16, "uint16": np.uint16}


def code_dtype(fmt):
    return CODE_DTYPE.get(fmt, np.uint8)


def value_dtype(fmt):
    return VALUE_DTYPE.get(fmt, np.float32)


def some_values(shape=(7, 5), seed=0):
    """Finite values in every format's range (FP4 tops out at 6, e8m0 has no zero or negatives)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 5.0, shape).astype(np.float32) * rng.choice([-1, 1], shape).astype(np.float32)


# -- format names and definitions ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["e4m3x", "float9", "int1", "int17", "", "fp8"])
def test_unknown_format_name(name):
    with pytest.raises(KeyError, match="unknown format") as info:
        qsim.format(name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("call", [
    lambda: qsim.encode([1.0], "e4m3x"),
    lambda: qsim.decode(np.zeros(2, np.uint8), "e4m3x"),
    lambda: qsim.quantize([1.0], "e4m3x"),
    lambda: qsim.quantize_int([1.0], "e4m3x", 1.0),
    lambda: qsim.mx_quantize(np.ones(4), "e4m3x"),
], ids=["encode", "decode", "quantize", "quantize_int", "mx_quantize"])
def test_unknown_format_name_in_every_entry_point(call):
    with pytest.raises(KeyError, match="e4m3x"):
        call()


def test_format_of_wrong_type():
    with pytest.raises(TypeError, match="format is a name"):
        qsim.format(3)


@pytest.mark.parametrize("fields, problem", [
    (dict(exponent_bits=0, mantissa_bits=3, bias=1), "exponent_bits"),
    (dict(exponent_bits=12, mantissa_bits=3, bias=1), "exponent_bits"),
    (dict(exponent_bits=4, mantissa_bits=-1, bias=7), "mantissa_bits"),
    (dict(exponent_bits=11, mantissa_bits=30, bias=1023), "storage bits"),
    (dict(exponent_bits=8, mantissa_bits=24, bias=127), "storage bits"),
    (dict(exponent_bits=4, mantissa_bits=3, bias=7, specials="weird"), "specials"),
    (dict(exponent_bits=1, mantissa_bits=3, bias=0, specials="ieee"), "exponent bits"),
    (dict(exponent_bits=4, mantissa_bits=3, bias=8, specials="fnuz", signed=False), "signed"),
    (dict(exponent_bits=4, mantissa_bits=3, bias=7, has_zero=False), "has_zero"),
])
def test_float_format_bad_fields(fields, problem):
    with pytest.raises(ValueError, match=problem) as info:
        qsim.FloatFormat("bad", **fields)
    assert "bad" in str(info.value)  # names the format


@pytest.mark.parametrize("spec", ["e0m3", "e12m3", "e1m2"])
def test_custom_minifloat_name_with_bad_fields(spec):
    with pytest.raises(ValueError, match="exponent"):
        qsim.format(spec)


@pytest.mark.parametrize("fields, problem", [
    (dict(bits=1), "2..16"), (dict(bits=17), "2..16"), (dict(bits=8, signed=False, narrow=True), "narrow"),
])
def test_int_format_bad_fields(fields, problem):
    with pytest.raises(ValueError, match=problem):
        qsim.IntFormat("bad", **fields)


def test_register_conflicting_name():
    with pytest.raises(ValueError, match="already registered as 'e4m3'"):
        qsim.register_format(qsim.FloatFormat("e4m3", 4, 3, 8, "fn"))
    # an alias of a built-in is taken too
    with pytest.raises(ValueError, match="already registered"):
        qsim.register_format(qsim.FloatFormat("bfloat16", 5, 2, 15))
    with pytest.raises(ValueError, match="already registered"):
        qsim.register_format(qsim.IntFormat("int8", 8, signed=False))
    # the built-in itself is unchanged
    assert qsim.format("e4m3").bias == 7


def test_register_same_definition_again_is_fine():
    same = qsim.FloatFormat("e4m3", 4, 3, 7, "fn")
    assert qsim.register_format(same) == qsim.format("e4m3")


def test_register_non_format():
    with pytest.raises(TypeError, match="FloatFormat or IntFormat"):
        qsim.register_format("e4m3")


# -- wrong dtypes ---------------------------------------------------------------------------
BAD_FLOAT_INPUTS = {
    "int64": np.arange(4),
    "int8": np.arange(4, dtype=np.int8),
    "uint8": np.arange(4, dtype=np.uint8),
    "bool": np.array([True, False]),
    "complex": np.ones(3, np.complex64),
    "object": np.array([1.0, None], dtype=object),
    "str": np.array(["1.0", "2.0"]),
    "bytes": np.array([b"1"]),
}


@pytest.mark.parametrize("kind", list(BAD_FLOAT_INPUTS))
@pytest.mark.parametrize("call", [
    lambda x: qsim.encode(x, "e4m3"),
    lambda x: qsim.encode(x, "int8"),
    lambda x: qsim.quantize(x, "bf16"),
    lambda x: qsim.quantize_int(x, "int8", 1.0),
    lambda x: qsim.mx_quantize(x, "e4m3"),
], ids=["encode", "encode_int", "quantize", "quantize_int", "mx_quantize"])
def test_non_float_input_is_a_type_error(call, kind):
    with pytest.raises(TypeError, match="floating-point") as info:
        call(BAD_FLOAT_INPUTS[kind])
    assert "astype" in str(info.value)  # says how to fix it


@pytest.mark.parametrize("codes", [np.ones(3), np.ones(3, np.float32), np.array([True]), np.ones(2, np.complex64),
                                   np.array(["1"])], ids=["float64", "float32", "bool", "complex", "str"])
@pytest.mark.parametrize("fmt", ["e4m3", "bf16", "int8"])
def test_decode_of_non_integer_codes_is_a_type_error(fmt, codes):
    with pytest.raises(TypeError, match="integer"):
        qsim.decode(codes, fmt)


def test_dequantize_of_non_integer_is_a_type_error():
    with pytest.raises(TypeError, match="integer"):
        qsim.dequantize_int(np.ones(3), 1.0)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.uint8])
def test_decode_to_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match="float32 or float64"):
        qsim.decode(np.zeros(3, np.uint8), "e4m3", dtype=dtype)


def test_decode_to_float32_when_values_need_float64():
    # e11m4: exponents far beyond float32's range
    with pytest.raises(ValueError, match="float64"):
        qsim.decode(np.zeros(3, np.uint16), "e11m4", dtype=np.float32)
    assert qsim.decode(np.zeros(3, np.uint16), "e11m4").dtype == np.float64


# -- codes out of range -------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_decode_codes_out_of_range(fmt):
    n = qsim.format(fmt).n_codes
    if n <= 1 << 16:
        with pytest.raises(ValueError, match="out of range") as info:
            qsim.decode(np.array([0, n], np.uint32), fmt)
        assert str(n - 1) in str(info.value)  # says the valid range
    with pytest.raises(ValueError, match="out of range"):
        qsim.decode(np.array([0, -1]), fmt)
    with pytest.raises(ValueError, match="out of range"):
        qsim.decode(np.array([1 << 40]), fmt)


def test_mx_decode_bad_scale_codes():
    with pytest.raises(ValueError, match="shape"):
        qsim.mx_decode(np.zeros((4, 64), np.uint8), np.zeros((4, 1), np.uint8), "e4m3")
    with pytest.raises(ValueError, match="E8M0"):
        qsim.mx_decode(np.zeros((4, 64), np.uint8), np.full((4, 2), 256), "e4m3")


# -- options ------------------------------------------------------------------------------------
EVERY_ENTRY_POINT = {
    "encode": lambda **kw: qsim.encode(np.ones(4, np.float32), "e4m3", **kw),
    "encode_int": lambda **kw: qsim.encode(np.ones(4, np.float32), "int8", **kw),
    "quantize": lambda **kw: qsim.quantize(np.ones(4, np.float32), "e5m2", **kw),
    "quantize_int": lambda **kw: qsim.quantize_int(np.ones(4, np.float32), "int8", 0.5, **kw),
    "mx_quantize": lambda **kw: qsim.mx_quantize(np.ones(40, np.float32), "fp4_e2m1", **kw),
}


@pytest.mark.parametrize("entry", list(EVERY_ENTRY_POINT))
@pytest.mark.parametrize("rounding", ["nearest", "RNE ", "", None, 0])
def test_unknown_rounding(entry, rounding):
    with pytest.raises(ValueError, match="unknown rounding") as info:
        EVERY_ENTRY_POINT[entry](rounding=rounding)
    assert "stochastic" in str(info.value)  # lists the choices


@pytest.mark.parametrize("entry", list(EVERY_ENTRY_POINT))
def test_stochastic_rounding_needs_a_seed(entry):
    with pytest.raises(ValueError, match="seed"):
        EVERY_ENTRY_POINT[entry](rounding="stochastic")
    with pytest.raises(TypeError, match="seed must be an int"):
        EVERY_ENTRY_POINT[entry](rounding="stochastic", seed=1.5)
    EVERY_ENTRY_POINT[entry](rounding="stochastic", seed=1)  # and works with one


@pytest.mark.parametrize("entry", list(EVERY_ENTRY_POINT))
@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_bad_num_threads(entry, threads):
    with pytest.raises(ValueError, match="num_threads"):
        EVERY_ENTRY_POINT[entry](num_threads=threads)


def test_bad_thread_count_in_environment(monkeypatch):
    monkeypatch.setenv("QSIM_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="QSIM_NUM_THREADS"):
        qsim.encode(np.ones(4), "e4m3")


@pytest.mark.parametrize("fmt", ["fp4_e2m1", "fp6_e2m3", "fp6_e3m2"])
def test_non_saturating_needs_inf_or_nan(fmt):
    with pytest.raises(ValueError, match="saturate=True"):
        qsim.encode(np.ones(3), fmt, saturate=False)
    with pytest.raises(ValueError, match="saturate=True"):
        qsim.quantize(np.ones(3), fmt, saturate=False)


def test_integer_encode_cannot_be_non_saturating():
    with pytest.raises(ValueError, match="saturates"):
        qsim.encode(np.ones(3), "int8", saturate=False)


@pytest.mark.parametrize("saturate", ["yes", 1, 0])
def test_saturate_must_be_bool(saturate):
    with pytest.raises(TypeError, match="saturate"):
        qsim.encode(np.ones(3), "e4m3", saturate=saturate)


@pytest.mark.parametrize("call", [
    lambda x: qsim.encode(x, "fp4_e2m1"),
    lambda x: qsim.quantize(x, "fp4_e2m1"),
    lambda x: qsim.encode(x, "fp6_e3m2"),
    lambda x: qsim.encode(x, "int8"),
    lambda x: qsim.quantize(x, "int8"),
    lambda x: qsim.quantize_int(x, "int8", 1.0),
    lambda x: qsim.quantize_int(x, "uint4", 1.0),
], ids=["encode_fp4", "quantize_fp4", "encode_fp6", "encode_int8", "quantize_int8", "quantize_int", "uint4"])
def test_nan_into_a_format_without_nan(call):
    x = np.array([1.0, np.nan, 2.0], np.float32)
    with pytest.raises(ValueError, match="NaN"):
        call(x)


def test_inf_into_integers_clamps():
    x = np.array([np.inf, -np.inf, 1e30], np.float32)
    np.testing.assert_array_equal(qsim.quantize_int(x, "int8", 1.0), [127, -128, 127])
    np.testing.assert_array_equal(qsim.encode(x, "int8"), [0x7F, 0x80, 0x7F])


# -- quantize_int parameters ------------------------------------------------------------------
X2 = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)


@pytest.mark.parametrize("scale", [0.0, -1.0, np.nan, np.inf, -np.inf, np.array([1.0, 0.0, 1.0, 1.0])],
                         ids=["zero", "negative", "nan", "inf", "-inf", "one_zero_channel"])
def test_quantize_int_bad_scale(scale):
    axis = 0 if np.ndim(scale) else None
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        qsim.quantize_int(X2, "int8", scale, np.zeros(np.shape(scale), int), axis=axis)


def test_quantize_int_scale_underflowing_in_float32():
    with pytest.raises(ValueError, match="underflows"):
        qsim.quantize_int(X2, "int8", 1e-300)


@pytest.mark.parametrize("fmt, zp", [("int8", 128), ("int8", -129), ("uint8", -1), ("uint8", 256),
                                     ("int4", 8), ("int8_narrow", -128)])
def test_quantize_int_zero_point_out_of_range(fmt, zp):
    with pytest.raises(ValueError, match="zero_point must lie in"):
        qsim.quantize_int(X2, fmt, 1.0, zp)


def test_quantize_int_zero_point_not_integer():
    with pytest.raises(ValueError, match="zero_point must hold integers"):
        qsim.quantize_int(X2, "int8", 1.0, 0.5)
    with pytest.raises(ValueError, match="zero_point must hold integers"):
        qsim.quantize_int(X2, "int8", 1.0, np.nan)
    with pytest.raises(TypeError, match="zero_point must be integer"):
        qsim.quantize_int(X2, "int8", 1.0, "0")


@pytest.mark.parametrize("axis, group_size, shape", [
    (0, None, (6,)), (1, None, (4,)), (0, None, (4, 1)), (1, 4, (4, 1)), (1, 4, (4, 3)), (1, 4, (2, 4)),
    (0, 3, (1, 6)),
])
def test_quantize_int_wrong_scale_shape(axis, group_size, shape):
    with pytest.raises(ValueError, match="must have shape") as info:
        qsim.quantize_int(X2, "int8", np.ones(shape), np.zeros(shape, int), axis=axis, group_size=group_size)
    assert "scale" in str(info.value)


def test_quantize_int_wrong_zero_point_shape():
    with pytest.raises(ValueError, match="zero_point must have shape"):
        qsim.quantize_int(X2, "int8", np.ones(4), np.zeros(6, int), axis=0)


@pytest.mark.parametrize("axis, group_size", [(None, None), (0, None), (1, None), (1, 4), (0, 3)])
def test_quantize_int_default_zero_point_works_at_every_granularity(axis, group_size):
    """zero_point defaults to 0; per channel and per group that must mean 'all zero'."""
    if axis is None:
        pshape = ()
    elif group_size is None:
        pshape = (X2.shape[axis],)
    else:
        pshape = tuple(-(-n // group_size) if d == axis else n for d, n in enumerate(X2.shape))
    scale = np.full(pshape, 0.25, np.float32)
    explicit = qsim.quantize_int(X2, "int8", scale, np.zeros(pshape, np.int8), axis=axis, group_size=group_size)
    np.testing.assert_array_equal(qsim.quantize_int(X2, "int8", scale, axis=axis, group_size=group_size), explicit)


@pytest.mark.parametrize("axis", [2, -3, 10])
def test_quantize_int_axis_out_of_range(axis):
    with pytest.raises(ValueError, match="out of range"):
        qsim.quantize_int(X2, "int8", np.ones(4), np.zeros(4, int), axis=axis)


@pytest.mark.parametrize("axis", [1.0, "0", True])
def test_quantize_int_axis_not_an_int(axis):
    with pytest.raises(TypeError, match="axis must be an int"):
        qsim.quantize_int(X2, "int8", np.ones(4), np.zeros(4, int), axis=axis)


def test_quantize_int_group_size_needs_axis():
    with pytest.raises(ValueError, match="group_size needs an axis"):
        qsim.quantize_int(X2, "int8", 1.0, group_size=2)


@pytest.mark.parametrize("group_size", [0, -2, 2.5, True])
def test_quantize_int_bad_group_size(group_size):
    with pytest.raises(ValueError, match="group_size must be a positive integer"):
        qsim.quantize_int(X2, "int8", np.ones((4, 3)), np.zeros((4, 3), int), axis=1, group_size=group_size)


def test_quantize_int_of_a_float_format():
    with pytest.raises(TypeError, match="not an integer format"):
        qsim.quantize_int(X2, "e4m3", 1.0)


def test_dequantize_int_out_of_range_and_shape():
    with pytest.raises(ValueError, match="outside"):
        qsim.dequantize_int(np.array([0, 8]), 1.0, fmt="int4")
    with pytest.raises(ValueError, match="must have shape"):
        qsim.dequantize_int(np.zeros((4, 6), np.int8), np.ones(6), 0, axis=0)


# -- mx_quantize --------------------------------------------------------------------------------
XM = np.linspace(-3, 3, 2 * 64, dtype=np.float32).reshape(2, 64)


@pytest.mark.parametrize("axis", [2, -3])
def test_mx_axis_out_of_range(axis):
    with pytest.raises(ValueError, match="out of range"):
        qsim.mx_quantize(XM, "e4m3", axis=axis)


def test_mx_axis_not_an_int():
    with pytest.raises(TypeError, match="axis must be an int"):
        qsim.mx_quantize(XM, "e4m3", axis=1.0)


@pytest.mark.parametrize("block_size", [0, -32, 32.0, True])
def test_mx_bad_block_size(block_size):
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        qsim.mx_quantize(XM, "e4m3", block_size=block_size)


@pytest.mark.parametrize("option, value", [("scale_rule", "nearest"), ("scale_rule", None),
                                           ("zero_block", "zero"), ("nonfinite_block", "inf")])
def test_mx_unknown_option(option, value):
    with pytest.raises(ValueError, match=option):
        qsim.mx_quantize(XM, "e4m3", **{option: value})


@pytest.mark.parametrize("fmt", ["int8", "uint4", "e8m0"])
def test_mx_element_format_must_be_a_signed_float(fmt):
    with pytest.raises(ValueError, match="cannot be an MX element type"):
        qsim.mx_quantize(XM, fmt)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_mx_nonfinite_block(bad):
    x = XM.copy()
    x[1, 40] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        qsim.mx_quantize(x, "e4m3", nonfinite_block="error")
    # default: that one block gets the NaN scale, the others are untouched
    mx = qsim.mx_quantize(x, "fp4_e2m1")
    assert mx.scales[1, 1] == 0xFF
    assert (mx.scales[[0, 0, 1], [0, 1, 0]] != 0xFF).all()
    decoded = mx.decode()
    assert np.isnan(decoded[1, 32:]).all() and not np.isnan(decoded[1, :32]).any()


# -- empty arrays ---------------------------------------------------------------------------------
EMPTY_SHAPES = [(0,), (3, 0), (0, 4), (2, 0, 5)]


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_empty_encode_decode_quantize(fmt, shape):
    for dtype in (np.float32, np.float64, np.float16):
        codes = qsim.encode(np.zeros(shape, dtype), fmt)
        assert codes.shape == shape and codes.dtype == code_dtype(fmt)
    values = qsim.decode(np.zeros(shape, code_dtype(fmt)), fmt)
    assert values.shape == shape and values.dtype == value_dtype(fmt)
    q = qsim.quantize(np.zeros(shape, np.float32), fmt)
    assert q.shape == shape and q.dtype == np.float32
    q64 = qsim.quantize(np.zeros(shape, np.float64), fmt)
    assert q64.shape == shape and q64.dtype == np.float64


@pytest.mark.parametrize("shape, axis, group_size", [
    ((0,), None, None), ((0, 3), None, None), ((0, 3), 1, None), ((0, 3), 0, None), ((3, 0), 0, None),
    ((3, 0), 1, None), ((0, 3), 1, 2), ((0, 3), 0, 2), ((3, 0), 1, 2), ((3, 0), 0, 2),
])
def test_empty_quantize_int(shape, axis, group_size):
    if axis is None:
        pshape = ()
    elif group_size is None:
        pshape = (shape[axis],)
    else:
        pshape = tuple(-(-n // group_size) if d == axis else n for d, n in enumerate(shape))
    x = np.zeros(shape, np.float32)
    q = qsim.quantize_int(x, "int8", np.ones(pshape), np.zeros(pshape, np.int8), axis=axis, group_size=group_size)
    assert q.shape == shape and q.dtype == np.int8
    back = qsim.dequantize_int(q, np.ones(pshape), np.zeros(pshape, np.int8), axis=axis, group_size=group_size)
    assert back.shape == shape and back.dtype == np.float32


@pytest.mark.parametrize("shape, axis, scale_shape", [
    ((0,), -1, (0,)), ((0, 40), -1, (0, 2)), ((3, 0), -1, (3, 0)), ((0, 3), 0, (0, 3)), ((40, 0), 0, (2, 0)),
])
def test_empty_mx_quantize(shape, axis, scale_shape):
    mx = qsim.mx_quantize(np.zeros(shape, np.float32), "e4m3", axis=axis, block_size=32)
    assert mx.elements.shape == shape and mx.elements.dtype == np.uint8
    assert mx.scales.shape == scale_shape and mx.scales.dtype == np.uint8
    assert mx.decode().shape == shape


# -- 0-d input ----------------------------------------------------------------------------------
SCALARS = {"np.float32": np.float32(1.5), "np.float64": np.float64(1.5), "0-d array": np.array(1.5, np.float32),
           "python float": 1.5}


@pytest.mark.parametrize("kind", list(SCALARS))
def test_zero_dimensional_encode_keeps_its_shape(kind):
    for fmt in ALL_FORMATS:
        codes = qsim.encode(SCALARS[kind], fmt)
        assert codes.shape == (), fmt
        assert codes == qsim.encode(np.array([1.5]), fmt)[0], fmt


@pytest.mark.parametrize("kind", list(SCALARS))
def test_zero_dimensional_quantize_keeps_its_shape(kind):
    for fmt in ALL_FORMATS:
        assert qsim.quantize(SCALARS[kind], fmt).shape == (), fmt


def test_zero_dimensional_decode_keeps_its_shape():
    for fmt in ALL_FORMATS:
        codes = np.array(qsim.encode(np.array([1.5]), fmt)[0])
        assert codes.ndim == 0
        assert qsim.decode(codes, fmt).shape == (), fmt


def test_zero_dimensional_decode_of_a_numpy_scalar():
    assert qsim.decode(np.uint8(0x38), "e4m3").shape == ()
    assert qsim.decode(np.uint8(0x38), "e4m3") == 1.0


def test_zero_dimensional_quantize_int():
    q = qsim.quantize_int(np.float32(2.6), "int8", 0.5)
    assert q.shape == () and q == 5
    assert qsim.dequantize_int(q, 0.5).shape == ()


def test_zero_dimensional_mx_has_no_axis():
    with pytest.raises(ValueError, match="out of range for an array of 0 dimensions"):
        qsim.mx_quantize(np.float32(1.5), "e4m3")


# -- non-contiguous input --------------------------------------------------------------------------
def strided_views(positive=False):
    base = np.random.default_rng(3).normal(0, 3, (64, 48)).astype(np.float32)
    cube = np.random.default_rng(4).normal(0, 3, (6, 40, 10)).astype(np.float64)
    if positive:  # e8m0 has no zero or negatives
        base, cube = np.abs(base), np.abs(cube)
    return {
        "step2": base.reshape(-1)[::2],
        "reversed": base.reshape(-1)[::-1],
        "transposed": base.T,
        "fortran": np.asfortranarray(base),
        "column": base[:, 5],
        "slice2d": base[3:50:3, ::-2],
        "cube": cube[::2, 1:, ::3].transpose(2, 0, 1),
    }


VIEWS = list(strided_views())


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2fnuz", "bf16", "fp16", "fp4_e2m1", "e8m0", "int8", "uint4"])
def test_non_contiguous_encode_decode_quantize(fmt, view):
    x = strided_views(positive=fmt == "e8m0")[view]
    assert not x.flags.c_contiguous
    xc = np.ascontiguousarray(x)
    codes = qsim.encode(x, fmt)
    np.testing.assert_array_equal(codes, qsim.encode(xc, fmt))
    np.testing.assert_array_equal(qsim.quantize(x, fmt), qsim.quantize(xc, fmt))
    np.testing.assert_array_equal(qsim.encode(x, fmt, rounding="stochastic", seed=7),
                                  qsim.encode(xc, fmt, rounding="stochastic", seed=7))
    # codes that are themselves a strided view
    strided_codes = np.tile(codes[..., None], 2)[..., 0]
    assert not strided_codes.flags.c_contiguous or strided_codes.size <= 1
    np.testing.assert_array_equal(qsim.decode(strided_codes, fmt), qsim.decode(codes, fmt))


@pytest.mark.parametrize("view", ["transposed", "fortran", "slice2d", "cube"])
def test_non_contiguous_quantize_int(view):
    x = strided_views()[view]
    xc = np.ascontiguousarray(x)
    for axis in range(x.ndim):
        scale = np.linspace(0.01, 0.1, x.shape[axis])
        zp = np.arange(x.shape[axis]) % 7 - 3
        np.testing.assert_array_equal(qsim.quantize_int(x, "int8", scale, zp, axis=axis),
                                      qsim.quantize_int(xc, "int8", scale, zp, axis=axis))
        gshape = tuple(-(-n // 4) if d == axis else n for d, n in enumerate(x.shape))
        gscale = np.full(gshape, 0.05)
        np.testing.assert_array_equal(
            qsim.quantize_int(x, "int4", gscale, np.zeros(gshape, int), axis=axis, group_size=4),
            qsim.quantize_int(xc, "int4", gscale, np.zeros(gshape, int), axis=axis, group_size=4))
    np.testing.assert_array_equal(qsim.quantize_int(x, "uint8", 0.05, 128),
                                  qsim.quantize_int(xc, "uint8", 0.05, 128))


@pytest.mark.parametrize("view", ["transposed", "fortran", "slice2d", "cube", "reversed"])
def test_non_contiguous_mx_quantize(view):
    x = strided_views()[view]
    xc = np.ascontiguousarray(x)
    for axis in range(x.ndim):
        a = qsim.mx_quantize(x, "fp6_e2m3", axis=axis, block_size=8)
        b = qsim.mx_quantize(xc, "fp6_e2m3", axis=axis, block_size=8)
        np.testing.assert_array_equal(a.elements, b.elements)
        np.testing.assert_array_equal(a.scales, b.scales)


def test_input_is_not_modified():
    x = strided_views()["slice2d"]
    before = x.copy()
    qsim.encode(x, "e4m3")
    qsim.quantize(x, "bf16")
    qsim.quantize_int(x, "int8", 0.1)
    qsim.mx_quantize(x, "e4m3", axis=0, block_size=4)
    np.testing.assert_array_equal(x, before)
