# Float codec kernels: any float32/float64 input to any minifloat code, and codes back to values.
#
# The per-element arithmetic is the branch-free encoder in _encode.h; here are the loops,
# parallel over chunks, with the rounding mode made a constant per loop.
# No validation here: the Python layer (qsim/codec.py) checks arguments.

from cython.parallel cimport prange
from libc.math cimport INFINITY, NAN, copysign, fabs, frexp, ldexp
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
    LINE = 64        # bytes per cache line


# The parallel loops split an array into CHUNK-element chunks that start on a cache line of
# the larger stream (numpy puts large arrays 16 bytes past one): vector loads and stores that
# straddle two lines cost the element loops up to a third of their speed. Chunk 0 is the part
# before the first line boundary. Each element's result depends on it alone, so the split
# changes nothing but speed.
cdef inline Py_ssize_t _head(const void* p, Py_ssize_t itemsize, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t h = ((LINE - <Py_ssize_t>(<size_t>p % LINE)) % LINE) // itemsize
    return h if h < n else n


cdef inline Py_ssize_t _nchunks(Py_ssize_t head, Py_ssize_t n) noexcept nogil:
    return 1 + (n - head + CHUNK - 1) // CHUNK


cdef inline Py_ssize_t _chunk_start(Py_ssize_t c, Py_ssize_t head, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t a = 0 if c == 0 else head + (c - 1) * CHUNK
    return a if a < n else n


cdef enum:
    STEP = 2048      # bytes of input encoded between two prefetches
    AHEAD = 4096     # and how far ahead these reach: left to the hardware prefetcher, the fast
                     # encoders wait on memory (BF16: 1.9 ms per 10M elements, 1.2 ms with them)


cdef inline void _encode_span(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, int k,
                              fmt_t f, int mode, bint sat, bint exponent_only, uint64_t seed) noexcept nogil:
    # `first` is the flat index of x[0]: stochastic bits depend on it alone, not on chunking.
    # exponent_only: an unsigned exponent-only scale format without zero (E8M0).
    cdef Py_ssize_t i
    cdef uint64_t rnd = 0
    for i in range(n):
        if mode == STOCHASTIC:
            rnd = qs_random_bits(seed, <uint64_t>(first + i))
        if exponent_only and in_t is float and mode == RNE_FAST:
            out[i] = <code_t>qs_encode_scale_f32_rne(qs_f32_bits(x[i]), &f, sat)
        elif exponent_only and in_t is float:
            out[i] = <code_t>qs_encode_scale_f32(qs_f32_bits(x[i]), &f, mode, sat, rnd)
        elif exponent_only:
            out[i] = <code_t>qs_encode_scale_f64(qs_f64_bits(x[i]), &f, mode, sat, rnd)
        elif in_t is float and mode == RNE_FAST:
            out[i] = <code_t>qs_encode_f32_rne_fast(qs_f32_bits(x[i]), &f, sat)
        elif in_t is float:
            out[i] = <code_t>qs_encode_f32(qs_f32_bits(x[i]), k, &f, mode, sat, rnd)
        else:
            out[i] = <code_t>qs_encode_f64(qs_f64_bits(x[i]), k, &f, mode, sat, rnd)


cdef inline void _encode_mode(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, int k,
                              fmt_t f, int mode, bint sat, bint exponent_only, uint64_t seed) noexcept nogil:
    if mode == RNE:
        _encode_span(x, out, n, first, k, f, RNE, sat, exponent_only, seed)
    elif mode == RTZ:
        _encode_span(x, out, n, first, k, f, RTZ, sat, exponent_only, seed)
    elif mode == RNA:
        _encode_span(x, out, n, first, k, f, RNA, sat, exponent_only, seed)
    elif mode == RUP:
        _encode_span(x, out, n, first, k, f, RUP, sat, exponent_only, seed)
    elif mode == RDN:
        _encode_span(x, out, n, first, k, f, RDN, sat, exponent_only, seed)
    elif mode == RNE_FAST:
        _encode_span(x, out, n, first, k, f, RNE_FAST, sat, exponent_only, seed)
    else:
        _encode_span(x, out, n, first, k, f, STOCHASTIC, sat, exponent_only, seed)


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
    if in_t is float and code_t is uint16_t and mode == RNE and k == 0 and f.half and QS_HAVE_F16C:
        qs_f32_to_half(x, out, n, sat)
        return
    # Literal mode and saturation per call let the compiler specialize and vectorize each loop.
    if mode == RNE and k == 0 and f.magic_bits != 0:
        mode = RNE_FAST
    if sat:
        _encode_mode(x, out, n, first, k, f, mode, True, False, seed)
    else:
        _encode_mode(x, out, n, first, k, f, mode, False, False, seed)


cdef void _encode_exponent_only(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, fmt_t f,
                                int mode, bint sat, uint64_t seed) noexcept nogil:
    if in_t is float and mode == RNE:
        mode = RNE_FAST
    if sat:
        _encode_mode(x, out, n, first, 0, f, mode, True, True, seed)
    else:
        _encode_mode(x, out, n, first, 0, f, mode, False, True, seed)


cdef void _encode_chunk(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, fmt_t f, int mode,
                        bint sat, bint exponent_only, uint64_t seed) noexcept nogil:
    cdef Py_ssize_t a = 0, m, step = STEP // sizeof(in_t)
    while a < n:
        m = n - a if n - a < step else step
        qs_prefetch(x + a, AHEAD, STEP)
        if exponent_only:
            _encode_exponent_only(x + a, out + a, m, first + a, f, mode, sat, seed)
        else:
            _encode_dispatch(x + a, out + a, m, first + a, 0, f, mode, sat, seed)
        a += m


def encode(const in_t[::1] x, code_t[::1] out, fmt_t f, int mode, bint sat, uint64_t seed,
           int num_threads, bint exponent_only=False):
    """out[i] = code of x[i] in format f; exponent_only: f is an unsigned exponent-only scale
    format without zero (E8M0)."""
    cdef Py_ssize_t n = x.shape[0], head, c, lo, hi
    if n == 0:
        return
    head = _head(&x[0], sizeof(in_t), n)
    with nogil:
        for c in prange(_nchunks(head, n), num_threads=num_threads, schedule="static"):
            lo = _chunk_start(c, head, n)
            hi = _chunk_start(c + 1, head, n)
            _encode_chunk(&x[0] + lo, &out[0] + lo, hi - lo, lo, f, mode, sat, exponent_only, seed)


def gather(const code_t[::1] codes, const val_t[::1] table, val_t[::1] out, int num_threads):
    """out[i] = table[codes[i]]: decoding through a table of every code's value (uint8 codes to
    float32 with the table in registers, _lookup.h; the table has 2**bits entries)."""
    cdef Py_ssize_t n = codes.shape[0], head, c, lo, hi, i
    cdef qs_lut lut
    if n == 0:
        return
    if code_t is uint8_t and val_t is float:
        qs_lut_init(&lut, &table[0], table.shape[0])
    head = _head(&out[0], sizeof(val_t), n)
    with nogil:
        for c in prange(_nchunks(head, n), num_threads=num_threads, schedule="static"):
            lo = _chunk_start(c, head, n)
            hi = _chunk_start(c + 1, head, n)
            if code_t is uint8_t and val_t is float:
                qs_lut_decode(&lut, &codes[0] + lo, &out[0] + lo, hi - lo, NULL, 0, 1)
            else:
                for i in range(lo, hi):
                    out[i] = table[codes[i]]


ctypedef fused wide_t:
    uint32_t         # the float32's bits
    double           # its value


def widen(const code_t[::1] codes, wide_t[::1] out, int shift, int num_threads):
    """Decoding formats that are the top bits of float32 (BF16): out[i] = codes[i] << shift as
    float32 bits, or that float32's value as a float64."""
    cdef Py_ssize_t n = codes.shape[0], head, c, lo, hi, i
    if n == 0:
        return
    head = _head(&out[0], sizeof(wide_t), n)
    with nogil:
        for c in prange(_nchunks(head, n), num_threads=num_threads, schedule="static"):
            lo = _chunk_start(c, head, n)
            hi = _chunk_start(c + 1, head, n)
            for i in range(lo, hi):
                if wide_t is double:
                    out[i] = <double>qs_bits_f32((<uint32_t>codes[i]) << shift)
                else:
                    out[i] = (<uint32_t>codes[i]) << shift


HAVE_F16C = bool(QS_HAVE_F16C)


def half_prefix(codes, float[::1] out, int num_threads):
    """out[i] = float(half(code << (16 - code bits))): FP16 and E5M2 through F16C."""
    cdef const uint8_t[::1] c8
    cdef const uint16_t[::1] c16
    cdef Py_ssize_t n = out.shape[0], head, c, lo, hi
    cdef bint narrow = codes.dtype.itemsize == 1
    if n == 0:
        return
    if narrow:
        c8 = codes
    else:
        c16 = codes
    head = _head(&out[0], sizeof(float), n)
    with nogil:
        for c in prange(_nchunks(head, n), num_threads=num_threads, schedule="static"):
            lo = _chunk_start(c, head, n)
            hi = _chunk_start(c + 1, head, n)
            if narrow:
                qs_half_prefix_to_f32_u8(&c8[0] + lo, &out[0] + lo, hi - lo)
            else:
                qs_half_prefix_to_f32_u16(&c16[0] + lo, &out[0] + lo, hi - lo)


# A float format as the arithmetic decoder reads it (qsim/codec.py `value_params`).
cdef struct value_fmt_t:
    int mbits
    int bias
    int specials          # IEEE, FN, FNUZ or NONE
    bint subnormals
    bint has_zero         # False: exponent field 0 is an ordinary binade (E8M0)
    uint32_t sign_bit
    uint32_t magnitude_mask


cdef enum:
    IEEE = 0
    FN = 1
    FNUZ = 2


cdef inline double _code_value(uint32_t c, const value_fmt_t* v) noexcept nogil:
    """The exact value of code c (a float64 holds every value of a FloatFormat); NaN codes
    give the positive quiet NaN."""
    cdef uint32_t mag = c & v.magnitude_mask
    cdef uint64_t e = mag >> v.mbits, m = mag & ((<uint64_t>1 << v.mbits) - 1)
    cdef double x
    if v.has_zero and e == 0:
        x = ldexp(<double>m, 1 - v.bias - v.mbits) if v.subnormals else 0.0
    else:
        x = ldexp(<double>(m + (<uint64_t>1 << v.mbits)), <int>e - v.bias - v.mbits)
    if c & v.sign_bit:
        x = -x
    if v.specials == IEEE and mag >> v.mbits == v.magnitude_mask >> v.mbits:
        x = copysign(INFINITY, x) if m == 0 else NAN
    elif v.specials == FN and mag == v.magnitude_mask:
        x = NAN
    elif v.specials == FNUZ and c == v.sign_bit:
        x = NAN
    return x


def decode_values(const uint32_t[::1] codes, val_t[::1] out, value_fmt_t v, int num_threads):
    """out[i] = value of codes[i], computed (the value tables, and formats too wide for one)."""
    cdef Py_ssize_t n = codes.shape[0], i
    if n == 0:
        return
    with nogil:
        for i in prange(n, num_threads=num_threads, schedule="static"):
            out[i] = <val_t>_code_value(codes[i], &v)


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
    cdef Py_ssize_t n = x.shape[0], head, c, lo, hi
    if n == 0:
        return
    head = _head(&x[0], sizeof(in_t), n)
    with nogil:
        for c in prange(_nchunks(head, n), num_threads=num_threads, schedule="static"):
            lo = _chunk_start(c, head, n)
            hi = _chunk_start(c + 1, head, n)
            _roundtrip(&x[0] + lo, &out[0] + lo, &table[0], hi - lo, lo, f, mode, sat, seed)


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
