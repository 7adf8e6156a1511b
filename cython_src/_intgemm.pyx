# Integer GEMM with a modelled accumulator: width, wrap or saturate, order of accumulation,
# optional fbgemm int16 pair saturation, and per-output counts of overflow events.
#
# Work items are (row, column tile); each owns its outputs, so results do not depend on the
# thread count.  No validation here: qsim/datapaths/accumulate.py checks arguments.

from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from _common cimport uint8_t, int8_t, int16_t, int32_t, int64_t
from _enums cimport *

cdef extern from "_accum.h" nogil:
    void qs_terms(int64_t* t, const int16_t* b, int64_t a, Py_ssize_t n)
    void qs_pair_terms(int64_t* t, const int16_t* b0, const int16_t* b1, int64_t a0, int64_t a1, Py_ssize_t n)
    void qs_add_sat(int64_t* acc, int64_t* ev, const int64_t* t, Py_ssize_t n, int64_t lo, int64_t hi)
    void qs_add_wrap(int64_t* acc, int64_t* ev, const int64_t* t, Py_ssize_t n, int shift)
    void qs_pair_sat_tile(int64_t* out, Py_ssize_t out_stride, const uint8_t* aq, Py_ssize_t kq4, int rows,
                          const int8_t* bq, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t width)
    void qs_add_sat64(int64_t* acc, int64_t* ev, const int64_t* t, Py_ssize_t n)
    void qs_add_wrap64(int64_t* acc, int64_t* ev, const int64_t* t, Py_ssize_t n)

cdef enum:
    TILE = 256          # output columns per work item (sequential orders)
    TREE_TILE = 32      # output columns per work item in the pairwise tree (holds K rows of terms)

ENUMS = kernel_enums()


cdef struct acc_t:
    int bits
    bint saturate
    int64_t lo, hi


cdef inline void _add(acc_t c, int64_t* acc, int64_t* ev, const int64_t* t, Py_ssize_t n) noexcept nogil:
    if c.bits == 64:
        if c.saturate:
            qs_add_sat64(acc, ev, t, n)
        else:
            qs_add_wrap64(acc, ev, t, n)
    elif c.saturate:
        qs_add_sat(acc, ev, t, n, c.lo, c.hi)
    else:
        qs_add_wrap(acc, ev, t, n, 64 - c.bits)


cdef inline void _term(int64_t* t, const int16_t[:, ::1] a, const int16_t[:, ::1] b, Py_ssize_t m,
                       Py_ssize_t step, Py_ssize_t n0, Py_ssize_t n, bint pairs) noexcept nogil:
    """Term `step` of output row m: one product, or one saturated pair of products."""
    cdef Py_ssize_t k = 2 * step if pairs else step
    if not pairs:
        qs_terms(t, &b[k, n0], a[m, k], n)
    elif k + 1 < a.shape[1]:
        qs_pair_terms(t, &b[k, n0], &b[k + 1, n0], a[m, k], a[m, k + 1], n)
    else:                # odd K: the last pair has one product (the padding is zero)
        qs_pair_terms(t, &b[k, n0], &b[k, n0], a[m, k], 0, n)


cdef void _sequential(const int16_t[:, ::1] a, const int16_t[:, ::1] b, int64_t[:, ::1] out,
                      int64_t[:, ::1] events, Py_ssize_t m, Py_ssize_t n0, Py_ssize_t n,
                      acc_t c, bint reverse, bint pairs) noexcept nogil:
    cdef int64_t t[TILE]
    cdef Py_ssize_t steps = (a.shape[1] + 1) // 2 if pairs else a.shape[1], s
    for s in range(steps):
        _term(&t[0], a, b, m, steps - 1 - s if reverse else s, n0, n, pairs)
        _add(c, &out[m, n0], &events[m, n0], &t[0], n)


cdef void _pairwise(const int16_t[:, ::1] a, const int16_t[:, ::1] b, int64_t[:, ::1] out,
                    int64_t[:, ::1] events, Py_ssize_t m, Py_ssize_t n0, Py_ssize_t n,
                    acc_t c, bint pairs, int64_t* tree) noexcept nogil:
    """Adder tree: each level sums adjacent pairs; an odd last node passes up unchanged."""
    cdef Py_ssize_t steps = (a.shape[1] + 1) // 2 if pairs else a.shape[1], s, width, i, j
    cdef int64_t* ev = &events[m, n0]
    for s in range(steps):
        _term(tree + s * TREE_TILE, a, b, m, s, n0, n, pairs)
    width = steps
    while width > 1:
        for i in range(width // 2):
            if i > 0:
                for j in range(n):
                    tree[i * TREE_TILE + j] = tree[2 * i * TREE_TILE + j]
            _add(c, tree + i * TREE_TILE, ev, tree + (2 * i + 1) * TREE_TILE, n)
        if width % 2:
            for j in range(n):
                tree[(width // 2) * TREE_TILE + j] = tree[(width - 1) * TREE_TILE + j]
        width = (width + 1) // 2
    if steps:
        _add(c, &out[m, n0], ev, tree, n)


def accumulate(const int16_t[:, ::1] a, const int16_t[:, ::1] b, int64_t[:, ::1] out,
               int64_t[:, ::1] events, int bits, int overflow, int order, bint pairs, int num_threads):
    """out[m, n] (+)= sum over k of a[m, k] * b[k, n] in the modelled accumulator.

    out holds the starting values (zeros) and receives the results; events[m, n] counts the
    additions that wrapped or saturated.  overflow: an OVERFLOW_*, order an ORDER_* (_enums.pxd).
    pairs: terms are sat16 of adjacent product pairs.
    """
    cdef acc_t c
    c.bits = bits
    c.saturate = overflow == OVERFLOW_SATURATE
    c.lo = -(<int64_t>1 << (bits - 1)) if bits < 64 else 0
    c.hi = (<int64_t>1 << (bits - 1)) - 1 if bits < 64 else 0
    cdef Py_ssize_t M = a.shape[0], N = b.shape[1], K = a.shape[1]
    cdef Py_ssize_t tile = TREE_TILE if order == ORDER_PAIRWISE else TILE
    cdef Py_ssize_t tiles = (N + tile - 1) // tile, item, m, n0, n
    cdef Py_ssize_t steps = (K + 1) // 2 if pairs else K
    cdef int64_t* tree = NULL
    if M == 0 or N == 0 or K == 0:
        return
    with nogil:
        for item in prange(M * tiles, num_threads=num_threads, schedule="static"):
            m = item // tiles
            n0 = (item % tiles) * tile
            n = min(tile, N - n0)
            if order == ORDER_PAIRWISE:
                tree = <int64_t*>malloc(steps * TREE_TILE * sizeof(int64_t))
                if tree != NULL:
                    _pairwise(a, b, out, events, m, n0, n, c, pairs, tree)
                    free(tree)
                else:               # out of memory: mark the outputs, the caller raises
                    events[m, n0] = -1
            else:
                _sequential(a, b, out, events, m, n0, n, c, order == ORDER_REVERSED, pairs)


def pair_saturated_sums(const uint8_t[:, ::1] a, const int8_t[:, ::1] b, int64_t[:, ::1] out, int num_threads):
    """out[m, n] = the exact sum over pairs p of sat16(a[m, 2p] b[2p, n] + a[m, 2p+1] b[2p+1, n])
    (fbgemm's VPMADDUBSW terms; an odd K pads a zero). The caller guarantees that
    ceil(K / 4) * 2^16 fits int32. A is copied with its rows zero-padded to quads of k and B
    packed as fbgemm packs it (quads of k per column); one work item per tile of four rows and
    sixteen columns. Returns False when the packed copies do not fit in memory."""
    cdef Py_ssize_t M = a.shape[0], N = b.shape[1], K = a.shape[1], K4 = (K + 3) // 4 * 4
    cdef Py_ssize_t col_tiles = (N + 15) // 16, item, m0, j0, m, k, j
    cdef uint8_t* aq
    cdef int8_t* bq
    if M == 0 or N == 0:
        return True
    aq = <uint8_t*>malloc(M * K4 + 1)
    bq = <int8_t*>malloc(K4 * N + 1)
    if aq == NULL or bq == NULL:
        free(aq)
        free(bq)
        return False
    with nogil:
        memset(aq, 0, M * K4)
        memset(bq, 0, K4 * N)
        for m in range(M):
            for k in range(K):
                aq[m * K4 + k] = a[m, k]
        for k in range(K):
            for j in range(N):
                bq[((k // 4) * N + j) * 4 + k % 4] = b[k, j]
        for item in prange(((M + 3) // 4) * col_tiles, num_threads=num_threads, schedule="static"):
            m0 = 4 * (item // col_tiles)
            j0 = 16 * (item % col_tiles)
            qs_pair_sat_tile(&out[m0, 0], N, aq + m0 * K4, K4, <int>min(4, M - m0), bq, N, j0, min(16, N - j0))
    free(aq)
    free(bq)
    return True
