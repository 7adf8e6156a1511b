"""Floating-point datapaths: sequential, pairwise and fused accumulation against exact
rational references, FP32 against numpy float32, and the Fasi et al. behaviours."""

from fractions import Fraction

import numpy as np
import pytest

import qsim
from qsim.datapaths import reference as ref
from qsim.datapaths.floating import FloatAccumulator, float_matmul


def random_codes(rng, fmt, shape, spread=4.0):
    x = (rng.standard_normal(shape) * 2.0 ** rng.uniform(-spread, spread, shape)).astype(np.float32)
    return qsim.encode(x, fmt, saturate=True)


def exact_products(a, b, fa, fb, m, n):
    av, bv = qsim.decode(a, fa, dtype=np.float64), qsim.decode(b, fb, dtype=np.float64)
    return [Fraction(float(av[m, k])) * Fraction(float(bv[k, n])) for k in range(a.shape[1])]


@pytest.mark.parametrize("fa,fb", [("e4m3", "e4m3"), ("e5m2", "e4m3"), ("fp16", "fp16"), ("fp4_e2m1", "fp6_e3m2")])
def test_fp32_sequential_equals_numpy_float32_accumulate(fa, fb):
    rng = np.random.default_rng(1)
    a, b = random_codes(rng, fa, (5, 200)), random_codes(rng, fb, (200, 6))
    av, bv = qsim.decode(a, fa, dtype=np.float64), qsim.decode(b, fb, dtype=np.float64)
    products = (av[:, :, None] * bv[None, :, :]).astype(np.float32)      # exact in float32 here
    want = np.add.accumulate(products, axis=1, dtype=np.float32)[:, -1, :]
    for events in (False, True):                                          # fast path and generic kernel
        got = float_matmul(a, b, fa, fb, return_events=events)
        got = got[0] if events else got
        np.testing.assert_array_equal(got, want.astype(np.float64))


def test_bf16_products_outside_float32_use_the_exact_path():
    """BF16 x BF16 products can leave float32's range: the generic kernel still rounds once."""
    a = qsim.encode(np.array([[2.0 ** -100, 1.0]], np.float32), "bf16")
    b = qsim.encode(np.array([[2.0 ** -40], [2.0 ** -126]], np.float32), "bf16")
    # 2^-140 (below float32's normal range) + 2^-126: on float32's subnormal grid, exactly
    assert float_matmul(a, b, "bf16", "bf16")[0, 0] == 2.0 ** -126 + 2.0 ** -140
    a = qsim.encode(np.array([[2.0 ** 100, 2.0 ** 100]], np.float32), "bf16")
    b = qsim.encode(np.array([[2.0 ** 30], [-(2.0 ** 30)]], np.float32), "bf16")
    got, events = float_matmul(a, b, "bf16", "bf16", return_events=True)
    assert np.isinf(got[0, 0]) and events["overflow"][0, 0] == 1      # 2^130 overflows FP32 first


@pytest.mark.parametrize("acc", [
    FloatAccumulator("fp16", "rne"), FloatAccumulator("bf16", "rtz"), FloatAccumulator("e5m2", "rne", saturate=True),
    FloatAccumulator("fp32", "down"), FloatAccumulator("fp16", "rne", order="reversed"),
    FloatAccumulator("bf16", "rne", order="pairwise"), FloatAccumulator("fp16", "up", order="pairwise"),
])
def test_sequential_and_pairwise_match_rational_reference(acc):
    rng = np.random.default_rng(2)
    a, b = random_codes(rng, "e4m3", (3, 37), 6), random_codes(rng, "e4m3", (37, 4), 6)
    got, events = float_matmul(a, b, "e4m3", "e4m3", acc, return_events=True)
    for m in range(3):
        for n in range(4):
            want = ref.float_sum(exact_products(a, b, "e4m3", "e4m3", m, n), acc.format, acc.rounding,
                                 acc.saturate, acc.order)
            assert got[m, n] == float(want), (m, n)


@pytest.mark.parametrize("group,bits,align,rounding,promote", [
    (32, 14, "truncate", "rtz", 128), (4, 24, "truncate", "rtz", 0), (8, 10, "rne", "rne", 0),
    (16, 14, "truncate", "rne", 64), (1, 6, "truncate", "rtz", 0), (32, 30, "rne", "rne", 32),
])
def test_fused_unit_matches_rational_reference(group, bits, align, rounding, promote):
    rng = np.random.default_rng(group * 100 + bits)
    acc = FloatAccumulator("fp32", rounding, fused_group=group, fused_bits=bits, fused_align=align,
                           promote_every=promote)
    for spread in (2, 12):                                  # mild, then huge exponent spread
        a, b = random_codes(rng, "e4m3", (3, 300), spread), random_codes(rng, "e5m2", (300, 3), spread)
        a[0, ::2] = qsim.encode(-qsim.decode(a[0, 1::2], "e4m3"), "e4m3")   # cancellation
        got = float_matmul(a, b, "e4m3", "e5m2", acc)
        for m in range(3):
            for n in range(3):
                want = ref.fused_sum(exact_products(a, b, "e4m3", "e5m2", m, n), group, bits, align, "fp32",
                                     rounding, False, promote)
                assert got[m, n] == float(want), (spread, m, n)


def fp16(rows):
    return qsim.encode(np.array(rows, np.float32), "fp16")


def test_fasi_behaviours_tell_the_models_apart():
    """Exact products, truncation in alignment, one normalization (Fasi et al. 2021)."""
    # exact products: 2^-12 * 2^-12 = 2^-24 is kept exactly, though it is below FP16's range
    a, b = fp16([[1.0, 2.0 ** -12, 2.0 ** -12, 2.0 ** -12, 2.0 ** -12]]), fp16([[1.0]] + [[2.0 ** -12]] * 4)
    seq, ev = float_matmul(a, b, "fp16", "fp16", return_events=True)
    assert seq[0, 0] == 1.0 and ev["absorbed"][0, 0] == 4            # sequential FP32: each tie goes to even
    wide = float_matmul(a, b, "fp16", "fp16", FloatAccumulator(fused_group=4, fused_bits=30, rounding="rne"))
    assert wide[0, 0] == 1.0 + 2.0 ** -22                            # summed exactly, normalized once
    narrow, ev = float_matmul(a, b, "fp16", "fp16", FloatAccumulator(fused_group=4, fused_bits=24, rounding="rtz"),
                              return_events=True)
    assert narrow[0, 0] == 1.0 and ev["absorbed"][0, 0] == 4         # shifted out by the alignment
    # truncation, not rounding, in the alignment: (1 - 2^-11) * 2^-23 is 0.99.. of the last kept bit
    a, b = fp16([[1.0, (1.0 - 2.0 ** -11) * 2.0 ** -11]]), fp16([[1.0], [2.0 ** -12]])
    trunc = float_matmul(a, b, "fp16", "fp16", FloatAccumulator(fused_group=2, fused_bits=24, rounding="rne"))
    rounded = float_matmul(a, b, "fp16", "fp16",
                           FloatAccumulator(fused_group=2, fused_bits=24, fused_align="rne", rounding="rne"))
    assert trunc[0, 0] == 1.0 and rounded[0, 0] == 1.0 + 2.0 ** -23
    # one normalization: two addends of 0.625 ulp each; sequential FP32 rounds after each add
    # (1 -> 1 + 1 ulp -> 1 + 2 ulp), the fused unit rounds the exact 1 + 1.25 ulp once
    a, b = fp16([[1.0, 2.0 ** -12, 2.0 ** -12]]), fp16([[1.0], [1.25 * 2.0 ** -12], [1.25 * 2.0 ** -12]])
    seq = float_matmul(a, b, "fp16", "fp16")
    fused = float_matmul(a, b, "fp16", "fp16", FloatAccumulator(fused_group=3, fused_bits=40, rounding="rne"))
    assert seq[0, 0] == 1.0 + 2.0 ** -22 and fused[0, 0] == 1.0 + 2.0 ** -23


def test_inf_and_nan_propagate_and_are_counted():
    a = qsim.encode(np.array([[np.inf, 1.0], [np.nan, 1.0], [60000.0, 60000.0]], np.float32), "fp16")
    b = qsim.encode(np.array([[1.0], [2.0]], np.float32), "fp16")
    for acc in (FloatAccumulator(), FloatAccumulator("fp16"), FloatAccumulator(fused_group=2, fused_bits=14)):
        got, ev = float_matmul(a, b, "fp16", "fp16", acc, return_events=True)
        assert np.isinf(got[0, 0]) and np.isnan(got[1, 0])
    got, ev = float_matmul(a, b, "fp16", "fp16", FloatAccumulator("fp16"), return_events=True)
    assert np.isinf(got[2, 0]) and ev["overflow"][2, 0] == 1
    got, ev = float_matmul(a, b, "fp16", "fp16", FloatAccumulator("fp16", saturate=True), return_events=True)
    assert got[2, 0] == 65504 and ev["saturated"][2, 0] >= 1


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_identical_at_any_thread_count(threads):
    rng = np.random.default_rng(4)
    a, b = random_codes(rng, "e4m3", (9, 130)), random_codes(rng, "e4m3", (130, 11))
    for acc in (FloatAccumulator(), FloatAccumulator("bf16", order="pairwise"),
                FloatAccumulator(fused_group=32, fused_bits=14, rounding="rtz", promote_every=128)):
        np.testing.assert_array_equal(float_matmul(a, b, "e4m3", "e4m3", acc, num_threads=1),
                                      float_matmul(a, b, "e4m3", "e4m3", acc, num_threads=threads))


BAD = [
    (lambda: FloatAccumulator("int8"), ValueError, "float format"),
    (lambda: FloatAccumulator("fp32", "stochastic"), ValueError, "stochastic"),
    (lambda: FloatAccumulator("fp4_e2m1"), ValueError, "saturate=True"),
    (lambda: FloatAccumulator(fused_group=300), ValueError, "fused_group"),
    (lambda: FloatAccumulator(fused_group=8, fused_bits=60), ValueError, "fused_bits"),
    (lambda: FloatAccumulator(promote_every=128), ValueError, "fused"),
    (lambda: FloatAccumulator(order="random"), ValueError, "order"),
    (lambda: float_matmul(np.zeros((2, 3), np.uint8), np.zeros((4, 2), np.uint8), "e4m3", "e4m3"), ValueError, "inner"),
    (lambda: float_matmul(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), "e4m3", "nope"), KeyError, "nope"),
    (lambda: float_matmul(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.uint8), "e4m3", "e4m3"), TypeError, "integer"),
    (lambda: float_matmul(np.zeros((2, 3), np.uint32), np.zeros((3, 2), np.uint8), "fp32", "e4m3"), ValueError, "16 bits"),
]


@pytest.mark.parametrize("call,exc,match", BAD)
def test_bad_input_is_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# -- MX dot products ------------------------------------------------------------------------------
def mx_array(elements, scale_codes, fmt, axis):
    from qsim.quant.mx import MXArray
    return MXArray(np.asarray(elements), np.asarray(scale_codes, np.uint8), qsim.format(fmt), axis, 32)


def test_mx_dot_product_hand_worked():
    """OCP MX v1.0 6.2: Dot(A, B) = X_A * X_B * sum_i P_i * Q_i, per block, blocks summed in FP32."""
    e4m3 = lambda v: qsim.encode(np.asarray(v, np.float32), "e4m3")
    # one block: P_i = 1.5, Q_i = 2.0 (i < 32); X_A = 2^1 (code 128), X_B = 2^-3 (code 124)
    a = mx_array(e4m3(np.full((1, 32), 1.5)), [[128]], "e4m3", 1)
    b = mx_array(e4m3(np.full((32, 1), 2.0)), [[124]], "e4m3", 0)
    from qsim.datapaths import mx_matmul
    assert mx_matmul(a, b)[0, 0] == 2.0 * 2.0 ** -3 * 32 * 1.5 * 2.0          # = 24
    # two blocks, FP4 elements: block 0 sums 32 * (0.5 * 6) = 96 at scales 2^0 * 2^0; block 1 sums
    # 16 * (1 * -1) = -16 at scales 2^4 * 2^-2: 96 - 64 = 32
    fp4 = lambda v: qsim.encode(np.asarray(v, np.float32), "fp4_e2m1")
    ea = np.concatenate([np.full(32, 0.5), np.r_[np.ones(16), np.zeros(16)]]).reshape(1, 64)
    eb = np.concatenate([np.full(32, 6.0), np.full(32, -1.0)]).reshape(64, 1)
    a = mx_array(fp4(ea), [[127, 131]], "fp4_e2m1", 1)
    b = mx_array(fp4(eb), [[127], [125]], "fp4_e2m1", 0)
    assert mx_matmul(a, b)[0, 0] == 32.0
    # a NaN scale (code 255) makes its block, and so the result, NaN
    a = mx_array(fp4(ea), [[127, 255]], "fp4_e2m1", 1)
    assert np.isnan(mx_matmul(a, b)[0, 0])


def test_mx_matmul_equals_fp32_accumulation_of_exact_block_sums():
    from qsim.datapaths import mx_matmul
    rng = np.random.default_rng(9)
    x, w = rng.normal(0, 1, (4, 100)).astype(np.float32), rng.normal(0, 1, (100, 3)).astype(np.float32)
    for fmt in ("e4m3", "fp6_e2m3", "fp4_e2m1"):
        a, b = qsim.mx_quantize(x, fmt, axis=1), qsim.mx_quantize(w, fmt, axis=0)
        got = mx_matmul(a, b)
        av, bv = a.decode(np.float64), b.decode(np.float64)
        for m in range(4):
            for n in range(3):
                acc = np.float32(0)
                for k0 in range(0, 100, 32):
                    block = sum(Fraction(float(av[m, k])) * Fraction(float(bv[k, n])) for k in range(k0, min(100, k0 + 32)))
                    acc = np.float32(acc + np.float32(float(block)))     # exact block, FP32 round, FP32 add
                assert got[m, n] == acc


def test_mx_matmul_bad_input():
    from qsim.datapaths import mx_matmul
    x = np.ones((2, 64), np.float32)
    with pytest.raises(ValueError, match="blocks along K \\(axis -2\\)"):
        mx_matmul(qsim.mx_quantize(x, "e4m3", axis=1), qsim.mx_quantize(x, "e4m3", axis=1))
    with pytest.raises(TypeError, match="MXArray"):
        mx_matmul(x, x)
    with pytest.raises(ValueError, match="E5M2"):
        mx_matmul(qsim.mx_quantize(x, "e5m2", axis=1), qsim.mx_quantize(x.T.copy(), "e5m2", axis=0))


def test_fake_quantization_differs_from_the_bit_exact_datapath():
    """The usual emulation (decode, then float BLAS) is not what a 14-bit fused FP8 unit gives."""
    from qsim.datapaths import FLOAT_PRESETS
    rng = np.random.default_rng(10)
    a = qsim.encode(rng.normal(0, 1, (64, 4096)).astype(np.float32), "e4m3")
    b = qsim.encode(rng.normal(0, 1, (4096, 64)).astype(np.float32), "e4m3")
    fake = qsim.decode(a, "e4m3") @ qsim.decode(b, "e4m3")                    # float32 BLAS
    exact = qsim.decode(a, "e4m3", dtype=np.float64) @ qsim.decode(b, "e4m3", dtype=np.float64)
    hopper = float_matmul(a, b, "e4m3", "e4m3", FLOAT_PRESETS["h100-fp8-like"].accumulator)
    assert (hopper != fake).mean() > 0.5                                       # most outputs differ
    rel = np.abs(hopper - exact) / np.abs(exact).max()
    assert 1e-6 < rel.max() < 1e-2                                            # truncation error, bounded
    assert np.abs(fake - exact).max() < np.abs(hopper - exact).max()


def test_float_conv_is_the_matmul_over_patches():
    """Each conv output equals float_matmul of its patch (channel, kh, kw order) and weights."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from qsim.datapaths import float_conv
    rng = np.random.default_rng(11)
    x = random_codes(rng, "e4m3", (2, 4, 6, 5))
    w = random_codes(rng, "e4m3", (6, 2, 3, 2))
    acc = FloatAccumulator("bf16", "rne")
    got, events = float_conv(x, w, "e4m3", "e4m3", stride=(1, 2), padding=1, dilation=(2, 1), groups=2,
                             accumulator=acc, return_events=True)
    xv, wv = qsim.decode(x, "e4m3", dtype=np.float64), qsim.decode(w, "e4m3", dtype=np.float64)
    exact = F.conv2d(torch.tensor(xv), torch.tensor(wv), stride=(1, 2), padding=1, dilation=(2, 1), groups=2).numpy()
    assert got.shape == exact.shape and set(events) == {"overflow", "saturated", "absorbed"}
    assert np.abs(got - exact).max() <= 2.0 ** -7 * np.abs(exact).max() * 4          # bf16 accumulation error
    # output [0, 0, 0, 0]: group 0, padded patch rows -1..3 step 2, cols -1..0
    patch = np.zeros((2, 3, 2), np.float64)
    for c in range(2):
        for i, r in enumerate((-1, 1, 3)):
            for j, col in enumerate((-1, 0)):
                if 0 <= r < 6 and 0 <= col < 5:
                    patch[c, i, j] = xv[0, c, r, col]
    codes = qsim.encode(patch.reshape(1, -1).astype(np.float32), "e4m3")
    want = float_matmul(codes, w[0].reshape(-1, 1), "e4m3", "e4m3", acc)
    assert got[0, 0, 0, 0] == want[0, 0]


def test_batched_mx_matmul_equals_matrix_by_matrix():
    from qsim.datapaths import mx_matmul
    rng = np.random.default_rng(11)
    a = rng.normal(size=(3, 2, 5, 70)).astype(np.float32)
    b = rng.normal(size=(2, 70, 4)).astype(np.float32)                 # broadcasts over the first axis
    got = mx_matmul(qsim.mx_quantize(a, "fp4_e2m1", axis=-1), qsim.mx_quantize(b, "fp4_e2m1", axis=-2))
    for i in np.ndindex(3, 2):
        want = mx_matmul(qsim.mx_quantize(a[i], "fp4_e2m1", axis=1), qsim.mx_quantize(b[i[1]], "fp4_e2m1", axis=0))
        np.testing.assert_array_equal(got[i], want)
