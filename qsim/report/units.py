"""Number formatting shared by the HTML and Markdown reports: every missing value prints as
an en dash, so a reader never mistakes a gap for a zero."""

from __future__ import annotations

import math
from numbers import Real

MISSING = "–"


def is_missing(v) -> bool:
    """None, NaN (of any float type) or pandas' NA."""
    return v is None or (isinstance(v, Real) and math.isnan(v)) or type(v).__name__ == "NAType"


def _special(v) -> str | None:
    """The text of a missing or infinite value; None for a finite number."""
    if is_missing(v):
        return MISSING
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return None


def number(v, digits: int = 3) -> str:
    """v to `digits` significant figures, thousands separated, no exponent for everyday sizes."""
    if (special := _special(v)) is not None:
        return special
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:       # whole numbers print whole: 250, not 250.0
        return f"{int(v):,}"
    if abs(v) >= 1e15 or abs(v) < 1e-4:
        return f"{v:.{digits - 1}e}".replace("e+", "e").replace("e-0", "e-").replace("e0", "e")
    decimals = max(digits - 1 - math.floor(math.log10(abs(v))), 0)
    return f"{v:,.{decimals}f}"


def compact(v, digits: int = 3) -> str:
    """Like number(), with an SI prefix from ten thousand up (for chart labels): 6.75M."""
    if is_missing(v) or not math.isfinite(float(v)) or abs(v) < 1e4:
        return number(v, digits)
    value, prefix = _scaled(v, SI)
    return number(value, digits) + prefix


def count(v) -> str:
    """An integer count with thousands separators."""
    special = _special(v)
    return special if special is not None else f"{int(v):,}"


def fixed(v, decimals: int) -> str:
    special = _special(v)
    return special if special is not None else f"{float(v):,.{decimals}f}"


def percent(fraction) -> str:
    """0.9723 as 97.23."""
    return MISSING if is_missing(fraction) else fixed(fraction * 100, 2)


def kilobytes(v) -> str:
    return MISSING if is_missing(v) else number(v / 1e3)


def text(v) -> str:
    return MISSING if is_missing(v) else str(v)


SI = (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))


DECIMAL = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3))
BINARY = (("TiB", 2.0 ** 40), ("GiB", 2.0 ** 30), ("MiB", 2.0 ** 20), ("KiB", 2.0 ** 10))


def _scaled(v, units) -> tuple[float, str]:
    """v in the largest of units ((name, size), largest first) that keeps it at or above 1;
    v itself and "" when it is below them all."""
    for name, size in units:
        if abs(v) >= size:
            return v / size, name
    return v, ""


def bytes_(v, binary: bool = False) -> str:
    """A byte count in the largest unit that keeps it at or above 1: decimal units for traffic
    and bandwidth, binary for memory sizes (which come in powers of two)."""
    if is_missing(v):
        return MISSING
    value, unit = _scaled(v, BINARY if binary else DECIMAL)
    return f"{number(value)} {unit}" if unit else f"{int(v)} B"


def memory_size(v) -> str:
    return bytes_(v, binary=True)


def per_second(v, unit: str) -> str:
    """A rate with an SI prefix: 138 TMAC/s."""
    if is_missing(v):
        return MISSING
    value, prefix = _scaled(v, SI)
    return f"{number(value)} {prefix}{unit}"


def frequency(hz) -> str:
    return per_second(hz, "Hz")


def rate(bytes_per_s) -> str:
    return MISSING if is_missing(bytes_per_s) else f"{bytes_(bytes_per_s)}/s"
