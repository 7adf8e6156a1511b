"""Integer matrix products in a modelled accumulator.

Hardware sums int8-sized products in an accumulator of some width that either wraps or
saturates. Wrapping gives the exact sum modulo 2^W whatever the order; saturation depends on
the order of the additions, so the order is part of the model. fbgemm without VNNI
(VPMADDUBSW) saturates each adjacent pair of raw u8 x s8 products to int16 first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._kernels import _intgemm
from .._threads import resolve_threads

# Names and kernel codes, defined once in cython_src/_enums.pxd
ORDERS = _intgemm.ENUMS["order"]                 # accumulation order -> kernel code
_OVERFLOW_CODES = _intgemm.ENUMS["overflow"]     # "wrap" / "saturate" -> kernel code
OVERFLOWS = tuple(_OVERFLOW_CODES)
_OPERAND_LIMIT = 1 << 15       # operands (after zero points) must fit int16: products < 2^30


@dataclass(frozen=True)
class Accumulator:
    """An accumulator as hardware builds it.

    bits: width, 8..64. overflow: "wrap" (modulo 2^bits) or "saturate" (clamp at each add).
    order: "sequential" (k = 0, 1, ...), "reversed", or "pairwise" (an adder tree: adjacent
    pairs summed level by level, an odd last node passed up); only saturation sees it.
    pair_saturate16: the x86 VPMADDUBSW path of fbgemm and ONNX Runtime's MLAS on CPUs without
    VNNI: raw u8 activations times s8 weights are summed in adjacent pairs (k = 2j, 2j+1)
    saturating to int16 before accumulation, and the zero points are corrected afterwards from
    row and column sums. The instruction takes only u8 x s8: other operand types are exact.
    """

    bits: int = 32
    overflow: str = "wrap"
    order: str = "sequential"
    pair_saturate16: bool = False

    def __post_init__(self):
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 8 <= self.bits <= 64:
            raise ValueError(f"accumulator bits must be an integer from 8 to 64, got {self.bits!r}")
        if self.overflow not in OVERFLOWS:
            raise ValueError(f"accumulator overflow must be one of {OVERFLOWS}, got {self.overflow!r}")
        if self.order not in ORDERS:
            raise ValueError(f"accumulator order must be one of {tuple(ORDERS)}, got {self.order!r}")

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def fit(self, exact: np.ndarray) -> np.ndarray:
        """A value the accumulator cannot hold, wrapped or clamped into its range (int64)."""
        exact = np.asarray(exact, dtype=np.int64)
        if self.overflow == "saturate":
            return np.clip(exact, self.lo, self.hi)
        if self.bits == 64:
            return exact
        shift = 64 - self.bits
        return (exact << shift) >> shift


def a2q_bits(k: int, input_bits: int, weight_bits: int, input_signed: bool) -> int:
    """Accumulator width that no dot product of length k can overflow (A2Q, Colbert et al.
    ICCV 2023): P = ceil(alpha + log2(1 + 2^-alpha) + 1), alpha = log2(k) + N + M - 1 - [signed]."""
    if k < 1 or input_bits < 1 or weight_bits < 1:
        raise ValueError("k, input_bits and weight_bits must be positive")
    alpha = math.log2(k) + input_bits + weight_bits - 1 - int(bool(input_signed))
    return math.ceil(alpha + math.log2(1 + 2.0 ** -alpha) + 1)


def _operand(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "ui":
        raise TypeError(f"{name} must be an integer array, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions, got shape {x.shape}")
    return x


def _zero_point(z, name: str, size: int) -> np.ndarray:
    """A zero point: one integer, or one per row of a / column of b."""
    z = np.asarray(z)
    if z.dtype.kind not in "ui":
        raise TypeError(f"{name} must be an integer or integer array, got dtype {z.dtype}")
    if z.ndim > 1 or (z.ndim == 1 and z.shape[0] != size):
        raise ValueError(f"{name} must be a scalar or have shape ({size},), got {z.shape}")
    return z.astype(np.int64)


def _magnitude(x: np.ndarray, zero: np.ndarray) -> int:
    """max |x - zero| without forming x - zero."""
    if x.size == 0:
        return 0
    lo, hi = int(x.min()), int(x.max())
    zlo, zhi = int(zero.min()), int(zero.max())
    return max(abs(lo - zhi), abs(hi - zlo), abs(lo - zlo), abs(hi - zhi))


def _exact_product(a: np.ndarray, b: np.ndarray, za: np.ndarray, zb: np.ndarray, top: int) -> np.ndarray:
    """sum_k (a[..., m, k] - za) * (b[..., k, n] - zb[n]) exactly, through float BLAS.

    Exact because every partial sum is an integer of magnitude <= chunk * top (top = the
    largest |product|), and the chunk along k keeps that bound <= 2^24 (float32) or 2^53
    (float64), where every integer is representable; chunks are then added in int64.
    """
    k = a.shape[-1]
    out_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    if top == 0 or k == 0:
        return np.zeros(out_shape, np.int64)
    chunk = (1 << 24) // top
    ftype = np.float32
    if chunk < min(k, 256):          # float32 would need tiny chunks: float64 needs none
        chunk, ftype = (1 << 53) // top, np.float64
    fa, fb = a.astype(ftype), b.astype(ftype)
    if za.any():
        fa -= ftype(za)                               # exact: |a - za| < 2^16
    if zb.any():
        fb -= zb.astype(ftype)
    if chunk >= k:
        return np.matmul(fa, fb).astype(np.int64)
    total = np.zeros(out_shape, np.int64)
    for k0 in range(0, k, chunk):
        total += np.matmul(fa[..., k0:k0 + chunk], fb[..., k0:k0 + chunk, :]).astype(np.int64)
    return total


def matmul_batch(a_shape: tuple, b_shape: tuple) -> tuple:
    """The broadcast batch shape of a (..., M, K) @ (..., K, N) product; ValueError if the inner
    dimensions differ or the batch dimensions do not broadcast."""
    if a_shape[-1] != b_shape[-2]:
        raise ValueError(f"inner dimensions differ: a is {a_shape}, b is {b_shape}")
    try:
        return np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ValueError(f"batch dimensions do not broadcast: a is {a_shape}, b is {b_shape}") from None


def int_matmul(a, b, a_zero=0, b_zero=0, accumulator: Accumulator | None = None,
               return_events: bool = False, num_threads: int | None = None):
    """sum_k (a[..., m, k] - a_zero) * (b[..., k, n] - b_zero[n]) in `accumulator`, as int64.

    a: (..., M, K) and b: (..., K, N) integer arrays (batch dimensions broadcast); a_zero is
    one integer, b_zero one integer or one per column. Default accumulator: int32, wrapping.
    return_events: also return, per output, how many additions wrapped or saturated.
    """
    acc = Accumulator() if accumulator is None else accumulator
    if not isinstance(acc, Accumulator):
        raise TypeError(f"accumulator must be an Accumulator, got {type(acc).__name__}")
    a, b = _operand(a, "a"), _operand(b, "b")
    batch = matmul_batch(a.shape, b.shape)
    za = _zero_point(a_zero, "a_zero", 1)
    if za.ndim:
        raise ValueError("a_zero must be one integer")
    zb = _zero_point(b_zero, "b_zero", b.shape[-1])
    threads = resolve_threads(num_threads, int(np.prod(batch)) * a.shape[-2] * a.shape[-1] * b.shape[-1])

    if acc.pair_saturate16 and a.dtype == np.uint8 and b.dtype == np.int8:
        return _pair_saturated(a, b, za, zb, acc, batch, return_events, threads)
    a_top, b_top = _magnitude(a, za), _magnitude(b, zb)
    if max(a_top, b_top) >= _OPERAND_LIMIT:
        raise ValueError("operands minus zero points must fit in int16 (|value| < 2^15) for the integer datapath")
    bound = a.shape[-1] * a_top * b_top               # no partial sum can exceed this
    if bound <= acc.hi or (acc.overflow == "wrap" and not return_events):
        total = _exact_product(a, b, za, zb, a_top * b_top)
        if bound > acc.hi:
            total = acc.fit(total)                    # wrap is order-free: exact, then wrap
        return (total, np.zeros(total.shape, np.int64)) if return_events else total
    a16 = (a.astype(np.int32) - za).astype(np.int16)
    b16 = (b.astype(np.int32) - zb).astype(np.int16)
    return _run_kernel(a16, b16, acc, batch, threads, pairs=False, return_events=return_events)


def _run_kernel(a16, b16, acc: Accumulator, batch, threads: int, pairs: bool, return_events: bool):
    m, n = a16.shape[-2], b16.shape[-1]
    a16 = np.broadcast_to(a16, batch + a16.shape[-2:])
    b16 = np.broadcast_to(b16, batch + b16.shape[-2:])
    out = np.zeros(batch + (m, n), np.int64)
    events = np.zeros(batch + (m, n), np.int64)
    for i in np.ndindex(*batch):
        _intgemm.accumulate(np.ascontiguousarray(a16[i]), np.ascontiguousarray(b16[i]), out[i], events[i],
                            acc.bits, _OVERFLOW_CODES[acc.overflow], ORDERS[acc.order], pairs, threads)
    if events.size and events.min() < 0:
        raise MemoryError("not enough memory for the pairwise adder tree")
    return (out, events) if return_events else out


def _pair_sums(a, b, batch, threads: int) -> np.ndarray:
    """Exact sums of fbgemm's saturated pairs (the kernel packs B as fbgemm does)."""
    m, n = a.shape[-2], b.shape[-1]
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    out = np.empty(batch + (m, n), np.int64)
    for i in np.ndindex(*batch):
        if not _intgemm.pair_saturated_sums(np.ascontiguousarray(a[i]), np.ascontiguousarray(b[i]), out[i], threads):
            raise MemoryError("not enough memory to pack the operands of a saturated-pair product")
    return out


def _pair_saturated(a, b, za, zb, acc: Accumulator, batch, return_events: bool, threads: int):
    """fbgemm's VPMADDUBSW path: the kernel sums raw bytes; zero points corrected after."""
    k = a.shape[-1]
    pair_bound = (k + 3) // 4 * 2 * 32768             # no sum of saturated pairs (k padded to quads) exceeds this
    if pair_bound <= acc.hi or (acc.overflow == "wrap" and not return_events and pair_bound < 1 << 31):
        # Nothing can overflow, or wrapping is order-free (modular): exact sums, fitted once.
        raw = _pair_sums(a, b, batch, threads)
        events = np.zeros(raw.shape, np.int64)
    else:
        raw, events = _run_kernel(a.astype(np.int16), b.astype(np.int16), acc, batch, threads,
                                  pairs=True, return_events=True)
    row_sums = a.sum(axis=-1, dtype=np.int64)[..., :, None]
    col_sums = b.sum(axis=-2, dtype=np.int64)[..., None, :]
    total = acc.fit(raw - za * col_sums - zb * row_sums + k * za * zb)
    return (total, events) if return_events else total
