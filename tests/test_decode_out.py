"""qsim.decode(..., out=): decoding into a caller's array gives the same values, returns that
array, and rejects an array that cannot take the result with an error naming the problem."""

import numpy as np
import pytest

import qsim

# one format per decode path: table gather, float16 prefix, float32 prefix, float64 values, integers
CASES = [("e4m3", np.float32), ("e5m2", np.float64), ("fp16", np.float32), ("bf16", np.float32),
         ("bf16", np.float64), ("int8", np.float32)]


def _codes(fmt, shape=(3, 50)):
    f = qsim.formats.format(fmt)
    return np.random.default_rng(1).integers(0, f.n_codes, shape).astype(qsim.codec.code_dtype(f))


@pytest.mark.parametrize("fmt,dtype", CASES)
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
