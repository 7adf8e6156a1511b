"""The block codec kernel (cython_src/_blockcodec.pyx): element loops that run over spans of
several blocks (short blocks) or over parts of one block (blocks longer than a span) give the
codes of an element-by-element encode; the float32 decode path gives the float64 decode
rounded once. Their speed next to the plain encoder and decoder is measured in
benchmarks/test_bench_blocks.py."""

import numpy as np
import pytest

import qsim
from qsim.formats.block import BlockFormat
from qsim.quant.blocks import block_quantize

rng = np.random.default_rng(11)
SPAN = 1024          # the kernel's elements per loop: shapes below straddle it


def _wide(rows, cols, dtype):
    x = rng.standard_normal((rows, cols)) * np.exp2(rng.integers(-20, 20, (rows, 1)))
    x[0, 7] = np.nan                     # one non-finite block per row 0: zero codes, NaN scale
    return x.astype(dtype)


def _pow2_oracle(x, q):
    """Elements of a power-of-two block format: encode(x * 2**-e) element by element."""
    k = q.format.block[0]
    scales = np.repeat(q.scale_values(), k, axis=-1)[:, :x.shape[1]]
    finite = np.isfinite(scales)
    with np.errstate(invalid="ignore"):
        scaled = np.where(finite, x / np.where(finite, scales, 1.0), 0.0)     # exact: powers of two
    return scaled, finite


@pytest.mark.parametrize("block, cols", [(16, 3000), (32, 5000), (2048, 5000), (3000, 7001)])
@pytest.mark.parametrize("dtype, rounding", [(np.float32, "rne"), (np.float32, "rtz"), (np.float64, "rne"),
                                             (np.float64, "stochastic")])
def test_pow2_blocks_match_elementwise_encode(block, cols, dtype, rounding):
    fmt = BlockFormat(f"e4m3x{block}", "e4m3", (block,), "e8m0", "floor")
    x = _wide(3, cols, dtype)
    seed = 3 if rounding == "stochastic" else None
    q = block_quantize(x, fmt, rounding=rounding, seed=seed, num_threads=2)
    scaled, finite = _pow2_oracle(x.astype(np.float64), q)
    want = qsim.encode(scaled.astype(dtype), "e4m3", rounding=rounding, saturate=True, seed=seed)
    want = np.where(finite, want, 0)
    np.testing.assert_array_equal(q.elements, want)


@pytest.mark.parametrize("cols", [16 * 70, 5000])
def test_nvfp4_matches_float32_recipe(cols):
    """NVFP4 elements: encode(float32(x) * float32(float32(1 / tensor scale) / block scale))."""
    x = _wide(4, cols, np.float32)
    x[0, 7] = 0.5
    q = block_quantize(x, "nvfp4", num_threads=2)
    s = np.repeat(q.scale_values().astype(np.float32), 16, axis=-1)[:, :cols]
    r = np.float32(1.0 / np.float64(q.tensor_scale)) / s
    want = qsim.encode(x * r, "fp4_e2m1", saturate=True)
    np.testing.assert_array_equal(q.elements, want)


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4", "mxfp8_e4m3", "mxint8", "fp8_block_1x128"])
def test_float32_decode_is_the_float64_decode_rounded_once(name):
    x = _wide(5, 3000, np.float32)
    q = block_quantize(x, name)
    f64 = q.decode(np.float64)
    f32 = q.decode(np.float32)
    np.testing.assert_array_equal(f32.view(np.uint32), f64.astype(np.float32).view(np.uint32))
