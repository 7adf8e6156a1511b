/* Decoding formats whose codes are the top bits of an IEEE half (FP16, E5M2) with the
   CPU's own half->float conversion (F16C), 8 lanes at a time.  Where the build has no
   F16C, QS_HAVE_F16C is 0 and the caller decodes through a value table instead. */
#ifndef QS_HALF_H
#define QS_HALF_H
#include <stdint.h>
#include <stddef.h>

#if defined(__F16C__)
#include <immintrin.h>
#define QS_HAVE_F16C 1

/* out[i] = float(half(codes[i] << shift)); shift is 8 for E5M2 bytes, 0 for FP16. */
static inline void qs_half_prefix_to_f32_u8(const uint8_t* codes, float* out, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i bytes = _mm_loadl_epi64((const __m128i*)(codes + i));
        __m128i halves = _mm_slli_epi16(_mm_cvtepu8_epi16(bytes), 8);
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(halves));
    }
    for (; i < n; i++) out[i] = _cvtsh_ss((unsigned short)(codes[i] << 8));
}

static inline void qs_half_prefix_to_f32_u16(const uint16_t* codes, float* out, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(codes + i))));
    for (; i < n; i++) out[i] = _cvtsh_ss(codes[i]);
}
#else
#define QS_HAVE_F16C 0
static inline void qs_half_prefix_to_f32_u8(const uint8_t* codes, float* out, ptrdiff_t n) {
    (void)codes; (void)out; (void)n;
}
static inline void qs_half_prefix_to_f32_u16(const uint16_t* codes, float* out, ptrdiff_t n) {
    (void)codes; (void)out; (void)n;
}
#endif
#endif
