/* Decoding 8-bit codes through a float32 table of every code's value, the table held in
 * registers as four planes of bytes (byte k of every value): a gather instruction costs the
 * decoders half their speed, while byte permutes across two registers (AVX-512 VBMI) look up
 * 64 codes at once per plane, and interleaving the four result planes gives 64 floats.
 * A table of 2**k entries (k <= 8) is indexed by the code's low k bits, also by the loops
 * without VBMI, so codes past the table read it again instead of past its end.  Where the
 * build has no VBMI (QS_HAVE_LUT_PLANES is 0) the same loops run one element at a time. */
#ifndef QS_LOOKUP_H
#define QS_LOOKUP_H
#include <stdint.h>
#include <stddef.h>
#include <string.h>

/* The table repeated to 256 entries, as a code's low bits index it, and its byte planes. */
typedef struct {
    float v[256];
    uint8_t plane[4][256];
    int small;             /* at most 64 entries: one permute per plane */
} qs_lut;

static inline void qs_lut_init(qs_lut *t, const float *table, int entries) {
    for (int i = 0; i < 256; i++) {
        uint32_t u;
        t->v[i] = table[i & (entries - 1)];
        memcpy(&u, &t->v[i], 4);
        for (int k = 0; k < 4; k++) t->plane[k][i] = (uint8_t)(u >> (8 * k));
    }
    t->small = entries <= 64;
}

/* Block scales as the decoder reads them: uint8 codes and the float32 value of each code
 * (E8M0, UE4M3), or float32 bits (FP32 scales: table NULL). */
typedef struct {
    const void *codes;
    const float *table;
} qs_scales;

static inline float qs_scale(const qs_scales *s, ptrdiff_t b) {
    float v;
    if (s->table) return s->table[((const uint8_t *)s->codes)[b]];
    memcpy(&v, (const uint32_t *)s->codes + b, sizeof v);
    return v;
}

/* One block's span, element by element: out[i] = table[codes[i]] (* scale, then * second
 * unless that is 1, when scaled), each product rounded once in that order. */
static inline void qs_lut_scalar(const qs_lut *t, const uint8_t *codes, float *out, ptrdiff_t n,
                                 int scaled, float scale, float second) {
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = t->v[codes[i]];
        if (scaled) v = v * scale;
        if (scaled && second != 1.0f) v = v * second;
        out[i] = v;
    }
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
#include <immintrin.h>
#define QS_HAVE_LUT_PLANES 1

/* The values of 64 codes, in order, as four vectors of 16 floats.  The byte interleaves work
 * within 128-bit lanes, so the codes are first reordered to undo their lane order. */
static inline void qs_lut_64(const __m512i *p, int small, __m512i codes, __m512 value[4]) {
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    __m512i x = _mm512_permutexvar_epi32(order, codes), b[4];
    __mmask64 high = _mm512_movepi8_mask(x);           /* codes 128..255: the planes' upper half */
    for (int k = 0; k < 4; k++) {
        const __m512i *q = p + 4 * k;
        b[k] = small ? _mm512_permutexvar_epi8(x, q[0])
                     : _mm512_mask_blend_epi8(high, _mm512_permutex2var_epi8(q[0], x, q[1]),
                                              _mm512_permutex2var_epi8(q[2], x, q[3]));
    }
    __m512i lo = _mm512_unpacklo_epi8(b[0], b[1]), hi = _mm512_unpackhi_epi8(b[0], b[1]);
    __m512i lo2 = _mm512_unpacklo_epi8(b[2], b[3]), hi2 = _mm512_unpackhi_epi8(b[2], b[3]);
    value[0] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(lo, lo2));
    value[1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(lo, lo2));
    value[2] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(hi, hi2));
    value[3] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(hi, hi2));
}

/* out[i] = table[codes[i]]; with scales, times the scale of block i / block and then times
 * second unless that is 1: float32 products, each rounded once in that order, as
 * qs_lut_scalar rounds them.  64 codes at a time where each block is whole vectors of 16
 * (block a multiple of 16). */
static inline void qs_lut_decode(const qs_lut *t, const uint8_t *codes, float *out, ptrdiff_t n,
                                 const qs_scales *scales, ptrdiff_t block, float second) {
    if (scales && block % 16) {
        for (ptrdiff_t i = 0, b = 0; i < n; i += block, b++)
            qs_lut_scalar(t, codes + i, out + i, n - i < block ? n - i : block, 1, qs_scale(scales, b), second);
        return;
    }
    __m512i p[16];
    for (int j = 0; j < 16; j++) p[j] = _mm512_loadu_si512(t->plane[j / 4] + 64 * (j % 4));
    const int small = t->small, scaled = scales != NULL, twice = second != 1.0f;
    const __m512 s2 = _mm512_set1_ps(second);
    ptrdiff_t i = 0, b = 0, pos = 0;                  /* element i is element pos of block b */
    for (; i + 64 <= n; i += 64) {
        __m512 v[4];
        qs_lut_64(p, small, _mm512_loadu_si512(codes + i), v);
        for (int k = 0; k < 4; k++) {
            if (scaled) {
                v[k] = _mm512_mul_ps(v[k], _mm512_set1_ps(qs_scale(scales, b)));
                if (twice) v[k] = _mm512_mul_ps(v[k], s2);
                pos += 16;
                if (pos == block) pos = 0, b++;
            }
            _mm512_storeu_ps(out + i + 16 * k, v[k]);
        }
    }
    while (i < n) {                                   /* the rest, a block at a time */
        ptrdiff_t m = scaled && block - pos < n - i ? block - pos : n - i;
        qs_lut_scalar(t, codes + i, out + i, m, scaled, scaled ? qs_scale(scales, b) : 1.0f, second);
        i += m, b++, pos = 0;
    }
}
#else
#define QS_HAVE_LUT_PLANES 0

static inline void qs_lut_decode(const qs_lut *t, const uint8_t *codes, float *out, ptrdiff_t n,
                                 const qs_scales *scales, ptrdiff_t block, float second) {
    if (!scales) {
        qs_lut_scalar(t, codes, out, n, 0, 1.0f, second);
        return;
    }
    for (ptrdiff_t i = 0, b = 0; i < n; i += block, b++)
        qs_lut_scalar(t, codes + i, out + i, n - i < block ? n - i : block, 1, qs_scale(scales, b), second);
}
#endif
#endif
