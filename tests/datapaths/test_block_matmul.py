"""block_matmul: products of any block-scaled operands (OCP MX, NVFP4, FP8 block scaling),
held to a scalar reference written from the rule: per block, the exact sum of element products;
power-of-two scales applied exactly and the result rounded once to FP32, other scales as the
FP32 block sum times the FP32 product of the two scales; blocks summed in FP32 in order; the
tensor scales' FP32 product last."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from qsim import decode
from qsim.datapaths import block_matmul, mx_matmul
from qsim.formats.block import block_format
from qsim.quant.blocks import block_quantize
from qsim.quant.mx import mx_quantize


def _scale(q, row: int, block: int) -> float:
    """The scale of one block of row `row`, read from the documented layout of q.scales."""
    fmt = q.format
    if len(fmt.block) == 2:
        code = q.scales[row // fmt.block[0], block]
    else:
        code = q.scales[row, block]
    if fmt.scale_format == "e8m0":
        return float("nan") if code == 255 else 2.0 ** (int(code) - 127)
    if fmt.scale_format == "fp32":
        return float(np.uint32(code).view(np.float32))
    return float(decode(np.uint8(code), fmt.scale, dtype=np.float64))


def _element(q, row: int, col: int) -> Fraction:
    code = int(np.asarray(q.elements)[row, col])
    if q.format.int_fraction_bits:                     # MXINT8: two's complement code x 2^-6
        return Fraction(code - 256 if code >= 128 else code, 1 << q.format.int_fraction_bits)
    return Fraction(float(decode(np.asarray(code), q.format.element, dtype=np.float64)))


def reference(qa, qb) -> np.ndarray:
    """qa: (M, K) blocked along K; qb: B transposed (N, K). One output at a time, exact fractions."""
    m, k = qa.elements.shape
    n = qb.elements.shape[0]
    bs = qa.format.block[-1]
    out = np.zeros((m, n), np.float32)
    for i in range(m):
        for j in range(n):
            acc = None
            for b0 in range(0, k, bs):
                s = sum(_element(qa, i, c) * _element(qb, j, c) for c in range(b0, min(b0 + bs, k)))
                sa, sb = _scale(qa, i, b0 // bs), _scale(qb, j, b0 // bs)
                if np.isnan(sa) or np.isnan(sb):
                    v = np.float32(np.nan)
                elif Fraction(sa * sb).denominator & (Fraction(sa * sb).denominator - 1) == 0 and \
                        Fraction(sa * sb).numerator & (Fraction(sa * sb).numerator - 1) == 0:
                    v = np.float32(float(s * Fraction(sa) * Fraction(sb)))        # power of two: one rounding
                else:
                    v = np.float32(np.float32(float(s)) * np.float32(sa * sb))
                acc = v if acc is None else np.float32(acc + v)
            ts = np.float32(qa.tensor_scale or 1.0) * np.float32(qb.tensor_scale or 1.0)
            out[i, j] = np.float32(acc * ts) if (qa.tensor_scale or qb.tensor_scale) else acc
    return out


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp4", "mxfp6_e2m3", "mxint8", "nvfp4", "fp8_block_1x128",
                                  "fp8_block_1x128_pow2"])
def test_block_products_equal_the_scalar_reference(name):
    fmt = block_format(name)
    bs = fmt.block[-1]
    rng = np.random.default_rng(7)
    m, n, k = 3, 4, 2 * bs + bs // 2                       # two full blocks and a partial one
    a = (rng.normal(0, 1, (m, k)) * 2.0 ** rng.integers(-6, 6, (m, 1))).astype(np.float32)
    b = (rng.normal(0, 1, (n, k)) * 2.0 ** rng.integers(-6, 6, (n, 1))).astype(np.float32)
    qa, qb = block_quantize(a, fmt, axis=-1), block_quantize(b, fmt, axis=-1)
    got = block_matmul(qa, qb).astype(np.float32)
    assert got.view(np.uint32).tolist() == reference(qa, qb).view(np.uint32).tolist()


def test_two_dimensional_weight_tiles():
    """DeepSeek-V3's recipe: activations in 1x128 tiles, weights (B transposed, N x K) in 128x128."""
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (2, 256)).astype(np.float32)
    bt = (rng.normal(0, 1, (130, 256)) * np.where(np.arange(130) < 128, 1.0, 300.0)[:, None]).astype(np.float32)
    qa, qb = block_quantize(a, "fp8_block_1x128", axis=-1), block_quantize(bt, "fp8_block_128x128", axis=-1)
    got = block_matmul(qa, qb).astype(np.float32)
    cols = [0, 1, 127, 128, 129]                          # both tiles of N
    sub = type(qb)(qb.elements[cols], qb.scales[[0, 0, 0, 1, 1]], None, block_format("fp8_block_1x128"), 1)
    assert got[:, cols].view(np.uint32).tolist() == reference(qa, sub).view(np.uint32).tolist()


def test_mx_matmul_is_block_matmul_of_the_same_blocks():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, (5, 70)).astype(np.float32), rng.normal(0, 1, (70, 3)).astype(np.float32)
    ma, mb = mx_quantize(a, "e4m3", axis=1), mx_quantize(b, "e4m3", axis=0)
    qa, qbt = block_quantize(a, "mxfp8_e4m3", axis=-1), block_quantize(np.ascontiguousarray(b.T), "mxfp8_e4m3", axis=-1)
    assert np.array_equal(mx_matmul(ma, mb), block_matmul(qa, qbt))


def test_nan_scale_and_fp32_overflow():
    rng = np.random.default_rng(2)
    qa = block_quantize(rng.normal(0, 1, (2, 64)).astype(np.float32), "mxfp8_e4m3", axis=-1)
    qb = block_quantize(rng.normal(0, 1, (2, 64)).astype(np.float32), "mxfp8_e4m3", axis=-1)
    qa.scales[0, 1] = 255                                  # NaN scale: the whole row's outputs
    qa.scales[1, 0] = qb.scales[1, 0] = 254                # 2^127 * 2^127: beyond FP32
    got = block_matmul(qa, qb)
    assert np.isnan(got[0]).all() and np.isinf(got[1, 1])
    qa.scales[1, 0] = qb.scales[1, 0] = 1                  # 2^-126 * 2^-126: far below FP32, the block adds 0
    qa.scales[0, 1] = qa.scales[1, 1]
    assert np.isfinite(block_matmul(qa, qb)).all()


def test_refusals_name_the_problem():
    x = np.ones((2, 64), np.float32)
    with pytest.raises(ValueError, match="block lengths along K differ"):
        block_matmul(block_quantize(x, "nvfp4"), block_quantize(x, "mxfp4"))
    with pytest.raises(ValueError, match="need more than 53 bits"):
        block_matmul(block_quantize(x, "mxfp8_e5m2"), block_quantize(x, "mxfp8_e5m2"))
    with pytest.raises(ValueError, match="blocks along its last axis"):
        block_matmul(block_quantize(x, "mxfp4", axis=0), block_quantize(x, "mxfp4"))
    with pytest.raises(TypeError, match="must be a BlockArray"):
        block_matmul(x, block_quantize(x, "mxfp4"))
