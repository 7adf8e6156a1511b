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


cdef inline double _pow2(int e) noexcept nogil:
    """2**e, from its bits where it is a normal double: no libm call per block."""
    if -1022 <= e <= 1023:
        return qs_bits_f64(<uint64_t>(e + 1023) << 52)
    return ldexp(1.0, e)


cdef inline int _pow2_exponent(double a, const rule_t* p) noexcept nogil:
    """Unbiased scale exponent of a finite block amax a > 0, before clamping."""
    cdef int e
    cdef double m
    cdef uint64_t u = qs_f64_bits(a)
    if (u >> 52) & 0x7FF:               # normal: a = m * 2**e, 0.5 <= m < 1, from the bits
        e = <int>((u >> 52) & 0x7FF) - 1022
        m = qs_bits_f64((u & 0x000FFFFFFFFFFFFFu) | (<uint64_t>1022 << 52))
    else:
        m = frexp(a, &e)
    e = e - 1 - p.elem_emax            # floor(log2 a) - emax_elem
    if p.rule == CEIL:
        e += m != 0.5
    elif p.rule == EVEN:
        # amax rounded half up to the element's mantissa bits may reach the next binade
        e += m >= 1.0 - ldexp(1.0, -(p.elem_mbits + 2))
    elif p.rule == RCEIL:
        e += a > p.elem_max * _pow2(e)
    return e


cdef inline uint32_t _e8m0_or_pow2_code(int e, int kind) noexcept nogil:
    if kind == SK_E8M0:
        return <uint32_t>(e + 127)
    return qs_f32_bits(<float>_pow2(e))


cdef inline uint32_t _nan_scale(int kind) noexcept nogil:
    if kind == SK_E8M0:
        return 0xFF
    if kind == SK_UE4M3:
        return 0x7F
    return 0x7FC00000u


# The element loops. They run over spans of up to SPAN elements, several blocks at once, each
# element with its block's scale from a buffer: a loop over one short block (16 elements for
# NVFP4) ends before gcc's vector loop starts (it takes 32 or 64 uint8 codes at a time), and the
# scalar remainder, full of mispredicted selects, cost ~25x the vector loop. The format comes
# by value and the rounding mode as a literal (through the *_modes dispatchers), as in
# _floatcodec.pyx: through a pointer gcc must reload the format after every uint8 store (a
# char store may alias it), and a variable mode keeps its branches in the loop.

cdef enum:
    SPAN = 1024      # elements per element loop


cdef inline void _encode_pow2(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, const int* e,
                              fmt_t f, int mode, uint64_t seed) noexcept nogil:
    """out[i] = code of x[i] * 2**-e[i] (exact inside the encoder: its k argument)."""
    cdef Py_ssize_t i
    cdef uint64_t rnd = 0
    for i in range(n):
        if mode == STOCHASTIC:
            rnd = qs_random_bits(seed, <uint64_t>(first + i))
        if in_t is float:
            out[i] = <code_t>qs_encode_f32(qs_f32_bits(x[i]), e[i], &f, mode, True, rnd)
        else:
            out[i] = <code_t>qs_encode_f64(qs_f64_bits(x[i]), e[i], &f, mode, True, rnd)


cdef inline void _encode_times(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, const float* r,
                               fmt_t f, int mode, uint64_t seed) noexcept nogil:
    """out[i] = code of float32(float32(x[i]) * r[i]); RNE_FAST: through the fast encoder."""
    cdef Py_ssize_t i
    cdef uint64_t rnd = 0
    cdef float v
    for i in range(n):
        v = <float>x[i] * r[i]
        if mode == RNE_FAST:
            out[i] = <code_t>qs_encode_f32_rne_fast(qs_f32_bits(v), &f, True)
        else:
            if mode == STOCHASTIC:
                rnd = qs_random_bits(seed, <uint64_t>(first + i))
            out[i] = <code_t>qs_encode_f32(qs_f32_bits(v), 0, &f, mode, True, rnd)


cdef void _pow2_modes(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, const int* e,
                      fmt_t f, int mode, uint64_t seed) noexcept nogil:
    if mode == RNE:
        _encode_pow2(x, out, n, first, e, f, RNE, seed)
    elif mode == RTZ:
        _encode_pow2(x, out, n, first, e, f, RTZ, seed)
    elif mode == RNA:
        _encode_pow2(x, out, n, first, e, f, RNA, seed)
    elif mode == RUP:
        _encode_pow2(x, out, n, first, e, f, RUP, seed)
    elif mode == RDN:
        _encode_pow2(x, out, n, first, e, f, RDN, seed)
    else:
        _encode_pow2(x, out, n, first, e, f, STOCHASTIC, seed)


cdef void _times_modes(const in_t* x, code_t* out, Py_ssize_t n, Py_ssize_t first, const float* r,
                       fmt_t f, int mode, uint64_t seed) noexcept nogil:
    if mode == RNE_FAST:
        _encode_times(x, out, n, first, r, f, RNE_FAST, seed)
    elif mode == RNE:
        _encode_times(x, out, n, first, r, f, RNE, seed)
    elif mode == RTZ:
        _encode_times(x, out, n, first, r, f, RTZ, seed)
    elif mode == RNA:
        _encode_times(x, out, n, first, r, f, RNA, seed)
    elif mode == RUP:
        _encode_times(x, out, n, first, r, f, RUP, seed)
    elif mode == RDN:
        _encode_times(x, out, n, first, r, f, RDN, seed)
    else:
        _encode_times(x, out, n, first, r, f, STOCHASTIC, seed)


cdef struct block_t:
    bint zero        # the block's elements are all code 0 (NaN scale)
    int e            # power-of-two rules: the scale exponent
    float r          # the float32 multiplier of the elements (AMAX rule; 2**-e on the fast path)


cdef inline int _block_scale(double amax, uint32_t* scale_code, const rule_t* p, const fmt_t* sf,
                             const float* scale_values, block_t* o) noexcept nogil:
    """Scale code of one block and how its elements are scaled; returns 1 for a non-finite block."""
    cdef int e
    cdef float s
    cdef uint32_t sc
    o.zero = False
    if isnan(amax) or isinf(amax):
        scale_code[0] = _nan_scale(p.scale_kind)
        o.zero = True
        return 1
    if p.rule != AMAX:
        e = _pow2_exponent(amax, p) if amax > 0 else p.zero_exp
        if e > p.exp_max:
            scale_code[0] = _nan_scale(p.scale_kind)
            o.zero = True
            return 0
        e = e if e > p.exp_min else p.exp_min
        scale_code[0] = _e8m0_or_pow2_code(e, p.scale_kind)
        o.e = e
        # x * 2**-e is exact in float32 down to float32's subnormals, which the element
        # format rounds to zero anyway (the fast path's condition), so it may go first
        o.r = <float>_pow2(-e)
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
    o.e = 0
    o.r = p.recip_tensor / s
    return 0


cdef inline void _int_block(const in_t* x, code_t* out, Py_ssize_t n, int e, const rule_t* p) noexcept nogil:
    """Integer elements (MXINT8): code = clamp(rint(x * 2**(frac_bits - e)), qmin, qmax)."""
    cdef Py_ssize_t i
    cdef double w, m = _pow2(p.int_frac_bits - e)        # exact: a power of two
    for i in range(n):
        w = rint(x[i] * m)
        w = w if w < p.qmax else p.qmax
        w = w if w > p.qmin else p.qmin
        out[i] = <code_t>(<int>w & 0xFF)


cdef int _quantize_row(const in_t* x, code_t* out, uint32_t* scales, const double* amax_given,
                       Py_ssize_t cols, Py_ssize_t block, Py_ssize_t first, const rule_t* p, fmt_t ef,
                       const fmt_t* sf, const float* scale_values, int mode, uint64_t seed) noexcept nogil:
    """One row: each block's scale, then the elements a span at a time; returns the number of
    non-finite blocks."""
    cdef float mult[SPAN]
    cdef int exps[SPAN]
    cdef Py_ssize_t nblocks = (cols + block - 1) // block, b, lo, hi, i, j, m, start = 0, fill = 0
    cdef int nonfinite = 0
    cdef block_t blk
    blk.zero, blk.e, blk.r = False, 0, 0
    cdef double amax
    # float32 input, RNE, a format the fast encoder covers: scale in float32, then encode
    cdef bint times = p.rule == AMAX or (in_t is float and mode == RNE and ef.magic_bits != 0)
    cdef int loop_mode = RNE_FAST if times and mode == RNE and ef.magic_bits != 0 else mode
    for b in range(nblocks + 1):
        lo = b * block
        hi = lo + block if lo + block < cols else cols
        if b < nblocks:
            amax = amax_given[b] if amax_given != NULL else _block_amax(x + lo, hi - lo)
            nonfinite += _block_scale(amax, &scales[b], p, sf, scale_values, &blk)
        if b == nblocks or blk.zero or p.is_int or fill + (hi - lo) > SPAN:
            # flush the span [start, start + fill)
            if fill and times:
                _times_modes(x + start, out + start, fill, first + start, &mult[0], ef, loop_mode, seed)
            elif fill:
                _pow2_modes(x + start, out + start, fill, first + start, &exps[0], ef, mode, seed)
            start, fill = lo, 0
        if b == nblocks:
            break
        if blk.zero:
            for i in range(lo, hi):
                out[i] = 0
            start = hi
        elif p.is_int:
            _int_block(x + lo, out + lo, hi - lo, blk.e, p)
            start = hi
        else:
            # the block's scale for each of its elements, a span at a time if it is longer
            i = lo
            while i < hi:
                m = hi - i if hi - i < SPAN - fill else SPAN - fill
                for j in range(fill, fill + m):
                    mult[j] = blk.r
                    exps[j] = blk.e
                fill += m
                i += m
                if fill == SPAN and i < hi:
                    if times:
                        _times_modes(x + start, out + start, fill, first + start, &mult[0], ef, loop_mode, seed)
                    else:
                        _pow2_modes(x + start, out + start, fill, first + start, &exps[0], ef, mode, seed)
                    start, fill = i, 0
    return nonfinite


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
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1], r
    cdef bint given = amax_given.shape[0] > 0
    cdef int nonfinite = 0
    cdef const float* sv = &scale_values[0]
    if rows == 0 or cols == 0:
        return 0
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="static"):
            nonfinite += _quantize_row(&x[r, 0], &codes[r, 0], &scales[r, 0], &amax_given[r, 0] if given else NULL,
                                       cols, block, r * cols, &p, ef, &sf, sv, mode, seed)
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


ctypedef fused scale_t:
    uint8_t          # E8M0 and UE4M3 scale codes: their value from scale_table
    uint32_t         # FP32 scales: the float32 bits themselves


cdef enum:
    RUN = 1024           # blocks per parallel work item, where rows are whole blocks


cdef void _decode_blocks_f32(const code_t* codes, const scale_t* scale_codes, const float* scale_table,
                             const float* table, const qs_lut* lut, float second, float* out, Py_ssize_t n,
                             Py_ssize_t block) noexcept nogil:
    """n elements from the start of a block on (a row, or a run of whole blocks); uint8 codes
    with the table in registers (_lookup.h)."""
    cdef qs_scales scales
    cdef Py_ssize_t b, i
    cdef float s
    scales.codes = scale_codes
    scales.table = scale_table if scale_t is uint8_t else NULL
    if code_t is uint8_t:
        qs_lut_decode(lut, codes, out, n, &scales, block, second)
        return
    for b in range((n + block - 1) // block):
        s = qs_scale(&scales, b)
        for i in range(b * block, min(b * block + block, n)):
            if second == 1:
                out[i] = table[codes[i]] * s
            else:
                out[i] = (table[codes[i]] * s) * second


def decode_rows_f32(const code_t[:, ::1] codes, const scale_t[:, ::1] scales, const float[::1] scale_table,
                    const float[::1] table, float second, float[:, ::1] out, int block, int num_threads):
    """out = float32(table[code] * scale of its block) * second, in float32, from the scale
    codes (uint8: scale_table[code]; uint32: float32 bits); the caller checks that this is the
    exact product rounded once (qsim/quant/blocks.py). The table has 2**bits entries.
    Rows of whole blocks are one run of blocks, split in runs of RUN blocks: no work per row."""
    cdef Py_ssize_t rows = codes.shape[0], cols = codes.shape[1], r, c, first, nb
    cdef Py_ssize_t total = rows * scales.shape[1]
    cdef qs_lut lut
    if rows == 0 or cols == 0:
        return
    if code_t is uint8_t:
        qs_lut_init(&lut, &table[0], table.shape[0])
    with nogil:
        if cols % block == 0:
            for c in prange((total + RUN - 1) // RUN, num_threads=num_threads, schedule="static"):
                first = c * RUN
                nb = total - first if total - first < RUN else RUN
                _decode_blocks_f32(&codes[0, 0] + first * block, &scales[0, 0] + first, &scale_table[0],
                                   &table[0], &lut, second, &out[0, 0] + first * block, nb * block, block)
        else:
            for r in prange(rows, num_threads=num_threads, schedule="static"):
                _decode_blocks_f32(&codes[r, 0], &scales[r, 0], &scale_table[0], &table[0], &lut, second,
                                   &out[r, 0], cols, block)


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
