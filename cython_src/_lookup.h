/* Decoding 8-bit codes through a float32 table of every code's value, the table held in
 * registers: a gather instruction costs the decoders half their speed, a permute across two
 * registers picks 16 lanes from 32 entries at once.  A table of 2**k entries (k <= 8) is
 * indexed by the code's low k bits, also by the loops without AVX-512, so codes past the
 * table read it again instead of past its end.  Where the build has no AVX-512
 * (QS_HAVE_LUT16 is 0) the same loops run one element at a time. */
#ifndef QS_LOOKUP_H
#define QS_LOOKUP_H
#include <stdint.h>
#include <stddef.h>

/* The table repeated to 256 entries, as a code's low bits index it. */
typedef struct { float v[256]; int small; } qs_lut;

static inline void qs_lut_init(qs_lut *t, const float *table, int entries) {
    for (int i = 0; i < 256; i++) t->v[i] = table[i & (entries - 1)];
    t->small = entries <= 16;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define QS_HAVE_LUT16 1

/* Values of the 16 codes in idx (each below 256) from the table in r[16]: bits 0-4 pick an
 * entry of a register pair, bits 5-7 the pair. */
static inline __m512 qs_lut_pick(const __m512 *r, int small, __m512i idx) {
    if (small) return _mm512_permutexvar_ps(idx, r[0]);
    __mmask16 b5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
    __mmask16 b6 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(64));
    __mmask16 b7 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(128));
    __m512 p[8];
    for (int j = 0; j < 8; j++) p[j] = _mm512_permutex2var_ps(r[2 * j], idx, r[2 * j + 1]);
    for (int j = 0; j < 4; j++) p[j] = _mm512_mask_blend_ps(b5, p[2 * j], p[2 * j + 1]);
    for (int j = 0; j < 2; j++) p[j] = _mm512_mask_blend_ps(b6, p[2 * j], p[2 * j + 1]);
    return _mm512_mask_blend_ps(b7, p[0], p[1]);
}

static inline __mmask16 qs_lanes(ptrdiff_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* out[i] = table[codes[i]]; with scales, times scales[i / block] and then times second unless
 * that is 1: float32 products, each rounded once in that order, as the loop without AVX-512
 * below rounds them. */
static inline void qs_lut_decode(const qs_lut *t, const uint8_t *codes, float *out, ptrdiff_t n,
                                 const float *scales, ptrdiff_t block, float second) {
    __m512 r[16];
    for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(t->v + 16 * j);
    const int small = t->small, twice = second != 1.0f;
    const __m512 s2 = _mm512_set1_ps(second);
    if (!scales) block = n;
    for (ptrdiff_t lo = 0, b = 0; lo < n; lo += block, b++) {
        ptrdiff_t hi = n - lo > block ? lo + block : n;
        const __m512 s = _mm512_set1_ps(scales ? scales[b] : 1.0f);
        for (ptrdiff_t i = lo; i < hi; i += 16) {
            __mmask16 m = qs_lanes(hi - i);
            __m512 v = qs_lut_pick(r, small, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, codes + i)));
            if (scales) v = _mm512_mul_ps(v, s);
            if (scales && twice) v = _mm512_mul_ps(v, s2);
            _mm512_mask_storeu_ps(out + i, m, v);
        }
    }
}
#else
#define QS_HAVE_LUT16 0

static inline void qs_lut_decode(const qs_lut *t, const uint8_t *codes, float *out, ptrdiff_t n,
                                 const float *scales, ptrdiff_t block, float second) {
    if (!scales) block = n;
    for (ptrdiff_t lo = 0, b = 0; lo < n; lo += block, b++) {
        ptrdiff_t hi = n - lo > block ? lo + block : n;
        const float s = scales ? scales[b] : 1.0f;
        for (ptrdiff_t i = lo; i < hi; i++) {
            float v = t->v[codes[i]];
            if (scales) v = v * s;
            if (scales && second != 1.0f) v = v * second;
            out[i] = v;
        }
    }
}
#endif
#endif
