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

enum { QS_RNE = 0, QS_RTZ = 1, QS_RNA = 2, QS_RUP = 3, QS_RDN = 4, QS_STOCHASTIC = 5,
       QS_RNE_FAST = 6 /* internal: RNE through qs_encode_f32_rne_fast where the format allows */ };

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
    /* for qs_encode_f32_rne_fast only */
    uint32_t rne_add;         /* 2**(s-1) - 1 - ((127 - bias) << 23), s = 23 - mbits, mod 2**32 */
    uint32_t min_normal_bits; /* float32 bits of the smallest normal; 0 if float32 shares it */
    uint32_t magic_bits;      /* float32 bits of 2**(emin - mbits + 23) */
    int half;                 /* IEEE binary16: the CPU's float32->half conversion gives its codes */
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
    if (mode == QS_RNE || mode == QS_RNE_FAST) return q + (rem > half ? one : tie_up);                            \
    if (mode == QS_RNA) return q + (rem >= half ? (half != zero ? one : zero) : zero);     \
    if (mode == QS_RUP) return q + (rem != zero ? (neg == zero ? one : zero) : zero);      \
    if (mode == QS_RDN) return q + (rem != zero ? (neg != zero ? one : zero) : zero);      \
    if (mode == QS_STOCHASTIC) return q + ((rem + (rnd & mask)) >> sh);                    \
    return q;                                                                              \
}
QS_DEFINE_ROUND_SHIFT(qs_round_shift32, uint32_t)
QS_DEFINE_ROUND_SHIFT(qs_round_shift64, uint64_t)

/* The part every encoder shares: sign, saturation or overflow, and Inf/NaN inputs.
 * q is the rounded magnitude code (possibly past max_code); mant the input's mantissa bits,
 * kept for an IEEE NaN's payload; special_in whether the input is Inf or NaN. */
#define QS_DEFINE_FINISH(NAME, UT)                                                         \
QS_INLINE uint32_t NAME(UT q, UT neg, UT mant, int special_in, int in_mbits,               \
                        const qs_fmt *fp, int mode, int sat) {                             \
    const UT zero = 0, max_code = fp->max_code, sign_bit = fp->sign_bit;                   \
    const UT negzero = fp->negzero, ovf_pos = fp->ovf_pos, ovf_neg = fp->ovf_neg;          \
    const UT nan_pos = fp->nan_pos, nan_neg = fp->nan_neg, payload_mask = fp->payload_mask; \
    const int mbits = fp->mbits;                                                           \
    UT sgn = neg != zero ? (q == zero ? negzero : sign_bit) : zero;                        \
    UT code = q > max_code ? max_code | sgn : q | sgn;                                     \
    UT ovf = neg != zero ? ovf_neg : ovf_pos;                                              \
    if (!sat) {                                                                            \
        /* IEEE 754 7.4: rounding toward the finite side overflows to the largest finite */ \
        UT special = mode == QS_RTZ ? code : mode == QS_RUP ? (neg != zero ? code : ovf)   \
                   : mode == QS_RDN ? (neg != zero ? ovf : code) : ovf;                    \
        code = q > max_code ? special : code;                                              \
    }                                                                                      \
    UT inf_code = sat ? max_code | (neg != zero ? sign_bit : zero) : ovf;                  \
    UT payload = (mant >> (in_mbits - mbits)) & payload_mask;                              \
    UT nan_code = neg != zero ? nan_neg | payload : nan_pos | payload;                     \
    code = special_in ? (mant == zero ? inf_code : nan_code) : code;                       \
    return (uint32_t)code;                                                                 \
}
QS_DEFINE_FINISH(qs_finish32, uint32_t)
QS_DEFINE_FINISH(qs_finish64, uint64_t)

/* Code of the float with bits u, times 2**-k, in format *fp. */
#define QS_DEFINE_ENCODER(NAME, UT, ST, IN_E, IN_M, CLZ, ROUND, FINISH)                    \
QS_INLINE uint32_t NAME(UT u, int k, const qs_fmt *fp, int mode, int sat, uint64_t rnd) {  \
    const ST nbits = 8 * (ST)sizeof(UT), in_bias = ((ST)1 << (IN_E - 1)) - 1;              \
    const UT one = 1, zero = 0, e_special = ((UT)1 << IN_E) - 1;                           \
    const ST bias = fp->bias, mbits = fp->mbits, flush_below = fp->flush_below;            \
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
    /* Zero has no exponent: the one it is given above is a normal one in a format reaching \
       below float's subnormals. sig is normalized, so its bit IN_M is 0 for zero alone;    \
       a mask, not a select, keeps the loops vectorizing. */                               \
    UT nonzero_mask = zero - (sig >> IN_M);                                                \
    UT q = ROUND(sig, (int)s, mode, neg, (UT)rnd) + (((UT)(et - 1 + d) << mbits) & nonzero_mask); \
    q = et < flush_below ? zero : q;                                                       \
    return FINISH(q, neg, mant, e_field == e_special, IN_M, fp, mode, sat);                \
}
QS_DEFINE_ENCODER(qs_encode_f32, uint32_t, int32_t, 8, 23, qs_clz32, qs_round_shift32, qs_finish32)
QS_DEFINE_ENCODER(qs_encode_f64, uint64_t, int64_t, 11, 52, qs_clz64, qs_round_shift64, qs_finish64)

/* Round to nearest even from float32, no scale offset, about a third of the work of the
 * generic encoder: one integer add rounds the mantissa (carrying into the exponent) for the
 * target's normal range, and adding a power of two whose spacing is the target's subnormal
 * spacing lets the FPU round the subnormal range.  qsim/codec.py `packed` enables it only where
 * that is exact: the target's range lies inside float32's and no float32 subnormal can reach
 * the float add, so denormals-are-zero settings cannot change the result.  The finish is the
 * generic one's for this case: the overflow code (Inf, or NaN where there is no Inf) is always
 * the one after the largest finite code, so one unsigned min saturates or overflows, Inf
 * inputs included; the sign goes on after, as the NaN inputs' code does. */
QS_INLINE uint32_t qs_encode_f32_rne_fast(uint32_t u, const qs_fmt *fp, int sat) {
    const uint32_t s = 23 - (uint32_t)fp->mbits, rne_add = fp->rne_add;
    const uint32_t min_normal = fp->min_normal_bits, magic_bits = fp->magic_bits;
    const uint32_t limit = sat ? fp->max_code : fp->max_code + 1;
    const uint32_t nan_sign = fp->nan_neg ^ fp->nan_pos;   /* what a negative NaN adds to its code */
    const float magic = qs_bits_f32(magic_bits);
    uint32_t a = u & 0x7fffffffu, neg_mask = (uint32_t)((int32_t)u >> 31);
    uint32_t normal = (a + rne_add + ((a >> s) & 1u)) >> s;
    uint32_t small = qs_f32_bits(qs_bits_f32(a) + magic) - magic_bits;
    uint32_t q = a < min_normal ? small : normal;
    q = q < limit ? q : limit;
    uint32_t code = q | (neg_mask & (q == 0 ? fp->negzero : fp->sign_bit));
    uint32_t nan = fp->nan_pos | (neg_mask & nan_sign) | ((u >> s) & fp->payload_mask);
    return a > 0x7f800000u ? nan : code;
}

/* Code of the float with bits u in an unsigned exponent-only format without zero (E8M0):
 * the code is the exponent alone.  Negative values, zero and NaN have no code and give the NaN
 * code; below the smallest scale clamps to it.  A tie (significand 1.5) rounds to the next
 * binade, but to nearest even means to the even code (as gfloat rounds; "rna" rounds ties up),
 * so where the lower code is even the tie's significand is taken one ulp down. */
#define QS_DEFINE_SCALE_ENCODER(NAME, UT, ST, IN_E, IN_M, CLZ, ROUND)                       \
QS_INLINE uint32_t NAME(UT u, const qs_fmt *fp, int mode, int sat, uint64_t rnd) {          \
    const ST nbits = 8 * (ST)sizeof(UT), in_bias = ((ST)1 << (IN_E - 1)) - 1;              \
    const UT one = 1, zero = 0, e_special = ((UT)1 << IN_E) - 1, tie = (UT)3 << (IN_M - 1); \
    const ST max_code = fp->max_code, nan = fp->nan_pos, top = sat ? max_code : nan;       \
    UT neg = u >> (nbits - 1);                                                             \
    UT mant = u & ((one << IN_M) - one);                                                   \
    UT e_field = (u >> IN_M) & e_special;                                                  \
    ST lz = (ST)CLZ(mant | one) - (nbits - 1 - IN_M);                                      \
    UT sig = e_field == zero ? mant << lz : mant | (one << IN_M);                          \
    ST lower = (e_field == zero ? 1 - lz : (ST)e_field) - in_bias + fp->bias;              \
    UT down = mode == QS_RNE ? (sig == tie ? ((lower & 1) == 0 ? one : zero) : zero) : zero; \
    ST code = lower - 1 + (ST)ROUND(sig - down, IN_M, mode, zero, (UT)rnd);                \
    code = code < 0 ? 0 : code;                                                            \
    code = code > max_code ? top : code;                                                   \
    code = e_field == e_special ? (mant == zero ? top : nan) : code;                       \
    code = neg != zero ? nan : (e_field | mant) == zero ? nan : code;                      \
    return (uint32_t)code;                                                                 \
}
/* The same for float32 input rounded to nearest even, in a third of the work: the code is
 * the exponent plus the integer rounding of the mantissa at its top bit, ties to the even
 * code (the lower code's parity breaks them); float32 subnormals are normalized by shifting. */
QS_INLINE uint32_t qs_encode_scale_f32_rne(uint32_t u, const qs_fmt *fp, int sat) {
    const int32_t rebias = fp->bias - 127, max_code = (int32_t)fp->max_code, nan = (int32_t)fp->nan_pos;
    const int32_t top = sat ? max_code : nan;
    uint32_t a = u & 0x7fffffffu, mant = u & 0x7fffffu;
    int32_t lz = qs_clz32(mant | 1u) - 8;                     /* >= 1: shifts a subnormal's top bit to bit 23 */
    uint32_t m = a < 0x800000u ? (mant << lz) & 0x7fffffu : mant;
    int32_t lower = (a < 0x800000u ? 1 - lz : (int32_t)(a >> 23)) + rebias;   /* code of 2**floor(log2 x) */
    int32_t code = lower + (int32_t)((m + 0x3fffffu + ((uint32_t)lower & 1u)) >> 23);
    code = code < 0 ? 0 : code;
    code = code > max_code ? top : code;
    code = a >= 0x7f800000u ? (a == 0x7f800000u ? top : nan) : code;
    return (uint32_t)((int32_t)u <= 0 ? nan : code);         /* negative or zero: no code */
}

QS_DEFINE_SCALE_ENCODER(qs_encode_scale_f32, uint32_t, int32_t, 8, 23, qs_clz32, qs_round_shift32)
QS_DEFINE_SCALE_ENCODER(qs_encode_scale_f64, uint64_t, int64_t, 11, 52, qs_clz64, qs_round_shift64)

#endif
