"""Issue 15 speed targets: each matrix unit against MMA-Sim (mmasim) on the same tile, single
thread (target 100x), and the Hopper FP8 wgmma unit on a 512^3 GEMM with 2 threads (target
5 GMAC/s). Run: pytest benchmarks/test_bench_matrix_units.py --benchmark-enable."""

import sys
from pathlib import Path

import numpy as np
import pytest

from qsim.datapaths.matrix_units import matrix_unit

pytest.importorskip("mmasim")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the shared peer runners
from peers import mmasim_units as P  # noqa: E402

UNITS = ["hopper/wgmma/m64n128k32.f32.e4m3.e4m3", "hopper/wgmma/m64n128k16.f32.bf16.bf16",
         "ada-lovelace/mma/m16n8k32.f32.e4m3.e5m2.f32", "ampere/mma/m16n8k16.f32.bf16.bf16.f32",
         "volta/mma/m8n8k4.f16.f16.f16.f16",
         "blackwell/tcgen05.mma/m128n128k32.kind::f8f6f4.f32.e4m3.e2m1",
         "blackwell/tcgen05.mma.block_scale/m128n128k32.kind::mxf8f6f4.block32.f32.e4m3.e4m3.ue8m0",
         "blackwell/tcgen05.mma.block_scale/m128n128k64.kind::mxf4nvf4.block16.f32.e2m1.e2m1.ue4m3",
         "cdna3/mfma/f32_32x32x8_bf16"]


def _tile(name, batch=8):
    u = matrix_unit(name)
    rng = np.random.default_rng(0)
    a = P.random_codes(u.a_format, (batch, u.m, u.k), rng, 8)
    b = P.random_codes(u.b_format, (batch, u.k, u.n), rng, 8)
    c = P.random_c(u, (batch, u.m, u.n), rng, 8)
    s = (None, None)
    if u.block_size:
        nb = u.k // u.block_size
        s = (P.random_codes(u.scale_format, (batch, u.m, nb), rng, 4), P.random_codes(u.scale_format, (batch, nb, u.n), rng, 4))
    return u, a, b, c, s


@pytest.mark.parametrize("name", UNITS)
def test_unit_qsim(benchmark, mark_role, name):
    benchmark.group = f"unit {name}"
    u, a, b, c, s = _tile(name)
    mark_role("qsim", target=100, macs=a.shape[0] * u.m * u.n * u.k)
    benchmark(u, a, b, c, *s, num_threads=1)


@pytest.mark.parametrize("name", UNITS)
def test_unit_mmasim(benchmark, mark_role, name):
    benchmark.group = f"unit {name}"
    u, a, b, c, s = _tile(name)
    mark_role("peer", peer="mmasim", macs=a.shape[0] * u.m * u.n * u.k)

    def run():
        for i in range(a.shape[0]):
            P.run_tile(u, a[i], b[i], c[i], *(x[i] if x is not None else None for x in s))
    benchmark.pedantic(run, rounds=1, iterations=1)


def test_hopper_fp8_gemm_512(benchmark, mark_role):
    benchmark.group = "Hopper wgmma FP8 GEMM 512^3, 2 threads"
    mark_role("qsim", macs=512 ** 3, gmacs_target=5.0)
    u = matrix_unit("hopper/wgmma/m64n256k32.f32.e4m3.e4m3")
    rng = np.random.default_rng(1)
    a = P.random_codes("e4m3", (512, 512), rng, 8).astype(np.uint8)
    b = P.random_codes("e4m3", (512, 512), rng, 8).astype(np.uint8)
    c = np.zeros((512, 512), np.float32)
    benchmark.pedantic(u.gemm, args=(a, b, c), kwargs={"num_threads": 2}, rounds=3, iterations=1)
