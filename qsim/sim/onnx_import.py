"""Import a float ONNX model as a qsim layer graph.

Supported operators: Gemm, MatMul (a constant right operand makes a Linear layer, an
activation one a MatMul), Add (a constant added to a MatMul's output becomes its bias; two
activations make an Add), Conv (1-D or 2-D, one group, equal strides and symmetric pads, no
dilation), Relu, Gelu, Softmax and LayerNormalization (last axis), MaxPool (square,
stride = kernel, no padding), GlobalAveragePool, Flatten. Anything else is an error that names
the operators. The model has one float input; weights are initializers. Needs `onnx`.
"""

from __future__ import annotations

import numpy as np

from .layers import GELU, Add, AvgPool, Conv1d, Conv2d, Flatten, LayerNorm, Linear, MatMul, MaxPool2d, ReLU, Softmax
from .workloads import Workload

SUPPORTED = ("Gemm", "MatMul", "Add", "Conv", "Relu", "Gelu", "Softmax", "LayerNormalization", "MaxPool",
             "GlobalAveragePool", "Flatten")


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def onnx_workload(path, calib, test, labels=None):
    """A Workload from an ONNX model and float32 calibration / test inputs (labels optional)."""
    labels = np.full(len(test), -1) if labels is None else np.asarray(labels, np.int64)
    return Workload(str(path), load_onnx(path), np.asarray(calib, np.float32), np.asarray(test, np.float32), labels)


def load_onnx(path) -> tuple:
    """The layers of a float ONNX model (weights as initializers), in the graph's node order."""
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
    inputs = [i.name for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise ValueError(f"{path}: the model must have exactly one input, it has {len(inputs)}")
    return _Importer(str(path), consts, inputs[0]).layers(graph.node)


class _Importer:
    def __init__(self, path: str, consts: dict, graph_input: str):
        self.path, self.consts = path, consts
        self.producer = {graph_input: "x"}           # ONNX tensor -> the qsim layer (or input) that makes it
        self.out: list = []

    def fail(self, node, name, why):
        raise ValueError(f"{self.path}: {node.op_type} {name}: {why}")

    def source(self, tensor: str, node, name) -> str:
        if tensor not in self.producer:
            self.fail(node, name, f"input {tensor!r} is neither the model input nor an earlier output")
        return self.producer[tensor]

    def add(self, layer_type, node, name, sources, *args, **kwargs):
        layer = layer_type(name, *args, inputs=tuple(self.source(t, node, name) for t in sources), **kwargs)
        self.out.append(layer)
        self.producer[node.output[0]] = name

    def layers(self, nodes) -> tuple:
        for i, node in enumerate(nodes):
            name = node.name or f"{node.op_type.lower()}{i}"
            getattr(self, "_" + node.op_type)(node, name, _attrs(node))
        return tuple(self.out)

    def _Gemm(self, node, name, a):
        w = self.consts.get(node.input[1])
        if w is None or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            self.fail(node, name, "only a constant B without transA, alpha or beta is supported")
        w = w.T if a.get("transB", 0) else w
        b = self.consts[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[1], np.float32)
        self.add(Linear, node, name, node.input[:1], np.ascontiguousarray(w), b)

    def _MatMul(self, node, name, a):
        w = self.consts.get(node.input[1])
        if w is not None:
            self.add(Linear, node, name, node.input[:1], w, np.zeros(w.shape[1], np.float32))
        else:
            self.add(MatMul, node, name, node.input[:2])

    def _Add(self, node, name, a):
        const = [t for t in node.input if t in self.consts]
        if not const:
            return self.add(Add, node, name, node.input)
        other = next(t for t in node.input if t not in self.consts)
        prev = self.out[-1] if self.out else None
        if not isinstance(prev, Linear) or self.producer.get(other) != prev.name:
            self.fail(node, name, "a constant is supported only as the bias of the MatMul just before")
        self.out[-1] = Linear(prev.name, prev.weight, prev.bias + self.consts[const[0]].reshape(-1), inputs=prev.inputs)
        self.producer[node.output[0]] = prev.name

    def _Conv(self, node, name, a):
        w = self.consts[node.input[1]]
        dims = w.ndim - 2
        strides, pads = a.get("strides", [1] * dims), a.get("pads", [0] * 2 * dims)
        if a.get("group", 1) != 1 or len(set(strides)) != 1 or len(set(pads)) != 1 or \
                any(d != 1 for d in a.get("dilations", [1] * dims)):
            self.fail(node, name, "only group 1, equal strides and pads, no dilation")
        b = self.consts[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
        self.add(Conv2d if dims == 2 else Conv1d, node, name, node.input[:1], w, b,
                 stride=int(strides[0]), padding=int(pads[0]))

    def _Relu(self, node, name, a):
        self.add(ReLU, node, name, node.input)

    def _Gelu(self, node, name, a):
        if a.get("approximate", b"none") not in (b"none", "none"):
            self.fail(node, name, "only the exact (erf) form is supported")
        self.add(GELU, node, name, node.input)

    def _Softmax(self, node, name, a):
        if a.get("axis", -1) != -1:
            self.fail(node, name, "only axis -1 is supported")
        self.add(Softmax, node, name, node.input)

    def _LayerNormalization(self, node, name, a):
        if a.get("axis", -1) != -1 or len(node.input) < 3:
            self.fail(node, name, "only axis -1 with scale and bias is supported")
        self.add(LayerNorm, node, name, node.input[:1], weight=self.consts[node.input[1]],
                 bias=self.consts[node.input[2]], eps=float(a.get("epsilon", 1e-5)))

    def _MaxPool(self, node, name, a):
        k, s = a.get("kernel_shape", [2, 2]), a.get("strides", a.get("kernel_shape", [2, 2]))
        if len(set(k)) != 1 or list(s) != list(k) or any(a.get("pads", [0])):
            self.fail(node, name, "only square, non-overlapping, unpadded pooling")
        self.add(MaxPool2d, node, name, node.input, size=int(k[0]))

    def _GlobalAveragePool(self, node, name, a):
        self.add(AvgPool, node, name, node.input)

    def _Flatten(self, node, name, a):
        self.add(Flatten, node, name, node.input)
