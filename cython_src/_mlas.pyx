# ONNX Runtime's float32 GEMM (MLAS SGEMM on x86) in its own order of operations.
#
# Each output is a chain of fused multiply-adds over one block of K (MLAS's StrideK), from
# zero; each block's sum then joins the output: the first (zero mode) as acc * alpha, the
# others as fma(acc, alpha, out). The block size is the caller's (qsim/sim/ort_kernels.py
# derives it as MLAS does). Work items are (batch, row, column tile): any thread count gives
# the same bits. No validation here.

from cython.parallel cimport prange
from libc.math cimport fmaf

cdef enum:
    TILE = 256        # columns per work item
    DOT_TILE = 64     # rows and columns per block of int8_dots


def fma_chain(const float[:, :, ::1] a, const float[:, :, ::1] b, float[:, :, ::1] out, Py_ssize_t kblock,
              float alpha, bint zero_mode, int num_threads):
    """out[i, m, n] = blocks of sum_k fma(a[i, m, k], b[i, k, n], .) joined as MLAS joins them."""
    cdef Py_ssize_t B = a.shape[0], M = a.shape[1], K = a.shape[2], N = b.shape[2]
    cdef Py_ssize_t tiles = (N + TILE - 1) // TILE, item, i, m, n0
    if B == 0 or M == 0 or N == 0:
        return
    with nogil:
        for item in prange(B * M * tiles, num_threads=num_threads, schedule="static"):
            i = item // (M * tiles)
            m = (item // tiles) % M
            n0 = (item % tiles) * TILE
            _row_tile(a, b, out, i, m, n0, min(TILE, N - n0), K, kblock, alpha, zero_mode)


cdef void _row_tile(const float[:, :, ::1] a, const float[:, :, ::1] b, float[:, :, ::1] out, Py_ssize_t i,
                    Py_ssize_t m, Py_ssize_t n0, Py_ssize_t n, Py_ssize_t K, Py_ssize_t kblock, float alpha,
                    bint zero_mode) noexcept nogil:
    cdef float acc[TILE]
    cdef float* o = &out[i, m, n0]
    cdef const float* brow
    cdef float av
    cdef Py_ssize_t k0 = 0, k, j
    cdef bint first = zero_mode
    if K == 0:
        if zero_mode:
            for j in range(n):
                o[j] = 0.0
        return
    while k0 < K:
        for j in range(n):
            acc[j] = 0.0
        for k in range(k0, min(K, k0 + kblock)):
            av = a[i, m, k]
            brow = &b[i, k, n0]
            for j in range(n):
                acc[j] = fmaf(av, brow[j], acc[j])
        if first:
            for j in range(n):
                o[j] = acc[j] * alpha
            first = False
        else:
            for j in range(n):
                o[j] = fmaf(acc[j], alpha, o[j])
        k0 += kblock


ctypedef fused a_t:
    unsigned char
    signed char

ctypedef fused b_t:
    unsigned char
    signed char


def int8_dots(const a_t[:, ::1] a, const b_t[:, ::1] bt, long long[:, ::1] out, int num_threads):
    """out[m, n] = sum_k a[m, k] * bt[n, k], exact (8-bit operands, |sum| < 2^31 for K < 2^16):
    the raw products an 8-bit GEMM sums before its zero-point correction. Blocks of 64 x 64
    outputs keep both operand panels in cache; within them 2 x 4 dot products share their
    loads, and compilers turn each into VNNI instructions."""
    cdef Py_ssize_t M = a.shape[0], N = bt.shape[0]
    cdef Py_ssize_t mt = (M + DOT_TILE - 1) // DOT_TILE, nt = (N + DOT_TILE - 1) // DOT_TILE, item
    if M == 0 or N == 0:
        return
    with nogil:
        for item in prange(mt * nt, num_threads=num_threads, schedule="static"):
            _dot_tile(a, bt, out, (item // nt) * DOT_TILE, (item % nt) * DOT_TILE)


cdef void _dot_tile(const a_t[:, ::1] a, const b_t[:, ::1] bt, long long[:, ::1] out, Py_ssize_t m0,
                    Py_ssize_t n0) noexcept nogil:
    cdef Py_ssize_t M = min(a.shape[0], m0 + DOT_TILE), N = min(bt.shape[0], n0 + DOT_TILE), K = a.shape[1]
    cdef Py_ssize_t m, n, k, j
    cdef int c00, c01, c02, c03, c10, c11, c12, c13, acc
    cdef const a_t* a0
    cdef const a_t* a1
    cdef const b_t* b0
    cdef const b_t* b1
    cdef const b_t* b2
    cdef const b_t* b3
    m = m0
    while m + 2 <= M:
        a0 = &a[m, 0]
        a1 = &a[m + 1, 0]
        n = n0
        while n + 4 <= N:
            b0 = &bt[n, 0]
            b1 = &bt[n + 1, 0]
            b2 = &bt[n + 2, 0]
            b3 = &bt[n + 3, 0]
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = 0
            for k in range(K):
                c00 = c00 + <int>a0[k] * <int>b0[k]
                c01 = c01 + <int>a0[k] * <int>b1[k]
                c02 = c02 + <int>a0[k] * <int>b2[k]
                c03 = c03 + <int>a0[k] * <int>b3[k]
                c10 = c10 + <int>a1[k] * <int>b0[k]
                c11 = c11 + <int>a1[k] * <int>b1[k]
                c12 = c12 + <int>a1[k] * <int>b2[k]
                c13 = c13 + <int>a1[k] * <int>b3[k]
            out[m, n] = c00
            out[m, n + 1] = c01
            out[m, n + 2] = c02
            out[m, n + 3] = c03
            out[m + 1, n] = c10
            out[m + 1, n + 1] = c11
            out[m + 1, n + 2] = c12
            out[m + 1, n + 3] = c13
            n = n + 4
        for j in range(n, N):
            out[m, j] = _dot(a0, &bt[j, 0], K)
            out[m + 1, j] = _dot(a1, &bt[j, 0], K)
        m = m + 2
    for j in range(m, M):
        for n in range(n0, N):
            out[j, n] = _dot(&a[j, 0], &bt[n, 0], K)


cdef inline int _dot(const a_t* x, const b_t* y, Py_ssize_t K) noexcept nogil:
    cdef int acc = 0
    cdef Py_ssize_t k
    for k in range(K):
        acc = acc + <int>x[k] * <int>y[k]
    return acc


# -- elementwise and per-row float kernels (the numpy statements in qsim/sim/ort_kernels.py are their
#    reference; see there for what each step models) -------------------------------------------------

from libc.math cimport sqrtf, ldexpf
from libc.stdint cimport uint32_t, int32_t
from libc.string cimport memcpy

cdef inline uint32_t _bits(float x) noexcept nogil:
    cdef uint32_t u
    memcpy(&u, &x, 4)
    return u

cdef inline float _float(uint32_t u) noexcept nogil:
    cdef float x
    memcpy(&x, &u, 4)
    return x

cdef float ERF_SMALL[6]
cdef float ERF_BIG[7]
cdef float EXP_POLY[7]
cdef float LOGISTIC_ALPHA[5]
cdef float LOGISTIC_BETA[6]
cdef float SUMEXP_POLY[7]
cdef float EXP_LOWER, LOG2E, EXP_C, LN2_HI, LN2_LO, EXP_LOW, ROUND_BIAS


def set_constants(erf_small, erf_big, exp_poly, logistic_alpha, logistic_beta, sumexp_poly, scalars):
    """The float32 constants of MLAS's kernels, set once from qsim/sim/ort_kernels.py (defined there)."""
    global EXP_LOWER, LOG2E, EXP_C, LN2_HI, LN2_LO, EXP_LOW, ROUND_BIAS
    cdef int i
    for i in range(6):
        ERF_SMALL[i] = erf_small[i]
        LOGISTIC_BETA[i] = logistic_beta[i]
    for i in range(7):
        ERF_BIG[i] = erf_big[i]
        EXP_POLY[i] = exp_poly[i]
        SUMEXP_POLY[i] = sumexp_poly[i]
    for i in range(5):
        LOGISTIC_ALPHA[i] = logistic_alpha[i]
    EXP_LOWER, LOG2E, EXP_C, LN2_HI, LN2_LO, EXP_LOW, ROUND_BIAS = scalars


cdef inline float _erf(float x) noexcept nogil:
    # branch-free, as the vector kernel is (so that compilers vectorize the loops that call it)
    cdef uint32_t b = _bits(x)
    cdef uint32_t sign = b & 0x80000000u
    cdef float a = _float(b & 0x7FFFFFFFu), s, small, ab, big, r, f, y, pow2
    cdef bint big_lane
    a = <float>3.925 if a > <float>3.925 else a
    s = a * a
    small = fmaf(fmaf(fmaf(fmaf(fmaf(ERF_SMALL[0], s, ERF_SMALL[1]), s, ERF_SMALL[2]), s, ERF_SMALL[3]), s,
                      ERF_SMALL[4]), s, ERF_SMALL[5])
    small = fmaf(small, a, a)
    big_lane = <float>0.921875 <= a
    small = <float>0.0 if big_lane else small
    ab = a if big_lane else <float>0.0
    big = fmaf(fmaf(fmaf(fmaf(fmaf(fmaf(ERF_BIG[0], ab, ERF_BIG[1]), ab, ERF_BIG[2]), ab, ERF_BIG[3]), ab,
                         ERF_BIG[4]), ab, ERF_BIG[5]), ab, ERF_BIG[6])
    big = -fmaf(big, ab, ab)
    big = big if big > EXP_LOWER else EXP_LOWER
    r = fmaf(LOG2E, big, EXP_C) - EXP_C
    f = fmaf(r, LN2_HI, big)
    f = fmaf(r, LN2_LO, f)
    y = fmaf(fmaf(fmaf(fmaf(fmaf(fmaf(EXP_POLY[0], f, EXP_POLY[1]), f, EXP_POLY[2]), f, EXP_POLY[3]), f,
                       EXP_POLY[4]), f, EXP_POLY[5]), f, EXP_POLY[6])
    pow2 = _float((<uint32_t>(<int32_t>r + 127)) << 23)
    y = <float>1.0 - y * pow2
    return _float(_bits(y) | _bits(small) | sign)


def erf(const float[::1] x, float[::1] out, int num_threads):
    cdef Py_ssize_t i
    with nogil:
        for i in prange(x.shape[0], num_threads=num_threads, schedule="static"):
            out[i] = _erf(x[i])


def gelu(const float[::1] x, float[::1] out, float sqrt1_2, int num_threads):
    cdef Py_ssize_t i
    cdef float e
    with nogil:
        for i in prange(x.shape[0], num_threads=num_threads, schedule="static"):
            e = _erf(x[i] * sqrt1_2)
            out[i] = (<float>0.5 * x[i]) * (e + <float>1.0)


def logistic(const float[::1] x, float[::1] out, int num_threads):
    cdef Py_ssize_t i
    cdef float v, v2, p, q, r
    cdef int j
    with nogil:
        for i in prange(x.shape[0], num_threads=num_threads, schedule="static"):
            v = x[i]
            if v == v:
                if v < -18.0:
                    v = -18.0
                if v > 18.0:
                    v = 18.0
            v2 = v * v
            p = fmaf(v2, LOGISTIC_ALPHA[0], LOGISTIC_ALPHA[1])
            for j in range(2, 5):
                p = fmaf(v2, p, LOGISTIC_ALPHA[j])
            q = fmaf(v2, LOGISTIC_BETA[0], LOGISTIC_BETA[1])
            for j in range(2, 6):
                q = fmaf(v2, q, LOGISTIC_BETA[j])
            r = (v * p) / q + <float>0.5
            if r < 0.0:
                r = 0.0
            out[i] = r


cdef inline float _exp_scalef(float v) noexcept nogil:
    cdef float m, p
    cdef int j
    if v == v and v < EXP_LOW:
        v = EXP_LOW
    m = fmaf(v, LOG2E, ROUND_BIAS) - ROUND_BIAS
    v = fmaf(m, LN2_HI, v)
    v = fmaf(m, LN2_LO, v)
    p = SUMEXP_POLY[0]
    for j in range(1, 7):
        p = fmaf(p, v, SUMEXP_POLY[j])
    return ldexpf(p, <int>m)


def softmax_rows(const float[:, ::1] x, float[:, ::1] out, int num_threads):
    cdef Py_ssize_t r
    with nogil:
        for r in prange(x.shape[0], num_threads=num_threads, schedule="static"):
            _softmax_row(&x[r, 0], &out[r, 0], x.shape[1])


cdef void _softmax_row(const float* x, float* out, Py_ssize_t n) noexcept nogil:
    cdef float lanes[16]
    cdef float s[8]
    cdef float mx = x[0], total, inv
    cdef Py_ssize_t i, j
    for i in range(1, n):
        if x[i] > mx:
            mx = x[i]
    for j in range(16):
        lanes[j] = 0.0
    for i in range(n):
        out[i] = _exp_scalef(x[i] + (-mx))
        lanes[i % 16] = lanes[i % 16] + out[i]
    for j in range(8):
        s[j] = lanes[j + 8] + lanes[j]
    total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
    inv = <float>1.0 / total
    for i in range(n):
        out[i] = out[i] * inv


cdef inline float _hsum8(float* l) noexcept nogil:
    cdef float r0 = l[0] + l[4], r1 = l[1] + l[5], r2 = l[2] + l[6], r3 = l[3] + l[7]
    return (r0 + r2) + (r1 + r3)


def layer_norm_rows(const float[:, ::1] x, const float[::1] scale, const float[::1] bias, float[:, ::1] out,
                    float epsilon, bint has_bias, int num_threads):
    """Rows of at least 8 (MLAS's centered two-pass kernel)."""
    cdef Py_ssize_t r
    with nogil:
        for r in prange(x.shape[0], num_threads=num_threads, schedule="static"):
            _layer_norm_row(&x[r, 0], &scale[0], &bias[0], &out[r, 0], x.shape[1], epsilon, has_bias)


cdef void _layer_norm_row(const float* x, const float* scale, const float* bias, float* out, Py_ssize_t n,
                          float epsilon, bint has_bias) noexcept nogil:
    cdef Py_ssize_t body = n // 8 * 8, i, j
    cdef double total_d = 0.0
    cdef float mean, d, total, inv, y
    cdef float lanes[8]
    for i in range(n):
        total_d = total_d + <double>x[i]
    mean = <float>(total_d / <double>n)
    for j in range(8):
        lanes[j] = 0.0
    for i in range(body):
        d = x[i] - mean
        lanes[i % 8] = fmaf(d, d, lanes[i % 8])
    total = _hsum8(lanes)
    i = body
    if n - i >= 4:
        for j in range(i, i + 4):
            d = x[j] - mean
            total = total + d * d
        i = i + 4
    for j in range(i, n):
        d = x[j] - mean
        total = fmaf(d, d, total)
    inv = <float>1.0 / sqrtf(total / <float>n + epsilon)
    for i in range(n):
        y = (x[i] - mean) * inv
        out[i] = fmaf(y, scale[i], bias[i]) if has_bias else y * scale[i]


def welford_rows(const float[:, ::1] x, const float[::1] scale, const float[::1] bias, float[:, ::1] out,
                 float epsilon, bint has_bias, int num_threads):
    cdef Py_ssize_t R = x.shape[0], n = x.shape[1], r, h
    cdef float mean, m2, v, delta, sd, y
    with nogil:
        for r in prange(R, num_threads=num_threads, schedule="static"):
            mean = 0.0
            m2 = 0.0
            for h in range(n):
                v = x[r, h]
                delta = v - mean
                mean = mean + delta / <float>(h + 1)
                m2 = m2 + delta * (v - mean)
            sd = sqrtf(m2 / <float>n + epsilon)
            for h in range(n):
                y = ((x[r, h] - mean) / sd) * scale[h]
                out[r, h] = y + bias[h] if has_bias else y
