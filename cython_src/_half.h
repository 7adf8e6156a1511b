/* Decoding formats whose codes are the top bits of an IEEE half (FP16, E5M2) with the
   CPU's own half->float conversion (F16C), 8 lanes at a time, and encoding FP16 with its
   float->half conversion.  Where the build has no F16C, QS_HAVE_F16C is 0 and the callers
   decode through a value table and encode with the generic encoder instead. */
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

/* out[i] = IEEE half of x[i] rounded to nearest even, exactly: the conversion makes subnormal
   halves whatever MXCSR's flush-to-zero says, and denormals-are-zero only reaches float32
   inputs far below half's subnormals, which round to zero either way; NaNs keep their top
   payload bits and come out quiet.  sat: +-Inf (from overflow or input) becomes +-max. */
static inline void qs_f32_to_half(const float* x, uint16_t* out, ptrdiff_t n, int sat) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i*)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) out[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
    if (sat)
        for (i = 0; i < n; i++) out[i] = (out[i] & 0x7FFF) == 0x7C00 ? (uint16_t)((out[i] & 0x8000) | 0x7BFF) : out[i];
}
#else
#define QS_HAVE_F16C 0
static inline void qs_half_prefix_to_f32_u8(const uint8_t* codes, float* out, ptrdiff_t n) {
    (void)codes; (void)out; (void)n;
}
static inline void qs_half_prefix_to_f32_u16(const uint16_t* codes, float* out, ptrdiff_t n) {
    (void)codes; (void)out; (void)n;
}
static inline void qs_f32_to_half(const float* x, uint16_t* out, ptrdiff_t n, int sat) {
    (void)x; (void)out; (void)n; (void)sat;
}
#endif
#endif
