# Fixed-point requantization kernels: gemmlowp / TFLite MultiplyByQuantizedMultiplier with its
# double rounding, per element, vectorized over a row of outputs with per-column multipliers.
# No validation here: qsim/datapaths/requant.py derives q and shift and checks arguments.

from cython.parallel cimport prange
from _common cimport int32_t, int64_t

cdef extern from *:
    """
    #include <stdint.h>
    /* SaturatingRoundingDoublingHighMul(wrap32(acc << left), q), then RoundingDivideByPOT(.,
       right): the high product rounds with nudge 2^30 (or 1 - 2^30 below zero) and truncates
       toward zero; the shift rounds half away from zero. q >= 0, so INT32_MIN^2 cannot occur.
       Branch-free, so the loop over a row vectorizes. */
    static inline int64_t qs_gemmlowp(int64_t acc, int64_t q, int64_t left, int64_t right) {
        int64_t x = (int32_t)(uint32_t)((uint64_t)acc << left);
        int64_t ab = x * q;
        int64_t s = ab + (ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30));
        int64_t high = (s + ((s >> 63) & (((int64_t)1 << 31) - 1))) >> 31;     /* s / 2^31 toward zero */
        int64_t mask = ((int64_t)1 << right) - 1;
        int64_t threshold = (mask >> 1) - (high >> 63);                         /* + 1 below zero */
        return (high >> right) + ((high & mask) > threshold);
    }
    static inline int64_t qs_clamp_zero(int64_t r, int64_t zero, int64_t lo, int64_t hi) {
        int64_t v = (int32_t)(uint32_t)(uint64_t)(r + zero);     /* the zero point joins in int32 */
        return v < lo ? lo : (v > hi ? hi : v);
    }
    /* One row; restrict pointers let the compiler vectorize it. */
    static inline void qs_gemmlowp_row(const int64_t *restrict acc, const int64_t *restrict q,
                                       const int64_t *restrict left, const int64_t *restrict right,
                                       int64_t zero, int64_t lo, int64_t hi, int64_t *restrict out,
                                       Py_ssize_t n) {
        for (Py_ssize_t j = 0; j < n; j++)
            out[j] = qs_clamp_zero(qs_gemmlowp(acc[j], q[j], left[j], right[j]), zero, lo, hi);
    }
    """
    int64_t qs_gemmlowp(int64_t acc, int64_t q, int64_t left, int64_t right) nogil
    int64_t qs_clamp_zero(int64_t r, int64_t zero, int64_t lo, int64_t hi) nogil
    void qs_gemmlowp_row(const int64_t *acc, const int64_t *q, const int64_t *left, const int64_t *right,
                         int64_t zero, int64_t lo, int64_t hi, int64_t *out, Py_ssize_t n) nogil


def gemmlowp(const int64_t[:, ::1] acc, const int64_t[::1] q, const int64_t[::1] left, const int64_t[::1] right,
             int64_t zero, int64_t lo, int64_t hi, int64_t[:, ::1] out, int num_threads):
    """out[r, n] = clamp(wrap32(gemmlowp(acc[r, n], q[n], shift[n]) + zero), lo, hi), with the
    shift given as left = max(shift, 0) and right = max(-shift, 0)."""
    cdef Py_ssize_t rows = acc.shape[0], n = acc.shape[1], r
    if rows == 0 or n == 0:
        return
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="static"):
            qs_gemmlowp_row(&acc[r, 0], &q[0], &left[0], &right[0], zero, lo, hi, &out[r, 0], n)
