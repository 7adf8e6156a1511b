# Float codec kernels: any float32/float64 input to any minifloat code, and codes back to values.
#
# The per-element arithmetic is the branch-free encoder in _encode.h; here are the loops,
# parallel over chunks, with the rounding mode made a constant per loop.
# No validation here: the Python layer (qsim/codec.py) checks arguments.

from cython.parallel cimport prange
from libc.math cimport fabs, frexp
from _common cimport *

ctypedef fused in_t:
    float
    double

ctypedef fused code_t:
    uint8_t
    uint16_t
    uint32_t

ctypedef fused val_t:
    float
    double

cdef enum:
    CHUNK = 16384    # elements per parallel work item


cdef inline uint32_t _encode_scale_one(uint64_t u, int in_ebits, int in_mbits, fmt_t f,
                                       int mode, bint sat, uint64_t rnd) noexcept nogil:
    """Unsigned exponent-only scale (E8M0): no zero, no sign, NaN code all ones."""
    cdef int width = 1 + in_ebits + in_mbits
    cdef int in_bias = (1 << (in_ebits - 1)) - 1
    cdef int e_special = (1 << in_ebits) - 1
    cdef uint64_t one = 1
    cdef uint64_t neg = u >> (width - 1)
    cdef uint64_t mant = u & ((one << in_mbits) - one)
    cdef int e_field = <int>((u >> in_mbits) & <uint64_t>e_special)
    cdef int e = e_field, lz
    cdef uint64_t sig
    cdef int64_t code
    if neg or (e_field == 0 and mant == 0) or (e_field == e_special and mant != 0):
        return f.nan_pos            # negative, zero and NaN have no code
    if e_field == e_special:
        return f.max_code if sat else f.nan_pos
    if e_field == 0:
        lz = qs_clz64(mant) - (63 - in_mbits)
        sig = mant << lz
        e = 1 - lz
    else:
        sig = mant | (one << in_mbits)
    # sig >> in_mbits is 1; rounding may carry it to 2 (the next binade), and breaks a tie by
    # that bit's parity: always up. The code is the exponent alone, so the even code of a tie
    # (as gfloat rounds; "rna" rounds ties up) is the lower one when its exponent is even.
    if mode == RNE and sig == (<uint64_t>3 << (in_mbits - 1)) and ((e - in_bias + f.bias) & 1) == 0:
        sig -= 1
    code = <int64_t>(e - in_bias + f.bias - 1) + <int64_t>qs_round_shift64(sig, in_mbits, mode, 0, rnd)
    if code < 0:
        code = 0                    # below the smallest scale: clamp, there is no zero
    if code > f.max_code:
        code = f.max_code if sat else f.nan_pos
    return <uint32_t>code


cdef inline void _encode_span(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, int k,
                              fmt_t f, int mode, bint sat, uint64_t seed) noexcept nogil:
    # `first` is the flat index of x[0]: stochastic bits depend on it alone, not on chunking.
    cdef Py_ssize_t i
    cdef uint64_t rnd = 0
    for i in range(n):
        if mode == STOCHASTIC:
            rnd = qs_random_bits(seed, <uint64_t>(first + i))
        if in_t is float and mode == RNE_FAST:
            out[i] = <code_t>qs_encode_f32_rne_fast(qs_f32_bits(x[i]), &f, sat)
        elif in_t is float:
            out[i] = <code_t>qs_encode_f32(qs_f32_bits(x[i]), k, &f, mode, sat, rnd)
        else:
            out[i] = <code_t>qs_encode_f64(qs_f64_bits(x[i]), k, &f, mode, sat, rnd)


cdef inline void _encode_mode(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, int k,
                              fmt_t f, int mode, bint sat, uint64_t seed) noexcept nogil:
    if mode == RNE:
        _encode_span(x, out, n, first, k, f, RNE, sat, seed)
    elif mode == RTZ:
        _encode_span(x, out, n, first, k, f, RTZ, sat, seed)
    elif mode == RNA:
        _encode_span(x, out, n, first, k, f, RNA, sat, seed)
    elif mode == RUP:
        _encode_span(x, out, n, first, k, f, RUP, sat, seed)
    elif mode == RDN:
        _encode_span(x, out, n, first, k, f, RDN, sat, seed)
    elif mode == RNE_FAST:
        _encode_span(x, out, n, first, k, f, RNE_FAST, sat, seed)
    else:
        _encode_span(x, out, n, first, k, f, STOCHASTIC, sat, seed)


cdef enum:
    BUFFER = 1024   # elements held on the stack between two steps of a loop


cdef void _encode_widened(const float* x, code_t* out, Py_ssize_t n, Py_ssize_t first, int k,
                          fmt_t f, int mode, bint sat, uint64_t seed) noexcept nogil:
    # float32 -> float64 is exact, so the float64 encoder gives the float32 input's codes.
    cdef double wide[BUFFER]
    cdef Py_ssize_t a = 0, m, j
    while a < n:
        m = n - a
        if m > BUFFER:
            m = BUFFER
        for j in range(m):
            wide[j] = x[a + j]
        _encode_dispatch(&wide[0], out + a, m, first + a, k, f, mode, sat, seed)
        a += m


cdef void _encode_even_exponent(const in_t* x, code_t* out, Py_ssize_t n, int k, fmt_t f,
                                bint sat) noexcept nogil:
    # Round to nearest even with no mantissa bits. The encoder breaks a tie by the parity of
    # the rounded significand, here the implicit bit alone, so every tie would go up; the
    # even code is the even exponent. Where the lower neighbour has it, the input one ulp
    # toward zero (its bits minus one) rounds there.
    cdef Py_ssize_t i
    cdef int e2, lower
    cdef double m
    for i in range(n):
        m = frexp(fabs(<double>x[i]), &e2)       # |x| = m * 2**e2: a tie has m = 0.75
        lower = e2 - 1 - k + f.bias               # the lower neighbour's exponent field
        if in_t is float:
            out[i] = <code_t>qs_encode_f32(qs_f32_bits(x[i]) - (m == 0.75 and lower >= 1 and lower % 2 == 0),
                                           k, &f, RNE, sat, 0)
        else:
            out[i] = <code_t>qs_encode_f64(qs_f64_bits(x[i]) - (m == 0.75 and lower >= 1 and lower % 2 == 0),
                                           k, &f, RNE, sat, 0)


cdef void _encode_dispatch(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, int k,
                           fmt_t f, int mode, bint sat, uint64_t seed) noexcept nogil:
    # The float32 encoder works in 32-bit integers: it needs a target mantissa no wider than
    # float32's, and room for the code it works out for float32's largest value, which is
    # below (bias - k + 128) << mbits. Else widen to float64: exact, and with room for every
    # bias FloatFormat accepts.
    if in_t is float and (f.mbits > 23 or ((<int64_t>f.bias - k + 128) << f.mbits) >= (<int64_t>1 << 32)):
        _encode_widened(x, out, n, first, k, f, mode, sat, seed)
        return
    if mode == RNE and f.mbits == 0:
        _encode_even_exponent(x, out, n, k, f, sat)
        return
    # Literal mode and saturation per call let the compiler specialize and vectorize each loop.
    if mode == RNE and k == 0 and f.magic_bits != 0:
        mode = RNE_FAST
    if sat:
        _encode_mode(x, out, n, first, k, f, mode, True, seed)
    else:
        _encode_mode(x, out, n, first, k, f, mode, False, seed)


def encode(const in_t[::1] x, code_t[::1] out, fmt_t f, int mode, bint sat, uint64_t seed,
           int num_threads):
    """out[i] = code of x[i] in format f."""
    cdef Py_ssize_t n = x.shape[0], nchunks = (n + CHUNK - 1) // CHUNK, c, hi
    if n == 0:
        return
    with nogil:
        for c in prange(nchunks, num_threads=num_threads, schedule="static"):
            hi = c * CHUNK + CHUNK
            if hi > n:
                hi = n
            _encode_dispatch(&x[c * CHUNK], &out[c * CHUNK], hi - c * CHUNK, c * CHUNK, 0, f, mode, sat, seed)


def encode_scale(const in_t[::1] x, code_t[::1] out, fmt_t f, int mode, bint sat, uint64_t seed):
    """out[i] = code of x[i] in an unsigned exponent-only scale format (E8M0)."""
    cdef Py_ssize_t i
    cdef uint64_t rnd = 0
    with nogil:
        for i in range(x.shape[0]):
            if mode == STOCHASTIC:
                rnd = qs_random_bits(seed, <uint64_t>i)
            if in_t is float:
                out[i] = <code_t>_encode_scale_one(<uint64_t>qs_f32_bits(x[i]), 8, 23, f, mode, sat, rnd)
            else:
                out[i] = <code_t>_encode_scale_one(qs_f64_bits(x[i]), 11, 52, f, mode, sat, rnd)


def gather(const code_t[::1] codes, const val_t[::1] table, val_t[::1] out, int num_threads):
    """out[i] = table[codes[i]]: decoding through a table of every code's value."""
    cdef Py_ssize_t n = codes.shape[0], i
    if n == 0:
        return
    with nogil:
        for i in prange(n, num_threads=num_threads, schedule="static"):
            out[i] = table[codes[i]]


def widen(const code_t[::1] codes, uint32_t[::1] out, int shift, int num_threads):
    """out[i] = codes[i] << shift: decoding formats that are the top bits of float32 (BF16)."""
    cdef Py_ssize_t n = codes.shape[0], i
    if n == 0:
        return
    with nogil:
        for i in prange(n, num_threads=num_threads, schedule="static"):
            out[i] = (<uint32_t>codes[i]) << shift


HAVE_F16C = bool(QS_HAVE_F16C)


def half_prefix(codes, float[::1] out, int num_threads):
    """out[i] = float(half(code << (16 - code bits))): FP16 and E5M2 through F16C."""
    cdef const uint8_t[::1] c8
    cdef const uint16_t[::1] c16
    cdef Py_ssize_t n = out.shape[0], a, m
    cdef bint narrow = codes.dtype.itemsize == 1
    if n == 0:
        return
    if narrow:
        c8 = codes
    else:
        c16 = codes
    with nogil:
        for a in prange(0, n, CHUNK, num_threads=num_threads, schedule="static"):
            m = min(CHUNK, n - a)
            if narrow:
                qs_half_prefix_to_f32_u8(&c8[a], &out[a], m)
            else:
                qs_half_prefix_to_f32_u16(&c16[a], &out[a], m)


cdef void _roundtrip(const in_t* x, in_t* out, const in_t* table, Py_ssize_t n, Py_ssize_t first,
                     fmt_t f, int mode, bint sat, uint64_t seed) noexcept nogil:
    cdef uint32_t codes[BUFFER]
    cdef Py_ssize_t a = 0, m, j
    while a < n:
        m = n - a
        if m > BUFFER:
            m = BUFFER
        _encode_dispatch(x + a, &codes[0], m, first + a, 0, f, mode, sat, seed)
        for j in range(m):
            out[a + j] = table[codes[j]]
        a += m


def quantize(const in_t[::1] x, in_t[::1] out, const in_t[::1] table, fmt_t f, int mode,
             bint sat, uint64_t seed, int num_threads):
    """out[i] = value of the code of x[i] (encode and decode in one pass)."""
    cdef Py_ssize_t n = x.shape[0], nchunks = (n + CHUNK - 1) // CHUNK, c, hi
    if n == 0:
        return
    with nogil:
        for c in prange(nchunks, num_threads=num_threads, schedule="static"):
            hi = c * CHUNK + CHUNK
            if hi > n:
                hi = n
            _roundtrip(&x[c * CHUNK], &out[c * CHUNK], &table[0], hi - c * CHUNK, c * CHUNK, f, mode, sat, seed)


def mx_encode(const in_t[:, ::1] x, code_t[:, ::1] out, const int32_t[:, ::1] shared_exp,
              int block, fmt_t f, int mode, uint64_t seed, int num_threads):
    """Element codes of MX blocks: x[r, j] * 2**-shared_exp[r, j // block], saturating.

    Stochastic bits are drawn by flat element index, so they match a plain encode."""
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1], r, b, lo, hi
    cdef Py_ssize_t nblocks = shared_exp.shape[1]
    if rows == 0 or cols == 0:
        return
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="static"):
            for b in range(nblocks):
                lo = b * block
                hi = lo + block
                if hi > cols:
                    hi = cols
                _encode_dispatch(&x[r, lo], &out[r, lo], hi - lo, r * cols + lo, shared_exp[r, b],
                                 f, mode, True, seed)
