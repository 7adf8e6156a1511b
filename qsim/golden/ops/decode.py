"""decode: codes of a number format to float32 values (every code of formats up to 16 bits)."""

from __future__ import annotations

import numpy as np

from ...codec import code_dtype, decode, fits_float32
from ...formats import IntFormat, format as get_format
from ...quant.intquant import container_dtype
from ..store import Case
from .base import GoldenOp, not_for


def _decode_cases(cfg, rng) -> tuple[list[Case], dict, dict]:
    fmt = get_format(cfg.format)
    if isinstance(fmt, IntFormat):
        out_dtype = container_dtype(fmt)
        out_fmt = f"{'' if fmt.signed else 'u'}int{out_dtype.itemsize * 8}"
    elif fits_float32(fmt):
        out_fmt = "fp32"
    else:
        raise ValueError(f"golden decode writes float32 outputs; {fmt.name} has values float32 cannot hold")
    cdt = code_dtype(fmt)
    groups = []
    if fmt.storage_bits <= 16:
        groups.append(("all-codes", "directed", f"every one of the {fmt.n_codes} codes", np.arange(fmt.n_codes)))
    else:
        sign, inf = fmt.sign_bit, fmt.inf_code or fmt.magnitude_mask
        special = [0, sign, 1, sign | 1, fmt.max_code_magnitude, sign | fmt.max_code_magnitude, inf, sign | inf,
                   inf + 1, fmt.magnitude_mask, fmt.n_codes - 1, 1 << fmt.mantissa_bits, (1 << fmt.mantissa_bits) - 1]
        groups.append(("specials", "directed", "zeros, smallest subnormal, max, Inf, NaN payloads, the "
                       "normal/subnormal boundary", np.array(special)))
        groups.append(("random", "random", f"{cfg.random} seeded codes",
                       rng.integers(0, fmt.n_codes, cfg.random, dtype=np.uint64)))
    cases = []
    for name, kind, desc, codes in groups:
        codes = codes.astype(cdt)
        y = decode(codes, fmt) if isinstance(fmt, IntFormat) else decode(codes, fmt, dtype=np.float32)
        cases.append(Case(name, kind, desc, {"codes": codes}, {"y": y}))
    return cases, {"codes": fmt.name, "y": out_fmt}, {}


class Decode(GoldenOp):
    name = "decode"
    default_random = 1024

    def format_rules(self, path) -> dict:
        only = not_for("decode takes --format only")
        return {"format": None, "weight_format": only, "output_format": only}

    def fill(self, cfg, path, hw):
        cfg = self.format_from_datapath(cfg, path, hw)
        return cfg

    def cases(self, cfg, path, hw, rng):
        return _decode_cases(cfg, rng)
