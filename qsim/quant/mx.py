"""OCP Microscaling (MX v1.0) block quantization: k elements share one E8M0 power-of-two scale.

The OCP-MX instance of the generic block machinery (qsim/quant/blocks.py, where the rules are
written): this module keeps the MX names and arguments.

Scale rule (spec section 6.3, ``scale_rule="floor"``): X = 2**(floor(log2(amax)) - emax_elem),
where emax_elem is the exponent of the element type's largest normal; elements V/X are rounded
and clamped to +-max. ``"rceil"`` (torchao, cuBLAS) picks the smallest power of two with
amax / X <= max_elem, so nothing clamps; ``"ceil"`` and ``"even"`` as torchao names them
(qsim/formats/block.py). The spec leaves open, as options here:
- ``zero_block``: the scale of an all-zero block: ``"min"`` (2**-127, code 0) or ``"one"`` (2**0).
- ``nonfinite_block``: a block holding NaN or Inf: ``"nan"`` (NaN scale, code 0xFF; decodes to
  NaN) or ``"error"``.
A shared exponent below -127 clamps to -127; above 127 (float64 input only) gives a NaN scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..formats import FloatFormat, format as get_format
from ..formats.block import POW2_RULES, BlockFormat
from .blocks import BlockArray, block_decode, block_quantize, check_axis

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


def _check_block(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    return int(block_size)


def mx_format(element_format, block_size: int = 32, scale_rule: str = "floor") -> BlockFormat:
    """The BlockFormat of MX blocks of `block_size` `element_format` values."""
    elem = _element_format(element_format)
    block_size = _check_block(block_size)
    if scale_rule not in POW2_RULES:
        raise ValueError(f"scale_rule must be one of {POW2_RULES}, got {scale_rule!r}")
    return BlockFormat(f"mx_{elem.name}_{block_size}", elem, (block_size,), SCALE_FORMAT, scale_rule)


def mx_quantize(x, element_format, axis: int = -1, block_size: int = 32, scale_rule: str = "floor",
                rounding: str = "rne", zero_block: str = "min", nonfinite_block: str = "nan",
                seed: int | None = None, num_threads: int | None = None) -> MXArray:
    """Quantize x to MX blocks of `block_size` along `axis` (a shorter last block if the axis
    length is not a multiple). Returns element codes and E8M0 scale codes."""
    fmt = mx_format(element_format, block_size, scale_rule)
    q = block_quantize(x, fmt, axis, rounding=rounding, zero_block=zero_block,
                       nonfinite_block=nonfinite_block, seed=seed, num_threads=num_threads)
    return MXArray(q.elements, q.scales, fmt.element, q.axis, block_size)


def mx_decode(elements, scales, element_format, axis: int = -1, block_size: int = 32,
              dtype=np.float32) -> np.ndarray:
    """Values of MX blocks: element value times 2**(scale code - 127); NaN scale gives NaN.
    Raises if `dtype` cannot hold the results exactly."""
    from ..codec import code_dtype

    fmt = mx_format(element_format, block_size)
    codes = np.asarray(elements)
    sc = np.asarray(scales)
    axis = check_axis(codes.ndim, axis)
    n_blocks = -(-codes.shape[axis] // block_size)
    want = codes.shape[:axis] + (n_blocks,) + codes.shape[axis + 1:]
    if sc.shape != want:
        raise ValueError(f"scales must have shape {want} for elements {codes.shape}, got {sc.shape}")
    if sc.dtype.kind not in "ui" or (sc.size and (sc.min() < 0 or sc.max() > 255)):
        raise ValueError("scales must be E8M0 codes, integers 0..255")
    if codes.dtype.kind not in "ui":
        raise TypeError(f"codes must be an unsigned or signed integer array, got dtype {codes.dtype}")
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= fmt.element.n_codes):
        raise ValueError(f"codes out of range for {fmt.element.name}: valid codes are 0..{fmt.element.n_codes - 1}")
    q = BlockArray(codes.astype(code_dtype(fmt.element)), sc.astype(np.uint8), None, fmt, axis)
    out = block_decode(q, np.float64)
    result = out.astype(dtype)
    finite = np.isfinite(out)
    if np.dtype(dtype) != np.float64 and not np.array_equal(result[finite].astype(np.float64), out[finite]):
        raise ValueError(f"these MX values are not all exact in {np.dtype(dtype).name}; use dtype=np.float64")
    return result
