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
    # NVIDIA TensorFloat-32 (AMD xf32): FP32 with 10 fraction bits, 19 bits wide
    FloatFormat("tf32", 8, 10, 127, "ieee"),
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
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "single": "fp32", "xf32": "tf32",
    "e2m3": "fp6_e2m3", "float6_e2m3fn": "fp6_e2m3",
    "e3m2": "fp6_e3m2", "float6_e3m2fn": "fp6_e3m2",
    "e2m1": "fp4_e2m1", "float4_e2m1fn": "fp4_e2m1",
    "float8_e8m0fnu": "e8m0", "e8m0fnu": "e8m0",
}

# The built-in integers: the unknown-format message sums them up as int2..int16 and so on.
_BUILTIN_INTS = [IntFormat(f"{kind}{bits}{suffix}", bits, signed=kind == "int", narrow=bool(suffix))
                 for bits in range(2, 17) for kind, suffix in (("int", ""), ("uint", ""), ("int", "_narrow"))]
_registry: dict[str, Format] = {f.name: f for f in _BUILTIN_FLOATS + _BUILTIN_INTS}

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
        if not 1 <= e <= 11:        # checked before 2**(e-1) below is worked out
            raise ValueError(f"{spec!r}: a minifloat has 1..11 exponent bits, got {e}")
        bias = (1 << (e - 1)) - 1 + (policy == "fnuz")
        return FloatFormat(key, e, mant, bias, policy)
    raise UnknownFormatError(f"unknown format {spec!r}; known: {', '.join(_known_names())}, "
                             "int2..int16, uint2..uint16, int<N>_narrow, "
                             "or e<E>m<M>[fn|fnuz] for a custom minifloat")


class UnknownFormatError(KeyError):
    """A name no format has. A KeyError, as for any registry lookup, but its message reads
    as written: str() of a plain KeyError shows the message's repr, quotes and all."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _known_names() -> list[str]:
    """Registered names other than the built-in integers (which the message sums up)."""
    builtin_ints = {f.name for f in _BUILTIN_INTS}
    return sorted(n for n in _registry if n not in builtin_ints)


def builtin_formats() -> list[Format]:
    """Every registered format, floats first, in a stable order."""
    floats = [f for f in _registry.values() if isinstance(f, FloatFormat)]
    ints = sorted((f for f in _registry.values() if isinstance(f, IntFormat)),
                  key=lambda f: (f.narrow, not f.signed, f.bits))
    return floats + ints
