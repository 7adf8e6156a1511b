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


/* acc[j] += a * b[j] in float32: the products of the inputs are exact in float32 (checked by
   the caller), so this is IEEE float32 sequential accumulation, FMA or not. */
static inline void qs_axpy_f32(float* restrict acc, const float* restrict b, float a, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) acc[j] += a * b[j];
}

static inline void qs_axpy4_f32(float* restrict c0, float* restrict c1, float* restrict c2, float* restrict c3,
                                const float* restrict b, float a0, float a1, float a2, float a3, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) {
        float bj = b[j];
        c0[j] += a0 * bj; c1[j] += a1 * bj; c2[j] += a2 * bj; c3[j] += a3 * bj;
    }
}

/* Four rows of the FP32 reference product: c_r[j] += a_r * b[j] in double. Each product of two
   float32 values is exact in double, so the sums are the same whether or not the compiler
   contracts them into FMAs. */
static inline void qs_axpy4_f64(double* restrict c0, double* restrict c1, double* restrict c2, double* restrict c3,
                                const float* restrict b, double a0, double a1, double a2, double a3, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) {
        double bj = (double)b[j];
        c0[j] += a0 * bj; c1[j] += a1 * bj; c2[j] += a2 * bj; c3[j] += a3 * bj;
    }
}

/* Products of one fused group (p[k] = a[k] * b[k], exact), their largest exponent (or a very
   small number if all are zero), and whether any is Inf or NaN. */
static inline int qs_group_products(const double* restrict a, const double* restrict b, double* restrict p,
                                    ptrdiff_t g, int* special) {
    int emax = -100000, sp = 0;
    for (ptrdiff_t k = 0; k < g; k++) {
        double x = a[k] * b[k];
        p[k] = x;
        int e = (int)((qs_dbits(x) >> 52) & 0x7ff);
        sp |= e == 0x7ff;
        e = e == 0 ? -100000 : e - 1023;
        emax = e > emax ? e : emax;
    }
    *special = sp;
    return emax;
}

/* Sum of the group's addends in units of the last kept bit (scale = 2^-lsb), each truncated
   toward zero or rounded half to even; counts the nonzero addends that vanish. */
static inline int64_t qs_group_align_sum(const double* restrict p, ptrdiff_t g, double scale, int round_even,
                                         int64_t* absorbed) {
    int64_t s = 0, lost = 0;
    if (round_even) {
        for (ptrdiff_t k = 0; k < g; k++) {
            int64_t r = (int64_t)__builtin_rint(p[k] * scale);
            s += r;
            lost += (p[k] != 0.0) & (r == 0);
        }
    } else {
        for (ptrdiff_t k = 0; k < g; k++) {
            int64_t r = (int64_t)(p[k] * scale);
            s += r;
            lost += (p[k] != 0.0) & (r == 0);
        }
    }
    *absorbed += lost;
    return s;
}
#endif
