"""Number formats as data: each format is a few raw fields; every other fact is derived.

A float format is sign (optional), ``exponent_bits`` and ``mantissa_bits`` with a ``bias``
and a policy for the special codes (``specials``):

- ``"ieee"``: the all-ones exponent is reserved: mantissa 0 is Inf, anything else NaN
  (E5M2, FP16, BF16, FP32).
- ``"fn"``: finite; only the all-ones code is NaN (OCP E4M3, the E8M0 scale).
- ``"fnuz"``: finite, no negative zero; the code 1000...0 is the single NaN
  (E4M3FNUZ, E5M2FNUZ).
- ``"none"``: every code is a finite number (MX FP6 and FP4 element types).

``subnormals=False`` flushes: inputs whose magnitude is below the smallest normal become a
signed zero before rounding (as Intel's VCVTNEPS2BF16 does), and such codes decode as zero.
``has_zero=False`` (E8M0) means the all-zero exponent field is an ordinary binade.

qsim gives values as float64 at most, so the bias must keep every value a float64
(``bias_range``): the largest exponent at most 1023, the finest step at least 2**-1074.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np

Specials = Literal["ieee", "fn", "fnuz", "none"]
SPECIALS = ("ieee", "fn", "fnuz", "none")


@dataclass(frozen=True)
class FloatFormat:
    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    specials: Specials = "ieee"
    subnormals: bool = True
    signed: bool = True
    has_zero: bool = True

    def __post_init__(self):
        _check_field_types(self, ("exponent_bits", "mantissa_bits", "bias"),
                           ("subnormals", "signed", "has_zero"))
        if not 1 <= self.exponent_bits <= 11:
            raise ValueError(f"{self.name}: exponent_bits must be 1..11, got {self.exponent_bits}")
        if not 0 <= self.mantissa_bits <= 52:
            raise ValueError(f"{self.name}: mantissa_bits must be 0..52, got {self.mantissa_bits}")
        if self.specials not in SPECIALS:
            raise ValueError(f"{self.name}: specials must be one of {SPECIALS}, got {self.specials!r}")
        if self.storage_bits > 32:
            raise ValueError(f"{self.name}: at most 32 storage bits are supported, got {self.storage_bits}")
        if self.specials == "fnuz" and not self.signed:
            raise ValueError(f"{self.name}: fnuz puts NaN in the sign bit, so it needs signed=True")
        if not self.has_zero and (self.signed or self.mantissa_bits):
            raise ValueError(f"{self.name}: has_zero=False is only for unsigned exponent-only scales (E8M0)")
        if self.specials == "ieee" and self.exponent_bits < 2:
            raise ValueError(f"{self.name}: ieee specials need at least 2 exponent bits")
        if self.max_code_magnitude <= 0:
            raise ValueError(f"{self.name}: the specials leave no finite nonzero code")
        lo, hi = self.bias_range
        if not lo <= self.bias <= hi:
            raise ValueError(
                f"{self.name}: bias must be in {lo}..{hi} for {self.exponent_bits} exponent and "
                f"{self.mantissa_bits} mantissa bits (specials={self.specials!r}), got {self.bias}: "
                "qsim gives values as float64, so the largest exponent must be at most 1023 "
                "and the finest step, 2**(emin - mantissa_bits), at least 2**-1074")

    kind = "float"

    # -- layout ---------------------------------------------------------------------
    @property
    def storage_bits(self) -> int:
        return int(self.signed) + self.exponent_bits + self.mantissa_bits

    @property
    def n_codes(self) -> int:
        return 1 << self.storage_bits

    @property
    def sign_bit(self) -> int:
        """Mask of the sign bit, or 0 for unsigned formats."""
        return (1 << (self.exponent_bits + self.mantissa_bits)) if self.signed else 0

    @property
    def magnitude_mask(self) -> int:
        return (1 << (self.exponent_bits + self.mantissa_bits)) - 1

    # -- special codes --------------------------------------------------------------
    @property
    def has_inf(self) -> bool:
        return self.specials == "ieee"

    @property
    def has_nan(self) -> bool:
        return self.specials != "none"

    @property
    def has_negative_zero(self) -> bool:
        return self.signed and self.has_zero and self.specials != "fnuz"

    @property
    def inf_code(self) -> int | None:
        """Code of +Inf (magnitude bits; OR with sign_bit for -Inf)."""
        return ((1 << self.exponent_bits) - 1) << self.mantissa_bits if self.has_inf else None

    @property
    def nan_code(self) -> int | None:
        """The NaN code qsim writes for a positive NaN input (canonical quiet NaN)."""
        if self.specials == "ieee":
            return self.inf_code | (1 << (self.mantissa_bits - 1) if self.mantissa_bits else 0)
        if self.specials == "fn":
            return self.magnitude_mask
        if self.specials == "fnuz":
            return self.sign_bit
        return None

    def is_nan_code(self, code: int) -> bool:
        mag = code & self.magnitude_mask
        if self.specials == "ieee":
            return mag > self.inf_code
        if self.specials == "fn":
            return mag == self.magnitude_mask
        if self.specials == "fnuz":
            return code == self.sign_bit
        return False

    @property
    def nan_codes(self) -> tuple[int, ...]:
        return tuple(c for c in range(self.n_codes) if self.is_nan_code(c)) if self.storage_bits <= 16 else ()

    @property
    def max_code_magnitude(self) -> int:
        """Largest code (without sign) that encodes a finite number."""
        top = self.magnitude_mask
        if self.specials == "ieee":
            return self.inf_code - 1
        if self.specials == "fn":
            return top - 1
        return top

    @property
    def bias_range(self) -> tuple[int, int]:
        """The biases for which every value of this layout is a float64 (decode's widest
        type): emax = max exponent field - bias <= 1023 and emin - mantissa_bits >= -1074."""
        max_field = self.max_code_magnitude >> self.mantissa_bits
        return max_field - 1023, 1074 + int(self.has_zero) - self.mantissa_bits

    # -- values ---------------------------------------------------------------------
    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return (0 if not self.has_zero else 1) - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        return (self.max_code_magnitude >> self.mantissa_bits) - self.bias

    def exact_value(self, code: int) -> Fraction | float:
        """The value of a code: an exact Fraction, or float('nan'/'inf') for specials."""
        code = _code_argument(code)
        if not 0 <= code < self.n_codes:
            raise ValueError(f"{self.name}: code {code} out of range 0..{self.n_codes - 1}")
        negative = bool(code & self.sign_bit)
        mag = code & self.magnitude_mask
        if self.is_nan_code(code):
            return float("nan")
        if self.has_inf and mag == self.inf_code:
            return float("-inf") if negative else float("inf")
        e_field = mag >> self.mantissa_bits
        m_field = mag & ((1 << self.mantissa_bits) - 1)
        if e_field == 0 and self.has_zero:
            if not self.subnormals:
                value = Fraction(0)
            else:
                value = Fraction(m_field, 1 << self.mantissa_bits) * Fraction(2) ** self.emin
        else:
            value = (1 + Fraction(m_field, 1 << self.mantissa_bits)) * Fraction(2) ** (e_field - self.bias)
        return -value if negative else value

    @property
    def max(self) -> Fraction:
        return self.exact_value(self.max_code_magnitude)

    @property
    def min_normal(self) -> Fraction:
        return Fraction(2) ** self.emin

    @property
    def min_subnormal(self) -> Fraction | None:
        if not (self.subnormals and self.has_zero and self.mantissa_bits):
            return None
        return Fraction(2) ** (self.emin - self.mantissa_bits)

    @property
    def epsilon(self) -> Fraction:
        """Distance from 1 to the next larger number."""
        return Fraction(1, 1 << self.mantissa_bits)

    @property
    def default_saturate(self) -> bool:
        """Overflow saturates by default unless the format has an Inf to overflow to (IEEE)."""
        return not self.has_inf

    def describe(self) -> dict:
        return {
            "name": self.name, "kind": "float", "bits": self.storage_bits,
            "e": self.exponent_bits, "m": self.mantissa_bits, "bias": self.bias,
            "specials": self.specials, "subnormals": self.subnormals,
            "max": float(self.max), "min_normal": float(self.min_normal),
            "min_subnormal": float(self.min_subnormal) if self.min_subnormal else None,
            "epsilon": float(self.epsilon), "inf": self.has_inf, "nan": self.has_nan,
        }


@dataclass(frozen=True)
class IntFormat:
    name: str
    bits: int
    signed: bool = True
    narrow: bool = False

    kind = "int"

    def __post_init__(self):
        _check_field_types(self, ("bits",), ("signed", "narrow"))
        if not 2 <= self.bits <= 16:
            raise ValueError(f"{self.name}: integer formats have 2..16 bits, got {self.bits}")
        if self.narrow and not self.signed:
            raise ValueError(f"{self.name}: narrow range applies to signed integers only")

    @property
    def storage_bits(self) -> int:
        return self.bits

    @property
    def n_codes(self) -> int:
        return 1 << self.bits

    @property
    def qmin(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + int(self.narrow)

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def max(self) -> int:
        return self.qmax

    has_inf = False
    has_nan = False
    default_saturate = True

    def exact_value(self, code: int) -> int:
        """Two's complement (or unsigned) value of a code; narrow range leaves one code unused."""
        code = _code_argument(code)
        if not 0 <= code < self.n_codes:
            raise ValueError(f"{self.name}: code {code} out of range 0..{self.n_codes - 1}")
        if self.signed and code >= self.n_codes // 2:
            return code - self.n_codes
        return code

    def describe(self) -> dict:
        return {
            "name": self.name, "kind": "int", "bits": self.bits, "e": None, "m": None, "bias": None,
            "specials": "none", "subnormals": None, "max": float(self.qmax), "min_normal": None,
            "min_subnormal": None, "epsilon": 1.0, "inf": False, "nan": False,
            "qmin": self.qmin, "qmax": self.qmax,
        }


def _code_argument(code) -> int:
    """A code as an int; int(1.5) would quietly give the value of code 1."""
    if isinstance(code, (bool, np.bool_)) or not isinstance(code, (int, np.integer)):
        raise TypeError(f"a code is an int, got {code!r}")
    return int(code)


def _check_field_types(fmt, int_fields: tuple[str, ...], bool_fields: tuple[str, ...]) -> None:
    """A field of the wrong type would pass the range checks (7.5 <= 11) and give wrong codes."""
    if not isinstance(fmt.name, str) or not fmt.name:
        raise TypeError(f"a format's name must be a non-empty str, got {fmt.name!r}")
    for field in int_fields:
        value = getattr(fmt, field)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{fmt.name}: {field} must be an int, got {value!r}")
        object.__setattr__(fmt, field, int(value))     # numpy ints become plain ints
    for field in bool_fields:
        value = getattr(fmt, field)
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{fmt.name}: {field} must be True or False, got {value!r}")
        object.__setattr__(fmt, field, bool(value))


Format = FloatFormat | IntFormat
