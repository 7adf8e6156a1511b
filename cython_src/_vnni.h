/* Exact 8-bit dot products with AVX-512 VNNI (VPDPBUSD), for the ONNX Runtime kernels
   (_mlas.pyx).  A is uint8 (M x K, rows of lda bytes); B is int8, packed in panels of 32
   columns, each panel the groups of 4 k's one after another, 32 columns of 4 bytes each
   (zeros past N and past K): a panel is read front to back.  raw[m][n] = sum_k a[m][k] * b[k][n] in int32: each VPDPBUSD
   adds four u8 x s8 products (|.| <= 4 * 255 * 128) without saturation, so the sums are
   exact while K * 255 * 128 < 2^31, which the caller checks.  QS_VNNI is 0 where the
   compiler does not target VNNI; the caller then uses its portable loops. */
#ifndef QS_VNNI_H
#define QS_VNNI_H
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define QS_VNNI 1

/* The 4 bytes of row a at k group g, zero past K. */
static inline int32_t qs_a_group(const uint8_t* a, ptrdiff_t k, ptrdiff_t g) {
    int32_t v = 0;
    ptrdiff_t left = k - 4 * g;
    memcpy(&v, a + 4 * g, left >= 4 ? 4 : (size_t)left);
    return v;
}

/* The 4 bytes of row a at k group g, as one int32 lane value. */
static inline __m512i qs_a_bcast(const uint8_t* a, ptrdiff_t k, ptrdiff_t g, ptrdiff_t full) {
    int32_t v;
    if (g < full) memcpy(&v, a + 4 * g, 4); else v = qs_a_group(a, k, g);
    return _mm512_set1_epi32(v);
}

/* raw (rows x 32 int32, row stride 32) for up to 4 rows of a and one panel of B.  Named
   accumulators, one row count per loop: compilers then keep all of them in registers. */
static inline void qs_vnni_block(const uint8_t* a, ptrdiff_t lda, int rows, ptrdiff_t k,
                                 const int8_t* panel, int32_t* raw) {
    ptrdiff_t groups = (k + 3) / 4, full = k / 4;
    const int8_t* col = panel;
    if (rows == 4) {
        __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
                c31 = c00;
        for (ptrdiff_t g = 0; g < groups; g++, col += 128) {
            __m512i b0 = _mm512_loadu_si512((const void*)col), b1 = _mm512_loadu_si512((const void*)(col + 64));
            __m512i a0 = qs_a_bcast(a, k, g, full), a1 = qs_a_bcast(a + lda, k, g, full);
            __m512i a2 = qs_a_bcast(a + 2 * lda, k, g, full), a3 = qs_a_bcast(a + 3 * lda, k, g, full);
            c00 = _mm512_dpbusd_epi32(c00, a0, b0); c01 = _mm512_dpbusd_epi32(c01, a0, b1);
            c10 = _mm512_dpbusd_epi32(c10, a1, b0); c11 = _mm512_dpbusd_epi32(c11, a1, b1);
            c20 = _mm512_dpbusd_epi32(c20, a2, b0); c21 = _mm512_dpbusd_epi32(c21, a2, b1);
            c30 = _mm512_dpbusd_epi32(c30, a3, b0); c31 = _mm512_dpbusd_epi32(c31, a3, b1);
        }
        _mm512_storeu_si512((void*)raw, c00); _mm512_storeu_si512((void*)(raw + 16), c01);
        _mm512_storeu_si512((void*)(raw + 32), c10); _mm512_storeu_si512((void*)(raw + 48), c11);
        _mm512_storeu_si512((void*)(raw + 64), c20); _mm512_storeu_si512((void*)(raw + 80), c21);
        _mm512_storeu_si512((void*)(raw + 96), c30); _mm512_storeu_si512((void*)(raw + 112), c31);
        return;
    }
    for (int r = 0; r < rows; r++, a += lda, raw += 32) {
        __m512i c0 = _mm512_setzero_si512(), c1 = c0;
        const int8_t* c = col;
        for (ptrdiff_t g = 0; g < groups; g++, c += 128) {
            __m512i av = qs_a_bcast(a, k, g, full);
            c0 = _mm512_dpbusd_epi32(c0, av, _mm512_loadu_si512((const void*)c));
            c1 = _mm512_dpbusd_epi32(c1, av, _mm512_loadu_si512((const void*)(c + 64)));
        }
        _mm512_storeu_si512((void*)raw, c0); _mm512_storeu_si512((void*)(raw + 16), c1);
    }
}

/* One work item: rows [m0, m0 + tile) and columns [n0, n0 + tile) of the exact sums
   out[m][n] = raw + col[n] - zb[n] * a_sums[m] (the zero-point correction), out of int32
   (out32) or int64 (out64, when out32 is NULL); row stride n. */
static inline void qs_vnni_tile(const uint8_t* a, ptrdiff_t m, ptrdiff_t k, const int8_t* bp, ptrdiff_t n,
                                ptrdiff_t m0, ptrdiff_t n0, ptrdiff_t tile, const int64_t* col, const int64_t* zb,
                                const int64_t* a_sums, int32_t* out32, int64_t* out64) {
    int32_t raw[4 * 32];
    ptrdiff_t panel_bytes = (k + 3) / 4 * 128;
    for (ptrdiff_t i = m0; i < m0 + tile && i < m; i += 4) {
        int rows = m - i < 4 ? (int)(m - i) : 4;
        for (ptrdiff_t j = n0; j < n0 + tile && j < n; j += 32) {
            qs_vnni_block(a + i * k, k, rows, k, bp + (j / 32) * panel_bytes, raw);
            ptrdiff_t count = n - j < 32 ? n - j : 32;
            for (int r = 0; r < rows; r++) {
                const int32_t* src = raw + 32 * r;
                int64_t as = a_sums[i + r];
                if (out32) {
                    int32_t* o = out32 + (i + r) * n + j;
                    for (ptrdiff_t c = 0; c < count; c++) o[c] = (int32_t)(src[c] + col[j + c] - zb[j + c] * as);
                } else {
                    int64_t* o = out64 + (i + r) * n + j;
                    for (ptrdiff_t c = 0; c < count; c++) o[c] = src[c] + col[j + c] - zb[j + c] * as;
                }
            }
        }
    }
}
#else
#define QS_VNNI 0
static inline void qs_vnni_tile(const uint8_t* a, ptrdiff_t m, ptrdiff_t k, const int8_t* bp, ptrdiff_t n,
                                ptrdiff_t m0, ptrdiff_t n0, ptrdiff_t tile, const int64_t* col, const int64_t* zb,
                                const int64_t* a_sums, int32_t* out32, int64_t* out64) {
    (void)a; (void)m; (void)k; (void)bp; (void)n; (void)m0; (void)n0; (void)tile; (void)col; (void)zb;
    (void)a_sums; (void)out32; (void)out64;
}
#endif
#endif
