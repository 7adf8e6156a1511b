"""mx (alias mx_quantize): float32 rows to MX blocks (element codes and an E8M0 shared scale
per block): ties, clamping, zero, NaN and Inf blocks, extreme exponents, partial blocks."""

from __future__ import annotations

import numpy as np

from ...codec import decode
from ...formats import FloatFormat, format as get_format
from ...quant.mx import mx_quantize
from ..show import show
from ..store import Case
from .base import FLOAT_OPERAND, GoldenOp, must_be, not_for, pick
from .values import cast, finite_codes


def _mx_element(cfg, path, hw) -> tuple[FloatFormat, int]:
    """The element format and block size: format= / block_size= as given, else the hardware's
    activations (their block format's element and block length)."""
    op = hw.datapath.activations if hw else None
    name = pick(cfg.format, op and op.element_format)
    if name is None:
        raise ValueError("mx needs an element format: pass format= (--format), or a hardware description")
    if cfg.format is None and not FLOAT_OPERAND[1](get_format(name)):     # format= is checked with the options
        raise ValueError(f"mx: the element format {name} from hardware {hw.name} datapath.activations is not an MX "
                         f"element format; pass format= (--format): it must be {must_be(FLOAT_OPERAND)}")
    block = cfg.block_size or (op.block.block[-1] if op is not None and op.block is not None else 32)
    return get_format(name), int(block)


def _mx_rows(elem: FloatFormat, block: int, rng, n_random: int) -> list[tuple]:
    top = float(elem.max)
    scale_e = 2.0 ** rng.integers(-4, 5, 1)[0]
    emax_pow = 2.0 ** elem.emax
    grid = np.unique(np.abs(decode(finite_codes(elem), elem, dtype=np.float64)))
    mids = (grid[:-1] + grid[1:]) / 2
    ties = np.concatenate([[emax_pow], mids[np.linspace(0, mids.size - 1, block - 1).astype(int)]]) * scale_e
    ties[1::2] *= -1                             # ties[0] = 2^emax * scale_e fixes the block scale at scale_e
    f32 = np.finfo(np.float32)
    rows = [
        ("ties", "element midpoints in a block whose amax fixes the scale: round-to-nearest-even ties", ties),
        ("clamp", "amax just below the next power of two: the largest elements clamp to +-max (floor rule)",
         np.linspace(-1.99, 1.99, block) * emax_pow * 2.0 ** 3),
        ("zero-block", "an all-zero block", np.zeros(block)),
        ("nan-block", "a NaN in the block", np.where(np.arange(block) == 3, np.nan, 1.5)),
        ("inf-block", "+Inf and -Inf in blocks", np.where(np.arange(block) == 0, np.inf, -2.0)),
        ("max-exponent", "float32's largest values (shared exponent 127 - emax)", np.full(block, f32.max) *
         np.resize([1, -1, 0.5], block)),
        ("min-exponent", "tiny values: the shared exponent clamps at -127, elements underflow",
         np.ldexp(np.resize([1.0, 1.5, -1.0, 1.75], block), -140)),
        ("subnormal-elements", "a block spanning more binades than the element type: subnormal elements",
         np.ldexp(1.0, -np.arange(block) % 20) * top),
    ]
    out = [(n, "directed", d, np.asarray(v, np.float64)[None, :]) for n, d, v in rows]
    partial = rng.normal(0, 1, (2, block + block // 4 + 1))
    out.append(("partial-block", "directed", "a row length that is not a multiple of the block size", partial))
    n_rows = max(1, n_random // block)
    x = rng.normal(0, 1, (n_rows, 2 * block)) * 2.0 ** rng.integers(-20, 20, (n_rows, 1))
    out.append(("random", "random", f"{n_rows} seeded rows of 2 blocks at random magnitudes", x))
    return out


def _mx_cases(cfg, path, hw, rng):
    elem, block = _mx_element(cfg, path, hw)
    cases = []
    for name, kind, desc, x in _mx_rows(elem, block, rng, cfg.random):
        x = cast(x, np.float32)
        q = mx_quantize(x, elem, axis=-1, block_size=block, scale_rule=cfg.scale_rule, rounding=cfg.rounding,
                        seed=cfg.rounding_seed)
        cases.append(Case(name, kind, desc, {"x": x}, {"elements": q.elements, "scales": q.scales}))
    info = {"element_format": elem.name, "block_size": block, "axis": -1, "zero_block": "min",
            "nonfinite_block": "nan"}
    return cases, {"x": None, "elements": elem.name, "scales": "e8m0"}, info


class Mx(GoldenOp):
    name = "mx"
    aliases = ("mx_quantize",)
    default_random = 8

    def format_rules(self, path) -> dict:
        only = not_for("mx takes --format (the element format) only")
        return {"format": FLOAT_OPERAND, "weight_format": only, "output_format": only}

    def cases(self, cfg, path, hw, rng):
        return _mx_cases(cfg, path, hw, rng)

    def overflow_mode(self, cfg, path):
        return "elements clamp to +-max; NaN/Inf blocks get a NaN scale"

    def inputs_at(self, golden, case, output, pos):
        """For a block scale: the block of x, its amax and its non-finite count."""
        if output != "scales":
            return super().inputs_at(golden, case, output, pos)
        block = int(golden.info.get("block_size", 32))
        x = case.inputs["x"]
        lead, b = pos[:-1], pos[-1]
        values = x[lead][b * block:(b + 1) * block].astype(np.float64)
        finite = values[np.isfinite(values)]
        return {"block": f"x[{', '.join(map(str, lead))}, {b * block}:{b * block + values.size}]",
                "amax": show(np.abs(finite).max() if finite.size else np.nan),
                "non-finite": str(int(values.size - finite.size))}
