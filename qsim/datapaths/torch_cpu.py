"""PyTorch's quantized CPU kernels beyond linear and convolution, as they compute.

Elementwise add, concatenation, average and adaptive average pooling, max pooling, ReLU and
dequantization, on uint8 (quint8) and int8 (qint8) codes. Three families of arithmetic:

- ATen's vectorized kernels: dequantize by a fused multiply-add fma(q, s, float32(s * -z)),
  quantize by round_half_even(x * (1 / s)) + z ("reciprocal"); their scalar tails dequantize
  as float32(q - z) * s and quantize by round(float32(x * (1 / s)) + z) ("reciprocal_add").
  Which elements take which path depends on the position in memory, the vector width and
  how TensorIterator splits work across threads: AtenCPU holds those facts.
- fbgemm's Quantize (torch.quantize_per_tensor, the generic cat): round(fma(x, 1 / s, z)).
- qnnpack (the qnnpack engine): add in fixed point (integer multipliers and shifts, rounding
  half away from zero), average pooling in float32 (rounding half to even).

Arrays come in and go out in the order the kernels walk memory: callers that hold NCHW
tensors in channels-last memory pass NHWC arrays (qsim.sim.torch_quant does this). Measured
against torch 2.13 on an AVX-512 CPU (tests/sim/test_torch_quant.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..quant.intquant import quantize_int
from .requant import fma_float32

F32 = np.float32
INT32_FLOAT_MAX = F32(2 ** 31 - 128)        # vector paths clamp here before converting to int32
QUANTIZED_DTYPES = {"quint8": ("uint8", 0, 255), "qint8": ("int8", -128, 127)}


# ATen runs these quantized kernels in its AVX-512 build on AVX-512 CPUs; the others run the
# AVX2 build there too (REGISTER_DISPATCH versus ALSO_REGISTER_AVX512_DISPATCH in
# aten/src/ATen/native/quantized/cpu/kernels/QuantizedOpKernels.cpp).
AVX512_KERNELS = ("avg_pool2d_channels_last",)
CAPABILITIES = ("AVX2", "AVX512")


@dataclass(frozen=True)
class AtenCPU:
    """The facts that decide which of ATen's code paths an element takes.

    capability: torch.backends.cpu.get_cpu_capability() ("AVX2" or "AVX512"); it sets the
    float vector width of the kernels in AVX512_KERNELS (16, else 8 floats; a uint8 vector
    holds 4 times as many). threads: torch.get_num_threads(); TensorIterator splits loops of
    at least `grain` elements into that many chunks, each ending in a scalar tail."""

    capability: str = "AVX512"
    threads: int = 1
    grain: int = 32768

    def __post_init__(self):
        if self.capability not in CAPABILITIES:
            raise ValueError(f"capability must be one of {CAPABILITIES} (torch.backends.cpu.get_cpu_capability()), "
                             f"got {self.capability!r}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")

    def float_lanes(self, kernel: str) -> int:
        return 16 if self.capability == "AVX512" and kernel in AVX512_KERNELS else 8

    def vector_mask(self, n: int, step: int) -> np.ndarray:
        """Which of n elements of one TensorIterator loop the vector path computes: each
        thread's chunk runs whole steps of `step` elements, then its tail element by element."""
        mask = np.zeros(n, bool)
        chunks = 1 if n < self.grain or self.threads == 1 else min(self.threads, -(-n // self.grain))
        size = -(-n // chunks) if n else 0
        for begin in range(0, n, max(size, 1)):
            length = min(size, n - begin)
            mask[begin:begin + length // step * step] = True
        return mask


def _dtype(dtype: str) -> tuple[str, int, int]:
    if dtype not in QUANTIZED_DTYPES:
        raise ValueError(f"quantized dtype must be one of {tuple(QUANTIZED_DTYPES)}, got {dtype!r}")
    return QUANTIZED_DTYPES[dtype]


# -- dequantize and requantize ------------------------------------------------------------------
def dequantize(q, scale, zero) -> np.ndarray:
    """at::dequantize and ATen's scalar dequantize_val: float32(q - z) * float32(s)."""
    return ((np.asarray(q, np.int64) - np.asarray(zero, np.int64)).astype(F32) * F32(scale)).astype(F32)


def vector_dequantize(q, scale, zero) -> np.ndarray:
    """ATen's Vectorized<quint8/qint8>::dequantize: fma(float32(q), s, float32(s * -z))."""
    s = F32(scale)
    return fma_float32(np.asarray(q).astype(F32), s, F32(s * F32(-int(zero))))


def requantize(values, scale, zero, dtype: str, rule: str) -> np.ndarray:
    """float32 values to codes of `dtype` with one of PyTorch's rules (qsim.quant.intquant)."""
    fmt, _, _ = _dtype(dtype)
    return quantize_int(np.asarray(values, F32), fmt, F32(scale), int(zero), rule=rule)


# -- add -----------------------------------------------------------------------------------------
def add(a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero, *, relu: bool = False, dtype: str = "quint8",
        engine: str = "fbgemm", cpu: AtenCPU = AtenCPU()) -> np.ndarray:
    """quantized::add / add_relu of two same-shape code arrays in memory order.

    engine "fbgemm": ATen's qadd_kernel, vector and scalar paths by position (its loop steps
    two uint8 vectors at a time); "qnnpack" with uint8: qnnpack's fixed-point q8vadd."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"add needs operands of one shape, got {a.shape} and {b.shape}")
    _dtype(dtype)
    if engine == "qnnpack" and dtype == "quint8":
        return _qnnpack_add(a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero, relu)
    if engine == "qnnpack":
        raise ValueError("quantized add of qint8 on the qnnpack engine runs XNNPACK, which qsim does not model")
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    vec = cpu.vector_mask(flat_a.size, 2 * 4 * cpu.float_lanes("add"))
    zero = F32(0)
    y = np.empty(flat_a.shape, a.dtype)
    for mask, deq, rule in ((vec, vector_dequantize, "reciprocal"), (~vec, dequantize, "reciprocal_add")):
        if mask.any():
            c = (deq(flat_a[mask], a_scale, a_zero) + deq(flat_b[mask], b_scale, b_zero)).astype(F32)
            if relu:
                c = np.maximum(c, zero)
            y[mask] = requantize(c, y_scale, y_zero, dtype, rule)
    return y.reshape(a.shape)


def _lrintf(x) -> int:
    return int(np.rint(F32(x)))


def _qnnpack_add(a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero, relu):
    """pytorch_qnnp_add_nc_q8: per-input ratios a_scale / y_scale in float32 scaled by 2^shift
    (the larger one to [2^21, 2^22)) and rounded to integers; acc = a * ma + b * mb - (za * ma +
    zb * mb) in wrapping 32 bits, shifted right rounding half away from zero, + y_zero, clamped."""
    ratios = [F32(F32(s) / F32(y_scale)) for s in (a_scale, b_scale)]
    for r in ratios:
        if not 2.0 ** -14 <= r < 2.0 ** 8:
            raise ValueError(f"qnnpack add needs input/output scale ratios in [2^-14, 2^8), got {r}")
    exponent = int(np.array(max(ratios), F32).view(np.uint32)) >> 23
    shift = 21 - (exponent - 127)
    ma, mb = (_lrintf(r * F32(2.0 ** shift)) for r in ratios)
    acc = a.astype(np.int64) * ma + b.astype(np.int64) * mb - (ma * int(a_zero) + mb * int(b_zero))
    acc = ((acc + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    mask = (1 << shift) - 1
    rem = (acc & mask) - (acc < 0)
    acc = (acc >> shift) + (rem > (mask >> 1))
    return np.clip(acc + int(y_zero), int(y_zero) if relu else 0, 255).astype(np.uint8)


# -- cat -----------------------------------------------------------------------------------------
def cat(parts, y_scale, y_zero, *, axis: int, dtype: str = "quint8") -> np.ndarray:
    """quantized::cat's general path: every part dequantized (at::dequantize), concatenated,
    quantized with torch.quantize_per_tensor's rule. parts: (codes, scale, zero) tuples."""
    values = np.concatenate([dequantize(q, s, z) for q, s, z in parts], axis=axis)
    return requantize(values, y_scale, y_zero, dtype, "reciprocal_fma")


def cat_channels_last(parts, y_scale, y_zero, *, relu: bool = False, dtype: str = "quint8",
                      cpu: AtenCPU = AtenCPU()) -> np.ndarray:
    """quantized::cat along channels of channels-last 4-D tensors (qcat_nhwc_kernel). parts:
    (codes (pixels, C_i), scale, zero); a part with the output's scale and zero point is
    copied, the others requantized per pixel: whole uint8 vectors, then whole float vectors,
    by the vector rule, the last channels by the scalar rule."""
    out = []
    flanes = cpu.float_lanes("cat_channels_last")
    lanes = 4 * flanes
    for q, s, z in parts:
        q = np.asarray(q)
        if F32(s) == F32(y_scale) and int(z) == int(y_zero) and not relu:
            out.append(q)
            continue
        channels = q.shape[1]
        full = channels // lanes * lanes
        vec = full + (channels - full) // flanes * flanes
        y = np.empty(q.shape, q.dtype)
        for cols, deq, rule in ((slice(0, vec), vector_dequantize, "reciprocal"),
                                (slice(vec, channels), dequantize, "reciprocal_add")):
            v = deq(q[:, cols], s, z)
            if relu:
                v = np.maximum(v, F32(0))
            y[:, cols] = requantize(v, y_scale, y_zero, dtype, rule)
        out.append(y)
    return np.concatenate(out, axis=1)


# -- pooling -------------------------------------------------------------------------------------
def pool_geometry(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    """torch's pooling_output_shape: the output length of one spatial axis."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    if out < 1:
        raise ValueError(f"pooling a length-{size} axis with kernel {kernel}, stride {stride}, padding {pad} "
                         f"leaves no output")
    return out


def _windows(size: int, kernel: int, stride: int, pad: int, out: int):
    """(start, end, padded_end) of each output's window along one axis, as avg_pool2d cuts them."""
    for o in range(out):
        start = o * stride - pad
        end = min(start + kernel, size + pad)
        yield max(start, 0), min(end, size), end - start


def max_pool2d(q, kernel, stride, padding, dilation, ceil_mode: bool = False) -> np.ndarray:
    """Quantized max pooling on NCHW codes: the largest code of each window (padding ignored)."""
    q = np.asarray(q)
    n, c, h, w = q.shape
    oh = pool_geometry(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_geometry(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    y = np.empty((n, c, oh, ow), q.dtype)
    for i in range(oh):
        rows = np.arange(i * stride[0] - padding[0], i * stride[0] - padding[0] + dilation[0] * kernel[0], dilation[0])
        rows = rows[(rows >= 0) & (rows < h)]
        for j in range(ow):
            cols = np.arange(j * stride[1] - padding[1], j * stride[1] - padding[1] + dilation[1] * kernel[1],
                             dilation[1])
            cols = cols[(cols >= 0) & (cols < w)]
            y[:, :, i, j] = q[:, :, rows][:, :, :, cols].max(axis=(2, 3))
    return y


def avg_pool2d(q, scale, zero, kernel, stride, padding, *, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override=None, dtype: str = "quint8", engine: str = "fbgemm", channels_last: bool = False,
               cpu: AtenCPU = AtenCPU()) -> np.ndarray:
    """Quantized avg_pool2d of NCHW codes (output scale and zero point = the input's). The
    kernel depends on the engine and the memory layout: qnnpack's fixed point (qnnpack engine,
    uint8, no ceil_mode), ATen's channels-last kernel, or ATen's NCHW loop."""
    q = np.asarray(q)
    _, lo, hi = _dtype(dtype)
    n, c, h, w = q.shape
    oh = pool_geometry(h, kernel[0], stride[0], padding[0], 1, ceil_mode)
    ow = pool_geometry(w, kernel[1], stride[1], padding[1], 1, ceil_mode)
    if engine == "qnnpack" and dtype == "quint8" and not ceil_mode:
        return _qnnpack_avg_pool(q, scale, zero, kernel, stride, padding, oh, ow)
    sums = np.empty((n, c, oh, ow), np.int64)
    divisors = np.empty((oh, ow), np.int64)
    sizes = np.empty((oh, ow), np.int64)
    for i, (r0, r1, rp) in enumerate(_windows(h, kernel[0], stride[0], padding[0], oh)):
        for j, (c0, c1, cp) in enumerate(_windows(w, kernel[1], stride[1], padding[1], ow)):
            sums[:, :, i, j] = q[:, :, r0:r1, c0:c1].astype(np.int64).sum(axis=(2, 3))
            sizes[i, j] = (r1 - r0) * (c1 - c0)
            divisors[i, j] = divisor_override or (rp * cp if count_include_pad else sizes[i, j])
    acc = sums - sizes * int(zero)
    if channels_last:
        multiplier = (F32(scale) / F32(scale) / divisors.astype(F32)).astype(F32)
        return _channels_last_requantize(acc, multiplier, zero, dtype, cpu.float_lanes("avg_pool2d_channels_last"),
                                         vector_rule="reciprocal")
    multiplier = (np.float64(F32(scale)) / np.float64(F32(scale)) / divisors).astype(F32)
    v = (acc.astype(F32) * multiplier).astype(F32) + F32(int(zero))
    return np.clip(np.rint(v), lo, hi).astype(q.dtype)


def _channels_last_requantize(acc, multiplier, zero, dtype, lanes, vector_rule):
    """The requantization of ATen's channels-last pooling kernels, per output pixel: channels in
    whole float vectors by `vector_rule` ("reciprocal": round(acc * multiplier) + zero, ATen's
    QuantizeAvx512; "reciprocal_fma": fbgemm's Quantize with scale 1 / multiplier), the rest by
    quantize_val(1 / multiplier); those two multiply by the float32 reciprocal of a reciprocal."""
    fmt, lo, hi = _dtype(dtype)
    vec = acc.shape[1] // lanes * lanes
    v = acc.astype(F32)
    back = (F32(1) / (F32(1) / multiplier)).astype(F32)
    zf = F32(int(zero))
    y = np.empty(acc.shape, np.int64)
    if vector_rule == "reciprocal":
        y[:, :vec] = np.rint(np.minimum(v[:, :vec] * multiplier, INT32_FLOAT_MAX)) + int(zero)
    else:
        y[:, :vec] = np.rint(np.minimum(fma_float32(v[:, :vec], back, zf), INT32_FLOAT_MAX))
    y[:, vec:] = np.rint((v[:, vec:] * back).astype(F32) + zf)
    return np.clip(y, lo, hi).astype(np.uint8 if fmt == "uint8" else np.int8)


def _qnnpack_avg_pool(q, scale, zero, kernel, stride, padding, oh, ow):
    """pytorch_qnnp_average_pooling2d_nhwc_q8 (x86): the window sum (padding reads the zero
    point) minus zero * kernel size, times float32(s_in / float32(s_out * kernel size)) in float32,
    rounded half to even (CVTPS2DQ), + zero, clamped to uint8."""
    n, c, h, w = q.shape
    size = kernel[0] * kernel[1]
    if size == 1:
        raise ValueError("qnnpack refuses 1x1 average pooling ('1x1 pooling is meaningless')")
    ratio = F32(F32(scale) / F32(F32(scale) * F32(size)))
    padded = np.pad(q.astype(np.int64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2),
                    constant_values=int(zero))
    acc = np.empty((n, c, oh, ow), np.int64)
    for i in range(oh):
        for j in range(ow):
            win = padded[:, :, i * stride[0]:i * stride[0] + kernel[0], j * stride[1]:j * stride[1] + kernel[1]]
            acc[:, :, i, j] = win.sum(axis=(2, 3))
    acc -= int(zero) * size
    return np.clip(np.rint(acc.astype(F32) * ratio) + int(zero), 0, 255).astype(np.uint8)


def _adaptive_bounds(out: int, size: int):
    """ATen's adaptive pooling windows: floor(o * size / out) to ceil((o + 1) * size / out),
    divided in float32."""
    for o in range(out):
        yield (int(np.floor(F32(o * size) / F32(out))), int(np.ceil(F32((o + 1) * size) / F32(out))))


def adaptive_avg_pool2d(q, scale, zero, output_size, *, dtype: str = "quint8", engine: str = "fbgemm",
                        channels_last: bool = False, cpu: AtenCPU = AtenCPU()) -> np.ndarray:
    """Quantized adaptive_avg_pool2d of NCHW codes (output scale and zero point = the input's):
    qnnpack's average pooling when the engine is qnnpack, uint8, and the sizes divide (and
    differ); ATen's channels-last kernel; or ATen's NCHW loop, round(float32(sum of codes) *
    (1 / kernel size)) with that factor built by float32 divisions."""
    q = np.asarray(q)
    _, lo, hi = _dtype(dtype)
    n, c, h, w = q.shape
    oh, ow = output_size
    if engine == "qnnpack" and dtype == "quint8" and (h, w) != (oh, ow) and h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        return _qnnpack_avg_pool(q, scale, zero, k, k, (0, 0), oh, ow)
    sums = np.empty((n, c, oh, ow), np.int64)
    sizes = np.empty((oh, ow), np.int64)
    factors = np.empty((oh, ow), F32)
    for i, (r0, r1) in enumerate(_adaptive_bounds(oh, h)):
        for j, (c0, c1) in enumerate(_adaptive_bounds(ow, w)):
            sums[:, :, i, j] = q[:, :, r0:r1, c0:c1].astype(np.int64).sum(axis=(2, 3))
            sizes[i, j] = (r1 - r0) * (c1 - c0)
            factors[i, j] = F32(F32(F32(1.0) / F32(r1 - r0)) / F32(c1 - c0))
    if channels_last:
        multiplier = (F32(scale) / F32(scale) / sizes.astype(F32)).astype(F32)
        return _channels_last_requantize(sums - sizes * int(zero), multiplier, zero, dtype,
                                         cpu.float_lanes("adaptive_avg_pool2d_channels_last"),
                                         vector_rule="reciprocal_fma")
    return np.clip(np.rint((sums.astype(F32) * factors).astype(F32)), lo, hi).astype(q.dtype)
