"""out= on qsim.decode, qsim.encode and block_decode: writing into a caller's array gives the
same values, returns that array, and an array that cannot take the result is rejected with an
error naming the problem.

Each path writes into out itself: the decoders' (table, float16 prefix, float32 prefix widened
or not, computed values of formats too wide for a table, integers) and the encoders'."""

import tracemalloc

import numpy as np
import pytest

import qsim
from qsim.quant.blocks import block_decode, block_quantize
from qsim.reference import ref_decode

TF32 = qsim.FloatFormat("tf32", 8, 10, 127)                   # 19 bits: too wide for a table
E11M10 = qsim.FloatFormat("e11m10", 11, 10, 1050, "fn")        # values down to float64 subnormals

# one format per decode path: table gather, float16 prefix, float32 prefix (as float32 bits
# and widened to float64), computed values, integers (signed, unsigned, 16-bit)
CASES = [("e4m3", np.float32), ("e4m3", np.float64), ("e5m2", np.float64), ("fp16", np.float32),
         ("bf16", np.float32), ("bf16", np.float64), ("fp32", np.float64), (TF32, np.float32),
         (TF32, np.float64), (E11M10, np.float64), ("int8", np.float32), ("int4", np.float64),
         ("uint4", np.float32), ("int16", np.float64)]


def _codes(fmt, shape=(3, 50)):
    f = qsim.formats.format(fmt)
    return np.random.default_rng(1).integers(0, f.n_codes, shape).astype(qsim.codec.code_dtype(f))


@pytest.mark.parametrize("fmt,dtype", CASES, ids=lambda v: v if isinstance(v, str) else getattr(v, "name", None) or np.dtype(v).name)
def test_decode_into_out_matches_and_returns_out(fmt, dtype):
    codes = _codes(fmt)
    expected = qsim.decode(codes, fmt, dtype=dtype)
    out = np.full(codes.shape, 7.0, dtype)
    got = qsim.decode(codes, fmt, out=out)
    assert got is out
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))   # bit-identical, NaNs too


def test_repeated_decodes_reuse_out():
    codes = _codes("e4m3")
    out = np.empty(codes.shape, np.float32)
    first = qsim.decode(codes, "e4m3", out=out)
    second = qsim.decode(codes[::-1].copy(), "e4m3", out=out)
    assert first is second is out
    np.testing.assert_array_equal(out, qsim.decode(codes[::-1].copy(), "e4m3"))


@pytest.mark.parametrize("out,kwargs,error,words", [
    (np.empty((3, 49), np.float32), {}, ValueError, "shape"),
    (np.empty((3, 50), np.int32), {}, TypeError, "float32 or float64"),
    (np.empty((50, 3), np.float32).T, {}, ValueError, "C-contiguous"),
    (np.empty((3, 50), np.float32), {"dtype": np.float64}, TypeError, "dtype"),
    ([[0.0] * 50] * 3, {}, TypeError, "numpy array"),
])
def test_out_that_cannot_take_the_result_is_rejected(out, kwargs, error, words):
    with pytest.raises(error, match=words):
        qsim.decode(_codes("e4m3"), "e4m3", out=out, **kwargs)


def test_read_only_out_is_rejected():
    out = np.empty((3, 50), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        qsim.decode(_codes("e4m3"), "e4m3", out=out)


@pytest.mark.parametrize("fmt,dtype", CASES, ids=lambda v: v if isinstance(v, str) else getattr(v, "name", None) or np.dtype(v).name)
def test_decode_into_out_allocates_no_array(fmt, dtype):
    """Every path writes into out itself: numpy reports its array allocations to tracemalloc,
    and decoding 100 000 codes into out takes less memory than a tenth of one more array."""
    codes = _codes(fmt, (100_000,))
    out = np.empty(codes.shape, dtype)
    qsim.decode(codes, fmt, out=out)                 # caches (value tables) filled first
    tracemalloc.start()
    try:
        qsim.decode(codes, fmt, out=out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < out.nbytes // 10, f"{peak} bytes allocated decoding into out"


@pytest.mark.parametrize("fmt", [TF32, E11M10, qsim.FloatFormat("e3m20fnuz", 3, 20, 4, "fnuz"),
                                 qsim.FloatFormat("u8m9", 8, 9, 100, "ieee", signed=False)],
                         ids=lambda f: f.name)
def test_wide_formats_decode_to_their_exact_values(fmt):
    """Formats too wide for a table: computed values against the scalar reference (Fractions),
    on random codes and the special ones."""
    codes = _codes(fmt, (4000,))
    top = fmt.n_codes - 1
    codes = np.concatenate([codes, np.array([0, 1, top, top - 1, fmt.sign_bit, fmt.sign_bit + 1,
                                             fmt.magnitude_mask, fmt.max_code_magnitude], codes.dtype)])
    got = qsim.decode(codes, fmt, np.float64)
    for c, v in zip(codes.tolist(), got.tolist()):
        want = ref_decode(c, fmt)
        if isinstance(want, float) and want != want:
            assert v != v, f"{fmt.name} code 0x{c:x}: {v}, want NaN"
        else:
            assert v == want and np.signbit(v) == (c & fmt.sign_bit != 0), f"{fmt.name} code 0x{c:x}: {v}, want {want}"


@pytest.mark.parametrize("fmt", ["int4", "uint4", "int8", "uint8", "int12", "uint16", "int16_narrow"])
def test_integer_decode_gives_two_s_complement_values(fmt):
    f = qsim.formats.format(fmt)
    codes = np.arange(f.n_codes).astype(qsim.codec.code_dtype(f))
    want = [c - f.n_codes if f.signed and c >= f.n_codes // 2 else c for c in codes.tolist()]
    got = qsim.decode(codes, f)
    assert got.dtype == np.dtype(f"{'i' if f.signed else 'u'}{1 if f.bits <= 8 else 2}")
    assert got.tolist() == want
    assert qsim.decode(codes, f, np.float64).tolist() == want


# -- encode --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["e4m3", "bf16", "fp32", "e8m0", "fp4_e2m1", "int4", "uint8", "int16"])
def test_encode_into_out_matches_and_returns_out(fmt):
    f = qsim.formats.format(fmt)
    x = np.random.default_rng(2).standard_normal((3, 50)).astype(np.float32) * 4
    if fmt in ("e8m0", "uint8"):
        x = np.abs(x)
    out = np.full(x.shape, 0x55, qsim.codec.code_dtype(f))
    got = qsim.encode(x, fmt, out=out)
    assert got is out
    np.testing.assert_array_equal(got, qsim.encode(x, fmt))


@pytest.mark.parametrize("out,error,words", [
    (np.empty((3, 49), np.uint8), ValueError, "shape"),
    (np.empty((3, 50), np.uint16), TypeError, "uint8"),
    (np.empty((50, 3), np.uint8).T, ValueError, "C-contiguous"),
    ([[0] * 50] * 3, TypeError, "numpy array"),
])
@pytest.mark.parametrize("fmt", ["e4m3", "int8"])
def test_encode_out_that_cannot_take_the_codes_is_rejected(fmt, out, error, words):
    with pytest.raises(error, match=words):
        qsim.encode(np.zeros((3, 50), np.float32), fmt, out=out)


def test_encode_read_only_out_is_rejected():
    out = np.empty(4, np.uint16)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        qsim.encode(np.zeros(4, np.float32), "bf16", out=out)


# -- block decode ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,axis", [("mxfp4", -1), ("nvfp4", -1), ("mxfp8_e4m3", 0), ("fp8_block_128x128", -1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_decode_into_out(name, axis, dtype):
    x = np.random.default_rng(3).standard_normal((130, 300)).astype(np.float32)
    q = block_quantize(x, name, axis=axis)
    out = np.full(x.shape, 7.0, dtype)
    got = q.decode(out=out)
    assert got is out
    np.testing.assert_array_equal(got.view(np.uint8), q.decode(dtype).view(np.uint8))


@pytest.mark.parametrize("out,kwargs,error,words", [
    (np.empty((4, 63), np.float32), {}, ValueError, "shape"),
    (np.empty((4, 64), np.float16), {}, TypeError, "float32 or float64"),
    (np.empty((64, 4), np.float32).T, {}, ValueError, "C-contiguous"),
    (np.empty((4, 64), np.float32), {"dtype": np.float64}, TypeError, "float64"),
])
def test_block_decode_out_that_cannot_take_the_result_is_rejected(out, kwargs, error, words):
    q = block_quantize(np.ones((4, 64), np.float32), "mxfp4")
    with pytest.raises(error, match=words):
        block_decode(q, out=out, **kwargs)
