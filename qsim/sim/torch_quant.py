"""Run quantized PyTorch models with qsim's kernels, bit for bit.

run_torch(module, inputs) walks a converted model — eager mode (torch.ao.quantization.convert,
traced with torch.fx) or FX (convert_fx), static or dynamic — node by node and carries out
each one in numpy with the parameters read from the quantized modules (scale, zero point,
weights through .weight(), bias):

- Quantize / quantize_per_tensor, DeQuantize / dequantize (qsim.quant.intquant, torch's rule);
- quantized Linear, Conv1d, Conv2d and their ReLU fusions (qlinear_matmul, qlinear_conv on the
  datapath; by default the engine's: fbgemm-vnni / fbgemm-avx2 or qnnpack);
- dynamic Linear and LinearReLU (qlinear_dynamic);
- add, add_relu, cat (QFunctional, FX, torch.cat), ReLU, max / average / adaptive average
  pooling, flatten / reshape / view (qsim.datapaths.torch_cpu).

The engine (torch.backends.quantized.engine by default; "fbgemm" or "qnnpack") picks the
kernels; the model must have been converted under it. ATen's kernels depend on the memory
layout (quantized convolutions write channels last) and on the CPU's vector width and torch's
thread count (AtenCPU), so every tensor carries its layout. A node qsim does not model, or a
float module left in the graph, is an error that names the node. Needs torch.
"""

from __future__ import annotations

import functools
import operator
import os
import weakref
from dataclasses import dataclass, replace

import numpy as np

from ..datapaths import torch_cpu
from .._cpu import cpu_flags
from ..datapaths.integer import get_datapath, qlinear_conv, qlinear_dynamic, qlinear_matmul, quantize_bias

ENGINES = ("fbgemm", "qnnpack")
F32 = np.float32


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("running PyTorch models needs torch (pip install qsim[oracles] or torch)") from None
    return torch


@dataclass(frozen=True)
class QuantizedTensor:
    """A quantized tensor: integer codes in logical (N, C, ...) order and its parameters.

    scale / zero_point: per tensor, or arrays along `axis` per channel. channels_last: the
    channel axis is innermost in memory (what quantized convolutions write)."""

    codes: np.ndarray
    scale: float | np.ndarray
    zero_point: int | np.ndarray
    dtype: str = "quint8"
    axis: int | None = None
    channels_last: bool = False

    def values(self) -> np.ndarray:
        """The dequantized float32 values, as tensor.dequantize() computes them."""
        if self.axis is None:
            return torch_cpu.dequantize(self.codes, self.scale, self.zero_point)
        shape = [1] * self.codes.ndim
        shape[self.axis] = -1
        return torch_cpu.dequantize(self.codes, np.reshape(self.scale, shape), np.reshape(self.zero_point, shape))

    @property
    def shape(self) -> tuple:
        return self.codes.shape


@dataclass(frozen=True)
class _Float:
    """A float32 tensor inside the walk, with its memory layout (dequantize keeps it)."""

    values: np.ndarray
    channels_last: bool = False

    @property
    def shape(self) -> tuple:
        return self.values.shape


class UnsupportedNode(ValueError):
    """A node of the model that qsim does not model."""


# -- memory layout: torch's stride rules ------------------------------------------------------------
def _strides(shape: tuple, channels_last: bool) -> tuple:
    order = (0, *range(2, len(shape)), 1) if channels_last and len(shape) >= 3 else tuple(range(len(shape)))
    strides, step = [0] * len(shape), 1
    for d in reversed(order):
        strides[d] = step
        step *= shape[d]
    return tuple(strides)


def _contiguous_channels_last(shape: tuple, channels_last: bool) -> bool:
    """tensor.is_contiguous(memory_format=torch.channels_last) for a 4-D tensor."""
    if len(shape) != 4:
        return False
    strides, expected = _strides(shape, channels_last), 1
    for d in (1, 3, 2, 0):
        if shape[d] != 1:
            if strides[d] != expected:
                return False
            expected *= shape[d]
    return True


def _suggest_channels_last(shape: tuple, channels_last: bool) -> bool:
    """tensor.suggest_memory_format() == torch.channels_last (c10's is_channels_last_strides_2d)."""
    if len(shape) != 4:
        return False
    strides = _strides(shape, channels_last)
    if strides[1] == 0:
        return False
    low = 0
    for d in (1, 3, 2, 0):
        if shape[d] == 0 or strides[d] < low or d == 0 and low == strides[1]:
            return False
        low = strides[d] * (shape[d] if shape[d] > 1 else 1)
    return True


def _memory_order(t) -> np.ndarray:
    """The codes or values flattened in memory order."""
    data = t.codes if isinstance(t, QuantizedTensor) else t.values
    return (np.moveaxis(data, 1, -1) if t.channels_last and data.ndim >= 3 else data).reshape(-1)


def _from_memory_order(flat: np.ndarray, shape: tuple, channels_last: bool) -> np.ndarray:
    if channels_last and len(shape) >= 3:
        moved = (shape[0], *shape[2:], shape[1])
        return np.ascontiguousarray(np.moveaxis(flat.reshape(moved), -1, 1))
    return flat.reshape(shape)


# -- the engine's kernels -------------------------------------------------------------------------
@functools.cache
def engine_datapath(engine: str) -> str:
    """The integer datapath preset of PyTorch's quantized linear and convolution on this CPU:
    qnnpack; fbgemm with VNNI (VPDPBUSD, exact sums) where the CPU has AVX512-VNNI and
    FBGEMM_ENABLE_INSTRUCTIONS does not force an older set, else fbgemm's saturating path."""
    if engine == "qnnpack":
        return "qnnpack"
    forced = os.environ.get("FBGEMM_ENABLE_INSTRUCTIONS", "").upper()
    return "fbgemm-vnni" if "avx512_vnni" in cpu_flags() and (not forced or "VNNI" in forced) else "fbgemm-avx2"


@functools.cache
def _capability() -> str:
    capability = _torch().backends.cpu.get_cpu_capability()
    if capability not in torch_cpu.CAPABILITIES:
        raise ValueError(f"torch runs its {capability} kernels here; qsim models {torch_cpu.CAPABILITIES} only")
    return capability


def aten_cpu() -> torch_cpu.AtenCPU:
    """torch's CPU capability and current thread count, as AtenCPU."""
    return torch_cpu.AtenCPU(_capability(), _torch().get_num_threads())


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _number(value) -> float | int:
    """A Python number from a float, an int or a one-element tensor / array."""
    if hasattr(value, "item"):
        return value.item()
    return value


def _tensor_qparams(t) -> tuple:
    """(codes, scale, zero, dtype, axis) of a quantized torch tensor."""
    torch = _torch()
    codes = t.int_repr().numpy().copy()
    if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return codes, F32(t.q_scale()), int(t.q_zero_point()), _dtype_name(t.dtype), None
    return (codes, t.q_per_channel_scales().numpy().astype(F32), t.q_per_channel_zero_points().numpy().astype(np.int64),
            _dtype_name(t.dtype), int(t.q_per_channel_axis()))


# -- the walk ----------------------------------------------------------------------------------------
class _Run:
    def __init__(self, gm, engine: str, datapath, cpu):
        self.gm, self.engine, self.cpu = gm, engine, cpu
        self.datapath = get_datapath(datapath)
        self.node = None

    def fail(self, why: str):
        node = self.node
        raise UnsupportedNode(f"node {node.name!r} ({node.op} {_target_name(node.target)}): {why}")

    def quantized(self, value, what: str = "input") -> QuantizedTensor:
        if not isinstance(value, QuantizedTensor):
            self.fail(f"expects a quantized {what}, got a float tensor; is the model converted?")
        if value.axis is not None or value.dtype not in torch_cpu.QUANTIZED_DTYPES:
            self.fail(f"expects a per-tensor quint8 or qint8 {what}, got {value.dtype} per channel")
        return value

    def module(self, target: str):
        try:
            return self.gm.get_submodule(target)
        except AttributeError:
            self.fail(f"the model has no submodule {target!r}")


def _target_name(target) -> str:
    if isinstance(target, str):
        return target
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)


def run_torch(module, inputs, intermediates: bool = False, *, engine: str | None = None, datapath=None,
              cpu: torch_cpu.AtenCPU | None = None):
    """Run a quantized torch module on `inputs` (an array or tensor, or a tuple of them, one per
    forward argument) with qsim's kernels. Returns the outputs as the module structures them:
    float outputs as float32 arrays, quantized ones as QuantizedTensor; with intermediates,
    also {node name: value} for every node.

    engine: "fbgemm" or "qnnpack" (default: torch.backends.quantized.engine). datapath: the
    integer datapath of linear and convolution layers (default engine_datapath(engine)); any
    IntDatapath runs the model on another kernel path. cpu: ATen's facts (default: this torch).
    """
    torch = _torch()
    engine = engine or torch.backends.quantized.engine
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not modelled; choose one of {ENGINES}")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    gm = module if isinstance(module, torch.fx.GraphModule) else _trace(module)
    run = _Run(gm, engine, datapath or engine_datapath(engine), cpu or aten_cpu())
    args = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]
    given = len(args)
    env = {}
    handlers = _handlers()
    for node in gm.graph.nodes:
        run.node = node
        if node.op == "placeholder":
            if not args:
                raise ValueError(f"the model takes more inputs than the {given} given (missing {node.name!r})")
            env[node.name] = _input(args.pop(0), node.name)
        elif node.op == "output":
            if args:
                raise ValueError(f"{len(args)} more inputs than the model's placeholders")
            outputs = _map(node.args[0], lambda n: _public(env[n.name]))
            return (outputs, {k: _public(v) for k, v in env.items()}) if intermediates else outputs
        else:
            a = _map(node.args, lambda n: env[n.name])
            kw = _map(node.kwargs, lambda n: env[n.name])
            try:
                env[node.name] = _dispatch(run, node, handlers, a, kw)
            except UnsupportedNode:
                raise
            except (ValueError, TypeError) as e:      # a kernel's refusal: say where
                run.fail(str(e))
    raise ValueError("the graph has no output node")


def _trace(module):
    torch = _torch()
    try:
        return torch.fx.symbolic_trace(module)
    except Exception as e:                 # torch's tracer raises many types
        raise ValueError(f"cannot trace {type(module).__name__} with torch.fx ({type(e).__name__}: {e}); "
                         f"convert it with FX (convert_fx) or make its forward traceable") from None


def _map(value, fn):
    torch = _torch()
    if isinstance(value, torch.fx.Node):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    return value


def _public(value):
    return value.values if isinstance(value, _Float) else value


def _input(value, name: str) -> _Float:
    torch = _torch()
    if isinstance(value, torch.Tensor):
        if value.is_quantized:
            raise TypeError(f"input {name!r} is a quantized tensor; pass float inputs (the model quantizes them)")
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype != np.float32:
        raise TypeError(f"input {name!r} must be float32, got dtype {arr.dtype}")
    return _Float(np.ascontiguousarray(arr))


def _dispatch(run: _Run, node, handlers, args, kwargs):
    modules, functions, methods = handlers
    if node.op == "get_attr":
        value = run.gm
        for part in node.target.split("."):
            value = getattr(value, part)
        return value
    if node.op == "call_module":
        mod = run.module(node.target)
        handler = modules.get(type(mod))
        if handler is None:
            kind = type(mod).__module__ + "." + type(mod).__qualname__
            if kind.startswith("torch.nn.modules"):
                run.fail(f"module {node.target!r} is a float {kind} that qsim does not run; quantize the model "
                         f"(torch.ao.quantization convert / convert_fx) or use a modelled module")
            run.fail(f"module type {kind} is not modelled; supported: {', '.join(sorted(t.__name__ for t in modules))}")
        return handler(run, mod, *args, **kwargs)
    if node.op == "call_function":
        handler = functions.get(node.target)
        if handler is None:
            run.fail("this function is not modelled")
        return handler(run, *args, **kwargs)
    if node.op == "call_method":
        handler = methods.get(node.target)
        if handler is None:
            run.fail(f"method .{node.target}() is not modelled; supported: {', '.join(sorted(methods))}")
        return handler(run, *args, **kwargs)
    run.fail("unknown node kind")


# -- handlers ------------------------------------------------------------------------------------------
def _quantize(run, x, scale, zero_point, dtype):
    if not isinstance(x, _Float):
        run.fail("quantizes a float tensor, got a quantized one")
    dtype = _dtype_name(dtype)
    if dtype not in torch_cpu.QUANTIZED_DTYPES:
        run.fail(f"quantizing to {dtype} is not modelled (quint8, qint8)")
    scale, zero = F32(_number(scale)), int(_number(zero_point))
    codes = torch_cpu.requantize(x.values, scale, zero, dtype, "reciprocal_fma")
    return QuantizedTensor(codes, scale, zero, dtype, None, _suggest_channels_last(x.shape, x.channels_last))


def _dequantize(run, x):
    if isinstance(x, _Float):
        return x
    if x.dtype not in torch_cpu.QUANTIZED_DTYPES:
        run.fail(f"dequantizing {x.dtype} is not modelled")
    return _Float(x.values(), _suggest_channels_last(x.shape, x.channels_last))


def _relu(run, x, inplace=False):
    if isinstance(x, _Float):
        return _Float(np.maximum(x.values, F32(0)), x.channels_last)
    x = run.quantized(x)
    return replace(x, codes=np.maximum(x.codes, np.asarray(x.zero_point, x.codes.dtype)),
                   channels_last=_suggest_channels_last(x.shape, x.channels_last))


def _packed(mod):
    """The packed weight object of a quantized linear or convolution module."""
    packed = mod._packed_params
    return getattr(packed, "_packed_params", packed)


_WEIGHTS = weakref.WeakKeyDictionary()     # module -> (its packed weights, what _weight_bias read)


def _weight_bias(run, mod):
    """(codes, scale, zero point, float bias) of a module's packed weights, read once per
    packing (unpacking on every call would cost more than the layer). Linear layers get their
    codes transposed to (K, N), C-contiguous, as the matrix products take them."""
    packed = _packed(mod)
    cached = _WEIGHTS.get(mod)
    if cached is not None and cached[0] is packed:
        return cached[1]
    codes, scale, zero, dtype, axis = _tensor_qparams(mod.weight())
    if dtype != "qint8" or axis not in (None, 0):
        run.fail(f"weights must be qint8 per tensor or per output channel, got {dtype} (axis {axis})")
    if codes.ndim == 2:
        codes = np.ascontiguousarray(codes.T)
    bias = mod.bias()
    bias = None if bias is None else bias.detach().numpy().astype(F32)
    _WEIGHTS[mod] = (packed, (codes, scale, zero, bias))
    return codes, scale, zero, bias


def _bias_for(run, bias, x_scale, w_scale):
    """torch's float bias as the datapath takes it: float for fbgemm / qnnpack, else int32."""
    if bias is None or run.datapath.bias == "float":
        return bias
    return quantize_bias(bias, x_scale, w_scale)


def _output_params(mod) -> tuple:
    return F32(mod.scale), int(mod.zero_point)


def _linear(run, mod, x, relu: bool):
    x = run.quantized(x)
    codes, sw, zw, bias = _weight_bias(run, mod)
    sy, zy = _output_params(mod)
    y = qlinear_matmul(x.codes, F32(x.scale), np.uint8(x.zero_point), codes, sw, np.asarray(zw).astype(np.int8),
                       sy, np.uint8(zy), _bias_for(run, bias, x.scale, sw), datapath=run.datapath,
                       activation="relu" if relu else None)
    return QuantizedTensor(y, sy, zy, "quint8")


def _conv(run, mod, x, relu: bool):
    x = run.quantized(x)
    if getattr(mod, "padding_mode", "zeros") != "zeros":
        run.fail(f"padding_mode {mod.padding_mode!r} is not modelled (zeros only)")
    codes, sw, zw, bias = _weight_bias(run, mod)
    sy, zy = _output_params(mod)
    y = qlinear_conv(x.codes, F32(x.scale), np.uint8(x.zero_point), codes, sw, np.asarray(zw).astype(np.int8), sy,
                     np.uint8(zy), _bias_for(run, bias, x.scale, sw), stride=tuple(mod.stride),
                     padding=tuple(mod.padding), dilation=tuple(mod.dilation), groups=mod.groups,
                     datapath=run.datapath, activation="relu" if relu else None,
                     channels_last=True)           # fbgemm's im2col is NHWC: VPMADDUBSW pairs follow it
    return QuantizedTensor(y, sy, zy, "quint8", None, True)


def _linear_dynamic(run, mod, x, relu: bool):
    torch = _torch()
    if not isinstance(x, _Float):
        run.fail("a dynamic linear takes float input")
    if mod._packed_params.dtype != torch.qint8:
        run.fail(f"dynamic linear with {_dtype_name(mod._packed_params.dtype)} weights is not modelled (qint8)")
    codes, sw, zw, bias = _weight_bias(run, mod)
    # nn.quantized.dynamic.Linear passes reduce_range=True from version 4 on; LinearReLU always
    reduce_range = relu or (getattr(mod, "version", None) or 0) >= 4
    y = qlinear_dynamic(x.values, codes, sw, np.asarray(zw).astype(np.int8), bias, datapath=run.datapath,
                        activation="relu" if relu else None, reduce_range=reduce_range)
    return _Float(y)


def _quantize_module(run, mod, x):
    return _quantize(run, x, mod.scale, mod.zero_point, mod.dtype)


def _add(run, a, b, scale, zero_point, relu: bool = False):
    a, b = run.quantized(a, "operand"), run.quantized(b, "operand")
    if a.shape != b.shape:
        run.fail(f"broadcasting add of shapes {a.shape} and {b.shape} is not modelled")
    if a.dtype != b.dtype:
        run.fail(f"add of {a.dtype} and {b.dtype}")
    out_cl = _suggest_channels_last(a.shape, a.channels_last)       # qadd allocates like its first input
    sy, zy = F32(_number(scale)), int(_number(zero_point))
    if run.engine == "qnnpack" and a.dtype == "quint8":
        codes = torch_cpu.add(a.codes, a.scale, a.zero_point, b.codes, b.scale, b.zero_point, sy, zy, relu=relu,
                              engine="qnnpack")
        return QuantizedTensor(codes, sy, zy, a.dtype, None, out_cl)
    shape = a.shape
    if _same_layout(shape, a.channels_last, out_cl) and _same_layout(shape, b.channels_last, out_cl):
        codes = torch_cpu.add(_memory_order(a), a.scale, a.zero_point, _memory_order(b), b.scale, b.zero_point,
                              sy, zy, relu=relu, dtype=a.dtype, engine="fbgemm", cpu=run.cpu)
        return QuantizedTensor(_from_memory_order(codes, shape, out_cl), sy, zy, a.dtype, None, out_cl)
    inner = _strides(shape, out_cl).index(1)         # TensorIterator walks the output's memory order
    if any(_strides(shape, t.channels_last)[inner] != 1 for t in (a, b)):
        # an operand not contiguous along the loop's inner dimension: every element takes the
        # scalar path (conv1d outputs, channels innermost, into a contiguous output do this)
        return QuantizedTensor(_scalar_add(a, b, sy, zy, relu), sy, zy, a.dtype, None, out_cl)
    run.fail("add of tensors in these memory layouts is not modelled")


def _same_layout(shape: tuple, cl1: bool, cl2: bool) -> bool:
    """Two layouts of `shape` walk memory in the same order (size-1 dimensions do not count)."""
    s1, s2 = _strides(shape, cl1), _strides(shape, cl2)
    return all(x == y for x, y, n in zip(s1, s2, shape) if n > 1)


def _scalar_add(a, b, sy, zy, relu):
    c = (torch_cpu.dequantize(a.codes, a.scale, a.zero_point) + torch_cpu.dequantize(b.codes, b.scale, b.zero_point))
    c = c.astype(F32)
    if relu:
        c = np.maximum(c, F32(0))
    return torch_cpu.requantize(c, sy, zy, a.dtype, "reciprocal_add")


def _cat(run, tensors, dim=0, scale=None, zero_point=None, relu: bool = False):
    parts = [run.quantized(t, "operand") for t in tensors]
    if not parts:
        run.fail("cat of no tensors")
    ndim = parts[0].codes.ndim
    dim = dim % ndim
    sy = F32(_number(parts[0].scale if scale is None else scale))
    zy = int(_number(parts[0].zero_point if zero_point is None else zero_point))
    dtype = parts[0].dtype
    if any(p.dtype != dtype for p in parts):
        run.fail("cat of different dtypes")
    if dim == 1 and all(_contiguous_channels_last(p.shape, p.channels_last) for p in parts):
        rows = [(np.moveaxis(p.codes, 1, -1).reshape(-1, p.shape[1]), p.scale, p.zero_point) for p in parts]
        flat = torch_cpu.cat_channels_last(rows, sy, zy, relu=relu, dtype=dtype, cpu=run.cpu)
        n, _, *spatial = parts[0].shape
        codes = np.moveaxis(flat.reshape(n, *spatial, -1), -1, 1)
        return QuantizedTensor(np.ascontiguousarray(codes), sy, zy, dtype, None, True)
    codes = torch_cpu.cat([(p.codes, p.scale, p.zero_point) for p in parts], sy, zy, axis=dim, dtype=dtype)
    if relu:
        codes = np.maximum(codes, np.asarray(zy, codes.dtype))
    formats = {_suggest_channels_last(p.shape, p.channels_last) for p in parts}
    out_cl = formats == {True} and _suggest_channels_last(codes.shape, True)
    return QuantizedTensor(codes, sy, zy, dtype, None, out_cl)


def _pair(v, n: int = 2) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _max_pool(run, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        run.fail("max pooling with return_indices is not modelled")
    x = run.quantized(x)
    k = _pair(kernel_size, x.codes.ndim - 2)
    s = _pair(stride if stride not in (None, []) else k, len(k))
    p, d = _pair(padding, len(k)), _pair(dilation, len(k))
    if len(k) == 1:                     # max_pool1d runs as max_pool2d over (N, C, 1, L)
        y = torch_cpu.max_pool2d(x.codes[:, :, None], (1, *k), (1, *s), (0, *p), (1, *d), ceil_mode)[:, :, 0]
        return replace(x, codes=y)
    y = torch_cpu.max_pool2d(x.codes, k, s, p, d, ceil_mode)
    return replace(x, codes=y, channels_last=_suggest_channels_last(x.shape, x.channels_last))


def _avg_pool(run, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
              divisor_override=None):
    x = run.quantized(x)
    if x.codes.ndim != 4:
        run.fail("average pooling is modelled for 4-D (N, C, H, W) input only")
    k = _pair(kernel_size)
    s = _pair(stride if stride not in (None, []) else k)
    cl = _contiguous_channels_last(x.shape, x.channels_last)
    y = torch_cpu.avg_pool2d(x.codes, x.scale, x.zero_point, k, s, _pair(padding), ceil_mode=ceil_mode,
                             count_include_pad=count_include_pad, divisor_override=divisor_override, dtype=x.dtype,
                             engine=run.engine, channels_last=cl, cpu=run.cpu)
    return replace(x, codes=y, channels_last=_suggest_channels_last(x.shape, x.channels_last))


def _adaptive_avg_pool(run, x, output_size):
    x = run.quantized(x)
    if x.codes.ndim != 4:
        run.fail("adaptive average pooling is modelled for 4-D (N, C, H, W) input only")
    size = tuple(x.shape[2 + i] if o is None else o for i, o in enumerate(_pair(output_size)))
    cl = _contiguous_channels_last(x.shape, x.channels_last)
    y = torch_cpu.adaptive_avg_pool2d(x.codes, x.scale, x.zero_point, size, dtype=x.dtype, engine=run.engine,
                                      channels_last=cl, cpu=run.cpu)
    return replace(x, codes=y, channels_last=_suggest_channels_last(x.shape, x.channels_last))


def _reshaped(x, shape):
    if isinstance(x, _Float):
        return _Float(x.values.reshape(shape))
    return replace(x, codes=x.codes.reshape(shape), channels_last=False)


def _flatten(run, x, start_dim=0, end_dim=-1):
    shape = x.shape
    start, end = start_dim % len(shape), end_dim % len(shape)
    return _reshaped(x, shape[:start] + (-1,) + shape[end + 1:])


def _view(run, x, *shape):
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return _reshaped(x, tuple(int(_number(s)) for s in shape))


def _size(run, x, dim=None):
    return x.shape if dim is None else x.shape[dim]


def _identity(run, x, *args, **kwargs):
    return x


def _handlers():
    """(modules, functions, methods): the handler tables, built once torch is imported."""
    global _HANDLERS
    if _HANDLERS is not None:
        return _HANDLERS
    torch = _torch()
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.intrinsic.quantized.dynamic as nniqd
    import torch.ao.nn.quantized as nnq
    import torch.ao.nn.quantized.dynamic as nnqd
    import torch.nn.functional as F
    nn = torch.nn
    qops = torch.ops.quantized
    modules = {
        nnq.Quantize: _quantize_module,
        nnq.DeQuantize: lambda run, mod, x: _dequantize(run, x),
        nnq.Linear: lambda run, mod, x: _linear(run, mod, x, False),
        nniq.LinearReLU: lambda run, mod, x: _linear(run, mod, x, True),
        nnq.Conv1d: lambda run, mod, x: _conv(run, mod, x, False),
        nnq.Conv2d: lambda run, mod, x: _conv(run, mod, x, False),
        nniq.ConvReLU1d: lambda run, mod, x: _conv(run, mod, x, True),
        nniq.ConvReLU2d: lambda run, mod, x: _conv(run, mod, x, True),
        nnqd.Linear: lambda run, mod, x: _linear_dynamic(run, mod, x, False),
        nniqd.LinearReLU: lambda run, mod, x: _linear_dynamic(run, mod, x, True),
        nn.ReLU: lambda run, mod, x: _relu(run, x),
        nn.Identity: lambda run, mod, x: x,
        nn.Flatten: lambda run, mod, x: _flatten(run, x, mod.start_dim, mod.end_dim),
        nn.MaxPool1d: lambda run, mod, x: _max_pool(run, x, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                                                    mod.ceil_mode, mod.return_indices),
        nn.MaxPool2d: lambda run, mod, x: _max_pool(run, x, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                                                    mod.ceil_mode, mod.return_indices),
        nn.AvgPool2d: lambda run, mod, x: _avg_pool(run, x, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                                                    mod.count_include_pad, mod.divisor_override),
        nn.AdaptiveAvgPool2d: lambda run, mod, x: _adaptive_avg_pool(run, x, mod.output_size),
    }
    functions = {
        torch.quantize_per_tensor: _quantize,
        torch.dequantize: _dequantize,
        qops.add: lambda run, a, b, scale, zero_point: _add(run, a, b, scale, zero_point),
        qops.add_relu: lambda run, a, b, scale, zero_point: _add(run, a, b, scale, zero_point, relu=True),
        qops.cat: lambda run, tensors, scale, zero_point, dim=0: _cat(run, tensors, dim, scale, zero_point),
        qops.cat_relu: lambda run, tensors, scale, zero_point, dim=0: _cat(run, tensors, dim, scale, zero_point, True),
        torch.cat: lambda run, tensors, dim=0: _cat(run, tensors, dim),
        torch.concat: lambda run, tensors, dim=0: _cat(run, tensors, dim),
        torch.relu: _relu,
        F.relu: _relu,
        torch.flatten: _flatten,
        torch.reshape: lambda run, x, shape: _view(run, x, shape),
        F.max_pool1d: _max_pool,
        F.max_pool2d: _max_pool,
        F.avg_pool2d: _avg_pool,
        F.adaptive_avg_pool2d: _adaptive_avg_pool,
        operator.getitem: lambda run, x, i: x[i] if isinstance(x, (tuple, list)) else run.fail(
            "indexing a tensor is not modelled"),
    }
    methods = {
        "dequantize": _dequantize,
        "relu": _relu,
        "flatten": _flatten,
        "view": _view,
        "reshape": _view,
        "size": _size,
        "contiguous": _identity,
    }
    _HANDLERS = (modules, functions, methods)
    return _HANDLERS


_HANDLERS = None
