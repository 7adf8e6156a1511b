"""The numpy statement of ONNX Runtime's float kernels on x86-64 (MLAS), step by step.

These are the readable references: tests hold them to onnxruntime's outputs and the compiled
kernels (cython_src/_mlas.pyx, called from ort_kernels.py) to them. The constants are MLAS's,
as float32; the kernels read them from here.
"""

from __future__ import annotations

import numpy as np

from ..datapaths.requant import fma_float32

F32 = np.float32


# -- elementwise functions (MLAS's FMA3 kernels, lane by lane) ------------------------------------------
def _fma(a, b, c):
    return fma_float32(a, b, c)


# Coefficients as MLAS (logistic.cpp, after Eigen) has them, as float32.
_LOGISTIC_ALPHA = [F32(v) for v in (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05,
                                    8.51377133304701e-03, 2.48287947061529e-01)]
_LOGISTIC_BETA = [F32(v) for v in (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
                                   1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01)]


def logistic(x) -> np.ndarray:
    """MlasLogisticKernelFma3: x clamped to [-18, 18], a rational function p(x) / q(x) in
    Horner form with FMAs, + 0.5, then max(0, .)."""
    x = np.asarray(x, F32)
    with np.errstate(invalid="ignore"):
        v = np.where(np.isnan(x), x, np.minimum(F32(18), np.maximum(F32(-18), x)))
        v2 = (v * v).astype(F32)
        p = _fma(v2, _LOGISTIC_ALPHA[0], _LOGISTIC_ALPHA[1])
        for c in _LOGISTIC_ALPHA[2:]:
            p = _fma(v2, p, c)
        q = _fma(v2, _LOGISTIC_BETA[0], _LOGISTIC_BETA[1])
        for c in _LOGISTIC_BETA[2:]:
            q = _fma(v2, q, c)
        r = ((v * p).astype(F32) / q).astype(F32) + F32(0.5)
        return np.where(np.isnan(r), r, np.maximum(F32(0), r)).astype(F32)


_ERF_SMALL = [F32(v) for v in (-5.99104969e-4, 4.99339588e-3, -2.67667342e-2, 1.12818025e-1, -3.76124859e-1,
                               1.28379151e-1)]
_ERF_BIG = [F32(v) for v in (1.72948930e-5, -3.83208680e-4, 3.88393435e-3, -2.42545605e-2, 1.06777847e-1,
                             6.34846687e-1, 1.28717512e-1)]
_EXP_POLY = [F32(v) for v in (1.38319808e-3, 8.37550033e-3, 4.16689515e-2, 1.66664466e-1, 4.99999851e-1, 1.0, 1.0)]
_EXP_LOWER, _LOG2E, _EXP_C = F32(-88.3762626647949), F32(1.44269504088896341), F32(1.25829120e+7)
_LN2_HI, _LN2_LO = F32(-6.93145752e-1), F32(-1.42860677e-6)


def erf(x) -> np.ndarray:
    """MlasErfKernelFma3: |x| <= 0.921875 by an odd polynomial in x^2, above it 1 - exp(-p(|x|))
    with MLAS's own exp; |x| capped at 3.925 (NaN passes); the sign of x copied onto the result."""
    x = np.asarray(x, F32)
    bits = x.view(np.uint32)
    sign = bits & np.uint32(0x80000000)
    a = (bits & np.uint32(0x7FFFFFFF)).view(F32)
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.where(np.isnan(a), a, np.minimum(a, F32(3.925)))
        s = (a * a).astype(F32)
        small = np.full(a.shape, _ERF_SMALL[0], F32)
        for c in _ERF_SMALL[1:]:
            small = _fma(small, s, c)
        small = _fma(small, a, a)
        big_lane = F32(0.921875) <= a
        small = np.where(big_lane, F32(0), small)
        ab = np.where(big_lane, a, F32(0))
        big = np.full(a.shape, _ERF_BIG[0], F32)
        for c in _ERF_BIG[1:]:
            big = _fma(big, ab, c)
        big = -_fma(big, ab, ab)
        big = np.maximum(big, _EXP_LOWER)
        r = (_fma(_LOG2E, big, _EXP_C) - _EXP_C).astype(F32)
        f = _fma(r, _LN2_HI, big)
        f = _fma(r, _LN2_LO, f)
        y = np.full(a.shape, _EXP_POLY[0], F32)
        for c in _EXP_POLY[1:]:
            y = _fma(y, f, c)
        pow2 = ((r.astype(np.int32) + 127) << 23).astype(np.uint32).view(F32)
        y = (F32(1) - (y * pow2).astype(F32)).astype(F32)
    out = y.view(np.uint32) | small.view(np.uint32) | sign
    return out.view(F32)


# -- softmax and layer normalization -----------------------------------------------------------------------
# MlasExpConstants (compute.cpp) as float32
_EXP_LOW, _ROUND_BIAS = F32(-103.9720840454), F32(12582912.0)
_SUMEXP_POLY = [F32(float.fromhex(h)) for h in ("0x1.694000p-10", "0x1.125edcp-7", "0x1.555b5ap-5", "0x1.555450p-3",
                                                "0x1.fffff6p-2", "0x1.000000p+0", "0x1.000000p+0")]


def exp_scalef(v: np.ndarray) -> np.ndarray:
    """MLAS's AVX512F exp: clamp at -103.97, m = round(v / ln 2) by the rounding-bias trick,
    v - m ln2 in two FMAs, a degree-6 polynomial by FMAs, then VSCALEFPS (p * 2^m)."""
    v = np.where(np.isnan(v), v, np.maximum(_EXP_LOW, v)).astype(F32)
    m = (_fma(v, _LOG2E, _ROUND_BIAS) - _ROUND_BIAS).astype(F32)
    v = _fma(m, _LN2_HI, v)
    v = _fma(m, _LN2_LO, v)
    p = np.full(v.shape, _SUMEXP_POLY[0], F32)
    for c in _SUMEXP_POLY[1:]:
        p = _fma(p, v, c)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ldexp(p, np.nan_to_num(m).astype(np.int32)).astype(F32)


def softmax(x, axis: int = -1) -> np.ndarray:
    """MlasComputeSoftmax (AVX512F) along the last axis: e = exp(x - max) per element; the
    row sum in 16 lanes (lane j takes elements j mod 16 in order), reduced by adding the two
    halves and two horizontal adds; then e * (1 / sum)."""
    x = np.moveaxis(np.asarray(x, F32), axis, -1)
    e = exp_scalef((x + (-x.max(axis=-1, keepdims=True))).astype(F32))
    n = x.shape[-1]
    lanes = np.zeros(x.shape[:-1] + (16,), F32)
    for i in range(0, n, 16):
        w = min(16, n - i)
        lanes[..., :w] = (lanes[..., :w] + e[..., i:i + w]).astype(F32)
    s = (lanes[..., 8:] + lanes[..., :8]).astype(F32)
    total = (((s[..., 0] + s[..., 1]).astype(F32) + (s[..., 2] + s[..., 3]).astype(F32)).astype(F32)
             + ((s[..., 4] + s[..., 5]).astype(F32) + (s[..., 6] + s[..., 7]).astype(F32)).astype(F32)).astype(F32)
    y = (e * (F32(1) / total).astype(F32)[..., None]).astype(F32)
    return np.moveaxis(y, -1, axis)


def _hsum8(v: np.ndarray) -> np.ndarray:
    """An AVX 8-lane horizontal sum as MLAS writes it: ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))."""
    r = [(v[..., j] + v[..., j + 4]).astype(F32) for j in range(4)]
    return ((r[0] + r[2]).astype(F32) + (r[1] + r[3]).astype(F32)).astype(F32)


def layer_norm(x, scale, bias, epsilon) -> np.ndarray:
    """ORT's LayerNormalization, measured on onnxruntime 1.32. Rows of 8 or more run MLAS's
    centered two-pass AVX2 kernel: mean = float32(sum / n) with the sum in double; d = x - mean;
    the squares summed by FMA in 8 float32 lanes, reduced ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)),
    a 4-element tail added as rounded squares, the last few by FMA; inv = 1 / sqrt(sum / n + eps);
    y = fma(d * inv, scale, bias). Shorter rows run the scalar Welford loop (welford_norm)."""
    x = np.asarray(x, F32)
    n = x.shape[-1]
    if n < 8:
        return welford_norm(x, scale, bias, epsilon)
    body = n // 8 * 8
    mean = (np.add.accumulate(x.astype(np.float64), axis=-1)[..., -1] / n).astype(F32)
    d = (x - mean[..., None]).astype(F32)
    lanes = np.zeros(x.shape[:-1] + (8,), F32)
    for i in range(0, body, 8):
        lanes = _fma(d[..., i:i + 8], d[..., i:i + 8], lanes)
    total = _hsum8(lanes)
    i = body
    if n - i >= 4:
        for j in range(i, i + 4):
            total = (total + (d[..., j] * d[..., j]).astype(F32)).astype(F32)
        i += 4
    for j in range(i, n):
        total = _fma(d[..., j], d[..., j], total)
    inv = (F32(1) / np.sqrt(((total / F32(n)).astype(F32) + F32(epsilon)).astype(F32))).astype(F32)[..., None]
    y = (d * inv).astype(F32)
    if bias is None:
        return (y * np.asarray(scale, F32)).astype(F32)
    return _fma(y, np.asarray(scale, F32), np.asarray(bias, F32))


def welford_norm(x, scale, bias, epsilon) -> np.ndarray:
    """ORT's scalar layer normalization (SkipLayerNormalization; LayerNormalization rows under
    8): Welford's running mean (+ (x - mean) / (h + 1)) and sum of squared deviations in
    float32, sd = sqrt(m2 / n + eps), y = ((x - mean) / sd) * scale + bias."""
    x = np.asarray(x, F32)
    n = x.shape[-1]
    mean = np.zeros(x.shape[:-1], F32)
    m2 = np.zeros(x.shape[:-1], F32)
    for h in range(n):
        v = x[..., h]
        delta = (v - mean).astype(F32)
        mean = (mean + (delta / F32(h + 1)).astype(F32)).astype(F32)
        m2 = (m2 + (delta * (v - mean).astype(F32)).astype(F32)).astype(F32)
    sd = np.sqrt(((m2 / F32(n)).astype(F32) + F32(epsilon)).astype(F32)).astype(F32)[..., None]
    y = (((x - mean[..., None]).astype(F32) / sd).astype(F32) * np.asarray(scale, F32)).astype(F32)
    return y if bias is None else (y + np.asarray(bias, F32)).astype(F32)


_SQRT1_2 = F32(0.7071067811865476)


def gelu(x) -> np.ndarray:
    """ORT's Gelu (erf form): e = erf(x * float32(1/sqrt(2))) by MLAS, then (0.5 x)(e + 1)."""
    x = np.asarray(x, F32)
    with np.errstate(invalid="ignore", over="ignore"):
        e = erf((x * _SQRT1_2).astype(F32))
        return ((F32(0.5) * x).astype(F32) * (e + F32(1)).astype(F32)).astype(F32)
