# ggml block kernels: one block per loop iteration, blocks split across threads (prange), so
# results do not depend on the thread count. Built with -ffp-contract=off: d * q + m must stay
# two float32 roundings, as in ggml's reference and gguf-py.
# No validation here: qsim/quant/ggml.py checks arguments, lays out fields and handles the
# blocks these kernels flag (non-finite inputs or scales) with its numpy reference code.

from cython.parallel cimport prange
from libc.math cimport fabsf, floorf, truncf, isfinite
from _common cimport uint8_t, int8_t


# -- dequantize ---------------------------------------------------------------------------
def dequant_legacy(const uint8_t[:, ::1] blocks, const float[::1] half, int bits, bint has_min,
                   float[:, ::1] out, int num_threads):
    """Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0: out = d * q (+ m). half: fp16 code -> float32."""
    cdef Py_ssize_t n = blocks.shape[0], b
    cdef int j, q, qs_at = 2 + 2 * has_min + (4 if bits == 5 else 0), offset = 0 if has_min else 1 << (bits - 1)
    cdef unsigned int qh
    cdef float d, m
    cdef const uint8_t* p
    cdef float* y
    with nogil:
        for b in prange(n, num_threads=num_threads, schedule="static"):
            p = &blocks[b, 0]
            y = &out[b, 0]
            d = half[p[0] | (p[1] << 8)]
            m = half[p[2] | (p[3] << 8)] if has_min else 0
            if bits == 8:
                for j in range(32):
                    y[j] = d * <float>(<int8_t>p[2 + j])
                continue
            qh = 0
            if bits == 5:
                qh = p[qs_at - 4] | (p[qs_at - 3] << 8) | (p[qs_at - 2] << 16) | (<unsigned int>p[qs_at - 1] << 24)
            for j in range(32):
                q = (p[qs_at + (j & 15)] >> (4 * (j >> 4))) & 15
                q = q | (((qh >> j) & 1) << 4)
                if has_min:
                    y[j] = d * <float>q + m
                else:
                    y[j] = d * <float>(q - offset)


def dequant_mxfp4(const uint8_t[:, ::1] blocks, const float[::1] values, const float[::1] half_scales,
                  float[:, ::1] out, int num_threads):
    """out = 2**(e-128) * values[code]; half_scales[e] = 2**(e-128)."""
    cdef Py_ssize_t n = blocks.shape[0], b
    cdef int j
    cdef float s
    cdef const uint8_t* p
    with nogil:
        for b in prange(n, num_threads=num_threads, schedule="static"):
            p = &blocks[b, 0]
            s = half_scales[p[0]]
            for j in range(16):
                out[b, j] = s * values[p[1 + j] & 15]
                out[b, 16 + j] = s * values[p[1 + j] >> 4]


def dequant_q45_k(const uint8_t[:, ::1] blocks, const float[::1] half, bint five_bits,
                  float[:, ::1] out, int num_threads):
    """Q4_K / Q5_K: sub-block s of 32: (d * scale_s) * q - (dmin * min_s)."""
    cdef Py_ssize_t n = blocks.shape[0], b
    cdef int s, l, q, sc, mn, qs_at = 48 if five_bits else 16
    cdef float d, dmin, dl, ml
    cdef const uint8_t* p
    cdef float* y
    with nogil:
        for b in prange(n, num_threads=num_threads, schedule="static"):
            p = &blocks[b, 0]
            y = &out[b, 0]
            d = half[p[0] | (p[1] << 8)]
            dmin = half[p[2] | (p[3] << 8)]
            for s in range(8):
                if s < 4:
                    sc = p[4 + s] & 63
                    mn = p[8 + s] & 63
                else:
                    sc = (p[8 + s] & 15) | ((p[s] >> 6) << 4)
                    mn = (p[8 + s] >> 4) | ((p[4 + s] >> 6) << 4)
                dl = d * <float>sc
                ml = dmin * <float>mn
                for l in range(32):
                    q = (p[qs_at + 32 * (s >> 1) + l] >> (4 * (s & 1))) & 15
                    if five_bits:
                        q = q | (((p[16 + l] >> s) & 1) << 4)
                    y[32 * s + l] = dl * <float>q - ml


# -- quantize -----------------------------------------------------------------------------
# scale sources and roundings, numbered as qsim/quant/ggml.py's QuantRule names them
cdef enum:
    SIGNED_ABSMAX = 0
    ABSMAX = 1
    RANGE = 2
    TRUNC_PLUS_HALF = 0
    HALF_AWAY = 1


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include <math.h>
    /* Largest |x| of a block as float bits (ordered like the magnitudes), and whether any
       element is Inf or NaN; integer reductions, so the loop vectorizes. */
    static inline int qs_ggml_absmax(const float *restrict x, int n, uint32_t *amax_bits) {
        uint32_t top = 0, special = 0;
        for (int j = 0; j < n; j++) {
            uint32_t u; memcpy(&u, x + j, 4);
            uint32_t mag = u & 0x7fffffffu;
            top = mag > top ? mag : top;
            special |= mag >= 0x7f800000u;
        }
        *amax_bits = top;
        return (int)special;
    }
    static inline float qs_ggml_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
    /* code = round_half_away(x * inv) as int8 (C roundf, in float32); |x * inv| <= 127 or so in
       the finite blocks this sees, so the int conversion is floor(|v|) exactly */
    static inline void qs_ggml_half_away(const float *restrict x, float inv, uint8_t *restrict out) {
        for (int j = 0; j < 32; j++) {
            float v = x[j] * inv, a = fabsf(v);
            int q = (int)a;
            q += (a - (float)q >= 0.5f);
            out[j] = (uint8_t)(int8_t)(v < 0 ? -q : q);
        }
    }
    /* code = clamp(trunc((x - lo) * inv + offset), 0, top) */
    static inline void qs_ggml_trunc(const float *restrict x, float lo, float inv, float offset, int top,
                                     uint8_t *restrict out) {
        for (int j = 0; j < 32; j++) {
            int q = (int)truncf((x[j] - lo) * inv + offset);
            out[j] = (uint8_t)(q < 0 ? 0 : (q > top ? top : q));
        }
    }
    /* magnitude index = count of thresholds t[i] strictly below |x|; +8 if negative and nonzero */
    static inline void qs_ggml_nearest(const float *restrict x, int n, float scale, const float *restrict mids,
                                       int nt, uint8_t *restrict out) {
        float t[16];
        for (int i = 0; i < nt && i < 16; i++) t[i] = scale * mids[i];
        for (int j = 0; j < n; j++) {
            float a = fabsf(x[j]);
            int idx = 0;
            for (int i = 0; i < nt; i++) idx += a > t[i];
            out[j] = (uint8_t)(idx + ((x[j] < 0 && idx > 0) ? 8 : 0));
        }
    }
    """
    int qs_ggml_absmax(const float* x, int n, unsigned int* amax_bits) nogil
    float qs_ggml_bits_f32(unsigned int u) nogil
    void qs_ggml_half_away(const float* x, float inv, uint8_t* out) nogil
    void qs_ggml_trunc(const float* x, float lo, float inv, float offset, int top, uint8_t* out) nogil
    void qs_ggml_nearest(const float* x, int n, float scale, const float* mids, int nt, uint8_t* out) nogil


cdef inline float _absmax(const float* p, int k, uint8_t* flag) noexcept nogil:
    """The block's largest magnitude; flag[0] = 1 where it holds Inf or NaN. Its bits live on
    this call's stack: a variable of the prange body whose address is taken would be shared
    between threads."""
    cdef unsigned int bits
    flag[0] = qs_ggml_absmax(p, k, &bits)
    return qs_ggml_bits_f32(bits)


def quant_legacy(const float[:, ::1] x, int source, float divisor, float offset, int rounding, int bits,
                 uint8_t[:, ::1] codes, float[::1] d_out, float[::1] m_out, uint8_t[::1] flagged,
                 int num_threads):
    """codes[b, :] and the float32 scale d (and min m) of each block of 32; flagged[b] = 1 where
    the block holds Inf/NaN, its scale or 1/scale is not finite, or (RANGE) its min is a zero,
    whose sign numpy's reduction decides: the caller redoes those blocks."""
    cdef Py_ssize_t n = x.shape[0], b
    cdef int j, bad
    cdef float amax, src, lo, hi, d, inv
    cdef const float* p
    with nogil:
        for b in prange(n, num_threads=num_threads, schedule="static"):
            p = &x[b, 0]
            amax = _absmax(p, 32, &flagged[b])
            bad = flagged[b]
            lo = 0
            if source == ABSMAX:
                src = amax
            elif source == SIGNED_ABSMAX:
                src = 0
                for j in range(32):          # the first element of largest magnitude
                    if fabsf(p[j]) == amax:
                        src = p[j]
                        break
            else:
                lo = p[0]
                hi = p[0]
                for j in range(32):
                    if p[j] < lo:
                        lo = p[j]
                    if p[j] > hi:
                        hi = p[j]
                src = hi - lo
                bad = bad or lo == 0
            d = src / divisor
            inv = 0 if d == 0 else 1.0 / d
            flagged[b] = bad or not isfinite(d) or not isfinite(inv)
            d_out[b] = d
            m_out[b] = lo
            if flagged[b]:
                continue
            if rounding == HALF_AWAY:
                qs_ggml_half_away(p, inv, &codes[b, 0])
            else:
                qs_ggml_trunc(p, lo, inv, offset, (1 << bits) - 1, &codes[b, 0])


def block_absmax(const float[:, ::1] x, float[::1] amax, uint8_t[::1] flagged, int num_threads):
    """amax[b] = max |x[b, :]|; flagged[b] = 1 where the block holds Inf or NaN."""
    cdef Py_ssize_t n = x.shape[0], b
    cdef int k = x.shape[1]
    with nogil:
        for b in prange(n, num_threads=num_threads, schedule="static"):
            amax[b] = _absmax(&x[b, 0], k, &flagged[b])


def quant_nearest(const float[:, ::1] x, const float[::1] half_scale, const float[::1] mids,
                  uint8_t[:, ::1] codes, int num_threads):
    """Finite blocks: magnitude index = count of scaled midpoints strictly below |x| (ties stay
    low), plus 8 for a negative input with a nonzero magnitude index (zero is always code 0).
    The scaled midpoints are exact: powers of two times halves of small integers."""
    cdef Py_ssize_t n = x.shape[0], b
    cdef int k = x.shape[1], m = mids.shape[0]
    with nogil:
        for b in prange(n, num_threads=num_threads, schedule="static"):
            qs_ggml_nearest(&x[b, 0], k, half_scale[b], &mids[0], m, &codes[b, 0])
