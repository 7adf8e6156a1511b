"""Runners for ONNX Runtime's integer kernels (CPU execution provider, one thread).

Each runner builds a one-node ONNX model with onnx.helper and runs it. Sessions are cached
per (op, input dtypes and ranks, attributes, constant inputs); every dim is symbolic, so a
new shape reuses the session. Scales and zero points are graph inputs, so new values reuse
it too; a per-channel scale is a rank-1 input and gets its own session.

`const_weights=True` (QLinearMatMul, QLinearConv, MatMulInteger, ConvInteger) makes the
weights, their scale and zero point (and for QLinearConv the bias and the activation zero
point) initializers, as in a deployed model; each distinct constant set gets its own session.
ONNX Runtime pre-packs constant weights and may then pick another kernel.

Arithmetic verified bit-exact on x86-64 (onnxruntime 1.32, AVX-512 VNNI CPU):
acc = sum((a - za) * (b - zb)) [+ bias] in int32, wrapping modulo 2^32; then
y = rne(clamp(float32(acc) * float32(float32(sa * sb) / sy), qmin - zy, qmax - zy)) + zy
with rne = round half to even and a NaN product giving qmin. One exception: QLinearConv
with uint8 x, constant int8 w whose zero points are all 0 and a constant x zero point
(MLAS "ConvSym"; per its source: group 1 with M >= 16 and M, C multiples of 4, or depthwise
with a multiple of 16 groups) sums the raw x * w products with int32 saturation, in order,
before the zero-point and bias correction. QuantizeLinear: saturate(rne(x / scale) + zp),
a true float32 division, NaN -> qmin.
"""

from functools import cache

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

OPSET = 21


def _onnx_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


@cache
def _session(op: str, inputs: tuple, out: tuple, attrs: tuple, consts: tuple):
    """inputs: (name, dtype, rank) per ONNX input, or None for an omitted optional one;
    out: (dtype, rank); consts: (name, dtype, shape, bytes) of the inputs that are
    initializers instead of graph inputs."""
    const_names = {c[0] for c in consts}
    names = [spec[0] if spec else "" for spec in inputs]
    while names and names[-1] == "":
        names.pop()
    graph_inputs = []
    for spec in inputs:
        if spec and spec[0] not in const_names:
            name, dtype, rank = spec
            dims = [f"{name}_d{i}" for i in range(rank)]  # symbolic: any shape reuses the session
            graph_inputs.append(helper.make_tensor_value_info(name, _onnx_type(dtype), dims))
    initializers = [onnx.numpy_helper.from_array(
                        np.frombuffer(raw, dtype).reshape(shape), name)
                    for name, dtype, shape, raw in consts]
    node = helper.make_node(op, names, ["y"], **dict(attrs))
    graph = helper.make_graph([node], op, graph_inputs,
                              [helper.make_tensor_value_info("y", _onnx_type(out[0]),
                                                             [f"y_d{i}" for i in range(out[1])])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _run(op: str, out_dtype, feeds: list, attrs: dict | None = None, const: tuple = (),
         out_rank: int | None = None):
    """feeds: [(onnx input name, value or None)] in the op's input order; the names in
    `const` become initializers. The output rank defaults to the first input's."""
    arrays = [(name, None if v is None else np.asarray(v, order="C")) for name, v in feeds]
    inputs = tuple(None if v is None else (name, v.dtype.str, v.ndim) for name, v in arrays)
    consts = tuple((name, v.dtype.str, v.shape, v.tobytes())
                   for name, v in arrays if v is not None and name in const)
    attrs = tuple(sorted((k, v) for k, v in (attrs or {}).items() if v is not None))
    out = (np.dtype(out_dtype).str, arrays[0][1].ndim if out_rank is None else out_rank)
    session = _session(op, inputs, out, attrs, consts)
    return session.run(None, {name: v for name, v in arrays
                              if v is not None and name not in const})[0]


def _f32(x) -> np.ndarray:
    return np.asarray(x, np.float32)


def _conv_attrs(strides, pads, dilations, group) -> dict:
    tup = lambda v: None if v is None else tuple(int(i) for i in v)
    return dict(strides=tup(strides), pads=tup(pads), dilations=tup(dilations), group=int(group))


def qlinear_matmul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, *, const_weights=False):
    """QLinearMatMul: y = quantize(dequantize(a) @ dequantize(b)) with ONNX Runtime's kernel.

    a: uint8/int8 [M, K] or [batch, M, K]; b: uint8/int8 [K, N]; b_scale and b_zp scalar
    (per tensor) or shape [N] (per output column). Scales float32; zero points have the
    dtype of their tensor; the output has y_zp's dtype."""
    feeds = [("a", a), ("a_scale", _f32(a_scale)), ("a_zero_point", a_zp),
             ("b", b), ("b_scale", _f32(b_scale)), ("b_zero_point", b_zp),
             ("y_scale", _f32(y_scale)), ("y_zero_point", y_zp)]
    const = ("b", "b_scale", "b_zero_point") if const_weights else ()
    return _run("QLinearMatMul", np.asarray(y_zp).dtype, feeds, const=const,
                out_rank=max(np.ndim(a), np.ndim(b)))


def qlinear_conv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias=None,
                 strides=None, pads=None, dilations=None, group=1, *, const_weights=False):
    """QLinearConv: y = quantize(conv(dequantize(x), dequantize(w)) + bias * x_scale * w_scale).

    x: uint8/int8 NCW or NCHW; w: uint8/int8 [M, C/group, kW] or [M, C/group, kH, kW];
    w_scale / w_zp scalar or shape [M] (per output channel); bias int32 [M] or None.
    pads is ONNX's [begin..., end...]. The output has y_zp's dtype."""
    feeds = [("x", x), ("x_scale", _f32(x_scale)), ("x_zero_point", x_zp),
             ("w", w), ("w_scale", _f32(w_scale)), ("w_zero_point", w_zp),
             ("y_scale", _f32(y_scale)), ("y_zero_point", y_zp),
             ("B", None if bias is None else np.asarray(bias, np.int32))]
    const = ("x_zero_point", "w", "w_scale", "w_zero_point", "B") if const_weights else ()
    return _run("QLinearConv", np.asarray(y_zp).dtype, feeds,
                _conv_attrs(strides, pads, dilations, group), const)


def matmul_integer(a, b, a_zp=None, b_zp=None, *, const_weights=False):
    """MatMulInteger: int32 (a - a_zp) @ (b - b_zp). a: uint8/int8 [..., M, K];
    b: uint8/int8 [K, N]; a_zp scalar, b_zp scalar or shape [N]."""
    feeds = [("A", a), ("B", b), ("a_zero_point", a_zp), ("b_zero_point", b_zp)]
    const = ("B", "b_zero_point") if const_weights else ()
    return _run("MatMulInteger", np.int32, feeds, const=const, out_rank=max(np.ndim(a), np.ndim(b)))


def conv_integer(x, w, x_zp=None, w_zp=None, strides=None, pads=None, dilations=None,
                 group=1, *, const_weights=False):
    """ConvInteger: int32 conv(x - x_zp, w - w_zp). Layouts as in qlinear_conv."""
    feeds = [("x", x), ("w", w), ("x_zero_point", x_zp), ("w_zero_point", w_zp)]
    const = ("w", "w_zero_point") if const_weights else ()
    return _run("ConvInteger", np.int32, feeds,
                _conv_attrs(strides, pads, dilations, group), const)


def quantize_linear(x, scale, zp, axis=None):
    """QuantizeLinear: saturate(round_half_even(x / scale) + zp) for float32 x.

    scale float32 and zp uint8/int8, both scalar (per tensor) or 1-D along `axis`.
    The output has zp's dtype."""
    feeds = [("x", _f32(x)), ("y_scale", _f32(scale)), ("y_zero_point", np.asarray(zp))]
    return _run("QuantizeLinear", np.asarray(zp).dtype, feeds, dict(axis=axis))
