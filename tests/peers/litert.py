"""LiteRT (TFLite) peer: run one int8 FULLY_CONNECTED node on a chosen kernel path.

The model is built in memory with the flatbuffer schema shipped inside ai_edge_litert
(``ai_edge_litert.schema_py_generated``, object API; file identifier "TFL3", schema
version 3) - no TensorFlow needed.

    y = fully_connected(x, x_scale, x_zp, w, w_scale, bias, y_scale, y_zp,
                        activation=None, path="reference")

path
    "reference"  BUILTIN_REF resolver: reference kernel, no delegate.
    "optimized"  BUILTIN_WITHOUT_DEFAULT_DELEGATES: optimized builtin kernel (ruy GEMM).
    "xnnpack"    BUILTIN: the default XNNPACK delegate. ``NotDelegatedError`` is raised if
                 XNNPACK does not take the node (e.g. requantization scale >= 256, weight
                 zero point != 0), so a test never silently runs the builtin kernel instead.
                 Every new interpreter is checked (``delegated``): the xnnpack path must
                 hold a DELEGATE node producing the FC output, the other paths must not.

Shapes: x int8 [B, K]; w int8 [N, K] (constant, symmetric: zero point 0); w_scale scalar
(per-tensor) or 1-D of length N (per-channel, quantized_dimension 0; a length-1 array is
per-tensor); bias int32 [N] or None (scale float32(x_scale) * float32(w_scale), zero
point 0); output int8 [B, N]. Scales are stored as float32, as in any .tflite file.
num_threads=1. Interpreters are cached per (path, batch, weights, bias, scales, zero
points, activation).

Measured arithmetic (LiteRT 2.3.0, x86-64 AVX-512; see the qsim LiteRT peer report):
reference = std::round(acc * m) in double (ties away); optimized = ruy x86 fixed point,
two roundings toward +inf; xnnpack = float32 multiply, round half to even.
"""
from __future__ import annotations

import hashlib

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as sch
from ai_edge_litert.interpreter import Interpreter, OpResolverType

__all__ = ["fully_connected", "build_fc_model", "make_interpreter", "delegated",
           "NotDelegatedError", "PATHS"]

PATHS = {
    "reference": OpResolverType.BUILTIN_REF,
    "optimized": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "xnnpack": OpResolverType.BUILTIN,
}
_ACT = {
    None: sch.ActivationFunctionType.NONE,
    "relu": sch.ActivationFunctionType.RELU,
    "relu6": sch.ActivationFunctionType.RELU6,
}


class NotDelegatedError(RuntimeError):
    """path="xnnpack" was requested but XNNPACK did not take the FULLY_CONNECTED node."""


def _quant(scale, zero_point, dim=0):
    q = sch.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(np.asarray(scale, dtype=np.float32))]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = dim
    return q


def _tensor(name, shape, ttype, buffer, quant):
    t = sch.TensorT()
    t.name, t.shape, t.type, t.buffer, t.quantization = name, list(shape), ttype, buffer, quant
    return t


def _buffer(arr=None):
    b = sch.BufferT()
    if arr is not None:
        b.data = np.frombuffer(np.ascontiguousarray(arr).tobytes(), dtype=np.uint8)
    return b


def build_fc_model(batch, w, x_scale, x_zp, w_scale, bias, y_scale, y_zp, activation=None):
    """Serialized .tflite bytes: one int8 FULLY_CONNECTED with constant weights/bias."""
    w = np.asarray(w, dtype=np.int8)
    n, k = w.shape
    w_scale = np.asarray(w_scale, dtype=np.float32)
    per_channel = w_scale.ndim == 1
    if per_channel and w_scale.shape != (n,):
        raise ValueError(f"per-channel w_scale must have length N={n}")
    wq = _quant(w_scale, [0] * w_scale.size, 0)
    # Bias scale = x_scale * w_scale (float32 product, as the converter writes it).
    bscale = np.float32(x_scale) * w_scale
    buffers = [_buffer(), _buffer(), _buffer(w), _buffer()]  # 0: sentinel, 1: x, 2: w, 3: y
    tensors = [
        _tensor("x", [batch, k], sch.TensorType.INT8, 1, _quant(x_scale, x_zp)),
        _tensor("w", [n, k], sch.TensorType.INT8, 2, wq),
        _tensor("y", [batch, n], sch.TensorType.INT8, 3, _quant(y_scale, y_zp)),
    ]
    inputs = [0, 1, -1]
    if bias is not None:
        bias = np.asarray(bias, dtype=np.int32)
        if bias.shape != (n,):
            raise ValueError(f"bias must have shape ({n},)")
        buffers.append(_buffer(bias))
        tensors.append(_tensor("b", [n], sch.TensorType.INT32, 4,
                               _quant(bscale, [0] * bscale.size, 0)))
        inputs[2] = 3

    opts = sch.FullyConnectedOptionsT()
    opts.fusedActivationFunction = _ACT[activation]
    opts.weightsFormat = sch.FullyConnectedOptionsWeightsFormat.DEFAULT
    opts.keepNumDims = False

    op = sch.OperatorT()
    op.opcodeIndex = 0
    op.inputs, op.outputs = inputs, [2]
    op.builtinOptionsType = sch.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = opts

    code = sch.OperatorCodeT()
    code.builtinCode = sch.BuiltinOperator.FULLY_CONNECTED
    code.deprecatedBuiltinCode = sch.BuiltinOperator.FULLY_CONNECTED
    code.version = 4  # int8 FULLY_CONNECTED

    sg = sch.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = tensors, [0], [2], [op], "main"

    model = sch.ModelT()
    model.version = 3
    model.description = "qsim litert peer: int8 FULLY_CONNECTED"
    model.operatorCodes, model.subgraphs, model.buffers = [code], [sg], buffers

    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def delegated(interp):
    """True if a delegate kernel took the FULLY_CONNECTED node.

    When a delegate claims nodes, TFLite appends one node named "DELEGATE" (the delegate
    kernel; its inputs/outputs are those of the claimed subgraph) and removes the claimed
    nodes from the execution plan (they stay listed, so NumNodes goes 1 -> 2). A delegate
    that claims nothing adds no node. With a single-op graph, "the FC node was delegated"
    is therefore "a DELEGATE node exists and produces the FC output".
    """
    w = interp._interpreter
    fc_out = None
    for i in range(w.NumNodes()):
        if w.NodeName(i) == "FULLY_CONNECTED":
            fc_out = list(w.NodeOutputs(i))
    return any(w.NodeName(i) == "DELEGATE" and list(w.NodeOutputs(i)) == fc_out
               for i in range(w.NumNodes()))


def make_interpreter(model_bytes, path):
    interp = Interpreter(model_content=model_bytes, num_threads=1,
                         experimental_op_resolver_type=PATHS[path])
    interp.allocate_tensors()
    return interp


_CACHE: dict = {}
_CACHE_MAX = 512


def _key(*parts):
    h = hashlib.sha1()
    for p in parts:
        h.update(repr(p).encode() if not isinstance(p, np.ndarray)
                 else p.dtype.str.encode() + repr(p.shape).encode() + p.tobytes())
        h.update(b"|")
    return h.hexdigest()


def fully_connected(x, x_scale, x_zp, w, w_scale, bias, y_scale, y_zp,
                    activation=None, path="reference"):
    """Run int8 FULLY_CONNECTED on LiteRT; returns int8 [B, N]."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {sorted(PATHS)}")
    if activation not in _ACT:
        raise ValueError("activation must be None, 'relu' or 'relu6'")
    x = np.asarray(x, dtype=np.int8)
    w = np.asarray(w, dtype=np.int8)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError("need x [B, K] and w [N, K]")
    batch = x.shape[0]
    for name, zp in (("x_zp", x_zp), ("y_zp", y_zp)):
        if not -128 <= int(zp) <= 127:
            raise ValueError(f"{name} must be in [-128, 127]")
    w_scale_f = np.asarray(w_scale, dtype=np.float32)
    bias_a = None if bias is None else np.asarray(bias, dtype=np.int32)
    # The batch is part of the key: one interpreter per shape keeps the XNNPACK delegate
    # from re-planning on every resize.
    key = _key(path, batch, w, np.float32(x_scale), int(x_zp), w_scale_f, bias_a,
               np.float32(y_scale), int(y_zp), activation)
    interp = _CACHE.get(key)
    if interp is None:
        model = build_fc_model(batch, w, x_scale, x_zp, w_scale_f, bias_a, y_scale, y_zp,
                               activation)
        try:
            interp = make_interpreter(model, path)
        except RuntimeError as e:
            # XNNPACK claims the node, then fails to build its runtime for configurations
            # it does not support (e.g. requantization scale >= 256).
            if path == "xnnpack" and "XNNPACK" in str(e):
                raise NotDelegatedError(f"XNNPACK rejected the FULLY_CONNECTED node: {e}")
            raise
        if path == "xnnpack" and not delegated(interp):
            raise NotDelegatedError("XNNPACK did not take the FULLY_CONNECTED node")
        if path != "xnnpack" and delegated(interp):
            raise RuntimeError(f"path {path!r} unexpectedly delegated")
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = interp
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()
