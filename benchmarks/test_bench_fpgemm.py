"""Issue 4 speed targets: FP8 GEMM 512^3 with FP32 sequential accumulation against numpy float32
matmul, and the fused 14-bit (h100-fp8-like) model in GMAC/s; the usual fake quantization
(decode, then float BLAS) alongside. Run: pytest benchmarks --benchmark-enable."""

import numpy as np
import pytest

import qsim
from qsim.datapaths import FLOAT_PRESETS, FloatAccumulator, float_matmul

SIZE = 512
MACS = SIZE ** 3


@pytest.fixture(scope="module")
def fp8():
    rng = np.random.default_rng(0)
    a = qsim.encode(rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32), "e4m3")
    b = qsim.encode(rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32), "e4m3")
    return a, b


def test_fp8_gemm_fp32_sequential_qsim(benchmark, mark_role, fp8):
    benchmark.group = "FP8 GEMM 512^3, FP32 sequential"
    mark_role("qsim", target=0.1, macs=MACS)
    a, b = fp8
    benchmark(float_matmul, a, b, "e4m3", "e4m3", FloatAccumulator(), num_threads=2)


def test_numpy_float32_matmul(benchmark, mark_role, fp8):
    benchmark.group = "FP8 GEMM 512^3, FP32 sequential"
    mark_role("peer", peer="numpy float32 matmul", macs=MACS)
    a, b = fp8
    fa, fb = qsim.decode(a, "e4m3"), qsim.decode(b, "e4m3")
    benchmark(np.matmul, fa, fb)


def test_fp8_gemm_fused_14bit_qsim(benchmark, mark_role, fp8):
    benchmark.group = "FP8 GEMM 512^3, fused 14-bit + promotion"
    mark_role("qsim", macs=MACS, gmacs_target=1.0)
    a, b = fp8
    acc = FLOAT_PRESETS["h100-fp8-like"].accumulator
    benchmark.pedantic(float_matmul, args=(a, b, "e4m3", "e4m3", acc), kwargs={"num_threads": 2},
                       rounds=5, iterations=1)


def test_fake_quantization_decode_then_blas(benchmark, mark_role, fp8):
    benchmark.group = "FP8 GEMM 512^3, fused 14-bit + promotion"
    mark_role("peer", peer="fake quantization (decode + float32 BLAS, not bit-exact)", macs=MACS)
    a, b = fp8
    benchmark(lambda: qsim.decode(a, "e4m3") @ qsim.decode(b, "e4m3"))
