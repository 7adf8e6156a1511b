# Float codec kernels: any float32/float64 input to any minifloat code, and codes back to values.
#
# One generic encoder serves every format: it reads the input's sign, exponent and significand,
# moves the exponent into the target's bias, shifts the significand right by the number of bits
# the target cannot hold (more below the smallest normal), and rounds that integer shift.  A
# carry out of the mantissa propagates into the exponent field by itself, so normals,
# subnormals and the step from the largest subnormal to the smallest normal need no branches.
# No validation here: the Python layer (qsim/codec.py) checks arguments.

from cython.parallel cimport prange
from _common cimport *

ctypedef fused ubits_t:
    uint32_t
    uint64_t

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


cdef inline ubits_t _round_shift(ubits_t v, int s, int mode, ubits_t neg, ubits_t rnd) noexcept nogil:
    """v / 2**s rounded to an integer by `mode`; `neg` is the sign, for the directed modes."""
    cdef ubits_t one = 1
    cdef ubits_t q = v >> s
    cdef ubits_t mask = (one << s) - one
    cdef ubits_t rem = v & mask
    cdef ubits_t half = (one << s) >> 1
    if mode == RNE:
        q += (rem > half) | ((rem == half) & (half != 0) & ((q & one) != 0))
    elif mode == RNA:
        q += (rem >= half) & (half != 0)
    elif mode == RUP:
        q += (rem != 0) & (neg == 0)
    elif mode == RDN:
        q += (rem != 0) & (neg != 0)
    elif mode == STOCHASTIC:
        q += (rem + (rnd & mask)) >> s
    return q


cdef inline bint _overflows_to_special(int mode, uint32_t neg) noexcept nogil:
    """IEEE 754 7.4: directed rounding toward the finite side overflows to the largest finite."""
    if mode == RTZ:
        return False
    if mode == RUP:
        return neg == 0
    if mode == RDN:
        return neg != 0
    return True


cdef inline uint32_t _encode_one(ubits_t u, int in_ebits, int in_mbits, int k, fmt_t f,
                                 int mode, bint sat, uint64_t rnd) noexcept nogil:
    """Code of the float with bits `u` times 2**-k in format `f`."""
    cdef int width = 1 + in_ebits + in_mbits
    cdef int in_bias = (1 << (in_ebits - 1)) - 1
    cdef int e_special = (1 << in_ebits) - 1
    cdef ubits_t one = 1
    cdef ubits_t neg = u >> (width - 1)
    cdef ubits_t mant = u & ((one << in_mbits) - one)
    cdef int e_field = <int>((u >> in_mbits) & <ubits_t>e_special)
    cdef int e = e_field
    cdef ubits_t sig
    cdef int lz, et, d, s
    cdef ubits_t q
    cdef uint32_t mag, code
    cdef bint nan = False

    if e_field == 0:        # subnormal or zero input: normalize so bit in_mbits is set
        if ubits_t is uint32_t:
            lz = qs_clz32(<uint32_t>(mant | one)) - (31 - in_mbits)
        else:
            lz = qs_clz64(<uint64_t>(mant | one)) - (63 - in_mbits)
        sig = mant << lz
        e = 1 - lz
    else:
        sig = mant | (one << in_mbits)

    et = e - in_bias - k + f.bias           # biased exponent the value has in the target
    d = 1 - et                              # extra right shift below the smallest normal
    if d < 0:
        d = 0
    s = in_mbits - f.mbits + d
    if s > <int>(8 * sizeof(ubits_t)) - 1:
        s = <int>(8 * sizeof(ubits_t)) - 1
    q = _round_shift(sig, s, mode, neg, <ubits_t>rnd) + ((<ubits_t>(et - 1 + d)) << f.mbits)
    if not f.subnormals and et < 1:
        q = 0

    if q > f.max_code:
        if sat or not _overflows_to_special(mode, <uint32_t>neg):
            q = f.max_code
        elif f.has_inf:
            q = f.inf_code
        else:
            nan = True
    if e_field == e_special:
        if mant != 0:
            nan = True
        elif sat:
            q = f.max_code
        elif f.has_inf:
            q = f.inf_code
        else:
            nan = True

    mag = <uint32_t>q
    code = mag | (f.sign_bit if neg else 0)
    if f.nan_is_sign_code:
        if mag == 0:
            code = 0
        if nan:
            code = f.sign_bit
    elif nan:
        code = f.nan_code | (f.sign_bit if neg else 0)
        if f.ieee_nan:      # keep the top payload bits, as IEEE conversions do
            code = code | <uint32_t>(mant >> (in_mbits - f.mbits))
    return code


cdef inline uint32_t _encode_scale_one(ubits_t u, int in_ebits, int in_mbits, fmt_t f,
                                       int mode, bint sat, uint64_t rnd) noexcept nogil:
    """Unsigned exponent-only scale (E8M0): no zero, no sign, NaN code all ones."""
    cdef int width = 1 + in_ebits + in_mbits
    cdef int in_bias = (1 << (in_ebits - 1)) - 1
    cdef int e_special = (1 << in_ebits) - 1
    cdef ubits_t one = 1
    cdef ubits_t neg = u >> (width - 1)
    cdef ubits_t mant = u & ((one << in_mbits) - one)
    cdef int e_field = <int>((u >> in_mbits) & <ubits_t>e_special)
    cdef int e = e_field, lz
    cdef ubits_t sig
    cdef int64_t code
    if neg or (e_field == 0 and mant == 0) or (e_field == e_special and mant != 0):
        return f.nan_code           # negative, zero and NaN have no code
    if e_field == e_special:
        return f.max_code if sat else f.nan_code
    if e_field == 0:
        if ubits_t is uint32_t:
            lz = qs_clz32(<uint32_t>mant) - (31 - in_mbits)
        else:
            lz = qs_clz64(<uint64_t>mant) - (63 - in_mbits)
        sig = mant << lz
        e = 1 - lz
    else:
        sig = mant | (one << in_mbits)
    # sig >> in_mbits is 1; rounding may carry it to 2 (the next binade)
    code = <int64_t>(e - in_bias + f.bias - 1) + <int64_t>_round_shift(sig, in_mbits, mode, 0, <ubits_t>rnd)
    if code < 0:
        code = 0                    # below the smallest scale: clamp, there is no zero
    if code > f.max_code:
        code = f.max_code if sat else f.nan_code
    return <uint32_t>code


cdef inline void _encode_span(const in_t* x, code_t* out, Py_ssize_t lo, Py_ssize_t hi, int k,
                              fmt_t f, int mode, bint sat, uint64_t seed) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t rnd = 0
    for i in range(lo, hi):
        if mode == STOCHASTIC:
            rnd = qs_random_bits(seed, <uint64_t>i)
        if in_t is float:
            out[i] = <code_t>_encode_one(qs_f32_bits(x[i]), 8, 23, k, f, mode, sat, rnd)
        else:
            out[i] = <code_t>_encode_one(qs_f64_bits(x[i]), 11, 52, k, f, mode, sat, rnd)


cdef void _encode_dispatch(const in_t* x, code_t* out, Py_ssize_t lo, Py_ssize_t hi, int k,
                           fmt_t f, int mode, bint sat, uint64_t seed) noexcept nogil:
    # A literal mode per call lets the compiler specialize (and vectorize) each span loop.
    if mode == RNE:
        _encode_span(x, out, lo, hi, k, f, RNE, sat, seed)
    elif mode == RTZ:
        _encode_span(x, out, lo, hi, k, f, RTZ, sat, seed)
    elif mode == RNA:
        _encode_span(x, out, lo, hi, k, f, RNA, sat, seed)
    elif mode == RUP:
        _encode_span(x, out, lo, hi, k, f, RUP, sat, seed)
    elif mode == RDN:
        _encode_span(x, out, lo, hi, k, f, RDN, sat, seed)
    else:
        _encode_span(x, out, lo, hi, k, f, STOCHASTIC, sat, seed)


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
            _encode_dispatch(&x[0], &out[0], c * CHUNK, hi, 0, f, mode, sat, seed)


def encode_scale(const in_t[::1] x, code_t[::1] out, fmt_t f, int mode, bint sat, uint64_t seed):
    """out[i] = code of x[i] in an unsigned exponent-only scale format (E8M0)."""
    cdef Py_ssize_t i
    cdef uint64_t rnd = 0
    with nogil:
        for i in range(x.shape[0]):
            if mode == STOCHASTIC:
                rnd = qs_random_bits(seed, <uint64_t>i)
            if in_t is float:
                out[i] = <code_t>_encode_scale_one(qs_f32_bits(x[i]), 8, 23, f, mode, sat, rnd)
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


cdef inline void _roundtrip_span(const in_t* x, in_t* out, const in_t* table, Py_ssize_t lo,
                                 Py_ssize_t hi, fmt_t f, int mode, bint sat, uint64_t seed) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t rnd = 0
    cdef uint32_t code
    for i in range(lo, hi):
        if mode == STOCHASTIC:
            rnd = qs_random_bits(seed, <uint64_t>i)
        if in_t is float:
            code = _encode_one(qs_f32_bits(x[i]), 8, 23, 0, f, mode, sat, rnd)
        else:
            code = _encode_one(qs_f64_bits(x[i]), 11, 52, 0, f, mode, sat, rnd)
        out[i] = table[code]


cdef void _roundtrip_dispatch(const in_t* x, in_t* out, const in_t* table, Py_ssize_t lo,
                              Py_ssize_t hi, fmt_t f, int mode, bint sat, uint64_t seed) noexcept nogil:
    if mode == RNE:
        _roundtrip_span(x, out, table, lo, hi, f, RNE, sat, seed)
    elif mode == RTZ:
        _roundtrip_span(x, out, table, lo, hi, f, RTZ, sat, seed)
    elif mode == RNA:
        _roundtrip_span(x, out, table, lo, hi, f, RNA, sat, seed)
    elif mode == RUP:
        _roundtrip_span(x, out, table, lo, hi, f, RUP, sat, seed)
    elif mode == RDN:
        _roundtrip_span(x, out, table, lo, hi, f, RDN, sat, seed)
    else:
        _roundtrip_span(x, out, table, lo, hi, f, STOCHASTIC, sat, seed)


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
            _roundtrip_dispatch(&x[0], &out[0], &table[0], c * CHUNK, hi, f, mode, sat, seed)


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
                _encode_dispatch(&x[0, 0], &out[0, 0], r * cols + lo,
                                 r * cols + hi, shared_exp[r, b], f, mode, True, seed)
