# Matrix units of GPUs (tensor cores, matrix cores): D = A.B + C as the hardware computes it,
# one parameterized fused dot-product-add for every unit (qsim/datapaths/matrix_units.py).
#
# Operands arrive decoded into integer significands and the exponent of their last bit
# (value = sig * 2^lsb; lsb = max(e, emin) - mantissa_bits, so a subnormal's exponent is the
# format's emin); Inf and NaN as lsb >= SPECIAL. Per step of `step` products and the running
# addend c: the exponent of each product is the sum of its factors' (lsb + mantissa bits),
# E is the largest (or `lowest`), every term is truncated toward zero to a multiple of
# 2^(E - F), the integers are summed exactly and the sum rounded once to the output format.
# With `group` > 0 the products of each group are summed exactly first (block-scaled 4-bit
# kinds) and the group sums are the terms. Block scales multiply the products (or group
# sums) of their block. Work items are output tiles, so results do not depend on the thread
# count. No validation here: the Python side checks.

from cython.parallel cimport prange
from libc.math cimport ldexp, frexp
from _common cimport *

cdef enum:
    SPECIAL = 16000       # lsb of Inf (sig = +-1); NaN is NAN_LSB
    NAN_LSB = 16001
    TILE = 8              # rows and columns per work item
    MAX_TERMS = 130       # products (or groups) of one step, and the addend

ctypedef struct params_t:
    int step              # products per step
    int F                 # fraction bits kept below the largest exponent
    int F2                # 0, or two stages: the products' sum then kept to F2 bits below the
                          # larger of its exponent and the addend's, the addend floored to F
    int group             # 0, or products per exactly summed group
    int lowest            # the largest exponent is at least this
    int xa, xb            # mantissa bits of A and B (exponent = lsb + these)
    int xsa, xsb          # mantissa bits of the scales
    int block             # K elements per scale (0: no scales)
    int mbits, emin, emax, rne       # the output format and its rounding
    int c_emin            # emin of the first addend's format
    uint32_t nan_bits
    double overflow       # 2^(emax + 1)
    int f16               # output bits are FP16 bits (else FP32 bits)
    int promote           # 0, or products per unit partial sum added into an FP32 register
    int fast              # no groups, scales, second stage, and no Inf/NaN among A and B


cdef inline int _bitlen(uint64_t u) noexcept nogil:
    return 0 if u == 0 else 64 - qs_clz64(u)


cdef inline int64_t _align(int64_t sig, int lsb, int q) noexcept nogil:
    """sig * 2^(lsb - q) truncated toward zero."""
    cdef int sh = q - lsb
    cdef int64_t m
    if sh <= 0:
        return sig << (-sh)
    if sh >= 63:
        return 0
    m = -sig if sig < 0 else sig
    m = m >> sh
    return -m if sig < 0 else m


cdef inline int64_t _floor_align(int64_t sig, int lsb, int q) noexcept nogil:
    """sig * 2^(lsb - q) rounded toward minus infinity (two's complement truncation)."""
    cdef int sh = q - lsb
    if sh <= 0:
        return sig << (-sh)
    if sh >= 63:
        return -1 if sig < 0 else 0
    return sig >> sh


cdef inline double _round_out(int64_t s, int q, const params_t* p, int* inf) noexcept nogil:
    """s * 2^q rounded once into the output format (value as a double); inf set on overflow."""
    cdef bint neg = s < 0
    cdef uint64_t u = <uint64_t>(-s if neg else s), r, rem, half
    cdef int e, lsb, sh
    cdef double v
    inf[0] = 0
    if u == 0:
        return 0.0
    e = _bitlen(u) - 1 + q
    lsb = (e if e > p.emin else p.emin) - p.mbits
    sh = lsb - q
    if sh <= 0:
        r = u << (-sh)
    elif sh >= 64:
        r = 0
    else:
        r = u >> sh
        if p.rne:
            rem = u & ((<uint64_t>1 << sh) - 1)
            half = <uint64_t>1 << (sh - 1)
            if rem > half or (rem == half and (r & 1)):
                r += 1
    v = <double>r * _pow2(lsb)
    if v >= p.overflow:
        inf[0] = 1
        return -1.0 if neg else 1.0
    return -v if neg else v


cdef inline uint32_t _bits(double v, int state, const params_t* p) noexcept nogil:
    """Output bits of a value (state 0), +Inf (1), -Inf (2) or NaN (3)."""
    cdef uint32_t b
    cdef uint64_t d
    cdef int e, sh
    if state == 3:
        return p.nan_bits
    if not p.f16:
        if state == 1:
            return 0x7f800000u
        if state == 2:
            return 0xff800000u
        return qs_f32_bits(<float>v)
    if state == 1:
        return 0x7c00u
    if state == 2:
        return 0xfc00u
    if v == 0:
        return 0
    b = 0x8000u if v < 0 else 0
    if v < 0:
        v = -v
    # v is an FP16 value: exact conversion through its double bits
    d = qs_f64_bits(v)
    e = <int>((d >> 52) & 0x7ff) - 1023
    if e < -14:                       # subnormal: units of 2^-24
        return b | <uint32_t>(v * 16777216.0)
    return b | (<uint32_t>(e + 15) << 10) | <uint32_t>((d >> 42) & 0x3ff)


cdef inline double _pow2(int e) noexcept nogil:
    """2^e for -1022 <= e <= 1023, from its bits."""
    return qs_bits_f64(<uint64_t>(e + 1023) << 52)


cdef inline void _split(double c, int emin, int64_t* sig, int* lsb, int* x) noexcept nogil:
    """A nonzero FP32 or FP16 value (a normal double) as sig * 2^lsb, and its exponent for
    the alignment (at least emin)."""
    cdef uint64_t d = qs_f64_bits(c)
    cdef int e = <int>((d >> 52) & 0x7ff) - 1023
    cdef int64_t m = <int64_t>((d & ((<uint64_t>1 << 52) - 1)) | (<uint64_t>1 << 52))
    sig[0] = -m if c < 0 else m
    lsb[0] = e - 52
    x[0] = e if e > emin else emin


cdef int _step(const int16_t* asig, const int16_t* alsb, const int16_t* bsig, const int16_t* blsb,
               Py_ssize_t bstride, int n, const int16_t* sa_sig, const int16_t* sa_lsb,
               const int16_t* sb_sig, const int16_t* sb_lsb, Py_ssize_t sb_stride, int k0,
               double* acc, int* state, int c_emin, const params_t* p) noexcept nogil:
    """One step: n products (a[t] * b[t * bstride]) and the addend acc (state: 0 finite,
    1 +Inf, 2 -Inf, 3 NaN), in place."""
    cdef int64_t sig[MAX_TERMS]
    cdef int lsb[MAX_TERMS]
    cdef int nt = 0, t, g, la, lb, x, E = -100000, q, pinf = state[0] == 1, ninf = state[0] == 2
    cdef int nan = state[0] == 3, xg, gl, sl, inf, blk
    cdef int64_t sp, cs, gs, ss
    cdef int cl, cx
    cdef int gsz = p.group if p.group else 1
    cdef int64_t gsig[64]
    cdef int glsb[64]
    cdef int ng, gmin
    t = 0
    while t < n:
        ng = 0
        xg = -100000
        gmin = 100000
        for g in range(t, t + gsz):
            la = alsb[g]
            lb = blsb[g * bstride]
            if la >= SPECIAL or lb >= SPECIAL:
                if la == NAN_LSB or lb == NAN_LSB or (la < SPECIAL and asig[g] == 0) or (lb < SPECIAL and bsig[g * bstride] == 0):
                    nan = 1
                elif (asig[g] < 0) != (bsig[g * bstride] < 0):
                    ninf = 1
                else:
                    pinf = 1
                continue
            sp = <int64_t>asig[g] * bsig[g * bstride]
            if sp == 0:
                continue
            gl = la + lb
            x = gl + p.xa + p.xb
            if p.block:
                blk = (k0 + g) // p.block
                if sa_lsb[blk] >= SPECIAL or sb_lsb[blk * sb_stride] >= SPECIAL:
                    nan = 1
                    continue
                ss = <int64_t>sa_sig[blk] * sb_sig[blk * sb_stride]
                if ss == 0:
                    continue
                sp = sp * ss
                sl = sa_lsb[blk] + sb_lsb[blk * sb_stride]
                gl = gl + sl
                x = x + sl + p.xsa + p.xsb
            if x > xg:
                xg = x
            gsig[ng] = sp
            glsb[ng] = gl
            if gl < gmin:
                gmin = gl
            ng = ng + 1
        t = t + gsz
        if ng == 0:
            continue
        if p.group:                   # the group's products summed exactly
            gs = 0
            for g in range(ng):
                gs = gs + (gsig[g] << (glsb[g] - gmin))
            if gs == 0:
                if xg > E:
                    E = xg
                continue
            sig[nt] = gs
            lsb[nt] = gmin
            nt = nt + 1
            if xg > E:
                E = xg
        else:
            sig[nt] = gsig[0]
            lsb[nt] = glsb[0]
            nt = nt + 1
            if xg > E:
                E = xg
    if nan or (pinf and ninf):
        state[0] = 3
        return 0
    if pinf or ninf:
        state[0] = 1 if pinf else 2
        return 0
    if p.F2:
        return _two_stage(sig, lsb, nt, E, acc, state, c_emin, p)
    if acc[0] != 0:
        _split(acc[0], c_emin, &cs, &cl, &cx)
        sig[nt] = cs
        lsb[nt] = cl
        nt = nt + 1
        if cx > E:
            E = cx
    if nt == 0:
        acc[0] = 0.0
        state[0] = 0
        return 0
    if E < p.lowest:
        E = p.lowest
    q = E - p.F
    cs = 0
    for t in range(nt):
        cs = cs + _align(sig[t], lsb[t], q)
    acc[0] = _round_out(cs, q, p, &inf)
    if inf:
        state[0] = 1 if acc[0] > 0 else 2
    else:
        state[0] = 0
    return 0


cdef int _step_fast(const int16_t* asig, const int16_t* alsb, const int16_t* bsig, const int16_t* blsb, int n,
                    double* acc, int* state, int c_emin, const params_t* p) noexcept nogil:
    """_step for finite operands without groups, scales or a second stage, in loops the
    compiler vectorizes: products and exponents, the largest, the aligned sum."""
    cdef int32_t ps[128]
    cdef int32_t pl[128]
    cdef int t, E = -100000, l, sh, cl, cx, inf
    cdef int64_t total = 0, cs
    cdef uint64_t m, sg
    if state[0]:
        return 0                      # an Inf or NaN addend stays
    for t in range(n):
        ps[t] = <int32_t>asig[t] * <int32_t>bsig[t]
        pl[t] = <int32_t>alsb[t] + <int32_t>blsb[t]
    for t in range(n):
        l = pl[t] if ps[t] != 0 else -100000
        E = l if l > E else E
    if E > -100000:
        E = E + p.xa + p.xb
    if acc[0] != 0:
        _split(acc[0], c_emin, &cs, &cl, &cx)
        if cx > E:
            E = cx
    elif E == -100000:
        acc[0] = 0.0
        return 0
    if E < p.lowest:
        E = p.lowest
    for t in range(n):
        # |p| * 2^(lsb - q) truncated: shifted up by 40 first, so one right shift does it
        sh = E - p.F - pl[t] + 40
        sh = 63 if sh > 63 else sh
        sg = <uint64_t>(<int64_t>ps[t] >> 31)
        m = <uint64_t>((<int64_t>ps[t] ^ <int64_t>sg) - <int64_t>sg)
        m = (m << 40) >> sh
        total = total + <int64_t>((m ^ sg) - sg)
    if acc[0] != 0:
        total = total + _align(cs, cl, E - p.F)
    acc[0] = _round_out(total, E - p.F, p, &inf)
    if inf:
        state[0] = 1 if acc[0] > 0 else 2
    return 0


cdef int _two_stage(const int64_t* sig, const int* lsb, int nt, int E1, double* acc, int* state,
                    int c_emin, const params_t* p) noexcept nogil:
    """The products truncated to F bits below their largest exponent E1 and summed; then that
    sum (to F2 bits) and the addend (floored to F bits) below max(E1, the addend's exponent),
    summed and rounded once."""
    cdef int64_t s = 0, cs = 0, tot
    cdef int t, q1 = E1 - p.F, E2 = E1, cl = 0, cx, inf
    for t in range(nt):
        s = s + _align(sig[t], lsb[t], q1)
    if acc[0] != 0:
        _split(acc[0], c_emin, &cs, &cl, &cx)
        if nt == 0 or cx > E2:
            E2 = cx
    elif nt == 0:
        acc[0] = 0.0
        state[0] = 0
        return 0
    if E2 < p.lowest:
        E2 = p.lowest
    tot = _align(s, q1, E2 - p.F2)
    if cs != 0:
        tot = tot + (_floor_align(cs, cl, E2 - p.F) << (p.F2 - p.F))
    acc[0] = _round_out(tot, E2 - p.F2, p, &inf)
    state[0] = (1 if acc[0] > 0 else 2) if inf else 0
    return 0


cdef void _one(const int16_t[:, ::1] asig, const int16_t[:, ::1] alsb, const int16_t[:, ::1] btsig,
               const int16_t[:, ::1] btlsb, const int16_t[:, ::1] sasig, const int16_t[:, ::1] salsb,
               const int16_t[:, ::1] sbtsig, const int16_t[:, ::1] sbtlsb, const double[:, ::1] c,
               const uint8_t[:, ::1] cstate, uint32_t[:, ::1] out, Py_ssize_t i, Py_ssize_t j,
               const params_t* p) noexcept nogil:
    cdef Py_ssize_t K = asig.shape[1], k0
    cdef double acc = c[i, j], total = 0.0
    cdef int state = cstate[i, j], tstate = 0, first = 1
    cdef float ft
    cdef int c_emin = p.c_emin
    cdef const int16_t* sap = NULL
    cdef const int16_t* salp = NULL
    cdef const int16_t* sbp = NULL
    cdef const int16_t* sblp = NULL
    if p.block:
        sap = &sasig[i, 0]
        salp = &salsb[i, 0]
        sbp = &sbtsig[j, 0]
        sblp = &sbtlsb[j, 0]
    if p.promote:
        total = acc
        tstate = state
        acc = 0.0
        state = 0
    k0 = 0
    while k0 < K:
        if p.fast:
            _step_fast(&asig[i, k0], &alsb[i, k0], &btsig[j, k0], &btlsb[j, k0], p.step, &acc, &state, c_emin, p)
        else:
            _step(&asig[i, k0], &alsb[i, k0], &btsig[j, k0], &btlsb[j, k0], 1, p.step, sap, salp, sbp, sblp, 1,
                  <int>k0, &acc, &state, c_emin, p)
        c_emin = p.emin
        k0 = k0 + p.step
        if p.promote and (k0 % p.promote == 0 or k0 >= K):
            # the unit's partial sum added into an FP32 register (IEEE, round to nearest even)
            if state == 3 or tstate == 3 or (state == 1 and tstate == 2) or (state == 2 and tstate == 1):
                tstate = 3
            elif state:
                tstate = state
            elif tstate == 0:
                ft = <float>total + <float>acc
                total = ft
                if total - total != 0:
                    tstate = 1 if total > 0 else 2
            acc = 0.0
            state = 0
            c_emin = p.emin
    if p.promote:
        acc = total
        state = tstate
    out[i, j] = _bits(acc, state, p)


def unit_gemm(const int16_t[:, ::1] asig, const int16_t[:, ::1] alsb, const int16_t[:, ::1] btsig,
              const int16_t[:, ::1] btlsb, const int16_t[:, ::1] sasig, const int16_t[:, ::1] salsb,
              const int16_t[:, ::1] sbtsig, const int16_t[:, ::1] sbtlsb, const double[:, ::1] c,
              const uint8_t[:, ::1] cstate, uint32_t[:, ::1] out, int step, int F, int F2, int group, int lowest,
              int xa, int xb, int xsa, int xsb, int block, int mbits, int emin, int emax, bint rne,
              int c_emin, uint32_t nan_bits, bint f16, int promote, bint finite, int num_threads):
    """D bits (M x N) of A (M x K) and B transposed (N x K) given as significands and
    last-bit exponents, scales (M x K/block, N x K/block) likewise, C as doubles with a state
    (0 finite, 1 +Inf, 2 -Inf, 3 NaN)."""
    cdef params_t p
    p.step = step
    p.F = F
    p.F2 = F2
    p.group = group
    p.lowest = lowest
    p.xa = xa
    p.xb = xb
    p.xsa = xsa
    p.xsb = xsb
    p.block = block
    p.mbits = mbits
    p.emin = emin
    p.emax = emax
    p.rne = rne
    p.c_emin = c_emin
    p.nan_bits = nan_bits
    p.overflow = ldexp(1.0, emax + 1)
    p.f16 = f16
    p.promote = promote
    p.fast = finite and not group and not F2 and not block and step <= 128 and xa + xb <= 40
    cdef Py_ssize_t M = asig.shape[0], N = btsig.shape[0], item, i, j
    cdef Py_ssize_t mt = (M + TILE - 1) // TILE, nt = (N + TILE - 1) // TILE
    if M == 0 or N == 0:
        return
    with nogil:
        for item in prange(mt * nt, num_threads=num_threads, schedule="static"):
            for i in range((item // nt) * TILE, min(M, (item // nt + 1) * TILE)):
                for j in range((item % nt) * TILE, min(N, (item % nt + 1) * TILE)):
                    _one(asig, alsb, btsig, btlsb, sasig, salsb, sbtsig, sbtlsb, c, cstate, out, i, j, &p)
