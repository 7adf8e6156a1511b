"""ONNX Runtime's CPU kernels (x86-64, MLAS) as qsim computes them, bit for bit.

Each function takes numpy arrays and returns what the ORT kernel of that name returns. The
integer GEMMs and their requantization go through qsim's datapath primitives with an
IntDatapath (default "onnxruntime-x86"); the float kernels reproduce MLAS's order of
operations (which products fuse into FMAs, how sums are blocked and reduced), measured
against onnxruntime in tests/sim/test_onnx_quant.py. Single-threaded ORT sessions are the model:
ORT's own float GEMM splits its work by thread and can change the last bit with the count.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._kernels import _mlas
from .._threads import resolve_threads
from . import ort_reference as R
from .ort_reference import _fma

F32 = np.float32
# A multiply-accumulate costs a small fraction of an elementwise step: products spread over
# threads only when they are this many times larger than the elementwise threshold.
MACS_PER_ELEMENT = 64
CHUNKS_PER_THREAD = 8         # work handed out in this many pieces per thread, to whoever is free

_pool, _pool_size = None, 0


def _spread(task, items: int, work: int) -> None:
    """task(begin, end) over the work items [0, items), on resolve_threads(None, work) threads:
    the caller and pool workers take chunks as they become free, and a worker that has not
    started when the chunks run out is cancelled rather than awaited (on a busy machine it
    may not get a core for milliseconds, where an OpenMP team would wait for it). Items are
    independent and each computed the same way on any thread: the numbers never depend on
    the thread count."""
    global _pool, _pool_size
    threads = min(resolve_threads(None, work), items)
    if threads <= 1:
        task(0, items)
        return
    if _pool_size < threads - 1:
        from concurrent.futures import ThreadPoolExecutor
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool, _pool_size = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="qsim-ort"), threads - 1
    chunk = max(1, items // (threads * CHUNKS_PER_THREAD))
    starts = iter(range(0, items, chunk))          # next() holds the GIL: each chunk is taken once

    def work_off():
        for begin in starts:
            task(begin, min(begin + chunk, items))
    helpers = [_pool.submit(work_off) for _ in range(threads - 1)]
    work_off()
    for helper in helpers:
        if not helper.cancel():
            helper.result()


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
        _spread(lambda begin, end: _mlas.fma_chain(a3, b3, o3, block, F32(alpha), c is None, begin, end),
                _mlas.fma_chain_items(*o3.shape), o3.size * k // MACS_PER_ELEMENT)
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
        with np.errstate(over="ignore", invalid="ignore"):
            has_nan = np.isnan(x.sum(dtype=F32))      # any NaN makes the sum NaN (one fast pass)
        if has_nan:
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


# -- integer products ------------------------------------------------------------------------------------------
class PackedB(NamedTuple):
    """An 8-bit B (K, N) as the compiled products read it, with its column sums. With VNNI:
    int8 codes (uint8 ones less 128, the zero point moved by `shift` with them) in panels of
    32 columns, (N / 32, K / 4, 32, 4) rounded up with zeros; else the rows of B^T in B's own
    type."""
    data: np.ndarray
    sums: np.ndarray              # (N,) int64, of the codes in data
    shift: int                    # added to B's zero point


def pack_b(b) -> PackedB:
    b = np.asarray(b)
    k, n = b.shape
    if not _mlas.VNNI:
        bt = np.ascontiguousarray(b.T)
        return PackedB(bt, bt.sum(axis=1, dtype=np.int64), 0)
    shift = -128 if b.dtype == np.uint8 else 0
    codes = (b.astype(np.int16) + shift).astype(np.int8)
    groups, panels = (k + 3) // 4, (n + 31) // 32
    padded = np.zeros((groups * 4, panels * 32), np.int8)
    padded[:k, :n] = codes
    data = _aligned(padded.reshape(groups, 4, panels, 32).transpose(2, 0, 3, 1))
    return PackedB(data, codes.sum(axis=0, dtype=np.int64), shift)


def _aligned(x, alignment: int = 64) -> np.ndarray:
    """A C-contiguous copy of x starting on a cache line (64-byte loads then never straddle two)."""
    buffer = np.empty(x.nbytes + alignment, np.uint8)
    start = -buffer.ctypes.data % alignment
    out = buffer[start:start + x.nbytes].view(x.dtype).reshape(x.shape)
    out[...] = x
    return out


def _eight_bit_max(dtype) -> int | None:
    """The largest |code| of an 8-bit integer type; None for other types."""
    return {np.dtype(np.uint8): 255, np.dtype(np.int8): 128}.get(np.dtype(dtype))


def int_product(a, b, a_zero, b_zero, accumulator, packed: PackedB | None = None, dtype=np.int64) -> np.ndarray:
    """What qsim.datapaths.int_matmul(a, b, a_zero, b_zero, accumulator) returns, for a (..., K)
    and a 2-D b (K, N) (packed: pack_b(b), made once for a constant b), in dtype (int32 for
    an accumulator of at most 32 bits). 8-bit operands in an accumulator that wraps (or that no
    sum can overflow) take a compiled exact product (dot products of the raw codes, VNNI where
    compiled for it; zero points corrected after: the sum is exact, so fit(exact) is the
    accumulator's value); any other accumulator runs int_matmul's order-aware kernel."""
    from ..datapaths.accumulate import int_matmul
    a, b = np.asarray(a), np.asarray(b)
    k, n = a.shape[-1], b.shape[-1]
    amax, bmax = _eight_bit_max(a.dtype), _eight_bit_max(b.dtype)
    exact = 255 * 255 * k                          # |sum (a - za)(b - zb)| <= this
    if amax is None or bmax is None or b.ndim != 2 or 255 * 255 * k >= 1 << 31 or accumulator.pair_saturate16 \
            or (accumulator.overflow != "wrap" and exact > accumulator.hi):
        return int_matmul(a, b, a_zero, b_zero, accumulator).astype(dtype)
    packed = pack_b(b) if packed is None else packed
    a2 = np.ascontiguousarray(a.reshape(-1, k))
    za = int(np.asarray(a_zero).reshape(()))
    zb = np.ascontiguousarray(np.broadcast_to(np.asarray(b_zero, np.int64), (n,))) + packed.shift
    fits = exact <= accumulator.hi                 # then fit() is the identity
    out = np.empty((a2.shape[0], n), np.int32 if fits and exact < 1 << 31 and dtype == np.int32 else np.int64)
    if _mlas.VNNI:                                 # uint8 A: int8 codes move up by 128, their zero point too
        if a2.dtype == np.int8:
            a2, za = (a2.view(np.uint8) ^ np.uint8(0x80)), za + 128
        kernel = _mlas.int8_products_vnni
    else:
        kernel = _mlas.int8_products
    a_sums = np.empty(a2.shape[0], np.int64)
    _mlas.int8_row_sums(a2, a_sums)
    col = k * za * zb - za * packed.sums           # the zero-point terms of each column
    _spread(lambda begin, end: kernel(a2, packed.data, zb, col, a_sums, out, begin, end),
            _mlas.int8_products_items(*out.shape), out.size * k // MACS_PER_ELEMENT)
    acc = out if fits else accumulator.fit(out)
    return acc.astype(dtype, copy=False).reshape(a.shape[:-1] + (n,))


# -- integer accumulators to float --------------------------------------------------------------------
def product_scale(a_scale, b_scale) -> np.ndarray:
    """float32(a_scale * b_scale), per tensor or per column."""
    return (F32(np.asarray(a_scale, F32).reshape(())) * np.asarray(b_scale, F32)).astype(F32)


def scale_output(acc, scale, bias=None) -> np.ndarray:
    """MLAS's scale-bias output processor: float32(acc) * scale, then + bias (two roundings)."""
    y = np.asarray(acc).astype(F32)
    np.multiply(y, np.asarray(scale, F32), out=y)
    if bias is not None:
        np.add(y, np.asarray(bias, F32), out=y)
    return y


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


def average_pool(x, kernel, strides, pads, count_include_pad: bool, mlas: bool = True) -> np.ndarray:
    """Float AveragePool. Every window is summed in row-major order from 0 and divided by its
    size (with or without the padding), except where MLAS's 2-D vector kernel runs (mlas: the
    operator before opset 19, which ORT hands to MlasPool; last stride <= 2, kernels <= 32): it
    sums each window's rows first (from the top row), then the column sums across the window
    with the zero padding added in."""
    x = np.asarray(x, F32)
    dims = x.ndim - 2
    kernel, strides, pads = tuple(kernel), tuple(strides), tuple(pads)
    windows = pool_windows(x.shape, kernel, strides, pads)
    if mlas and dims == 2 and strides[1] <= 2 and max(kernel) <= 32:
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


def qlinear_softmax(x, sx, sy, zy, axis: int, opset: int) -> np.ndarray:
    """ORT's QLinearSoftmax (com.microsoft; x's zero point plays no part): exp of each code's
    distance below its row's maximum from a 256-entry float32 table made in double,
    exp((i - 255 + shift) * sx) with shift = max(0, ln(FLT_MAX / D) - 5) / sx (keeps the sums
    finite); the row's entries summed in float32 in order; then
    y = rint(float32(t * floor(1 / sy)) / sum) + zy, capped at the type's largest code. Rows
    are the last axis (opset >= 13, the axis moved there) or everything from the axis on
    (before 13)."""
    import math
    x = np.asarray(x)
    signed = x.dtype == np.int8
    moved = np.moveaxis(x, axis, -1) if opset >= 13 else x
    rows = moved.reshape(-1, moved.shape[-1]) if opset >= 13 else x.reshape(int(np.prod(x.shape[:axis])), -1)
    d = rows.shape[1]
    sx = float(F32(sx))
    shift = max(0.0, math.log(float(F32(np.finfo(F32).max) / F32(d))) - 5.0) / sx
    table = np.empty(256, F32)
    for i in range(256):
        try:
            table[i] = math.exp((i - 255 + shift) * sx)
        except OverflowError:
            table[i] = np.inf
    codes = rows.astype(np.int64) + (128 if signed else 0)              # the table's index order
    t = table[255 - codes.max(axis=1, keepdims=True) + codes]
    total = np.cumsum(t, axis=1, dtype=F32)[:, -1:]                     # in order, one rounding per add
    scale = F32(np.floor(F32(1) / F32(sy)))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        q = np.rint((t * scale).astype(F32) / total).astype(np.int64) + int(zy)
    y = np.minimum(q, 127 if signed else 255).astype(x.dtype)
    y = y.reshape(moved.shape) if opset >= 13 else y.reshape(x.shape)
    return np.moveaxis(y, -1, axis) if opset >= 13 else y


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




# -- float kernels (compiled; ort_reference.py states each step) --------------------------------------------
_mlas.set_constants(R._ERF_SMALL, R._ERF_BIG, R._EXP_POLY, R._LOGISTIC_ALPHA, R._LOGISTIC_BETA, R._SUMEXP_POLY,
                    (R._EXP_LOWER, R._LOG2E, R._EXP_C, R._LN2_HI, R._LN2_LO, R._EXP_LOW, R._ROUND_BIAS))


def _elementwise(kernel, x, *args) -> np.ndarray:
    x = np.ascontiguousarray(x, F32)
    out = np.empty_like(x)
    flat, flat_out = x.reshape(-1), out.reshape(-1)
    _spread(lambda begin, end: kernel(flat, flat_out, *args, begin, end), flat.size, flat.size)
    return out


def logistic(x) -> np.ndarray:
    """MlasLogisticKernelFma3 (ort_reference.logistic)."""
    return _elementwise(_mlas.logistic, x)


def erf(x) -> np.ndarray:
    """MlasErfKernelFma3 (ort_reference.erf)."""
    return _elementwise(_mlas.erf, x)


def gelu(x) -> np.ndarray:
    """ORT's Gelu, erf form (ort_reference.gelu)."""
    return _elementwise(_mlas.gelu, x, R._SQRT1_2)


def _rows(x) -> np.ndarray:
    x = np.ascontiguousarray(x, F32)
    return x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)


def softmax(x, axis: int = -1) -> np.ndarray:
    """MlasComputeSoftmax, AVX512F (ort_reference.softmax)."""
    moved = np.ascontiguousarray(np.moveaxis(np.asarray(x, F32), axis, -1))
    rows = _rows(moved)
    out = np.empty_like(rows)
    _spread(lambda begin, end: _mlas.softmax_rows(rows, out, begin, end), rows.shape[0], rows.size)
    return np.moveaxis(out.reshape(moved.shape), -1, axis)


def _norm(kernel, x, scale, bias, epsilon) -> np.ndarray:
    x = np.asarray(x, F32)
    rows = _rows(x)
    out = np.empty_like(rows)
    n = rows.shape[1]
    scale = np.ascontiguousarray(np.broadcast_to(np.asarray(scale, F32), (n,)))
    b = np.zeros(n, F32) if bias is None else np.ascontiguousarray(np.broadcast_to(np.asarray(bias, F32), (n,)))
    _spread(lambda begin, end: kernel(rows, scale, b, out, F32(epsilon), bias is not None, begin, end),
            rows.shape[0], rows.size)
    return out.reshape(x.shape)


def layer_norm(x, scale, bias, epsilon) -> np.ndarray:
    """ORT's LayerNormalization (ort_reference.layer_norm): MLAS's two-pass kernel for rows of 8
    or more, the scalar Welford loop below that."""
    x = np.asarray(x, F32)
    kernel = _mlas.layer_norm_rows if x.shape[-1] >= 8 else _mlas.welford_rows
    return _norm(kernel, x, scale, bias, epsilon)


def welford_norm(x, scale, bias, epsilon) -> np.ndarray:
    """ORT's scalar layer normalization (SkipLayerNormalization; ort_reference.welford_norm)."""
    return _norm(_mlas.welford_rows, x, scale, bias, epsilon)


def mlas_conv_datapath(datapath, w_shape: tuple, groups: int, constant_weights: bool):
    """The datapath of MLAS's QLinearConv for these weights: its depthwise kernel (one input and
    one output channel per group, weights constant, so packed when the session starts) sums
    u8 x s8 exactly where the GEMM kernels saturate pairs (measured on onnxruntime 1.32, AVX2
    without VNNI; depthwise weights fed as graph inputs saturate like the GEMMs)."""
    from dataclasses import replace

    from ..datapaths.integer import get_datapath
    path = get_datapath(datapath)
    depthwise = constant_weights and groups > 1 and w_shape[1] == 1 and w_shape[0] == groups
    if depthwise and path.accumulator.pair_saturate16:
        return replace(path, accumulator=replace(path.accumulator, pair_saturate16=False))
    return path
