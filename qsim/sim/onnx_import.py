"""Import a float ONNX model as a qsim layer sequence.

Supported: a chain of Gemm, MatMul (with a following Add of a constant bias), Conv (2-D, one
group, square stride and symmetric padding), Relu, MaxPool (square, stride = kernel), Flatten.
Anything else is an error that names the operators. Needs the `onnx` package.
"""

from __future__ import annotations

import numpy as np

from .models import Conv2d, Flatten, Linear, MaxPool2d, ReLU

SUPPORTED = ("Gemm", "MatMul", "Add", "Conv", "Relu", "MaxPool", "Flatten")


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def onnx_workload(path, calib, test, labels=None):
    """A Workload from an ONNX model and float32 calibration / test inputs (labels optional)."""
    from .models import Workload
    labels = np.full(len(test), -1) if labels is None else np.asarray(labels, np.int64)
    return Workload(str(path), load_onnx(path), np.asarray(calib, np.float32), np.asarray(test, np.float32), labels)


def load_onnx(path) -> tuple:
    """The layers of a sequential float ONNX model (weights as initializers)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ImportError("importing ONNX models needs the onnx package (pip install onnx)") from None
    try:
        model = onnx.load(str(path))
    except Exception as e:     # missing file, or protobuf's DecodeError on a corrupt one
        raise ValueError(f"cannot read ONNX model {path}: {e}") from None
    graph = model.graph
    unsupported = sorted({n.op_type for n in graph.node} - set(SUPPORTED))
    if unsupported:
        raise ValueError(f"{path}: unsupported ONNX operators: {', '.join(unsupported)} "
                         f"(supported: {', '.join(SUPPORTED)})")
    consts = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    layers = []
    for i, node in enumerate(graph.node):
        name, a = node.name or f"{node.op_type.lower()}{i}", _attrs(node)
        if node.op_type == "Gemm":
            w = consts[node.input[1]]
            w = w.T if a.get("transB", 0) else w
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise ValueError(f"{path}: Gemm {name} with transA, alpha or beta is not supported")
            b = consts[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[1], np.float32)
            layers.append(Linear(name, np.ascontiguousarray(w), b))
        elif node.op_type == "MatMul":
            layers.append(Linear(name, consts[node.input[1]], np.zeros(consts[node.input[1]].shape[1], np.float32)))
        elif node.op_type == "Add":
            prev = layers[-1] if layers else None
            bias = next((consts[x] for x in node.input if x in consts), None)
            if not isinstance(prev, Linear) or bias is None:
                raise ValueError(f"{path}: Add {name} is supported only as the bias of a preceding MatMul")
            layers[-1] = Linear(prev.name, prev.weight, prev.bias + bias.reshape(-1))
        elif node.op_type == "Conv":
            strides, pads = a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
            if a.get("group", 1) != 1 or len(set(strides)) != 1 or len(set(pads)) != 1 or \
                    any(d != 1 for d in a.get("dilations", [1, 1])):
                raise ValueError(f"{path}: Conv {name}: only group 1, equal strides and pads, no dilation")
            w = consts[node.input[1]]
            b = consts[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            layers.append(Conv2d(name, w, b, stride=int(strides[0]), padding=int(pads[0])))
        elif node.op_type == "Relu":
            layers.append(ReLU(name))
        elif node.op_type == "MaxPool":
            k, s = a.get("kernel_shape", [2, 2]), a.get("strides", a.get("kernel_shape", [2, 2]))
            if len(set(k)) != 1 or list(s) != list(k) or any(a.get("pads", [0])):
                raise ValueError(f"{path}: MaxPool {name}: only square, non-overlapping, unpadded pooling")
            layers.append(MaxPool2d(name, int(k[0])))
        else:
            layers.append(Flatten(name))
    return tuple(layers)
