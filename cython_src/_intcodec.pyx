# Integer quantization kernel: q = clamp(round(x / scale) + zero_point, qmin, qmax).
#
# The array arrives as rows (see qsim/quant/granularity.py): one scale and zero point per row,
# which covers per-tensor (one row), per-channel and per-group quantization.  The division is
# a true division in the input's precision, as ONNX QuantizeLinear specifies.

from cython.parallel cimport prange
from libc.math cimport rint, trunc, round, floor, ceil
from _common cimport *

ctypedef fused in_t:
    float
    double

ctypedef fused q_t:
    int8_t
    uint8_t
    int16_t
    uint16_t
    int32_t


cdef inline double _round(double v, int mode, uint64_t rnd) noexcept nogil:
    cdef double f
    if mode == RNE:
        return rint(v)          # the default floating-point environment rounds to even
    if mode == RTZ:
        return trunc(v)
    if mode == RNA:
        return round(v)
    if mode == RUP:
        return ceil(v)
    if mode == RDN:
        return floor(v)
    f = floor(v)                # stochastic: up with probability v - floor(v), to 2**-53
    return f + (<double>(rnd >> 11) * (1.0 / 9007199254740992.0) < v - f)


cdef inline void _quantize_row(const in_t* x, q_t* out, Py_ssize_t n, Py_ssize_t base, in_t scale,
                               int zp, int qmin, int qmax, int mode, uint64_t seed) noexcept nogil:
    cdef Py_ssize_t j
    cdef in_t v
    cdef double r
    cdef double lo = qmin - zp, hi = qmax - zp
    cdef uint64_t rnd = 0
    for j in range(n):
        v = x[j] / scale
        if mode == STOCHASTIC:
            rnd = qs_random_bits(seed, <uint64_t>(base + j))
        r = _round(<double>v, mode, rnd)
        if r < lo:
            r = lo
        if r > hi:
            r = hi
        out[j] = <q_t>(<int32_t>r + zp)


def quantize_rows(const in_t[:, ::1] x, const in_t[::1] scale, const int32_t[::1] zero_point,
                  q_t[:, ::1] out, int qmin, int qmax, int mode, uint64_t seed, int num_threads):
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1], r
    if rows == 0 or cols == 0:
        return
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="static"):
            if mode == RNE:
                _quantize_row(&x[r, 0], &out[r, 0], cols, r * cols, scale[r], zero_point[r], qmin, qmax, RNE, seed)
            elif mode == RTZ:
                _quantize_row(&x[r, 0], &out[r, 0], cols, r * cols, scale[r], zero_point[r], qmin, qmax, RTZ, seed)
            elif mode == RNA:
                _quantize_row(&x[r, 0], &out[r, 0], cols, r * cols, scale[r], zero_point[r], qmin, qmax, RNA, seed)
            elif mode == RUP:
                _quantize_row(&x[r, 0], &out[r, 0], cols, r * cols, scale[r], zero_point[r], qmin, qmax, RUP, seed)
            elif mode == RDN:
                _quantize_row(&x[r, 0], &out[r, 0], cols, r * cols, scale[r], zero_point[r], qmin, qmax, RDN, seed)
            else:
                _quantize_row(&x[r, 0], &out[r, 0], cols, r * cols, scale[r], zero_point[r], qmin, qmax, STOCHASTIC, seed)


ctypedef fused code_t:
    uint8_t
    uint16_t

ctypedef fused value_t:
    int8_t
    uint8_t
    int16_t
    uint16_t
    float
    double


def decode(const code_t[::1] codes, value_t[::1] out, int bits, bint signed, int num_threads):
    """out[i] = value of codes[i]: two's complement in the low `bits` bits when signed."""
    cdef Py_ssize_t n = codes.shape[0], i
    cdef int up = 32 - bits           # shifts the sign bit to bit 31, and back with it
    if n == 0:
        return
    with nogil:
        if signed:
            for i in prange(n, num_threads=num_threads, schedule="static"):
                out[i] = <value_t>((<int32_t>(<uint32_t>codes[i] << up)) >> up)
        else:
            for i in prange(n, num_threads=num_threads, schedule="static"):
                out[i] = <value_t>codes[i]
