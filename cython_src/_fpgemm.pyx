# Floating-point GEMM with modelled accumulators, on exactly decoded operands (double).
#
# Sequential or pairwise adds rounded into any accumulator format; a fused multi-term unit
# (align to the largest exponent, keep B bits, one normalization) with optional promotion
# to an FP32 accumulator every N_C products. Work items are (row, column tile), so results
# do not depend on the thread count. No validation here: qsim/datapaths/floating.py checks.

from cython.parallel cimport prange
from libc.math cimport rint, fabs
from _common cimport *
from _enums cimport *

cdef extern from "_fpaccum.h" nogil:
    double qs_sum_to_odd(double a, double b)
    int qs_exponent(double x)
    double qs_pow2(int e)
    uint64_t qs_dbits(double x)
    void qs_axpy_f32(float* acc, const float* b, float a, Py_ssize_t n)
    int qs_group_products(const double* a, const double* b, double* p, Py_ssize_t g, int* special)
    int64_t qs_group_align_sum(const double* p, Py_ssize_t g, double scale, int round_even, int64_t* absorbed)
    void qs_axpy4_f32(float* c0, float* c1, float* c2, float* c3, const float* b, float a0, float a1,
                      float a2, float a3, Py_ssize_t n)
    void qs_axpy4_f64(double* c0, double* c1, double* c2, double* c3, const float* b, double a0, double a1,
                      double a2, double a3, Py_ssize_t n)

cdef enum:
    BLOCK = 16        # rows and columns per work item of the per-output kernels

ENUMS = kernel_enums()


cdef struct acc_t:
    fmt_t f
    int mode
    bint sat
    const double* table      # value of each code, or NULL: codes are float32 bits
    double max_finite


cdef inline double _round_into(double v, const acc_t* c, int64_t* ev) noexcept nogil:
    """v (rounded to odd) rounded into the accumulator format, counting overflow/saturation."""
    cdef uint32_t code = qs_encode_f64(qs_dbits(v), 0, &c.f, c.mode, c.sat, 0)
    cdef double r = c.table[code] if c.table != NULL else <double>qs_bits_f32(code)
    if fabs(v) > c.max_finite and v - v == 0:
        if c.sat:
            ev[EVENT_SATURATED] += 1
        elif r - r != 0:
            ev[EVENT_OVERFLOW] += 1
    return r


cdef inline double _add(double acc, double p, const acc_t* c, int64_t* ev) noexcept nogil:
    cdef double r = _round_into(qs_sum_to_odd(acc, p), c, ev)
    if p != 0 and r == acc and p - p == 0:
        ev[EVENT_ABSORBED] += 1
    return r


def sequential_f32(const float[:, ::1] a, const float[:, ::1] b, float[:, ::1] out, int num_threads):
    """IEEE float32 sequential accumulation of exact float32 products (the fast path)."""
    cdef Py_ssize_t M = a.shape[0], K = a.shape[1], N = b.shape[1]
    cdef Py_ssize_t tiles = (N + 255) // 256, blocks = (M + 3) // 4, item, m0, m, n0, n, k
    if M == 0 or N == 0:
        return
    with nogil:
        for item in prange(blocks * tiles, num_threads=num_threads, schedule="static"):
            m0 = (item // tiles) * 4
            n0 = (item % tiles) * 256
            n = min(256, N - n0)
            if m0 + 4 <= M:           # four rows share each load of b: a quarter of the traffic
                for k in range(K):
                    qs_axpy4_f32(&out[m0, n0], &out[m0 + 1, n0], &out[m0 + 2, n0], &out[m0 + 3, n0],
                                 &b[k, n0], a[m0, k], a[m0 + 1, k], a[m0 + 2, k], a[m0 + 3, k], n)
            else:
                for m in range(m0, M):
                    for k in range(K):
                        qs_axpy_f32(&out[m, n0], &b[k, n0], a[m, k], n)


def reference_f32(const float[:, :, ::1] a, const float[:, :, ::1] b, float[:, :, ::1] out, int num_threads):
    """The FP32 reference product of each batch item, a[i] (M, K) @ b[i] (K, N): exact products
    summed in double in k order, rounded once to float32. Work items are (batch item, 4 rows,
    256 columns) and each output is summed inside one item, so results do not depend on the
    thread count (nor, products being exact in double, on FMA contraction)."""
    cdef Py_ssize_t B = a.shape[0], M = a.shape[1], N = b.shape[2]
    cdef Py_ssize_t tiles = (N + 255) // 256, blocks = (M + 3) // 4, item
    if B == 0 or M == 0 or N == 0:
        return
    with nogil:
        for item in prange(B * blocks * tiles, num_threads=num_threads, schedule="static"):
            _reference_item(a, b, out, item // (blocks * tiles), (item // tiles) % blocks * 4, (item % tiles) * 256)


cdef void _reference_item(const float[:, :, ::1] a, const float[:, :, ::1] b, float[:, :, ::1] out,
                          Py_ssize_t i, Py_ssize_t m0, Py_ssize_t n0) noexcept nogil:
    cdef double acc[4][256]
    cdef double a_r[4]
    cdef Py_ssize_t K = a.shape[2], n = min(256, b.shape[2] - n0), rows = min(4, a.shape[1] - m0), r, j, k
    for r in range(4):
        for j in range(n):
            acc[r][j] = 0.0
    for k in range(K):                # four rows share each load of b
        for r in range(4):
            a_r[r] = a[i, m0 + r, k] if r < rows else 0.0
        qs_axpy4_f64(&acc[0][0], &acc[1][0], &acc[2][0], &acc[3][0], &b[i, k, n0], a_r[0], a_r[1], a_r[2], a_r[3], n)
    for r in range(rows):
        for j in range(n):
            out[i, m0 + r, n0 + j] = <float>acc[r][j]


def sequential(const double[:, ::1] a, const double[:, ::1] bt, double[:, ::1] out, int64_t[:, :, ::1] events,
               fmt_t f, int mode, bint sat, const double[::1] table, double max_finite, int order,
               int num_threads):
    """out[m, n] = sum_k a[m, k] * bt[n, k], each add rounded into the accumulator format.
    order: an ORDER_* (_enums.pxd). events[m, n, EVENT_*]."""
    cdef acc_t c
    c.f = f
    c.mode = mode
    c.sat = sat
    c.table = &table[0] if table.shape[0] else NULL
    c.max_finite = max_finite
    cdef Py_ssize_t M = a.shape[0], K = a.shape[1], N = bt.shape[0], item, m, j, k, width, i
    cdef double acc
    cdef double* tree
    if M == 0 or N == 0:
        return
    with nogil:
        for item in prange(M * N, num_threads=num_threads, schedule="static"):
            m = item // N
            j = item % N
            acc = 0.0
            if order == ORDER_PAIRWISE:
                acc = _tree(a, bt, m, j, &c, &events[m, j, 0])
            else:
                for i in range(K):
                    k = K - 1 - i if order == ORDER_REVERSED else i
                    acc = _add(acc, a[m, k] * bt[j, k], &c, &events[m, j, 0])
            out[m, j] = acc


cdef double _tree(const double[:, ::1] a, const double[:, ::1] bt, Py_ssize_t m, Py_ssize_t j,
                  const acc_t* c, int64_t* ev) noexcept nogil:
    """Adder tree over the products, each node rounded into the accumulator format. Level by
    level in place, over a stack buffer of 512 nodes per pass and a sequential fold of passes."""
    cdef double level[512]
    cdef double total = 0.0
    cdef Py_ssize_t K = a.shape[1], k0, n, i, width
    k0 = 0
    while k0 < K:
        n = min(512, K - k0)
        for i in range(n):
            level[i] = _round_into(a[m, k0 + i] * bt[j, k0 + i], c, ev)
        width = n
        while width > 1:
            for i in range(width // 2):
                level[i] = _add(level[2 * i], level[2 * i + 1], c, ev)
            if width % 2:
                level[width // 2] = level[width - 1]
            width = (width + 1) // 2
        total = level[0] if k0 == 0 else _add(total, level[0], c, ev)
        k0 += n
    return total


def fused(const double[:, ::1] a, const double[:, ::1] bt, double[:, ::1] out, int64_t[:, :, ::1] events,
          int group, int bits, int align, fmt_t f, int mode, bint sat, const double[::1] table,
          double max_finite, int promote_every, fmt_t outer, int num_threads):
    """Fused multi-term unit: each group of `group` products and the running sum are aligned
    to the largest exponent among them, kept to `bits` bits below and including its leading
    bit (truncated toward zero, or rounded half even: align, an ALIGN_*), summed exactly and
    normalized once into the accumulator format. promote_every > 0: every that many products
    the partial sum is added to an outer FP32 (round to nearest even) accumulator and reset."""
    cdef acc_t c, o
    c.f = f
    c.mode = mode
    c.sat = sat
    c.table = &table[0] if table.shape[0] else NULL
    c.max_finite = max_finite
    o.f = outer
    o.mode = RNE
    o.sat = False
    o.table = NULL
    o.max_finite = 3.4028234663852886e38
    cdef Py_ssize_t M = a.shape[0], N = bt.shape[0], item, m, j, mb = (M + BLOCK - 1) // BLOCK
    cdef Py_ssize_t nb = (N + BLOCK - 1) // BLOCK
    if M == 0 or N == 0:
        return
    with nogil:                       # blocks of rows x columns: their operand rows stay in cache
        for item in prange(mb * nb, num_threads=num_threads, schedule="static"):
            for m in range((item // nb) * BLOCK, min(M, (item // nb + 1) * BLOCK)):
                for j in range((item % nb) * BLOCK, min(N, (item % nb + 1) * BLOCK)):
                    out[m, j] = _fused_one(a, bt, m, j, group, bits, align == ALIGN_RNE, &c, promote_every, &o,
                                           &events[m, j, 0])


cdef double _fused_one(const double[:, ::1] a, const double[:, ::1] bt, Py_ssize_t m, Py_ssize_t j,
                       int group, int bits, bint round_align, const acc_t* c, int promote_every,
                       const acc_t* o, int64_t* ev) noexcept nogil:
    cdef Py_ssize_t K = a.shape[1], k0 = 0, kk, g
    cdef double acc = 0.0, total = 0.0, p, scale
    cdef int emax, e, lsb
    cdef int64_t s
    cdef int special
    cdef double prods[256]
    while k0 < K:
        g = min(group, K - k0)
        if promote_every > 0:
            g = min(g, promote_every - k0 % promote_every)
        emax = qs_group_products(&a[m, k0], &bt[j, k0], &prods[0], g, &special)
        e = qs_exponent(acc)
        emax = e if e > emax else emax
        special = special or acc - acc != 0
        if special:                       # Inf or NaN: IEEE arithmetic decides
            for kk in range(g):
                acc = acc + prods[kk]
            if acc - acc != 0:
                ev[EVENT_OVERFLOW] += 1
        elif emax > -100000:
            lsb = emax - bits + 1
            scale = qs_pow2(-lsb)
            s = _align(acc, scale, round_align, ev)
            s += qs_group_align_sum(&prods[0], g, scale, round_align, &ev[EVENT_ABSORBED])
            acc = _round_into(<double>s * qs_pow2(lsb), c, ev)
        k0 += g
        if promote_every > 0 and (k0 % promote_every == 0 or k0 == K):
            total = _round_into(qs_sum_to_odd(total, acc), o, ev)
            acc = 0.0
    return total if promote_every > 0 else acc


cdef inline int64_t _align(double v, double scale, bint round_align, int64_t* ev) noexcept nogil:
    """v in units of the group's last kept bit: truncated toward zero (or rounded half even)."""
    cdef double t = v * scale
    cdef int64_t r = <int64_t>(rint(t) if round_align else t)
    if v != 0 and r == 0:
        ev[EVENT_ABSORBED] += 1
    return r
