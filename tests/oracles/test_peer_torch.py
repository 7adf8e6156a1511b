"""qsim's fbgemm and qnnpack datapaths against PyTorch's quantized::linear kernels."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
from peers.torch_quant import quantized_linear_many  # noqa: E402

from qsim.datapaths import qlinear_matmul  # noqa: E402

HAS_VNNI = any(flag in Path("/proc/cpuinfo").read_text().split() for flag in ("avx512_vnni", "avx_vnni")) \
    if Path("/proc/cpuinfo").exists() else False


def make_cases(seed: int, n: int = 240):
    """Mixed random cases, exact ties (power-of-two scales, half-multiple biases), saturating
    bytes (x near 255, |w| near 127), long dot products (acc > 2^24), per tensor and per channel."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        kind = ("random", "tie", "saturate", "long")[i % 4]
        m, n_out = int(rng.integers(1, 6)), int(rng.integers(1, 19))
        k = int(rng.integers(4000, 12000)) if kind == "long" else int(rng.integers(1, 80))
        per_channel = i % 2 == 1
        if kind == "tie":
            sx, sy = 2.0 ** rng.integers(-2, 1), 2.0 ** rng.integers(-1, 2)
            sw = 2.0 ** rng.integers(-3, 0, n_out) if per_channel else 2.0 ** rng.integers(-3, 0)
            x = rng.integers(0, 12, (m, k))
            w = rng.integers(-4, 5, (n_out, k))
            x_zp = int(rng.integers(0, 12))
        else:
            sx, sy = 10 ** rng.uniform(-3, -1), 10 ** rng.uniform(-2, 0)
            sw = 10 ** rng.uniform(-3, -1, n_out) if per_channel else 10 ** rng.uniform(-3, -1)
            x_zp = int(rng.integers(0, 256))
            if kind in ("saturate", "long"):
                x = rng.integers(200, 256, (m, k))
                w = rng.integers(90, 128, (n_out, k)) * rng.choice([-1, 1], (n_out, k))
            else:
                x, w = rng.integers(0, 256, (m, k)), rng.integers(-128, 128, (n_out, k))
        if kind == "long":
            sy = float(np.float32(sx) * np.float32(np.max(sw)) * 2.0 ** 22)
        w_zp = rng.integers(-3, 4, n_out) if per_channel else int(rng.integers(-3, 4))
        bias = None
        if i % 3:
            bias = rng.integers(-40, 41, n_out) * 0.5 * np.float32(sx) * np.float32(np.min(sw)) if kind == "tie" \
                else rng.normal(0, 2, n_out)
            bias = np.asarray(bias, np.float32)
        cases.append(dict(x=x.astype(np.uint8), x_scale=float(np.float32(sx)), x_zp=x_zp,
                          w=np.clip(w, -128, 127).astype(np.int8), w_scale=np.asarray(sw, np.float32),
                          w_zp=np.asarray(w_zp, np.int64), bias=bias, y_scale=float(np.float32(sy)),
                          y_zp=int(rng.integers(0, 256)), relu=i % 5 == 0))
    return cases


def qsim_linear(c, preset):
    return qlinear_matmul(c["x"], c["x_scale"], np.uint8(c["x_zp"]), c["w"].T, c["w_scale"],
                          c["w_zp"].astype(np.int8), c["y_scale"], np.uint8(c["y_zp"]), c["bias"],
                          datapath=preset, activation="relu" if c["relu"] else None)


def check(cases, outputs, preset):
    mismatched = [i for i, (c, want) in enumerate(zip(cases, outputs)) if not np.array_equal(qsim_linear(c, preset), want)]
    assert not mismatched, f"{preset}: cases {mismatched[:10]} differ from torch"


@pytest.mark.skipif(not HAS_VNNI, reason="fbgemm only takes its exact VNNI path on a CPU with VNNI")
def test_fbgemm_vnni_bit_exact():
    cases = make_cases(1)
    check(cases, quantized_linear_many(cases, engine="fbgemm"), "fbgemm-vnni")


def test_fbgemm_avx2_bit_exact():
    cases = make_cases(2)
    outputs = quantized_linear_many(cases, engine="fbgemm", isa="AVX2")
    check(cases, outputs, "fbgemm-avx2")
    differs = sum(not np.array_equal(qsim_linear(c, "fbgemm-vnni"), y) for c, y in zip(cases, outputs))
    assert differs > 20            # the saturating cases really saturated


def test_qnnpack_bit_exact():
    cases = make_cases(3)
    check(cases, quantized_linear_many(cases, engine="qnnpack"), "qnnpack")
