"""ggml block formats: qsim's kernels beside gguf-py (llama.cpp's numpy reference), 4096 x 4096.

Run: pytest benchmarks/test_bench_ggml.py (see README). Ratios are printed at the end of the run;
the results are checked equal to gguf's before timing."""

import warnings

import numpy as np
import pytest

from qsim.quant.ggml import GGML_FORMATS, ggml_dequantize, ggml_quantize

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as T  # noqa: E402

SHAPE = (4096, 4096)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


@pytest.fixture
def quiet():
    """Random K-quant blocks hold NaN / Inf scales; gguf warns about them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("name", ["Q4_1", "Q8_0", "Q4_K"])
@pytest.mark.parametrize("who", ["qsim", "gguf"])
def test_dequantize(benchmark, mark_role, x, quiet, name, who):
    fmt = GGML_FORMATS[name]
    raw = (gguf.quants.quantize(x, T[name]) if fmt.can_quantize else
           np.random.default_rng(1).integers(0, 256, (SHAPE[0], SHAPE[1] // 256 * fmt.bytes_per_block), np.uint8))
    benchmark.group = f"ggml dequantize {name}"
    if who == "qsim":
        mark_role("qsim", elements=x.size)
        out = benchmark(ggml_dequantize, raw, name, SHAPE)
        ref = gguf.quants.dequantize(raw, T[name])
        same = (out.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(out) & np.isnan(ref))
        assert same.all()
    else:
        mark_role("peer", peer="gguf.quants")
        benchmark(gguf.quants.dequantize, raw, T[name])


@pytest.mark.parametrize("name", ["Q4_0", "Q8_0", "MXFP4"])
@pytest.mark.parametrize("who", ["qsim", "gguf"])
def test_quantize(benchmark, mark_role, x, quiet, name, who):
    benchmark.group = f"ggml quantize {name}"
    if who == "qsim":
        mark_role("qsim", elements=x.size)
        out = benchmark(ggml_quantize, x, name)
        assert np.array_equal(out, gguf.quants.quantize(x, T[name]))
    else:
        mark_role("peer", peer="gguf.quants")
        benchmark.pedantic(gguf.quants.quantize, (x, T[name]), rounds=2, iterations=1)
