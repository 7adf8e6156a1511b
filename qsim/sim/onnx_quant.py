"""Quantized ONNX models run as ONNX Runtime's CPU provider runs them, bit for bit.

A model quantized by onnxruntime.quantization (quantize_static in QDQ or QOperator format,
quantize_dynamic) or written by hand loads into a QuantModel: its nodes, constants, inputs and
outputs, checked (operators qsim models, one opset, some quantization). A path turns it into
the graph ONNX Runtime executes:

- "ort-unfused": a session with GraphOptimizationLevel.ORT_DISABLE_ALL runs the graph as
  written: DequantizeLinear to float32, float operators in float32, QuantizeLinear;
- "ort-default": ORT's default session first fuses QDQ groups into integer kernels (see
  qsim/sim/ort_fusion.py for the rules, measured on onnxruntime 1.32).

execute() walks the graph; integer kernels run on qsim's datapath primitives with one
IntDatapath (default: ONNX Runtime's on this CPU, qsim._cpu.ort_integer_datapath), so the same graph can run on another kernel path or
accumulator. The arithmetic of each operator is in qsim/sim/ort_kernels.py. Needs `onnx`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._cpu import ort_integer_datapath
from ..datapaths.integer import get_datapath
from .onnx_graph import Ctx, GraphInput, Node, OnnxQuantError, QuantModel
from .ort_ops import OPS

PATHS = ("ort-default", "ort-unfused")
DEFAULT_DOMAINS = ("", "ai.onnx")
# Operators that carry quantization: a model with none of them is a float model.
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                 "QGemm", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}         # and every QLinear* operator


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("running ONNX models needs the onnx package: pip install 'qsim[onnx]' (or pip install onnx)") \
            from None
    return onnx


def _attr_value(a):
    from onnx import helper, numpy_helper
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if hasattr(v, "dims"):                        # a TensorProto
        return numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode() for s in v]
    return v


def load_quantized(model) -> QuantModel:
    """A quantized ONNX model (path or onnx.ModelProto) as a QuantModel, checked: one opset per
    domain, only operators qsim models, some quantization. Errors name the node."""
    onnx = _onnx()
    from onnx import numpy_helper
    if isinstance(model, (str, Path)):
        source = str(model)
        try:
            proto = onnx.load(source)
        except Exception as e:      # missing file, or protobuf's DecodeError on a corrupt one
            raise OnnxQuantError(f"cannot read ONNX model {source}: {e}") from None
    elif isinstance(model, onnx.ModelProto):
        source, proto = "<ModelProto>", model
    else:
        raise TypeError(f"model must be a path to an .onnx file or an onnx.ModelProto, got {type(model).__name__}")
    opset = _opset(proto, source)
    graph = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = []
    for i, n in enumerate(graph.node):
        attrs = {a.name: _attr_value(a) for a in n.attribute}
        node = Node(n.name or f"{n.op_type}_{i}", n.op_type, "" if n.domain in DEFAULT_DOMAINS else n.domain,
                    tuple(n.input), tuple(n.output), attrs)
        if node.op == "Constant" and node.domain == "":
            consts[node.outputs[0]] = _constant_value(node, source)
            continue
        nodes.append(node)
    inputs = tuple(_graph_input(v) for v in graph.input if v.name not in consts)
    qm = QuantModel(source, tuple(nodes), consts, inputs, tuple(o.name for o in graph.output), opset,
                    _inferred_shapes(proto) | {name: tuple(np.shape(c)) for name, c in consts.items()})
    _check(qm)
    return qm


def _inferred_shapes(proto) -> dict:
    """Tensor shapes by ONNX shape inference (ORT's fusions test some of them); {} if it fails."""
    from onnx import shape_inference
    try:
        inferred = shape_inference.infer_shapes(proto)
    except Exception:                   # inference is advisory: a model it cannot follow still runs
        return {}
    shapes = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = v.type.tensor_type
        if t.HasField("shape"):
            shapes[v.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                   for d in t.shape.dim)
    return shapes


def _opset(proto, source: str) -> int:
    """The default domain's opset; a model importing it twice at different versions, or a
    domain qsim does not model, is refused."""
    versions = {}
    for imp in proto.opset_import:
        domain = "" if imp.domain in DEFAULT_DOMAINS else imp.domain
        if domain in versions and versions[domain] != imp.version:
            raise OnnxQuantError(f"{source}: mixed opsets: the {domain or 'default'} domain is imported at versions "
                                 f"{versions[domain]} and {imp.version}; re-export the model with one opset")
        versions[domain] = imp.version
    if "" not in versions:
        raise OnnxQuantError(f"{source}: the model imports no default-domain opset")
    for f in proto.functions:
        for imp in f.opset_import:
            if (imp.domain in DEFAULT_DOMAINS) and imp.version != versions[""]:
                raise OnnxQuantError(f"{source}: mixed opsets: function {f.name!r} uses opset {imp.version}, "
                                     f"the graph {versions['']}")
    return versions[""]


def _constant_value(node: Node, source: str) -> np.ndarray:
    a = node.attrs
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in a:
            return np.asarray(a[key], dtype)
    raise OnnxQuantError(f"{source}: {node.label}: only value, value_float(s) and value_int(s) constants are supported")


def _graph_input(v) -> GraphInput:
    from onnx import helper
    t = v.type.tensor_type
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
    if not t.HasField("shape"):
        return GraphInput(v.name, dtype, None)
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim)
    return GraphInput(v.name, dtype, dims)


# Operators introduced or changed after an opset: a node using them needs that opset.
_NEEDS_OPSET = {"block_size": 21, "output_dtype": 21, "saturate": 19}


def _check(qm: QuantModel) -> None:
    known = set(qm.consts) | {i.name for i in qm.inputs} | {""}
    quantized = False
    for node in qm.nodes:
        if (node.domain, node.op) not in OPS:
            domain = f" (domain {node.domain})" if node.domain else ""
            qm.fail(node, f"operator {node.op}{domain} is not modelled by qsim (the operators it runs are listed "
                          "in qsim.sim.onnx_quant.OPS)")
        for name in node.inputs:
            if name not in known:
                qm.fail(node, f"input {name!r} is neither a graph input, a constant nor an earlier node's output "
                              "(nodes must be in topological order)")
        for key, version in _NEEDS_OPSET.items():
            if key in node.attrs and qm.opset < version:
                qm.fail(node, f"attribute {key} needs opset {version}, the model imports opset {qm.opset} "
                              "(mixed opsets)")
        known.update(node.outputs)
        quantized |= node.op in QUANTIZED_OPS or node.op.startswith("QLinear")
    if not quantized:
        raise OnnxQuantError(f"{qm.source}: the model has no quantization (no QuantizeLinear, DequantizeLinear, "
                             "QLinear* or *Integer operator); run float models with qsim.sim.load_onnx")
    missing = [o for o in qm.outputs if o not in known]
    if missing:
        raise OnnxQuantError(f"{qm.source}: graph output {missing[0]!r} is produced by no node")


def prepare(model, path: str = "ort-default") -> QuantModel:
    """The graph a path runs: the model as loaded ("ort-unfused") or as ORT's default session
    rewrites it ("ort-default", qsim/sim/ort_fusion.py)."""
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; choose one of {', '.join(PATHS)}")
    qm = load_quantized(model)
    if path == "ort-default":
        from .ort_fusion import ort_default
        qm = ort_default(qm)
    return qm


# -- running ---------------------------------------------------------------------------------------
def check_feeds(qm: QuantModel, inputs) -> dict:
    """The graph inputs by name from an array (one input) or a dict; names, dtypes and the
    model's fixed dimensions checked."""
    names = [i.name for i in qm.inputs]
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise OnnxQuantError(f"{qm.source}: the model has {len(names)} inputs ({', '.join(names)}); "
                                 "pass a dict of name -> array")
        inputs = {names[0]: inputs}
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise OnnxQuantError(f"{qm.source}: unknown input {unknown[0]!r}; the model's inputs are {', '.join(names)}")
    feeds, bound = {}, {}
    for gi in qm.inputs:
        if gi.name not in inputs:
            raise OnnxQuantError(f"{qm.source}: input {gi.name!r} is missing")
        x = np.asarray(inputs[gi.name])
        if x.dtype != gi.dtype:
            raise OnnxQuantError(f"{qm.source}: input {gi.name!r} must have dtype {gi.dtype}, got {x.dtype}")
        if gi.shape is not None:
            if x.ndim != len(gi.shape):
                raise OnnxQuantError(f"{qm.source}: input {gi.name!r} must have {len(gi.shape)} dimensions "
                                     f"{_dims(gi.shape)}, got shape {x.shape}")
            for axis, (want, got) in enumerate(zip(gi.shape, x.shape)):
                if isinstance(want, int) and want > 0 and want != got:
                    raise OnnxQuantError(f"{qm.source}: input {gi.name!r} must have shape {_dims(gi.shape)}, "
                                         f"got {x.shape} (axis {axis} is {got}, not {want})")
                if isinstance(want, str):
                    if bound.setdefault(want, got) != got:
                        raise OnnxQuantError(f"{qm.source}: input {gi.name!r}: dimension {want!r} is {got} here "
                                             f"but {bound[want]} in another input")
        feeds[gi.name] = x
    return feeds


def _dims(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def execute(qm: QuantModel, inputs, datapath=None, intermediates: bool = False) -> dict:
    """Run the graph on numpy inputs: {output name: array}, and every tensor with intermediates
    (integer codes for quantized tensors, float32 values for float ones)."""
    path = get_datapath(ort_integer_datapath() if datapath is None else datapath)
    values = dict(qm.consts)
    values.update(check_feeds(qm, inputs))
    for node in qm.nodes:
        args = [None if name == "" else values[name] for name in node.inputs]
        ctx = Ctx(node, path, tuple(name in qm.consts for name in node.inputs), qm)
        try:
            out = OPS[(node.domain, node.op)](ctx, *args)
        except OnnxQuantError:
            raise
        except (ValueError, TypeError, IndexError) as e:
            qm.fail(node, f"{type(e).__name__}: {e}")
        out = out if isinstance(out, tuple) else (out,)
        for name, value in zip(node.outputs, out):
            if name:
                values[name] = value
    if intermediates:
        return {k: v for k, v in values.items() if k not in qm.consts}
    return {name: values[name] for name in qm.outputs}


