"""The golden operations, one object each (a GoldenOp): its default random count, its format
rules, how it completes its configuration (GoldenConfig), its directed and random cases, its
overflow mode and the inputs behind a mismatching output. A new op is a module with a
GoldenOp subclass and one line in REGISTRY."""

from __future__ import annotations

from .base import GoldenConfig, GoldenOp
from .conv import Conv
from .decode import Decode
from .encode import Encode
from .gemm import Gemm
from .layer import Layer
from .mx import Mx
from .requant import Requant

REGISTRY: dict[str, GoldenOp] = {op.name: op for op in (Encode(), Decode(), Gemm(), Conv(), Requant(), Mx(), Layer())}
ALIASES = {alias: op.name for op in REGISTRY.values() for alias in op.aliases}


def get_op(name) -> GoldenOp:
    """The op named name or one of its aliases."""
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in REGISTRY:
        raise ValueError(f"unknown golden op {name!r}; choose one of {', '.join(REGISTRY)} "
                         f"(aliases: {', '.join(ALIASES)})")
    return REGISTRY[key]


__all__ = ["ALIASES", "REGISTRY", "GoldenConfig", "GoldenOp", "get_op"]
