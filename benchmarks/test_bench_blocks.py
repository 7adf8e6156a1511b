"""Block-scaled quantization speed: NVFP4 and MXFP4 of a 4096x4096 float32 matrix with the
elements packed two per byte, single thread, peers side by side (gguf's numpy MXFP4
quantizer, torchao's CPU reference); quantizing and decoding per element against qsim's E4M3
encode and decode.

Run: pytest benchmarks/test_bench_blocks.py (ratios are printed at the end of the run)."""

import warnings

import numpy as np
import pytest

import qsim
from qsim.quant.blocks import block_quantize

N = 4096


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((N, N)).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _qsim_packed(x, name):
    q = block_quantize(x, name, num_threads=1)
    return q.packed_elements(), q.scales


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4"])
def test_quantize_qsim(benchmark, mark_role, x, name):
    benchmark.group = f"quantize+pack {name}"
    mark_role("qsim", target=10.0, elements=x.size)
    packed, _ = benchmark(_qsim_packed, x, name)
    assert packed.size == x.size // 2


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4"])
def test_quantize_vs_encode_qsim(benchmark, mark_role, x, name):
    """Scales, then the element codes of 16- and 32-element blocks, next to a plain encode:
    within 20x (with the plain encoder of the time it was ~40x when each block ran its own
    short element loop, 12x once they ran over spans; the plain encoder is ~2x faster since)."""
    benchmark.group = f"quantize {name} vs e4m3 encode"
    mark_role("qsim", target=1 / 20, elements=x.size)
    benchmark(block_quantize, x, name, num_threads=1)


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4"])
def test_quantize_vs_encode_e4m3(benchmark, mark_role, x, name):
    benchmark.group = f"quantize {name} vs e4m3 encode"
    mark_role("peer", peer="qsim.encode e4m3")
    benchmark(qsim.encode, x, "e4m3", num_threads=1)


def test_quantize_gguf_mxfp4(benchmark, mark_role, x):
    quants = pytest.importorskip("gguf.quants")
    benchmark.group = "quantize+pack mxfp4"
    mark_role("peer", peer="gguf.quants MXFP4 (numpy)")
    rows = x[:512]          # the full matrix takes minutes; time scaled by 8 rows-fractions below
    benchmark.pedantic(lambda: [quants.MXFP4.quantize_blocks(rows.reshape(-1, 32)) for _ in range(N // 512)],
                       rounds=1, iterations=1)


def _torchao():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch = pytest.importorskip("torch")
        mx = pytest.importorskip("torchao.prototype.mx_formats.mx_tensor")
        nv = pytest.importorskip("torchao.prototype.mx_formats.nvfp4_tensor")
    return torch, mx, nv


def test_quantize_torchao_mxfp4(benchmark, mark_role, x):
    torch, mx, _ = _torchao()
    benchmark.group = "quantize+pack mxfp4"
    mark_role("peer", peer="torchao MXTensor.to_mx (CPU)")
    t = torch.from_numpy(x)
    benchmark.pedantic(mx.MXTensor.to_mx, args=(t, torch.float4_e2m1fn_x2, 32), rounds=3, iterations=1)


def test_quantize_torchao_nvfp4(benchmark, mark_role, x):
    torch, _, nv = _torchao()
    benchmark.group = "quantize+pack nvfp4"
    mark_role("peer", peer="torchao NVFP4Tensor.to_nvfp4 (CPU, two levels)")
    t = torch.from_numpy(x)
    ts = nv.per_tensor_amax_to_scale(t.abs().max())
    benchmark.pedantic(nv.NVFP4Tensor.to_nvfp4, args=(t,), kwargs={"per_tensor_scale": ts}, rounds=3, iterations=1)


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4", "mxfp8_e4m3"])
def test_decode_qsim(benchmark, mark_role, x, name):
    benchmark.group = f"decode {name} vs e4m3"
    mark_role("qsim", target=1.0, elements=x.size)
    q = block_quantize(x, name)
    out = benchmark(q.decode, np.float32, 1)
    assert out.shape == x.shape


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4", "mxfp8_e4m3"])
def test_decode_e4m3(benchmark, mark_role, x, name):
    benchmark.group = f"decode {name} vs e4m3"
    mark_role("peer", peer="qsim.decode e4m3")
    codes = qsim.encode(x, "e4m3")
    benchmark(qsim.decode, codes, "e4m3", num_threads=1)
