"""Quantize to block-scaled formats (qsim.formats.block) and decode them: one implementation
for OCP MX, MXINT8, NVFP4 and FP8 block scaling.

- Blocks run along `axis` (1-D blocks) or over the last two axes (2-D tiles; `axis` must be
  the last). A block cut short by the end of an axis is an ordinary block of fewer elements:
  its amax and scale come from the elements present.
- Elements round to nearest even (or `rounding`) and saturate to +-element max.
- Power-of-two scales: an all-zero block takes 2**-127 (`zero_block="min"`, E8M0 code 0; for
  FP32 scales 2**-126) or 2**0 (`"one"`); a shared exponent below the scale's range clamps to
  it; above it (float64 input only) the scale is NaN and the elements 0.
- ``"amax"`` scales clamp to [smallest positive scale with a finite float32 reciprocal,
  scale max] (UE4M3: 2**-9 subnormal .. 448; FP32: 2**-126 ..), so an all-zero block has the
  smallest scale and elements +-0.
- A block holding NaN or Inf gets the NaN scale and zero elements (`nonfinite_block="nan"`) or
  raises (`"error"`).
- The per-tensor scale (NVFP4) defaults to amax(|finite x|) / (448 * 6) in float32, 1 where
  that is 0; pass `tensor_scale` to set it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .._kernels import _blockcodec
from .._threads import resolve_threads
from ..formats.block import SCALE_FORMATS, SCALE_RULES, BlockFormat, block_format
from ..formats.spec import FloatFormat, IntFormat
from ..rounding import check_seed, rounding_code

_SCALE_KINDS = ("e8m0", "fp32", "ue4m3")       # the order of SK_* in cython_src/_blockcodec.pyx
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class BlockArray:
    elements: np.ndarray        # element codes, the shape of the input (uint8; int8 as two's complement)
    scales: np.ndarray          # scale codes: uint8 (E8M0, UE4M3) or uint32 (FP32 bits), per block
    tensor_scale: float | None  # the second-level FP32 scale, if the format has one
    format: BlockFormat
    axis: int

    def scale_values(self) -> np.ndarray:
        """Value of each block scale (float64; NaN for the NaN code)."""
        return scale_values(self.scales, self.format)

    def decode(self, dtype=None, num_threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Values (float32 unless dtype or out says float64); see block_decode."""
        return block_decode(self, dtype, num_threads, out)

    def packed_elements(self) -> np.ndarray:
        """Element codes packed along the flattened array (4-bit: two per byte, low nibble
        first; 6-bit: four in three bytes, little-endian bit order; 8 bits: as they are)."""
        return pack(self.elements.reshape(-1), self.format.element.storage_bits)

    @property
    def bits_per_element(self) -> float:
        return self.format.bits_per_element


# -- scales -----------------------------------------------------------------------------
def scale_values(codes, fmt: BlockFormat) -> np.ndarray:
    codes = np.asarray(codes)
    if fmt.scale_format == "e8m0":
        out = np.ldexp(1.0, codes.astype(np.int32) - 127)
        return np.where(codes == 0xFF, np.nan, out)
    if fmt.scale_format == "fp32":
        return codes.astype(np.uint32).view(np.float32).astype(np.float64)
    return _scale_table(fmt.scale_format).astype(np.float64)[codes]


@lru_cache(maxsize=None)
def _scale_table(name: str) -> np.ndarray:
    from ..codec import value_table
    from ..formats.block import scale_format
    return value_table(scale_format(name), "<f4")


def default_tensor_scale(x: np.ndarray, fmt: BlockFormat) -> float:
    """amax of the finite values / (scale max * element max), in float32 (1 for amax 0)."""
    amax = _finite_amax(x)
    if amax == 0:
        return 1.0
    scale = np.float32(amax / (float(fmt.scale.max) * float(fmt.element_max)))
    return float(max(scale, np.float32(np.finfo(np.float32).tiny)))


def _finite_amax(x) -> float:
    """Largest finite magnitude of x (0 if none): through the block-amax kernel, one pass,
    unless x holds NaN or Inf."""
    x = np.asarray(x)
    if x.dtype in (np.float32, np.float64) and x.size:
        flat = np.ascontiguousarray(x).reshape(1, -1)
        chunk = 1 << 16
        per = np.empty((1, -(-flat.shape[1] // chunk)))
        _blockcodec.block_amax(flat, per, chunk, 1)
        if np.isfinite(per).all():
            return float(per.max())
    finite = np.abs(x[np.isfinite(x)])
    return float(finite.max()) if finite.size else 0.0


def _rule_params(fmt: BlockFormat, zero_block: str, tensor_scale: float) -> dict:
    elem = fmt.element
    sf = fmt.scale
    is_int = isinstance(elem, IntFormat)
    if fmt.scale_format == "e8m0":
        exp_min, exp_max = -127, 127
    else:
        exp_min, exp_max = -126, 127
    # the smallest scale whose float32 reciprocal is finite
    smallest = sf.min_subnormal if sf.min_subnormal and 1 / sf.min_subnormal <= _F32_MAX else sf.min_normal
    return {
        "rule": SCALE_RULES.index(fmt.scale_rule), "scale_kind": _SCALE_KINDS.index(fmt.scale_format),
        "elem_emax": fmt.element_emax, "elem_mbits": 0 if is_int else elem.mantissa_bits,
        "elem_max": float(fmt.element_max), "exp_min": exp_min, "exp_max": exp_max,
        "zero_exp": exp_min if zero_block == "min" else 0,
        "tensor_scale": tensor_scale, "scale_min": float(smallest), "scale_max": float(min(sf.max, _F32_MAX)),
        "is_int": int(is_int), "int_frac_bits": fmt.int_fraction_bits,
        "qmin": elem.qmin if is_int else 0, "qmax": elem.qmax if is_int else 0,
    }


# -- checks ---------------------------------------------------------------------------------
def check_axis(ndim: int, axis) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if ndim == 0 or not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an array of {ndim} dimensions")
    return int(axis) % ndim


def _check_option(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


# -- quantize -------------------------------------------------------------------------------
def block_quantize(x, fmt, axis: int = -1, rounding: str = "rne", zero_block: str = "min",
                   nonfinite_block: str = "nan", tensor_scale: float | None = None,
                   seed: int | None = None, num_threads: int | None = None) -> BlockArray:
    """Quantize x to the block format `fmt` (a BlockFormat or its name, see block_format):
    element codes, one scale code per block and the tensor scale if the format has one."""
    from ..arrays import float_input
    from ..codec import code_dtype, packed

    fmt = block_format(fmt)
    arr = float_input(x)
    axis = check_axis(arr.ndim, axis)
    _check_option("zero_block", zero_block, ("min", "one"))
    _check_option("nonfinite_block", nonfinite_block, ("nan", "error"))
    mode = rounding_code(rounding)
    seed = check_seed(rounding, seed)
    threads = resolve_threads(num_threads, np.size(arr))
    elem = fmt.element
    if isinstance(elem, IntFormat) and rounding != "rne":
        raise ValueError(f"{fmt.name}: integer elements round to nearest even only, got rounding={rounding!r}")
    if len(fmt.block) == 2 and (arr.ndim < 2 or axis != arr.ndim - 1):
        raise ValueError(f"{fmt.name}: 2-D tiles cover the last two axes; need an array of 2+ dimensions "
                         f"and axis=-1, got shape {arr.shape}, axis {axis}")
    if fmt.tensor_scale:
        if tensor_scale is None:
            tensor_scale = default_tensor_scale(arr, fmt)
        ts = np.float32(tensor_scale)
        if not (np.isfinite(ts) and ts > 0):
            raise ValueError(f"tensor_scale must be a positive finite float32, got {tensor_scale!r}")
        tensor_scale = float(ts)
    elif tensor_scale is not None:
        raise ValueError(f"{fmt.name} has no per-tensor scale; do not pass tensor_scale")

    k = fmt.block[-1]
    moved = np.moveaxis(arr, axis, -1)
    rows = np.ascontiguousarray(moved.reshape(int(np.prod(moved.shape[:-1])), moved.shape[-1]))
    n_blocks = -(-rows.shape[1] // k)
    amax = np.zeros((0, 0))
    if len(fmt.block) == 2:
        amax = _tile_amax(rows, moved.shape, fmt.block, threads)
    codes = np.empty(rows.shape, np.uint8 if isinstance(elem, IntFormat) else code_dtype(elem))
    scale_dtype = np.uint32 if fmt.scale_format == "fp32" else np.uint8
    scales32 = np.empty((rows.shape[0], n_blocks), np.uint32)
    elem_packed = packed(elem) if isinstance(elem, FloatFormat) else packed(fmt.scale)
    nonfinite = _blockcodec.quantize_rows(rows, codes, scales32, amax, k,
                                          _rule_params(fmt, zero_block, tensor_scale or 1.0),
                                          elem_packed, packed(fmt.scale), _scale_table_for(fmt),
                                          mode, seed, threads)
    if nonfinite and nonfinite_block == "error":
        raise ValueError(f"a {fmt.name} block holds NaN or Inf (pass nonfinite_block='nan' for a NaN scale)")
    elements = np.moveaxis(codes.reshape(moved.shape), -1, axis)
    scales = scales32.astype(scale_dtype).reshape(moved.shape[:-1] + (n_blocks,))
    if len(fmt.block) == 2:
        scales = scales.reshape(moved.shape[:-2] + (moved.shape[-2], n_blocks))[..., ::fmt.block[0], :]
    else:
        scales = np.moveaxis(scales, -1, axis)
    return BlockArray(np.ascontiguousarray(elements), np.ascontiguousarray(scales),
                      tensor_scale if fmt.tensor_scale else None, fmt, axis)


def _scale_table_for(fmt: BlockFormat) -> np.ndarray:
    return _scale_table("ue4m3") if fmt.scale_format == "ue4m3" else np.zeros(1, np.float32)


def _tile_amax(rows: np.ndarray, shape: tuple, tile: tuple, threads: int) -> np.ndarray:
    """amax of each (tile rows x tile cols) tile, repeated for every row of the tile."""
    n_blocks = -(-rows.shape[1] // tile[1])
    per_row = np.empty((rows.shape[0], n_blocks))
    _blockcodec.block_amax(rows, per_row, tile[1], threads)
    m = shape[-2] if len(shape) >= 2 else 1
    per = per_row.reshape(rows.shape[0] // max(m, 1), m, n_blocks)
    starts = np.arange(0, m, tile[0])
    if per.size == 0:
        return per_row
    nan = np.add.reduceat(np.isnan(per), starts, axis=1) > 0
    tiles = np.where(nan, np.nan, np.maximum.reduceat(np.nan_to_num(per, nan=0.0), starts, axis=1))
    return np.ascontiguousarray(np.repeat(tiles, tile[0], axis=1)[:, :m].reshape(rows.shape[0], n_blocks))


# -- decode ---------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _element_table(elem, frac_bits: int) -> np.ndarray:
    if isinstance(elem, IntFormat):
        codes = np.arange(256)
        return np.ldexp(np.where(codes >= 128, codes - 256, codes).astype(np.float64), -frac_bits)
    from ..codec import value_table
    return value_table(elem, "<f8")


@lru_cache(maxsize=None)
def _float32_decode_is_exact(fmt: BlockFormat) -> bool:
    """Whether float32 arithmetic decodes fmt to the exact value rounded once, as float64 does:
    every element value and block scale is a float32, so their float32 product is the exact
    product rounded once (IEEE); with a tensor scale, every element x block scale product must
    also be exact in float32, leaving the tensor-scale multiply as the one rounding."""
    values = _element_table(fmt.element, fmt.int_fraction_bits)
    scales = scale_values(np.arange(1 << fmt.scale.storage_bits), fmt) if fmt.scale.storage_bits <= 8 else None
    exact = lambda v: bool(np.array_equal(v.astype(np.float32).astype(np.float64), v, equal_nan=True))
    if not exact(values) or (scales is not None and not exact(scales)):
        return False
    if fmt.tensor_scale:
        return scales is not None and exact(np.multiply.outer(values, scales))
    return True


def _per_row(per_block: np.ndarray, q: BlockArray, last_two: tuple) -> np.ndarray:
    """Per-block scales (codes or values) laid out as the decode rows: blocks along the last
    axis, and a 2-D tile's scale repeated for each of its rows."""
    if len(q.format.block) == 2:
        return np.repeat(per_block, q.format.block[0], axis=-2)[..., :last_two[0], :]
    return np.moveaxis(per_block, q.axis, -1)


@lru_cache(maxsize=None)
def _element_table_f32(elem, frac_bits: int) -> np.ndarray:
    return _element_table(elem, frac_bits).astype(np.float32)


@lru_cache(maxsize=None)
def _scale_value_table_f32(fmt: BlockFormat) -> np.ndarray:
    """float32 value of each uint8 scale code, NaN past the format's codes (one placeholder
    entry for FP32 scales, whose codes are the float32 bits)."""
    if fmt.scale.storage_bits > 8:
        return np.zeros(1, np.float32)
    table = np.full(256, np.nan, np.float32)
    n = 1 << fmt.scale.storage_bits
    table[:n] = scale_values(np.arange(n), fmt)
    return table


def block_decode(q: BlockArray, dtype=None, num_threads: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Values: element value x block scale x tensor scale, exact in float64 and rounded once
    to `dtype` (float32, the default, or float64). A NaN scale gives NaN for its whole block.
    out: a C-contiguous, writeable float32 or float64 array of the elements' shape to decode
    into (its dtype is the result's); it is returned."""
    from ..codec import check_out

    if not isinstance(q, BlockArray):
        raise TypeError(f"block_decode expects a BlockArray (qsim block_quantize), got {type(q).__name__}")
    dtypes = (np.dtype(np.float32), np.dtype(np.float64))
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype not in dtypes:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    if out is not None:
        dtype = check_out(out, q.elements.shape, (dtype,) if dtype else dtypes, "the elements")
    dtype = dtype or dtypes[0]
    fmt = q.format
    threads = resolve_threads(num_threads, q.elements.size)
    codes = np.moveaxis(q.elements, q.axis, -1)
    k = fmt.block[-1]
    n_blocks = -(-codes.shape[-1] // k)
    rows = np.ascontiguousarray(codes.reshape(int(np.prod(codes.shape[:-1])), codes.shape[-1]))
    # the kernel writes rows along the block axis: into out itself when that is its last axis
    direct = out is not None and q.axis == q.elements.ndim - 1
    values = out.reshape(rows.shape) if direct else np.empty(rows.shape, dtype)
    if dtype == np.float32 and _float32_decode_is_exact(fmt):
        # the kernel takes the scale codes: no per-block value array here
        scale_codes = _per_row(q.scales, q, codes.shape[-2:]).reshape(rows.shape[0], n_blocks)
        second = np.float32(q.tensor_scale if q.tensor_scale is not None else 1.0)
        _blockcodec.decode_rows_f32(rows, np.ascontiguousarray(scale_codes, q.scales.dtype), _scale_value_table_f32(fmt),
                                    _element_table_f32(fmt.element, fmt.int_fraction_bits), second, values, k, threads)
    else:
        scales = _per_row(q.scale_values(), q, codes.shape[-2:]).reshape(rows.shape[0], n_blocks)
        second = q.tensor_scale if q.tensor_scale is not None else 1.0
        _blockcodec.decode_rows(rows, np.ascontiguousarray(scales * second, np.float64),
                                _element_table(fmt.element, fmt.int_fraction_bits), values, k, threads)
    if direct:
        return out
    result = np.moveaxis(values.reshape(codes.shape), -1, q.axis)
    if out is None:
        return np.ascontiguousarray(result)
    np.copyto(out, result)
    return out


# -- packing --------------------------------------------------------------------------------
def pack(codes, bits: int, num_threads: int | None = None) -> np.ndarray:
    """Sub-byte codes packed into bytes, in the order of the flattened input.

    bits=4: two codes per byte, the first in the low nibble (the order of ONNX int4/float4,
    torchao's pack_uint4 and the NVFP4/MXFP4 kernels). bits=6: four codes in three bytes, the
    first in the lowest 6 bits (little-endian bit stream). bits=8: the codes as uint8."""
    arr = np.ascontiguousarray(np.asarray(codes).reshape(-1))
    if arr.dtype.kind not in "ui":
        raise TypeError(f"codes must be an integer array, got dtype {arr.dtype}")
    if bits not in (4, 6, 8):
        raise ValueError(f"bits must be 4, 6 or 8, got {bits!r}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= 1 << bits):
        raise ValueError(f"codes must be in 0..{(1 << bits) - 1} to pack into {bits} bits")
    arr = arr.astype(np.uint8, copy=False)
    if bits == 8:
        return arr.copy()
    if bits == 4:
        out = np.empty((arr.size + 1) // 2, np.uint8)
        _blockcodec.pack4(arr, out, resolve_threads(num_threads, arr.size))
        return out
    padded = np.zeros(-(-arr.size // 4) * 4, np.uint32)
    padded[:arr.size] = arr
    g = padded.reshape(-1, 4)
    word = g[:, 0] | (g[:, 1] << 6) | (g[:, 2] << 12) | (g[:, 3] << 18)
    out = np.stack([word & 0xFF, (word >> 8) & 0xFF, word >> 16], axis=1).astype(np.uint8).reshape(-1)
    return out[:(arr.size * 6 + 7) // 8]


def unpack(packed, bits: int, count: int, num_threads: int | None = None) -> np.ndarray:
    """The `count` codes that pack() stored (uint8)."""
    data = np.ascontiguousarray(np.asarray(packed).reshape(-1))
    if data.dtype != np.uint8:
        raise TypeError(f"packed must be a uint8 array, got dtype {data.dtype}")
    if bits not in (4, 6, 8):
        raise ValueError(f"bits must be 4, 6 or 8, got {bits!r}")
    need = (count * bits + 7) // 8
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0 or data.size < need:
        raise ValueError(f"{count!r} codes of {bits} bits need {need} bytes, packed has {data.size}")
    if bits == 8:
        return data[:count].copy()
    if bits == 4:
        out = np.empty(count, np.uint8)
        _blockcodec.unpack4(data, out, resolve_threads(num_threads, count))
        return out
    padded = np.zeros(-(-count // 4) * 3, np.uint32)
    padded[:need] = data[:need]
    g = padded.reshape(-1, 3)
    word = g[:, 0] | (g[:, 1] << 8) | (g[:, 2] << 16)
    codes = np.stack([(word >> s) & 0x3F for s in (0, 6, 12, 18)], axis=1).reshape(-1)
    return codes[:count].astype(np.uint8)


# -- operands of block products -----------------------------------------------------------------
def element_values(q: BlockArray) -> np.ndarray:
    """Each element's own value (float64, exact), block scales not applied."""
    return _element_table(q.format.element, q.format.int_fraction_bits)[q.elements]


def row_scales(q: BlockArray) -> np.ndarray:
    """Block scale values (float64; NaN for the NaN code) laid out as q's rows with its blocks
    along the last axis: (..., rows, blocks) for an array blocked along its last axis, a 2-D
    tile's scale repeated for each of its rows."""
    return _per_row(q.scale_values(), q, np.moveaxis(q.elements, q.axis, -1).shape[-2:])


def element_unit(fmt: BlockFormat) -> float:
    """The value of the smallest element step: every element is an integer multiple of it."""
    elem = fmt.element
    return 2.0 ** -fmt.int_fraction_bits if isinstance(elem, IntFormat) else 2.0 ** (elem.emin - elem.mantissa_bits)
