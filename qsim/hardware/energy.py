"""Energy of one multiply-accumulate as a function of the operand formats and the
accumulator, at a technology node, composed from cited primitives (energy.toml).

Rules (each fitted exactly through the two cited points of its kind, so that every cited
primitive is reproduced; the tests hold the rules to the citations):

- integer adder of w bits: int8_add x (w / 8)^q, q through int8_add and int32_add;
- integer multiplier of wa x wb bits: int8_mul x (wa wb / 64)^p, p through int8_mul and int32_mul
  (an array multiplier grows with the product of its operand widths);
- float multiplier, significands sa, sb (mantissa + 1) and exponents ea, eb bits:
  mul_sq x sa sb + mul_lin x (sa + sb) / 2 + an integer adder of max(ea, eb) bits for the
  exponents; mul_sq and mul_lin through fp16_mul and fp32_mul;
- float adder, significand s and exponent e bits: the alignment shifter shift x s log2 s, the
  significand adder add_lin x s and an integer adder of e bits comparing exponents; shift and
  add_lin through fp16_add and fp32_add;
- scalar MAC: the multiplier plus one add into the accumulator (an integer adder of the
  accumulator's width, or a float adder of its format);
- fused dot-product groups (h100-fp8-like): per product an integer add of fused_bits behind the
  float adder's alignment shifter, the normalization into the accumulator format once per group and the
  FP32 promotion once per promote_every products;
- block-scaled products (OCP MX, NVFP4, FP8 block scaling): per product the element multiplier
  and an exact fixed-point add as wide as the block's products need (the span of a product's
  magnitudes, a sign bit and log2 of the block length); per block (amortized over its length
  along K): the two scales combined (an integer add of the scale's exponent bits for power-of-two
  scales, else a float multiply of the scale format), the combined scale applied to the block's
  sum (nothing more for power-of-two scales, else an integer multiply of the sum's width by the
  combined significand) and one FP32 add of the block
  into the accumulator. A second-level tensor scale is applied once per output: not charged.

Area (um^2) is composed by the same rules from the area column of Horowitz's table, cited at
45 nm only, with one exception: the float adder's two-term rule fits a negative coefficient there
(the area grows faster than s log2 s from fp16 to fp32), so for area the adder's significand part
(shifter and adder together) is a power law c s^x through fp16_add and fp32_add, and a fused
group's aligned add is that same part at its width. Another node scales the 45 nm area by
(node / 45)^2, ideal scaling of a layout with the feature size: a stated rule, not cited data
(real logic density gains from 45 to 7 nm fall short of it), so mac_area_um2 is a comparison of
formats at one node, not a prediction of a chip's area.

Technology nodes: the primitives are cited at 45 nm (Horowitz) and 7 nm (Jouppi et al.); a node
in between takes each primitive interpolated linearly in log(energy) against log(node); a node
outside [7, 45] nm has no cited data and is refused (NodeError).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from math import ceil, log, log2
from pathlib import Path

from ..formats import FloatFormat, IntFormat, format as get_format

ENERGY_TABLE = Path(__file__).with_name("energy.toml")


class NodeError(ValueError):
    """A technology node outside the range of the cited data."""


@lru_cache(maxsize=1)
def energy_table() -> dict:
    """energy.toml as parsed: [sources], [energy.<nm>], [checks]."""
    return tomllib.loads(ENERGY_TABLE.read_text())


def cited_nodes(quantity: str = "energy") -> tuple[int, ...]:
    """The nodes (nm) with a cited table of that quantity, smallest first."""
    return tuple(sorted(int(nm) for nm in energy_table()[quantity]))


def check_node(node_nm: float, key: str = "node_nm", quantity: str = "energy") -> None:
    """NodeError naming `key` when node_nm is outside the cited range."""
    nodes = cited_nodes(quantity)
    if isinstance(node_nm, bool) or not isinstance(node_nm, (int, float)) or not nodes[0] <= node_nm <= nodes[-1]:
        raise NodeError(f"{key} = {node_nm!r}: outside the range of the cited {quantity} data "
                        f"({nodes[0]} to {nodes[-1]} nm)")


@lru_cache(maxsize=64)
def primitives(node_nm: float, quantity: str = "energy") -> dict[str, float]:
    """Each cited primitive at node_nm: the cited value at a cited node, else interpolated
    linearly in log(value) against log(node) between the two nearest cited nodes."""
    check_node(node_nm, quantity=quantity)
    unit = "pj" if quantity == "energy" else "um2"
    tables = {int(nm): {k: v[unit] for k, v in t.items()} for nm, t in energy_table()[quantity].items()}
    nodes = sorted(tables)
    if node_nm in tables:
        return dict(tables[node_nm])
    hi = min(n for n in nodes if n > node_nm)
    lo = max(n for n in nodes if n < node_nm)
    t = (log(node_nm) - log(lo)) / (log(hi) - log(lo))
    return {k: tables[lo][k] ** (1 - t) * tables[hi][k] ** t for k in tables[lo]}


@dataclass(frozen=True)
class _Rules:
    """The coefficients of the composition rules at one node, fitted through its primitives."""
    add8: float
    add_exp: float       # integer adder: add8 (w / 8)^add_exp
    mul8: float
    mul_exp: float       # integer multiplier: mul8 (wa wb / 64)^mul_exp
    mul_sq: float
    mul_lin: float       # float multiplier significand part
    shift: float
    add_lin: float       # float adder significand part: shift s log2 s + add_lin s
    sig_coef: float = 0.0
    sig_pow: float = 0.0  # where that fits a negative coefficient: sig_coef s^sig_pow instead

    def int_add(self, bits: float) -> float:
        return self.add8 * (bits / 8) ** self.add_exp

    def int_mul(self, bits_a: float, bits_b: float) -> float:
        return self.mul8 * (bits_a * bits_b / 64) ** self.mul_exp

    def float_mul(self, sa: int, ea: int, sb: int, eb: int) -> float:
        return self.mul_sq * sa * sb + self.mul_lin * (sa + sb) / 2 + self.int_add(max(ea, eb))

    def aligned_add(self, bits: float) -> float:
        """A fixed-point add of `bits` behind an alignment shifter (fused dot-product groups)."""
        if self.sig_pow:
            return self.sig_coef * bits ** self.sig_pow
        return self.shift * bits * log2(bits) + self.int_add(bits)

    def float_add(self, s: int, e: int) -> float:
        if self.sig_pow:
            return self.sig_coef * s ** self.sig_pow + self.int_add(e)
        return self.shift * s * log2(s) + self.add_lin * s + self.int_add(e)


def _solve(a11, a12, b1, a21, a22, b2, what: str) -> tuple[float, float]:
    det = a11 * a22 - a12 * a21
    x, y = (b1 * a22 - a12 * b2) / det, (a11 * b2 - b1 * a21) / det
    if x < 0 or y < 0:
        raise ValueError(f"energy.toml: the {what} rule fits a negative coefficient ({x:g}, {y:g})")
    return x, y


@lru_cache(maxsize=64)
def rules(node_nm: float, quantity: str = "energy") -> _Rules:
    p = primitives(node_nm, quantity)
    add_exp = log(p["int32_add"] / p["int8_add"]) / log(4)
    mul_exp = log(p["int32_mul"] / p["int8_mul"]) / log(16)
    partial = _Rules(p["int8_add"], add_exp, p["int8_mul"], mul_exp, 0, 0, 0, 0)
    # fp16: significand 11, exponent 5 bits; fp32: 24 and 8
    mul_sq, mul_lin = _solve(121, 11, p["fp16_mul"] - partial.int_add(5),
                             576, 24, p["fp32_mul"] - partial.int_add(8), "float multiplier")
    sig16, sig32 = p["fp16_add"] - partial.int_add(5), p["fp32_add"] - partial.int_add(8)
    try:
        shift, add_lin = _solve(11 * log2(11), 11, sig16, 24 * log2(24), 24, sig32, "float adder")
    except ValueError:
        if quantity == "energy":
            raise
        sig_pow = log(sig32 / sig16) / log(24 / 11)        # area: the power law through both points
        return _Rules(p["int8_add"], add_exp, p["int8_mul"], mul_exp, mul_sq, mul_lin, 0.0, 0.0,
                      sig16 / 11 ** sig_pow, sig_pow)
    return _Rules(p["int8_add"], add_exp, p["int8_mul"], mul_exp, mul_sq, mul_lin, shift, add_lin)


def _fields(fmt) -> tuple[int, int]:
    """(significand bits, exponent bits) of a format: integers are all significand."""
    if isinstance(fmt, IntFormat):
        return fmt.bits, 0
    return fmt.mantissa_bits + 1, fmt.exponent_bits


def _multiply(r: _Rules, a, b) -> float:
    (sa, ea), (sb, eb) = _fields(a), _fields(b)
    if ea == eb == 0:
        return r.int_mul(sa, sb)
    return r.float_mul(sa, ea, sb, eb)


def _float_add(r: _Rules, name: str) -> float:
    return r.float_add(*_fields(get_format(name)))


def exact_sum_bits(element, block: int) -> int:
    """Width of a fixed-point adder that sums `block` products of two `element` values exactly:
    the span of a product's magnitudes (largest over smallest nonzero), a sign bit and log2 of
    the block length of carries."""
    if isinstance(element, IntFormat):
        span = 2 * element.bits - 1
    else:
        smallest = element.min_subnormal or element.min_normal
        span = ceil(2 * log2(float(element.max) / float(smallest)))
    return span + 1 + ceil(log2(block))


@dataclass(frozen=True)
class MacTerms:
    """One MAC's energy split by what spends it, pJ."""
    multiply: float
    accumulate: float
    block: float = 0.0       # block-scale handling amortized over the block

    @property
    def total(self) -> float:
        return self.multiply + self.accumulate + self.block


def mac_terms(kernel, a_block=None, node_nm: float = 45, quantity: str = "energy") -> MacTerms:
    """The energy of one MAC of a plan's kernel (qsim.plan.Kernel: kind, a_format, b_format, path)
    at node_nm; a_block: the activations' block format for block kernels (both operands' blocks
    have one length along K; the activations' scale format is charged for both)."""
    r = rules(node_nm, quantity)
    a, b = get_format(kernel.a_format), get_format(kernel.b_format)
    multiply = _multiply(r, a, b)
    if kernel.kind == "integer":
        return MacTerms(multiply, r.int_add(kernel.accumulator.bits))
    if kernel.kind == "block":
        length = a_block.block[-1]
        sum_bits = exact_sum_bits(a_block.element, length)
        accumulate = r.int_add(sum_bits)
        scale = get_format(a_block.scale_format) if a_block.scale_format != "ue4m3" else _ue4m3()
        if isinstance(scale, FloatFormat) and scale.mantissa_bits == 0:      # power-of-two scales (E8M0)
            per_block = r.int_add(scale.exponent_bits)
        else:
            s, e = _fields(scale)
            per_block = r.float_mul(s, e, s, e) + r.int_mul(sum_bits, 2 * s)
        return MacTerms(multiply, accumulate, (per_block + r.float_add(24, 8)) / length)
    acc = kernel.accumulator
    if kernel.accumulator is None or not acc.fused_group:
        fmt = acc.format if acc is not None else "fp32"
        return MacTerms(multiply, _float_add(r, fmt))
    accumulate = r.aligned_add(acc.fused_bits) + _float_add(r, acc.format) / acc.fused_group
    if acc.promote_every:
        accumulate += r.float_add(24, 8) / acc.promote_every
    return MacTerms(multiply, accumulate)


def _ue4m3():
    from ..formats.block import scale_format
    return scale_format("ue4m3")


def mac_pj(kernel, a_block=None, node_nm: float = 45) -> float:
    """Energy of one MAC, pJ (mac_terms' total)."""
    return mac_terms(kernel, a_block, node_nm).total


AREA_NODE_NM = 45        # the node of the cited area table


def mac_area_um2(kernel, a_block=None, node_nm: float = AREA_NODE_NM, key: str = "node_nm") -> float:
    """Area of one MAC unit, um^2: composed at 45 nm from the cited areas (block handling
    amortized over the block, as for energy), scaled by (node / 45)^2; a node outside the energy
    data's cited range is refused (NodeError naming `key`)."""
    check_node(node_nm, key)
    return mac_terms(kernel, a_block, AREA_NODE_NM, "area").total * (node_nm / AREA_NODE_NM) ** 2

