# Shared C types of the kernels: the packed format description and the rounding codes.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int8_t, int16_t, int32_t, int64_t

cdef extern from "_bits.h" nogil:
    uint32_t qs_f32_bits(float x)
    uint64_t qs_f64_bits(double x)
    float qs_bits_f32(uint32_t u)
    double qs_bits_f64(uint64_t u)
    int qs_clz32(uint32_t u)
    int qs_clz64(uint64_t u)
    uint64_t qs_random_bits(uint64_t seed, uint64_t index)

# Rounding modes; the Python layer maps names to these (qsim/rounding.py).
cdef enum:
    RNE = 0          # nearest, ties to even
    RTZ = 1          # toward zero
    RNA = 2          # nearest, ties away from zero
    RUP = 3          # toward +inf
    RDN = 4          # toward -inf
    STOCHASTIC = 5   # up with probability equal to the discarded fraction

# A float format packed for the encoder; built once per call from qsim.formats.FloatFormat.
ctypedef struct fmt_t:
    int ebits
    int mbits
    int bias
    int subnormals        # 0: magnitudes below the smallest normal flush to zero
    int has_inf
    int nan_is_sign_code  # fnuz: NaN is the code 100..0 and there is no -0
    int ieee_nan          # ieee: NaN keeps the top payload bits and is quieted
    uint32_t max_code     # largest finite magnitude code
    uint32_t inf_code     # +Inf magnitude code (ieee only)
    uint32_t nan_code     # canonical positive NaN code
    uint32_t sign_bit     # mask of the sign bit in the code, 0 if unsigned
