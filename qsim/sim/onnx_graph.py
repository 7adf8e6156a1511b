"""The loaded form of a quantized ONNX model (qsim.sim.onnx_quant): its nodes, constants,
inputs and outputs, and what an operator sees when it runs. A module of its own so that the
loader, ORT's graph rewrites (ort_fusion, ort_float_fusion) and the operators share these
types without importing one another in a cycle."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..datapaths.integer import IntDatapath

MS = "com.microsoft"


class OnnxQuantError(ValueError):
    """A model qsim cannot run as given; the message names the model and the node."""


# -- the model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    name: str
    op: str
    domain: str                   # "" for the default domain, "com.microsoft"
    inputs: tuple                 # tensor names; "" for an omitted optional input
    outputs: tuple
    attrs: dict = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return f"{self.op} node {self.name!r}"


@dataclass(frozen=True)
class GraphInput:
    name: str
    dtype: np.dtype
    shape: tuple | None           # dims are ints or names (symbolic); None: unknown rank


@dataclass(frozen=True)
class QuantModel:
    source: str                   # the file, or "<ModelProto>"
    nodes: tuple
    consts: dict                  # initializers and Constant nodes: name -> array
    inputs: tuple                 # GraphInput
    outputs: tuple                # names
    opset: int
    shapes: dict = field(default_factory=dict, compare=False)   # tensor -> dims (ints, names, None) where inferred
    packed: dict = field(default_factory=dict, init=False, compare=False, repr=False)  # Ctx.prepacked's results

    def fail(self, node: Node | None, why: str):
        where = f"{self.source}: " + (f"{node.label}: " if node is not None else "")
        raise OnnxQuantError(where + why)


# -- running ---------------------------------------------------------------------------------------
@dataclass
class Ctx:
    """What an operator sees besides its inputs: its node, the integer datapath, and which of
    its inputs are constants of the model (ORT packs constant weights ahead of time)."""
    node: Node
    datapath: IntDatapath
    const: tuple
    model: QuantModel

    def attr(self, name: str, default=None):
        return self.node.attrs.get(name, default)

    def fail(self, why: str):
        self.model.fail(self.node, why)

    def prepacked(self, i: int, pack, value):
        """pack(value) for input i, made once per prepared model where that input is a constant
        (as ORT packs constant weights when its session starts; the numbers are the same)."""
        if not self.const[i]:
            return pack(value)
        key = (self.node.inputs[i], pack.__qualname__)
        if key not in self.model.packed:
            self.model.packed[key] = pack(value)
        return self.model.packed[key]
