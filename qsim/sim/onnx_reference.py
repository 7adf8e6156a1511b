"""The FP32 reference of a quantized ONNX model, and what each tensor of it means in real numbers.

The reference is the same graph with every quantization undone: QuantizeLinear keeps its input
unrounded (x / scale + zero point, an "ideal code", clamped to the type's range only), DequantizeLinear maps it back
exactly, so a Q/DQ pair is the identity and a quantized weight becomes its dequantized value;
the integer operators (QLinearConv, QGemm, MatMulInteger, ...) compute in float64 on ideal codes
as their definitions say, without rounding or accumulator limits. Float operators run
as ONNX Runtime runs them (qsim.sim.ort_ops, in float32). The graph walked is the model as written
(the "ort-unfused" graph), so every tensor name a fused graph keeps has its reference value.

qparams(graph) says which scale and zero point give a quantized tensor its real value; real()
applies them (to codes of a run, or to ideal codes of the reference).
"""

from __future__ import annotations

import numpy as np

from .onnx_graph import Ctx, QuantModel
from .ort_ops import OPS

F64 = np.float64

# (scale, zero point) input positions of each operator's quantized output; DynamicQuantizeLinear
# makes its own (outputs 1 and 2).
OUTPUT_QPARAMS = {"QuantizeLinear": (1, 2), "QLinearConv": (6, 7), "QLinearMatMul": (6, 7), "QGemm": (7, 8),
                  "QLinearAdd": (6, 7), "QLinearMul": (6, 7), "QLinearSigmoid": (3, 4), "QLinearLeakyRelu": (3, 4),
                  "QLinearAveragePool": (3, 4), "QLinearGlobalAveragePool": (3, 4), "QLinearSoftmax": (3, 4),
                  "QLinearConcat": (0, 1)}
# Operators that move codes without changing what they mean: the output keeps the input's parameters.
PASS_THROUGH = {"MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Identity",
                "GlobalMaxPool", "Gather", "Expand", "Concat", "Split"}


def qparams(qm: QuantModel) -> dict:
    """Quantized tensor -> (scale tensor, zero-point tensor or "", axis) in graph qm."""
    found = {}
    for node in qm.nodes:
        if node.op in OUTPUT_QPARAMS:
            s, z = OUTPUT_QPARAMS[node.op]
            if len(node.inputs) > s and node.inputs[s]:
                zero = node.inputs[z] if len(node.inputs) > z else ""
                found[node.outputs[0]] = (node.inputs[s], zero, node.attrs.get("axis", 1) if node.op == "QuantizeLinear"
                                          else 1)
        elif node.op == "DynamicQuantizeLinear":
            found[node.outputs[0]] = (node.outputs[1], node.outputs[2], 1)
        elif node.op in PASS_THROUGH and node.inputs and node.inputs[0] in found:
            for out in node.outputs:
                found[out] = found[node.inputs[0]]
    return found


def _along(p, x, axis: int):
    """A per-tensor or per-axis parameter shaped to broadcast against x."""
    p = np.asarray(p, F64)
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    shape = [1] * np.ndim(x)
    shape[axis % np.ndim(x)] = p.size
    return p.reshape(shape)


def real(x, scale, zero, axis: int = 1) -> np.ndarray:
    """(x - zero) * scale in float64 (x: codes or ideal codes)."""
    x = np.asarray(x).astype(F64)
    z = 0.0 if zero is None else _along(np.asarray(zero).astype(F64), x, axis)
    return (x - z) * _along(scale, x, axis)


def _ideal(x, scale, zero, axis: int = 1) -> np.ndarray:
    """x / scale + zero, unrounded, clamped to the code range of the zero point's type: the clamp
    is part of what a quantized graph means (quantizers drop a Relu before a zero-based uint8
    QuantizeLinear, whose clamp does its work)."""
    z = 0.0 if zero is None else _along(np.asarray(zero).astype(F64), x, axis)
    y = np.asarray(x, F64) / _along(scale, x, axis) + z
    kind = None if zero is None else np.asarray(zero).dtype
    if kind is not None and kind.kind in "iu" and kind.itemsize <= 2:
        info = np.iinfo(kind)
        y = np.clip(y, info.min, info.max)
    elif kind is not None and kind.name in ("int4", "uint4"):
        y = np.clip(y, -8 if kind.name == "int4" else 0, 7 if kind.name == "int4" else 15)
    return y


def _f32(*xs):
    return tuple(None if x is None else np.asarray(x, np.float32) for x in xs)


def _float_op(ctx, op, *args):
    return np.asarray(OPS[("" if op in ("Conv", "AveragePool", "MatMul", "Gemm") else ctx.node.domain, op)](
        ctx, *_f32(*args)), F64)


# -- the operators, on ideal codes ------------------------------------------------------------------
def _quantize(ctx, x, s, z=None):
    return _ideal(x, s, z, ctx.attr("axis", 1))


def _dequantize(ctx, q, s, z=None):
    return real(q, s, z, ctx.attr("axis", 1))


def _dynamic_quantize(ctx, x):
    x = np.asarray(x, F64)
    lo, hi = min(float(x.min(initial=0.0)), 0.0), max(float(x.max(initial=0.0)), 0.0)
    s = (hi - lo) / 255 if hi > lo else 1.0
    z = np.clip(np.rint(-lo / s), 0, 255)
    return x / s + z, np.float32(s), np.uint8(z)


def _matmul_integer(ctx, a, b, za=None, zb=None):
    return np.matmul(real(a, 1.0, za), real(b, 1.0, zb, axis=-1))


def _conv_integer(ctx, x, w, zx=None, zw=None):
    return _float_op(ctx, "Conv", real(x, 1.0, zx), real(w, 1.0, zw, axis=0))


def _qlinear_matmul(ctx, a, sa, za, b, sb, zb, sy, zy=None):
    return _ideal(np.matmul(real(a, sa, za), real(b, sb, zb, axis=-1)), sy, zy)


def _qlinear_conv(ctx, x, sx, zx, w, sw, zw, sy, zy, bias=None):
    xr, wr = real(x, sx, zx), real(w, sw, zw, axis=0)
    y = _float_op(ctx, "Conv", xr, wr)
    if bias is not None:
        b = np.asarray(bias, F64) * float(np.asarray(sx, F64).reshape(())) * np.asarray(sw, F64).reshape(-1)
        y = y + b.reshape((1, -1) + (1,) * (y.ndim - 2))
    return _ideal(y, sy, zy)


def _qgemm(ctx, a, sa, za, b, sb, zb, c=None, sy=None, zy=None):
    ar = real(a, sa, za)
    br = real(b, sb, zb, axis=0 if ctx.attr("transB", 0) else -1)
    ar, br = (ar.T if ctx.attr("transA", 0) else ar), (br.T if ctx.attr("transB", 0) else br)
    y = float(ctx.attr("alpha", 1.0)) * (ar @ br)
    if c is not None:
        y = y + np.asarray(c, F64) * float(np.asarray(sa, F64).reshape(())) * np.asarray(sb, F64).reshape(-1)
    return y if sy is None else _ideal(y, sy, zy)


def _binary(fn):
    def run(ctx, a, sa, za, b, sb, zb, sy, zy=None):
        return _ideal(fn(real(a, sa, za), real(b, sb, zb)), sy, zy)
    return run


def _unary(fn):
    def run(ctx, x, sx, zx, sy, zy=None):
        return _ideal(fn(ctx, real(x, sx, zx)), sy, zy)
    return run


def _softmax(ctx, x):
    axis = ctx.attr("axis", -1)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _leaky(ctx, x):
    return np.where(x >= 0, x, float(ctx.attr("alpha", 0.01)) * x)


def _global_average(ctx, x):
    if ctx.attr("channels_last", 0):
        return x.mean(axis=tuple(range(1, x.ndim - 1)), keepdims=True)
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


def _average_pool(ctx, x):
    if ctx.attr("channels_last", 0):
        ctx.fail("the FP32 reference of a channels-last QLinearAveragePool is not modelled")
    return _float_op(ctx, "AveragePool", x)


def _qlinear_concat(ctx, sy, zy, *triples):
    parts = [real(triples[i], triples[i + 1], triples[i + 2]) for i in range(0, len(triples), 3)]
    return _ideal(np.concatenate(parts, axis=ctx.attr("axis")), sy, zy)


def _matmul_integer_to_float(ctx, a, b, sa, sb, za=None, zb=None, bias=None):
    y = np.matmul(real(a, sa, za), real(b, sb, zb, axis=-1))
    return y if bias is None else y + np.asarray(bias, F64)


def _dynamic_quantize_matmul(ctx, a, b, sb, zb=None, bias=None):
    y = np.matmul(np.asarray(a, F64), real(b, sb, zb, axis=-1))
    return y if bias is None else y + np.asarray(bias, F64)


IDEAL = {"QuantizeLinear": _quantize, "DequantizeLinear": _dequantize, "DynamicQuantizeLinear": _dynamic_quantize,
         "MatMulInteger": _matmul_integer, "ConvInteger": _conv_integer, "QLinearMatMul": _qlinear_matmul,
         "QLinearConv": _qlinear_conv, "QGemm": _qgemm, "QLinearAdd": _binary(np.add), "QLinearMul": _binary(np.multiply),
         "QLinearSigmoid": _unary(lambda ctx, x: 1 / (1 + np.exp(-x))), "QLinearLeakyRelu": _unary(_leaky),
         "QLinearSoftmax": _unary(_softmax), "QLinearGlobalAveragePool": _unary(_global_average),
         "QLinearAveragePool": _unary(_average_pool), "QLinearConcat": _qlinear_concat,
         "MatMulIntegerToFloat": _matmul_integer_to_float, "DynamicQuantizeMatMul": _dynamic_quantize_matmul}


def reference(qm: QuantModel, feeds: dict) -> dict:
    """Every tensor of graph qm (as written, not fused) in the FP32 reference: ideal codes for
    quantized tensors, float64 values for the others; constants included."""
    from ..datapaths.integer import get_datapath
    path = get_datapath("onnxruntime-x86")
    values = dict(qm.consts)
    values.update(feeds)
    for node in qm.nodes:
        args = [None if name == "" else values[name] for name in node.inputs]
        ctx = Ctx(node, path, tuple(name in qm.consts for name in node.inputs), qm)
        ideal = IDEAL.get(node.op)
        try:
            if ideal is not None:
                out = ideal(ctx, *args)
            else:        # a float operator (or one moving codes): float32 in, as ORT computes it
                out = OPS[(node.domain, node.op)](ctx, *(a if a is None or np.asarray(a).dtype != F64 else
                                                         np.asarray(a, np.float32) for a in args))
        except (ValueError, TypeError, IndexError) as e:
            qm.fail(node, f"the FP32 reference: {type(e).__name__}: {e}")
        for name, value in zip(node.outputs, out if isinstance(out, tuple) else (out,)):
            if name:
                values[name] = value
    return values
