"""Quantized linear layers (QLinearMatMul, QLinearConv, quantized::linear, FULLY_CONNECTED) as
real integer kernels compute them, with every arithmetic choice named in one IntDatapath.

    y = clamp(requantize(acc + bias) + y_zero),   acc = sum (x - x_zero)(w - w_zero)

The accumulator, the requantization method and how the bias enters are the datapath; the
presets in PRESETS mirror real kernel paths and are proven against them in tests/.

PyTorch's dynamic quantized linear (quantized::linear_dynamic) has a float output instead:
qlinear_dynamic quantizes float activations at run time and dequantizes the accumulator as
the engine of the datapath's requantization does (FLOAT_OUTPUTS).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .._kernels import _torchquant
from .._threads import resolve_threads
from ..formats import IntFormat, format as get_format
from .accumulate import Accumulator, int_matmul
from .conv import int_conv
from .requant import FLOAT_BIAS_METHODS, METHODS, SHIFT_ROUNDINGS, real_multiplier, requantize, requantize_shift

BIAS_KINDS = ("int32", "float")
ACTIVATIONS = (None, "relu", "relu6")


@dataclass(frozen=True)
class IntDatapath:
    """Every choice that decides the numbers of an integer layer.

    accumulator: width, overflow and order of the dot products.
    requant: a method of qsim.datapaths.requant.requantize, or "shift" (power of two with
    `shift_rounding`; the multiplier must be an exact power of two).
    bias: "int32" adds an integer bias in the accumulator; "float" hands a float bias to the
    PyTorch requantizations ("fbgemm" adds it in float, "qnnpack" quantizes it its own way).
    """

    name: str = "custom"
    accumulator: Accumulator = field(default_factory=Accumulator)
    requant: str = "float32"
    shift_rounding: str = "half_up"
    bias: str = "int32"
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.accumulator, Accumulator):
            raise TypeError(f"accumulator must be an Accumulator, got {type(self.accumulator).__name__}")
        if self.requant not in METHODS and self.requant != "shift":
            raise ValueError(f"unknown requant {self.requant!r}; choose one of {(*METHODS, 'shift')}")
        if self.shift_rounding not in SHIFT_ROUNDINGS:
            raise ValueError(f"unknown shift_rounding {self.shift_rounding!r}; choose one of {SHIFT_ROUNDINGS}")
        if self.bias not in BIAS_KINDS:
            raise ValueError(f"bias must be one of {BIAS_KINDS}, got {self.bias!r}")
        if (self.bias == "float") != (self.requant in FLOAT_BIAS_METHODS):
            raise ValueError(f"bias='float' goes with requant in {FLOAT_BIAS_METHODS} and only with them")


def get_datapath(spec) -> IntDatapath:
    """An IntDatapath from a preset name or an IntDatapath."""
    if isinstance(spec, IntDatapath):
        return spec
    if isinstance(spec, str) and spec in PRESETS:
        return PRESETS[spec]
    raise ValueError(f"unknown integer datapath {spec!r}; presets are {', '.join(PRESETS)}")


# -- validation -------------------------------------------------------------------------------
def _int_fmt(fmt, default: str, what: str) -> IntFormat:
    f = get_format(default if fmt is None else fmt)
    if not isinstance(f, IntFormat) or f.bits > 8:
        raise ValueError(f"{what} must be an integer format of 2 to 8 bits, got {f.name}")
    return f


def _codes(x, fmt, what: str):
    x = np.asarray(x)
    if x.dtype.kind not in "ui":
        raise TypeError(f"{what} must hold integer codes, got dtype {x.dtype}")
    f = _int_fmt(fmt, "uint8" if x.dtype.kind == "u" else "int8", f"{what}_format")
    if x.size and (x.min() < f.qmin or x.max() > f.qmax):
        raise ValueError(f"{what} holds values outside [{f.qmin}, {f.qmax}] of {f.name}")
    return x, f


def _output_format(y_format, input_fmt: IntFormat) -> IntFormat:
    """The output format: as named, else 8 bits of the input's signedness."""
    return _int_fmt(y_format, "int8" if input_fmt.signed else "uint8", "y_format")


def _scale(s, what: str, size: int | None = None) -> np.ndarray:
    s = np.asarray(s, dtype=np.float32) if not isinstance(s, np.ndarray) or s.dtype != np.float32 else s
    if s.ndim > 1 or (s.ndim == 1 and (size is None or s.shape[0] != size)):
        allowed = "a scalar" if size is None else f"a scalar or shape ({size},)"
        raise ValueError(f"{what} must be {allowed}, got shape {s.shape}")
    if not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise ValueError(f"{what} must be finite and > 0")
    return s


def _zero(z, fmt: IntFormat, what: str, size: int | None = None) -> np.ndarray:
    z = np.asarray(z)
    if z.dtype.kind not in "ui":
        raise TypeError(f"{what} must be an integer, got dtype {z.dtype}")
    if z.ndim > 1 or (z.ndim == 1 and (size is None or z.shape[0] != size)):
        allowed = "a scalar" if size is None else f"a scalar or shape ({size},)"
        raise ValueError(f"{what} must be {allowed}, got shape {z.shape}")
    if z.size and (z.min() < fmt.qmin or z.max() > fmt.qmax):
        raise ValueError(f"{what} must lie in [{fmt.qmin}, {fmt.qmax}] of {fmt.name}")
    return z.astype(np.int64)


def activation_range(activation, y_scale, y_zero: int, fmt: IntFormat, requant: str = "") -> tuple[int, int]:
    """Output clamp: the format's range, narrowed by a fused ReLU (at the zero point) or ReLU6.
    TFLite quantizes 6.0 as y_zero + round_half_away(float32(6) / y_scale); XNNPACK as
    rint(float32(6) / y_scale + y_zero) in float32, ties to even."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    lo, hi = fmt.qmin, fmt.qmax
    if activation in ("relu", "relu6"):
        lo = max(lo, y_zero)
    if activation == "relu6":
        six = np.float32(6.0) / np.float32(y_scale)
        if requant == "xnnpack":
            bound = int(np.rint(np.clip(six + np.float32(y_zero), fmt.qmin, fmt.qmax)))
        else:
            bound = y_zero + int(np.floor(six + np.float32(0.5)))         # six > 0: half away
        hi = min(hi, bound)
    return lo, hi


def _bias(bias, path: IntDatapath, n: int):
    if bias is None:
        return None
    b = np.asarray(bias)
    if b.shape != (n,):
        raise ValueError(f"bias must have shape ({n},), got {b.shape}")
    if path.bias == "float":
        if b.dtype.kind != "f" or not np.all(np.isfinite(b)):
            raise TypeError(f"datapath {path.name} takes a finite float bias, got dtype {b.dtype}")
        return b.astype(np.float32)
    if b.dtype.kind not in "ui":
        raise TypeError(f"datapath {path.name} takes an int32 bias (scale x_scale * w_scale), got dtype "
                        f"{b.dtype}; quantize a float bias with qsim.datapaths.quantize_bias")
    if b.min() < -(1 << 31) or b.max() >= 1 << 31:
        raise ValueError("bias must fit int32")
    return b.astype(np.int64)


def quantize_bias(bias, x_scale, w_scale) -> np.ndarray:
    """int32 bias = round_half_even(bias / float32(x_scale * w_scale)), the usual converter rule."""
    b = np.asarray(bias, np.float32)
    q = np.rint(b / (np.float32(x_scale) * np.asarray(w_scale, np.float32)))
    if not np.all(np.abs(q) < 2.0 ** 31):
        raise ValueError("quantized bias does not fit int32")
    return q.astype(np.int32)


# -- the layers -------------------------------------------------------------------------------
def requantize_accumulator(acc, events, bias, x_scale, w_scale, y_scale, y_zero, lo, hi, path: IntDatapath, yf: IntFormat):
    """acc + bias in the accumulator, then requantization and the output clamp. events (or
    None when not counted) gains the bias additions that wrapped or saturated."""
    accumulator = path.accumulator
    if bias is not None and path.bias == "int32":
        total = acc + bias
        fitted = accumulator.fit(total)
        if events is not None:
            events = events + (fitted != total)
        acc = fitted
    float_bias = bias if path.bias == "float" else None
    if path.requant == "shift":
        shift = -np.log2(real_multiplier(x_scale, w_scale, y_scale))
        if not np.all(shift == np.round(shift)) or np.any(shift < 0):
            raise ValueError("requant='shift' needs x_scale * w_scale / y_scale = 2^-n, n >= 0")
        y = requantize_shift(acc, shift.astype(np.int64), y_zero, lo, hi, path.shift_rounding)
    else:
        y = requantize(acc, x_scale, w_scale, y_scale, y_zero, lo, hi, path.requant, float_bias,
                       (yf.qmin, yf.qmax))
    return y, events


def qlinear_matmul(a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero, bias=None, *,
                   datapath="onnxruntime-x86", activation=None, a_format=None, b_format=None,
                   y_format=None, return_events: bool = False, num_threads: int | None = None):
    """Quantized matrix product y = requant(sum (a - a_zero)(b - b_zero) + bias).

    a: (..., M, K) codes, b: (K, N) codes; b_scale and b_zero per tensor or per column (N,);
    bias int32 (N,) (or float for fbgemm datapaths). Formats default to int8/uint8 by dtype;
    y_format defaults to 8 bits of a's signedness. Returns y codes (int8/uint8), and per-output overflow event
    counts with return_events.
    """
    path = get_datapath(datapath)
    a, af = _codes(a, a_format, "a")
    b, bf = _codes(b, b_format, "b")
    if b.ndim != 2:
        raise ValueError(f"b must be 2-D (K, N), got shape {b.shape}")
    n = b.shape[1]
    yf = _output_format(y_format, af)
    sa, sb, sy = _scale(a_scale, "a_scale"), _scale(b_scale, "b_scale", n), _scale(y_scale, "y_scale")
    za, zb, zy = _zero(a_zero, af, "a_zero"), _zero(b_zero, bf, "b_zero", n), _zero(y_zero, yf, "y_zero")
    bias = _bias(bias, path, n)
    lo, hi = activation_range(activation, sy, int(zy), yf, path.requant)
    acc = int_matmul(a, b, za, zb, path.accumulator, return_events=return_events, num_threads=num_threads)
    acc, events = acc if return_events else (acc, None)
    y, events = requantize_accumulator(acc, events, bias, sa, sb, sy, int(zy), lo, hi, path, yf)
    y = y.astype(np.int8 if yf.signed else np.uint8)
    return (y, events) if return_events else y


def qlinear_conv(x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero, bias=None, *, stride=1,
                 padding=0, dilation=1, groups: int = 1, datapath="onnxruntime-x86", activation=None,
                 x_format=None, w_format=None, y_format=None, return_events: bool = False,
                 num_threads: int | None = None, channels_last: bool = False):
    """Quantized convolution, NC[H]W; w (C_out, C_in / groups, [kh,] kw); w_scale, w_zero per
    tensor or per output channel; padding one int, one per axis, or ONNX begins then ends.
    channels_last: k in an NHWC kernel's order (see int_conv)."""
    path = get_datapath(datapath)
    x, xf = _codes(x, x_format, "x")
    w, wf = _codes(w, w_format, "w")
    if w.ndim not in (3, 4):
        raise ValueError(f"w must be (C_out, C_in/groups, [kh,] kw), got shape {w.shape}")
    c_out = w.shape[0]
    yf = _output_format(y_format, xf)
    sx, sw, sy = _scale(x_scale, "x_scale"), _scale(w_scale, "w_scale", c_out), _scale(y_scale, "y_scale")
    zx, zw, zy = _zero(x_zero, xf, "x_zero"), _zero(w_zero, wf, "w_zero", c_out), _zero(y_zero, yf, "y_zero")
    bias = _bias(bias, path, c_out)
    lo, hi = activation_range(activation, sy, int(zy), yf, path.requant)
    acc = int_conv(x, w, zx, zw, stride, padding, dilation, groups, path.accumulator,
                   return_events=return_events, num_threads=num_threads, channels_last=channels_last)
    acc, events = acc if return_events else (acc, None)
    # channels last for per-channel requantization, then back
    acc_last = np.moveaxis(acc, 1, -1)
    ev_last = None if events is None else np.moveaxis(events, 1, -1)
    y, ev_last = requantize_accumulator(acc_last, ev_last, bias, sx, sw, sy, int(zy), lo, hi, path, yf)
    y = np.moveaxis(y, -1, 1).astype(np.int8 if yf.signed else np.uint8)
    return (y, np.moveaxis(ev_last, -1, 1)) if return_events else y


# -- dynamic quantization: float in, float out ------------------------------------------------------
def _fbgemm_float_output(acc, scale, bias, threads):
    """fbgemm ReQuantizeForFloat (AVX2/AVX-512): float32(acc) * float32(sx * sw), the float bias
    joined by a fused multiply-add (measured on AVX-512; the multiply alone without a bias)."""
    xf = acc.astype(np.float32)
    if bias is None:
        return xf * scale
    rows = np.ascontiguousarray(xf.reshape(-1, xf.shape[-1]))
    out = np.empty_like(rows)
    n = rows.shape[1]
    _torchquant.fma_columns(rows, np.ascontiguousarray(np.broadcast_to(scale, (n,)), np.float32), bias, out,
                            resolve_threads(threads, out.size))
    return out.reshape(xf.shape)


def _qnnpack_float_output(acc, scale, bias, threads):
    """qnnpack q8gemm_dq: float32(acc) * float32(sw * sx), then + bias, two roundings."""
    y = acc.astype(np.float32) * scale
    return y if bias is None else y + bias


# requantization method -> its engine's dequantizing output stage (fbgemm's and qnnpack's)
FLOAT_OUTPUTS = {"fbgemm": _fbgemm_float_output, "qnnpack": _qnnpack_float_output}


def qlinear_dynamic(x, w, w_scale, w_zero, bias=None, *, datapath="fbgemm-vnni", activation=None,
                    reduce_range: bool = True, w_format=None, return_activation: bool = False,
                    num_threads: int | None = None):
    """PyTorch's dynamic quantized linear: float32 x (..., K) quantized at run time to uint8
    with the parameters the engine chooses (qsim.quant.torch_observers.dynamic_qparams; fbgemm
    honours reduce_range, qnnpack ignores it) and fbgemm's fused multiply-add rule; int32
    accumulation with w (K, N) codes; the float32 output as the engine computes it
    (FLOAT_OUTPUTS); activation "relu" clamps at 0 in float. The engine is the datapath's
    requantization ("fbgemm" or "qnnpack"). w_scale, w_zero per tensor or per column (N,);
    bias float32 (N,). Returns y, and with return_activation (y, x codes, x scale, x zero).
    """
    from ..quant.intquant import quantize_uint8_per_tensor
    from ..quant.torch_observers import dynamic_qparams
    path = get_datapath(datapath)
    if path.requant not in FLOAT_OUTPUTS:
        raise ValueError(f"datapath {path.name} has no dynamic float output; PyTorch's dynamic linear runs on "
                         f"datapaths with requant in {tuple(FLOAT_OUTPUTS)}")
    if activation not in (None, "relu"):
        raise ValueError(f"dynamic linear fuses only activation 'relu', got {activation!r}")
    w, wf = _codes(w, w_format, "w")
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (K, N), got shape {w.shape}")
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"x must be float32 activations, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"x (..., K) does not match w (K, N): shapes {x.shape} and {w.shape}")
    n = w.shape[1]
    sw, zw = _scale(w_scale, "w_scale", n), _zero(w_zero, wf, "w_zero", n)
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (n,) or bias.dtype.kind != "f" or not np.all(np.isfinite(bias)):
            raise ValueError(f"bias must be finite floats of shape ({n},), got {bias.dtype} {bias.shape}")
        bias = bias.astype(np.float32)
    scale, zero = dynamic_qparams(x, path.requant, reduce_range)
    sx = np.float32(scale)
    xq = quantize_uint8_per_tensor(x, sx, zero, "reciprocal_fma", num_threads)
    acc = int_matmul(xq, w, np.int64(zero), zw, path.accumulator, num_threads=num_threads)
    y = FLOAT_OUTPUTS[path.requant](acc, (sx * sw).astype(np.float32), bias, num_threads).astype(np.float32)
    if activation == "relu":
        y = np.maximum(y, np.float32(0))
    return (y, xq, sx, zero) if return_activation else y


# -- presets: data in presets/integer.toml ----------------------------------------------------------
PRESET_DIR = Path(__file__).parent / "presets"


def load_presets(path: Path, cls, accumulator_cls=None, optional: tuple[str, ...] = ()) -> dict:
    """{name: cls(...)} from a TOML file of one table per preset (the key is the name); an
    `accumulator` table becomes accumulator_cls (default Accumulator).
    `optional` fields without a default are None when absent. Errors name the file and preset."""
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: malformed TOML: {e}") from None
    names = {f.name for f in fields(cls)} - {"name"}
    presets = {}
    for name, table in doc.items():
        where = f"{path}: preset {name}"
        if not isinstance(table, dict):
            raise ValueError(f"{where} must be a table")
        unknown = sorted(set(table) - names)
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]}; keys are {', '.join(sorted(names))}")
        kwargs = {key: None for key in optional} | table
        try:
            if "accumulator" in kwargs:
                acc_cls = accumulator_cls or Accumulator
                kwargs["accumulator"] = acc_cls(**kwargs["accumulator"])
            presets[name] = cls(name, **kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None
    return presets


PRESETS: dict[str, IntDatapath] = load_presets(PRESET_DIR / "integer.toml", IntDatapath)
