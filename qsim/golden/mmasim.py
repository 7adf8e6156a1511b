"""MMA-Sim (package `mmasim`, Xie et al., arXiv 2511.10909) run on qsim codes: a black-box
device for `qsim probe` and the runner of the golden adapters of matrix units. mmasim and
torch are imported when a tile runs.

Operands as mmasim takes them: FP8 and 16-bit codes as the torch dtypes' bits, TF32 codes as
FP32 bits with 13 zero bits below, FP6 codes in the low bits of a byte, FP4 codes shifted left
by 2 in a byte (kind::f8f6f4) or packed two per byte along K, first element in the low nibble
(kind::mxf4 and mxf4nvf4)."""

from __future__ import annotations

import numpy as np

ARCH = {"volta": "Volta", "turing": "Turing", "ampere": "Ampere", "ada-lovelace": "Ada Lovelace",
        "hopper": "Hopper", "blackwell": "Blackwell", "rtx-blackwell": "RTX Blackwell",
        "cdna1": "CDNA1", "cdna2": "CDNA2", "cdna3": "CDNA3"}
_OPS = {"mma": "MMA", "mma.block_scale": "MMABlockScale", "wgmma": "WGMMA", "tcgen05.mma": "TCGen05MMA",
        "tcgen05.mma.block_scale": "TCGen05MMABlockScale", "mfma": "MFMA"}
_BYTE_DTYPES = {"e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2", "e4m3fnuz": "float8_e4m3fnuz",
                "e5m2fnuz": "float8_e5m2fnuz", "e8m0": "float8_e8m0fnu"}

_ops: dict = {}


def _op(unit):
    if unit.name not in _ops:
        from mmasim import amd, nv_ptx
        module = amd if unit.instruction == "mfma" else nv_ptx
        _ops[unit.name] = getattr(module, _OPS[unit.instruction])(ARCH[unit.arch], unit.qualifier)
    return _ops[unit.name]


def _packed_fp4(unit) -> bool:
    return bool(unit.block_size) and unit.a_format == "fp4_e2m1" and unit.k == 64


def to_torch(codes, fmt: str, packed_fp4: bool = False):
    """qsim codes of fmt as the tensor mmasim takes (packed_fp4: two FP4 codes per byte along
    the last axis)."""
    import torch
    codes = np.asarray(codes)
    if fmt in _BYTE_DTYPES:
        return torch.from_numpy(codes.astype(np.uint8)).view(getattr(torch, _BYTE_DTYPES[fmt]))
    if fmt in ("bf16", "fp16"):
        return torch.from_numpy(codes.astype(np.uint16).view(np.int16)).view(
            torch.bfloat16 if fmt == "bf16" else torch.float16)
    if fmt == "tf32":
        return torch.from_numpy((codes.astype(np.uint32) << 13).view(np.float32))
    if fmt == "fp4_e2m1":
        c = codes.astype(np.uint8)
        if packed_fp4:
            return torch.from_numpy(np.ascontiguousarray(c[..., 0::2] | (c[..., 1::2] << 4)))
        return torch.from_numpy(c << 2)
    if fmt in ("fp6_e3m2", "fp6_e2m3"):
        return torch.from_numpy(codes.astype(np.uint8))
    raise ValueError(f"mmasim takes no operand in {fmt}")


def run_tile(unit, a, b, c, scale_a=None, scale_b=None) -> np.ndarray:
    """mmasim's D for one instruction tile: a (m, k) and b (k, n) codes, c (m, n) as C's dtype."""
    import torch
    op = _op(unit)
    packed = _packed_fp4(unit)
    ta = to_torch(a, unit.a_format, packed)
    tb = to_torch(np.asarray(b).T, unit.b_format, packed).T.contiguous() if packed else to_torch(b, unit.b_format)
    tc = torch.from_numpy(np.ascontiguousarray(c))
    if unit.block_size:
        d = op(ta, tb, tc, to_torch(scale_a, unit.scale_format), to_torch(scale_b, unit.scale_format))
    else:
        d = op(ta, tb, tc)
    return d.numpy()


def device(unit):
    """mmasim's instruction as a device callable on a batch of tiles (leading dimensions)."""
    from ..datapaths.matrix_units import matrix_unit
    unit = matrix_unit(unit)

    def run(a, b, c, scale_a=None, scale_b=None):
        a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
        out = np.empty(c.shape, c.dtype)
        for i in np.ndindex(*c.shape[:-2]):
            s = (None, None) if scale_a is None else (scale_a[i], scale_b[i])
            out[i] = run_tile(unit, a[i], b[i], c[i], *s)
        return out
    return run


def gemm(unit, a, b, c, scale_a=None, scale_b=None) -> np.ndarray:
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
