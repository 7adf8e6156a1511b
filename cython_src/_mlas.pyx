# ONNX Runtime's CPU kernels (MLAS on x86-64) in their own order of operations.
#
# Every kernel computes a range [begin, end) of independent work items and runs serially:
# qsim/sim/ort_kernels.py hands ranges to its threads (any thread may compute any item, with
# the same bits). No validation here.
#
# fma_chain: float32 GEMM. Each output is a chain of fused multiply-adds over one block of K
# (MLAS's StrideK), from zero; each block's sum then joins the output: the first (zero mode)
# as acc * alpha, the others as fma(acc, alpha, out). The block size is the caller's. Items
# are (batch, row, column tile).

from libc.math cimport fmaf

cdef enum:
    TILE = 256        # columns per work item of fma_chain
    DOT_TILE = 64     # rows and columns per work item of int8_products
    GROUP = 16        # rows normalized together by welford_rows


def fma_chain_items(Py_ssize_t batches, Py_ssize_t rows, Py_ssize_t columns):
    return batches * rows * ((columns + TILE - 1) // TILE)


def fma_chain(const float[:, :, ::1] a, const float[:, :, ::1] b, float[:, :, ::1] out, Py_ssize_t kblock,
              float alpha, bint zero_mode, Py_ssize_t begin, Py_ssize_t end):
    """out[i, m, n] = blocks of sum_k fma(a[i, m, k], b[i, k, n], .) joined as MLAS joins them."""
    cdef Py_ssize_t M = a.shape[1], K = a.shape[2], N = b.shape[2]
    cdef Py_ssize_t tiles = (N + TILE - 1) // TILE, item, i, m, n0
    with nogil:
        for item in range(begin, end):
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

ctypedef fused acc_t:
    int
    long long


def int8_row_sums(const a_t[:, ::1] a, long long[::1] sums):
    cdef Py_ssize_t m, k
    cdef long long total
    with nogil:
        for m in range(a.shape[0]):
            total = 0
            for k in range(a.shape[1]):
                total = total + a[m, k]
            sums[m] = total


def int8_products_items(Py_ssize_t rows, Py_ssize_t columns):
    return ((rows + DOT_TILE - 1) // DOT_TILE) * ((columns + DOT_TILE - 1) // DOT_TILE)


def int8_products(const a_t[:, ::1] a, const b_t[:, ::1] bt, const long long[::1] b_zero,
                  const long long[::1] col, const long long[::1] a_sums, acc_t[:, ::1] out,
                  Py_ssize_t begin, Py_ssize_t end):
    """out[m, n] = sum_k (a[m, k] - a_zero) (bt[n, k] - b_zero[n]), exact: the raw products
    summed in int (the caller keeps K * |a| * |b| < 2^31), then corrected for the zero points:
    + col[n] - b_zero[n] * a_sums[m], with a_sums[m] = sum_k a[m, k] and
    col[n] = K a_zero b_zero[n] - a_zero sum_k bt[n, k]. An int out must hold every sum.
    Items are blocks of 64 x 64 outputs (both operand panels stay in cache); within them
    2 x 4 dot products share their loads, and compilers turn each into VNNI instructions."""
    cdef Py_ssize_t nt = (bt.shape[0] + DOT_TILE - 1) // DOT_TILE, item
    with nogil:
        for item in range(begin, end):
            _dot_tile(a, bt, out, (item // nt) * DOT_TILE, (item % nt) * DOT_TILE, b_zero, col, a_sums)


cdef extern from "_vnni.h" nogil:
    int QS_VNNI
    void qs_vnni_tile(const unsigned char* a, Py_ssize_t m, Py_ssize_t k, const signed char* bp, Py_ssize_t n,
                      Py_ssize_t m0, Py_ssize_t n0, Py_ssize_t tile, const long long* col, const long long* zb,
                      const long long* a_sums, int* out32, long long* out64)

VNNI = bool(QS_VNNI)      # compiled for AVX-512 VNNI: int8_products_vnni runs


def int8_products_vnni(const unsigned char[:, ::1] a, const signed char[:, :, :, ::1] bp, const long long[::1] b_zero,
                       const long long[::1] col, const long long[::1] a_sums, acc_t[:, ::1] out,
                       Py_ssize_t begin, Py_ssize_t end):
    """int8_products for uint8 a and int8 b packed in VNNI panels (_vnni.h), same items and
    result; only where VNNI is true."""
    cdef Py_ssize_t M = a.shape[0], N = out.shape[1], K = a.shape[1]
    cdef Py_ssize_t nt = (N + DOT_TILE - 1) // DOT_TILE, item
    cdef int* out32 = NULL
    cdef long long* out64 = NULL
    if M == 0 or N == 0:
        return
    if acc_t is int:
        out32 = &out[0, 0]
    else:
        out64 = &out[0, 0]
    with nogil:
        for item in range(begin, end):
            qs_vnni_tile(&a[0, 0], M, K, &bp[0, 0, 0, 0], N, (item // nt) * DOT_TILE, (item % nt) * DOT_TILE,
                         DOT_TILE, &col[0], &b_zero[0], &a_sums[0], out32, out64)


cdef inline void _put(acc_t* row, Py_ssize_t n, int raw, const long long* col, const long long* zb,
                      long long a_sum) noexcept nogil:
    # pointers, not memoryviews: a memoryview argument costs two atomic reference counts a call
    row[n] = <acc_t>(raw + col[n] - zb[n] * a_sum)


cdef void _dot_tile(const a_t[:, ::1] a, const b_t[:, ::1] bt, acc_t[:, ::1] out, Py_ssize_t m0, Py_ssize_t n0,
                    const long long[::1] zb, const long long[::1] col, const long long[::1] a_sums) noexcept nogil:
    cdef Py_ssize_t M = min(a.shape[0], m0 + DOT_TILE), N = min(bt.shape[0], n0 + DOT_TILE), K = a.shape[1]
    cdef Py_ssize_t m, n, k, j
    cdef int c00, c01, c02, c03, c10, c11, c12, c13
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
            _put(&out[m, 0], n, c00, &col[0], &zb[0], a_sums[m])
            _put(&out[m, 0], n + 1, c01, &col[0], &zb[0], a_sums[m])
            _put(&out[m, 0], n + 2, c02, &col[0], &zb[0], a_sums[m])
            _put(&out[m, 0], n + 3, c03, &col[0], &zb[0], a_sums[m])
            _put(&out[m + 1, 0], n, c10, &col[0], &zb[0], a_sums[m + 1])
            _put(&out[m + 1, 0], n + 1, c11, &col[0], &zb[0], a_sums[m + 1])
            _put(&out[m + 1, 0], n + 2, c12, &col[0], &zb[0], a_sums[m + 1])
            _put(&out[m + 1, 0], n + 3, c13, &col[0], &zb[0], a_sums[m + 1])
            n = n + 4
        for j in range(n, N):
            _put(&out[m, 0], j, _dot(a0, &bt[j, 0], K), &col[0], &zb[0], a_sums[m])
            _put(&out[m + 1, 0], j, _dot(a1, &bt[j, 0], K), &col[0], &zb[0], a_sums[m + 1])
        m = m + 2
    for j in range(m, M):
        for n in range(n0, N):
            _put(&out[j, 0], n, _dot(&a[j, 0], &bt[n, 0], K), &col[0], &zb[0], a_sums[j])


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


def erf(const float[::1] x, float[::1] out, Py_ssize_t begin, Py_ssize_t end):
    cdef Py_ssize_t i
    with nogil:
        for i in range(begin, end):
            out[i] = _erf(x[i])


def gelu(const float[::1] x, float[::1] out, float sqrt1_2, Py_ssize_t begin, Py_ssize_t end):
    cdef Py_ssize_t i
    cdef float e
    with nogil:
        for i in range(begin, end):
            e = _erf(x[i] * sqrt1_2)
            out[i] = (<float>0.5 * x[i]) * (e + <float>1.0)


def logistic(const float[::1] x, float[::1] out, Py_ssize_t begin, Py_ssize_t end):
    cdef Py_ssize_t i
    cdef float v, v2, p, q, r
    cdef int j
    with nogil:
        for i in range(begin, end):
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
    # p * 2^m rounded once, as scalef (and ldexpf) round it
    if m >= -126.0 and m <= 127.0:
        return p * _pow2(<int>m)
    if m < -126.0 and p > 0.0 and p == p and p < 2.0:
        return _subnormal(p, <int>m)
    return ldexpf(p, <int>m)


cdef inline float _subnormal(float p, int m) noexcept nogil:
    """p * 2^m below 2^-126 for 0 < p < 2 (normal): the significand shifted right and rounded
    half to even in integers (float arithmetic on subnormals is slow on some CPUs)."""
    cdef uint32_t b = _bits(p)
    cdef uint32_t sig = (b & 0x7FFFFFu) | 0x800000u          # p = sig * 2^(exponent - 150)
    cdef int shift = 1 - <int>(b >> 23) - m                   # to units of 2^-149
    cdef uint32_t q, rest, half
    if shift > 25:
        return 0.0
    q = sig >> shift
    rest = sig & ((1u << shift) - 1u)
    half = 1u << (shift - 1)
    if rest > half or (rest == half and (q & 1u)):
        q = q + 1u
    return _float(q)


cdef inline float _pow2(int e) noexcept nogil:
    """2^e for -126 <= e <= 127."""
    return _float((<uint32_t>(e + 127)) << 23)


def softmax_rows(const float[:, ::1] x, float[:, ::1] out, Py_ssize_t begin, Py_ssize_t end):
    cdef Py_ssize_t r
    with nogil:
        for r in range(begin, end):
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
                    float epsilon, bint has_bias, Py_ssize_t begin, Py_ssize_t end):
    """Rows of at least 8 (MLAS's centered two-pass kernel)."""
    cdef Py_ssize_t r
    with nogil:
        for r in range(begin, end):
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
                 float epsilon, bint has_bias, Py_ssize_t begin, Py_ssize_t end):
    """Welford's running mean and M2 per row, in float32, then ((x - mean) / sd) * scale + bias.
    Each step depends on the last, so rows go GROUP at a time, one per vector lane."""
    cdef Py_ssize_t n = x.shape[1], r = begin, h, j
    cdef float mean[GROUP]
    cdef float m2[GROUP]
    cdef float sd[GROUP]
    cdef float v, delta, count
    with nogil:
        while r < end:
            for j in range(GROUP):
                mean[j] = 0.0
                m2[j] = 0.0
            if r + GROUP <= end:
                for h in range(n):
                    count = <float>(h + 1)
                    for j in range(GROUP):
                        v = x[r + j, h]
                        delta = v - mean[j]
                        mean[j] = mean[j] + delta / count
                        m2[j] = m2[j] + delta * (v - mean[j])
                for j in range(GROUP):
                    sd[j] = sqrtf(m2[j] / <float>n + epsilon)
                for j in range(GROUP):
                    _normalize_row(&x[r + j, 0], &scale[0], &bias[0], &out[r + j, 0], n, mean[j], sd[j], has_bias)
                r = r + GROUP
            else:
                for h in range(n):
                    v = x[r, h]
                    delta = v - mean[0]
                    mean[0] = mean[0] + delta / <float>(h + 1)
                    m2[0] = m2[0] + delta * (v - mean[0])
                _normalize_row(&x[r, 0], &scale[0], &bias[0], &out[r, 0], n, mean[0],
                               sqrtf(m2[0] / <float>n + epsilon), has_bias)
                r = r + 1


cdef inline void _normalize_row(const float* x, const float* scale, const float* bias, float* out, Py_ssize_t n,
                                float mean, float sd, bint has_bias) noexcept nogil:
    cdef Py_ssize_t h
    cdef float y
    for h in range(n):
        y = ((x[h] - mean) / sd) * scale[h]
        out[h] = y + bias[h] if has_bias else y
