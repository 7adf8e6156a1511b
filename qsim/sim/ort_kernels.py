"""ONNX Runtime's CPU kernels (x86-64, MLAS) as qsim computes them, bit for bit.

Each function takes numpy arrays and returns what the ORT kernel of that name returns. The
integer GEMMs and their requantization go through qsim's datapath primitives with an
IntDatapath (default "onnxruntime-x86"); the float kernels reproduce MLAS's order of
operations (which products fuse into FMAs, how sums are blocked and reduced), measured
against onnxruntime in tests/test_onnx_quant.py. Single-threaded ORT sessions are the model:
ORT's own float GEMM splits its work by thread and can change the last bit with the count.
"""

from __future__ import annotations

import numpy as np

from .._kernels import _mlas
from .._threads import resolve_threads
from ..datapaths.requant import fma_float32

F32 = np.float32

# -- float32 GEMM (MLAS SGEMM) --------------------------------------------------------------------
SGEMM_STRIDE_N, SGEMM_STRIDE_K = 128, 128     # MLAS_SGEMM_STRIDEN / STRIDEK: one packed panel of B
PACKED_STRIDE_K = 256                         # MLAS_SGEMM_PACKED_STRIDEK: B packed ahead (a constant)


def sgemm_block_k(m: int, n: int, k: int, trans_a: bool) -> int:
    """MLAS's K slice for an unpacked B: K is split when N is large, widened when N is small."""
    stride_n, stride_k = SGEMM_STRIDE_N, SGEMM_STRIDE_K
    if n >= k:
        while stride_k // 2 >= k:
            stride_n, stride_k = stride_n * 2, stride_k // 2
    elif not trans_a:
        while stride_n > 16 and stride_n // 2 >= n:
            stride_n, stride_k = stride_n // 2, stride_k * 2
    return stride_k


def sgemm(a, b, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0, c=None,
          packed_b: bool = False) -> np.ndarray:
    """MlasGemm: alpha * op(a) @ op(b) (+ c, beta = 1) in float32, batched over leading axes.

    a: (..., M, K) and b: (..., K, N) as the product sees them; trans_a / trans_b say how they
    were stored, which picks MLAS's kernel (M = 1 and N = 1 have their own); packed_b: b is a
    constant ORT packed ahead of time. c broadcasts to the output (Gemm's bias)."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    out = np.zeros(batch + (m, n), F32)
    if c is not None:
        out[...] = c
    a3 = np.ascontiguousarray(np.broadcast_to(a, batch + (m, k)).reshape(-1, m, k))
    b3 = np.ascontiguousarray(np.broadcast_to(b, batch + (k, n)).reshape(-1, k, n))
    o3 = out.reshape(-1, m, n)
    if not packed_b and alpha == 1.0 and m == 1 and not trans_a:
        row = a3[:, 0, :]
        o3[:, 0, :] = (_m1_transposed(row, np.swapaxes(b3, 1, 2), o3[:, 0, :], c is None) if trans_b
                       else _m1(row, b3, o3[:, 0, :], c is None))
    elif not packed_b and alpha == 1.0 and n == 1 and (not trans_b or k == 1):
        # B and C are contiguous columns: MLAS swaps the operands into its M = 1 kernels
        col = b3[:, :, 0]
        o3[:, :, 0] = (_m1(col, np.swapaxes(a3, 1, 2), o3[:, :, 0], c is None) if trans_a
                       else _m1_transposed(col, a3, o3[:, :, 0], c is None))
    else:
        block = PACKED_STRIDE_K if packed_b else sgemm_block_k(m, n, k, trans_a)
        _mlas.fma_chain(a3, b3, o3, block, F32(alpha), c is None, resolve_threads(None, o3.size * k))
    return out


def _m1(a, b, c, zero):
    """MlasSgemmKernelM1Avx, one row a (B, K) times b (B, K, N): rows of b four at a time,
    ((a0 b0 + a1 b1) + a2 b2) + a3 b3 with separate roundings, each group then added to the
    output; two, then one, remaining rows likewise."""
    out = np.zeros(c.shape, F32) if zero else c.copy()
    k, first = a.shape[1], True
    for k0, size in _groups(k, (4, 2, 1)):
        s = a[:, k0, None] * b[:, k0, :]
        for j in range(1, size):
            s = s + a[:, k0 + j, None] * b[:, k0 + j, :]
        out = s + (F32(0) if zero and first else out)
        first = False
    return out


def _groups(k: int, sizes: tuple) -> list:
    """(start, size) of MLAS's row groups: the largest size while it fits, then each smaller
    size at most once (the kernels test bit 2, then bit 1, of what is left)."""
    out, k0, big = [], 0, sizes[0]
    while k - k0 >= big:
        out.append((k0, big))
        k0 += big
    for size in sizes[1:]:
        if (k - k0) & size:
            out.append((k0, size))
            k0 += size
    return out


def _m1_transposed(a, bt, c, zero):
    """MlasSgemmKernelM1TransposeBAvx: each output a dot product of a (B, K) with a row of
    bt (B, N, K) in eight lanes (lane j sums k = j mod 8, product then add), reduced by a
    tree that depends on whether the output is in a group of four, two or one."""
    nb, n, k = bt.shape
    lanes = np.zeros((nb, n, 8), F32)
    for k0 in range(0, k, 8):
        part = np.zeros((nb, n, 8), F32)       # masked loads past K read +0 (and add it)
        w = min(8, k - k0)
        part[..., :w] = a[:, None, k0:k0 + w] * bt[:, :, k0:k0 + w]
        lanes = lanes + part
    L = [lanes[..., j] for j in range(8)]
    four = (((L[0] + L[1]) + L[2]) + L[3]) + (((L[4] + L[5]) + L[6]) + L[7])
    two = ((L[0] + L[2]) + (L[4] + L[6])) + ((L[1] + L[3]) + (L[5] + L[7]))
    one = ((L[0] + L[1]) + (L[2] + L[3])) + ((L[4] + L[5]) + (L[6] + L[7]))
    dot = np.empty((nb, n), F32)
    for n0, size in _groups(n, (4, 2, 1)):
        dot[:, n0:n0 + size] = {4: four, 2: two, 1: one}[size][:, n0:n0 + size]
    return dot + (np.zeros(c.shape, F32) if zero else c)


# -- QuantizeLinear / DequantizeLinear ----------------------------------------------------------------
def _params_along(p: np.ndarray, x_shape: tuple, axis: int | None, block: int | None) -> np.ndarray:
    """A scale or zero point broadcast against x: one per tensor, per axis, or per block."""
    if axis is None:
        return p.reshape(())
    if block:
        return np.repeat(p, block, axis=axis).take(range(x_shape[axis]), axis=axis)
    shape = [1] * len(x_shape)
    shape[axis] = -1
    return p.reshape(shape)


def quantize_linear(x, scale, zero, fmt, axis: int | None = None, block: int | None = None,
                    saturate: bool = True) -> np.ndarray:
    """QuantizeLinear: integer formats saturate(rne(x / scale) + zero) with a true float32
    division (qsim's integer quantizer), NaN to the lowest code as ORT has it; float8 formats
    encode(x / scale) with `saturate` (qsim's codec; the zero point is 0 by the spec). Returns
    the integer codes (int8/uint8/int16/uint16 containers) or float8 codes (uint8)."""
    from ..codec import encode
    from ..formats import FloatFormat
    from ..quant.intquant import quantize_int
    x = np.asarray(x, F32)
    if not isinstance(fmt, FloatFormat):
        x = np.where(np.isnan(x), F32(-np.inf), x)
        return quantize_int(x, fmt, np.asarray(scale, F32), np.asarray(zero, np.int64), axis, block)
    s = _params_along(np.asarray(scale, F32), x.shape, axis, block)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return encode(x / s, fmt, saturate=saturate)


def dequantize_linear(q, scale, zero, fmt=None, axis: int | None = None, block: int | None = None) -> np.ndarray:
    """DequantizeLinear: float32(q - zero) * scale in float32; fmt a float8 FloatFormat for
    float8 codes (value(q) * scale), else q holds integers (int32 included)."""
    from ..codec import decode
    from ..formats import FloatFormat
    from ..quant.intquant import dequantize_int
    if not isinstance(fmt, FloatFormat):
        return dequantize_int(np.asarray(q), np.asarray(scale, F32), np.asarray(zero, np.int64), axis, block)
    s = _params_along(np.asarray(scale, F32), np.shape(q), axis, block)
    return (decode(np.asarray(q), fmt, dtype=F32) * s).astype(F32)


def dynamic_quantize_linear(x) -> tuple[np.ndarray, np.float32, np.uint8]:
    """DynamicQuantizeLinear (uint8): the range widened to hold 0, scale = (max - min) / 255,
    zero = rne(clamp(0 - min / scale)), then QuantizeLinear."""
    x = np.asarray(x, F32)
    lo = min(F32(x.min()), F32(0)) if x.size else F32(0)
    hi = max(F32(x.max()), F32(0)) if x.size else F32(0)
    scale = F32(1) if hi == lo else F32((hi - lo) / F32(255))
    zero = np.rint(np.clip(F32(0) - lo / scale, F32(0), F32(255)))
    from ..formats import format as get_format
    return quantize_linear(x, scale, int(zero), get_format("uint8")), scale, np.uint8(zero)


# -- integer accumulators to float --------------------------------------------------------------------
def product_scale(a_scale, b_scale) -> np.ndarray:
    """float32(a_scale * b_scale), per tensor or per column."""
    return (F32(np.asarray(a_scale, F32).reshape(())) * np.asarray(b_scale, F32)).astype(F32)


def scale_output(acc, scale, bias=None) -> np.ndarray:
    """MLAS's scale-bias output processor: float32(acc) * scale, then + bias (two roundings)."""
    y = np.asarray(acc).astype(F32) * np.asarray(scale, F32)
    return (y if bias is None else y + np.asarray(bias, F32)).astype(F32)


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


# -- pooling (MLAS pooling.cpp) ----------------------------------------------------------------------------
def _reduce_add4(lanes: np.ndarray) -> np.ndarray:
    """MlasReduceAddFloat32x4 over the last axis of 4 lanes: (l0 + l2) + (l1 + l3)."""
    return ((lanes[..., 0] + lanes[..., 2]) + (lanes[..., 1] + lanes[..., 3])).astype(F32)


def global_average_pool(x) -> np.ndarray:
    """MlasPoolGlobalKernel (average) per (N, C): four lanes summed in vector steps, reduced,
    the leftover elements added in order, then divided by the count."""
    x = np.asarray(x, F32)
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    size = flat.shape[-1]
    body = size // 4 * 4
    lanes = np.zeros(flat.shape[:2] + (4,), F32)
    for i in range(0, body, 4):
        lanes = lanes + flat[..., i:i + 4]
    total = _reduce_add4(lanes)
    for i in range(body, size):
        total = total + flat[..., i]
    y = (total / F32(size)).astype(F32)
    return y.reshape(x.shape[:2] + (1,) * (x.ndim - 2))


def pool_windows(x_shape, kernel, strides, pads):
    """Per spatial axis: (start, end) of each output window clipped to the input (MLAS's
    generic kernels), and the output sizes. ceil_mode is not modelled."""
    out = []
    for size, k, s, lo, hi in zip(x_shape[2:], kernel, strides, pads[:len(kernel)], pads[len(kernel):]):
        n = (size + lo + hi - k) // s + 1
        starts = np.arange(n) * s - lo
        out.append((np.maximum(starts, 0), np.minimum(starts + k, size)))
    return out


def average_pool(x, kernel, strides, pads, count_include_pad: bool) -> np.ndarray:
    """MlasPool average pooling. 2-D with a last stride <= 2 and kernels <= 32 (the vector
    kernel): rows summed first (each window's rows from the top), then the column sums
    across the window with the zero padding added in; otherwise (the generic kernels) every
    window summed in row-major order from 0. Divided by the window's size (with or without
    the padding)."""
    x = np.asarray(x, F32)
    dims = x.ndim - 2
    kernel, strides, pads = tuple(kernel), tuple(strides), tuple(pads)
    windows = pool_windows(x.shape, kernel, strides, pads)
    if dims == 2 and strides[1] <= 2 and max(kernel) <= 32:
        return _average_pool_2d_vector(x, kernel, strides, pads, count_include_pad, windows)
    out_shape = tuple(len(w[0]) for w in windows)
    y = np.empty(x.shape[:2] + out_shape, F32)
    for index in np.ndindex(*out_shape):
        spans = [range(windows[d][0][i], windows[d][1][i]) for d, i in enumerate(index)]
        total = np.zeros(x.shape[:2], F32)
        count = 1
        for d in range(dims):
            count *= len(spans[d])
        for point in np.ndindex(*[len(s) for s in spans]):
            total = total + x[(slice(None), slice(None)) + tuple(spans[d][p] for d, p in enumerate(point))]
        y[(slice(None), slice(None)) + index] = total / F32(int(np.prod(kernel)) if count_include_pad else count)
    return y


def _average_pool_2d_vector(x, kernel, strides, pads, include_pad, windows):
    n, c, h, w = x.shape
    (rs, re), (cs, ce) = windows
    kw, sw = kernel[1], strides[1]
    left = pads[1]
    y = np.empty((n, c, len(rs), len(cs)), F32)
    cols = np.arange(len(cs)) * sw            # window start in the padded reduction buffer
    for r, (r0, r1) in enumerate(zip(rs, re)):
        rowsum = x[:, :, r0]
        for i in range(r0 + 1, r1):
            rowsum = rowsum + x[:, :, i]
        buf = np.zeros((n, c, left + w + pads[3] + kw), F32)          # padding holds +0
        buf[..., left:left + w] = rowsum
        total = buf[..., cols]
        for j in range(1, kw):
            total = total + buf[..., cols + j]
        if include_pad:
            divisor = F32(kernel[0] * kernel[1])
        else:                                     # MLAS computes the valid column count in float
            divisor = np.maximum(((ce - cs) * (r1 - r0)).astype(F32), F32(1))
        y[:, :, r] = total / divisor
    return y


# -- float convolution (MLAS convolve.cpp) ----------------------------------------------------------------
def conv(x, w, bias, stride, padding, dilation, groups: int) -> np.ndarray:
    """MlasConv, one thread: per image and group the filter (M x K, K = channels x taps) times
    the patches (K x pixels) in MLAS's SGEMM order, then the bias added. A pointwise conv
    multiplies the input directly; when M <= pixels (the segmented algorithm) K is cut into
    slices each its own SGEMM into the output (which M = 1's kernel sees)."""
    from ..datapaths.conv import conv_geometry, im2col
    x, w = np.asarray(x, F32), np.asarray(w, F32)
    stride, pads, dilation, out_shape = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    n, c_in = x.shape[:2]
    c_out, kernel = w.shape[0], w.shape[2:]
    g_in, g_out = c_in // groups, c_out // groups
    pixels, taps = int(np.prod(out_shape)), int(np.prod(kernel))
    cols = im2col(x, kernel, 0, stride, pads, dilation, out_shape)            # N, C, *out, *k
    cols = cols.reshape((n, groups, g_in, pixels) + tuple(kernel))
    cols = np.moveaxis(cols, 3, -1).reshape(n, groups, g_in * taps, pixels)   # N, G, K, pixels
    wk = w.reshape(1, groups, g_out, g_in * taps)                             # G, M, K
    k = g_in * taps
    pointwise = taps == 1 and all(s == 1 for s in stride) and not any(pads)
    if pointwise or g_out > pixels:
        y = sgemm(wk, cols)
    else:
        block, y = sgemm_block_k(g_out, pixels, k, False), None
        for k0 in range(0, k, block):
            y = sgemm(wk[..., k0:k0 + block], cols[:, :, k0:k0 + block], c=y)
    y = y.reshape((n, c_out) + tuple(out_shape))
    if bias is not None:
        y = (y + np.asarray(bias, F32).reshape((1, c_out) + (1,) * len(kernel))).astype(F32)
    return y


# -- quantized elementwise operators (com.microsoft) -----------------------------------------------------
def _pack_saturate(r: np.ndarray, fmt) -> np.ndarray:
    """CVTPS2DQ results packed to 8 bits as SSE does: saturate to int16, then to the type."""
    return np.clip(np.clip(r, -32768, 32767), fmt.qmin, fmt.qmax)


def _cvtps2dq(v: np.ndarray) -> np.ndarray:
    ok = np.isfinite(v) & (np.abs(v) < F32(2.0 ** 31))
    return np.where(ok, np.rint(np.where(ok, v, 0)), -2.0 ** 31).astype(np.int64)


def broadcast_span(a_shape, b_shape) -> str:
    """Which operand ORT's broadcast loop holds constant over each innermost span: "a" or "b"
    (that operand is a scalar per span), or "" (both vary element by element)."""
    out = np.broadcast_shapes(a_shape, b_shape)
    if int(np.prod(a_shape)) == 1:
        return "a"
    if int(np.prod(b_shape)) == 1:
        return "b"
    a = (1,) * (len(out) - len(a_shape)) + tuple(a_shape)
    b = (1,) * (len(out) - len(b_shape)) + tuple(b_shape)
    for d in reversed(range(len(out))):          # the innermost axis that is not 1
        if out[d] != 1:
            return "a" if a[d] == 1 else "b" if b[d] == 1 else ""
    return ""


def qlinear_add(a, sa, za, b, sb, zb, sc, zc, fmt) -> np.ndarray:
    """MlasQLinearAdd (AVX2): ratios ra = sa / sc, rb = sb / sc; fixed = zc - (ra za + rb zb);
    y = rne(fma(a, ra, fma(b, rb, fixed))); an operand constant over the broadcast span folds
    into the fixed part (fixed + a0 ra). Saturated through int16 to the type."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    span = broadcast_span(a.shape, b.shape)
    ra, rb = F32(F32(sa) / F32(sc)), F32(F32(sb) / F32(sc))
    fixed = F32(F32(zc) - _fma(ra, F32(za), F32(rb * F32(zb))))
    a, b = np.broadcast_arrays(a.astype(F32), b.astype(F32))
    with np.errstate(invalid="ignore", over="ignore"):
        if span == "a":
            v = _fma(b, rb, (fixed + (a * ra).astype(F32)).astype(F32))
        elif span == "b":
            v = _fma(a, ra, (fixed + (b * rb).astype(F32)).astype(F32))
        else:
            v = _fma(a, ra, _fma(b, rb, fixed))
    return _pack_saturate(_cvtps2dq(np.asarray(v, F32)), fmt)


def qlinear_mul(a, sa, za, b, sb, zb, sc, zc, fmt) -> np.ndarray:
    """MlasQLinearMul (SSE2): the exact product (a - za)(b - zb) to float32, times
    float32(float32(sa sb) / sc), plus zc (two roundings), CVTPS2DQ, saturated through int16."""
    prod = (np.asarray(a, np.int64) - int(za)) * (np.asarray(b, np.int64) - int(zb))
    ratio = F32(F32(F32(sa) * F32(sb)) / F32(sc))
    v = (prod.astype(F32) * ratio).astype(F32) + F32(zc)
    return _pack_saturate(_cvtps2dq(v.astype(F32)), fmt)


def lookup_table(fn, sx, zx, sy, zy, fmt) -> np.ndarray:
    """ORT's QLinear lookup table: for each of the 256 codes x, quantize(fn(sx * (x - zx)))."""
    from ..quant.intquant import quantize_int
    codes = np.arange(256, dtype=np.int64)
    if fmt.signed:
        codes = np.where(codes >= 128, codes - 256, codes)
    x = (F32(sx) * (codes - int(zx)).astype(F32)).astype(F32)
    y = np.asarray(fn(x), F32)
    return quantize_int(np.where(np.isnan(y), F32(-np.inf), y), fmt, F32(sy), int(zy)).astype(np.int64)


def apply_table(table, x) -> np.ndarray:
    return table[np.asarray(x).astype(np.int64) & 0xFF]


def qlinear_average_pool(x, sx, zx, sy, zy, fmt, kernel, strides, pads, count_include_pad) -> np.ndarray:
    """QLinearAveragePool: dequantized to float32, each window summed from 0 in row-major order,
    divided by its size, then rne(y / sy + zy) clamped. A kernel covering the whole unpadded
    input is the integer global average pool."""
    x = np.asarray(x, np.int64)
    if tuple(kernel) == x.shape[2:] and not any(pads):
        return qlinear_global_average_pool(x, sx, zx, sy, zy, fmt)
    xf = (F32(sx) * (x - int(zx)).astype(F32)).astype(F32)
    windows = pool_windows(x.shape, kernel, strides, pads)
    out_shape = tuple(len(w[0]) for w in windows)
    y = np.empty(x.shape[:2] + out_shape, np.int64)
    for index in np.ndindex(*out_shape):
        spans = [range(windows[d][0][i], windows[d][1][i]) for d, i in enumerate(index)]
        total = np.zeros(x.shape[:2], F32)
        for point in np.ndindex(*[len(s) for s in spans]):
            total = (total + xf[(slice(None), slice(None)) + tuple(spans[d][p] for d, p in enumerate(point))]).astype(F32)
        count = int(np.prod(kernel)) if count_include_pad else int(np.prod([len(s) for s in spans]))
        mean = (total / F32(count)).astype(F32)
        q = np.rint(((mean / F32(sy)).astype(F32) + F32(zy)).astype(F32))
        y[(slice(None), slice(None)) + index] = np.clip(_cvtps2dq(q), fmt.qmin, fmt.qmax)
    return y


def global_pool_scale(sx, sy, size: int) -> np.float32:
    """MLAS's QLinearGlobalAveragePool scale sx / (sy * size), in float32; refused outside
    [2^-32, 256) as MLAS refuses it."""
    scale = F32(F32(sx) / F32(F32(sy) * F32(size)))
    if not (F32(2.0 ** -32) <= scale < F32(256)) or size >= 1 << 24:
        raise ValueError("QLinearGlobalAveragePool parameter out of computation range (ORT refuses it too)")
    return scale


def qlinear_global_average_pool(x, sx, zx, sy, zy, fmt, datapath=None) -> np.ndarray:
    """MlasQLinearGlobalAveragePool: the exact integer sum minus zx * size, requantized by
    scale = sx / (sy * size) as MLAS's output stage does (float32(acc) * scale, clamped, rne)."""
    from ..datapaths.integer import get_datapath
    from ..datapaths.requant import requantize
    x = np.asarray(x, np.int64)
    size = int(np.prod(x.shape[2:]))
    acc = x.reshape(x.shape[0], x.shape[1], -1).sum(axis=-1) - int(zx) * size
    path = get_datapath("onnxruntime-x86" if datapath is None else datapath)
    y = requantize(acc, global_pool_scale(sx, sy, size), F32(1), F32(1), int(zy), fmt.qmin, fmt.qmax, path.requant)
    return y.reshape(x.shape[:2] + (1,) * (x.ndim - 2))


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


def layer_norm(x, scale, bias, epsilon, simplified: bool = False) -> np.ndarray:
    """ORT's LayerNormalization, measured on onnxruntime 1.32. Rows of 8 or more run MLAS's
    centered two-pass AVX2 kernel: mean = float32(sum / n) with the sum in double; d = x - mean;
    the squares summed by FMA in 8 float32 lanes, reduced ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)),
    a 4-element tail added as rounded squares, the last few by FMA; inv = 1 / sqrt(sum / n + eps);
    y = fma(d * inv, scale, bias). Shorter rows run the scalar Welford loop (welford_norm)."""
    x = np.asarray(x, F32)
    n = x.shape[-1]
    if n < 8:
        return welford_norm(x, scale, bias, epsilon, simplified)
    body = n // 8 * 8
    mean = np.zeros(x.shape[:-1], F32) if simplified else \
        (np.add.accumulate(x.astype(np.float64), axis=-1)[..., -1] / n).astype(F32)
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


def welford_norm(x, scale, bias, epsilon, simplified: bool = False) -> np.ndarray:
    """ORT's scalar layer normalization (SkipLayerNormalization; LayerNormalization rows under
    8): Welford's running mean (+ (x - mean) / (h + 1)) and sum of squared deviations in
    float32, sd = sqrt(m2 / n + eps), y = ((x - mean) / sd) * scale + bias."""
    x = np.asarray(x, F32)
    n = x.shape[-1]
    mean = np.zeros(x.shape[:-1], F32)
    m2 = np.zeros(x.shape[:-1], F32)
    for h in range(n):
        v = x[..., h]
        if simplified:
            m2 = (m2 + (v * v).astype(F32)).astype(F32)
            continue
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
