"""llama.cpp's (ggml's) block formats, bit-exact: each format is data, the code reads the data.

A ggml block is a fixed run of bytes holding ``block_elems`` weights: one or more scales
(fp16, fp32, E8M0 or small packed integers), optionally a min, and the packed element codes.
The layouts are those of ggml-common.h (and gguf-py): every field's byte count is listed in
``layout`` in storage order, so ``bytes_per_block`` and ``bits_per_weight`` are derived.

Dequantization is exact for every format here, including the K-quants: the float32 products
are taken in the same order as ggml's reference ``dequantize_row_*`` (``d * q + m`` is two
roundings, never a fused multiply-add).

Quantization follows gguf-py's reference quantizer (itself bit-exact with ggml-quants.c's
``quantize_row_*_ref``) for the "legacy" formats and ggml's MXFP4. Its rules are parameters of
``QuantRule``: where the scale comes from, the divisor, the code offset and the rounding. ggml
computes in float32 throughout: the scale ``d`` is float32 while quantizing and is rounded to
fp16 only when stored; ``1/d`` is a float32 division. The K-quants are dequantize-only: ggml's
reference K-quant quantizer searches scales iteratively and gguf-py does not implement it, so
there is no oracle to be exact against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._kernels import _ggml
from .._threads import resolve_threads

SUPER_BLOCK = 256  # QK_K: elements in a K-quant super-block


# -- formats as data --------------------------------------------------------------------
@dataclass(frozen=True)
class QuantRule:
    """How gguf-py's reference quantizer picks the scale and rounds, for one legacy format.

    scale_source: "signed_absmax" (the element of largest magnitude, sign kept: Q4_0, Q5_0),
        "absmax" (Q8_0) or "range" (max - min, with the min stored: Q4_1, Q5_1).
        Ties for the largest magnitude go to the first element.
    scale_divisor: d = source / scale_divisor, in float32 (-8 makes the signed max code 0).
    code_offset: the code of 0: code = round(x * (1/d) + code_offset), or round((x - min) / d).
    rounding: "trunc_plus_half" (trunc(v + 0.5), then clip to the code range; Q4/Q5) or
        "half_away_from_zero" (Q8_0's roundf).
    """
    scale_source: Literal["signed_absmax", "absmax", "range"]
    scale_divisor: int
    code_offset: int
    rounding: Literal["trunc_plus_half", "half_away_from_zero"]


@dataclass(frozen=True)
class MXFP4Rule:
    """ggml's MXFP4 quantizer (gguf-py MXFP4.quantize_blocks, ggml quantize_row_mxfp4_ref).

    Scale exponent: e = floor(log2(amax)) + exponent_offset + 127, with log2 taken in float32
    (so an amax just below a power of two can round up to it) and the float32 result cast to
    uint8; an all-zero (or NaN-amax) block gets e = 0. Element: the entry of ``element_values``
    (doubled E2M1 values, times 2**(e-128)) nearest the input, ties to the lower index; a NaN
    input gets index 0. This is not OCP's round-half-even: 0.25 (between 0 and 0.5) gives 0,
    and 2.5 (between 2 and 3) gives 2, but 1.25 gives 1 where RNE would also, and 5 gives 4
    where RNE gives 6.
    """
    exponent_offset: int = -2
    log2_dtype: str = "float32"
    pick: Literal["nearest_ties_to_lower_index"] = "nearest_ties_to_lower_index"


@dataclass(frozen=True)
class GGMLFormat:
    """One ggml block type. ``layout``: (field, bytes) in storage order."""
    name: str
    type_id: int                      # GGMLQuantizationType value
    family: Literal["legacy", "mxfp4", "k"]
    block_elems: int
    element_bits: int
    layout: tuple[tuple[str, int], ...]
    scale: str                        # how the block scale is stored
    min_stored: bool = False          # a per-block (or per-sub-block) min is stored
    sub_block_elems: int | None = None  # K-quants: elements per sub-block scale
    sub_scale_bits: int | None = None   # K-quants: bits of each sub-block scale (and min)
    rule: QuantRule | MXFP4Rule | None = None  # None: dequantize only

    def __post_init__(self):
        if self.block_elems * self.element_bits % 8:
            raise ValueError(f"{self.name}: elements do not fill whole bytes")
        if self.field_bytes("qs") * 8 + self.field_bytes("qh") * 8 + self.field_bytes("hmask") * 8 \
                + self.field_bytes("ql") * 8 != self.block_elems * self.element_bits:
            raise ValueError(f"{self.name}: code fields do not hold {self.block_elems} x {self.element_bits} bits")

    def field_bytes(self, field: str) -> int:
        return dict(self.layout).get(field, 0)

    def field_offset(self, field: str) -> int:
        offset = 0
        for name, nbytes in self.layout:
            if name == field:
                return offset
            offset += nbytes
        raise KeyError(f"{self.name} has no field {field!r}")

    @property
    def bytes_per_block(self) -> int:
        return sum(nbytes for _, nbytes in self.layout)

    @property
    def bits_per_weight(self) -> float:
        return self.bytes_per_block * 8 / self.block_elems

    @property
    def can_quantize(self) -> bool:
        return self.rule is not None


def _legacy(name, type_id, bits, rule, min_stored=False):
    layout = [("d", 2)] + ([("m", 2)] if min_stored else []) + ([("qh", 4)] if bits == 5 else [])
    layout.append(("qs", 32 * min(bits, 4) // 8 if bits < 8 else 32))
    return GGMLFormat(name, type_id, "legacy", 32, bits, tuple(layout), "fp16", min_stored, rule=rule)


_K12 = 12  # bytes of packed 6-bit scales and mins in Q4_K / Q5_K (and 6-bit scales in Q3_K)

GGML_FORMATS: dict[str, GGMLFormat] = {f.name: f for f in (
    _legacy("Q4_0", 2, 4, QuantRule("signed_absmax", -8, 8, "trunc_plus_half")),
    _legacy("Q4_1", 3, 4, QuantRule("range", 15, 0, "trunc_plus_half"), min_stored=True),
    _legacy("Q5_0", 6, 5, QuantRule("signed_absmax", -16, 16, "trunc_plus_half")),
    _legacy("Q5_1", 7, 5, QuantRule("range", 31, 0, "trunc_plus_half"), min_stored=True),
    _legacy("Q8_0", 8, 8, QuantRule("absmax", 127, 0, "half_away_from_zero")),
    GGMLFormat("MXFP4", 39, "mxfp4", 32, 4, (("e", 1), ("qs", 16)), "e8m0 (2**(e-128) times doubled E2M1)",
               rule=MXFP4Rule()),
    GGMLFormat("Q2_K", 10, "k", SUPER_BLOCK, 2, (("scales", 16), ("qs", 64), ("d", 2), ("dmin", 2)),
               "fp16 d and dmin times 4-bit sub-block scale and min", True, 16, 4),
    GGMLFormat("Q3_K", 11, "k", SUPER_BLOCK, 3, (("hmask", 32), ("qs", 64), ("scales", _K12), ("d", 2)),
               "fp16 d times 6-bit signed sub-block scale", False, 16, 6),
    GGMLFormat("Q4_K", 12, "k", SUPER_BLOCK, 4, (("d", 2), ("dmin", 2), ("scales", _K12), ("qs", 128)),
               "fp16 d and dmin times 6-bit sub-block scale and min", True, 32, 6),
    GGMLFormat("Q5_K", 13, "k", SUPER_BLOCK, 5, (("d", 2), ("dmin", 2), ("scales", _K12), ("qh", 32), ("qs", 128)),
               "fp16 d and dmin times 6-bit sub-block scale and min", True, 32, 6),
    GGMLFormat("Q6_K", 14, "k", SUPER_BLOCK, 6, (("ql", 128), ("qh", 64), ("scales", 16), ("d", 2)),
               "fp16 d times int8 sub-block scale", False, 16, 8),
    GGMLFormat("Q8_K", 15, "k", SUPER_BLOCK, 8, (("d", 4), ("qs", 256), ("bsums", 32)),
               "fp32 d (bsums: int16 sums of 16 codes, for dot products only)", False, None, None),
)}

# doubled E2M1 values, in code order (code 8 is -0)
MXFP4_VALUES = (0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12)


def ggml_format(fmt: str | GGMLFormat) -> GGMLFormat:
    if isinstance(fmt, GGMLFormat):
        return fmt
    if isinstance(fmt, str) and fmt.upper() in GGML_FORMATS:
        return GGML_FORMATS[fmt.upper()]
    raise ValueError(f"unknown ggml format {fmt!r}; known: {', '.join(GGML_FORMATS)}")


# -- byte helpers -------------------------------------------------------------------------
def _field(blocks: np.ndarray, fmt: GGMLFormat, name: str) -> np.ndarray:
    start = fmt.field_offset(name)
    return blocks[:, start:start + fmt.field_bytes(name)]


def _fp16(blocks, fmt, name) -> np.ndarray:
    """A 2-byte fp16 field as a float32 column (n_blocks, 1)."""
    return np.ascontiguousarray(_field(blocks, fmt, name)).view(np.float16).astype(np.float32)


_NIBBLES = np.array([[b & 15, b >> 4] for b in range(256)], dtype=np.uint8)   # byte -> (low, high)
_CRUMBS = np.array([[(b >> s) & 3 for s in (0, 2, 4, 6)] for b in range(256)], dtype=np.uint8)
_BITS = np.array([[(b >> s) & 1 for s in range(8)] for b in range(256)], dtype=np.uint8)


def _halves(qs: np.ndarray) -> np.ndarray:
    """Bytes (n, k) -> codes (n, 2, k): [:, 0] the low nibbles, [:, 1] the high ones."""
    return _NIBBLES[qs].transpose(0, 2, 1)


def _six_bit_scales(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K / Q5_K: 12 bytes -> 8 six-bit scales and 8 six-bit mins (ggml get_scale_min_k4).
    Bytes 0-3 hold scales 0-3 (low 6 bits), bytes 4-7 mins 0-3; scales and mins 4-7 take their
    low 4 bits from bytes 8-11 (low / high nibble) and their top 2 bits from bytes 0-3 / 4-7."""
    a, b, c = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]
    scales = np.concatenate([a & 63, (c & 15) | ((a >> 6) << 4)], axis=1)
    mins = np.concatenate([b & 63, (c >> 4) | ((b >> 6) << 4)], axis=1)
    return scales, mins


# -- dequantize ---------------------------------------------------------------------------
def _dq_legacy(blocks, fmt):
    n = blocks.shape[0]
    d = _fp16(blocks, fmt, "d")
    if fmt.element_bits == 8:
        q = _field(blocks, fmt, "qs").view(np.int8).astype(np.float32)
    else:
        q = _halves(_field(blocks, fmt, "qs")).reshape(n, 32)
        if fmt.element_bits == 5:
            high = _BITS[_field(blocks, fmt, "qh")].reshape(n, 32)  # bit j of the little-endian qh
            q = q | (high << 4)
        q = q.astype(np.float32)
        if not fmt.min_stored:
            q -= np.float32(1 << (fmt.element_bits - 1))
    out = d * q
    if fmt.min_stored:
        out += _fp16(blocks, fmt, "m")
    return out


def _dq_mxfp4(blocks, fmt):
    n = blocks.shape[0]
    half_scale = np.ldexp(np.float32(1), _field(blocks, fmt, "e").astype(np.int32) - 128)  # exact, subnormal too
    codes = _halves(_field(blocks, fmt, "qs")).reshape(n, 32)
    return half_scale * np.array(MXFP4_VALUES, dtype=np.float32)[codes]


def _dq_q2_k(blocks, fmt):
    n = blocks.shape[0]
    sc = _field(blocks, fmt, "scales")
    dl = (_fp16(blocks, fmt, "d") * (sc & 15).astype(np.float32)).reshape(n, 16, 1)
    ml = (_fp16(blocks, fmt, "dmin") * (sc >> 4).astype(np.float32)).reshape(n, 16, 1)
    # element 128*h + 32*s + l is bits 2s..2s+1 of qs[32*h + l]
    q = _CRUMBS[_field(blocks, fmt, "qs").reshape(n, 2, 32)].transpose(0, 1, 3, 2)
    return (dl * q.reshape(n, 16, 16).astype(np.float32) - ml).reshape(n, SUPER_BLOCK)


def _dq_q3_k(blocks, fmt):
    n = blocks.shape[0]
    packed = _field(blocks, fmt, "scales")
    low = _NIBBLES[packed[:, :8]].transpose(0, 2, 1).reshape(n, 16)   # scale i<8: byte i low; else byte i-8 high
    high = _CRUMBS[packed[:, 8:12]].transpose(0, 2, 1).reshape(n, 16)  # bits 2(i//4).. of byte 8 + i%4
    scale = ((low | (high << 4)).astype(np.int8) - np.int8(32)).astype(np.float32)
    dl = (_fp16(blocks, fmt, "d") * scale).reshape(n, 16, 1)
    low_bits = _CRUMBS[_field(blocks, fmt, "qs").reshape(n, 2, 32)].transpose(0, 1, 3, 2)   # (n, 2, 4, 32)
    mask = _BITS[_field(blocks, fmt, "hmask")].transpose(0, 2, 1).reshape(n, 2, 4, 32)     # bit 4h + s of hmask[l]
    q = low_bits.astype(np.int8) - ((mask ^ 1) << 2).astype(np.int8)  # a clear hmask bit subtracts 4
    return (dl * q.reshape(n, 16, 16).astype(np.float32)).reshape(n, SUPER_BLOCK)


def _dq_q45_k(blocks, fmt):
    n = blocks.shape[0]
    scales, mins = _six_bit_scales(_field(blocks, fmt, "scales"))
    dl = (_fp16(blocks, fmt, "d") * scales.astype(np.float32)).reshape(n, 8, 1)
    ml = (_fp16(blocks, fmt, "dmin") * mins.astype(np.float32)).reshape(n, 8, 1)
    # sub-block 2c is the low nibbles of qs[32c:32c+32], 2c+1 their high nibbles
    q = _NIBBLES[_field(blocks, fmt, "qs").reshape(n, 4, 32)].transpose(0, 1, 3, 2).reshape(n, 8, 32)
    if fmt.element_bits == 5:
        q = q | (_BITS[_field(blocks, fmt, "qh")].transpose(0, 2, 1) << 4)  # bit j of qh[l] for sub-block j
    return (dl * q.astype(np.float32) - ml).reshape(n, SUPER_BLOCK)


def _dq_q6_k(blocks, fmt):
    n = blocks.shape[0]
    dl = (_fp16(blocks, fmt, "d") * _field(blocks, fmt, "scales").view(np.int8).astype(np.float32)).reshape(n, 16, 1)
    # element 128*h + 64*s + l (l < 64): nibble s of ql[64*h + l]; top bits 2k..2k+1 of qh[32*h + l%32], k = (64s + l)//32
    low = _NIBBLES[_field(blocks, fmt, "ql").reshape(n, 2, 64)].transpose(0, 1, 3, 2).reshape(n, 2, 4, 32)
    high = _CRUMBS[_field(blocks, fmt, "qh").reshape(n, 2, 32)].transpose(0, 1, 3, 2)
    q = (low | (high << 4)).astype(np.int8) - np.int8(32)
    return (dl * q.reshape(n, 16, 16).astype(np.float32)).reshape(n, SUPER_BLOCK)


def _dq_q8_k(blocks, fmt):
    d = np.ascontiguousarray(_field(blocks, fmt, "d")).view(np.float32)
    return d * _field(blocks, fmt, "qs").view(np.int8).astype(np.float32)


_DEQUANTIZERS = {"Q2_K": _dq_q2_k, "Q3_K": _dq_q3_k, "Q4_K": _dq_q45_k, "Q5_K": _dq_q45_k,
                 "Q6_K": _dq_q6_k, "Q8_K": _dq_q8_k}

_CHUNK_BYTES = 1 << 20  # blocks handled per step: temporaries stay in cache


def _dequantizer(fmt):
    if fmt.family == "legacy":
        return _dq_legacy
    if fmt.family == "mxfp4":
        return _dq_mxfp4
    return _DEQUANTIZERS[fmt.name]


def _check_shape(shape, fmt) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be a sequence of ints, got {shape!r}") from None
    if not shape:
        raise ValueError(f"shape must have at least one dimension for {fmt.name}")
    if any(s < 0 for s in shape):
        raise ValueError(f"shape {shape} has a negative dimension")
    if shape[-1] % fmt.block_elems:
        raise ValueError(f"row length {shape[-1]} (the last dimension of shape {shape}) is not a multiple "
                         f"of {fmt.name}'s block size {fmt.block_elems}")
    return shape


_HALF_TO_F32 = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
_E8M0_HALF = np.ldexp(np.float32(1), np.arange(256) - 128).astype(np.float32)  # 2**(e-128)


def _dequantize_kernel(blocks, fmt, out, threads) -> bool:
    """The compiled loop for the formats that have one; False where numpy does the work."""
    if fmt.family == "legacy":
        _ggml.dequant_legacy(blocks, _HALF_TO_F32, fmt.element_bits, fmt.min_stored, out, threads)
    elif fmt.family == "mxfp4":
        _ggml.dequant_mxfp4(blocks, np.array(MXFP4_VALUES, np.float32), _E8M0_HALF, out, threads)
    elif fmt.name in ("Q4_K", "Q5_K"):
        _ggml.dequant_q45_k(blocks, _HALF_TO_F32, fmt.element_bits == 5, out, threads)
    else:
        return False
    return True


def ggml_dequantize(data, fmt: str | GGMLFormat, shape, num_threads: int | None = None) -> np.ndarray:
    """Raw ggml blocks (bytes or a uint8 array, rows of blocks in order) -> float32 ``shape``.

    Every byte pattern is a valid block: fp16 scales that are subnormal, Inf or NaN decode as
    they are, as ggml does. The result does not depend on ``num_threads``."""
    fmt = ggml_format(fmt)
    shape = _check_shape(shape, fmt)
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise TypeError(f"data must be bytes or a uint8 array, got an array of dtype {data.dtype}")
        raw = np.ascontiguousarray(data).reshape(-1)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = np.frombuffer(data, dtype=np.uint8)
    else:
        raise TypeError(f"data must be bytes or a uint8 array, got {type(data).__name__}")
    n_blocks = int(np.prod(shape, dtype=np.int64)) // fmt.block_elems
    if raw.size != n_blocks * fmt.bytes_per_block:
        raise ValueError(f"data holds {raw.size} bytes; shape {shape} in {fmt.name} needs {n_blocks} blocks "
                         f"x {fmt.bytes_per_block} bytes = {n_blocks * fmt.bytes_per_block}")
    blocks = raw.reshape(n_blocks, fmt.bytes_per_block)
    out = np.empty((n_blocks, fmt.block_elems), dtype=np.float32)
    if _dequantize_kernel(blocks, fmt, out, resolve_threads(num_threads, out.size)):
        return out.reshape(shape)
    step = max(1, _CHUNK_BYTES // (4 * fmt.block_elems))
    dequant = _dequantizer(fmt)
    with np.errstate(all="ignore"):  # NaN / Inf scales are valid data
        for start in range(0, n_blocks, step):
            out[start:start + step] = dequant(blocks[start:start + step], fmt)
    return out.reshape(shape)


# -- quantize -----------------------------------------------------------------------------
def _round_half_away(v: np.ndarray) -> np.ndarray:
    """C roundf in float32: floor(|v|), plus 1 when the dropped fraction is >= 0.5, sign kept."""
    mag = np.abs(v)
    whole = np.floor(mag)
    return np.copysign(whole + (mag - whole >= np.float32(0.5)), v)


def _q_legacy(blocks, fmt):
    rule, n = fmt.rule, blocks.shape[0]
    if rule.scale_source == "signed_absmax":
        source = blocks[np.arange(n), np.abs(blocks).argmax(axis=1)][:, None]
    elif rule.scale_source == "absmax":
        source = np.abs(blocks).max(axis=1, keepdims=True)
    else:
        low = blocks.min(axis=1, keepdims=True)
        source = blocks.max(axis=1, keepdims=True) - low
        blocks = blocks - low
    d = source / np.float32(rule.scale_divisor)
    inv = np.where(d == 0, np.float32(0), np.float32(1) / d)
    v = blocks * inv
    if rule.rounding == "half_away_from_zero":
        codes = _round_half_away(v).astype(np.int8).view(np.uint8)
    else:
        v += np.float32(rule.code_offset + 0.5)
        codes = np.trunc(v).astype(np.uint8).clip(0, (1 << fmt.element_bits) - 1)
    return _pack_legacy(codes, d, low if fmt.min_stored else None, fmt)


def _mxfp4_exponent(amax: np.ndarray, rule: MXFP4Rule) -> np.ndarray:
    e = np.floor(np.log2(amax.astype(rule.log2_dtype))) + (rule.exponent_offset + 127)
    return np.where(amax > 0, e, 0).astype(rule.log2_dtype).astype(np.uint8)


def _mxfp4_pick_by_errors(x: np.ndarray, half_scale: np.ndarray) -> np.ndarray:
    """The rule as stated: argmin over |level - x| in float32 (ties and NaN errors -> first index).
    Used for blocks holding Inf or NaN, where level - x can itself be NaN."""
    levels = half_scale[..., None] * np.array(MXFP4_VALUES, dtype=np.float32)
    return np.abs(levels - x[..., None]).argmin(axis=-1).astype(np.uint8)


_MXFP4_MAGNITUDES = np.array(MXFP4_VALUES[:8], dtype=np.float32)
_MXFP4_MIDPOINTS = _MXFP4_MAGNITUDES[:-1] * np.float32(0.5) + _MXFP4_MAGNITUDES[1:] * np.float32(0.5)


def _mxfp4_pick_nearest(x: np.ndarray, half_scale: np.ndarray) -> np.ndarray:
    """The same choice for finite blocks, by thresholds: the magnitude index is the count of
    midpoints between adjacent magnitudes strictly below |x| (a tie stays low). Negative inputs
    take the negative code, except that zero is always code 0 (it comes before -0).
    Exact: every level is a small multiple of the scale, so the float32 errors that gguf-py
    compares are exact wherever the comparison is close."""
    ax = np.abs(x)
    index = np.zeros(x.shape, dtype=np.uint8)
    for mid in _MXFP4_MIDPOINTS:  # in scale units, exact
        index += ax > half_scale * mid     # half_scale * mid is exact (or Inf when a level overflows)
    index += ((x < 0) & (index > 0)).astype(np.uint8) << 3
    return index


def _q_mxfp4(blocks, fmt):
    e = _mxfp4_exponent(np.abs(blocks).max(axis=1, keepdims=True), fmt.rule)
    half_scale = np.ldexp(np.float32(1), e.astype(np.int32) - 128)
    codes = _mxfp4_pick_nearest(blocks, half_scale)
    special = ~np.isfinite(blocks).all(axis=1)
    if special.any():
        codes[special] = _mxfp4_pick_by_errors(blocks[special], half_scale[special])
    return np.concatenate([e, codes[:, :16] | (codes[:, 16:] << 4)], axis=1)


_SOURCES = {"signed_absmax": 0, "absmax": 1, "range": 2}     # numbered as in cython_src/_ggml.pyx
_ROUNDINGS = {"trunc_plus_half": 0, "half_away_from_zero": 1}


def _pack_legacy(codes, d, m, fmt):
    """Codes (n, 32) and float32 scales -> the block bytes; the fp16 rounding is numpy's."""
    fields = {"d": d.astype(np.float16).view(np.uint8).reshape(-1, 2)}
    if fmt.min_stored:
        fields["m"] = m.astype(np.float16).view(np.uint8).reshape(-1, 2)
    if fmt.element_bits == 8:
        fields["qs"] = codes
    else:
        fields["qs"] = (codes[:, :16] & 15) | (codes[:, 16:] << 4)
        if fmt.element_bits == 5:
            fields["qh"] = np.packbits(codes >> 4, axis=1, bitorder="little")
    return np.concatenate([fields[name] for name, _ in fmt.layout], axis=1)


def _quantize_kernel(blocks, fmt, threads) -> tuple[np.ndarray, np.ndarray]:
    """Compiled quantization: the block bytes, and a mask of blocks left for the numpy rule
    (non-finite inputs or scales, and zero mins whose sign numpy's reduction decides)."""
    n = blocks.shape[0]
    codes = np.empty((n, fmt.block_elems), dtype=np.uint8)
    flagged = np.empty(n, dtype=np.uint8)
    if fmt.family == "legacy":
        rule = fmt.rule
        d, m = np.empty(n, np.float32), np.empty(n, np.float32)
        _ggml.quant_legacy(blocks, _SOURCES[rule.scale_source], rule.scale_divisor, rule.code_offset + 0.5,
                           _ROUNDINGS[rule.rounding], fmt.element_bits, codes, d, m, flagged, threads)
        return _pack_legacy(codes, d, m, fmt), flagged.view(bool)
    amax = np.empty(n, np.float32)
    _ggml.block_absmax(blocks, amax, flagged, threads)
    e = _mxfp4_exponent(amax, fmt.rule)
    half_scale = np.ldexp(np.float32(1), e.astype(np.int32) - 128)
    _ggml.quant_nearest(blocks, half_scale, _MXFP4_MIDPOINTS, codes, threads)
    return np.concatenate([e[:, None], codes[:, :16] | (codes[:, 16:] << 4)], axis=1), flagged.view(bool)


def ggml_quantize(x, fmt: str | GGMLFormat, num_threads: int | None = None) -> np.ndarray:
    """x (rows along the last axis) -> uint8 blocks of shape (..., row_length / block * bytes).

    Input is rounded to float32 first, as gguf-py and ggml do. The result does not depend on
    ``num_threads``."""
    fmt = ggml_format(fmt)
    if not fmt.can_quantize:
        raise ValueError(f"{fmt.name} is dequantize-only here: ggml's K-quant quantizer has no "
                         f"reference implementation in gguf-py to be exact against")
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"x must be a floating-point array, got dtype {arr.dtype}")
    shape = _check_shape(arr.shape, fmt)
    blocks = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1, fmt.block_elems)
    quant = _q_legacy if fmt.family == "legacy" else _q_mxfp4
    with np.errstate(all="ignore"):  # zero blocks (1/0 is masked), Inf and NaN inputs
        out, flagged = _quantize_kernel(blocks, fmt, resolve_threads(num_threads, blocks.size))
        if flagged.any():
            out[flagged] = quant(blocks[flagged], fmt)
    return out.reshape(*shape[:-1], shape[-1] // fmt.block_elems * fmt.bytes_per_block)
