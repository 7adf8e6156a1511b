"""Running a layer graph: the FP32 executor and the graph walk.

Layers (qsim/sim/layers.py) call the executor's gemm() for their products and vector() on
their other results; a simulator puts them on hardware by passing its own executor.
"""

from __future__ import annotations

import numpy as np


class FP32:
    """The float32 executor: every GEMM is qsim's FP32 reference product (fp32_matmul: the same
    bits at any thread count, unlike a BLAS sgemm), every vector result kept as computed. Layers call gemm() for their products and vector() on their other results,
    so a simulator can put them on hardware by providing its own executor."""

    layer = None                                  # the layer being run (set by run_graph)

    def gemm(self, key: str, a: np.ndarray, b: np.ndarray, bias=None, weight: bool = True) -> np.ndarray:
        """a (..., M, K) @ b (..., K, N) (+ bias); weight: b is a constant of the model."""
        from ..datapaths import fp32_matmul
        y = fp32_matmul(a, b)
        return y if bias is None else (y + bias).astype(np.float32)

    def vector(self, y: np.ndarray, reads: int) -> np.ndarray:
        """A vector-unit result, having read `reads` elements."""
        return y

    def kv_cache(self, x: np.ndarray) -> np.ndarray:
        """Keys or values as attention reads them back from the KV cache."""
        return x


def graph_inputs(x) -> dict:
    return dict(x) if isinstance(x, dict) else {"x": x}


def run_graph(layers, x, ex=None, each=None) -> np.ndarray:
    """Run the layers on input(s) x with executor ex (default FP32); each(layer, output) is
    called after every layer. Returns the last output."""
    ex = ex or FP32()
    values = graph_inputs(x)
    previous = "x"
    for layer in layers:
        try:
            args = [values[name] for name in (layer.inputs or (previous,))]
        except KeyError as e:
            raise ValueError(f"layer {layer.name!r} reads {e.args[0]!r}, which no earlier layer or input produces") from None
        ex.layer = layer
        y = layer.run(args, ex)
        previous = layer.name
        values[layer.name] = y
        if each is not None:
            each(layer, y)
    return y


def forward_fp32(layers, x) -> list[np.ndarray]:
    """The plain float32 numpy forward pass; the output of every layer."""
    outs = []
    run_graph(layers, x, each=lambda layer, y: outs.append(y))
    return outs
