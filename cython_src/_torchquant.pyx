# PyTorch's quantize arithmetics (qsim/quant/intquant.py QUANTIZE_RULES), one scale and zero
# point per row: inv = 1 / scale in float32, then
#   RECIPROCAL:     x86 round(x * inv) + zero in int32           (ATen's vectorized quantize)
#   RECIPROCAL_ADD: nearbyint(float(x * inv) + zero)             (fbgemm's scalar Quantize)
#   RECIPROCAL_FMA: round(fmaf(x, inv, zero))                    (fbgemm's AVX2 Quantize)
# The module is compiled with -ffp-contract=off so that RECIPROCAL_ADD rounds twice; fmaf is
# one rounding whatever the CPU. Vector paths clamp to the largest float32 below 2^31 before
# converting; a conversion out of int32 gives INT32_MIN, as CVTPS2DQ does. NaN never arrives.

from cython.parallel cimport prange
from libc.math cimport fmaf, nearbyintf
from _common cimport *

ctypedef fused q_t:
    int8_t
    uint8_t
    int16_t
    uint16_t

cdef enum:
    RECIPROCAL = 0
    RECIPROCAL_ADD = 1
    RECIPROCAL_FMA = 2

cdef float INT32_FLOAT_MAX = 2147483520.0


cdef inline int64_t _cvtps2dq(float v) noexcept nogil:
    if v >= -2147483648.0 and v < 2147483648.0:
        return <int64_t>nearbyintf(v)
    return -2147483648


cdef inline void _row(const float* x, q_t* out, Py_ssize_t n, float inv, int32_t zp, int qmin, int qmax,
                      int rule) noexcept nogil:
    cdef Py_ssize_t j
    cdef int64_t r
    cdef float zf = <float>zp
    cdef float v
    for j in range(n):
        if rule == RECIPROCAL_ADD:
            v = x[j] * inv
            v = nearbyintf(v + zf)
            r = qmin if v < qmin else (qmax if v > qmax else <int64_t>v)
        else:
            if rule == RECIPROCAL_FMA:
                v = fmaf(x[j], inv, zf)
            else:
                v = x[j] * inv
            if v > INT32_FLOAT_MAX:
                v = INT32_FLOAT_MAX
            r = _cvtps2dq(v)
            if rule == RECIPROCAL:
                r = <int64_t><int32_t><uint32_t>(<uint32_t>r + <uint32_t>zp)     # int32 wrap
            r = qmin if r < qmin else (qmax if r > qmax else r)
        out[j] = <q_t>r


def quantize_rows(const float[:, ::1] x, const float[::1] inv, const int32_t[::1] zero_point, q_t[:, ::1] out,
                  int qmin, int qmax, int rule, int num_threads):
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1], r
    if rows == 0 or cols == 0:
        return
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="static"):
            _row(&x[r, 0], &out[r, 0], cols, inv[r], zero_point[r], qmin, qmax, rule)


def fma_columns(const float[:, ::1] x, const float[::1] scale, const float[::1] bias, float[:, ::1] out,
                int num_threads):
    """out = fmaf(x, scale[j], bias[j]) per column j: one rounding (fbgemm's float output)."""
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1], r, j
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="static"):
            for j in range(cols):
                out[r, j] = fmaf(x[r, j], scale[j], bias[j])
