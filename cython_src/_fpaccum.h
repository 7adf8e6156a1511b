/* Floating-point accumulation as hardware does it, on exact double products.
   Products of formats up to 16 bits are exact in double; every rounding into the
   accumulator format goes through a round-to-odd double (exact for targets of <= 51 bits),
   so it is a single correct rounding, whatever the mode. */
#ifndef QS_FPACCUM_H
#define QS_FPACCUM_H
#include <stdint.h>
#include <string.h>
#include "_encode.h"

static inline uint64_t qs_dbits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double qs_bitsd(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

/* a + b rounded to odd: the truncated sum with its last bit set when inexact (TwoSum). */
static inline double qs_sum_to_odd(double a, double b) {
    double s = a + b, bp = s - a;
    double err = (a - (s - bp)) + (b - bp);
    uint64_t u = qs_dbits(s);
    int inexact = err != 0.0 && s - s == 0.0;          /* finite and inexact */
    int toward_zero = inexact && ((err < 0) != (s < 0));
    u = toward_zero ? u - 1 : u;                        /* one ulp toward zero (|s| > 0) */
    u |= (uint64_t)inexact;
    return qs_bitsd(u);
}

/* Unbiased exponent of a nonzero normal double; zero gives a very small number. */
static inline int qs_exponent(double x) {
    int e = (int)((qs_dbits(x) >> 52) & 0x7ff);
    return e == 0 ? -100000 : e - 1023;
}

static inline double qs_pow2(int e) { return qs_bitsd((uint64_t)(e + 1023) << 52); }   /* |e| < 1023 */

#endif

/* acc[j] += a * b[j] in float32: the products of the inputs are exact in float32 (checked by
   the caller), so this is IEEE float32 sequential accumulation, FMA or not. */
static inline void qs_axpy_f32(float* restrict acc, const float* restrict b, float a, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) acc[j] += a * b[j];
}
