"""Codes and values as text, for mismatch reports: shared by validation and the golden ops
(which describe the inputs behind a mismatching output)."""

from __future__ import annotations

import numpy as np

from ..codec import decode
from ..formats import IntFormat, format as get_format
from .store import hex_digits, to_codes


def ordered(codes: np.ndarray, fmt) -> np.ndarray:
    """Codes as integers in value order: two's complement values, or sign-magnitude floats
    mapped so that -0 sits just below +0."""
    c = codes.astype(np.int64)
    if isinstance(fmt, IntFormat):
        return np.where(fmt.signed & (c >= fmt.n_codes // 2), c - fmt.n_codes, c)
    mag = c & fmt.magnitude_mask
    neg = (c & fmt.sign_bit) != 0
    return np.where(neg, -mag - int(fmt.has_negative_zero), mag)


def values(codes: np.ndarray, fmt) -> np.ndarray:
    if isinstance(fmt, IntFormat):
        return ordered(codes, fmt).astype(np.float64)
    return decode(codes.astype(np.uint64), fmt, dtype=np.float64)


def show(v) -> str:
    v = float(v)
    return repr(int(v)) if v.is_integer() and abs(v) < 2 ** 53 else repr(v)


def show_hex(code: int, fmt) -> str:
    return f"0x{code:0{hex_digits(fmt.storage_bits)}x}"


def show_range(arr) -> str:
    return f"{arr.size} values in [{show(arr.min())}, {show(arr.max())}]" if arr.size else "empty"


def show_array_value(golden, name: str, v) -> str:
    """One value of a golden array: its code and value where the array has a format, else the
    number and its bit pattern."""
    fmt_name = golden.formats.get(name)
    v = np.asarray(v)
    if fmt_name:
        fmt = get_format(fmt_name)
        code = to_codes(v.reshape(1), fmt)[0:1]
        return f"{show_hex(int(code[0]), fmt)} ({show(values(code, fmt)[0])})"
    if v.dtype.kind == "f":
        bits = int(v.view(f"u{v.dtype.itemsize}"))
        return f"{show(v)} (0x{bits:0{2 * v.dtype.itemsize}x})"
    return str(v.item())
