"""qsim's ONNX Runtime datapath for this CPU (onnxruntime-x86, or onnxruntime-x86-avx2 without VNNI)
against ONNX Runtime's own integer kernels (MLAS)."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
from peers import ort  # noqa: E402

import qsim  # noqa: E402
from qsim._cpu import ort_integer_datapath  # noqa: E402
from qsim.sim.ort_kernels import mlas_conv_datapath  # noqa: E402
from qsim.datapaths import PRESETS, int_conv, int_matmul, qlinear_conv, qlinear_matmul  # noqa: E402

ORT_PATH = ort_integer_datapath()          # MLAS on this CPU: VNNI sums exactly, AVX2 saturates u8 x s8 pairs

COMBOS = [(np.uint8, np.uint8), (np.uint8, np.int8), (np.int8, np.int8)]


def codes(rng, dtype, shape, tie=False, zero=0):
    info = np.iinfo(dtype)
    if tie:                                     # small values near the zero point: exact ties
        return np.clip(rng.integers(-4, 5, shape) + zero, info.min, info.max).astype(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


def scales(rng, tie, n=None):
    """Power-of-two scales make the multiplier exact, so requantized values land on .5 ties."""
    if tie:
        sa, sy = 2.0 ** rng.integers(-3, 1), 2.0 ** rng.integers(0, 3)
        sb = 2.0 ** rng.integers(-3, 1, n) if n else 2.0 ** rng.integers(-3, 1)
    else:
        sa, sy = 10 ** rng.uniform(-3, -1), 10 ** rng.uniform(-2, 0)
        sb = 10 ** rng.uniform(-3, -1, n) if n else 10 ** rng.uniform(-3, -1)
    return np.float32(sa), np.asarray(sb, np.float32), np.float32(sy)


def zero(rng, dtype, n=None):
    info = np.iinfo(dtype)
    return np.asarray(rng.integers(info.min, int(info.max) + 1, n) if n else rng.integers(info.min, int(info.max) + 1),
                      dtype=dtype)


@pytest.mark.parametrize("a_dtype,b_dtype", COMBOS)
def test_qlinear_matmul_bit_exact(a_dtype, b_dtype):
    rng = np.random.default_rng(np.dtype(a_dtype).num * 10 + np.dtype(b_dtype).num)
    ties = mismatches = 0
    for case in range(150):
        tie, big = case % 3 == 0, case % 5 == 1
        m, k, n = rng.integers(1, 6), (rng.integers(3000, 4200) if big else rng.integers(1, 70)), rng.integers(1, 9)
        per_col = case % 2 == 0
        sa, sb, sy = scales(rng, tie, n if per_col else None)
        za, zb, zy = zero(rng, a_dtype), zero(rng, b_dtype, n if per_col else None), zero(rng, a_dtype)
        if big:                    # same-sign operands far from the zero points: |acc| > 2^24
            za, zb = np.asarray(0, a_dtype), np.zeros_like(zb)
            a = np.full((m, k), np.iinfo(a_dtype).max, a_dtype)
            b = np.full((k, n), np.iinfo(b_dtype).max, b_dtype) - rng.integers(0, 3, (k, n)).astype(b_dtype)
            sy = np.float32(2.0 ** 24 * sa * float(np.max(sb)) / 100)
        else:
            a, b = codes(rng, a_dtype, (m, k), tie, int(za)), codes(rng, b_dtype, (k, n))
        want = ort.qlinear_matmul(a, sa, za, b, sb, zb, sy, zy)
        got = qlinear_matmul(a, sa, za, b, sb, zb, sy, zy, datapath=ORT_PATH)
        mismatches += int((got != want).sum())
        exact = (a.astype(np.float64) - int(za)) @ (b.astype(np.float64) - zb.astype(np.float64))
        ties += int(((exact * (sa * sb / sy)) % 1 == 0.5).sum())
    assert mismatches == 0
    assert ties > 20                              # the tie cases really hit ties


@pytest.mark.parametrize("a_dtype,b_dtype", COMBOS)
def test_qlinear_conv_bit_exact(a_dtype, b_dtype):
    rng = np.random.default_rng(100 + np.dtype(a_dtype).num + np.dtype(b_dtype).num)
    for case in range(120):
        tie = case % 3 == 0
        dims = 1 + case % 2
        kind = ("generic", "depthwise", "per-channel")[case % 3]
        c = int(rng.integers(1, 5)) * (2 if kind != "depthwise" else 1)
        groups = c if kind == "depthwise" else int(rng.choice([1, 2]))
        c_out = groups * int(rng.integers(1, 3)) if kind != "depthwise" else c * int(rng.integers(1, 3))
        size = rng.integers(3, 8, dims)
        ksize = rng.integers(1, 4, dims)
        stride, dilation = rng.integers(1, 3, dims), rng.integers(1, 3, dims)
        pads = rng.integers(0, 2, 2 * dims)
        x_shape = (int(rng.integers(1, 3)), c) + tuple(int(s) + int(d) * int(k) for s, d, k in zip(size, dilation, ksize))
        w_shape = (c_out, c // groups) + tuple(int(k) for k in ksize)
        per_ch = kind == "per-channel"
        sx, sw, sy = scales(rng, tie, c_out if per_ch else None)
        zx, zw, zy = zero(rng, a_dtype), zero(rng, b_dtype, c_out if per_ch else None), zero(rng, a_dtype)
        x, w = codes(rng, a_dtype, x_shape, tie, int(zx)), codes(rng, b_dtype, w_shape)
        bias = rng.integers(-2000, 2000, c_out).astype(np.int32) if case % 4 else None
        kw = dict(strides=stride.tolist(), pads=pads.tolist(), dilations=dilation.tolist(), group=groups)
        want = ort.qlinear_conv(x, sx, zx, w, sw, zw, sy, zy, bias, **kw)
        got = qlinear_conv(x, sx, zx, w, sw, zw, sy, zy, bias, stride=tuple(stride.tolist()),
                           padding=tuple(pads.tolist()), dilation=tuple(dilation.tolist()), groups=groups,
                           datapath=mlas_conv_datapath(ORT_PATH, w.shape, groups, constant_weights=True),
                           channels_last=True)        # MLAS runs QLinearConv NHWC
        np.testing.assert_array_equal(got, want, err_msg=f"case {case}")


@pytest.mark.parametrize("a_dtype,b_dtype", COMBOS + [(np.int8, np.uint8)])
def test_matmul_integer_wraps_like_onnxruntime(a_dtype, b_dtype):
    rng = np.random.default_rng(7)
    for case in range(40):
        k = 140000 if case < 4 else int(rng.integers(1, 300))
        a = codes(rng, a_dtype, (2, k)) if case >= 4 else np.full((2, k), np.iinfo(a_dtype).min, a_dtype)
        b = codes(rng, b_dtype, (k, 3)) if case >= 4 else np.full((k, 3), np.iinfo(b_dtype).min, b_dtype)
        za, zb = zero(rng, a_dtype), zero(rng, b_dtype)
        want = ort.matmul_integer(a, b, za, zb)
        got = int_matmul(a, b, za, zb, PRESETS[ORT_PATH].accumulator)
        np.testing.assert_array_equal(got, want.astype(np.int64))
    exact = 140000 * (np.iinfo(a_dtype).min - 0) * (np.iinfo(b_dtype).min - 0)
    if abs(exact) >= 2 ** 31:                          # the forced overflow really wrapped
        a = np.full((1, 140000), np.iinfo(a_dtype).min, a_dtype)
        b = np.full((140000, 1), np.iinfo(b_dtype).min, b_dtype)
        assert int(ort.matmul_integer(a, b)[0, 0]) == (exact + 2 ** 31) % 2 ** 32 - 2 ** 31 != exact


def test_conv_integer_matches_onnxruntime():
    rng = np.random.default_rng(9)
    for case in range(40):
        x = codes(rng, np.uint8, (1, 4, 9, 7))
        w = codes(rng, np.int8, (4, 2, 3, 2))
        zx, zw = zero(rng, np.uint8), zero(rng, np.int8)
        want = ort.conv_integer(x, w, zx, zw, strides=[2, 1], pads=[1, 0, 1, 1], dilations=[1, 2], group=2)
        got = int_conv(x, w, zx, zw, (2, 1), (1, 0, 1, 1), (1, 2), 2)
        np.testing.assert_array_equal(got, want.astype(np.int64))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantize_linear_matches_onnxruntime(dtype):
    rng = np.random.default_rng(11)
    fmt = "int8" if dtype == np.int8 else "uint8"
    for case in range(100):
        scale = np.float32(2.0 ** rng.integers(-4, 3)) if case % 2 else np.float32(10 ** rng.uniform(-3, 1))
        zp = zero(rng, dtype)
        x = (rng.integers(-300, 300, 64) * np.float32(0.5) * scale).astype(np.float32)  # many exact ties
        x[:8] = [np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0, 3.4e38, -3.4e38]
        np.testing.assert_array_equal(qsim.quantize_int(x, fmt, scale, zp), ort.quantize_linear(x, scale, zp))
