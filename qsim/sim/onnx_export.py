"""A workload's layer graph as a float ONNX model (built with onnx.helper, no exporter), so that
the built-in models can be quantized by ONNX Runtime and compared against qsim.

One ONNX node per layer, named as the layer: Linear -> Gemm (weight as B, bias as C), Conv2d /
Conv1d -> Conv, ReLU -> Relu, GELU -> Gelu (opset 20 and later), Add -> Add, Softmax -> Softmax,
MaxPool2d -> MaxPool (square, stride = size), AvgPool -> GlobalAveragePool + Flatten, Flatten
-> Flatten. The graph input is "x" (its first dimension symbolic: "batch"), the output "y";
qsim.sim.load_onnx reads the model back into the same layers. Other layers (attention, layer
norm, pooling by mask) are an error naming the layer. Needs `onnx`.
"""

from __future__ import annotations

import numpy as np

from .graph import graph_inputs
from .layers import GELU, Add, AvgPool, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Softmax


def export_onnx(workload, opset: int = 17):
    """The float onnx.ModelProto of a workload with one input (workload.calib gives its shape)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("exporting to ONNX needs the onnx package (pip install onnx)") from None
    inputs = graph_inputs(workload.calib)
    if list(inputs) != ["x"]:
        raise ValueError(f"{workload.name}: only a workload with one input can be exported, it has {', '.join(inputs)}")
    nodes, consts = [], []
    tensor = {"x": "x"}                                         # layer (or graph input) -> its ONNX tensor

    def const(name: str, value) -> str:
        consts.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    previous = "x"
    for layer in workload.layers:
        sources = [tensor[name] for name in (layer.inputs or (previous,))]
        out, name = layer.name, layer.name
        if isinstance(layer, Linear):
            nodes.append(helper.make_node("Gemm", [sources[0], const(f"{name}.weight", layer.weight),
                                                   const(f"{name}.bias", layer.bias)], [out], name=name))
        elif isinstance(layer, Conv2d):                          # Conv1d too
            dims = layer.weight.ndim - 2
            nodes.append(helper.make_node("Conv", [sources[0], const(f"{name}.weight", layer.weight),
                                                   const(f"{name}.bias", layer.bias)], [out], name=name,
                                          kernel_shape=list(layer.weight.shape[2:]), strides=[layer.stride] * dims,
                                          pads=[layer.padding] * 2 * dims))
        elif isinstance(layer, MaxPool2d):
            nodes.append(helper.make_node("MaxPool", sources, [out], name=name, kernel_shape=[layer.size] * 2,
                                          strides=[layer.size] * 2))
        elif isinstance(layer, AvgPool):
            nodes.append(helper.make_node("GlobalAveragePool", sources, [f"{out}.pooled"], name=name))
            nodes.append(helper.make_node("Flatten", [f"{out}.pooled"], [out], name=f"{name}.flatten", axis=1))
        elif isinstance(layer, GELU) and opset >= 20:
            nodes.append(helper.make_node("Gelu", sources, [out], name=name))
        elif type(layer) in _SIMPLE:
            op, attrs = _SIMPLE[type(layer)]
            nodes.append(helper.make_node(op, sources, [out], name=name, **attrs))
        else:
            raise ValueError(f"{workload.name}: layer {name!r} ({type(layer).__name__}) has no ONNX export"
                             + (" before opset 20" if isinstance(layer, GELU) else ""))
        tensor[name] = out
        previous = name
    nodes[-1].output[0] = "y"
    sample = np.asarray(inputs["x"])
    graph = helper.make_graph(
        nodes, workload.name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *sample.shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="qsim")
    onnx.checker.check_model(model)
    return model


_SIMPLE = {ReLU: ("Relu", {}), Add: ("Add", {}), Softmax: ("Softmax", {"axis": -1}), Flatten: ("Flatten", {"axis": 1})}
