# Shared C types and inline helpers of the kernels (defined in _bits.h and _encode.h).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int8_t, int16_t, int32_t, int64_t

cdef extern from "_bits.h" nogil:
    uint32_t qs_f32_bits(float x)
    uint64_t qs_f64_bits(double x)
    float qs_bits_f32(uint32_t u)
    double qs_bits_f64(uint64_t u)
    int qs_clz32(uint32_t u)
    int qs_clz64(uint64_t u)
    uint64_t qs_random_bits(uint64_t seed, uint64_t index)
    void qs_prefetch(const void* p, Py_ssize_t ahead, Py_ssize_t bytes)

cdef extern from "_encode.h" nogil:
    # Rounding modes; _enums.pxd names them for Python (qsim/rounding.py).
    enum:
        RNE "QS_RNE"
        RTZ "QS_RTZ"
        RNA "QS_RNA"
        RUP "QS_RUP"
        RDN "QS_RDN"
        STOCHASTIC "QS_STOCHASTIC"
        RNE_FAST "QS_RNE_FAST"

    # A float format packed for the encoder; qsim/codec.py `packed` builds it.
    ctypedef struct fmt_t "qs_fmt":
        int mbits
        int bias
        int flush_below
        uint32_t max_code
        uint32_t sign_bit
        uint32_t negzero
        uint32_t ovf_pos
        uint32_t ovf_neg
        uint32_t nan_pos
        uint32_t nan_neg
        uint32_t payload_mask
        uint32_t rne_add
        uint32_t min_normal_bits
        uint32_t magic_bits
        int half

    uint32_t qs_round_shift32(uint32_t v, int s, int mode, uint32_t neg, uint32_t rnd)
    uint64_t qs_round_shift64(uint64_t v, int s, int mode, uint64_t neg, uint64_t rnd)
    uint32_t qs_encode_f32(uint32_t u, int k, const fmt_t* f, int mode, int sat, uint64_t rnd)
    uint32_t qs_encode_f64(uint64_t u, int k, const fmt_t* f, int mode, int sat, uint64_t rnd)
    uint32_t qs_encode_f32_rne_fast(uint32_t u, const fmt_t* f, int sat)
    uint32_t qs_encode_scale_f32(uint32_t u, const fmt_t* f, int mode, int sat, uint64_t rnd)
    uint32_t qs_encode_scale_f32_rne(uint32_t u, const fmt_t* f, int sat)
    uint32_t qs_encode_scale_f64(uint64_t u, const fmt_t* f, int mode, int sat, uint64_t rnd)

cdef extern from "_half.h" nogil:
    bint QS_HAVE_F16C
    void qs_half_prefix_to_f32_u8(const uint8_t* codes, float* out, Py_ssize_t n)
    void qs_half_prefix_to_f32_u16(const uint16_t* codes, float* out, Py_ssize_t n)
    void qs_f32_to_half(const float* x, uint16_t* out, Py_ssize_t n, int sat)

cdef extern from "_lookup.h" nogil:
    ctypedef struct qs_lut:
        pass
    ctypedef struct qs_scales:
        const void* codes
        const float* table
    void qs_lut_init(qs_lut* t, const float* table, int entries)
    float qs_scale(const qs_scales* s, Py_ssize_t b)
    void qs_lut_decode(const qs_lut* t, const uint8_t* codes, float* out, Py_ssize_t n,
                       const qs_scales* scales, Py_ssize_t block, float second)
