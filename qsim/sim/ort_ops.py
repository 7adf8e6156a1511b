"""The ONNX operators qsim runs, by (domain, op type): each reads its node's attributes and
inputs as ONNX Runtime's CPU kernel does and calls the arithmetic in ort_kernels.py or qsim's
datapath primitives. Each takes (ctx, *inputs), ctx being qsim.sim.onnx_graph.Ctx, and
returns its output or a tuple of outputs; an omitted optional input arrives as None."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..datapaths.conv import int_conv
from ..datapaths.integer import activation_range, qlinear_conv, qlinear_matmul, requantize_accumulator
from ..formats import FloatFormat, format as get_format
from . import ort_kernels as K

F32 = np.float32
MS = "com.microsoft"
OPS: dict = {}


def op(*names: str, domain: str = ""):
    def register(fn):
        for name in names:
            OPS[(domain, name)] = fn
        return fn
    return register


# -- tensor types ------------------------------------------------------------------------------------
def qformat(dtype):
    """The qsim format of quantized codes of this numpy dtype (None: int32, a wide integer)."""
    name = np.dtype(dtype).name
    if name == "int32":
        return None
    try:
        return get_format(name)
    except (KeyError, ValueError):
        raise TypeError(f"{name} is not a quantized type qsim models") from None


def as_dtype(codes: np.ndarray, dtype) -> np.ndarray:
    """Codes from the kernels in the tensor's ONNX element type (ml_dtypes for int4, float8)."""
    dtype = np.dtype(dtype)
    if isinstance(qformat(dtype), FloatFormat):
        return np.asarray(codes, np.uint8).view(dtype)
    return np.asarray(codes).astype(dtype)


def ints(x) -> np.ndarray:
    """Integer codes of any integer tensor (int4 included) as plain numpy integers."""
    x = np.asarray(x)
    return x.astype(np.int8 if x.dtype.name == "int4" else np.uint8) if x.dtype.name in ("int4", "uint4") else x


def _onnx_dtype(elem_type: int) -> np.dtype:
    from onnx import helper
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


def _granularity(ctx, x, scale, default_axis: int = 1):
    """(axis, block) of a Q/DQ node's scale: per tensor, per axis or blocked (opset 21)."""
    s = np.asarray(scale)
    block = ctx.attr("block_size", 0)
    if s.size == 1 and s.ndim <= 1 and not block:
        return None, None
    axis = ctx.attr("axis", default_axis)
    if not -x.ndim <= axis < x.ndim:
        ctx.fail(f"axis {axis} is out of range for an input of rank {x.ndim}")
    axis %= x.ndim
    if block:
        want = list(x.shape)
        want[axis] = -(-x.shape[axis] // block)
        if list(s.shape) != want:
            ctx.fail(f"blocked scale must have shape {tuple(want)} for block_size {block}, got {s.shape}")
        return axis, int(block)
    if s.ndim != 1 or s.shape[0] != x.shape[axis]:
        ctx.fail(f"per-axis scale must have shape ({x.shape[axis]},) along axis {axis}, got {s.shape}")
    return axis, None


# -- quantization -------------------------------------------------------------------------------------
@op("QuantizeLinear")
@op("QuantizeLinear", domain=MS)
def _quantize_linear(ctx, x, scale, zero=None):
    if zero is not None:
        dtype = zero.dtype
    else:
        dtype = _onnx_dtype(ctx.attr("output_dtype", 0)) if ctx.attr("output_dtype", 0) else np.dtype(np.uint8)
    if np.asarray(x).dtype != F32:
        ctx.fail(f"input x must be float32, got {np.asarray(x).dtype}")
    axis, block = _granularity(ctx, x, scale)
    fmt = qformat(dtype)
    z = 0 if zero is None or isinstance(fmt, FloatFormat) else ints(zero).astype(np.int64)
    q = K.quantize_linear(x, scale, z, fmt, axis, block, bool(ctx.attr("saturate", 1)))
    return as_dtype(q, dtype)


@op("DequantizeLinear")
@op("DequantizeLinear", domain=MS)
def _dequantize_linear(ctx, x, scale, zero=None):
    axis, block = _granularity(ctx, x, scale)
    fmt = qformat(x.dtype)
    z = 0 if zero is None or isinstance(fmt, FloatFormat) else ints(zero).astype(np.int64)
    codes = np.asarray(x).view(np.uint8) if isinstance(fmt, FloatFormat) else ints(x)
    return K.dequantize_linear(codes, scale, z, fmt, axis, block)


@op("DynamicQuantizeLinear")
def _dynamic_quantize_linear(ctx, x):
    q, scale, zero = K.dynamic_quantize_linear(x)
    return q.astype(np.uint8), np.asarray(scale, F32), np.asarray(zero, np.uint8)


# -- integer matrix products and convolutions ----------------------------------------------------------
def _scalar_zero(ctx, z, what: str) -> np.ndarray:
    if z is None:
        return np.asarray(0, np.int64)
    z = np.asarray(z)
    if z.size != 1:
        ctx.fail(f"{what} must be one value (per-row zero points are not modelled), got shape {z.shape}")
    return z.reshape(())


def _column_param(ctx, p, n: int, what: str):
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    if p.shape != (n,):
        ctx.fail(f"{what} must be a scalar or have shape ({n},), got {p.shape}")
    return p


def _batched(fn, a, b):
    """fn(a2, b2) over b's batch dimensions (qsim's primitives take a 2-D b)."""
    if b.ndim == 2:
        return fn(a, b)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    return np.stack([fn(a[i], b[i]) for i in np.ndindex(*batch)]).reshape(batch + (a.shape[-2], b.shape[-1]))


def _promote(a, b):
    """MatMul's 1-D operands: a (K,) becomes (1, K), b (K,) becomes (K, 1); squeezed after."""
    squeeze = []
    if a.ndim == 1:
        a, squeeze = a[None, :], squeeze + [-2]
    if b.ndim == 1:
        b, squeeze = b[:, None], squeeze + [-1]
    return a, b, tuple(squeeze)


def _requantized(ctx, acc, sa, sb, sy, zy, bias=None):
    """An accumulator requantized as the datapath does (qsim's requantize_accumulator)."""
    fmt = qformat(np.asarray(zy).dtype)
    zy_int = int(np.asarray(ints(zy)).reshape(()))
    lo, hi = activation_range(None, sy, zy_int, fmt)
    y, _ = requantize_accumulator(acc, None, bias, F32(np.asarray(sa).reshape(())), np.asarray(sb, F32),
                                  F32(np.asarray(sy).reshape(())), zy_int, lo, hi, ctx.datapath, fmt)
    return y.astype(np.asarray(zy).dtype)


@op("QLinearMatMul")
def _qlinear_matmul(ctx, a, sa, za, b, sb, zb, sy, zy):
    a, b, squeeze = _promote(ints(a), ints(b))
    n = b.shape[-1]
    sb, zb = _column_param(ctx, sb, n, "b_scale"), _column_param(ctx, ints(zb), n, "b_zero_point")
    za = _scalar_zero(ctx, za, "a_zero_point")
    if b.ndim == 2:
        y = _requantized(ctx, K.int_product(a, b, za, zb, ctx.datapath.accumulator, _packed(ctx, 3, b)), sa, sb, sy, zy)
    else:
        y = _batched(lambda a2, b2: qlinear_matmul(a2, sa, za, b2, sb, zb, sy, np.asarray(zy).reshape(()),
                                                   datapath=ctx.datapath), a, b)
    return y.squeeze(squeeze).astype(zy.dtype) if squeeze else y.astype(zy.dtype)


def _packed(ctx, i: int, b):
    """B of a product packed for the compiled 8-bit kernel, once where it is a 2-D constant."""
    return ctx.prepacked(i, K.pack_b, b) if b.ndim == 2 and b.dtype.itemsize == 1 else None


def _int_product(ctx, a, b, za, zb, dtype=np.int64):
    """The accumulators of a @ b (B is input 1) on the datapath's accumulator, in dtype."""
    packed = _packed(ctx, 1, ints(b))
    a, b, squeeze = _promote(ints(a), ints(b))
    zb = np.asarray(0, np.int64) if zb is None else _column_param(ctx, ints(zb), b.shape[-1], "b_zero_point")
    za = _scalar_zero(ctx, za, "a_zero_point")
    if b.ndim == 2:
        acc = K.int_product(a, b, za, zb, ctx.datapath.accumulator, packed, dtype)
    else:
        from ..datapaths.accumulate import int_matmul
        acc = int_matmul(a, b, za, zb, ctx.datapath.accumulator).astype(dtype)
    return acc.squeeze(squeeze) if squeeze else acc


@op("MatMulInteger")
def _matmul_integer(ctx, a, b, za=None, zb=None):
    return _int_product(ctx, a, b, za, zb).astype(np.int32)


def conv_attrs(ctx, x_shape, w_shape) -> dict:
    """Stride, padding (ONNX begins then ends), dilation and groups of a Conv-like node;
    auto_pad resolved as ONNX defines it."""
    dims = len(w_shape) - 2
    kernel = tuple(ctx.attr("kernel_shape", w_shape[2:]))
    if tuple(kernel) != tuple(w_shape[2:]):
        ctx.fail(f"kernel_shape {kernel} does not match the weights {tuple(w_shape)}")
    strides = tuple(ctx.attr("strides", [1] * dims))
    dilations = tuple(ctx.attr("dilations", [1] * dims))
    pads = tuple(ctx.attr("pads", [0] * 2 * dims))
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        pads = _auto_pads(auto, x_shape[2:], kernel, strides, dilations)
    elif auto != "NOTSET":
        ctx.fail(f"unknown auto_pad {auto!r}")
    return dict(stride=strides, padding=pads, dilation=dilations, groups=int(ctx.attr("group", 1)))


def _auto_pads(auto, spatial, kernel, strides, dilations) -> tuple:
    if auto == "VALID":
        return (0,) * (2 * len(spatial))
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return tuple(begins + ends)


@op("QLinearConv")
def _qlinear_conv(ctx, x, sx, zx, w, sw, zw, sy, zy, bias=None):
    x, w = ints(x), ints(w)
    c_out = w.shape[0]
    sw, zw = _column_param(ctx, sw, c_out, "w_scale"), _column_param(ctx, ints(zw), c_out, "w_zero_point")
    attrs = conv_attrs(ctx, x.shape, w.shape)
    y = qlinear_conv(x, sx, _scalar_zero(ctx, zx, "x_zero_point"), w, sw, zw, sy, np.asarray(zy).reshape(()),
                     None if bias is None else np.asarray(bias),
                     datapath=K.mlas_conv_datapath(ctx.datapath, w.shape, attrs["groups"], ctx.const[3]),
                     channels_last=True,             # MLAS runs QLinearConv NHWC (ConvInteger NCHW)
                     **attrs)
    return y.astype(zy.dtype)


@op("ConvInteger")
def _conv_integer(ctx, x, w, zx=None, zw=None):
    x, w = ints(x), ints(w)
    zw = np.asarray(0, np.int64) if zw is None else _column_param(ctx, ints(zw), w.shape[0], "w_zero_point")
    a = conv_attrs(ctx, x.shape, w.shape)
    # ORT's ConvInteger sums u8 x s8 products exactly even where MLAS's GEMMs saturate pairs
    # (measured on onnxruntime 1.32, AVX2 without VNNI)
    exact = replace(ctx.datapath.accumulator, pair_saturate16=False)
    acc = int_conv(x, w, _scalar_zero(ctx, zx, "x_zero_point"), zw, a["stride"], a["padding"], a["dilation"],
                   a["groups"], exact)
    return acc.astype(np.int32)


def _gemm_operands(ctx, a, b):
    a = a.T if ctx.attr("transA", 0) else a
    b = b.T if ctx.attr("transB", 0) else b
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


@op("QGemm", domain=MS)
def _qgemm(ctx, a, sa, za, b, sb, zb, c=None, sy=None, zy=None):
    a, b = _gemm_operands(ctx, ints(a), ints(b))
    n = b.shape[1]
    alpha = F32(ctx.attr("alpha", 1.0))
    sa = F32(alpha * F32(np.asarray(sa).reshape(())))          # ORT: (alpha * a_scale) * b_scale [/ y_scale]
    sb, zb = _column_param(ctx, sb, n, "b_scale"), _column_param(ctx, ints(zb), n, "b_zero_point")
    za = _scalar_zero(ctx, za, "a_zero_point")
    bias = None
    if c is not None:
        c = np.asarray(c)
        if c.size != 1 and c.shape not in ((n,), (1, n)):
            ctx.fail(f"bias C of shape {c.shape} is not modelled; (N,) or a scalar")
        bias = np.broadcast_to(c.reshape(-1), (n,)).astype(np.int32)
    acc = K.int_product(a, b, za, zb, ctx.datapath.accumulator)
    if sy is not None:
        return _requantized(ctx, acc, sa, sb, sy, zy, bias)
    if bias is not None:
        acc = ctx.datapath.accumulator.fit(acc + bias.astype(np.int64))
    return K.scale_output(acc, F32(sa * np.asarray(sb, F32)))


@op("MatMulIntegerToFloat", domain=MS)
def _matmul_integer_to_float(ctx, a, b, sa, sb, za=None, zb=None, bias=None):
    small = ctx.datapath.accumulator.bits <= 32                # int32 holds every value
    acc = _int_product(ctx, a, b, za, zb, np.int32 if small else np.int64)
    return K.scale_output(acc, K.product_scale(sa, sb), bias)


@op("DynamicQuantizeMatMul", domain=MS)
def _dynamic_quantize_matmul(ctx, a, b, sb, zb=None, bias=None):
    q, sa, za = K.dynamic_quantize_linear(a)
    return _matmul_integer_to_float(ctx, q, b, sa, sb, za, zb, bias)


# -- float matrix products and convolutions --------------------------------------------------------------
@op("Gemm")
def _gemm(ctx, a, b, c=None):
    ta, tb = bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0))
    a2, b2 = (a.T if ta else a), (b.T if tb else b)
    alpha, beta = F32(ctx.attr("alpha", 1.0)), F32(ctx.attr("beta", 1.0))
    bias = None if c is None or beta == 0 else (np.asarray(c, F32) * beta if beta != 1 else np.asarray(c, F32))
    return K.sgemm(a2, b2, trans_a=ta, trans_b=tb, alpha=alpha, c=bias, packed_b=ctx.const[1])


@op("MatMul")
def _matmul(ctx, a, b):
    a, b, squeeze = _promote(np.asarray(a, F32), np.asarray(b, F32))
    if b.ndim == 2 and a.ndim > 2:          # ORT folds A's batch into its rows against a 2-D B
        y = K.sgemm(a.reshape(-1, a.shape[-1]), b, packed_b=ctx.const[1]).reshape(a.shape[:-1] + (b.shape[1],))
    else:
        y = K.sgemm(a, b, packed_b=ctx.const[1] and b.ndim == 2)
    return y.squeeze(squeeze) if squeeze else y


@op("Conv")
def _conv(ctx, x, w, b=None):
    a = conv_attrs(ctx, x.shape, w.shape)
    return K.conv(x, w, b, a["stride"], a["padding"], a["dilation"], a["groups"])


# -- float elementwise -----------------------------------------------------------------------------------
def _binary(fn):
    def run(ctx, a, b):
        return fn(np.asarray(a), np.asarray(b))
    return run


op("Add")(_binary(np.add))
op("Sub")(_binary(np.subtract))
op("Mul")(_binary(np.multiply))
op("Equal")(_binary(np.equal))
op("Less")(_binary(np.less))
op("Greater")(_binary(np.greater))
op("And")(_binary(np.logical_and))
op("Or")(_binary(np.logical_or))


@op("Div")
def _div(ctx, a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iu":                       # C++ integer division truncates toward zero
        return (np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(a.dtype)
    return a / b


@op("Relu")
def _relu(ctx, x):
    return np.maximum(x, np.zeros((), x.dtype))


@op("Sigmoid")
def _sigmoid(ctx, x):
    return K.logistic(x)


@op("Erf")
def _erf(ctx, x):
    return K.erf(x)


@op("Sqrt")
def _sqrt(ctx, x):
    return np.sqrt(x)


@op("Neg")
def _neg(ctx, x):
    return -x


@op("Not")
def _not(ctx, x):
    return np.logical_not(x)


@op("Where")
def _where(ctx, cond, a, b):
    return np.where(cond, a, b)


@op("Identity")
def _identity(ctx, x):
    return x


@op("Cast")
def _cast(ctx, x):
    return np.asarray(x).astype(_onnx_dtype(ctx.attr("to")))


@op("Clip")
def _clip(ctx, x, lo=None, hi=None):
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, x.dtype))
    return x


# -- shapes ---------------------------------------------------------------------------------------------------
@op("Reshape")
def _reshape(ctx, x, shape):
    shape = [int(d) for d in shape]
    if not ctx.attr("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


@op("Flatten")
def _flatten(ctx, x):
    axis = ctx.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis               # axis == rank is allowed: (size, 1)
    return x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))


@op("Transpose")
def _transpose(ctx, x):
    return np.ascontiguousarray(np.transpose(x, ctx.attr("perm", None)))


def _axes(ctx, axes_input):
    axes = ctx.attr("axes", None) if axes_input is None else [int(a) for a in axes_input]
    return None if axes is None else tuple(axes)


@op("Squeeze")
def _squeeze(ctx, x, axes=None):
    axes = _axes(ctx, axes)
    return np.squeeze(x, axis=axes) if axes is not None else np.squeeze(x)


@op("Unsqueeze")
def _unsqueeze(ctx, x, axes=None):
    axes = sorted(a % (x.ndim + len(_axes(ctx, axes))) for a in _axes(ctx, axes))
    for a in axes:
        x = np.expand_dims(x, a)
    return x


@op("Concat")
def _concat(ctx, *xs):
    return np.concatenate([np.asarray(x) for x in xs], axis=ctx.attr("axis"))


@op("Gather")
def _gather(ctx, x, index):
    axis = ctx.attr("axis", 0)
    index = np.asarray(index)
    index = np.where(index < 0, index + x.shape[axis], index)
    return np.take(x, index, axis=axis)


@op("Shape")
def _shape(ctx, x):
    return np.asarray(x.shape[ctx.attr("start", 0):ctx.attr("end", None)], np.int64)


@op("Slice")
def _slice(ctx, x, starts, ends, axes=None, steps=None):
    index = [slice(None)] * x.ndim
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(max(min(e, 2 ** 62), -2 ** 62)), int(st))
    return x[tuple(index)]


@op("Expand")
def _expand(ctx, x, shape):
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(int(d) for d in shape))).copy()


@op("ConstantOfShape")
def _constant_of_shape(ctx, shape):
    value = ctx.attr("value", np.zeros(1, F32))
    return np.full(tuple(int(d) for d in shape), np.asarray(value).reshape(-1)[0], np.asarray(value).dtype)


@op("Range")
def _range(ctx, start, limit, delta):
    return np.arange(start, limit, delta).astype(np.asarray(start).dtype)


# -- pooling ----------------------------------------------------------------------------------------------------
def _pool_attrs(ctx, x):
    dims = x.ndim - 2
    kernel = tuple(ctx.attr("kernel_shape"))
    strides = tuple(ctx.attr("strides", [1] * dims))
    pads = tuple(ctx.attr("pads", [0] * 2 * dims))
    if ctx.attr("auto_pad", "NOTSET") != "NOTSET":
        pads = _auto_pads(ctx.attr("auto_pad"), x.shape[2:], kernel, strides, [1] * dims)
    if ctx.attr("ceil_mode", 0) or any(d != 1 for d in ctx.attr("dilations", [1] * dims)):
        ctx.fail("ceil_mode and dilations are not modelled")
    return kernel, strides, pads


@op("MaxPool")
def _max_pool(ctx, x):
    kernel, strides, pads = _pool_attrs(ctx, x)
    windows = K.pool_windows(x.shape, kernel, strides, pads)
    out_shape = tuple(len(w[0]) for w in windows)
    y = np.empty(x.shape[:2] + out_shape, x.dtype)
    for index in np.ndindex(*out_shape):
        box = tuple(slice(windows[d][0][i], windows[d][1][i]) for d, i in enumerate(index))
        y[(slice(None), slice(None)) + index] = x[(slice(None), slice(None)) + box].max(axis=tuple(range(2, x.ndim)))
    return y


@op("AveragePool")
def _average_pool(ctx, x):
    kernel, strides, pads = _pool_attrs(ctx, x)
    return K.average_pool(x, kernel, strides, pads, bool(ctx.attr("count_include_pad", 0)), mlas=ctx.model.opset < 19)


@op("GlobalAveragePool")
def _global_average_pool(ctx, x):
    return K.global_average_pool(x)


@op("GlobalMaxPool")
def _global_max_pool(ctx, x):
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


# -- quantized elementwise and pooling (com.microsoft) -------------------------------------------------------
def _qformat_of(ctx, zero, x=None):
    dtype = np.asarray(zero if zero is not None else x).dtype
    fmt = qformat(dtype)
    if fmt is None or isinstance(fmt, FloatFormat) or fmt.bits != 8:
        ctx.fail(f"{ctx.node.op} takes 8-bit integer tensors, got {dtype}")
    return fmt, dtype


def _z(z) -> int:
    return 0 if z is None else int(np.asarray(ints(z)).reshape(()))


def _s(s) -> np.float32:
    return F32(np.asarray(s, F32).reshape(()))


@op("QLinearAdd", domain=MS)
def _qlinear_add(ctx, a, sa, za, b, sb, zb, sc, zc=None):
    fmt, dtype = _qformat_of(ctx, zc, a)
    return K.qlinear_add(ints(a), _s(sa), _z(za), ints(b), _s(sb), _z(zb), _s(sc), _z(zc), fmt).astype(dtype)


@op("QLinearMul", domain=MS)
def _qlinear_mul(ctx, a, sa, za, b, sb, zb, sc, zc=None):
    fmt, dtype = _qformat_of(ctx, zc, a)
    return K.qlinear_mul(ints(a), _s(sa), _z(za), ints(b), _s(sb), _z(zb), _s(sc), _z(zc), fmt).astype(dtype)


def _lookup(fn):
    def run(ctx, x, sx, zx, sy, zy=None):
        fmt, dtype = _qformat_of(ctx, zy, x)
        table = K.lookup_table(fn(ctx), _s(sx), _z(zx), _s(sy), _z(zy), fmt)
        return K.apply_table(table, x).astype(dtype)
    return run


op("QLinearSigmoid", domain=MS)(_lookup(lambda ctx: K.logistic))


@op("QLinearSoftmax", domain=MS)
def _qlinear_softmax(ctx, x, sx, zx, sy, zy=None):
    opset = int(ctx.attr("opset", ctx.model.opset))
    axis = int(ctx.attr("axis", -1 if opset >= 13 else 1))
    zy = np.zeros((), x.dtype) if zy is None else zy
    return K.qlinear_softmax(x, _s(sx), _s(sy), _z(zy), axis % max(x.ndim, 1), opset)
op("QLinearLeakyRelu", domain=MS)(_lookup(
    lambda ctx: lambda v: np.where(v >= 0, v, (v * F32(ctx.attr("alpha", 0.01))).astype(F32))))


@op("QLinearConcat", domain=MS)
def _qlinear_concat(ctx, sy, zy, *tuples):
    fmt, dtype = _qformat_of(ctx, zy)
    parts = []
    for x, sx, zx in zip(tuples[0::3], tuples[1::3], tuples[2::3]):
        if _s(sx) == _s(sy) and _z(zx) == _z(zy):
            parts.append(ints(x).astype(np.int64))             # same scale and zero point: a copy
        else:
            parts.append(K.apply_table(K.lookup_table(lambda v: v, _s(sx), _z(zx), _s(sy), _z(zy), fmt), x))
    return np.concatenate(parts, axis=ctx.attr("axis")).astype(dtype)


def _channels_first(ctx, x):
    """com.microsoft pooling with channels_last=1 runs on NHWC; qsim computes in NCHW."""
    return np.moveaxis(x, -1, 1) if ctx.attr("channels_last", 0) else x


def _channels_back(ctx, y):
    return np.moveaxis(y, 1, -1) if ctx.attr("channels_last", 0) else y


@op("QLinearAveragePool", domain=MS)
def _qlinear_average_pool(ctx, x, sx, zx, sy, zy=None):
    fmt, dtype = _qformat_of(ctx, zy, x)
    xc = _channels_first(ctx, ints(x))
    kernel, strides, pads = _pool_attrs(ctx, xc)
    y = K.qlinear_average_pool(xc, _s(sx), _z(zx), _s(sy), _z(zy), fmt, kernel, strides, pads,
                               bool(ctx.attr("count_include_pad", 0)))
    return _channels_back(ctx, y).astype(dtype)


@op("QLinearGlobalAveragePool", domain=MS)
def _qlinear_global_average_pool(ctx, x, sx, zx, sy, zy):
    fmt, dtype = _qformat_of(ctx, zy, x)
    y = K.qlinear_global_average_pool(_channels_first(ctx, ints(x)), _s(sx), _z(zx), _s(sy), _z(zy), fmt,
                                      ctx.datapath)
    return _channels_back(ctx, y).astype(dtype)


op("GreaterOrEqual")(_binary(np.greater_equal))
op("LessOrEqual")(_binary(np.less_equal))


@op("GatherElements")
def _gather_elements(ctx, x, index):
    axis = ctx.attr("axis", 0)
    index = np.asarray(index)
    return np.take_along_axis(x, np.where(index < 0, index + x.shape[axis], index), axis=axis)


@op("Softmax")
def _softmax(ctx, x):
    return K.softmax(x, ctx.attr("axis", -1))


@op("LayerNormalization")
def _layer_norm(ctx, x, scale, bias=None):
    if ctx.attr("axis", -1) not in (-1, x.ndim - 1):
        ctx.fail("only normalization over the last axis is modelled")
    return K.layer_norm(x, scale, bias, F32(ctx.attr("epsilon", 1e-5)))


# -- float contrib operators (ORT's fusions produce them) -------------------------------------------------
@op("Gelu", domain=MS)
@op("Gelu")
def _gelu(ctx, x):
    if ctx.attr("approximate", "none") != "none":
        ctx.fail("only the exact (erf) Gelu is modelled")
    return K.gelu(x)


@op("BiasGelu", domain=MS)
def _bias_gelu(ctx, x, bias):
    return K.gelu((np.asarray(x, F32) + np.asarray(bias, F32)).astype(F32))


@op("SkipLayerNormalization", domain=MS)
def _skip_layer_norm(ctx, x, skip, gamma, beta=None, bias=None):
    s = (np.asarray(x, F32) + np.asarray(skip, F32)).astype(F32)
    if bias is not None:
        s = (s + np.asarray(bias, F32)).astype(F32)
    return K.welford_norm(s, gamma, beta, F32(ctx.attr("epsilon", 1e-12)))


@op("FusedMatMul", domain=MS)
def _fused_matmul(ctx, a, b):
    if ctx.attr("transBatchA", 0) or ctx.attr("transBatchB", 0):
        ctx.fail("transBatchA / transBatchB are not modelled")
    ta, tb = bool(ctx.attr("transA", 0)), bool(ctx.attr("transB", 0))
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    a2 = np.swapaxes(a, -1, -2) if ta else a
    b2 = np.swapaxes(b, -1, -2) if tb else b
    return K.sgemm(a2, b2, trans_a=ta, trans_b=tb, alpha=F32(ctx.attr("alpha", 1.0)))
