"""Issue 3 speed targets: exact int8 GEMM against numpy float64 matmul, and a saturating
narrow-accumulator GEMM in GMAC/s; torch's fbgemm kernel alongside for context.

Run: pytest benchmarks --benchmark-enable (see README)."""

import numpy as np
import pytest

from qsim.datapaths import Accumulator, int_matmul

SIZE = 512
MACS = SIZE ** 3


@pytest.fixture(scope="module")
def operands():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (SIZE, SIZE)).astype(np.int8)
    b = rng.integers(-128, 128, (SIZE, SIZE)).astype(np.int8)
    return a, b


@pytest.fixture(scope="module")
def saturating_operands():
    """Positive-biased bytes: running sums climb past 2^15, so a 16-bit accumulator saturates."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 128, (SIZE, SIZE)).astype(np.int8)
    b = rng.integers(-20, 128, (SIZE, SIZE)).astype(np.int8)
    return a, b


@pytest.mark.parametrize("threads", [1, 2])
def test_exact_int8_gemm_qsim(benchmark, mark_role, operands, threads):
    benchmark.group = "int8 GEMM 512^3, exact int32 wrap"
    mark_role("qsim", target=0.5 if threads == 2 else None, macs=MACS)
    a, b = operands
    out = benchmark(int_matmul, a, b, num_threads=threads)
    np.testing.assert_array_equal(out[:4], a[:4].astype(np.int64) @ b.astype(np.int64))


def test_exact_int8_gemm_numpy_float64(benchmark, mark_role, operands):
    benchmark.group = "int8 GEMM 512^3, exact int32 wrap"
    mark_role("peer", peer="numpy float64 matmul", macs=MACS)
    a, b = operands
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    benchmark(np.matmul, fa, fb)


@pytest.mark.parametrize("order", ["sequential", "pairwise"])
@pytest.mark.parametrize("threads", [1, 2])
def test_saturating_gemm_qsim(benchmark, mark_role, saturating_operands, threads, order):
    benchmark.group = "int8 GEMM 512^3, 16-bit saturating"
    target = 2.0 if threads == 2 and order == "sequential" else None
    mark_role("qsim", macs=MACS, gmacs_target=target)
    a, b = saturating_operands
    acc = Accumulator(16, "saturate", order)
    out, events = benchmark(int_matmul, a, b, accumulator=acc, return_events=True, num_threads=threads)
    assert events.mean() > 1                     # the data really saturates


def test_torch_fbgemm_linear(benchmark, mark_role, operands):
    torch = pytest.importorskip("torch")
    benchmark.group = "int8 GEMM 512^3, exact int32 wrap"
    mark_role("peer", peer="torch fbgemm quantized::linear (context)", macs=MACS, context=True)
    a, b = operands
    torch.backends.quantized.engine = "fbgemm"
    x = torch.quantize_per_tensor(torch.from_numpy((a.astype(np.float32) + 128)), 1.0, 128, torch.quint8)
    w = torch.quantize_per_tensor(torch.from_numpy(b.T.astype(np.float32).copy()), 1.0, 0, torch.qint8)
    packed = torch.ops.quantized.linear_prepack(w, None)
    benchmark(torch.ops.quantized.linear, x, packed, 1.0, 0)
