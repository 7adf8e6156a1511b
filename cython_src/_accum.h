/* Accumulator arithmetic for the integer GEMM: one step adds a row of terms to a row of
   accumulators, each step wrapping or saturating at the accumulator's width and counting,
   per output, the steps that left its range.  Written as plain loops over a row so gcc
   vectorizes across independent outputs. */
#ifndef QS_ACCUM_H
#define QS_ACCUM_H
#include <stdint.h>
#include <stddef.h>

/* terms: t[j] = a * b[j] */
static inline void qs_terms(int64_t* restrict t, const int16_t* restrict b, int64_t a, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) t[j] = a * (int64_t)b[j];
}

/* terms of fbgemm's VPMADDUBSW: t[j] = sat16(a0 * b0[j] + a1 * b1[j]) */
static inline void qs_pair_terms(int64_t* restrict t, const int16_t* restrict b0, const int16_t* restrict b1,
                                 int64_t a0, int64_t a1, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) {
        int64_t s = a0 * (int64_t)b0[j] + a1 * (int64_t)b1[j];
        t[j] = s < -32768 ? -32768 : (s > 32767 ? 32767 : s);
    }
}

/* Exact sums of fbgemm's saturated pairs, four rows of A at once (each pair of B rows is loaded
   once): acc[r * n + j] += sat16(a0[r] * b0[j] + a1[r] * b1[j]) in int32 (the caller guarantees
   the sums fit). */
static inline void qs_pair_sat_rows4(int32_t* restrict acc, const int8_t* restrict b0, const int8_t* restrict b1,
                                     const int32_t* a0, const int32_t* a1, ptrdiff_t n) {
    int32_t x0 = a0[0], x1 = a0[1], x2 = a0[2], x3 = a0[3], y0 = a1[0], y1 = a1[1], y2 = a1[2], y3 = a1[3];
    for (ptrdiff_t j = 0; j < n; j++) {
        int32_t p = b0[j], q = b1[j];
        int32_t s0 = x0 * p + y0 * q, s1 = x1 * p + y1 * q, s2 = x2 * p + y2 * q, s3 = x3 * p + y3 * q;
        acc[j] += s0 < -32768 ? -32768 : (s0 > 32767 ? 32767 : s0);
        acc[n + j] += s1 < -32768 ? -32768 : (s1 > 32767 ? 32767 : s1);
        acc[2 * n + j] += s2 < -32768 ? -32768 : (s2 > 32767 ? 32767 : s2);
        acc[3 * n + j] += s3 < -32768 ? -32768 : (s3 > 32767 ? 32767 : s3);
    }
}

/* Widths up to 63 bits: acc and term sums cannot overflow int64 (|term| < 2^31). */
static inline void qs_add_sat(int64_t* restrict acc, int64_t* restrict ev, const int64_t* restrict t,
                              ptrdiff_t n, int64_t lo, int64_t hi) {
    for (ptrdiff_t j = 0; j < n; j++) {
        int64_t s = acc[j] + t[j];
        int64_t c = s < lo ? lo : (s > hi ? hi : s);
        ev[j] += c != s;
        acc[j] = c;
    }
}

static inline void qs_add_wrap(int64_t* restrict acc, int64_t* restrict ev, const int64_t* restrict t,
                               ptrdiff_t n, int shift) {   /* shift = 64 - width */
    for (ptrdiff_t j = 0; j < n; j++) {
        int64_t s = acc[j] + t[j];
        int64_t w = (int64_t)((uint64_t)s << shift) >> shift;
        ev[j] += w != s;
        acc[j] = w;
    }
}

/* 64-bit accumulators: the sum itself may overflow, so ask the compiler. */
static inline void qs_add_sat64(int64_t* restrict acc, int64_t* restrict ev, const int64_t* restrict t,
                                ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) {
        int64_t s;
        if (__builtin_add_overflow(acc[j], t[j], &s)) {
            s = t[j] > 0 ? INT64_MAX : INT64_MIN;
            ev[j] += 1;
        }
        acc[j] = s;
    }
}

static inline void qs_add_wrap64(int64_t* restrict acc, int64_t* restrict ev, const int64_t* restrict t,
                                 ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) {
        int64_t s;
        ev[j] += __builtin_add_overflow(acc[j], t[j], &s);
        acc[j] = s;
    }
}
#endif
