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
