"""The built-in formats by name, user registration, and ``format(name)`` lookup."""

from __future__ import annotations

import re

from .spec import FloatFormat, Format, IntFormat

_BUILTIN_FLOATS = [
    # OCP OFP8 v1.0
    FloatFormat("e4m3", 4, 3, 7, "fn"),
    FloatFormat("e5m2", 5, 2, 15, "ieee"),
    # AMD MI300 / Graphcore
    FloatFormat("e4m3fnuz", 4, 3, 8, "fnuz"),
    FloatFormat("e5m2fnuz", 5, 2, 16, "fnuz"),
    # IEEE and brain float
    FloatFormat("bf16", 8, 7, 127, "ieee"),
    FloatFormat("fp16", 5, 10, 15, "ieee"),
    FloatFormat("fp32", 8, 23, 127, "ieee"),
    # OCP MX v1.0 element types and the shared scale
    FloatFormat("fp6_e2m3", 2, 3, 1, "none"),
    FloatFormat("fp6_e3m2", 3, 2, 3, "none"),
    FloatFormat("fp4_e2m1", 2, 1, 1, "none"),
    FloatFormat("e8m0", 8, 0, 127, "fn", subnormals=False, signed=False, has_zero=False),
]

_ALIASES = {
    "e4m3fn": "e4m3", "float8_e4m3fn": "e4m3", "fp8_e4m3": "e4m3",
    "float8_e5m2": "e5m2", "fp8_e5m2": "e5m2",
    "float8_e4m3fnuz": "e4m3fnuz", "float8_e5m2fnuz": "e5m2fnuz",
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "single": "fp32",
    "e2m3": "fp6_e2m3", "float6_e2m3fn": "fp6_e2m3",
    "e3m2": "fp6_e3m2", "float6_e3m2fn": "fp6_e3m2",
    "e2m1": "fp4_e2m1", "float4_e2m1fn": "fp4_e2m1",
    "float8_e8m0fnu": "e8m0", "e8m0fnu": "e8m0",
}

_registry: dict[str, Format] = {f.name: f for f in _BUILTIN_FLOATS}
for _bits in range(2, 17):
    _registry[f"int{_bits}"] = IntFormat(f"int{_bits}", _bits, signed=True)
    _registry[f"uint{_bits}"] = IntFormat(f"uint{_bits}", _bits, signed=False)
    _registry[f"int{_bits}_narrow"] = IntFormat(f"int{_bits}_narrow", _bits, signed=True, narrow=True)

# e<E>m<M>[fn|fnuz]: any other minifloat, IEEE-style bias 2^(E-1)-1 (fnuz: one more).
_MINIFLOAT = re.compile(r"^e(\d+)m(\d+)(fn|fnuz)?$")


def register_format(fmt: Format) -> Format:
    """Make a user-defined format available by name; refuses to redefine a name."""
    if not isinstance(fmt, (FloatFormat, IntFormat)):
        raise TypeError(f"register_format expects a FloatFormat or IntFormat, got {type(fmt).__name__}")
    key = fmt.name.lower()
    existing = _registry.get(key) or _registry.get(_ALIASES.get(key, ""))
    if existing is not None and existing != fmt:
        raise ValueError(f"a different format is already registered as {fmt.name!r}")
    _registry[key] = fmt
    return fmt


def format(spec: str | Format) -> Format:  # noqa: A001 - the public name the users asked for
    """Return the format definition for a name (``"e4m3"``, ``"int4"``, ``"e3m4"``...) or pass a
    definition through."""
    if isinstance(spec, (FloatFormat, IntFormat)):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a format is a name or a FloatFormat/IntFormat, got {type(spec).__name__}")
    key = spec.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _registry:
        return _registry[key]
    m = _MINIFLOAT.match(key)
    if m:
        e, mant, policy = int(m[1]), int(m[2]), m[3] or "ieee"
        if e < 1:
            raise ValueError(f"{spec!r}: a minifloat needs at least 1 exponent bit")
        bias = (1 << (e - 1)) - 1 + (policy == "fnuz")
        return FloatFormat(key, e, mant, bias, policy)
    floats = sorted(n for n, f in _registry.items() if isinstance(f, FloatFormat))
    raise KeyError(f"unknown format {spec!r}; known: {', '.join(floats)}, int2..int16, uint2..uint16, "
                   "int<N>_narrow, or e<E>m<M>[fn|fnuz] for a custom minifloat")


def builtin_formats() -> list[Format]:
    """Every registered format, floats first, in a stable order."""
    floats = [f for f in _registry.values() if isinstance(f, FloatFormat)]
    ints = sorted((f for f in _registry.values() if isinstance(f, IntFormat)),
                  key=lambda f: (f.narrow, not f.signed, f.bits))
    return floats + ints
