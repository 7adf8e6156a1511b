/* Accumulator arithmetic for the integer GEMM: one step adds a row of terms to a row of
   accumulators, each step wrapping or saturating at the accumulator's width and counting,
   per output, the steps that left its range.  Written as plain loops over a row so gcc
   vectorizes across independent outputs. */
#ifndef QS_ACCUM_H
#define QS_ACCUM_H
#include <stdint.h>
#include <stddef.h>
#include <string.h>

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

/* Exact sums of fbgemm's saturated pairs over B packed as fbgemm packs it for AVX2: quads of k
   per column, bq[(kq * n + j) * 4 + i] = b[4 kq + i, j] (k padded with zeros to a multiple of 4).
   out[r * n + j] = sum over pairs of sat16(a[2p] b[2p, j] + a[2p+1] b[2p+1, j]) for `rows` <= 4
   rows of A, each a quad-padded row of aq (row stride kq4 bytes). VPMADDUBSW saturates each pair,
   VPMADDWD adds a column's two pairs exactly into int32; the caller guarantees the int32 sums fit.
   Order-free: integer sums. */
#if defined(__AVX2__)
#include <immintrin.h>
#endif
static inline int32_t qs_sat16_pair(int32_t x, int32_t y, int32_t p, int32_t q) {
    int32_t s = x * p + y * q;
    return s < -32768 ? -32768 : (s > 32767 ? 32767 : s);
}

static void qs_pair_sat_tile(int64_t* restrict out, ptrdiff_t out_stride, const uint8_t* restrict aq,
                             ptrdiff_t kq4, int rows, const int8_t* restrict bq, ptrdiff_t n, ptrdiff_t j0,
                             ptrdiff_t width) {
    ptrdiff_t quads = kq4 / 4;
#if defined(__AVX2__)
    if (width == 16) {
        const __m256i ones = _mm256_set1_epi16(1);
        __m256i acc[4][2];
        for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        for (ptrdiff_t q = 0; q < quads; q++) {
            const int8_t* col = bq + (q * n + j0) * 4;
            __m256i v0 = _mm256_loadu_si256((const __m256i*)col);
            __m256i v1 = _mm256_loadu_si256((const __m256i*)(col + 32));
            for (int r = 0; r < 4; r++) {
                if (r >= rows) break;
                int32_t quad;
                memcpy(&quad, aq + r * kq4 + 4 * q, 4);
                __m256i x = _mm256_set1_epi32(quad);
                acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(x, v0), ones));
                acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(x, v1), ones));
            }
        }
        for (int r = 0; r < rows; r++) {
            int32_t lane[16];
            _mm256_storeu_si256((__m256i*)lane, acc[r][0]);
            _mm256_storeu_si256((__m256i*)(lane + 8), acc[r][1]);
            for (int c = 0; c < 16; c++) out[r * out_stride + j0 + c] = lane[c];
        }
        return;
    }
#endif
    for (int r = 0; r < rows; r++) {
        const uint8_t* a = aq + r * kq4;
        for (ptrdiff_t c = 0; c < width; c++) {
            int32_t sum = 0;
            for (ptrdiff_t q = 0; q < quads; q++) {
                const int8_t* b = bq + (q * n + j0 + c) * 4;
                const uint8_t* x = a + 4 * q;
                sum += qs_sat16_pair(x[0], x[1], b[0], b[1]) + qs_sat16_pair(x[2], x[3], b[2], b[3]);
            }
            out[r * out_stride + j0 + c] = sum;
        }
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
