"""MMA-Sim (package `mmasim`, Xie et al., arXiv 2511.10909) run on qsim codes: the oracle of
qsim's matrix units (qsim/datapaths/matrix_units.py).

`run_tile(unit, a, b, c, scale_a, scale_b)` gives D (C's dtype) for one instruction tile, with
qsim codes converted to mmasim's operands: FP8 and 16-bit codes as the torch dtypes' bits,
TF32 codes as FP32 bits with 13 zero bits below, FP6 codes in the low bits of a byte, FP4
codes shifted left by 2 in a byte (kind::f8f6f4) or packed two per byte, first element in the
low nibble (kind::mxf4 and mxf4nvf4)."""

from __future__ import annotations

import numpy as np
import torch
from mmasim import amd, nv_ptx

ARCH = {"volta": "Volta", "turing": "Turing", "ampere": "Ampere", "ada-lovelace": "Ada Lovelace",
        "hopper": "Hopper", "blackwell": "Blackwell", "rtx-blackwell": "RTX Blackwell",
        "cdna1": "CDNA1", "cdna2": "CDNA2", "cdna3": "CDNA3"}
OPS = {"mma": nv_ptx.MMA, "mma.block_scale": nv_ptx.MMABlockScale, "wgmma": nv_ptx.WGMMA,
       "tcgen05.mma": nv_ptx.TCGen05MMA, "tcgen05.mma.block_scale": nv_ptx.TCGen05MMABlockScale,
       "mfma": amd.MFMA}
_DTYPES = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2, "e4m3fnuz": torch.float8_e4m3fnuz,
           "e5m2fnuz": torch.float8_e5m2fnuz, "e8m0": torch.float8_e8m0fnu}

_ops: dict = {}


def oracle(unit):
    if unit.name not in _ops:
        _ops[unit.name] = OPS[unit.instruction](ARCH[unit.arch], unit.qualifier)
    return _ops[unit.name]


def to_torch(codes, fmt: str, packed_fp4: bool = False) -> torch.Tensor:
    codes = np.asarray(codes)
    if fmt in _DTYPES:
        return torch.from_numpy(codes.astype(np.uint8)).view(_DTYPES[fmt])
    if fmt in ("bf16", "fp16"):
        t = torch.from_numpy(codes.astype(np.uint16).view(np.int16))
        return t.view(torch.bfloat16 if fmt == "bf16" else torch.float16)
    if fmt == "tf32":
        return torch.from_numpy((codes.astype(np.uint32) << 13).view(np.float32))
    if fmt == "fp32":
        return torch.from_numpy(codes.astype(np.uint32).view(np.float32))
    if fmt == "fp4_e2m1":
        if packed_fp4:
            c = codes.astype(np.uint8)
            return torch.from_numpy(np.ascontiguousarray(c[..., 0::2] | (c[..., 1::2] << 4)))
        return torch.from_numpy((codes.astype(np.uint8) << 2))
    if fmt in ("fp6_e3m2", "fp6_e2m3"):
        return torch.from_numpy(codes.astype(np.uint8))
    raise ValueError(f"no mmasim operand for {fmt}")


def run_tile(unit, a, b, c, scale_a=None, scale_b=None) -> np.ndarray:
    """mmasim's D for one tile: a (m, k), b (k, n) codes, c (m, n) float32/float16."""
    op = oracle(unit)
    packed = unit.block_size and unit.a_format == "fp4_e2m1" and unit.k == 64
    ta = to_torch(a, unit.a_format, packed)
    # B's packing runs along K: pack its transpose, hand mmasim (k / 2, n)
    tb = to_torch(np.asarray(b).T, unit.b_format, packed).T.contiguous() if packed else to_torch(b, unit.b_format)
    tc = torch.from_numpy(np.ascontiguousarray(c))
    if unit.block_size:
        sa, sb = to_torch(scale_a, unit.scale_format), to_torch(scale_b, unit.scale_format)
        d = op(ta, tb, tc, sa, sb)
    else:
        d = op(ta, tb, tc)
    return d.numpy()


def run_gemm(unit, a, b, c, scale_a=None, scale_b=None) -> np.ndarray:
    """A GEMM of whole tiles as a chain of mmasim instructions along K (each D the next C)."""
    a, b = np.asarray(a), np.asarray(b)
    m, kk = a.shape
    n = b.shape[1]
    d = np.array(c, copy=True)
    bs = unit.block_size
    for i in range(0, m, unit.m):
        for j in range(0, n, unit.n):
            acc = d[i:i + unit.m, j:j + unit.n]
            for k0 in range(0, kk, unit.k):
                s = (None, None) if not bs else (scale_a[i:i + unit.m, k0 // bs:(k0 + unit.k) // bs],
                                                 scale_b[k0 // bs:(k0 + unit.k) // bs, j:j + unit.n])
                acc = run_tile(unit, a[i:i + unit.m, k0:k0 + unit.k], b[k0:k0 + unit.k, j:j + unit.n], acc, *s)
            d[i:i + unit.m, j:j + unit.n] = acc
    return d


# -- inputs that exercise the units ---------------------------------------------------------------
def random_codes(fmt_name: str, shape, rng, spread: int = 12, special: float = 0.0) -> np.ndarray:
    """Codes of fmt with exponent fields within `spread` of the bias (all of them for narrow
    formats), random signs and fractions; a `special` fraction of NaN/Inf codes."""
    from qsim.formats import format as get_format
    f = get_format(fmt_name)
    e_max_field = (1 << f.exponent_bits) - 1
    lo, hi = max(0, f.bias - spread), min(e_max_field, f.bias + spread)
    e = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    m = rng.integers(0, 1 << f.mantissa_bits, size=shape, dtype=np.int64)
    s = rng.integers(0, 2, size=shape, dtype=np.int64) if f.signed else np.zeros(shape, np.int64)
    codes = (s << (f.exponent_bits + f.mantissa_bits)) | (e << f.mantissa_bits) | m
    from qsim.codec import decode
    v = decode(codes, f, dtype=np.float64)
    finite = np.isfinite(v)
    codes = np.where(finite, codes, codes & ~(1 << f.mantissa_bits) if f.mantissa_bits else 0)  # keep finite
    codes = np.where(np.isfinite(decode(codes, f, dtype=np.float64)), codes, 0)
    if special:
        nan = np.flatnonzero(~np.isfinite(decode(np.arange(f.n_codes), f, dtype=np.float64)))
        if nan.size:
            pick = rng.random(shape) < special
            codes = np.where(pick, rng.choice(nan, size=shape), codes)
    return codes.astype(np.uint32)


def random_c(unit, shape, rng, spread: int = 20, special: float = 0.0) -> np.ndarray:
    dt = np.float16 if unit.c_format == "fp16" else np.float32
    v = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread + 1, size=shape))
    if special:
        sp = np.array([np.inf, -np.inf, np.nan])
        v = np.where(rng.random(shape) < special, rng.choice(sp, size=shape), v)
    with np.errstate(over="ignore"):
        return v.astype(dt)
