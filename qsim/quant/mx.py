"""OCP Microscaling (MX v1.0) block quantization: k elements share one E8M0 power-of-two scale.

Scale rule (spec section 6.3, ``scale_rule="floor"``): X = 2**(floor(log2(amax)) - emax_elem),
where emax_elem is the exponent of the element type's largest normal; elements V/X are rounded
and clamped to +-max. ``"rceil"`` (torchao, cuBLAS) picks the smallest power of two with
amax / X <= max_elem, so nothing clamps. The spec leaves open, as options here:
- ``zero_block``: the scale of an all-zero block: ``"min"`` (2**-127, code 0) or ``"one"`` (2**0).
- ``nonfinite_block``: a block holding NaN or Inf: ``"nan"`` (NaN scale, code 0xFF; decodes to
  NaN) or ``"error"``.
A shared exponent below -127 clamps to -127; above 127 (float64 input only) gives a NaN scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._kernels import _floatcodec
from .._threads import resolve_threads
from ..formats import FloatFormat, format as get_format
from ..rounding import check_seed, rounding_code

SCALE_FORMAT = "e8m0"
SCALE_BIAS = 127
SCALE_NAN = 0xFF


@dataclass(frozen=True)
class MXArray:
    elements: np.ndarray        # element codes, the shape of the input
    scales: np.ndarray          # E8M0 codes, the input shape with `axis` cut into blocks
    element_format: FloatFormat
    axis: int
    block_size: int

    def decode(self, dtype=np.float32) -> np.ndarray:
        return mx_decode(self.elements, self.scales, self.element_format, self.axis, self.block_size, dtype)

    @property
    def bits_per_element(self) -> float:
        return self.element_format.storage_bits + 8 / self.block_size


def _element_format(fmt) -> FloatFormat:
    f = get_format(fmt)
    if not isinstance(f, FloatFormat) or not f.has_zero or not f.signed:
        raise ValueError(f"{f.name} cannot be an MX element type; use a signed float format")
    return f


def _check_axis(ndim: int, axis: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if ndim == 0 or not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an array of {ndim} dimensions")
    return int(axis) % ndim


def _check_block(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    return int(block_size)


def shared_exponents(rows: np.ndarray, elem: FloatFormat, block_size: int, scale_rule: str,
                     zero_block: str, nonfinite_block: str) -> tuple[np.ndarray, np.ndarray]:
    """Shared exponent per block of each row, and which blocks get a NaN scale."""
    starts = np.arange(0, rows.shape[1], block_size)
    if rows.size == 0:
        empty = np.zeros((rows.shape[0], len(starts)))
        return empty.astype(np.int32), empty.astype(bool)
    amax = np.maximum.reduceat(np.abs(rows.astype(np.float64)), starts, axis=1)
    nonfinite = ~np.isfinite(amax)
    if nonfinite.any() and nonfinite_block == "error":
        raise ValueError("an MX block holds NaN or Inf (pass nonfinite_block='nan' for a NaN scale)")
    safe = np.where(nonfinite | (amax == 0), 1.0, amax)
    _, e = np.frexp(safe)
    shared = (e - 1 - elem.emax).astype(np.int64)          # floor(log2 amax) - emax_elem
    if scale_rule == "rceil":
        shared += safe > np.ldexp(float(elem.max), shared)
    shared = np.where(amax == 0, -SCALE_BIAS if zero_block == "min" else 0, shared)
    nan_scale = nonfinite | (shared > SCALE_BIAS)
    shared = np.clip(shared, -SCALE_BIAS, SCALE_BIAS)
    return np.where(nan_scale, 0, shared).astype(np.int32), nan_scale


def mx_quantize(x, element_format, axis: int = -1, block_size: int = 32, scale_rule: str = "floor",
                rounding: str = "rne", zero_block: str = "min", nonfinite_block: str = "nan",
                seed: int | None = None, num_threads: int | None = None) -> MXArray:
    """Quantize x to MX blocks of `block_size` along `axis` (a shorter last block if the axis
    length is not a multiple). Returns element codes and E8M0 scale codes."""
    from ..codec import float_input, code_dtype, packed

    elem = _element_format(element_format)
    arr = float_input(x)
    axis = _check_axis(arr.ndim, axis)
    block_size = _check_block(block_size)
    if scale_rule not in ("floor", "rceil"):
        raise ValueError(f"scale_rule must be 'floor' or 'rceil', got {scale_rule!r}")
    if zero_block not in ("min", "one"):
        raise ValueError(f"zero_block must be 'min' or 'one', got {zero_block!r}")
    if nonfinite_block not in ("nan", "error"):
        raise ValueError(f"nonfinite_block must be 'nan' or 'error', got {nonfinite_block!r}")
    mode = rounding_code(rounding)
    seed = check_seed(rounding, seed)
    threads = resolve_threads(num_threads, np.size(arr))

    moved = np.moveaxis(arr, axis, -1)
    n_rows = int(np.prod(moved.shape[:-1]))
    rows = np.ascontiguousarray(moved.reshape(n_rows, moved.shape[-1]))
    shared, nan_scale = shared_exponents(rows, elem, block_size, scale_rule, zero_block, nonfinite_block)
    codes = np.empty(rows.shape, code_dtype(elem))
    _floatcodec.mx_encode(rows, codes, shared, block_size, packed(elem), mode, seed, threads)
    if nan_scale.any():     # the elements of a NaN-scaled block carry nothing
        codes[np.repeat(nan_scale, block_size, axis=1)[:, :rows.shape[1]]] = 0
    scales = np.where(nan_scale, SCALE_NAN, shared + SCALE_BIAS).astype(np.uint8)
    elements = np.moveaxis(codes.reshape(moved.shape), -1, axis)
    scales = np.moveaxis(scales.reshape(moved.shape[:-1] + (shared.shape[1],)), -1, axis)
    return MXArray(np.ascontiguousarray(elements), np.ascontiguousarray(scales), elem, axis, block_size)


def mx_decode(elements, scales, element_format, axis: int = -1, block_size: int = 32,
              dtype=np.float32) -> np.ndarray:
    """Values of MX blocks: element value times 2**(scale code - 127); NaN scale gives NaN.
    Raises if `dtype` cannot hold the results exactly."""
    from ..codec import decode

    elem = _element_format(element_format)
    codes = np.asarray(elements)
    sc = np.asarray(scales)
    axis = _check_axis(codes.ndim, axis)
    block_size = _check_block(block_size)
    n_blocks = -(-codes.shape[axis] // block_size)
    want = codes.shape[:axis] + (n_blocks,) + codes.shape[axis + 1:]
    if sc.shape != want:
        raise ValueError(f"scales must have shape {want} for elements {codes.shape}, got {sc.shape}")
    if sc.dtype.kind not in "ui" or (sc.size and (sc.min() < 0 or sc.max() > 255)):
        raise ValueError("scales must be E8M0 codes, integers 0..255")
    values = decode(codes, elem, dtype=np.float64)
    exp = np.repeat(sc.astype(np.int64), block_size, axis=axis).take(range(codes.shape[axis]), axis=axis)
    out = np.ldexp(values, (exp - SCALE_BIAS).astype(np.int32))
    out[exp == SCALE_NAN] = np.nan
    result = out.astype(dtype)
    finite = np.isfinite(out)
    if np.dtype(dtype) != np.float64 and not np.array_equal(result[finite].astype(np.float64), out[finite]):
        raise ValueError(f"these MX values are not all exact in {np.dtype(dtype).name}; use dtype=np.float64")
    return result
