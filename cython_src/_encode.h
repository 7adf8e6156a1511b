/* The per-element float encoder, branch-free so that the Cython loops calling it vectorize.
 *
 * The input's exponent is moved into the target's bias; its significand (implicit bit made
 * explicit, subnormal inputs normalized) is shifted right by the bits the target cannot hold,
 * more below the target's smallest normal, and that integer shift is rounded.  A carry out of
 * the mantissa propagates into the exponent field by itself, so normals, subnormals and the
 * step from the largest subnormal to the smallest normal share one formula.  The same body
 * serves float32 and float64 inputs (QS_DEFINE_ENCODER below). */
#ifndef QSIM_ENCODE_H
#define QSIM_ENCODE_H
#include <stdint.h>
#include "_bits.h"

enum { QS_RNE = 0, QS_RTZ = 1, QS_RNA = 2, QS_RUP = 3, QS_RDN = 4, QS_STOCHASTIC = 5 };

/* A format as the encoder reads it: numbers only, every policy precomputed as a code
 * (qsim/codec.py `packed`), because loop-invariant flags stop gcc from vectorizing. */
typedef struct {
    int mbits, bias;
    int flush_below;       /* target biased exponents below this flush to zero (no subnormals) */
    uint32_t max_code;     /* largest finite magnitude code */
    uint32_t sign_bit;     /* mask of the sign bit, 0 if unsigned */
    uint32_t negzero;      /* what a negative zero keeps of the sign: sign_bit, or 0 (fnuz) */
    uint32_t ovf_pos, ovf_neg;  /* codes of +-overflow when not saturating: Inf or NaN */
    uint32_t nan_pos, nan_neg;  /* codes of a +-NaN input */
    uint32_t payload_mask; /* NaN payload bits kept (IEEE formats), else 0 */
} qs_fmt;

#define QS_INLINE static inline __attribute__((always_inline))

/* v / 2**s rounded to an integer by `mode`; neg (0 or 1) is the sign, for the directed modes;
 * rnd supplies the random bits of stochastic rounding. */
#define QS_DEFINE_ROUND_SHIFT(NAME, UT)                                                    \
QS_INLINE UT NAME(UT v, int s, int mode, UT neg, UT rnd) {                                 \
    /* Flags are full-width integers picked by ternaries: C booleans mixed into the       \
       arithmetic stop gcc from vectorizing the loops. */                                  \
    const UT one = 1, zero = 0, sh = (UT)s;                                                \
    UT q = v >> sh, mask = (one << sh) - one, rem = v & mask, half = (one << sh) >> one;   \
    UT odd = q & one;                                                                      \
    UT tie_up = rem == half ? (half != zero ? odd : zero) : zero;                          \
    if (mode == QS_RNE) return q + (rem > half ? one : tie_up);                            \
    if (mode == QS_RNA) return q + (rem >= half ? (half != zero ? one : zero) : zero);     \
    if (mode == QS_RUP) return q + (rem != zero ? (neg == zero ? one : zero) : zero);      \
    if (mode == QS_RDN) return q + (rem != zero ? (neg != zero ? one : zero) : zero);      \
    if (mode == QS_STOCHASTIC) return q + ((rem + (rnd & mask)) >> sh);                    \
    return q;                                                                              \
}
QS_DEFINE_ROUND_SHIFT(qs_round_shift32, uint32_t)
QS_DEFINE_ROUND_SHIFT(qs_round_shift64, uint64_t)

/* Code of the float with bits u, times 2**-k, in format *fp. */
#define QS_DEFINE_ENCODER(NAME, UT, ST, IN_E, IN_M, CLZ, ROUND)                            \
QS_INLINE uint32_t NAME(UT u, int k, const qs_fmt *fp, int mode, int sat, uint64_t rnd) {  \
    const ST nbits = 8 * (ST)sizeof(UT), in_bias = ((ST)1 << (IN_E - 1)) - 1;              \
    const UT one = 1, zero = 0, e_special = ((UT)1 << IN_E) - 1;                           \
    const ST bias = fp->bias, mbits = fp->mbits, flush_below = fp->flush_below;            \
    const UT max_code = fp->max_code, sign_bit = fp->sign_bit, negzero = fp->negzero;      \
    const UT ovf_pos = fp->ovf_pos, ovf_neg = fp->ovf_neg;                                 \
    const UT nan_pos = fp->nan_pos, nan_neg = fp->nan_neg, payload_mask = fp->payload_mask; \
    UT neg = u >> (nbits - 1);                                                             \
    UT mant = u & ((one << IN_M) - one);                                                   \
    UT e_field = (u >> IN_M) & e_special;                                                  \
    ST lz = (ST)CLZ(mant | one) - (nbits - 1 - IN_M);                                      \
    UT sig = e_field == zero ? mant << lz : mant | (one << IN_M);                          \
    ST e = e_field == zero ? 1 - lz : (ST)e_field;                                         \
    ST et = e - in_bias - k + bias;         /* biased exponent in the target */            \
    ST d = et < 1 ? 1 - et : 0;             /* extra shift below the smallest normal */    \
    ST s = IN_M - mbits + d;                                                               \
    s = s > nbits - 1 ? nbits - 1 : s;                                                     \
    UT q = ROUND(sig, (int)s, mode, neg, (UT)rnd) + ((UT)(et - 1 + d) << mbits);           \
    q = et < flush_below ? zero : q;                                                       \
    UT sgn = neg != zero ? (q == zero ? negzero : sign_bit) : zero;                        \
    UT code = q > max_code ? max_code | sgn : q | sgn;                                     \
    /* IEEE 754 7.4: rounding toward the finite side overflows to the largest finite */    \
    int away = mode == QS_RTZ ? 0 : mode == QS_RUP ? 2 : mode == QS_RDN ? 3 : 1;           \
    UT ovf = neg != zero ? ovf_neg : ovf_pos;                                              \
    if (!sat) {                                                                            \
        UT special = away == 1 ? ovf : away == 2 ? (neg != zero ? code : ovf)              \
                   : away == 3 ? (neg != zero ? ovf : code) : code;                        \
        code = q > max_code ? special : code;                                              \
    }                                                                                      \
    UT inf_code = sat ? max_code | (neg != zero ? sign_bit : zero) : ovf;                  \
    UT payload = (mant >> (IN_M - mbits)) & payload_mask;                                  \
    UT nan_code = neg != zero ? nan_neg | payload : nan_pos | payload;                     \
    code = e_field == e_special ? (mant == zero ? inf_code : nan_code) : code;             \
    return (uint32_t)code;                                                                 \
}
QS_DEFINE_ENCODER(qs_encode_f32, uint32_t, int32_t, 8, 23, qs_clz32, qs_round_shift32)
QS_DEFINE_ENCODER(qs_encode_f64, uint64_t, int64_t, 11, 52, qs_clz64, qs_round_shift64)

#endif
