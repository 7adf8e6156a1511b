"""Floating-point and block-scaled (MX) matrix products with modelled accumulators.

Products of the inputs are exact; what differs between hardware is how they are summed:
- sequential (or reversed, or pairwise) IEEE adds, each rounded into an accumulator format
  (FP32, FP16, BF16 or any minifloat) with a chosen rounding;
- a fused multi-term unit (Fasi et al. 2021, tensor cores): a group of G products and the
  running sum are aligned to the largest exponent, B bits kept by truncation (or rounding),
  summed exactly and normalized once;
- promotion of the partial sum to an FP32 accumulator every N_C products (DeepSeek-V3, 3.3.2);
- MX dot products (OCP MX v1.0): per 32-element block the products are summed exactly, then
  the two block scales applied, and the block results accumulated in FP32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._kernels import _fpgemm, _intgemm
from .._threads import resolve_threads
from ..codec import decode, encode, packed, value_table
from ..formats import FloatFormat, format as get_format
from ..rounding import rounding_code
from .accumulate import ORDERS, matmul_batch
from .integer import PRESET_DIR, load_presets


def check_kernel_enums(*kernels) -> None:
    """The kernel modules' enumerations (names and codes, from cython_src/_enums.pxd) agree; a
    stale build of one would not."""
    for k in kernels[1:]:
        if k.ENUMS != kernels[0].ENUMS:
            raise ImportError(f"qsim kernels {kernels[0].__name__} and {k.__name__} disagree on their "
                              "enumerations (cython_src/_enums.pxd): rebuild qsim (pip install -e .)")


# Names and kernel codes, defined once in cython_src/_enums.pxd
check_kernel_enums(_fpgemm, _intgemm)
_ALIGN_CODES = _fpgemm.ENUMS["align"]      # fused alignment name -> kernel code
ALIGNMENTS = tuple(_ALIGN_CODES)
EVENTS = tuple(sorted(_fpgemm.ENUMS["event"], key=_fpgemm.ENUMS["event"].get))   # the events array's last axis


def _float_format(name, what: str) -> FloatFormat:
    fmt = get_format(name)
    if not isinstance(fmt, FloatFormat) or not fmt.signed or not fmt.has_zero:
        raise ValueError(f"{what} must be a signed float format with a zero, got {fmt.name}")
    return fmt


@dataclass(frozen=True)
class FloatAccumulator:
    """How products are summed.

    format, rounding, saturate: the accumulator's format and how each add (or each fused
    group's normalization) rounds into it. order: of sequential adds. fused_group: 0 for
    sequential adds, else G products per fused unit; fused_bits: B bits kept after
    alignment; fused_align: "truncate" (toward zero) or "rne". promote_every: N_C products
    per partial sum, added into an FP32 (round to nearest even) accumulator; 0: never.
    """

    format: str = "fp32"
    rounding: str = "rne"
    saturate: bool = False
    order: str = "sequential"
    fused_group: int = 0
    fused_bits: int = 24
    fused_align: str = "truncate"
    promote_every: int = 0

    def __post_init__(self):
        fmt = _float_format(self.format, "accumulator format")
        if fmt.storage_bits > 32 or fmt.mantissa_bits > 23 or fmt.emax > 127 or fmt.emin - fmt.mantissa_bits < -149:
            raise ValueError(f"accumulator format must fit inside float32, got {fmt.name}")
        code = rounding_code(self.rounding)
        if code == rounding_code("stochastic"):
            raise ValueError("stochastic rounding is not modelled in accumulators")
        if not isinstance(self.saturate, bool):
            raise TypeError("accumulator saturate must be True or False")
        if not self.saturate and not (fmt.has_inf or fmt.has_nan):
            raise ValueError(f"{fmt.name} has no Inf or NaN to overflow to: use saturate=True")
        if self.order not in ORDERS:
            raise ValueError(f"accumulator order must be one of {tuple(ORDERS)}, got {self.order!r}")
        for name, lo, hi in (("fused_group", 0, 256), ("fused_bits", 2, 48), ("promote_every", 0, 1 << 30)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"accumulator {name} must be an integer in [{lo}, {hi}], got {v!r}")
        if self.fused_align not in ALIGNMENTS:
            raise ValueError(f"accumulator fused_align must be one of {ALIGNMENTS}, got {self.fused_align!r}")
        if self.fused_group and self.order != "sequential":
            raise ValueError("a fused unit sums its groups in sequence: order must be 'sequential'")
        if self.promote_every and not self.fused_group:
            raise ValueError("promote_every applies to the fused unit (set fused_group)")

    def _kernel_format(self):
        fmt = get_format(self.format)
        table = np.empty(0) if fmt.storage_bits == 32 else value_table(fmt, "<f8")
        return packed(fmt), rounding_code(self.rounding), self.saturate, table, float(fmt.max)


def _operand(codes, fmt, what: str) -> np.ndarray:
    """Exact values (float64) of codes in a float format of at most 16 bits."""
    fmt = _float_format(fmt, f"{what}_format")
    if fmt.storage_bits > 16:
        raise ValueError(f"{what}_format must be a format of at most 16 bits, got {fmt.name}")
    values = decode(np.asarray(codes), fmt, dtype=np.float64)
    if values.ndim < 2:
        raise ValueError(f"{what} must have at least 2 dimensions, got shape {values.shape}")
    return values


def _products_exact_in_float32(a_fmt: FloatFormat, b_fmt: FloatFormat, av: np.ndarray, bv: np.ndarray) -> bool:
    """Whether every product of these operands is a float32 (normal, or zero): the significands
    fit 24 bits, and the data's smallest and largest magnitudes keep every product inside
    float32's normal range (products of BF16 values from real tensors usually do)."""
    if a_fmt.mantissa_bits + b_fmt.mantissa_bits + 2 > 24:
        return False
    mags = []
    for v in (av, bv):
        a = np.abs(v[np.isfinite(v)])
        nz = a[a > 0]
        if nz.size == 0:
            return True                               # all zero (or non-finite): IEEE float32 decides
        mags.append((float(nz.min()), float(nz.max())))
    (alo, ahi), (blo, bhi) = mags
    return alo * blo >= 2.0 ** -126 and ahi * bhi < 2.0 ** 127


def float_matmul(a, b, a_format, b_format, accumulator: FloatAccumulator | None = None,
                 return_events: bool = False, num_threads: int | None = None):
    """sum_k a[..., m, k] * b[..., k, n] of float codes, summed as `accumulator` does.

    a, b: codes in a_format / b_format (any float format up to 16 bits). Returns the
    accumulator's values as float64 (exact), and with return_events a dict of per-output
    counts: overflow (to Inf/NaN), saturated, absorbed (addends lost entirely).
    """
    acc = FloatAccumulator() if accumulator is None else accumulator
    if not isinstance(acc, FloatAccumulator):
        raise TypeError(f"accumulator must be a FloatAccumulator, got {type(acc).__name__}")
    av, bv = _operand(a, a_format, "a"), _operand(b, b_format, "b")
    batch = matmul_batch(av.shape, bv.shape)
    m, n = av.shape[-2], bv.shape[-1]
    threads = resolve_threads(num_threads, int(np.prod(batch)) * m * n * av.shape[-1])
    av = np.broadcast_to(av, batch + av.shape[-2:])
    bv = np.broadcast_to(bv, batch + bv.shape[-2:])
    out = np.zeros(batch + (m, n), np.float64)
    events = np.zeros(batch + (m, n, len(EVENTS)), np.int64)
    fast = (not return_events and not acc.fused_group and acc.order == "sequential" and acc.rounding == "rne"
            and get_format(acc.format).name == "fp32"
            and _products_exact_in_float32(get_format(a_format), get_format(b_format), av, bv))
    f, mode, sat, table, max_finite = acc._kernel_format()
    if fast:                          # float32 values are exact here: no float64 detour
        av = np.broadcast_to(av.astype(np.float32), batch + av.shape[-2:])
        bv = np.broadcast_to(bv.astype(np.float32), batch + bv.shape[-2:])
    for i in np.ndindex(*batch):
        ai, bi = np.ascontiguousarray(av[i]), np.ascontiguousarray(bv[i])
        if fast:
            o32 = np.zeros((m, n), np.float32)
            _fpgemm.sequential_f32(ai, bi, o32, threads)
            out[i] = o32
        elif acc.fused_group:
            _fpgemm.fused(ai, np.ascontiguousarray(bi.T), out[i], events[i], acc.fused_group, acc.fused_bits, _ALIGN_CODES[acc.fused_align],
                          f, mode, sat, table, max_finite, acc.promote_every, packed(get_format("fp32")), threads)
        else:
            _fpgemm.sequential(ai, np.ascontiguousarray(bi.T), out[i], events[i], f, mode, sat, table, max_finite,
                               ORDERS[acc.order], threads)
    if return_events:
        return out, {name: events[..., j] for j, name in enumerate(EVENTS)}
    return out


def float_conv(x, w, x_format, w_format, stride=1, padding=0, dilation=1, groups: int = 1,
               accumulator: FloatAccumulator | None = None, return_events: bool = False,
               num_threads: int | None = None):
    """Convolution of float codes (NC[H]W; w (C_out, C_in / groups, [kh,] kw)), each output a
    dot product over (channel, kernel row, kernel column) summed as `accumulator` does.
    Padding is +0. Returns float64 values (and the per-output counters with return_events)."""
    from .conv import conv_as_matmul
    x, w = np.asarray(x), np.asarray(w)
    for name, v in (("x", x), ("w", w)):
        if v.dtype.kind not in "ui":
            raise TypeError(f"{name} must hold codes (an unsigned integer array), got dtype {v.dtype}")
    parts = conv_as_matmul(x, w, 0, stride, padding, dilation, groups, lambda cols, wk, g: (
        lambda r: (r[0], *r[1].values()))(float_matmul(cols, wk, x_format, w_format, accumulator, True, num_threads)))
    out, events = parts[0], dict(zip(EVENTS, parts[1:]))
    return (out, events) if return_events else out


def convert_output(acc_values, fmt, scale=1.0, rounding: str = "rne", saturate: bool | None = None):
    """Output codes: encode(float32(float32(acc) * float32(scale))), e.g. FP8 with a per-tensor scale."""
    v = np.asarray(acc_values, np.float32) * np.float32(scale)
    return encode(v, fmt, rounding=rounding, saturate=saturate)


# -- block-scaled dot products (OCP MX, NVFP4, FP8 block scaling) --------------------------------
def block_matmul(a, b) -> np.ndarray:
    """A @ B of block-scaled operands. a: BlockArray of A (..., M, K); b: BlockArray of B
    transposed (..., N, K); both blocked along K, their last axis (2-D tiles of B cover (N, K)).

    Per block, the element products are summed exactly and the two block scales applied: with
    power-of-two scales (OCP MX v1.0) X_A * X_B * sum P_i Q_i is rounded once to FP32; with
    other scales (NVFP4's UE4M3, FP32 block scales) the FP32 sum times the FP32 product of the
    scales, as block-scaled GEMM epilogues apply them. Blocks are accumulated in FP32 in order;
    two-level formats then multiply by the FP32 product of the tensor scales. Batch dimensions
    broadcast. Returns float64 holding FP32 values."""
    from ..quant.blocks import BlockArray, element_unit, element_values, row_scales
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, BlockArray):
            raise TypeError(f"{name} must be a BlockArray (qsim.quant.blocks.block_quantize), got {type(x).__name__}")
        if x.elements.ndim < 2 or x.axis != x.elements.ndim - 1:
            raise ValueError(f"{name} must be at least 2-D with its blocks along its last axis (K), got shape "
                             f"{x.elements.shape}, axis {x.axis}")
    fa, fb = a.format, b.format
    bs, k = fa.block[-1], a.elements.shape[-1]
    if fb.block[-1] != bs:
        raise ValueError(f"block lengths along K differ: {fa.name} has {bs}, {fb.name} {fb.block[-1]}")
    if b.elements.shape[-1] != k:
        raise ValueError(f"K differs: a has {k}, b (transposed) has {b.elements.shape[-1]}")
    batch = matmul_batch(a.elements.shape, np.swapaxes(b.elements, -1, -2).shape)
    m, n, nb = a.elements.shape[-2], b.elements.shape[-2], -(-k // bs)
    if nb == 0:
        return np.zeros(batch + (m, n))
    top = float(fa.element_max) / element_unit(fa) * float(fb.element_max) / element_unit(fb) * bs
    if top >= 2.0 ** 53:
        raise ValueError(f"exact block sums of {fa.element.name} x {fb.element.name} need more than 53 bits; "
                         "not modelled yet (E5M2 blocks)")
    ea, eb = element_values(a), np.swapaxes(element_values(b), -1, -2)
    sa, sb = row_scales(a), row_scales(b)
    total = None
    with np.errstate(over="ignore", invalid="ignore"):       # a block beyond FP32's range is +-Inf
        for j in range(nb):                                   # blocks in order, each rounded once to FP32
            cols = slice(j * bs, (j + 1) * bs)
            sums = np.matmul(ea[..., cols], eb[..., cols, :])  # exact: integers of one unit below 2^53
            scale = sa[..., :, j, None] * sb[..., None, :, j]  # exact in float64
            pow2 = np.frexp(scale)[0] == 0.5
            block = np.where(pow2, (sums * scale).astype(np.float32),
                             sums.astype(np.float32) * scale.astype(np.float32))
            total = block if total is None else total + block
        if a.tensor_scale is not None or b.tensor_scale is not None:
            ts = np.float32(a.tensor_scale or 1.0) * np.float32(b.tensor_scale or 1.0)
            total = total * ts
    return np.broadcast_to(total, batch + (m, n)).astype(np.float64)


def mx_matmul(a, b) -> np.ndarray:
    """Product of MX operands per OCP MX v1.0 (block_matmul): a: MXArray (..., M, K) with
    blocks along K (its last axis); b: MXArray (..., K, N) with blocks along K (its second-last
    axis). Returns float64 holding FP32 values."""
    from ..quant.blocks import BlockArray
    from ..quant.mx import MXArray, mx_format
    for name, x, where in (("a", a, 1), ("b", b, 2)):
        if not isinstance(x, MXArray):
            raise TypeError(f"{name} must be an MXArray (qsim.mx_quantize), got {type(x).__name__}")
        if x.elements.ndim < 2 or x.axis != x.elements.ndim - where:
            raise ValueError(f"{name} must be at least 2-D with its blocks along K (axis {-where}), "
                             f"got shape {x.elements.shape}, axis {x.axis}")
    if a.block_size != b.block_size:
        raise ValueError(f"block sizes differ: {a.block_size} and {b.block_size}")
    qa = BlockArray(a.elements, a.scales, None, mx_format(a.element_format, a.block_size), a.axis)
    qb = BlockArray(np.swapaxes(b.elements, -1, -2), np.swapaxes(b.scales, -1, -2), None,
                    mx_format(b.element_format, b.block_size), b.elements.ndim - 1)
    return block_matmul(qa, qb)


# -- presets ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FloatDatapath:
    """A floating-point kernel path: input formats (None: as given), the accumulator, and
    block_products: the operands are block-scaled and each block's products are summed
    exactly before the scales (block_matmul), the blocks then accumulated in FP32."""

    name: str
    a_format: str | None
    b_format: str | None
    accumulator: FloatAccumulator = field(default_factory=FloatAccumulator)
    block_products: bool = False
    description: str = ""

    def __post_init__(self):
        if self.block_products and (self.a_format or self.b_format or self.accumulator != FloatAccumulator()):
            raise ValueError("block products take their formats from the block-scaled operands and accumulate "
                             "in FP32: set neither a_format, b_format nor accumulator")


# data in presets/float.toml; a_format and b_format absent: the inputs are taken as given
FLOAT_PRESETS: dict[str, FloatDatapath] = load_presets(PRESET_DIR / "float.toml", FloatDatapath, FloatAccumulator,
                                                       optional=("a_format", "b_format"))


# -- the FP32 reference ---------------------------------------------------------------------------
def fp32_matmul(a, b, num_threads: int | None = None) -> np.ndarray:
    """a (..., M, K) @ b (..., K, N) of float32 values as qsim's FP32 reference computes it: exact
    products summed in double in k order, rounded once to float32. Unlike a BLAS sgemm, whose
    last bits depend on its thread count and kernels, the result is the same at any thread
    count, on any entry point and machine (products are exact in double, so FMA or not)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"fp32_matmul takes operands of at least 2 dimensions, got shapes {a.shape} and {b.shape}")
    batch = matmul_batch(a.shape, b.shape)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if b.ndim == 2:                   # one weight matrix: the batch folds into the rows
        a3 = np.ascontiguousarray(a.reshape(1, -1, k))
        b3 = np.ascontiguousarray(b.reshape(1, k, n))
    else:
        a3 = np.ascontiguousarray(np.broadcast_to(a, batch + (m, k)).reshape(-1, m, k))
        b3 = np.ascontiguousarray(np.broadcast_to(b, batch + (k, n)).reshape(-1, k, n))
    out = np.empty((a3.shape[0], a3.shape[1], n), np.float32)
    _fpgemm.reference_f32(a3, b3, out, resolve_threads(num_threads, out.size * k))
    return out.reshape(batch + (m, n))
