"""Modelled accumulators, integer GEMM and convolution against the scalar reference."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qsim.datapaths import reference as ref
from qsim.datapaths.accumulate import ORDERS, OVERFLOWS, Accumulator, a2q_bits, int_matmul
from qsim.datapaths.conv import int_conv


def reference_matmul(a, b, za, zb, acc: Accumulator):
    a = a.astype(np.int64) - za
    b = b.astype(np.int64) - np.broadcast_to(zb, (b.shape[1],))
    out = np.zeros((a.shape[0], b.shape[1]), np.int64)
    events = np.zeros_like(out)
    for m in range(a.shape[0]):
        for n in range(b.shape[1]):
            terms = ref.dot_terms(a[m], b[:, n])
            out[m, n], events[m, n] = ref.accumulate(terms, acc.bits, acc.overflow, acc.order)
    return out, events


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("overflow", OVERFLOWS)
@pytest.mark.parametrize("bits", [8, 11, 16, 24, 32])
def test_kernel_matches_reference(bits, overflow, order):
    rng = np.random.default_rng(bits)
    acc = Accumulator(bits, overflow, order)
    for k in (1, 2, 3, 17, 64, 301):
        a = rng.integers(0, 256, (3, k)).astype(np.uint8)
        b = rng.integers(-128, 128, (k, 37)).astype(np.int8)
        zb = rng.integers(-5, 5, 37)
        got, ev = int_matmul(a, b, 100, zb, acc, return_events=True)
        want, want_ev = reference_matmul(a, b, 100, zb, acc)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(ev, want_ev)


@pytest.mark.parametrize("bits", [16, 32])
@pytest.mark.parametrize("order", ORDERS)
def test_pair_saturation_matches_reference(bits, order):
    """fbgemm's VPMADDUBSW: raw u8 x s8 pairs saturate to int16, zero points corrected after."""
    rng = np.random.default_rng(7)
    acc = Accumulator(bits, "wrap", order, pair_saturate16=True)
    for k in (1, 2, 5, 64, 129):
        a = rng.integers(200, 256, (6, k)).astype(np.uint8)       # big bytes: pairs saturate
        b = rng.choice(np.array([-128, -127, 120, 127]), (k, 9)).astype(np.int8)
        za, zb = 3, np.int64(-2)
        got = int_matmul(a, b, za, zb, acc)
        for m in range(6):
            for n in range(9):
                raw, _ = ref.accumulate(ref.dot_terms(a[m], b[:, n], pairs=True), bits, "wrap", order)
                exact_correction = -za * int(b[:, n].astype(int).sum()) - int(zb) * int(a[m].astype(int).sum()) \
                    + k * za * int(zb)
                want, _ = ref.accumulate([raw, exact_correction], 64, "wrap", "sequential")
                assert got[m, n] == Accumulator(bits).fit(want)
    a = np.full((1, 2), 255, np.uint8)
    b = np.full((2, 1), 127, np.int8)
    assert int_matmul(a, b, accumulator=acc)[0, 0] == 32767            # not 2 * 255 * 127
    assert int_matmul(a, b)[0, 0] == 2 * 255 * 127


def test_pairs_saturate_only_for_u8_times_s8():
    """VPMADDUBSW takes u8 x s8 only: other operand types sum exactly on the same kernel path."""
    acc = Accumulator(32, "wrap", pair_saturate16=True)
    for a_type, b_type, a_val, b_val in ((np.int8, np.int8, -128, -128), (np.uint8, np.uint8, 255, 255),
                                         (np.uint8, np.int8, 255, 127)):
        a, b = np.full((1, 4), a_val, a_type), np.full((4, 1), b_val, b_type)
        exact = 4 * a_val * b_val
        want = 2 * 32767 if (a_type, b_type) == (np.uint8, np.int8) else exact
        assert int_matmul(a, b, accumulator=acc)[0, 0] == want


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(8, 40), seed=st.integers(0, 2 ** 32), k=st.integers(1, 200))
def test_wrap_is_exact_sum_modulo_2_to_the_width(bits, seed, k):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (2, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, 3)).astype(np.int8)
    exact = a.astype(object) @ b.astype(object)
    for order in ORDERS:
        got = int_matmul(a, b, accumulator=Accumulator(bits, "wrap", order), return_events=True)[0]
        want = (exact + 2 ** (bits - 1)) % 2 ** bits - 2 ** (bits - 1)
        np.testing.assert_array_equal(got, want.astype(np.int64))


def test_saturation_depends_on_order():
    a = np.array([[1, 1, 1]], np.int8)
    b = np.array([[100], [100], [-100]], np.int8)
    results = {o: int(int_matmul(a, b, accumulator=Accumulator(8, "saturate", o))[0, 0]) for o in ORDERS}
    assert results == {"sequential": 27, "reversed": 100, "pairwise": 27}
    assert int(int_matmul(a, b, accumulator=Accumulator(8, "wrap"))[0, 0]) == 100


@settings(max_examples=200, deadline=None)
@given(k=st.integers(1, 1 << 16), n_bits=st.integers(2, 8), m_bits=st.integers(2, 8), signed=st.booleans())
def test_a2q_width_never_overflows(k, n_bits, m_bits, signed):
    """The most positive and most negative dot products both fit the A2Q width."""
    p = a2q_bits(k, n_bits, m_bits, signed)
    xs = (-(2 ** (n_bits - 1)), 2 ** (n_bits - 1) - 1) if signed else (0, 2 ** n_bits - 1)
    ws = (-(2 ** (m_bits - 1)), 2 ** (m_bits - 1) - 1)
    products = [x * w for x in xs for w in ws]
    assert -(2 ** (p - 1)) <= k * min(products) and k * max(products) <= 2 ** (p - 1) - 1


def test_a2q_width_holds_on_data():
    rng = np.random.default_rng(3)
    for k in (1, 7, 64, 1000):
        p = a2q_bits(k, 8, 8, input_signed=False)
        a = np.full((2, k), 255, np.uint8)
        b = np.stack([np.full(k, -128), np.full(k, 127), rng.integers(-128, 128, k)], 1).astype(np.int8)
        got, ev = int_matmul(a, b, accumulator=Accumulator(p, "saturate"), return_events=True)
        assert not ev.any()
        np.testing.assert_array_equal(got, a.astype(np.int64) @ b.astype(np.int64))


def test_exact_fast_path_equals_the_sequential_kernel():
    rng = np.random.default_rng(5)
    for k in (1, 1023, 4097):
        a = rng.integers(0, 256, (5, k)).astype(np.uint8)
        b = rng.integers(-128, 128, (k, 6)).astype(np.int8)
        fast = int_matmul(a, b, 255, -128)                               # products up to 2^16
        kernel, _ = int_matmul(a, b, 255, -128, return_events=True)
        np.testing.assert_array_equal(fast, kernel)
        exact = (a.astype(object) - 255) @ (b.astype(object) + 128)
        np.testing.assert_array_equal(fast, ((exact + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int64))


def test_batched_matmul_broadcasts():
    rng = np.random.default_rng(6)
    a = rng.integers(-8, 8, (2, 3, 4, 10)).astype(np.int8)
    b = rng.integers(-8, 8, (3, 10, 5)).astype(np.int8)
    want = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(int_matmul(a, b), want)
    np.testing.assert_array_equal(int_matmul(a, b, accumulator=Accumulator(64, "saturate"), return_events=True)[0], want)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_identical_at_any_thread_count(threads):
    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (33, 300)).astype(np.uint8)
    b = rng.integers(-128, 128, (300, 700)).astype(np.int8)
    for acc in (Accumulator(16, "saturate"), Accumulator(14, "saturate", "pairwise"),
                Accumulator(32, "wrap", pair_saturate16=True)):
        base = int_matmul(a, b, 128, 0, acc, return_events=True, num_threads=1)
        got = int_matmul(a, b, 128, 0, acc, return_events=True, num_threads=threads)
        for x, y in zip(base, got):
            np.testing.assert_array_equal(x, y)


CONV_CASES = [
    dict(x=(2, 4, 9, 8), w=(6, 2, 3, 2), stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2), groups=2),
    dict(x=(1, 3, 10), w=(3, 1, 3), stride=1, padding=1, dilation=1, groups=3),          # depthwise 1-D
    dict(x=(2, 8, 7, 7), w=(8, 1, 3, 3), stride=2, padding=1, dilation=1, groups=8),     # depthwise 2-D
    dict(x=(1, 5, 12), w=(4, 5, 4), stride=3, padding=(2, 0), dilation=2, groups=1),
    dict(x=(1, 3, 5, 5), w=(2, 3, 1, 1), stride=1, padding=0, dilation=1, groups=1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_torch(case):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    rng = np.random.default_rng(len(case["x"]))
    x = rng.integers(0, 256, case["x"]).astype(np.uint8)
    w = rng.integers(-128, 128, case["w"]).astype(np.int8)
    zw = rng.integers(-3, 3, case["w"][0])
    got = int_conv(x, w, 9, zw, case["stride"], case["padding"], case["dilation"], case["groups"])
    dims = len(case["x"]) - 2
    pads = case["padding"]
    pads = (pads,) * (2 * dims) if np.isscalar(pads) else tuple(pads) * (2 if len(pads) == dims else 1)
    torch_pad = sum(((pads[i], pads[dims + i]) for i in reversed(range(dims))), ())
    xt = F.pad(torch.tensor(x.astype(np.float64) - 9), torch_pad)
    wt = torch.tensor(w.astype(np.float64) - zw.reshape((-1,) + (1,) * (dims + 1)))
    conv = F.conv2d if dims == 2 else F.conv1d
    want = conv(xt, wt, stride=case["stride"], dilation=case["dilation"], groups=case["groups"]).numpy()
    np.testing.assert_array_equal(got, want.astype(np.int64))


def test_conv_saturating_order_is_channel_then_kernel():
    x = np.array([[[1, 1], [1, 1]]], np.int8)                  # N=1, C=2, W=2
    w = np.array([[[100, 100], [-100, 27]]], np.int8)          # taps: c0k0 c0k1 c1k0 c1k1
    got = int_conv(x, w, accumulator=Accumulator(8, "saturate"))
    assert got[0, 0, 0] == ref.accumulate([100, 100, -100, 27], 8, "saturate", "sequential")[0] == 54


BAD = [
    (lambda: int_matmul(np.zeros((2, 3), np.int8), np.zeros((4, 2), np.int8)), ValueError, "inner dimensions"),
    (lambda: int_matmul(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.int8)), TypeError, "integer"),
    (lambda: int_matmul(np.zeros(3, np.int8), np.zeros((3, 2), np.int8)), ValueError, "2 dimensions"),
    (lambda: int_matmul(np.zeros((2, 3), np.int8), np.zeros((3, 2), np.int8), b_zero=[1, 2, 3]), ValueError, "b_zero"),
    (lambda: int_matmul(np.zeros((2, 3), np.int32), np.full((3, 2), 1 << 20, np.int32)), ValueError, "int16"),
    (lambda: int_matmul(np.zeros((2, 3), np.int64), np.full((3, 2), 1 << 40, np.int64)), ValueError, "int16"),
    (lambda: Accumulator(7), ValueError, "8 to 64"),
    (lambda: Accumulator(65), ValueError, "8 to 64"),
    (lambda: Accumulator(32, "clip"), ValueError, "overflow"),
    (lambda: Accumulator(32, order="random"), ValueError, "order"),
    (lambda: int_conv(np.zeros((1, 4, 5), np.uint8), np.zeros((2, 3, 3), np.int8)), ValueError, "groups"),
    (lambda: int_conv(np.zeros((1, 4, 2), np.uint8), np.zeros((2, 4, 3), np.int8)), ValueError, "kernel larger"),
    (lambda: int_conv(np.zeros((1, 4, 5), np.uint8), np.zeros((2, 4, 3), np.int8), stride=0), ValueError, "stride"),
]


@pytest.mark.parametrize("call,exc,match", BAD)
def test_bad_input_is_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
