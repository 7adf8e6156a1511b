# Block-scaled quantization kernels: per block, the largest magnitude, the block scale by a
# rule, and the element codes; codes back to values; sub-byte packing.
#
# One block is the unit of parallel work (prange over rows, blocks in order inside a row), and
# nothing depends on the thread count, so results are identical at any number of threads.
# No validation here: qsim/quant/blocks.py checks arguments and documents the rules.

from cython.parallel cimport prange
from libc.math cimport frexp, ldexp, rint, isnan, isinf, fabs
from _common cimport *

ctypedef fused in_t:
    float
    double

ctypedef fused code_t:
    uint8_t
    uint16_t

ctypedef fused out_t:
    float
    double

# Scale rules (qsim/quant/blocks.py SCALE_RULES keeps the same order).
cdef enum:
    FLOOR = 0
    CEIL = 1
    EVEN = 2
    RCEIL = 3
    AMAX = 4

# Scale storage (qsim/quant/blocks.py SCALE_KINDS keeps the same order).
cdef enum:
    SK_E8M0 = 0
    SK_FP32 = 1
    SK_UE4M3 = 2


cdef struct rule_t:
    int rule, scale_kind
    int elem_emax          # exponent of the element type's largest power of two
    int elem_mbits         # mantissa bits of the element (EVEN rounds amax to them)
    double elem_max        # largest element magnitude
    int exp_min, exp_max   # power-of-two scale exponents allowed; above exp_max: NaN scale
    int zero_exp           # power-of-two exponent of an all-zero block
    float tensor_scale     # second-level scale (1 when there is none)
    float recip_tensor     # float32 1 / tensor_scale
    float scale_min, scale_max   # AMAX rule: clamp range of the block scale
    int is_int             # integer elements (MXINT8): code = clamp(rint(x * 2**-k), qmin, qmax)
    int int_frac_bits      # the integer element's implicit 2**-frac_bits
    int qmin, qmax


cdef inline double _nan() noexcept nogil:
    cdef double z = 0.0
    return z / z


cdef inline double _block_amax(const in_t* x, Py_ssize_t n) noexcept nogil:
    # a NaN must win, and `a > m` is false for NaN, so NaNs are counted apart
    cdef in_t m = 0, a
    cdef Py_ssize_t i
    cdef int nans = 0
    for i in range(n):
        a = fabs(x[i])
        nans += a != a
        m = a if a > m else m
    return _nan() if nans else <double>m


cdef inline int _pow2_exponent(double a, const rule_t* p) noexcept nogil:
    """Unbiased scale exponent of a finite block amax a > 0, before clamping."""
    cdef int e
    cdef double m = frexp(a, &e)       # a = m * 2**e, 0.5 <= m < 1
    e = e - 1 - p.elem_emax            # floor(log2 a) - emax_elem
    if p.rule == CEIL:
        e += m != 0.5
    elif p.rule == EVEN:
        # amax rounded half up to the element's mantissa bits may reach the next binade
        e += m >= 1.0 - ldexp(1.0, -(p.elem_mbits + 2))
    elif p.rule == RCEIL:
        e += a > ldexp(p.elem_max, e)
    return e


cdef inline uint32_t _e8m0_or_pow2_code(int e, int kind) noexcept nogil:
    if kind == SK_E8M0:
        return <uint32_t>(e + 127)
    return qs_f32_bits(<float>ldexp(1.0, e))


cdef inline uint32_t _nan_scale(int kind) noexcept nogil:
    if kind == SK_E8M0:
        return 0xFF
    if kind == SK_UE4M3:
        return 0x7F
    return 0x7FC00000u


cdef inline int _encode_block(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first,
                              double amax, uint32_t* scale_code, const rule_t* p, fmt_t* ef,
                              fmt_t* sf, const float* scale_values, int mode, uint64_t seed) noexcept nogil:
    """Scale code and element codes of one block; returns 1 for a non-finite block."""
    cdef Py_ssize_t i
    cdef int e = 0
    cdef float s, r, v
    cdef uint32_t sc
    cdef uint64_t rnd = 0
    cdef double w
    if isnan(amax) or isinf(amax):
        scale_code[0] = _nan_scale(p.scale_kind)
        for i in range(n):
            out[i] = 0
        return 1
    if p.rule != AMAX:
        e = _pow2_exponent(amax, p) if amax > 0 else p.zero_exp
        if e > p.exp_max:
            scale_code[0] = _nan_scale(p.scale_kind)
            for i in range(n):
                out[i] = 0
            return 0
        e = e if e > p.exp_min else p.exp_min
        scale_code[0] = _e8m0_or_pow2_code(e, p.scale_kind)
        if p.is_int:
            for i in range(n):
                w = rint(ldexp(<double>x[i], p.int_frac_bits - e))
                w = w if w < p.qmax else p.qmax
                w = w if w > p.qmin else p.qmin
                out[i] = <code_t>(<int>w & 0xFF)
            return 0
        if in_t is float and mode == RNE and ef.magic_bits != 0:
            # x * 2**-e is exact in float32 down to float32's subnormals, which the element
            # format rounds to zero anyway (the fast path's condition), so it may go first
            v = <float>ldexp(1.0, -e)
            for i in range(n):
                out[i] = <code_t>qs_encode_f32_rne_fast(qs_f32_bits(x[i] * v), ef, True)
            return 0
        # x * 2**-e is exact inside the encoder (its k argument)
        for i in range(n):
            if mode == STOCHASTIC:
                rnd = qs_random_bits(seed, <uint64_t>(first + i))
            if in_t is float:
                out[i] = <code_t>qs_encode_f32(qs_f32_bits(x[i]), e, ef, mode, True, rnd)
            else:
                out[i] = <code_t>qs_encode_f64(qs_f64_bits(x[i]), e, ef, mode, True, rnd)
        return 0
    # AMAX rule, in float32 as the NVFP4 / FP8-block recipes compute it
    s = <float>(<float>amax / <float>p.elem_max) / p.tensor_scale
    s = s if s > p.scale_min else p.scale_min
    s = s if s < p.scale_max else p.scale_max
    if p.scale_kind == SK_UE4M3:
        sc = qs_encode_f32(qs_f32_bits(s), 0, sf, RNE, True, 0)
        s = scale_values[sc]
    else:
        sc = qs_f32_bits(s)
    scale_code[0] = sc
    r = p.recip_tensor / s
    if mode == RNE and ef.magic_bits != 0:
        for i in range(n):
            v = <float>x[i] * r
            out[i] = <code_t>qs_encode_f32_rne_fast(qs_f32_bits(v), ef, True)
    else:
        for i in range(n):
            if mode == STOCHASTIC:
                rnd = qs_random_bits(seed, <uint64_t>(first + i))
            v = <float>x[i] * r
            out[i] = <code_t>qs_encode_f32(qs_f32_bits(v), 0, ef, mode, True, rnd)
    return 0


def quantize_rows(const in_t[:, ::1] x, code_t[:, ::1] codes, uint32_t[:, ::1] scales,
                  const double[:, ::1] amax_given, int block, dict rule, fmt_t ef, fmt_t sf,
                  const float[::1] scale_values, int mode, uint64_t seed, int num_threads):
    """Block scales and element codes of each row, blocks of `block` along the row (the last
    one shorter if need be). amax_given: per-block amax (2-D tiles), or shape (0, 0) to compute
    it per block. Returns the number of non-finite blocks."""
    cdef rule_t p
    p.rule = rule["rule"]; p.scale_kind = rule["scale_kind"]
    p.elem_emax = rule["elem_emax"]; p.elem_mbits = rule["elem_mbits"]; p.elem_max = rule["elem_max"]
    p.exp_min = rule["exp_min"]; p.exp_max = rule["exp_max"]; p.zero_exp = rule["zero_exp"]
    p.tensor_scale = rule["tensor_scale"]; p.recip_tensor = <float>1.0 / p.tensor_scale
    p.scale_min = rule["scale_min"]; p.scale_max = rule["scale_max"]
    p.is_int = rule["is_int"]; p.int_frac_bits = rule["int_frac_bits"]
    p.qmin = rule["qmin"]; p.qmax = rule["qmax"]
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1], r, b, lo, hi
    cdef Py_ssize_t nblocks = scales.shape[1]
    cdef bint given = amax_given.shape[0] > 0
    cdef int nonfinite = 0
    cdef double amax
    cdef const float* sv = &scale_values[0]
    if rows == 0 or cols == 0:
        return 0
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="static"):
            for b in range(nblocks):
                lo = b * block
                hi = lo + block
                if hi > cols:
                    hi = cols
                if given:
                    amax = amax_given[r, b]
                else:
                    amax = _block_amax(&x[r, lo], hi - lo)
                nonfinite += _encode_block(&x[r, lo], &codes[r, lo], hi - lo, r * cols + lo, amax,
                                           &scales[r, b], &p, &ef, &sf, sv, mode, seed)
    return nonfinite


def block_amax(const in_t[:, ::1] x, double[:, ::1] out, int block, int num_threads):
    """Largest magnitude of each block of each row (NaN if the block holds a NaN)."""
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1], r, b, lo, hi
    if rows == 0 or cols == 0:
        return
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="static"):
            for b in range(out.shape[1]):
                lo = b * block
                hi = lo + block
                if hi > cols:
                    hi = cols
                out[r, b] = _block_amax(&x[r, lo], hi - lo)


def decode_rows(const code_t[:, ::1] codes, const double[:, ::1] scales, const double[::1] table,
                out_t[:, ::1] out, int block, int num_threads):
    """out = table[code] * scale of its block; the product is exact in float64 and rounded
    once to out's type."""
    cdef Py_ssize_t rows = codes.shape[0], cols = codes.shape[1], r, b, lo, hi, i
    cdef double s
    if rows == 0 or cols == 0:
        return
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="static"):
            for b in range(scales.shape[1]):
                lo = b * block
                hi = lo + block
                if hi > cols:
                    hi = cols
                s = scales[r, b]
                for i in range(lo, hi):
                    out[r, i] = <out_t>(table[codes[r, i]] * s)


def pack4(const uint8_t[::1] codes, uint8_t[::1] out, int num_threads):
    """Two 4-bit codes per byte, the first in the low nibble."""
    cdef Py_ssize_t n = codes.shape[0], half = n // 2, i
    with nogil:
        for i in prange(half, num_threads=num_threads, schedule="static"):
            out[i] = (codes[2 * i] & 0x0F) | ((codes[2 * i + 1] & 0x0F) << 4)
    if n % 2:
        out[half] = codes[n - 1] & 0x0F


def unpack4(const uint8_t[::1] packed, uint8_t[::1] out, int num_threads):
    cdef Py_ssize_t n = out.shape[0], half = n // 2, i
    with nogil:
        for i in prange(half, num_threads=num_threads, schedule="static"):
            out[2 * i] = packed[i] & 0x0F
            out[2 * i + 1] = packed[i] >> 4
    if n % 2:
        out[n - 1] = packed[half] & 0x0F
