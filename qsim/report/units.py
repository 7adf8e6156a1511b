"""Number formatting shared by the HTML and Markdown reports: every missing value prints as
an en dash, so a reader never mistakes a gap for a zero."""

from __future__ import annotations

import math
from numbers import Real

MISSING = "–"


def is_missing(v) -> bool:
    """None, NaN (of any float type) or pandas' NA."""
    return v is None or (isinstance(v, Real) and math.isnan(v)) or type(v).__name__ == "NAType"


def number(v, digits: int = 3) -> str:
    """v to `digits` significant figures, thousands separated, no exponent for everyday sizes."""
    if is_missing(v):
        return MISSING
    v = float(v)
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v.is_integer() and abs(v) < 1e15:       # whole numbers print whole: 250, not 250.0
        return f"{int(v):,}"
    if abs(v) >= 1e15 or abs(v) < 1e-4:
        return f"{v:.{digits - 1}e}".replace("e+", "e").replace("e-0", "e-").replace("e0", "e")
    decimals = max(digits - 1 - math.floor(math.log10(abs(v))), 0)
    return f"{v:,.{decimals}f}"


def compact(v, digits: int = 3) -> str:
    """Like number(), with an SI suffix from ten thousand up (for chart labels): 6.75M."""
    if is_missing(v) or not math.isfinite(float(v)) or abs(v) < 1e4:
        return number(v, digits)
    for suffix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return number(v / size, digits) + suffix
    return number(v, digits)


def count(v) -> str:
    """An integer count with thousands separators."""
    return MISSING if is_missing(v) else f"{int(v):,}"


def fixed(v, decimals: int) -> str:
    return MISSING if is_missing(v) else f"{float(v):,.{decimals}f}"


DECIMAL = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3))
BINARY = (("TiB", 2.0 ** 40), ("GiB", 2.0 ** 30), ("MiB", 2.0 ** 20), ("KiB", 2.0 ** 10))


def bytes_(v, binary: bool = False) -> str:
    """A byte count in the largest unit that keeps it at or above 1: decimal units for traffic
    and bandwidth, binary for memory sizes (which come in powers of two)."""
    if is_missing(v):
        return MISSING
    for unit, size in BINARY if binary else DECIMAL:
        if abs(v) >= size:
            return f"{number(v / size)} {unit}"
    return f"{int(v)} B"


def memory_size(v) -> str:
    return bytes_(v, binary=True)


def frequency(hz) -> str:
    if is_missing(hz):
        return MISSING
    for unit, size in (("GHz", 1e9), ("MHz", 1e6), ("kHz", 1e3)):
        if hz >= size:
            return f"{number(hz / size)} {unit}"
    return f"{number(hz)} Hz"


def per_second(v, unit: str) -> str:
    """A rate with an SI prefix: 138 TMAC/s."""
    if is_missing(v):
        return MISSING
    for prefix, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{number(v / size)} {prefix}{unit}"
    return f"{number(v)} {unit}"


def rate(bytes_per_s) -> str:
    return MISSING if is_missing(bytes_per_s) else f"{bytes_(bytes_per_s)}/s"
