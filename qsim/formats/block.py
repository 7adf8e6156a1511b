"""Block-scaled formats as data: elements in a small format share one scale per block.

A ``BlockFormat`` is a few raw fields (element format, block shape, scale format, scale rule,
whether a second-level FP32 per-tensor scale exists); everything else is derived and checked.

Scale rules (how a block's scale X is chosen from its largest magnitude amax):

- power-of-two rules, X = 2**e, the names torchao gives them (OCP MX v1.0 section 6.3 is
  ``"floor"``); emax is the exponent of the element type's largest power of two:
  ``"floor"``: e = floor(log2 amax) - emax (elements above the element max are clamped);
  ``"ceil"``: e = ceil(log2 amax) - emax;
  ``"even"``: e = floor(log2 r) - emax, r = amax rounded half up to the element's mantissa bits;
  ``"rceil"``: the smallest e with amax / 2**e <= element max (nothing clamps; cuBLAS's
  rule, and FP8 block scaling's "amax/448 rounded up to a power of two").
- ``"amax"``: X = amax / element max, in float32, divided by the tensor scale if any, clamped
  to the scale format's range and rounded to nearest even into it (NVFP4's UE4M3 scale, FP8
  block scaling's FP32 scale). Elements are x times the float32 reciprocal of X (and of the
  tensor scale), as the NVFP4 and FP8-block recipes compute them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .registry import format as get_format
from .spec import FloatFormat, IntFormat

#: Unsigned E4M3 (NVFP4's block scale): E4M3 without the sign bit; 0x7F is NaN, max 448.
UE4M3 = FloatFormat("ue4m3", 4, 3, 7, "fn", signed=False)

POW2_RULES = ("floor", "ceil", "even", "rceil")
SCALE_RULES = POW2_RULES + ("amax",)
SCALE_FORMATS = ("e8m0", "ue4m3", "fp32")


def scale_format(name: str) -> FloatFormat:
    if name == "ue4m3":
        return UE4M3
    if name not in SCALE_FORMATS:
        raise ValueError(f"scale_format must be one of {SCALE_FORMATS}, got {name!r}")
    return get_format(name)


@dataclass(frozen=True)
class BlockFormat:
    name: str
    element: FloatFormat | IntFormat     # or a format name
    block: tuple[int, ...]               # (k,) along an axis, or (rows, cols) tiles
    scale_format: str                    # "e8m0", "ue4m3" or "fp32"
    scale_rule: str
    tensor_scale: bool = False           # second-level FP32 per-tensor scale
    int_fraction_bits: int = 0           # integer elements: value = code * 2**-int_fraction_bits

    def __post_init__(self):
        elem = get_format(self.element) if isinstance(self.element, str) else self.element
        if not isinstance(elem, (FloatFormat, IntFormat)):
            raise TypeError(f"{self.name}: element must be a format or its name, got {self.element!r}")
        object.__setattr__(self, "element", elem)
        if isinstance(elem, FloatFormat) and (not elem.signed or not elem.has_zero or elem.storage_bits > 16):
            raise ValueError(f"{self.name}: element {elem.name} must be a signed float format of at most 16 bits")
        if isinstance(elem, FloatFormat) and elem.mantissa_bits == 0:
            # the block kernels round ties by the significand's parity; with no mantissa bits the
            # even code is the even exponent, which only the element codec (qsim.encode) models
            raise ValueError(f"{self.name}: element {elem.name} has no mantissa bits; block formats take "
                             "elements with at least one (every OCP MX element type has)")
        if isinstance(elem, IntFormat) and (not elem.signed or elem.bits != 8):
            raise ValueError(f"{self.name}: integer elements must be int8 (as MXINT8), got {elem.name}")
        block = tuple(self.block) if isinstance(self.block, (tuple, list)) else (self.block,)
        if not 1 <= len(block) <= 2 or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in block):
            raise ValueError(f"{self.name}: block must be (k,) or (rows, cols) of positive ints, got {self.block!r}")
        object.__setattr__(self, "block", block)
        sf = scale_format(self.scale_format)
        if self.scale_rule not in SCALE_RULES:
            raise ValueError(f"{self.name}: scale_rule must be one of {SCALE_RULES}, got {self.scale_rule!r}")
        if self.scale_rule in POW2_RULES and sf.mantissa_bits and self.scale_format != "fp32":
            raise ValueError(f"{self.name}: power-of-two rule {self.scale_rule!r} needs scale format e8m0 or fp32")
        if self.scale_rule == "amax" and self.scale_format == "e8m0":
            raise ValueError(f"{self.name}: the 'amax' rule needs a scale format with a mantissa (ue4m3, fp32)")
        if self.tensor_scale and self.scale_rule != "amax":
            raise ValueError(f"{self.name}: a per-tensor scale goes with the 'amax' rule only")
        if isinstance(elem, IntFormat) and self.scale_rule == "amax":
            raise ValueError(f"{self.name}: integer elements take a power-of-two scale rule")
        if isinstance(elem, FloatFormat) and self.int_fraction_bits:
            raise ValueError(f"{self.name}: int_fraction_bits applies to integer elements only")

    # -- derived ----------------------------------------------------------------------
    @property
    def scale(self) -> FloatFormat:
        return scale_format(self.scale_format)

    @property
    def block_elements(self) -> int:
        n = 1
        for b in self.block:
            n *= b
        return n

    @property
    def power_of_two_scale(self) -> bool:
        return self.scale_rule in POW2_RULES

    @property
    def element_max(self) -> Fraction:
        e = self.element
        if isinstance(e, IntFormat):
            return Fraction(e.qmax, 1 << self.int_fraction_bits)
        return e.max

    @property
    def element_emax(self) -> int:
        """Exponent of the largest power of two the element type holds."""
        m = self.element_max
        e = m.numerator.bit_length() - m.denominator.bit_length()
        return e if Fraction(2) ** e <= m else e - 1

    @property
    def bits_per_element(self) -> float:
        """Element bits plus the block scale's share; scales are stored in whole bytes (UE4M3 in
        one), the per-tensor scale is not counted."""
        scale_bits = -(-self.scale.storage_bits // 8) * 8
        return self.element.storage_bits + scale_bits / self.block_elements

    def describe(self) -> dict:
        return {
            "name": self.name, "kind": "block", "element": self.element.name,
            "block": "x".join(map(str, self.block)), "scale": self.scale.name,
            "scale_rule": self.scale_rule, "tensor_scale": self.tensor_scale,
            "bits": self.bits_per_element, "max": float(self.element_max),
        }


_int8 = get_format("int8")
_BUILTIN = [
    # OCP MX v1.0: blocks of 32, E8M0 scale, the spec's floor rule
    BlockFormat("mxfp8_e4m3", "e4m3", (32,), "e8m0", "floor"),
    BlockFormat("mxfp8_e5m2", "e5m2", (32,), "e8m0", "floor"),
    BlockFormat("mxfp6_e2m3", "fp6_e2m3", (32,), "e8m0", "floor"),
    BlockFormat("mxfp6_e3m2", "fp6_e3m2", (32,), "e8m0", "floor"),
    BlockFormat("mxfp4", "fp4_e2m1", (32,), "e8m0", "floor"),
    BlockFormat("mxint8", _int8, (32,), "e8m0", "floor", int_fraction_bits=6),
    # NVIDIA NVFP4: blocks of 16, UE4M3 scale, FP32 per-tensor scale
    BlockFormat("nvfp4", "fp4_e2m1", (16,), "ue4m3", "amax", tensor_scale=True),
    # FP8 block scaling (DeepSeek-V3, TransformerEngine Float8BlockScaling)
    BlockFormat("fp8_block_1x128", "e4m3", (128,), "fp32", "amax"),
    BlockFormat("fp8_block_128x128", "e4m3", (128, 128), "fp32", "amax"),
    BlockFormat("fp8_block_1x128_pow2", "e4m3", (128,), "fp32", "rceil"),
    BlockFormat("fp8_block_128x128_pow2", "e4m3", (128, 128), "fp32", "rceil"),
]
_registry = {f.name: f for f in _BUILTIN}


def block_format(spec: str | BlockFormat) -> BlockFormat:
    """The block format of a name (``"mxfp4"``, ``"nvfp4"``...), or a definition passed through."""
    if isinstance(spec, BlockFormat):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a block format is a name or a BlockFormat, got {type(spec).__name__}")
    key = spec.strip().lower()
    if key not in _registry:
        raise KeyError(f"unknown block format {spec!r}; known: {', '.join(_registry)}")
    return _registry[key]


def builtin_block_formats() -> list[BlockFormat]:
    return list(_registry.values())
